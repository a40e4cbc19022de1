import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { putAccount } from '../src/channels/accounts.ts';
import type { MessageRequest } from '../src/channels/contract.ts';
import { createDispatcher } from '../src/channels/dispatch.ts';
import { cancelMessages, enqueueMessage, enqueueMessages, holdMessages, listMessages } from '../src/channels/index.ts';
import { flushMessageEvents, getMessage } from '../src/channels/messages.ts';
import { addSuppressions, putPolicy, putSubscriptionGroup, setSubscription } from '../src/channels/policy.ts';
import { createTemplate } from '../src/channels/template-store.ts';
import { withTransaction, type Db } from '../src/storage/database.ts';
import { createWorkspace } from '../src/workspaces/store.ts';
import { insertProfile, TEST_SECRETS_KEY } from './channels-support.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';

let database: TestDatabase;
let db: Db;
let ws: string;
const now = new Date('2026-03-10T12:00:00Z');

async function setUp(workspaceId: string) {
  await withTransaction(db, async (client) => {
    await putAccount(client, TEST_SECRETS_KEY, workspaceId, { key: 'sms-main', kind: 'sms', provider: 'twilio', settings: { accountSid: 'AC1', from: '+1555' }, secrets: { authToken: 't' } });
    await putAccount(client, TEST_SECRETS_KEY, workspaceId, { key: 'mail', kind: 'email', provider: 'smtp', settings: { host: '127.0.0.1', port: 25, from: 'a@b.c' } });
    await createTemplate(client, workspaceId, { key: 'promo', channel: 'sms', name: 'Promo', defaultLocale: 'en', content: { en: { text: 'Sale {{ journey.code }}' } } });
    await createTemplate(client, workspaceId, { key: 'receipt', channel: 'email', name: 'Receipt', defaultLocale: 'en', content: { en: { subject: 'Receipt', text: 'Thanks' } } });
  });
}

const request = (profileId: string, overrides: Partial<MessageRequest> = {}): MessageRequest => ({
  workspaceId: ws,
  profileId,
  channel: 'sms',
  templateKey: 'promo',
  idempotencyKey: crypto.randomUUID(),
  purpose: 'marketing',
  variables: { journey: { code: 'X' } },
  ...overrides,
});

const enqueue = (requests: MessageRequest[], at = now) => withTransaction(db, (client) => enqueueMessages(client, requests, at));

beforeAll(async () => {
  database = await createTestDatabase();
  db = database.db;
  ws = (await createWorkspace(db, { slug: 'acme', name: 'Acme' })).id;
  await setUp(ws);
});
afterAll(async () => database?.drop());

describe('enqueue', () => {
  it('queues, skips with reasons, and answers duplicates with the first message', async () => {
    const ok = await insertProfile(db, ws, { traits: { phone: '+8613800000001' } });
    const noPhone = await insertProfile(db, ws, { traits: { email: 'x@y.z' } });
    const key = 'journey-1:instance-1:node-3:1';
    const results = await enqueue([
      request(ok, { idempotencyKey: key }),
      request(noPhone),
      request(ok, { templateKey: 'nope' }),
      request(ok, { idempotencyKey: key }),
      request('00000000-0000-4000-8000-000000000001'),
    ]);
    expect(results.map((r) => r.status)).toEqual(['queued', 'skipped', 'skipped', 'duplicate', 'skipped']);
    expect(results.map((r) => r.reason)).toEqual([undefined, 'no_address', 'unknown_template', undefined, 'profile_not_found']);
    expect(results[3]!.messageId).toBe(results[0]!.messageId);
    const again = await withTransaction(db, (client) => enqueueMessage(client, request(ok, { idempotencyKey: key }), now));
    expect(again).toEqual({ messageId: results[0]!.messageId, status: 'duplicate' });
    const detail = await getMessage(db, ws, results[0]!.messageId);
    expect(detail).toMatchObject({ status: 'queued', address: '+8613800000001', accountKey: 'sms-main', templateVersion: 1 });
    expect(detail!.history.map((h) => h.status)).toEqual(['queued']);
  });

  it('applies suppression, consent, subscriptions and caps; transactional passes all but suppression', async () => {
    const suppressed = await insertProfile(db, ws, { traits: { phone: '+8613800000002', email: 'Blocked@Example.com' } });
    await addSuppressions(db, ws, [{ channel: 'email', address: 'blocked@example.com', reason: 'hard_bounce' }]);
    const denied = await insertProfile(db, ws, { traits: { phone: '+8613800000003' } });
    await db.query(`insert into profile_consents (workspace_id, profile_id, category, granted, observed_at) values ($1, $2, 'sms', false, now())`, [ws, denied]);
    const unsubscribed = await insertProfile(db, ws, { traits: { phone: '+8613800000004' } });
    await putSubscriptionGroup(db, ws, { key: 'news', name: 'News', channel: 'sms' });
    await setSubscription(db, ws, unsubscribed, 'news', false, 'test');
    const results = await enqueue([
      request(suppressed, { channel: 'email', templateKey: 'receipt', purpose: 'transactional' }),
      request(suppressed),
      request(denied),
      request(denied, { purpose: 'transactional' }),
      request(unsubscribed, { subscriptionGroup: 'news' }),
      request(unsubscribed, { subscriptionGroup: 'other' }),
      request(unsubscribed),
    ]);
    expect(results.map((r) => r.reason ?? r.status)).toEqual(['suppressed', 'queued', 'no_consent', 'queued', 'unsubscribed', 'unknown_subscription_group', 'queued']);
  });

  it('counts frequency caps across batches and within one batch', async () => {
    const otherWs = (await createWorkspace(db, { slug: 'capped', name: 'Capped' })).id;
    await setUp(otherWs);
    await putPolicy(db, otherWs, { frequencyCaps: [{ maxMessages: 2, windowSeconds: 7 * 86_400 }], quietHours: null, requireOptIn: [] });
    const profile = await insertProfile(db, otherWs, { traits: { phone: '+8613800000005' } });
    const inWs = (overrides: Partial<MessageRequest> = {}) => request(profile, { workspaceId: otherWs, ...overrides });
    const first = await enqueue([inWs(), inWs(), inWs(), inWs({ purpose: 'transactional' })]);
    expect(first.map((r) => r.reason ?? r.status)).toEqual(['queued', 'queued', 'frequency_cap', 'queued']);
    expect((await enqueue([inWs()])).map((r) => r.reason)).toEqual(['frequency_cap']);
    // Eight days later the window has passed.
    expect((await enqueue([inWs()], new Date(now.getTime() + 8 * 86_400_000)))[0]!.status).toBe('queued');
  });

  it('defers marketing in quiet hours in the profile time zone and paces broadcasts', async () => {
    const quietWs = (await createWorkspace(db, { slug: 'quiet', name: 'Quiet' })).id;
    await setUp(quietWs);
    await putPolicy(db, quietWs, { frequencyCaps: [], quietHours: { start: '21:00', end: '08:00' }, requireOptIn: [] });
    const shanghai = await insertProfile(db, quietWs, { traits: { phone: '+8613800000006', timezone: 'Asia/Shanghai' } });
    const london = await insertProfile(db, quietWs, { traits: { phone: '+447700900000', timezone: 'Europe/London' } });
    const late = new Date('2026-03-10T14:30:00Z');
    const [deferred, sent] = await enqueue([request(shanghai, { workspaceId: quietWs }), request(london, { workspaceId: quietWs })], late);
    expect((await getMessage(db, quietWs, deferred!.messageId))!.dueAt).toEqual(new Date('2026-03-11T00:00:00Z'));
    expect((await getMessage(db, quietWs, sent!.messageId))!.dueAt).toEqual(late);

    const origin = { journeyId: 'broadcast-1', journeyVersion: 1, instanceId: 'i', nodeId: 'n' };
    const paced = await enqueue(
      Array.from({ length: 4 }, () => request(london, { workspaceId: quietWs, origin, ratePerSecond: 2, purpose: 'transactional' })),
      late,
    );
    const more = await enqueue([request(london, { workspaceId: quietWs, origin, ratePerSecond: 2, purpose: 'transactional' })], late);
    const due = await Promise.all([...paced, ...more].map(async (r) => (await getMessage(db, quietWs, r.messageId))!.dueAt.getTime() - late.getTime()));
    expect(due).toEqual([0, 500, 1000, 1500, 2000]);
  });

  it('quiet hours hold across DST changes in the profile zone: due when the local window opens, not sent before', async () => {
    const dstWs = (await createWorkspace(db, { slug: 'dst', name: 'DST' })).id;
    await setUp(dstWs);
    await putPolicy(db, dstWs, { frequencyCaps: [], quietHours: { start: '21:00', end: '08:00' }, requireOptIn: [] });
    const newYork = await insertProfile(db, dstWs, { traits: { phone: '+12125550100', timezone: 'America/New_York' } });
    const berlin = await insertProfile(db, dstWs, { traits: { phone: '+4930555010', timezone: 'Europe/Berlin' } });
    // 23:00 EST before the spring-forward night → 08:00 EDT = 12:00Z; 23:00 CEST before the fall-back night → 08:00 CET = 07:00Z.
    const [spring] = await enqueue([request(newYork, { workspaceId: dstWs })], new Date('2026-03-08T04:00:00Z'));
    const [autumn] = await enqueue([request(berlin, { workspaceId: dstWs })], new Date('2026-10-24T21:00:00Z'));
    expect((await getMessage(db, dstWs, spring!.messageId))!.dueAt).toEqual(new Date('2026-03-08T12:00:00Z'));
    expect((await getMessage(db, dstWs, autumn!.messageId))!.dueAt).toEqual(new Date('2026-10-25T07:00:00Z'));
    const sent: string[] = [];
    let clock = new Date('2026-03-08T11:59:00Z');
    const d = createDispatcher({
      db,
      secretsKey: TEST_SECRETS_KEY,
      publicUrl: 'https://tp.example',
      now: () => clock,
      adapters: { twilio: { idempotent: false, send: async (_account, message) => (sent.push(message.messageId), { ok: true, providerMessageId: message.messageId }) } },
    });
    // The dispatcher serves every workspace: park the other tests' messages so only these two can be due.
    await db.query(`update messages set status = 'held' where workspace_id <> $1 and status = 'queued'`, [dstWs]);
    // 07:59 EDT: still inside the window.
    expect(await d.dispatchOnce()).toBe(0);
    clock = new Date('2026-03-08T12:00:00Z');
    expect(await d.dispatchOnce()).toBe(1);
    expect(sent).toEqual([spring!.messageId]);
    clock = new Date('2026-10-25T06:59:00Z');
    expect(await d.dispatchOnce()).toBe(0);
    clock = new Date('2026-10-25T07:00:00Z');
    expect(await d.dispatchOnce()).toBe(1);
    expect(sent).toEqual([spring!.messageId, autumn!.messageId]);
  });

  it('sends to the survivor of a merge', async () => {
    const survivor = await insertProfile(db, ws, { traits: { phone: '+8613800000007' } });
    const absorbed = await insertProfile(db, ws, {});
    await db.query('update profiles set merged_into = $3, merged_at = now() where workspace_id = $1 and id = $2', [ws, absorbed, survivor]);
    const [result] = await enqueue([request(absorbed)]);
    expect(result!.status).toBe('queued');
    expect((await getMessage(db, ws, result!.messageId))!.profileId).toBe(survivor);
  });
});

describe('journey controls and the timeline', () => {
  it('holds, releases and cancels by journey, instance or profile; lists per instance', async () => {
    const profile = await insertProfile(db, ws, { traits: { phone: '+8613800000008' } });
    const origin = (instanceId: string) => ({ journeyId: 'welcome', journeyVersion: 2, instanceId, nodeId: 'send-sms' });
    const [a, b] = await enqueue([request(profile, { origin: origin('i-1') }), request(profile, { origin: origin('i-2') })]);
    expect(await withTransaction(db, (c) => holdMessages(c, ws, 'welcome', true))).toBe(2);
    expect((await getMessage(db, ws, a!.messageId))!.status).toBe('held');
    expect(await withTransaction(db, (c) => holdMessages(c, ws, 'welcome', false))).toBe(2);
    expect(await withTransaction(db, (c) => cancelMessages(c, ws, { instanceId: 'i-2' }, 'removed'))).toBe(1);
    const listed = await listMessages(db, ws, { instanceId: 'i-2' });
    expect(listed).toEqual([expect.objectContaining({ messageId: b!.messageId, status: 'cancelled', reason: 'removed', origin: origin('i-2') })]);
    expect((await getMessage(db, ws, b!.messageId))!.history.map((h) => h.status)).toEqual(['queued', 'held', 'queued', 'cancelled']);
    expect((await listMessages(db, ws, { journeyId: 'welcome' })).map((m) => m.status).sort()).toEqual(['cancelled', 'queued']);
  });

  it('writes Message Queued and Message Skipped events into the timeline once', async () => {
    const profile = await insertProfile(db, ws, { traits: { phone: '+8613800000009' } });
    const [queued, skipped] = await enqueue([
      request(profile, { origin: { journeyId: 'j', journeyVersion: 1, instanceId: 'i-9', nodeId: 'n' } }),
      request(profile, { templateKey: 'missing' }),
    ]);
    while ((await flushMessageEvents(db, 1000, now)) > 0);
    const { rows } = await db.query<{ event: string; properties: Record<string, unknown> }>(
      `select event, properties from events where workspace_id = $1 and profile_id = $2 order by seq`,
      [ws, profile],
    );
    expect(rows).toEqual([
      { event: 'Message Queued', properties: expect.objectContaining({ message_id: queued!.messageId, channel: 'sms', template_key: 'promo', purpose: 'marketing', journey_id: 'j', instance_id: 'i-9', node_id: 'n', journey_version: 1 }) },
      { event: 'Message Skipped', properties: expect.objectContaining({ message_id: skipped!.messageId, reason: 'unknown_template' }) },
    ]);
    expect(await flushMessageEvents(db, 1000, now)).toBe(0);
  });
});
