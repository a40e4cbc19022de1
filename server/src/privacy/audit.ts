import crypto from 'node:crypto';
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Db, Queryable } from '../storage/database.ts';
import { actorOf } from './access.ts';
import { PII_READ_PERMISSIONS, UNAUDITED_PERMISSIONS } from './permissions.ts';
import { lookupHashKey } from './data-keys.ts';
import { keyedHash } from './secret.ts';

// Any constant shared by all Touchpoint processes; serialises appends so the chain has one order.
const AUDIT_LOCK = 7_310_050;
const GENESIS: Buffer = Buffer.alloc(32);
const STATE_CHANGING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

export interface AuditEntryInput {
  at: Date;
  workspaceId: string | null;
  actor: { kind: string; id: string; label: string };
  action: string;
  method: string;
  route: string;
  target: Record<string, string>;
  status: number;
  outcome: 'success' | 'denied' | 'failure';
  ip: string | null;
  userAgent: string | null;
}

export const AuditEntrySchema = Type.Object({
  seq: Type.Integer(),
  at: Type.String({ format: 'date-time' }),
  workspaceId: Type.Union([Type.String(), Type.Null()]),
  actor: Type.Object({ kind: Type.String(), id: Type.String(), label: Type.String() }),
  action: Type.String({ description: "The permission the request used, e.g. 'segments.write'" }),
  method: Type.String(),
  route: Type.String({ description: 'The route pattern; parameters are in target' }),
  target: Type.Record(Type.String(), Type.String(), { description: 'Route parameters; values that may be personal data are keyed hashes' }),
  status: Type.Integer(),
  outcome: Type.Union([Type.Literal('success'), Type.Literal('denied'), Type.Literal('failure')]),
  ip: Type.Union([Type.String(), Type.Null()]),
  userAgent: Type.Union([Type.String(), Type.Null()]),
  hash: Type.String({ description: 'hex SHA-256 over the previous hash and this entry' }),
});
export type AuditEntry = Static<typeof AuditEntrySchema>;

/** JSON with sorted keys: the same entry always hashes the same, whatever order jsonb returns. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object') {
    return `{${Object.keys(value)
      .sort()
      .map((key) => `${JSON.stringify(key)}:${canonical((value as Record<string, unknown>)[key])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value ?? null);
}

/** The chain link: SHA-256 over the previous hash and the entry's fields in a fixed order. */
export function entryHash(previous: Buffer, seq: number, entry: AuditEntryInput): Buffer {
  const fields = [
    seq,
    entry.at.toISOString(),
    entry.workspaceId,
    entry.actor.kind,
    entry.actor.id,
    entry.actor.label,
    entry.action,
    entry.method,
    entry.route,
    entry.target,
    entry.status,
    entry.outcome,
    entry.ip,
    entry.userAgent,
  ];
  return crypto.createHash('sha256').update(previous).update(canonical(fields)).digest();
}

/** Appends one entry under the chain lock; returns its sequence number. */
export async function appendAudit(db: Db, entry: AuditEntryInput): Promise<number> {
  const client = await db.connect();
  try {
    await client.query('begin');
    await client.query('select pg_advisory_xact_lock($1)', [AUDIT_LOCK]);
    const { rows } = await client.query<{ seq: string; hash: Buffer }>('select seq, hash from audit_log order by seq desc limit 1');
    const seq = rows[0] ? Number(rows[0].seq) + 1 : 1;
    const previous = rows[0]?.hash ?? GENESIS;
    const hash = entryHash(previous, seq, entry);
    await client.query(
      `insert into audit_log (seq, at, workspace_id, actor_kind, actor_id, actor_label, action, method, route, target, status, outcome, ip, user_agent, prev_hash, hash)
       values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`,
      [
        seq,
        entry.at,
        entry.workspaceId,
        entry.actor.kind,
        entry.actor.id,
        entry.actor.label,
        entry.action,
        entry.method,
        entry.route,
        entry.target,
        entry.status,
        entry.outcome,
        entry.ip,
        entry.userAgent,
        previous,
        hash,
      ],
    );
    await client.query('commit');
    return seq;
  } catch (error) {
    await client.query('rollback');
    throw error;
  } finally {
    client.release();
  }
}

interface AuditRow {
  seq: string;
  at: Date;
  workspace_id: string | null;
  actor_kind: string;
  actor_id: string;
  actor_label: string;
  action: string;
  method: string;
  route: string;
  target: Record<string, string>;
  status: number;
  outcome: AuditEntryInput['outcome'];
  ip: string | null;
  user_agent: string | null;
  prev_hash: Buffer;
  hash: Buffer;
}

const toInput = (row: AuditRow): AuditEntryInput => ({
  at: row.at,
  workspaceId: row.workspace_id,
  actor: { kind: row.actor_kind, id: row.actor_id, label: row.actor_label },
  action: row.action,
  method: row.method,
  route: row.route,
  target: row.target,
  status: row.status,
  outcome: row.outcome,
  ip: row.ip,
  userAgent: row.user_agent,
});
const toEntry = (row: AuditRow): AuditEntry => ({
  ...toInput(row),
  seq: Number(row.seq),
  at: row.at.toISOString(),
  hash: row.hash.toString('hex'),
});

export interface VerifyResult {
  ok: boolean;
  entries: number;
  /** The first entry whose hash or link does not match, and why. */
  broken?: { seq: number; reason: string };
}

/** Walks the whole chain in order, recomputing every hash; any edit, deletion or insertion shows. */
export async function verifyAuditChain(db: Queryable): Promise<VerifyResult> {
  let previous: Buffer = GENESIS;
  let expectedSeq = 1;
  let entries = 0;
  let after = 0;
  for (;;) {
    const { rows } = await db.query<AuditRow>('select * from audit_log where seq > $1 order by seq limit 5000', [after]);
    if (rows.length === 0) return { ok: true, entries };
    for (const row of rows) {
      const seq = Number(row.seq);
      if (seq !== expectedSeq) return { ok: false, entries, broken: { seq, reason: `entry ${expectedSeq} is missing` } };
      if (!row.prev_hash.equals(previous)) return { ok: false, entries, broken: { seq, reason: 'does not link to the previous entry' } };
      if (!entryHash(previous, seq, toInput(row)).equals(row.hash)) return { ok: false, entries, broken: { seq, reason: 'its content does not match its hash' } };
      previous = row.hash;
      expectedSeq++;
      entries++;
      after = seq;
    }
  }
}

export const AuditQuerySchema = Type.Object(
  {
    actor: Type.Optional(Type.String({ maxLength: 320, description: 'Actor id (user id, key id) or label (email)' })),
    action: Type.Optional(Type.String({ maxLength: 100, description: "Permission, or an area prefix like 'segments.'" })),
    outcome: Type.Optional(Type.Union([Type.Literal('success'), Type.Literal('denied'), Type.Literal('failure')])),
    from: Type.Optional(Type.String({ format: 'date-time' })),
    to: Type.Optional(Type.String({ format: 'date-time' })),
    before: Type.Optional(Type.Integer({ minimum: 1, description: 'Cursor: entries with seq below this' })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
  },
  { additionalProperties: false },
);
export type AuditQuery = Static<typeof AuditQuerySchema>;

/** Newest first; `nextBefore` continues the listing. */
export async function searchAudit(db: Queryable, workspaceId: string | null, query: AuditQuery): Promise<{ items: AuditEntry[]; nextBefore: number | null }> {
  const limit = query.limit ?? 100;
  const { rows } = await db.query<AuditRow>(
    `select * from audit_log
      where ($1::uuid is null or workspace_id = $1)
        and ($2::text is null or actor_id = $2 or actor_label = lower($2))
        and ($3::text is null or action = $3 or (right($3, 1) = '.' and starts_with(action, $3)))
        and ($4::text is null or outcome = $4)
        and ($5::timestamptz is null or at >= $5)
        and ($6::timestamptz is null or at < $6)
        and ($7::bigint is null or seq < $7)
      order by seq desc limit $8`,
    [workspaceId, query.actor ?? null, query.action ?? null, query.outcome ?? null, query.from ?? null, query.to ?? null, query.before ?? null, limit],
  );
  const items = rows.map(toEntry);
  return { items, nextBefore: items.length === limit ? items[items.length - 1]!.seq : null };
}

// ---- the request hook ------------------------------------------------------------------------

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Route parameters that name configuration, never a person: kept readable. */
const PLAIN_PARAMS = new Set(['workspace', 'key', 'keyId', 'id', 'userId', 'role', 'source', 'type', 'name', 'segment', 'deadLetter']);

/** Route parameters for the log; any that may identify a person (a profile given by email) become keyed hashes. */
export function auditTarget(params: unknown, hash: (value: string) => string): Record<string, string> {
  const target: Record<string, string> = {};
  if (!params || typeof params !== 'object') return target;
  for (const [name, value] of Object.entries(params as Record<string, unknown>)) {
    if (typeof value !== 'string') continue;
    target[name] = PLAIN_PARAMS.has(name) || UUID.test(value) ? value.slice(0, 200) : `hmac:${hash(value)}`;
  }
  return target;
}

export function shouldAudit(method: string, permission: string | undefined, audit: 'always' | 'never' | undefined): boolean {
  if (audit === 'always') return true;
  if (audit === 'never' || !permission || UNAUDITED_PERMISSIONS.has(permission)) return false;
  return STATE_CHANGING.has(method) || PII_READ_PERMISSIONS.has(permission);
}

function outcomeOf(status: number): AuditEntryInput['outcome'] {
  if (status < 400) return 'success';
  return status === 401 || status === 403 || status === 423 ? 'denied' : 'failure';
}

/**
 * Records every state-changing request and every read of personal data, refused ones included,
 * before the answer leaves (so a client that saw the answer can find the entry).
 */
export function registerAudit(app: FastifyInstance, db: Db): void {
  app.addHook('onSend', async (request: FastifyRequest, reply, payload) => {
    const url = request.routeOptions.url;
    if (url === undefined) return payload;
    const { permission, audit } = request.routeOptions.config;
    if (!shouldAudit(request.method, permission, audit)) return payload;
    try {
      const key = await lookupHashKey(db);
      const workspaceId = request.access?.workspaceId ?? null;
      const actor = request.auditActor ?? (request.access ? actorOf(request.access.principal) : { kind: 'anonymous', id: 'anonymous', label: 'anonymous' });
      const userAgent = request.headers['user-agent'];
      await appendAudit(db, {
        at: new Date(),
        workspaceId,
        actor,
        action: permission === 'public' && url.startsWith('/v1/auth/') ? `auth.${url.slice('/v1/auth/'.length)}` : (permission ?? 'none'),
        method: request.method,
        route: url,
        target: auditTarget(request.params, (value) => keyedHash(key, workspaceId, 'audit', value).toString('hex').slice(0, 32)),
        status: reply.statusCode,
        outcome: outcomeOf(reply.statusCode),
        ip: request.ip ?? null,
        userAgent: typeof userAgent === 'string' ? userAgent.slice(0, 300) : null,
      });
    } catch (error) {
      // The answer is not held back by a failing audit write, but it is never silent.
      request.log.error({ err: error }, 'audit log write failed');
    }
    return payload;
  });
}
