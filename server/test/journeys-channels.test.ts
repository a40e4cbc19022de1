import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { putAccount } from '../src/channels/accounts.ts';
import { checkTemplate, enqueueMessages, listMessages } from '../src/channels/index.ts';
import { createTemplate } from '../src/channels/template-store.ts';
import type { JourneyDefinition } from '../src/journeys/definition.ts';
import { advanceDueInstances, enterProfiles } from '../src/journeys/executor.ts';
import { createJourney, journeyProblems, publishJourney } from '../src/journeys/store.ts';
import { prepareTransitionStorage } from '../src/segments/transitions.ts';
import { withTransaction, type Db } from '../src/storage/database.ts';
import { createWorkspace } from '../src/workspaces/store.ts';
import { insertProfile, TEST_SECRETS_KEY } from './channels-support.ts';
import { testClock } from './journeys-support.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';

const DAY = 86_400_000;

describe('journeys with the real channels enqueue', () => {
  let database: TestDatabase;
  let db: Db;
  let ws: string;

  beforeAll(async () => {
    database = await createTestDatabase();
    db = database.db;
    ws = (await createWorkspace(db, { slug: 'acme', name: 'Acme' })).id;
    await withTransaction(db, async (client) => {
      await putAccount(client, TEST_SECRETS_KEY, ws, { key: 'sms-main', kind: 'sms', provider: 'twilio', settings: { accountSid: 'AC1', from: '+1555' }, secrets: { authToken: 't' } });
      await putAccount(client, TEST_SECRETS_KEY, ws, { key: 'mail', kind: 'email', provider: 'smtp', settings: { host: '127.0.0.1', port: 25, from: 'a@b.c' } });
      await createTemplate(client, ws, { key: 'cart-reminder', channel: 'email', name: 'Reminder', defaultLocale: 'en', content: { en: { subject: 'Your cart', text: 'Still there' } } });
      await createTemplate(client, ws, { key: 'cart-coupon', channel: 'sms', name: 'Coupon', defaultLocale: 'en', content: { en: { text: 'Code {{ journey.key }}' } } });
    });
  });
  afterAll(async () => database?.drop());

  const definition = (smsTemplate: string): JourneyDefinition => ({
    nodes: [
      { id: 'in', kind: 'entry', trigger: { kind: 'api' }, next: 'email' },
      { id: 'email', kind: 'send', channel: 'email', template: 'cart-reminder', purpose: 'marketing', next: 'day' },
      { id: 'day', kind: 'delay', duration: { amount: 1, unit: 'days' }, next: 'sms' },
      { id: 'sms', kind: 'send', channel: 'sms', template: smsTemplate, purpose: 'marketing', next: 'end' },
      { id: 'end', kind: 'end' },
    ],
  });

  it('publishing checks templates with channels: an unknown template is a problem on its node', async () => {
    const problems = await journeyProblems(db, ws, definition('no-such-template'), { checkTemplate });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({ node: 'sms', field: 'nodes.3.template' });
    expect(await journeyProblems(db, ws, definition('cart-coupon'), { checkTemplate })).toEqual([]);
  });

  it('each send step queues one channels message with its origin; the message list shows them per instance', async () => {
    const clock = testClock('2026-03-10T12:00:00Z');
    const journey = await createJourney(db, ws, { key: 'cart', name: 'Cart', definition: definition('cart-coupon') });
    await publishJourney(db, ws, 'cart', clock.now(), { checkTemplate });
    const profile = await insertProfile(db, ws, { traits: { email: 'li@example.com', phone: '+8613800000009' } });
    await prepareTransitionStorage(db, clock.now());
    const [entered] = await withTransaction(db, (client) => enterProfiles(client, ws, journey.id, [{ profileId: profile, entry: 'api' }], clock.now()));
    const deps = { db, enqueue: enqueueMessages, now: clock.now };
    expect((await advanceDueInstances(deps)).failed).toEqual([]);
    clock.advance(DAY);
    expect((await advanceDueInstances(deps)).failed).toEqual([]);
    const messages = await listMessages(db, ws, { instanceId: entered!.instanceId! });
    expect(messages.map((m) => [m.channel, m.templateKey, m.status, m.origin?.nodeId]).sort()).toEqual([
      ['email', 'cart-reminder', 'queued', 'email'],
      ['sms', 'cart-coupon', 'queued', 'sms'],
    ]);
    const { rows } = await db.query<{ outcome: string; detail: { messageId: string } | null }>(
      `select outcome, detail from journey_steps where workspace_id = $1 and instance_id = $2 and kind = 'send' order by step`,
      [ws, entered!.instanceId],
    );
    expect(rows.map((r) => r.outcome)).toEqual(['queued', 'queued']);
    expect(new Set(rows.map((r) => r.detail!.messageId))).toEqual(new Set(messages.map((m) => m.messageId)));
  });
});
