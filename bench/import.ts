/**
 * Imports the full UCI Online Retail file (541,909 rows, gzip) into a fresh embedded PostgreSQL
 * with the documented retail mapping. Reports throughput (target ≥ 20,000 rows/s) and memory:
 * the RSS sampled at each quarter of the file shows whether memory grows with the file (it must
 * not: the import streams).
 *
 * Standalone: `node --import tsx bench/import.ts`; also called by bench/run.ts.
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { runMigrations } from 'graphile-worker';
import { planImport, runImport } from '../server/src/ingest/import/run.ts';
import { createPool } from '../server/src/storage/database.ts';
import { startEmbeddedPostgres } from '../server/src/storage/embedded.ts';
import { migrate } from '../server/src/storage/migrate.ts';
import { createSource, createWorkspace } from '../server/src/workspaces/store.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const RETAIL_FILE = path.resolve(ROOT, '../shared/data/uci-online-retail/online_retail.csv.gz');
const TARGET_ROWS_PER_SECOND = 20_000;

export const RETAIL_MAPPING = [
  'userId=CustomerID,timestamp=InvoiceDate,properties.order_id=InvoiceNo',
  'properties.product_id=StockCode,properties.name=Description,properties.country=Country',
  'properties.quantity=Quantity:integer,properties.price=UnitPrice:number',
  'properties.revenue=Quantity*UnitPrice:number',
];

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

const mb = (bytes: number) => Math.round((bytes / 1024 / 1024) * 10) / 10;

export async function benchImport(): Promise<Record<string, unknown>> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'touchpoint-bench-import-'));
  // The embedded server runs as an unprivileged user when we are root; it must reach the folder.
  fs.chmodSync(dataDir, 0o755);
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

    const cpuBefore = process.cpuUsage();
    const rssAtQuarter: number[] = [];
    let peakRss = process.memoryUsage.rss();
    const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage.rss())), 100);
    const summary = await runImport(db, plan, {
      onProgress: (progress) => {
        const quarter = Math.floor((progress.bytesRead / progress.totalBytes) * 4);
        if (quarter > rssAtQuarter.length && rssAtQuarter.length < 4) rssAtQuarter.push(mb(process.memoryUsage.rss()));
      },
    });
    clearInterval(sampler);
    const cpu = process.cpuUsage(cpuBefore);
    peakRss = Math.max(peakRss, process.memoryUsage.rss());

    const { rows } = await db.query<{ count: number }>('select count(*)::int as count from events where workspace_id = $1', [workspace.id]);
    return {
      file: path.relative(ROOT, RETAIL_FILE),
      rowsRead: summary.rowsRead,
      stored: summary.stored,
      duplicates: summary.duplicates,
      rejected: summary.rejected,
      rejectReasons: summary.rejectReasons,
      eventsInDatabase: rows[0]!.count,
      elapsedSeconds: Math.round(summary.elapsedMs / 100) / 10,
      rowsPerSecond: Math.round(summary.rowsPerSecond),
      targetRowsPerSecond: TARGET_ROWS_PER_SECOND,
      meetsTarget: summary.rowsPerSecond >= TARGET_ROWS_PER_SECOND,
      // CPU of this process only (parse, map, validate, serialise); PostgreSQL runs beside it.
      importerCpuSeconds: Math.round((cpu.user + cpu.system) / 100_000) / 10,
      // Other work on the machine slows both; the load average says how busy it was.
      loadAverage1m: Math.round(os.loadavg()[0]! * 10) / 10,
      peakRssMb: mb(peakRss),
      rssMbAtQuartersOfFile: rssAtQuarter,
      batchSize: plan.batchSize,
      concurrency: plan.concurrency,
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
