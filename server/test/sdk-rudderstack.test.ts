import type { AddressInfo } from 'node:net';
import Analytics from '@rudderstack/rudder-sdk-node';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from './support/app.ts';
import { clearEvents, iso, openedAfterCheckingSealed, type StoredEvent } from './collection-helpers.ts';

// The server clock runs an hour behind this process, as if every device clock were an hour fast.
const HOUR = 60 * 60 * 1000;

type Failure = 'none' | 'before-processing' | 'after-commit';

interface SentBatch {
  batch: Array<Record<string, unknown> & { messageId: string; type: string; originalTimestamp: string; sentAt: string }>;
}

describe('official @rudderstack/rudder-sdk-node SDK, unmodified (gzip on), against a listening server', () => {
  let t: TestApp;
  let dataPlaneUrl: string;
  let nextFailure: Failure = 'none';
  const requests: Array<{ encoding: string | undefined; status?: number }> = [];
  const bodies: SentBatch[] = [];

  beforeAll(async () => {
    t = await startTestApp({ now: () => new Date(Date.now() - HOUR) });
    t.app.addHook('onRequest', async (request, reply) => {
      if (request.url !== '/v1/batch') return;
      requests.push({ encoding: request.headers['content-encoding'] });
      if (nextFailure === 'before-processing') {
        nextFailure = 'none';
        return reply.code(503).header('content-type', 'application/json').send('{"error":"unavailable"}');
      }
    });
    // The body as the server decoded it (the SDK gzips it), to compare with what was stored.
    t.app.addHook('preHandler', async (request) => {
      if (request.url === '/v1/batch') bodies.push(request.body as SentBatch);
    });
    t.app.addHook('onSend', async (request, reply, payload) => {
      if (request.url !== '/v1/batch') return payload;
      if (nextFailure === 'after-commit' && reply.statusCode === 200) {
        nextFailure = 'none';
        reply.code(503);
        payload = '{"error":"unavailable"}';
      }
      requests.at(-1)!.status = reply.statusCode;
      return payload;
    });
    await t.app.listen({ port: 0, host: '127.0.0.1' });
    dataPlaneUrl = `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`;
  });
  afterAll(async () => t.close());
  beforeEach(async () => {
    await clearEvents(t);
    requests.length = 0;
    bodies.length = 0;
  });

  function client() {
    // No persistence queue (its bull/redis feature stays off): batches go straight over HTTP,
    // retried by the SDK's axios-retry on 5xx and network errors.
    return new Analytics(t.writeKey, { dataPlaneUrl, flushAt: 100, flushInterval: 60_000, retryCount: 3, logLevel: 'none' });
  }

  const historical = new Date('2023-12-24T18:00:00.000Z');

  /** The SDK sends the first call at once and queues the others until flushed: two requests. */
  async function sendEveryCall(analytics: Analytics, beforeSecondBatch: () => void = () => undefined) {
    analytics.identify({ userId: 'user-1', traits: { email: 'ann@example.com', plan: 'pro' } });
    await analytics.flush();
    beforeSecondBatch();
    analytics.track({ userId: 'user-1', event: 'Order Completed', properties: { revenue: 42.5, currency: 'EUR' } });
    analytics.track({ userId: 'user-1', event: 'Order Refunded', properties: { revenue: 42.5 }, timestamp: historical });
    analytics.page({ anonymousId: 'anon-1', category: 'Docs', name: 'Install', properties: { path: '/docs/install' } });
    analytics.screen({ userId: 'user-1', name: 'Home', properties: { variant: 'dark' } });
    analytics.group({ userId: 'user-1', groupId: 'org-7', traits: { name: 'Initech' } });
    analytics.alias({ userId: 'user-1', previousId: 'anon-1' });
    await analytics.flush();
  }


  function expectEveryCall(rows: StoredEvent[]) {
    expect(rows.map((row) => row.type).sort()).toEqual(['alias', 'group', 'identify', 'page', 'screen', 'track', 'track']);
    expect(new Set(rows.map((row) => row.message_id)).size).toBe(7);
    const find = (type: string, event?: string) => rows.find((row) => row.type === type && (!event || row.event === event))!;
    expect(find('identify')).toMatchObject({ user_id: 'user-1', traits: { email: 'ann@example.com', plan: 'pro' } });
    expect(find('identify').context).toMatchObject({ traits: { email: 'ann@example.com', plan: 'pro' } });
    expect(find('track', 'Order Completed')).toMatchObject({ user_id: 'user-1', properties: { revenue: 42.5, currency: 'EUR' } });
    expect(find('page')).toMatchObject({ anonymous_id: 'anon-1', user_id: null, name: 'Install', category: 'Docs', properties: { path: '/docs/install' } });
    expect(find('screen')).toMatchObject({ user_id: 'user-1', name: 'Home', properties: { variant: 'dark' } });
    expect(find('group')).toMatchObject({ user_id: 'user-1', group_id: 'org-7', traits: { name: 'Initech' } });
    expect(find('alias')).toMatchObject({ user_id: 'user-1', previous_id: 'anon-1' });
    // A timestamp the caller set is the event's time, as given.
    expect(iso(find('track', 'Order Refunded').timestamp)).toBe(historical.toISOString());
    for (const row of rows) {
      expect(row.source_id).toBe(t.source.id);
      expect(row.context).toMatchObject({ library: { name: 'analytics-node', version: expect.any(String) } });
      expect(row.extra).toMatchObject({ channel: 'server', _metadata: { nodeVersion: process.versions.node } });
    }
  }

  /** Stored as sent, the clock skew corrected: timestamp = receivedAt − (sentAt − originalTimestamp). */
  function expectStoredAsSent(rows: StoredEvent[]) {
    const sent = bodies.flatMap((body) => body.batch);
    for (const row of rows) {
      const item = sent.find((candidate) => candidate.messageId === row.message_id)!;
      expect(item).toBeDefined();
      expect(row.type).toBe(item.type);
      expect(row.properties).toEqual(item.properties ?? null);
      expect(row.traits).toEqual(item.traits ?? null);
      expect(row.context).toEqual(item.context);
      expect(iso(row.original_timestamp)).toBe(item.originalTimestamp);
      expect(iso(row.sent_at)).toBe(item.sentAt);
      if (item.timestamp) continue;
      const [timestamp, original, sentAt, receivedAt] = [row.timestamp, row.original_timestamp, row.sent_at, row.received_at].map((v) =>
        new Date(v!).getTime(),
      ) as [number, number, number, number];
      expect(timestamp).toBe(receivedAt - (sentAt - original));
      // The hour the device clock is ahead is taken off.
      expect(original - timestamp).toBeGreaterThan(HOUR - 30_000);
      expect(original - timestamp).toBeLessThanOrEqual(HOUR);
    }
  }

  it('stores every call exactly once with its fields and corrected times, from gzip-compressed batches', async () => {
    await sendEveryCall(client());
    expect(requests).toEqual([
      { encoding: 'gzip', status: 200 },
      { encoding: 'gzip', status: 200 },
    ]);
    const rows = await openedAfterCheckingSealed(t);
    expectEveryCall(rows);
    expectStoredAsSent(rows);
  });

  it('retries a batch the server failed before storing it, ending with one copy of each event', async () => {
    await sendEveryCall(client(), () => (nextFailure = 'before-processing'));
    expect(requests.map((r) => r.status)).toEqual([200, 503, 200]);
    const rows = await openedAfterCheckingSealed(t);
    expectEveryCall(rows);
    expectStoredAsSent(rows);
  });

  it('retries a batch whose response was lost after it was stored, without storing a second copy', async () => {
    await sendEveryCall(client(), () => (nextFailure = 'after-commit'));
    expect(requests.map((r) => r.status)).toEqual([200, 503, 200]);
    // The retry carried the same six events; all were recognised as already stored.
    expect(bodies[2]!.batch.map((item) => item.messageId)).toEqual(bodies[1]!.batch.map((item) => item.messageId));
    const rows = await openedAfterCheckingSealed(t);
    expectEveryCall(rows);
    expectStoredAsSent(rows);
    const { rows: ids } = await t.db.query('select count(*)::int as n from event_message_ids');
    expect(ids[0].n).toBe(7);
  });
});
