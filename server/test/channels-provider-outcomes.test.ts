import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { putAccount } from '../src/channels/accounts.ts';
import type { ChannelKind, MessageRequest } from '../src/channels/contract.ts';
import { createDispatcher } from '../src/channels/dispatch.ts';
import { enqueueMessages } from '../src/channels/index.ts';
import { getMessage, listDeadLetters } from '../src/channels/messages.ts';
import { closeSmtpTransports } from '../src/channels/providers/smtp.ts';
import { createTemplate } from '../src/channels/template-store.ts';
import type { AccountBody, TemplateBody } from '../src/channels/schemas.ts';
import { withTransaction, type Db } from '../src/storage/database.ts';
import { createWorkspace } from '../src/workspaces/store.ts';
import { insertProfile, TEST_SECRETS_KEY } from './channels-support.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';
import { startFakeAliyun, type FakeAliyun } from './support/fake-providers/aliyun.ts';
import { startFakeFcm, type FakeFcm } from './support/fake-providers/fcm.ts';
import { startSmtpServer, type FakeSmtp } from './support/fake-providers/smtp.ts';
import { startFakeTwilio, type FakeTwilio } from './support/fake-providers/twilio.ts';
import { startFakeWeixin, type FakeWeixin } from './support/fake-providers/wechat.ts';
import type { ProfileSeed } from './segments-lifecycle-support.ts';

/*
 * Every provider's own rate-limit and invalid-recipient answers, through the dispatcher on
 * PostgreSQL: throttling waits with backoff (at least the provider's Retry-After) and then sends;
 * an invalid recipient fails for good, lands in the dead letters and suppresses the address.
 */

let database: TestDatabase;
let db: Db;
let ws: string;
let clock = new Date('2026-06-01T10:00:00Z');
let aliyun: FakeAliyun;
let wechat: FakeWeixin;
let wecom: FakeWeixin;
let fcm: FakeFcm;
let twilio: FakeTwilio;
let smtp: FakeSmtp;

interface ProviderCase {
  name: string;
  channel: ChannelKind;
  account: () => AccountBody;
  template: TemplateBody['content'];
  good: ProfileSeed;
  bad: ProfileSeed;
  badAddress: string;
  /** Makes the next send hit the provider's rate limit; undefined: the provider throttles per recipient domain (SMTP). */
  throttle?: () => void;
  throttled?: ProfileSeed;
  throttleReason: RegExp;
  invalidReason: RegExp;
  minRetryMs: number;
}

const CASES: ProviderCase[] = [
  {
    name: 'aliyun',
    channel: 'sms',
    account: () => ({ key: 'aliyun', kind: 'sms', provider: 'aliyun', settings: { accessKeyId: 'LTAI5tOutcome', signName: '触点', endpoint: aliyun.url }, secrets: { accessKeySecret: 'aliyun-secret' } }),
    template: { 'zh-CN': { provider_template: 'SMS_900001', 'param.code': '{{ event.code }}' } },
    good: { traits: { phone: '+8613800000001' } },
    bad: { traits: { phone: '+8610000000000' } },
    badAddress: '+8610000000000',
    throttle: () => aliyun.throttle(1),
    throttleReason: /isv\.BUSINESS_LIMIT_CONTROL/,
    invalidReason: /isv\.MOBILE_NUMBER_ILLEGAL/,
    minRetryMs: 500,
  },
  {
    name: 'twilio',
    channel: 'sms',
    account: () => ({ key: 'twilio', kind: 'sms', provider: 'twilio', settings: { accountSid: 'AC77', from: '+15550009999', baseUrl: twilio.url }, secrets: { authToken: 'tw-secret' } }),
    template: { en: { text: 'Code {{ event.code }}' } },
    good: { traits: { phone: '+447700900123' } },
    bad: { traits: { phone: '+15005550001' } },
    badAddress: '+15005550001',
    throttle: () => twilio.throttle(1),
    throttleReason: /twilio 429 20429/,
    invalidReason: /twilio 400 21211/,
    minRetryMs: 1000,
  },
  {
    name: 'wechat',
    channel: 'wechat',
    account: () => ({ key: 'wechat', kind: 'wechat', provider: 'wechat', settings: { appId: 'wxOUT', baseUrl: wechat.url }, secrets: { appSecret: 'wx-secret' } }),
    template: { 'zh-CN': { template_id: 'TPL-code', 'data.code': '{{ event.code }}' } },
    good: { identifiers: [{ type: 'wechat_openid', value: 'oFollower' }] },
    bad: { identifiers: [{ type: 'wechat_openid', value: 'oStranger' }] },
    badAddress: 'oStranger',
    throttle: () => wechat.throttle(1),
    throttleReason: /wechat 45009/,
    invalidReason: /wechat 40003/,
    minRetryMs: 500,
  },
  {
    name: 'wecom',
    channel: 'wecom',
    account: () => ({ key: 'wecom', kind: 'wecom', provider: 'wecom', settings: { corpId: 'wwOUT', agentId: 1000002, baseUrl: wecom.url }, secrets: { corpSecret: 'corp-secret' } }),
    template: { 'zh-CN': { text: '验证码 {{ event.code }}' } },
    good: { identifiers: [{ type: 'wecom_userid', value: 'zhangsan' }] },
    bad: { identifiers: [{ type: 'wecom_userid', value: 'nobody' }] },
    badAddress: 'nobody',
    throttle: () => wecom.throttle(1),
    throttleReason: /wecom 45009/,
    invalidReason: /wecom 81013.*invalid user nobody/,
    minRetryMs: 500,
  },
  {
    name: 'fcm',
    channel: 'push',
    account: () => ({
      key: 'fcm',
      kind: 'push',
      provider: 'fcm',
      settings: { projectId: 'tp-outcomes', clientEmail: 'push@tp-outcomes.iam.gserviceaccount.com', tokenUri: `${fcm.url}/token`, baseUrl: fcm.url },
      secrets: { privateKey: fcmKeys.privateKey },
    }),
    template: { en: { title: 'Code', body: '{{ event.code }}' } },
    good: { identifiers: [{ type: 'push_token', value: 'device-ok' }] },
    bad: { identifiers: [{ type: 'push_token', value: 'device-uninstalled' }] },
    badAddress: 'device-uninstalled',
    throttle: () => fcm.throttle(1),
    throttleReason: /fcm 429 QUOTA_EXCEEDED/,
    invalidReason: /fcm 404 UNREGISTERED/,
    minRetryMs: 2000,
  },
  {
    name: 'smtp',
    channel: 'email',
    account: () => ({ key: 'smtp', kind: 'email', provider: 'smtp', settings: { host: '127.0.0.1', port: smtp.port, from: 'codes@acme.example', startTls: false } }),
    template: { en: { subject: 'Code', text: '{{ event.code }}' } },
    good: { traits: { email: 'ok@customers.example' } },
    bad: { traits: { email: 'gone@rejected.example' } },
    badAddress: 'gone@rejected.example',
    throttled: { traits: { email: 'busy@tempfail.example' } },
    throttleReason: /smtp 451/,
    invalidReason: /smtp 550/,
    minRetryMs: 500,
  },
];

const fcmKeys = (() => {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { privateKey: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), publicKey: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
})();

const drain = async () => {
  const d = createDispatcher({ db, secretsKey: TEST_SECRETS_KEY, publicUrl: 'https://tp.example', now: () => clock, backoffBaseMs: 1000, random: () => 0 });
  while ((await d.dispatchOnce()) > 0);
};

beforeAll(async () => {
  database = await createTestDatabase();
  db = database.db;
  ws = (await createWorkspace(db, { slug: 'outcomes', name: 'Outcomes' })).id;
  aliyun = await startFakeAliyun('LTAI5tOutcome', 'aliyun-secret');
  wechat = await startFakeWeixin('wechat', 'wxOUT', 'wx-secret', ['oFollower']);
  wecom = await startFakeWeixin('wecom', 'wwOUT', 'corp-secret', ['zhangsan']);
  fcm = await startFakeFcm('tp-outcomes', 'push@tp-outcomes.iam.gserviceaccount.com', fcmKeys.publicKey, ['device-ok']);
  twilio = await startFakeTwilio('AC77', 'tw-secret');
  smtp = await startSmtpServer();
  await withTransaction(db, async (client) => {
    for (const c of CASES) {
      await putAccount(client, TEST_SECRETS_KEY, ws, c.account());
      await createTemplate(client, ws, { key: `code-${c.name}`, channel: c.channel, name: c.name, defaultLocale: Object.keys(c.template)[0]!, content: c.template });
    }
  });
});
afterAll(async () => {
  closeSmtpTransports();
  await Promise.all([aliyun, wechat, wecom, fcm, twilio, smtp].map((server) => server?.close()));
  await database?.drop();
});

describe.each(CASES)('$name through the dispatcher', (c) => {
  const request = (profileId: string): MessageRequest => ({
    workspaceId: ws,
    profileId,
    channel: c.channel,
    channelConfigKey: c.name,
    templateKey: `code-${c.name}`,
    idempotencyKey: crypto.randomUUID(),
    purpose: 'transactional',
    variables: { event: { code: '4321' } },
  });
  // Identifiers are unique to a profile: the good recipient is one profile for both tests.
  let goodProfile: string | undefined;
  const good = async () => (goodProfile ??= await insertProfile(db, ws, c.good));
  const enqueue = async (profileId: string) => (await withTransaction(db, (client) => enqueueMessages(client, [request(profileId)], clock)))[0]!;

  it('a rate-limit answer waits (backoff, at least Retry-After) and then sends', async () => {
    const profile = c.throttled ? await insertProfile(db, ws, c.throttled) : await good();
    const { messageId } = await enqueue(profile);
    c.throttle?.();
    await drain();
    const waiting = await getMessage(db, ws, messageId);
    expect(waiting).toMatchObject({ status: 'queued', attempts: 1 });
    expect(waiting!.reason).toMatch(c.throttleReason);
    expect(waiting!.dueAt.getTime() - clock.getTime()).toBeGreaterThanOrEqual(c.minRetryMs);
    if (!c.throttle) return; // SMTP: the relay keeps answering 451 for that domain; the retry schedule is what matters.
    clock = new Date(clock.getTime() + 5_000);
    await drain();
    expect(await getMessage(db, ws, messageId)).toMatchObject({ status: 'sent', attempts: 2 });
  });

  it('an invalid recipient fails for good, lands in the dead letters and is suppressed', async () => {
    const profile = await insertProfile(db, ws, c.bad);
    const { messageId } = await enqueue(profile);
    await drain();
    const failed = await getMessage(db, ws, messageId);
    expect(failed).toMatchObject({ status: 'failed', attempts: 1 });
    expect(failed!.reason).toMatch(c.invalidReason);
    expect(failed!.history.at(-1)!.detail).toMatchObject({ permanent: true, invalid_recipient: true });
    expect((await listDeadLetters(db, ws, 100)).map((m) => m.messageId)).toContain(messageId);
    const { rows } = await db.query<{ reason: string }>('select reason from channel_suppressions where workspace_id = $1 and channel = $2 and address = $3', [ws, c.channel, c.badAddress]);
    expect(rows[0]?.reason).toMatch(/^invalid_recipient: /);
    expect(await enqueue(profile)).toMatchObject({ status: 'skipped', reason: 'suppressed' });
    // The good address still receives.
    const ok = await enqueue(await good());
    await drain();
    expect((await getMessage(db, ws, ok.messageId))!.status).toBe('sent');
  });
});
