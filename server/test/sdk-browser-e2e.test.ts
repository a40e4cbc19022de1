import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isPiiToken, isSealedValue, openPii } from '../src/privacy/pii-codec.ts';
import { openStoredEvents, storedEvents } from './collection-helpers.ts';
import { drain } from './profiles-support.ts';
import { ADMIN_TOKEN, startTestApp, type TestApp } from './support/app.ts';

const CHROMIUM = '/usr/bin/chromium';
const hasChromium = existsSync(CHROMIUM);
if (!hasChromium) console.warn(`sdk-browser-e2e: skipped because ${CHROMIUM} is absent (.ci/run installs it with apt-get install -y chromium)`);

/** An SPA on its own origin (so the SDK posts cross-origin, as on a customer's site); every path serves it. */
function testPage(serverUrl: string, writeKey: string): string {
  return `<!doctype html><html><head><title>Shop</title>
<script src="${serverUrl}/sdk/touchpoint.js"></script>
<script>
  touchpoint.init({ writeKey: ${JSON.stringify(writeKey)}, host: ${JSON.stringify(serverUrl)}, trackClicks: true,
    flushIntervalMs: 100, retryBaseMs: 100, retryMaxMs: 400 });
  function go(path, title) { document.title = title; history.pushState({}, '', path); }
</script></head>
<body><a id="pricing" href="/pricing" onclick="event.preventDefault(); go('/pricing', 'Pricing')">Pricing</a>
<button id="gold" data-tp-track="Plan Selected" data-tp-prop-plan-name="gold">Gold</button></body></html>`;
}

/** Serves the test SPA on its own origin (so its localStorage is its own) for one write key. */
async function startSite(serverUrl: string, writeKey: string): Promise<{ site: Server; siteUrl: string }> {
  const site = createServer((_request, response) => {
    response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(testPage(serverUrl, writeKey));
  });
  await new Promise<void>((resolve) => site.listen(0, '127.0.0.1', resolve));
  return { site, siteUrl: `http://127.0.0.1:${(site.address() as AddressInfo).port}` };
}

describe.skipIf(!hasChromium)('browser SDK end to end in Chromium', () => {
  let t: TestApp;
  let site: Server;
  let browser: Browser;
  let page: Page;
  let serverUrl: string;
  let siteUrl: string;

  beforeAll(async () => {
    t = await startTestApp();
    serverUrl = await t.app.listen({ port: 0, host: '127.0.0.1' });
    ({ site, siteUrl } = await startSite(serverUrl, t.writeKey));
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    });
    page = await browser.newPage();
    // Request interception does not see sendBeacon, and a keepalive fetch still in flight when the
    // page reloads can slip past it too (seen once in CI): while "offline", both fail in the page
    // as they would without a network.
    await page.addInitScript(goOfflineInPage);
  });

  afterAll(async () => {
    await browser?.close();
    await new Promise((resolve) => site?.close(resolve));
    await t?.close();
  });

  /** In the page: while localStorage says offline, the collection API cannot be reached by fetch or beacon. */
  function goOfflineInPage() {
    if (!localStorage.getItem('test_offline')) return;
    navigator.sendBeacon = () => false;
    const online = window.fetch.bind(window);
    window.fetch = (input: RequestInfo | URL, init?: RequestInit) =>
      localStorage.getItem('test_offline') && String(input instanceof Request ? input.url : input).includes('/v1/')
        ? Promise.reject(new TypeError('Failed to fetch'))
        : online(input, init);
  }

  const flush = () => page.evaluate(() => (window as unknown as { touchpoint: { flush(): Promise<void> } }).touchpoint.flush());
  const eventCount = async () => (await storedEvents(t)).length;

  it('delivers every event exactly once, in order, through navigation, an offline period and reloads, onto one profile', async () => {
    const script = await fetch(`${serverUrl}/sdk/touchpoint.js`, { headers: { 'accept-encoding': 'identity' } });
    expect(script.headers.get('content-type')).toBe('application/javascript; charset=utf-8');
    expect(await script.text()).toContain('touchpoint');

    await page.goto(`${siteUrl}/`);
    await page.click('#pricing');
    await page.click('#gold');
    await flush();
    expect(await eventCount()).toBe(3);

    // Offline for the collection API only: the page itself still loads.
    await page.context().route(`${serverUrl}/v1/**`, (route) => route.abort('internetdisconnected'));
    await page.evaluate(() => localStorage.setItem('test_offline', '1'));
    await page.evaluate(goOfflineInPage);
    await page.evaluate(() => {
      const tp = (window as unknown as { touchpoint: { track(name: string): void } }).touchpoint;
      tp.track('Offline A');
      history.pushState({}, '', '/checkout');
      tp.track('Offline B');
    });
    await flush();
    // The queue survives a reload while still offline; the reload's page view joins it.
    await page.reload();
    await flush();
    expect(await eventCount()).toBe(3);
    expect(await page.evaluate(() => JSON.parse(localStorage.getItem('tp_queue') ?? '[]').length)).toBe(4);

    await page.context().unroute(`${serverUrl}/v1/**`);
    await page.evaluate(() => localStorage.removeItem('test_offline'));
    await flush();
    expect(await eventCount()).toBe(7);

    await page.evaluate(() => {
      const tp = (window as unknown as { touchpoint: { identify(id: string, traits: object, options: object): void; track(name: string): void } }).touchpoint;
      tp.identify('user-42', { name: 'Li Lei' }, { identifiers: { phone: '+86 138 0013 8000' } });
      tp.track('Order Completed');
    });
    await flush();
    await page.reload();
    await flush();

    // PII fields (context.externalIds[].id of phone, traits.name) are sealed at ingest (privacy/pii-codec.ts).
    const stored = await storedEvents(t);
    expect(isSealedValue((stored[7]!.context!.externalIds as { id: unknown }[])[0]!.id)).toBe(true);
    const events = await openStoredEvents(t, stored);
    expect(events.map((e) => `${e.type}:${e.event ?? e.name ?? (e.properties?.path as string | undefined) ?? ''}`)).toEqual([
      'page:/',
      'page:/pricing',
      'track:Plan Selected',
      'track:Offline A',
      'page:/checkout',
      'track:Offline B',
      'page:/checkout',
      'identify:',
      'track:Order Completed',
      'page:/checkout',
    ]);
    // Stored in the order they happened (seq), and each once.
    const times = events.map((e) => Date.parse(e.timestamp));
    expect([...times].sort((a, b) => a - b)).toEqual(times);
    expect(new Set(events.map((e) => e.message_id)).size).toBe(events.length);

    const [first] = events;
    expect(first!.context).toMatchObject({
      library: { name: 'touchpoint-sdk' },
      page: { path: '/', url: `${siteUrl}/`, title: 'Shop' },
      timezone: expect.any(String),
      locale: expect.any(String),
      userAgent: expect.stringContaining('Chrome'),
      screen: { width: expect.any(Number), height: expect.any(Number) },
      sessionId: expect.any(Number),
    });
    expect(events[1]!.context!.page).toMatchObject({ path: '/pricing', title: 'Pricing', referrer: `${siteUrl}/` });
    expect(events[2]!.properties).toEqual({ plan_name: 'gold' });
    expect(new Set(events.map((e) => e.anonymous_id)).size).toBe(1);
    expect(new Set(events.map((e) => e.context!.sessionId)).size).toBe(1);
    expect(events[7]!.context!.externalIds).toEqual([{ id: '+86 138 0013 8000', type: 'phone', collection: 'users', encoding: 'none' }]);
    expect(events.slice(7).every((e) => e.user_id === 'user-42')).toBe(true);

    await drain(t);
    const { rows } = await t.db.query<{ profile_id: string; type: string; value: string }>(
      `select profile_id, type, value from profile_identifiers where workspace_id = $1 and unbound_at is null order by type`,
      [t.workspace.id],
    );
    expect(new Set(rows.map((row) => row.profile_id)).size).toBe(1);
    // The phone identifier is stored as a keyed-hash token, opened through the vault.
    expect(isPiiToken(rows.find((row) => row.type === 'phone')?.value)).toBe(true);
    expect((await openPii(t.db, t.workspace.id, rows)).map((row) => [row.type, row.value])).toEqual(
      expect.arrayContaining([
        ['anonymous_id', first!.anonymous_id],
        ['phone', '+8613800138000'],
        ['user_id', 'user-42'],
      ]),
    );
  });
  it('holds everything on the page while the workspace requires consent, then delivers it once, in order, under the consent', async () => {
    const consentWorkspace = await t.addWorkspace('consent-required');
    const configured = await t.app.inject({
      method: 'PATCH',
      url: '/admin/workspaces/consent-required/collection-settings',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      payload: { requireConsent: true, consentCategories: ['analytics'] },
    });
    expect(configured.statusCode).toBe(200);
    const other = await startSite(serverUrl, consentWorkspace.writeKey);
    const context = await browser.newContext();
    try {
      const consentPage = await context.newPage();
      const requests: string[] = [];
      consentPage.on('request', (request) => {
        if (request.url().startsWith(`${serverUrl}/v1/`)) requests.push(`${request.method()} ${new URL(request.url()).pathname}`);
      });
      const flushPage = () => consentPage.evaluate(() => (window as unknown as { touchpoint: { flush(): Promise<void> } }).touchpoint.flush());
      const stored = () => storedEvents(t, 'workspace_id = $1', [consentWorkspace.workspace.id]);

      await consentPage.goto(`${other.siteUrl}/`);
      await consentPage.click('#pricing');
      await consentPage.click('#gold');
      await flushPage();
      // Held on the device through a reload, and nothing but the settings question went out.
      await consentPage.reload();
      await flushPage();
      await consentPage.waitForTimeout(300);
      expect(await stored()).toEqual([]);
      expect(requests.filter((r) => !r.startsWith('GET /v1/sdk/settings'))).toEqual([]);
      expect(requests.length).toBeGreaterThan(0);
      expect(await consentPage.evaluate(() => JSON.parse(localStorage.getItem('tp_queue') ?? '[]').length)).toBe(4);
      expect(await consentPage.evaluate(() => JSON.parse(localStorage.getItem('tp_settings') ?? 'null'))).toEqual({
        requireConsent: true,
        consentCategories: ['analytics'],
      });

      await consentPage.evaluate(() =>
        (window as unknown as { touchpoint: { setConsent(c: Record<string, boolean>): void } }).touchpoint.setConsent({ analytics: true, advertising: false }),
      );
      await flushPage();
      // Another reload after consent: the page view is sent at once, nothing earlier a second time.
      await consentPage.reload();
      await flushPage();

      const events = await stored();
      expect(events.map((e) => `${e.type}:${e.event ?? (e.properties?.path as string | undefined) ?? ''}`)).toEqual([
        'page:/',
        'page:/pricing',
        'track:Plan Selected',
        'page:/pricing',
        'identify:',
        'page:/pricing',
      ]);
      expect(new Set(events.map((e) => e.message_id)).size).toBe(events.length);
      for (const event of events) expect(event.context!.consent).toEqual({ categoryPreferences: { analytics: true, advertising: false } });
      const times = events.map((e) => Date.parse(e.timestamp));
      expect([...times].sort((a, b) => a - b)).toEqual(times);
      const { rows } = await t.db.query('select id from quarantine where workspace_id = $1', [consentWorkspace.workspace.id]);
      expect(rows).toEqual([]);
    } finally {
      await context.close();
      await new Promise((resolve) => other.site.close(resolve));
    }
  });
  it('reads UTM parameters into context.campaign, keeps the anonymous id in a cookie, ends a session after 30 idle minutes, tracks back/forward, and beacons the queue on page hide', async () => {
    const ws = await t.addWorkspace('browser-context');
    const other = await startSite(serverUrl, ws.writeKey);
    const context = await browser.newContext();
    try {
      const tab = await context.newPage();
      const tp = () => tab.evaluate(() => (window as unknown as { touchpoint: { flush(): Promise<void> } }).touchpoint.flush());
      const stored = () => storedEvents(t, 'workspace_id = $1', [ws.workspace.id]);
      await tab.goto(`${other.siteUrl}/landing?utm_source=wechat&utm_medium=social&utm_campaign=spring&utm_term=tea&utm_content=banner&ref=x`);
      await tp();
      const [landing] = await stored();
      expect(landing!.context!.campaign).toEqual({ source: 'wechat', medium: 'social', name: 'spring', term: 'tea', content: 'banner' });

      // The first-party cookie holds the anonymous id and restores it when localStorage is cleared.
      const cookie = (await context.cookies(other.siteUrl)).find((c) => c.name === 'tp_aid');
      expect(cookie?.value).toBe(landing!.anonymous_id);
      expect(cookie?.sameSite).toBe('Lax');
      await tab.evaluate(() => localStorage.removeItem('tp_aid'));
      await tab.reload();
      await tp();

      // 31 minutes without a message: the next one starts a new session.
      await tab.evaluate(() => {
        const session = JSON.parse(localStorage.getItem('tp_session')!) as { id: number; last: number };
        localStorage.setItem('tp_session', JSON.stringify({ id: session.id, last: Date.now() - 31 * 60 * 1000 }));
        (window as unknown as { touchpoint: { track(name: string): void } }).touchpoint.track('After A Break');
      });
      await tp();
      const events = await stored();
      expect(events.map((e) => e.event ?? e.type)).toEqual(['page', 'page', 'After A Break']);
      expect(new Set(events.map((e) => e.anonymous_id))).toEqual(new Set([landing!.anonymous_id]));
      expect(events[1]!.context!.sessionId).toBe(events[0]!.context!.sessionId);
      expect(events[2]!.context!.sessionId).not.toBe(events[0]!.context!.sessionId);
      expect(events[2]!.context!.sessionId).toBeGreaterThan(events[0]!.context!.sessionId as number);

      // Back and forward (popstate) are route changes too.
      await tab.evaluate(() => history.pushState({}, '', '/next'));
      await tab.goBack();
      await tab.waitForFunction(() => location.pathname === '/landing');
      await tp();
      const navigation = (await stored()).slice(3);
      expect(navigation.map((e) => [e.type, e.properties?.path, (e.context?.page as { referrer?: string } | undefined)?.referrer])).toEqual([
        ['page', '/next', `${other.siteUrl}/landing?utm_source=wechat&utm_medium=social&utm_campaign=spring&utm_term=tea&utm_content=banner&ref=x`],
        ['page', '/landing', `${other.siteUrl}/next`],
      ]);

      // fetch cannot reach the server (sendBeacon is not intercepted): leaving the page hands the queue to the beacon.
      await tab.route(`${serverUrl}/v1/batch`, (route) => route.abort('internetdisconnected'));
      await tab.evaluate(() => (window as unknown as { touchpoint: { track(name: string): void } }).touchpoint.track('Leaving'));
      await tp();
      expect(await tab.evaluate(() => JSON.parse(localStorage.getItem('tp_queue') ?? '[]').length)).toBe(1);
      await tab.goto('about:blank');
      await expect.poll(async () => (await stored()).map((e) => e.event ?? e.type), { timeout: 10_000 }).toEqual(['page', 'page', 'After A Break', 'page', 'page', 'Leaving']);
    } finally {
      await context.close();
      await new Promise((resolve) => other.site.close(resolve));
    }
  });
});
