import nodemailer from 'nodemailer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseBounce } from '../src/channels/bounces.ts';
import { createDispatcher } from '../src/channels/dispatch.ts';
import { flushMessageEvents } from '../src/channels/messages.ts';
import { closeSmtpTransports } from '../src/channels/providers/smtp.ts';
import { insertProfile, startChannelsApp, TEST_SECRETS_KEY, type ChannelsTestApp } from './channels-support.ts';
import { startSmtpServer, type FakeSmtp } from './support/fake-providers/smtp.ts';
import { startFakeWeixin, templateSendJobFinish, type FakeWeixin } from './support/fake-providers/wechat.ts';

/*
 * Delivery receipts flowing back into the profile timeline: WeChat's TEMPLATESENDJOBFINISH push
 * (XML, signed with the account's server token) and email bounces (delivery status
 * notifications relayed through a real SMTP server on loopback, then handed to the bounce URL).
 */

const PUBLIC = 'https://tp.example';
let t: ChannelsTestApp;
let wechat: FakeWeixin;
let smtp: FakeSmtp;
let wechatCallback: string;
let bounceCallback: string;

const path = (url: string) => url.replace(PUBLIC, '');
const dispatch = async () => {
  const d = createDispatcher({ db: t.db, secretsKey: TEST_SECRETS_KEY, publicUrl: PUBLIC });
  while ((await d.dispatchOnce()) > 0);
};
const send = async (body: Record<string, unknown>) => (await t.call('POST', '/v1/channels/send', body)).json() as { messageId: string; status: string; reason?: string };
const detail = async (id: string) => (await t.call('GET', `/v1/channels/messages/${id}`)).json();
async function timeline(profileId: string) {
  while ((await flushMessageEvents(t.db)) > 0);
  const { rows } = await t.db.query<{ event: string; properties: Record<string, unknown> }>(
    'select event, properties from events where workspace_id = $1 and profile_id = $2 order by seq',
    [t.workspaceId, profileId],
  );
  return rows;
}

beforeAll(async () => {
  t = await startChannelsApp({ publicUrl: PUBLIC });
  wechat = await startFakeWeixin('wechat', 'wx1234567890', 'app-secret', ['oFollower1', 'oFollower2']);
  smtp = await startSmtpServer();
  const wx = await t.call('PUT', '/v1/channels/accounts/wx', {
    key: 'wx',
    kind: 'wechat',
    provider: 'wechat',
    settings: { appId: 'wx1234567890', baseUrl: wechat.url },
    secrets: { appSecret: 'app-secret', callbackToken: 'server-token' },
  });
  expect(wx.statusCode).toBe(200);
  wechatCallback = wx.json().callbackUrl;
  expect(wechatCallback).toMatch(/^https:\/\/tp\.example\/v1\/channels\/callbacks\/wechat\//);
  const mail = await t.call('PUT', '/v1/channels/accounts/mail', {
    key: 'mail',
    kind: 'email',
    provider: 'smtp',
    settings: { host: '127.0.0.1', port: smtp.port, from: 'Acme <news@acme.example>', startTls: false, returnPath: 'bounces@acme.example' },
  });
  bounceCallback = mail.json().callbackUrl;
  expect(bounceCallback).toMatch(/\/v1\/channels\/callbacks\/bounce\//);
  expect((await t.call('GET', '/v1/channels/accounts')).json().items.map((a: { callbackUrl?: string }) => a.callbackUrl)).toEqual([bounceCallback, wechatCallback]);
  expect(
    (
      await t.call('POST', '/v1/channels/templates', {
        key: 'shipped',
        channel: 'wechat',
        name: 'Shipped',
        defaultLocale: 'zh-CN',
        content: { 'zh-CN': { template_id: 'TPL-ship', 'data.first': '您的订单已发货', 'data.keyword1': '{{ event.order_id }}' } },
      })
    ).statusCode,
  ).toBe(201);
  expect(
    (await t.call('POST', '/v1/channels/templates', { key: 'receipt', channel: 'email', name: 'Receipt', defaultLocale: 'en', content: { en: { subject: 'Your receipt', text: 'Thanks' } } }))
      .statusCode,
  ).toBe(201);
});
afterAll(async () => {
  closeSmtpTransports();
  await Promise.all([wechat?.close(), smtp?.close()]);
  await t?.close();
});

describe('WeChat TEMPLATESENDJOBFINISH', () => {
  it('answers the server URL check only with a valid signature', async () => {
    const signed = new URLSearchParams(templateSendJobFinish('server-token', { account: 'gh_1', openid: 'x', msgid: 1, status: 'success', at: new Date() }).query);
    signed.set('echostr', '4751290012');
    const check = await t.app.inject({ method: 'GET', url: `${path(wechatCallback)}?${signed}` });
    expect(check.statusCode).toBe(200);
    expect(check.body).toBe('4751290012');
    signed.set('signature', '0'.repeat(40));
    expect((await t.app.inject({ method: 'GET', url: `${path(wechatCallback)}?${signed}` })).statusCode).toBe(403);
  });

  it('settles template messages by MsgID: success → delivered; user block → failed and the openid suppressed; forged pushes refused', async () => {
    const follower = await insertProfile(t.db, t.workspaceId, { identifiers: [{ type: 'wechat_openid', value: 'oFollower1' }] });
    const blocker = await insertProfile(t.db, t.workspaceId, { identifiers: [{ type: 'wechat_openid', value: 'oFollower2' }] });
    const shipped = (profileId: string, key: string) =>
      send({ profileId, channel: 'wechat', templateKey: 'shipped', idempotencyKey: key, purpose: 'transactional', variables: { event: { order_id: 'A-1001' } } });
    const [ok, blocked] = [await shipped(follower, 'wx-1'), await shipped(blocker, 'wx-2')];
    await dispatch();
    expect(wechat.delivered.map((d) => d.body.data)).toEqual([
      { first: { value: '您的订单已发货' }, keyword1: { value: 'A-1001' } },
      { first: { value: '您的订单已发货' }, keyword1: { value: 'A-1001' } },
    ]);
    const sentOk = await detail(ok.messageId);
    const sentBlocked = await detail(blocked.messageId);
    expect(sentOk).toMatchObject({ status: 'sent', provider: 'wechat', providerMessageId: expect.stringMatching(/^\d+$/) });

    const push = async (serverToken: string, openid: string, msgid: string, status: 'success' | 'failed:user block') => {
      const { query, body } = templateSendJobFinish(serverToken, { account: 'gh_0123456789ab', openid, msgid, status, at: new Date() });
      return t.app.inject({ method: 'POST', url: `${path(wechatCallback)}?${query}`, headers: { 'content-type': 'text/xml' }, payload: body });
    };
    expect((await push('guessed-token', 'oFollower1', sentOk.providerMessageId, 'success')).statusCode).toBe(403);
    expect((await detail(ok.messageId)).status).toBe('sent');
    const answer = await push('server-token', 'oFollower1', sentOk.providerMessageId, 'success');
    expect(answer.statusCode).toBe(200);
    expect(answer.body).toBe('success');
    expect(await detail(ok.messageId)).toMatchObject({ status: 'delivered' });

    await push('server-token', 'oFollower2', sentBlocked.providerMessageId, 'failed:user block');
    expect(await detail(blocked.messageId)).toMatchObject({ status: 'failed', reason: 'wechat failed:user block' });
    expect((await t.call('GET', '/v1/channels/suppressions?channel=wechat')).json().items).toEqual([expect.objectContaining({ address: 'oFollower2' })]);
    expect(await shipped(blocker, 'wx-3')).toMatchObject({ status: 'skipped', reason: 'suppressed' });
    // A push for a message we do not know is acknowledged (or WeChat pushes it again) and changes nothing.
    expect((await push('server-token', 'oFollower1', '999999', 'success')).body).toBe('success');

    expect((await timeline(follower)).map((e) => e.event)).toEqual(['Message Queued', 'Message Sent', 'Message Delivered']);
    const blockedEvents = await timeline(blocker);
    expect(blockedEvents.map((e) => e.event)).toEqual(['Message Queued', 'Message Sent', 'Message Failed', 'Message Skipped']);
    expect(blockedEvents[2]!.properties).toMatchObject({ message_id: blocked.messageId, reason: 'wechat failed:user block', channel: 'wechat' });
  });
});

/** A delivery status notification as Postfix writes it, returning the original message's headers. */
function dsn(originalHeaders: string, recipient: string, action: string, status: string, diagnostic: string): string {
  return [
    'From: MAILER-DAEMON@mx.customers.example (Mail Delivery System)',
    'To: bounces@acme.example',
    'Subject: Undelivered Mail Returned to Sender',
    'MIME-Version: 1.0',
    'Content-Type: multipart/report; report-type=delivery-status; boundary="8D2A1C0A3B.1765000000/mx.customers.example"',
    '',
    '--8D2A1C0A3B.1765000000/mx.customers.example',
    'Content-Description: Notification',
    'Content-Type: text/plain; charset=us-ascii',
    '',
    'This is the mail system at host mx.customers.example.',
    '',
    "I'm sorry to have to inform you that your message could not be delivered to one or more recipients.",
    '',
    '--8D2A1C0A3B.1765000000/mx.customers.example',
    'Content-Description: Delivery report',
    'Content-Type: message/delivery-status',
    '',
    'Reporting-MTA: dns; mx.customers.example',
    'X-Postfix-Queue-ID: 8D2A1C0A3B',
    'Arrival-Date: Mon,  7 Dec 2026 01:00:00 +0000 (UTC)',
    '',
    `Final-Recipient: rfc822; ${recipient}`,
    `Original-Recipient: rfc822;${recipient}`,
    `Action: ${action}`,
    `Status: ${status}`,
    'Remote-MTA: dns; store.customers.example',
    `Diagnostic-Code: smtp; ${diagnostic}`,
    '',
    '--8D2A1C0A3B.1765000000/mx.customers.example',
    'Content-Description: Undelivered Message Headers',
    'Content-Type: text/rfc822-headers',
    '',
    originalHeaders,
    '',
    '--8D2A1C0A3B.1765000000/mx.customers.example--',
    '',
  ].join('\r\n');
}

describe('email bounces (delivery status notifications)', () => {
  /** Sends a receipt to `email` over the real SMTP server; returns the message id and the headers as received. */
  async function mailTo(email: string, key: string) {
    const profile = await insertProfile(t.db, t.workspaceId, { traits: { email } });
    const { messageId } = await send({ profileId: profile, channel: 'email', templateKey: 'receipt', idempotencyKey: key, purpose: 'transactional' });
    await dispatch();
    const received = smtp.mails.find((m) => m.to.includes(email))!;
    // The envelope sender is the return path, where the receiving MTA sends its bounce.
    expect(received.from).toBe('bounces@acme.example');
    return { profile, messageId, headers: received.raw.split(/\r?\n\r?\n/)[0]! };
  }

  /** The remote MTA's bounce travels back over SMTP to the return path; the MTA hands it to the bounce URL. */
  async function bounce(report: string) {
    const relay = nodemailer.createTransport({ host: '127.0.0.1', port: smtp.port, ignoreTLS: true });
    const before = smtp.mails.length;
    await relay.sendMail({ envelope: { from: 'MAILER-DAEMON@mx.customers.example', to: 'bounces@acme.example' }, raw: report });
    relay.close();
    const returned = smtp.mails.slice(before).find((m) => m.to.includes('bounces@acme.example'))!;
    return t.app.inject({ method: 'POST', url: path(bounceCallback), headers: { 'content-type': 'message/rfc822' }, payload: returned.raw });
  }

  it('a hard bounce fails the message, suppresses the address and writes Message Bounced to the timeline', async () => {
    const { profile, messageId, headers } = await mailTo('ghost@customers.example', 'mail-1');
    expect(parseBounce(dsn(headers, 'ghost@customers.example', 'failed', '5.1.1', '550 5.1.1 User unknown')).messageIds).toEqual([messageId]);
    const answer = await bounce(dsn(headers, 'ghost@customers.example', 'failed', '5.1.1', '550 5.1.1 <ghost@customers.example>: Recipient address rejected: User unknown'));
    expect(answer.statusCode).toBe(202);
    expect(answer.json()).toEqual({ matched: messageId, recipients: 1 });
    const failed = await detail(messageId);
    expect(failed.status).toBe('failed');
    expect(failed.reason).toMatch(/^bounced 5\.1\.1: smtp; 550 5\.1\.1 <ghost@customers\.example>: Recipient address rejected/);
    expect(failed.history.map((h: { status: string }) => h.status)).toEqual(['queued', 'sent', 'bounced']);
    expect((await t.call('GET', '/v1/channels/suppressions?channel=email')).json().items).toEqual([expect.objectContaining({ address: 'ghost@customers.example', reason: 'hard_bounce' })]);
    expect(await send({ profileId: profile, channel: 'email', templateKey: 'receipt', idempotencyKey: 'mail-1b', purpose: 'transactional' })).toMatchObject({ status: 'skipped', reason: 'suppressed' });
    const events = await timeline(profile);
    expect(events.map((e) => e.event)).toEqual(['Message Queued', 'Message Sent', 'Message Bounced', 'Message Skipped']);
    expect(events[2]!.properties).toMatchObject({ message_id: messageId, channel: 'email', permanent: true, bounce_status: '5.1.1' });
  });

  it('a delay changes nothing; giving up on a temporary fault fails the message without suppressing the address', async () => {
    const { profile, messageId, headers } = await mailTo('full@customers.example', 'mail-2');
    expect((await bounce(dsn(headers, 'full@customers.example', 'delayed', '4.2.2', '452 4.2.2 Mailbox full'))).statusCode).toBe(202);
    expect((await detail(messageId)).status).toBe('sent');
    await bounce(dsn(headers, 'full@customers.example', 'failed', '4.4.7', '452 4.2.2 Mailbox full'));
    expect(await detail(messageId)).toMatchObject({ status: 'failed', reason: expect.stringMatching(/^bounced 4\.4\.7/) });
    expect((await t.call('GET', '/v1/channels/suppressions?channel=email')).json().items.map((s: { address: string }) => s.address)).not.toContain('full@customers.example');
    const events = await timeline(profile);
    expect(events.at(-1)).toMatchObject({ event: 'Message Bounced', properties: expect.objectContaining({ permanent: false, bounce_status: '4.4.7' }) });
  });

  it('refuses a URL that is not an SMTP account callback', async () => {
    expect((await t.app.inject({ method: 'POST', url: path(wechatCallback).replace('/wechat/', '/bounce/'), headers: { 'content-type': 'message/rfc822' }, payload: 'x' })).statusCode).toBe(404);
    expect((await t.app.inject({ method: 'POST', url: '/v1/channels/callbacks/bounce/not.avalidtoken', headers: { 'content-type': 'message/rfc822' }, payload: 'x' })).statusCode).toBe(404);
  });
});
