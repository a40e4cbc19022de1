/**
 * The identity drain's batch size (identity/loop.ts): it doubles while a workspace's batches come
 * back full (a backlog), up to the maximum, and falls back to the first size at the first batch that
 * is not full; the graph it leaves is the one a fixed batch leaves.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createIdentityDrain, IDENTITY_BATCH, IDENTITY_BATCH_MAX, nextBatchSize } from '../src/identity/loop.ts';
import { resolveQueuedEvents } from '../src/identity/resolver.ts';
import type { NormalizedEvent } from '../src/ingest/normalize.ts';
import { storeEvents, type SourceRef } from '../src/ingest/store.ts';
import { createSource, createWorkspace } from '../src/workspaces/store.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';
import { numberedEvent } from './support/events.ts';

const T0 = Date.parse('2026-01-05T00:00:00Z');

describe('nextBatchSize', () => {
  it('doubles after a full batch up to the maximum, and goes back to the first size after one that is not', () => {
    expect(nextBatchSize(IDENTITY_BATCH, IDENTITY_BATCH, IDENTITY_BATCH, IDENTITY_BATCH_MAX)).toBe(2 * IDENTITY_BATCH);
    expect(nextBatchSize(IDENTITY_BATCH_MAX, IDENTITY_BATCH_MAX, IDENTITY_BATCH, IDENTITY_BATCH_MAX)).toBe(IDENTITY_BATCH_MAX);
    expect(nextBatchSize(16, 15, 4, 20)).toBe(4);
    expect(nextBatchSize(16, 16, 4, 20)).toBe(20);
    expect(nextBatchSize(4, 0, 4, 20)).toBe(4);
    // A maximum below the first size is the first size (a fixed batch).
    expect(nextBatchSize(8, 8, 8, 2)).toBe(8);
  });
});

describe('identity drain on real PostgreSQL', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase();
  });
  afterAll(async () => t.drop());

  /** Person i's events: anonymous visits, a login that merges, a purchase by phone. */
  function events(people: number, tag: string, from = 0): NormalizedEvent[] {
    const out: NormalizedEvent[] = [];
    for (let step = 0; step < 4; step++) {
      for (let i = from; i < from + people; i++) {
        const raw = [
          { type: 'page', anonymousId: `w-${i}`, name: 'Home' },
          { type: 'screen', anonymousId: `p-${i}`, name: 'Start' },
          { type: 'identify', userId: `u-${i}`, anonymousId: `w-${i}`, traits: { plan: 'free' } },
          { type: 'track', event: 'Signed In', userId: `u-${i}`, anonymousId: `p-${i}` },
        ][step]!;
        out.push(numberedEvent(raw, tag, out.length, T0));
      }
    }
    return out;
  }

  async function workspace(slug: string): Promise<SourceRef> {
    const ws = await createWorkspace(t.db, { slug, name: slug });
    const { source } = await createSource(t.db, ws.id, { name: 'Web', kind: 'web' });
    return { workspaceId: ws.id, sourceId: source.id };
  }

  async function graph(ws: string) {
    const { rows } = await t.db.query<{ message_id: string; identifiers: string }>(
      `select e.message_id, (select string_agg(pi.type || ':' || pi.value, ' ' order by pi.type, pi.value) from profile_identifiers pi
                              where pi.workspace_id = e.workspace_id and pi.profile_id = e.profile_id and pi.unbound_at is null) as identifiers
         from events e join profiles p on p.workspace_id = e.workspace_id and p.id = e.profile_id and p.merged_into is null
        where e.workspace_id = $1 order by e.message_id`,
      [ws],
    );
    return rows.map((row) => `${row.message_id.replace(/^[a-z]+-/, '')} ${row.identifiers}`);
  }

  it('grows the batch behind a backlog, falls back once caught up, and leaves the graph a fixed batch leaves', async () => {
    const [growing, fixed] = [await workspace('growing'), await workspace('fixed')];
    await storeEvents(t.db, growing, events(10, 'growing'));
    await storeEvents(t.db, fixed, events(10, 'fixed'));
    while ((await resolveQueuedEvents(t.db, fixed.workspaceId, 4)) > 0);

    const drain = createIdentityDrain(t.db, 4, 16);
    const taken: number[] = [];
    for (let n = await drain(); n > 0; n = await drain()) taken.push(n);
    // 40 events: 4, 8, 16, then 12 of a batch of 16 (not full: back to 4).
    expect(taken).toEqual([4, 8, 16, 12]);
    await storeEvents(t.db, growing, events(2, 'growing-more', 10));
    expect(await drain()).toBe(4);

    await storeEvents(t.db, fixed, events(2, 'fixed-more', 10));
    while ((await resolveQueuedEvents(t.db, fixed.workspaceId, 4)) > 0);
    while ((await drain()) > 0);
    const [a, b] = [await graph(growing.workspaceId), await graph(fixed.workspaceId)];
    expect(a).toHaveLength(48);
    expect(a).toEqual(b);
  });
});
