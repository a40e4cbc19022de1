import crypto from 'node:crypto';
import type { Db, DbClient } from '../storage/database.ts';
import { withTransaction } from '../storage/database.ts';
import { plainArray, textArray } from '../storage/pg-array.ts';
import { enqueueSegmentEvaluation, prepareMergeTransitions, segmentsAfterMerges } from '../segments/queue.ts';
import { lockWorkspaceSegments } from '../segments/lock.ts';
import { TAKE_QUEUED_EVENTS } from './queue-take.ts';
import { splitKey, startBatch, type BatchResult, type KnownProfile, type QueuedEvent } from './batch.ts';
import { consentObservations, moveConsents, writeConsents } from './consents.ts';
import { extractIdentifiers, identifierKey } from './extract.ts';
import type { Identifier } from './resolve.ts';
import { loadWorkspaceIdentity } from './settings-store.ts';
import { dropSuppressedEvents } from '../privacy/suppression.ts';
import { piiCodec, tokenizeForResolution, withPiiCodec, writeVault } from '../privacy/pii-codec.ts';
import { COMPUTED_TRAIT_SOURCE_KIND, type TraitSet, type TraitSource } from './traits.ts';

/**
 * The lock every change of a workspace's identity graph takes (resolution batches, unmerge,
 * unbind): one writer per workspace at a time keeps per-person order and the one-owner invariant
 * without row-level choreography; workspaces resolve in parallel.
 */
export async function lockWorkspaceIdentity(client: DbClient, workspaceId: string): Promise<void> {
  await client.query(`select pg_advisory_xact_lock(hashtext('identity:' || $1::text))`, [workspaceId]);
}

/** Workspaces with events waiting for resolution. */
export async function workspacesWithQueuedEvents(db: Db, limit = 100): Promise<string[]> {
  // A loose index scan: one primary-key probe per workspace, however many events are queued
  // (a plain `select distinct` reads the whole queue, ~70 ms at 900,000 queued events).
  const { rows } = await db.query<{ workspace_id: string }>(
    `with recursive queued as (
       (select workspace_id from identity_queue order by workspace_id limit 1)
       union all
       select (select q.workspace_id from identity_queue q where q.workspace_id > queued.workspace_id order by q.workspace_id limit 1)
         from queued where queued.workspace_id is not null
     )
     select workspace_id from queued where workspace_id is not null limit $1`,
    [limit],
  );
  return rows.map((row) => row.workspace_id);
}

/**
 * How far an identifier's stored last-seen time may trail its latest event: within a minute, the
 * link is not rewritten (profile_identifiers.last_seen is for explaining the graph, not for
 * ordering anything).
 */
export const LAST_SEEN_RESOLUTION_MS = 60_000;

/** Events resolved in memory between two turns of the event loop. */
const YIELD_EVERY = 500;

/**
 * Resolves up to `batchSize` queued events of a workspace, oldest first, in one transaction.
 * Returns how many were taken off the queue (0 when none were waiting).
 */
export async function resolveQueuedEvents(db: Db, workspaceId: string, batchSize = 1000): Promise<number> {
  await prepareMergeTransitions(db);
  return withTransaction(db, async (client) => {
    await lockWorkspaceIdentity(client, workspaceId);
    // The oldest queued events in seq order (identity/queue-take.ts says how a batch is cut).
    const { rows: queued } = await client.query<{ seq: number; timestamp: string; now: number }>({
      name: 'touchpoint_identity_take_queued',
      text: TAKE_QUEUED_EVENTS,
      values: [workspaceId, batchSize],
    });
    if (queued.length === 0) return 0;
    const loaded = await loadEvents(client, workspaceId, queued);
    const storedProfiles = loaded.storedProfiles;
    const identity = await loadWorkspaceIdentity(client, workspaceId);
    // Personal data is stored encrypted (privacy/pii-codec.ts): sealed event fields are opened,
    // and PII identifiers and traits resolve as the keyed-hash tokens they are stored as.
    const codec = await piiCodec(db, workspaceId);
    // People erased on request stay erased: their events queued meanwhile are dropped, not resolved.
    const { kept } = await dropSuppressedEvents(db, client, workspaceId, loaded.events.map((event) => codec.openEvent(event)), identity.config);
    const events = kept.map((event) => tokenizeForResolution(codec, event));
    const config = withPiiCodec(identity.config, codec);

    // Each event's identifiers are extracted once: here, to know which profiles to load, and
    // handed to the batch with the event.
    const keys = new Map<string, Identifier>();
    const extractions = events.map((event) => extractIdentifiers(event, config));
    for (const extraction of extractions) {
      for (const identifier of extraction.identifiers) {
        const key = identifierKey(identifier);
        if (!keys.has(key)) keys.set(key, { type: identifier.type, value: identifier.value });
      }
    }
    const { profiles, links } = await loadOwnerGraph(client, workspaceId, [...keys.values()]);
    const splits = await loadSplits(client, workspaceId, profiles.map((profile) => profile.id));
    const sources = await loadSources(client, workspaceId);
    const batch = startBatch({
      config,
      strategies: identity.strategies,
      profiles,
      splits,
      sources,
      now: new Date(queued[0]!.now),
      newProfileId: () => crypto.randomUUID(),
    });
    // The worker shares the process with the HTTP server: a large batch is resolved in chunks,
    // letting requests through in between (5,000 events are ~75 ms of CPU in one piece).
    for (let i = 0; i < events.length; i++) {
      batch.add(events[i]!, extractions[i]);
      if (i % YIELD_EVERY === YIELD_EVERY - 1) await new Promise((resolve) => setImmediate(resolve));
    }
    const result = batch.finish();
    // Ingest already wrote the profile owning the event's user or anonymous id when there was one
    // (ingest/store.ts): only events that resolved elsewhere are rewritten.
    const moved = result.assignments.filter((a) => storedProfiles.get(a.seq) !== a.profileId);
    // The events' own update, the batch's largest statement, runs on another connection while this
    // one writes the rest (assignEventProfiles says why that is safe); it commits first.
    const assigning = moved.length > 0 ? assignEventProfiles(db, workspaceId, moved) : Promise.resolve();
    try {
      await writeBatch(client, workspaceId, result, links, moved.map((a) => a.seq));
      await writeVault(client, codec);
      await writeConsents(client, workspaceId, consentObservations(events, new Map(result.assignments.map((a) => [a.seq, a.profileId]))));
    } finally {
      // Settled before this transaction ends either way (no write of this batch left running).
      await assigning.catch(() => undefined);
    }
    await assigning;
    return queued.length;
    // Derived from stored events, dequeued in the same transaction: a lost commit is redone.
  }, { durability: 'local' });
}

/**
 * A time as a query parameter. Dates in array parameters are formatted by the driver in local time
 * with a hand-built offset, element by element (several µs per event over a batch's arrays);
 * the ISO string is the same instant, made natively.
 */
const iso = (at: Date): string => at.toISOString();

/** The event columns identity reads, as `e.*` names, and their row shape. */
export const IDENTITY_EVENT_COLUMNS =
  'e.seq, e.message_id, e.timestamp, e.source_id, e.type, e.user_id, e.anonymous_id, e.previous_id, e.traits, e.context';

export interface IdentityEventRow {
  seq: number;
  message_id: string;
  timestamp: Date;
  source_id: string;
  type: QueuedEvent['type'];
  user_id: string | null;
  anonymous_id: string | null;
  previous_id: string | null;
  traits: Record<string, unknown> | null;
  context: Record<string, unknown> | null;
}

export function toQueuedEvent(row: Omit<IdentityEventRow, 'timestamp'>, timestamp: Date): QueuedEvent {
  return {
    seq: row.seq,
    messageId: row.message_id,
    timestamp,
    sourceId: row.source_id,
    type: row.type,
    userId: row.user_id,
    anonymousId: row.anonymous_id,
    previousId: row.previous_id,
    traits: row.traits,
    context: row.context,
  };
}

/** The queued events, and the profile each is stored on (ingest writes a known person's; else null). */
async function loadEvents(
  client: DbClient,
  workspaceId: string,
  queued: Array<{ seq: number; timestamp: string }>,
): Promise<{ events: QueuedEvent[]; storedProfiles: Map<number, string | null> }> {
  const { rows } = await client.query<Omit<IdentityEventRow, 'timestamp'> & { at: number; profile_id: string | null }>(
    // seq is unique across all events, so the two lists select exactly the queued events; as
    // index conditions rather than a join they stay one probe per event whatever the estimates.
    // The time as epoch milliseconds (a Date holds no finer): a number to read, not a date string
    // to parse per event.
    `select e.seq, e.message_id, floor(extract(epoch from e.timestamp) * 1000)::float8 as at, e.source_id, e.type, e.user_id,
            e.anonymous_id, e.previous_id, e.traits, e.context, e.profile_id
       from events e
      where e.workspace_id = $1 and e.timestamp = any($2::timestamptz[]) and e.seq = any($3::bigint[])
      order by e.seq`,
    [workspaceId, plainArray(queued.map((q) => q.timestamp)), plainArray(queued.map((q) => q.seq))],
  );
  return {
    events: rows.map((row) => toQueuedEvent(row, new Date(row.at))),
    storedProfiles: new Map(rows.map((row) => [row.seq, row.profile_id])),
  };
}

export async function loadOwnerProfiles(client: DbClient, workspaceId: string, identifiers: Identifier[]): Promise<KnownProfile[]> {
  return (await loadOwnerGraph(client, workspaceId, identifiers)).profiles;
}

/** A live link of a loaded profile: its row id and when it was last seen (ms). */
export interface KnownLink {
  id: number;
  lastSeen: number;
}

/**
 * The live profiles owning any of `identifiers`, with all their live identifiers and traits, and
 * each of those identifiers' link (by identifierKey), so last-seen times can be moved on by row
 * id, and only where they move.
 */
export async function loadOwnerGraph(
  client: DbClient,
  workspaceId: string,
  identifiers: Identifier[],
): Promise<{ profiles: KnownProfile[]; links: Map<string, KnownLink> }> {
  const links = new Map<string, KnownLink>();
  if (identifiers.length === 0) return { profiles: [], links };
  const { rows } = await client.query<{
    id: string;
    created_at: Date;
    identifiers: Array<Identifier & { id: number; lastSeen: string }>;
    traits: TraitSet | null;
  }>(
    // One index probe per identifier (a live identifier has at most one owner): as a plain join the
    // planner may hash the workspace's whole graph, which grows with every batch.
    `with owners as (
       select distinct o.profile_id
         from unnest($2::text[], $3::text[]) as k(type, value)
         cross join lateral (
           select pi.profile_id from profile_identifiers pi
            where pi.workspace_id = $1 and pi.type = k.type and pi.value = k.value and pi.unbound_at is null limit 1) o)
     select p.id, p.created_at,
       -- Ended links are filtered in the aggregate, not the WHERE: there the live (type, value) index
       -- would match too, and without statistics (a fresh table) the planner took it and read all of
       -- the workspace's identifiers for every profile.
       (select coalesce(json_agg(json_build_object('type', i.type, 'value', i.value, 'id', i.id, 'lastSeen', i.last_seen) order by i.id)
                 filter (where i.unbound_at is null), '[]')
          from profile_identifiers i where i.workspace_id = $1 and i.profile_id = p.id) as identifiers,
       (select json_object_agg(t.key, json_build_object('value', t.value, 'source', json_build_object('kind', t.source_kind, 'name', t.source_name),
                 'eventId', t.message_id, 'at', t.observed_at))
          from profile_traits t where t.workspace_id = $1 and t.profile_id = p.id) as traits
       from owners o join profiles p on p.workspace_id = $1 and p.id = o.profile_id`,
    [workspaceId, textArray(identifiers.map((i) => i.type)), textArray(identifiers.map((i) => i.value))],
  );
  const profiles = rows.map((row) => ({
    id: row.id,
    createdAt: row.created_at,
    identifiers: row.identifiers.map((link) => {
      const identifier = { type: link.type, value: link.value };
      links.set(identifierKey(identifier), { id: link.id, lastSeen: Date.parse(link.lastSeen) });
      return identifier;
    }),
    traits: Object.fromEntries(
      Object.entries(row.traits ?? {}).map(([key, trait]) => [key, { ...trait, at: new Date(trait.at as unknown as string) }]),
    ),
  }));
  return { profiles, links };
}

export async function loadSplits(client: DbClient, workspaceId: string, profileIds: string[]): Promise<Set<string>> {
  if (profileIds.length === 0) return new Set();
  const { rows } = await client.query<{ profile_a: string; profile_b: string }>(
    `select profile_a, profile_b from identity_splits where workspace_id = $1 and (profile_a = any($2::uuid[]) or profile_b = any($2::uuid[]))`,
    [workspaceId, plainArray(profileIds)],
  );
  return new Set(rows.map((row) => splitKey(row.profile_a, row.profile_b)));
}

async function loadSources(client: DbClient, workspaceId: string): Promise<Map<string, TraitSource>> {
  const { rows } = await client.query<{ id: string; kind: string; name: string }>(
    'select id, kind, name from sources where workspace_id = $1',
    [workspaceId],
  );
  return new Map(rows.map((row) => [row.id, { kind: row.kind, name: row.name }]));
}

/**
 * Longest any wait of assignEventProfiles's transaction may last. It waits for nothing in normal
 * operation; the one wait possible is behind a segment-digest spec change (its event triggers take
 * the digest lock shared, the change exclusively, after the batch's merges took it shared): the
 * batch, waiting for it in Node, would never let the change through. The timeout fails the batch,
 * which rolls back and is taken again.
 */
const ASSIGN_LOCK_TIMEOUT = '5s';

/**
 * Writes the batch's events' final profiles, in a transaction of its own on another connection,
 * while the batch's transaction writes the rest; the batch commits only after it. Safe because:
 * the batch holds the workspace's identity lock until then, and every other writer of
 * events.profile_id takes it, so nobody else changes these rows meanwhile; the batch's own
 * statements leave these rows to it (writeMerges `skipSeqs`), so neither transaction waits for a
 * row of the other; nothing references profiles from events, so an event may name a profile
 * before its row commits. If the batch then fails, its events are queued again, and the next
 * batch writes their profiles over these (until then, they name profiles that do not exist).
 */
async function assignEventProfiles(db: Db, ws: string, moved: BatchResult['assignments']): Promise<void> {
  await withTransaction(db, async (client) => {
    await client.query(`set local lock_timeout = '${ASSIGN_LOCK_TIMEOUT}'`);
    await client.query(
      `update events e set profile_id = a.profile_id
         from unnest($2::timestamptz[], $3::bigint[], $4::uuid[]) as a(timestamp, seq, profile_id)
        where e.workspace_id = $1 and e.timestamp = any($2::timestamptz[]) and e.timestamp = a.timestamp and e.seq = a.seq
          and e.profile_id is distinct from a.profile_id`,
      [ws, plainArray(moved.map((a) => iso(a.timestamp))), plainArray(moved.map((a) => a.seq)), plainArray(moved.map((a) => a.profileId))],
    );
  }, { durability: 'local' });
}

/**
 * Writes a batch's result. Statements that join an array of keys to a table also state the keys as
 * `= any(array)`: that is an index condition whatever the planner estimates. Without it, a table
 * or partition without statistics for the workspace (fresh, or this month's new partition) is
 * estimated at one row and hash-joined whole, so each batch read all of the workspace's rows.
 */
async function writeBatch(
  client: DbClient,
  ws: string,
  result: BatchResult,
  knownLinks: ReadonlyMap<string, KnownLink>,
  assignedSeqs: readonly number[],
): Promise<void> {
  // First, before any row the segment drain also writes: a merge ends memberships under the
  // segment lock (lock order: identity, then segments), and queueing waits for a running drain.
  if (result.merges.length > 0) await lockWorkspaceSegments(client, ws);
  await enqueueSegmentEvaluation(client, ws, [...result.assignments.map((a) => a.profileId), ...result.traits.keys()]);

  // A new profile is inserted with its first and last seen over the batch already, and left out of
  // the activity update below (least/greatest in any order give the same times; one row version).
  const created = new Set<string>();
  if (result.newProfiles.length > 0) {
    const span = (p: { id: string; firstSeen: Date }) => {
      created.add(p.id);
      const activity = result.activity.get(p.id);
      if (!activity) return { first: p.firstSeen, last: p.firstSeen };
      return {
        first: activity.first < p.firstSeen ? activity.first : p.firstSeen,
        last: activity.last > p.firstSeen ? activity.last : p.firstSeen,
      };
    };
    const spans = result.newProfiles.map(span);
    await client.query(
      `insert into profiles (workspace_id, id, created_at, first_seen, last_seen)
       select $1, * from unnest($2::uuid[], $3::timestamptz[], $4::timestamptz[], $5::timestamptz[]) as n(id, created_at, first_seen, last_seen)`,
      [
        ws,
        plainArray(result.newProfiles.map((p) => p.id)),
        plainArray(result.newProfiles.map((p) => iso(p.createdAt))),
        plainArray(spans.map((s) => iso(s.first))),
        plainArray(spans.map((s) => iso(s.last))),
      ],
    );
  }

  // The survivors are among the assignments' (final) profiles queued above. The batch's own events
  // are assignEventProfiles's (to their final profiles already).
  await writeMerges(client, ws, result.merges, { survivorsQueued: true, skipSeqs: assignedSeqs });

  if (result.links.length > 0) {
    const links = result.links;
    await client.query(
      `insert into profile_identifiers (workspace_id, profile_id, type, value, source_id, first_seen, last_seen,
         linked_by_message_id, linked_by_seq, linked_via)
       select $1, * from unnest($2::uuid[], $3::text[], $4::text[], $5::uuid[], $6::timestamptz[], $7::timestamptz[],
         $8::text[], $9::bigint[], $10::text[])`,
      [
        ws,
        plainArray(links.map((l) => l.profileId)),
        textArray(links.map((l) => l.type)),
        textArray(links.map((l) => l.value)),
        plainArray(links.map((l) => l.sourceId)),
        plainArray(links.map((l) => iso(l.firstSeen))),
        plainArray(links.map((l) => iso(l.lastSeen))),
        textArray(links.map((l) => l.messageId)),
        plainArray(links.map((l) => l.seq)),
        textArray(links.map((l) => l.via)),
      ],
    );
  }

  // Known links seen again: moved on by row id where the batch saw them a minute or more after
  // the stored time (a session's events would otherwise rewrite each of its links on every batch).
  const seen = [...result.seen].flatMap(([key, { at }]) => {
    const link = knownLinks.get(key);
    return link && at.getTime() >= link.lastSeen + LAST_SEEN_RESOLUTION_MS ? [{ id: link.id, at }] : [];
  });
  if (seen.length > 0) {
    // One primary-key probe per link, then the update by row address: as `id = any(…)` the
    // planner, estimating the workspace at 0.5 % of the table, read all of its identifiers through
    // the (workspace, profile) index instead. Every writer of links holds the identity lock.
    await client.query(
      `update profile_identifiers pi set last_seen = greatest(pi.last_seen, s.at)
         from (select found.ctid, k.at from unnest($2::bigint[], $3::timestamptz[]) as k(id, at)
                cross join lateral (select ctid from profile_identifiers x where x.workspace_id = $1 and x.id = k.id offset 0) found) s
        where pi.ctid = s.ctid`,
      [ws, plainArray(seen.map((s) => s.id)), plainArray(seen.map((s) => iso(s.at)))],
    );
  }

  const touched = [...result.activity.keys()].filter((id) => !created.has(id));
  if (touched.length > 0) {
    const ids = touched;
    await client.query(
      `update profiles p set first_seen = least(coalesce(p.first_seen, a.first), a.first),
         last_seen = greatest(coalesce(p.last_seen, a.last), a.last), updated_at = now()
         from unnest($2::uuid[], $3::timestamptz[], $4::timestamptz[]) as a(id, first, last)
        where p.workspace_id = $1 and p.id = any($2::uuid[]) and p.id = a.id`,
      [ws, plainArray(ids), plainArray(ids.map((id) => iso(result.activity.get(id)!.first))), plainArray(ids.map((id) => iso(result.activity.get(id)!.last)))],
    );
  }

  await writeTraits(client, ws, result.traits, result.traitChanges);

  if (result.refusals.length > 0) {
    const r = result.refusals;
    await client.query(
      `insert into identity_refusals (workspace_id, profile_id, message_id, seq, identifier_type, identifier_value, reason, message)
       select $1, * from unnest($2::uuid[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::text[])`,
      [ws, plainArray(r.map((x) => x.profileId)), textArray(r.map((x) => x.messageId)), plainArray(r.map((x) => x.seq)),
        textArray(r.map((x) => x.identifier.type)), textArray(r.map((x) => x.identifier.value)), textArray(r.map((x) => x.reason)),
        textArray(r.map((x) => x.message))],
    );
  }

  if (result.ignored.length > 0) {
    const counts = new Map<string, { type: string; reason: string; count: number }>();
    for (const ignored of result.ignored) {
      const key = `${ignored.type}\u0000${ignored.reason}`;
      const entry = counts.get(key) ?? { type: ignored.type, reason: ignored.reason, count: 0 };
      entry.count++;
      counts.set(key, entry);
    }
    const rows = [...counts.values()].sort((a, b) => (a.type + a.reason < b.type + b.reason ? -1 : 1));
    await client.query(
      `insert into identity_ignored_counts (workspace_id, identifier_type, reason, count, last_seen)
       select $1, type, reason, count, now() from unnest($2::text[], $3::text[], $4::bigint[]) as c(type, reason, count)
       on conflict (workspace_id, identifier_type, reason)
       do update set count = identity_ignored_counts.count + excluded.count, last_seen = excluded.last_seen`,
      [ws, rows.map((r) => r.type), rows.map((r) => r.reason), rows.map((r) => r.count)],
    );
  }
}

/**
 * Writes the traits that changed (`traitChanges`, with their final values from `traitsByProfile`)
 * and appends the value changes to their history. The profiles' stored trait rows must be the ones
 * their traits were loaded from (the caller holds the identity lock): a trait no change names is
 * left as it is stored, not rewritten. Traits are only ever added or changed by resolution and
 * merges, never removed (an absorbed profile's rows are deleted by writeMerges).
 */
export async function writeTraits(
  client: DbClient,
  ws: string,
  traitsByProfile: ReadonlyMap<string, TraitSet>,
  traitChanges: BatchResult['traitChanges'],
): Promise<void> {
  const written = new Set<string>();
  const rows: Array<{ profileId: string; key: string; trait: TraitSet[string] }> = [];
  for (const { profileId, change } of traitChanges) {
    const trait = traitsByProfile.get(profileId)?.[change.trait];
    // Computed values are the computed-trait refresh's to write (it may run concurrently).
    if (!trait || trait.source.kind === COMPUTED_TRAIT_SOURCE_KIND) continue;
    const id = `${profileId}\u0000${change.trait}`;
    if (written.has(id)) continue;
    written.add(id);
    rows.push({ profileId, key: change.trait, trait });
  }
  if (rows.length > 0) {
    rows.sort((a, b) => (a.profileId < b.profileId ? -1 : a.profileId > b.profileId ? 1 : a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    // One written by the computed-trait refresh since this batch read the profile wins over an
    // event's value; a row already holding this value and provenance is not rewritten.
    await client.query(
      `insert into profile_traits as t (workspace_id, profile_id, key, value, source_kind, source_name, message_id, observed_at)
       select $1, * from unnest($2::uuid[], $3::text[], $4::jsonb[], $5::text[], $6::text[], $7::text[], $8::timestamptz[])
       on conflict (workspace_id, profile_id, key) do update
         set value = excluded.value, source_kind = excluded.source_kind, source_name = excluded.source_name,
             message_id = excluded.message_id, observed_at = excluded.observed_at, updated_at = now()
       where t.source_kind <> '${COMPUTED_TRAIT_SOURCE_KIND}'
         and (t.value, t.source_kind, t.source_name, t.message_id, t.observed_at)
             is distinct from (excluded.value, excluded.source_kind, excluded.source_name, excluded.message_id, excluded.observed_at)`,
      [ws, plainArray(rows.map((r) => r.profileId)), textArray(rows.map((r) => r.key)), textArray(rows.map((r) => JSON.stringify(r.trait.value))),
        textArray(rows.map((r) => r.trait.source.kind)), textArray(rows.map((r) => r.trait.source.name)), textArray(rows.map((r) => r.trait.eventId)),
        plainArray(rows.map((r) => iso(r.trait.at)))],
    );
  }
  const changes = traitChanges.filter((c) => c.change.valueChanged);
  if (changes.length > 0) {
    await client.query(
      `insert into profile_trait_history (workspace_id, profile_id, key, previous_value, value, source_kind, source_name, message_id, observed_at, reason)
       select $1, * from unnest($2::uuid[], $3::text[], $4::jsonb[], $5::jsonb[], $6::text[], $7::text[], $8::text[], $9::timestamptz[], $10::text[])`,
      [ws, plainArray(changes.map((c) => c.profileId)), textArray(changes.map((c) => c.change.trait)),
        textArray(changes.map((c) => (c.change.previous ? JSON.stringify(c.change.previous.value) : null))),
        textArray(changes.map((c) => JSON.stringify(c.change.next.value))), textArray(changes.map((c) => c.change.next.source.kind)),
        textArray(changes.map((c) => c.change.next.source.name)), textArray(changes.map((c) => c.change.next.eventId)),
        plainArray(changes.map((c) => iso(c.change.next.at))), textArray(changes.map((c) => c.reason))],
    );
  }
}

export interface MergeRecord {
  survivorId: string;
  absorbed: Array<{ profileId: string; identifiers: Identifier[] }>;
  kind: 'event' | 'alias' | 'match' | 'manual';
  messageId?: string | null;
  seq?: number | null;
  cause?: Identifier | null;
  score?: number | null;
}

/**
 * Moves everything of the absorbed profiles to the survivor (identifiers, events, trait history,
 * consents, activity span, later-absorbed ids), ends the absorbed profiles' segment memberships,
 * queues the survivor for segment evaluation and logs the merge. Traits are the caller's: the batch
 * resolver has merged them in memory.
 */
export async function writeMerge(client: DbClient, ws: string, merge: MergeRecord): Promise<string> {
  const [id] = await writeMerges(client, ws, [merge]);
  return id!;
}

/**
 * `writeMerge` for a whole batch's merges, in a fixed number of statements however many there
 * are (one round trip per merge and table was most of a batch's time). Merges are in the order
 * they happened: a later one may absorb an earlier one's survivor, so everything moves straight
 * to the final survivor while the log keeps each merge as it was. Returns the log rows' ids.
 * `survivorsQueued`: the caller has queued the final survivors for segment evaluation in this
 * transaction already (a resolution batch queues every profile its events landed on).
 */
export async function writeMerges(
  client: DbClient,
  ws: string,
  merges: readonly MergeRecord[],
  options: { survivorsQueued?: boolean; skipSeqs?: readonly number[] } = {},
): Promise<string[]> {
  if (merges.length === 0) return [];
  const into = new Map<string, string>();
  for (const merge of merges) for (const absorbed of merge.absorbed) into.set(absorbed.profileId, merge.survivorId);
  const finalOf = (id: string): string => {
    let current = id;
    while (into.has(current)) current = into.get(current)!;
    return current;
  };
  const absorbedIds = [...into.keys()];
  const survivorIds = absorbedIds.map(finalOf);
  const pairs = [ws, plainArray(absorbedIds), plainArray(survivorIds)];
  const moves = `unnest($2::uuid[], $3::uuid[]) as m(absorbed, survivor)`;
  // First (it takes the segment lock before any trait row changes: lock.ts), and before the events
  // move, so the absorbed profiles' `Segment Exited` events join the survivor's timeline with the
  // rest of their history.
  await segmentsAfterMerges(client, ws, absorbedIds, survivorIds, new Date(), options);
  await moveConsents(client, ws, absorbedIds, survivorIds);

  // Ids absorbed earlier keep resolving in one hop: re-point them before their survivor is absorbed.
  await client.query(
    `update profiles p set merged_into = m.survivor, merged_at = now(), updated_at = now()
       from ${moves} where p.workspace_id = $1 and p.merged_into = any($2::uuid[]) and p.merged_into = m.absorbed`,
    pairs,
  );
  // The survivor is the one view of the person now: its activity span and the history of its
  // traits include the absorbed profiles', as its identifiers and events do.
  await client.query(
    `update profiles s set first_seen = least(s.first_seen, a.first_seen), last_seen = greatest(s.last_seen, a.last_seen), updated_at = now()
       from (select m.survivor, min(p.first_seen) as first_seen, max(p.last_seen) as last_seen
               from ${moves} join profiles p on p.workspace_id = $1 and p.id = any($2::uuid[]) and p.id = m.absorbed group by m.survivor) a
      where s.workspace_id = $1 and s.id = any($3::uuid[]) and s.id = a.survivor`,
    pairs,
  );
  await client.query(
    `update profiles p set merged_into = m.survivor, merged_at = now(), updated_at = now()
       from ${moves} where p.workspace_id = $1 and p.id = any($2::uuid[]) and p.id = m.absorbed`,
    pairs,
  );
  // Ended links move too, like the events they explain. (Filtering them out here would let the
  // planner pick the live (type, value) index, whose `unbound_at is null` it rates at 0.5% of rows
  // before a table is first analysed, and read every identifier of the workspace.)
  await client.query(
    `update profile_identifiers pi set profile_id = m.survivor
       from ${moves} where pi.workspace_id = $1 and pi.profile_id = any($2::uuid[]) and pi.profile_id = m.absorbed`,
    pairs,
  );
  if (options.skipSeqs && options.skipSeqs.length > 0) {
    // `not in` a sub-select: one hashed lookup per row, not a scan of the array.
    await client.query(
      `update events e set profile_id = m.survivor
         from ${moves} where e.workspace_id = $1 and e.profile_id = any($2::uuid[]) and e.profile_id = m.absorbed
          and e.seq not in (select unnest($4::bigint[]))`,
      [...pairs, plainArray(options.skipSeqs)],
    );
  } else {
    await client.query(
      `update events e set profile_id = m.survivor
         from ${moves} where e.workspace_id = $1 and e.profile_id = any($2::uuid[]) and e.profile_id = m.absorbed`,
      pairs,
    );
  }
  await client.query(
    `update profile_trait_history h set profile_id = m.survivor
       from ${moves} where h.workspace_id = $1 and h.profile_id = any($2::uuid[]) and h.profile_id = m.absorbed`,
    pairs,
  );
  await client.query(`delete from profile_traits where workspace_id = $1 and profile_id = any($2::uuid[])`, [ws, pairs[1]]);

  const { rows } = await client.query<{ id: string }>(
    `insert into identity_merges (workspace_id, kind, survivor_id, absorbed_ids, details, cause_message_id, cause_seq,
       cause_identifier_type, cause_identifier_value, score)
     select $1, x.kind, x.survivor_id, array(select jsonb_array_elements_text(x.absorbed_ids)::uuid), x.details, x.cause_message_id,
            x.cause_seq, x.cause_identifier_type, x.cause_identifier_value, x.score
       from jsonb_to_recordset($2::jsonb) as x(kind text, survivor_id uuid, absorbed_ids jsonb, details jsonb,
              cause_message_id text, cause_seq bigint, cause_identifier_type text, cause_identifier_value text, score double precision, position int)
      order by x.position
     returning id`,
    [
      ws,
      JSON.stringify(
        merges.map((merge, position) => ({
          position,
          kind: merge.kind,
          survivor_id: merge.survivorId,
          absorbed_ids: merge.absorbed.map((a) => a.profileId),
          details: { absorbed: merge.absorbed },
          cause_message_id: merge.messageId ?? null,
          cause_seq: merge.seq ?? null,
          cause_identifier_type: merge.cause?.type ?? null,
          cause_identifier_value: merge.cause?.value ?? null,
          score: merge.score ?? null,
        })),
      ),
    ],
  );
  return rows.map((row) => row.id);
}
