import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTemplate } from '../src/channels/template-store.ts';
import { resolveQueuedEvents } from '../src/identity/resolver.ts';
import type { JourneyDefinition } from '../src/journeys/definition.ts';
import { advanceDueInstances } from '../src/journeys/executor.ts';
import { drainJourneyEvents, drainSegmentEntries } from '../src/journeys/intake.ts';
import { drainSegmentQueue } from '../src/segments/realtime.ts';
import { withTransaction } from '../src/storage/database.ts';
import { createRecordingOutbox, journeyEvents, recordedMessages, recordingEnqueue, testClock, welcomeSeries } from './journeys-support.ts';
import { serverKey } from './profiles-support.ts';
import { basicAuth, startTestApp, type TestApp } from './support/app.ts';

const MINUTE = 60_000;
// Other test files' transactions on the same server hold the settle back; a test must not read that as idle.
const settle = { settleTimeoutMs: 30_000 };
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

describe('journeys API and the abandoned-cart journey end to end', () => {
  let t: TestApp;
  let key: string;
  // Three days ago, so every event time the test writes lies in the past of the ingest clock.
  const clock = testClock(Math.floor(Date.now() / HOUR) * HOUR - 3 * DAY);

  beforeAll(async () => {
    t = await startTestApp({ now: clock.now });
    await createRecordingOutbox(t.db);
    key = await serverKey(t);
    // Publishing checks templates with channels.
    await withTransaction(t.db, async (client) => {
      for (const [template, channel] of [['welcome', 'email'], ['nudge', 'sms'], ['cart-reminder', 'email'], ['cart-coupon', 'sms']] as const) {
        const content: Record<string, string> = channel === 'email' ? { subject: template, text: template } : { text: template };
        await createTemplate(client, t.workspace.id, { key: template, channel, name: template, defaultLocale: 'en', content: { en: content } });
      }
    });
  });
  afterAll(async () => t.close());

  const call = async (method: 'GET' | 'POST' | 'PATCH', url: string, payload?: object) => {
    const res = await t.app.inject({ method, url, headers: { authorization: `Bearer ${key}` }, ...(payload === undefined ? {} : { payload }) });
    return { status: res.statusCode, body: res.json() };
  };
  /** Everything the worker would do at the clock's time: identity, segments, journey intake, the executor. */
  const work = async () => {
    for (let round = 0; round < 20; round++) {
      let moved = 0;
      while ((await resolveQueuedEvents(t.db, t.workspace.id)) > 0) moved++;
      moved += await drainSegmentQueue(t.db, { now: clock.now() });
      moved += await drainSegmentEntries(t.db, clock.now(), settle);
      moved += await drainJourneyEvents(t.db, clock.now(), settle);
      moved += (await advanceDueInstances({ db: t.db, enqueue: recordingEnqueue, now: clock.now })).taken;
      if (moved === 0) return;
    }
    throw new Error('the pipeline did not settle');
  };
  const track = async (userId: string, event: string, properties: Record<string, unknown> = {}) => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/batch',
      headers: { authorization: basicAuth(t.writeKey) },
      payload: { batch: [{ type: 'track', userId, event, properties, timestamp: clock.now().toISOString() }] },
    });
    expect(res.json().rejected).toEqual([]);
  };
  const profileOf = async (userId: string) => (await call('GET', `/v1/profiles/${encodeURIComponent(`user_id:${userId}`)}`)).body.id as string;

  it('creates, validates with node and field, refuses to publish a broken draft, publishes, pauses, resumes, archives', async () => {
    const broken = welcomeSeries();
    broken.nodes[1] = { id: 'hello', kind: 'send', channel: 'email', template: 'welcome', purpose: 'marketing', next: 'nowhere' };
    const created = await call('POST', '/v1/journeys', { key: 'welcome', name: 'Welcome', definition: broken });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ key: 'welcome', status: 'draft', currentVersion: null });
    expect(created.body.problems).toContainEqual({ node: 'hello', field: 'nodes.1.next', message: 'Node "nowhere" does not exist' });

    expect((await call('POST', '/v1/journeys', { key: 'welcome', name: 'Again', definition: welcomeSeries() })).status).toBe(409);
    const badSchema = await call('POST', '/v1/journeys', { key: 'x', name: 'X', definition: { nodes: [{ id: 'a', kind: 'teleport' }] } });
    expect(badSchema.status).toBe(400);
    expect(badSchema.body.error).toBe('invalid_request');

    const refused = await call('POST', '/v1/journeys/welcome/publish');
    expect(refused.status).toBe(400);
    expect(refused.body).toMatchObject({ error: 'invalid_journey', field: 'definition.nodes.1.next' });
    expect(refused.body.message).toMatch(/node "hello": Node "nowhere" does not exist/);

    const checked = await call('POST', '/v1/journeys/welcome/validate', { definition: welcomeSeries() });
    expect(checked.body).toEqual({ problems: [], warnings: [] });
    expect((await call('PATCH', '/v1/journeys/welcome', { definition: welcomeSeries() })).body.problems).toEqual([]);
    const published = await call('POST', '/v1/journeys/welcome/publish');
    expect(published.status).toBe(200);
    expect(published.body).toMatchObject({ version: 1, migrated: 0, exited: 0, journey: { status: 'published', currentVersion: 1 } });

    expect((await call('POST', '/v1/journeys/welcome/resume')).body).toMatchObject({ error: 'invalid_state', field: 'status' });
    expect((await call('POST', '/v1/journeys/welcome/pause')).body.status).toBe('paused');
    expect((await call('POST', '/v1/journeys/welcome/resume')).body.status).toBe('published');
    expect((await call('GET', '/v1/journeys?status=published')).body.items.map((j: { key: string }) => j.key)).toEqual(['welcome']);

    await track('dora', 'Signed Up');
    await work();
    const entered = await call('POST', '/v1/journeys/welcome/entries', { profile: 'user_id:dora', variables: { coupon: 'HELLO10' } });
    expect(entered.body).toMatchObject({ instanceId: expect.any(String), refused: null });
    expect((await call('POST', '/v1/journeys/welcome/entries', { profile: 'user_id:dora' })).body.refused).toBe('already_in');
    expect((await call('POST', '/v1/journeys/welcome/entries', { profile: 'user_id:nobody' })).status).toBe(404);
    await work();
    const detail = await call('GET', `/v1/journeys/welcome/instances/${entered.body.instanceId}`);
    expect(detail.body.instance).toMatchObject({ status: 'active', currentNode: 'day', waiting: true, nextDueAt: new Date(clock.now().getTime() + DAY).toISOString() });
    expect(detail.body.path.map((s: { nodeId: string; outcome: string }) => `${s.nodeId}:${s.outcome}`)).toEqual(['in:next', 'hello:queued', 'day:waiting']);

    const archived = await call('POST', '/v1/journeys/welcome/archive');
    expect(archived.body).toMatchObject({ stopped: 1, journey: { status: 'archived' } });
    expect((await call('PATCH', '/v1/journeys/welcome', { name: 'x' })).status).toBe(409);
    expect((await call('GET', '/v1/journeys/nope')).status).toBe(404);
  });

  it('abandoned cart: segment entry → wait → email → wait for the order → SMS coupon; the goal converts whoever orders', async () => {
    const segment = await call('POST', '/v1/segments', {
      key: 'cart-abandoners',
      name: 'Cart abandoners',
      kind: 'realtime',
      text: 'event("Product Added") then not event("Order Completed") within 2h',
    });
    expect(segment.status).toBe(201);
    const definition: JourneyDefinition = {
      nodes: [
        { id: 'start', kind: 'entry', trigger: { kind: 'segment', segment: 'cart-abandoners' }, reentry: { mode: 'after', days: 7 }, next: 'pause' },
        { id: 'pause', kind: 'delay', duration: { amount: 1, unit: 'hours' }, next: 'email' },
        { id: 'email', kind: 'send', channel: 'email', template: 'cart-reminder', purpose: 'marketing', next: 'wait-order' },
        { id: 'wait-order', kind: 'wait', event: 'Order Completed', timeout: { amount: 1, unit: 'days' }, happened: 'done', timedOut: 'coupon' },
        { id: 'coupon', kind: 'send', channel: 'sms', template: 'cart-coupon', purpose: 'marketing', next: 'done' },
        { id: 'done', kind: 'end' },
      ],
      goals: [{ id: 'ordered', condition: 'event("Order Completed").exists()' }],
    };
    expect((await call('POST', '/v1/journeys', { key: 'cart', name: 'Abandoned cart', definition })).status).toBe(201);
    expect((await call('POST', '/v1/journeys/cart/publish')).status).toBe(200);

    // alice and bob leave their carts; carol orders within the 2 hours and never enters.
    for (const user of ['alice', 'bob', 'carol']) await track(user, 'Product Added', { sku: 'SKU-1', price: 99 });
    clock.advance(30 * MINUTE);
    await track('carol', 'Order Completed', { total: 99 });
    await work();
    clock.advance(90 * MINUTE + MINUTE); // 2h01 after the carts
    await work();
    const [alice, bob, carol] = [await profileOf('alice'), await profileOf('bob'), await profileOf('carol')];
    let instances = (await call('GET', '/v1/journeys/cart/instances')).body.items as Array<{ id: string; profileId: string; status: string; currentNode: string }>;
    expect(instances.map((i) => i.profileId).sort()).toEqual([alice, bob].sort());
    expect(instances.every((i) => i.currentNode === 'pause')).toBe(true);

    clock.advance(HOUR);
    await work();
    expect((await recordedMessages(t.db, t.workspace.id)).filter((m) => m.template_key === 'cart-reminder').map((m) => m.profile_id).sort()).toEqual(
      [alice, bob].sort(),
    );
    // bob orders after the email: the wait hears it and the goal converts him.
    clock.advance(2 * HOUR);
    await track('bob', 'Order Completed', { total: 99 });
    await work();
    clock.advance(DAY);
    await work();
    const messages = (await recordedMessages(t.db, t.workspace.id)).filter((m) => m.template_key.startsWith('cart-'));
    expect(messages.map((m) => `${m.profile_id === alice ? 'alice' : m.profile_id === bob ? 'bob' : 'other'}:${m.template_key}`).sort()).toEqual([
      'alice:cart-coupon',
      'alice:cart-reminder',
      'bob:cart-reminder',
    ]);
    expect(messages.some((m) => m.profile_id === carol)).toBe(false);

    instances = (await call('GET', '/v1/journeys/cart/instances')).body.items;
    const byProfile = new Map(instances.map((i) => [i.profileId, i]));
    expect(byProfile.get(alice)).toMatchObject({ status: 'completed', currentNode: 'done' });
    expect(byProfile.get(bob)).toMatchObject({ status: 'converted', currentNode: 'wait-order', endDetail: 'ordered' });
    const bobEvents = await journeyEvents(t.db, t.workspace.id, bob);
    expect(bobEvents.map((e) => e.event)).toEqual(['Journey Entered', 'Journey Converted', 'Journey Exited']);
    expect(bobEvents[0]!.properties).toMatchObject({ journey_key: 'cart', entry: 'segment' });

    const stats = await call('GET', '/v1/journeys/cart/stats');
    const byNode = new Map((stats.body.nodes as Array<{ nodeId: string }>).map((n) => [n.nodeId, n]));
    expect(byNode.get('start')).toMatchObject({ entered: 2, waiting: 0 });
    expect(byNode.get('email')).toMatchObject({ entered: 2 });
    expect(byNode.get('wait-order')).toMatchObject({ entered: 2, converted: 1, waiting: 0 });
    expect(byNode.get('coupon')).toMatchObject({ entered: 1 });
    expect(byNode.get('done')).toMatchObject({ entered: 1, exited: 1 });

    const removed = await call('POST', `/v1/journeys/cart/instances/${byProfile.get(alice)!.id}/remove`);
    expect(removed.body).toMatchObject({ status: 'completed', endReason: 'completed' });
  });
});
