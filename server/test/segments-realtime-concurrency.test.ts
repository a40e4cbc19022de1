import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveQueuedEvents } from '../src/identity/resolver.ts';
import type { Condition } from '../src/segments/ast.ts';
import { computeSegment } from '../src/segments/compute.ts';
import { drainSegmentQueue } from '../src/segments/realtime.ts';
import { basicAuth, startTestApp, type TestApp } from './support/app.ts';

const T = Date.parse('2026-03-01T00:00:00Z');
const NOW = T + 10 * 86_400_000;
const PEOPLE = 120;

/** mulberry32: the same history every run. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let x = Math.imul(state ^ (state >>> 15), 1 | state);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

const SEGMENTS: Record<string, Condition> = {
  buyers: { kind: 'event', match: { type: 'track', name: 'Order Completed', filters: [] }, measure: { kind: 'exists' } },
  'viewed-3d': {
    kind: 'event',
    match: { type: 'track', name: 'Product Viewed', filters: [] },
    window: { kind: 'last', duration: { amount: 3, unit: 'days' } },
    measure: { kind: 'exists' },
  },
  'sms-ok': { kind: 'consent', category: 'sms' },
  'shanghai-buyers': {
    kind: 'and',
    conditions: [
      { kind: 'segment', segment: 'buyers' },
      { kind: 'trait', trait: 'city', op: 'eq', value: '上海' },
    ],
  },
};

// As one worker draining one batch at a time, and as two workers each draining the profiles in
// parallel parts (lock.ts): the parts of two drains overlap in time, never in profiles. And with
// the events read from the digests, whose pending appends (moved and dropped by merges) are served
// unfolded below the drain's fold threshold (digests.ts DRAIN_FOLD_AT).
describe.each([
  { mode: 'one drain, one batch at a time', parallel: false, drains: 1, digests: false },
  { mode: 'two drains, each in parallel parts', parallel: true, drains: 2, digests: false },
  { mode: 'two drains in parallel parts, reading event digests', parallel: true, drains: 2, digests: true },
])('real-time segments while identity resolution runs (merges included): $mode', ({ parallel, drains, digests }) => {
  let t: TestApp;
  const ids = new Map<string, string>();

  beforeAll(async () => {
    t = await startTestApp();
    for (const [key, definition] of Object.entries(SEGMENTS)) {
      const { rows } = await t.db.query<{ id: string }>(
        `insert into segments (workspace_id, key, name, kind, definition, state) values ($1, $2, $2, 'realtime', $3, 'ready') returning id`,
        [t.workspace.id, key, JSON.stringify(definition)],
      );
      ids.set(key, rows[0]!.id);
    }
  });
  afterAll(async () => t.close());

  it('ends with the memberships a full computation finds, each transition recorded once, none on a merged-away profile', async () => {
    const next = random(7);
    const pick = <T>(items: readonly T[]) => items[Math.floor(next() * items.length)]!;
    // Each person browses anonymously, sometimes logs in (a merge of the anonymous profile into the
    // user's), buys, states a city and consents; events spread over ten days.
    const events: unknown[] = [];
    for (let i = 0; i < 600; i++) {
      const person = Math.floor(next() * PEOPLE);
      const ids = next() < 0.5 ? { anonymousId: `anon-${person}-${Math.floor(next() * 2)}` } : { userId: `user-${person}` };
      const timestamp = new Date(T + Math.floor(next() * 10 * 86_400_000)).toISOString();
      const base = { ...ids, messageId: `m-${i}`, timestamp };
      const kind = next();
      if (kind < 0.15) events.push({ ...base, type: 'identify', userId: `user-${person}`, anonymousId: `anon-${person}-${Math.floor(next() * 2)}` });
      else if (kind < 0.3) events.push({ ...base, type: 'identify', traits: { city: pick(['上海', '北京']) } });
      else if (kind < 0.45) events.push({ ...base, type: 'track', event: 'Prefs', context: { consent: { categoryPreferences: { sms: next() < 0.5 } } } });
      else if (kind < 0.65) events.push({ ...base, type: 'track', event: 'Order Completed', properties: { revenue: 10 } });
      else events.push({ ...base, type: 'track', event: 'Product Viewed' });
    }

    let sending = true;
    let resolving = true;
    const errors: string[] = [];
    const pause = () => new Promise((resolve) => setTimeout(resolve, 5));
    // Both loops run until their queue is empty after the stage before them has finished.
    const identity = (async () => {
      for (;;) {
        if ((await resolveQueuedEvents(t.db, t.workspace.id, 25)) > 0) continue;
        if (!sending) return;
        await pause();
      }
    })();
    const drain = async () => {
      for (;;) {
        const taken = await drainSegmentQueue(t.db, { now: new Date(NOW), batchSize: 10, parallel, digests, onError: (error, message) => errors.push(`${message}: ${String(error)}`) });
        if (taken > 0) continue;
        if (!resolving) return;
        await pause();
      }
    };
    const segments = Promise.all(Array.from({ length: drains }, drain));
    for (let start = 0; start < events.length; start += 20) {
      const res = await t.app.inject({
        method: 'POST',
        url: '/v1/batch',
        headers: { authorization: basicAuth(t.writeKey) },
        payload: { batch: events.slice(start, start + 20) },
      });
      expect(res.json()).toMatchObject({ rejected: [] });
    }
    sending = false;
    await identity;
    resolving = false;
    await segments;
    expect(errors).toEqual([]);

    const { rows: merges } = await t.db.query<{ count: number }>('select count(*)::int as count from identity_merges where workspace_id = $1', [t.workspace.id]);
    expect(merges[0]!.count).toBeGreaterThan(10);
    const { rows: stray } = await t.db.query(
      `select m.profile_id from segment_memberships m join profiles p on p.workspace_id = m.workspace_id and p.id = m.profile_id
        where m.workspace_id = $1 and p.merged_into is not null`,
      [t.workspace.id],
    );
    expect(stray).toEqual([]);

    // The SQL evaluation over all profiles agrees with what the real-time path left: nothing to move.
    // Dependencies first, as a recompute would.
    for (const key of ['buyers', 'viewed-3d', 'sms-ok', 'shanghai-buyers']) {
      const outcome = await computeSegment(t.db, t.workspace.id, ids.get(key)!, new Date(NOW));
      expect({ key, state: outcome.state, entered: outcome.entered, exited: outcome.exited }).toEqual({ key, state: 'ready', entered: 0, exited: 0 });
      expect(outcome.memberCount).toBeGreaterThan(0);
    }

    // Every transition once in the outbox and once in a timeline; the membership count matches.
    const { rows: check } = await t.db.query<{ transitions: number; timeline: number; counted: number; members: number }>(
      `select (select count(*)::int from segment_transitions where workspace_id = $1) as transitions,
              (select count(*)::int from events where workspace_id = $1 and event in ('Segment Entered', 'Segment Exited')) as timeline,
              (select sum(member_count)::int from segments where workspace_id = $1) as counted,
              (select count(*)::int from segment_memberships where workspace_id = $1) as members`,
      [t.workspace.id],
    );
    expect(check[0]!.timeline).toBe(check[0]!.transitions);
    expect(check[0]!.counted).toBe(check[0]!.members);
    if (digests) {
      // The digest path ran, and events were served from appends still pending, not folded.
      const { rows: kept } = await t.db.query<{ digests: number; appends: number }>(
        `select (select count(*)::int from segment_event_digests where workspace_id = $1 and complete) as digests,
                (select count(*)::int from segment_digest_appends where workspace_id = $1) as appends`,
        [t.workspace.id],
      );
      expect(kept[0]!.digests).toBeGreaterThan(0);
      expect(kept[0]!.appends).toBeGreaterThan(0);
    }
  });
});
