import zlib from 'node:zlib';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { basicAuth, startTestApp, type TestApp } from './support/app.ts';
import { clearEvents, post, quarantined, storedEvents } from './collection-helpers.ts';

describe('collection validation: clear errors, nothing valid lost, invalid items quarantined', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(async () => t.close());
  beforeEach(async () => clearEvents(t));

  describe('malformed bodies', () => {
    it.each([
      ['truncated JSON', '{"userId": "u1", "event": '],
      ['not JSON at all', 'userId=u1&event=E'],
      ['an empty body', ''],
      ['only whitespace', '  \n'],
    ])('%s is 400 malformed_json with the reason', async (_name, body) => {
      for (const url of ['/v1/track', '/v1/batch']) {
        const response = await post(t, url, body, { 'content-type': 'application/json' });
        expect(response.statusCode).toBe(400);
        const json = response.json();
        expect(json.error).toBe('malformed_json');
        expect(json.message).toMatch(/JSON|empty/);
      }
      expect(await storedEvents(t)).toEqual([]);
    });

    it('no body and no content type is the same 400 malformed_json, with nothing quarantined', async () => {
      for (const url of ['/v1/track', '/v1/batch']) {
        const response = await t.app.inject({ method: 'POST', url, headers: { authorization: basicAuth(t.writeKey) } });
        expect(response.statusCode).toBe(400);
        expect(response.json()).toEqual({ error: 'malformed_json', message: 'The request body is empty' });
      }
      expect(await quarantined(t)).toEqual([]);
    });

    it('a leading byte-order mark is not an error', async () => {
      const response = await post(t, '/v1/track', '\uFEFF{"userId": "u1", "event": "BOM", "messageId": "bom"}', { 'content-type': 'application/json' });
      expect(response.statusCode, response.body).toBe(200);
      expect((await storedEvents(t)).map((row) => row.event)).toEqual(['BOM']);
    });

    it('a batch body that is not {"batch": [...]} is 400 invalid_request naming the field', async () => {
      const cases: Array<[unknown, string]> = [
        [{ events: [] }, 'batch'],
        [{ batch: { type: 'track' } }, 'batch'],
        [[{ type: 'track', userId: 'u1', event: 'E' }], 'batch'],
        [{ batch: [], context: 'web' }, 'context'],
        [{ batch: [], sentAt: 'yesterday' }, 'sentAt'],
      ];
      for (const [body, field] of cases) {
        const response = await post(t, '/v1/batch', body);
        expect(response.statusCode, JSON.stringify(body)).toBe(400);
        expect(response.json()).toMatchObject({ error: 'invalid_request', field, message: expect.stringContaining(field) });
      }
    });
  });

  describe('an invalid single call', () => {
    it.each([
      ['/v1/track', { userId: 'u1' }, 'missing_event', 'event'],
      ['/v1/t', { event: 'E' }, 'missing_identity', 'userId'],
      ['/v1/identify', { traits: { a: 1 } }, 'missing_identity', 'userId'],
      ['/v1/page', { name: 'Home' }, 'missing_identity', 'userId'],
      ['/v1/screen', { anonymousId: 'a1', timestamp: 'now' }, 'invalid_timestamp', 'timestamp'],
      ['/v1/group', { userId: 'u1' }, 'missing_group_id', 'groupId'],
      ['/v1/alias', { userId: 'u1' }, 'missing_previous_id', 'previousId'],
      ['/v1/a', { previousId: 'a1', anonymousId: 'a1' }, 'missing_identity', 'userId'],
      ['/v1/track', { userId: 'u1', event: 'E', messageId: 'm'.repeat(101) }, 'message_id_too_long', 'messageId'],
      ['/v1/track', { userId: 'u1', event: 'E', properties: 'big' }, 'invalid_field', 'properties'],
    ])('%s %j is 400 %s, and quarantined', async (url, body, error, field) => {
      const response = await post(t, url, body);
      expect(response.statusCode).toBe(400);
      const json = response.json();
      expect(json).toEqual({ error, field, message: expect.any(String), quarantineId: expect.stringMatching(/^[0-9a-f-]{36}$/) });
      const [row, ...others] = await quarantined(t);
      expect(others).toEqual([]);
      expect(row).toMatchObject({ id: json.quarantineId, reason: error, field, source_id: t.source.id });
      expect(JSON.parse(row!.payload)).toMatchObject(body);
      expect(row!.errors).toEqual([{ error, field, message: json.message }]);
      expect(await storedEvents(t)).toEqual([]);
    });

    it('that is not an object is quarantined as sent', async () => {
      const response = await post(t, '/v1/identify', '["u1"]');
      expect(response.statusCode).toBe(400);
      expect(response.json()).toMatchObject({ error: 'not_an_object' });
      const [row] = await quarantined(t);
      expect(row).toMatchObject({ reason: 'not_an_object', endpoint: 'identify', field: null, payload: '["u1"]' });
    });

    it('of more than 32 KB is 400 event_too_large and kept whole in quarantine', async () => {
      const body = { userId: 'u1', event: 'Big', messageId: 'big-1', properties: { blob: 'x'.repeat(33 * 1024) } };
      const response = await post(t, '/v1/track', body);
      expect(response.statusCode).toBe(400);
      expect(response.json()).toMatchObject({ error: 'event_too_large' });
      const [row] = await quarantined(t);
      expect(row).toMatchObject({ reason: 'event_too_large', message_id: 'big-1', endpoint: 'track' });
      expect(JSON.parse(row!.payload)).toEqual(body);
    });
  });

  describe('a batch with some invalid items', () => {
    it('stores the valid ones, quarantines each invalid one with its payload and reason, and lists them by index', async () => {
      const batch = [
        { type: 'track', userId: 'u1', event: 'Good 0', messageId: 'g0' },
        { type: 'track', userId: 'u1', messageId: 'bad-1' },
        { type: 'identify', anonymousId: 'a1', traits: { plan: 'free' }, messageId: 'g2' },
        'not an event',
        { type: 'launch', userId: 'u1', messageId: 'bad-4' },
        { type: 'group', userId: 'u1', messageId: 'bad-5' },
        { type: 'page', anonymousId: 'a1', messageId: 'g6' },
      ];
      const response = await post(t, '/v1/batch', { batch, context: { ip: '192.0.2.1' } });
      expect(response.statusCode).toBe(200);
      const json = response.json();
      expect(json).toMatchObject({ success: true, accepted: 3, duplicates: 0 });
      expect(json.rejected).toEqual([
        { index: 1, messageId: 'bad-1', error: 'missing_event', field: 'event', message: expect.any(String), quarantineId: expect.any(String) },
        { index: 3, messageId: null, error: 'not_an_object', field: null, message: expect.any(String), quarantineId: expect.any(String) },
        { index: 4, messageId: 'bad-4', error: 'invalid_type', field: 'type', message: expect.any(String), quarantineId: expect.any(String) },
        { index: 5, messageId: 'bad-5', error: 'missing_group_id', field: 'groupId', message: expect.any(String), quarantineId: expect.any(String) },
      ]);
      expect((await storedEvents(t)).map((row) => row.message_id)).toEqual(['g0', 'g2', 'g6']);
      const rows = await quarantined(t);
      expect(rows).toHaveLength(4);
      for (const rejected of json.rejected as Array<{ index: number; quarantineId: string; error: string }>) {
        const row = rows.find((r) => r.id === rejected.quarantineId)!;
        expect(row).toMatchObject({ reason: rejected.error, endpoint: 'batch', source_id: t.source.id });
        const item = batch[rejected.index];
        // Objects carry the batch context they were sent with; anything else is kept as it was.
        expect(JSON.parse(row.payload)).toEqual(typeof item === 'object' ? { ...item, context: { ip: '192.0.2.1' } } : item);
      }
    });

    it('quarantines strings with NUL or lone surrogates as invalid_character and stores the rest of the batch', async () => {
      const raw = `{"batch": [
        {"type": "track", "userId": "u1", "event": "Fine", "messageId": "c0"},
        {"type": "track", "userId": "u1", "event": "Nul", "messageId": "c1", "properties": {"note": "a\\u0000b"}},
        {"type": "identify", "userId": "u\\ud83d", "messageId": "c2"},
        {"type": "track", "userId": "u1", "event": "Emoji \\ud83d\\ude00", "messageId": "c3"},
        {"type": "track", "userId": "u1", "event": "Tail", "messageId": "c4", "properties": {"\\udc00key": 1}},
        {"type": "page", "anonymousId": "a1", "name": "Fine too", "messageId": "c5"}
      ]}`;
      const response = await post(t, '/v1/batch', raw, { 'content-type': 'text/plain' });
      expect(response.statusCode, response.body).toBe(200);
      const json = response.json();
      expect(json).toMatchObject({ accepted: 3 });
      expect(json.rejected.map((r: { index: number; error: string }) => [r.index, r.error])).toEqual([
        [1, 'invalid_character'],
        [2, 'invalid_character'],
        [4, 'invalid_character'],
      ]);
      const rows = await storedEvents(t);
      expect(rows.map((row) => [row.message_id, row.event])).toEqual([['c0', 'Fine'], ['c3', 'Emoji 😀'], ['c5', null]]);
      // The payload column is JSON text, which keeps what jsonb cannot.
      const payloads = (await quarantined(t)).map((row) => row.payload);
      expect(payloads).toHaveLength(3);
      expect(payloads.find((p) => p.includes('"c1"'))).toContain('a\\u0000b');
      expect(JSON.parse(payloads.find((p) => p.includes('"c2"'))!).userId).toBe('u\ud83d');
    });
  });

  it('quarantines an item with a number too large to store (not stored as null), and stores the rest', async () => {
    const raw = `{"batch": [
      {"type": "track", "userId": "u1", "event": "Huge", "messageId": "n0", "properties": {"amount": 1e400}},
      {"type": "track", "userId": "u1", "event": "Normal", "messageId": "n1", "properties": {"amount": 1e300}}
    ]}`;
    const response = await post(t, '/v1/batch', raw, { 'content-type': 'application/json' });
    expect(response.json()).toMatchObject({
      accepted: 1,
      rejected: [{ index: 0, messageId: 'n0', error: 'invalid_number', field: 'properties.amount' }],
    });
    expect((await storedEvents(t)).map((row) => [row.message_id, row.properties])).toEqual([['n1', { amount: 1e300 }]]);
  });

  describe('limits', () => {
    function eventsOfSize(count: number, bytesEach: number) {
      return Array.from({ length: count }, (_, i) => ({
        type: 'track',
        userId: 'u1',
        event: 'E',
        messageId: `s${i}`,
        properties: { pad: 'x'.repeat(bytesEach) },
      }));
    }

    it('a body up to 500 KB is read; one over is 413 payload_too_large and nothing is stored', async () => {
      const fits = JSON.stringify({ batch: eventsOfSize(20, 25_000) });
      expect(Buffer.byteLength(fits)).toBeLessThanOrEqual(500 * 1024);
      const accepted = await post(t, '/v1/batch', fits, { 'content-type': 'application/json' });
      expect(accepted.statusCode, accepted.body).toBe(200);
      expect(accepted.json()).toMatchObject({ accepted: 20 });

      await clearEvents(t);
      const tooBig = JSON.stringify({ batch: eventsOfSize(21, 25_000) });
      expect(Buffer.byteLength(tooBig)).toBeGreaterThan(500 * 1024);
      const refused = await post(t, '/v1/batch', tooBig, { 'content-type': 'application/json' });
      expect(refused.statusCode).toBe(413);
      expect(refused.json()).toMatchObject({ error: 'payload_too_large', message: expect.stringMatching(/500 KB/) });
      expect(await storedEvents(t)).toEqual([]);
    });

    it('counts the size after decompression, so a gzip bomb is 413', async () => {
      const bomb = zlib.gzipSync(Buffer.concat([Buffer.from('{"batch": [], "pad": "'), Buffer.alloc(50 * 1024 * 1024, 'a'), Buffer.from('"}')]));
      expect(bomb.length).toBeLessThan(100 * 1024);
      const response = await post(t, '/v1/batch', bomb, { 'content-encoding': 'gzip', 'content-type': 'application/json' });
      expect(response.statusCode).toBe(413);
      expect(response.json()).toMatchObject({ error: 'payload_too_large' });
      const compressedBig = zlib.gzipSync(JSON.stringify({ batch: eventsOfSize(21, 25_000) }));
      const second = await post(t, '/v1/batch', compressedBig, { 'content-encoding': 'gzip' });
      expect(second.statusCode).toBe(413);
    });

    it('2,500 events per batch are stored; 2,501 are 400 too_many_events and none is stored', async () => {
      const tooMany = await post(t, '/v1/batch', { batch: eventsOfSize(2_501, 0) });
      expect(tooMany.statusCode).toBe(400);
      expect(tooMany.json()).toEqual({ error: 'too_many_events', field: 'batch', message: expect.stringMatching(/2500.*2501/) });
      expect(await storedEvents(t)).toEqual([]);
      const atLimit = await post(t, '/v1/batch', { batch: eventsOfSize(2_500, 0) });
      expect(atLimit.statusCode).toBe(200);
      expect(atLimit.json()).toMatchObject({ accepted: 2_500, rejected: [] });
      const { rows } = await t.db.query('select count(*)::int as n from events');
      expect(rows[0].n).toBe(2_500);
    });

    it('an item over 32 KB in a batch is quarantined, the rest stored', async () => {
      const batch = [...eventsOfSize(2, 10), ...eventsOfSize(1, 33 * 1024).map((e) => ({ ...e, messageId: 'huge' }))];
      const response = await post(t, '/v1/batch', { batch });
      expect(response.json()).toMatchObject({ accepted: 2, rejected: [{ index: 2, error: 'event_too_large', messageId: 'huge' }] });
      const [row] = await quarantined(t);
      expect(JSON.parse(row!.payload)).toEqual(batch[2]);
    });
  });
});
