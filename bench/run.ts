/**
 * `npm run bench`: runs every benchmark in sequence (ingest, then import when bench/import.ts
 * exists), prints a summary and writes bench/results/<name>-<date>.json.
 *
 *   npm run bench                        all benchmarks
 *   npm run bench -- --only ingest       one of them (ingest | import | identity | segments | models | decide | journeys)
 *   BENCH_EVENTS=100000 npm run bench    fewer events (ingest default: 1,000,000)
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { benchIngest } from './ingest.ts';

type Benchmark = () => Promise<Record<string, unknown>>;

const HERE = path.dirname(fileURLToPath(import.meta.url));
const RESULTS = path.join(HERE, 'results');
const NAMES = ['ingest', 'import', 'identity', 'segments', 'models', 'decide', 'journeys', 'channels', 'analytics'] as const;

function eventsOverride(): number | undefined {
  const raw = process.env.BENCH_EVENTS;
  if (raw === undefined || raw === '') return undefined;
  const value = Number(raw.replaceAll('_', ''));
  if (!Number.isInteger(value) || value <= 0) throw new Error(`BENCH_EVENTS must be a positive integer, got "${raw}"`);
  return value;
}

async function loadBenchmark(name: (typeof NAMES)[number]): Promise<Benchmark | string> {
  if (name === 'ingest') {
    const events = eventsOverride();
    return () => benchIngest({ events });
  }
  if (name === 'identity') {
    // bench/identity.ts: resolution throughput and profile read latency (sizes via BENCH_IDENTITY_EVENTS,
    // BENCH_PROFILES, BENCH_PROFILE_EVENTS; see the file).
    const { benchIdentity } = await import('./identity.ts');
    return () => benchIdentity();
  }
  if (name === 'segments') {
    // bench/segments.ts: 20 segments compiled vs hand-written SQL, preview, incremental throughput
    // and real-time latency over generated retail data (sizes via BENCH_SEGMENT_PROFILES,
    // BENCH_SEGMENT_EVENTS and others; see the file).
    const { benchSegments } = await import('./segments.ts');
    return () => benchSegments();
  }
  if (name === 'models') {
    // bench/models.ts: training time per model kind vs profiles, fit time, UCI Online Retail check (see the file).
    const { benchModels } = await import('./models.ts');
    return () => benchModels();
  }
  if (name === 'decide') {
    // bench/decide.ts: GET /v1/decide latency at a fixed rate (BENCH_DECIDE_PROFILES, BENCH_DECIDE_RATE, BENCH_DECIDE_SECONDS).
    const { benchDecide } = await import('./decide.ts');
    return () => benchDecide();
  }
  if (name === 'journeys') {
    // bench/journeys.ts: executor steps/s and CPU per step, waiting instances (bytes, idle cost), timer
    // wake-up lag, trigger event → provider called (BENCH_JOURNEY_INSTANCES, BENCH_JOURNEY_WAITING,
    // BENCH_JOURNEY_TIMER_RATE, BENCH_JOURNEY_TIMER_SECONDS, BENCH_JOURNEY_ENTRIES, BENCH_JOURNEY_RATE).
    const { benchJourneys } = await import('./journeys.ts');
    return () => benchJourneys();
  }
  if (name === 'channels') {
    // bench/channels.ts: enqueue (batch and single) and dispatch rates with SQL statements per message (see the file).
    const { benchChannels } = await import('./channels.ts');
    return () => benchChannels();
  }
  if (name === 'analytics') {
    // bench/analytics.ts: funnels, retention, paths, trend, Markov attribution (BENCH_ANALYTICS_PROFILES, BENCH_ANALYTICS_EVENTS).
    const { benchAnalytics } = await import('./analytics.ts');
    return () => benchAnalytics();
  }
  const file = path.join(HERE, 'import.ts');
  if (!fs.existsSync(file)) return 'bench/import.ts is not in this checkout';
  const module = (await import(file)) as { benchImport?: Benchmark };
  return module.benchImport ?? 'bench/import.ts does not export benchImport';
}

function print(name: string, result: Record<string, unknown>): void {
  console.log(`\n== ${name} ==`);
  const summary = result.summary;
  if (Array.isArray(summary) && summary.every((line) => typeof line === 'string')) console.log(summary.join('\n'));
  else console.log(JSON.stringify(result, null, 2));
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { only: { type: 'string' } } });
  const only = values.only;
  if (only !== undefined && !(NAMES as readonly string[]).includes(only)) {
    throw new Error(`--only takes one of ${NAMES.join(', ')}, got "${only}"`);
  }
  // Size overrides (BENCH_EVENTS, BENCH_SEGMENT_PROFILES, …) belong to the command that was run.
  const overrides = Object.entries(process.env).filter(([key, value]) => key.startsWith('BENCH_') && value);
  const command = `npm run bench${only ? ` -- --only ${only}` : ''}${overrides.length ? ` (${overrides.map(([key, value]) => `${key}=${value}`).join(', ')})` : ''}`;
  fs.mkdirSync(RESULTS, { recursive: true });
  let failed = false;
  for (const name of NAMES) {
    if (only && only !== name) continue;
    const benchmark = await loadBenchmark(name);
    if (typeof benchmark === 'string') {
      console.log(`\n== ${name} == skipped: ${benchmark}`);
      continue;
    }
    console.log(`\n== ${name} == running …`);
    try {
      const result = { command, ...(await benchmark()) };
      const stamp = new Date().toISOString().replace(/\.\d+Z$/, 'Z').replaceAll(':', '-');
      const file = path.join(RESULTS, `${name}-${stamp}.json`);
      fs.writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
      print(name, result);
      console.log(`results: ${path.relative(process.cwd(), file)}`);
    } catch (error) {
      failed = true;
      console.error(`\n== ${name} == failed:`, error);
    }
  }
  process.exit(failed ? 1 : 0);
}

await main();
