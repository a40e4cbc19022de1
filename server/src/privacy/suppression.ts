import { extractIdentifiers, type IdentifiedEvent } from '../identity/extract.ts';
import type { IdentityConfig } from '../identity/identifier-types.ts';
import { loadWorkspaceIdentity } from '../identity/settings-store.ts';
import type { NormalizedEvent } from '../ingest/normalize.ts';
import type { Db, Queryable } from '../storage/database.ts';
import { lookupHashKey } from './data-keys.ts';
import { keyedHash } from './secret.ts';

/** How long a process trusts its copy of a workspace's suppression list (erasures elsewhere show within this). */
const CACHE_MS = 5_000;

/** The keyed hash an erased identifier is suppressed by. */
export function suppressionHash(key: Buffer, workspaceId: string, identifier: { type: string; value: string }): Buffer {
  return keyedHash(key, workspaceId, 'suppression', `${identifier.type}:${identifier.value}`);
}

export async function addSuppressions(
  db: Queryable,
  workspaceId: string,
  requestId: string,
  identifiers: ReadonlyArray<{ type: string; value: string }>,
): Promise<number> {
  if (identifiers.length === 0) return 0;
  const key = await lookupHashKey(db);
  const { rowCount } = await db.query(
    `insert into privacy_suppressions (workspace_id, identifier_hash, identifier_type, request_id)
     select $1, hash, type, $4 from unnest($2::bytea[], $3::text[]) as s (hash, type)
     on conflict do nothing`,
    [workspaceId, identifiers.map((identifier) => suppressionHash(key, workspaceId, identifier)), identifiers.map((identifier) => identifier.type), requestId],
  );
  return rowCount ?? 0;
}

interface WorkspaceList {
  hashes: Set<string>;
  config: IdentityConfig | null;
  until: number;
}

/**
 * Drops events that carry an erased person's identifier, so an SDK that still holds their ids
 * does not re-create them. A workspace without suppressions costs one cached lookup per batch.
 */
export function createSuppressionFilter(db: Db) {
  const lists = new Map<string, Promise<WorkspaceList>>();

  async function load(workspaceId: string): Promise<WorkspaceList> {
    const { rows } = await db.query<{ identifier_hash: Buffer }>('select identifier_hash from privacy_suppressions where workspace_id = $1', [workspaceId]);
    const hashes = new Set(rows.map((row) => row.identifier_hash.toString('hex')));
    const config = hashes.size > 0 ? (await loadWorkspaceIdentity(db, workspaceId)).config : null;
    return { hashes, config, until: Date.now() + CACHE_MS };
  }

  async function listFor(workspaceId: string): Promise<WorkspaceList> {
    const cached = lists.get(workspaceId);
    if (cached) {
      const list = await cached.catch(() => null);
      if (list && list.until > Date.now()) return list;
    }
    const loading = load(workspaceId);
    lists.set(workspaceId, loading);
    return loading;
  }

  return {
    /** The events to store, and how many were dropped for carrying a suppressed identifier. */
    async filter(workspaceId: string, events: NormalizedEvent[]): Promise<{ kept: NormalizedEvent[]; suppressed: number }> {
      const list = await listFor(workspaceId);
      if (list.hashes.size === 0 || !list.config || events.length === 0) return { kept: events, suppressed: 0 };
      const key = await lookupHashKey(db);
      const kept: NormalizedEvent[] = [];
      const matched = new Set<string>();
      for (const event of events) {
        let hit: string | undefined;
        for (const identifier of extractIdentifiers(event, list.config).identifiers) {
          const hash = suppressionHash(key, workspaceId, identifier).toString('hex');
          if (list.hashes.has(hash)) {
            hit = hash;
            break;
          }
        }
        if (hit) matched.add(hit);
        else kept.push(event);
      }
      const suppressed = events.length - kept.length;
      if (suppressed > 0) {
        await db.query(
          `update privacy_suppressions set dropped_events = dropped_events + 1, last_dropped_at = now()
            where workspace_id = $1 and identifier_hash = any($2::bytea[])`,
          [workspaceId, [...matched].map((hex) => Buffer.from(hex, 'hex'))],
        );
      }
      return { kept, suppressed };
    },
    invalidate(workspaceId: string): void {
      lists.delete(workspaceId);
    },
  };
}
export type SuppressionFilter = ReturnType<typeof createSuppressionFilter>;

const filters = new WeakMap<Db, SuppressionFilter>();

/** One filter per database pool, shared by collection and erasure so an erasure applies at once in this process. */
export function suppressionFilter(db: Db): SuppressionFilter {
  let filter = filters.get(db);
  if (!filter) {
    filter = createSuppressionFilter(db);
    filters.set(db, filter);
  }
  return filter;
}

/**
 * Identity resolution's own check, in its transaction and under the workspace's identity lock
 * (which erasure holds until its suppressions commit): queued events carrying a suppressed
 * identifier — stored while an erasure ran, or by a process whose cached list was up to CACHE_MS
 * old — are deleted rather than resolved, and counted, so they cannot bring the person back.
 * A workspace without suppressions costs one index probe per batch.
 */
export async function dropSuppressedEvents<E extends IdentifiedEvent & { seq: number; timestamp: Date }>(
  db: Db,
  client: Queryable,
  workspaceId: string,
  events: E[],
  config: IdentityConfig,
): Promise<{ kept: E[]; dropped: number }> {
  if (events.length === 0) return { kept: events, dropped: 0 };
  const { rows: any } = await client.query('select 1 from privacy_suppressions where workspace_id = $1 limit 1', [workspaceId]);
  if (any.length === 0) return { kept: events, dropped: 0 };
  const key = await lookupHashKey(db);
  const hashes = events.map((event) => extractIdentifiers(event, config).identifiers.map((identifier) => suppressionHash(key, workspaceId, identifier).toString('hex')));
  const { rows } = await client.query<{ identifier_hash: Buffer }>(
    'select identifier_hash from privacy_suppressions where workspace_id = $1 and identifier_hash = any($2::bytea[])',
    [workspaceId, [...new Set(hashes.flat())].map((hex) => Buffer.from(hex, 'hex'))],
  );
  if (rows.length === 0) return { kept: events, dropped: 0 };
  const suppressed = new Set(rows.map((row) => row.identifier_hash.toString('hex')));
  const kept: E[] = [];
  const dropped: E[] = [];
  const matched = new Set<string>();
  events.forEach((event, i) => {
    const hit = hashes[i]!.find((hash) => suppressed.has(hash));
    if (hit) {
      matched.add(hit);
      dropped.push(event);
    } else {
      kept.push(event);
    }
  });
  if (dropped.length === 0) return { kept, dropped: 0 };
  await client.query(
    `with gone as (
       delete from events where workspace_id = $1 and timestamp = any($2::timestamptz[]) and seq = any($3::bigint[]) returning message_id
     )
     delete from event_message_ids m using gone where m.workspace_id = $1 and m.message_id = gone.message_id`,
    [workspaceId, dropped.map((event) => event.timestamp.toISOString()), dropped.map((event) => event.seq)],
  );
  await client.query(
    `update privacy_suppressions set dropped_events = dropped_events + 1, last_dropped_at = now()
      where workspace_id = $1 and identifier_hash = any($2::bytea[])`,
    [workspaceId, [...matched].map((hex) => Buffer.from(hex, 'hex'))],
  );
  return { kept, dropped: dropped.length };
}
