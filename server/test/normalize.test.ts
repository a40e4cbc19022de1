import { afterEach, describe, expect, it } from 'vitest';
import { normalizeEvent, parseInstant, type NormalizeOptions, type NormalizedEvent, type Rejection } from '../src/ingest/normalize.ts';

const receivedAt = new Date('2024-06-01T12:00:00.000Z');

function ok(raw: unknown, options: Partial<NormalizeOptions> = {}): NormalizedEvent {
  const result = normalizeEvent(raw, { receivedAt, ...options });
  if (!result.ok) throw new Error(`expected a valid event, got ${result.rejection.error}: ${result.rejection.message}`);
  return result.event;
}

function rejected(raw: unknown, options: Partial<NormalizeOptions> = {}): Rejection {
  const result = normalizeEvent(raw, { receivedAt, ...options });
  if (result.ok) throw new Error('expected a rejection');
  return result.rejection;
}

describe('normalizeEvent: required fields per call type', () => {
  it.each([
    ['track', { event: 'Viewed' }],
    ['identify', {}],
    ['page', {}],
    ['screen', {}],
    ['group', { groupId: 'g1' }],
  ] as const)('%s needs userId or anonymousId', (type, fields) => {
    expect(ok({ ...fields, userId: 'u1' }, { type }).userId).toBe('u1');
    expect(ok({ ...fields, anonymousId: 'a1' }, { type }).anonymousId).toBe('a1');
    expect(rejected({ ...fields }, { type })).toMatchObject({ error: 'missing_identity', field: 'userId' });
    expect(rejected({ ...fields, userId: '  ', anonymousId: null }, { type })).toMatchObject({ error: 'missing_identity' });
  });

  it('track needs a non-empty event name', () => {
    expect(rejected({ userId: 'u1' }, { type: 'track' })).toMatchObject({ error: 'missing_event', field: 'event' });
    expect(rejected({ userId: 'u1', event: ' ' }, { type: 'track' })).toMatchObject({ error: 'missing_event', field: 'event' });
  });

  it('group needs groupId', () => {
    expect(rejected({ userId: 'u1' }, { type: 'group' })).toMatchObject({ error: 'missing_group_id', field: 'groupId' });
    expect(ok({ userId: 'u1', groupId: 42 }, { type: 'group' }).groupId).toBe('42');
  });

  it('alias needs previousId and userId (an anonymousId does not do)', () => {
    expect(rejected({ userId: 'u1' }, { type: 'alias' })).toMatchObject({ error: 'missing_previous_id', field: 'previousId' });
    expect(rejected({ previousId: 'a1', anonymousId: 'a1' }, { type: 'alias' })).toMatchObject({
      error: 'missing_identity',
      field: 'userId',
    });
    const alias = ok({ previousId: 'anon-1', userId: 'u1' }, { type: 'alias' });
    expect(alias).toMatchObject({ type: 'alias', previousId: 'anon-1', userId: 'u1' });
  });

  it('batch items carry their own type; a missing or unknown one is rejected', () => {
    expect(ok({ type: 'identify', userId: 'u1' }).type).toBe('identify');
    expect(rejected({ userId: 'u1' })).toMatchObject({ error: 'invalid_type', field: 'type' });
    expect(rejected({ type: 'purchase', userId: 'u1' })).toMatchObject({ error: 'invalid_type', field: 'type' });
  });

  it("the endpoint's type wins over the body's", () => {
    const event = ok({ type: 'whatever', userId: 'u1', event: 'Clicked' }, { type: 'track' });
    expect(event.type).toBe('track');
    expect(event.event).toBe('Clicked');
  });

  it('rejects things that are not objects', () => {
    for (const raw of [null, 'text', 42, [{ userId: 'u1' }]]) {
      expect(rejected(raw, { type: 'track' })).toMatchObject({ error: 'not_an_object', field: null, payload: raw });
    }
  });

  it('rejects fields of the wrong type, naming the field', () => {
    expect(rejected({ userId: 'u1', event: 'E', properties: [1, 2] }, { type: 'track' })).toMatchObject({
      error: 'invalid_field',
      field: 'properties',
    });
    expect(rejected({ userId: true }, { type: 'identify' })).toMatchObject({ error: 'invalid_field', field: 'userId' });
    expect(rejected({ userId: 'u1', context: 'web' }, { type: 'identify' })).toMatchObject({ error: 'invalid_field', field: 'context' });
    expect(rejected({ userId: 'u1', event: 7 }, { type: 'track' })).toMatchObject({ error: 'invalid_field', field: 'event' });
  });

  it('stores numeric ids as strings', () => {
    const event = ok({ userId: 123, anonymousId: 4.5, event: 'E' }, { type: 'track' });
    expect(event).toMatchObject({ userId: '123', anonymousId: '4.5' });
  });
});

describe('normalizeEvent: messageId', () => {
  it('is generated when absent and kept when present', () => {
    const generated = ok({ userId: 'u1' }, { type: 'identify' }).messageId;
    expect(generated).toMatch(/^[0-9a-f-]{36}$/);
    expect(ok({ userId: 'u1' }, { type: 'identify' }).messageId).not.toBe(generated);
    expect(ok({ userId: 'u1', messageId: 'm-1' }, { type: 'identify' }).messageId).toBe('m-1');
  });

  it('may be 100 characters, not 101', () => {
    expect(ok({ userId: 'u1', messageId: 'x'.repeat(100) }, { type: 'identify' }).messageId).toHaveLength(100);
    expect(rejected({ userId: 'u1', messageId: 'x'.repeat(101) }, { type: 'identify' })).toMatchObject({
      error: 'message_id_too_long',
      field: 'messageId',
      messageId: 'x'.repeat(101),
    });
  });

  it('must be a non-empty string', () => {
    expect(rejected({ userId: 'u1', messageId: '' }, { type: 'identify' })).toMatchObject({ error: 'invalid_field', field: 'messageId' });
    expect(rejected({ userId: 'u1', messageId: 5 }, { type: 'identify' })).toMatchObject({ error: 'invalid_field', field: 'messageId' });
  });
});

describe('normalizeEvent: size and characters', () => {
  it('accepts an event of 32 KB and rejects one byte more', () => {
    const base = { userId: 'u1', event: 'E', properties: { blob: '' } };
    const padding = 32 * 1024 - Buffer.byteLength(JSON.stringify(base));
    const atLimit = { ...base, properties: { blob: 'x'.repeat(padding) } };
    expect(Buffer.byteLength(JSON.stringify(atLimit))).toBe(32 * 1024);
    expect(ok(atLimit, { type: 'track' }).properties).toEqual(atLimit.properties);
    const over = { ...base, properties: { blob: 'x'.repeat(padding + 1) } };
    expect(rejected(over, { type: 'track' })).toMatchObject({ error: 'event_too_large', field: null });
  });

  it('counts bytes, not characters', () => {
    const base = { userId: 'u1', event: 'E', properties: { blob: '' } };
    const chars = Math.ceil((32 * 1024 - Buffer.byteLength(JSON.stringify(base))) / 3) + 1;
    expect(rejected({ ...base, properties: { blob: '€'.repeat(chars) } }, { type: 'track' }).error).toBe('event_too_large');
  });

  it('rejects NUL and lone surrogates anywhere, including keys and the batch context', () => {
    const cases: unknown[] = [
      { userId: 'u\u0000', event: 'E' },
      { userId: 'u1', event: 'E', properties: { name: 'a\ud800b' } },
      { userId: 'u1', event: 'E', properties: { ['k\u0000']: 1 } },
      { userId: 'u1', event: 'E', properties: { tail: 'x\udfff' } },
    ];
    for (const raw of cases) {
      expect(rejected(raw, { type: 'track' })).toMatchObject({ error: 'invalid_character', payload: raw });
    }
    expect(
      rejected({ type: 'track', userId: 'u1', event: 'E' }, { batch: { context: { ip: '1.2.3.4\u0000' } } }),
    ).toMatchObject({ error: 'invalid_character' });
  });

  it('rejects numbers too large to store instead of storing them as null', () => {
    const raw = JSON.parse('{"userId": "u1", "event": "E", "properties": {"items": [1, {"price": 1e400}]}}') as unknown;
    expect(rejected(raw, { type: 'track' })).toMatchObject({ error: 'invalid_number', field: 'properties.items.1.price' });
    expect(ok({ userId: 'u1', event: 'E', properties: { none: null, small: 1e-400, big: 1.7e308 } }, { type: 'track' }).properties).toEqual({
      none: null,
      small: 0,
      big: 1.7e308,
    });
  });

  it('accepts paired surrogates and the text "\\u0000" written with a backslash', () => {
    const event = ok({ userId: 'u1', event: 'E', properties: { emoji: '😀', literal: '\\u0000', path: 'C:\\\\ud800' } }, { type: 'track' });
    expect(event.properties).toEqual({ emoji: '😀', literal: '\\u0000', path: 'C:\\\\ud800' });
  });
});

describe('normalizeEvent: times', () => {
  const type = 'track' as const;
  const base = { userId: 'u1', event: 'E' };

  it('corrects the client clock: timestamp = receivedAt − (sentAt − originalTimestamp)', () => {
    // The client clock is 1 h fast; the event happened 5 s before it was sent.
    const event = ok({ ...base, originalTimestamp: '2024-06-01T12:59:55.000Z', sentAt: '2024-06-01T13:00:00.000Z' }, { type });
    expect(event.receivedAt).toEqual(receivedAt);
    expect(event.originalTimestamp!.toISOString()).toBe('2024-06-01T12:59:55.000Z');
    expect(event.sentAt!.toISOString()).toBe('2024-06-01T13:00:00.000Z');
    expect(event.timestamp.toISOString()).toBe('2024-06-01T11:59:55.000Z');
  });

  it('takes the event timestamp as originalTimestamp when there is none', () => {
    const event = ok({ ...base, timestamp: '2024-06-01T10:00:00+02:00', sentAt: '2024-06-01T08:00:01Z' }, { type });
    expect(event.originalTimestamp!.toISOString()).toBe('2024-06-01T08:00:00.000Z');
    expect(event.timestamp.toISOString()).toBe('2024-06-01T11:59:59.000Z');
  });

  it('keeps an explicit timestamp sent along with originalTimestamp as given (as RudderStack does)', () => {
    const event = ok(
      { ...base, timestamp: '2020-01-01T00:00:00Z', originalTimestamp: '2024-06-01T11:00:00Z', sentAt: '2024-06-01T11:00:01Z' },
      { type },
    );
    expect(event.originalTimestamp!.toISOString()).toBe('2024-06-01T11:00:00.000Z');
    expect(event.timestamp.toISOString()).toBe('2020-01-01T00:00:00.000Z');
    expect(rejected({ ...base, timestamp: '1960-01-01T00:00:00Z', originalTimestamp: '2024-06-01T11:00:00Z' }, { type })).toMatchObject({
      error: 'invalid_timestamp',
      field: 'timestamp',
    });
  });

  it('without sentAt keeps the client time; without any client time uses receivedAt', () => {
    const noSentAt = ok({ ...base, timestamp: '2024-05-31T09:30:00.250Z' }, { type });
    expect(noSentAt.timestamp.toISOString()).toBe('2024-05-31T09:30:00.250Z');
    expect(noSentAt.sentAt).toBeNull();
    const noTime = ok({ ...base, sentAt: '2024-06-01T12:00:03Z' }, { type });
    expect(noTime.timestamp).toEqual(receivedAt);
    expect(noTime.originalTimestamp).toBeNull();
    expect(noTime.sentAt!.toISOString()).toBe('2024-06-01T12:00:03.000Z');
  });

  it('historical imports keep timestamps as sent, with no clock-skew correction', () => {
    const event = ok(
      { type: 'track', ...base, originalTimestamp: '2019-03-04T05:06:07Z', sentAt: '2024-06-01T13:00:00Z' },
      { historical: true },
    );
    expect(event.timestamp.toISOString()).toBe('2019-03-04T05:06:07.000Z');
    expect(event.receivedAt).toEqual(receivedAt);
  });

  it('uses the batch sentAt unless the item has its own', () => {
    const batch = { sentAt: '2024-06-01T12:00:10Z' };
    const fromBatch = ok({ type: 'track', ...base, timestamp: '2024-06-01T12:00:00Z' }, { batch });
    expect(fromBatch.sentAt!.toISOString()).toBe('2024-06-01T12:00:10.000Z');
    expect(fromBatch.timestamp.toISOString()).toBe('2024-06-01T11:59:50.000Z');
    const own = ok({ type: 'track', ...base, timestamp: '2024-06-01T12:00:00Z', sentAt: '2024-06-01T12:00:01Z' }, { batch });
    expect(own.timestamp.toISOString()).toBe('2024-06-01T11:59:59.000Z');
  });

  it('rejects unparsable, impossible and out-of-range times, naming the field', () => {
    expect(rejected({ ...base, timestamp: 'yesterday' }, { type })).toMatchObject({ error: 'invalid_timestamp', field: 'timestamp' });
    expect(rejected({ ...base, timestamp: '2024-02-30T10:00:00Z' }, { type })).toMatchObject({ error: 'invalid_timestamp' });
    expect(rejected({ ...base, timestamp: '2024-01-01T24:00:00Z' }, { type })).toMatchObject({ error: 'invalid_timestamp' });
    expect(rejected({ ...base, sentAt: 1717243200000 }, { type })).toMatchObject({ error: 'invalid_timestamp', field: 'sentAt' });
    expect(rejected({ ...base, originalTimestamp: '1970-01-01T00:00:00Z' }, { type })).toMatchObject({
      error: 'invalid_timestamp',
      field: 'originalTimestamp',
    });
    expect(rejected({ ...base, timestamp: '2250-01-01T00:00:00Z' }, { type })).toMatchObject({ field: 'timestamp' });
    expect(rejected({ ...base, sentAt: '1969-12-31T00:00:00Z' }, { type })).toMatchObject({ error: 'invalid_timestamp', field: 'sentAt' });
    // Valid on their own, but the client clock is so far off that the corrected time is out of range.
    expect(
      rejected({ ...base, originalTimestamp: '1971-01-01T00:00:00Z', sentAt: '2199-01-01T00:00:00Z' }, { type }),
    ).toMatchObject({ error: 'invalid_timestamp', field: 'sentAt' });
  });

  describe('in a server time zone other than UTC', () => {
    const zone = process.env.TZ;
    afterEach(() => {
      if (zone === undefined) delete process.env.TZ;
      else process.env.TZ = zone;
    });

    it('reads a time without a zone as UTC, wherever the server runs', () => {
      process.env.TZ = 'Asia/Kolkata';
      expect(new Date(2024, 0, 1).getTimezoneOffset()).toBe(-330);
      const event = ok({ ...base, timestamp: '2024-06-01T10:00:00' }, { type });
      expect(event.timestamp.toISOString()).toBe('2024-06-01T10:00:00.000Z');
      expect(parseInstant('2024-06-01 10:00')).toBe(Date.UTC(2024, 5, 1, 10, 0));
    });
  });

  it('parseInstant reads ISO-8601 forms exactly', () => {
    expect(parseInstant('2024-06-01')).toBe(Date.UTC(2024, 5, 1));
    expect(parseInstant('2024-06-01T10:00:00.123456Z')).toBe(Date.UTC(2024, 5, 1, 10, 0, 0, 123));
    expect(parseInstant('2024-06-01T10:00:00.5-0130')).toBe(Date.UTC(2024, 5, 1, 11, 30, 0, 500));
    expect(parseInstant('2024-02-29T00:00:00Z')).toBe(Date.UTC(2024, 1, 29));
    expect(parseInstant('2023-02-29T00:00:00Z')).toBeNull();
    expect(parseInstant('June 1, 2024')).toBeNull();
    expect(parseInstant('2024-06-01T10:00:00+25:00')).toBeNull();
  });

  it('parseInstant answers the same when a text is read again, also after many others (answers are kept)', () => {
    const texts = ['2024-06-01T10:00:00.5-0130', '2023-02-29T00:00:00Z', '2024-02-29T00:00:00Z'];
    const expected = [Date.UTC(2024, 5, 1, 11, 30, 0, 500), null, Date.UTC(2024, 1, 29)];
    for (let round = 0; round < 2; round++) {
      expect(texts.map(parseInstant)).toEqual(expected);
      // More distinct texts than are kept, each checked against its own arithmetic.
      for (let i = 0; i < 5000; i++) {
        const ms = Date.UTC(2025, 0, 1) + i * 61_001;
        expect(parseInstant(new Date(ms).toISOString())).toBe(ms);
      }
    }
    expect(texts.map(parseInstant)).toEqual(expected);
  });
});

describe('normalizeEvent: batch defaults and extra fields', () => {
  it('merges batch context and integrations into each item; the item wins', () => {
    const event = ok(
      { type: 'track', userId: 'u1', event: 'E', context: { ip: '10.0.0.1' }, integrations: { Mixpanel: false } },
      { batch: { context: { ip: '1.1.1.1', library: { name: 'x' } }, integrations: { All: true, Mixpanel: true } } },
    );
    expect(event.context).toEqual({ ip: '10.0.0.1', library: { name: 'x' } });
    expect(event.integrations).toEqual({ All: true, Mixpanel: false });
  });

  it("does not let the batch context hide an item's invalid context", () => {
    const rejection = rejected({ type: 'track', userId: 'u1', event: 'E', context: 'mobile' }, { batch: { context: { ip: '1.1.1.1' } } });
    expect(rejection).toMatchObject({ error: 'invalid_field', field: 'context' });
  });

  it('keeps the merged item as the quarantine payload', () => {
    const rejection = rejected({ type: 'track', userId: 'u1' }, { batch: { context: { ip: '1.1.1.1' }, sentAt: '2024-06-01T12:00:00Z' } });
    expect(rejection.payload).toEqual({ type: 'track', userId: 'u1', context: { ip: '1.1.1.1' }, sentAt: '2024-06-01T12:00:00Z' });
  });

  it('keeps unknown top-level fields (and `event` of non-track calls) as extra; drops only writeKey and receivedAt', () => {
    const event = ok(
      { userId: 'u1', name: 'Home', category: 'Docs', event: 'Viewed Home', channel: 'server', _metadata: { v: 1 }, writeKey: 'k', receivedAt: 'x' },
      { type: 'page' },
    );
    expect(event).toMatchObject({ name: 'Home', category: 'Docs', event: null });
    expect(event.extra).toEqual({ event: 'Viewed Home', channel: 'server', _metadata: { v: 1 } });
    expect(ok({ userId: 'u1', event: 'E' }, { type: 'track' }).extra).toBeNull();
  });
});
