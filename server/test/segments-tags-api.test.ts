import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { drainSegmentQueue } from '../src/segments/realtime.ts';
import { TAG_LIBRARY } from '../src/segments/tags/library.ts';
import { drain, profileUrl, send, serverKey } from './profiles-support.ts';
import { startTestApp, type TestApp } from './support/app.ts';

const T = Date.parse('2026-03-01T00:00:00Z');
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const iso = (ms: number) => new Date(ms).toISOString();

const order = (id: string, userId: string, at: number, revenue: number) => ({
  type: 'track',
  event: 'Order Completed',
  userId,
  properties: { revenue },
  messageId: id,
  timestamp: iso(at),
});
const cartAdd = (id: string, userId: string, at: number) => ({ type: 'track', event: 'Product Added', userId, properties: { sku: 'S-1' }, messageId: id, timestamp: iso(at) });

/**
 * Behaviour tags through the HTTP API on data sent through the collection API and resolved by
 * identity: Li Lei (u-1) bought for 1,100 this year; Zhang San (u-2) added to cart and bought an
 * hour later for 300; Wang (u-3) added to cart 30 hours ago and never bought. The server clock is
 * fixed and moved by hand; the real-time worker's drain runs at that clock.
 */
describe('behaviour tags API', () => {
  let t: TestApp;
  let clock = new Date(T);
  type Method = 'GET' | 'POST' | 'DELETE';
  let call: (method: Method, url: string, payload?: object) => Promise<LightMyRequestResponse>;

  const tagsOf = async (ref: string) => (await call('GET', profileUrl(ref))).json().tags as Array<{ key: string; name: string; enteredAt: string }>;
  const drainSegments = async () => {
    for (let round = 0; round < 20; round++) if ((await drainSegmentQueue(t.db, { now: clock })) === 0) return;
    throw new Error('the segment drain did not settle');
  };

  beforeAll(async () => {
    t = await startTestApp({ now: () => clock });
    const key = await serverKey(t);
    call = (method, url, payload) =>
      t.app.inject({ method, url, headers: { authorization: `Bearer ${key}` }, ...(payload === undefined ? {} : { payload }) });
    await send(t, t.writeKey, [
      { type: 'identify', userId: 'u-1', traits: { name: 'Li Lei' }, messageId: 'i1', timestamp: iso(T - 60 * DAY) },
      order('o1', 'u-1', T - 50 * DAY, 600),
      order('o2', 'u-1', T - 10 * DAY, 500),
      cartAdd('c2', 'u-2', T - 40 * HOUR),
      order('o3', 'u-2', T - 39 * HOUR, 300),
      cartAdd('c3', 'u-3', T - 30 * HOUR),
    ]);
    await drain(t);
  });
  afterAll(async () => t.close());

  it('lists the library in English and in Chinese, with parameters', async () => {
    const en = await call('GET', '/v1/tags/library?locale=en');
    expect(en.statusCode).toBe(200);
    expect(en.json().locale).toBe('en');
    expect(en.json().items.map((item: { template: string }) => item.template)).toEqual(TAG_LIBRARY.map((entry) => entry.template));
    const highValue = en.json().items.find((item: { template: string }) => item.template === 'high_value');
    expect(highValue).toMatchObject({
      name: 'High value (≥ {threshold})',
      parameters: [
        { name: 'threshold', type: 'number', default: 1000, min: 0, description: 'Minimum total revenue' },
        { name: 'period', type: 'duration', default: '365d', description: 'Period the revenue is summed over' },
      ],
      exampleText: 'event("Order Completed").sum(revenue, within 365d) >= 1000',
    });

    const zh = (await call('GET', '/v1/tags/library?locale=zh-CN')).json();
    expect(zh.locale).toBe('zh-CN');
    const cart = zh.items.find((item: { template: string }) => item.template === 'cart_abandoned');
    expect(cart).toMatchObject({ name: '加购未下单', parameters: [{ name: 'wait', default: '24h', description: '加购后的下单等待时长' }, { name: 'period' }] });
    expect(zh.items.find((item: { template: string }) => item.template === 'birthday_soon').parameters[0].units).toEqual(['days', 'weeks']);

    expect((await call('GET', '/v1/tags/library')).json().locale).toBe('en');
    const badLocale = await call('GET', '/v1/tags/library?locale=fr');
    expect(badLocale.statusCode).toBe(400);
    expect(badLocale.json().field).toBe('locale');
    expect((await t.app.inject({ method: 'GET', url: '/v1/tags/library' })).statusCode).toBe(401);
  });

  it('switches on "high value" with a threshold and "added to cart, did not buy" with defaults; both are computed at once', async () => {
    const high = await call('POST', '/v1/tags', { template: 'high_value', parameters: { threshold: 800 } });
    expect(high.statusCode).toBe(201);
    expect(high.json()).toMatchObject({
      name: 'High value (≥ 800)',
      description: 'Order revenue over the period adds up to at least the threshold (sum of Order Completed revenue).',
      template: 'high_value',
      kind: 'realtime',
      status: 'active',
      state: 'ready',
      memberCount: 1,
      parameters: { threshold: 800, period: '365d' },
      restored: false,
      text: 'event("Order Completed").sum(revenue, within 365d) >= 800',
    });
    expect(high.json().key).toMatch(/^high_value-800-365d-[0-9a-f]{8}$/);

    const cart = await call('POST', '/v1/tags', { template: 'cart_abandoned', locale: 'zh-CN' });
    expect(cart.statusCode).toBe(201);
    expect(cart.json()).toMatchObject({ key: 'cart_abandoned', name: '加购未下单', memberCount: 1, parameters: { wait: '24h', period: '7d' } });

    // Underneath they are tag segments, visible to the segments API too.
    const segment = (await call('GET', `/v1/segments/${encodeURIComponent(high.json().key)}`)).json();
    expect(segment).toMatchObject({ isTag: true, template: 'high_value', kind: 'realtime' });

    expect(await tagsOf('user_id:u-1')).toEqual([{ key: high.json().key, name: 'High value (≥ 800)', enteredAt: iso(T) }]);
    expect(await tagsOf('user_id:u-2')).toEqual([]);
    expect(await tagsOf('user_id:u-3')).toEqual([{ key: 'cart_abandoned', name: '加购未下单', enteredAt: iso(T) }]);

    const list = (await call('GET', '/v1/tags')).json();
    expect(list.items.map((tag: { key: string; memberCount: number }) => [tag.key, tag.memberCount])).toEqual([
      ['cart_abandoned', 1],
      [high.json().key, 1],
    ]);
  });

  it('keeps tags fresh as events arrive: the identity and segment drains move profiles in, and a cart wait ends on its own', async () => {
    const highKey = (await call('GET', '/v1/tags')).json().items.find((tag: { template: string }) => tag.template === 'high_value').key;
    clock = new Date(T + HOUR);
    await send(t, t.writeKey, [order('o4', 'u-2', T + HOUR, 600), cartAdd('c5', 'u-5', T + HOUR)]);
    await drain(t);
    await drainSegments();
    expect(await tagsOf('user_id:u-2')).toEqual([{ key: highKey, name: 'High value (≥ 800)', enteredAt: iso(T + HOUR) }]);
    // u-5's 24 hours to buy have not passed yet.
    expect(await tagsOf('user_id:u-5')).toEqual([]);

    clock = new Date(T + 25 * HOUR);
    await drainSegments();
    expect(await tagsOf('user_id:u-5')).toEqual([{ key: 'cart_abandoned', name: '加购未下单', enteredAt: iso(T + 25 * HOUR) }]);
    const counts = (await call('GET', '/v1/tags')).json().items.map((tag: { key: string; memberCount: number }) => [tag.key, tag.memberCount]);
    expect(counts).toEqual([
      ['cart_abandoned', 2],
      [highKey, 2],
    ]);
  });

  it('refuses bad templates, parameters and keys with the field at fault', async () => {
    const cases: Array<[string, object, string, RegExp]> = [
      ['unknown template', { template: 'high_valu' }, 'template', /did you mean "high_value"/],
      ['negative threshold', { template: 'high_value', parameters: { threshold: -1 } }, 'parameters.threshold', /at least 0/],
      ['threshold as text', { template: 'high_value', parameters: { threshold: '800' } }, 'parameters.threshold', /expected a number/],
      ['bad duration', { template: 'cart_abandoned', parameters: { wait: '24 hours' } }, 'parameters.wait', /duration such as/],
      ['unknown parameter', { template: 'cart_abandoned', parameters: { category: 'Shoes' } }, 'parameters.category', /no parameter "category"/],
      ['fractional orders', { template: 'repeat_buyer', parameters: { min_orders: 2.5 } }, 'parameters.min_orders', /whole number/],
      ['bad key', { template: 'repeat_buyer', key: 'a"b' }, 'key', /./],
      ['unknown field', { template: 'repeat_buyer', colour: 'red' }, 'colour', /./],
      ['no template', { parameters: {} }, 'template', /./],
    ];
    for (const [name, payload, field, message] of cases) {
      const res = await call('POST', '/v1/tags', payload);
      expect(res.statusCode, name).toBe(400);
      expect(res.json().field, name).toBe(field);
      expect(res.json().message, name).toMatch(message);
    }
    expect((await call('GET', '/v1/tags')).json().items).toHaveLength(2);
  });

  it('refuses the same template and parameters twice with 409 naming the key that has them', async () => {
    const highKey = (await call('GET', '/v1/tags')).json().items.find((tag: { template: string }) => tag.template === 'high_value').key;
    const attempts: object[] = [
      { template: 'high_value', parameters: { threshold: 800 } },
      // The default spelled out, another key and another name: still the same tag.
      { template: 'high_value', parameters: { threshold: 800, period: '365d' }, key: 'big-spenders', name: 'Big spenders' },
    ];
    for (const payload of attempts) {
      const res = await call('POST', '/v1/tags', payload);
      expect(res.statusCode).toBe(409);
      expect(res.json()).toMatchObject({ error: 'tag_exists', field: 'template', details: { key: highKey } });
    }
    expect((await call('POST', '/v1/tags', { template: 'cart_abandoned', parameters: { wait: '24h' } })).json()).toMatchObject({
      error: 'tag_exists',
      details: { key: 'cart_abandoned' },
    });
    // Other parameters are another tag; a key another segment has is a plain key conflict.
    const other = await call('POST', '/v1/tags', { template: 'high_value', parameters: { threshold: 1000 } });
    expect(other.statusCode).toBe(201);
    expect(other.json()).toMatchObject({ key: 'high_value', memberCount: 1 });
    await call('POST', '/v1/segments', { key: 'shanghai', name: 'Shanghai', kind: 'realtime', text: 'trait.city = "上海"' });
    const taken = await call('POST', '/v1/tags', { template: 'repeat_buyer', key: 'shanghai' });
    expect(taken.statusCode).toBe(409);
    expect(taken.json()).toMatchObject({ error: 'conflict', field: 'key' });
    expect((await call('GET', '/v1/tags')).json().items.map((tag: { key: string }) => tag.key)).not.toContain('shanghai');
  });

  it('switches a tag off (refused while a segment uses it), and on again under its key', async () => {
    await call('POST', '/v1/segments', { key: 'vip-carts', name: 'VIP carts', kind: 'realtime', text: 'in_segment("cart_abandoned") and in_segment("high_value")' });
    const refused = await call('DELETE', '/v1/tags/cart_abandoned');
    expect(refused.statusCode).toBe(409);
    expect(refused.json()).toMatchObject({ error: 'segment_in_use', details: { usedBy: ['vip-carts'] } });
    expect((await call('DELETE', '/v1/segments/vip-carts')).statusCode).toBe(200);

    const off = await call('DELETE', '/v1/tags/cart_abandoned');
    expect(off.statusCode).toBe(200);
    expect(off.json()).toMatchObject({ key: 'cart_abandoned', status: 'archived' });
    expect((await call('GET', '/v1/tags')).json().items.map((tag: { key: string }) => tag.key)).not.toContain('cart_abandoned');
    expect(await tagsOf('user_id:u-3')).toEqual([]);
    expect((await call('DELETE', '/v1/tags/shanghai')).json()).toMatchObject({ error: 'not_found', field: 'key' });
    expect((await call('DELETE', '/v1/tags/nope')).statusCode).toBe(404);

    // While the tag is off, u-6's cart addition arrives, and so does u-5's order, late, from an hour
    // after the cart. Switched on again under its key, the tag is recomputed from what it had.
    clock = new Date(T + 26 * HOUR);
    await send(t, t.writeKey, [cartAdd('c6', 'u-6', T + HOUR), order('o5', 'u-5', T + 2 * HOUR, 10)]);
    await drain(t);
    const on = await call('POST', '/v1/tags', { template: 'cart_abandoned' });
    expect(on.statusCode).toBe(201);
    expect(on.json()).toMatchObject({ key: 'cart_abandoned', name: 'Added to cart, did not buy', status: 'active', state: 'ready', restored: true, memberCount: 2 });
    expect(await tagsOf('user_id:u-3')).toEqual([{ key: 'cart_abandoned', name: 'Added to cart, did not buy', enteredAt: iso(T) }]);
    expect(await tagsOf('user_id:u-5')).toEqual([]);
    expect(await tagsOf('user_id:u-6')).toEqual([{ key: 'cart_abandoned', name: 'Added to cart, did not buy', enteredAt: iso(T + 26 * HOUR) }]);
    const { rows } = await t.db.query<{ transition: string; cause: string }>(
      `select t.transition, t.cause from segment_transitions t join segments s on s.workspace_id = t.workspace_id and s.id = t.segment_id
        where s.key = 'cart_abandoned' and t.at = $1 order by t.transition`,
      [clock],
    );
    expect(rows).toEqual([
      { transition: 'entered', cause: 'compute' },
      { transition: 'exited', cause: 'compute' },
    ]);
  });

  it('documents the routes in OpenAPI under the tags tag, and the profile\'s tags', async () => {
    const spec = (await t.app.inject({ method: 'GET', url: '/openapi.json' })).json();
    for (const path of ['/v1/tags/library', '/v1/tags', '/v1/tags/{key}']) {
      const operations = Object.values(spec.paths[path] ?? {}) as Array<{ tags: string[] }>;
      expect(operations.length, path).toBeGreaterThan(0);
      for (const operation of operations) expect(operation.tags, path).toEqual(['tags']);
    }
    const profile = spec.paths['/v1/profiles/{profile}'].get.responses['200'].content['application/json'].schema;
    expect(profile.properties.tags.items.required).toEqual(['key', 'name', 'enteredAt']);
  });
});
