import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { insertProfile, startChannelsApp, type ChannelsTestApp } from './channels-support.ts';

let t: ChannelsTestApp;
beforeAll(async () => {
  t = await startChannelsApp();
});
afterAll(async () => t?.close());

describe('channel accounts', () => {
  it('stores secrets encrypted and never returns them', async () => {
    const put = await t.call('PUT', '/v1/channels/accounts/twilio-main', {
      key: 'twilio-main',
      kind: 'sms',
      provider: 'twilio',
      settings: { accountSid: 'AC123', from: '+15550001111', ratePerSecond: 5 },
      secrets: { authToken: 'super-secret-token' },
    });
    expect(put.statusCode).toBe(200);
    expect(put.body).not.toContain('super-secret-token');
    expect(put.json()).toMatchObject({ key: 'twilio-main', kind: 'sms', isDefault: true, secretNames: ['authToken'] });
    const { rows } = await t.db.query<{ secrets_sealed: string }>('select secrets_sealed from channel_accounts where key = $1', ['twilio-main']);
    expect(rows[0]!.secrets_sealed).not.toContain('super-secret-token');
    const list = await t.call('GET', '/v1/channels/accounts');
    expect(list.body).not.toContain('super-secret-token');
    expect(list.json().items).toHaveLength(1);
  });

  it('refuses unknown providers and missing settings or secrets, naming the field', async () => {
    const base = { key: 'x', kind: 'sms', settings: { accountSid: 'AC1', from: '+1555' } };
    const unknown = await t.call('PUT', '/v1/channels/accounts/x', { ...base, provider: 'nexmo', secrets: { authToken: 'a' } });
    expect(unknown.statusCode).toBe(400);
    expect(unknown.json()).toMatchObject({ field: 'provider' });
    const noSecret = await t.call('PUT', '/v1/channels/accounts/x', { ...base, provider: 'twilio' });
    expect(noSecret.json()).toMatchObject({ error: 'invalid_request', field: 'secrets.authToken' });
    const mismatch = await t.call('PUT', '/v1/channels/accounts/y', { ...base, provider: 'twilio', secrets: { authToken: 'a' } });
    expect(mismatch.json()).toMatchObject({ field: 'key' });
  });

  it('keeps one default per kind', async () => {
    const aliyun = await t.call('PUT', '/v1/channels/accounts/aliyun-cn', {
      key: 'aliyun-cn',
      kind: 'sms',
      provider: 'aliyun',
      settings: { accessKeyId: 'LTAI', signName: 'Touchpoint' },
      secrets: { accessKeySecret: 's' },
      isDefault: true,
    });
    expect(aliyun.json().isDefault).toBe(true);
    expect((await t.call('GET', '/v1/channels/accounts/twilio-main')).json().isDefault).toBe(false);
    expect((await t.call('DELETE', '/v1/channels/accounts/aliyun-cn')).statusCode).toBe(204);
    expect((await t.call('GET', '/v1/channels/accounts/aliyun-cn')).statusCode).toBe(404);
  });

  it('needs a server key', async () => {
    expect((await t.call('GET', '/v1/channels/accounts', undefined, 'nope')).statusCode).toBe(401);
  });
});

describe('templates', () => {
  const welcome = {
    key: 'welcome',
    channel: 'email',
    name: 'Welcome',
    defaultLocale: 'en',
    content: {
      en: { subject: 'Welcome {{ traits.first_name | default: "friend" }}', html: '<p>Your code {{ journey.code }}</p>', text: 'Code {{ journey.code }}' },
      'zh-CN': { subject: '欢迎 {{ traits.first_name }}', text: '优惠码 {{ journey.code }}' },
    },
  };

  it('creates version 1, adds versions, and keeps old versions readable', async () => {
    const created = await t.call('POST', '/v1/channels/templates', welcome);
    expect(created.statusCode).toBe(201);
    expect(created.json()).toMatchObject({ key: 'welcome', version: 1, latestVersion: 1 });
    expect((await t.call('POST', '/v1/channels/templates', welcome)).statusCode).toBe(409);
    const v2 = await t.call('POST', '/v1/channels/templates/welcome/versions', { defaultLocale: 'en', content: { en: { subject: 'Hi v2', text: 'v2' } } });
    expect(v2.json()).toMatchObject({ version: 2, latestVersion: 2 });
    expect((await t.call('GET', '/v1/channels/templates/welcome?version=1')).json().content.en.subject).toContain('Welcome');
    expect((await t.call('GET', '/v1/channels/templates/welcome')).json().content.en.subject).toBe('Hi v2');
    expect((await t.call('GET', '/v1/channels/templates')).json().items).toEqual([expect.objectContaining({ key: 'welcome', latestVersion: 2 })]);
  });

  it('refuses a template with a Liquid error, listing each problem with line:column', async () => {
    const bad = await t.call('POST', '/v1/channels/templates', {
      ...welcome,
      key: 'broken',
      content: { en: { subject: 'ok', text: 'line one\n{% if traits.vip %}VIP' } },
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toMatchObject({ error: 'invalid_template', field: 'content' });
    expect(bad.json().details.problems[0].path).toMatch(/^en\.text \d+:\d+$/);
    expect((await t.call('GET', '/v1/channels/templates/broken')).statusCode).toBe(404);
  });

  it('checks a version against what a journey will provide', async () => {
    const missing = await t.call('POST', '/v1/channels/templates/welcome/check', { version: 1 });
    expect(missing.json().problems.map((p: { path: string }) => p.path)).toEqual(['en.html', 'en.text', 'zh-CN.text']);
    const ok = await t.call('POST', '/v1/channels/templates/welcome/check', { version: 1, journeyVariables: ['code'] });
    expect(ok.json()).toEqual({ problems: [] });
  });

  it('previews with a real profile in its locale, and reports a render error clearly', async () => {
    const chinese = await insertProfile(t.db, t.workspaceId, { traits: { first_name: '小明', locale: 'zh-CN' } });
    const preview = await t.call('POST', '/v1/channels/templates/welcome/preview', { profileId: chinese, version: 1, journey: { code: 'C1' } });
    expect(preview.statusCode).toBe(200);
    expect(preview.json()).toEqual({ locale: 'zh-CN', version: 1, fields: { subject: '欢迎 小明', text: '优惠码 C1' } });
    const anonymous = await insertProfile(t.db, t.workspaceId, {});
    const english = await t.call('POST', '/v1/channels/templates/welcome/preview', { profileId: anonymous, version: 1, journey: { code: 'C1' } });
    expect(english.json().fields.subject).toBe('Welcome friend');
    const failed = await t.call('POST', '/v1/channels/templates/welcome/preview', { profileId: anonymous, version: 1, locale: 'zh-CN', journey: { code: 'C' } });
    expect(failed.statusCode).toBe(422);
    expect(failed.json()).toMatchObject({ error: 'render_error', field: 'zh-CN.subject 1:7' });
    const nobody = await t.call('POST', '/v1/channels/templates/welcome/preview', { profileId: '00000000-0000-4000-8000-000000000000' });
    expect(nobody.statusCode).toBe(404);
  });
});
