import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deleteProfileRows, enqueueSegmentEvaluation, finishQueuedProfiles } from '../src/segments/queue.ts';
import { drainSegmentQueue } from '../src/segments/realtime.ts';
import { startTestApp, type TestApp } from './support/app.ts';

/*
 * The drain's takes and deletes by profile are written so the planner probes indexes rather than
 * reading the workspace's whole queue (segments/realtime.ts takeWork, queue.ts deleteProfileRows);
 * these tests hold what they must return whatever the plan.
 */
const T = Date.parse('2026-03-01T10:00:00Z');
const MINUTE = 60_000;

describe('segment queue and re-check takes on real PostgreSQL', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(async () => t.close());

  let counter = 0;
  /** A workspace with `count` live profiles and one real-time segment reading a trait. */
  const workspaceWithProfiles = async (count: number) => {
    const { workspace } = await t.addWorkspace(`take-${++counter}`);
    const { rows } = await t.db.query<{ id: string }>(
      `insert into profiles (workspace_id, created_at) select $1, $2 from generate_series(1, $3) returning id`,
      [workspace.id, new Date(T), count],
    );
    await t.db.query(
      `insert into segments (workspace_id, key, name, kind, definition, state) values ($1, 'vip', 'VIP', 'realtime', $2, 'ready')`,
      [workspace.id, JSON.stringify({ kind: 'trait', trait: 'vip', op: 'eq', value: true })],
    );
    return { ws: workspace.id, ids: rows.map((row) => row.id) };
  };
  const column = async (sql: string, ws: string) => (await t.db.query<{ profile_id: string }>(sql, [ws])).rows.map((row) => row.profile_id);

  it('takes the oldest queued profiles and the earliest due re-checks first, a batch at a time', async () => {
    const { ws, ids } = await workspaceWithProfiles(60);
    const queuedIds = ids.slice(0, 30);
    const recheckIds = ids.slice(30);
    // Queued and due in an order unrelated to the ids: the k-th gets minute (k * 7) % 30.
    const minute = (k: number) => (k * 7) % 30;
    await t.db.query(
      `insert into segment_queue (workspace_id, profile_id, queued_at) select $1, p, q from unnest($2::uuid[], $3::timestamptz[]) as x(p, q)`,
      [ws, queuedIds, queuedIds.map((_, k) => new Date(T + minute(k) * MINUTE))],
    );
    await t.db.query(
      `insert into segment_rechecks (workspace_id, profile_id, due_at) select $1, p, d from unnest($2::uuid[], $3::timestamptz[]) as x(p, d)`,
      [ws, recheckIds, recheckIds.map((_, k) => new Date(T + minute(k) * MINUTE))],
    );
    const byMinute = (list: string[]) => list.map((id, k) => ({ id, m: minute(k) })).sort((a, b) => a.m - b.m).map((x) => x.id);

    expect(await drainSegmentQueue(t.db, { now: new Date(T + 60 * MINUTE), batchSize: 10 })).toBe(20);
    expect(await column('select profile_id from segment_queue where workspace_id = $1 order by profile_id', ws)).toEqual(byMinute(queuedIds).slice(10).sort());
    // Nothing in the segment depends on time: an evaluated profile's re-check is gone.
    expect(await column('select profile_id from segment_rechecks where workspace_id = $1 order by profile_id', ws)).toEqual(
      byMinute(recheckIds).slice(10).sort(),
    );
    // Re-checks not yet due stay.
    expect(await drainSegmentQueue(t.db, { now: new Date(T + 14 * MINUTE + 1), batchSize: 10 })).toBe(15);
    expect(await column('select profile_id from segment_rechecks where workspace_id = $1 order by profile_id', ws)).toEqual(
      byMinute(recheckIds).slice(15).sort(),
    );
  });

  it('indexes the queue and the re-checks only as the drain reads them (each index is written by every enqueue and re-check move)', async () => {
    const { rows } = await t.db.query<{ indexname: string }>(
      `select indexname from pg_indexes where schemaname = current_schema() and tablename in ('segment_queue', 'segment_rechecks') order by indexname`,
    );
    expect(rows.map((row) => row.indexname)).toEqual(['segment_queue_pkey', 'segment_queue_workspace_oldest', 'segment_rechecks_pkey', 'segment_rechecks_workspace_due']);
  });

  it('deleteProfileRows deletes exactly the given profiles’ rows of the workspace', async () => {
    const a = await workspaceWithProfiles(5);
    const b = await workspaceWithProfiles(2);
    for (const { ws, ids } of [a, b]) {
      await t.db.query(`insert into segment_queue (workspace_id, profile_id) select $1, p from unnest($2::uuid[]) as p`, [ws, ids]);
      await t.db.query(`insert into segment_rechecks (workspace_id, profile_id, due_at) select $1, p, $3 from unnest($2::uuid[]) as p`, [ws, ids, new Date(T)]);
    }
    // Ids of the other workspace and an unknown id change nothing there.
    const listed = [a.ids[1]!, a.ids[3]!, b.ids[0]!, '00000000-0000-4000-8000-000000000000'];
    for (const table of ['segment_queue', 'segment_rechecks'] as const) {
      await deleteProfileRows(t.db, table, a.ws, listed);
      expect(await column(`select profile_id from ${table} where workspace_id = $1 order by profile_id`, a.ws)).toEqual(
        [a.ids[0]!, a.ids[2]!, a.ids[4]!].sort(),
      );
      expect(await column(`select profile_id from ${table} where workspace_id = $1 order by profile_id`, b.ws)).toEqual([...b.ids].sort());
    }
  });
});

describe('re-queueing a profile while a drain evaluates it', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(async () => t.close());

  const queuedVersions = async (ws: string) =>
    Object.fromEntries(
      (await t.db.query<{ profile_id: string; version: number }>('select profile_id, version from segment_queue where workspace_id = $1', [ws])).rows.map(
        (row) => [row.profile_id, row.version],
      ),
    );

  // By primary key (a retried profile), and by the rows' addresses as taken (the drain's batches).
  it.each([{ byAddress: false }, { byAddress: true }])('neither waits for the other, and a profile changed meanwhile stays queued (by address: $byAddress)', async ({ byAddress }) => {
    const { workspace } = await t.addWorkspace(`requeue-${byAddress}`);
    const ws = workspace.id;
    const [changed, busy, untouched] = ['00000000-0000-4000-8000-00000000000a', '00000000-0000-4000-8000-00000000000b', '00000000-0000-4000-8000-00000000000c'];
    await t.db.query(`insert into segment_queue (workspace_id, profile_id) select $1, p from unnest($2::uuid[]) as p`, [ws, [changed, busy, untouched]]);
    const drain = await t.db.connect();
    const identity = await t.db.connect();
    const other = await t.db.connect();
    try {
      // Each statement below would wait for the other transaction under a row lock; 2 s proves it does not.
      for (const client of [drain, identity, other]) await client.query(`set statement_timeout = '2s'`);
      await drain.query('begin');
      const taken = (
        await drain.query<{ profile_id: string; version: number; row_id: string }>('select profile_id, version, ctid::text as row_id from segment_queue where workspace_id = $1', [ws])
      ).rows;
      expect(taken.map((row) => row.version)).toEqual([0, 0, 0]);

      // An identity batch re-queues `changed` and commits while the drain is still open.
      await identity.query('begin');
      await enqueueSegmentEvaluation(identity, ws, [changed]);
      await identity.query('commit');
      // Another is re-queueing `busy` right now, uncommitted.
      await other.query('begin');
      await enqueueSegmentEvaluation(other, ws, [busy]);

      await finishQueuedProfiles(drain, ws, taken.map((row) => ({ profileId: row.profile_id, version: row.version, rowId: byAddress ? row.row_id : undefined })));
      await drain.query('commit');
      await other.query('commit');
      // Only the profile nothing touched since the take has left the queue.
      expect(await queuedVersions(ws)).toEqual({ [changed]: 1, [busy]: 1 });
    } finally {
      for (const client of [drain, identity, other]) {
        await client.query('rollback').catch(() => undefined);
        client.release();
      }
    }
  });
});
