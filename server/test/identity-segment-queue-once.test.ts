/**
 * A resolution batch that merges queues each profile for segment evaluation once: the survivors
 * are among the profiles its events landed on, queued before the merges are written, and the
 * merge step must not queue them again (a second version of the same queue row per survivor).
 * Operator merges, which queue nothing themselves, still queue the survivor.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mergeProfiles } from '../src/identity/merge.ts';
import { resolveQueuedEvents } from '../src/identity/resolver.ts';
import { basicAuth, startTestApp, type TestApp } from './support/app.ts';

describe('segment queue after a resolution batch with merges', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(async () => t.close());

  const queue = async () =>
    (
      await t.db.query<{ profile_id: string; version: number }>(
        'select profile_id, version from segment_queue where workspace_id = $1 order by profile_id',
        [t.workspace.id],
      )
    ).rows;
  const live = async () =>
    (await t.db.query<{ id: string }>('select id from profiles where workspace_id = $1 and merged_into is null order by id', [t.workspace.id])).rows.map(
      (row) => row.id,
    );
  const send = async (batch: unknown[]) => {
    const res = await t.app.inject({ method: 'POST', url: '/v1/batch', headers: { authorization: basicAuth(t.writeKey) }, payload: { batch } });
    expect(res.json().accepted).toBe(batch.length);
  };

  it('queues the survivor once, and not the absorbed profile', async () => {
    await send([
      { type: 'track', event: 'Viewed', anonymousId: 'anon-1', messageId: 'q1', timestamp: '2026-01-01T00:00:00Z' },
      { type: 'identify', userId: 'user-1', messageId: 'q2', timestamp: '2026-01-01T00:01:00Z' },
      { type: 'identify', userId: 'user-1', anonymousId: 'anon-1', messageId: 'q3', timestamp: '2026-01-01T00:02:00Z' },
    ]);
    expect(await resolveQueuedEvents(t.db, t.workspace.id)).toBe(3);
    const { rows: merges } = await t.db.query<{ survivor_id: string }>('select survivor_id from identity_merges where workspace_id = $1', [t.workspace.id]);
    expect(merges).toHaveLength(1);
    expect(await live()).toEqual([merges[0]!.survivor_id]);
    expect(await queue()).toEqual([{ profile_id: merges[0]!.survivor_id, version: 0 }]);
  });

  it('an operator merge still queues its survivor', async () => {
    await send([{ type: 'identify', anonymousId: 'anon-2', messageId: 'q4', timestamp: '2026-01-01T00:03:00Z' }]);
    expect(await resolveQueuedEvents(t.db, t.workspace.id)).toBe(1);
    await t.db.query('delete from segment_queue where workspace_id = $1', [t.workspace.id]);
    const [a, b] = await live();
    const result = await mergeProfiles(t.db, t.workspace.id, [a!, b!], { kind: 'manual' });
    expect(await queue()).toEqual([{ profile_id: result.survivorId, version: 0 }]);
  });
});
