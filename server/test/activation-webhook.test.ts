import crypto from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { exportFilename, headerRow, memberRow, parseExportColumns, traitCell } from '../src/activation/export.ts';
import {
  backoffDelayMs,
  buildPayload,
  judgeAttempt,
  parseRetryAfter,
  signatureHeader,
  verifySignature,
  type RetryPolicy,
} from '../src/activation/webhook.ts';
import { defaultIdentityConfig } from '../src/identity/identifier-types.ts';

const SECRET = 'whsec_test-secret-0123456789';

describe('signature', () => {
  const body = JSON.stringify({ batchId: 'b', changes: [{ profileId: 'p', change: 'add' }], name: '上海' });

  it('is HMAC-SHA256 over "<t>.<body>" in hex, with the timestamp', () => {
    const expected = crypto.createHmac('sha256', SECRET).update(`1700000000.${body}`).digest('hex');
    expect(signatureHeader(SECRET, body, 1_700_000_000)).toBe(`t=1700000000,v1=${expected}`);
  });

  it('verifies what it signs, and refuses a changed body, another secret, an old timestamp and garbage', () => {
    const header = signatureHeader(SECRET, body, 1_700_000_000);
    expect(verifySignature(SECRET, body, header, 1_700_000_100)).toEqual({ ok: true, timestamp: 1_700_000_000 });
    expect(verifySignature(SECRET, body.replace('add', 'remove'), header, 1_700_000_000)).toEqual({ ok: false, reason: 'no v1 signature matches' });
    expect(verifySignature('whsec_other-secret-000000000', body, header, 1_700_000_000).ok).toBe(false);
    expect(verifySignature(SECRET, body, header, 1_700_000_000 + 301)).toEqual({ ok: false, reason: 'timestamp outside the tolerance' });
    expect(verifySignature(SECRET, body, undefined, 0)).toEqual({ ok: false, reason: 'missing signature header' });
    expect(verifySignature(SECRET, body, 'v1=abc', 0)).toEqual({ ok: false, reason: 'missing or malformed timestamp' });
    expect(verifySignature(SECRET, body, 't=1700000000,v1=zz', 1_700_000_000).ok).toBe(false);
  });

  it('accepts any of several v1 values (secret rotation)', () => {
    const good = signatureHeader(SECRET, body, 1_700_000_000).split(',v1=')[1];
    expect(verifySignature(SECRET, body, `t=1700000000,v1=${'0'.repeat(64)},v1=${good}`, 1_700_000_000).ok).toBe(true);
  });
});

describe('backoff', () => {
  const settings = { backoffBaseMs: 1000, backoffMaxMs: 10_000 };

  it('doubles per attempt up to the cap, with equal jitter between half and all of the nominal delay', () => {
    expect([1, 2, 3, 4, 5, 6].map((n) => backoffDelayMs(n, settings, 0.999_999))).toEqual([1000, 2000, 4000, 8000, 10_000, 10_000]);
    expect([1, 2, 3, 4, 5].map((n) => backoffDelayMs(n, settings, 0))).toEqual([500, 1000, 2000, 4000, 5000]);
    expect(backoffDelayMs(2, settings, 0.5)).toBe(1500);
    expect(backoffDelayMs(1_000, settings, 0)).toBe(5000);
  });

  it('reads Retry-After as seconds or an HTTP date, capped at an hour', () => {
    const now = new Date('2026-03-01T10:00:00Z');
    expect(parseRetryAfter('30', now)).toBe(30_000);
    expect(parseRetryAfter(' 0 ', now)).toBe(0);
    expect(parseRetryAfter('Sun, 01 Mar 2026 10:00:45 GMT', now)).toBe(45_000);
    expect(parseRetryAfter('Sun, 01 Mar 2026 09:00:00 GMT', now)).toBe(0);
    expect(parseRetryAfter('999999', now)).toBe(3_600_000);
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter(null, now)).toBeUndefined();
  });
});

describe('judging an attempt', () => {
  const policy: RetryPolicy = { maxAttempts: 3, backoffBaseMs: 1000, backoffMaxMs: 60_000 };
  const now = new Date('2026-03-01T10:00:00Z');
  const judge = (result: Parameters<typeof judgeAttempt>[0], attempt = 1) => judgeAttempt(result, attempt, policy, now, 0);

  it('delivers on any 2xx', () => {
    expect(judge({ kind: 'response', status: 200 })).toEqual({ outcome: 'delivered' });
    expect(judge({ kind: 'response', status: 204 })).toEqual({ outcome: 'delivered' });
  });

  it('sends a 4xx other than 408/429 to the dead letters at once, with the body excerpt', () => {
    expect(judge({ kind: 'response', status: 400, body: 'bad field\n' })).toEqual({ outcome: 'dead', error: 'HTTP 400: bad field' });
    expect(judge({ kind: 'response', status: 401 })).toEqual({ outcome: 'dead', error: 'HTTP 401' });
    expect(judge({ kind: 'response', status: 404 }).outcome).toBe('dead');
  });

  it('retries 5xx, 408, 429, redirects, timeouts and network errors with the backoff', () => {
    for (const result of [
      { kind: 'response', status: 500 },
      { kind: 'response', status: 503 },
      { kind: 'response', status: 408 },
      { kind: 'response', status: 429 },
      { kind: 'response', status: 302 },
      { kind: 'timeout', timeoutMs: 10_000 },
      { kind: 'network', message: 'ECONNREFUSED' },
    ] as const) {
      expect(judge(result, 2)).toMatchObject({ outcome: 'retry', delayMs: 1000 });
    }
    expect(judge({ kind: 'timeout', timeoutMs: 10_000 })).toEqual({ outcome: 'retry', error: 'no response within 10000 ms', delayMs: 500 });
  });

  it('waits Retry-After on a 429 instead of the backoff', () => {
    expect(judge({ kind: 'response', status: 429, retryAfter: '20' })).toMatchObject({ outcome: 'retry', delayMs: 20_000 });
    // Only a 429's Retry-After is honoured; a 503's is not part of the contract.
    expect(judge({ kind: 'response', status: 503, retryAfter: '20' })).toMatchObject({ outcome: 'retry', delayMs: 500 });
  });

  it('gives up after maxAttempts', () => {
    expect(judge({ kind: 'response', status: 500 }, 3)).toEqual({ outcome: 'dead', error: 'HTTP 500 (after 3 attempts)' });
    expect(judge({ kind: 'network', message: 'ECONNRESET' }, 3)).toEqual({ outcome: 'dead', error: 'network error: ECONNRESET (after 3 attempts)' });
  });
});

describe('payload', () => {
  it('keeps the changes in order with each profile\'s identifiers; a profile without any gets {}', () => {
    const payload = buildPayload({
      destination: { id: 'd1', name: 'CRM' },
      segment: { key: 'vip', name: '贵宾' },
      batchId: 'b1',
      changes: [
        { profileId: 'p2', change: 'add', at: '2026-03-01T10:00:00.000Z', transitionId: 7 },
        { profileId: 'p1', change: 'remove', at: '2026-03-01T10:00:01.000Z', transitionId: 9 },
      ],
      identifiers: new Map([['p2', { email: ['a@x.cn', 'b@x.cn'] }]]),
    });
    expect(payload).toEqual({
      destination: { id: 'd1', name: 'CRM' },
      segment: { key: 'vip', name: '贵宾' },
      batchId: 'b1',
      changes: [
        { profileId: 'p2', change: 'add', at: '2026-03-01T10:00:00.000Z', identifiers: { email: ['a@x.cn', 'b@x.cn'] }, transitionId: 7 },
        { profileId: 'p1', change: 'remove', at: '2026-03-01T10:00:01.000Z', identifiers: {}, transitionId: 9 },
      ],
    });
  });
});

describe('export columns', () => {
  const config = defaultIdentityConfig();

  it('parses identifier types and trait keys, in the order given', () => {
    expect(parseExportColumns({ identifiers: 'email, phone,user_id', traits: '城市,name' }, config)).toEqual({
      identifiers: ['email', 'phone', 'user_id'],
      traits: ['城市', 'name'],
    });
    expect(parseExportColumns({}, config)).toEqual({ identifiers: [], traits: [] });
  });

  it('refuses unknown identifier types, empty entries and repeats, naming the field', () => {
    const refusal = (query: { identifiers?: string; traits?: string }) => {
      try {
        parseExportColumns(query, config);
      } catch (error) {
        const e = error as { statusCode: number; field: string; message: string };
        return { status: e.statusCode, field: e.field, message: e.message };
      }
      return undefined;
    };
    expect(refusal({ identifiers: 'emial' })).toMatchObject({ status: 400, field: 'identifiers', message: expect.stringContaining('Unknown identifier type "emial"') });
    expect(refusal({ identifiers: 'email,,phone' })).toMatchObject({ status: 400, field: 'identifiers', message: 'identifiers has an empty entry at position 2' });
    expect(refusal({ traits: 'city,city' })).toMatchObject({ status: 400, field: 'traits', message: 'traits names "city" twice' });
    expect(refusal({ traits: Array.from({ length: 101 }, (_, i) => `t${i}`).join(',') })).toMatchObject({ status: 400, field: 'traits' });
  });

  it('builds rows: identifiers joined most recent first, traits as text', () => {
    const columns = { identifiers: ['email', 'phone'], traits: ['city', 'age', 'vip', 'tags', 'none'] };
    expect(headerRow(columns)).toEqual(['profile_id', 'entered_at', 'email', 'phone', 'trait.city', 'trait.age', 'trait.vip', 'trait.tags', 'trait.none']);
    const row = memberRow(
      {
        profile_id: 'p1',
        entered_at: new Date('2026-03-01T10:00:00Z'),
        identifiers: { email: ['new@x.cn', 'old@x.cn'] },
        traits: { city: '上海', age: 30, vip: true, tags: ['a', 'b'], none: null },
      },
      columns,
    );
    expect(row).toEqual(['p1', '2026-03-01T10:00:00.000Z', 'new@x.cn|old@x.cn', '', '上海', '30', 'true', '["a","b"]', '']);
    expect(traitCell({ a: 1 })).toBe('{"a":1}');
  });

  it('names the file with an ASCII fallback and the UTF-8 name', () => {
    expect(exportFilename('高价值 (VIP)', new Date('2026-03-01T10:20:30.456Z'))).toBe(
      `attachment; filename="segment-_____VIP_-20260301T102030Z.csv"; filename*=UTF-8''segment-%E9%AB%98%E4%BB%B7%E5%80%BC%20%28VIP%29-20260301T102030Z.csv`,
    );
  });
});
