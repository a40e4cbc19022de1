import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { trainDueRecommendations } from '../src/decisioning/recommend/train.ts';
import { drain, send, serverKey } from './profiles-support.ts';
import { startTestApp, type TestApp } from './support/app.ts';

/**
 * The catalogue import, training from purchase/view events and recommendation contents served
 * through decide, on a real database. Shoppers who bought a tent also bought a stove; u-new has
 * only viewed a tent; u-stove already owns a stove.
 */
describe('recommendations through the API', () => {
  let t: TestApp;
  let key: string;
  type Res = { statusCode: number; json: () => any }; // eslint-disable-line @typescript-eslint/no-explicit-any
  const api = (method: 'GET' | 'POST', url: string, payload?: object | string, contentType?: string): Promise<Res> =>
    t.app.inject({
      method,
      url,
      headers: { authorization: `Bearer ${key}`, ...(contentType ? { 'content-type': contentType } : {}) },
      ...(payload === undefined ? {} : { payload }),
    }) as Promise<Res>;
  const ago = (days: number) => new Date(Date.now() - days * 86_400_000).toISOString();

  beforeAll(async () => {
    t = await startTestApp();
    key = await serverKey(t);
  });
  afterAll(async () => t.close());

  it('imports the catalogue as CSV, NDJSON or JSON and reports bad lines', async () => {
    const csv = ['itemId,name,category,inStock,brand,tags', 'tent,Tent,outdoor,true,north,camping|family', 'stove,Stove,outdoor,yes,north,camping', 'lamp,Lamp,outdoor,0,south,', ',Nameless,outdoor,true,x,', 'tarp,Tarp,outdoor,maybe,north,'].join('\n');
    const imported = await api('POST', '/v1/decisioning/items', csv, 'text/csv');
    expect(imported.statusCode).toBe(200);
    expect(imported.json()).toEqual({
      imported: 3,
      rejected: [
        { line: 5, field: 'itemId', message: 'Each item needs an itemId (or id, product_id, sku)' },
        { line: 6, field: 'inStock', message: 'inStock must be true/false (or 1/0, yes/no)' },
      ],
    });
    const ndjson = '{"id":"novel","name":"Novel","category":"books","genre":["fiction"]}\n\nnot json\n{"id":"tarp","name":"Tarp","category":"outdoor","brand":"north"}\n';
    expect((await api('POST', '/v1/decisioning/items', ndjson, 'application/x-ndjson')).json()).toEqual({ imported: 2, rejected: [{ line: 3, field: 'item', message: 'Not a JSON object' }] });
    expect((await api('POST', '/v1/decisioning/items', [{ itemId: 'poems', category: 'books', attributes: { genre: ['poetry'] } }])).json()).toEqual({ imported: 1, rejected: [] });
    expect((await api('POST', '/v1/decisioning/items', { nothing: true })).json()).toMatchObject({ error: 'invalid_request', field: 'items' });
    expect((await api('POST', '/v1/decisioning/items', 'a,b\n"unclosed', 'text/csv')).json()).toMatchObject({ error: 'invalid_csv' });
    const { rows } = await t.db.query('select item_id, in_stock, attributes from decision_items where workspace_id = $1 order by item_id', [t.workspace.id]);
    expect(rows).toContainEqual({ item_id: 'tent', in_stock: true, attributes: { brand: 'north', tags: ['camping', 'family'] } });
    expect(rows).toContainEqual({ item_id: 'lamp', in_stock: false, attributes: { brand: 'south' } });
  });

  it('trains from Order Completed / Product Viewed events and serves filtered recommendations through decide', async () => {
    const orders = ['u1', 'u2', 'u3'].flatMap((userId, i) => [
      { type: 'track', userId, event: 'Order Completed', properties: { products: [{ product_id: 'tent' }, { product_id: 'stove' }, { product_id: 'lamp' }] }, messageId: `o-${i}`, timestamp: ago(2) },
    ]);
    await send(t, t.writeKey, [
      ...orders,
      { type: 'track', userId: 'u4', event: 'Order Completed', properties: { products: [{ product_id: 'novel' }] }, messageId: 'o-4', timestamp: ago(1) },
      { type: 'track', userId: 'u5', event: 'Order Completed', properties: { products: [{ product_id: 'novel' }] }, messageId: 'o-5', timestamp: ago(1) },
      { type: 'track', userId: 'u-new', event: 'Product Viewed', properties: { product_id: 'tent' }, messageId: 'v-1', timestamp: ago(1) },
      { type: 'track', userId: 'u-stove', event: 'Order Completed', properties: { products: [{ product_id: 'stove' }] }, messageId: 'o-6', timestamp: ago(1) },
    ]);
    await drain(t);
    expect((await api('GET', '/v1/decisioning/recommendations/model')).statusCode).toBe(404);
    const placement = await api('POST', '/v1/placements', {
      key: 'product_detail_recs',
      name: 'You may also like',
      policy: 'rules',
      contents: [{ key: 'recs', payload: { title: 'You may also like' }, recommendations: { algorithm: 'item_knn', count: 3 } }],
    });
    expect(placement.statusCode).toBe(201);
    // The schedule trains workspaces with items or recommendation contents and no fresh model.
    expect(await trainDueRecommendations(t.db, new Date())).toBe(1);
    expect(await trainDueRecommendations(t.db, new Date())).toBe(0);
    const model = (await api('GET', '/v1/decisioning/recommendations/model')).json();
    expect(model).toMatchObject({ interactions: 3 * 3 + 2 + 1 + 1, profiles: 7 });

    const forNew = (await api('GET', '/v1/decide?placement=product_detail_recs&profile=user_id:u-new')).json();
    expect(forNew.content.recommendedBy).toBe('item_knn');
    const items = forNew.content.items.map((i: { itemId: string }) => i.itemId);
    // Bought with tents: the stove; the lamp is out of stock; the tent itself was viewed already.
    expect(items[0]).toBe('stove');
    expect(items).not.toContain('lamp');
    expect(items).not.toContain('tent');
    expect(forNew.content.items[0]).toMatchObject({ itemId: 'stove', name: 'Stove', category: 'outdoor', attributes: { brand: 'north' } });

    const forOwner = (await api('GET', '/v1/decide?placement=product_detail_recs&profile=user_id:u-stove')).json();
    expect(forOwner.content.items.map((i: { itemId: string }) => i.itemId)).not.toContain('stove');
    // A visitor never seen gets popular items (cold start), still in stock.
    const stranger = (await api('GET', '/v1/decide?placement=product_detail_recs&profile=email:who@example.com')).json();
    expect(stranger.content.recommendedBy).toBe('popular');
    expect(stranger.content.items.length).toBe(3);
    expect(stranger.content.items.map((i: { itemId: string }) => i.itemId)).not.toContain('lamp');

    // A category filter and a different algorithm, after an edit.
    await t.app.inject({
      method: 'PATCH',
      url: '/v1/placements/product_detail_recs',
      headers: { authorization: `Bearer ${key}` },
      payload: { contents: [{ key: 'recs', recommendations: { algorithm: 'popular', count: 5, category: 'books' } }] },
    });
    const books = (await api('GET', '/v1/decide?placement=product_detail_recs&profile=user_id:u-new')).json();
    expect(books.content.items.map((i: { itemId: string }) => i.itemId).sort()).toEqual(['novel']);

    // Clicking a recommended item is reported with the item.
    const reported = await api('POST', `/v1/decisions/${books.decisionId}/events`, { type: 'click', itemId: 'novel' });
    expect(reported.json()).toMatchObject({ recorded: true });
    const { rows } = await t.db.query(`select properties from events where workspace_id = $1 and event = 'Decision Clicked'`, [t.workspace.id]);
    expect(rows[0]).toMatchObject({ properties: { item_id: 'novel', content_id: 'recs' } });
  });
});
