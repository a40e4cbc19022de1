import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildServer } from '../src/api/server.ts';
import { createPool } from '../src/storage/database.ts';
import { basicAuth, startTestApp, type TestApp } from './support/app.ts';

describe('operations endpoints', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(async () => t.close());

  it('GET / without a dashboard build answers with a page pointing at the API documents', async () => {
    const app = await buildServer({ db: t.db, verifyAdmin: () => false, logLevel: false, dashboardDir: '/nonexistent/touchpoint-dashboard' });
    const res = await app.inject({ method: 'GET', url: '/' });
    await app.close();
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/text\/html/);
    expect(res.body).toContain('/openapi.json');
  });

  it('GET /health reports a reachable database', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/health' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ status: 'ok', database: 'ok' });
  });

  it('GET /health answers 503 when the database cannot be reached', async () => {
    const unreachable = createPool('postgres://nobody:x@127.0.0.1:1/none', 1);
    const app = await buildServer({ db: unreachable, verifyAdmin: () => false, logLevel: false });
    try {
      const res = await app.inject({ method: 'GET', url: '/health' });
      expect(res.statusCode).toBe(503);
      expect(res.json()).toMatchObject({ status: 'unavailable', database: 'unreachable' });
    } finally {
      await app.close();
      await unreachable.end();
    }
  });

  it('GET /metrics counts requests, accepted and rejected events with latency histograms', async () => {
    const auth = { authorization: basicAuth(t.writeKey) };
    await t.app.inject({
      method: 'POST',
      url: '/v1/batch',
      headers: auth,
      payload: { batch: [{ type: 'track', userId: 'a', event: 'X' }, { type: 'track', userId: 'a' }, { type: 'identify', anonymousId: 'z' }] },
    });
    await t.app.inject({ method: 'POST', url: '/v1/track', headers: { authorization: basicAuth('tpw_nope') }, payload: { userId: 'a', event: 'X' } });
    const res = await t.app.inject({ method: 'GET', url: '/metrics' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/text\/plain/);
    const text = res.body;
    expect(text).toMatch(/touchpoint_events_accepted_total\{endpoint="batch"\} 2/);
    expect(text).toMatch(/touchpoint_events_rejected_total\{endpoint="batch",reason="missing_event"\} 1/);
    expect(text).toMatch(/touchpoint_ingest_requests_rejected_total\{reason="unauthorized"\} 1/);
    expect(text).toMatch(/touchpoint_http_requests_total\{method="POST",route="\/v1\/batch",status="200"\} 1/);
    expect(text).toMatch(/touchpoint_http_request_duration_seconds_bucket\{le="0.1",method="POST",route="\/v1\/batch"\}/);
  });

  it('GET /openapi.json documents the collection routes with the schemas that validate them', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/openapi.json' });
    expect(res.statusCode).toBe(200);
    const doc = res.json();
    expect(doc.openapi).toMatch(/^3\./);
    for (const route of ['/v1/track', '/v1/identify', '/v1/page', '/v1/screen', '/v1/group', '/v1/alias', '/v1/batch', '/v1/import', '/health']) {
      expect(Object.keys(doc.paths)).toContain(route);
    }
    const track = doc.paths['/v1/track'].post;
    const bodySchema = track.requestBody.content['application/json'].schema;
    expect(Object.keys(bodySchema.properties)).toEqual(expect.arrayContaining(['userId', 'anonymousId', 'event', 'messageId', 'properties']));
    expect(bodySchema.properties.messageId.maxLength).toBe(100);
    expect(Object.keys(track.responses)).toEqual(expect.arrayContaining(['200', '400', '401', '413', '429']));
    // Short forms work but are not listed twice.
    expect(Object.keys(doc.paths)).not.toContain('/v1/t');
  });
});
