import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChannelAccount } from '../src/channels/accounts.ts';
import { aliyunAdapter } from '../src/channels/providers/aliyun.ts';
import { fcmAdapter } from '../src/channels/providers/fcm.ts';
import type { OutgoingMessage, ProviderContext } from '../src/channels/providers/types.ts';
import { wechatAdapter, wecomAdapter } from '../src/channels/providers/wechat.ts';
import { startFakeAliyun, type FakeAliyun } from './support/fake-providers/aliyun.ts';
import { startFakeFcm, type FakeFcm } from './support/fake-providers/fcm.ts';
import { startFakeWeixin, type FakeWeixin } from './support/fake-providers/wechat.ts';

const context: ProviderContext = { fetch, now: () => new Date(), timeoutMs: 5000 };
const message = (address: string, fields: Record<string, string>): OutgoingMessage => ({
  workspaceId: 'ws',
  messageId: crypto.randomUUID(),
  profileId: 'p',
  templateKey: 't',
  address,
  fields,
});
const account = (key: string, provider: string, settings: ChannelAccount['settings'], secrets: Record<string, string>): ChannelAccount => ({
  workspaceId: `ws-${crypto.randomUUID()}`,
  key,
  kind: 'sms',
  provider,
  settings,
  secrets,
});

describe('Aliyun SMS', () => {
  let aliyun: FakeAliyun;
  let sms: ChannelAccount;
  beforeAll(async () => {
    aliyun = await startFakeAliyun('LTAI5tExample', 'aliyun-secret');
    sms = account('aliyun', 'aliyun', { accessKeyId: 'LTAI5tExample', signName: '触点', endpoint: aliyun.url }, { accessKeySecret: 'aliyun-secret' });
  });
  afterAll(async () => aliyun?.close());

  it('signs SendSms so the service accepts it, with the provider template, params and our id as OutId', async () => {
    const sent = message('+8613800001111', { provider_template: 'SMS_123456', 'param.code': '8421', 'param.name': '小明' });
    const outcome = await aliyunAdapter.send(sms, sent, context);
    expect(outcome).toEqual({ ok: true, providerMessageId: aliyun.sent[0]!.bizId });
    expect(aliyun.sent[0]).toMatchObject({ phone: '13800001111', signName: '触点', templateCode: 'SMS_123456', templateParam: { code: '8421', name: '小明' }, outId: sent.messageId });
  });

  it('maps error codes: wrong secret is final, flow control retries, an illegal number is an invalid recipient', async () => {
    const wrong = await aliyunAdapter.send({ ...sms, secrets: { accessKeySecret: 'nope' } }, message('13800001111', { provider_template: 'SMS_1' }), context);
    expect(wrong).toMatchObject({ ok: false, retryable: false, reason: expect.stringContaining('SignatureDoesNotMatch') });
    aliyun.throttle(1);
    expect(await aliyunAdapter.send(sms, message('13800001111', { provider_template: 'SMS_1' }), context)).toMatchObject({ ok: false, retryable: true, reason: expect.stringContaining('isv.BUSINESS_LIMIT_CONTROL') });
    expect(await aliyunAdapter.send(sms, message('10000000000', { provider_template: 'SMS_1' }), context)).toMatchObject({ ok: false, retryable: false, invalidRecipient: true });
  });
});

describe('WeChat official account and WeCom', () => {
  let wechat: FakeWeixin;
  let wecom: FakeWeixin;
  let oa: ChannelAccount;
  let corp: ChannelAccount;
  beforeAll(async () => {
    wechat = await startFakeWeixin('wechat', 'wx123', 'wx-secret', ['oOpenId1']);
    wecom = await startFakeWeixin('wecom', 'ww456', 'corp-secret', ['zhangsan']);
    oa = { ...account('oa', 'wechat', { appId: 'wx123', baseUrl: wechat.url }, { appSecret: 'wx-secret' }), kind: 'wechat' };
    corp = { ...account('corp', 'wecom', { corpId: 'ww456', agentId: 1000002, baseUrl: wecom.url }, { corpSecret: 'corp-secret' }), kind: 'wecom' };
  });
  afterAll(async () => Promise.all([wechat?.close(), wecom?.close()]));

  it('sends a template message with data fields, fetching the access token once and caching it', async () => {
    const fields = { template_id: 'TPL-1', url: 'https://shop.example/o/1', 'data.first': '订单已发货', 'data.keyword1': 'A-1' };
    expect(await wechatAdapter.send(oa, message('oOpenId1', fields), context)).toMatchObject({ ok: true });
    expect(await wechatAdapter.send(oa, message('oOpenId1', fields), context)).toMatchObject({ ok: true });
    expect(wechat.tokensIssued).toBe(1);
    expect(wechat.delivered[0]!.body).toMatchObject({ touser: 'oOpenId1', template_id: 'TPL-1', url: 'https://shop.example/o/1', data: { first: { value: '订单已发货' }, keyword1: { value: 'A-1' } } });
  });

  it('refreshes the token on 40001 and retries once; maps 40003 and 45009', async () => {
    wechat.expireTokens();
    expect(await wechatAdapter.send(oa, message('oOpenId1', { template_id: 'TPL-1' }), context)).toMatchObject({ ok: true });
    expect(wechat.tokensIssued).toBe(2);
    expect(await wechatAdapter.send(oa, message('oStranger', { template_id: 'TPL-1' }), context)).toMatchObject({ ok: false, retryable: false, invalidRecipient: true, reason: expect.stringContaining('40003') });
    wechat.throttle(1);
    expect(await wechatAdapter.send(oa, message('oOpenId1', { template_id: 'TPL-1' }), context)).toMatchObject({ ok: false, retryable: true, reason: expect.stringContaining('45009') });
    const badSecret = await wechatAdapter.send({ ...oa, workspaceId: 'other', secrets: { appSecret: 'x' } }, message('oOpenId1', { template_id: 'T' }), context);
    expect(badSecret).toMatchObject({ ok: false, retryable: false, reason: expect.stringContaining('40125') });
  });

  it('sends a WeCom application text message; an unknown member is an invalid recipient', async () => {
    expect(await wecomAdapter.send(corp, message('zhangsan', { text: '您好' }), context)).toMatchObject({ ok: true, providerMessageId: expect.stringMatching(/^msg/) });
    expect(wecom.delivered[0]!.body).toMatchObject({ touser: 'zhangsan', msgtype: 'text', agentid: 1000002, text: { content: '您好' } });
    expect(await wecomAdapter.send(corp, message('lisi', { text: 'x' }), context)).toMatchObject({ ok: false, retryable: false, invalidRecipient: true });
  });
});

describe('FCM HTTP v1', () => {
  let fcm: FakeFcm;
  let push: ChannelAccount;
  beforeAll(async () => {
    const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
    fcm = await startFakeFcm('touchpoint-demo', 'push@touchpoint-demo.iam.gserviceaccount.com', publicKey.export({ type: 'spki', format: 'pem' }).toString(), ['device-1']);
    push = {
      ...account('fcm', 'fcm', { projectId: 'touchpoint-demo', clientEmail: 'push@touchpoint-demo.iam.gserviceaccount.com', tokenUri: `${fcm.url}/token`, baseUrl: fcm.url }, {
        privateKey: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
      }),
      kind: 'push',
    };
  });
  afterAll(async () => fcm?.close());

  it('exchanges a service-account JWT for a token, sends, and reuses the token', async () => {
    const sent = message('device-1', { title: 'Cart', body: 'You left something', 'data.deep_link': '/cart' });
    expect(await fcmAdapter.send(push, sent, context)).toMatchObject({ ok: true, providerMessageId: expect.stringMatching(/^projects\/touchpoint-demo\/messages\//) });
    expect(await fcmAdapter.send(push, message('device-1', { title: 'a', body: 'b' }), context)).toMatchObject({ ok: true });
    expect(fcm.tokenExchanges).toBe(1);
    expect(fcm.delivered[0]).toEqual({ token: 'device-1', notification: { title: 'Cart', body: 'You left something' }, data: { touchpoint_message_id: sent.messageId, deep_link: '/cart' } });
  });

  it('refreshes a revoked token on 401; UNREGISTERED is an invalid recipient; 429 retries after Retry-After', async () => {
    fcm.revokeAccessTokens();
    expect(await fcmAdapter.send(push, message('device-1', { title: 'a', body: 'b' }), context)).toMatchObject({ ok: true });
    expect(fcm.tokenExchanges).toBe(2);
    expect(await fcmAdapter.send(push, message('device-gone', { title: 'a', body: 'b' }), context)).toMatchObject({ ok: false, retryable: false, invalidRecipient: true, reason: expect.stringContaining('UNREGISTERED') });
    fcm.throttle(1);
    expect(await fcmAdapter.send(push, message('device-1', { title: 'a', body: 'b' }), context)).toMatchObject({ ok: false, retryable: true, retryAfterMs: 2000 });
  });
});
