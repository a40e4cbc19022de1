/**
 * Imports the full UCI Online Retail file (541,909 rows, gzip) into a fresh embedded PostgreSQL
 * with the documented retail mapping, through the same code as `touchpoint import`. Reports
 * throughput (target ≥ 20,000 rows/s), where the CPU went, and memory: the RSS at each quarter
 * of the file shows whether memory grows with the file (it must not: the import streams).
 *
 * Standalone: `node --import tsx bench/import.ts`; also called by bench/run.ts.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { runMigrations } from 'graphile-worker';
import { planImport, runImport } from '../server/src/ingest/import/run.ts';
import { createPool } from '../server/src/storage/database.ts';
import { startEmbeddedPostgres } from '../server/src/storage/embedded.ts';
import { migrate } from '../server/src/storage/migrate.ts';
import { createSource, createWorkspace } from '../server/src/workspaces/store.ts';
import { clusterCpuSeconds, freePort, machine, machineBusySeconds, postmasterPid, processCpuSeconds, sampleRss } from './system.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const RETAIL_FILE = path.resolve(ROOT, '../shared/data/uci-online-retail/online_retail.csv.gz');
const RETAIL_ROWS = 541_909;
const RETAIL_WITHOUT_CUSTOMER = 135_080;
const TARGET_ROWS_PER_SECOND = 20_000;

/** The mapping documented for the retail file (README); rows without CustomerID are rejected. */
export const RETAIL_MAPPING = [
  'userId=CustomerID,timestamp=InvoiceDate,properties.order_id=InvoiceNo',
  'properties.product_id=StockCode,properties.name=Description,properties.country=Country',
  'properties.quantity=Quantity:integer,properties.price=UnitPrice:number',
  'properties.revenue=Quantity*UnitPrice:number',
];

const mb = (bytes: number) => Math.round(bytes / 1024 / 1024);
const round1 = (value: number) => Math.round(value * 10) / 10;

export async function benchImport(): Promise<Record<string, unknown>> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'touchpoint-bench-import-'));
  // The embedded server runs as an unprivileged user when we are root; it must reach the folder.
  fs.chmodSync(dataDir, 0o755);
  const host = machine();
  const pg = await startEmbeddedPostgres({ dataDir, port: await freePort() });
  const db = createPool(pg.url, 20);
  try {
    await migrate(db);
    await runMigrations({ pgPool: db });
    const workspace = await createWorkspace(db, { slug: 'bench', name: 'Bench', timeZone: 'Europe/London' });
    const { writeKey } = await createSource(db, workspace.id, { name: 'Retail export', kind: 'crm_import' });
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

    const postmaster = postmasterPid(path.join(dataDir, 'pg'));
    const before = { importer: processCpuSeconds(), postgres: clusterCpuSeconds(postmaster), machine: machineBusySeconds() };
    const rss = sampleRss();
    const rssAtQuarter: number[] = [];
    const summary = await runImport(db, plan, {
      onProgress: (progress) => {
        const quarter = Math.floor((progress.bytesRead / progress.totalBytes) * 4);
        if (quarter > rssAtQuarter.length && rssAtQuarter.length < 4) rssAtQuarter.push(mb(process.memoryUsage.rss()));
      },
    });
    const peakRssMb = rss.stop();
    const importerCpu = processCpuSeconds() - before.importer;
    const postgresCpu = clusterCpuSeconds(postmaster) - before.postgres;
    const otherCpu = machineBusySeconds() - before.machine - importerCpu - postgresCpu;

    const { rows } = await db.query<{ count: number }>('select count(*)::int as count from events where workspace_id = $1', [workspace.id]);
    const eventsInDatabase = rows[0]!.count;
    const exact =
      summary.rowsRead === RETAIL_ROWS && summary.rejected === RETAIL_WITHOUT_CUSTOMER && eventsInDatabase === RETAIL_ROWS - RETAIL_WITHOUT_CUSTOMER;
    const rowsPerSecond = Math.round(summary.rowsPerSecond);
    const seconds = round1(summary.elapsedMs / 1000);
    return {
      summary: [
        `${summary.rowsRead} rows in ${seconds} s: ${rowsPerSecond} rows/s (target ≥ ${TARGET_ROWS_PER_SECOND}: ${rowsPerSecond >= TARGET_ROWS_PER_SECOND ? 'met' : 'MISSED'})`,
        `stored ${summary.stored}, rejected ${summary.rejected} (${Object.entries(summary.rejectReasons).map(([reason, count]) => `${reason} ${count}`).join(', ')}); ` +
          `rows in events: ${eventsInDatabase} (${exact ? 'as expected' : 'MISMATCH'})`,
        `CPU seconds: importer ${round1(importerCpu)}, PostgreSQL ${round1(postgresCpu)}, other processes ${round1(Math.max(0, otherCpu))} ` +
          `(${host.nproc} cores, load ${host.loadAverageAtStart.join(' ')} at start)`,
        `memory: peak RSS ${peakRssMb} MB; at each quarter of the file ${rssAtQuarter.join(', ')} MB (flat: the import streams)`,
      ],
      file: path.relative(ROOT, RETAIL_FILE),
      rowsRead: summary.rowsRead,
      stored: summary.stored,
      duplicates: summary.duplicates,
      rejected: summary.rejected,
      rejectReasons: summary.rejectReasons,
      eventsInDatabase,
      exact,
      elapsedSeconds: seconds,
      rowsPerSecond,
      targetRowsPerSecond: TARGET_ROWS_PER_SECOND,
      meetsTarget: rowsPerSecond >= TARGET_ROWS_PER_SECOND,
      cpuSeconds: { importer: round1(importerCpu), postgres: round1(postgresCpu), otherProcesses: round1(Math.max(0, otherCpu)) },
      peakRssMb,
      rssMbAtQuartersOfFile: rssAtQuarter,
      batchSize: plan.batchSize,
      concurrency: plan.concurrency,
      machine: host,
    };
  } finally {
    await db.end();
    await pg.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  console.log(JSON.stringify(await benchImport(), null, 2));
}
