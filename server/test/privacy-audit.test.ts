import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditTarget, entryHash, shouldAudit, verifyAuditChain } from '../src/privacy/audit.ts';
import { createKey } from '../src/workspaces/store.ts';
import { ADMIN_TOKEN, startTestApp, type TestApp } from './support/app.ts';
import { login, PASSWORD, userWithRole } from './privacy-support.ts';

const BIN = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'touchpoint.js');
const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };

function cli(args: string[], databaseUrl: string): Promise<{ code: number | null; stdout: string }> {
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, DATABASE_URL: databaseUrl, TOUCHPOINT_ADMIN_TOKEN: '' }, stdio: ['ignore', 'pipe', 'inherit'] });
  let stdout = '';
  child.stdout.on('data', (chunk) => (stdout += chunk));
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, stdout })));
}

describe('audit rules (pure)', () => {
  it('audits changes and personal-data reads, not collection nor plain reads', () => {
    expect(shouldAudit('POST', 'segments.write', undefined)).toBe(true);
    expect(shouldAudit('GET', 'segments.read', undefined)).toBe(false);
    expect(shouldAudit('GET', 'profiles.read', undefined)).toBe(true);
    expect(shouldAudit('POST', 'events.write', undefined)).toBe(false);
    expect(shouldAudit('POST', 'public', 'always')).toBe(true);
    expect(shouldAudit('GET', 'audit.read', 'never')).toBe(false);
  });

  it('keeps configuration parameters readable and hashes values that may name a person', () => {
    const target = auditTarget({ workspace: 'acme', profile: 'email:ana@example.com', key: 'vip' }, () => 'h');
    expect(target).toEqual({ workspace: 'acme', profile: 'hmac:h', key: 'vip' });
    expect(auditTarget({ profile: '6f1d2c1e-8d1f-4c9a-9a39-5a0e0e3f2b11' }, () => 'h')).toEqual({ profile: '6f1d2c1e-8d1f-4c9a-9a39-5a0e0e3f2b11' });
  });

  it('chains hashes: a changed field or previous hash changes the link', () => {
    const entry = { at: new Date('2026-01-01T00:00:00Z'), workspaceId: null, actor: { kind: 'admin_token', id: 'admin', label: 'admin token' }, action: 'x.write', method: 'POST', route: '/x', target: { b: '2', a: '1' }, status: 200, outcome: 'success' as const, ip: null, userAgent: null };
    const base = entryHash(Buffer.alloc(32), 1, entry);
    expect(entryHash(Buffer.alloc(32), 1, { ...entry, target: { a: '1', b: '2' } })).toEqual(base); // key order does not matter
    expect(entryHash(Buffer.alloc(32), 1, { ...entry, status: 201 })).not.toEqual(base);
    expect(entryHash(Buffer.alloc(32, 1), 1, entry)).not.toEqual(base);
  });
});

describe('audit log (real server, real PostgreSQL)', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(async () => t?.close());

  it('records changes, PII reads, logins and refusals with who, what, when, where and the outcome', async () => {
    const session = await userWithRole(t.app, t.db, t.workspace.id, 'marketer', 'mia@example.com');
    await t.app.inject({ method: 'POST', url: '/v1/auth/login', payload: { email: 'mia@example.com', password: 'not the password' } });
    const created = await t.app.inject({
      method: 'POST',
      url: '/v1/segments',
      headers: { ...session.headers(), 'user-agent': 'audit-test' },
      payload: { key: 'pro', name: 'Pro', kind: 'realtime', text: 'trait.plan = "pro"' },
    });
    expect(created.statusCode).toBeLessThan(300);
    await t.app.inject({ method: 'GET', url: '/v1/profiles/email:ana@example.com', headers: session.headers() });
    await t.app.inject({ method: 'GET', url: '/v1/segments', headers: session.headers() }); // not PII: not recorded
    const server = (await createKey(t.db, t.workspace.id, { kind: 'server', permissions: ['segments.read'] })).key;
    await t.app.inject({ method: 'DELETE', url: '/v1/segments/pro', headers: { authorization: `Bearer ${server}` } });

    const log = await t.app.inject({ method: 'GET', url: '/admin/audit?limit=100', headers: admin });
    const items = (log.json() as { items: Array<Record<string, unknown>> }).items.reverse();
    const summary = items.map((item) => [(item.actor as { label: string }).label, item.action, item.method, item.route, item.status, item.outcome]);
    expect(summary).toEqual([
      ['mia@example.com', 'auth.login', 'POST', '/v1/auth/login', 200, 'success'],
      ['mia@example.com', 'auth.login', 'POST', '/v1/auth/login', 401, 'denied'],
      ['mia@example.com', 'segments.write', 'POST', '/v1/segments', created.statusCode, 'success'],
      ['mia@example.com', 'profiles.read', 'GET', '/v1/profiles/:profile', 404, 'failure'],
      [expect.stringMatching(/^server key /), 'segments.write', 'DELETE', '/v1/segments/:key', 403, 'denied'],
    ]);
    const write = items[2]!;
    expect(write).toMatchObject({ workspaceId: t.workspace.id, userAgent: 'audit-test', actor: { kind: 'user', id: session.userId } });
    expect(write.ip).toBeTruthy();
    // The identifier in the URL is never stored readably.
    expect(JSON.stringify(items)).not.toContain('ana@example.com');
    expect((items[3]!.target as { profile: string }).profile).toMatch(/^hmac:[0-9a-f]{32}$/);
  });

  it('searches a workspace log by actor, action and outcome; other workspaces are not visible', async () => {
    const beta = await t.addWorkspace('beta');
    const betaKey = (await createKey(t.db, beta.workspace.id, { kind: 'server', permissions: ['*'] })).key;
    await t.app.inject({ method: 'POST', url: '/v1/tags', headers: { authorization: `Bearer ${betaKey}` }, payload: {} });
    const owner = await userWithRole(t.app, t.db, t.workspace.id, 'owner');
    const byActor = await t.app.inject({ method: 'GET', url: '/v1/audit?actor=mia@example.com&action=segments.', headers: owner.headers() });
    expect(byActor.statusCode).toBe(200);
    const actions = (byActor.json() as { items: Array<{ action: string; workspaceId: string }> }).items;
    expect(actions.map((item) => item.action)).toEqual(['segments.write']);
    const all = (await t.app.inject({ method: 'GET', url: '/v1/audit?limit=1000', headers: owner.headers() })).json() as { items: Array<{ workspaceId: string | null }> };
    expect(all.items.length).toBeGreaterThan(0);
    expect(all.items.every((item) => item.workspaceId === t.workspace.id)).toBe(true);
    const denied = (await t.app.inject({ method: 'GET', url: '/v1/audit?outcome=denied', headers: owner.headers() })).json() as { items: Array<{ outcome: string }> };
    expect(denied.items.every((item) => item.outcome === 'denied')).toBe(true);
    const viewer = await userWithRole(t.app, t.db, t.workspace.id, 'viewer');
    expect((await t.app.inject({ method: 'GET', url: '/v1/audit', headers: viewer.headers() })).statusCode).toBe(403);
  });

  it('exports the filtered log as NDJSON, newest first, and records the export itself', async () => {
    const owner = await userWithRole(t.app, t.db, t.workspace.id, 'owner');
    const listed = (await t.app.inject({ method: 'GET', url: '/v1/audit?limit=1000&outcome=success', headers: owner.headers() })).json() as { items: Array<{ seq: number }> };
    const exported = await t.app.inject({ method: 'GET', url: '/v1/audit/export?outcome=success', headers: owner.headers() });
    expect(exported.statusCode).toBe(200);
    expect(exported.headers['content-type']).toMatch(/^application\/x-ndjson/);
    const lines = exported.body.trim().split('\n').map((line) => JSON.parse(line) as { seq: number; workspaceId: string; outcome: string; route: string });
    // The export's own entry is written before its body is read, so it leads the file.
    expect(lines[0]).toMatchObject({ route: '/v1/audit/export' });
    expect(lines.slice(1).map((line) => line.seq)).toEqual(listed.items.map((item) => item.seq));
    expect(lines.every((line) => line.workspaceId === t.workspace.id && line.outcome === 'success')).toBe(true);
    const after = (await t.app.inject({ method: 'GET', url: '/v1/audit?action=audit.read&limit=5', headers: owner.headers() })).json() as { items: Array<{ route: string }> };
    expect(after.items[0]).toMatchObject({ route: '/v1/audit/export' });
    const instance = await t.app.inject({ method: 'GET', url: '/admin/audit/export', headers: admin });
    expect(instance.body.trim().split('\n').length).toBeGreaterThanOrEqual(lines.length);
    const viewer = await userWithRole(t.app, t.db, t.workspace.id, 'viewer');
    expect((await t.app.inject({ method: 'GET', url: '/v1/audit/export', headers: viewer.headers() })).statusCode).toBe(403);
  });

  it('is append-only in the database, and the chain shows any tampering (API and CLI)', async () => {
    await login(t.app, 'mia@example.com', PASSWORD);
    await expect(t.db.query(`update audit_log set status = 200 where seq = 2`)).rejects.toThrow(/append-only/);
    await expect(t.db.query(`delete from audit_log where seq = 1`)).rejects.toThrow(/append-only/);
    const intact = await t.app.inject({ method: 'GET', url: '/admin/audit/verify', headers: admin });
    expect(intact.json()).toMatchObject({ ok: true });
    expect(intact.json().entries).toBeGreaterThan(5);
    const cliIntact = await cli(['audit', 'verify'], t.database.url);
    expect(cliIntact.code).toBe(0);
    expect(cliIntact.stdout).toMatch(/^Audit log intact: \d+ entries verified/);

    // Someone with the database owner's rights turns the trigger off and rewrites history.
    const client = new pg.Client({ connectionString: t.database.url });
    await client.connect();
    await client.query('alter table audit_log disable trigger audit_log_no_update');
    await client.query(`update audit_log set outcome = 'success', status = 200 where seq = 2`);
    await client.query('alter table audit_log enable trigger audit_log_no_update');
    await client.end();
    expect(await verifyAuditChain(t.db)).toMatchObject({ ok: false, broken: { seq: 2, reason: 'its content does not match its hash' } });
    const cliBroken = await cli(['audit', 'verify'], t.database.url);
    expect(cliBroken.code).toBe(1);
    expect(cliBroken.stdout).toMatch(/BROKEN at entry 2/);
  });
});
