import type { Db, Queryable } from '../storage/database.ts';
import { generateKey, hashKey, keyPrefix } from './keys.ts';
import type { CollectionSettings } from './collection-settings.ts';
import type { ApiKey, CreateSource, CreateWorkspace, IssuedKey, Source, UpdateSource, UpdateWorkspace, Workspace } from './schemas.ts';

/** A domain error the API maps to an HTTP status. */
export class NotFoundError extends Error {
  override name = 'NotFoundError';
}
export class ConflictError extends Error {
  override name = 'ConflictError';
}

interface WorkspaceRow {
  id: string;
  slug: string;
  name: string;
  time_zone: string;
  status: 'active' | 'disabled';
  created_at: Date;
}
interface SourceRow {
  workspace_id: string;
  id: string;
  name: string;
  kind: Source['kind'];
  party: Source['party'];
  mode: Source['mode'];
  status: 'active' | 'disabled';
  rate_limit_per_second: number | null;
  created_at: Date;
}
interface KeyRow {
  workspace_id: string;
  id: string;
  source_id: string | null;
  kind: 'write' | 'server';
  key_prefix: string;
  status: 'active' | 'disabled';
  expires_at: Date | null;
  created_at: Date;
  last_used_at: Date | null;
  permissions: string[] | null;
}

const toWorkspace = (row: WorkspaceRow): Workspace => ({
  id: row.id,
  slug: row.slug,
  name: row.name,
  timeZone: row.time_zone,
  status: row.status,
  createdAt: row.created_at.toISOString(),
});
const toSource = (row: SourceRow): Source => ({
  id: row.id,
  workspaceId: row.workspace_id,
  name: row.name,
  kind: row.kind,
  party: row.party,
  mode: row.mode,
  status: row.status,
  rateLimitPerSecond: row.rate_limit_per_second,
  createdAt: row.created_at.toISOString(),
});
const toKey = (row: KeyRow): ApiKey => ({
  id: row.id,
  workspaceId: row.workspace_id,
  sourceId: row.source_id,
  kind: row.kind,
  prefix: row.key_prefix,
  status: row.status,
  expiresAt: row.expires_at?.toISOString() ?? null,
  createdAt: row.created_at.toISOString(),
  lastUsedAt: row.last_used_at?.toISOString() ?? null,
  permissions: row.permissions,
});

const UNIQUE_VIOLATION = '23505';
function isUniqueViolation(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as { code?: string }).code === UNIQUE_VIOLATION;
}

function isValidTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

export async function createWorkspace(db: Queryable, input: CreateWorkspace): Promise<Workspace> {
  const timeZone = input.timeZone ?? 'UTC';
  if (!isValidTimeZone(timeZone)) throw new RangeError(`timeZone "${timeZone}" is not an IANA time zone`);
  try {
    const { rows } = await db.query<WorkspaceRow>(
      'insert into workspaces (slug, name, time_zone) values ($1, $2, $3) returning *',
      [input.slug, input.name, timeZone],
    );
    return toWorkspace(rows[0]!);
  } catch (error) {
    if (isUniqueViolation(error)) throw new ConflictError(`A workspace with slug "${input.slug}" already exists`);
    throw error;
  }
}

export async function listWorkspaces(db: Queryable): Promise<Workspace[]> {
  const { rows } = await db.query<WorkspaceRow>('select * from workspaces order by created_at');
  return rows.map(toWorkspace);
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Finds a workspace by id or slug. */
export async function getWorkspace(db: Queryable, idOrSlug: string): Promise<Workspace> {
  const { rows } = UUID.test(idOrSlug)
    ? await db.query<WorkspaceRow>('select * from workspaces where id = $1', [idOrSlug])
    : await db.query<WorkspaceRow>('select * from workspaces where slug = $1', [idOrSlug]);
  if (!rows[0]) throw new NotFoundError(`Workspace "${idOrSlug}" not found`);
  return toWorkspace(rows[0]);
}

export async function setWorkspaceStatus(db: Queryable, id: string, status: Workspace['status']): Promise<Workspace> {
  const { rows } = await db.query<WorkspaceRow>(
    'update workspaces set status = $2, updated_at = now() where id = $1 returning *',
    [id, status],
  );
  if (!rows[0]) throw new NotFoundError(`Workspace "${id}" not found`);
  return toWorkspace(rows[0]);
}

/** Changes a workspace's name, time zone or status; absent fields keep their value. */
export async function updateWorkspace(db: Queryable, id: string, input: UpdateWorkspace): Promise<Workspace> {
  if (input.timeZone !== undefined && !isValidTimeZone(input.timeZone)) {
    throw new RangeError(`timeZone "${input.timeZone}" is not an IANA time zone`);
  }
  const { rows } = await db.query<WorkspaceRow>(
    `update workspaces set
       name = coalesce($2, name),
       time_zone = coalesce($3, time_zone),
       status = coalesce($4, status),
       updated_at = now()
     where id = $1 returning *`,
    [id, input.name ?? null, input.timeZone ?? null, input.status ?? null],
  );
  if (!rows[0]) throw new NotFoundError(`Workspace "${id}" not found`);
  return toWorkspace(rows[0]);
}

/** Creates a source and its first write key. */
export async function createSource(
  db: Db,
  workspaceId: string,
  input: CreateSource,
): Promise<{ source: Source; writeKey: IssuedKey }> {
  const client = await db.connect();
  try {
    await client.query('begin');
    let row: SourceRow;
    try {
      const { rows } = await client.query<SourceRow>(
        `insert into sources (workspace_id, name, kind, party, mode, rate_limit_per_second)
         values ($1, $2, $3, $4, $5, $6) returning *`,
        [workspaceId, input.name, input.kind, input.party ?? 'first', input.mode ?? defaultMode(input.kind), input.rateLimitPerSecond ?? null],
      );
      row = rows[0]!;
    } catch (error) {
      if (isUniqueViolation(error)) throw new ConflictError(`A source named "${input.name}" already exists in this workspace`);
      throw error;
    }
    const writeKey = await insertKey(client, workspaceId, 'write', row.id);
    await client.query('commit');
    return { source: toSource(row), writeKey };
  } catch (error) {
    await client.query('rollback');
    throw error;
  } finally {
    client.release();
  }
}

function defaultMode(kind: Source['kind']): Source['mode'] {
  return kind === 'crm_import' || kind === 'warehouse' ? 'batch' : 'realtime';
}

export async function listSources(db: Queryable, workspaceId: string): Promise<Source[]> {
  const { rows } = await db.query<SourceRow>('select * from sources where workspace_id = $1 order by created_at', [workspaceId]);
  return rows.map(toSource);
}

export async function getSource(db: Queryable, workspaceId: string, sourceId: string): Promise<Source> {
  const { rows } = UUID.test(sourceId)
    ? await db.query<SourceRow>('select * from sources where workspace_id = $1 and id = $2', [workspaceId, sourceId])
    : await db.query<SourceRow>('select * from sources where workspace_id = $1 and name = $2', [workspaceId, sourceId]);
  if (!rows[0]) throw new NotFoundError(`Source "${sourceId}" not found in this workspace`);
  return toSource(rows[0]);
}

export async function updateSource(db: Queryable, workspaceId: string, sourceId: string, input: UpdateSource): Promise<Source> {
  let rows: SourceRow[];
  try {
    ({ rows } = await db.query<SourceRow>(
      `update sources set
         name = coalesce($3, name),
         status = coalesce($4, status),
         rate_limit_per_second = case when $5::boolean then $6::integer else rate_limit_per_second end,
         updated_at = now()
       where workspace_id = $1 and id = $2 returning *`,
      [workspaceId, sourceId, input.name ?? null, input.status ?? null, 'rateLimitPerSecond' in input, input.rateLimitPerSecond ?? null],
    ));
  } catch (error) {
    if (isUniqueViolation(error)) throw new ConflictError(`A source named "${input.name}" already exists in this workspace`);
    throw error;
  }
  if (!rows[0]) throw new NotFoundError(`Source "${sourceId}" not found in this workspace`);
  return toSource(rows[0]);
}

async function insertKey(
  db: Queryable,
  workspaceId: string,
  kind: 'write' | 'server',
  sourceId: string | null,
  permissions: string[] | null = null,
): Promise<IssuedKey> {
  const key = generateKey(kind);
  const { rows } = await db.query<KeyRow>(
    `insert into api_keys (workspace_id, source_id, kind, key_hash, key_prefix, permissions)
     values ($1, $2, $3, $4, $5, $6) returning *`,
    [workspaceId, sourceId, kind, hashKey(key), keyPrefix(key), permissions],
  );
  return { ...toKey(rows[0]!), key };
}

/** Issues a new key: a write key for a source, or a server (secret, read) key for the workspace. */
export async function createKey(
  db: Queryable,
  workspaceId: string,
  input: ({ kind: 'write'; sourceId: string } | { kind: 'server' }) & { permissions?: string[] },
): Promise<IssuedKey> {
  if (input.kind === 'write') await getSource(db, workspaceId, input.sourceId);
  return insertKey(db, workspaceId, input.kind, input.kind === 'write' ? input.sourceId : null, input.permissions ?? null);
}

export async function listKeys(db: Queryable, workspaceId: string): Promise<ApiKey[]> {
  const { rows } = await db.query<KeyRow>('select * from api_keys where workspace_id = $1 order by created_at', [workspaceId]);
  return rows.map(toKey);
}

export async function setKeyStatus(db: Queryable, workspaceId: string, keyId: string, status: ApiKey['status']): Promise<ApiKey> {
  const { rows } = await db.query<KeyRow>(
    'update api_keys set status = $3 where workspace_id = $1 and id = $2 returning *',
    [workspaceId, keyId, status],
  );
  if (!rows[0]) throw new NotFoundError(`Key "${keyId}" not found in this workspace`);
  return toKey(rows[0]);
}

/**
 * Replaces a key with a new one of the same kind and source. The old key keeps working for
 * `graceSeconds` (deployed apps need time to pick up the new one); 0 disables it at once.
 */
export async function rotateKey(db: Db, workspaceId: string, keyId: string, graceSeconds = 0): Promise<{ issued: IssuedKey; previous: ApiKey }> {
  const client = await db.connect();
  try {
    await client.query('begin');
    const { rows } = await client.query<KeyRow>(
      `update api_keys
         set expires_at = case when $3::integer > 0 then now() + make_interval(secs => $3::integer) else expires_at end,
             status = case when $3::integer > 0 then status else 'disabled' end
       where workspace_id = $1 and id = $2 and status = 'active' returning *`,
      [workspaceId, keyId, graceSeconds],
    );
    const old = rows[0];
    if (!old) throw new NotFoundError(`Active key "${keyId}" not found in this workspace`);
    const issued = await insertKey(client, workspaceId, old.kind, old.source_id, old.permissions);
    await client.query('commit');
    return { issued, previous: toKey(old) };
  } catch (error) {
    await client.query('rollback');
    throw error;
  } finally {
    client.release();
  }
}

export interface ResolvedKey {
  keyId: string;
  workspaceId: string;
  sourceId: string | null;
  kind: 'write' | 'server';
  /** Events per second the source accepts; null when unlimited. */
  rateLimitPerSecond: number | null;
  /** End of a rotated key's grace period; caches must not keep the key past it. */
  expiresAt: Date | null;
  /** Explicit permission patterns; null keeps the kind's default (privacy/permissions.ts). */
  permissions: string[] | null;
  /** The workspace's collection settings (collection-settings.ts), read with the key so ingestion needs no other query. */
  collection: CollectionSettings;
}

/** The workspace and source a presented key acts for, or null when unknown, disabled or expired. */
export async function resolveKey(db: Queryable, key: string): Promise<ResolvedKey | null> {
  const { rows } = await db.query<{
    id: string;
    workspace_id: string;
    source_id: string | null;
    kind: 'write' | 'server';
    rate_limit_per_second: number | null;
    expires_at: Date | null;
    permissions: string[] | null;
    require_consent: boolean;
    consent_categories: string[];
  }>(
    `select k.id, k.workspace_id, k.source_id, k.kind, s.rate_limit_per_second, k.expires_at, k.permissions, w.require_consent, w.consent_categories
       from api_keys k
       join workspaces w on w.id = k.workspace_id and w.status = 'active'
       left join sources s on s.workspace_id = k.workspace_id and s.id = k.source_id
      where k.key_hash = $1 and k.status = 'active'
        and (k.expires_at is null or k.expires_at > now())
        and (k.source_id is null or s.status = 'active')`,
    [hashKey(key)],
  );
  const row = rows[0];
  if (!row) return null;
  return {
    keyId: row.id,
    workspaceId: row.workspace_id,
    sourceId: row.source_id,
    kind: row.kind,
    rateLimitPerSecond: row.rate_limit_per_second,
    expiresAt: row.expires_at,
    permissions: row.permissions,
    collection: { requireConsent: row.require_consent, consentCategories: row.consent_categories },
  };
}

/** Records use at most once a minute per key, so reads stay off the hot path's write budget. */
export async function touchKey(db: Queryable, workspaceId: string, keyId: string): Promise<void> {
  await db.query(
    `update api_keys set last_used_at = now()
      where workspace_id = $1 and id = $2 and (last_used_at is null or last_used_at < now() - interval '1 minute')`,
    [workspaceId, keyId],
  );
}
