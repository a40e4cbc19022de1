import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { backoffDelay, createClient, type DeliveryError } from '../src/core/index.ts';
import { inspectableStorage, scriptedTransport } from './core-support.ts';

const HOST = 'https://cdp.example.com/';

beforeEach(() => {
  vi.useFakeTimers({ now: new Date('2026-05-01T10:00:00Z') });
});
afterEach(() => {
  vi.useRealTimers();
});

describe('batching', () => {
  it('sends a batch when flushAt messages wait, with sentAt, the write key and the library in the body', async () => {
    const transport = scriptedTransport();
    const client = createClient({ writeKey: 'wk_1', host: HOST, transport, flushAt: 3 });
    client.track('A');
    client.track('B');
    expect(transport.requests).toHaveLength(0);
    vi.setSystemTime(new Date('2026-05-01T10:00:05Z'));
    client.track('C');
    await vi.runOnlyPendingTimersAsync();
    expect(transport.requests).toHaveLength(1);
    expect(transport.requests[0]!.url).toBe('https://cdp.example.com/v1/batch');
    const [body] = transport.bodies();
    expect(body!.writeKey).toBe('wk_1');
    expect(body!.sentAt).toBe('2026-05-01T10:00:05.000Z');
    expect(body!.batch.map((m) => m.event)).toEqual(['A', 'B', 'C']);
    expect(body!.batch[0]).toMatchObject({
      type: 'track',
      timestamp: '2026-05-01T10:00:00.000Z',
      context: { library: { name: 'touchpoint-sdk', version: expect.any(String) } },
    });
    expect(new Set(body!.batch.map((m) => m.messageId)).size).toBe(3);
    expect(body!.batch[0]!.messageId).toMatch(/^[0-9a-f-]{36}$/);
    expect(client.queued()).toBe(0);
  });

  it('sends fewer than flushAt messages after flushIntervalMs', async () => {
    const transport = scriptedTransport();
    const client = createClient({ writeKey: 'wk', host: HOST, transport, flushAt: 20, flushIntervalMs: 2000 });
    client.track('A');
    client.page('Home');
    await vi.advanceTimersByTimeAsync(1999);
    expect(transport.requests).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(transport.bodies()[0]!.batch.map((m) => m.type)).toEqual(['track', 'page']);
  });

  it('keeps each batch under the byte limit, in order', async () => {
    const transport = scriptedTransport();
    const client = createClient({ writeKey: 'wk', host: HOST, transport, flushAt: 100, flushIntervalMs: 60_000 });
    const filler = 'x'.repeat(20_000);
    for (let i = 0; i < 30; i++) client.track('Big', { i, filler });
    await client.flush();
    expect(transport.requests.length).toBe(2);
    for (const request of transport.requests) expect(Buffer.byteLength(request.body)).toBeLessThan(450 * 1024);
    const order = transport.bodies().flatMap((body) => body.batch.map((m) => m.properties!.i));
    expect(order).toEqual([...Array(30).keys()]);
  });

  it('reports a message over 32 KB instead of queueing it', () => {
    const errors: DeliveryError[] = [];
    const client = createClient({ writeKey: 'wk', host: HOST, transport: scriptedTransport(), onError: (e) => errors.push(e) });
    client.track('Huge', { blob: 'y'.repeat(40_000) });
    expect(client.queued()).toBe(0);
    expect(errors.map((e) => [e.reason, e.messages[0]!.event])).toEqual([['too_large', 'Huge']]);
  });

  it('drops the oldest messages beyond maxQueueSize and reports them', () => {
    const errors: DeliveryError[] = [];
    const client = createClient({ writeKey: 'wk', host: HOST, transport: scriptedTransport(), requireConsent: true, maxQueueSize: 2, onError: (e) => errors.push(e) });
    client.track('1');
    client.track('2');
    client.track('3');
    expect(client.queued()).toBe(2);
    expect(errors.map((e) => [e.reason, e.messages.map((m) => m.event)])).toEqual([['queue_overflow', ['1']]]);
  });
});

describe('retries', () => {
  it('backs off exponentially with jitter, honours Retry-After, and keeps messages until acknowledged', async () => {
    const transport = scriptedTransport([{ ok: false, status: 503 }, 'throw', { ok: false, status: 429, retryAfterMs: 30_000 }]);
    const storage = inspectableStorage();
    const client = createClient({ writeKey: 'wk', host: HOST, transport, storage, flushAt: 1, random: () => 1 });
    client.track('A');
    await vi.advanceTimersByTimeAsync(0);
    expect(transport.requests).toHaveLength(1);
    expect(JSON.parse(storage.dump().tp_queue!)).toHaveLength(1);

    // A new message during the backoff waits for it rather than hammering the server.
    client.track('B');
    await vi.advanceTimersByTimeAsync(999);
    expect(transport.requests).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1); // 1 s after the 503
    expect(transport.requests).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1999);
    expect(transport.requests).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1); // 2 s after the network error
    expect(transport.requests).toHaveLength(3);
    await vi.advanceTimersByTimeAsync(29_999); // Retry-After 30 s beats the 4 s backoff
    expect(transport.requests).toHaveLength(3);
    await vi.advanceTimersByTimeAsync(1);
    expect(transport.requests).toHaveLength(4);
    expect(transport.bodies().map((b) => b.batch.map((m) => m.event))).toEqual([['A'], ['A', 'B'], ['A', 'B'], ['A', 'B']]);
    // Every attempt carries the same messageIds: the server stores them once.
    const ids = transport.bodies().map((b) => b.batch[0]!.messageId);
    expect(new Set(ids).size).toBe(1);
    expect(client.queued()).toBe(0);
    expect(storage.dump().tp_queue).toBeUndefined();
  });

  it('computes backoff within [ceiling/2, ceiling], capped at the maximum', () => {
    expect(backoffDelay(0, 1000, 60_000, 0)).toBe(500);
    expect(backoffDelay(0, 1000, 60_000, 1)).toBe(1000);
    expect(backoffDelay(3, 1000, 60_000, 0.5)).toBe(6000);
    expect(backoffDelay(20, 1000, 60_000, 1)).toBe(60_000);
    expect(backoffDelay(0, 1000, 60_000, 1, 5000)).toBe(5000);
  });

  it('drops a batch the server refuses with a 4xx and reports it; 408 is retried', async () => {
    const errors: DeliveryError[] = [];
    const transport = scriptedTransport([{ ok: false, status: 408 }, { ok: false, status: 400 }]);
    const client = createClient({ writeKey: 'wk', host: HOST, transport, flushAt: 1, random: () => 0, onError: (e) => errors.push(e) });
    client.track('Bad');
    await vi.advanceTimersByTimeAsync(0);
    expect(errors).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(500);
    expect(transport.requests).toHaveLength(2);
    expect(errors.map((e) => [e.reason, e.status, e.messages.map((m) => m.event)])).toEqual([['rejected', 400, ['Bad']]]);
    expect(client.queued()).toBe(0);
    client.track('Next');
    await vi.advanceTimersByTimeAsync(0);
    expect(transport.bodies()[2]!.batch.map((m) => m.event)).toEqual(['Next']);
  });

  it('splits a batch on 413 and reports a single message the server still refuses', async () => {
    const errors: DeliveryError[] = [];
    const transport = scriptedTransport([
      { ok: false, status: 413 }, // [1,2,3,4]
      { ok: true, status: 200 }, // [1,2]
      { ok: false, status: 413 }, // [3,4]
      { ok: false, status: 413 }, // [3]
      { ok: true, status: 200 }, // [4]
    ]);
    const client = createClient({ writeKey: 'wk', host: HOST, transport, flushAt: 100, onError: (e) => errors.push(e) });
    for (const name of ['1', '2', '3', '4']) client.track(name);
    await client.flush();
    expect(transport.bodies().map((b) => b.batch.map((m) => m.event))).toEqual([['1', '2', '3', '4'], ['1', '2'], ['3', '4'], ['3'], ['4']]);
    expect(errors.map((e) => [e.reason, e.status, e.messages.map((m) => m.event)])).toEqual([['too_large', 413, ['3']]]);
    expect(client.queued()).toBe(0);
  });
});

describe('persistence', () => {
  it('sends messages queued before a reload, and keeps the anonymous id', async () => {
    const storage = inspectableStorage();
    const offline = scriptedTransport([{ ok: false, status: 0 }]);
    const first = createClient({ writeKey: 'wk', host: HOST, transport: offline, storage, flushAt: 1 });
    first.track('Before reload');
    await vi.advanceTimersByTimeAsync(0);
    first.close();
    const anonymousId = first.user().anonymousId;

    const online = scriptedTransport();
    const second = createClient({ writeKey: 'wk', host: HOST, transport: online, storage, flushAt: 1 });
    expect(second.queued()).toBe(1);
    second.track('After reload');
    await vi.advanceTimersByTimeAsync(0);
    await second.flush();
    const sent = online.bodies().flatMap((b) => b.batch);
    expect(sent.map((m) => m.event)).toEqual(['Before reload', 'After reload']);
    expect(sent.every((m) => m.anonymousId === anonymousId)).toBe(true);
    expect(second.queued()).toBe(0);
  });

  it('hands the queue to the beacon on unload without forgetting it', () => {
    const transport = { ...scriptedTransport([{ ok: false, status: 0 }]), beacons: [] as string[] };
    const beaconTransport = { send: transport.send, beacon: (r: { body: string }) => (transport.beacons.push(r.body), true) };
    const client = createClient({ writeKey: 'wk', host: HOST, transport: beaconTransport, requireConsent: false, flushIntervalMs: 60_000 });
    client.track('Leaving');
    client.flushOnUnload();
    expect(transport.beacons).toHaveLength(1);
    expect(JSON.parse(transport.beacons[0]!).batch[0].event).toBe('Leaving');
    expect(client.queued()).toBe(1);
  });
});
