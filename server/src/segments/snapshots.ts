import pg from 'pg';
import { parseInstant } from '../ingest/normalize.ts';
import type { Queryable } from '../storage/database.ts';
import { DRAIN_FOLD_AT, isPool, loadDigestEvents, type DigestSpec } from './digests.ts';
import type { StepClock } from './drain-metrics.ts';
import { durationMs, type Condition, type EventMatch, type Measure, type Window } from './ast.ts';
import type { ProfileEvent, ProfileSnapshot } from './snapshot.ts';

/*
 * Loads profile snapshots (snapshot.ts) for a batch of profiles in a fixed number of queries, with
 * only what the conditions being evaluated can read: their events by type and name, from the
 * earliest moment any of their windows reaches back to.
 */

/** An event-reading condition's match and window (an event condition, or a sequence's two steps). */
export interface EventReference {
  match: EventMatch;
  window?: Window;
  /** Whether a filter or measure reads the event's context. */
  readsContext: boolean;
  /** Whether a filter or measure reads the event's properties; absent: assume it does. */
  readsProperties?: boolean;
  /** The top-level property keys its filters and measure read; absent: any may be read. */
  propertyKeys?: string[];
}

/** What a set of conditions reads of a profile. */
export interface ConditionReads {
  events: EventReference[];
  traits: boolean;
  identifiers: boolean;
  consents: boolean;
  /** Keys of the segments read by in_segment. */
  segments: Set<string>;
}

export function emptyReads(): ConditionReads {
  return { events: [], traits: false, identifiers: false, consents: false, segments: new Set() };
}

/** Adds what `condition` reads to `into`. */
export function conditionReads(condition: Condition, into: ConditionReads = emptyReads()): ConditionReads {
  switch (condition.kind) {
    case 'and':
    case 'or':
      for (const child of condition.conditions) conditionReads(child, into);
      break;
    case 'not':
      conditionReads(condition.condition, into);
      break;
    case 'trait':
      into.traits = true;
      break;
    case 'identifier':
      into.identifiers = true;
      break;
    case 'consent':
      into.consents = true;
      break;
    case 'segment':
      into.segments.add(condition.segment);
      break;
    case 'bucket':
      break;
    case 'event':
      into.events.push({
        match: condition.match,
        window: condition.window,
        readsContext: matchReadsContext(condition.match) || measureReadsContext(condition.measure),
        readsProperties: matchReadsProperties(condition.match) || measureReadsProperties(condition.measure),
        propertyKeys: propertyKeys([...condition.match.filters.map((filter) => filter.property), ...('property' in condition.measure ? [condition.measure.property] : [])]),
      });
      break;
    case 'sequence':
      // `then` events follow a `first` event inside the window, so the window bounds both.
      for (const match of [condition.first, condition.then]) {
        into.events.push({
          match,
          window: condition.window,
          readsContext: matchReadsContext(match),
          readsProperties: matchReadsProperties(match),
          propertyKeys: propertyKeys(match.filters.map((filter) => filter.property)),
        });
      }
      break;
  }
  return into;
}

const readsContextPath = (path: string) => path === 'context' || path.startsWith('context.');
/** The top-level keys of `properties` that property paths read (context paths read none). */
const propertyKeys = (paths: readonly string[]) => [...new Set(paths.filter((path) => !readsContextPath(path)).map((path) => path.split('.')[0]!))];
const matchReadsContext = (match: EventMatch) => match.filters.some((filter) => readsContextPath(filter.property));
const measureReadsContext = (measure: Measure) => 'property' in measure && readsContextPath(measure.property);
const matchReadsProperties = (match: EventMatch) => match.filters.some((filter) => !readsContextPath(filter.property));
const measureReadsProperties = (measure: Measure) => 'property' in measure && !readsContextPath(measure.property);

/**
 * Which events of one type to load, each from the earliest moment a window reading it reaches back
 * to (null: the whole history): every event of the type (`all`), or those with one of `names`;
 * and whether their properties are read.
 */
export interface EventSelection {
  all: EventWant | null;
  names: Map<string, EventWant>;
}

export interface EventWant {
  since: number | null;
  properties: boolean;
}

export interface SnapshotNeeds {
  traits: boolean;
  identifiers: boolean;
  consents: boolean;
  /** Segment id → key of every segment whose memberships to load; null: none. */
  memberships: ReadonlyMap<string, string> | null;
  events: { track: EventSelection; page: EventSelection; screen: EventSelection };
  context: boolean;
}

/**
 * What to load for `reads` at `now` (memberships are the caller's to ask for: it knows the
 * segments' ids). Events of a name are bounded in time only when every reference to them has a
 * window with a start: one unbounded reference needs their whole history.
 */
export function snapshotNeeds(reads: ConditionReads, now: number): SnapshotNeeds {
  const selection = (): EventSelection => ({ all: null, names: new Map() });
  const events = { track: selection(), page: selection(), screen: selection() };
  const widest = (a: EventWant | null | undefined, since: number | null, properties: boolean): EventWant =>
    a
      ? { since: a.since === null || since === null ? null : Math.min(a.since, since), properties: a.properties || properties }
      : { since, properties };
  for (const reference of reads.events) {
    const target = events[reference.match.type];
    const start = windowStart(reference.window, now);
    const properties = reference.readsProperties ?? true;
    if (reference.match.name === undefined) target.all = widest(target.all, start, properties);
    else target.names.set(reference.match.name, widest(target.names.get(reference.match.name), start, properties));
  }
  return {
    traits: reads.traits,
    identifiers: reads.identifiers,
    consents: reads.consents,
    memberships: null,
    events,
    context: reads.events.some((reference) => reference.readsContext),
  };
}

/** The earliest event time a window admits at `now` (ms), or null when it reaches back forever. */
function windowStart(window: Window | undefined, now: number): number | null {
  if (!window) return null;
  if (window.kind === 'last') return now - durationMs(window.duration);
  return window.from === undefined ? null : parseInstant(window.from);
}

export function needsEvents(needs: SnapshotNeeds): boolean {
  const { track, page, screen } = needs.events;
  return [track, page, screen].some((selection) => selection.all !== null || selection.names.size > 0);
}

/**
 * Runs the reads at once on a pool (each on a connection of its own), one after another on a single
 * connection: a client runs one query at a time, and pg's queueing of concurrent ones is deprecated.
 */
async function readTogether<T extends readonly (() => Promise<unknown>)[]>(reader: Queryable, reads: T): Promise<{ -readonly [K in keyof T]: Awaited<ReturnType<T[K]>> }> {
  type Results = { -readonly [K in keyof T]: Awaited<ReturnType<T[K]>> };
  if (reader instanceof pg.Pool) return (await Promise.all(reads.map((read) => read()))) as Results;
  const results: unknown[] = [];
  for (const read of reads) results.push(await read());
  return results as Results;
}

/**
 * Snapshots of the given profiles that are live (merged-away and unknown ids are left out), in a
 * fixed number of queries whatever the batch size. Parts `needs` leaves out are empty.
 *
 * `reader` (the pool), when given, runs the reads of the profiles' own data (liveness, traits,
 * identifiers, consents, events) at the same time on connections of their own, while `client`
 * reads the memberships. That is for a caller holding the workspace segment lock whose
 * profiles' data changes re-queue them anyway: a read outside its transaction is then as good as
 * one inside (merges take the same lock, so liveness cannot change under it).
 */
export async function loadProfileSnapshots(
  client: Queryable,
  workspaceId: string,
  profileIds: readonly string[],
  needs: SnapshotNeeds,
  reader: Queryable = client,
  options: { digests?: DigestSpec | null } = {},
): Promise<ProfileSnapshot[]> {
  if (profileIds.length === 0) return [];
  // Sorted: each index walks the profiles in key order.
  const ids = [...profileIds].sort();
  const params = [workspaceId, ids];
  const none = Promise.resolve({ rows: [] });
  const [live, traits, identifiers, consents, memberships, events] = await readTogether(reader, [
    () => reader.query<{ id: string }>('select id from profiles where workspace_id = $1 and id = any($2::uuid[]) and merged_into is null', params),
    () => needs.traits
      ? reader.query<{ profile_id: string; key: string; value: unknown }>(
          'select profile_id, key, value from profile_traits where workspace_id = $1 and profile_id = any($2::uuid[])',
          params,
        )
      : none,
    () => needs.identifiers
      ? reader.query<{ profile_id: string; type: string; live: boolean }>(
          // Ended links are filtered here rather than in the WHERE, where `unbound_at is null` can make
          // the planner read the workspace's whole live (type, value) index (see loadOwnerProfiles).
          'select profile_id, type, unbound_at is null as live from profile_identifiers where workspace_id = $1 and profile_id = any($2::uuid[])',
          params,
        )
      : none,
    () => needs.consents
      ? reader.query<{ profile_id: string; category: string; granted: boolean }>(
          'select profile_id, category, granted from profile_consents where workspace_id = $1 and profile_id = any($2::uuid[])',
          params,
        )
      : none,
    () => needs.memberships
      ? client.query<{ profile_id: string; segment_id: string }>(
          // Keys from the caller's map: joined to segments here, the planner looped over every segment.
          `select m.profile_id, m.segment_id from ${MEMBERSHIPS_OF_PROFILES}`,
          params,
        )
      : none,
    () => needsEvents(needs) ? readEvents(reader, workspaceId, ids, needs, options.digests ?? null) : Promise.resolve([] as EventRow[]),
  ] as const);

  const byId = new Map(
    live.rows.map(({ id }) => [
      id,
      {
        profileId: id,
        traits: {} as Record<string, unknown>,
        identifierTypes: new Set<string>(),
        consents: new Map<string, boolean>(),
        memberships: new Set<string>(),
        events: [] as ProfileEvent[],
      },
    ]),
  );
  for (const row of traits.rows) {
    const snapshot = byId.get(row.profile_id);
    if (snapshot) snapshot.traits[row.key] = row.value;
  }
  for (const row of identifiers.rows) if (row.live) byId.get(row.profile_id)?.identifierTypes.add(row.type);
  for (const row of consents.rows) byId.get(row.profile_id)?.consents.set(row.category, row.granted);
  for (const row of memberships.rows) {
    const key = needs.memberships?.get(row.segment_id);
    if (key !== undefined) byId.get(row.profile_id)?.memberships.add(key);
  }
  for (const event of events) byId.get(event.profile_id)?.events.push(event);
  return [...byId.values()];
}

/** A profile's stored re-check, as the drain reads it with the profile's data. */
export interface StoredRecheck {
  profileId: string;
  /** Epoch milliseconds. */
  dueAt: number;
  failedAttempts: number;
}

/**
 * The real-time drain's read of a batch (segments/realtime.ts): the snapshots of the live profiles
 * and the stored re-checks of all of them (live or not). Everything but the events comes from one
 * statement on `client` (the drain's transaction, under its segment lock): per profile one probe of
 * each table, and one result row, with traits and consents as JSON objects and memberships as a
 * list, instead of one statement per table on connections of the pool and a row per trait,
 * consent and membership (that was 6 statements per batch spread over up to 6 backends, and most
 * of the drain's garbage). The events are read on `reader` (the pool) meanwhile, as for
 * loadProfileSnapshots.
 */
export async function loadDrainSnapshots(
  client: Queryable,
  workspaceId: string,
  profileIds: readonly string[],
  needs: SnapshotNeeds,
  reader: Queryable,
  options: { digests?: DigestSpec | null; clock?: StepClock } = {},
): Promise<{ snapshots: ProfileSnapshot[]; rechecks: StoredRecheck[] }> {
  if (profileIds.length === 0) return { snapshots: [], rechecks: [] };
  const ids = [...profileIds].sort();
  const params = [workspaceId, ids];
  // Each a correlated sub-select: one index probe per profile; skipped (null) when nothing reads it.
  const traits = needs.traits
    ? '(select jsonb_object_agg(t.key, t.value) from profile_traits t where t.workspace_id = $1 and t.profile_id = p.id)'
    : 'null::jsonb';
  // Ended links filtered in the aggregate, not the WHERE (see loadProfileSnapshots).
  const identifiers = needs.identifiers
    ? '(select string_agg(i.type, chr(31)) filter (where i.unbound_at is null) from profile_identifiers i where i.workspace_id = $1 and i.profile_id = p.id)'
    : 'null::text';
  const consents = needs.consents
    ? '(select jsonb_object_agg(c.category, c.granted) from profile_consents c where c.workspace_id = $1 and c.profile_id = p.id)'
    : 'null::jsonb';
  const memberships = needs.memberships
    ? '(select string_agg(m.segment_id::text, \',\') from segment_memberships m where m.workspace_id = $1 and m.profile_id = p.id)'
    : 'null::text';
  const read = () =>
    client.query<{
      id: string;
      live: boolean;
      traits: Record<string, unknown> | null;
      identifiers: string | null;
      consents: Record<string, boolean> | null;
      memberships: string | null;
      due_at: number | null;
      failed_attempts: number | null;
    }>(
      `select of_profile.id, p.id is not null as live,
              case when p.id is not null then ${traits} end as traits,
              case when p.id is not null then ${identifiers} end as identifiers,
              case when p.id is not null then ${consents} end as consents,
              case when p.id is not null then ${memberships} end as memberships,
              floor(extract(epoch from r.due_at) * 1000)::float8 as due_at, r.failed_attempts
         from unnest($2::uuid[]) as of_profile(id)
         left join lateral (select p.id from profiles p where p.workspace_id = $1 and p.id = of_profile.id and p.merged_into is null offset 0) p on true
         left join lateral (select r.due_at, r.failed_attempts from segment_rechecks r where r.workspace_id = $1 and r.profile_id = of_profile.id offset 0) r on true`,
      params,
    );
  // Each read's own time (they overlap): the batch's steps show which one the drain waited for.
  const timed = async <T>(step: string, run: () => Promise<T>): Promise<T> => {
    const started = performance.now();
    const result = await run();
    options.clock?.add(step, performance.now() - started);
    return result;
  };
  const [{ rows }, events] = await readTogether(reader, [
    () => timed('read.profiles', read),
    () => timed('read.events', () => (needsEvents(needs) ? readEvents(reader, workspaceId, ids, needs, options.digests ?? null) : Promise.resolve([] as EventRow[]))),
  ] as const);
  const byId = new Map<string, { profileId: string; traits: Record<string, unknown>; identifierTypes: Set<string>; consents: Map<string, boolean>; memberships: Set<string>; events: ProfileEvent[] }>();
  const rechecks: StoredRecheck[] = [];
  for (const row of rows) {
    if (row.due_at !== null) rechecks.push({ profileId: row.id, dueAt: row.due_at, failedAttempts: row.failed_attempts ?? 0 });
    if (!row.live) continue;
    const keys = new Set<string>();
    if (row.memberships && needs.memberships) {
      for (const segmentId of row.memberships.split(',')) {
        const key = needs.memberships.get(segmentId);
        if (key !== undefined) keys.add(key);
      }
    }
    byId.set(row.id, {
      profileId: row.id,
      traits: row.traits ?? {},
      identifierTypes: new Set(row.identifiers ? row.identifiers.split('\u001f') : []),
      consents: new Map(row.consents ? Object.entries(row.consents) : []),
      memberships: keys,
      events: [],
    });
  }
  for (const event of events) byId.get(event.profile_id)?.events.push(event);
  return { snapshots: [...byId.values()], rechecks };
}

/**
 * `segment_memberships m` rows of the profiles in `$2` (workspace `$1`), as a FROM item: one probe
 * of `segment_memberships_profile` per profile. As `profile_id = any($2)` the planner, with no
 * statistics on workspace_id, read the primary key (workspace, segment, profile), which has no
 * leading column for the profile, and so walked the workspace's whole membership index on every
 * batch (101 ms instead of 6.4 ms for 500 profiles among 690,000 memberships).
 */
export const MEMBERSHIPS_OF_PROFILES = `unnest($2::uuid[]) as of_profile(id)
  cross join lateral (select * from segment_memberships m where m.workspace_id = $1 and m.profile_id = of_profile.id offset 0) m`;

/**
 * The profiles' events: from their digests (digests.ts) when the caller names a spec and reads on
 * the pool, from `events` otherwise and for the profiles whose digest could not be built now.
 */
async function readEvents(reader: Queryable, workspaceId: string, ids: string[], needs: SnapshotNeeds, spec: DigestSpec | null): Promise<EventRow[]> {
  if (!spec || needs.context || !isPool(reader)) return loadEvents(reader, workspaceId, ids, needs);
  // Only the real-time drain reads digests: a few pending appends are served as they are.
  const digested = await loadDigestEvents(reader, workspaceId, ids, spec, { foldAt: DRAIN_FOLD_AT });
  const rows: EventRow[] = [];
  for (const events of digested.events.values()) for (const event of events) rows.push(event);
  if (digested.unserved.length > 0) rows.push(...(await loadEvents(reader, workspaceId, digested.unserved, needs)));
  return rows;
}

const nameColumn = (type: string) => (type === 'track' ? 'e.event' : 'e.name');

/** A row is the snapshot's event as it comes (one object per event: a batch reads tens of thousands). */
interface EventRow extends ProfileEvent {
  profile_id: string;
}

async function loadEvents(db: Queryable, workspaceId: string, ids: string[], needs: SnapshotNeeds): Promise<EventRow[]> {
  const params: unknown[] = [workspaceId, ids];
  const param = (value: unknown) => {
    params.push(value);
    return `$${params.length}`;
  };
  const from = (since: number | null) => (since === null ? '' : ` and e.timestamp >= ${param(new Date(since))}`);
  const kinds: string[] = [];
  // Events whose properties some condition reads (type, names or null for every one of the type);
  // the others' are not sent.
  const withProperties: Array<[string, string[] | null]> = [];
  let allProperties = true;
  let earliest: number | null | undefined;
  const widen = (since: number | null) => {
    earliest = earliest === undefined || earliest === null || since === null ? null : Math.min(earliest, since);
  };
  for (const type of ['track', 'page', 'screen'] as const) {
    const selection = needs.events[type];
    const every = selection.all;
    if (every) {
      kinds.push(`(e.type = '${type}'${from(every.since)})`);
      widen(every.since);
      if (every.properties) withProperties.push([type, null]);
      else allProperties = false;
    }
    // One condition per distinct start, naming its events (those an every-event window of the
    // type does not already reach back to).
    const bySince = new Map<number | null, string[]>();
    const propertyNames: string[] = [];
    for (const [name, want] of selection.names) {
      if (want.properties && !every?.properties) propertyNames.push(name);
      if (!want.properties) allProperties = false;
      if (every && (every.since === null || (want.since !== null && want.since >= every.since))) continue;
      bySince.set(want.since, [...(bySince.get(want.since) ?? []), name]);
    }
    for (const [since, names] of bySince) {
      kinds.push(`(e.type = '${type}' and ${nameColumn(type)} = any(${param(names)}::text[])${from(since)})`);
      widen(since);
    }
    if (propertyNames.length > 0) withProperties.push([type, propertyNames]);
  }
  const properties = allProperties
    ? 'e.properties'
    : withProperties.length === 0
      ? 'null::jsonb'
      : `case when ${withProperties
          .map(([type, names]) => (names ? `(e.type = '${type}' and ${nameColumn(type)} = any(${param(names)}::text[]))` : `e.type = '${type}'`))
          .join(' or ')} then e.properties end`;
  // profile_id = any(array) walks events_profile_timeline (workspace_id, profile_id, timestamp desc)
  // once per profile and partition; the earliest start of all also prunes partitions. The ids come
  // through a sub-select so the planner does not estimate each of them against each partition's
  // statistics: 18–23 ms of planning per batch of 500 profiles over 14 monthly partitions, 1 ms so.
  // The plan is the same index scan per partition.
  const { rows } = await db.query<EventRow>(
    // The time as epoch milliseconds (what a Date would hold), so no Date is parsed per event.
    `select e.profile_id, e.seq, e.type, e.event, e.name, floor(extract(epoch from e.timestamp) * 1000)::float8 as timestamp,
            ${properties} as properties, ${needs.context ? 'e.context' : 'null::jsonb'} as context
       from events e
      where e.workspace_id = $1 and e.profile_id = any(array(select unnest($2::uuid[])))${from(earliest ?? null)} and (${kinds.join(' or ')})`,
    params,
  );
  return rows;
}
