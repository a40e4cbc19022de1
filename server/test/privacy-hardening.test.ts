import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKey } from '../src/workspaces/store.ts';
import { ADMIN_TOKEN, basicAuth, startTestApp, type TestApp } from './support/app.ts';

describe('security headers', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(async () => t?.close());

  it('sends CSP, nosniff, frame denial and no referrer on the API, the dashboard and collection; HSTS only over TLS', async () => {
    const key = (await createKey(t.db, t.workspace.id, { kind: 'server' })).key;
    const answers = [
      await t.app.inject({ method: 'GET', url: '/v1/segments', headers: { authorization: `Bearer ${key}` } }),
      await t.app.inject({ method: 'GET', url: '/' }),
      await t.app.inject({ method: 'GET', url: '/segments/some-page' }),
      await t.app.inject({ method: 'POST', url: '/v1/track', headers: { authorization: basicAuth(t.writeKey) }, payload: { userId: 'u', event: 'E' } }),
      await t.app.inject({ method: 'GET', url: '/v1/nothing-here' }),
    ];
    for (const answer of answers) {
      const csp = String(answer.headers['content-security-policy']);
      expect(csp).toContain("default-src 'self'");
      expect(csp).toContain("script-src 'self'");
      expect(csp).toContain("frame-ancestors 'none'");
      expect(csp).toContain("object-src 'none'");
      expect(answer.headers['x-content-type-options']).toBe('nosniff');
      expect(answer.headers['x-frame-options']).toBe('DENY');
      expect(answer.headers['referrer-policy']).toBe('no-referrer');
      expect(answer.headers['strict-transport-security']).toBeUndefined();
    }
    // The SDK file is loaded by customers' sites.
    const sdk = await t.app.inject({ method: 'GET', url: '/sdk/touchpoint.js' });
    expect(sdk.headers['cross-origin-resource-policy']).toBe('cross-origin');
    const tls = await t.app.inject({ method: 'GET', url: '/v1/segments', headers: { authorization: `Bearer ${key}`, 'x-forwarded-proto': 'https' } });
    expect(tls.headers['strict-transport-security']).toMatch(/^max-age=31536000/);
  });
});

describe('per-IP and per-caller rate limits', () => {
  let t: TestApp;
  let clock = Date.parse('2026-12-07T00:00:00Z');
  beforeAll(async () => {
    t = await startTestApp({ rateLimits: { collectionPerIp: 5, apiPerIp: 3, apiPerCaller: 4 }, now: () => new Date(clock) });
  });
  afterAll(async () => t?.close());

  const track = (ip: string) =>
    t.app.inject({ method: 'POST', url: '/v1/track', remoteAddress: ip, headers: { authorization: basicAuth(t.writeKey) }, payload: { userId: 'u-rate', event: 'E' } });

  it('collection: 429 with Retry-After past the per-IP rate, other addresses unaffected, refilled with time', async () => {
    const statuses = [];
    for (let i = 0; i < 6; i++) statuses.push((await track('203.0.113.5')).statusCode);
    expect(statuses).toEqual([200, 200, 200, 200, 200, 429]);
    const refused = await track('203.0.113.5');
    expect(refused.statusCode).toBe(429);
    expect(refused.headers['retry-after']).toBe('1');
    expect(refused.json()).toMatchObject({ error: 'rate_limited' });
    expect((await track('203.0.113.6')).statusCode).toBe(200);
    // Behind the proxy: the client address it forwards counts, not the proxy's.
    const forwarded = await t.app.inject({
      method: 'POST',
      url: '/v1/track',
      remoteAddress: '203.0.113.5',
      headers: { authorization: basicAuth(t.writeKey), 'x-forwarded-for': '198.51.100.9' },
      payload: { userId: 'u-rate', event: 'E' },
    });
    expect(forwarded.statusCode).toBe(200);
    clock += 1000;
    expect((await track('203.0.113.5')).statusCode).toBe(200);
  });

  it('API: per IP before authentication (login guessing too), and per caller across addresses', async () => {
    const login = () => t.app.inject({ method: 'POST', url: '/v1/auth/login', remoteAddress: '203.0.113.20', payload: { email: 'nobody@example.com', password: 'guess guess guess' } });
    expect([(await login()).statusCode, (await login()).statusCode, (await login()).statusCode, (await login()).statusCode]).toEqual([401, 401, 401, 429]);
    const unknownKey = await t.app.inject({ method: 'GET', url: '/v1/segments', remoteAddress: '203.0.113.20', headers: { authorization: 'Bearer tps_guess' } });
    expect(unknownKey.statusCode).toBe(429);

    const key = (await createKey(t.db, t.workspace.id, { kind: 'server' })).key;
    const read = (ip: string) => t.app.inject({ method: 'GET', url: '/v1/segments', remoteAddress: ip, headers: { authorization: `Bearer ${key}` } });
    const statuses = [];
    for (let i = 0; i < 5; i++) statuses.push((await read(`198.51.100.${30 + i}`)).statusCode);
    expect(statuses).toEqual([200, 200, 200, 200, 429]);
    const refused = await read('198.51.100.99');
    expect(refused.headers['retry-after']).toBe('1');
    expect(refused.json().message).toMatch(/this key/);
    // The admin token is a caller of its own.
    expect((await t.app.inject({ method: 'GET', url: '/v1/segments', remoteAddress: '198.51.100.50', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'x-touchpoint-workspace': 'acme' } })).statusCode).toBe(200);
    // Public GETs (dashboard files, SDK, health) are not counted.
    for (let i = 0; i < 10; i++) expect((await t.app.inject({ method: 'GET', url: '/sdk/touchpoint.js', remoteAddress: '203.0.113.20' })).statusCode).toBe(200);
    clock += 1000;
    expect((await read('198.51.100.30')).statusCode).toBe(200);
  });
});
