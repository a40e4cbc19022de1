import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveQueuedEvents } from '../src/identity/resolver.ts';
import { unbindIdentifier, unmergeIdentifier } from '../src/identity/unmerge.ts';
import type { Condition, EventMatch } from '../src/segments/ast.ts';
import { evaluateSegment } from '../src/segments/evaluate.ts';
import { drainSegmentQueue, type DrainOptions } from '../src/segments/realtime.ts';
import { basicAuth, startTestApp, type TestApp } from './support/app.ts';

const T = Date.parse('2026-03-01T10:00:00Z');
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const at = (ms: number) => new Date(ms);
const iso = (ms: number) => new Date(ms).toISOString();

const track = (name: string): EventMatch => ({ type: 'track', name, filters: [] });
const did = (name: string, within?: { amount: number; unit: 'hours' | 'days' }): Condition => ({
  kind: 'event',
  match: track(name),
  ...(within ? { window: { kind: 'last' as const, duration: within } } : {}),
  measure: { kind: 'exists' },
});

describe('real-time segment evaluation on real PostgreSQL', () => {
  let t: TestApp;
  let ws: { id: string; writeKey: string };

  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(async () => t.close());

  /** Each test in its own workspace: every active segment of a workspace is evaluated for each profile. */
  let counter = 0;
  const useWorkspace = async () => {
    const created = await t.addWorkspace(`rt-${++counter}`);
    ws = { id: created.workspace.id, writeKey: created.writeKey };
  };
  const send = async (batch: unknown[]) => {
    const res = await t.app.inject({ method: 'POST', url: '/v1/batch', headers: { authorization: basicAuth(ws.writeKey) }, payload: { batch } });
    expect(res.json()).toMatchObject({ rejected: [] });
    while ((await resolveQueuedEvents(t.db, ws.id)) > 0);
  };
  const addSegment = async (key: string, definition: Condition, state: 'ready' | 'computing' = 'ready') => {
    const { rows } = await t.db.query<{ id: string }>(
      `insert into segments (workspace_id, key, name, kind, definition, state) values ($1, $2, $2, 'realtime', $3, $4) returning id`,
      [ws.id, key, JSON.stringify(definition), state],
    );
    return rows[0]!.id;
  };
  /** Drains until nothing is left at `now`; any evaluation error fails the test unless `options` handles it. */
  const drainAll = async (now: number, options: DrainOptions = {}) => {
    const errors: unknown[] = [];
    const onError = options.onError ?? ((error: unknown) => errors.push(error));
    let total = 0;
    for (let i = 0; i < 20; i++) {
      const taken = await drainSegmentQueue(t.db, { ...options, onError, now: at(now) });
      expect(errors).toEqual([]);
      if (taken === 0) return total;
      total += taken;
    }
    throw new Error('the drain did not settle');
  };
  const drainOnce = async (now: number) => {
    const errors: unknown[] = [];
    const taken = await drainSegmentQueue(t.db, { now: at(now), onError: (error) => errors.push(error) });
    expect(errors).toEqual([]);
    return taken;
  };
  const profileOf = async (type: string, value: string) =>
    (
      await t.db.query('select profile_id from profile_identifiers where workspace_id = $1 and type = $2 and value = $3 and unbound_at is null', [
        ws.id,
        type,
        value,
      ])
    ).rows[0]?.profile_id as string;
  const membersOf = async (key: string) => {
    const { rows } = await t.db.query<{ profile_id: string }>(
      `select m.profile_id from segment_memberships m join segments s on s.workspace_id = m.workspace_id and s.id = m.segment_id
        where m.workspace_id = $1 and s.key = $2 order by m.profile_id`,
      [ws.id, key],
    );
    return rows.map((row) => row.profile_id);
  };
  const transitions = async (profileId?: string) => {
    const { rows } = await t.db.query<{ key: string; profile_id: string; transition: string; cause: string; at: Date }>(
      `select s.key, t.profile_id, t.transition, t.cause, t.at from segment_transitions t join segments s on s.workspace_id = t.workspace_id and s.id = t.segment_id
        where t.workspace_id = $1 and ($2::uuid is null or t.profile_id = $2) order by t.id`,
      [ws.id, profileId ?? null],
    );
    return rows.map((row) => ({ key: row.key, profileId: row.profile_id, transition: row.transition, cause: row.cause, at: row.at.getTime() }));
  };
  const timeline = async (profileId: string) => {
    const { rows } = await t.db.query<{ event: string; properties: { segment_key: string; cause: string } }>(
      `select event, properties from events where workspace_id = $1 and profile_id = $2 and event like 'Segment %' order by seq`,
      [ws.id, profileId],
    );
    return rows.map((row) => `${row.event}:${row.properties.segment_key}:${row.properties.cause}`);
  };
  const recheckOf = async (profileId: string) =>
    (await t.db.query<{ due_at: Date }>('select due_at from segment_rechecks where workspace_id = $1 and profile_id = $2', [ws.id, profileId])).rows[0]
      ?.due_at.getTime() ?? null;
  const queued = async () =>
    (await t.db.query<{ profile_id: string }>('select profile_id from segment_queue where workspace_id = $1 order by profile_id', [ws.id])).rows.map(
      (row) => row.profile_id,
    );

  it('an event makes the profile a member after the identity and segment drains, with Segment Entered in its timeline', async () => {
    await useWorkspace();
    await addSegment('buyers', did('Order Completed'));
    await send([{ type: 'track', event: 'Order Completed', userId: 'u-1', properties: { revenue: 10 }, messageId: 'e1', timestamp: iso(T) }]);
    const profile = await profileOf('user_id', 'u-1');
    expect(await queued()).toEqual([profile]);
    expect(await membersOf('buyers')).toEqual([]);

    expect(await drainAll(T + HOUR)).toBe(1);
    expect(await membersOf('buyers')).toEqual([profile]);
    expect(await transitions()).toEqual([{ key: 'buyers', profileId: profile, transition: 'entered', cause: 'event', at: T + HOUR }]);
    expect(await timeline(profile)).toEqual(['Segment Entered:buyers:event']);
    expect(await queued()).toEqual([]);
    // No window: the answer never changes on its own, so no re-check.
    expect(await recheckOf(profile)).toBeNull();
  });

  it('a window expires on its own: member at t+6d, re-check due at t+7d, exited then with cause expiry and no new event', async () => {
    await useWorkspace();
    await addSegment('bought-7d', did('Order Completed', { amount: 7, unit: 'days' }));
    await send([{ type: 'track', event: 'Order Completed', userId: 'u-2', messageId: 'e2', timestamp: iso(T) }]);
    const profile = await profileOf('user_id', 'u-2');

    await drainAll(T + 6 * DAY);
    expect(await membersOf('bought-7d')).toEqual([profile]);
    expect(await recheckOf(profile)).toBe(T + 7 * DAY);

    expect(await drainAll(T + 7 * DAY - 1)).toBe(0); // not due yet
    expect(await membersOf('bought-7d')).toEqual([profile]);

    expect(await drainAll(T + 7 * DAY)).toBe(1);
    expect(await membersOf('bought-7d')).toEqual([]);
    expect((await transitions()).map((x) => `${x.transition}:${x.cause}:${x.at - T}`)).toEqual([`entered:event:${6 * DAY}`, `exited:expiry:${7 * DAY}`]);
    expect(await timeline(profile)).toEqual(['Segment Entered:bought-7d:event', 'Segment Exited:bought-7d:expiry']);
    expect(await recheckOf(profile)).toBeNull();
  });

  it('a negated sequence becomes true at A + within through the re-check', async () => {
    await useWorkspace();
    await addSegment('abandoned-cart', {
      kind: 'sequence',
      first: track('Product Added'),
      then: track('Order Completed'),
      negated: true,
      within: { amount: 2, unit: 'hours' },
    });
    await send([
      { type: 'track', event: 'Product Added', userId: 'left', messageId: 'a1', timestamp: iso(T) },
      { type: 'track', event: 'Product Added', userId: 'bought', messageId: 'b1', timestamp: iso(T) },
      { type: 'track', event: 'Order Completed', userId: 'bought', messageId: 'b2', timestamp: iso(T + HOUR) },
    ]);
    const left = await profileOf('user_id', 'left');
    const bought = await profileOf('user_id', 'bought');

    await drainAll(T + 90 * 60_000);
    expect(await membersOf('abandoned-cart')).toEqual([]);
    expect(await recheckOf(left)).toBe(T + 2 * HOUR);

    await drainAll(T + 2 * HOUR);
    expect(await membersOf('abandoned-cart')).toEqual([left]);
    expect(await transitions()).toEqual([{ key: 'abandoned-cart', profileId: left, transition: 'entered', cause: 'expiry', at: T + 2 * HOUR }]);
    expect(await transitions(bought)).toEqual([]);
  });

  it('records each transition exactly once: draining again, replaying the event, re-queueing the profile add nothing', async () => {
    await useWorkspace();
    await addSegment('buyers', did('Order Completed'));
    const event = { type: 'track', event: 'Order Completed', userId: 'u-3', messageId: 'once', timestamp: iso(T) };
    await send([event]);
    const profile = await profileOf('user_id', 'u-3');
    await drainAll(T + HOUR);
    expect(await drainAll(T + HOUR)).toBe(0);

    await send([event]); // the same messageId: stored once, nothing queued
    await t.db.query('insert into segment_queue (workspace_id, profile_id) values ($1, $2) on conflict do nothing', [ws.id, profile]);
    expect(await drainAll(T + 2 * HOUR)).toBe(1);

    expect(await transitions()).toHaveLength(1);
    expect(await timeline(profile)).toEqual(['Segment Entered:buyers:event']);
    const { rows } = await t.db.query('select member_count from segments where workspace_id = $1', [ws.id]);
    expect(rows).toEqual([{ member_count: 1 }]);
  });

  it('a merge ends the absorbed profile memberships in its own transaction and re-evaluates the survivor', async () => {
    await useWorkspace();
    await addSegment('buyers', did('Order Completed'));
    await addSegment('viewers', did('Product Viewed'));
    await send([
      { type: 'track', event: 'Product Viewed', userId: 'u-4', messageId: 'm1', timestamp: iso(T) },
      { type: 'track', event: 'Order Completed', anonymousId: 'anon-4', messageId: 'm2', timestamp: iso(T + HOUR) },
    ]);
    const user = await profileOf('user_id', 'u-4');
    const anonymous = await profileOf('anonymous_id', 'anon-4');
    await drainAll(T + 2 * HOUR);
    expect(await membersOf('buyers')).toEqual([anonymous]);
    expect(await membersOf('viewers')).toEqual([user]);

    // The visitor logs in: the anonymous profile merges into the user's.
    await send([{ type: 'identify', userId: 'u-4', anonymousId: 'anon-4', messageId: 'm3', timestamp: iso(T + 3 * HOUR) }]);
    expect(await profileOf('anonymous_id', 'anon-4')).toBe(user);
    // Ended by the merge itself, before any segment drain.
    expect(await membersOf('buyers')).toEqual([]);
    expect(await transitions(anonymous)).toEqual([
      { key: 'buyers', profileId: anonymous, transition: 'entered', cause: 'event', at: T + 2 * HOUR },
      { key: 'buyers', profileId: anonymous, transition: 'exited', cause: 'merge', at: expect.any(Number) },
    ]);
    // Its segment events moved with the rest of its events: the person's timeline keeps them.
    expect(await timeline(anonymous)).toEqual([]);
    expect(await queued()).toEqual([user]);

    await drainAll(T + 4 * HOUR);
    expect(await membersOf('buyers')).toEqual([user]);
    expect(await membersOf('viewers')).toEqual([user]);
    expect((await transitions(user)).map((x) => `${x.key}:${x.transition}:${x.cause}`)).toEqual(['viewers:entered:event', 'buyers:entered:event']);
    const events = await timeline(user);
    // The two profiles' entries (one drain, in either order), then the absorbed profile's exit and the survivor's entry.
    expect(events.slice(0, 2).sort()).toEqual(['Segment Entered:buyers:event', 'Segment Entered:viewers:event']);
    expect(events.slice(2)).toEqual(['Segment Exited:buyers:merge', 'Segment Entered:buyers:event']);
  });

  it('unmerge and unbind queue the profiles they change', async () => {
    await useWorkspace();
    await send([
      { type: 'identify', userId: 'u-5', traits: { email: 'five@x.cn' }, messageId: 'u1', timestamp: iso(T) },
      { type: 'track', event: 'Viewed', userId: 'u-5', context: { traits: { phone: '13800138005' } }, messageId: 'u2', timestamp: iso(T) },
    ]);
    const profile = await profileOf('user_id', 'u-5');
    await drainAll(T);
    expect(await queued()).toEqual([]);
    const split = await unmergeIdentifier(t.db, ws.id, profile, { type: 'email', value: 'five@x.cn' });
    expect(await queued()).toEqual([profile, split.newProfileId].sort());
    await drainAll(T);
    await unbindIdentifier(t.db, ws.id, profile, { type: 'phone', value: '+8613800138005' });
    expect(await queued()).toEqual([profile]);
  });

  it('consent changes membership of a consent("sms") segment', async () => {
    await useWorkspace();
    await addSegment('sms-ok', { kind: 'consent', category: 'sms' });
    const prefs = (sms: unknown) => ({ consent: { categoryPreferences: { sms } } });
    await send([{ type: 'track', event: 'Signed Up', userId: 'u-6', context: prefs(true), messageId: 'c1', timestamp: iso(T) }]);
    const profile = await profileOf('user_id', 'u-6');
    await drainAll(T + HOUR);
    expect(await membersOf('sms-ok')).toEqual([profile]);

    await send([{ type: 'track', event: 'Unsubscribed', userId: 'u-6', context: prefs(false), messageId: 'c2', timestamp: iso(T + 2 * HOUR) }]);
    await drainAll(T + 3 * HOUR);
    expect(await membersOf('sms-ok')).toEqual([]);
    expect((await transitions()).map((x) => `${x.transition}:${x.cause}`)).toEqual(['entered:event', 'exited:event']);
  });

  it('evaluates a segment after the segment it reads, with the new membership, in the same drain', async () => {
    await useWorkspace();
    // Alphabetically the dependent comes first: only dependency order gets this right in one pass.
    await addSegment('a-shanghai-buyers', {
      kind: 'and',
      conditions: [
        { kind: 'segment', segment: 'z-buyers' },
        { kind: 'trait', trait: 'city', op: 'eq', value: '上海' },
      ],
    });
    await addSegment('z-buyers', did('Order Completed'));
    await send([
      { type: 'identify', userId: 'u-7', traits: { city: '上海' }, messageId: 'd1', timestamp: iso(T) },
      { type: 'track', event: 'Order Completed', userId: 'u-7', messageId: 'd2', timestamp: iso(T) },
    ]);
    const profile = await profileOf('user_id', 'u-7');
    expect(await drainOnce(T + HOUR)).toBe(1);
    expect(await membersOf('z-buyers')).toEqual([profile]);
    expect(await membersOf('a-shanghai-buyers')).toEqual([profile]);
    expect((await transitions()).map((x) => x.key)).toEqual(['z-buyers', 'a-shanghai-buyers']);
  });

  it('refreshes computed traits before the segments that read them, in the same drain, and re-checks them as their window moves', async () => {
    await useWorkspace();
    await t.db.query(
      `insert into computed_traits (workspace_id, key, name, definition, state) values ($1, 'orders_7d', 'Orders in 7 days', $2, 'ready')`,
      [ws.id, JSON.stringify({ kind: 'count', match: track('Order Completed'), window: { kind: 'last', duration: { amount: 7, unit: 'days' } } })],
    );
    await addSegment('repeat-7d', { kind: 'trait', trait: 'orders_7d', op: 'gte', value: 2 });
    await send([
      { type: 'track', event: 'Order Completed', userId: 'u-9', messageId: 'r1', timestamp: iso(T) },
      { type: 'track', event: 'Order Completed', userId: 'u-9', messageId: 'r2', timestamp: iso(T + HOUR) },
    ]);
    const profile = await profileOf('user_id', 'u-9');
    const ordersOf = async () =>
      (await t.db.query('select value from profile_traits where workspace_id = $1 and profile_id = $2 and key = $3', [ws.id, profile, 'orders_7d'])).rows[0]
        ?.value;

    expect(await drainOnce(T + 2 * HOUR)).toBe(1);
    expect(await ordersOf()).toBe(2);
    expect(await membersOf('repeat-7d')).toEqual([profile]);
    // The trait's own re-check: the first order leaves its window.
    expect(await recheckOf(profile)).toBe(T + 7 * DAY);

    await drainAll(T + 7 * DAY);
    expect(await ordersOf()).toBe(1);
    expect(await membersOf('repeat-7d')).toEqual([]);
    expect((await transitions()).map((x) => `${x.transition}:${x.cause}`)).toEqual(['entered:event', 'exited:expiry']);
  });

  it('skips segments still being computed', async () => {
    await useWorkspace();
    await addSegment('computing', did('Order Completed'), 'computing');
    await send([{ type: 'track', event: 'Order Completed', userId: 'u-8', messageId: 's1', timestamp: iso(T) }]);
    expect(await drainAll(T + HOUR)).toBe(1);
    expect(await membersOf('computing')).toEqual([]);
  });

  it('a failing evaluation keeps its profile queued for a later try and does not hold up the others', async () => {
    await useWorkspace();
    await addSegment('buyers', did('Order Completed'));
    await send([
      { type: 'track', event: 'Order Completed', userId: 'bad', messageId: 'f1', timestamp: iso(T) },
      { type: 'track', event: 'Order Completed', userId: 'good', messageId: 'f2', timestamp: iso(T) },
    ]);
    const bad = await profileOf('user_id', 'bad');
    const good = await profileOf('user_id', 'good');
    const errors: string[] = [];
    const failing: DrainOptions = {
      evaluate: (condition, profile, now) => {
        if (profile.profileId === bad) throw new Error('evaluation exploded');
        return evaluateSegment(condition, profile, now);
      },
      onError: (_error, message) => errors.push(message),
    };

    expect(await drainSegmentQueue(t.db, { ...failing, now: at(T + HOUR) })).toBe(2);
    expect(await membersOf('buyers')).toEqual([good]);
    const { rows } = await t.db.query('select profile_id, failed_attempts, next_attempt_at, last_error from segment_queue where workspace_id = $1', [ws.id]);
    expect(rows).toEqual([{ profile_id: bad, failed_attempts: 1, next_attempt_at: at(T + HOUR + 5_000), last_error: 'evaluation exploded' }]);
    expect(errors).toHaveLength(2); // the batch, then the profile on its own

    // Not due again yet; then failing once more doubles the wait.
    expect(await drainSegmentQueue(t.db, { ...failing, now: at(T + HOUR + 4_999) })).toBe(0);
    await drainSegmentQueue(t.db, { ...failing, now: at(T + HOUR + 5_000) });
    const { rows: again } = await t.db.query('select failed_attempts, next_attempt_at from segment_queue where workspace_id = $1', [ws.id]);
    expect(again).toEqual([{ failed_attempts: 2, next_attempt_at: at(T + HOUR + 15_000) }]);

    // Fixed: the next try evaluates it.
    expect(await drainAll(T + HOUR + 15_000)).toBe(1);
    expect(await membersOf('buyers')).toEqual([bad, good].sort());
    expect(await queued()).toEqual([]);
  });
});
