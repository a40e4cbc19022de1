/**
 * Analytics benchmark on one embedded PostgreSQL in a temporary folder, over the retail data of
 * bench/segments-data.ts (profiles resolved, events in monthly partitions): funnels (3 and 10
 * steps, with breakdown), 12-week retention, top paths, a daily trend and Markov attribution, each
 * run RUNS times through the same functions the API calls; medians reported.
 *
 *   npm run bench -- --only analytics
 *   BENCH_ANALYTICS_PROFILES=100000 BENCH_ANALYTICS_EVENTS=2000000 (defaults)
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { runAttribution } from '../server/src/analytics/attribution.ts';
import { runFunnel } from '../server/src/analytics/funnel.ts';
import { runPaths } from '../server/src/analytics/paths.ts';
import { runRetention } from '../server/src/analytics/retention.ts';
import { runTrend } from '../server/src/analytics/trends.ts';
import { createPool } from '../server/src/storage/database.ts';
import { startEmbeddedPostgres } from '../server/src/storage/embedded.ts';
import { migrate } from '../server/src/storage/migrate.ts';
import { createWorkspace } from '../server/src/workspaces/store.ts';
import { generateRetailData } from './segments-data.ts';
import { freePort, machine } from './system.ts';

const RUNS = 3;

function envCount(name: string): number | undefined {
  const raw = process.env[name];
  if (!raw) return undefined;
  const value = Number(raw.replaceAll('_', ''));
  if (!Number.isInteger(value) || value <= 0) throw new Error(`${name} must be a positive integer, got "${raw}"`);
  return value;
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const round = (ms: number) => Math.round(ms);

export async function benchAnalytics(): Promise<Record<string, unknown>> {
  const log = (line: string) => console.error(line);
  const profiles = envCount('BENCH_ANALYTICS_PROFILES') ?? 100_000;
  const events = envCount('BENCH_ANALYTICS_EVENTS') ?? 2_000_000;
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'touchpoint-bench-analytics-'));
  fs.chmodSync(dataDir, 0o755);
  const server = await startEmbeddedPostgres({ dataDir, port: await freePort() });
  const db = createPool(server.url);
  try {
    await migrate(db);
    const workspace = await createWorkspace(db, { slug: 'bench-analytics', name: 'Bench analytics', timeZone: 'Asia/Shanghai' });
    log(`Generating ${profiles.toLocaleString('en')} profiles and ${events.toLocaleString('en')} events …`);
    const data = await generateRetailData(db, { workspaceId: workspace.id, profiles, events, log });
    await db.query('analyze');
    const now = new Date(data.now);
    const shop = ['Product Viewed', 'Product Added', 'Checkout Started', 'Order Completed'].map((event) => ({ event }));
    const ten = [
      ...shop,
      { event: 'App Opened' },
      { event: 'Product Viewed' },
      { event: 'Product Added' },
      { event: 'Checkout Started' },
      { event: 'Order Completed' },
      { event: 'Coupon Redeemed' },
    ];
    const cases: Array<{ name: string; run: () => Promise<unknown> }> = [
      { name: 'funnel 3 steps, 90 days', run: () => runFunnel(db, workspace.id, { range: { lastDays: 90 }, timeBudgetMs: 60_000, steps: [shop[0]!, shop[1]!, shop[3]!], conversionWindow: { amount: 1, unit: 'days' } }, now) },
      {
        name: 'funnel 3 steps, 90 days, breakdown by source kind',
        run: () => runFunnel(db, workspace.id, { range: { lastDays: 90 }, timeBudgetMs: 60_000, steps: [shop[0]!, shop[1]!, shop[3]!], breakdown: { kind: 'source' } }, now),
      },
      {
        name: 'funnel 10 steps, 90 days, breakdown by category',
        run: () => runFunnel(db, workspace.id, { range: { lastDays: 90 }, timeBudgetMs: 60_000, steps: ten, conversionWindow: { amount: 30, unit: 'days' }, breakdown: { kind: 'property', property: 'category' } }, now),
      },
      {
        name: 'retention 12 weeks (first order → order)',
        run: () =>
          runRetention(db, workspace.id, { range: { lastDays: 84 }, timeBudgetMs: 60_000, startEvent: shop[3]!, returnEvent: shop[3]!, interval: 'week', periods: 12 }, now),
      },
      { name: 'top paths after Product Added, 5 steps, 30 days', run: () => runPaths(db, workspace.id, { range: { lastDays: 30 }, timeBudgetMs: 60_000, anchor: shop[1]!, steps: 5 }, now) },
      {
        name: 'trend: daily orders, unique buyers, revenue, 90 days',
        run: () =>
          runTrend(db, workspace.id, {
            range: { lastDays: 90 },
            timeBudgetMs: 60_000,
            interval: 'day',
            series: [{ event: shop[3]! }, { event: shop[3]!, measure: 'unique' }, { event: shop[3]!, measure: 'sum', property: 'revenue' }],
          }, now),
      },
      {
        name: 'attribution, all models incl. Markov, 30 days',
        run: () =>
          runAttribution(db, workspace.id, {
            range: { lastDays: 30 },
            timeBudgetMs: 60_000,
            conversion: shop[3]!,
            valueProperty: 'revenue',
            touchpoints: [{ type: 'page' }, { type: 'screen' }, { event: 'App Opened' }, { event: 'Store Visit' }, { event: 'Customer Service Called' }],
            channel: { kind: 'source' },
            lookback: { amount: 7, unit: 'days' },
          }, now),
      },
    ];
    const results: Array<{ name: string; medianMs: number; runsMs: number[] }> = [];
    for (const benchCase of cases) {
      const runsMs: number[] = [];
      for (let run = 0; run < RUNS; run++) {
        const started = performance.now();
        await benchCase.run();
        runsMs.push(round(performance.now() - started));
      }
      results.push({ name: benchCase.name, medianMs: median(runsMs), runsMs });
      log(`  ${benchCase.name}: median ${median(runsMs)} ms (${runsMs.join(', ')})`);
    }
    const summary = [
      `data: ${profiles.toLocaleString('en')} profiles, ${events.toLocaleString('en')} events generated in ${data.seconds} s`,
      ...results.map((r) => `${r.name.padEnd(56)} median ${String(r.medianMs).padStart(6)} ms   runs ${r.runsMs.join(', ')}`),
      `load average at the end: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`,
    ];
    return { machine: machine(), profiles, events, results, summary };
  } finally {
    await db.end();
    await server.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}
