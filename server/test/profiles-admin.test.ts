import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { drain, profileUrl, reader, send, serverKey } from './profiles-support.ts';
import { ADMIN_TOKEN, startTestApp, type TestApp } from './support/app.ts';

describe('identity settings and stats (admin API)', () => {
  let t: TestApp;
  const admin = (method: 'GET' | 'PUT', url: string, payload?: object, token = ADMIN_TOKEN) =>
    t.app.inject({ method, url, headers: { authorization: `Bearer ${token}` }, ...(payload === undefined ? {} : { payload }) });
  const SETTINGS = '/admin/workspaces/acme/identity-settings';

  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(async () => t.close());

  it('shows the defaults as applied when nothing is stored', async () => {
    const res = await admin('GET', SETTINGS);
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body.identity).toEqual({});
    expect(body.traitStrategies).toEqual({});
    expect(body.effective.defaultPhoneRegion).toBe('CN');
    expect(body.effective.types.slice(0, 5).map((type: { name: string }) => type.name)).toEqual(['user_id', 'member_id', 'email', 'phone', 'wechat_unionid']);
    expect(body.effective.types.find((type: { name: string }) => type.name === 'anonymous_id')).toMatchObject({ limit: 100, builtIn: true, normalizer: 'id' });
    expect(body.effective.types[0].blockedValues).toEqual(expect.arrayContaining(['', 'null', 'undefined', 'anonymous', '0', '-1']));
  });

  it('saves valid settings, which then drive resolution and lookups', async () => {
    const res = await admin('PUT', SETTINGS, {
      identity: { defaultPhoneRegion: 'US', types: { loyalty_card: { priority: 2, limit: 1, normalizer: 'id_lowercase' }, email: { blockedValues: ['test@example.com'] } } },
      traitStrategies: { traits: { name: { kind: 'source_precedence', order: ['CRM', 'web'] } } },
    });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body.effective.defaultPhoneRegion).toBe('US');
    expect(body.effective.types.find((type: { name: string }) => type.name === 'loyalty_card')).toMatchObject({ builtIn: false, priority: 2, limit: 1, normalizer: 'id_lowercase' });
    expect(body.traitStrategies).toEqual({ traits: { name: { kind: 'source_precedence', order: ['CRM', 'web'] } } });
    expect((await admin('GET', '/admin/workspaces/acme/identity-settings')).json()).toEqual(body);

    // Only the part sent is replaced.
    const onlyStrategies = (await admin('PUT', SETTINGS, { traitStrategies: {} })).json();
    expect(onlyStrategies.identity.defaultPhoneRegion).toBe('US');
    expect(onlyStrategies.traitStrategies).toEqual({});

    // A US number without a country code now means +1, in events and in lookups alike.
    await send(t, t.writeKey, [
      { type: 'identify', userId: 'us-1', traits: { phone: '(415) 555-2671' }, context: { externalIds: [{ id: 'CARD-7', type: 'loyalty_card' }] }, messageId: 'p1', timestamp: '2026-03-01T00:00:00Z' },
    ]);
    await drain(t);
    const call = reader(t, await serverKey(t));
    const found = await call('GET', profileUrl('phone:415-555-2671'));
    expect(found.statusCode).toBe(200);
    expect(found.json().matchedBy).toEqual({ type: 'phone', value: '+14155552671' });
    expect((await call('GET', profileUrl('loyalty_card:card-7'))).json().id).toBe(found.json().id);
  });

  it('refuses bad settings with the field at fault and keeps the stored ones', async () => {
    const before = (await admin('GET', SETTINGS)).json();
    const cases: Array<[object, string]> = [
      [{ identity: { types: { email: { limit: 0 } } } }, 'identity.types.email.limit'],
      [{ identity: { defaultPhoneRegion: 'ZZ' } }, 'identity.defaultPhoneRegion'],
      [{ identity: { defaultPhoneRegion: 'cn' } }, 'identity.defaultPhoneRegion'],
      [{ identity: { types: { 'Bad Name': {} } } }, 'identity.types.Bad Name'],
      [{ identity: { types: { phone: { normalizer: 'soundex' } } } }, 'identity.types.phone.normalizer'],
      [{ identity: { colour: 'red' } }, 'identity.colour'],
      [{ traitStrategies: { traits: { name: { kind: 'source_precedence', order: [] } } } }, 'traitStrategies.traits.name'],
      [{ traitStrategies: { default: { kind: 'loudest' } } }, 'traitStrategies.default'],
      [{ identities: {} }, 'identities'],
    ];
    for (const [payload, field] of cases) {
      const res = await admin('PUT', SETTINGS, payload);
      expect(res.statusCode, JSON.stringify(payload)).toBe(400);
      expect(res.json().field, JSON.stringify(payload)).toBe(field);
      expect(res.json().message).toBeTruthy();
    }
    expect((await admin('GET', SETTINGS)).json()).toEqual(before);
  });

  it('needs the admin token and a known workspace', async () => {
    expect((await admin('GET', SETTINGS, undefined, 'wrong')).statusCode).toBe(401);
    expect((await t.app.inject({ method: 'GET', url: '/admin/workspaces/acme/identity/stats' })).statusCode).toBe(401);
    expect((await admin('GET', '/admin/workspaces/nowhere/identity-settings')).statusCode).toBe(404);
    expect((await admin('PUT', '/admin/workspaces/nowhere/identity-settings', {})).statusCode).toBe(404);
    expect((await admin('GET', '/admin/workspaces/nowhere/identity/stats')).statusCode).toBe(404);
  });

  it('counts profiles, identifiers, merges, refusals, ignored identifiers and the queue', async () => {
    const other = await t.addWorkspace('stats-ws');
    const stats = async () => {
      const res = await admin('GET', '/admin/workspaces/stats-ws/identity/stats');
      expect(res.statusCode).toBe(200);
      return res.json();
    };
    expect(await stats()).toEqual({
      profiles: { live: 0, absorbed: 0 },
      identifiers: [],
      merges: { total: 0, undone: 0, byKind: {} },
      refusals: [],
      ignored: [],
      queue: { pending: 0 },
    });
    await send(t, other.writeKey, [
      { type: 'track', event: 'Viewed', anonymousId: 'a-1', messageId: 's1', timestamp: '2026-03-01T00:00:00Z' },
      { type: 'identify', userId: 'v-1', traits: { email: 'v@example.com' }, messageId: 's2', timestamp: '2026-03-01T00:01:00Z' },
    ]);
    expect((await stats()).queue).toEqual({ pending: 2 });
    await drain(t, other.workspace.id);
    await send(t, other.writeKey, [
      // Joins the anonymous visitor to v-1 through the email: one merge.
      { type: 'identify', anonymousId: 'a-1', traits: { email: 'v@example.com' }, messageId: 's3', timestamp: '2026-03-01T00:02:00Z' },
      // A second user id on the same email: refused.
      { type: 'identify', userId: 'v-2', traits: { email: 'v@example.com' }, messageId: 's4', timestamp: '2026-03-01T00:03:00Z' },
      // Placeholder ids are ignored and counted.
      { type: 'identify', userId: 'undefined', anonymousId: 'a-3', messageId: 's5', timestamp: '2026-03-01T00:04:00Z' },
    ]);
    await drain(t, other.workspace.id);
    const body = await stats();
    expect(body.profiles).toEqual({ live: 3, absorbed: 1 });
    expect(body.identifiers).toEqual([
      { type: 'anonymous_id', live: 2, ended: 0 },
      { type: 'email', live: 1, ended: 0 },
      { type: 'user_id', live: 2, ended: 0 },
    ]);
    expect(body.merges).toEqual({ total: 1, undone: 0, byKind: { event: 1 } });
    expect(body.refusals).toEqual([{ reason: 'conflicting_value', count: 1 }]);
    expect(body.ignored).toEqual([{ type: 'user_id', reason: 'blocked', count: 1, lastSeen: expect.any(String) }]);
    expect(body.queue).toEqual({ pending: 0 });
    // The first workspace's numbers are its own.
    const acme = (await admin('GET', '/admin/workspaces/acme/identity/stats')).json();
    expect(acme.profiles).toEqual({ live: 1, absorbed: 0 });
  });
});
