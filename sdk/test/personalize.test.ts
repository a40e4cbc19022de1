import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveQueuedEvents } from '../../server/src/identity/resolver.ts';
import { createKey } from '../../server/src/workspaces/store.ts';
import { startTestApp, type TestApp } from '../../server/test/support/app.ts';
import { base64, createPersonalizer, fetchGet, type HttpGet, type Visitor } from '../src/personalize/index.ts';

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe('personalisation helpers against the Touchpoint server', () => {
  let t: TestApp;
  let host: string;

  beforeAll(async () => {
    t = await startTestApp();
    await t.app.listen({ port: 0, host: '127.0.0.1' });
    host = `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`;
    const serverKey = (await createKey(t.db, t.workspace.id, { kind: 'server' })).key;
    const post = (url: string, payload: object, authorization: string) => t.app.inject({ method: 'POST', url, headers: { authorization }, payload });
    const sent = await post('/v1/track', { anonymousId: 'anon-7', event: 'Order Completed', messageId: 'm1' }, `Basic ${base64(`${t.writeKey}:`)}`);
    expect(sent.statusCode).toBe(200);
    while ((await resolveQueuedEvents(t.db, t.workspace.id)) > 0);
    for (const segment of [
      { key: 'buyers', name: 'Buyers', kind: 'realtime', text: 'event("Order Completed").exists()', clientVisible: true },
      { key: 'hidden-buyers', name: 'Hidden', kind: 'realtime', text: 'event("Order Completed").exists()' },
    ]) {
      expect((await post('/v1/segments', segment, `Bearer ${serverKey}`)).statusCode).toBe(201);
    }
  });
  afterAll(async () => t.close());

  const personalizer = (visitor: Visitor, get: HttpGet = fetchGet, at = host) => createPersonalizer({ writeKey: t.writeKey, host: at, get, visitor: () => visitor });

  it("reads the visitor's client-visible segments with the write key", async () => {
    expect(await personalizer({ anonymousId: 'anon-7', userId: null }).getProfileSegments({ timeoutMs: 5_000 })).toEqual(['buyers']);
    expect(await personalizer({ anonymousId: 'someone-else', userId: null }).getProfileSegments({ timeoutMs: 5_000, fallback: ['x'] })).toEqual([]);
  });

  it('answers the fallback for a decision the server does not have yet (404)', async () => {
    const decision = await personalizer({ anonymousId: 'anon-7', userId: 'u 1' }).getDecision('home hero', { timeoutMs: 5_000, fallback: { variant: 'default' } });
    expect(decision).toEqual({ variant: 'default' });
  });

  it('answers the fallback on a wrong write key, a malformed answer, or a thrown request', async () => {
    const wrongKey = createPersonalizer({ writeKey: 'wk_nope', host, get: fetchGet, visitor: () => ({ anonymousId: 'anon-7', userId: null }) });
    expect(await wrongKey.getProfileSegments({ timeoutMs: 5_000, fallback: ['fallback'] })).toEqual(['fallback']);
    const malformed: HttpGet = async () => ({ status: 200, body: { segments: [1, 2] } });
    expect(await personalizer({ anonymousId: 'a', userId: null }, malformed).getProfileSegments({ fallback: ['f'] })).toEqual(['f']);
    const throwing: HttpGet = () => {
      throw new Error('offline');
    };
    expect(await personalizer({ anonymousId: 'a', userId: null }, throwing).getDecision('p', { fallback: null })).toBeNull();
  });
});

describe('personalisation helpers when Touchpoint is slow', () => {
  let slow: Server;
  let host: string;
  const requests: Array<{ url: string; authorization: string | undefined }> = [];

  beforeAll(async () => {
    // Answers after 3 s: a decision and a segment list that arrive too late to be used.
    slow = createServer((request, response) => {
      requests.push({ url: request.url ?? '', authorization: request.headers.authorization });
      const timer = setTimeout(() => {
        const body = request.url?.startsWith('/v1/decisions/') ? { placement: 'hero', variant: 'B' } : { segments: ['late'] };
        response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
      }, 3000);
      response.on('close', () => clearTimeout(timer));
    });
    host = await listen(slow);
  });
  afterAll(async () => {
    slow.closeAllConnections();
    await new Promise((resolve) => slow.close(resolve));
  });

  it('resolves to the fallback at the time limit, before the late answer, and asks with the visitor and write key', async () => {
    const personalizer = createPersonalizer({ writeKey: 'wk_1', host, get: fetchGet, visitor: () => ({ anonymousId: 'anon/1', userId: 'u1' }) });
    let answered = false;
    // 500 ms leaves a loaded machine time to deliver the requests before they are abandoned.
    const decision = personalizer.getDecision('hero', { timeoutMs: 500, fallback: { variant: 'A' } }).then((value) => {
      answered = true;
      return value;
    });
    const segments = personalizer.getProfileSegments({ timeoutMs: 500, fallback: ['default'] });
    expect(await decision).toEqual({ variant: 'A' });
    expect(await segments).toEqual(['default']);
    expect(answered).toBe(true);
    await expect.poll(() => requests.length, { timeout: 5_000 }).toBe(2);
    expect(requests.map((r) => r.url).sort()).toEqual(['/v1/decisions/hero?anonymousId=anon%2F1&userId=u1', '/v1/visitor/segments?anonymousId=anon%2F1&userId=u1']);
    expect(requests[0]!.authorization).toBe(`Basic ${Buffer.from('wk_1:').toString('base64')}`);
  });

  it('uses the answer when it comes within the limit', async () => {
    const personalizer = createPersonalizer({ writeKey: 'wk_1', host, get: fetchGet, visitor: () => ({ anonymousId: 'a', userId: null }) });
    expect(await personalizer.getDecision('hero', { timeoutMs: 10_000, fallback: null })).toEqual({ placement: 'hero', variant: 'B' });
  });

  it('encodes non-ASCII write keys as UTF-8 base64 like Buffer does', () => {
    for (const text of ['wk_abc:', 'ключ:', '密钥🔑:', '', 'a', 'ab']) expect(base64(text)).toBe(Buffer.from(text).toString('base64'));
  });
});
