/**
 * The batch's events get their final profiles on a second connection (identity/resolver.ts
 * assignEventProfiles), in a transaction of its own that commits before the batch's; the batch's
 * merges leave its own events to that update (writeMerges `skipSeqs`). These tests hold the result to
 * resolving the same events in other batch cuts, check that a merge still moves the absorbed
 * profile's other events, and that a batch failing after the update committed is resolved again
 * with the same result.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveQueuedEvents } from '../src/identity/resolver.ts';
import { saveWorkspaceIdentity } from '../src/identity/settings-store.ts';
import { normalizeEvent, type NormalizedEvent } from '../src/ingest/normalize.ts';
import { storeEvents, type SourceRef } from '../src/ingest/store.ts';
import { openPii } from '../src/privacy/pii-codec.ts';
import { createSource, createWorkspace } from '../src/workspaces/store.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';
import { numberedEvent } from './support/events.ts';

const T0 = Date.parse('2026-01-05T00:00:00Z');

/** Person i's events: web visit, app open, login with email, store purchase by phone (merges), app identify. */
function personEvents(i: number): Array<Record<string, unknown>> {
  const email = `Person${i}@Example.com`;
  const phone = `+86 139${String(i).padStart(8, '0')}`;
  return [
    { type: 'page', anonymousId: `w-${i}`, name: 'Home' },
    { type: 'screen', anonymousId: `p-${i}`, name: 'Start' },
    { type: 'identify', userId: `u-${i}`, anonymousId: `w-${i}`, traits: { email, plan: 'free', visits: 1 } },
    { type: 'track', event: 'Order Completed', anonymousId: `pos-${i}`, context: { externalIds: [{ id: phone, type: 'phone' }] } },
    { type: 'identify', userId: `u-${i}`, anonymousId: `p-${i}`, traits: { phone, plan: 'gold', visits: 1 } },
    { type: 'track', event: 'Seen', anonymousId: `pos-${i}`, userId: `u-${i}` },
  ];
}

/** People's events interleaved (round robin), each person's in order. */
function interleaved(people: number[], tag: string): NormalizedEvent[] {
  const queues = people.map((i) => personEvents(i));
  const out: NormalizedEvent[] = [];
  for (let step = 0; queues.some((q) => q.length > 0); step++) {
    for (const q of queues) {
      const raw = q.shift();
      if (!raw) continue;
      out.push(numberedEvent(raw, tag, out.length, T0));
    }
  }
  return out;
}

describe("identity resolution: the batch's events updated on a second connection", () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase();
  });
  afterAll(async () => t.drop());

  async function workspace(slug: string): Promise<SourceRef> {
    const ws = await createWorkspace(t.db, { slug, name: slug });
    const { source } = await createSource(t.db, ws.id, { name: 'Web', kind: 'web' });
    await saveWorkspaceIdentity(t.db, ws.id, { traitStrategies: { traits: { visits: { kind: 'sum' } } } });
    return { workspaceId: ws.id, sourceId: source.id };
  }

  async function store(ref: SourceRef, events: NormalizedEvent[], requestSize: number) {
    for (let i = 0; i < events.length; i += requestSize) await storeEvents(t.db, ref, events.slice(i, i + requestSize));
  }

  async function drain(ws: string, batch: number): Promise<number> {
    let batches = 0;
    while ((await resolveQueuedEvents(t.db, ws, batch)) > 0) batches++;
    return batches;
  }

  /** The graph with profiles named by their opened identifiers, so two workspaces' graphs compare. */
  async function graphOf(ws: string) {
    const { rows: profiles } = await t.db.query<{ id: string; identifiers: Array<[string, string]> }>(
      `select p.id, json_agg(json_build_array(pi.type, pi.value)) as identifiers
         from profiles p join profile_identifiers pi on pi.workspace_id = p.workspace_id and pi.profile_id = p.id and pi.unbound_at is null
        where p.workspace_id = $1 and p.merged_into is null group by p.id`,
      [ws],
    );
    const name = new Map<string, string>();
    for (const profile of profiles) {
      name.set(profile.id, (await openPii(t.db, ws, profile.identifiers)).map(([type, value]) => `${type}:${value}`).sort().join(' '));
    }
    const { rows: events } = await t.db.query<{ message_id: string; profile_id: string | null }>(
      'select message_id, profile_id from events where workspace_id = $1 order by message_id',
      [ws],
    );
    const traits = await openPii(
      t.db,
      ws,
      (await t.db.query<{ profile_id: string; key: string; value: unknown }>('select profile_id, key, value from profile_traits where workspace_id = $1', [ws])).rows,
    );
    const counts = (
      await t.db.query<{ merges: number; history: number; vault: number; links: number }>(
        `select (select count(*)::int from identity_merges where workspace_id = $1) as merges,
                (select count(*)::int from profile_trait_history where workspace_id = $1) as history,
                (select count(*)::int from pii_vault where workspace_id = $1) as vault,
                (select count(*)::int from profile_identifiers where workspace_id = $1) as links`,
        [ws],
      )
    ).rows[0]!;
    return {
      profiles: [...name.values()].sort(),
      // Events by message id without the workspace's tag, on the profile named by its identifiers.
      events: events.map((e) => `${e.message_id.replace(/^[a-z]+-/, '')} => ${e.profile_id ? (name.get(e.profile_id) ?? 'not live') : 'none'}`),
      traits: traits.map((trait) => `${name.get(trait.profile_id) ?? 'not live'} ${trait.key}=${JSON.stringify(trait.value)}`).sort(),
      counts,
    };
  }

  it('ends with the same graph, traits and vault in batches of 7 as event by event', async () => {
    const people = Array.from({ length: 30 }, (_, i) => i);
    const [single, batched] = [await workspace('single'), await workspace('batched')];
    // Requests of 4 events, batches of 7: batches cut through requests (rows put back) at every turn.
    await store(single, interleaved(people, 'single'), 4);
    await store(batched, interleaved(people, 'batched'), 4);
    expect(await drain(single.workspaceId, 1)).toBe(people.length * 6);
    expect(await drain(batched.workspaceId, 7)).toBe(Math.ceil((people.length * 6) / 7));
    const [a, b] = [await graphOf(single.workspaceId), await graphOf(batched.workspaceId)];
    expect(b).toEqual(a);
    expect(b.profiles).toHaveLength(people.length);
    expect(b.events.every((e) => !e.endsWith('none') && !e.endsWith('not live'))).toBe(true);
    expect(b.counts.vault).toBeGreaterThan(0);
  });

  it.each([2, 4])('moves events ingest stored on a profile the batch absorbs (batches of %i)', async (batchSize) => {
    const ref = await workspace(`moved-${batchSize}`);
    // Two known profiles of one person: u-300 and p-300.
    await store(ref, interleaved([300], 'moved').slice(0, 3), 3);
    await drain(ref.workspaceId, 10);
    // A merge of p-300 into the user's profile, and events of p-300 that ingest stored on the p-300
    // profile while it was live: in batches of 2 a later batch's (the merge moves them), in batches
    // of 4 the merging batch's own (the update on the second connection moves them).
    const more = [
      { type: 'identify', userId: 'u-300', anonymousId: 'p-300', traits: { plan: 'gold' } },
      { type: 'track', event: 'A', anonymousId: 'x-300' },
      { type: 'track', event: 'B', anonymousId: 'p-300' },
      { type: 'track', event: 'C', anonymousId: 'p-300' },
    ].map((raw, k) => {
      const normalized = normalizeEvent(
        { ...raw, messageId: `moved-more-${k}`, timestamp: new Date(T0 + 3_600_000 + k * 1000).toISOString() },
        { receivedAt: new Date(T0 + 86_400_000), historical: true },
      );
      if (!normalized.ok) throw new Error(normalized.rejection.message);
      return normalized.event;
    });
    await store(ref, more, 4);
    const { rows: before } = await t.db.query<{ message_id: string; profile_id: string | null }>(
      `select message_id, profile_id from events where workspace_id = $1 and message_id like 'moved-more-%' order by message_id`,
      [ref.workspaceId],
    );
    const pProfile = before.find((row) => row.message_id === 'moved-more-2')!.profile_id;
    expect(pProfile).not.toBeNull();
    await drain(ref.workspaceId, batchSize);
    const { rows } = await t.db.query<{ message_id: string; profile_id: string; merged_into: string | null }>(
      `select e.message_id, e.profile_id, p.merged_into from events e join profiles p on p.workspace_id = e.workspace_id and p.id = e.profile_id
        where e.workspace_id = $1 order by e.message_id`,
      [ref.workspaceId],
    );
    // Every event on a live profile; p-300's and u-300's are one person now.
    expect(rows.every((row) => row.merged_into === null)).toBe(true);
    const owner = (id: string) => rows.find((row) => row.message_id === id)!.profile_id;
    expect(owner('moved-more-2')).toBe(owner('moved-more-0'));
    expect(owner('moved-more-3')).toBe(owner('moved-more-0'));
    expect(owner('moved-more-2')).not.toBe(owner('moved-more-1'));
  });

  it('a batch that fails after its events got their profiles is taken again and puts them right', async () => {
    const [plain, failing] = [await workspace('plain-2'), await workspace('failing')];
    const people = [400, 401, 402, 403];
    await store(plain, interleaved(people, 'plain'), 5);
    await store(failing, interleaved(people, 'failing'), 5);
    await drain(plain.workspaceId, 6);
    // The batch's merge log insert fails (after the events' update on the other connection has
    // committed): the whole batch rolls back.
    await t.db.query(`create function fail_merge_log() returns trigger language plpgsql as $$ begin raise exception 'merge log down'; end $$`);
    await t.db.query(`create trigger fail_merge_log before insert on identity_merges for each row execute function fail_merge_log()`);
    const queuedBefore = (await t.db.query<{ n: number }>('select coalesce(sum(events), 0)::int as n from identity_queue where workspace_id = $1', [failing.workspaceId])).rows[0]!.n;
    try {
      let failed = false;
      for (let i = 0; i < 10 && !failed; i++) {
        failed = await resolveQueuedEvents(t.db, failing.workspaceId, 6).then(() => false, (error: Error) => {
          expect(error.message).toContain('merge log down');
          return true;
        });
      }
      expect(failed).toBe(true);
    } finally {
      await t.db.query('drop trigger fail_merge_log on identity_merges');
      await t.db.query('drop function fail_merge_log()');
    }
    // The failed batch's events are queued again; some were left naming profiles that never committed.
    const { rows: ghosts } = await t.db.query<{ n: number }>(
      `select count(*)::int as n from events e where e.workspace_id = $1 and e.profile_id is not null
          and not exists (select 1 from profiles p where p.workspace_id = e.workspace_id and p.id = e.profile_id)`,
      [failing.workspaceId],
    );
    expect(ghosts[0]!.n).toBeGreaterThan(0);
    expect((await t.db.query<{ n: number }>('select coalesce(sum(events), 0)::int as n from identity_queue where workspace_id = $1', [failing.workspaceId])).rows[0]!.n)
      .toBeLessThan(queuedBefore);
    await drain(failing.workspaceId, 6);
    expect(await graphOf(failing.workspaceId)).toEqual(await graphOf(plain.workspaceId));
  });
});
