import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveQueuedEvents } from '../../server/src/identity/resolver.ts';
import { storedEvents } from '../../server/test/collection-helpers.ts';
import { ADMIN_TOKEN, startTestApp, type TestApp } from '../../server/test/support/app.ts';
import { STORAGE_KEYS } from '../src/core/client.ts';
import type { DeliveryError } from '../src/core/types.ts';
import { createWechatClient, type WechatClient } from '../src/wechat/index.ts';
import { createWxShim, type WxShim } from './support/wx-shim.ts';

/**
 * The mini-program client on a `wx` shim whose requests reach a real Touchpoint server: a visit
 * with app and page lifecycle, a network outage and recovery, a restart that finds the queue on
 * disk, and a WeChat login. The server must store each event once, on one profile.
 */
describe('WeChat mini-program client through the wx shim', () => {
  let t: TestApp;
  let host: string;
  const errors: DeliveryError[] = [];

  beforeAll(async () => {
    t = await startTestApp();
    await t.app.listen({ port: 0, host: '127.0.0.1' });
    host = `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`;
  });
  afterAll(async () => t.close());

  const start = (shim: WxShim): WechatClient =>
    createWechatClient({ wx: shim.wx, writeKey: t.writeKey, host, flushAt: 100, flushIntervalMs: 20, retryBaseMs: 20, retryMaxMs: 100, onError: (e) => errors.push(e) });

  /** Registers the mini-program's App and pages the way app.js and each page's .js do. */
  function boot(shim: WxShim, client: WechatClient) {
    const calls: string[] = [];
    shim.App(client.wrapApp({ onLaunch: () => void calls.push('app.onLaunch'), globalData: { theme: 'dark' } }));
    for (const route of ['pages/index/index', 'pages/goods/goods', 'pages/cart/cart']) {
      shim.Page(route, client.wrapPage({ onShow: () => void calls.push(`${route}.onShow`) }));
    }
    return calls;
  }

  const stored = () => storedEvents(t, 'workspace_id = $1', [t.workspace.id]);
  const label = (row: { type: string; event: string | null; name: string | null }) => (row.type === 'track' ? row.event : row.type === 'screen' ? `screen ${row.name}` : row.type);

  it('delivers a visit once through an outage and a restart, on one profile with the openid', async () => {
    const firstRun = createWxShim({ networkType: '4g' });
    const client = start(firstRun);
    const calls = boot(firstRun, client);
    firstRun.launch({ path: 'pages/index/index', scene: 1001, query: { from: 'share' } });
    // The user's own hooks still run.
    expect(calls).toEqual(['app.onLaunch', 'pages/index/index.onShow']);
    await client.flush();
    expect((await stored()).map(label)).toEqual(['Application Opened', 'screen pages/index/index']);

    // Offline: events wait on the device (wx storage), retried with backoff.
    firstRun.goOffline();
    firstRun.navigateTo('pages/goods/goods', { id: '42' });
    client.track('Product Added', { sku: 'SKU-42' });
    await client.flush();
    expect(client.queued()).toBe(2);
    expect(firstRun.disk.has(STORAGE_KEYS.queue)).toBe(true);
    const failedAttempts = firstRun.sent.length;
    // The network comes back: the queue goes at once.
    firstRun.goOnline('wifi');
    await expect.poll(() => client.queued()).toBe(0);
    expect(firstRun.sent.length).toBeGreaterThan(failedAttempts);

    // Offline again, then WeChat kills the mini-program in the background.
    firstRun.goOffline();
    firstRun.navigateTo('pages/cart/cart');
    firstRun.background();
    await client.flush();
    expect(client.queued()).toBe(2);
    client.close();

    // Restart on the same phone: a new client reads the anonymous id and the queue from storage.
    const secondRun = createWxShim({ disk: firstRun.disk, networkType: 'wifi' });
    const restarted = start(secondRun);
    expect(restarted.user().anonymousId).toBe(client.user().anonymousId);
    boot(secondRun, restarted);
    secondRun.launch({ path: 'pages/index/index', scene: 1001 });
    await restarted.flush();
    // wx.login and the mini-program's own server gave the openid/unionid.
    restarted.setWechatIds({ openid: 'oABC-openid-1', unionid: 'uXYZ-union-1' });
    restarted.track('Order Completed', { revenue: 99 });
    await expect.poll(() => restarted.queued()).toBe(0);
    restarted.close();

    const rows = await stored();
    expect(rows.map(label)).toEqual([
      'Application Opened',
      'screen pages/index/index',
      'screen pages/goods/goods',
      'Product Added',
      'screen pages/cart/cart',
      'Application Backgrounded',
      // The cart page hid with the app: a page hide is no screen view.
      'Application Opened',
      'screen pages/index/index',
      'identify',
      'Order Completed',
    ]);
    expect(new Set(rows.map((row) => row.message_id)).size).toBe(rows.length);
    expect(new Set(rows.map((row) => row.anonymous_id))).toEqual(new Set([client.user().anonymousId]));
    expect(errors).toEqual([]);

    // Context: device from getSystemInfoSync, network type, the page's query.
    const goods = rows.find((row) => row.name === 'pages/goods/goods')!;
    expect(goods.properties).toEqual({ path: 'pages/goods/goods', query: { id: '42' } });
    const first = rows[0]!;
    expect(first.properties).toMatchObject({ from_background: false, path: 'pages/index/index', scene: 1001 });
    expect(first.context).toMatchObject({
      os: { name: 'iOS', version: '16.1' },
      device: { manufacturer: 'Apple', model: 'iPhone 14' },
      screen: { width: 390, height: 844, density: 3 },
      locale: 'zh_CN',
      library: { name: 'touchpoint-sdk' },
    });
    // wx.getNetworkType answers asynchronously, so the type is known from the first event after it
    // (not at launch); onNetworkStatusChange keeps it current.
    expect(first.context).not.toHaveProperty('network');
    expect(goods.context?.network).toEqual({ type: 'none', cellular: false, wifi: false });
    expect(rows[1]!.context).not.toHaveProperty('network');
    expect(rows.find((row) => row.name === 'pages/cart/cart')!.context?.network).toEqual({ type: 'none', cellular: false, wifi: false });
    expect(rows.at(-1)!.context?.network).toEqual({ type: 'wifi', cellular: false, wifi: true });
    const identify = rows.find((row) => row.type === 'identify')!;
    expect(identify.context?.externalIds).toEqual([
      { id: 'oABC-openid-1', type: 'wechat_openid', collection: 'users', encoding: 'none' },
      { id: 'uXYZ-union-1', type: 'wechat_unionid', collection: 'users', encoding: 'none' },
    ]);
    // Every request carried the write key as the Basic username.
    const posts = [...firstRun.sent, ...secondRun.sent].filter((r) => r.method === 'POST');
    expect(posts.every((r) => r.header.authorization === `Basic ${Buffer.from(`${t.writeKey}:`).toString('base64')}`)).toBe(true);

    // Identity: one profile holds the anonymous id and both WeChat ids.
    while ((await resolveQueuedEvents(t.db, t.workspace.id)) > 0);
    const { rows: identifiers } = await t.db.query<{ profile_id: string; type: string; value: string }>(
      `select profile_id, type, value from profile_identifiers where workspace_id = $1 and unbound_at is null order by type`,
      [t.workspace.id],
    );
    expect(identifiers.map(({ type, value }) => ({ type, value }))).toEqual([
      { type: 'anonymous_id', value: client.user().anonymousId },
      { type: 'wechat_openid', value: 'oABC-openid-1' },
      { type: 'wechat_unionid', value: 'uXYZ-union-1' },
    ]);
    expect(new Set(identifiers.map((row) => row.profile_id)).size).toBe(1);
  });

  it('works without device info when getSystemInfoSync throws, and refuses setWechatIds without ids', async () => {
    const shim = createWxShim({
      system: () => {
        throw new Error('getSystemInfoSync:fail');
      },
    });
    const client = start(shim);
    client.track('No Device');
    await client.flush();
    const row = (await stored()).find((r) => r.event === 'No Device')!;
    expect(row.context).not.toHaveProperty('device');
    expect(row.context).toHaveProperty('library');
    expect(() => client.setWechatIds({})).toThrow(/openid or a unionid/);
    client.close();
  });

  it('asks for the visitor\'s segments through wx.request, and falls back when offline', async () => {
    const shim = createWxShim();
    const client = start(shim);
    expect(await client.getProfileSegments({ timeoutMs: 5_000, fallback: ['fallback'] })).toEqual([]);
    const asked = shim.sent.find((r) => r.url.includes('/v1/visitor/segments'))!;
    expect(asked.url).toBe(`${host}/v1/visitor/segments?anonymousId=${client.user().anonymousId}`);
    shim.goOffline();
    expect(await client.getProfileSegments({ timeoutMs: 5_000, fallback: ['fallback'] })).toEqual(['fallback']);
    expect(await client.getDecision('home', { timeoutMs: 5_000, fallback: 'default' })).toBe('default');
    client.close();
  });
  it('holds a visit on the phone while the workspace requires consent, through a failed settings fetch and a restart, then delivers it once', async () => {
    const consentWorkspace = await t.addWorkspace('mini-consent');
    await t.app.inject({
      method: 'PATCH',
      url: '/admin/workspaces/mini-consent/collection-settings',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      payload: { requireConsent: true, consentCategories: ['analytics'] },
    });
    const startConsent = (shim: WxShim) =>
      createWechatClient({ wx: shim.wx, writeKey: consentWorkspace.writeKey, host, flushIntervalMs: 20, retryBaseMs: 20, retryMaxMs: 100 });
    const storedHere = () => storedEvents(t, 'workspace_id = $1', [consentWorkspace.workspace.id]);

    const firstRun = createWxShim();
    const client = startConsent(firstRun);
    boot(firstRun, client);
    firstRun.launch({ path: 'pages/index/index', scene: 1001 });
    await client.flush();
    expect(await client.getProfileSegments({ timeoutMs: 5_000, fallback: ['held'] })).toEqual(['held']);
    // Only the settings question left the phone, with the write key as on batches.
    expect(firstRun.sent.map((r) => `${r.method} ${new URL(r.url).pathname}`)).toEqual(['GET /v1/sdk/settings']);
    expect(firstRun.sent[0]!.header.authorization).toBe(`Basic ${Buffer.from(`${consentWorkspace.writeKey}:`).toString('base64')}`);
    client.close();

    // Restart offline: the settings cannot be fetched, the last answer (required) keeps the gate closed.
    const secondRun = createWxShim({ disk: firstRun.disk });
    secondRun.goOffline();
    const restarted = startConsent(secondRun);
    boot(secondRun, restarted);
    secondRun.launch({ path: 'pages/index/index', scene: 1001 });
    await restarted.flush();
    expect(restarted.queued()).toBe(4);
    expect(secondRun.sent.every((r) => r.method === 'GET')).toBe(true);
    secondRun.goOnline('wifi');
    restarted.setConsent({ analytics: true });
    await expect.poll(() => restarted.queued()).toBe(0);
    restarted.close();

    const rows = await storedHere();
    expect(rows.map(label)).toEqual(['Application Opened', 'screen pages/index/index', 'Application Opened', 'screen pages/index/index', 'identify']);
    expect(new Set(rows.map((row) => row.message_id)).size).toBe(rows.length);
    expect(rows.every((row) => (row.context?.consent as { categoryPreferences: unknown }).categoryPreferences !== undefined)).toBe(true);
  });
});
