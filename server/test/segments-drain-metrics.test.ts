import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { onDrainBatch, type DrainBatchReport } from '../src/segments/drain-metrics.ts';
import { drainSegmentQueue } from '../src/segments/realtime.ts';
import { startTestApp, type TestApp } from './support/app.ts';

/*
 * The drain tells listeners what each committed batch did, so a benchmark can measure the segment
 * stage's own lag (queued → memberships committed) apart from ingest and identity before it.
 */
const T = Date.parse('2026-03-01T10:00:00Z');
const MINUTE = 60_000;

describe('real-time drain batch reports', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(async () => t.close());

  /** A workspace with `count` profiles (created at T) and one real-time segment "vip" (trait vip = true). */
  async function vipWorkspace(slug: string, count: number): Promise<{ ws: string; ids: string[] }> {
    const { workspace } = await t.addWorkspace(slug);
    const { rows } = await t.db.query<{ id: string }>(
      `insert into profiles (workspace_id, created_at) select $1, $2 from generate_series(1, $3::int) returning id`,
      [workspace.id, new Date(T), count],
    );
    await t.db.query(
      `insert into segments (workspace_id, key, name, kind, definition, state) values ($1, 'vip', 'VIP', 'realtime', $2, 'ready')`,
      [workspace.id, JSON.stringify({ kind: 'trait', trait: 'vip', op: 'eq', value: true })],
    );
    return { ws: workspace.id, ids: rows.map((row) => row.id) };
  }

  it('reports each committed batch: queued and re-checked counts, and every queued profile’s wait since it was queued', async () => {
    const { ws, ids } = await vipWorkspace('drain-metrics', 5);
    // Three queued at known times (minutes 0, 1, 2 after T), two due re-checks.
    await t.db.query(
      `insert into segment_queue (workspace_id, profile_id, queued_at) select $1, p, q from unnest($2::uuid[], $3::timestamptz[]) as x(p, q)`,
      [ws, ids.slice(0, 3), [0, 1, 2].map((m) => new Date(T + m * MINUTE))],
    );
    await t.db.query(`insert into segment_rechecks (workspace_id, profile_id, due_at) select $1, p, $3 from unnest($2::uuid[]) as p`, [
      ws,
      ids.slice(3),
      new Date(T),
    ]);

    const reports: DrainBatchReport[] = [];
    const stop = onDrainBatch((report) => reports.push(report));
    const before = Date.now();
    expect(await drainSegmentQueue(t.db, { now: new Date(T + 10 * MINUTE), batchSize: 10 })).toBe(5);
    const after = Date.now();
    const own = reports.filter((report) => report.workspaceId === ws);
    expect(own).toHaveLength(1);
    expect(own[0]).toMatchObject({ queued: 3, rechecks: 2 });
    // Committed between `before` and `after`, queued at T, T+1m, T+2m (taken oldest first).
    const lags = own[0]!.queueLagMs;
    expect(lags).toHaveLength(3);
    lags.forEach((lag, k) => {
      expect(lag).toBeGreaterThanOrEqual(before - (T + k * MINUTE));
      expect(lag).toBeLessThanOrEqual(after - (T + k * MINUTE));
    });

    // Nothing to do: no report. Stopped: no more reports.
    expect(await drainSegmentQueue(t.db, { now: new Date(T + 10 * MINUTE) })).toBe(0);
    stop();
    await t.db.query(`insert into segment_queue (workspace_id, profile_id) values ($1, $2)`, [ws, ids[0]]);
    expect(await drainSegmentQueue(t.db, { now: new Date(T + 10 * MINUTE) })).toBe(1);
    expect(reports.filter((report) => report.workspaceId === ws)).toHaveLength(1);
  });

  it('reports where the batch’s time went, step by step, and how many queued profiles had changed again while waiting', async () => {
    const { ws, ids } = await vipWorkspace('drain-steps', 3);
    // One profile enters (a transition to write); one was queued again before the drain took it.
    await t.db.query(
      `insert into profile_traits (workspace_id, profile_id, key, value, source_kind, source_name, message_id, observed_at)
       values ($1, $2, 'vip', 'true'::jsonb, 'api', 'test', 'm-vip', $3)`,
      [ws, ids[0], new Date(T)],
    );
    await t.db.query(`insert into segment_queue (workspace_id, profile_id) select $1, p from unnest($2::uuid[]) as p`, [ws, ids]);
    await t.db.query(`update segment_queue set version = version + 1 where workspace_id = $1 and profile_id = $2`, [ws, ids[1]]);

    const reports: DrainBatchReport[] = [];
    const stop = onDrainBatch((report) => reports.push(report));
    expect(await drainSegmentQueue(t.db, { now: new Date(T + MINUTE), batchSize: 10, parallel: true })).toBe(3);
    stop();
    const own = reports.filter((report) => report.workspaceId === ws);
    const steps = Object.assign({}, ...own.map((report) => report.stepsMs)) as Record<string, number>;
    for (const step of ['connect', 'lockAndTake', 'read', 'read.profiles', 'read.events', 'evaluate', 'transitions', 'memberCounts', 'rechecksAndDequeue', 'commit']) {
      expect(steps[step], step).toBeGreaterThanOrEqual(0);
    }
    // The steps one after another (the reads overlap inside `read`) add up to the batch's time.
    for (const report of own) {
      const sequential = Object.entries(report.stepsMs!).filter(([step]) => !step.startsWith('read.')).reduce((sum, [, ms]) => sum + ms, 0);
      expect(sequential).toBeLessThanOrEqual(report.batchMs + 1);
      expect(sequential).toBeGreaterThan(report.batchMs * 0.9);
    }
    expect(own.reduce((sum, report) => sum + (report.changedWhileWaiting ?? 0), 0)).toBe(1);
    expect(own.reduce((sum, report) => sum + (report.changedWhileEvaluated ?? 0), 0)).toBe(0);
    const { rows: left } = await t.db.query('select 1 from segment_queue where workspace_id = $1', [ws]);
    expect(left).toHaveLength(0);
  });
});
