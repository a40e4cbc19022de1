import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from './support/app.ts';
import { clearEvents, post, storedEvents } from './collection-helpers.ts';

interface Outcome {
  accepted: number;
  duplicates: number;
}

function totals(outcomes: Outcome[]): Outcome {
  return outcomes.reduce((sum, o) => ({ accepted: sum.accepted + o.accepted, duplicates: sum.duplicates + o.duplicates }), {
    accepted: 0,
    duplicates: 0,
  });
}

describe('collection idempotency: one stored copy per (workspace, messageId)', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(async () => t.close());
  beforeEach(async () => clearEvents(t));

  it('a repeated call is stored once and reported as a duplicate', async () => {
    const body = { userId: 'u1', event: 'Signed Up', messageId: 'm-1', properties: { plan: 'pro' } };
    const first = await post(t, '/v1/track', body);
    expect(first.json()).toEqual({ success: true, accepted: 1, duplicates: 0, rejected: [] });
    // A retry may differ (a client re-sends with a new sentAt); the first copy stays.
    const again = await post(t, '/v1/track', { ...body, properties: { plan: 'free' }, sentAt: new Date().toISOString() });
    expect(again.statusCode).toBe(200);
    expect(again.json()).toEqual({ success: true, accepted: 0, duplicates: 1, rejected: [] });
    const rows = await storedEvents(t);
    expect(rows.map((row) => [row.message_id, row.user_id, row.event, row.properties])).toEqual([['m-1', 'u1', 'Signed Up', { plan: 'pro' }]]);
  });

  it('20 identical requests in parallel store one event', async () => {
    const body = { userId: 'u1', event: 'Checkout', messageId: 'race-1' };
    const responses = await Promise.all(Array.from({ length: 20 }, () => post(t, '/v1/track', body)));
    expect(responses.map((r) => r.statusCode)).toEqual(Array(20).fill(200));
    expect(totals(responses.map((r) => r.json()))).toEqual({ accepted: 1, duplicates: 19 });
    expect((await storedEvents(t)).map((row) => row.message_id)).toEqual(['race-1']);
    const { rows } = await t.db.query('select count(*)::int as n from event_message_ids');
    expect(rows[0].n).toBe(1);
  });

  it('parallel batches sharing messageIds in different orders store each once (and do not deadlock)', async () => {
    const ids = Array.from({ length: 60 }, (_, i) => `shared-${i}`);
    const batches = Array.from({ length: 12 }, (_, b) => {
      // Each batch holds the shared ids rotated and partly reversed, plus one id of its own.
      const rotated = [...ids.slice(b * 5), ...ids.slice(0, b * 5)];
      const order = b % 2 ? rotated.reverse() : rotated;
      return [...order, `own-${b}`].map((messageId) => ({ type: 'track', userId: 'u1', event: 'E', messageId }));
    });
    const responses = await Promise.all(batches.map((batch) => post(t, '/v1/batch', { batch })));
    expect(responses.map((r) => r.statusCode)).toEqual(Array(12).fill(200));
    expect(totals(responses.map((r) => r.json()))).toEqual({ accepted: 72, duplicates: 11 * 60 });
    const rows = await storedEvents(t);
    expect(rows).toHaveLength(72);
    expect(new Set(rows.map((row) => row.message_id)).size).toBe(72);
  });

  it('holds across batches and endpoints, including /v1/import and duplicates inside one batch', async () => {
    const id = 'cross-1';
    const responses = [
      await post(t, '/v1/identify', { userId: 'u1', messageId: id }),
      await post(t, '/v1/batch', { batch: [{ type: 'identify', userId: 'u1', messageId: id }, { type: 'track', userId: 'u1', event: 'E', messageId: 'cross-2' }] }),
      await post(t, '/v1/b', { batch: [{ type: 'track', userId: 'u1', event: 'E', messageId: 'cross-2' }] }),
      await post(t, '/v1/import', { batch: [{ type: 'identify', userId: 'u1', messageId: id, timestamp: '2020-01-01T00:00:00Z' }] }),
      await post(t, '/v1/i', { userId: 'u1', messageId: id }),
      await post(t, '/v1/batch', {
        batch: [
          { type: 'track', userId: 'u1', event: 'E', messageId: 'twice' },
          { type: 'track', userId: 'u1', event: 'E again', messageId: 'twice' },
        ],
      }),
    ];
    expect(responses.map((r) => r.json()).map(({ accepted, duplicates }: Outcome) => [accepted, duplicates])).toEqual([
      [1, 0],
      [1, 1],
      [0, 1],
      [0, 1],
      [0, 1],
      [1, 1],
    ]);
    const rows = await storedEvents(t);
    expect(rows.map((row) => [row.message_id, row.type, row.event])).toEqual([
      ['cross-1', 'identify', null],
      ['cross-2', 'track', 'E'],
      ['twice', 'track', 'E'],
    ]);
  });

  it('the same messageId in two workspaces is two events, one in each', async () => {
    const other = await t.addWorkspace(`other-${Date.now()}`);
    const body = { userId: 'u1', event: 'E', messageId: 'shared-across-workspaces' };
    const [mine, theirs] = await Promise.all([post(t, '/v1/track', body), post(t, '/v1/track', body, {}, other.writeKey)]);
    expect(mine.json()).toMatchObject({ accepted: 1 });
    expect(theirs.json()).toMatchObject({ accepted: 1 });
    const rows = await storedEvents(t, 'message_id = $1', [body.messageId]);
    expect(rows.map((row) => [row.workspace_id, row.source_id]).sort()).toEqual(
      [[t.workspace.id, t.source.id], [other.workspace.id, other.source.id]].sort(),
    );
  });

  it('answers 200 only once the events are committed', async () => {
    // Each response is followed at once by a query on another connection: nothing may be missing.
    for (let i = 0; i < 10; i++) {
      const response = await post(t, '/v1/batch', {
        batch: Array.from({ length: 50 }, (_, j) => ({ type: 'track', userId: 'u1', event: 'E', messageId: `c-${i}-${j}` })),
      });
      expect(response.statusCode).toBe(200);
      const { rows } = await t.db.query('select count(*)::int as n from events where message_id like $1', [`c-${i}-%`]);
      expect(rows[0].n).toBe(50);
    }
  });
});
