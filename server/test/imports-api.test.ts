import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiFieldOf, createImportJobs, type ImportJob } from '../src/ingest/import/jobs.ts';
import { createKey } from '../src/workspaces/store.ts';
import { serverKey } from './profiles-support.ts';
import { startTestApp, type TestApp } from './support/app.ts';

const CSV = ['CustomerID,InvoiceDate,Amount', 'c-1,2024-03-01 10:00,12.5', ',2024-03-01 11:00,3', 'c-2,2024-03-02 09:30,7'].join('\n');

describe('file imports over HTTP (POST /v1/imports)', () => {
  let t: TestApp;
  let directory: string;
  const jobs = () => createImportJobs({ directory });
  let registry: ReturnType<typeof jobs>;
  let importer: string;
  let defaultKey: string;
  let otherKey: string;

  beforeAll(async () => {
    directory = fs.mkdtempSync(path.join(os.tmpdir(), 'imports-test-'));
    registry = jobs();
    t = await startTestApp({ importJobs: registry });
    importer = (await createKey(t.db, t.workspace.id, { kind: 'server', permissions: ['imports.*', 'quarantine.read', 'pii.read', 'events.read'] })).key;
    defaultKey = await serverKey(t);
    const other = await t.addWorkspace('other');
    otherKey = (await createKey(t.db, other.workspace.id, { kind: 'server', permissions: ['*'] })).key;
  });

  afterAll(async () => {
    await t?.close();
    fs.rmSync(directory, { recursive: true, force: true });
  });

  const upload = (key: string, query: string, body: string | Buffer, type = 'text/csv') =>
    t.app.inject({ method: 'POST', url: `/v1/imports?${query}`, headers: { authorization: `Bearer ${key}`, 'content-type': type }, payload: body });
  const get = (key: string, url: string) => t.app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${key}` } });

  it('imports an uploaded CSV in the background with the CLI mapping; progress, rejects and the stored events agree', async () => {
    const query = new URLSearchParams({
      source: 'Website',
      fileName: 'orders.csv',
      type: 'track',
      event: 'Order Completed',
      map: 'userId=CustomerID,timestamp=InvoiceDate,properties.amount=Amount:number',
      onlyMapped: 'true',
      timeZone: 'Asia/Shanghai',
    });
    const started = await upload(importer, query.toString(), CSV);
    expect(started.statusCode, started.body).toBe(202);
    const job = started.json<ImportJob>();
    expect(job).toMatchObject({ status: 'running', sourceName: 'Website', fileName: 'orders.csv', format: 'csv' });
    expect(job.progress.totalBytes).toBe(Buffer.byteLength(CSV));

    await registry.settled(job.id);
    const done = (await get(importer, `/v1/imports/${job.id}`)).json<ImportJob>();
    expect(done).toMatchObject({ status: 'done', hasRejects: true, error: null, rejectReasons: { missing_identity: 1 } });
    expect(done.progress).toMatchObject({ rowsRead: 3, stored: 2, rejected: 1, duplicates: 0 });
    expect(done.finishedAt).not.toBeNull();

    const rejects = await get(importer, `/v1/imports/${job.id}/rejects.ndjson`);
    expect(rejects.statusCode).toBe(200);
    expect(rejects.headers['content-disposition']).toContain('.rejects.ndjson');
    const lines = rejects.body.trim().split('\n').map((line) => JSON.parse(line) as { line: number; reason: string });
    expect(lines).toEqual([expect.objectContaining({ line: 3, reason: 'missing_identity' })]);

    // The naive 10:00 in Shanghai is 02:00 UTC: the same time handling as the CLI.
    const events = await t.db.query<{ user_id: string; timestamp: Date }>(
      `select user_id, timestamp from events where workspace_id = $1 and event = 'Order Completed' order by timestamp`,
      [t.workspace.id],
    );
    expect(events.rows.map((row) => [row.user_id, row.timestamp.toISOString()])).toEqual([
      ['c-1', '2024-03-01T02:00:00.000Z'],
      ['c-2', '2024-03-02T01:30:00.000Z'],
    ]);
    // The upload itself is gone once imported; the rejects stay for download.
    expect(fs.readdirSync(directory).filter((name) => !name.endsWith('.rejects.ndjson'))).toEqual([]);

    // Importing the same file again stores nothing twice (message ids derive from source, line and row).
    const again = (await upload(importer, query.toString(), gzipSync(CSV), 'application/gzip')).json<ImportJob>();
    await registry.settled(again.id);
    expect((await get(importer, `/v1/imports/${again.id}`)).json<ImportJob>().progress).toMatchObject({ stored: 0, duplicates: 2, rejected: 1 });
    const list = (await get(importer, '/v1/imports')).json<{ items: ImportJob[] }>();
    expect(list.items.map((item) => item.id)).toEqual([again.id, job.id]);
  });

  it('refuses inconsistent options before storing anything, naming the query parameter', async () => {
    const before = fs.readdirSync(directory).length;
    const noEvent = await upload(importer, 'source=Website&fileName=a.csv&type=track', CSV);
    expect(noEvent.statusCode).toBe(400);
    expect(noEvent.json()).toMatchObject({ error: 'invalid_option', field: 'event' });
    const zone = await upload(importer, 'source=Website&fileName=a.csv&type=identify&timeZone=Mars/Base', CSV);
    expect(zone.json()).toMatchObject({ error: 'invalid_option', field: 'timeZone' });
    const format = await upload(importer, 'source=Website&fileName=a.xlsx&type=identify', CSV);
    expect(format.json()).toMatchObject({ error: 'unknown_format', field: 'format' });
    const source = await upload(importer, 'source=Nope&fileName=a.csv&type=identify', CSV);
    expect(source.statusCode).toBe(404);
    expect(source.json()).toMatchObject({ field: 'source' });
    expect(fs.readdirSync(directory).length).toBe(before);
  });

  it('an import that stops reports its error code and the column at fault', async () => {
    const bad = await upload(importer, new URLSearchParams({ source: 'Website', fileName: 'b.csv', type: 'identify', map: 'userId=Nope' }).toString(), CSV);
    // Columns are checked once the header is read, in the background: the job fails.
    expect(bad.statusCode).toBe(202);
    await registry.settled(bad.json<ImportJob>().id);
    const failed = (await get(importer, `/v1/imports/${bad.json<ImportJob>().id}`)).json<ImportJob>();
    expect(failed).toMatchObject({ status: 'failed', hasRejects: false, error: { code: 'unknown_column', field: 'Nope' } });
  });

  it('needs imports.write (not in a default server key), and keeps jobs to their workspace', async () => {
    const refused = await upload(defaultKey, 'source=Website&fileName=a.csv&type=identify', CSV);
    expect(refused.statusCode).toBe(403);
    const job = (await get(importer, '/v1/imports')).json<{ items: ImportJob[] }>().items[0]!;
    expect((await get(otherKey, `/v1/imports/${job.id}`)).statusCode).toBe(404);
    expect((await get(otherKey, `/v1/imports/${job.id}/rejects.ndjson`)).statusCode).toBe(404);
    expect((await get(otherKey, '/v1/imports')).json()).toEqual({ items: [] });
  });

  it('runs at most two imports of a workspace at once, and refuses a disabled source', async () => {
    // Two imports reported running (the registry the routes read), whatever their speed here.
    const done = registry.list(t.workspace.id)[0]!;
    const realList = registry.list;
    registry.list = (workspaceId: string) => (workspaceId === t.workspace.id ? [{ ...done, status: 'running' as const }, { ...done, status: 'running' as const }] : []);
    try {
      const third = await upload(importer, 'source=Website&fileName=c.csv&type=identify&map=userId%3DCustomerID', CSV);
      expect(third.statusCode).toBe(409);
      expect(third.json()).toMatchObject({ error: 'imports_running' });
    } finally {
      registry.list = realList;
    }
    const after = await upload(importer, 'source=Website&fileName=c.csv&type=identify&map=userId%3DCustomerID', CSV);
    expect(after.statusCode).toBe(202);
    await registry.settled(after.json<ImportJob>().id);

    await t.db.query(`update sources set status = 'disabled' where workspace_id = $1 and name = 'Website'`, [t.workspace.id]);
    const disabled = await upload(importer, 'source=Website&fileName=d.csv&type=identify&map=userId%3DCustomerID', CSV);
    expect(disabled.statusCode).toBe(409);
    expect(disabled.json()).toMatchObject({ error: 'source_disabled', field: 'source' });
    await t.db.query(`update sources set status = 'active' where workspace_id = $1 and name = 'Website'`, [t.workspace.id]);
  });

  it('maps CLI option names to query parameters', () => {
    expect(apiFieldOf('--event-column')).toBe('eventColumn');
    expect(apiFieldOf('--timezone')).toBe('timeZone');
    expect(apiFieldOf('--only-mapped')).toBe('onlyMapped');
    expect(apiFieldOf(undefined)).toBeUndefined();
  });
});
