/**
 * Computed traits: full computation throughput (profiles/s of `computeComputedTrait`: profile
 * batches, their matching events through the timeline index, the evaluator in memory, changed
 * values written with history and events) over the retail data of bench/segments-data.ts, for a
 * set of typical definitions. Each trait is computed twice: the first run writes every value (a
 * new trait), the second finds nothing changed (an edit that moves few values; the cost of
 * reading and evaluating alone).
 *
 * Standalone: `node --import tsx bench/computed-traits.ts` (embedded PostgreSQL in a temporary
 * folder). Sizes: BENCH_CT_PROFILES (20,000), BENCH_CT_EVENTS (400,000), BENCH_CT_BATCH (2,000).
 * `measureComputedTraits` runs on a database another benchmark already filled.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { computeComputedTrait } from '../server/src/segments/computed/compute.ts';
import type { ComputedTraitDefinition } from '../server/src/segments/computed/definition.ts';
import { createComputedTrait } from '../server/src/segments/computed/store.ts';
import { createPool, withTransaction, type Db } from '../server/src/storage/database.ts';
import { startEmbeddedPostgres } from '../server/src/storage/embedded.ts';
import { migrate } from '../server/src/storage/migrate.ts';
import { createWorkspace } from '../server/src/workspaces/store.ts';
import { generateRetailData } from './segments-data.ts';
import { freePort, machine } from './system.ts';

const orders = { type: 'track', name: 'Order Completed', filters: [] } as ComputedTraitDefinition['match'];
const views = { type: 'track', name: 'Product Viewed', filters: [] } as ComputedTraitDefinition['match'];
const last90d = { kind: 'last', duration: { amount: 90, unit: 'days' } } as const;

/** Typical computed traits of a retail workspace. */
export const COMPUTED_TRAIT_CATALOGUE: Array<{ key: string; definition: ComputedTraitDefinition }> = [
  { key: 'orders_90d', definition: { kind: 'count', match: orders, window: last90d } },
  { key: 'lifetime_revenue', definition: { kind: 'sum', property: 'revenue', match: orders } },
  { key: 'avg_order_value', definition: { kind: 'avg', property: 'revenue', match: orders } },
  { key: 'favourite_category', definition: { kind: 'most_frequent', property: 'category', match: views, window: last90d } },
  { key: 'categories_viewed', definition: { kind: 'unique_list', property: 'category', match: views } },
  { key: 'last_order_at', definition: { kind: 'last_event_time', match: orders } },
];

export interface ComputedTraitRun {
  key: string;
  profiles: number;
  changed: number;
  seconds: number;
  profilesPerSecond: number;
}

export async function measureComputedTraits(
  db: Db,
  workspaceId: string,
  options: { now: Date; batchSize?: number; log?: (line: string) => void },
): Promise<{ first: ComputedTraitRun[]; second: ComputedTraitRun[] }> {
  const log = options.log ?? ((line: string) => console.error(line));
  const ids = new Map<string, string>();
  for (const { key, definition } of COMPUTED_TRAIT_CATALOGUE) {
    const trait = await withTransaction(db, (client) => createComputedTrait(client, workspaceId, { key, name: key, definition }));
    ids.set(key, trait.id);
  }
  const run = async (label: string) => {
    const runs: ComputedTraitRun[] = [];
    for (const { key } of COMPUTED_TRAIT_CATALOGUE) {
      const result = await computeComputedTrait(db, workspaceId, ids.get(key)!, { now: options.now.getTime(), batchSize: options.batchSize });
      const seconds = result.durationMs / 1000;
      const entry = { key, profiles: result.profiles, changed: result.changed, seconds, profilesPerSecond: Math.round(result.profiles / seconds) };
      log(`  ${label} ${key}: ${entry.profiles} profiles, ${entry.changed} changed, ${seconds.toFixed(2)} s = ${entry.profilesPerSecond}/s`);
      runs.push(entry);
    }
    return runs;
  };
  return { first: await run('first'), second: await run('again') };
}

function envCount(name: string): number | undefined {
  const raw = process.env[name];
  return raw === undefined || raw === '' ? undefined : Number(raw);
}

export async function benchComputedTraits(
  options: { profiles?: number; events?: number; batchSize?: number; log?: (line: string) => void } = {},
): Promise<Record<string, unknown>> {
  const log = options.log ?? ((line: string) => console.error(line));
  const profiles = options.profiles ?? envCount('BENCH_CT_PROFILES') ?? 20_000;
  const events = options.events ?? envCount('BENCH_CT_EVENTS') ?? 400_000;
  const batchSize = options.batchSize ?? envCount('BENCH_CT_BATCH') ?? 2000;
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'touchpoint-bench-computed-'));
  fs.chmodSync(dataDir, 0o755);
  log(`Starting embedded PostgreSQL in ${dataDir}`);
  const server = await startEmbeddedPostgres({ dataDir, port: await freePort() });
  const db = createPool(server.url, 10);
  try {
    await migrate(db);
    const workspace = await createWorkspace(db, { slug: 'bench-ct', name: 'Computed traits bench' });
    const now = new Date(Math.floor(Date.now() / 60_000) * 60_000);
    log(`Generating ${profiles} profiles, ${events} events`);
    await generateRetailData(db, { workspaceId: workspace.id, profiles, events, now, log });
    await db.query('analyze');
    const result = await measureComputedTraits(db, workspace.id, { now, batchSize, log });
    return { machine: machine(), profiles, events, batchSize, ...result };
  } finally {
    await db.end();
    await server.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const result = await benchComputedTraits();
  console.log(JSON.stringify(result, null, 2));
}
