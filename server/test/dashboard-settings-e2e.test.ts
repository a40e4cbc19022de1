import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureDashboardBuilt } from '../src/dashboard/build.ts';
import { createImportJobs } from '../src/ingest/import/jobs.ts';
import { createUser, putMember } from '../src/privacy/users.ts';
import { drain } from './profiles-support.ts';
import { accessibilityProblems } from './support/accessibility.ts';
import { ADMIN_TOKEN, basicAuth, startTestApp, type TestApp } from './support/app.ts';

const CHROMIUM = '/usr/bin/chromium';
const hasChromium = existsSync(CHROMIUM);
if (!hasChromium) console.warn(`dashboard-settings-e2e: skipped because ${CHROMIUM} is absent (apt-get install -y chromium)`);

/** TOUCHPOINT_E2E_SCREENSHOTS=docs/screenshots also saves a PNG of each new page there. */
const SCREENSHOTS = process.env.TOUCHPOINT_E2E_SCREENSHOTS;

/**
 * The Data and Settings pages in Chromium against a real server on a fresh database: an admin
 * creates a source and sees its key once, imports a file, replays a quarantined event, meets a
 * validation error beside the identity setting that caused it; a viewer can change nothing (the
 * controls are disabled and the API answers 403); the language switches.
 */
describe.skipIf(!hasChromium)('dashboard Data and Settings in Chromium', () => {
  let t: TestApp;
  let browser: Browser;
  let page: Page;
  let base: string;
  let importDir: string;

  const shot = async (name: string) => {
    if (!SCREENSHOTS) return;
    mkdirSync(SCREENSHOTS, { recursive: true });
    await page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`) });
  };
  const signIn = async (email: string, password: string) => {
    await page.goto(`${base}/`);
    await page.getByLabel('Email', { exact: true }).fill(email);
    await page.getByLabel('Password', { exact: true }).fill(password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
  };

  beforeAll(async () => {
    await ensureDashboardBuilt(() => undefined);
    importDir = mkdtempSync(path.join(os.tmpdir(), 'e2e-imports-'));
    t = await startTestApp({ importJobs: createImportJobs({ directory: importDir }) });
    const admin = await createUser(t.db, { email: 'ada@example.cn', name: 'Ada', password: 'admin password long enough' });
    await putMember(t.db, t.workspace.id, admin.id, 'admin');
    const viewer = await createUser(t.db, { email: 'vic@example.cn', name: 'Vic', password: 'viewer password long enough' });
    await putMember(t.db, t.workspace.id, viewer.id, 'viewer');
    // An event without any identity: refused into quarantine.
    const refused = await t.app.inject({
      method: 'POST',
      url: '/v1/batch',
      headers: { authorization: basicAuth(t.writeKey) },
      payload: { batch: [{ type: 'track', event: 'Coupon Redeemed', messageId: 'q-1', properties: { code: 'SPRING' } }] },
    });
    expect(refused.json().rejected).toHaveLength(1);
    base = await t.app.listen({ port: 0, host: '127.0.0.1' });
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
    page = await browser.newPage({ viewport: { width: 1280, height: 800 }, locale: 'en-US' });
    // A stale build is rebuilt first: minutes on a loaded machine.
  }, 600_000);

  afterAll(async () => {
    await browser?.close();
    await t?.close();
    rmSync(importDir, { recursive: true, force: true });
  });

  it('an admin creates a source and sees its write key once; the key works', async () => {
    await signIn('ada@example.cn', 'admin password long enough');
    await page.getByRole('link', { name: 'Data' }).click();
    await page.getByRole('heading', { name: 'Data' }).waitFor();
    await page.getByTestId('source-list').waitFor();
    expect(await accessibilityProblems(page)).toEqual([]);

    await page.getByRole('textbox', { name: 'Name' }).fill('Store POS');
    await page.getByLabel('Kind').selectOption('store');
    await page.getByRole('button', { name: 'Create source' }).click();
    const secret = (await page.getByTestId('secret-value').textContent()) ?? '';
    expect(secret.length).toBeGreaterThan(20);
    await expect.poll(() => page.getByTestId('source-list').textContent()).toContain('Store POS');
    // The list shows only the key's first characters.
    await expect.poll(async () => page.getByTestId('key-table').textContent()).toContain(`${secret.slice(0, 8)}`);
    expect(await page.getByTestId('key-table').textContent()).not.toContain(secret);
    await shot('data-sources');
    await page.getByRole('button', { name: 'I have stored it' }).click();
    expect(await page.getByTestId('secret-once').count()).toBe(0);
    await page.reload();
    await page.getByTestId('source-list').waitFor();
    expect(await page.content()).not.toContain(secret);

    const sent = await t.app.inject({
      method: 'POST',
      url: '/v1/batch',
      headers: { authorization: basicAuth(secret) },
      payload: { batch: [{ type: 'identify', userId: 'pos-1', messageId: 'pos-1', traits: { city: '杭州' } }] },
    });
    expect(sent.statusCode).toBe(200);
    expect(sent.json().rejected).toEqual([]);
  });

  it('imports a CSV with progress and offers its rejected rows', async () => {
    const file = path.join(importDir, 'members.csv');
    writeFileSync(file, 'CustomerID,Email,City\nc-1,c1@example.cn,上海\n,nobody@example.cn,北京\nc-3,c3@example.cn,广州\n');
    await page.getByRole('link', { name: 'Imports' }).click();
    await page.getByRole('heading', { name: 'Import a file' }).waitFor();
    await page.getByLabel('Source').selectOption({ label: 'Website' });
    await page.getByLabel('File', { exact: true }).setInputFiles(file);
    await page.getByLabel('Column mapping (target=Column[:type],…)').fill('userId=CustomerID,traits.email=Email,traits.city=City');
    await page.getByRole('button', { name: 'Upload and import' }).click();
    await expect.poll(() => page.getByTestId('import-state').textContent(), { timeout: 30_000 }).toBe('Done');
    expect(await page.getByTestId('import-status').textContent()).toContain('3 rows read · 2 stored · 0 duplicates · 1 rejected');
    await page.getByRole('button', { name: 'Download rejected rows' }).first().waitFor();
    await page.getByTestId('import-list').waitFor();
    expect(await accessibilityProblems(page)).toEqual([]);
    await shot('data-imports');
  });

  it('the profile 360 shows its journey step, consent, computed traits and model scores; the overview its journeys and messages', async () => {
    await drain(t);
    const profileId = (await t.db.query<{ profile_id: string }>(`select profile_id from profile_identifiers where workspace_id = $1 and type = 'user_id' and value = 'c-1'`, [t.workspace.id])).rows[0]!.profile_id;
    const journey = await t.db.query<{ id: string }>(
      `insert into journeys (workspace_id, key, name, status, draft, current_version) values ($1, 'welcome', 'Welcome series', 'published', '{}', 1) returning id`,
      [t.workspace.id],
    );
    await t.db.query(
      `insert into journey_versions (workspace_id, journey_id, version, definition, published_at)
       values ($1, $2, 1, '{"nodes":[{"id":"entry","kind":"entry"},{"id":"wait-2d","kind":"delay"}]}', now())`,
      [t.workspace.id, journey.rows[0]!.id],
    );
    await t.db.query(
      `insert into journey_instances (workspace_id, journey_id, version, profile_id, status, node_id, phase, due_at, entry, entered_at, step_count)
       values ($1, $2, 1, $3, 'active', 'wait-2d', 'wait', now() + interval '2 days', 'event', now() - interval '1 hour', 1)`,
      [t.workspace.id, journey.rows[0]!.id, profileId],
    );
    await t.db.query(
      `insert into profile_traits (workspace_id, profile_id, key, value, source_kind, source_name, message_id, observed_at, updated_at)
       values ($1, $2, 'churn_probability', '0.27', 'computed', 'model:churn', 'run-1', now(), now()),
              ($1, $2, 'orders_90d', '4', 'computed', 'orders_90d', 'ct-1', now(), now())`,
      [t.workspace.id, profileId],
    );
    await t.db.query(
      `insert into profile_consents (workspace_id, profile_id, category, granted, observed_at) values ($1, $2, 'email', true, now()), ($1, $2, 'sms', false, now())`,
      [t.workspace.id, profileId],
    );
    await t.db.query(
      `insert into messages (workspace_id, idempotency_key, profile_id, channel, template_key, purpose, status, due_at)
       values ($1, 'e2e-m1', $2, 'email', 'welcome', 'marketing', 'clicked', now()), ($1, 'e2e-m2', $2, 'email', 'welcome', 'marketing', 'delivered', now())`,
      [t.workspace.id, profileId],
    );

    await page.goto(`${base}/profiles/${profileId}`);
    const journeys = page.getByTestId('profile-journeys');
    await journeys.waitFor();
    expect(await journeys.textContent()).toMatch(/Welcome series.*wait-2d.*delay.*waiting/);
    expect(await page.getByTestId('profile-consent').textContent()).toBe('emailgrantedsmsdenied');
    expect(await page.getByTestId('profile-scores').textContent()).toBe('churn_probability0.27');
    expect(await page.getByTestId('profile-computed').textContent()).toBe('orders_90d4');
    expect(await accessibilityProblems(page)).toEqual([]);
    await page.getByRole('heading', { name: 'Journeys' }).scrollIntoViewIfNeeded();
    await shot('profile-journeys');

    await page.getByRole('link', { name: 'Overview' }).click();
    const numbers = page.getByTestId('message-metrics');
    await numbers.waitFor();
    expect(await numbers.textContent()).toContain('Active journeys1');
    expect(await numbers.textContent()).toContain('Messages sent2');
    expect(await numbers.textContent()).toContain('Clicked1');
    await page.getByRole('link', { name: 'Data' }).click();
    await page.getByRole('link', { name: 'Quarantine' }).waitFor();
  });

  it('replays a quarantined event after correcting it', async () => {
    await page.getByRole('link', { name: 'Quarantine' }).click();
    const list = page.getByTestId('quarantine-list');
    await list.waitFor();
    await list.getByRole('button', { name: /missing_identity/ }).click();
    const payload = page.getByLabel('Payload (edit to correct it)');
    await expect.poll(() => payload.inputValue()).toContain('Coupon Redeemed');
    const corrected = JSON.parse(await payload.inputValue()) as Record<string, unknown>;
    await payload.fill(JSON.stringify({ ...corrected, userId: 'c-1' }, null, 2));
    expect(await accessibilityProblems(page)).toEqual([]);
    await shot('data-quarantine');
    await page.getByRole('button', { name: 'Replay corrected' }).click();
    await page.getByText(/^Replayed: stored as /).waitFor();
    const stored = await t.db.query<{ status: string }>('select status from quarantine where workspace_id = $1', [t.workspace.id]);
    expect(stored.rows.map((row) => row.status)).toEqual(['replayed']);
    const event = await t.db.query<{ user_id: string }>(`select user_id from events where workspace_id = $1 and event = 'Coupon Redeemed'`, [t.workspace.id]);
    expect(event.rows).toEqual([{ user_id: 'c-1' }]);
  });

  it('shows the API validation error next to the identity setting that caused it, then saves the fix', async () => {
    await page.getByRole('link', { name: 'Identity settings' }).click();
    const priority = page.getByLabel('Priority of email');
    await priority.waitFor();
    await priority.fill('0');
    await page.getByRole('button', { name: 'Save' }).click();
    // In the same cell as the input that caused it.
    const error = page.locator('td', { has: priority }).getByTestId('field-error');
    await error.waitFor();
    expect(await error.getAttribute('data-field')).toBe('identity.types.email.priority');
    expect(await error.textContent()).toContain('invalid_request');
    // Shown once, beside the field, not again at the bottom.
    expect(await page.getByTestId('field-error').count()).toBe(1);
    expect(await accessibilityProblems(page)).toEqual([]);
    await page.evaluate(() => window.scrollTo(0, 0));
    await shot('data-identity');
    await priority.fill('2');
    await page.getByLabel('Blocked values of email').fill('test@example.com');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByRole('status').filter({ hasText: 'Saved.' }).waitFor();
    expect(await page.getByTestId('field-error').count()).toBe(0);
    const settings = await t.app.inject({ method: 'GET', url: `/admin/workspaces/${t.workspace.id}/identity-settings`, headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    expect(settings.json().identity.types.email).toEqual({ priority: 2, blockedValues: ['test@example.com'] });
  });

  it('settings: a scoped server key is shown once; members, channels, caps and quiet hours render and pass axe', async () => {
    await page.getByRole('link', { name: 'Settings', exact: true }).click();
    await page.getByRole('heading', { name: 'Settings' }).waitFor();
    await page.getByLabel('Time zone').waitFor();
    expect(await accessibilityProblems(page)).toEqual([]);
    await shot('settings-workspace');

    await page.getByRole('link', { name: 'API keys' }).click();
    await page.getByRole('button', { name: 'Create key' }).click();
    const secret = (await page.getByTestId('secret-value').textContent()) ?? '';
    expect(secret.length).toBeGreaterThan(20);
    const keyTable = page.getByTestId('key-table');
    await expect.poll(() => keyTable.textContent()).toContain('*.read');
    // The key can read but not change.
    const read = await t.app.inject({ method: 'GET', url: '/v1/segments', headers: { authorization: `Bearer ${secret}` } });
    expect(read.statusCode).toBe(200);
    const write = await t.app.inject({ method: 'POST', url: '/v1/segments', headers: { authorization: `Bearer ${secret}` }, payload: { key: 'x', name: 'x', kind: 'realtime', text: 'trait.city = "x"' } });
    expect(write.statusCode).toBe(403);
    expect(await accessibilityProblems(page)).toEqual([]);
    await shot('settings-keys');

    await page.getByRole('link', { name: 'Users and roles' }).click();
    await expect.poll(() => page.getByTestId('member-list').textContent()).toContain('vic@example.cn');
    expect(await accessibilityProblems(page)).toEqual([]);
    await shot('settings-members');

    await page.getByRole('link', { name: 'Channels' }).click();
    await page.getByLabel('Key', { exact: true }).first().fill('email-main');
    await page.getByLabel('Settings (name=value per line)').fill('host=smtp.example.cn\nport=587\nfrom=news@example.cn');
    await page.getByLabel('Credentials (name=value per line, write-only)').fill('password=hunter2-very-secret');
    await page.getByRole('button', { name: 'Save', exact: true }).click();
    await expect.poll(() => page.getByTestId('account-list').textContent()).toContain('email-main');
    // Credentials are never shown back.
    expect(await page.getByTestId('account-secrets').textContent()).toContain('set (hidden)');
    expect(await page.content()).not.toContain('hunter2-very-secret');
    expect(await accessibilityProblems(page)).toEqual([]);
    await shot('settings-channels');

    await page.getByRole('link', { name: 'Caps and quiet hours' }).click();
    await page.getByRole('button', { name: 'Add a cap' }).click();
    await page.getByLabel('Hold marketing messages at night').check();
    await page.getByRole('button', { name: 'Save', exact: true }).click();
    await page.getByRole('status').filter({ hasText: 'Saved.' }).waitFor();
    const policy = await t.app.inject({ method: 'GET', url: '/v1/channels/policy', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'x-touchpoint-workspace': t.workspace.id } });
    expect(policy.json()).toMatchObject({ frequencyCaps: [{ maxMessages: 3, windowSeconds: 7 * 86_400 }], quietHours: { start: '22:00', end: '08:00' } });
    expect(await accessibilityProblems(page)).toEqual([]);
    await shot('settings-messaging');

    await page.goto(`${base}/tags`);
    await page.getByTestId('tag-library').waitFor();
    await expect.poll(async () => page.getByRole('switch').count()).toBeGreaterThan(0);
    expect(await accessibilityProblems(page)).toEqual([]);
    await shot('tags');
  });

  it('switches the Data pages to Chinese and back', async () => {
    await page.goto(`${base}/data/sources`);
    await page.getByTestId('language').selectOption('zh-CN');
    await page.getByRole('link', { name: '数据源与密钥' }).waitFor();
    await page.getByRole('heading', { name: '新建数据源' }).waitFor();
    expect(await accessibilityProblems(page)).toEqual([]);
    await shot('data-sources-zh-CN');
    await page.getByTestId('language').selectOption('en');
    await page.getByRole('link', { name: 'Sources and keys' }).waitFor();
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('Email', { exact: true }).waitFor();
  });

  it('a viewer can change nothing: the controls are disabled and the API answers 403', async () => {
    await signIn('vic@example.cn', 'viewer password long enough');
    await page.goto(`${base}/data/sources`);
    await page.getByTestId('source-list').waitFor();
    expect(await page.getByRole('button', { name: 'Create source' }).isDisabled()).toBe(true);
    expect(await page.getByRole('textbox', { name: 'Name' }).isDisabled()).toBe(true);
    for (const button of await page.getByTestId('source-list').getByRole('button').all()) expect(await button.isDisabled()).toBe(true);
    expect(await page.getByText('Your role cannot see keys; an administrator manages them.').count()).toBe(1);

    await page.goto(`${base}/data/identity`);
    await page.getByLabel('Priority of email').waitFor();
    expect(await page.getByLabel('Priority of email').isDisabled()).toBe(true);
    expect(await page.getByRole('button', { name: 'Save' }).isDisabled()).toBe(true);
    expect(await accessibilityProblems(page)).toEqual([]);

    await page.goto(`${base}/settings/messaging`);
    await page.getByRole('button', { name: 'Add a cap' }).waitFor();
    expect(await page.getByRole('button', { name: 'Add a cap' }).isDisabled()).toBe(true);

    // The API refuses the same changes when the page is bypassed.
    const statuses = await page.evaluate(async (workspaceId) => {
      const credentials = JSON.parse(sessionStorage.getItem('touchpoint.credentials') ?? '{}') as { csrfToken: string };
      const headers = { 'content-type': 'application/json', 'x-csrf-token': credentials.csrfToken, 'x-touchpoint-workspace': workspaceId };
      const put = (url: string, method: string, body: unknown) => fetch(url, { method, headers, body: JSON.stringify(body) }).then((response) => response.status);
      return [
        await put(`/admin/workspaces/${workspaceId}/identity-settings`, 'PUT', { identity: {} }),
        await put(`/admin/workspaces/${workspaceId}/sources`, 'POST', { name: 'Sneaky', kind: 'web' }),
        await put('/v1/channels/policy', 'PUT', { frequencyCaps: [], quietHours: null, requireOptIn: [] }),
        await put('/v1/imports?source=Website&fileName=a.csv&type=identify', 'POST', 'a'),
      ];
    }, t.workspace.id);
    expect(statuses).toEqual([403, 403, 403, 403]);
  });
});
