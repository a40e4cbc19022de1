import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dashboardBuildState } from '../src/dashboard/build.ts';
import { isApiPath } from '../src/dashboard/serve.ts';
import { createKey } from '../src/workspaces/store.ts';
import { startTestApp, type TestApp } from './support/app.ts';

/** A dashboard build as Vite lays it out: index.html naming a hashed asset. */
function fakeBuild(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tp-dash-dist-'));
  fs.mkdirSync(path.join(dir, 'assets'));
  fs.writeFileSync(path.join(dir, 'index.html'), '<!doctype html><div id="root"></div><script src="/assets/app-1a2b.js"></script>');
  fs.writeFileSync(path.join(dir, 'assets', 'app-1a2b.js'), 'console.log("dashboard")');
  fs.writeFileSync(path.join(dir, 'favicon.svg'), '<svg xmlns="http://www.w3.org/2000/svg"/>');
  return dir;
}

describe('the server serves the dashboard at / with an SPA fallback', () => {
  let t: TestApp;
  let dist: string;
  beforeAll(async () => {
    dist = fakeBuild();
    t = await startTestApp({ dashboardDir: dist });
  });
  afterAll(async () => {
    await t.close();
    fs.rmSync(dist, { recursive: true, force: true });
  });

  it('answers index.html at / and at deep links, never cached', async () => {
    for (const url of ['/', '/profiles/3f1c', '/segments/new?x=1']) {
      const res = await t.app.inject({ method: 'GET', url });
      expect(res.statusCode, url).toBe(200);
      expect(res.headers['content-type']).toMatch(/text\/html/);
      expect(res.body).toContain('/assets/app-1a2b.js');
      expect(res.headers['cache-control']).toBe('no-cache');
    }
  });

  it('serves hashed assets as immutable and other files uncached', async () => {
    const asset = await t.app.inject({ method: 'GET', url: '/assets/app-1a2b.js' });
    expect(asset.statusCode).toBe(200);
    expect(asset.headers['content-type']).toMatch(/javascript/);
    expect(asset.headers['cache-control']).toMatch(/immutable/);
    const icon = await t.app.inject({ method: 'GET', url: '/favicon.svg' });
    expect(icon.statusCode).toBe(200);
    expect(icon.headers['cache-control']).not.toMatch(/immutable/);
  });

  it('answers a missing asset and path traversal with 404, not the page', async () => {
    const missing = await t.app.inject({ method: 'GET', url: '/assets/old-9z9z.js' });
    expect(missing.statusCode).toBe(404);
    expect(missing.json()).toMatchObject({ error: 'not_found' });
    const traversal = await t.app.inject({ method: 'GET', url: '/assets/..%2f..%2fpackage.json' });
    expect(traversal.body).not.toContain('"name"');
  });

  it('does not shadow API routes: unknown API paths stay JSON 404s and real ones answer', async () => {
    for (const url of ['/v1/nothing-here', '/admin/nope', '/v1/profiles/x/y/z/w']) {
      const res = await t.app.inject({ method: 'GET', url });
      expect(res.statusCode, url).toBe(404);
      expect(res.headers['content-type']).toMatch(/application\/json/);
    }
    expect((await t.app.inject({ method: 'GET', url: '/health' })).json()).toEqual({ status: 'ok', database: 'ok' });
    expect((await t.app.inject({ method: 'GET', url: '/openapi.json' })).json()).toHaveProperty('paths');
    const post = await t.app.inject({ method: 'POST', url: '/profiles' });
    expect(post.statusCode).toBe(404);
  });

  it('classifies API paths', () => {
    expect(isApiPath('/v1/segments?limit=5')).toBe(true);
    expect(isApiPath('/health')).toBe(true);
    expect(isApiPath('/metrics')).toBe(true);
    expect(isApiPath('/segments')).toBe(false);
    expect(isApiPath('/')).toBe(false);
    expect(isApiPath('/v1x')).toBe(false);
  });

  it('GET /v1/overview answers the numbers of the first page and names a bad range field', async () => {
    const { key } = await createKey(t.db, t.workspace.id, { kind: 'server' });
    const auth = { authorization: `Bearer ${key}` };
    const now = Date.now();
    const batch = [0, 1, 1, 2].map((daysAgo, i) => ({
      type: 'track',
      event: 'Viewed',
      messageId: `ov-${i}`,
      ...(i === 0 ? { userId: 'u-1' } : { anonymousId: `a-${i}` }),
      timestamp: new Date(now - daysAgo * 86_400_000 - 3_600_000).toISOString(),
    }));
    const sent = await t.app.inject({ method: 'POST', url: '/v1/batch', headers: { 'x-write-key': t.writeKey }, payload: { batch } });
    expect(sent.statusCode).toBe(200);
    const from = new Date(now - 7 * 86_400_000).toISOString();
    const to = new Date(now + 60_000).toISOString();
    const res = await t.app.inject({ method: 'GET', url: `/v1/overview?from=${from}&to=${to}`, headers: auth });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body.events).toBe(4);
    expect(body.eventsPerDay.reduce((sum: number, d: { events: number }) => sum + d.events, 0)).toBe(4);
    expect(body.eventsPerDay.length).toBeGreaterThanOrEqual(2);
    expect(body.timeZone).toBe(t.workspace.timeZone);

    const backwards = await t.app.inject({ method: 'GET', url: `/v1/overview?from=${to}&to=${from}`, headers: auth });
    expect(backwards.statusCode).toBe(400);
    expect(backwards.json()).toMatchObject({ error: 'invalid_request', field: 'to' });
    const unauthenticated = await t.app.inject({ method: 'GET', url: `/v1/overview?from=${from}&to=${to}` });
    expect(unauthenticated.statusCode).toBe(401);
  });
});

describe('dashboard build state', () => {
  it('is missing without dist, fresh after a build, stale when a source changes', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tp-dash-pkg-'));
    try {
      fs.mkdirSync(path.join(dir, 'src'));
      const source = path.join(dir, 'src', 'main.tsx');
      fs.writeFileSync(source, 'export {}');
      fs.utimesSync(source, new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));
      expect(dashboardBuildState(dir).status).toBe('missing');
      fs.mkdirSync(path.join(dir, 'dist'));
      fs.writeFileSync(path.join(dir, 'dist', 'index.html'), '<!doctype html>');
      expect(dashboardBuildState(dir).status).toBe('fresh');
      fs.utimesSync(source, new Date(Date.now() + 5_000), new Date(Date.now() + 5_000));
      expect(dashboardBuildState(dir).status).toBe('stale');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
