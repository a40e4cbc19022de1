import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dashboardPackageDir, ensureDashboardBuilt } from '../src/dashboard/build.ts';
import { advanceDueInstances } from '../src/journeys/executor.ts';
import { drain, send, serverKey } from './profiles-support.ts';
import { accessibilityProblems } from './support/accessibility.ts';
import { startTestApp, type TestApp } from './support/app.ts';

const CHROMIUM = '/usr/bin/chromium';
const hasChromium = existsSync(CHROMIUM);
if (!hasChromium) console.warn(`dashboard-journeys-e2e: skipped because ${CHROMIUM} is absent (.ci/run installs it with apt-get install -y chromium)`);

/** Set to a folder (e.g. docs/screenshots) to save the pages' screenshots there. */
const SCREENSHOTS = process.env.TOUCHPOINT_SCREENSHOTS;

/** Waits for what the page shows after a server round trip (a loaded, shared machine is slow). */
const poll = <T,>(read: () => Promise<T> | T) => expect.poll(read, { timeout: 20_000, interval: 200 });

async function screenshot(page: Page, name: string, fullPage = false): Promise<void> {
  if (!SCREENSHOTS) return;
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), fullPage });
}

/**
 * The journeys canvas and the analytics pages in Debian's Chromium against a real server on a
 * fresh database: draw and publish a 3-step journey and watch an instance advance; run every
 * analysis, save a funnel's drop-offs as a segment and a chart to the board; both languages.
 */
describe.skipIf(!hasChromium)('journeys and analytics pages end to end in Chromium', () => {
  let t: TestApp;
  let browser: Browser;
  let page: Page;
  let base: string;
  let key: string;
  const api = async (method: 'GET' | 'POST', url: string) => (await t.app.inject({ method, url, headers: { authorization: `Bearer ${key}` } })).json();

  beforeAll(async () => {
    await ensureDashboardBuilt(() => undefined);
    t = await startTestApp();
    key = await serverKey(t);
    const at = (minutesAgo: number) => new Date(Date.now() - minutesAgo * 60_000).toISOString();
    let n = 0;
    const track = (userId: string, event: string, minutesAgo: number, properties: Record<string, unknown> = {}) => ({
      type: 'track',
      event,
      userId,
      messageId: `jx-${n++}`,
      timestamp: at(minutesAgo),
      properties,
    });
    await send(t, t.writeKey, [
      { type: 'identify', userId: 'lin-01', messageId: 'jx-id-1', timestamp: at(90), traits: { email: 'lin.wei@example.cn', name: 'Lin Wei', city: '上海' } },
      { type: 'identify', userId: 'zhao-02', messageId: 'jx-id-2', timestamp: at(90), traits: { email: 'zhao@example.cn', name: 'Zhao', city: '北京' } },
      { type: 'identify', userId: 'qian-03', messageId: 'jx-id-3', timestamp: at(90), traits: { email: 'qian@example.cn', name: 'Qian', city: '上海' } },
      // Lin and Qian view and buy; Zhao views and leaves: one drop-off after step 1.
      track('lin-01', 'Product Viewed', 80, { channel: 'email' }),
      track('lin-01', 'Message Clicked', 79, { channel: 'email' }),
      track('lin-01', 'Order Completed', 70, { revenue: 399, channel: 'email' }),
      track('zhao-02', 'Product Viewed', 60, { channel: 'sms' }),
      track('qian-03', 'Message Clicked', 55, { channel: 'sms' }),
      track('qian-03', 'Product Viewed', 50, { channel: 'sms' }),
      track('qian-03', 'Order Completed', 40, { revenue: 99, channel: 'sms' }),
    ]);
    await drain(t);
    base = await t.app.listen({ port: 0, host: '127.0.0.1' });
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
    page = await browser.newPage({ viewport: { width: 1280, height: 900 }, locale: 'en-US', acceptDownloads: true });
    await page.goto(`${base}/`);
    await page.getByRole('radio', { name: 'Server key' }).check();
    await page.getByLabel('Workspace server key').fill(key);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
  }, 300_000);

  afterAll(async () => {
    await browser?.close();
    await t?.close();
  });

  it('loads React Flow and ECharts only with their pages: the first page stays under 500 KB of gzipped JS', async () => {
    const dist = path.join(dashboardPackageDir(), 'dist');
    const html = readFileSync(path.join(dist, 'index.html'), 'utf8');
    const initial = [...html.matchAll(/(?:src|href)="\/assets\/([^"]+\.js)"/g)].map((match) => match[1]!);
    const gz = (name: string) => gzipSync(readFileSync(path.join(dist, 'assets', name))).length;
    const initialBytes = initial.reduce((sum, name) => sum + gz(name), 0);
    expect(initialBytes).toBeLessThan(500 * 1024);
    // The charts and the canvas are in chunks the first page does not load.
    const chunks = readdirSync(path.join(dist, 'assets')).filter((name) => name.endsWith('.js'));
    const holding = (text: string) => chunks.filter((name) => readFileSync(path.join(dist, 'assets', name), 'utf8').includes(text));
    expect(holding('react-flow__pane').some((name) => initial.includes(name))).toBe(false);
    expect(holding('echarts').length).toBeGreaterThan(0);
    expect(holding('echarts').some((name) => initial.includes(name))).toBe(false);
    console.info(`dashboard initial JS: ${initial.join(', ')} = ${(initialBytes / 1024).toFixed(1)} KB gzipped`);
  });

  it('draws a 3-step journey: problems show on their node, then publishes it behind a confirmation', async () => {
    await page.getByRole('link', { name: 'Journeys' }).click();
    await page.getByRole('heading', { name: 'Journeys' }).waitFor();
    // The empty state teaches the next step.
    await poll(() => page.locator('.empty').textContent()).toContain('New journey');
    expect(await accessibilityProblems(page)).toEqual([]);

    await page.getByRole('button', { name: 'New journey' }).click();
    await page.getByLabel('Key').fill('welcome');
    await page.getByLabel('Name').fill('Welcome series');
    await page.getByRole('button', { name: 'Create and draw' }).click();
    await page.waitForURL(`${base}/journeys/welcome`);
    await page.getByTestId('node-entry').waitFor();
    await page.getByTestId('node-end').waitFor();

    // A split nobody reaches, its outputs open: the page and the API both say so on the node.
    await page.getByRole('button', { name: '+ Condition split' }).click();
    await page.getByTestId('node-split-1').waitFor();
    await poll(() => page.getByTestId('problems-split-1').textContent()).toContain('cannot be reached from the entry node');
    expect(await page.getByTestId('problems-split-1').textContent()).toContain('Connect the "yes" output');
    expect(await page.getByRole('button', { name: 'Publish' }).isDisabled()).toBe(true);
    // Its condition's problem is next to the condition field.
    await page.getByLabel('Condition (segment language)').fill('trait.vip = ');
    await poll(() => page.getByTestId('field-problem-condition').count()).toBe(1);
    await page.getByRole('button', { name: 'Remove this node' }).click();
    await poll(() => page.getByTestId('node-split-1').count()).toBe(0);

    // entry → delay (1 hour) → end: select the entry, add a delay after it.
    await page.getByTestId('node-entry').click();
    await page.getByTestId('node-editor').waitFor();
    await page.getByRole('button', { name: '+ Delay' }).click();
    await page.getByTestId('node-delay-1').waitFor();
    await page.getByLabel('Wait for a duration: unit').selectOption('hours');
    await poll(() => page.getByTestId('node-delay-1').textContent()).toContain('1 hours');
    await poll(() => page.getByTestId('journey-problem-count').count()).toBe(0);
    // Drawn: entry → delay-1 → end on the canvas.
    await poll(() => page.locator('.react-flow__edge').count()).toBe(2);
    expect(await accessibilityProblems(page)).toEqual([]);

    await page.getByRole('button', { name: 'Publish' }).click();
    await page.getByRole('dialog').getByText('Publish the draft as version 1?').waitFor();
    await page.getByRole('dialog').getByRole('button', { name: 'Confirm' }).click();
    await poll(() => page.getByTestId('journey-status').textContent()).toBe('Live');
    expect(await page.getByTestId('journey-version').textContent()).toBe('live version v1');
    const stored = await api('GET', '/v1/journeys/welcome');
    expect(stored.definition.nodes.map((node: { id: string; kind: string }) => `${node.id}:${node.kind}`)).toEqual(['entry:entry', 'end:end', 'delay-1:delay']);
    expect(stored.definition.nodes[0].next).toBe('delay-1');

    // Versions: the published v1 can be shown read-only on the canvas, then back to the draft.
    await poll(() => page.getByTestId('journey-versions').locator('option').count()).toBe(2);
    await page.getByTestId('journey-versions').selectOption('1');
    await page.getByTestId('viewing-version').waitFor();
    expect(await page.getByRole('toolbar', { name: 'Add a step' }).count()).toBe(0);
    expect(await page.getByTestId('node-delay-1').count()).toBe(1);
    await page.getByTestId('journey-versions').selectOption('');
    await page.getByRole('toolbar', { name: 'Add a step' }).waitFor();
    expect((await api('GET', '/v1/journeys/welcome/versions')).items.map((item: { version: number }) => item.version)).toEqual([1]);
  });

  it('enters a profile, shows it waiting at the delay with its wake-up, then advancing to the end with numbers on nodes and edges', async () => {
    await page.getByText('enter one by hand', { exact: false }).waitFor();
    await page.getByLabel('Enter a profile (id or type:value)').fill('user_id:lin-01');
    await page.getByRole('button', { name: 'Enter now' }).click();
    await poll(() => page.getByTestId('entry-note').textContent()).toContain('Entered');
    await page.getByTestId('instance-list').getByRole('button', { name: 'Open' }).click();
    await poll(() => page.getByTestId('instance-node').textContent()).toBe('entry');
    // The executor takes it from the entry to the delay, where it waits an hour.
    const executor = (at: Date) => advanceDueInstances({ db: t.db, now: () => at, enqueue: async () => { throw new Error('no sends in this journey'); } });
    expect((await executor(new Date())).taken).toBe(1);
    await page.getByTestId('instance-detail').getByRole('button', { name: 'Refresh' }).click();
    await poll(() => page.getByTestId('instance-node').textContent()).toBe('delay-1');
    expect(await page.getByTestId('instance-status').textContent()).toBe('Active');
    expect(await page.getByTestId('instance-wake').textContent()).not.toBe('—');
    await page.getByRole('button', { name: 'Refresh' }).first().click();
    await poll(() => page.getByTestId('numbers-delay-1').textContent()).toContain('waiting1');
    expect(await accessibilityProblems(page)).toEqual([]);

    // Two hours later the executor wakes the instance; it walks on to the end.
    expect((await executor(new Date(Date.now() + 2 * 3_600_000))).taken).toBe(1);
    await poll(() => page.getByTestId('instance-status').textContent()).toBe('Completed');
    expect(await page.getByTestId('instance-node').textContent()).toBe('end');
    expect((await page.getByTestId('instance-path').locator('li').allTextContents()).map((text) => text.split(' ')[0])).toEqual(['entry', 'delay-1', 'end']);
    // Live numbers: every node entered once, the instance ended at the end; each edge carried one move.
    await poll(() => page.getByTestId('numbers-end').textContent()).toContain('entered1');
    expect(await page.getByTestId('numbers-end').textContent()).toContain('exited1');
    const stats = await api('GET', '/v1/journeys/welcome/stats');
    expect(stats.edges).toEqual(expect.arrayContaining([{ source: 'entry', target: 'delay-1', count: 1 }, { source: 'delay-1', target: 'end', count: 1 }]));
    await poll(() => page.locator('.react-flow__edge-text').allTextContents()).toEqual(['1', '1']);
    await page.getByTestId('journey-results').waitFor();
    await screenshot(page, 'journey-canvas', true);
  });

  it("edits a send step's template and previews it for a chosen profile", async () => {
    await page.getByTestId('node-delay-1').click();
    await page.getByRole('button', { name: '+ Send message' }).click();
    await page.getByTestId('node-send-1').waitFor();
    await page.getByRole('button', { name: 'Edit template and preview' }).click();
    // No template "welcome" yet: the editor offers the email fields to create it.
    await page.getByTestId('template-editor').getByText('does not exist yet').waitFor();
    await page.getByLabel('subject').fill('你好 {{ traits.name }}');
    await page.getByRole('button', { name: 'Create template' }).click();
    await page.getByText('Saved as version 1.').waitFor();
    // The send node's "no template" problem goes once the template exists.
    await poll(() => page.getByTestId('problems-send-1').count()).toBe(0);
    await page.getByLabel('Profile (id or type:value)', { exact: true }).fill('user_id:lin-01');
    await page.getByRole('button', { name: 'Render' }).click();
    await poll(() => page.getByTestId('template-preview').textContent()).toContain('你好 Lin Wei');
    expect(await accessibilityProblems(page)).toEqual([]);
    // A profile that does not exist: the API's 404 is shown under the preview.
    await page.getByLabel('Profile (id or type:value)', { exact: true }).fill('user_id:nobody');
    await page.getByRole('button', { name: 'Render' }).click();
    await poll(() => page.getByTestId('template-editor').getByTestId('error-status').textContent()).toBe('404');
    await page.getByRole('button', { name: 'Back to the node' }).click();
    await page.getByTestId('node-editor').waitFor();
  });

  it('pauses and resumes behind confirmations, and reads in Chinese', async () => {
    await page.getByRole('button', { name: 'Pause' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Confirm' }).click();
    await poll(() => page.getByTestId('journey-status').textContent()).toBe('Paused');
    await page.getByRole('button', { name: 'Resume' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Confirm' }).click();
    await poll(() => page.getByTestId('journey-status').textContent()).toBe('Live');

    await page.getByTestId('language').selectOption('zh-CN');
    await poll(() => page.getByTestId('journey-status').textContent()).toBe('运行中');
    expect(await page.getByTestId('node-delay-1').textContent()).toContain('延时');
    expect(await page.getByRole('link', { name: '数据分析' }).count()).toBe(1);
    await screenshot(page, 'journey-canvas-zh-CN');
    await page.getByTestId('language').selectOption('en');
    await page.getByRole('link', { name: 'Journeys', exact: true }).click();
    await page.getByTestId('journey-list').waitFor();
    expect(await page.getByTestId('journey-list').textContent()).toContain('Welcome series');
    await screenshot(page, 'journeys');
  });

  it('opens a funnel, exports it, saves its drop-offs as a segment and the chart to the board', async () => {
    await page.getByRole('link', { name: 'Analytics' }).click();
    await page.getByRole('heading', { name: 'Analytics' }).waitFor();
    await poll(() => page.locator('.empty').textContent()).toContain('run the funnel');
    await page.getByRole('button', { name: 'Run' }).click();
    await page.getByTestId('funnel-chart').locator('canvas').first().waitFor();
    const rows = await page.getByTestId('funnel-steps').locator('tbody tr').allTextContents();
    expect(rows[0]).toContain('Product Viewed');
    expect(rows[1]).toContain('66.7%');
    expect(await accessibilityProblems(page)).toEqual([]);
    await screenshot(page, 'analytics-funnel', true);

    const [csv] = await Promise.all([page.waitForEvent('download'), page.getByTestId('funnel-chart').getByRole('button', { name: 'Export CSV' }).click()]);
    expect(csv.suggestedFilename()).toMatch(/\.csv$/);
    const text = readFileSync((await csv.path())!, 'utf8');
    expect(text).toContain('2,Order Completed,2,0.6667,0.6667,1,');
    const [png] = await Promise.all([page.waitForEvent('download'), page.getByTestId('funnel-chart').getByRole('button', { name: 'Export PNG' }).click()]);
    expect(png.suggestedFilename()).toMatch(/\.png$/);
    expect(readFileSync((await png.path())!).subarray(1, 4).toString()).toBe('PNG');

    await page.getByTestId('drop-off-1').getByRole('button', { name: 'Save dropped profiles as segment' }).click();
    await page.getByTestId('drop-off-1').getByRole('button', { name: 'Save segment' }).click();
    await poll(() => page.getByTestId('drop-off-saved').textContent()).toContain('Saved 1 profile(s)');
    const segment = await api('GET', '/v1/segments/funnel-dropped-step-1');
    expect(segment).toMatchObject({ kind: 'static', memberCount: 1 });
    const members = await api('GET', '/v1/segments/funnel-dropped-step-1/members');
    const zhao = await api('GET', '/v1/profiles/user_id:zhao-02');
    expect(members.items.map((m: { profileId: string }) => m.profileId)).toEqual([zhao.id]);

    await page.getByTestId('funnel-chart').getByRole('button', { name: 'Save to board' }).click();
    await page.getByLabel('Report name').fill('Checkout funnel');
    await page.getByTestId('funnel-chart').getByRole('button', { name: 'Save', exact: true }).click();
    await page.getByText('Saved to the board as “Checkout funnel”').waitFor();
    await page.getByRole('link', { name: 'Board' }).click();
    await page.locator('[data-testid^="report-checkout-funnel"]').getByTestId('funnel-chart').locator('canvas').first().waitFor();
  });

  it('runs retention (heat map), paths (Sankey), trends, touchpoints and attribution, each chart exportable', async () => {
    const run = async (tab: string, testId: string, screenshotName: string) => {
      await page.getByRole('link', { name: tab, exact: true }).click();
      await page.getByRole('button', { name: 'Run' }).click();
      await page.getByTestId(testId).locator('canvas').first().waitFor();
      expect(await page.getByTestId(testId).getByRole('button', { name: 'Export CSV' }).count()).toBe(1);
      expect(await accessibilityProblems(page)).toEqual([]);
      await screenshot(page, screenshotName);
    };
    await run('Retention', 'retention-chart', 'analytics-retention');
    await run('Paths', 'paths-chart', 'analytics-paths');
    await page.getByRole('link', { name: 'Trends', exact: true }).click();
    await page.getByLabel('Breakdown').selectOption('property');
    await page.getByLabel('Property or trait').fill('channel');
    await page.getByRole('button', { name: 'Run' }).click();
    await page.getByTestId('trend-chart').locator('canvas').first().waitFor();
    await screenshot(page, 'analytics-trends');
    // Touchpoints read channel events by default; there are none here, and the empty state says what fills it.
    await page.getByRole('link', { name: 'Touchpoints', exact: true }).click();
    await page.getByRole('button', { name: 'Run' }).click();
    await poll(() => page.locator('.empty').textContent()).toContain('once journeys or campaigns send');
    await run('Attribution', 'attribution-chart', 'analytics-attribution');
    const legend = await page.getByTestId('attribution-chart').textContent();
    expect(legend).toContain('Attribution by model');

    await page.getByTestId('language').selectOption('zh-CN');
    await page.getByRole('heading', { name: '数据分析' }).waitFor();
    expect(await page.getByRole('link', { name: '归因' }).count()).toBe(1);
    await page.getByTestId('language').selectOption('en');
  });
});
