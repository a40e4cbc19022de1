import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { scrubLogLine, scrubText } from '../src/privacy/log-scrub.ts';
import { startWorker } from '../src/worker/runner.ts';
import { createKey } from '../src/workspaces/store.ts';
import { ADMIN_TOKEN, basicAuth, startTestApp, type TestApp } from './support/app.ts';
import { cli } from './support/cli.ts';
import { profileUrl } from './profiles-support.ts';

// Values no log line may carry, in every spelling the API accepts or stores them.
const PERSON = {
  email: 'Zhang.Weiqiang.Pii@Example.com',
  phone: '+86 139 1234 5678',
  name: 'Zhang Weiqiang',
  address: '88 Nanjing West Road, Jing An',
  idNumber: '11010519491231002X',
  userId: 'crm-zhang-7731',
};
const FORBIDDEN = [
  PERSON.email,
  PERSON.email.toLowerCase(),
  '13912345678',
  '8613912345678',
  '139 1234 5678',
  PERSON.name,
  'Weiqiang',
  PERSON.address,
  'Nanjing West',
  PERSON.idNumber,
  '110105194912310',
];

describe('the log scrubber (pure)', () => {
  it('masks e-mails, phone and ID numbers in strings; keeps numbers, times and UUIDs', () => {
    expect(scrubText('to ana.lopez@example.com at +86 138-1234-5678')).toBe('to a********@example.com at +86138****5678');
    const line = scrubLogLine(
      JSON.stringify({ level: 50, time: 1733532000000, reqId: '550e8400-e29b-41d4-a716-446655440000', at: '2026-12-07T00:40:45.123Z', err: { message: 'dup 13812345678', detail: 'Key (value)=(Ana Lopez)' } }) + '\n',
    );
    expect(JSON.parse(line)).toEqual({ level: 50, time: 1733532000000, reqId: '550e8400-e29b-41d4-a716-446655440000', at: '2026-12-07T00:40:45.123Z', err: { message: 'dup 138****5678' } });
    expect(line.endsWith('\n')).toBe(true);
  });
});

describe('personal data never reaches the logs', () => {
  let t: TestApp;
  const lines: string[] = [];
  const stderr: string[] = [];
  let dir: string;

  beforeAll(async () => {
    t = await startTestApp({ logLevel: 'debug', logDestination: { write: (line: string) => lines.push(line) } });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tp-logs-'));
    // An unexpected failure quoting a row, as PostgreSQL's errors do (message, detail, where).
    t.app.get('/v1/test-failure', { config: { permission: 'public' } }, async () => {
      throw Object.assign(new Error(`duplicate key value for ${PERSON.email} / ${PERSON.phone}`), {
        code: '23505',
        detail: `Key (workspace_id, type, value)=(w, name, ${PERSON.name}) already exists.`,
        where: `row (${PERSON.address})`,
      });
    });
  });
  afterAll(async () => {
    await t?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('through ingest, identity, profile reads, failures, imports and erasure', async () => {
    const errorSpy = vi.spyOn(console, 'error').mockImplementation((...args: unknown[]) => void stderr.push(args.map(String).join(' ')));
    const warnSpy = vi.spyOn(console, 'warn').mockImplementation((...args: unknown[]) => void stderr.push(args.map(String).join(' ')));
    const logSpy = vi.spyOn(console, 'log').mockImplementation((...args: unknown[]) => void stderr.push(args.map(String).join(' ')));
    const worker = await startWorker({ db: t.db, concurrency: 1 });
    try {
      const write = { authorization: basicAuth(t.writeKey) };
      const traits = { email: PERSON.email, phone: PERSON.phone, name: PERSON.name, address: PERSON.address, id_number: PERSON.idNumber };
      expect((await t.app.inject({ method: 'POST', url: '/v1/identify', headers: write, payload: { userId: PERSON.userId, traits } })).statusCode).toBe(200);
      expect(
        (await t.app.inject({ method: 'POST', url: '/v1/track', headers: write, payload: { userId: PERSON.userId, event: 'Order Completed', properties: { shipTo: PERSON.address, contact: PERSON.phone }, context: { traits: { email: PERSON.email } } } }))
          .statusCode,
      ).toBe(200);
      // Rejected and malformed bodies carrying the same values.
      await t.app.inject({ method: 'POST', url: '/v1/identify', headers: write, payload: { userId: PERSON.userId, traits, timestamp: PERSON.name } });
      await t.app.inject({ method: 'POST', url: '/v1/batch', headers: { ...write, 'content-type': 'application/json' }, payload: `{"batch":[{"type":"identify","userId":"${PERSON.userId}","traits":{"name":"${PERSON.name}"` });
      await t.app.inject({ method: 'POST', url: `/v1/track?email=${encodeURIComponent(PERSON.email)}`, headers: write, payload: { event: 'x', properties: { name: PERSON.name } } });
      await t.app.inject({ method: 'POST', url: '/v1/import', headers: write, payload: { batch: [{ type: 'identify', userId: 'crm-import-1', traits: { ...traits, email: `import.${PERSON.email}` }, timestamp: '2024-01-01T00:00:00Z' }] } });

      // Identity resolution by the running worker.
      const deadline = Date.now() + 60_000;
      while (Date.now() < deadline) {
        const { rows } = await t.db.query('select 1 from profile_identifiers where workspace_id = $1 and type = $2', [t.workspace.id, 'user_id']);
        const queued = await t.db.query('select 1 from identity_queue where workspace_id = $1 limit 1', [t.workspace.id]);
        if (rows.length >= 2 && queued.rowCount === 0) break;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }

      // Profile reads by identifier (in the path and the query), a failure, a 404 naming a person.
      const key = (await createKey(t.db, t.workspace.id, { kind: 'server' })).key;
      const read = { authorization: `Bearer ${key}` };
      for (const ref of [`email:${PERSON.email}`, `phone:${PERSON.phone}`, `user_id:${PERSON.userId}`, `email:nobody.${PERSON.email}`]) {
        await t.app.inject({ method: 'GET', url: profileUrl(ref), headers: read });
        await t.app.inject({ method: 'GET', url: profileUrl(ref, '/events'), headers: read });
      }
      await t.app.inject({ method: 'GET', url: `/v1/profiles?identifier=${encodeURIComponent(PERSON.email)}&trait.name=${encodeURIComponent(PERSON.name)}`, headers: read });
      await t.app.inject({ method: 'GET', url: `/v1/no-such-route/${encodeURIComponent(PERSON.email)}/${encodeURIComponent(PERSON.name)}` });
      expect((await t.app.inject({ method: 'GET', url: '/v1/test-failure' })).statusCode).toBe(500);
      await t.app.inject({ method: 'POST', url: '/v1/privacy/exports', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'x-touchpoint-workspace': 'acme' }, payload: { subject: `email:${PERSON.email}` } });
      await t.app.inject({ method: 'POST', url: '/v1/privacy/erasures', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'x-touchpoint-workspace': 'acme' }, payload: { subject: `email:import.${PERSON.email}` } });
    } finally {
      await worker.stop();
      errorSpy.mockRestore();
      warnSpy.mockRestore();
      logSpy.mockRestore();
    }

    // The bulk import command, as a process: its stdout and stderr.
    const file = path.join(dir, 'people.csv');
    fs.writeFileSync(file, `id,email,phone,name,address,signed\n${PERSON.userId},${PERSON.email},${PERSON.phone},${PERSON.name},"${PERSON.address}",not-a-date\n,${PERSON.email},,${PERSON.name},,\n`);
    const imported = await cli(['import', '--source', t.writeKey, '--file', file, '--type', 'identify', '--map', 'userId=id', '--map', 'traits.signed=signed:date'], t.database.url);
    expect(imported.code).toBe(0);

    const server = lines.join('');
    // The capture did see the requests (by route pattern) and the failure.
    expect(server).toContain('"url":"/v1/profiles/:profile"');
    expect(server).toContain('unhandled error');
    const everything = [server, stderr.join('\n'), imported.stdout, imported.stderr].join('\n');
    for (const value of FORBIDDEN) expect(everything, `log output contains "${value}"`).not.toContain(value);
    expect(everything.toLowerCase()).not.toContain(PERSON.email.toLowerCase());
  });
});
