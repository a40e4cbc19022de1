import pg from 'pg';
import { withTransaction, type Db, type DbClient } from '../storage/database.ts';
import type { ProfileEvent } from './snapshot.ts';
import type { ConditionReads } from './snapshots.ts';

/*
 * The compact per-profile store the real-time drain reads events from (migration 0076): one row
 * per profile with the events the workspace's active real-time segments and computed traits can
 * read, each as [seq, type, name, epoch ms, the properties they read]. A re-evaluation reads it
 * with one primary-key probe instead of one index descent per monthly partition of `events` plus
 * a heap visit per event. Triggers on `events` keep it in step with every change: new events are
 * appended as small rows (migration 0078) that a read serves with the digest and folds into it once
 * there are several (DRAIN_FOLD_AT), so the digest row is written neither per event (the cost that
 * made ingest WAL-bound) nor per evaluation (the drain's largest item then); a digest that
 * is missing, invalidated or of another spec is rebuilt from `events` here (the backfill), and
 * when that cannot be done at once (a lock held elsewhere) the caller reads `events` as before.
 */

/** What the digests of a workspace hold: event kinds ('track:<event>', 'page:*', …) and property keys (null: all). */
export interface DigestSpec {
  kinds: string[];
  keys: string[] | null;
}

/**
 * The spec that holds every event `reads` can match, with the properties its conditions read, or
 * null when a digest cannot serve them (a condition reads the events' context, which it leaves out).
 */
export function digestSpec(reads: ConditionReads): DigestSpec | null {
  const kinds = new Set<string>();
  let keys: Set<string> | null = new Set();
  for (const reference of reads.events) {
    if (reference.readsContext) return null;
    kinds.add(`${reference.match.type}:${reference.match.name ?? '*'}`);
    if (reference.readsProperties === false) continue;
    if (!reference.propertyKeys) keys = null;
    else if (keys) for (const key of reference.propertyKeys) keys.add(key);
  }
  if (kinds.size === 0) return null;
  return { kinds: [...kinds].sort(), keys: keys ? [...keys].sort() : null };
}

/** A digest's event as stored. */
type StoredEvent = [seq: number, type: ProfileEvent['type'], name: string | null, timestamp: number, properties: Record<string, unknown> | null];

export interface DigestEvents {
  /** Events by profile (each with its profile id), for the profiles whose digest was read or built. */
  events: Map<string, Array<ProfileEvent & { profile_id: string }>>;
  /** Profiles whose digest could not be built now: their events must be read from `events`. */
  unserved: string[];
  /** How many digests were built (missing, invalidated, or of an older spec). */
  built: number;
}

// Long enough for an ingest or resolution statement to finish; short, so a build or spec change
// that would wait on a transaction waiting for this drain's segment lock gives up instead (the
// caller then reads `events` directly).
const BUILD_LOCK_TIMEOUT = '200ms';
// Profiles per build transaction, and the most one build statement may take: writers of these
// profiles' events wait for the build, so it must stay short; one that would take longer (events
// read from disk) is given up and its profiles read from `events` directly this time.
const BUILD_CHUNK = 50;
const BUILD_STATEMENT_TIMEOUT = '250ms';
// Profiles per fold transaction (measured at 100k profiles: ~110 µs of PostgreSQL per profile folded).
const FOLD_CHUNK = 100;

// The lock the triggers of migration 0076 take shared; $1 is the workspace.
const DIGEST_LOCK = `select pg_advisory_xact_lock(hashtext('segment-digests:' || $1::text))`;

// A transaction that gives up rather than wait: on a lock (spec changes, drops), and on a lock or a
// long statement (builds and folds, whose rows writers of those profiles' events wait for).
const WAIT_FOR_LOCKS = `set local lock_timeout = '${BUILD_LOCK_TIMEOUT}'`;
const WAIT_FOR_LOCKS_AND_STATEMENTS = `${WAIT_FOR_LOCKS}; set local statement_timeout = '${BUILD_STATEMENT_TIMEOUT}'`;
// lock_not_available, query_canceled (the time limit) or deadlock_detected.
const GAVE_UP = new Set(['55P03', '57014', '40P01']);

/**
 * `work` in a transaction begun with `limits`; null when a lock, a time limit or a deadlock stopped
 * it. Digests only save work: a caller given null reads `events` directly or tries again later.
 */
async function unlessBlocked<T>(db: Db, limits: string, work: (client: DbClient) => Promise<T>): Promise<T | null> {
  try {
    return await withTransaction(db, async (client) => {
      await client.query(limits);
      return work(client);
    });
  } catch (error) {
    if (GAVE_UP.has((error as { code?: string }).code ?? '')) return null;
    throw error;
  }
}

/**
 * The version of the workspace's digest spec, made `spec` first if it is another one. Changing it
 * takes the workspace's digest lock exclusively: it waits for every transaction whose trigger read
 * the old spec, so from then on every new event is kept by the new one. Null when that wait would
 * be long: a transaction holding the lock shared may itself wait for the caller's segment lock (a
 * merge moves events before it takes it), a cycle across two connections PostgreSQL cannot see.
 */
export async function currentSpecVersion(db: Db, workspaceId: string, spec: DigestSpec): Promise<number | null> {
  const { rows } = await db.query<{ version: number; kinds: string[]; keys: string[] | null }>(
    'select version, kinds, keys from segment_event_digest_specs where workspace_id = $1',
    [workspaceId],
  );
  const stored = rows[0];
  if (stored && sameList(stored.kinds, spec.kinds) && (stored.keys === null ? spec.keys === null : spec.keys !== null && sameList(stored.keys, spec.keys))) {
    return stored.version;
  }
  return unlessBlocked(db, WAIT_FOR_LOCKS, async (client) => {
    await client.query(DIGEST_LOCK, [workspaceId]);
    const { rows: changed } = await client.query<{ version: number }>(
      `insert into segment_event_digest_specs (workspace_id, version, kinds, keys) values ($1, nextval('segment_event_digest_spec_versions'), $2, $3)
       on conflict (workspace_id) do update set version = nextval('segment_event_digest_spec_versions'), kinds = excluded.kinds, keys = excluded.keys
       returning version`,
      [workspaceId, spec.kinds, spec.keys],
    );
    return changed[0]!.version;
  });
}

// Rows per delete statement when a workspace's digests are dropped.
const DROP_CHUNK = 5000;

/**
 * Stops keeping the workspace's digests and deletes them: its spec row first, under the digest lock
 * (from then on the triggers find no spec and write nothing), then its digest and append rows of
 * that spec version or older in chunks, with no lock held (nothing reads them: a spec made again
 * later takes a newer version from the sequence of migration 0099). False when the lock was not
 * free (try again later).
 */
export async function dropWorkspaceDigests(db: Db, workspaceId: string): Promise<boolean> {
  // The spec row's version, null when there was none; null as a whole when the lock was not free.
  const deleted = await unlessBlocked(db, WAIT_FOR_LOCKS, async (client) => {
    await client.query(DIGEST_LOCK, [workspaceId]);
    const { rows } = await client.query<{ version: number }>('delete from segment_event_digest_specs where workspace_id = $1 returning version', [workspaceId]);
    return { version: rows[0]?.version ?? null };
  });
  if (deleted === null) return false;
  const dropped = deleted.version;
  if (dropped === null) return true;
  // Only rows of the dropped spec or older: a spec made again meanwhile has a newer version, and its
  // rows (a digest built, the appends of its new events) must stay.
  for (const table of ['segment_digest_appends', 'segment_event_digests']) {
    for (;;) {
      const { rowCount } = await db.query(
        `delete from ${table} where ctid = any(array(
           select ctid from ${table} where workspace_id = $1 and spec_version <= $2 limit ${DROP_CHUNK}))`,
        [workspaceId, dropped],
      );
      if (!rowCount) break;
    }
  }
  return true;
}

const sameList = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((value, i) => value === b[i]);

/**
 * Pending appends a profile's digest may have before a read folds them into it. Below that the
 * read serves the digest and its appends as they are, in the same statement (one snapshot: an
 * append is either folded, i.e. deleted and in the digest, or pending, never both), so the digest
 * row is rewritten once per DRAIN_FOLD_AT appends instead of at every evaluation: the fold (lock the
 * rows, rewrite each whole digest) was the drain's largest PostgreSQL item per profile with
 * digests on (docs/benchmarks.md, branch rt-pipe). 1: fold whatever is pending.
 */
export const DRAIN_FOLD_AT = 8;

/**
 * The digested events of `profileIds` (sorted), with their pending appends (migration 0078), and
 * building the digests that are missing or stale. Appends are folded into the digest when a
 * profile has `foldAt` of them or more (default 1: always), or one made with another spec version
 * (the digest is then rebuilt); fewer are read as they are. Read on the pool: the caller holds the
 * workspace segment lock, and every change to a profile's events queues it again, as for the other
 * per-profile reads of loadProfileSnapshots.
 */
export async function loadDigestEvents(
  db: Db,
  workspaceId: string,
  profileIds: readonly string[],
  spec: DigestSpec,
  options: { foldAt?: number } = {},
): Promise<DigestEvents> {
  const foldAt = Math.max(1, Math.trunc(options.foldAt ?? 1));
  const version = await currentSpecVersion(db, workspaceId, spec);
  if (version === null) return { events: new Map(), unserved: [...profileIds], built: 0 };
  const { rows } = await db.query<{ profile_id: string; events: StoredEvent[] | null; appended: StoredEvent[][] | null; pending: boolean }>(
    // One primary-key probe per profile (as MEMBERSHIPS_OF_PROFILES, for the same planner reason),
    // and one probe of the appends' index; a digest to fold is read when folded.
    `select d.profile_id, case when p.fold then null else d.events end as events, case when p.fold then null else p.appended end as appended, p.fold as pending
       from unnest($2::uuid[]) as of_profile(id)
       cross join lateral (select profile_id, events from segment_event_digests d
                            where d.workspace_id = $1 and d.profile_id = of_profile.id and d.complete and d.spec_version = $3 offset 0) d
       cross join lateral (select count(*) >= $4 or coalesce(bool_or(a.spec_version <> $3), false) as fold, jsonb_agg(a.entries order by a.seq) as appended
                             from segment_digest_appends a where a.workspace_id = $1 and a.profile_id = of_profile.id) p`,
    [workspaceId, profileIds, version, foldAt],
  );
  const events: DigestEvents['events'] = new Map();
  const serve = (row: { profile_id: string; events: StoredEvent[] }) =>
    events.set(row.profile_id, row.events.map((stored) => toProfileEvent(stored, row.profile_id)));
  const pending: string[] = [];
  for (const row of rows) {
    if (row.pending) pending.push(row.profile_id);
    // In the order a fold would write them: the digest's, then each append's in seq order.
    else serve({ profile_id: row.profile_id, events: row.appended ? row.events!.concat(...row.appended) : row.events! });
  }
  // Profiles whose digest could not be folded now (its row locked by a writer): read from `events`.
  // In chunks, each a short transaction: a fold holds its digest rows locked (invalidations wait).
  const unfolded = new Set<string>();
  for (let start = 0; start < pending.length; start += FOLD_CHUNK) {
    const chunk = pending.slice(start, start + FOLD_CHUNK);
    const fold = await foldAppends(db, workspaceId, chunk, version);
    if (!fold) for (const id of chunk) unfolded.add(id);
    else {
      for (const row of fold.served) serve(row);
      for (const id of fold.skipped) unfolded.add(id);
    }
  }
  const missing = profileIds.filter((id) => !events.has(id) && !unfolded.has(id));
  if (missing.length === 0) return { events, unserved: [...unfolded], built: 0 };
  // In small chunks, each in a transaction of its own: a build holds its digests' rows locked while
  // it reads their events, and invalidations write those rows (measured at 1M profiles after a spec
  // change: 500 profiles a build, read from disk, held ingest requests for seconds).
  let built = 0;
  for (let start = 0; start < missing.length; start += BUILD_CHUNK) {
    const rows = await buildDigests(db, workspaceId, missing.slice(start, start + BUILD_CHUNK), spec, version);
    // Could not be done now (a lock, or the time limit): the rest is read from `events` this time.
    if (!rows) break;
    for (const row of rows) serve(row);
    built += rows.length;
  }
  return { events, unserved: profileIds.filter((id) => !events.has(id)), built };
}

/**
 * Folds the pending appends of `profileIds` (complete digests at `version` when read) into their
 * digests, in a short transaction of its own: each digest row is locked first (the order every
 * writer keeps: digest row, then its appends), then one statement deletes the appends it sees and
 * writes them into the digests, so each append is folded exactly once and one committed later
 * stays pending. A row locked elsewhere (an invalidation in progress) is skipped, not waited for.
 * Digests whose appends were made with another spec version are invalidated (built again by the
 * caller). Null when the transaction could not be done in time.
 */
async function foldAppends(
  db: Db,
  workspaceId: string,
  profileIds: readonly string[],
  version: number,
): Promise<{ served: Array<{ profile_id: string; events: StoredEvent[] }>; skipped: string[] } | null> {
  return unlessBlocked(db, WAIT_FOR_LOCKS_AND_STATEMENTS, async (client) => {
    const { rows: locked } = await client.query<{ profile_id: string }>(
      `select profile_id from segment_event_digests
        where workspace_id = $1 and profile_id = any($2::uuid[]) and complete and spec_version = $3
        order by profile_id for update skip locked`,
      [workspaceId, profileIds, version],
    );
    const ids = locked.map((row) => row.profile_id);
    const lockedIds = new Set(ids);
    // Skipped: locked elsewhere, or invalidated since the read (both: no longer complete here).
    const skipped = profileIds.filter((id) => !lockedIds.has(id));
    const { rows: folded } = await client.query<{ profile_id: string; complete: boolean; events: StoredEvent[] | null }>(
      `with pending as (
         delete from segment_digest_appends a where a.workspace_id = $1 and a.profile_id = any($2::uuid[])
         returning a.profile_id, a.spec_version, a.seq, a.entries),
       grouped as (
         select p.profile_id, bool_and(p.spec_version = $3) as same, jsonb_agg(x.entry order by p.seq, x.n) as entries
           from pending p cross join lateral jsonb_array_elements(p.entries) with ordinality as x(entry, n)
          group by p.profile_id)
       update segment_event_digests d
          set events = case when g.same then d.events || g.entries end, complete = g.same
         from grouped g
        where d.workspace_id = $1 and d.profile_id = g.profile_id
       returning d.profile_id, d.complete, d.events`,
      [workspaceId, ids, version],
    );
    const served: Array<{ profile_id: string; events: StoredEvent[] }> = [];
    const done = new Set<string>();
    for (const row of folded) {
      done.add(row.profile_id);
      if (row.complete) served.push({ profile_id: row.profile_id, events: row.events! });
    }
    // Locked, but their appends were gone by then (nothing else deletes them without the row lock,
    // so only when the read raced the fold of another drain): served as stored.
    const unchanged = ids.filter((id) => !done.has(id));
    if (unchanged.length > 0) {
      const { rows } = await client.query<{ profile_id: string; events: StoredEvent[] }>(
        'select profile_id, events from segment_event_digests where workspace_id = $1 and profile_id = any($2::uuid[])',
        [workspaceId, unchanged],
      );
      served.push(...rows);
    }
    return { served, skipped };
  });
}

/**
 * Builds the digest of every live profile of the workspace in one pass over its events: the bulk
 * form of the per-profile build (one sequential read and a sort instead of a probe per profile and
 * ~1 ms of CPU each), for a workspace whose digests were never built, e.g. after an upgrade or a
 * new real-time segment on a large workspace. It holds the workspace's digest lock exclusively
 * for the whole pass, so every event write that would change a digest waits for it (minutes at a
 * million profiles): run it when a pause of ingestion is acceptable. Returns the digests written.
 */
export async function buildWorkspaceDigests(db: Db, workspaceId: string, spec: DigestSpec): Promise<number> {
  const version = await currentSpecVersion(db, workspaceId, spec);
  if (version === null) throw new Error('the digest spec could not be changed now (its lock is held); try again');
  return withTransaction(db, async (client) => {
    await client.query("set local work_mem = '512MB'");
    await client.query(DIGEST_LOCK, [workspaceId]);
    // Read under the lock: a spec change in between would make this pass's digests stale.
    const { rows: current } = await client.query<{ version: number }>('select version from segment_event_digest_specs where workspace_id = $1', [workspaceId]);
    if (current[0]?.version !== version) throw new Error('the digest spec changed during the build; try again');
    const { rowCount } = await client.query(
      `insert into segment_event_digests as d (workspace_id, profile_id, spec_version, complete, events)
       select $1, p.id, $2, true, coalesce(x.events, '[]'::jsonb)
         from profiles p
         left join (select e.profile_id,
                           jsonb_agg(segment_digest_entry(e.type, e.event, e.name, e.timestamp, e.seq, e.properties, $4::text[]) order by e.seq) as events
                      from events e
                     where e.workspace_id = $1 and e.profile_id is not null and segment_digest_wants($3::text[], e.type, e.event, e.name)
                     group by e.profile_id) x on x.profile_id = p.id
        where p.workspace_id = $1 and p.merged_into is null
       on conflict (workspace_id, profile_id) do update set spec_version = excluded.spec_version, complete = true, events = excluded.events`,
      [workspaceId, version, spec.kinds, spec.keys],
    );
    // Every append of the workspace is of an event the pass read: none can be written meanwhile
    // (the triggers wait for the lock), and the digest rows are locked before their appends.
    await client.query('delete from segment_digest_appends where workspace_id = $1', [workspaceId]);
    return rowCount ?? 0;
  });
}

/** The event as the snapshot loader's rows have it (with its profile), one object shape for all. */
function toProfileEvent(stored: StoredEvent, profileId: string): ProfileEvent & { profile_id: string } {
  const [seq, type, name, timestamp, properties] = stored;
  const track = type === 'track';
  return { profile_id: profileId, seq, type, event: track ? name : null, name: track ? null : name, timestamp, properties, context: null };
}


/**
 * Builds the digests of `profileIds` from `events` in a short transaction of its own: their rows
 * are created (incomplete) and locked first, so every invalidation that wrote them before has
 * committed and is in the read that follows, and every one after waits and then invalidates what
 * was built; new events' appends are kept or deleted by the build's one snapshot.
 * Returns the built digests, or null when a lock could not be had in time.
 */
async function buildDigests(
  db: Db,
  workspaceId: string,
  profileIds: readonly string[],
  spec: DigestSpec,
  version: number,
): Promise<Array<{ profile_id: string; events: StoredEvent[] }> | null> {
  return unlessBlocked(db, WAIT_FOR_LOCKS_AND_STATEMENTS, async (client) => {
    await client.query(
      `insert into segment_event_digests (workspace_id, profile_id, spec_version, complete, events)
       select $1, id, 0, false, null from unnest($2::uuid[]) as p(id) order by id
       on conflict do nothing`,
      [workspaceId, profileIds],
    );
    await client.query(
      `select 1 from segment_event_digests where workspace_id = $1 and profile_id = any($2::uuid[]) order by profile_id for update`,
      [workspaceId, profileIds],
    );
    // A statement of its own, so its snapshot is taken once the locks are held. It deletes the
    // profiles' pending appends it sees, the appends of exactly the events it reads (an event and
    // its append are committed together); one committed later stays pending and is folded later.
    const { rows } = await client.query<{ profile_id: string; events: StoredEvent[] }>(
      `with folded as (delete from segment_digest_appends where workspace_id = $1 and profile_id = any($2::uuid[]))
       update segment_event_digests d set spec_version = $3, complete = true, events = b.events
         from (select p.id, coalesce(x.events, '[]'::jsonb) as events
                 from unnest($2::uuid[]) as p(id)
                 left join (select e.profile_id,
                                   jsonb_agg(segment_digest_entry(e.type, e.event, e.name, e.timestamp, e.seq, e.properties, $5::text[]) order by e.seq) as events
                              from events e
                             where e.workspace_id = $1 and e.profile_id = any(array(select unnest($2::uuid[])))
                               and segment_digest_wants($4::text[], e.type, e.event, e.name)
                             group by e.profile_id) x on x.profile_id = p.id) b
        where d.workspace_id = $1 and d.profile_id = b.id
        returning d.profile_id, d.events`,
      [workspaceId, profileIds, version, spec.kinds, spec.keys],
    );
    return rows;
  });
}

export const isPool = (reader: unknown): reader is Db => reader instanceof pg.Pool;
