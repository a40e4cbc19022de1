import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { drain, send, serverKey } from './profiles-support.ts';
import { basicAuth, startTestApp, type TestApp } from './support/app.ts';

/**
 * GET /v1/visitor/segments: what the SDK may read back about its own visitor with a public write
 * key. Two visitors: anon-1 who logged in as u-1 (a Shanghai buyer), anon-2 who did not.
 */
describe('visitor segments API (write key)', () => {
  let t: TestApp;
  let admin: (method: 'POST' | 'PATCH', url: string, payload: object) => Promise<{ statusCode: number; json: () => unknown }>;
  const clock = new Date('2026-03-01T00:00:00Z');

  const visitor = (query: string, headers: Record<string, string> = { authorization: basicAuth(t.writeKey) }) =>
    t.app.inject({ method: 'GET', url: `/v1/visitor/segments?${query}`, headers });

  beforeAll(async () => {
    t = await startTestApp({ now: () => clock });
    const key = await serverKey(t);
    admin = (method, url, payload) => t.app.inject({ method, url, headers: { authorization: `Bearer ${key}` }, payload });
    await send(t, t.writeKey, [
      { type: 'page', anonymousId: 'anon-1', name: 'Home', messageId: 'p1', timestamp: '2026-02-01T10:00:00Z' },
      { type: 'identify', anonymousId: 'anon-1', userId: 'u-1', traits: { city: '上海', email: 'li@example.com' }, messageId: 'i1', timestamp: '2026-02-01T10:01:00Z' },
      { type: 'track', userId: 'u-1', event: 'Order Completed', properties: { revenue: 10 }, messageId: 'o1', timestamp: '2026-02-02T10:00:00Z' },
      { type: 'page', anonymousId: 'anon-2', name: 'Home', messageId: 'p2', timestamp: '2026-02-01T10:00:00Z' },
    ]);
    await drain(t);
    const segments = [
      { key: 'buyers', name: 'Buyers', kind: 'realtime', text: 'event("Order Completed").exists()', clientVisible: true },
      { key: 'shanghai', name: 'Shanghai', kind: 'realtime', text: 'trait.city = "上海"' },
      { key: 'visitors', name: 'Visitors', kind: 'realtime', text: 'event("Order Completed").exists() or not event("Order Completed").exists()', clientVisible: true },
    ];
    for (const segment of segments) expect((await admin('POST', '/v1/segments', segment)).statusCode).toBe(201);
  });
  afterAll(async () => t.close());

  it('answers only the keys of client-visible segments, by anonymous id or user id', async () => {
    for (const query of ['anonymousId=anon-1', 'userId=u-1', 'userId=u-1&anonymousId=anon-2']) {
      const res = await visitor(query);
      expect(res.statusCode, query).toBe(200);
      // The member of "shanghai" is not told about it: it is not client-visible.
      expect(res.json(), query).toEqual({ segments: ['buyers', 'visitors'] });
      expect(res.headers['cache-control']).toBe('private, no-store');
    }
    expect((await visitor('anonymousId=anon-2')).json()).toEqual({ segments: ['visitors'] });
  });

  it('follows the segment setting: made visible through the segments API, it is answered', async () => {
    const made = await admin('PATCH', '/v1/segments/shanghai', { clientVisible: true });
    expect(made.statusCode).toBe(200);
    expect(made.json()).toMatchObject({ key: 'shanghai', clientVisible: true });
    expect((await visitor('userId=u-1')).json()).toEqual({ segments: ['buyers', 'shanghai', 'visitors'] });
    await admin('PATCH', '/v1/segments/shanghai', { clientVisible: false });
    expect((await visitor('userId=u-1')).json()).toEqual({ segments: ['buyers', 'visitors'] });
  });

  it('answers an unknown visitor exactly like one in no visible segment (no existence oracle)', async () => {
    const res = await visitor('anonymousId=never-seen');
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ segments: [] });
  });

  it('refuses requests without a usable write key or visitor id, naming the problem', async () => {
    expect((await visitor('anonymousId=anon-1', {})).json()).toMatchObject({ error: 'unauthorized' });
    expect((await visitor('anonymousId=anon-1', { authorization: basicAuth('wk_nope') })).statusCode).toBe(401);
    // A server key is not a write key: this endpoint is for the SDK only.
    const server = await serverKey(t);
    expect((await visitor('anonymousId=anon-1', { authorization: basicAuth(server) })).statusCode).toBe(401);
    const none = await visitor('');
    expect(none.statusCode).toBe(400);
    expect(none.json()).toMatchObject({ error: 'invalid_request', field: 'anonymousId' });
    const extra = await visitor('anonymousId=anon-1&email=li@example.com');
    expect(extra.statusCode).toBe(400);
    const viaHeader = await visitor('anonymousId=anon-2', { 'x-write-key': t.writeKey });
    expect(viaHeader.json()).toEqual({ segments: ['visitors'] });
  });

  it('lets browsers on any site ask (CORS preflight for the Authorization header)', async () => {
    const res = await t.app.inject({
      method: 'OPTIONS',
      url: '/v1/visitor/segments?anonymousId=anon-1',
      headers: { origin: 'https://shop.example.com', 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization' },
    });
    expect(res.statusCode).toBe(204);
    expect(res.headers['access-control-allow-origin']).toBe('https://shop.example.com');
    expect(String(res.headers['access-control-allow-methods'])).toContain('GET');
  });
});
