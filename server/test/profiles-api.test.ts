import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSource } from '../src/workspaces/store.ts';
import { drain, profileUrl, reader, send, serverKey } from './profiles-support.ts';
import { startTestApp, type TestApp } from './support/app.ts';

/**
 * One workspace with a cross-channel customer (Li Lei: web visit, app login, a store purchase
 * keyed by phone that merges an anonymous profile into hers), two other customers, a refused
 * merge, and a long timeline; queried through the API with a server key.
 */
describe('single customer view API', () => {
  let t: TestApp;
  let call: ReturnType<typeof reader>;
  let liLei: string;
  let absorbed: string;
  const PHONE = '+8613800138000';

  beforeAll(async () => {
    t = await startTestApp();
    const ws = t.workspace.id;
    const app = await createSource(t.db, ws, { name: 'App', kind: 'app' });
    const store = await createSource(t.db, ws, { name: 'Store POS', kind: 'store' });
    const crm = await createSource(t.db, ws, { name: 'CRM', kind: 'crm_import' });
    call = reader(t, await serverKey(t));

    await send(t, t.writeKey, [{ type: 'page', anonymousId: 'anon-1', name: 'Home', messageId: 'e1', timestamp: '2026-01-01T10:00:00Z' }]);
    await send(t, app.writeKey.key, [
      {
        type: 'identify',
        userId: 'u-1',
        anonymousId: 'anon-1',
        traits: { email: 'Li.Lei@Example.com', name: 'Li Lei', city: '北京' },
        messageId: 'e2',
        timestamp: '2026-01-02T10:00:00Z',
      },
    ]);
    await send(t, t.writeKey, [{ type: 'track', event: 'Product Viewed', anonymousId: 'anon-2', messageId: 'e3', timestamp: '2026-01-03T10:00:00Z' }]);
    await send(t, store.writeKey.key, [
      {
        type: 'track',
        event: 'Order Completed',
        anonymousId: 'anon-2',
        context: { externalIds: [{ id: '+86 138 0013 8000', type: 'phone' }] },
        properties: { revenue: 299 },
        messageId: 'e4',
        timestamp: '2026-01-04T10:00:00Z',
      },
    ]);
    await drain(t);
    const { rows: before } = await t.db.query(
      `select profile_id from profile_identifiers where workspace_id = $1 and type = 'anonymous_id' and value = 'anon-2'`,
      [ws],
    );
    absorbed = before[0].profile_id;
    // The app learns her phone: the store's anonymous profile (holding the phone) merges into hers.
    await send(t, app.writeKey.key, [
      { type: 'identify', userId: 'u-1', traits: { phone: '13800138000', city: '上海' }, messageId: 'e5', timestamp: '2026-01-05T10:00:00Z' },
    ]);
    await send(t, crm.writeKey.key, [
      { type: 'identify', userId: 'u-2', traits: { email: 'zhang.san@example.com', city: '上海', name: 'Zhang San' }, messageId: 'e6', timestamp: '2026-01-06T10:00:00Z' },
      { type: 'identify', userId: 'u-3', traits: { email: 'zhao@example.com', city: '广州', age: 30 }, messageId: 'e7', timestamp: '2026-01-06T11:00:00Z' },
    ]);
    // Another user id claiming her email: joining two user ids is refused and recorded.
    await send(t, t.writeKey, [{ type: 'identify', userId: 'u-9', traits: { email: 'li.lei@example.com' }, messageId: 'e8', timestamp: '2026-01-07T10:00:00Z' }]);
    // A long timeline with several events per instant, so pages must break ties by seq.
    await send(
      t,
      app.writeKey.key,
      Array.from({ length: 23 }, (_, i) => ({
        type: i % 4 === 3 ? 'screen' : 'track',
        ...(i % 4 === 3 ? { name: 'Cart' } : { event: i % 2 === 0 ? 'Clicked' : 'Scrolled' }),
        userId: 'u-1',
        messageId: `tl-${i}`,
        timestamp: `2026-01-10T00:00:0${Math.floor(i / 3)}Z`,
      })),
    );
    await drain(t);
    const res = await call('GET', profileUrl('user_id:u-1'));
    expect(res.statusCode).toBe(200);
    liLei = res.json().id;
  });
  afterAll(async () => t.close());

  it('finds the same profile by every identifier type, normalising the value as resolution does', async () => {
    const refs = [
      ['user_id:u-1', { type: 'user_id', value: 'u-1' }],
      ['user_id: u-1 ', { type: 'user_id', value: 'u-1' }],
      ['anonymous_id:anon-1', { type: 'anonymous_id', value: 'anon-1' }],
      ['anonymous_id:anon-2', { type: 'anonymous_id', value: 'anon-2' }],
      ['email: LI.Lei@EXAMPLE.com', { type: 'email', value: 'li.lei@example.com' }],
      ['phone:+86 138 0013 8000', { type: 'phone', value: PHONE }],
      ['phone:13800138000', { type: 'phone', value: PHONE }],
    ] as const;
    for (const [ref, matchedBy] of refs) {
      const res = await call('GET', profileUrl(ref));
      expect(res.statusCode, ref).toBe(200);
      expect(res.json()).toMatchObject({ id: liLei, mergedFrom: null, matchedBy });
    }
    const zhang = await call('GET', profileUrl('email:Zhang.San@example.com'));
    expect(zhang.json().id).not.toBe(liLei);
    expect(zhang.json().traits).toEqual({ email: 'zhang.san@example.com', city: '上海', name: 'Zhang San' });
  });

  it('finds identifiers whose values hold URL characters (/ ? # % space) when the client encodes them', async () => {
    const other = await t.addWorkspace('url-chars');
    await send(t, other.writeKey, [{ type: 'identify', anonymousId: 'ga/1.2?x#y %z', messageId: 'u1', timestamp: '2026-01-01T10:00:00Z' }]);
    await drain(t, other.workspace.id);
    const otherCall = reader(t, await serverKey(t, other.workspace.id));
    const found = await otherCall('GET', profileUrl('anonymous_id:ga/1.2?x#y %z'));
    expect(found.statusCode).toBe(200);
    expect(found.json().matchedBy).toEqual({ type: 'anonymous_id', value: 'ga/1.2?x#y %z' });
    const timeline = await otherCall('GET', profileUrl('anonymous_id:ga/1.2?x#y %z', '/events'));
    expect(timeline.json().items.map((e: { messageId: string }) => e.messageId)).toEqual(['u1']);
  });

  it('answers a profile by id, and an absorbed id with the profile that absorbed it', async () => {
    expect(absorbed).not.toBe(liLei);
    const direct = await call('GET', profileUrl(liLei));
    expect(direct.json()).toMatchObject({ id: liLei, mergedFrom: null, matchedBy: null });
    const viaAbsorbed = await call('GET', profileUrl(absorbed));
    expect(viaAbsorbed.statusCode).toBe(200);
    expect(viaAbsorbed.json()).toMatchObject({ id: liLei, mergedFrom: absorbed });
    expect(viaAbsorbed.json().identifiers).toEqual(direct.json().identifiers);
    const upper = await call('GET', profileUrl(liLei.toUpperCase()));
    expect(upper.json().id).toBe(liLei);
  });

  it('returns traits, identifiers with their sources, the latest events and the empty slots', async () => {
    const body = (await call('GET', profileUrl('user_id:u-1'))).json();
    expect(body.traits).toEqual({ email: 'Li.Lei@Example.com', name: 'Li Lei', city: '上海', phone: '13800138000' });
    expect(body.firstSeen).toBe('2026-01-01T10:00:00.000Z');
    expect(body.lastSeen).toBe('2026-01-10T00:00:07.000Z');
    const identifiers = Object.fromEntries(body.identifiers.map((i: { type: string; value: string }) => [`${i.type}:${i.value}`, i]));
    expect(Object.keys(identifiers).sort()).toEqual(['anonymous_id:anon-1', 'anonymous_id:anon-2', 'email:li.lei@example.com', `phone:${PHONE}`, 'user_id:u-1']);
    expect(identifiers[`phone:${PHONE}`]).toMatchObject({
      source: { name: 'Store POS', kind: 'store' },
      firstSeen: '2026-01-04T10:00:00.000Z',
      lastSeen: '2026-01-05T10:00:00.000Z',
      linkedBy: { messageId: 'e4', via: 'event' },
    });
    expect(identifiers['anonymous_id:anon-1']).toMatchObject({ source: { name: 'Website', kind: 'web' }, linkedBy: { messageId: 'e1' } });
    // 23 timeline events + e1..e5 = 28, all within the default 50, newest first.
    expect(body.events).toHaveLength(28);
    expect(body.eventsNextCursor).toBeNull();
    expect(body.events.at(-1).messageId).toBe('e1');
    expect(body.events.map((e: { messageId: string }) => e.messageId)).toContain('e3'); // came with the absorbed profile
    expect(body.events[0].timestamp).toBe('2026-01-10T00:00:07.000Z');
    expect(body).toMatchObject({ segments: [], journeys: [], consent: {}, computed: {} });

    const few = (await call('GET', `${profileUrl('user_id:u-1')}?events=5`)).json();
    expect(few.events).toEqual(body.events.slice(0, 5));
    const next = (await call('GET', `${profileUrl(liLei, '/events')}?limit=5&cursor=${few.eventsNextCursor}`)).json();
    expect(next.items).toEqual(body.events.slice(5, 10));
  });

  it('gives each trait its source, event and time, and its history, with ?verbose=true', async () => {
    const body = (await call('GET', `${profileUrl('user_id:u-1')}?verbose=true`)).json();
    expect(body.traits.city).toMatchObject({
      value: '上海',
      source: { kind: 'app', name: 'App' },
      messageId: 'e5',
      observedAt: '2026-01-05T10:00:00.000Z',
    });
    expect(body.traits.city.history.map((h: { previousValue: unknown; value: unknown; messageId: string; reason: string }) => [h.previousValue, h.value, h.messageId, h.reason])).toEqual([
      [null, '北京', 'e2', 'event'],
      ['北京', '上海', 'e5', 'event'],
    ]);
    expect(body.traits.name).toMatchObject({ value: 'Li Lei', messageId: 'e2', history: [{ previousValue: null, value: 'Li Lei' }] });
    const plain = (await call('GET', `${profileUrl('user_id:u-1')}?verbose=false`)).json();
    expect(plain.traits.city).toBe('上海');
  });

  it('pages the timeline newest first without duplicates or gaps, ties broken by seq', async () => {
    const all = (await call('GET', `${profileUrl(liLei, '/events')}?limit=500`)).json();
    expect(all.profileId).toBe(liLei);
    expect(all.items).toHaveLength(28);
    expect(all.nextCursor).toBeNull();
    const ids: string[] = all.items.map((e: { messageId: string }) => e.messageId);
    // Within one instant the later-stored event comes first.
    expect(ids.slice(0, 3)).toEqual(['tl-22', 'tl-21', 'tl-20']);
    for (const size of [1, 2, 5, 7]) {
      const seen: string[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const res = await call('GET', `${profileUrl('email:li.lei@example.com', '/events')}?limit=${size}${cursor ? `&cursor=${cursor}` : ''}`);
        expect(res.statusCode).toBe(200);
        const page = res.json();
        expect(page.items.length).toBeLessThanOrEqual(size);
        seen.push(...page.items.map((e: { messageId: string }) => e.messageId));
        cursor = page.nextCursor;
        pages++;
      } while (cursor);
      expect(seen, `page size ${size}`).toEqual(ids);
      expect(pages).toBe(Math.ceil(28 / size));
    }
  });

  it('filters the timeline by event name, type, source kind and time range', async () => {
    const ids = async (query: string) => {
      const res = await call('GET', `${profileUrl(liLei, '/events')}?limit=500&${query}`);
      expect(res.statusCode, query).toBe(200);
      return res.json().items.map((e: { messageId: string }) => e.messageId);
    };
    expect(await ids('event=Order%20Completed')).toEqual(['e4']);
    expect(await ids('event=Cart')).toEqual(['tl-19', 'tl-15', 'tl-11', 'tl-7', 'tl-3']);
    expect(await ids('event=Order%20Completed&event=Product%20Viewed')).toEqual(['e4', 'e3']);
    expect(await ids('type=identify')).toEqual(['e5', 'e2']);
    expect(await ids('type=page&type=identify')).toEqual(['e5', 'e2', 'e1']);
    expect(await ids('sourceKind=store')).toEqual(['e4']);
    expect(await ids('sourceKind=web')).toEqual(['e3', 'e1']);
    expect(await ids('since=2026-01-02T10:00:00Z&until=2026-01-05T10:00:00Z')).toEqual(['e4', 'e3', 'e2']);
    expect(await ids('type=track&since=2026-01-10T00:00:06Z')).toEqual(['tl-22', 'tl-21', 'tl-20', 'tl-18']);
    // until is exclusive: the events of that instant are not included.
    expect(await ids('type=track&since=2026-01-10T00:00:06Z&until=2026-01-10T00:00:07Z')).toEqual(['tl-20', 'tl-18']);
    // Filters and pages together: no event of the filter is lost between pages.
    const first = (await call('GET', `${profileUrl(liLei, '/events')}?event=Clicked&limit=4`)).json();
    const rest = (await call('GET', `${profileUrl(liLei, '/events')}?event=Clicked&limit=100&cursor=${first.nextCursor}`)).json();
    expect([...first.items, ...rest.items].map((e: { messageId: string }) => e.messageId)).toEqual(await ids('event=Clicked'));
    expect((await ids('event=Clicked')).length).toBe(12);
  });

  it('rejects bad timeline parameters with the field at fault', async () => {
    const cases = [
      ['type=purchase', 'type.0'],
      ['sourceKind=fax', 'sourceKind.0'],
      ['since=yesterday', 'since'],
      ['cursor=not-a-cursor', 'cursor'],
      ['limit=0', 'limit'],
      ['colour=red', 'colour'],
    ];
    for (const [query, field] of cases) {
      const res = await call('GET', `${profileUrl(liLei, '/events')}?${query}`);
      expect(res.statusCode, query).toBe(400);
      expect(res.json().field, query).toBe(field);
    }
  });

  it('explains the identity graph: identifiers with the event that linked each, the merge and its cause, refusals', async () => {
    const res = await call('GET', profileUrl('phone:138 0013 8000', '/identity'));
    expect(res.statusCode).toBe(200);
    const graph = res.json();
    expect(graph.profileId).toBe(liLei);
    expect(graph.absorbedProfiles).toEqual([{ id: absorbed, mergedAt: expect.any(String) }]);
    const links = graph.identifiers.map((i: { type: string; value: string; linkedBy: { messageId: string }; profileId: string; live: boolean }) => [
      i.type,
      i.value,
      i.linkedBy.messageId,
      i.profileId,
      i.live,
    ]);
    expect(links).toEqual([
      ['anonymous_id', 'anon-1', 'e1', liLei, true],
      ['user_id', 'u-1', 'e2', liLei, true],
      ['email', 'li.lei@example.com', 'e2', liLei, true],
      ['anonymous_id', 'anon-2', 'e3', liLei, true],
      ['phone', PHONE, 'e4', liLei, true],
    ]);
    expect(graph.merges).toHaveLength(1);
    const merge = graph.merges[0];
    expect(merge).toMatchObject({
      kind: 'event',
      survivorId: liLei,
      absorbedIds: [absorbed],
      cause: { messageId: 'e5', identifier: { type: 'phone', value: PHONE } },
      undoneAt: null,
    });
    const absorbedIdentifiers = (merge.details.absorbed as Array<{ profileId: string; identifiers: Array<{ type: string; value: string }> }>)[0]!;
    expect(absorbedIdentifiers.profileId).toBe(absorbed);
    expect(absorbedIdentifiers.identifiers).toEqual(
      expect.arrayContaining([{ type: 'anonymous_id', value: 'anon-2' }, { type: 'phone', value: PHONE }]),
    );
    expect(graph.splitFrom).toEqual([]);
    expect(graph.refusals).toEqual([
      expect.objectContaining({ profileId: liLei, messageId: 'e8', identifier: { type: 'email', value: 'li.lei@example.com' }, reason: 'conflicting_value' }),
    ]);
    // The same graph through the absorbed id.
    const viaAbsorbed = (await call('GET', profileUrl(absorbed, '/identity'))).json();
    expect(viaAbsorbed).toEqual({ ...graph, mergedFrom: absorbed });
  });

  it('searches live profiles by identifier prefix, normalised per type', async () => {
    const search = async (query: string) => {
      const res = await call('GET', `/v1/profiles?${query}`);
      expect(res.statusCode, query).toBe(200);
      return res.json();
    };
    const ids = async (query: string) => (await search(query)).items.map((p: { id: string }) => p.id);
    // PII identifiers (email, phone) are stored as keyed-hash tokens: found by their whole value,
    // normalised per type, never by a prefix (docs/security.md).
    expect(await ids('identifier=li.')).toEqual([]);
    expect(await ids('identifier=LI.LEI%40EXAMPLE.COM')).toEqual([liLei]);
    expect(await ids(`identifier=${encodeURIComponent('+86 138 0013 8000')}&type=phone`)).toEqual([liLei]);
    expect(await ids(`identifier=${encodeURIComponent('13800138000')}&type=phone`)).toEqual([liLei]);
    expect(await ids(`identifier=${encodeURIComponent('138 0013')}&type=phone`)).toEqual([]);
    // Other identifier types keep prefix search.
    expect(await ids('identifier=anon-')).toEqual([liLei]);
    expect(await ids('identifier=u-&type=user_id')).toHaveLength(4); // u-1, u-2, u-3, u-9
    const zh = await search('identifier=zhao%40example.com&type=email');
    expect(zh.items.map((p: { traits: { email: string } }) => p.traits.email)).toEqual(['zhao@example.com']);
    expect(zh.items[0].identifiers).toEqual(expect.arrayContaining([{ type: 'email', value: 'zhao@example.com' }]));
    // LIKE wildcards in the prefix are literal characters.
    expect(await ids('identifier=%25')).toEqual([]);
    expect(await ids('identifier=_')).toEqual([]);
    expect(await ids('identifier=li.lei%40example.com&type=member_id')).toEqual([]);
    // Absorbed profiles are never listed.
    const everyone = await ids('limit=500');
    expect(everyone).toHaveLength(4);
    expect(everyone).not.toContain(absorbed);
  });

  it('searches by trait equality, alone and with an identifier prefix, paginated', async () => {
    const search = async (query: string) => {
      const res = await call('GET', `/v1/profiles?${query}`);
      expect(res.statusCode, query).toBe(200);
      return res.json();
    };
    const city = (c: string) => `trait.city=${encodeURIComponent(c)}`;
    const shanghai = await search(city('上海'));
    expect(shanghai.items.map((p: { traits: { name: string } }) => p.traits.name).sort()).toEqual(['Li Lei', 'Zhang San']);
    expect((await search(`${city('上海')}&identifier=${encodeURIComponent('zhang.san@example.com')}`)).items.map((p: { traits: { name: string } }) => p.traits.name)).toEqual(['Zhang San']);
    expect((await search(`${city('上海')}&${city('广州')}`)).items).toHaveLength(3);
    expect((await search(`${city('上海')}&trait.name=${encodeURIComponent('Li Lei')}`)).items.map((p: { id: string }) => p.id)).toEqual([liLei]);
    expect((await search(`${city('北京')}`)).items).toEqual([]); // her old value is history, not current
    expect((await search('trait.age=30')).items).toHaveLength(1); // numbers compare by their text
    expect((await search('trait.nickname=x')).items).toEqual([]);

    const paged: string[] = [];
    let cursor: string | null = null;
    do {
      const page = await search(`${city('上海')}&${city('广州')}&limit=1${cursor ? `&cursor=${cursor}` : ''}`);
      expect(page.items.length).toBeLessThanOrEqual(1);
      paged.push(...page.items.map((p: { id: string }) => p.id));
      cursor = page.nextCursor;
    } while (cursor);
    expect(paged).toHaveLength(3);
    expect(new Set(paged).size).toBe(3);
    expect(paged).toEqual([...paged].sort());
  });

  it('rejects bad search parameters by name', async () => {
    const cases = [
      ['colour=red', 'colour'],
      ['trait.=x', 'trait.'],
      ['type=email', 'type'],
      ['identifier=x&type=shoe_size', 'type'],
      ['identifier=%20', 'identifier'],
      ['cursor=abc', 'cursor'],
    ];
    for (const [query, field] of cases) {
      const res = await call('GET', `/v1/profiles?${query}`);
      expect(res.statusCode, query).toBe(400);
      expect(res.json().field, query).toBe(field);
    }
  });

  it('answers 404 for unknown profiles and 400 for references that can never identify anyone', async () => {
    for (const ref of ['00000000-0000-4000-8000-000000000000', 'user_id:nobody', 'email:nobody@example.com', 'phone:13900000000']) {
      for (const suffix of ['', '/events', '/identity']) {
        const res = await call('GET', profileUrl(ref, suffix));
        expect(res.statusCode, ref + suffix).toBe(404);
        expect(res.json().error).toBe('not_found');
      }
    }
    const bad = [
      ['not-a-profile', 'invalid_request'],
      [':u-1', 'invalid_request'],
      ['shoe_size:42', 'invalid_identifier'],
      ['phone:call me', 'invalid_identifier'],
      ['user_id:null', 'invalid_identifier'],
      ['email:not-an-email', 'invalid_identifier'],
    ];
    for (const [ref, code] of bad) {
      const res = await call('GET', profileUrl(ref!));
      expect(res.statusCode, ref).toBe(400);
      expect(res.json(), ref).toMatchObject({ error: code, field: 'profile' });
    }
    const verbose = await call('GET', `${profileUrl(liLei)}?verbose=maybe`);
    expect(verbose.statusCode).toBe(400);
    expect(verbose.json().field).toBe('verbose');
  });

  it('keeps workspaces apart: another workspace\'s key never sees these profiles, even by id', async () => {
    const other = await t.addWorkspace('globex');
    const otherCall = reader(t, await serverKey(t, other.workspace.id));
    await send(t, other.writeKey, [{ type: 'identify', userId: 'u-1', traits: { name: 'Someone else' }, messageId: 'g1', timestamp: '2026-01-01T00:00:00Z' }]);
    await drain(t, other.workspace.id);

    for (const suffix of ['', '/events', '/identity']) {
      expect((await otherCall('GET', profileUrl(liLei, suffix))).statusCode).toBe(404);
      expect((await otherCall('GET', profileUrl(absorbed, suffix))).statusCode).toBe(404);
      expect((await otherCall('GET', profileUrl('email:li.lei@example.com', suffix))).statusCode).toBe(404);
    }
    const theirs = (await otherCall('GET', profileUrl('user_id:u-1'))).json();
    expect(theirs.id).not.toBe(liLei);
    expect(theirs.traits).toEqual({ name: 'Someone else' });
    expect((await otherCall('GET', '/v1/profiles?identifier=li')).json().items).toEqual([]);
    expect((await otherCall('GET', `/v1/profiles?trait.city=${encodeURIComponent('上海')}`)).json().items).toEqual([]);
    expect((await call('GET', profileUrl(theirs.id))).statusCode).toBe(404);
    const unmerge = await otherCall('POST', profileUrl(liLei, '/unmerge'), { identifier: { type: 'phone', value: PHONE } });
    expect(unmerge.statusCode).toBe(404);
  });

  it('requires a server key', async () => {
    expect((await t.app.inject({ method: 'GET', url: profileUrl(liLei) })).statusCode).toBe(401);
    const withWriteKey = await reader(t, t.writeKey)('GET', profileUrl(liLei));
    expect(withWriteKey.statusCode).toBe(403);
    expect((await reader(t, 'tpk_unknown')('GET', '/v1/profiles')).statusCode).toBe(401);
  });

  it('documents the routes in /openapi.json', async () => {
    const doc = (await t.app.inject({ method: 'GET', url: '/openapi.json' })).json();
    for (const path of ['/v1/profiles', '/v1/profiles/{profile}', '/v1/profiles/{profile}/events', '/v1/profiles/{profile}/identity']) {
      expect(doc.paths[path]?.get, path).toBeDefined();
    }
    expect(doc.paths['/v1/profiles/{profile}/unmerge']?.post).toBeDefined();
    expect(doc.paths['/admin/workspaces/{workspace}/identity-settings']?.put).toBeDefined();
    expect(doc.paths['/admin/workspaces/{workspace}/identity/stats']?.get).toBeDefined();
  });
});
