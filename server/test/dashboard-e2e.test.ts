import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dashboardPackageDir, ensureDashboardBuilt } from '../src/dashboard/build.ts';
import { createUser, putMember } from '../src/privacy/users.ts';
import { drain, send, serverKey } from './profiles-support.ts';
import { accessibilityProblems } from './support/accessibility.ts';
import { startTestApp, type TestApp } from './support/app.ts';

const CHROMIUM = '/usr/bin/chromium';
const hasChromium = existsSync(CHROMIUM);
if (!hasChromium) console.warn(`dashboard-e2e: skipped because ${CHROMIUM} is absent (.ci/run installs it with apt-get install -y chromium)`);


/**
 * The dashboard as a user meets it: the real build served by a real server on a fresh database,
 * driven in Debian's Chromium.
 */
describe.skipIf(!hasChromium)('dashboard end to end in Chromium', () => {
  let t: TestApp;
  let browser: Browser;
  let page: Page;
  let base: string;
  let key: string;

  beforeAll(async () => {
    await ensureDashboardBuilt(() => undefined);
    t = await startTestApp();
    key = await serverKey(t);
    const at = (minutesAgo: number) => new Date(Date.now() - minutesAgo * 60_000).toISOString();
    // Two anonymous visitors who turn out to be one person: identify merges them.
    await send(t, t.writeKey, [
      { type: 'track', event: 'Product Viewed', anonymousId: 'anon-phone', messageId: 'e2e-1', timestamp: at(50), properties: { sku: 'A1' } },
      { type: 'track', event: 'Product Viewed', anonymousId: 'anon-laptop', messageId: 'e2e-2', timestamp: at(40), properties: { sku: 'B2' } },
      { type: 'identify', userId: 'lin-01', anonymousId: 'anon-phone', messageId: 'e2e-3', timestamp: at(30), traits: { email: 'lin.wei@example.cn', name: 'Lin Wei', city: '上海' } },
      { type: 'identify', userId: 'lin-01', anonymousId: 'anon-laptop', messageId: 'e2e-4', timestamp: at(20) },
      { type: 'track', event: 'Order Completed', userId: 'lin-01', messageId: 'e2e-5', timestamp: at(10), properties: { revenue: 399 } },
      { type: 'identify', userId: 'other-02', messageId: 'e2e-6', timestamp: at(5), traits: { email: 'zhao@example.cn', city: '北京' } },
    ]);
    await drain(t);
    base = await t.app.listen({ port: 0, host: '127.0.0.1' });
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
    page = await browser.newPage({ viewport: { width: 1280, height: 900 }, locale: 'en-US' });
    // The first test to run builds the dashboard when it is stale: a minute or more on a loaded machine since ECharts and React Flow.
  }, 300_000);

  afterAll(async () => {
    await browser?.close();
    await t?.close();
  });

  it('is a production build even when built from a test process (no development JSX runtime)', () => {
    const assets = path.join(dashboardPackageDir(), 'dist', 'assets');
    const scripts = readdirSync(assets).filter((name) => name.endsWith('.js'));
    expect(scripts.length).toBeGreaterThan(0);
    for (const name of scripts) expect(readFileSync(path.join(assets, name), 'utf8'), name).not.toContain('jsxDEV');
  });

  it('refuses a wrong key with the API error, then logs in with a server key', async () => {
    await page.goto(`${base}/`);
    expect(await accessibilityProblems(page)).toEqual([]);
    await page.getByRole('radio', { name: 'Server key' }).check();
    await page.getByLabel('Workspace server key').fill('tps_not-a-real-key');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(() => page.getByTestId('error-status').textContent()).toBe('401');
    expect(await page.getByTestId('error-code').textContent()).toBe('unauthorized');

    await page.getByLabel('Workspace server key').fill(key);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    await page.getByRole('img', { name: 'Events per day' }).waitFor();
    // 6 events, 2 live profiles after the merge, both identified.
    const metrics = await page.locator('.metric').allTextContents();
    expect(metrics.join(' | ')).toContain('Events6');
    expect(metrics.join(' | ')).toContain('Profiles2');
    expect(metrics.join(' | ')).toContain('Identified100%');
    expect(await accessibilityProblems(page)).toEqual([]);
  });

  it('switches to Chinese and remembers it across a reload', async () => {
    await page.getByTestId('language').selectOption('zh-CN');
    await page.getByRole('link', { name: '用户档案' }).waitFor();
    await page.reload();
    await page.getByRole('heading', { name: '概览' }).waitFor();
    expect(await page.evaluate(() => document.documentElement.lang)).toBe('zh-CN');
    await page.getByTestId('language').selectOption('en');
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
  });

  it('finds a profile by identifier and opens its 360 view with the merged timeline', async () => {
    await page.getByRole('link', { name: 'Profiles' }).click();
    // E-mail addresses are stored as keyed-hash tokens (docs/security.md "Personal data"): PII
    // identifiers are found by their whole value, not a prefix.
    await page.getByLabel('Identifier (prefix; email and phone: whole value)').fill('lin.wei@example.cn');
    await page.getByRole('button', { name: 'Search' }).click();
    await page.getByRole('link', { name: 'Lin Wei' }).click();
    await expect.poll(() => page.getByTestId('profile-name').textContent()).toBe('Lin Wei');
    expect(await page.getByTestId('traits').textContent()).toContain('上海');
    // Both anonymous ids are on the drawn graph, and the merge is explained.
    await page.getByTestId('identity-graph').waitFor();
    const graph = await page.getByTestId('identity-graph').textContent();
    expect(graph).toContain('anon-phone');
    expect(graph).toContain('anon-laptop');
    await expect.poll(() => page.getByTestId('merge-history').textContent()).toContain('Merged');
    // The timeline holds the events of both devices.
    await expect.poll(async () => page.getByTestId('timeline').locator('li').count()).toBe(5);
    const timeline = await page.getByTestId('timeline').textContent();
    expect(timeline).toContain('Order Completed');
    expect(timeline?.match(/Product Viewed/g)).toHaveLength(2);
    expect(await accessibilityProblems(page)).toEqual([]);
    // A filter narrows it on the server.
    await page.getByLabel('Event type').selectOption('identify');
    await expect.poll(async () => page.getByTestId('timeline').locator('li').count()).toBe(2);
  });

  it('builds a segment visually, the text form follows; a parse error in the text shows line and column; the fix previews and saves', async () => {
    await page.getByRole('link', { name: 'Segments' }).click();
    await page.getByRole('link', { name: 'New segment' }).click();
    await page.getByLabel('Key').fill('shanghai_buyers');
    await page.getByLabel('Name').fill('Shanghai buyers');

    // Visual builder: a trait condition and an event count, combined with "and".
    const builder = page.getByTestId('segment-builder');
    await builder.getByRole('button', { name: '+ Trait' }).click();
    await builder.getByLabel('Value').fill('上海');
    await builder.getByRole('button', { name: '+ Event' }).click();
    await expect.poll(() => page.getByTestId('builder-text').textContent()).toBe('trait.city = "上海" and event("Order Completed").count(within 30d) >= 1');
    await expect.poll(() => page.getByTestId('preview-size').textContent()).toBe('1');
    expect(await page.getByTestId('preview-sample').textContent()).toContain('上海');

    // The text form holds the same segment; break it, and the server's position is shown.
    await page.getByRole('radio', { name: 'Text' }).check();
    const text = page.getByLabel('Definition (segment language)');
    expect(await text.inputValue()).toBe('trait.city = "上海" and event("Order Completed").count(within 30d) >= 1');
    await text.fill('trait.city = "上海" and\nevent("Order Completed").count(within 30d) >=');
    await page.getByRole('button', { name: 'Preview' }).click();
    await expect.poll(() => page.getByTestId('error-position').textContent()).toMatch(/^Line 2, column \d+$/);
    expect(await page.getByTestId('error-field').textContent()).toBe('text');
    expect(await page.getByTestId('error-marker').textContent()).toContain('^');
    // A text that does not parse cannot go back to the builder.
    await page.getByRole('radio', { name: 'Visual builder' }).click();
    await page.getByTestId('error-position').waitFor();
    expect(await page.getByRole('radio', { name: 'Text' }).isChecked()).toBe(true);

    await text.fill('trait.city = "上海" and\nevent("Order Completed").count(within 30d) >= 1 and not trait.city = "北京"');
    await page.getByRole('button', { name: 'Preview' }).click();
    await expect.poll(() => page.getByTestId('preview-size').textContent()).toBe('1');
    expect(await page.getByTestId('error-marker').count()).toBe(0);
    expect(await accessibilityProblems(page)).toEqual([]);

    // Back in the builder, the edited text appears as rows, the negation ticked.
    await page.getByRole('radio', { name: 'Visual builder' }).click();
    await expect.poll(() => builder.getByLabel('Value').count()).toBe(2);
    expect(await builder.getByLabel('Value').nth(1).inputValue()).toBe('北京');
    expect(await builder.getByRole('checkbox', { name: 'not' }).nth(2).isChecked()).toBe(true);
    expect(await accessibilityProblems(page)).toEqual([]);

    await page.getByRole('button', { name: 'Create segment' }).click();
    await page.waitForURL(`${base}/segments/shanghai_buyers`);
    await page.getByRole('heading', { name: /Shanghai buyers/ }).waitFor();
    const stored = await t.app.inject({ method: 'GET', url: '/v1/segments/shanghai_buyers', headers: { authorization: `Bearer ${key}` } });
    expect(stored.json()).toMatchObject({ key: 'shanghai_buyers', memberCount: 1 });
    expect(stored.json().text).toContain('not trait.city = "北京"');
  });

  it('serves deep links on reload and sends a signed-out user to login', async () => {
    await page.reload();
    await page.getByRole('heading', { name: /Shanghai buyers/ }).waitFor();
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('Email', { exact: true }).waitFor();
  });

  it('logs in as a user with email and password; a viewer sees data but no change buttons', async () => {
    const user = await createUser(t.db, { email: 'mei@example.cn', name: 'Mei', password: 'a long enough password 1' });
    await putMember(t.db, t.workspace.id, user.id, 'viewer');
    await page.goto(`${base}/`);
    await page.getByLabel('Email', { exact: true }).fill('mei@example.cn');
    await page.getByLabel('Password', { exact: true }).fill('wrong password, long enough');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(() => page.getByTestId('error-code').textContent()).toBe('invalid_credentials');

    await page.getByLabel('Password', { exact: true }).fill('a long enough password 1');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    expect(await page.getByTestId('who').textContent()).toBe('Signed in as Mei (viewer)');
    // The viewer reads the workspace's numbers (the segment created above added a Segment Entered event).
    await expect.poll(async () => (await page.locator('.metric').allTextContents()).join(' | ')).toContain('Profiles2');
    // The session cookie is HttpOnly: the page's script cannot read it.
    expect(await page.evaluate(() => document.cookie)).not.toContain('session');

    await page.goto(`${base}/segments/shanghai_buyers`);
    await page.getByRole('heading', { name: /Shanghai buyers/ }).waitFor();
    expect(await page.getByRole('button', { name: 'Save changes' }).isDisabled()).toBe(true);
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('Email', { exact: true }).waitFor();
    // Logged out on the server too: the old cookie no longer reads anything.
    const cookies = await page.context().cookies();
    const answer = await page.evaluate(async () => (await fetch('/v1/segments')).status);
    expect(answer, JSON.stringify(cookies)).toBe(401);
  });
});
