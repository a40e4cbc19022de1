import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { drainCatalogueQueue } from '../src/catalogue/store.ts';
import { createSource } from '../src/workspaces/store.ts';
import { drain, profileUrl, send, serverKey } from './profiles-support.ts';
import { startTestApp, type TestApp } from './support/app.ts';

const segmentUrl = (key: string, suffix = '') => `/v1/segments/${encodeURIComponent(key)}${suffix}`;

function caller(t: TestApp, key: string) {
  return async (method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, payload?: object) =>
    t.app.inject({ method, url, headers: { authorization: `Bearer ${key}` }, ...(payload === undefined ? {} : { payload }) });
}

/**
 * Segments through the HTTP API on data sent through the collection API and resolved by identity:
 * Li Lei (Shanghai, three orders, one of them first seen on an anonymous profile that later merged
 * into hers), Zhang San (Shanghai, one order) and Zhao (Guangzhou). The server clock is fixed.
 */
describe('segments API', () => {
  let t: TestApp;
  let call: ReturnType<typeof caller>;
  let liLei: string;
  let absorbed: string;
  let zhang: string;
  let clock = new Date('2026-03-01T00:00:00Z');

  beforeAll(async () => {
    t = await startTestApp({ now: () => clock });
    const ws = t.workspace.id;
    const app = await createSource(t.db, ws, { name: 'App', kind: 'app' });
    const store = await createSource(t.db, ws, { name: 'Store POS', kind: 'store' });
    call = caller(t, await serverKey(t));
    const order = (id: string, user: Record<string, unknown>, timestamp: string, revenue: number, extra: Record<string, unknown> = {}) => ({
      type: 'track',
      event: 'Order Completed',
      properties: { revenue },
      messageId: id,
      timestamp,
      ...user,
      ...extra,
    });
    await send(t, app.writeKey.key, [
      { type: 'identify', userId: 'u-1', traits: { email: 'li.lei@example.com', city: '上海', name: 'Li Lei' }, messageId: 'i1', timestamp: '2026-02-01T10:00:00Z' },
      { type: 'identify', userId: 'u-2', traits: { email: 'zhang.san@example.com', city: '上海', name: 'Zhang San' }, messageId: 'i2', timestamp: '2026-02-01T10:00:00Z' },
      { type: 'identify', userId: 'u-3', traits: { email: 'zhao@example.com', city: '广州' }, messageId: 'i3', timestamp: '2026-02-01T10:00:00Z' },
      order('o1', { userId: 'u-1' }, '2026-02-10T10:00:00Z', 120),
      order('o2', { userId: 'u-1' }, '2026-02-20T10:00:00Z', 80),
      order('o3', { userId: 'u-2' }, '2026-02-21T10:00:00Z', 300),
    ]);
    // A store purchase keyed by phone on an anonymous profile…
    await send(t, store.writeKey.key, [
      order('o4', { anonymousId: 'anon-9' }, '2026-02-22T10:00:00Z', 40, { context: { externalIds: [{ id: '+86 138 0013 8000', type: 'phone' }] } }),
    ]);
    await drain(t);
    const { rows } = await t.db.query(`select profile_id from profile_identifiers where workspace_id = $1 and type = 'anonymous_id' and value = 'anon-9'`, [ws]);
    absorbed = rows[0].profile_id;
    // …merges into Li Lei's when the app learns her phone.
    await send(t, app.writeKey.key, [{ type: 'identify', userId: 'u-1', traits: { phone: '13800138000' }, messageId: 'i4', timestamp: '2026-02-23T10:00:00Z' }]);
    await drain(t);
    // The worker's catalogue drain, which the checker's warnings read.
    await drainCatalogueQueue(t.db, 10_000);
    liLei = (await call('GET', profileUrl('user_id:u-1'))).json().id;
    zhang = (await call('GET', profileUrl('user_id:u-2'))).json().id;
    expect(absorbed).not.toBe(liLei);
  });
  afterAll(async () => t.close());

  it('creates a segment from text, computes it and answers with canonical text, AST, state and warnings', async () => {
    const res = await call('POST', '/v1/segments', {
      key: '上海买家',
      name: 'Shanghai buyers',
      kind: 'realtime',
      text: 'trait.city = "上海"   AND event("Order Completed").count(within 30d) >= 3',
    });
    expect(res.statusCode).toBe(201);
    const body = res.json();
    expect(body).toMatchObject({
      key: '上海买家',
      kind: 'realtime',
      status: 'active',
      state: 'ready',
      version: 1,
      memberCount: 1,
      isTag: false,
      text: 'trait.city = "上海" and event("Order Completed").count(within 30d) >= 3',
      definition: { kind: 'and' },
      timeZone: 'UTC',
      computedAt: '2026-03-01T00:00:00.000Z',
      warnings: [],
    });

    const fetched = (await call('GET', segmentUrl('上海买家'))).json();
    expect(fetched).toEqual(body);
    const list = (await call('GET', '/v1/segments')).json();
    expect(list.items.map((s: { key: string }) => s.key)).toContain('上海买家');
  });

  it('warns about events and traits the workspace has never seen, with the closest known name', async () => {
    const res = await call('POST', '/v1/segments', {
      key: 'typos',
      name: 'Typos',
      kind: 'realtime',
      text: 'event("Order Complete").exists() or trait.citty = "上海"',
    });
    expect(res.statusCode).toBe(201);
    const warnings = res.json().warnings as Array<{ path: string; message: string; suggestion?: string }>;
    expect(warnings.map((w) => w.suggestion)).toEqual(expect.arrayContaining(['Order Completed', 'city']));
    expect((await call('GET', segmentUrl('typos'))).json().warnings).toEqual(warnings);
    expect((await call('DELETE', segmentUrl('typos'))).statusCode).toBe(200);
  });

  it('answers which segments a profile is in, for its identifiers and for an absorbed id', async () => {
    const expected = [{ key: '上海买家', name: 'Shanghai buyers', kind: 'realtime', isTag: false, enteredAt: '2026-03-01T00:00:00.000Z' }];
    for (const ref of ['user_id:u-1', 'phone:+86 138 0013 8000', liLei]) {
      const res = await call('GET', profileUrl(ref, '/segments'));
      expect(res.statusCode, ref).toBe(200);
      expect(res.json()).toEqual({ profileId: liLei, mergedFrom: null, segments: expected });
    }
    const viaAbsorbed = (await call('GET', profileUrl(absorbed, '/segments'))).json();
    expect(viaAbsorbed).toEqual({ profileId: liLei, mergedFrom: absorbed, segments: expected });
    expect((await call('GET', profileUrl('user_id:u-2', '/segments'))).json().segments).toEqual([]);
    expect((await call('GET', profileUrl('user_id:nobody', '/segments'))).statusCode).toBe(404);
    expect((await call('GET', `${profileUrl('user_id:u-1', '/segments')}?isTag=true`)).json().segments).toEqual([]);
  });

  it('puts Segment Entered into the profile timeline', async () => {
    const timeline = (await call('GET', `${profileUrl('user_id:u-1', '/events')}?event=Segment%20Entered`)).json();
    expect(timeline.items).toHaveLength(1);
    expect(timeline.items[0]).toMatchObject({
      type: 'track',
      event: 'Segment Entered',
      timestamp: '2026-03-01T00:00:00.000Z',
      properties: { segment_key: '上海买家', segment_name: 'Shanghai buyers', segment_version: 1, cause: 'compute' },
    });
  });

  it('an edit records only true transitions, visible in the transitions list and the timeline', async () => {
    clock = new Date('2026-03-01T01:00:00Z');
    const res = await call('PATCH', segmentUrl('上海买家'), { text: 'trait.city = "上海" and event("Order Completed").exists(within 30d)' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ version: 2, memberCount: 2, state: 'ready' });

    const transitions = (await call('GET', segmentUrl('上海买家', '/transitions'))).json();
    expect(transitions.items.map((i: { profileId: string; transition: string; segmentVersion: number }) => [i.profileId, i.transition, i.segmentVersion])).toEqual([
      [liLei, 'entered', 1],
      [zhang, 'entered', 2],
    ]);
    // Li Lei stayed in: still one Segment Entered and no exit in her timeline.
    const events = (await call('GET', `${profileUrl(liLei, '/events')}?limit=100`)).json().items as Array<{ event: string | null }>;
    expect(events.filter((e) => e.event === 'Segment Entered')).toHaveLength(1);
    expect(events.filter((e) => e.event === 'Segment Exited')).toHaveLength(0);

    clock = new Date('2026-03-01T02:00:00Z');
    await call('PATCH', segmentUrl('上海买家'), { text: 'trait.city = "上海" and event("Order Completed").sum(revenue, within 30d) >= 200' });
    const page1 = (await call('GET', `${segmentUrl('上海买家', '/transitions')}?limit=1`)).json();
    const page2 = (await call('GET', `${segmentUrl('上海买家', '/transitions')}?limit=1&cursor=${page1.nextCursor}`)).json();
    // Li Lei's 120 + 80 + 40 (the merged store order) = 240 keeps her in; Zhang's 300 too. Nothing moved.
    expect([...page1.items, ...page2.items].map((i) => i.profileId)).toEqual([liLei, zhang]);
    expect(page1.nextCursor).not.toBeNull();
    expect(page2.nextCursor).toBeNull();

    clock = new Date('2026-03-01T03:00:00Z');
    await call('PATCH', segmentUrl('上海买家'), { text: 'trait.city = "上海" and event("Order Completed").sum(revenue, within 30d) >= 250' });
    const mine = (await call('GET', `${segmentUrl('上海买家', '/transitions')}?profile=${encodeURIComponent('email:li.lei@example.com')}`)).json();
    expect(mine.items.map((i: { transition: string; cause: string; segmentVersion: number }) => [i.transition, i.cause, i.segmentVersion])).toEqual([
      ['entered', 'compute', 1],
      ['exited', 'compute', 4],
    ]);
    const exits = (await call('GET', `${segmentUrl('上海买家', '/transitions')}?transition=exited`)).json();
    expect(exits.items.map((i: { profileId: string }) => i.profileId)).toEqual([liLei]);
    const exitedEvent = (await call('GET', `${profileUrl(liLei, '/events')}?event=Segment%20Exited`)).json().items;
    expect(exitedEvent).toHaveLength(1);
    expect(exitedEvent[0].properties).toMatchObject({ segment_key: '上海买家', segment_version: 4 });
  });

  it('lists members by profile id, a page at a time', async () => {
    await call('PATCH', segmentUrl('上海买家'), { text: 'trait.city exists' });
    const all = (await call('GET', `${segmentUrl('上海买家', '/members')}?limit=500`)).json();
    expect(all.items).toHaveLength(3);
    const ids = all.items.map((i: { profileId: string }) => i.profileId);
    expect(ids).toEqual([...ids].sort());
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const res = await call('GET', `${segmentUrl('上海买家', '/members')}?limit=2${cursor ? `&cursor=${cursor}` : ''}`);
      const page = res.json();
      seen.push(...page.items.map((i: { profileId: string }) => i.profileId));
      cursor = page.nextCursor;
    } while (cursor);
    expect(seen).toEqual(ids);
    const bad = await call('GET', `${segmentUrl('上海买家', '/members')}?cursor=nonsense`);
    expect(bad.statusCode).toBe(400);
    expect(bad.json().field).toBe('cursor');
  });

  it('previews a definition without saving it', async () => {
    const res = await call('POST', '/v1/segments/preview', { text: 'trait.city = "上海"' });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body).toMatchObject({
      estimatedSize: 2,
      exact: true,
      method: 'exact',
      sizeInterval: { low: 2, high: 2, confidence: 1 },
      sampledProfiles: null,
      sampledMatches: null,
      sampleComplete: true,
      text: 'trait.city = "上海"',
      warnings: [],
    });
    expect(body.liveProfiles).toBeGreaterThanOrEqual(3);
    expect(body.durationMs).toBeGreaterThan(0);
    expect(body.sample.map((p: { id: string }) => p.id).sort()).toEqual([liLei, zhang].sort());
    const li = body.sample.find((p: { id: string }) => p.id === liLei);
    expect(li.traits).toMatchObject({ city: '上海', name: 'Li Lei', email: 'li.lei@example.com' });

    const small = (await call('POST', '/v1/segments/preview', { definition: { kind: 'trait', trait: 'city', op: 'exists' }, sampleSize: 1 })).json();
    expect(small).toMatchObject({ estimatedSize: 3, exact: true });
    expect(small.sample).toHaveLength(1);
    expect((await call('GET', '/v1/segments')).json().items.map((s: { key: string }) => s.key)).toEqual(['上海买家']);
  });

  it('refuses bad input with the field at fault and a reason', async () => {
    const cases: Array<[string, 'POST' | 'PATCH', string, object, number, string, RegExp]> = [
      ['missing name', 'POST', '/v1/segments', { key: 'x', kind: 'realtime', text: 'trait.a exists' }, 400, 'name', /name/],
      ['quote in key', 'POST', '/v1/segments', { key: 'a"b', name: 'x', kind: 'realtime', text: 'trait.a exists' }, 400, 'key', /pattern|match/],
      ['unknown kind', 'POST', '/v1/segments', { key: 'x', name: 'x', kind: 'daily', text: 'trait.a exists' }, 400, 'kind', /./],
      ['unknown field', 'POST', '/v1/segments', { key: 'x', name: 'x', kind: 'realtime', text: 'trait.a exists', colour: 'red' }, 400, 'colour', /./],
      ['bad AST', 'POST', '/v1/segments', { key: 'x', name: 'x', kind: 'realtime', definition: { kind: 'trait', trait: 'a', op: 'gt', value: 'ten' } }, 400, 'definition', /./],
      ['syntax', 'POST', '/v1/segments', { key: 'x', name: 'x', kind: 'realtime', text: 'trait.city = ' }, 400, 'text', /line 1, column/],
      ['regex', 'POST', '/v1/segments', { key: 'x', name: 'x', kind: 'realtime', definition: { kind: 'trait', trait: 'a', op: 'matches', pattern: '(?<=a)b' } }, 400, 'definition.pattern', /./],
      ['no schedule', 'POST', '/v1/segments', { key: 'x', name: 'x', kind: 'periodic', text: 'trait.a exists' }, 400, 'schedule', /schedule/],
      ['bad cron', 'POST', '/v1/segments', { key: 'x', name: 'x', kind: 'periodic', text: 'trait.a exists', schedule: '0 2 * *' }, 400, 'schedule', /5 fields/],
      ['preview nothing', 'POST', '/v1/segments/preview', {}, 400, 'definition', /definition or as text/],
      ['list too', 'POST', segmentUrl('上海买家', '/members'), { mode: 'add', identifiers: [{ type: 'email', value: 'a@b.cn' }] }, 409, 'key', /defined by a condition/],
      ['bad mode', 'POST', segmentUrl('上海买家', '/members'), { mode: 'merge', identifiers: [{ type: 'email', value: 'a@b.cn' }] }, 400, 'mode', /./],
      ['to static', 'PATCH', segmentUrl('上海买家'), { kind: 'static' }, 409, 'kind', /cannot become static/],
    ];
    for (const [name, method, url, payload, status, field, message] of cases) {
      const res = await call(method, url, payload);
      expect(res.statusCode, name).toBe(status);
      expect(res.json().field, name).toMatch(new RegExp(`^${field.replace('.', '\\.')}`));
      expect(res.json().message, name).toMatch(message);
    }
    const syntax = (await call('POST', '/v1/segments', { key: 'x', name: 'x', kind: 'realtime', text: 'trait.city = "上海" and evnt("A").exists()' })).json();
    expect(syntax).toMatchObject({ error: 'invalid_segment_text', field: 'text', details: { line: 1, column: expect.any(Number) } });
    expect((await call('GET', segmentUrl('nope'))).statusCode).toBe(404);
    expect((await call('PATCH', segmentUrl('nope'), { name: 'x' })).statusCode).toBe(404);
    const anonymous = await t.app.inject({ method: 'GET', url: '/v1/segments' });
    expect(anonymous.statusCode).toBe(401);
  });

  it('manages a static list by identifier through the API, reporting unknown and invalid ones', async () => {
    const created = await call('POST', '/v1/segments', { key: 'vip-list', name: 'VIP list', kind: 'static', isTag: true });
    expect(created.statusCode).toBe(201);
    expect(created.json()).toMatchObject({ definition: null, text: null, state: 'ready', memberCount: 0, isTag: true });
    const res = await call('POST', segmentUrl('vip-list', '/members'), {
      mode: 'add',
      identifiers: [
        { type: 'phone', value: '+86 138 0013 8000' },
        { type: 'email', value: 'Zhang.San@Example.com' },
        { type: 'email', value: 'ghost@example.com' },
        { type: 'phone', value: '12' },
      ],
    });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ mode: 'add', received: 4, matched: 2, profiles: 2, entered: 2, exited: 0, memberCount: 2 });
    expect(res.json().unknown.map((u: { index: number }) => u.index)).toEqual([2]);
    expect(res.json().invalid.map((u: { index: number }) => u.index)).toEqual([3]);
    const tags = (await call('GET', `${profileUrl('user_id:u-1', '/segments')}?isTag=true`)).json().segments;
    expect(tags.map((s: { key: string }) => s.key)).toEqual(['vip-list']);
    const transitions = (await call('GET', segmentUrl('vip-list', '/transitions'))).json().items;
    expect(transitions.every((i: { cause: string }) => i.cause === 'list')).toBe(true);
  });

  it('archives a segment unless another uses it; archived ones leave the profile view', async () => {
    await call('POST', '/v1/segments', { key: 'vip-shanghai', name: 'x', kind: 'realtime', text: 'in_segment("vip-list") and trait.city = "上海"' });
    const refused = await call('DELETE', segmentUrl('vip-list'));
    expect(refused.statusCode).toBe(409);
    expect(refused.json()).toMatchObject({ error: 'segment_in_use', field: 'key', details: { usedBy: ['vip-shanghai'] } });
    expect((await call('DELETE', segmentUrl('vip-shanghai'))).json()).toMatchObject({ status: 'archived' });
    expect((await call('DELETE', segmentUrl('vip-list'))).statusCode).toBe(200);
    expect((await call('GET', `${profileUrl('user_id:u-1', '/segments')}?isTag=true`)).json().segments).toEqual([]);
    expect((await call('GET', '/v1/segments?status=archived')).json().items.map((s: { key: string }) => s.key).sort()).toEqual(['typos', 'vip-list', 'vip-shanghai']);
    expect((await call('PATCH', segmentUrl('vip-list'), { name: 'again' })).statusCode).toBe(409);
  });

  it('refreshes a static snapshot on request only', async () => {
    const created = (await call('POST', '/v1/segments', { key: 'snapshot', name: 'Guangzhou', kind: 'static', text: 'trait.city = "广州"' })).json();
    expect(created.memberCount).toBe(1);
    await send(t, t.writeKey, [{ type: 'identify', userId: 'u-2', traits: { city: '广州' }, messageId: 'i5', timestamp: '2026-02-28T10:00:00Z' }]);
    await drain(t);
    expect((await call('GET', segmentUrl('snapshot'))).json().memberCount).toBe(1);
    const refreshed = await call('POST', segmentUrl('snapshot', '/refresh'));
    expect(refreshed.statusCode).toBe(200);
    expect(refreshed.json()).toMatchObject({ segment: { memberCount: 2 }, computed: [{ key: 'snapshot', state: 'ready', entered: 1, exited: 0 }] });
  });

  it('reaches segments whose keys hold URL characters when the client encodes them', async () => {
    const key = 'vip/上海 50%?#';
    expect((await call('POST', '/v1/segments', { key, name: 'x', kind: 'static' })).statusCode).toBe(201);
    const res = await call('GET', segmentUrl(key));
    expect(res.statusCode).toBe(200);
    expect(res.json().key).toBe(key);
    expect((await call('GET', segmentUrl(key, '/members'))).json()).toEqual({ items: [], nextCursor: null });
  });

  it('documents the routes in OpenAPI under the segments tag', async () => {
    const spec = (await t.app.inject({ method: 'GET', url: '/openapi.json' })).json();
    for (const path of ['/v1/segments', '/v1/segments/preview', '/v1/segments/{key}', '/v1/segments/{key}/members', '/v1/segments/{key}/transitions', '/v1/profiles/{profile}/segments']) {
      const operations = Object.values(spec.paths[path] ?? {}) as Array<{ tags: string[] }>;
      expect(operations.length, path).toBeGreaterThan(0);
      for (const operation of operations) expect(operation.tags, path).toEqual(['segments']);
    }
  });
});
