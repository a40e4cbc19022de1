/**
 * Models (issue 10): training time against profile count, and a real-data check.
 *
 * (a) Each model kind (RFM, lifecycle, CLV with a 12-week holdout, churn and purchase
 *     propensity) trained by `runModel` — read from the events, fit, score, write changed traits —
 *     over the generated retail data of bench/segments-data.ts (20 events per profile) at a few
 *     sizes, twice each (the first run writes every trait; the second finds few changes). Sizes:
 *     BENCH_MODELS_PROFILES (comma-separated, default 5000,20000).
 * (b) The BG/NBD and Gamma-Gamma fits alone (no database) on customers simulated from known
 *     parameters: BENCH_MODELS_FIT (default 10000,100000).
 * (c) UCI Online Retail through the import path (as bench/import.ts), identity resolution, then
 *     RFM and CLV fitted on the real transactions with a 12-week holdout: fitted parameters and
 *     expected vs actual repeat purchases. BENCH_MODELS_UCI=0 skips it.
 *
 * 1,000,000 profiles are not run by default (minutes of generation alone on this shared machine);
 * the summary states a linear extrapolation from the measured sizes, labelled as one. To measure
 * them, BENCH_MODELS_DATA_DIR=<a copy of a folder made by `bench/segments-kept.ts prepare`> trains
 * on that folder's data instead of generating (the runs write model traits into it: use a copy).
 *
 * Standalone: `node --import tsx bench/models.ts`; also `npm run bench -- --only models`.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { runMigrations } from 'graphile-worker';
import { resolveQueuedEvents } from '../server/src/identity/resolver.ts';
import { planImport, runImport } from '../server/src/ingest/import/run.ts';
import { fitBgNbd } from '../server/src/models/math/bgnbd.ts';
import { fitGammaGamma } from '../server/src/models/math/gamma-gamma.ts';
import { seededRandom } from '../server/src/models/math/random.ts';
import { simulateCustomers } from '../server/src/models/math/simulate.ts';
import { runModel } from '../server/src/models/run.ts';
import type { ModelConfig } from '../server/src/models/schemas.ts';
import { createModel } from '../server/src/models/store.ts';
import { createPool, withTransaction, type Db } from '../server/src/storage/database.ts';
import { startEmbeddedPostgres } from '../server/src/storage/embedded.ts';
import { migrate } from '../server/src/storage/migrate.ts';
import { createSource, createWorkspace } from '../server/src/workspaces/store.ts';
import { RETAIL_MAPPING } from './import.ts';
import { generateRetailData } from './segments-data.ts';
import { createSegment } from '../server/src/segments/lifecycle.ts';
import { clusterCpuSeconds, freePort, machine, postmasterPid, processCpuSeconds, sampleRss } from './system.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const RETAIL_FILE = path.resolve(ROOT, '../shared/data/uci-online-retail/online_retail.csv.gz');
const round = (value: number, digits = 2) => Math.round(value * 10 ** digits) / 10 ** digits;

const sizes = (name: string, fallback: number[]) => {
  const raw = process.env[name];
  if (!raw) return fallback;
  return raw.split(',').map((s) => Number(s.replaceAll('_', '')));
};

const KINDS: Array<{ key: string; config: ModelConfig }> = [
  { key: 'rfm', config: { kind: 'rfm' } },
  { key: 'lifecycle', config: { kind: 'lifecycle' } },
  { key: 'clv', config: { kind: 'clv', holdoutDays: 84 } },
  { key: 'churn', config: { kind: 'churn' } },
  { key: 'purchase', config: { kind: 'purchase' } },
  // Seeded by the generated members of the top three levels; city, level and points as trait features.
  { key: 'lookalike', config: { kind: 'lookalike', seedSegment: 'bench_vip', size: { percent: 5 }, traits: ['city', 'member_level', 'points'] } as ModelConfig },
];
const SEED_SEGMENT_TEXT = 'trait.member_level in ("白金卡", "钻石卡")';

async function withDatabase<T>(work: (db: Db, pgPid: number) => Promise<T>, keptDir?: string): Promise<T> {
  const dataDir = keptDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'touchpoint-bench-models-'));
  fs.chmodSync(dataDir, 0o755);
  const server = await startEmbeddedPostgres({ dataDir, port: await freePort() });
  const db = createPool(server.url, 10);
  try {
    await migrate(db);
    await runMigrations({ pgPool: db });
    return await work(db, postmasterPid(path.join(dataDir, 'pg')));
  } finally {
    await db.end();
    await server.stop();
    if (!keptDir) fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

/** A data folder made by `bench/segments-kept.ts prepare` (its meta.json), reused instead of generating. */
function keptRetailData(): { dir: string; workspaceId: string; now: Date; profiles: number; events: number } | null {
  const dir = process.env.BENCH_MODELS_DATA_DIR;
  if (!dir) return null;
  const meta = JSON.parse(fs.readFileSync(path.join(dir, 'meta.json'), 'utf8')) as { workspaceId: string; now: string; profiles: number; events: number };
  return { dir, workspaceId: meta.workspaceId, now: new Date(meta.now), profiles: meta.profiles, events: meta.events };
}

interface KindTiming {
  kind: string;
  /** CPU-seconds of this process (read, fit, score, write) and of PostgreSQL during the first run. */
  cpuFirst: { node: number; postgres: number };
  /** Peak RSS of this process during the first run, MB. */
  peakRssMb: number;
  firstSeconds: number;
  againSeconds: number;
  scored: number;
  changedFirst: number;
  changedAgain: number;
  outcome: string;
}

async function trainingTimes(requestedProfiles: number, log: (line: string) => void): Promise<{ profiles: number; events: number; generateSeconds: number; kinds: KindTiming[] }> {
  const kept = keptRetailData();
  const profiles = kept?.profiles ?? requestedProfiles;
  const events = kept?.events ?? profiles * (Number(process.env.BENCH_MODELS_EVENTS_PER_PROFILE) || 20);
  const again = process.env.BENCH_MODELS_AGAIN !== '0';
  const only = process.env.BENCH_MODELS_KINDS ? new Set(process.env.BENCH_MODELS_KINDS.split(',')) : null;
  return withDatabase(async (db, pgPid) => {
    let workspace: { id: string };
    let now: Date;
    let generateSeconds = NaN;
    if (kept) {
      workspace = { id: kept.workspaceId };
      now = kept.now;
      log(`Reusing ${profiles} profiles, ${events} events in ${kept.dir}`);
    } else {
      workspace = await createWorkspace(db, { slug: `bench-models-${profiles}`, name: 'Models bench' });
      now = new Date(Math.floor(Date.now() / 60_000) * 60_000);
      log(`Generating ${profiles} profiles, ${events} events`);
      const generateStarted = performance.now();
      await generateRetailData(db, { workspaceId: workspace.id, profiles, events, now, log });
      await db.query('analyze');
      generateSeconds = round((performance.now() - generateStarted) / 1000, 1);
      log(`  generated in ${generateSeconds} s`);
    }
    const kinds: KindTiming[] = [];
    for (const { key, config } of KINDS) {
      if (only && !only.has(key)) continue;
      if (config.kind === 'lookalike') {
        await createSegment(db, workspace.id, { key: 'bench_vip', name: 'Bench VIP', kind: 'realtime', text: SEED_SEGMENT_TEXT }, now);
      }
      const model = await withTransaction(db, (client) => createModel(client, workspace.id, { key, name: key, config }));
      const timed = async () => {
        const started = process.hrtime.bigint();
        const result = await runModel(db, workspace.id, model.id, { now: now.getTime() });
        return { seconds: Number(process.hrtime.bigint() - started) / 1e9, run: result!.run, outcome: result!.outcome };
      };
      const cpuBefore = { node: processCpuSeconds(), postgres: clusterCpuSeconds(pgPid) };
      const rss = sampleRss();
      const first = await timed();
      const peakRssMb = rss.stop();
      const cpuFirst = { node: round(processCpuSeconds() - cpuBefore.node, 1), postgres: round(clusterCpuSeconds(pgPid) - cpuBefore.postgres, 1) };
      const second = again ? await timed() : null;
      const entry = {
        kind: key,
        firstSeconds: round(first.seconds),
        againSeconds: second ? round(second.seconds) : NaN,
        scored: first.run.profilesScored ?? 0,
        changedFirst: first.run.profilesChanged ?? 0,
        changedAgain: second?.run.profilesChanged ?? 0,
        outcome: first.outcome === 'succeeded' ? 'succeeded' : `${first.outcome}: ${first.run.error}`,
        cpuFirst,
        peakRssMb,
      };
      log(
        `  ${profiles} profiles, ${key}: ${entry.firstSeconds} s first (${entry.scored} scored, ${entry.changedFirst} written; CPU node ${cpuFirst.node} s, PostgreSQL ${cpuFirst.postgres} s; peak RSS ${peakRssMb} MB)` +
          `${second ? `, ${entry.againSeconds} s again (${entry.changedAgain} changed)` : ''} ${entry.outcome}; load ${os.loadavg().map((v) => round(v, 1)).join(' ')}`,
      );
      kinds.push(entry);
    }
    return { profiles, events, generateSeconds, kinds };
  }, kept?.dir);
}

function fitTimes(log: (line: string) => void) {
  return sizes('BENCH_MODELS_FIT', [10_000, 100_000]).map((customers) => {
    const truth = { r: 0.243, alpha: 4.414, a: 0.793, b: 2.426 };
    const spend = { p: 6.25, q: 3.74, gamma: 15.44 };
    const data = simulateCustomers(seededRandom(1), customers, truth, spend, (i) => 27 + (i % 13));
    let started = process.hrtime.bigint();
    const bg = fitBgNbd(data.map((c) => ({ x: c.purchases.length, tx: c.purchases.at(-1) ?? 0, T: c.T })));
    const bgSeconds = Number(process.hrtime.bigint() - started) / 1e9;
    const repeaters = data.filter((c) => c.purchases.length > 0).map((c) => ({ x: c.purchases.length, m: c.values.slice(1).reduce((a, b) => a + b, 0) / c.purchases.length }));
    started = process.hrtime.bigint();
    const gg = fitGammaGamma(repeaters);
    const ggSeconds = Number(process.hrtime.bigint() - started) / 1e9;
    const entry = {
      customers,
      bgnbdSeconds: round(bgSeconds),
      bgnbd: Object.fromEntries(Object.entries(bg.params).map(([k, v]) => [k, round(v, 3)])),
      repeaters: repeaters.length,
      gammaGammaSeconds: round(ggSeconds),
      gammaGamma: Object.fromEntries(Object.entries(gg.params).map(([k, v]) => [k, round(v, 3)])),
    };
    log(`  fit ${customers} simulated customers: BG/NBD ${entry.bgnbdSeconds} s ${JSON.stringify(entry.bgnbd)}, Gamma-Gamma ${entry.gammaGammaSeconds} s ${JSON.stringify(entry.gammaGamma)}`);
    return entry;
  });
}

async function uciCheck(log: (line: string) => void): Promise<Record<string, unknown>> {
  return withDatabase(async (db) => {
    const workspace = await createWorkspace(db, { slug: 'bench-uci', name: 'UCI', timeZone: 'Europe/London' });
    const { writeKey } = await createSource(db, workspace.id, { name: 'Retail export', kind: 'crm_import' });
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'touchpoint-bench-models-uci-'));
    try {
      const plan = planImport({
        file: RETAIL_FILE,
        writeKey: writeKey.key,
        type: 'track',
        event: 'Order Completed',
        timeZone: 'Europe/London',
        onlyMapped: true,
        map: RETAIL_MAPPING,
        rejectsFile: path.join(dataDir, 'retail.rejects.ndjson'),
      });
      const imported = await runImport(db, plan, {});
      log(`  UCI: imported ${imported.stored} rows`);
      while ((await resolveQueuedEvents(db, workspace.id, 5000)) > 0);
      await db.query('analyze');
      // The data ends 2011-12-09; train as of the next day.
      const now = Date.parse('2011-12-10T00:00:00Z');
      const results: Record<string, unknown> = { imported: imported.stored };
      for (const { key, config } of [
        { key: 'rfm', config: { kind: 'rfm' } as ModelConfig },
        { key: 'clv', config: { kind: 'clv', holdoutDays: 84, horizonDays: 365, annualDiscountRate: 0.1 } as ModelConfig },
      ]) {
        const model = await withTransaction(db, (client) => createModel(client, workspace.id, { key, name: key, config }));
        const started = process.hrtime.bigint();
        const result = await runModel(db, workspace.id, model.id, { now });
        const seconds = round(Number(process.hrtime.bigint() - started) / 1e9);
        results[key] = { seconds, outcome: result!.outcome, error: result!.run.error, parameters: result!.run.parameters, metrics: result!.run.metrics, diagnostics: result!.run.diagnostics };
        log(`  UCI ${key}: ${seconds} s, ${result!.outcome} ${JSON.stringify(result!.run.metrics)}`);
      }
      return results;
    } finally {
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });
}

export async function benchModels(options: { log?: (line: string) => void } = {}): Promise<Record<string, unknown>> {
  const log = options.log ?? ((line: string) => console.error(line));
  const host = machine();
  const training = [];
  const kept = keptRetailData();
  for (const profiles of kept ? [kept.profiles] : sizes('BENCH_MODELS_PROFILES', [5000, 20_000])) training.push(await trainingTimes(profiles, log));
  const fits = process.env.BENCH_MODELS_FIT === '0' ? [] : fitTimes(log);
  const uci = process.env.BENCH_MODELS_UCI === '0' ? null : await uciCheck(log);
  // Linear extrapolation from the largest measured size (the per-profile work is linear: one
  // grouped scan of the events, a fit whose cost grows with the distinct summaries, one pass of
  // scoring and writing).
  const largest = training.at(-1)!;
  const extrapolated = Object.fromEntries(largest.kinds.map((k) => [k.kind, round((k.firstSeconds * 1_000_000) / largest.profiles, 0)]));
  const summary = [
    ...training.flatMap((t) => t.kinds.map((k) => `${t.profiles} profiles / ${t.events} events, ${k.kind}: first ${k.firstSeconds} s, again ${k.againSeconds} s (${k.outcome})`)),
    ...fits.map((f) => `fit on ${f.customers} simulated customers: BG/NBD ${f.bgnbdSeconds} s, Gamma-Gamma ${f.gammaGammaSeconds} s`),
    ...(largest.profiles >= 1_000_000
      ? []
      : [`EXTRAPOLATION (linear from ${largest.profiles} profiles, not measured) to 1,000,000 profiles, first run: ${Object.entries(extrapolated).map(([k, v]) => `${k} ~${v} s`).join(', ')}`]),
    `machine: ${host.nproc} cores, load ${host.loadAverageAtStart.join(' ')} at start`,
  ];
  return { summary, machine: host, training, fits, extrapolatedSecondsAt1M: extrapolated, uci };
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const result = await benchModels();
  console.log(JSON.stringify(result, null, 2));
}
