import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { maskPersonalData, maskText, maskValue } from '../src/privacy/masking.ts';
import { createKey } from '../src/workspaces/store.ts';
import { startTestApp, type TestApp } from './support/app.ts';
import { drain, send, serverKey } from './profiles-support.ts';
import { userWithRole } from './privacy-support.ts';

describe('masking (pure)', () => {
  it('masks phones, emails, ID numbers and names the way a CDP shows them', () => {
    expect(maskValue('13812341234')).toBe('138****1234');
    expect(maskValue('+8613812341234')).toBe('+86138****1234');
    expect(maskValue('li.lei@example.com')).toBe('l*****@example.com');
    expect(maskValue('110101199003077777')).toBe('110101********7777');
    expect(maskValue('Li Lei')).toBe('L*****');
  });

  it('masks identifiers by type, traits by key, and leaves other data alone', () => {
    const masked = maskPersonalData({
      identifiers: [{ type: 'email', value: 'ana@example.com' }, { type: 'user_id', value: 'u-1' }],
      traits: { phone: { value: '13812341234', source: 'web' }, city: { value: 'Shanghai' }, name: 'Ana Lima' },
      events: [{ properties: { total: 10, email: 'ana@example.com' } }],
    });
    expect(masked).toEqual({
      identifiers: [{ type: 'email', value: 'a***@example.com' }, { type: 'user_id', value: 'u-1' }],
      traits: { phone: { value: '138****1234', source: 'web' }, city: { value: 'Shanghai' }, name: 'A*******' },
      events: [{ properties: { total: 10, email: 'a***@example.com' } }],
    });
    expect(maskText('p1,ana@example.com,13812341234\n')).toBe('p1,a***@example.com,138****1234\n');
  });
});

describe('masking in API answers by role (real server)', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
    await send(t, t.writeKey, [{ type: 'identify', userId: 'u-mask', traits: { email: 'mask.me@example.com', phone: '+8613812341234', name: 'Masha Kova', city: 'Shanghai' }, messageId: 'm-1', timestamp: '2026-01-01T00:00:00Z' }]);
    await drain(t);
  });
  afterAll(async () => t?.close());

  const profileUrl = '/v1/profiles/user_id:u-mask';

  it('shows PII to owners and default server keys, masks it for viewers, marketers and keys without pii.read', async () => {
    const owner = await userWithRole(t.app, t.db, t.workspace.id, 'owner');
    const viewer = await userWithRole(t.app, t.db, t.workspace.id, 'viewer');
    const marketer = await userWithRole(t.app, t.db, t.workspace.id, 'marketer');
    const full = (await t.app.inject({ method: 'GET', url: profileUrl, headers: owner.headers() })).body;
    expect(full).toContain('mask.me@example.com');
    expect(full).toContain('+8613812341234');
    const server = (await t.app.inject({ method: 'GET', url: profileUrl, headers: { authorization: `Bearer ${await serverKey(t)}` } })).body;
    expect(server).toContain('mask.me@example.com');
    const limitedKey = (await createKey(t.db, t.workspace.id, { kind: 'server', permissions: ['profiles.read'] })).key;
    for (const headers of [viewer.headers(), marketer.headers(), { authorization: `Bearer ${limitedKey}` }]) {
      const response = await t.app.inject({ method: 'GET', url: profileUrl, headers });
      expect(response.statusCode).toBe(200);
      expect(response.body).not.toContain('mask.me@example.com');
      expect(response.body).not.toContain('13812341234');
      expect(response.body).not.toContain('Masha Kova');
      expect(response.body).toContain('m******@example.com');
      expect(response.body).toContain('Shanghai'); // not personal: shown
    }
  });

  it('masks streamed CSV exports for a marketer', async () => {
    const key = await serverKey(t);
    const created = await t.app.inject({ method: 'POST', url: '/v1/segments', headers: { authorization: `Bearer ${key}` }, payload: { key: 'sh', name: 'SH', kind: 'realtime', text: 'trait.city = "Shanghai"' } });
    expect(created.statusCode).toBe(201);
    const marketer = await userWithRole(t.app, t.db, t.workspace.id, 'marketer');
    const url = '/v1/segments/sh/export.csv?identifiers=email,phone';
    const masked = await t.app.inject({ method: 'GET', url, headers: marketer.headers() });
    expect(masked.statusCode).toBe(200);
    expect(masked.body).toContain('m******@example.com');
    expect(masked.body).not.toContain('mask.me@example.com');
    const clear = await t.app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${key}` } });
    expect(clear.body).toContain('mask.me@example.com');
  });
});
