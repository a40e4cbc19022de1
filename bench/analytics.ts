/**
 * Analytics benchmark on one embedded PostgreSQL in a temporary folder, over the retail data of
 * bench/segments-data.ts (profiles resolved, events in monthly partitions): funnels (3 and 10
 * steps, with breakdown), 12-week retention, weekly lifecycle, top paths, a daily trend and Markov
 * attribution, each run RUNS times through the same functions the API calls; medians of wall time
 * and of CPU-seconds (PostgreSQL cluster + this process) reported, with the load average.
 * Then the events are exported (COPY → CSV → Parquet) and the funnels run again in DuckDB
 * (bench/analytics-duckdb.ts) as a reference engine: both must give the same counts; the ratio is reported.
 *
 *   npm run bench -- --only analytics
 *   BENCH_ANALYTICS_EVENTS=20000000 (default, the issue's size) BENCH_ANALYTICS_PROFILES (default events ÷ 20)
 *   BENCH_ANALYTICS_RUNS=3 BENCH_ANALYTICS_DUCKDB=0 (skip the reference engine) BENCH_ANALYTICS_DUCKDB_THREADS=2
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { runAttribution, type AttributionQuery, type AttributionResult } from '../server/src/analytics/attribution.ts';
import { runFunnel, type FunnelResult } from '../server/src/analytics/funnel.ts';
import { runLifecycle, type LifecycleQuery, type LifecycleResult } from '../server/src/analytics/lifecycle.ts';
import { runPaths, type PathsQuery, type PathsResult } from '../server/src/analytics/paths.ts';
import { runRetention } from '../server/src/analytics/retention.ts';
import { runTrend } from '../server/src/analytics/trends.ts';
import { createPool } from '../server/src/storage/database.ts';
import { startEmbeddedPostgres } from '../server/src/storage/embedded.ts';
import { migrate } from '../server/src/storage/migrate.ts';
import { createWorkspace } from '../server/src/workspaces/store.ts';
import { ColumnarStore } from '../server/src/analytics/columnar/store.ts';
import { csvToParquet, duckFunnel, openDuck, type DuckFunnel } from './analytics-duckdb.ts';
import { generateRetailData } from './segments-data.ts';
import { clusterCpuSeconds, freePort, machine, postmasterPid, processCpuSeconds } from './system.ts';

function envCount(name: string): number | undefined {
  const raw = process.env[name];
  if (!raw) return undefined;
  const value = Number(raw.replaceAll('_', ''));
  if (!Number.isInteger(value) || value < 0) throw new Error(`${name} must be a non-negative integer, got "${raw}"`);
  return value;
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const round = (ms: number) => Math.round(ms);
const cpuRound = (seconds: number) => Math.round(seconds * 100) / 100;
const load = () => os.loadavg().map((l) => Number(l.toFixed(2)));

interface Timed {
  name: string;
  medianMs: number;
  runsMs: number[];
  /** CPU-seconds per run (PostgreSQL cluster, this process: Node and DuckDB's threads), medians. */
  postgresCpuS: number;
  processCpuS: number;
  loadAverage: number[];
}

async function timed(name: string, runs: number, run: () => Promise<unknown>, pgCpu: () => number, log: (line: string) => void): Promise<{ timing: Timed; last: unknown }> {
  const runsMs: number[] = [];
  const pgS: number[] = [];
  const procS: number[] = [];
  let last: unknown;
  for (let i = 0; i < runs; i++) {
    const pg0 = pgCpu();
    const p0 = processCpuSeconds();
    const started = performance.now();
    last = await run();
    runsMs.push(round(performance.now() - started));
    pgS.push(pgCpu() - pg0);
    procS.push(processCpuSeconds() - p0);
  }
  const timing = { name, medianMs: median(runsMs), runsMs, postgresCpuS: cpuRound(median(pgS)), processCpuS: cpuRound(median(procS)), loadAverage: load() };
  log(`  ${name}: median ${timing.medianMs} ms (${runsMs.join(', ')}), CPU ${timing.postgresCpuS} s PostgreSQL + ${timing.processCpuS} s process, load ${timing.loadAverage.join(' ')}`);
  return { timing, last };
}

export async function benchAnalytics(): Promise<Record<string, unknown>> {
  const log = (line: string) => console.error(line);
  const events = envCount('BENCH_ANALYTICS_EVENTS') ?? 20_000_000;
  const profiles = envCount('BENCH_ANALYTICS_PROFILES') ?? Math.max(1, Math.round(events / 20));
  const runs = envCount('BENCH_ANALYTICS_RUNS') || 3;
  const withDuck = process.env.BENCH_ANALYTICS_DUCKDB !== '0';
  const duckThreads = envCount('BENCH_ANALYTICS_DUCKDB_THREADS') || 2;
  const loadAtStart = load();
  // BENCH_ANALYTICS_KEEP=<folder>: the generated cluster is kept there (20M events take most of an
  // hour to generate on a loaded machine) and reused by later runs of the same sizes.
  const keep = process.env.BENCH_ANALYTICS_KEEP;
  const dataDir = keep ? path.resolve(keep) : fs.mkdtempSync(path.join(os.tmpdir(), 'touchpoint-bench-analytics-'));
  fs.mkdirSync(dataDir, { recursive: true });
  fs.chmodSync(dataDir, 0o755);
  const marker = path.join(dataDir, 'bench-analytics.json');
  const server = await startEmbeddedPostgres({ dataDir, port: await freePort() });
  const db = createPool(server.url);
  const pid = postmasterPid(path.join(dataDir, 'pg'));
  const pgCpu = () => clusterCpuSeconds(pid);
  try {
    await migrate(db);
    let kept: { workspaceId: string; now: string; seconds: number; vacuumSeconds: number; profiles: number; events: number } | undefined;
    if (keep && fs.existsSync(marker)) {
      kept = JSON.parse(fs.readFileSync(marker, 'utf8')) as typeof kept;
      if (kept!.events !== events || kept!.profiles !== profiles) throw new Error(`${dataDir} holds ${kept!.events} events / ${kept!.profiles} profiles, not ${events} / ${profiles}`);
      log(`Reusing ${events.toLocaleString('en')} events kept in ${dataDir} (generated ${kept!.now})`);
    }
    let workspace: { id: string };
    let data: { now: string; seconds: number };
    let vacuumSeconds: number;
    if (kept) {
      workspace = { id: kept.workspaceId };
      data = { now: kept.now, seconds: kept.seconds };
      vacuumSeconds = kept.vacuumSeconds;
    } else {
      workspace = await createWorkspace(db, { slug: 'bench-analytics', name: 'Bench analytics', timeZone: 'Asia/Shanghai' });
      log(`Generating ${profiles.toLocaleString('en')} profiles and ${events.toLocaleString('en')} events …`);
      data = await generateRetailData(db, { workspaceId: workspace.id, profiles, events, log });
      const vacuumStarted = performance.now();
      // Index-only scans (0041) need the visibility map that vacuum sets; autovacuum does it in service.
      await db.query('vacuum analyze');
      vacuumSeconds = Math.round((performance.now() - vacuumStarted) / 100) / 10;
      if (keep) fs.writeFileSync(marker, JSON.stringify({ workspaceId: workspace.id, now: data.now, seconds: data.seconds, vacuumSeconds, profiles, events }));
    }
    if (process.env.BENCH_ANALYTICS_GENERATE_ONLY === '1') return { profiles, events, generatedSeconds: data.seconds, vacuumSeconds };
    const now = new Date(data.now);
    const shop = ['Product Viewed', 'Product Added', 'Checkout Started', 'Order Completed'].map((event) => ({ event }));
    const ten = [...shop, { event: 'App Opened' }, ...shop, { event: 'Coupon Redeemed' }];
    // BENCH_ANALYTICS_BUDGET_MS: past the API's 60 s cap (the bench calls the functions directly), for the PostgreSQL path at 20M under load.
    const base = { range: { lastDays: 90 }, timeBudgetMs: envCount('BENCH_ANALYTICS_BUDGET_MS') ?? 60_000 };
    const funnels = {
      three: { ...base, steps: [shop[0]!, shop[1]!, shop[3]!], conversionWindow: { amount: 1, unit: 'days' as const } },
      threeBySource: { ...base, steps: [shop[0]!, shop[1]!, shop[3]!], conversionWindow: { amount: 1, unit: 'days' as const }, breakdown: { kind: 'source' as const } },
      tenByCategory: { ...base, steps: ten, conversionWindow: { amount: 30, unit: 'days' as const }, breakdown: { kind: 'property' as const, property: 'category' } },
    };
    const lifecycleCase = 'lifecycle, weekly, 12 weeks (any action)';
    const lifecycleQuery: LifecycleQuery = { range: { lastDays: 84 }, timeBudgetMs: 60_000, interval: 'week' };
    const attributionQuery: AttributionQuery = {
      range: { lastDays: 30 },
      timeBudgetMs: 60_000,
      conversion: shop[3]!,
      valueProperty: 'revenue',
      touchpoints: [{ type: 'page' }, { type: 'screen' }, { event: 'App Opened' }, { event: 'Store Visit' }, { event: 'Customer Service Called' }],
      channel: { kind: 'source' },
      lookback: { amount: 7, unit: 'days' },
    };
    const PATHS_CASE = 'top paths after Product Added, 5 steps, 30 days';
    const pathsQuery: PathsQuery = { range: { lastDays: 30 }, timeBudgetMs: 60_000, anchor: shop[1]!, steps: 5 };
    let pgPaths: PathsResult | undefined;
    const cases: Array<{ name: string; funnel?: keyof typeof funnels; run: () => Promise<unknown> }> = [
      { name: 'funnel 3 steps, 90 days, 1-day window', funnel: 'three', run: () => runFunnel(db, workspace.id, funnels.three, now) },
      { name: 'funnel 3 steps, 90 days, breakdown by source kind', funnel: 'threeBySource', run: () => runFunnel(db, workspace.id, funnels.threeBySource, now) },
      { name: 'funnel 10 steps, 90 days, 30-day window, breakdown by category', funnel: 'tenByCategory', run: () => runFunnel(db, workspace.id, funnels.tenByCategory, now) },
      {
        name: 'retention 12 weeks (first order → order)',
        run: () => runRetention(db, workspace.id, { range: { lastDays: 84 }, timeBudgetMs: 60_000, startEvent: shop[3]!, returnEvent: shop[3]!, interval: 'week', periods: 12 }, now),
      },
      { name: lifecycleCase, run: () => runLifecycle(db, workspace.id, lifecycleQuery, now) },
      { name: PATHS_CASE, run: () => runPaths(db, workspace.id, pathsQuery, now, { columnar: null }) },
      {
        name: 'trend: daily orders, unique buyers, revenue, 90 days',
        run: () =>
          runTrend(db, workspace.id, {
            ...base,
            interval: 'day',
            series: [{ event: shop[3]! }, { event: shop[3]!, measure: 'unique' }, { event: shop[3]!, measure: 'sum', property: 'revenue' }],
          }, now),
      },
      {
        name: 'attribution, six rule models + Markov, 30 days',
        run: () => runAttribution(db, workspace.id, attributionQuery, now, { columnar: null }),
      },
    ];
    const results: Timed[] = [];
    const funnelResults = new Map<keyof typeof funnels, FunnelResult>();
    let lifecyclePostgres: LifecycleResult | undefined;
    let postgresAttribution: AttributionResult | undefined;
    // BENCH_ANALYTICS_CASES=funnel,paths: only the cases whose name starts with one of these.
    const only = process.env.BENCH_ANALYTICS_CASES?.split(',').map((part) => part.trim()).filter(Boolean);
    for (const benchCase of cases.filter((c) => !only || only.some((prefix) => c.name.startsWith(prefix)))) {
      const { timing, last } = await timed(benchCase.name, runs, benchCase.run, pgCpu, log);
      results.push(timing);
      if (benchCase.funnel) funnelResults.set(benchCase.funnel, last as FunnelResult);
      if (benchCase.name === lifecycleCase) lifecyclePostgres = last as LifecycleResult;
      if (benchCase.name.startsWith('attribution')) postgresAttribution = last as AttributionResult;
      if (benchCase.name === PATHS_CASE) pgPaths = last as PathsResult;
    }

    // The columnar engine (server/src/analytics/columnar): the DuckDB copy in the data folder, built
    // (or caught up) from PostgreSQL by its sync, then the same funnels through runFunnel.
    const columnar: Array<Timed & { same: boolean; postgresMs?: number; ratioCpu?: number }> = [];
    let columnarBuild: { seconds: number; cpuPg: number; cpuProcess: number; events: number; fileMb: number } | undefined;
    if (process.env.BENCH_ANALYTICS_COLUMNAR !== '0') {
      const store = await ColumnarStore.open(path.join(dataDir, 'analytics', 'events.duckdb'), { threads: duckThreads });
      try {
        const pg0 = pgCpu();
        const p0 = processCpuSeconds();
        const started = performance.now();
        const outcome = await store.sync(db);
        const state = await store.state();
        columnarBuild = {
          seconds: Math.round((performance.now() - started) / 100) / 10,
          cpuPg: cpuRound(pgCpu() - pg0),
          cpuProcess: cpuRound(processCpuSeconds() - p0),
          events: state.events,
          fileMb: Math.round(fs.statSync(store.path).size / 1e6),
        };
        log(`  columnar copy: ${outcome.copied} events copied in ${columnarBuild.seconds} s (CPU ${columnarBuild.cpuPg} pg + ${columnarBuild.cpuProcess} process), ${state.events} events, ${columnarBuild.fileMb} MB`);
        store.maxLagMs = 24 * 3_600_000;
        for (const key of Object.keys(funnels) as Array<keyof typeof funnels>) {
          const name = `columnar ${cases.find((c) => c.funnel === key)!.name}`;
          const { timing, last } = await timed(name, runs, () => runFunnel(db, workspace.id, funnels[key], now, { columnar: store }), pgCpu, log);
          const answer = last as FunnelResult;
          if (answer.engine?.name !== 'columnar') throw new Error(`${name}: answered by ${answer.engine?.name} (${answer.engine?.reason})`);
          const pg = funnelResults.get(key);
          const counts = (result: FunnelResult) => JSON.stringify([result.steps.map((step) => step.count), (result.breakdown ?? []).map((group) => [group.value, group.steps.map((step) => step.count)])]);
          const same = pg ? counts(pg) === counts(answer) : true;
          if (pg && !same) log(`  MISMATCH ${name}: PostgreSQL ${counts(pg)}, columnar ${counts(answer)}`);
          const pgTiming = results.find((r) => r.name === cases.find((c) => c.funnel === key)!.name);
          columnar.push({
            ...timing,
            same,
            ...(pgTiming
              ? { postgresMs: pgTiming.medianMs, ratioCpu: Math.round(((pgTiming.postgresCpuS + pgTiming.processCpuS) / Math.max(0.01, timing.postgresCpuS + timing.processCpuS)) * 10) / 10 }
              : {}),
          });
        }
        // Lifecycle on the copy (analytics/columnar/lifecycle.ts), checked against the PostgreSQL answer when that case ran.
        if (!only || only.some((prefix) => lifecycleCase.startsWith(prefix) || `columnar ${lifecycleCase}`.startsWith(prefix))) {
          const name = `columnar ${lifecycleCase}`;
          const { timing, last } = await timed(name, runs, () => runLifecycle(db, workspace.id, lifecycleQuery, now, { columnar: store }), pgCpu, log);
          const answer = last as LifecycleResult;
          if (answer.engine?.name !== 'columnar') throw new Error(`${name}: answered by ${answer.engine?.name} (${answer.engine?.reason})`);
          const periods = (result: LifecycleResult) => JSON.stringify(result.periods);
          const same = lifecyclePostgres ? periods(lifecyclePostgres) === periods(answer) : true;
          if (lifecyclePostgres && !same) log(`  MISMATCH ${name}: PostgreSQL ${periods(lifecyclePostgres)}, columnar ${periods(answer)}`);
          const pgTiming = results.find((r) => r.name === lifecycleCase);
          columnar.push({
            ...timing,
            same,
            ...(pgTiming
              ? { postgresMs: pgTiming.medianMs, ratioCpu: Math.round(((pgTiming.postgresCpuS + pgTiming.processCpuS) / Math.max(0.01, timing.postgresCpuS + timing.processCpuS)) * 10) / 10 }
              : {}),
          });
        }
        // Attribution's journeys from the copy (the models in TypeScript as on PostgreSQL); same answer to 1e-6.
        const attributionCase = cases.find((c) => c.name.startsWith('attribution'))!;
        if (!only || only.some((prefix) => attributionCase.name.startsWith(prefix))) {
          const name = `columnar ${attributionCase.name}`;
          const { timing, last } = await timed(name, runs, () => runAttribution(db, workspace.id, attributionQuery, now, { columnar: store }), pgCpu, log);
          const answer = last as AttributionResult;
          if (answer.engine?.name !== 'columnar') throw new Error(`${name}: answered by ${answer.engine?.name} (${answer.engine?.reason})`);
          const rounded = (result: AttributionResult) =>
            JSON.stringify({ ...result, engine: undefined }, (_key, value: unknown) => (typeof value === 'number' ? Math.round(value * 1e6) / 1e6 : value));
          const same = postgresAttribution ? rounded(postgresAttribution) === rounded(answer) : true;
          if (!same) log(`  MISMATCH ${name}: PostgreSQL ${rounded(postgresAttribution!)}, columnar ${rounded(answer)}`);
          const pgTiming = results.find((r) => r.name === attributionCase.name);
          columnar.push({
            ...timing,
            same,
            ...(pgTiming
              ? { postgresMs: pgTiming.medianMs, ratioCpu: Math.round(((pgTiming.postgresCpuS + pgTiming.processCpuS) / Math.max(0.01, timing.postgresCpuS + timing.processCpuS)) * 10) / 10 }
              : {}),
          });
        }
        // Paths on the columnar copy, when the paths case ran on PostgreSQL (or no case filter): the whole answer must be equal.
        if (!only || only.some((prefix) => PATHS_CASE.startsWith(prefix))) {
          const name = `columnar ${PATHS_CASE}`;
          const { timing, last } = await timed(name, runs, () => runPaths(db, workspace.id, pathsQuery, now, { columnar: store }), pgCpu, log);
          const answer = last as PathsResult;
          if (answer.engine?.name !== 'columnar') throw new Error(`${name}: answered by ${answer.engine?.name} (${answer.engine?.reason})`);
          const comparable = (result: PathsResult) => JSON.stringify({ ...result, engine: undefined });
          const same = pgPaths ? comparable(pgPaths) === comparable(answer) : true;
          if (pgPaths && !same) log(`  MISMATCH ${name}: PostgreSQL ${comparable(pgPaths).slice(0, 400)}, columnar ${comparable(answer).slice(0, 400)}`);
          const pgTiming = results.find((r) => r.name === PATHS_CASE);
          columnar.push({
            ...timing,
            same,
            ...(pgTiming
              ? { postgresMs: pgTiming.medianMs, ratioCpu: Math.round(((pgTiming.postgresCpuS + pgTiming.processCpuS) / Math.max(0.01, timing.postgresCpuS + timing.processCpuS)) * 10) / 10 }
              : {}),
          });
        }
      } finally {
        store.close();
      }
    }

    const reference: Array<Timed & { same: boolean; postgresMs: number; ratioWall: number; ratioCpu: number }> = [];
    let exportSeconds: { csv: number; parquet: number; parquetMb: number } | undefined;
    if (withDuck) {
      const exportDir = path.join(dataDir, 'export');
      // A kept data folder holds the previous run's export: start it afresh.
      fs.rmSync(exportDir, { recursive: true, force: true });
      fs.mkdirSync(exportDir);
      fs.chmodSync(exportDir, 0o777); // the server (another OS user) writes the CSV
      const csv = path.join(exportDir, 'events.csv');
      const parquet = path.join(exportDir, 'events.parquet');
      let started = performance.now();
      await db.query(
        `copy (select e.profile_id, e.type, e.event, (extract(epoch from e.timestamp) * 1000000)::bigint as ts_us, e.seq, s.kind as source_kind,
                      e.properties ->> 'category' as category
                 from events e join sources s on s.workspace_id = e.workspace_id and s.id = e.source_id
                where e.workspace_id = '${workspace.id}') to '${csv}' with (format csv, header)`,
      );
      const csvSeconds = (performance.now() - started) / 1000;
      const duck = await openDuck(duckThreads);
      try {
        started = performance.now();
        await csvToParquet(duck.connection, csv, parquet);
        exportSeconds = { csv: Math.round(csvSeconds * 10) / 10, parquet: Math.round((performance.now() - started) / 100) / 10, parquetMb: Math.round(fs.statSync(parquet).size / 1e6) };
        fs.rmSync(csv);
        log(`  export: COPY to CSV ${exportSeconds.csv} s, CSV → Parquet ${exportSeconds.parquet} s (${exportSeconds.parquetMb} MB)`);
        for (const [key, name, breakdown] of [
          ['three', 'DuckDB funnel 3 steps, 90 days, 1-day window', undefined],
          ['threeBySource', 'DuckDB funnel 3 steps, 90 days, breakdown by source kind', 'source_kind'],
          ['tenByCategory', 'DuckDB funnel 10 steps, 90 days, 30-day window, breakdown by category', 'category'],
        ] as const) {
          const pg = funnelResults.get(key);
          if (!pg) continue;
          const query = funnels[key];
          const spec: DuckFunnel = {
            steps: query.steps.map((step) => step.event),
            fromMs: Date.parse(pg.range.from),
            toMs: Date.parse(pg.range.to),
            windowMs: query.conversionWindow.amount * 86_400_000,
            ...(breakdown ? { breakdown } : {}),
          };
          const { timing, last } = await timed(name, runs, () => duckFunnel(duck.connection, parquet, spec), () => 0, log);
          const answer = last as Awaited<ReturnType<typeof duckFunnel>>;
          const pgCounts = pg.steps.map((step) => step.count);
          let same = JSON.stringify(pgCounts) === JSON.stringify(answer.counts);
          for (const group of pg.breakdown ?? []) same &&= JSON.stringify(group.steps.map((step) => step.count)) === JSON.stringify(answer.breakdown.get(group.value));
          if (!same) log(`  MISMATCH ${name}: PostgreSQL ${JSON.stringify(pgCounts)}, DuckDB ${JSON.stringify(answer.counts)}`);
          const pgTiming = results.find((r) => r.name === cases.find((c) => c.funnel === key)!.name)!;
          const columnarTiming = columnar.find((r) => r.name === `columnar ${pgTiming.name}`);
          if (columnarTiming) log(`  columnar ÷ DuckDB reference, CPU: ${Math.round(((columnarTiming.postgresCpuS + columnarTiming.processCpuS) / Math.max(0.01, timing.processCpuS)) * 10) / 10}×`);
          reference.push({
            ...timing,
            same,
            postgresMs: pgTiming.medianMs,
            ratioWall: Math.round((pgTiming.medianMs / timing.medianMs) * 10) / 10,
            ratioCpu: Math.round(((pgTiming.postgresCpuS + pgTiming.processCpuS) / Math.max(0.01, timing.processCpuS)) * 10) / 10,
          });
        }
      } finally {
        duck.close();
      }
    }
    const summary = [
      `data: ${profiles.toLocaleString('en')} profiles, ${events.toLocaleString('en')} events generated in ${data.seconds} s, vacuum analyze ${vacuumSeconds} s`,
      `load average at start: ${loadAtStart.join(' ')}`,
      ...results.map((r) => `${r.name.padEnd(66)} median ${String(r.medianMs).padStart(6)} ms  CPU ${r.postgresCpuS} s pg + ${r.processCpuS} s node  runs ${r.runsMs.join(', ')}`),
      ...(columnarBuild ? [`columnar copy: ${columnarBuild.events} events, ${columnarBuild.seconds} s, CPU ${columnarBuild.cpuPg} s pg + ${columnarBuild.cpuProcess} s node, ${columnarBuild.fileMb} MB`] : []),
      ...columnar.map(
        (r) => `${r.name.padEnd(75)} median ${String(r.medianMs).padStart(6)} ms  CPU ${r.postgresCpuS} s pg + ${r.processCpuS} s node  same answer: ${r.same ? 'yes' : 'NO'}${r.ratioCpu ? `  PostgreSQL/columnar CPU ${r.ratioCpu}×` : ''}`,
      ),
      ...(exportSeconds ? [`export: COPY → CSV ${exportSeconds.csv} s, CSV → Parquet ${exportSeconds.parquet} s, ${exportSeconds.parquetMb} MB`] : []),
      ...reference.map(
        (r) =>
          `${r.name.padEnd(66)} median ${String(r.medianMs).padStart(6)} ms  CPU ${r.processCpuS} s  same answer: ${r.same ? 'yes' : 'NO'}  PostgreSQL/DuckDB wall ${r.ratioWall}×, CPU ${r.ratioCpu}×`,
      ),
      `load average at the end: ${load().join(' ')}`,
    ];
    return { machine: machine(), profiles, events, runs, loadAtStart, results, columnarBuild, columnar, export: exportSeconds, reference, summary };
  } finally {
    await db.end();
    await server.stop();
    if (!keep) fs.rmSync(dataDir, { recursive: true, force: true });
  }
}
