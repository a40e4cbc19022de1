import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DeliveryError } from '../../sdk/src/core/types.ts';
import { createNodeClient } from '../../sdk/src/node/index.ts';
import { openStoredEvents, storedEvents } from './collection-helpers.ts';
import { drain } from './profiles-support.ts';
import { startTestApp, type TestApp } from './support/app.ts';

/** The SDK's Node.js client against a listening Touchpoint server, one 503 injected on demand. */
describe('@touchpoint/sdk Node.js client against the Touchpoint server', () => {
  let t: TestApp;
  let host: string;
  let failNext = 0;
  const encodings: string[] = [];

  beforeAll(async () => {
    t = await startTestApp();
    t.app.addHook('onRequest', async (request, reply) => {
      if (request.url !== '/v1/batch') return;
      encodings.push(String(request.headers['content-encoding']));
      if (failNext > 0) {
        failNext--;
        return reply.code(503).header('retry-after', '0').send({ error: 'unavailable' });
      }
    });
    await t.app.listen({ port: 0, host: '127.0.0.1' });
    host = `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`;
  });
  afterAll(async () => t.close());

  it('stores every event exactly once, in order, gzip-compressed, through a failed batch', async () => {
    const errors: DeliveryError[] = [];
    const client = createNodeClient({ writeKey: t.writeKey, host, flushAt: 10, flushIntervalMs: 50, retryBaseMs: 10, onError: (e) => errors.push(e) });
    failNext = 1;
    client.identify({ userId: 'member-42', anonymousId: 'anon-42', traits: { name: 'Li Lei' }, identifiers: { member_id: 'M42', phone: '+8613800138000' } });
    for (let i = 0; i < 23; i++) client.track({ userId: 'member-42', event: 'Item Viewed', properties: { n: i } });
    client.page({ anonymousId: 'anon-42', name: 'Home' });
    client.alias({ userId: 'member-42', previousId: 'anon-42' });
    await client.close({ timeoutMs: 10_000 });

    expect(errors).toEqual([]);
    expect(failNext).toBe(0);
    expect(encodings.every((encoding) => encoding === 'gzip')).toBe(true);
    const rows = await openStoredEvents(t, await storedEvents(t, 'workspace_id = $1', [t.workspace.id]));
    expect(rows).toHaveLength(26);
    expect(new Set(rows.map((row) => row.message_id)).size).toBe(26);
    expect(rows.map((row) => row.type)).toEqual(['identify', ...Array(23).fill('track'), 'page', 'alias']);
    expect(rows.filter((row) => row.type === 'track').map((row) => row.properties?.n)).toEqual([...Array(23).keys()]);
    expect(rows[0]!.context?.externalIds).toEqual([
      { id: 'M42', type: 'member_id', collection: 'users', encoding: 'none' },
      { id: '+8613800138000', type: 'phone', collection: 'users', encoding: 'none' },
    ]);

    // Identity resolution joins them on one profile holding the typed identifiers.
    await drain(t);
    const { rows: identifiers } = await t.db.query<{ profile_id: string; type: string; value: string }>(
      `select profile_id, type, value from profile_identifiers where workspace_id = $1 and unbound_at is null order by type`,
      [t.workspace.id],
    );
    expect(new Set(identifiers.map((row) => row.profile_id)).size).toBe(1);
    expect(identifiers.map((row) => row.type)).toEqual(expect.arrayContaining(['anonymous_id', 'member_id', 'phone', 'user_id']));
  });

  it('reports a batch the server refuses with a 4xx (wrong write key) instead of dropping it silently', async () => {
    const errors: DeliveryError[] = [];
    const client = createNodeClient({ writeKey: 'wk_unknown', host, onError: (e) => errors.push(e) });
    client.track({ userId: 'u1', event: 'Refused' });
    await client.close({ timeoutMs: 5_000 });
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ reason: 'rejected', status: 401 });
  });
});
