import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import zlib from 'node:zlib';
import { Command, CommanderError } from 'commander';
import { parse } from 'csv-parse/sync';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { registerImportCommand } from '../src/cli/import-command.ts';
import { isSealedValue, openPii } from '../src/privacy/pii-codec.ts';
import { ImportError } from '../src/ingest/import/errors.ts';
import { planImport, runImport, type ImportRequest, type ImportSummary } from '../src/ingest/import/run.ts';
import { createSource, createWorkspace, updateSource } from '../src/workspaces/store.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures');

const RETAIL_MAPPING = [
  'userId=CustomerID,timestamp=InvoiceDate,properties.order_id=InvoiceNo',
  'properties.product_id=StockCode,properties.name=Description,properties.country=Country',
  'properties.quantity=Quantity:integer,properties.price=UnitPrice:number',
  'properties.revenue=Quantity*UnitPrice:number',
];

interface RejectLine {
  line: number;
  reason: string;
  field: string | null;
  message: string;
  row: unknown;
}

describe('batch import', () => {
  let t: TestDatabase;
  let dir: string;
  let sourceCount = 0;

  beforeAll(async () => {
    t = await createTestDatabase();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'touchpoint-import-'));
  });
  afterAll(async () => {
    await t.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** A workspace of its own per test, so counts in `events` belong to that test alone. */
  async function newSource() {
    sourceCount++;
    const workspace = await createWorkspace(t.db, { slug: `import-${sourceCount}`, name: 'Import test' });
    const { source, writeKey } = await createSource(t.db, workspace.id, { name: 'CRM export', kind: 'crm_import' });
    return { workspace, source, writeKey: writeKey.key };
  }

  function writeFile(name: string, content: string | Buffer): string {
    const file = path.join(dir, name);
    fs.writeFileSync(file, content);
    return file;
  }

  function importFile(request: ImportRequest): Promise<ImportSummary> {
    return runImport(t.db, planImport(request));
  }

  function readRejects(file: string): RejectLine[] {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').map((line) => JSON.parse(line) as RejectLine);
  }

  async function events(workspaceId: string) {
    const { rows } = await t.db.query(
      `select message_id, type, event, user_id, anonymous_id, properties, traits, context, timestamp, name
         from events where workspace_id = $1 order by coalesce(user_id, anonymous_id), seq`,
      [workspaceId],
    );
    // PII fields of stored events are sealed at ingest (privacy/pii-codec.ts): the JSON columns are
    // opened through the vault (only them, so timestamps stay Dates).
    return Promise.all(
      rows.map(async (row) => ({ ...row, ...(await openPii(t.db, workspaceId, { properties: row.properties, traits: row.traits, context: row.context })) })),
    );
  }

  async function rawTraits(workspaceId: string) {
    const { rows } = await t.db.query('select traits from events where workspace_id = $1 order by coalesce(user_id, anonymous_id), seq', [workspaceId]);
    return rows.map((row) => row.traits);
  }

  it('imports CSV rows as track events with mapped, typed and unmapped columns', async () => {
    const { workspace, writeKey } = await newSource();
    const file = writeFile(
      'orders.csv',
      [
        'order,customer,placed_at,qty,price,note,gift',
        'A1,u1,2011-06-01 10:00:00,2,"1,000.5",first,yes',
        'A2,u2,2011-12-01T10:00:00Z,3,2.5,"two\nlines",no',
      ].join('\n'),
    );
    const summary = await importFile({
      file,
      writeKey,
      type: 'track',
      event: 'Order Completed',
      timeZone: 'Europe/London',
      map: ['userId=customer,timestamp=placed_at,properties.quantity=qty:integer', 'properties.gift=gift:boolean,properties.total=qty*price'],
    });
    // "1,000.5" is not a plain number: that row is rejected, the other stored.
    expect(summary).toMatchObject({ rowsRead: 2, valid: 1, stored: 1, duplicates: 0, rejected: 1, gzip: false, format: 'csv' });
    const rows = await events(workspace.id);
    expect(rows).toEqual([
      expect.objectContaining({
        type: 'track',
        event: 'Order Completed',
        user_id: 'u2',
        properties: { order: 'A2', note: 'two\nlines', quantity: 3, gift: false, total: 7.5 },
        timestamp: new Date('2011-12-01T10:00:00Z'),
      }),
    ]);
    expect(readRejects(`${file}.rejects.ndjson`)).toEqual([
      {
        line: 2,
        reason: 'invalid_number',
        field: 'properties.total',
        message: 'Column price: "1,000.5" is not a number (a factor of properties.total)',
        row: { order: 'A1', customer: 'u1', placed_at: '2011-06-01 10:00:00', qty: '2', price: '1,000.5', note: 'first', gift: 'yes' },
      },
    ]);
  });

  it('imports identify rows with unmapped columns as traits, or only the mapped ones', async () => {
    const { workspace, writeKey } = await newSource();
    const file = writeFile('people.csv', 'id,email,age,vip\nu1,a@example.com,31,true\nu2,,,\n');
    const all = await importFile({ file, writeKey, type: 'identify', map: ['userId=id,traits.age=age:integer,traits.vip=vip:boolean'] });
    expect(all).toMatchObject({ rowsRead: 2, stored: 2, rejected: 0, rejectsFile: null });
    expect(fs.existsSync(`${file}.rejects.ndjson`)).toBe(false);
    const rows = await events(workspace.id);
    expect(rows.map((row) => [row.type, row.user_id, row.traits])).toEqual([
      ['identify', 'u1', { email: 'a@example.com', age: 31, vip: true }],
      ['identify', 'u2', null],
    ]);
    expect(isSealedValue((await rawTraits(workspace.id))[0].email)).toBe(true);

    const other = await newSource();
    await importFile({ file, writeKey: other.writeKey, type: 'identify', onlyMapped: true, map: ['userId=id,traits.vip=vip:boolean'] });
    expect((await events(other.workspace.id)).map((row) => row.traits)).toEqual([{ vip: true }, null]);
  });

  it('writes every bad row to the rejects file with its line, reason and field', async () => {
    const { workspace, writeKey } = await newSource();
    const file = writeFile(
      'bad.csv',
      [
        'user,when,amount', // 1
        'u1,2011-01-01,5', // 2 ok
        ',2011-01-01,5', // 3 no identity
        'u3,2011-02-30,5', // 4 impossible date
        'u4,2011-01-01,five', // 5 bad number
        '', // 6 blank: not a row
        'u6,"2011-01-01', // 7–8 a quoted field spanning two lines: 2 fields instead of 3
        '",5,extra', // 8
        'u9,1960-01-01,5', // 9 outside 1970–2200
        'u10,2011-01-01,6', // 10 ok
      ].join('\n'),
    );
    const rejectsFile = path.join(dir, 'custom-rejects.ndjson');
    const summary = await importFile({
      file,
      writeKey,
      type: 'track',
      event: 'Paid',
      rejectsFile,
      map: ['userId=user,timestamp=when,properties.amount=amount:number'],
    });
    expect(summary).toMatchObject({
      rowsRead: 7,
      stored: 2,
      rejected: 5,
      rejectsFile,
      rejectReasons: { missing_identity: 1, invalid_date: 1, invalid_number: 1, column_count: 1, invalid_timestamp: 1 },
    });
    const rejects = readRejects(rejectsFile);
    expect(rejects.map(({ line, reason, field }) => ({ line, reason, field }))).toEqual([
      { line: 3, reason: 'missing_identity', field: 'userId' },
      { line: 4, reason: 'invalid_date', field: 'timestamp' },
      { line: 5, reason: 'invalid_number', field: 'properties.amount' },
      { line: 7, reason: 'column_count', field: null },
      { line: 9, reason: 'invalid_timestamp', field: 'timestamp' },
    ]);
    expect(rejects[0]!.message).toBe('userId or anonymousId is required (userId comes from column user)');
    expect(rejects[0]!.row).toEqual({ user: '', when: '2011-01-01', amount: '5' });
    expect(rejects[3]!.row).toEqual(['u6', '2011-01-01\n', '5', 'extra']);
    expect((await events(workspace.id)).map((row) => row.user_id)).toEqual(['u1', 'u10']);
  });

  it('keeps stray quotes as text and rejects a quote left open, with the text it swallowed', async () => {
    const { workspace, writeKey } = await newSource();
    const file = writeFile('quote.csv', 'user,note\nu1,TV 5" screen\nu2,"open\nu3,never read as a row\n');
    const summary = await importFile({ file, writeKey, type: 'identify', map: ['userId=user'] });
    expect(summary).toMatchObject({ rowsRead: 2, stored: 1, rejected: 1 });
    expect(readRejects(`${file}.rejects.ndjson`)).toEqual([
      {
        line: 3,
        reason: 'malformed_csv',
        field: null,
        message: expect.stringContaining('Quote Not Closed'),
        row: 'u2,"open\nu3,never read as a row\n',
      },
    ]);
    expect((await events(workspace.id)).map((row) => row.traits)).toEqual([{ note: 'TV 5" screen' }]);
  });

  it('imports gzip NDJSON (recognised by its bytes) as Segment events of any type', async () => {
    const { workspace, writeKey } = await newSource();
    const lines = [
      JSON.stringify({ type: 'identify', userId: 'u1', traits: { plan: 'pro' }, messageId: 'id-1' }),
      JSON.stringify({ type: 'page', anonymousId: 'a1', name: 'Home', timestamp: '2011-06-01 10:00:00' }),
      '',
      JSON.stringify({ userId: 'u2', event: 'Signed Up', context: { ip: '1.2.3.4' } }),
      '{"userId": "u3", ',
      JSON.stringify({ type: 'track', event: 'No One' }),
    ];
    // Named without .gz on purpose: the magic bytes decide.
    const file = writeFile('events.ndjson', zlib.gzipSync(lines.join('\n')));
    const summary = await importFile({ file, writeKey, type: 'track', timeZone: 'Europe/London' });
    expect(summary).toMatchObject({ gzip: true, format: 'ndjson', rowsRead: 5, stored: 3, rejected: 2 });
    expect(readRejects(`${file}.rejects.ndjson`).map(({ line, reason }) => ({ line, reason }))).toEqual([
      { line: 5, reason: 'invalid_json' },
      { line: 6, reason: 'missing_identity' },
    ]);
    const rows = await events(workspace.id);
    expect(rows.map((row) => [row.type, row.message_id.startsWith('import-') ? 'derived' : row.message_id, row.user_id ?? row.anonymous_id])).toEqual([
      ['page', 'derived', 'a1'],
      ['identify', 'id-1', 'u1'],
      ['track', 'derived', 'u2'],
    ]);
    expect(rows[0]).toMatchObject({ name: 'Home', timestamp: new Date('2011-06-01T09:00:00Z') });
    expect(rows[2]).toMatchObject({ event: 'Signed Up', context: { ip: '1.2.3.4' } });
  });

  it('is idempotent: importing the same file again stores nothing and counts duplicates', async () => {
    const { workspace, writeKey } = await newSource();
    // Lines 2 and 3 are identical rows: distinct events, since they are on different lines.
    const file = writeFile('twice.csv', 'user,sku\nu1,A\nu1,A\nu2,B\n,C\n');
    const request: ImportRequest = { file, writeKey, type: 'track', event: 'Bought', map: ['userId=user'], batchSize: 2 };
    const first = await importFile(request);
    expect(first).toMatchObject({ rowsRead: 4, stored: 3, duplicates: 0, rejected: 1 });
    const second = await importFile(request);
    expect(second).toMatchObject({ rowsRead: 4, stored: 0, duplicates: 3, rejected: 1 });
    const { rows } = await t.db.query('select count(*)::int as count from events where workspace_id = $1', [workspace.id]);
    expect(rows[0].count).toBe(3);
  });

  it('imports a slice of the UCI retail file with counts that match an independent reading', async () => {
    const { workspace, writeKey } = await newSource();
    const csv = fs.readFileSync(path.join(FIXTURES, 'online_retail_head.csv'));
    const file = writeFile('online_retail_head.csv.gz', zlib.gzipSync(csv));

    // The expectation, computed without the importer: every row has a line (header = line 1, no
    // multi-line fields in this file); rows without CustomerID cannot be attributed to anyone.
    const records = parse(csv, { columns: true }) as Array<Record<string, string>>;
    const expectedRejectLines = records.flatMap((record, i) => (record.CustomerID === '' ? [i + 2] : []));
    const kept = records.filter((record) => record.CustomerID !== '');
    const duplicateRows = kept.length - new Set(kept.map((record) => JSON.stringify(record))).size;
    const expectedRevenue = kept.reduce((sum, record) => sum + Number(record.Quantity) * Number(record.UnitPrice), 0);
    expect(records).toHaveLength(2000);
    expect(duplicateRows).toBeGreaterThan(0);

    const summary = await importFile({
      file,
      writeKey,
      type: 'track',
      event: 'Order Completed',
      timeZone: 'Europe/London',
      onlyMapped: true,
      map: RETAIL_MAPPING,
      batchSize: 300,
    });
    expect(summary).toMatchObject({
      gzip: true,
      rowsRead: records.length,
      stored: kept.length,
      duplicates: 0,
      rejected: expectedRejectLines.length,
      rejectReasons: { missing_identity: expectedRejectLines.length },
    });
    expect(readRejects(`${file}.rejects.ndjson`).map((reject) => reject.line)).toEqual(expectedRejectLines);

    const { rows } = await t.db.query<{ count: number; users: number; revenue: number; first: Date; last: Date }>(
      `select count(*)::int as count, count(distinct user_id)::int as users,
              sum((properties->>'revenue')::numeric)::float8 as revenue, min(timestamp) as first, max(timestamp) as last
         from events where workspace_id = $1 and event = 'Order Completed'`,
      [workspace.id],
    );
    expect(rows[0]!.count).toBe(kept.length);
    expect(rows[0]!.users).toBe(new Set(kept.map((record) => record.CustomerID)).size);
    expect(rows[0]!.revenue).toBeCloseTo(expectedRevenue, 6);
    // December is GMT in London: local times equal UTC.
    expect(rows[0]!.first).toEqual(new Date(`${kept[0]!.InvoiceDate!.replace(' ', 'T')}Z`));

    const sample = await t.db.query(
      `select user_id, properties from events where workspace_id = $1 and properties->>'order_id' = '536365' and properties->>'product_id' = '71053'`,
      [workspace.id],
    );
    // `properties.name` names the product here (Segment's e-commerce spec): not personal data, stored readable.
    expect(isSealedValue(sample.rows[0]?.properties?.name)).toBe(false);
    expect(sample.rows).toEqual([
      {
        user_id: '17850',
        properties: { order_id: '536365', product_id: '71053', name: 'WHITE METAL LANTERN', country: 'United Kingdom', quantity: 6, price: 3.39, revenue: 20.34 },
      },
    ]);
  });

  it('refuses an unknown or disabled write key before writing anything', async () => {
    const { workspace, source, writeKey } = await newSource();
    const file = writeFile('keyed.csv', 'user\nu1\n');
    const attempt = (key: string) => importFile({ file, writeKey: key, type: 'identify', map: ['userId=user'] });
    await expect(attempt('wk_not-a-key')).rejects.toMatchObject({ code: 'unauthorized', field: '--source' });
    await updateSource(t.db, workspace.id, source.id, { status: 'disabled' });
    await expect(attempt(writeKey)).rejects.toThrow(/Unknown or disabled write key/);
    expect(fs.existsSync(`${file}.rejects.ndjson`)).toBe(false);
    expect(await events(workspace.id)).toEqual([]);
  });

  it('refuses a mapping that names a column the file does not have, storing nothing', async () => {
    const { workspace, writeKey } = await newSource();
    const file = writeFile('columns.csv', 'user,sku\nu1,A\n');
    const error = await importFile({ file, writeKey, type: 'track', event: 'X', map: ['userId=customer'] }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ImportError);
    expect(error).toMatchObject({ code: 'unknown_column', message: 'Column "customer" is not in the file\'s header (user, sku)' });
    expect(await events(workspace.id)).toEqual([]);
    expect(fs.existsSync(`${file}.rejects.ndjson`)).toBe(false);
  });

  it('stops on a truncated gzip file with a clear error, keeping the batches already stored', async () => {
    const { workspace, writeKey } = await newSource();
    const lines = Array.from({ length: 5000 }, (_, i) => JSON.stringify({ userId: `u${i}`, event: 'Seen', properties: { n: i, pad: 'x'.repeat(i % 97) } }));
    const gzip = zlib.gzipSync(lines.join('\n'));
    const file = writeFile('cut.ndjson.gz', gzip.subarray(0, Math.floor(gzip.length / 2)));
    const error = await importFile({ file, writeKey, type: 'track', batchSize: 100 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ImportError);
    expect(error).toMatchObject({ code: 'read_failed', message: expect.stringMatching(/failed after \d+ rows, \d+ of them stored \(unexpected end of file\)/) });
    const stored = Number(/(\d+) of them stored/.exec((error as Error).message)![1]);
    expect(stored).toBeGreaterThan(0);
    const { rows } = await t.db.query('select count(*)::int as count from events where workspace_id = $1', [workspace.id]);
    expect(rows[0].count).toBe(stored);
  });

  it('refuses a rejects file it cannot write, before importing or while importing', async () => {
    const { writeKey } = await newSource();
    const file = writeFile('unwritable.csv', 'user\n\nu1\n');
    const request = { file, writeKey, type: 'identify' as const, map: ['userId=user'] };
    await expect(importFile({ ...request, rejectsFile: path.join(dir, 'no-such-dir', 'r.ndjson') })).rejects.toMatchObject({
      code: 'unwritable_rejects',
      field: '--rejects',
    });
    if (fs.existsSync('/dev/full')) {
      // Every write to /dev/full fails with ENOSPC, as on a full disk.
      const lines = ['user,plan', ...Array.from({ length: 3000 }, (_, i) => (i % 2 ? `u${i},p` : ',p'))];
      const many = writeFile('many-rejects.csv', lines.join('\n'));
      await expect(importFile({ ...request, file: many, rejectsFile: '/dev/full' })).rejects.toMatchObject({
        code: 'unwritable_rejects',
        message: expect.stringContaining('ENOSPC'),
      });
      // Also when the few rejects only reach the disk as the file is closed.
      const few = writeFile('few-rejects.csv', 'user,plan\n,p\nu1,p\n');
      await expect(importFile({ ...request, file: few, rejectsFile: '/dev/full' })).rejects.toMatchObject({ code: 'unwritable_rejects' });
      expect(fs.existsSync('/dev/full')).toBe(true);
    }
  });

  it('checks every row in a dry run without storing any', async () => {
    const { workspace, writeKey } = await newSource();
    const file = writeFile('dry.csv', 'user,plan\nu1,a\n\nu2,b\n,c\n');
    const summary = await importFile({ file, writeKey, type: 'identify', map: ['userId=user'], dryRun: true });
    expect(summary).toMatchObject({ dryRun: true, rowsRead: 3, valid: 2, stored: 0, rejected: 1 });
    expect(readRejects(`${file}.rejects.ndjson`)).toMatchObject([{ line: 5, reason: 'missing_identity' }]);
    expect(await events(workspace.id)).toEqual([]);
  });

  describe('touchpoint import command', () => {
    async function runCli(args: string[]) {
      const program = new Command().exitOverride();
      const closed = vi.fn(async () => undefined);
      registerImportCommand(program, async () => ({ db: t.db, close: closed }));
      const stderr: string[] = [];
      const spy = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
        stderr.push(String(chunk));
        return true;
      });
      const errorSpy = vi.spyOn(console, 'error').mockImplementation((line: string) => stderr.push(`${line}\n`));
      let exitCode = 0;
      try {
        await program.parseAsync(['import', ...args], { from: 'user' });
      } catch (error) {
        if (!(error instanceof CommanderError)) throw error;
        exitCode = error.exitCode;
      } finally {
        spy.mockRestore();
        errorSpy.mockRestore();
      }
      return { stderr: stderr.join(''), exitCode, closed: closed.mock.calls.length };
    }

    it('imports with the documented options and prints a summary', async () => {
      const { workspace, writeKey } = await newSource();
      const file = writeFile('cli.csv', 'id,kind,amount\nu1,Signed Up,\nu2,Paid,9.5\n,Paid,1\n');
      const rejects = path.join(dir, 'cli-rejects.ndjson');
      const result = await runCli([
        '--source', writeKey, '--file', file, '--type', 'track', '--event-column', 'kind',
        '--map', 'userId=id', '--map', 'properties.amount=amount:number', '--rejects', rejects, '--batch-size', '1',
      ]);
      expect(result.exitCode).toBe(0);
      expect(result.closed).toBe(1);
      expect(result.stderr).toMatch(/rows read\s+3/);
      expect(result.stderr).toMatch(/stored\s+2/);
      expect(result.stderr).toMatch(/rejected\s+1 {2}\(missing_identity 1\)/);
      expect((await events(workspace.id)).map((row) => [row.user_id, row.event, row.properties])).toEqual([
        ['u1', 'Signed Up', null],
        ['u2', 'Paid', { amount: 9.5 }],
      ]);
    });

    it('reports a bad option in one line with a failing exit code, without opening the database', async () => {
      const result = await runCli(['--source', 'wk_x', '--file', path.join(dir, 'x.csv'), '--type', 'track', '--map', 'email=Email']);
      expect(result.exitCode).toBe(1);
      expect(result.closed).toBe(0);
      expect(result.stderr).toBe('touchpoint import: Unknown target "email": use one of userId, anonymousId, messageId, timestamp, event, or traits.<path>, properties.<path>, context.<path>\n');
    });
  });
});
