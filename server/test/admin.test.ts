import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, basicAuth, startTestApp, type TestApp } from './support/app.ts';

const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };

describe('admin API', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(async () => t.close());

  const call = (method: 'GET' | 'POST' | 'PATCH', url: string, payload?: unknown) =>
    t.app.inject({ method, url, headers: admin, ...(payload === undefined ? {} : { payload: payload as object }) });
  const track = (writeKey: string, messageId?: string) =>
    t.app.inject({
      method: 'POST',
      url: '/v1/track',
      headers: { authorization: basicAuth(writeKey) },
      payload: { userId: 'u1', event: 'Ping', ...(messageId ? { messageId } : {}) },
    });

  describe('authentication', () => {
    it('refuses requests without the admin token', async () => {
      const res = await t.app.inject({ method: 'GET', url: '/admin/workspaces' });
      expect(res.statusCode).toBe(401);
      expect(res.json()).toMatchObject({ error: 'unauthorized' });
    });

    it('refuses a wrong token, and refuses keys that are not the admin token', async () => {
      const wrong = await t.app.inject({ method: 'GET', url: '/admin/workspaces', headers: { authorization: 'Bearer tpa_wrong' } });
      expect(wrong.statusCode).toBe(401);
      // A valid key is authenticated but never holds an instance-wide permission (privacy/access.ts).
      const writeKey = await t.app.inject({ method: 'GET', url: '/admin/workspaces', headers: { authorization: basicAuth(t.writeKey) } });
      expect(writeKey.statusCode).toBe(403);
      const asWriteKeyBearer = await t.app.inject({ method: 'GET', url: '/admin/workspaces', headers: { authorization: `Bearer ${t.writeKey}` } });
      expect(asWriteKeyBearer.statusCode).toBe(403);
    });

    it('checks the token before validating the request', async () => {
      const res = await t.app.inject({ method: 'POST', url: '/admin/workspaces', payload: { slug: 'BAD SLUG' } });
      expect(res.statusCode).toBe(401);
    });

    it('documents the admin routes in the OpenAPI document', async () => {
      const doc = (await t.app.inject({ method: 'GET', url: '/openapi.json' })).json() as { paths: Record<string, unknown> };
      expect(Object.keys(doc.paths)).toEqual(
        expect.arrayContaining([
          '/admin/workspaces',
          '/admin/workspaces/{workspace}/sources/{source}',
          '/admin/workspaces/{workspace}/keys/{keyId}/rotate',
          '/admin/workspaces/{workspace}/quarantine/{id}/replay',
          '/v1/events',
          '/v1/catalogue/events/{type}/{name}',
        ]),
      );
    });
  });

  describe('workspaces', () => {
    it('creates, lists and gets workspaces by id and by slug', async () => {
      const created = await call('POST', '/admin/workspaces', { slug: 'globex', name: 'Globex', timeZone: 'Asia/Shanghai' });
      expect(created.statusCode).toBe(201);
      const workspace = created.json();
      expect(workspace).toMatchObject({ slug: 'globex', name: 'Globex', timeZone: 'Asia/Shanghai', status: 'active' });

      const listed = await call('GET', '/admin/workspaces');
      expect(listed.statusCode).toBe(200);
      expect(listed.json().items.map((w: { slug: string }) => w.slug)).toEqual(['acme', 'globex']);

      expect((await call('GET', `/admin/workspaces/${workspace.id}`)).json()).toEqual(workspace);
      expect((await call('GET', '/admin/workspaces/globex')).json()).toEqual(workspace);
    });

    it('answers 404 for an unknown workspace and 409 for a taken slug', async () => {
      const missing = await call('GET', '/admin/workspaces/nope');
      expect(missing.statusCode).toBe(404);
      expect(missing.json()).toMatchObject({ error: 'not_found' });
      const missingById = await call('GET', '/admin/workspaces/00000000-0000-4000-8000-000000000000');
      expect(missingById.statusCode).toBe(404);
      const taken = await call('POST', '/admin/workspaces', { slug: 'acme', name: 'Again' });
      expect(taken.statusCode).toBe(409);
      expect(taken.json()).toMatchObject({ error: 'conflict' });
    });

    it('rejects invalid bodies with 400 and the field at fault', async () => {
      const cases: Array<[unknown, string]> = [
        [{ slug: 'Bad Slug', name: 'x' }, 'slug'],
        [{ name: 'x' }, 'slug'],
        [{ slug: 'ok-slug', name: '' }, 'name'],
        [{ slug: 'ok-slug', name: 'x', timeZone: 'Mars/Olympus' }, 'timeZone'],
        [{ slug: 'ok-slug', name: 'x', plan: 'gold' }, 'plan'],
      ];
      for (const [body, field] of cases) {
        const res = await call('POST', '/admin/workspaces', body);
        expect(res.statusCode, JSON.stringify(body)).toBe(400);
        expect(res.json(), JSON.stringify(body)).toMatchObject({ error: 'invalid_request', field });
      }
      expect((await call('GET', '/admin/workspaces/ok-slug')).statusCode).toBe(404);
    });

    it('disabling a workspace refuses its keys at once; enabling restores them', async () => {
      const { workspace, writeKey } = await t.addWorkspace('initech');
      expect((await track(writeKey)).statusCode).toBe(200);

      const disabled = await call('PATCH', `/admin/workspaces/${workspace.slug}`, { status: 'disabled' });
      expect(disabled.statusCode).toBe(200);
      expect(disabled.json()).toMatchObject({ status: 'disabled' });
      expect((await track(writeKey)).statusCode).toBe(401);

      const enabled = await call('PATCH', `/admin/workspaces/${workspace.id}`, { status: 'enabled' });
      expect(enabled.statusCode).toBe(400);
      expect(enabled.json()).toMatchObject({ field: 'status' });
      expect((await call('PATCH', `/admin/workspaces/${workspace.id}`, { status: 'active' })).statusCode).toBe(200);
      expect((await track(writeKey)).statusCode).toBe(200);
    });

    it('renames a workspace and changes its time zone; an empty change is refused', async () => {
      const res = await call('PATCH', '/admin/workspaces/globex', { name: 'Globex Corp', timeZone: 'Europe/Paris' });
      expect(res.json()).toMatchObject({ name: 'Globex Corp', timeZone: 'Europe/Paris', status: 'active' });
      const badZone = await call('PATCH', '/admin/workspaces/globex', { timeZone: 'Nowhere' });
      expect(badZone.statusCode).toBe(400);
      expect(badZone.json()).toMatchObject({ field: 'timeZone' });
      expect((await call('PATCH', '/admin/workspaces/globex', {})).statusCode).toBe(400);
      expect((await call('GET', '/admin/workspaces/globex')).json()).toMatchObject({ timeZone: 'Europe/Paris' });
    });
  });

  describe('sources', () => {
    it('creates a source with a working write key, lists and gets it by id or name', async () => {
      const res = await call('POST', '/admin/workspaces/acme/sources', { name: 'iOS app', kind: 'app', rateLimitPerSecond: 100 });
      expect(res.statusCode).toBe(201);
      const { source, writeKey } = res.json();
      expect(source).toMatchObject({ name: 'iOS app', kind: 'app', party: 'first', mode: 'realtime', status: 'active', rateLimitPerSecond: 100 });
      expect(writeKey).toMatchObject({ kind: 'write', sourceId: source.id, status: 'active' });
      expect(writeKey.key).toMatch(/^tpw_/);
      expect((await track(writeKey.key)).statusCode).toBe(200);

      const listed = (await call('GET', '/admin/workspaces/acme/sources')).json();
      expect(listed.items.map((s: { name: string }) => s.name)).toEqual(['Website', 'iOS app']);
      expect((await call('GET', `/admin/workspaces/acme/sources/${source.id}`)).json()).toEqual(source);
      expect((await call('GET', `/admin/workspaces/acme/sources/${encodeURIComponent('iOS app')}`)).json()).toEqual(source);
      expect((await call('GET', '/admin/workspaces/acme/sources/Nope')).statusCode).toBe(404);
      // A source of another workspace is not found through this one.
      expect((await call('GET', `/admin/workspaces/globex/sources/${source.id}`)).statusCode).toBe(404);
    });

    it('rejects invalid sources with the field and duplicate names with 409', async () => {
      const cases: Array<[unknown, string]> = [
        [{ name: 'x', kind: 'fax' }, 'kind'],
        [{ kind: 'web' }, 'name'],
        [{ name: 'x', kind: 'web', rateLimitPerSecond: 0 }, 'rateLimitPerSecond'],
        [{ name: 'x', kind: 'web', rateLimitPerSecond: 1.5 }, 'rateLimitPerSecond'],
        [{ name: 'x', kind: 'web', party: 'fourth' }, 'party'],
      ];
      for (const [body, field] of cases) {
        const res = await call('POST', '/admin/workspaces/acme/sources', body);
        expect(res.statusCode, JSON.stringify(body)).toBe(400);
        expect(res.json(), JSON.stringify(body)).toMatchObject({ error: 'invalid_request', field });
      }
      const duplicate = await call('POST', '/admin/workspaces/acme/sources', { name: 'Website', kind: 'web' });
      expect(duplicate.statusCode).toBe(409);
      expect((await call('POST', '/admin/workspaces/nope/sources', { name: 'x', kind: 'web' })).statusCode).toBe(404);
    });

    it('updates name and rate limit, refuses a taken name, and clears the limit with null', async () => {
      const created = (await call('POST', '/admin/workspaces/acme/sources', { name: 'POS', kind: 'store' })).json();
      const renamed = await call('PATCH', `/admin/workspaces/acme/sources/${created.source.id}`, { name: 'Store POS', rateLimitPerSecond: 5 });
      expect(renamed.statusCode).toBe(200);
      expect(renamed.json()).toMatchObject({ name: 'Store POS', rateLimitPerSecond: 5, kind: 'store' });

      const taken = await call('PATCH', '/admin/workspaces/acme/sources/Store%20POS', { name: 'Website' });
      expect(taken.statusCode).toBe(409);
      const cleared = await call('PATCH', '/admin/workspaces/acme/sources/Store%20POS', { rateLimitPerSecond: null });
      expect(cleared.json()).toMatchObject({ name: 'Store POS', rateLimitPerSecond: null });
      const invalid = await call('PATCH', '/admin/workspaces/acme/sources/Store%20POS', { kind: 'web' });
      expect(invalid.statusCode).toBe(400);
      expect(invalid.json()).toMatchObject({ field: 'kind' });
    });

    it('a lowered rate limit applies to collection at once', async () => {
      const created = (await call('POST', '/admin/workspaces/acme/sources', { name: 'Kiosk', kind: 'store' })).json();
      const key = created.writeKey.key as string;
      expect((await track(key)).statusCode).toBe(200);
      await call('PATCH', '/admin/workspaces/acme/sources/Kiosk', { rateLimitPerSecond: 1 });
      const statuses = [];
      for (let i = 0; i < 3; i++) statuses.push((await track(key)).statusCode);
      expect(statuses).toContain(429);
    });

    it('disabling a source refuses its write keys immediately; enabling restores them', async () => {
      const created = (await call('POST', '/admin/workspaces/acme/sources', { name: 'Call centre', kind: 'call_centre' })).json();
      const key = created.writeKey.key as string;
      expect((await track(key)).statusCode).toBe(200);
      const disabled = await call('PATCH', '/admin/workspaces/acme/sources/Call%20centre', { status: 'disabled' });
      expect(disabled.json()).toMatchObject({ status: 'disabled' });
      const refused = await track(key);
      expect(refused.statusCode).toBe(401);
      // Other sources of the workspace keep working.
      expect((await track(t.writeKey)).statusCode).toBe(200);
      await call('PATCH', '/admin/workspaces/acme/sources/Call%20centre', { status: 'active' });
      expect((await track(key)).statusCode).toBe(200);
    });
  });

  describe('keys', () => {
    it('lists keys without their secret', async () => {
      const res = await call('GET', '/admin/workspaces/acme/keys');
      expect(res.statusCode).toBe(200);
      const items = res.json().items as Array<Record<string, unknown>>;
      expect(items.length).toBeGreaterThan(0);
      for (const item of items) {
        expect(Object.keys(item).sort()).toEqual(
          ['createdAt', 'expiresAt', 'id', 'kind', 'lastUsedAt', 'permissions', 'prefix', 'sourceId', 'status', 'workspaceId'].sort(),
        );
      }
      expect(res.body).not.toContain(t.writeKey);
      expect(items.some((item) => t.writeKey.startsWith(item.prefix as string))).toBe(true);
    });

    it('issues a server key once and a write key for a source given by id or name', async () => {
      const server = await call('POST', '/admin/workspaces/acme/keys', { kind: 'server' });
      expect(server.statusCode).toBe(201);
      expect(server.json()).toMatchObject({ kind: 'server', sourceId: null, status: 'active' });
      expect(server.json().key).toMatch(/^tps_/);
      const read = await t.app.inject({ method: 'GET', url: '/v1/events', headers: { authorization: `Bearer ${server.json().key}` } });
      expect(read.statusCode).toBe(200);

      const byName = await call('POST', '/admin/workspaces/acme/keys', { kind: 'write', sourceId: 'Website' });
      expect(byName.statusCode).toBe(201);
      expect(byName.json()).toMatchObject({ kind: 'write', sourceId: t.source.id });
      expect((await track(byName.json().key)).statusCode).toBe(200);
      const byId = await call('POST', '/admin/workspaces/acme/keys', { kind: 'write', sourceId: t.source.id });
      expect(byId.statusCode).toBe(201);

      const listed = (await call('GET', '/admin/workspaces/acme/keys')).json().items as Array<{ id: string }>;
      expect(listed.map((k) => k.id)).toEqual(expect.arrayContaining([server.json().id, byName.json().id, byId.json().id]));
      expect(JSON.stringify(listed)).not.toContain(server.json().key);
    });

    it('rejects inconsistent key requests with the field', async () => {
      const noSource = await call('POST', '/admin/workspaces/acme/keys', { kind: 'write' });
      expect(noSource.statusCode).toBe(400);
      expect(noSource.json()).toMatchObject({ field: 'sourceId' });
      const serverWithSource = await call('POST', '/admin/workspaces/acme/keys', { kind: 'server', sourceId: 'Website' });
      expect(serverWithSource.statusCode).toBe(400);
      expect(serverWithSource.json()).toMatchObject({ field: 'sourceId' });
      const badKind = await call('POST', '/admin/workspaces/acme/keys', { kind: 'admin' });
      expect(badKind.statusCode).toBe(400);
      expect(badKind.json()).toMatchObject({ field: 'kind' });
      expect((await call('POST', '/admin/workspaces/acme/keys', { kind: 'write', sourceId: 'Nope' })).statusCode).toBe(404);
      const badId = await call('PATCH', '/admin/workspaces/acme/keys/not-a-uuid', { status: 'disabled' });
      expect(badId.statusCode).toBe(400);
      expect(badId.json()).toMatchObject({ field: 'keyId' });
    });

    it('disabling a key refuses it immediately, enabling restores it', async () => {
      const issued = (await call('POST', '/admin/workspaces/acme/keys', { kind: 'write', sourceId: 'Website' })).json();
      expect((await track(issued.key)).statusCode).toBe(200); // now cached by the resolver
      const disabled = await call('PATCH', `/admin/workspaces/acme/keys/${issued.id}`, { status: 'disabled' });
      expect(disabled.statusCode).toBe(200);
      expect(disabled.json()).toMatchObject({ id: issued.id, status: 'disabled' });
      expect((await track(issued.key)).statusCode).toBe(401);
      expect((await track(t.writeKey)).statusCode).toBe(200);
      await call('PATCH', `/admin/workspaces/acme/keys/${issued.id}`, { status: 'active' });
      expect((await track(issued.key)).statusCode).toBe(200);
    });

    it('a key of one workspace cannot be changed through another', async () => {
      const other = await t.addWorkspace('umbrella');
      const keyOfOther = (await call('GET', `/admin/workspaces/${other.workspace.id}/keys`)).json().items[0];
      const res = await call('PATCH', `/admin/workspaces/acme/keys/${keyOfOther.id}`, { status: 'disabled' });
      expect(res.statusCode).toBe(404);
      expect((await track(other.writeKey)).statusCode).toBe(200);
      expect((await call('POST', `/admin/workspaces/acme/keys/${keyOfOther.id}/rotate`, {})).statusCode).toBe(404);
    });

    it('rotation without grace refuses the old key at once', async () => {
      const issued = (await call('POST', '/admin/workspaces/acme/keys', { kind: 'write', sourceId: 'Website' })).json();
      expect((await track(issued.key)).statusCode).toBe(200);
      const rotated = await call('POST', `/admin/workspaces/acme/keys/${issued.id}/rotate`);
      expect(rotated.statusCode).toBe(201);
      const { key, previous } = rotated.json();
      expect(key).toMatchObject({ kind: 'write', sourceId: t.source.id, status: 'active' });
      expect(key.key).toMatch(/^tpw_/);
      expect(key.key).not.toBe(issued.key);
      expect(previous).toMatchObject({ id: issued.id, status: 'disabled' });
      expect((await track(issued.key)).statusCode).toBe(401);
      expect((await track(key.key)).statusCode).toBe(200);
      // Only active keys rotate.
      expect((await call('POST', `/admin/workspaces/acme/keys/${issued.id}/rotate`, {})).statusCode).toBe(404);
    });

    it('rotation with grace keeps the old key working until the grace ends, then refuses it', async () => {
      const issued = (await call('POST', '/admin/workspaces/acme/keys', { kind: 'server' })).json();
      const read = (key: string) => t.app.inject({ method: 'GET', url: '/v1/events?limit=1', headers: { authorization: `Bearer ${key}` } });
      const rotated = await call('POST', `/admin/workspaces/acme/keys/${issued.id}/rotate`, { graceSeconds: 2 });
      expect(rotated.statusCode).toBe(201);
      const { key, previous } = rotated.json();
      expect(previous).toMatchObject({ id: issued.id, status: 'active' });
      const expiresAt = Date.parse(previous.expiresAt);
      expect(expiresAt).toBeGreaterThan(Date.now());
      expect(expiresAt).toBeLessThanOrEqual(Date.now() + 2_500);
      expect((await read(issued.key)).statusCode).toBe(200);
      expect((await read(key.key)).statusCode).toBe(200);

      // The resolver may hold the key for its short cache; poll until the grace is over.
      const deadline = Date.now() + 10_000;
      let status = 200;
      while (status === 200 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 250));
        status = (await read(issued.key)).statusCode;
      }
      expect(status).toBe(401);
      expect(Date.now()).toBeGreaterThanOrEqual(expiresAt);
      expect((await read(key.key)).statusCode).toBe(200);
    });

    it('refuses a negative or excessive grace', async () => {
      const issued = (await call('POST', '/admin/workspaces/acme/keys', { kind: 'server' })).json();
      for (const graceSeconds of [-1, 31 * 24 * 3600, 'soon']) {
        const res = await call('POST', `/admin/workspaces/acme/keys/${issued.id}/rotate`, { graceSeconds });
        expect(res.statusCode, String(graceSeconds)).toBe(400);
        expect(res.json()).toMatchObject({ field: 'graceSeconds' });
      }
      const listed = (await call('GET', '/admin/workspaces/acme/keys')).json().items as Array<{ id: string; status: string; expiresAt: string | null }>;
      expect(listed.find((k) => k.id === issued.id)).toMatchObject({ status: 'active', expiresAt: null });
    });
  });
});
