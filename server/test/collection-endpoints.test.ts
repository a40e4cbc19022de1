import zlib from 'node:zlib';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createKey } from '../src/workspaces/store.ts';
import { basicAuth, startTestApp, type TestApp } from './support/app.ts';
import { isSealedValue } from '../src/privacy/pii-codec.ts';
import { clearEvents, iso, openStoredEvents, post, storedEvents } from './collection-helpers.ts';

// The server clock is fixed so stored times can be compared exactly.
const NOW = new Date('2024-06-01T12:00:00.000Z');

describe('collection endpoints (Segment HTTP tracking API)', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ now: () => NOW });
  });
  afterAll(async () => t.close());
  beforeEach(async () => clearEvents(t));

  const calls = [
    ['track', 't', { userId: 'u1', event: 'Order Completed', properties: { total: 30.5, items: [{ sku: 'A' }] } }],
    ['identify', 'i', { userId: 'u1', anonymousId: 'a1', traits: { email: 'ann@example.com', plan: 'pro' } }],
    ['page', 'p', { anonymousId: 'a1', name: 'Pricing', category: 'Marketing', properties: { url: 'https://x.test/pricing' } }],
    ['screen', 's', { userId: 'u1', name: 'Home', properties: { variant: 'B' } }],
    ['group', 'g', { userId: 'u1', groupId: 'org-9', traits: { name: 'Initech', employees: 120 } }],
    ['alias', 'a', { userId: 'u1', previousId: 'a1' }],
  ] as const;

  describe.each(calls)('/v1/%s and /v1/%s', (type, short, body) => {
    it('store the call with its type and fields', async () => {
      for (const [url, messageId] of [[`/v1/${type}`, `${type}-long`], [`/v1/${short}`, `${type}-short`]] as const) {
        const response = await post(t, url, { ...body, messageId, context: { ip: '203.0.113.9' } });
        expect(response.statusCode, response.body).toBe(200);
        expect(response.json()).toEqual({ success: true, accepted: 1, duplicates: 0, rejected: [] });
      }
      const stored = await storedEvents(t);
      // PII trait values (email, name) are sealed at ingest (privacy/pii-codec.ts): not in clear at rest.
      for (const [key, value] of Object.entries(stored[0]!.traits ?? {})) if (key === 'email' || key === 'name') expect(isSealedValue(value)).toBe(true);
      const rows = await openStoredEvents(t, stored);
      expect(rows.map((row) => [row.message_id, row.type])).toEqual([[`${type}-long`, type], [`${type}-short`, type]]);
      const row = rows[0]!;
      expect(row).toMatchObject({
        workspace_id: t.workspace.id,
        source_id: t.source.id,
        user_id: 'userId' in body ? body.userId : null,
        anonymous_id: 'anonymousId' in body ? body.anonymousId : null,
        event: 'event' in body ? body.event : null,
        name: 'name' in body ? body.name : null,
        category: 'category' in body ? body.category : null,
        group_id: 'groupId' in body ? body.groupId : null,
        previous_id: 'previousId' in body ? body.previousId : null,
        properties: 'properties' in body ? body.properties : null,
        traits: 'traits' in body ? body.traits : null,
        context: { ip: '203.0.113.9' },
        extra: null,
      });
      expect(iso(row.received_at)).toBe(NOW.toISOString());
    });
  });

  it('/v1/batch and /v1/b store items of every type in order', async () => {
    const batch = calls.map(([type, , body], i) => ({ ...body, type, messageId: `b-${i}` }));
    for (const url of ['/v1/batch', '/v1/b']) {
      const response = await post(t, url, { batch: batch.map((item) => ({ ...item, messageId: `${url}-${item.messageId}` })) });
      expect(response.statusCode, response.body).toBe(200);
      expect(response.json()).toEqual({ success: true, accepted: 6, duplicates: 0, rejected: [] });
    }
    const rows = await storedEvents(t);
    expect(rows.map((row) => `${row.message_id}:${row.type}`)).toEqual([
      ...calls.map(([type], i) => `/v1/batch-b-${i}:${type}`),
      ...calls.map(([type], i) => `/v1/b-b-${i}:${type}`),
    ]);
  });

  it('an empty batch is accepted and stores nothing', async () => {
    const response = await post(t, '/v1/batch', { batch: [] });
    expect(response.json()).toEqual({ success: true, accepted: 0, duplicates: 0, rejected: [] });
  });

  describe('write key', () => {
    const track = { userId: 'u1', event: 'E' };

    it('is read from the Basic username (password ignored), X-Write-Key, or writeKey in the body', async () => {
      const basicWithPassword = `Basic ${Buffer.from(`${t.writeKey}:anything`).toString('base64')}`;
      const attempts = [
        t.app.inject({ method: 'POST', url: '/v1/track', headers: { authorization: basicWithPassword }, payload: { ...track, messageId: 'k1' } }),
        t.app.inject({ method: 'POST', url: '/v1/track', headers: { 'x-write-key': t.writeKey }, payload: { ...track, messageId: 'k2' } }),
        t.app.inject({ method: 'POST', url: '/v1/track', payload: { ...track, messageId: 'k3', writeKey: t.writeKey } }),
        t.app.inject({ method: 'POST', url: '/v1/batch', payload: { writeKey: t.writeKey, batch: [{ ...track, type: 'track', messageId: 'k4' }] } }),
      ];
      for (const response of await Promise.all(attempts)) expect(response.statusCode, response.body).toBe(200);
      const rows = await storedEvents(t);
      expect(rows.map((row) => row.message_id).sort()).toEqual(['k1', 'k2', 'k3', 'k4']);
      // The key is not kept with the event.
      expect(rows.every((row) => row.extra === null)).toBe(true);
    });

    it('missing, unknown or of the wrong kind is 401 and stores nothing', async () => {
      const serverKey = await createKey(t.db, t.workspace.id, { kind: 'server' });
      const attempts = [
        t.app.inject({ method: 'POST', url: '/v1/track', payload: track }),
        t.app.inject({ method: 'POST', url: '/v1/track', headers: { authorization: basicAuth('tpw_not-a-key') }, payload: track }),
        t.app.inject({ method: 'POST', url: '/v1/batch', headers: { 'x-write-key': 'nope' }, payload: { batch: [{ ...track, type: 'track' }] } }),
        t.app.inject({ method: 'POST', url: '/v1/track', payload: { ...track, writeKey: '' } }),
        t.app.inject({ method: 'POST', url: '/v1/track', headers: { authorization: basicAuth(serverKey.key) }, payload: track }),
      ];
      const responses = await Promise.all(attempts);
      expect(responses.map((response) => response.statusCode)).toEqual([401, 401, 401, 401, 401]);
      expect(responses[0]!.json()).toMatchObject({ error: 'unauthorized', message: expect.stringMatching(/write key is required/) });
      expect(responses[1]!.json()).toEqual({ error: 'unauthorized', message: 'Unknown or disabled write key' });
      expect(await storedEvents(t)).toEqual([]);
    });
  });

  describe('bodies', () => {
    const body = JSON.stringify({ userId: 'u1', event: 'E', messageId: 'm' });

    it('are JSON whatever the content type says, or when it says nothing', async () => {
      const contentTypes = ['application/json', 'application/json; charset=utf-8', 'text/plain', 'text/plain;charset=UTF-8', undefined];
      for (const [i, contentType] of contentTypes.entries()) {
        const response = await t.app.inject({
          method: 'POST',
          url: '/v1/track',
          headers: { authorization: basicAuth(t.writeKey), ...(contentType ? { 'content-type': contentType } : {}) },
          payload: body.replace('"m"', `"m${i}"`),
        });
        expect(response.statusCode, `${contentType}: ${response.body}`).toBe(200);
      }
      expect((await storedEvents(t)).map((row) => row.message_id)).toEqual(['m0', 'm1', 'm2', 'm3', 'm4']);
    });

    it('may be gzip (or deflate) compressed', async () => {
      const batch = { batch: [{ type: 'track', userId: 'u1', event: 'Zipped', messageId: 'z1', properties: { text: 'é'.repeat(1000) } }] };
      const gzipped = await post(t, '/v1/batch', zlib.gzipSync(JSON.stringify(batch)), {
        'content-encoding': 'gzip',
        'content-type': 'application/json',
      });
      expect(gzipped.statusCode, gzipped.body).toBe(200);
      const single = await post(t, '/v1/t', zlib.gzipSync(JSON.stringify({ userId: 'u1', event: 'Zipped', messageId: 'z2' })), {
        'content-encoding': 'gzip',
        'content-type': 'text/plain',
      });
      expect(single.statusCode, single.body).toBe(200);
      const deflated = await post(t, '/v1/t', zlib.deflateSync(JSON.stringify({ userId: 'u1', event: 'Deflated', messageId: 'z3' })), {
        'content-encoding': 'deflate',
      });
      expect(deflated.statusCode, deflated.body).toBe(200);
      const rows = await storedEvents(t);
      expect(rows.map((row) => [row.message_id, row.event])).toEqual([['z1', 'Zipped'], ['z2', 'Zipped'], ['z3', 'Deflated']]);
      expect(rows[0]!.properties).toEqual({ text: 'é'.repeat(1000) });
    });

    it('that claim gzip but are not, or use an unknown encoding, get a clear error', async () => {
      const notGzip = await post(t, '/v1/track', body, { 'content-encoding': 'gzip' });
      expect(notGzip.statusCode).toBe(400);
      expect(notGzip.json()).toMatchObject({ error: 'malformed_body', message: expect.stringMatching(/could not be decoded as gzip/) });
      const brotli = await post(t, '/v1/track', zlib.brotliCompressSync(body), { 'content-encoding': 'br' });
      expect(brotli.statusCode).toBe(415);
      expect(brotli.json()).toMatchObject({ error: 'unsupported_encoding' });
      expect(await storedEvents(t)).toEqual([]);
    });
  });

  describe('CORS for browsers', () => {
    it('answers the preflight from any origin with the headers analytics.js sends', async () => {
      for (const url of ['/v1/t', '/v1/batch', '/v1/import']) {
        const response = await t.app.inject({
          method: 'OPTIONS',
          url,
          headers: {
            origin: 'https://shop.example',
            'access-control-request-method': 'POST',
            'access-control-request-headers': 'content-type,authorization,x-write-key',
          },
        });
        expect(response.statusCode).toBe(204);
        expect(response.headers['access-control-allow-origin']).toBe('https://shop.example');
        expect(String(response.headers['access-control-allow-methods'])).toContain('POST');
        expect(String(response.headers['access-control-allow-headers']).toLowerCase().split(/\s*,\s*/)).toEqual(
          expect.arrayContaining(['content-type', 'authorization', 'x-write-key']),
        );
        expect(Number(response.headers['access-control-max-age'])).toBeGreaterThan(0);
      }
    });

    it('adds the CORS headers to answers, errors included', async () => {
      const origin = 'http://localhost:5173';
      const ok = await post(t, '/v1/page', JSON.stringify({ anonymousId: 'a1', writeKey: t.writeKey }), {
        origin,
        'content-type': 'text/plain',
        authorization: '',
      });
      expect(ok.statusCode, ok.body).toBe(200);
      const unauthorized = await t.app.inject({ method: 'POST', url: '/v1/page', headers: { origin }, payload: { anonymousId: 'a1' } });
      const invalid = await post(t, '/v1/page', { name: 'no identity' }, { origin });
      const malformed = await post(t, '/v1/page', '{', { origin });
      const tooLarge = await post(t, '/v1/batch', 'x'.repeat(600 * 1024), { origin });
      for (const response of [ok, unauthorized, invalid, malformed, tooLarge]) {
        expect(response.headers['access-control-allow-origin']).toBe(origin);
      }
      expect([unauthorized.statusCode, invalid.statusCode, malformed.statusCode, tooLarge.statusCode]).toEqual([401, 400, 400, 413]);
    });
  });

  describe('times (server clock fixed at 12:00:00)', () => {
    it('correct the client clock on single calls', async () => {
      // The device clock runs 2 h behind; the event happened 3 s before the request was sent.
      await post(t, '/v1/track', {
        userId: 'u1',
        event: 'E',
        messageId: 'skew',
        timestamp: '2024-06-01T09:59:57.000Z',
        sentAt: '2024-06-01T10:00:00.000Z',
      });
      const [row] = await storedEvents(t);
      expect([iso(row!.original_timestamp), iso(row!.sent_at), iso(row!.received_at), iso(row!.timestamp)]).toEqual([
        '2024-06-01T09:59:57.000Z',
        '2024-06-01T10:00:00.000Z',
        '2024-06-01T12:00:00.000Z',
        '2024-06-01T11:59:57.000Z',
      ]);
    });

    it('use the batch sentAt and merge batch context and integrations into each item (the item wins)', async () => {
      const response = await post(t, '/v1/batch', {
        sentAt: '2024-06-01T13:00:00.000Z',
        context: { library: { name: 'lib', version: '1' }, ip: '198.51.100.1' },
        integrations: { All: false, Amplitude: true },
        batch: [
          { type: 'track', userId: 'u1', event: 'A', messageId: 'b1', originalTimestamp: '2024-06-01T12:59:00.000Z' },
          {
            type: 'track',
            userId: 'u1',
            event: 'B',
            messageId: 'b2',
            timestamp: '2024-06-01T12:59:30.000Z',
            sentAt: '2024-06-01T12:59:40.000Z',
            context: { ip: '192.0.2.7' },
            integrations: { Amplitude: false },
          },
          { type: 'identify', userId: 'u1', messageId: 'b3' },
        ],
      });
      expect(response.statusCode, response.body).toBe(200);
      const rows = await storedEvents(t);
      expect(rows.map((row) => [row.message_id, iso(row.timestamp), iso(row.original_timestamp), iso(row.sent_at)])).toEqual([
        ['b1', '2024-06-01T11:59:00.000Z', '2024-06-01T12:59:00.000Z', '2024-06-01T13:00:00.000Z'],
        ['b2', '2024-06-01T11:59:50.000Z', '2024-06-01T12:59:30.000Z', '2024-06-01T12:59:40.000Z'],
        ['b3', '2024-06-01T12:00:00.000Z', null, '2024-06-01T13:00:00.000Z'],
      ]);
      expect(rows[0]).toMatchObject({ context: { library: { name: 'lib', version: '1' }, ip: '198.51.100.1' }, integrations: { All: false, Amplitude: true } });
      expect(rows[1]).toMatchObject({ context: { library: { name: 'lib', version: '1' }, ip: '192.0.2.7' }, integrations: { All: false, Amplitude: false } });
    });

    it('/v1/import keeps historical timestamps as sent (no clock-skew correction)', async () => {
      const response = await post(t, '/v1/import', {
        sentAt: '2024-06-01T13:00:00.000Z',
        batch: [
          { type: 'track', userId: 'u1', event: 'Old Order', messageId: 'i1', timestamp: '2019-11-05T08:00:00.000Z' },
          { type: 'identify', userId: 'u1', messageId: 'i2', originalTimestamp: '2021-01-01T00:00:00+01:00' },
        ],
      });
      expect(response.statusCode, response.body).toBe(200);
      expect(response.json()).toMatchObject({ accepted: 2 });
      const rows = await storedEvents(t);
      expect(rows.map((row) => [row.message_id, iso(row.timestamp), iso(row.received_at)])).toEqual([
        ['i1', '2019-11-05T08:00:00.000Z', NOW.toISOString()],
        ['i2', '2020-12-31T23:00:00.000Z', NOW.toISOString()],
      ]);
    });
  });
});
