/**
 * Identity resolution under concurrency on real PostgreSQL: 1,000 people, each with several
 * identifiers seen on several channels, their events interleaved and stored in many batches while
 * 8 resolvers (separate pools; half of them the worker's loop) drain the queue at the same time.
 * Afterwards the graph must hold the invariants and equal the graph of one resolver processing the
 * same stored events afterwards in a fresh database.
 */
import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startIdentityLoop } from '../src/identity/loop.ts';
import { resolveQueuedEvents } from '../src/identity/resolver.ts';
import { saveWorkspaceIdentity } from '../src/identity/settings-store.ts';
import { normalizeEvent, type NormalizedEvent } from '../src/ingest/normalize.ts';
import { openPii } from '../src/privacy/pii-codec.ts';
import { storeEvents, type SourceRef } from '../src/ingest/store.ts';
import { createPool, type Db } from '../src/storage/database.ts';
import { createSource, createWorkspace } from '../src/workspaces/store.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';

const PEOPLE = 1000;
const RESOLVERS = 8;
const SOURCES = ['web', 'app', 'store', 'crm'] as const;
type SourceName = (typeof SOURCES)[number];
const SOURCE_KIND: Record<SourceName, 'web' | 'app' | 'store' | 'crm_import'> = { web: 'web', app: 'app', store: 'store', crm: 'crm_import' };
const STRATEGIES = { traits: { visits: { kind: 'sum' }, tags: { kind: 'union' } } };
const T0 = Date.parse('2026-01-05T00:00:00Z');

/** Deterministic pseudo-random numbers (mulberry32), so a failure can be reproduced. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let x = Math.imul(state ^ (state >>> 15), 1 | state);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

const phoneOf = (i: number) => `1390000${String(i).padStart(4, '0')}`;
const isMember = (i: number) => i % 2 === 0;
/** Every tenth person also types in a family member's phone number: a merge that must be refused. */
const borrowsPhone = (i: number) => i % 10 === 1;

interface PlannedEvent {
  source: SourceName;
  raw: Record<string, unknown>;
}

/** One person's events in the order they happen: anonymous visits, login, app, store, alias, CRM. */
function personEvents(i: number): PlannedEvent[] {
  const email = `Person${i}@Example.com`;
  const steps: Array<[SourceName, Record<string, unknown>]> = [
    ['web', { type: 'page', anonymousId: `w-${i}`, name: 'Home' }],
    ['app', { type: 'screen', anonymousId: `p-${i}`, name: 'Start', context: { device: { id: `d-${i}` } } }],
    ['web', { type: 'identify', userId: `u-${i}`, anonymousId: `w-${i}`, traits: { email: ` ${email}`, plan: 'v1', visits: 1 } }],
    // The app's anonymous profile joins the user's by email.
    ['app', { type: 'track', event: 'Opened', anonymousId: `p-${i}`, context: { traits: { email: email.toLowerCase() } } }],
    ['store', { type: 'track', event: 'Order Completed', anonymousId: `pos-${i}`, context: { externalIds: [{ id: `+86 ${phoneOf(i)}`, type: 'phone' }] } }],
    // The store's profile joins by phone.
    ['app', { type: 'identify', userId: `u-${i}`, traits: { phone: phoneOf(i), plan: 'v2', visits: 1 } }],
    ['web', { type: 'alias', previousId: `x-${i}`, userId: `u-${i}` }],
  ];
  if (isMember(i)) {
    steps.push(['crm', { type: 'identify', anonymousId: `crm-${i}`, traits: { email, plan: 'v3' }, context: { externalIds: [{ id: `M-${i}`, type: 'member_id' }] } }]);
  }
  if (borrowsPhone(i)) steps.push(['store', { type: 'identify', userId: `u-${i}`, traits: { phone: phoneOf(i - 1) } }]);
  steps.push(['web', { type: 'identify', userId: `u-${i}`, traits: { plan: 'v4', visits: 1, tags: [`t${i % 3}`] } }]);
  return steps.map(([source, raw], step) => ({
    source,
    raw: { ...raw, messageId: crypto.randomUUID(), timestamp: new Date(T0 + step * 3_600_000 + i * 1000).toISOString() },
  }));
}

/**
 * The stores in arrival order: each round takes the next event of a random subset of people (a
 * person at most once per round, so a person's events keep their order however a round is split
 * by source), and stores the round's events one call per source.
 */
function plannedStores(): Array<{ source: SourceName; events: NormalizedEvent[] }> {
  const rand = random(20260105);
  const queues = Array.from({ length: PEOPLE }, (_, i) => personEvents(i));
  const receivedAt = new Date(T0 + 86_400_000);
  const stores: Array<{ source: SourceName; events: NormalizedEvent[] }> = [];
  for (;;) {
    const waiting = queues.map((queue, i) => (queue.length > 0 ? i : -1)).filter((i) => i >= 0);
    if (waiting.length === 0) break;
    const share = 0.15 + rand() * 0.5;
    const round = waiting.filter(() => rand() < share);
    if (round.length === 0) round.push(waiting[Math.floor(rand() * waiting.length)]!);
    for (const source of SOURCES) {
      const events = round
        .filter((i) => queues[i]![0]!.source === source)
        .map((i) => {
          const normalized = normalizeEvent(queues[i]![0]!.raw, { receivedAt, historical: true });
          if (!normalized.ok) throw new Error(`test event refused: ${normalized.rejection.message}`);
          return normalized.event;
        });
      if (events.length > 0) stores.push({ source, events });
    }
    for (const i of round) queues[i]!.shift();
  }
  return stores;
}

interface Setup {
  database: TestDatabase;
  workspaceId: string;
  sources: Record<SourceName, SourceRef>;
}

async function setUp(): Promise<Setup> {
  const database = await createTestDatabase();
  const workspace = await createWorkspace(database.db, { slug: 'acme', name: 'Acme' });
  const sources = {} as Record<SourceName, SourceRef>;
  for (const name of SOURCES) {
    const { source } = await createSource(database.db, workspace.id, { name, kind: SOURCE_KIND[name] });
    sources[name] = { workspaceId: workspace.id, sourceId: source.id };
  }
  await saveWorkspaceIdentity(database.db, workspace.id, { traitStrategies: STRATEGIES });
  return { database, workspaceId: workspace.id, sources };
}

/**
 * Identifiers read from storage as sorted `type:value` strings: PII values are keyed-hash tokens at
 * rest (privacy/pii-codec.ts, per-workspace keys, so two databases' tokens differ), opened through the vault.
 */
async function openIdentifiers(db: Db, ws: string, pairs: Array<[string, string]>): Promise<string[]> {
  return (await openPii(db, ws, pairs)).map(([type, value]) => `${type}:${value}`).sort();
}

/**
 * The identity graph with profile ids replaced by what identifies them (their sorted identifiers),
 * so graphs built in two databases compare.
 */
async function graphOf(db: Db, ws: string) {
  const { rows: profiles } = await db.query<{ id: string; identifiers: Array<[string, string]> }>(
    `select p.id, json_agg(json_build_array(pi.type, pi.value)) as identifiers
       from profiles p join profile_identifiers pi on pi.workspace_id = p.workspace_id and pi.profile_id = p.id and pi.unbound_at is null
      where p.workspace_id = $1 and p.merged_into is null group by p.id`,
    [ws],
  );
  const name = new Map<string, string>();
  for (const profile of profiles) name.set(profile.id, (await openIdentifiers(db, ws, profile.identifiers)).join(' '));
  const { rows: events } = await db.query<{ message_id: string; profile_id: string }>(
    `select e.message_id, coalesce(p.merged_into, p.id) as profile_id
       from events e left join profiles p on p.workspace_id = e.workspace_id and p.id = e.profile_id where e.workspace_id = $1`,
    [ws],
  );
  const eventsByProfile = new Map<string, string[]>();
  for (const event of events) {
    const key = name.get(event.profile_id) ?? `no live profile: ${event.profile_id}`;
    eventsByProfile.set(key, [...(eventsByProfile.get(key) ?? []), event.message_id]);
  }
  const traits = await openPii(
    db,
    ws,
    (await db.query<{ profile_id: string; key: string; value: unknown }>('select profile_id, key, value from profile_traits where workspace_id = $1', [ws])).rows,
  );
  const refusals = (
    await openPii(
      db,
      ws,
      (
        await db.query<{ message_id: string; identifier_type: string; identifier_value: string; reason: string }>(
          'select message_id, identifier_type, identifier_value, reason from identity_refusals where workspace_id = $1',
          [ws],
        )
      ).rows,
    )
  ).map((row) => ({ refusal: `${row.message_id} ${row.identifier_type}:${row.identifier_value} ${row.reason}` }));
  const { rows: merges } = await db.query<{ kind: string; n: number }>(
    'select kind, count(*)::int as n from identity_merges where workspace_id = $1 group by kind order by kind',
    [ws],
  );
  return {
    profiles: [...name.values()].sort(),
    events: [...eventsByProfile].map(([profile, ids]) => `${profile} => ${ids.sort().join(',')}`).sort(),
    traits: traits.map((trait) => `${name.get(trait.profile_id) ?? trait.profile_id} ${trait.key}=${JSON.stringify(trait.value)}`).sort(),
    refusals: refusals.map((row) => row.refusal).sort(),
    merges,
  };
}

describe('identity resolution with 8 concurrent resolvers', () => {
  const stores = plannedStores();
  const eventCount = stores.reduce((sum, store) => sum + store.events.length, 0);
  let concurrent: Setup;
  let sequential: Setup;
  const errors: unknown[] = [];

  beforeAll(async () => {
    [concurrent, sequential] = await Promise.all([setUp(), setUp()]);
    const { workspaceId: ws, database } = concurrent;

    let storing = true;
    const pools = Array.from({ length: RESOLVERS }, () => createPool(database.url, 2));
    // Half the resolvers are the worker's loop, half plain drain loops with other batch sizes, so
    // batches of different sizes start at arbitrary points of the queue.
    const loops = pools.slice(0, RESOLVERS / 2).map((db, i) => startIdentityLoop({ db, pollMs: 5, batchSize: 50 + 150 * i, onError: (e) => errors.push(e) }));
    const drains = pools.slice(RESOLVERS / 2).map(async (db, i) => {
      for (;;) {
        try {
          const taken = await resolveQueuedEvents(db, ws, 7 + 40 * i);
          if (taken === 0 && !storing) return;
          if (taken === 0) await new Promise((resolve) => setTimeout(resolve, 2));
        } catch (error) {
          errors.push(error);
          return;
        }
      }
    });
    try {
      for (const store of stores) await storeEvents(database.db, concurrent.sources[store.source], store.events);
    } finally {
      storing = false;
    }
    await Promise.all(drains);
    for (;;) {
      const { rows } = await database.db.query('select coalesce(sum(events), 0)::int as n from identity_queue');
      if (rows[0].n === 0 || errors.length > 0) break;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    await Promise.all(loops.map((loop) => loop.stop()));
    await Promise.all(pools.map((pool) => pool.end()));

    for (const store of stores) await storeEvents(sequential.database.db, sequential.sources[store.source], store.events);
    while ((await resolveQueuedEvents(sequential.database.db, sequential.workspaceId, 1000)) > 0);
  }, 120_000);

  afterAll(async () => {
    await Promise.all([concurrent?.database.drop(), sequential?.database.drop()]);
  });

  it('runs without a resolver failing and leaves nothing queued', async () => {
    expect(errors).toEqual([]);
    expect(eventCount).toBe(Array.from({ length: PEOPLE }, (_, i) => personEvents(i).length).reduce((a, b) => a + b, 0));
    const { rows } = await concurrent.database.db.query(
      'select (select count(*)::int from events) as events, (select coalesce(sum(events), 0)::int from identity_queue) as queued',
    );
    expect(rows[0]).toEqual({ events: eventCount, queued: 0 });
  });

  it('never gives an identifier two live owners, and puts every event on a live profile', async () => {
    const db = concurrent.database.db;
    const ws = concurrent.workspaceId;
    const { rows: shared } = await db.query(
      `select type, value from profile_identifiers where workspace_id = $1 and unbound_at is null group by type, value having count(*) > 1`,
      [ws],
    );
    expect(shared).toEqual([]);
    const { rows: counts } = await db.query(
      `select
         (select count(*)::int from profile_identifiers pi join profiles p on p.workspace_id = pi.workspace_id and p.id = pi.profile_id
           where pi.workspace_id = $1 and pi.unbound_at is null and p.merged_into is not null) as identifiers_on_absorbed,
         (select count(*)::int from events e where e.workspace_id = $1 and e.profile_id is null) as events_without_profile,
         (select count(*)::int from events e join profiles p on p.workspace_id = e.workspace_id and p.id = e.profile_id
           where e.workspace_id = $1 and p.merged_into is not null) as events_on_absorbed,
         (select count(*)::int from events e where e.workspace_id = $1
           and not exists (select 1 from profiles p where p.workspace_id = e.workspace_id and p.id = e.profile_id)) as events_on_missing,
         (select count(*)::int from profiles a join profiles b on b.workspace_id = a.workspace_id and b.id = a.merged_into
           where a.workspace_id = $1 and b.merged_into is not null) as absorbed_into_absorbed,
         (select count(*)::int from profile_traits t join profiles p on p.workspace_id = t.workspace_id and p.id = t.profile_id
           where t.workspace_id = $1 and p.merged_into is not null) as traits_on_absorbed`,
      [ws],
    );
    expect(counts[0]).toEqual({
      identifiers_on_absorbed: 0,
      events_without_profile: 0,
      events_on_absorbed: 0,
      events_on_missing: 0,
      absorbed_into_absorbed: 0,
      traits_on_absorbed: 0,
    });
  });

  it('ends with the same graph (identifiers, events, traits, refusals, merges) as one resolver afterwards', async () => {
    const [actual, expected] = await Promise.all([
      graphOf(concurrent.database.db, concurrent.workspaceId),
      graphOf(sequential.database.db, sequential.workspaceId),
    ]);
    expect(actual.profiles).toHaveLength(expected.profiles.length);
    expect(actual.profiles).toEqual(expected.profiles);
    expect(actual.events).toEqual(expected.events);
    expect(actual.traits).toEqual(expected.traits);
    expect(actual.refusals).toEqual(expected.refusals);
    expect(actual.merges).toEqual(expected.merges);
  });

  it("gives each person whose identifiers nobody else uses one profile with all of them and all their events", async () => {
    const db = concurrent.database.db;
    const ws = concurrent.workspaceId;
    const { rows } = await db.query<{ user_id: string; identifiers: Array<[string, string]> | string[]; events: number }>(
      `with identifiers as (
         select profile_id, json_agg(json_build_array(type, value)) as identifiers
           from profile_identifiers where workspace_id = $1 and unbound_at is null group by profile_id
       ), events as (
         select profile_id, count(*)::int as events from events where workspace_id = $1 group by profile_id
       )
       select u.value as user_id, i.identifiers, coalesce(e.events, 0) as events
         from profile_identifiers u join identifiers i using (profile_id) left join events e using (profile_id)
        where u.workspace_id = $1 and u.type = 'user_id' and u.unbound_at is null`,
      [ws],
    );
    expect(rows).toHaveLength(PEOPLE);
    // PII identifiers are keyed-hash tokens at rest: opened through the vault before comparing.
    for (const row of rows) row.identifiers = await openIdentifiers(db, ws, row.identifiers as Array<[string, string]>);
    let checked = 0;
    for (const row of rows) {
      const i = Number(row.user_id.slice(2));
      if (borrowsPhone(i) || borrowsPhone(i + 1)) continue;
      const expected = [
        `anonymous_id:p-${i}`,
        `anonymous_id:pos-${i}`,
        `anonymous_id:w-${i}`,
        `anonymous_id:x-${i}`,
        ...(isMember(i) ? [`anonymous_id:crm-${i}`, `member_id:M-${i}`] : []),
        `device_id:d-${i}`,
        `email:person${i}@example.com`,
        `phone:+86${phoneOf(i)}`,
        `user_id:u-${i}`,
      ].sort();
      expect(row.identifiers, row.user_id).toEqual(expected);
      expect(row.events, row.user_id).toBe(personEvents(i).length);
      checked++;
    }
    expect(checked).toBe(PEOPLE * 0.8);
  });

  it("applies each person's events in order: every plan change is in the history, in sequence, and visits add up", async () => {
    const db = concurrent.database.db;
    const ws = concurrent.workspaceId;
    const { rows } = await db.query<{ user_id: string; plans: Array<[string | null, string]>; visits: number }>(
      `select u.value as user_id,
         (select json_agg(json_build_array(h.previous_value, h.value) order by h.id) from profile_trait_history h
           where h.workspace_id = $1 and h.profile_id = u.profile_id and h.key = 'plan') as plans,
         (select t.value from profile_traits t where t.workspace_id = $1 and t.profile_id = u.profile_id and t.key = 'visits') as visits
         from profile_identifiers u where u.workspace_id = $1 and u.type = 'user_id' and u.unbound_at is null`,
      [ws],
    );
    expect(rows).toHaveLength(PEOPLE);
    for (const row of rows) {
      const i = Number(row.user_id.slice(2));
      const plans = isMember(i) ? ['v1', 'v2', 'v3', 'v4'] : ['v1', 'v2', 'v4'];
      expect(row.plans, row.user_id).toEqual(plans.map((plan, k) => [k === 0 ? null : plans[k - 1], plan]));
      expect(row.visits, row.user_id).toBe(3);
    }
  });

  it('refuses every borrowed phone that would join two user ids, whichever arrived first', async () => {
    const { rows } = await concurrent.database.db.query<{ n: number }>(
      `select count(*)::int as n from identity_refusals where workspace_id = $1 and identifier_type = 'phone' and reason = 'conflicting_value'`,
      [concurrent.workspaceId],
    );
    expect(rows[0]!.n).toBe(PEOPLE / 10);
  });
});
