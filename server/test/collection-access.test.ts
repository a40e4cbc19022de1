import http from 'node:http';
import { createIngestLoad } from '../src/ingest/load.ts';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildServer } from '../src/api/server.ts';
import { createSource, setKeyStatus, setWorkspaceStatus, updateSource } from '../src/workspaces/store.ts';
import { ADMIN_TOKEN, basicAuth, startTestApp, type TestApp } from './support/app.ts';
import { post, storedEvents } from './collection-helpers.ts';

const track = (messageId: string) => ({ userId: 'u1', event: 'E', messageId });

describe('collection access: disabled keys, rate limits and load shedding', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(async () => t.close());

  /** Another server on the same database: its key cache starts empty, as after the 2 s cache expires. */
  async function freshServer() {
    return buildServer({ db: t.db, verifyAdmin: (token) => token === ADMIN_TOKEN, logLevel: false });
  }

  async function sendWithFreshServer(writeKey: string, messageId: string) {
    const app = await freshServer();
    try {
      return await app.inject({ method: 'POST', url: '/v1/track', headers: { authorization: basicAuth(writeKey) }, payload: track(messageId) });
    } finally {
      await app.close();
    }
  }

  describe('401 for a write key that stopped working', () => {
    it('a disabled key, until it is enabled again', async () => {
      const { source, writeKey } = await createSource(t.db, t.workspace.id, { name: 'Key toggled', kind: 'server' });
      await setKeyStatus(t.db, t.workspace.id, writeKey.id, 'disabled');
      const refused = await sendWithFreshServer(writeKey.key, 'key-off');
      expect(refused.statusCode).toBe(401);
      expect(refused.json()).toEqual({ error: 'unauthorized', message: 'Unknown or disabled write key' });
      await setKeyStatus(t.db, t.workspace.id, writeKey.id, 'active');
      expect((await sendWithFreshServer(writeKey.key, 'key-on')).statusCode).toBe(200);
      expect((await storedEvents(t, 'source_id = $1', [source.id])).map((row) => row.message_id)).toEqual(['key-on']);
    });

    it('a disabled source', async () => {
      const { source, writeKey } = await createSource(t.db, t.workspace.id, { name: 'Source toggled', kind: 'app' });
      await updateSource(t.db, t.workspace.id, source.id, { status: 'disabled' });
      expect((await sendWithFreshServer(writeKey.key, 'source-off')).statusCode).toBe(401);
      await updateSource(t.db, t.workspace.id, source.id, { status: 'active' });
      expect((await sendWithFreshServer(writeKey.key, 'source-on')).statusCode).toBe(200);
    });

    it('a disabled workspace', async () => {
      const other = await t.addWorkspace('to-disable');
      await setWorkspaceStatus(t.db, other.workspace.id, 'disabled');
      expect((await sendWithFreshServer(other.writeKey, 'ws-off')).statusCode).toBe(401);
      await setWorkspaceStatus(t.db, other.workspace.id, 'active');
      expect((await sendWithFreshServer(other.writeKey, 'ws-on')).statusCode).toBe(200);
      expect((await storedEvents(t, 'workspace_id = $1', [other.workspace.id])).map((row) => row.message_id)).toEqual(['ws-on']);
    });

    it('a running server notices a change made elsewhere (e.g. the CLI) within its 2 s key cache', async () => {
      const { writeKey } = await createSource(t.db, t.workspace.id, { name: 'Cached', kind: 'web' });
      expect((await post(t, '/v1/track', track('cache-1'), {}, writeKey.key)).statusCode).toBe(200);
      await setKeyStatus(t.db, t.workspace.id, writeKey.id, 'disabled');
      await new Promise((resolve) => setTimeout(resolve, 2_100));
      expect((await post(t, '/v1/track', track('cache-2'), {}, writeKey.key)).statusCode).toBe(401);
    });
  });

  describe('429 with Retry-After', () => {
    it('for a source over its rate_limit_per_second; other sources are not affected', async () => {
      // One event per second leaves a whole second for the refused requests, even on a slow machine.
      const limited = await createSource(t.db, t.workspace.id, { name: 'Limited', kind: 'web', rateLimitPerSecond: 1 });
      const key = limited.writeKey.key;
      const batch = Array.from({ length: 3 }, (_, i) => ({ type: 'track', ...track(`rl-${i}`) }));
      const first = await post(t, '/v1/batch', { batch }, {}, key);
      expect(first.statusCode, first.body).toBe(200);
      const refused = await post(t, '/v1/track', track('rl-over'), { origin: 'https://shop.example' }, key);
      expect(refused.statusCode).toBe(429);
      expect(refused.headers['retry-after']).toBe('1');
      // A browser script may read Retry-After only when it is exposed.
      expect(refused.headers['access-control-allow-origin']).toBe('https://shop.example');
      expect(refused.headers['access-control-expose-headers']).toBe('Retry-After');
      expect(refused.json()).toEqual({ error: 'rate_limited', message: expect.stringMatching(/accepts 1 event per second; retry after 1s/) });
      const refusedBatch = await post(t, '/v1/batch', { batch: [{ type: 'identify', userId: 'u9', messageId: 'rl-b' }] }, {}, key);
      expect(refusedBatch.statusCode).toBe(429);
      // The default source has no limit.
      expect((await post(t, '/v1/track', track('unlimited'))).statusCode).toBe(200);
      expect((await storedEvents(t, 'source_id = $1', [limited.source.id])).map((row) => row.message_id)).toEqual(
        batch.map((item) => item.messageId),
      );
      // Tokens come back at the rate: once Retry-After has passed the refused event goes through.
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      expect((await post(t, '/v1/track', track('rl-over'), {}, key)).statusCode).toBe(200);
    });

    it('counts the events of the requests in flight, once each body is read (the saturation signal of the worker)', async () => {
      const ingestLoad = createIngestLoad();
      const t2 = await startTestApp({ ingestLoad });
      try {
        // onSend runs after the handler, before the connection closes: the request still holds its events.
        const heldWhileAnswering: number[] = [];
        t2.app.addHook('onSend', async (_request, _reply, payload) => {
          heldWhileAnswering.push(ingestLoad.eventsInFlight);
          return payload;
        });
        const batch = { batch: [track('held-1'), track('held-2'), track('held-3')].map((event) => ({ type: 'track', ...event })) };
        expect((await post(t2, '/v1/batch', batch)).statusCode).toBe(200);
        expect((await post(t2, '/v1/track', track('held-4'))).statusCode).toBe(200);
        expect(heldWhileAnswering).toEqual([3, 1]);
        for (let i = 0; i < 100 && ingestLoad.eventsInFlight !== 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
        expect(ingestLoad.eventsInFlight).toBe(0);
      } finally {
        await t2.close();
      }
    });

    it('when more requests are in flight than maxInflightIngest (load shedding), and recovers after', async () => {
      // The count is shared with a worker in the same process (ingest/load.ts): it must see the request.
      const ingestLoad = createIngestLoad();
      const t2 = await startTestApp({ maxInflightIngest: 1, ingestLoad });
      try {
        // A root hook that runs after the collection's onRequest hooks tells when the slow request holds the slot.
        let signalParsing!: () => void;
        const parsing = new Promise<void>((resolve) => (signalParsing = resolve));
        t2.app.addHook('preParsing', async (request) => {
          if (request.headers['x-test'] === 'slow') signalParsing();
        });
        // Sequential requests never count as concurrent: the slot is given back after each.
        for (let i = 0; i < 3; i++) expect((await post(t2, '/v1/track', track(`seq-${i}`))).statusCode).toBe(200);
        await t2.app.listen({ port: 0, host: '127.0.0.1' });
        const { port } = t2.app.server.address() as AddressInfo;
        const body = JSON.stringify(track('slow-1'));
        let finishSlow!: () => void;
        const slowMayFinish = new Promise<void>((resolve) => (finishSlow = resolve));
        const slow = new Promise<{ status: number; body: string }>((resolve, reject) => {
          const request = http.request(
            {
              host: '127.0.0.1',
              port,
              method: 'POST',
              path: '/v1/track',
              headers: { authorization: basicAuth(t2.writeKey), 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'x-test': 'slow' },
            },
            (response) => {
              let text = '';
              response.on('data', (chunk) => (text += chunk));
              response.on('end', () => resolve({ status: response.statusCode!, body: text }));
            },
          );
          request.on('error', reject);
          // Half the body now, the rest once the second request has been answered.
          request.write(body.slice(0, 10));
          void slowMayFinish.then(() => request.end(body.slice(10)));
        });
        await parsing;
        expect(ingestLoad.inFlight).toBe(1);
        const url = `http://127.0.0.1:${port}/v1/track`;
        const headers = { authorization: basicAuth(t2.writeKey), 'content-type': 'application/json' };
        const shedResponse = await fetch(url, { method: 'POST', headers, body: JSON.stringify(track('shed-1')) });
        finishSlow();
        expect(shedResponse.status).toBe(429);
        expect(shedResponse.headers.get('retry-after')).toBe('1');
        expect(shedResponse.headers.get('access-control-expose-headers')).toBe('Retry-After');
        expect(await shedResponse.json()).toEqual({ error: 'overloaded', message: expect.any(String) });
        expect((await slow).status).toBe(200);
        const after = await fetch(url, { method: 'POST', headers, body: JSON.stringify(track('after-1')) });
        expect(after.status).toBe(200);
        expect((await storedEvents(t2)).map((row) => row.message_id)).toEqual(['seq-0', 'seq-1', 'seq-2', 'slow-1', 'after-1']);
        // Every slot given back once its connection closed, the shed one included.
        for (let i = 0; i < 100 && ingestLoad.inFlight !== 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
        expect(ingestLoad.inFlight).toBe(0);
        expect(ingestLoad.eventsInFlight).toBe(0);
      } finally {
        await t2.close();
      }
    });
  });
});
