import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { consentFailure } from '../src/ingest/consent.ts';
import { createKey } from '../src/workspaces/store.ts';
import { post, storedEvents } from './collection-helpers.ts';
import { cli } from './support/cli.ts';
import { ADMIN_TOKEN, basicAuth, startTestApp, type TestApp } from './support/app.ts';

const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };

const granted = (preferences: Record<string, unknown>) => ({ consent: { categoryPreferences: preferences } });

describe('consent rule (pure)', () => {
  it('needs every listed category granted, or any one category when none is listed', () => {
    const analytics = { categories: ['analytics'] };
    expect(consentFailure(granted({ analytics: true, ads: false }), analytics)).toBeNull();
    expect(consentFailure(granted({ analytics: false }), analytics)).toEqual({
      field: 'context.consent.categoryPreferences.analytics',
      message: 'This workspace stores events only with consent to "analytics"; "analytics" is refused',
    });
    expect(consentFailure(granted({ ads: true }), analytics)?.message).toContain('"analytics" is not granted');
    // Only the boolean true grants: Segment's shape, not truthiness.
    expect(consentFailure(granted({ analytics: 'yes' }), analytics)?.field).toBe('context.consent.categoryPreferences.analytics');
    expect(consentFailure({}, analytics)?.field).toBe('context.consent.categoryPreferences');
    expect(consentFailure(null, analytics)?.field).toBe('context.consent.categoryPreferences');
    expect(consentFailure({ consent: { categoryPreferences: [true] } }, analytics)?.field).toBe('context.consent.categoryPreferences');
    const both = { categories: ['analytics', 'personalization'] };
    expect(consentFailure(granted({ analytics: true }), both)?.field).toBe('context.consent.categoryPreferences.personalization');
    expect(consentFailure(granted({ analytics: true, personalization: true }), both)).toBeNull();
    const any = { categories: [] };
    expect(consentFailure(granted({ ads: false, analytics: true }), any)).toBeNull();
    expect(consentFailure(granted({ ads: false }), any)?.message).toContain('none is granted');
  });
});

describe('workspace collection settings, the SDK settings route and consent enforcement', () => {
  let t: TestApp;
  let serverKey: string;
  let other: Awaited<ReturnType<TestApp['addWorkspace']>>;
  beforeAll(async () => {
    t = await startTestApp();
    serverKey = (await createKey(t.db, t.workspace.id, { kind: 'server' })).key;
    other = await t.addWorkspace('other');
  });
  afterAll(async () => t.close());

  const adminCall = (method: 'GET' | 'PATCH' | 'POST', url: string, payload?: unknown) =>
    t.app.inject({ method, url, headers: admin, ...(payload === undefined ? {} : { payload: payload as object }) });
  const settingsUrl = '/admin/workspaces/acme/collection-settings';
  const sdkSettings = (query: string, headers: Record<string, string> = {}) => t.app.inject({ method: 'GET', url: `/v1/sdk/settings${query}`, headers });

  it('defaults to no consent requirement; the admin API changes it, validating every field', async () => {
    expect((await adminCall('GET', settingsUrl)).json()).toEqual({ requireConsent: false, consentCategories: [] });
    const changed = await adminCall('PATCH', settingsUrl, { requireConsent: true, consentCategories: ['analytics', 'analytics', 'ads'] });
    expect(changed.statusCode).toBe(200);
    expect(changed.json()).toEqual({ requireConsent: true, consentCategories: ['analytics', 'ads'] });
    // Absent fields keep their value.
    expect((await adminCall('PATCH', settingsUrl, { consentCategories: ['analytics'] })).json()).toEqual({ requireConsent: true, consentCategories: ['analytics'] });
    expect((await adminCall('GET', `/admin/workspaces/${t.workspace.id}/collection-settings`)).json()).toEqual({ requireConsent: true, consentCategories: ['analytics'] });

    for (const [body, field] of [
      [{ requireConsent: 'yes' }, 'requireConsent'],
      [{ consentCategories: [''] }, 'consentCategories.0'],
      [{ consentCategories: ['x'.repeat(65)] }, 'consentCategories.0'],
      [{ consentCategories: Array.from({ length: 21 }, (_, i) => `c${i}`) }, 'consentCategories'],
      [{ requireConsent: true, extra: 1 }, 'extra'],
    ] as const) {
      const res = await adminCall('PATCH', settingsUrl, body);
      expect(res.statusCode, JSON.stringify(body)).toBe(400);
      expect(res.json()).toMatchObject({ error: 'invalid_request', field });
    }
    expect((await adminCall('PATCH', settingsUrl, {})).statusCode).toBe(400);
    expect((await adminCall('GET', '/admin/workspaces/nope/collection-settings')).json()).toMatchObject({ error: 'not_found' });
    expect((await t.app.inject({ method: 'GET', url: settingsUrl })).statusCode).toBe(401);
    expect((await adminCall('GET', settingsUrl)).json()).toEqual({ requireConsent: true, consentCategories: ['analytics'] });
  });

  it("a workspace's server key reads and changes its own settings; a write key cannot", async () => {
    const url = '/v1/workspace/collection-settings';
    const asServer = { authorization: `Bearer ${serverKey}` };
    expect((await t.app.inject({ method: 'GET', url, headers: asServer })).json()).toEqual({ requireConsent: true, consentCategories: ['analytics'] });
    const off = await t.app.inject({ method: 'PATCH', url, headers: asServer, payload: { requireConsent: false } });
    expect(off.json()).toEqual({ requireConsent: false, consentCategories: ['analytics'] });
    const on = await t.app.inject({ method: 'PATCH', url, headers: asServer, payload: { requireConsent: true } });
    expect(on.json()).toEqual({ requireConsent: true, consentCategories: ['analytics'] });
    const byWriteKey = await t.app.inject({ method: 'PATCH', url, headers: { authorization: `Bearer ${t.writeKey}` }, payload: { requireConsent: false } });
    expect(byWriteKey.statusCode).toBe(403);
    expect((await t.app.inject({ method: 'GET', url })).statusCode).toBe(401);
    // The other workspace is untouched.
    expect((await adminCall('GET', '/admin/workspaces/other/collection-settings')).json()).toEqual({ requireConsent: false, consentCategories: [] });
  });

  it('GET /v1/sdk/settings answers the write key, cacheable and readable cross-origin', async () => {
    const res = await sdkSettings(`?writeKey=${encodeURIComponent(t.writeKey)}`, { origin: 'https://shop.example.com' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ requireConsent: true, consentCategories: ['analytics'] });
    expect(res.headers['cache-control']).toBe('public, max-age=60');
    expect(res.headers['access-control-allow-origin']).toBe('*');
    const etag = res.headers.etag as string;
    expect(etag).toMatch(/^".+"$/);
    const again = await sdkSettings(`?writeKey=${encodeURIComponent(t.writeKey)}`, { 'if-none-match': etag });
    expect(again.statusCode).toBe(304);
    // The mini-program sends the key the way it sends batches.
    const basic = await sdkSettings('', { authorization: basicAuth(other.writeKey) });
    expect(basic.json()).toEqual({ requireConsent: false, consentCategories: [] });
    expect(basic.headers.etag).not.toBe(etag);

    expect((await sdkSettings('')).json()).toMatchObject({ error: 'unauthorized' });
    expect((await sdkSettings('?writeKey=tpw_unknown')).statusCode).toBe(401);
    expect((await sdkSettings(`?writeKey=${encodeURIComponent(serverKey)}`)).statusCode).toBe(401);
    expect((await sdkSettings(`?writeKey=${encodeURIComponent(t.writeKey)}&other=1`)).statusCode).toBe(400);
  });

  it('stores only consented events of a workspace that requires consent; the rest are quarantined with the reason', async () => {
    const res = await post(t, '/v1/batch', {
      batch: [
        { type: 'track', event: 'Granted', anonymousId: 'a1', messageId: 'c-1', context: granted({ analytics: true, ads: false }) },
        { type: 'track', event: 'No consent', anonymousId: 'a1', messageId: 'c-2' },
        { type: 'page', name: 'Refused', anonymousId: 'a1', messageId: 'c-3', context: granted({ analytics: false }) },
        { type: 'identify', anonymousId: 'a1', messageId: 'c-4', context: granted({ ads: true }) },
        { type: 'track', anonymousId: 'a1', messageId: 'c-5' }, // invalid for another reason first
      ],
    });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body).toMatchObject({ success: true, accepted: 1, duplicates: 0 });
    expect(body.rejected.map((r: { index: number; error: string; field: string }) => [r.index, r.error, r.field])).toEqual([
      [1, 'consent_required', 'context.consent.categoryPreferences'],
      [2, 'consent_required', 'context.consent.categoryPreferences.analytics'],
      [3, 'consent_required', 'context.consent.categoryPreferences.analytics'],
      [4, 'missing_event', 'event'],
    ]);
    expect(body.rejected[1].message).toContain('"analytics" is refused');
    expect((await storedEvents(t, 'workspace_id = $1', [t.workspace.id])).map((e) => e.message_id)).toEqual(['c-1']);

    const quarantined = await adminCall('GET', '/admin/workspaces/acme/quarantine?reason=consent_required');
    expect(quarantined.json().items.map((i: { messageId: string; endpoint: string; status: string }) => [i.messageId, i.endpoint, i.status]).sort()).toEqual([
      ['c-2', 'batch', 'open'],
      ['c-3', 'batch', 'open'],
      ['c-4', 'batch', 'open'],
    ]);

    // A single call is answered 400 with the quarantined item; batch-level context consents for its items.
    const single = await post(t, '/v1/track', { event: 'Alone', anonymousId: 'a2', messageId: 'c-6' });
    expect(single.statusCode).toBe(400);
    expect(single.json()).toMatchObject({ error: 'consent_required', field: 'context.consent.categoryPreferences', quarantineId: expect.any(String) });
    const withBatchContext = await post(t, '/v1/import', {
      context: granted({ analytics: true }),
      batch: [{ type: 'track', event: 'Imported', userId: 'u-1', messageId: 'c-7', timestamp: '2026-01-01T00:00:00Z' }],
    });
    expect(withBatchContext.json()).toMatchObject({ accepted: 1, rejected: [] });

    // Another workspace without the requirement stores events without consent.
    const free = await post(t, '/v1/track', { event: 'Free', anonymousId: 'b1', messageId: 'o-1' }, {}, other.writeKey);
    expect(free.statusCode).toBe(200);
  });

  it('a replay is held to the requirement too; once it is lifted, the quarantined events can be replayed', async () => {
    const list = await adminCall('GET', '/admin/workspaces/acme/quarantine?reason=consent_required');
    const byMessage = new Map((list.json().items as Array<{ id: string; messageId: string }>).map((i) => [i.messageId, i.id]));
    const still = await adminCall('POST', `/admin/workspaces/acme/quarantine/${byMessage.get('c-2')}/replay`);
    expect(still.statusCode).toBe(422);
    expect(still.json()).toMatchObject({ error: 'consent_required' });

    const corrected = await adminCall('POST', `/admin/workspaces/acme/quarantine/${byMessage.get('c-2')}/replay`, {
      payload: { type: 'track', event: 'No consent', anonymousId: 'a1', messageId: 'c-2', context: granted({ analytics: true }) },
    });
    expect(corrected.statusCode).toBe(200);

    await adminCall('PATCH', settingsUrl, { requireConsent: false });
    const bulk = await adminCall('POST', '/admin/workspaces/acme/quarantine/replay', { reason: 'consent_required' });
    expect(bulk.json()).toMatchObject({ attempted: 3, replayed: 3, failed: [] });
    const stored = (await storedEvents(t, 'workspace_id = $1', [t.workspace.id])).map((e) => e.message_id).sort();
    expect(stored).toEqual(['c-1', 'c-2', 'c-3', 'c-4', 'c-6', 'c-7']);
  });

  it('changes take effect for ingestion at once (the key cache is cleared)', async () => {
    expect((await post(t, '/v1/track', { event: 'Open', anonymousId: 'a3', messageId: 'c-8' })).statusCode).toBe(200);
    await adminCall('PATCH', settingsUrl, { requireConsent: true });
    expect((await post(t, '/v1/track', { event: 'Closed', anonymousId: 'a3', messageId: 'c-9' })).json()).toMatchObject({ error: 'consent_required' });
    expect((await sdkSettings(`?writeKey=${encodeURIComponent(t.writeKey)}`)).json()).toEqual({ requireConsent: true, consentCategories: ['analytics'] });
  });

  it('touchpoint workspace settings shows and changes the setting', async () => {
    const shown = await cli(['workspace', 'settings', '--workspace', 'other'], t.database.url);
    expect(shown.stderr).toBe('');
    expect(shown.stdout.trim()).toBe('Consent not required');
    const changed = await cli(['workspace', 'settings', '--workspace', 'other', '--require-consent', '--consent-categories', ' analytics, personalization ', '--json'], t.database.url);
    expect(changed.code).toBe(0);
    expect(JSON.parse(changed.stdout)).toEqual({ requireConsent: true, consentCategories: ['analytics', 'personalization'] });
    const off = await cli(['workspace', 'settings', '--workspace', 'other', '--no-require-consent'], t.database.url);
    expect(off.stdout.trim()).toBe('Consent not required');
    expect((await adminCall('GET', '/admin/workspaces/other/collection-settings')).json()).toEqual({ requireConsent: false, consentCategories: ['analytics', 'personalization'] });
  }, 180_000);
});
