import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDispatcher } from '../src/channels/dispatch.ts';
import { flushMessageEvents } from '../src/channels/messages.ts';
import { twilioSignature } from '../src/channels/providers/twilio.ts';
import { messageLinks, trackingKey, accountCallbackUrl } from '../src/channels/tracking.ts';
import { insertProfile, startChannelsApp, TEST_SECRETS_KEY, type ChannelsTestApp } from './channels-support.ts';
import { startFakeTwilio, type FakeTwilio } from './support/fake-providers/twilio.ts';
import { startFakeHttp, type FakeServer } from './support/fake-providers/http.ts';

const PUBLIC = 'https://tp.example';
let t: ChannelsTestApp;
let twilio: FakeTwilio;
let hook: FakeServer;
let profile: string;
const key = trackingKey(TEST_SECRETS_KEY);

const dispatch = async () => {
  const d = createDispatcher({ db: t.db, secretsKey: TEST_SECRETS_KEY, publicUrl: PUBLIC });
  while ((await d.dispatchOnce()) > 0);
};
const send = async (body: Record<string, unknown>) => (await t.call('POST', '/v1/channels/send', body)).json() as { messageId: string; status: string; reason?: string };
const path = (url: string) => url.replace(PUBLIC, '');

beforeAll(async () => {
  t = await startChannelsApp({ publicUrl: PUBLIC });
  twilio = await startFakeTwilio('AC9', 'tw-token');
  hook = await startFakeHttp(() => ({ status: 200, body: {} }));
  expect((await t.call('PUT', '/v1/channels/accounts/sms', { key: 'sms', kind: 'sms', provider: 'twilio', settings: { accountSid: 'AC9', from: '+15550001234', baseUrl: twilio.url }, secrets: { authToken: 'tw-token' } })).statusCode).toBe(200);
  expect((await t.call('PUT', '/v1/channels/accounts/hook', { key: 'hook', kind: 'webhook', provider: 'webhook', settings: { url: hook.url }, secrets: { signingSecret: 'hook-secret-0123456' } })).statusCode).toBe(200);
  expect((await t.call('POST', '/v1/channels/templates', { key: 'promo', channel: 'sms', name: 'Promo', defaultLocale: 'en', content: { en: { text: 'Sale! Stop: {{ message.unsubscribe_url }}' } } })).statusCode).toBe(201);
  expect((await t.call('POST', '/v1/channels/templates', { key: 'hook', channel: 'webhook', name: 'Hook', defaultLocale: 'en', content: { en: { body: '{}' } } })).statusCode).toBe(201);
  profile = await insertProfile(t.db, t.workspaceId, { traits: { phone: '+8613900000000' } });
});
afterAll(async () => {
  await Promise.all([twilio?.close(), hook?.close()]);
  await t?.close();
});

describe('provider callbacks', () => {
  it('a signed Twilio status callback marks the message delivered; a forged one is refused', async () => {
    const queued = await send({ profileId: profile, channel: 'sms', templateKey: 'promo', idempotencyKey: 'k-1', purpose: 'marketing' });
    expect(queued.status).toBe('queued');
    expect((await send({ profileId: profile, channel: 'sms', templateKey: 'promo', idempotencyKey: 'k-1', purpose: 'marketing' })).status).toBe('duplicate');
    await dispatch();
    const [sid, sent] = [...twilio.messages.entries()].at(-1)!;
    expect(sent.body).toMatch(/^Sale! Stop: https:\/\/tp\.example\/t\/u\//);
    const params = { MessageSid: sid, MessageStatus: 'delivered', To: '+8613900000000', AccountSid: 'AC9' };
    const post = (signature: string) =>
      t.app.inject({ method: 'POST', url: path(sent.statusCallback!), headers: { 'x-twilio-signature': signature, 'content-type': 'application/x-www-form-urlencoded' }, payload: new URLSearchParams(params).toString() });
    expect((await post('bad')).statusCode).toBe(403);
    expect((await post(twilioSignature('tw-token', sent.statusCallback!, params))).statusCode).toBe(204);
    const detail = (await t.call('GET', `/v1/channels/messages/${queued.messageId}`)).json();
    expect(detail).toMatchObject({ status: 'delivered', providerMessageId: sid, provider: 'twilio' });
    expect(detail.history.map((h: { status: string }) => h.status)).toEqual(['queued', 'sent', 'delivered']);
  });

  it('Aliyun delivery reports settle messages by OutId', async () => {
    const queued = await send({ profileId: profile, channel: 'webhook', templateKey: 'hook', idempotencyKey: 'k-aliyun', purpose: 'transactional' });
    const url = accountCallbackUrl(key, PUBLIC, t.workspaceId, 'aliyun', 'aliyun');
    const response = await t.app.inject({
      method: 'POST',
      url: path(url),
      payload: [{ phone_number: '13900000000', success: false, err_code: 'MOBILE_NOT_ON_SERVICE', err_msg: '停机', out_id: queued.messageId, biz_id: '1^2' }],
    });
    expect(response.json()).toEqual({ code: 0, msg: '接收成功' });
    expect((await t.call('GET', `/v1/channels/messages/${queued.messageId}`)).json()).toMatchObject({ status: 'failed', reason: 'aliyun MOBILE_NOT_ON_SERVICE: 停机' });
    expect((await t.call('GET', '/v1/channels/dead-letters')).json().items.map((m: { messageId: string }) => m.messageId)).toContain(queued.messageId);
    const retried = await t.call('POST', `/v1/channels/messages/${queued.messageId}/retry`);
    expect(retried.statusCode).toBe(202);
    expect(retried.json().status).toBe('queued');
    expect((await t.call('POST', `/v1/channels/messages/${queued.messageId}/retry`)).statusCode).toBe(409);
  });
});

describe('tracking and unsubscribe', () => {
  it('counts the first open, every click (redirecting only to signed targets), and keeps the furthest status', async () => {
    const { messageId } = await send({ profileId: profile, channel: 'sms', templateKey: 'promo', idempotencyKey: 'k-track', purpose: 'marketing' });
    await dispatch();
    const links = messageLinks(key, PUBLIC, t.workspaceId, messageId);
    const pixel = await t.app.inject({ method: 'GET', url: path(links.openPixelUrl) });
    expect(pixel.statusCode).toBe(200);
    expect(pixel.headers['content-type']).toBe('image/gif');
    await t.app.inject({ method: 'GET', url: path(links.openPixelUrl) });
    const click = await t.app.inject({ method: 'GET', url: path(links.clickUrl('https://shop.example/p?id=1')) });
    expect(click.statusCode).toBe(302);
    expect(click.headers.location).toBe('https://shop.example/p?id=1');
    await t.app.inject({ method: 'GET', url: path(links.openPixelUrl) });
    const tampered = path(links.clickUrl('https://shop.example/p?id=1')).replace('shop.example', 'evil.example');
    expect((await t.app.inject({ method: 'GET', url: tampered })).statusCode).toBe(400);
    expect((await t.app.inject({ method: 'GET', url: '/t/c/not.atoken?u=https://x&s=y' })).statusCode).toBe(404);
    const detail = (await t.call('GET', `/v1/channels/messages/${messageId}`)).json();
    expect(detail.status).toBe('clicked');
    expect(detail.history.map((h: { status: string }) => h.status)).toEqual(['queued', 'sent', 'opened', 'clicked']);
  });

  it('one-click unsubscribe (POST) stops marketing on the channel; GET only shows the page; events reach the timeline', async () => {
    const { messageId } = await send({ profileId: profile, channel: 'sms', templateKey: 'promo', idempotencyKey: 'k-unsub', purpose: 'marketing' });
    const links = messageLinks(key, PUBLIC, t.workspaceId, messageId);
    const pageView = await t.app.inject({ method: 'GET', url: path(links.unsubscribeUrl) });
    expect(pageView.statusCode).toBe(200);
    expect(pageView.body).toContain('<form method="post">');
    expect((await send({ profileId: profile, channel: 'sms', templateKey: 'promo', idempotencyKey: 'k-after-get', purpose: 'marketing' })).status).toBe('queued');
    const oneClick = await t.app.inject({ method: 'POST', url: path(links.unsubscribeUrl), headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'List-Unsubscribe=One-Click' });
    expect(oneClick.statusCode).toBe(200);
    expect(await send({ profileId: profile, channel: 'sms', templateKey: 'promo', idempotencyKey: 'k-after', purpose: 'marketing' })).toMatchObject({ status: 'skipped', reason: 'unsubscribed' });
    expect((await send({ profileId: profile, channel: 'sms', templateKey: 'promo', idempotencyKey: 'k-otp', purpose: 'transactional' })).status).toBe('queued');

    // The preference page shows the choice and can subscribe again.
    const prefs = await t.app.inject({ method: 'GET', url: path(links.preferencesUrl) });
    expect(prefs.body).toContain('name="channel:sms" value="on">');
    await t.app.inject({ method: 'POST', url: path(links.preferencesUrl), headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'channel%3Asms=on&_submitted=1' });
    expect((await send({ profileId: profile, channel: 'sms', templateKey: 'promo', idempotencyKey: 'k-back', purpose: 'marketing' })).status).toBe('queued');

    while ((await flushMessageEvents(t.db)) > 0);
    const { rows } = await t.db.query<{ event: string }>('select distinct event from events where workspace_id = $1 and profile_id = $2', [t.workspaceId, profile]);
    expect(rows.map((r) => r.event).sort()).toEqual(
      ['Message Clicked', 'Message Delivered', 'Message Failed', 'Message Opened', 'Message Queued', 'Message Sent', 'Message Skipped', 'Message Unsubscribed'].sort(),
    );
  });
});

describe('management API', () => {
  it('policy, suppressions and subscription groups round-trip, with field errors', async () => {
    const policy = { frequencyCaps: [{ channel: 'sms', maxMessages: 3, windowSeconds: 604800 }], quietHours: { start: '21:00', end: '08:00' }, requireOptIn: ['sms'] };
    expect((await t.call('PUT', '/v1/channels/policy', policy)).json()).toEqual(policy);
    expect((await t.call('GET', '/v1/channels/policy')).json()).toEqual(policy);
    const bad = await t.call('PUT', '/v1/channels/policy', { ...policy, quietHours: { start: '25:00', end: '08:00' } });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().field).toMatch(/^quietHours/);
    expect((await t.call('POST', '/v1/channels/suppressions', { channel: 'email', address: 'A@B.example' })).statusCode).toBe(204);
    expect((await t.call('GET', '/v1/channels/suppressions?channel=email')).json().items).toEqual([expect.objectContaining({ address: 'a@b.example', reason: 'operator' })]);
    expect((await t.call('DELETE', '/v1/channels/suppressions?channel=email&address=a@b.example')).statusCode).toBe(204);
    expect((await t.call('DELETE', '/v1/channels/suppressions?channel=email&address=a@b.example')).statusCode).toBe(404);
    expect((await t.call('PUT', '/v1/channels/subscription-groups/news', { key: 'news', name: 'News', channel: 'email', mode: 'opt_in' })).json()).toEqual({ key: 'news', name: 'News', channel: 'email', mode: 'opt_in' });
    expect((await t.call('GET', '/v1/channels/messages')).statusCode).toBe(400);
    expect((await t.call('GET', `/v1/channels/messages?profileId=${profile}`)).json().items.length).toBeGreaterThan(3);
  });
});
