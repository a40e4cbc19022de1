import crypto from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { verifySignature } from '../src/activation/webhook.ts';
import { putAccount } from '../src/channels/accounts.ts';
import type { MessageRequest } from '../src/channels/contract.ts';
import { createDispatcher, type DispatcherOptions } from '../src/channels/dispatch.ts';
import { enqueueMessages } from '../src/channels/index.ts';
import { flushMessageEvents, getMessage } from '../src/channels/messages.ts';
import { closeSmtpTransports } from '../src/channels/providers/smtp.ts';
import { createTemplate } from '../src/channels/template-store.ts';
import type { AccountBody, TemplateBody } from '../src/channels/schemas.ts';
import { withTransaction, type Db } from '../src/storage/database.ts';
import { createWorkspace } from '../src/workspaces/store.ts';
import { insertProfile, TEST_SECRETS_KEY } from './channels-support.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';
import { startFakeHttp, type FakeServer, type FakeReply } from './support/fake-providers/http.ts';
import { startSmtpServer, type FakeSmtp } from './support/fake-providers/smtp.ts';
import { startFakeTwilio, type FakeTwilio } from './support/fake-providers/twilio.ts';

let database: TestDatabase;
let db: Db;
let ws: string;
let clock = new Date('2026-03-10T12:00:00Z');
let webhook: FakeServer;
let webhookReplies: FakeReply[] = [];
let twilio: FakeTwilio;
let smtp: FakeSmtp;
const SIGNING_SECRET = 'whsec_0123456789abcdef';

const dispatcher = (overrides: Partial<DispatcherOptions> = {}) =>
  createDispatcher({ db, secretsKey: TEST_SECRETS_KEY, publicUrl: 'https://tp.example', now: () => clock, backoffBaseMs: 1000, random: () => 0, ...overrides });

async function setUp(account: AccountBody, template: TemplateBody) {
  await withTransaction(db, async (client) => {
    await putAccount(client, TEST_SECRETS_KEY, ws, account);
    await createTemplate(client, ws, template);
  });
}

const request = (profileId: string, overrides: Partial<MessageRequest>): MessageRequest => ({
  workspaceId: ws,
  profileId,
  channel: 'webhook',
  templateKey: 'hook',
  idempotencyKey: crypto.randomUUID(),
  purpose: 'transactional',
  variables: { event: { sku: 'A-1' } },
  ...overrides,
});

async function enqueue(requests: MessageRequest[]) {
  return withTransaction(db, (client) => enqueueMessages(client, requests, clock));
}

async function drain(options: Partial<DispatcherOptions> = {}) {
  const d = dispatcher(options);
  let total = 0;
  for (let n = await d.dispatchOnce(); n > 0; n = await d.dispatchOnce()) total += n;
  return total;
}

beforeAll(async () => {
  database = await createTestDatabase();
  db = database.db;
  ws = (await createWorkspace(db, { slug: 'acme', name: 'Acme' })).id;
  webhook = await startFakeHttp(() => webhookReplies.shift() ?? { status: 200, body: { ok: true } });
  twilio = await startFakeTwilio('AC0001', 'twilio-auth-token');
  smtp = await startSmtpServer();
  await setUp(
    { key: 'hook', kind: 'webhook', provider: 'webhook', settings: { url: `${webhook.url}/receive` }, secrets: { signingSecret: SIGNING_SECRET } },
    { key: 'hook', channel: 'webhook', name: 'Hook', defaultLocale: 'en', content: { en: { body: '{"sku": "{{ event.sku }}", "name": "{{ traits.name }}"}' } } },
  );
  await setUp(
    { key: 'twilio', kind: 'sms', provider: 'twilio', settings: { accountSid: 'AC0001', from: '+15550006666', baseUrl: twilio.url }, secrets: { authToken: 'twilio-auth-token' } },
    { key: 'otp', channel: 'sms', name: 'OTP', defaultLocale: 'en', content: { en: { text: 'Code {{ event.code }}' }, 'zh-CN': { text: '验证码 {{ event.code }}' } } },
  );
  await setUp(
    { key: 'mail', kind: 'email', provider: 'smtp', settings: { host: '127.0.0.1', port: smtp.port, from: 'Acme <news@acme.example>', startTls: false } },
    {
      key: 'news',
      channel: 'email',
      name: 'News',
      defaultLocale: 'en',
      content: { en: { subject: 'Hello {{ traits.name }}', html: '<html><body><a href="https://shop.example/sale?a=1&amp;b=2">Sale</a> <a href="{{ message.unsubscribe_url }}">Unsubscribe</a></body></html>', text: 'Sale at https://shop.example/sale' } },
    },
  );
});
afterAll(async () => {
  closeSmtpTransports();
  await Promise.all([webhook?.close(), twilio?.close(), smtp?.close()]);
  await database?.drop();
});
beforeEach(() => {
  webhookReplies = [];
});

describe('dispatcher', () => {
  it('sends a signed webhook with the message id as idempotency key and records Message Sent', async () => {
    const profile = await insertProfile(db, ws, { traits: { name: 'Ada' } });
    const [queued] = await enqueue([request(profile, {})]);
    expect(await drain()).toBe(1);
    const received = webhook.requests.at(-1)!;
    expect(received.headers['idempotency-key']).toBe(queued!.messageId);
    expect(verifySignature(SIGNING_SECRET, received.body, received.headers['x-touchpoint-signature'] as string, Math.floor(clock.getTime() / 1000)).ok).toBe(true);
    expect(JSON.parse(received.body)).toEqual({ messageId: queued!.messageId, profileId: profile, templateKey: 'hook', body: { sku: 'A-1', name: 'Ada' } });
    expect((await getMessage(db, ws, queued!.messageId))).toMatchObject({ status: 'sent', attempts: 1, provider: 'webhook' });
    while ((await flushMessageEvents(db, 1000, clock)) > 0);
    const { rows } = await db.query<{ event: string; properties: Record<string, unknown> }>('select event, properties from events where workspace_id = $1 and profile_id = $2 order by seq', [ws, profile]);
    expect(rows.map((r) => r.event)).toEqual(['Message Queued', 'Message Sent']);
    expect(rows[1]!.properties).toMatchObject({ message_id: queued!.messageId, provider: 'webhook', channel: 'webhook', purpose: 'transactional' });
  });

  it('retries retryable errors with backoff, then fails into the dead letters after maxAttempts', async () => {
    const profile = await insertProfile(db, ws, { traits: { name: 'Bo' } });
    const [retried, dead] = await enqueue([request(profile, {}), request(profile, {})]);
    webhookReplies = [{ status: 503, body: {} }, { status: 400, body: {} }];
    expect(await drain()).toBe(2);
    const first = await getMessage(db, ws, retried!.messageId);
    // The 400 is final at once; the 503 waits attempt-1 backoff (base 1 s, jitter 0 → 500 ms).
    const statuses = [first!.status, (await getMessage(db, ws, dead!.messageId))!.status].sort();
    expect(statuses).toEqual(['failed', 'queued']);
    const waiting = first!.status === 'queued' ? first! : (await getMessage(db, ws, dead!.messageId))!;
    expect(waiting.dueAt.getTime() - clock.getTime()).toBe(500);
    expect(await drain()).toBe(0); // not due yet
    clock = new Date(clock.getTime() + 1000);
    webhookReplies = [{ status: 503, body: {} }, { status: 503, body: {} }];
    await drain({ maxAttempts: 3 });
    clock = new Date(clock.getTime() + 10_000);
    await drain({ maxAttempts: 3 });
    const exhausted = await getMessage(db, ws, waiting.messageId);
    expect(exhausted).toMatchObject({ status: 'failed', attempts: 3 });
    expect(exhausted!.reason).toMatch(/^attempts_exhausted: webhook answered 503/);
    expect(exhausted!.history.map((h) => h.status)).toEqual(['queued', 'queued', 'queued', 'failed']);
  });

  it('sends SMS through Twilio in the profile locale; an invalid number fails for good and is suppressed; 429 retries', async () => {
    const chinese = await insertProfile(db, ws, { traits: { phone: '+8613800000000', locale: 'zh-CN' } });
    const invalid = await insertProfile(db, ws, { traits: { phone: '+15005550001' } });
    const [ok, bad] = await enqueue([
      request(chinese, { channel: 'sms', templateKey: 'otp', variables: { event: { code: '1234' } } }),
      request(invalid, { channel: 'sms', templateKey: 'otp', variables: { event: { code: '9' } } }),
    ]);
    await drain();
    const sent = await getMessage(db, ws, ok!.messageId);
    expect(sent).toMatchObject({ status: 'sent', provider: 'twilio' });
    const twilioMessage = twilio.messages.get(sent!.providerMessageId!);
    expect(twilioMessage).toMatchObject({ to: '+8613800000000', from: '+15550006666', body: '验证码 1234' });
    expect(twilioMessage!.statusCallback).toMatch(/^https:\/\/tp\.example\/v1\/channels\/callbacks\/twilio\//);
    const failed = await getMessage(db, ws, bad!.messageId);
    expect(failed).toMatchObject({ status: 'failed' });
    expect(failed!.reason).toContain('21211');
    const { rows } = await db.query('select reason from channel_suppressions where workspace_id = $1 and channel = $2 and address = $3', [ws, 'sms', '+15005550001']);
    expect(rows).toHaveLength(1);
    // The suppression now stops the next send at enqueue.
    expect((await enqueue([request(invalid, { channel: 'sms', templateKey: 'otp' })]))[0]).toMatchObject({ status: 'skipped', reason: 'suppressed' });

    twilio.throttle(1);
    const [throttled] = await enqueue([request(chinese, { channel: 'sms', templateKey: 'otp', variables: { event: { code: '5' } } })]);
    await drain();
    const waiting = await getMessage(db, ws, throttled!.messageId);
    expect(waiting).toMatchObject({ status: 'queued', attempts: 1 });
    expect(waiting!.dueAt.getTime() - clock.getTime()).toBeGreaterThanOrEqual(1000); // Retry-After: 1
    clock = new Date(clock.getTime() + 2000);
    await drain();
    expect((await getMessage(db, ws, throttled!.messageId))!.status).toBe('sent');
  });

  it('emails through a real SMTP server with tracked links, an open pixel and one-click List-Unsubscribe', async () => {
    const reader = await insertProfile(db, ws, { traits: { email: 'Reader@Example.com', name: 'Reader' } });
    const rejected = await insertProfile(db, ws, { traits: { email: 'nobody@rejected.example', name: 'X' } });
    const [mail, bounced] = await enqueue([
      request(reader, { channel: 'email', templateKey: 'news', purpose: 'marketing' }),
      request(rejected, { channel: 'email', templateKey: 'news', purpose: 'marketing' }),
    ]);
    await drain();
    expect((await getMessage(db, ws, mail!.messageId))!.status).toBe('sent');
    const received = smtp.mails.find((m) => m.to.includes('reader@example.com'))!;
    const raw = received.raw.replace(/=\r?\n/g, '').replace(/=3D/g, '=').replace(/\r?\n[ \t]+/g, ' ');
    expect(raw).toMatch(/List-Unsubscribe: <https:\/\/tp\.example\/t\/u\/[^>]+>/);
    expect(raw).toContain('List-Unsubscribe-Post: List-Unsubscribe=One-Click');
    expect(raw).toContain(`Message-ID: <${mail!.messageId}@acme.example>`);
    expect(raw).toContain('Subject: Hello Reader');
    expect(raw).toMatch(/href="https:\/\/tp\.example\/t\/c\/[^"?]+\?u=https%3A%2F%2Fshop\.example%2Fsale%3Fa%3D1%26b%3D2&amp;s=/);
    expect(raw).toMatch(/<img src="https:\/\/tp\.example\/t\/o\/[^"]+\.gif"/);
    const failed = await getMessage(db, ws, bounced!.messageId);
    expect(failed).toMatchObject({ status: 'failed' });
    expect(failed!.reason).toMatch(/^smtp 550/);
  });

  it('keeps each account within its rate per second', async () => {
    await withTransaction(db, (client) =>
      putAccount(client, TEST_SECRETS_KEY, ws, { key: 'hook', kind: 'webhook', provider: 'webhook', settings: { url: `${webhook.url}/receive`, ratePerSecond: 3 }, secrets: { signingSecret: SIGNING_SECRET } }),
    );
    const profile = await insertProfile(db, ws, { traits: { name: 'Rate' } });
    await enqueue(Array.from({ length: 7 }, () => request(profile, {})));
    const d = dispatcher();
    expect(await d.dispatchOnce()).toBe(3);
    expect(await d.dispatchOnce()).toBe(0);
    clock = new Date(clock.getTime() + 1000);
    expect(await d.dispatchOnce()).toBe(3);
    clock = new Date(clock.getTime() + 1000);
    expect(await d.dispatchOnce()).toBe(1);
    await withTransaction(db, (client) =>
      putAccount(client, TEST_SECRETS_KEY, ws, { key: 'hook', kind: 'webhook', provider: 'webhook', settings: { url: `${webhook.url}/receive` }, secrets: { signingSecret: SIGNING_SECRET } }),
    );
  });

  it('reconciles sends left in flight by a crash: resent under the same key when idempotent, never repeated otherwise', async () => {
    const profile = await insertProfile(db, ws, { traits: { name: 'Crash', phone: '+8613800000099' } });
    const [hook, sms] = await enqueue([request(profile, {}), request(profile, { channel: 'sms', templateKey: 'otp', variables: { event: { code: '1' } } })]);
    // A crash after the claim committed: both rows are `sending`, no outcome was written.
    await db.query(`update messages set status = 'sending', claimed_at = $2 where workspace_id = $1 and id = any($3::uuid[])`, [ws, clock, [hook!.messageId, sms!.messageId]]);
    const d = dispatcher({ leaseMs: 60_000 });
    expect(await d.reconcileOnce()).toBe(0); // within the lease: maybe still in flight
    clock = new Date(clock.getTime() + 61_000);
    expect(await d.reconcileOnce()).toBe(2);
    expect((await getMessage(db, ws, sms!.messageId))).toMatchObject({ status: 'failed', reason: 'outcome_unknown' });
    const before = webhook.requests.length;
    await drain();
    expect(webhook.requests.length).toBe(before + 1);
    expect(webhook.requests.at(-1)!.headers['idempotency-key']).toBe(hook!.messageId);
    expect((await getMessage(db, ws, hook!.messageId))!.status).toBe('sent');
  });
});
