import type { AddressInfo } from 'node:net';
import { Analytics } from '@segment/analytics-node';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from './support/app.ts';
import { clearEvents, iso, openedAfterCheckingSealed, type StoredEvent } from './collection-helpers.ts';

// The server clock runs a day ahead of this process, as if every device clock were a day behind:
// stored timestamps must be corrected by exactly that day (minus the tiny time in transit).
const DAY = 24 * 60 * 60 * 1000;

/** How the test server treats the next /v1/batch request. */
type Failure = 'none' | 'before-processing' | 'after-commit';

describe('official @segment/analytics-node SDK, unmodified, against a listening server', () => {
  let t: TestApp;
  let host: string;
  let nextFailure: Failure = 'none';
  let batchRequests = 0;
  const failedBatches: Failure[] = [];

  beforeAll(async () => {
    t = await startTestApp({ now: () => new Date(Date.now() + DAY) });
    // Fails exactly one request on demand: 503 before anything is stored, or 503 after the
    // events were committed (the response is lost, as when a proxy times out).
    t.app.addHook('onRequest', async (request, reply) => {
      if (request.url !== '/v1/batch') return;
      batchRequests++;
      if (nextFailure === 'before-processing') {
        nextFailure = 'none';
        failedBatches.push('before-processing');
        return reply.code(503).header('content-type', 'application/json').send('{"error":"unavailable"}');
      }
    });
    t.app.addHook('onSend', async (request, reply, payload) => {
      if (request.url !== '/v1/batch' || nextFailure !== 'after-commit' || reply.statusCode !== 200) return payload;
      nextFailure = 'none';
      failedBatches.push('after-commit');
      reply.code(503);
      return '{"error":"unavailable"}';
    });
    await t.app.listen({ port: 0, host: '127.0.0.1' });
    host = `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`;
  });
  afterAll(async () => t.close());
  beforeEach(async () => {
    await clearEvents(t);
    batchRequests = 0;
    failedBatches.length = 0;
  });

  interface SentBody {
    batch: Array<Record<string, unknown> & { messageId: string; type: string; timestamp: string }>;
    sentAt: string;
  }

  function client() {
    const sent: Array<{ status: number }> = [];
    const bodies: SentBody[] = [];
    const analytics = new Analytics({ writeKey: t.writeKey, host, flushInterval: 50, maxEventsInBatch: 100, maxRetries: 3 });
    analytics.on('http_request', (request) => bodies.push(JSON.parse(request.body) as SentBody));
    analytics.on('http_response', (response) => sent.push({ status: response.status }));
    return { analytics, sent, bodies };
  }

  /** Each event the SDK sent is stored as sent; `body` is the attempt whose copy must have been kept. */
  function expectStoredAsSent(rows: StoredEvent[], body: SentBody) {
    expect(rows.map((row) => row.message_id).sort()).toEqual(body.batch.map((item) => item.messageId).sort());
    for (const item of body.batch) {
      const row = rows.find((r) => r.message_id === item.messageId)!;
      expect(row.type).toBe(item.type);
      expect(row.properties).toEqual(item.properties ?? null);
      expect(row.traits).toEqual(item.traits ?? null);
      expect(row.context).toEqual(item.context);
      expect(row.integrations).toEqual(item.integrations);
      expect(iso(row.original_timestamp)).toBe(item.timestamp);
      expect(iso(row.sent_at)).toBe(body.sentAt);
    }
  }

  const eventTime = new Date('2024-03-10T08:30:00.000Z');

  function sendEveryCall(analytics: Analytics) {
    analytics.identify({ userId: 'user-1', traits: { email: 'ann@example.com', plan: 'pro' }, timestamp: eventTime });
    analytics.track({ userId: 'user-1', event: 'Order Completed', properties: { revenue: 42.5, currency: 'EUR' } });
    analytics.page({ anonymousId: 'anon-1', category: 'Docs', name: 'Install', properties: { path: '/docs/install' } });
    analytics.screen({ userId: 'user-1', name: 'Home', properties: { variant: 'dark' } });
    analytics.group({ userId: 'user-1', groupId: 'org-7', traits: { name: 'Initech' } });
    analytics.alias({ userId: 'user-1', previousId: 'anon-1' });
  }

  /** Every stored event was corrected with its own sentAt: timestamp = receivedAt − (sentAt − originalTimestamp). */
  function expectCorrectedTimes(rows: StoredEvent[], startedAt: number) {
    for (const row of rows) {
      const [timestamp, original, sentAt, receivedAt] = [row.timestamp, row.original_timestamp, row.sent_at, row.received_at].map((v) =>
        new Date(v!).getTime(),
      ) as [number, number, number, number];
      expect(timestamp).toBe(receivedAt - (sentAt - original));
      expect(sentAt).toBeGreaterThanOrEqual(startedAt);
      // The day of skew is corrected (plus the moments between sending and receiving).
      expect(timestamp - original).toBeGreaterThanOrEqual(DAY);
      expect(timestamp - original).toBeLessThan(DAY + 30_000);
    }
  }


  function expectEveryCall(rows: StoredEvent[]) {
    expect(rows.map((row) => row.type).sort()).toEqual(['alias', 'group', 'identify', 'page', 'screen', 'track']);
    expect(new Set(rows.map((row) => row.message_id)).size).toBe(6);
    const byType = Object.fromEntries(rows.map((row) => [row.type, row]));
    expect(byType.identify).toMatchObject({ user_id: 'user-1', traits: { email: 'ann@example.com', plan: 'pro' } });
    expect(iso(byType.identify!.original_timestamp)).toBe(eventTime.toISOString());
    expect(byType.track).toMatchObject({ user_id: 'user-1', event: 'Order Completed', properties: { revenue: 42.5, currency: 'EUR' } });
    expect(byType.page).toMatchObject({ anonymous_id: 'anon-1', user_id: null, name: 'Install', category: 'Docs' });
    expect(byType.page!.properties).toMatchObject({ path: '/docs/install' });
    expect(byType.screen).toMatchObject({ user_id: 'user-1', name: 'Home', properties: { variant: 'dark' } });
    expect(byType.group).toMatchObject({ user_id: 'user-1', group_id: 'org-7', traits: { name: 'Initech' } });
    expect(byType.alias).toMatchObject({ user_id: 'user-1', previous_id: 'anon-1' });
    for (const row of rows) {
      expect(row.source_id).toBe(t.source.id);
      expect(row.context).toMatchObject({ library: { name: '@segment/analytics-node', version: expect.any(String) } });
      // Fields outside the spec that the SDK adds are kept, not dropped.
      expect(row.extra).toMatchObject({ _metadata: { jsRuntime: 'node' } });
    }
  }

  it('stores identify, track, page, screen, group and alias exactly once with their fields and corrected times', async () => {
    const startedAt = Date.now();
    const { analytics, sent, bodies } = client();
    sendEveryCall(analytics);
    await analytics.closeAndFlush();
    expect(sent.map((s) => s.status)).toEqual([200]);
    const rows = await openedAfterCheckingSealed(t);
    expectEveryCall(rows);
    expectStoredAsSent(rows, bodies[0]!);
    expectCorrectedTimes(rows, startedAt);
  });

  it('retries a batch the server failed before storing it, ending with one copy of each event', async () => {
    nextFailure = 'before-processing';
    const startedAt = Date.now();
    const { analytics, sent, bodies } = client();
    sendEveryCall(analytics);
    await analytics.closeAndFlush();
    expect(failedBatches).toEqual(['before-processing']);
    expect(sent.map((s) => s.status)).toEqual([503, 200]);
    expect(batchRequests).toBe(2);
    const rows = await openedAfterCheckingSealed(t);
    expectEveryCall(rows);
    // The SDK stamps each attempt with a new sentAt; the stored copy is the retry's.
    expectStoredAsSent(rows, bodies[1]!);
    expectCorrectedTimes(rows, startedAt);
  });

  it('retries a batch whose response was lost after it was stored, without storing a second copy', async () => {
    nextFailure = 'after-commit';
    const { analytics, sent, bodies } = client();
    sendEveryCall(analytics);
    await analytics.closeAndFlush();
    expect(failedBatches).toEqual(['after-commit']);
    expect(sent.map((s) => s.status)).toEqual([503, 200]);
    expect(batchRequests).toBe(2);
    const rows = await openedAfterCheckingSealed(t);
    expectEveryCall(rows);
    // The first attempt's copy stays; the retry only counted duplicates.
    expect(bodies[0]!.sentAt).not.toBe(bodies[1]!.sentAt);
    expectStoredAsSent(rows, bodies[0]!);
    const { rows: ids } = await t.db.query('select count(*)::int as n from event_message_ids');
    expect(ids[0].n).toBe(6);
  });
});
