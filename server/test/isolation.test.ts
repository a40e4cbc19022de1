import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { drainCatalogueQueue } from '../src/catalogue/store.ts';
import { ADMIN_TOKEN, basicAuth, startTestApp, type TestApp } from './support/app.ts';

const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };

describe('workspace isolation', () => {
  let t: TestApp;
  let b: Awaited<ReturnType<TestApp['addWorkspace']>>;
  let serverKeyA: string;
  let serverKeyB: string;
  let quarantinedInB: string;

  const issueServerKey = async (workspace: string) =>
    (await t.app.inject({ method: 'POST', url: `/admin/workspaces/${workspace}/keys`, headers: admin, payload: { kind: 'server' } })).json()
      .key as string;
  const read = (key: string, url: string) => t.app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${key}` } });
  const drainCatalogue = async () => {
    while ((await drainCatalogueQueue(t.db)).taken > 0);
  };

  beforeAll(async () => {
    t = await startTestApp();
    b = await t.addWorkspace('beta');
    serverKeyA = await issueServerKey('acme');
    serverKeyB = await issueServerKey('beta');

    // A's write key, with B named everywhere a client could put it.
    const sneaky = {
      batch: [
        {
          type: 'track',
          userId: 'a-user',
          event: 'From A',
          messageId: 'shared-id',
          workspaceId: b.workspace.id,
          sourceId: b.source.id,
          properties: { workspaceId: b.workspace.id },
          context: { workspaceId: b.workspace.id },
        },
      ],
      workspaceId: b.workspace.id,
      writeKey: b.writeKey,
    };
    const res = await t.app.inject({ method: 'POST', url: '/v1/batch', headers: { authorization: basicAuth(t.writeKey) }, payload: sneaky });
    expect(res.json()).toMatchObject({ accepted: 1 });
    // The same messageId in B is B's own event, not a duplicate of A's.
    const inB = await t.app.inject({
      method: 'POST',
      url: '/v1/track',
      headers: { authorization: basicAuth(b.writeKey) },
      payload: { userId: 'b-user', event: 'From B', messageId: 'shared-id', properties: { secret: 'b' } },
    });
    expect(inB.json()).toMatchObject({ accepted: 1, duplicates: 0 });
    const bad = await t.app.inject({ method: 'POST', url: '/v1/track', headers: { authorization: basicAuth(b.writeKey) }, payload: { event: 'No user' } });
    quarantinedInB = bad.json().quarantineId;
    // Each request queued its observations under the workspace of the key that sent it.
    const queued = await t.db.query<{ workspace_id: string; name: string }>(
      `select workspace_id, observations->0->>'name' as name from catalogue_queue order by id`,
    );
    expect(queued.rows).toEqual([
      { workspace_id: t.workspace.id, name: 'From A' },
      { workspace_id: b.workspace.id, name: 'From B' },
    ]);
    await drainCatalogue();
  });
  afterAll(async () => t.close());

  it("a write key only ever writes into its own workspace and source, whatever the body says", async () => {
    const { rows } = await t.db.query<{ workspace_id: string; source_id: string; event: string; extra: unknown }>(
      `select workspace_id, source_id, event, extra from events where message_id = 'shared-id' order by event`,
    );
    expect(rows).toEqual([
      { workspace_id: t.workspace.id, source_id: t.source.id, event: 'From A', extra: { workspaceId: b.workspace.id, sourceId: b.source.id } },
      { workspace_id: b.workspace.id, source_id: b.source.id, event: 'From B', extra: null },
    ]);
  });

  it("a server key reads only its own workspace's events", async () => {
    const a = await read(serverKeyA, '/v1/events');
    expect(a.statusCode).toBe(200);
    expect(a.json().items.map((e: { event: string }) => e.event)).toEqual(['From A']);
    const bEvents = await read(serverKeyB, '/v1/events');
    expect(bEvents.json().items.map((e: { event: string }) => e.event)).toEqual(['From B']);
    // Filters cannot reach across either.
    expect((await read(serverKeyA, '/v1/events?userId=b-user')).json().items).toEqual([]);
    expect((await read(serverKeyA, `/v1/events?sourceId=${b.source.id}`)).json().items).toEqual([]);
    // Nor do unknown query parameters naming a workspace: they are refused, not ignored.
    const named = await read(serverKeyA, `/v1/events?workspaceId=${b.workspace.id}`);
    expect(named.statusCode).toBe(400);
    expect(named.json()).toMatchObject({ field: 'workspaceId' });
  });

  it("a server key reads only its own workspace's catalogue", async () => {
    const a = (await read(serverKeyA, '/v1/catalogue/events')).json().items as Array<{ name: string }>;
    expect(a.map((item) => item.name)).toEqual(['From A']);
    expect((await read(serverKeyA, `/v1/catalogue/events/track/${encodeURIComponent('From B')}`)).statusCode).toBe(404);
    expect((await read(serverKeyB, `/v1/catalogue/events/track/${encodeURIComponent('From B')}`)).statusCode).toBe(200);
  });

  it("a server key reads only its own workspace's quarantine", async () => {
    expect((await read(serverKeyA, '/v1/quarantine')).json().items).toEqual([]);
    expect((await read(serverKeyA, `/v1/quarantine/${quarantinedInB}`)).statusCode).toBe(404);
    const own = await read(serverKeyB, `/v1/quarantine/${quarantinedInB}`);
    expect(own.statusCode).toBe(200);
    expect(own.json()).toMatchObject({ reason: 'missing_identity', payload: { event: 'No user' } });
    expect((await read(serverKeyB, '/v1/quarantine')).json().items).toHaveLength(1);
  });

  it("the admin API cannot reach one workspace's items through another's path", async () => {
    const viaA = await t.app.inject({ method: 'GET', url: `/admin/workspaces/acme/quarantine/${quarantinedInB}`, headers: admin });
    expect(viaA.statusCode).toBe(404);
    const replayViaA = await t.app.inject({ method: 'POST', url: `/admin/workspaces/acme/quarantine/${quarantinedInB}/replay`, headers: admin });
    expect(replayViaA.statusCode).toBe(404);
    const viaB = await t.app.inject({ method: 'GET', url: `/admin/workspaces/beta/quarantine/${quarantinedInB}`, headers: admin });
    expect(viaB.statusCode).toBe(200);
  });

  it('write keys, admin tokens and missing or unknown keys cannot read', async () => {
    for (const url of ['/v1/events', '/v1/catalogue/events', '/v1/quarantine']) {
      const asWriteKey = await read(t.writeKey, url);
      expect(asWriteKey.statusCode, url).toBe(403);
      expect(asWriteKey.json()).toMatchObject({ error: 'forbidden' });
      const asBasicWriteKey = await t.app.inject({ method: 'GET', url, headers: { authorization: basicAuth(t.writeKey) } });
      expect(asBasicWriteKey.statusCode, url).toBe(403);
      // The admin token acts in a workspace only when one is named (X-Touchpoint-Workspace).
      const asAdmin = await read(ADMIN_TOKEN, url);
      expect(asAdmin.statusCode, url).toBe(400);
      expect(asAdmin.json()).toMatchObject({ error: 'workspace_required' });
      expect((await read('tps_unknown', url)).statusCode, url).toBe(401);
      expect((await t.app.inject({ method: 'GET', url })).statusCode, url).toBe(401);
    }
  });

  it("a disabled workspace's server key is refused at once", async () => {
    const c = await t.addWorkspace('gamma');
    const key = await issueServerKey('gamma');
    expect((await read(key, '/v1/events')).statusCode).toBe(200);
    await t.app.inject({ method: 'PATCH', url: `/admin/workspaces/${c.workspace.id}`, headers: admin, payload: { status: 'disabled' } });
    expect((await read(key, '/v1/events')).statusCode).toBe(401);
  });
});
