import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import type { DeliveryError } from '../src/core/types.ts';
import { createNodeClient } from '../src/node/index.ts';
import { parseRetryAfter } from '../src/node/transport.ts';

interface Received {
  at: number;
  headers: IncomingMessage['headers'];
  body: { batch: Array<{ messageId: string; type: string; event?: string; userId?: string; anonymousId?: string; context: Record<string, unknown> }> };
}

/** What the scripted server answers the nth request with; `hang` never answers. */
type Answer = { status: number; retryAfter?: string } | 'hang';

/** A local HTTP server answering /v1/batch from a script (then 200), recording every request. */
async function scriptedServer(script: Answer[]) {
  const received: Received[] = [];
  const hanging: Array<() => void> = [];
  const server: Server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const raw = Buffer.concat(chunks);
      const text = request.headers['content-encoding'] === 'gzip' ? gunzipSync(raw).toString('utf8') : raw.toString('utf8');
      received.push({ at: performance.now(), headers: request.headers, body: JSON.parse(text) as Received['body'] });
      const answer = script.shift() ?? { status: 200 };
      if (answer === 'hang') {
        hanging.push(() => response.destroy());
        return;
      }
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (answer.retryAfter !== undefined) headers['retry-after'] = answer.retryAfter;
      response.writeHead(answer.status, headers).end(answer.status < 300 ? '{"success":true}' : '{"error":"unavailable"}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const host = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    host,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        for (const destroy of hanging) destroy();
        server.close(() => resolve());
      }),
  };
}

const ids = (request: Received) => request.body.batch.map((message) => message.messageId);

describe('Node.js client delivery', () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0)) await cleanup();
  });

  async function setup(script: Answer[], options: Partial<Parameters<typeof createNodeClient>[0]> = {}) {
    const server = await scriptedServer(script);
    const errors: DeliveryError[] = [];
    const client = createNodeClient({
      writeKey: 'wk_test',
      host: server.host,
      flushAt: 100,
      flushIntervalMs: 60_000,
      retryBaseMs: 5,
      retryMaxMs: 20,
      onError: (error) => errors.push(error),
      ...options,
    });
    cleanups.push(async () => {
      await client.close({ timeoutMs: 0 });
      await server.close();
    });
    return { server, client, errors };
  }

  it('sends gzip-compressed batches with the write key as the Basic username', async () => {
    const { server, client, errors } = await setup([]);
    client.track({ userId: 'u1', event: 'Order Completed', properties: { revenue: 12 }, identifiers: { phone: '+8613800138000' } });
    client.identify({ anonymousId: 'a1', traits: { plan: 'pro' } });
    await client.flush();
    expect(server.received).toHaveLength(1);
    const [request] = server.received;
    expect(request!.headers['content-encoding']).toBe('gzip');
    expect(request!.headers.authorization).toBe(`Basic ${Buffer.from('wk_test:').toString('base64')}`);
    const [track, identify] = request!.body.batch;
    expect(track).toMatchObject({ type: 'track', event: 'Order Completed', userId: 'u1' });
    // A server message names only the ids it was given.
    expect(track).not.toHaveProperty('anonymousId');
    expect(track!.context.externalIds).toEqual([{ id: '+8613800138000', type: 'phone', collection: 'users', encoding: 'none' }]);
    expect(identify).toMatchObject({ type: 'identify', anonymousId: 'a1', traits: { plan: 'pro' } });
    expect(identify).not.toHaveProperty('userId');
    expect(errors).toEqual([]);
    expect(client.queued()).toBe(0);
  });

  it('retries a 500 and a 429, waiting out Retry-After before the next attempt, then delivers once', async () => {
    const { server, client, errors } = await setup([{ status: 500 }, { status: 429, retryAfter: '1' }]);
    client.track({ userId: 'u1', event: 'A' });
    client.track({ userId: 'u1', event: 'B' });
    await client.close({ timeoutMs: 5_000 });
    expect(server.received.map((r) => r.body.batch.map((m) => m.event))).toEqual([
      ['A', 'B'],
      ['A', 'B'],
      ['A', 'B'],
    ]);
    // The same messages each time, so the server's messageId deduplication keeps one copy.
    expect(ids(server.received[1]!)).toEqual(ids(server.received[0]!));
    expect(ids(server.received[2]!)).toEqual(ids(server.received[0]!));
    // The attempt after the 429 came no sooner than its Retry-After (1 s; backoff alone is <= 20 ms).
    // Timers never fire early, so this lower bound cannot flake; the margin covers clock rounding.
    expect(server.received[2]!.at - server.received[1]!.at).toBeGreaterThanOrEqual(990);
    expect(errors).toEqual([]);
  });

  it('gives up after maxRetries and reports the messages, without blocking later ones', async () => {
    const { server, client, errors } = await setup([{ status: 503 }, { status: 503 }, { status: 503 }], { maxRetries: 2 });
    client.track({ userId: 'u1', event: 'Lost' });
    await client.flush();
    await expect.poll(() => errors.length).toBe(1);
    expect(errors[0]).toMatchObject({ reason: 'retries_exhausted', status: 503 });
    expect(errors[0]!.messages.map((m) => m.event)).toEqual(['Lost']);
    expect(server.received).toHaveLength(3);
    client.track({ userId: 'u1', event: 'Next' });
    await client.flush();
    expect(server.received.at(-1)!.body.batch.map((m) => m.event)).toEqual(['Next']);
  });

  it('retries a request that times out or cannot connect', async () => {
    const { server, client, errors } = await setup(['hang'], { timeoutMs: 100 });
    client.track({ anonymousId: 'a1', event: 'Slow' });
    await client.close({ timeoutMs: 5_000 });
    expect(server.received).toHaveLength(2);
    expect(ids(server.received[1]!)).toEqual(ids(server.received[0]!));
    expect(errors).toEqual([]);

    const unreachable: DeliveryError[] = [];
    const offline = createNodeClient({ writeKey: 'wk', host: 'http://127.0.0.1:1', maxRetries: 1, retryBaseMs: 1, onError: (e) => unreachable.push(e) });
    offline.track({ userId: 'u1', event: 'Nowhere' });
    await offline.close({ timeoutMs: 5_000 });
    expect(unreachable).toHaveLength(1);
    expect(unreachable[0]!.reason).toBe('retries_exhausted');
    expect(unreachable[0]!).not.toHaveProperty('status');
  });

  it('close() sends what is queued before resolving, and refuses calls afterwards', async () => {
    const { server, client, errors } = await setup([]);
    for (let i = 0; i < 5; i++) client.track({ userId: 'u1', event: `E${i}` });
    expect(server.received).toHaveLength(0);
    await client.close();
    expect(server.received.flatMap((r) => r.body.batch.map((m) => m.event))).toEqual(['E0', 'E1', 'E2', 'E3', 'E4']);
    expect(client.queued()).toBe(0);
    expect(() => client.track({ userId: 'u1', event: 'Late' })).toThrow(/after close/);
    expect(errors).toEqual([]);
  });

  it('close() that runs out of time reports what is left as closed, not silently', async () => {
    const { client, errors } = await setup([{ status: 503, retryAfter: '60' }]);
    client.track({ userId: 'u1', event: 'Stuck' });
    await client.flush();
    await client.close({ timeoutMs: 50 });
    expect(errors).toHaveLength(1);
    expect(errors[0]!.reason).toBe('closed');
    expect(errors[0]!.messages.map((m) => m.event)).toEqual(['Stuck']);
  });

  it('refuses calls that name nobody or lack required fields, with the reason', () => {
    const client = createNodeClient({ writeKey: 'wk', host: 'http://127.0.0.1:1', onError: () => undefined });
    expect(() => client.track({ event: 'X' })).toThrow('touchpoint: track needs a userId or an anonymousId');
    expect(() => client.track({ userId: 'u1', event: '' })).toThrow('touchpoint: track: event must be a non-empty string');
    expect(() => client.alias({ userId: 'u1', previousId: '' })).toThrow(/previousId/);
    expect(() => client.identify({ userId: 'u1', timestamp: new Date('nope') })).toThrow(/timestamp/);
    expect(() => createNodeClient({ writeKey: '', host: 'http://x' })).toThrow(/writeKey/);
    expect(client.queued()).toBe(0);
  });

  it('reads Retry-After as seconds or an HTTP date', () => {
    const now = new Date('2026-01-01T00:00:00Z');
    expect(parseRetryAfter('3', now)).toBe(3000);
    expect(parseRetryAfter('Thu, 01 Jan 2026 00:00:05 GMT', now)).toBe(5000);
    expect(parseRetryAfter('Wed, 31 Dec 2025 23:00:00 GMT', now)).toBe(0);
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter(null, now)).toBeUndefined();
  });
});
