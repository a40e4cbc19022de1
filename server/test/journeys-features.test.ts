import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signatureHeader } from '../src/activation/webhook.ts';
import { putAccount } from '../src/channels/accounts.ts';
import { createDispatcher } from '../src/channels/dispatch.ts';
import { checkTemplate, enqueueMessages } from '../src/channels/index.ts';
import { putPolicy } from '../src/channels/policy.ts';
import { createTemplate } from '../src/channels/template-store.ts';
import type { JourneyDefinition } from '../src/journeys/definition.ts';
import { dryRun } from '../src/journeys/dry-run.ts';
import { advanceDueInstances, type ExecutorDeps } from '../src/journeys/executor.ts';
import { drainJourneyEvents, drainSegmentEntries } from '../src/journeys/intake.ts';
import { drainScheduledEntries } from '../src/journeys/schedules.ts';
import { archiveJourney, createJourney, journeyCheck, journeyProblems, pauseJourney, publishJourney, resumeJourney } from '../src/journeys/store.ts';
import { prepareTransitionStorage, recordTransitions, type SegmentRef } from '../src/segments/transitions.ts';
import { writeProfileTraits } from '../src/profiles/trait-writer.ts';
import { withTransaction, type Db } from '../src/storage/database.ts';
import { testClock } from './journeys-support.ts';
import { serverKey } from './profiles-support.ts';
import { insertProfile, insertTrack } from './segments-lifecycle-support.ts';
import { startTestApp, type TestApp } from './support/app.ts';

const SECRETS = Buffer.alloc(32, 7);
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
// Other test files' transactions on the same server hold the settle back; a test must not read that as idle.
const settle = { settleTimeoutMs: 30_000 };

describe('journey entries, nodes, dry run and live control on real PostgreSQL', () => {
  let t: TestApp;
  let db: Db;
  let counter = 0;
  // One clock for the file: the API (entries, dry runs) reads it too.
  const clock = testClock('2026-03-02T08:00:00Z');

  beforeAll(async () => {
    t = await startTestApp({ now: clock.now });
    db = t.db;
  });
  afterAll(async () => t?.close());

  /** A workspace of its own with channel accounts and templates; every other journey archived (the executor serves all workspaces). */
  const setup = async (timeZone = 'UTC') => {
    await db.query(`update journey_instances set status = 'exited', due_at = null where status = 'active'`);
    await db.query(`update journeys set status = 'archived'`);
    // The dispatcher too serves every workspace: earlier tests' messages are out of its way.
    await db.query(`update messages set status = 'cancelled' where status in ('queued', 'held')`);
    const { workspace, source } = await t.addWorkspace(`f-${++counter}`);
    await db.query('update workspaces set time_zone = $2 where id = $1', [workspace.id, timeZone]);
    const ws = workspace.id;
    await withTransaction(db, async (client) => {
      await putAccount(client, SECRETS, ws, { key: 'mail', kind: 'email', provider: 'smtp', settings: { host: '127.0.0.1', port: 25, from: 'a@b.c' } });
      await putAccount(client, SECRETS, ws, { key: 'sms', kind: 'sms', provider: 'twilio', settings: { accountSid: 'AC1', from: '+1555' }, secrets: { authToken: 't' } });
      await putAccount(client, SECRETS, ws, { key: 'crm', kind: 'webhook', provider: 'webhook', settings: { url: 'https://crm.example/hook' }, secrets: { signingSecret: 'shh' } });
      await createTemplate(client, ws, { key: 'hello', channel: 'email', name: 'Hello', defaultLocale: 'en', content: { en: { subject: 'Hi {{ traits.first_name | default: "there" }}', text: 'Hello' } } });
      await createTemplate(client, ws, { key: 'nudge', channel: 'sms', name: 'Nudge', defaultLocale: 'en', content: { en: { text: 'Nudge' } } });
      await createTemplate(client, ws, { key: 'crm-sync', channel: 'webhook', name: 'CRM', defaultLocale: 'en', content: { en: { body: '{"profile":"{{ profile.id }}","journey":"{{ journey.key }}"}' } } });
    });
    clock.set('2026-03-02T08:00:00Z');
    const deps: ExecutorDeps = { db, enqueue: enqueueMessages, now: clock.now };
    const publish = async (key: string, definition: JourneyDefinition) => {
      const journey = await createJourney(db, ws, { key, name: key, definition });
      await publishJourney(db, ws, key, clock.now(), { checkTemplate });
      return journey;
    };
    const run = async () => {
      let total = 0;
      for (let round = 0; round < 50; round++) {
        const { taken, failed } = await advanceDueInstances(deps);
        expect(failed).toEqual([]);
        const moved = taken + (await drainSegmentEntries(db, clock.now(), settle)) + (await drainJourneyEvents(db, clock.now(), settle));
        if (moved === 0) return total;
        total += moved;
      }
      throw new Error('journeys did not settle');
    };
    const instances = async (journeyId: string) =>
      (
        await db.query<{ id: string; profile_id: string; status: string; node_id: string; phase: string; due_at: Date | null; instance_key: string; entry: string; version: number }>(
          `select id, profile_id, status, node_id, phase, due_at, instance_key, entry, version from journey_instances
            where workspace_id = $1 and journey_id = $2 order by entered_at, instance_key, profile_id`,
          [ws, journeyId],
        )
      ).rows;
    const messages = async () =>
      (
        await db.query<{ id: string; profile_id: string; channel: string; template_key: string; status: string; reason: string | null; due_at: Date; purpose: string; variables: Record<string, Record<string, unknown>> }>(
          'select id, profile_id, channel, template_key, status, reason, due_at, purpose, variables from messages where workspace_id = $1 order by due_at, id',
          [ws],
        )
      ).rows;
    const addSegment = async (key: string, members: string[] = []): Promise<SegmentRef> => {
      const { rows } = await db.query<{ id: string }>(
        `insert into segments (workspace_id, key, name, kind, definition, state) values ($1, $2, $2, 'realtime', $3, 'ready') returning id`,
        [ws, key, JSON.stringify({ kind: 'trait', path: 'x', op: 'exists' })],
      );
      const segment = { id: rows[0]!.id, key, name: key, version: 1 };
      if (members.length > 0) await transition(segment, members, true);
      return segment;
    };
    const transition = async (segment: SegmentRef, profileIds: string[], member: boolean) => {
      await prepareTransitionStorage(db, clock.now());
      await withTransaction(db, (client) => recordTransitions(client, ws, profileIds.map((profileId) => ({ segment, profileId, member })), 'event', clock.now()));
    };
    const enter = async (key: string, profile: string, variables?: Record<string, unknown>) => {
      const res = await t.app.inject({
        method: 'POST',
        url: `/v1/journeys/${key}/entries`,
        headers: { authorization: `Bearer ${apiKey}` },
        payload: { profile, ...(variables ? { variables } : {}) },
      });
      expect(res.statusCode).toBe(200);
      return res.json() as { instanceId: string | null; refused: string | null };
    };
    const apiKey = await serverKey(t, ws);
    const track = (profileId: string, event: string, properties: Record<string, unknown> = {}) =>
      insertTrack(db, ws, source.id, profileId, event, clock.now().toISOString(), properties);
    return { ws, clock, deps, publish, run, instances, messages, addSegment, transition, enter, apiKey, track };
  };

  it('date trait: 3 days before the birthday at 10:00 in each profile’s time zone, yearly, each occurrence once', async () => {
    const { ws, clock, publish, instances } = await setup();
    clock.set('2026-12-01T00:00:00Z');
    const shanghai = await insertProfile(db, ws, { traits: { birthday: '1990-12-10', timezone: 'Asia/Shanghai' } });
    const london = await insertProfile(db, ws, { traits: { birthday: '1985-12-10T00:00:00Z', timezone: 'Europe/London' } });
    const june = await insertProfile(db, ws, { traits: { birthday: '1990-06-01' } });
    await insertProfile(db, ws, { traits: { birthday: 'not a date' } });
    const journey = await publish('birthday', {
      nodes: [
        { id: 'in', kind: 'entry', trigger: { kind: 'date', trait: 'birthday', days: -3, time: '10:00', repeat: 'yearly' }, reentry: { mode: 'after', days: 300 }, next: 'wait' },
        { id: 'wait', kind: 'delay', duration: { amount: 30, unit: 'days' }, next: 'end' },
        { id: 'end', kind: 'end' },
      ],
    });
    const enteredAt = async (at: string) => {
      clock.set(at);
      return drainScheduledEntries(db, clock.now());
    };
    // 10:00 in Shanghai on 7 December is 02:00 UTC; in London it is 10:00 UTC.
    expect(await enteredAt('2026-12-07T01:59:00Z')).toBe(0);
    expect(await enteredAt('2026-12-07T02:00:00Z')).toBe(1);
    expect((await instances(journey.id)).map((i) => [i.profile_id, i.entry])).toEqual([[shanghai, 'date']]);
    expect(await enteredAt('2026-12-07T02:00:30Z')).toBe(0);
    expect(await enteredAt('2026-12-07T10:01:00Z')).toBe(1);
    expect(await enteredAt('2026-12-08T10:01:00Z')).toBe(0);
    const { rows } = await db.query<{ variables: Record<string, unknown> }>('select variables from journey_instances where workspace_id = $1 and profile_id = $2', [ws, london]);
    expect(rows[0]!.variables).toMatchObject({ trait: 'birthday', occurrence: '2026-12-07T10:00:00.000Z' });
    // A year later, each enters again (re-entry after 300 days), the June birthday in June only.
    await db.query(`update journey_instances set status = 'completed', due_at = null where journey_id = $1`, [journey.id]);
    expect(await enteredAt('2027-05-29T10:00:00Z')).toBe(1);
    expect(await enteredAt('2027-12-07T12:00:00Z')).toBe(2);
    expect((await instances(journey.id)).filter((i) => i.status === 'active').map((i) => i.profile_id).sort()).toEqual([shanghai, london, june].sort());
    // Paused: the dates pass without entries.
    await pauseJourney(db, ws, 'birthday');
    await db.query(`update journey_instances set status = 'completed', due_at = null where journey_id = $1`, [journey.id]);
    expect(await enteredAt('2028-12-08T00:00:00Z')).toBe(0);
    await resumeJourney(db, ws, 'birthday');
    expect(await enteredAt('2028-12-08T00:01:00Z')).toBe(0);
  });

  it('scheduled audience: a cron broadcast enters the segment’s members at each run, its messages paced by the journey’s send-rate limit', async () => {
    const { ws, clock, publish, run, instances, messages, addSegment } = await setup('Asia/Shanghai');
    const members = await Promise.all([1, 2, 3, 4].map((n) => insertProfile(db, ws, { traits: { email: `m${n}@example.com` } })));
    const outsider = await insertProfile(db, ws, { traits: { email: 'out@example.com' } });
    await addSegment('vip', members);
    clock.set('2026-03-02T00:00:00Z');
    const journey = await publish('weekly', {
      nodes: [
        // Mondays 10:00 in the workspace zone (Shanghai) = 02:00 UTC; 2 March 2026 is a Monday.
        { id: 'in', kind: 'entry', trigger: { kind: 'schedule', segment: 'vip', cron: '0 10 * * 1' }, reentry: { mode: 'always' }, ratePerSecond: 2, next: 'mail' },
        { id: 'mail', kind: 'send', channel: 'email', template: 'hello', purpose: 'marketing', next: 'end' },
        { id: 'end', kind: 'end' },
      ],
    });
    clock.set('2026-03-02T01:59:59Z');
    expect(await drainScheduledEntries(db, clock.now())).toBe(0);
    clock.set('2026-03-02T02:00:00Z');
    expect(await drainScheduledEntries(db, clock.now())).toBe(4);
    expect(await drainScheduledEntries(db, clock.now())).toBe(0);
    await run();
    const sent = await messages();
    expect(sent.map((m) => m.profile_id).sort()).toEqual([...members].sort());
    expect(sent.some((m) => m.profile_id === outsider)).toBe(false);
    // 2 messages per second: slots 0.5 s apart from the run.
    expect(sent.map((m) => m.due_at.getTime() - clock.now().getTime())).toEqual([0, 500, 1000, 1500]);
    expect((await instances(journey.id)).every((i) => i.status === 'completed' && i.entry === 'schedule')).toBe(true);
    // The next Monday, again (re-entry always).
    clock.set('2026-03-09T02:00:00Z');
    expect(await drainScheduledEntries(db, clock.now())).toBe(4);

    // A one-off broadcast runs once.
    const once = await publish('once', {
      nodes: [
        { id: 'in', kind: 'entry', trigger: { kind: 'schedule', segment: 'vip', at: '2026-03-10T00:00:00Z' }, reentry: { mode: 'always' }, next: 'end' },
        { id: 'end', kind: 'end' },
      ],
    });
    clock.set('2026-03-10T00:00:01Z');
    expect(await drainScheduledEntries(db, clock.now())).toBe(4);
    clock.set('2026-03-17T00:00:00Z');
    await drainScheduledEntries(db, clock.now());
    expect(await instances(once.id)).toHaveLength(4);
  });

  it('per-key instances: one per order id, at most maxConcurrent per profile, and a wait hears only its own order', async () => {
    const { ws, clock, publish, run, instances, track } = await setup();
    const journey = await publish('orders', {
      nodes: [
        { id: 'in', kind: 'entry', trigger: { kind: 'event', event: 'Order Placed', instanceKey: { property: 'order_id' } }, maxConcurrent: 2, next: 'ship' },
        { id: 'ship', kind: 'wait', event: 'Order Shipped', timeout: { amount: 2, unit: 'days' }, happened: 'shipped', timedOut: 'late' },
        { id: 'shipped', kind: 'end' },
        { id: 'late', kind: 'end' },
      ],
      exits: [{ id: 'cancelled', condition: 'event("Order Cancelled").exists()' }],
    });
    const buyer = await insertProfile(db, ws);
    const other = await insertProfile(db, ws);
    clock.advance(MINUTE);
    await track(buyer, 'Order Placed', { order_id: 'A-1' });
    await track(buyer, 'Order Placed', { order_id: 'B-2' });
    await track(buyer, 'Order Placed', { order_id: 'C-3' }); // a third at once: refused (max 2)
    await track(buyer, 'Order Placed', { order_id: 'A-1' }); // the same order again: already in
    await track(buyer, 'Order Placed', { total: 5 }); // no key: no instance
    await track(other, 'Order Placed', { order_id: 77 });
    await run();
    expect((await instances(journey.id)).map((i) => [i.profile_id === buyer ? 'buyer' : 'other', i.instance_key, i.node_id])).toEqual([
      ['other', '77', 'ship'],
      ['buyer', 'A-1', 'ship'],
      ['buyer', 'B-2', 'ship'],
    ]);
    clock.advance(HOUR);
    await track(buyer, 'Order Shipped', { order_id: 'B-2' });
    await run();
    const byKey = Object.fromEntries((await instances(journey.id)).map((i) => [i.instance_key, i]));
    expect(byKey['B-2']).toMatchObject({ status: 'completed', node_id: 'shipped' });
    expect(byKey['A-1']).toMatchObject({ status: 'active', node_id: 'ship' });
    // With B-2 done, a new order may start.
    clock.advance(MINUTE);
    await track(buyer, 'Order Placed', { order_id: 'C-3' });
    await run();
    // An exit condition, too, hears only its own order: cancelling C-3 leaves A-1 waiting.
    clock.advance(MINUTE);
    await track(buyer, 'Order Cancelled', { order_id: 'C-3' });
    await run();
    clock.advance(2 * DAY);
    await run();
    expect(Object.fromEntries((await instances(journey.id)).map((i) => [i.instance_key, [i.status, i.node_id]]))).toEqual({
      'A-1': ['completed', 'late'],
      'B-2': ['completed', 'shipped'],
      'C-3': ['exited', 'ship'],
      '77': ['completed', 'late'],
    });
  });

  it('a segment wait of an earlier version still hears its transition after a publish that dropped the node (instances stay on their version)', async () => {
    const { ws, clock, publish, run, instances, addSegment, transition, enter } = await setup();
    const waiting = await insertProfile(db, ws);
    const gold = await addSegment('gold');
    const journey = await publish('gold-flow', {
      nodes: [
        { id: 'in', kind: 'entry', trigger: { kind: 'api' }, reentry: { mode: 'always' }, next: 'until-gold' },
        { id: 'until-gold', kind: 'segment_wait', segment: 'gold', on: 'entered', timeout: { amount: 7, unit: 'days' }, happened: 'end', timedOut: 'gave-up' },
        { id: 'end', kind: 'end' },
        { id: 'gave-up', kind: 'end' },
      ],
    });
    await enter('gold-flow', waiting);
    await run();
    // Version 2 has no segment wait at all: no live version waits on "gold" any more.
    await db.query('update journeys set draft = $3 where workspace_id = $1 and key = $2', [
      ws,
      'gold-flow',
      JSON.stringify({ nodes: [{ id: 'in', kind: 'entry', trigger: { kind: 'api' }, next: 'end' }, { id: 'end', kind: 'end' }] }),
    ]);
    expect(await publishJourney(db, ws, 'gold-flow', clock.now(), { checkTemplate })).toMatchObject({ version: 2, stayed: 1 });
    clock.advance(HOUR);
    await transition(gold, [waiting], true);
    await run();
    const [instance] = (await instances(journey.id)).filter((i) => i.profile_id === waiting);
    expect(instance).toMatchObject({ status: 'completed', node_id: 'end', version: 1 });
    const { rows: path } = await db.query<{ node_id: string; outcome: string; version: number }>(
      'select node_id, outcome, version from journey_steps where workspace_id = $1 and instance_id = $2 order by step',
      [ws, instance!.id],
    );
    expect(path).toEqual([
      { node_id: 'in', outcome: 'next', version: 1 },
      { node_id: 'until-gold', outcome: 'happened', version: 1 },
      { node_id: 'end', outcome: 'completed', version: 1 },
    ]);
  });

  it('addTags adds to the tags stored when the step writes, not to the snapshot read before it (a write in between is kept)', async () => {
    const { ws, clock, publish, instances, enter } = await setup();
    const profile = await insertProfile(db, ws, { traits: { tags: ['cny'] } });
    const journey = await publish('tag-race', {
      nodes: [
        { id: 'in', kind: 'entry', trigger: { kind: 'api' }, next: 'mail' },
        { id: 'mail', kind: 'send', channel: 'email', template: 'hello', purpose: 'transactional', next: 'tag' },
        { id: 'tag', kind: 'update_trait', addTags: ['vip'], next: 'end' },
        { id: 'end', kind: 'end' },
      ],
    });
    expect((await enter('tag-race', profile)).instanceId).not.toBeNull();
    // The executor reads the snapshot, walks, enqueues the walk's messages, then writes traits: a
    // write landing between the read and the trait write (here inside the enqueue) must survive.
    let raced = 0;
    const racing: ExecutorDeps = {
      db,
      now: clock.now,
      enqueue: async (client, requests, now) => {
        raced += 1;
        await writeProfileTraits(client, ws, [{ profileId: profile, set: { tags: ['cny', 'late'] } }], { kind: 'crm_import', name: 'crm' }, { messageId: 'crm-late', at: now });
        return enqueueMessages(client, requests, now);
      },
    };
    for (let round = 0; round < 5 && (await instances(journey.id))[0]!.status === 'active'; round++) expect((await advanceDueInstances(racing)).failed).toEqual([]);
    expect(raced).toBe(1);
    expect((await instances(journey.id))[0]).toMatchObject({ status: 'completed', node_id: 'end' });
    const { rows } = await db.query<{ value: unknown; source_kind: string }>(
      `select value, source_kind from profile_traits where workspace_id = $1 and profile_id = $2 and key = 'tags'`,
      [ws, profile],
    );
    expect(rows).toEqual([{ value: ['cny', 'late', 'vip'], source_kind: 'journey' }]);
  });

  it('segment wait (already there, enters later, times out), update_trait with provenance, and a signed webhook through channels', async () => {
    const { ws, clock, publish, run, instances, messages, addSegment, transition, enter } = await setup();
    const already = await insertProfile(db, ws, { traits: { tags: ['cny'] } });
    const later = await insertProfile(db, ws);
    const never = await insertProfile(db, ws);
    const vip = await addSegment('vip', [already]);
    const journey = await publish('vip-flow', {
      nodes: [
        { id: 'in', kind: 'entry', trigger: { kind: 'api' }, next: 'until-vip' },
        { id: 'until-vip', kind: 'segment_wait', segment: 'vip', on: 'entered', timeout: { amount: 1, unit: 'days' }, happened: 'mark', timedOut: 'end' },
        { id: 'mark', kind: 'update_trait', set: { plan: 'gold' }, addTags: ['vip'], next: 'crm' },
        { id: 'crm', kind: 'webhook', channelConfigKey: 'crm', template: 'crm-sync', next: 'end' },
        { id: 'end', kind: 'end' },
      ],
    });
    for (const profile of [already, later, never]) expect((await enter('vip-flow', profile)).instanceId).not.toBeNull();
    await run();
    const at = async (profile: string) => (await instances(journey.id)).find((i) => i.profile_id === profile)!;
    expect(await at(already)).toMatchObject({ status: 'completed' });
    expect(await at(later)).toMatchObject({ status: 'active', node_id: 'until-vip', phase: 'wait', due_at: new Date(clock.now().getTime() + DAY) });
    clock.advance(HOUR);
    await transition(vip, [later], true);
    await run();
    expect(await at(later)).toMatchObject({ status: 'completed' });
    clock.advance(DAY);
    await run();
    expect(await at(never)).toMatchObject({ status: 'completed', node_id: 'end' });

    // Traits written like any trait write, with the journey as provenance and a history row.
    const { rows: traits } = await db.query<{ profile_id: string; key: string; value: unknown; source_kind: string; source_name: string }>(
      `select profile_id, key, value, source_kind, source_name from profile_traits where workspace_id = $1 and key in ('plan', 'tags') order by profile_id, key`,
      [ws],
    );
    const expected = (profile: string, tags: string[]) => [
      { profile_id: profile, key: 'plan', value: 'gold', source_kind: 'journey', source_name: `journey:${journey.id}` },
      { profile_id: profile, key: 'tags', value: tags, source_kind: 'journey', source_name: `journey:${journey.id}` },
    ];
    expect(traits).toEqual(expect.arrayContaining([...expected(already, ['cny', 'vip']), ...expected(later, ['vip'])]));
    expect(traits.some((row) => row.profile_id === never)).toBe(false);
    const { rows: history } = await db.query<{ key: string; previous_value: unknown; reason: string }>(
      `select key, previous_value, reason from profile_trait_history where workspace_id = $1 and profile_id = $2 order by key`,
      [ws, already],
    );
    expect(history).toEqual([
      { key: 'plan', previous_value: null, reason: 'write' },
      { key: 'tags', previous_value: ['cny'], reason: 'write' },
    ]);
    const { rows: queued } = await db.query<{ profile_id: string }>('select profile_id from segment_queue where workspace_id = $1', [ws]);
    expect(queued.map((r) => r.profile_id)).toEqual(expect.arrayContaining([already, later]));

    // The webhook node queued a transactional webhook message per profile that got there; channels' adapter signs it.
    const hooks = (await messages()).filter((m) => m.channel === 'webhook');
    expect(hooks.map((m) => [m.profile_id, m.template_key, m.purpose, m.status]).sort()).toEqual(
      [
        [already, 'crm-sync', 'transactional', 'queued'],
        [later, 'crm-sync', 'transactional', 'queued'],
      ].sort(),
    );
    const calls: Array<{ url: string; headers: Record<string, string>; body: string }> = [];
    const fakeFetch = (async (url: string, init: RequestInit) => {
      calls.push({ url, headers: init.headers as Record<string, string>, body: String(init.body) });
      return new Response('{}', { status: 200 });
    }) as unknown as typeof fetch;
    const dispatcher = createDispatcher({ db, secretsKey: SECRETS, publicUrl: 'https://tp.example', now: clock.now, fetch: fakeFetch });
    while ((await dispatcher.dispatchOnce()) > 0);
    expect(calls).toHaveLength(2);
    for (const call of calls) {
      expect(call.url).toBe('https://crm.example/hook');
      const unix = Math.floor(clock.now().getTime() / 1000);
      expect(call.headers['x-touchpoint-signature']).toBe(signatureHeader('shh', call.body, unix));
      expect(JSON.parse(call.body).body).toMatchObject({ journey: 'vip-flow' });
    }
  });

  it('waits until a time of day in the profile’s time zone on allowed weekdays, and until a date trait − 7 days', async () => {
    const { ws, clock, publish, run, instances, enter } = await setup();
    clock.set('2026-03-06T12:00:00Z'); // Friday; 20:00 in Shanghai
    const shanghai = await insertProfile(db, ws, { traits: { timezone: 'Asia/Shanghai', contract_end: '2026-04-30' } });
    const utc = await insertProfile(db, ws, { traits: { contract_end: '2026-03-01' } });
    const journey = await publish('timing', {
      nodes: [
        { id: 'in', kind: 'entry', trigger: { kind: 'api' }, next: 'morning' },
        { id: 'morning', kind: 'delay', until: { time: '09:00', weekdays: [1, 2, 3, 4, 5] }, next: 'renewal' },
        { id: 'renewal', kind: 'delay', untilDate: { trait: 'contract_end', days: -7, time: '10:00' }, next: 'end' },
        { id: 'end', kind: 'end' },
      ],
    });
    await enter('timing', shanghai);
    await enter('timing', utc);
    await run();
    const at = async (profile: string) => (await instances(journey.id)).find((i) => i.profile_id === profile)!;
    expect((await at(shanghai)).due_at).toEqual(new Date('2026-03-09T01:00:00Z')); // Monday 09:00 Shanghai
    expect((await at(utc)).due_at).toEqual(new Date('2026-03-09T09:00:00Z')); // Monday 09:00 UTC (workspace)
    clock.set('2026-03-09T09:00:00Z');
    await run();
    expect(await at(shanghai)).toMatchObject({ node_id: 'renewal', phase: 'wait', due_at: new Date('2026-04-23T02:00:00Z') });
    // A contract that already ended: no wait.
    expect(await at(utc)).toMatchObject({ status: 'completed' });
    const { rows } = await db.query<{ outcome: string }>(
      `select s.outcome from journey_steps s join journey_instances i on i.workspace_id = s.workspace_id and i.id = s.instance_id
        where s.workspace_id = $1 and i.profile_id = $2 and s.node_id = 'renewal'`,
      [ws, utc],
    );
    expect(rows.map((r) => r.outcome)).toEqual(['date_passed']);
  });

  it('pause holds the journey’s queued messages (nothing is sent), resume releases them, stop cancels them with the reason recorded', async () => {
    const { ws, clock, publish, run, messages, enter } = await setup();
    await publish('hooks', {
      nodes: [
        { id: 'in', kind: 'entry', trigger: { kind: 'api' }, next: 'crm' },
        { id: 'crm', kind: 'webhook', channelConfigKey: 'crm', template: 'crm-sync', next: 'later' },
        { id: 'later', kind: 'delay', duration: { amount: 1, unit: 'days' }, next: 'again' },
        { id: 'again', kind: 'webhook', channelConfigKey: 'crm', template: 'crm-sync', next: 'end' },
        { id: 'end', kind: 'end' },
      ],
    });
    const profile = await insertProfile(db, ws);
    await enter('hooks', profile);
    await run();
    expect((await messages()).map((m) => m.status)).toEqual(['queued']);
    let calls = 0;
    const fakeFetch = (async () => {
      calls++;
      return new Response('{}', { status: 200 });
    }) as unknown as typeof fetch;
    const dispatcher = createDispatcher({ db, secretsKey: SECRETS, publicUrl: 'https://tp.example', now: clock.now, fetch: fakeFetch });

    await pauseJourney(db, ws, 'hooks');
    expect((await messages()).map((m) => m.status)).toEqual(['held']);
    expect(await dispatcher.dispatchOnce()).toBe(0);
    expect(calls).toBe(0);
    // Paused: the instance's timer comes due but it holds; nothing new is queued.
    clock.advance(2 * DAY);
    await run();
    expect(await messages()).toHaveLength(1);

    await resumeJourney(db, ws, 'hooks');
    expect((await messages()).map((m) => m.status)).toEqual(['queued']);
    expect(await dispatcher.dispatchOnce()).toBe(1);
    expect(calls).toBe(1);
    await run(); // overdue: the second webhook is queued now
    expect((await messages()).map((m) => m.status)).toEqual(['sent', 'queued']);

    await pauseJourney(db, ws, 'hooks');
    const archived = await archiveJourney(db, ws, 'hooks', clock.now());
    expect(archived.cancelledMessages).toBe(1);
    const all = await messages();
    expect(all.map((m) => [m.status, m.reason])).toEqual([
      ['sent', null],
      ['cancelled', 'journey_stopped'],
    ]);
    const { rows } = await db.query<{ status: string; reason: string | null }>(
      'select status, reason from message_status_history where workspace_id = $1 and message_id = $2 order by at, id',
      [ws, all[1]!.id],
    );
    expect(rows.map((r) => [r.status, r.reason])).toEqual([
      ['queued', null],
      ['held', 'journey_paused'],
      ['cancelled', 'journey_stopped'],
    ]);
    expect(await dispatcher.dispatchOnce()).toBe(0);
    expect(calls).toBe(1);
  });

  it('templates read trigger-event properties and journey variables; publishing names the node and the missing variable', async () => {
    const { ws, clock, publish, run, messages, track } = await setup();
    await withTransaction(db, async (client) => {
      await createTemplate(client, ws, {
        key: 'cart',
        channel: 'email',
        name: 'Cart',
        defaultLocale: 'en',
        content: { en: { subject: 'Your {{ event.sku }}', text: 'Use {{ journey.coupon }} before {{ event.expires }} ({{ journey.key }})' } },
      });
    });
    // The catalogue has seen Added To Cart with sku.
    await db.query(
      `insert into event_catalogue_properties (workspace_id, event_type, event_name, scope, path, type_counts, first_seen, last_seen, volume)
       values ($1, 'track', 'Added To Cart', 'properties', 'sku', '{"string": 1}', now(), now(), 1)`,
      [ws],
    );
    const definition = (variables?: Record<string, string>, properties?: string[]): JourneyDefinition => ({
      nodes: [
        { id: 'in', kind: 'entry', trigger: { kind: 'event', event: 'Added To Cart', ...(properties ? { properties } : {}) }, next: 'mail' },
        { id: 'mail', kind: 'send', channel: 'email', template: 'cart', purpose: 'transactional', next: 'end' },
        { id: 'end', kind: 'end' },
      ],
      ...(variables ? { variables } : {}),
    });
    const problems = await journeyProblems(db, ws, definition(), { checkTemplate });
    expect(problems.map((p) => [p.node, p.field])).toEqual([
      ['mail', 'nodes.1.template'],
      ['mail', 'nodes.1.template'],
    ]);
    expect(problems.map((p) => p.message).join('\n')).toMatch(/"journey\.coupon" is not a journey variable/);
    expect(problems.map((p) => p.message).join('\n')).toMatch(/"event\.expires" is not a property of the trigger event \(available: sku\)/);
    await expect(publish('cart', definition())).rejects.toMatchObject({ statusCode: 400, code: 'invalid_journey' });
    expect(await journeyProblems(db, ws, definition({ coupon: 'SAVE10' }, ['expires']), { checkTemplate })).toEqual([]);

    await db.query(`update journeys set draft = $3 where workspace_id = $1 and key = $2`, [ws, 'cart', JSON.stringify(definition({ coupon: 'SAVE10' }, ['expires']))]);
    await publishJourney(db, ws, 'cart', clock.now(), { checkTemplate });
    const buyer = await insertProfile(db, ws, { traits: { email: 'b@example.com' } });
    clock.advance(MINUTE);
    await track(buyer, 'Added To Cart', { sku: 'TEA-1', expires: 'Friday' });
    await run();
    const [message] = await messages();
    expect(message!.variables).toMatchObject({ event: { sku: 'TEA-1', expires: 'Friday' }, journey: { coupon: 'SAVE10', key: 'cart', version: 1 } });
  });

  it('traits.* names in send templates are checked at publish: unknown ones are warnings naming node, field and trait; syntax errors refuse', async () => {
    const { ws, clock, apiKey } = await setup();
    await withTransaction(db, async (client) => {
      await createTemplate(client, ws, {
        key: 'greet',
        channel: 'email',
        name: 'Greet',
        defaultLocale: 'en',
        content: {
          en: { subject: 'Hi {{ traits.first_name }}', text: '{{ traits.frist_name | default: "there" }} · {{ traits.tier }} · {{ traits.vip }} · {{ traits.score }} · {{ traits.city }}' },
          'zh-CN': { subject: '{{ traits.first_name }}', text: '{{ traits.nickname }}' },
        },
      });
    });
    // Known: first_name from identify calls (catalogue), tier a computed trait, vip written by this
    // journey, city held by a profile (imported, say) though never seen by the catalogue.
    await db.query(
      `insert into event_catalogue_properties (workspace_id, event_type, event_name, scope, path, type_counts, first_seen, last_seen, volume)
       values ($1, 'identify', 'identify', 'traits', 'first_name', '{"string": 1}', now(), now(), 1)`,
      [ws],
    );
    await db.query(
      `insert into computed_traits (workspace_id, key, name, definition) values ($1, 'tier', 'Tier', '{"kind": "event_count", "event": "Order Completed"}')`,
      [ws],
    );
    await insertProfile(db, ws, { traits: { city: 'Hangzhou' } });
    const definition: JourneyDefinition = {
      nodes: [
        { id: 'in', kind: 'entry', trigger: { kind: 'api' }, next: 'flag' },
        { id: 'flag', kind: 'update_trait', set: { vip: true }, next: 'mail' },
        { id: 'mail', kind: 'send', channel: 'email', template: 'greet', purpose: 'transactional', next: 'end' },
        { id: 'end', kind: 'end' },
      ],
    };
    const checked = await journeyCheck(db, ws, definition, { checkTemplate });
    expect(checked.problems).toEqual([]);
    expect(checked.warnings.map((w) => [w.node, w.field, w.templateField, w.name])).toEqual([
      ['mail', 'nodes.2.template', 'en.text', 'traits.frist_name'],
      ['mail', 'nodes.2.template', 'en.text', 'traits.score'],
      ['mail', 'nodes.2.template', 'zh-CN.text', 'traits.nickname'],
    ]);
    expect(checked.warnings[0]!.message).toMatch(/trait "frist_name" is not known in this workspace .*did you mean "first_name"\?/);

    // Through the API: the draft shows the warnings, publishing goes ahead and returns them.
    const call = async (method: 'POST' | 'GET', url: string, payload?: object) => {
      const res = await t.app.inject({ method, url, headers: { authorization: `Bearer ${apiKey}` }, ...(payload === undefined ? {} : { payload }) });
      return { status: res.statusCode, body: res.json() };
    };
    expect((await call('POST', '/v1/journeys', { key: 'greet', name: 'Greet', definition })).body.warnings).toHaveLength(3);
    const published = await call('POST', '/v1/journeys/greet/publish', {});
    expect(published.status).toBe(200);
    expect(published.body.warnings.map((w: { name: string }) => w.name)).toEqual(['traits.frist_name', 'traits.score', 'traits.nickname']);
    expect((await call('POST', '/v1/journeys/greet/validate', {})).body).toMatchObject({ problems: [], warnings: [{ node: 'mail' }, { node: 'mail' }, { node: 'mail' }] });

    // A Liquid syntax error is an error: publishing refuses it.
    await withTransaction(db, (client) =>
      createTemplate(client, ws, { key: 'broken', channel: 'email', name: 'Broken', defaultLocale: 'en', content: { en: { subject: 'ok', text: 'ok' } } }),
    );
    await db.query(`update message_template_versions set content = '{"en": {"subject": "{{ traits.first_name ", "text": "x"}}' where workspace_id = $1 and template_key = 'broken'`, [ws]);
    const broken = { nodes: definition.nodes.map((node) => (node.kind === 'send' ? { ...node, template: 'broken' } : node)) } as JourneyDefinition;
    const refused = await journeyCheck(db, ws, broken, { checkTemplate });
    expect(refused.problems.map((p) => [p.node, p.field])).toEqual([['mail', 'nodes.2.template']]);
    expect(refused.problems[0]!.message).toMatch(/Template "broken" en\.subject/);
    clock.advance(MINUTE);
  });

  it('dry run: the path, each wait’s wake time, rendered messages and the guards that would skip or defer them — and nothing written', async () => {
    const { ws, apiKey } = await setup();
    await putPolicy(db, ws, { frequencyCaps: [{ maxMessages: 1, windowSeconds: 7 * 86_400, channel: 'email' }], quietHours: { start: '21:00', end: '08:00' }, requireOptIn: [] });
    await withTransaction(db, (client) =>
      createTemplate(client, ws, {
        key: 'offer',
        channel: 'email',
        name: 'Offer',
        defaultLocale: 'en',
        content: { en: { subject: '{{ traits.first_name }}, {{ journey.coupon }} for {{ event.product }}', text: 'x' }, 'zh-CN': { subject: '{{ traits.first_name }}，优惠 {{ journey.coupon }}', text: 'x' } },
      }),
    );
    const profile = await insertProfile(db, ws, { traits: { first_name: 'Mei', email: 'mei@example.com', phone: '+8613800000001', locale: 'zh-CN', timezone: 'Asia/Shanghai' } });
    await db.query(`insert into profile_consents (workspace_id, profile_id, category, granted, observed_at) values ($1, $2, 'sms', false, now())`, [ws, profile]);
    const definition: JourneyDefinition = {
      nodes: [
        { id: 'in', kind: 'entry', trigger: { kind: 'api', properties: ['product'] }, next: 'offer' },
        { id: 'offer', kind: 'send', channel: 'email', template: 'offer', purpose: 'marketing', next: 'day' },
        { id: 'day', kind: 'delay', duration: { amount: 1, unit: 'days' }, next: 'sms' },
        { id: 'sms', kind: 'send', channel: 'sms', template: 'nudge', purpose: 'marketing', next: 'order' },
        { id: 'order', kind: 'wait', event: 'Order Completed', timeout: { amount: 2, unit: 'days' }, happened: 'end', timedOut: 'again' },
        { id: 'again', kind: 'send', channel: 'email', template: 'offer', purpose: 'marketing', next: 'tag' },
        { id: 'tag', kind: 'update_trait', addTags: ['nurtured'], next: 'end' },
        { id: 'end', kind: 'end' },
      ],
      variables: { coupon: 'TEA10' },
    };
    await createJourney(db, ws, { key: 'dry', name: 'Dry', definition });
    const before = await db.query<{ n: number }>('select (select count(*) from messages where workspace_id = $1)::int + (select count(*) from journey_instances where workspace_id = $1)::int as n', [ws]);

    // Through the API, on the draft: starts at 14:00 UTC = 22:00 in Shanghai, inside the quiet hours.
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/journeys/dry/dry-run',
      headers: { authorization: `Bearer ${apiKey}` },
      payload: { profile, version: 'draft', start: '2026-03-10T14:00:00Z', variables: { product: 'oolong' } },
    });
    expect(res.statusCode).toBe(200);
    const result = res.json();
    expect(result.version).toBe('draft');
    expect(result.path.map((s: { nodeId: string; outcome: string }) => [s.nodeId, s.outcome])).toEqual([
      ['in', 'next'],
      ['offer', 'would_send'],
      ['day', 'next'],
      ['sms', 'would_skip'],
      ['order', 'timed_out'],
      ['again', 'would_skip'],
      ['tag', 'updated'],
      ['end', 'completed'],
    ]);
    expect(result.waits).toEqual([
      { nodeId: 'day', kind: 'delay', from: '2026-03-10T14:00:00.000Z', until: '2026-03-11T14:00:00.000Z', ends: 'next' },
      { nodeId: 'order', kind: 'wait', from: '2026-03-11T14:00:00.000Z', until: '2026-03-13T14:00:00.000Z', ends: 'timed_out' },
    ]);
    expect(result.messages).toEqual([
      expect.objectContaining({
        nodeId: 'offer',
        decision: 'send',
        // Quiet hours end at 08:00 Shanghai = 00:00 UTC.
        sendAt: '2026-03-11T00:00:00.000Z',
        deferredBy: 'quiet_hours',
        locale: 'zh-CN',
        fields: { subject: 'Mei，优惠 TEA10', text: 'x' },
      }),
      expect.objectContaining({ nodeId: 'sms', decision: 'skip', reason: 'no_consent' }),
      // The run's own first email counts against the weekly cap of one.
      expect.objectContaining({ nodeId: 'again', decision: 'skip', reason: 'frequency_cap' }),
    ]);
    expect(result.traits).toEqual([{ nodeId: 'tag', at: '2026-03-13T14:00:00.000Z', values: { tags: ['nurtured'] } }]);
    expect(result.end).toEqual({ reason: 'completed', detail: null, at: '2026-03-13T14:00:00.000Z' });

    // Assuming the order comes: the run ends there.
    const version = { journeyId: (await db.query<{ id: string }>(`select id from journeys where workspace_id = $1 and key = 'dry'`, [ws])).rows[0]!.id, journeyKey: 'dry', version: 0, definition };
    const assumed = await dryRun(db, ws, version, profile, { start: new Date('2026-03-10T03:00:00Z'), assume: { order: 'happened' }, variables: { product: 'oolong' } });
    expect(assumed.path.map((s) => s.nodeId)).toEqual(['in', 'offer', 'day', 'sms', 'order', 'end']);
    expect(assumed.messages[0]).toMatchObject({ decision: 'send', sendAt: '2026-03-10T03:00:00.000Z' });
    expect(assumed.messages[0]!.deferredBy).toBeUndefined();

    const after = await db.query<{ n: number }>('select (select count(*) from messages where workspace_id = $1)::int + (select count(*) from journey_instances where workspace_id = $1)::int as n', [ws]);
    expect(after.rows[0]!.n).toBe(before.rows[0]!.n);
    const { rows: traits } = await db.query('select 1 from profile_traits where workspace_id = $1 and profile_id = $2 and key = $3', [ws, profile, 'tags']);
    expect(traits).toHaveLength(0);
  });
  it('operator control: skip a wait, the instance view lists its messages, and publish leaves running instances on their version until the operator migrates them by node mapping', async () => {
    const { ws, clock, publish, run, instances, enter, apiKey } = await setup();
    const call = async (method: 'GET' | 'POST' | 'PATCH', url: string, payload?: object) => {
      const res = await t.app.inject({ method, url, headers: { authorization: `Bearer ${apiKey}` }, ...(payload === undefined ? {} : { payload }) });
      return { status: res.statusCode, body: res.json() };
    };
    const definition = (waitId: string): JourneyDefinition => ({
      nodes: [
        { id: 'in', kind: 'entry', trigger: { kind: 'api' }, reentry: { mode: 'always' }, next: 'mail' },
        { id: 'mail', kind: 'send', channel: 'email', template: 'hello', purpose: 'transactional', next: waitId },
        { id: waitId, kind: 'wait', event: 'Order Completed', timeout: { amount: 7, unit: 'days' }, happened: 'end', timedOut: 'nudge' },
        { id: 'nudge', kind: 'send', channel: 'sms', template: 'nudge', purpose: 'transactional', next: 'end' },
        { id: 'end', kind: 'end' },
      ],
    });
    const journey = await publish('ops', definition('wait-order'));
    const a = await insertProfile(db, ws, { traits: { email: 'a@example.com', phone: '+8613800000002' } });
    const b = await insertProfile(db, ws, { traits: { email: 'b@example.com', phone: '+8613800000003' } });
    const first = await enter('ops', a);
    await enter('ops', b);
    await run();

    // Skip the wait: it takes its timedOut branch now (the SMS), and the path says who skipped it.
    const skipped = await call('POST', `/v1/journeys/ops/instances/${first.instanceId}/skip-wait`, {});
    expect(skipped.status).toBe(200);
    await run();
    const detail = await call('GET', `/v1/journeys/ops/instances/${first.instanceId}`);
    expect(detail.body.instance).toMatchObject({ status: 'completed' });
    expect(detail.body.messages.map((m: { nodeId: string; channel: string; status: string }) => [m.nodeId, m.channel, m.status]).sort()).toEqual([
      ['mail', 'email', 'queued'],
      ['nudge', 'sms', 'queued'],
    ]);
    const waitStep = detail.body.path.find((s: { nodeId: string }) => s.nodeId === 'wait-order');
    expect(waitStep).toMatchObject({ outcome: 'timed_out', detail: expect.objectContaining({ skipped_by: 'operator' }) });
    expect((await call('POST', `/v1/journeys/ops/instances/${first.instanceId}/skip-wait`, {})).status).toBe(409);

    // The wait node is renamed in the draft and published: b stays on version 1 (at "wait-order").
    await call('PATCH', '/v1/journeys/ops', { definition: definition('await-order') });
    expect((await call('POST', '/v1/journeys/ops/publish', { mapping: { 'wait-order': 'await-order' } })).body).toMatchObject({ error: 'invalid_request', field: 'mapping' });
    expect((await call('POST', '/v1/journeys/ops/publish', { migrate: 'all', mapping: { 'wait-order': 'nowhere' } })).body).toMatchObject({ error: 'invalid_mapping', field: 'mapping.wait-order' });
    const published = await call('POST', '/v1/journeys/ops/publish', {});
    expect(published.body).toMatchObject({ version: 2, migrated: 0, exited: 0, stayed: 1 });
    expect((await instances(journey.id)).find((i) => i.profile_id === b)).toMatchObject({ status: 'active', node_id: 'wait-order', version: 1 });
    const versions = await call('GET', '/v1/journeys/ops/versions');
    expect(versions.body.items.map((v: { version: number; live: boolean; instances: object }) => [v.version, v.live, v.instances])).toEqual([
      [2, true, { active: 0, completed: 0, converted: 0, exited: 0 }],
      [1, false, { active: 1, completed: 1, converted: 0, exited: 0 }],
    ]);
    expect((await call('GET', '/v1/journeys/ops/stats')).body.versions).toEqual([{ version: 1, active: 1, completed: 1, converted: 0, exited: 0 }]);
    expect((await call('GET', '/v1/journeys/ops/instances?version=1&status=active')).body.items.map((i: { profileId: string }) => i.profileId)).toEqual([b]);
    expect((await call('GET', '/v1/journeys/ops/instances?version=2')).body.items).toEqual([]);

    // Later the operator migrates: refused with the node named until it is mapped, then moved.
    const unmapped = await call('POST', '/v1/journeys/ops/migrate', {});
    expect(unmapped.status).toBe(409);
    expect(unmapped.body).toMatchObject({ error: 'unmapped_instances', field: 'mapping.wait-order' });
    expect(unmapped.body.details.unmapped).toEqual([{ version: 1, node: 'wait-order', kind: 'wait', instances: 1, reason: 'node "wait-order" was removed in version 2' }]);
    expect((await call('POST', '/v1/journeys/ops/migrate', { fromVersion: 2 })).body).toMatchObject({ error: 'invalid_request', field: 'fromVersion' });
    const migrated = await call('POST', '/v1/journeys/ops/migrate', { mapping: { 'wait-order': 'await-order' } });
    expect(migrated.body).toEqual({ version: 2, migrated: 1, exited: 0, stayed: 0 });
    const moved = (await instances(journey.id)).find((i) => i.profile_id === b)!;
    expect(moved).toMatchObject({ status: 'active', node_id: 'await-order', phase: 'wait' });
    clock.advance(7 * 86_400_000);
    await run();
    expect((await instances(journey.id)).find((i) => i.profile_id === b)).toMatchObject({ status: 'completed' });
  });
});
