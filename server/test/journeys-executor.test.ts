import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JourneyDefinition } from '../src/journeys/definition.ts';
import { advanceDueInstances, enterProfiles, type EnqueueMessages, type ExecutorDeps } from '../src/journeys/executor.ts';
import { archiveJourney, createJourney, pauseJourney, publishJourney, resumeJourney, updateJourney } from '../src/journeys/store.ts';
import { versionCounts } from '../src/journeys/views.ts';
import { prepareTransitionStorage } from '../src/segments/transitions.ts';
import { withTransaction } from '../src/storage/database.ts';
import { createWorkspace } from '../src/workspaces/store.ts';
import { insertProfile } from './segments-lifecycle-support.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';
import {
  createRecordingOutbox,
  journeyEvents,
  recordedMessages,
  recordingEnqueue,
  stepsOf,
  testClock,
  welcomeSeries,
} from './journeys-support.ts';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

describe('journey executor on real PostgreSQL', () => {
  let database: TestDatabase;
  let counter = 0;

  beforeAll(async () => {
    database = await createTestDatabase();
    await createRecordingOutbox(database.db);
  });
  afterAll(async () => database.drop());

  const setup = async (definition: JourneyDefinition, start = '2026-03-02T08:00:00Z', timeZone = 'UTC') => {
    const db = database.db;
    // The executor serves every workspace: what earlier tests left running must not be taken here.
    await db.query(`update journey_instances set status = 'exited', due_at = null where status = 'active'`);
    await db.query(`update journeys set status = 'archived'`);
    const workspace = await createWorkspace(db, { slug: `j-${++counter}`, name: 'j', timeZone });
    const clock = testClock(start);
    const journey = await createJourney(db, workspace.id, { key: 'welcome', name: 'Welcome', definition });
    await publishJourney(db, workspace.id, 'welcome', clock.now());
    const deps: ExecutorDeps = { db, enqueue: recordingEnqueue, now: clock.now };
    const enter = async (profileIds: string[], variables?: Record<string, unknown>) => {
      await prepareTransitionStorage(db, clock.now());
      return withTransaction(db, (client) =>
        enterProfiles(client, workspace.id, journey.id, profileIds.map((profileId) => ({ profileId, entry: 'api' as const, ...(variables ? { variables } : {}) })), clock.now()),
      );
    };
    const drain = async (d: ExecutorDeps = deps) => {
      let total = 0;
      for (;;) {
        const { taken, failed } = await advanceDueInstances(d);
        expect(failed).toEqual([]);
        if (taken === 0) return total;
        total += taken;
      }
    };
    const instance = async (profileId: string) => {
      const { rows } = await db.query(
        `select id, status, node_id, phase, due_at, end_reason, end_detail, version from journey_instances
          where workspace_id = $1 and profile_id = $2 order by entered_at desc limit 1`,
        [workspace.id, profileId],
      );
      return rows[0] as { id: string; status: string; node_id: string; phase: string; due_at: Date | null; end_reason: string | null; end_detail: string | null; version: number };
    };
    return { db, workspace, journey, clock, deps, enter, drain, instance };
  };

  it('walks the welcome series: send, wait a day (not a minute less), send, end; path and events recorded', async () => {
    const { db, workspace, clock, enter, drain, instance } = await setup(welcomeSeries());
    const profile = await insertProfile(db, workspace.id);
    const [entered] = await enter([profile], { plan: 'pro' });
    expect(entered!.instanceId).toBeDefined();
    expect(await drain()).toBe(1);
    let messages = await recordedMessages(db, workspace.id);
    expect(messages.map((m) => [m.channel, m.template_key, m.idempotency_key])).toEqual([['email', 'welcome', `journey:${entered!.instanceId}:hello:1`]]);
    expect(messages[0]!.request).toMatchObject({ purpose: 'marketing', variables: { event: { plan: 'pro' } }, origin: { nodeId: 'hello', journeyVersion: 1 } });
    expect(await instance(profile)).toMatchObject({ status: 'active', node_id: 'day', phase: 'wait', due_at: new Date(clock.now().getTime() + DAY) });

    clock.advance(DAY - 60_000);
    expect(await drain()).toBe(0);
    clock.advance(60_000);
    expect(await drain()).toBe(1);
    messages = await recordedMessages(db, workspace.id);
    expect(messages.map((m) => m.template_key)).toEqual(['welcome', 'nudge']);
    expect(await instance(profile)).toMatchObject({ status: 'completed', end_reason: 'completed', node_id: 'bye', due_at: null });
    expect(await stepsOf(db, workspace.id, entered!.instanceId!)).toEqual([
      { node_id: 'in', outcome: 'next' },
      { node_id: 'hello', outcome: 'queued' },
      { node_id: 'day', outcome: 'next' },
      { node_id: 'nudge', outcome: 'queued' },
      { node_id: 'bye', outcome: 'completed' },
    ]);
    const events = await journeyEvents(db, workspace.id, profile);
    expect(events.map((e) => e.event)).toEqual(['Journey Entered', 'Journey Exited']);
    expect(events[0]!.properties).toMatchObject({ journey_key: 'welcome', journey_version: 1, entry: 'api', group: 'treatment', instance_id: entered!.instanceId });
    expect(events[1]!.properties).toMatchObject({ reason: 'completed', node_id: 'bye' });
  });

  it('applies re-entry rules, one live instance per profile, and the entry cap', async () => {
    const definition = welcomeSeries();
    definition.nodes[0] = { id: 'in', kind: 'entry', trigger: { kind: 'api' }, reentry: { mode: 'after', days: 2 }, cap: 3, next: 'hello' };
    const { db, workspace, clock, enter, drain } = await setup(definition);
    const [a, b, c, d] = [await insertProfile(db, workspace.id), await insertProfile(db, workspace.id), await insertProfile(db, workspace.id), await insertProfile(db, workspace.id)];
    expect((await enter([a!, a!])).map((r) => r.refused ?? 'in')).toEqual(['in', 'already_in']);
    await drain();
    clock.advance(DAY + HOUR);
    await drain(); // a completes
    expect((await enter([a!])).map((r) => r.refused)).toEqual(['reentry']);
    clock.advance(DAY);
    expect((await enter([a!, b!, c!, d!])).map((r) => r.refused ?? 'in')).toEqual(['in', 'in', 'cap', 'cap']);
  });

  it('never runs a step twice with four concurrent workers', async () => {
    const { db, workspace, deps, enter } = await setup(welcomeSeries());
    const profiles: string[] = [];
    for (let i = 0; i < 150; i++) profiles.push(await insertProfile(db, workspace.id));
    await enter(profiles);
    let calls = 0;
    const counting: EnqueueMessages = async (client, requests, now) => {
      calls += requests.length;
      return recordingEnqueue(client, requests, now);
    };
    const worker = async () => {
      for (;;) {
        const { taken } = await advanceDueInstances({ ...deps, enqueue: counting }, 20);
        if (taken === 0) return;
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
    expect(calls).toBe(150);
    const { rows } = await db.query<{ keys: number; rows: number }>(
      'select count(distinct idempotency_key)::int as keys, count(*)::int as rows from test_outbox where workspace_id = $1',
      [workspace.id],
    );
    expect(rows[0]).toEqual({ keys: 150, rows: 150 });
  });

  it('splits on a segment-language condition, assigns random branches with events, and sends nothing to the holdout', async () => {
    const definition: JourneyDefinition = {
      nodes: [
        { id: 'in', kind: 'entry', trigger: { kind: 'api' }, holdoutPercent: 30, next: 'vip' },
        { id: 'vip', kind: 'split', condition: 'trait.tier = "gold"', yes: 'gold', no: 'ab' },
        { id: 'gold', kind: 'send', channel: 'email', template: 'gold', purpose: 'marketing', next: 'end' },
        {
          id: 'ab',
          kind: 'random',
          branches: [
            { key: 'a', percent: 50, next: 'mail-a' },
            { key: 'b', percent: 50, next: 'mail-b' },
          ],
        },
        { id: 'mail-a', kind: 'send', channel: 'email', template: 'a', purpose: 'marketing', next: 'end' },
        { id: 'mail-b', kind: 'send', channel: 'email', template: 'b', purpose: 'marketing', next: 'end' },
        { id: 'end', kind: 'end' },
      ],
    };
    const { db, workspace, enter, drain } = await setup(definition);
    const gold: string[] = [];
    const plain: string[] = [];
    for (let i = 0; i < 40; i++) gold.push(await insertProfile(db, workspace.id, { traits: { tier: 'gold' } }));
    for (let i = 0; i < 40; i++) plain.push(await insertProfile(db, workspace.id, { traits: { tier: 'silver' } }));
    await enter([...gold, ...plain]);
    await drain();
    const { rows: groups } = await db.query<{ profile_id: string; holdout: boolean }>('select profile_id, holdout from journey_instances where workspace_id = $1', [workspace.id]);
    const heldOut = new Set(groups.filter((g) => g.holdout).map((g) => g.profile_id));
    expect(heldOut.size).toBeGreaterThan(5);
    expect(heldOut.size).toBeLessThan(45);
    const messages = await recordedMessages(db, workspace.id);
    const sentTo = new Map(messages.map((m) => [m.profile_id, m.template_key]));
    for (const p of gold) expect(sentTo.get(p)).toBe(heldOut.has(p) ? undefined : 'gold');
    const events = await journeyEvents(db, workspace.id);
    const variants = new Map(events.filter((e) => e.event === 'Journey Split Assigned').map((e) => [e.properties.instance_id, e.properties.variant]));
    expect(variants.size).toBe(40);
    for (const p of plain) {
      const template = sentTo.get(p);
      if (heldOut.has(p)) expect(template).toBeUndefined();
      else expect(['a', 'b']).toContain(template);
    }
    expect(messages.length).toBe(80 - heldOut.size);
    const entered = events.filter((e) => e.event === 'Journey Entered');
    expect(entered.filter((e) => e.properties.group === 'holdout').length).toBe(heldOut.size);
  });

  it('pause holds instances and sends nothing; resume continues; archive stops every instance', async () => {
    const { db, workspace, clock, enter, drain, instance } = await setup(welcomeSeries());
    const profile = await insertProfile(db, workspace.id);
    await enter([profile]);
    await drain();
    await pauseJourney(db, workspace.id, 'welcome');
    clock.advance(2 * DAY);
    expect(await drain()).toBe(0);
    expect((await enter([await insertProfile(db, workspace.id)]))[0]!.refused).toBe('not_live');
    expect((await recordedMessages(db, workspace.id)).length).toBe(1);
    await resumeJourney(db, workspace.id, 'welcome');
    expect(await drain()).toBe(1);
    expect((await recordedMessages(db, workspace.id)).map((m) => m.template_key)).toEqual(['welcome', 'nudge']);
    expect((await instance(profile)).status).toBe('completed');

    const other = await insertProfile(db, workspace.id);
    await enter([other]);
    await drain();
    const { stopped } = await archiveJourney(db, workspace.id, 'welcome', clock.now());
    expect(stopped).toBe(1);
    expect(await instance(other)).toMatchObject({ status: 'exited', end_reason: 'stopped' });
    clock.advance(2 * DAY);
    expect(await drain()).toBe(0);
    await expect(resumeJourney(db, workspace.id, 'welcome')).rejects.toThrow(/archived/);
  });

  it('versioning: running instances stay on the version they started on; new entries take the new one; counts per version', async () => {
    const definition = welcomeSeries();
    definition.nodes.splice(3, 0, { id: 'long', kind: 'delay', duration: { amount: 3, unit: 'days' }, next: 'nudge' });
    definition.nodes[2] = { id: 'day', kind: 'delay', duration: { amount: 1, unit: 'days' }, next: 'long' };
    const { db, workspace, journey, clock, enter, drain, instance } = await setup(definition);
    const onV1 = await insertProfile(db, workspace.id);
    await enter([onV1]);
    await drain();
    clock.advance(DAY);
    await drain(); // at "long" (a node version 2 does not have)
    expect(await instance(onV1)).toMatchObject({ node_id: 'long', version: 1 });

    // Version 2 drops the long delay and sends a coupon before the nudge.
    const v2 = welcomeSeries();
    v2.nodes[2] = { id: 'day', kind: 'delay', duration: { amount: 1, unit: 'days' }, next: 'coupon' };
    v2.nodes.splice(3, 0, { id: 'coupon', kind: 'send', channel: 'sms', template: 'coupon', purpose: 'marketing', next: 'nudge' });
    await updateJourney(db, workspace.id, 'welcome', { definition: v2 });
    // Mapping without migrating is refused: it would mean nothing.
    await expect(publishJourney(db, workspace.id, 'welcome', clock.now(), {}, { mapping: { long: 'day' } })).rejects.toMatchObject({ statusCode: 400, field: 'mapping' });
    const published = await publishJourney(db, workspace.id, 'welcome', clock.now());
    expect(published).toMatchObject({ version: 2, migrated: 0, exited: 0, stayed: 1 });
    expect(await instance(onV1)).toMatchObject({ status: 'active', node_id: 'long', version: 1 });

    const onV2 = await insertProfile(db, workspace.id);
    await enter([onV2]);
    await drain();
    expect(await instance(onV2)).toMatchObject({ node_id: 'day', version: 2 });
    expect(await versionCounts(db, workspace.id, journey.id)).toEqual(
      new Map([
        [1, { active: 1, completed: 0, converted: 0, exited: 0 }],
        [2, { active: 1, completed: 0, converted: 0, exited: 0 }],
      ]),
    );
    clock.advance(3 * DAY);
    await drain();
    // Each walked its own version's graph: version 1 has no coupon, version 2 no long delay.
    const sent = async (profile: string) => (await recordedMessages(db, workspace.id)).filter((m) => m.profile_id === profile).map((m) => [m.template_key, m.request.origin?.journeyVersion]);
    expect(await sent(onV1)).toEqual([
      ['welcome', 1],
      ['nudge', 1],
    ]);
    expect(await sent(onV2)).toEqual([
      ['welcome', 2],
      ['coupon', 2],
      ['nudge', 2],
    ]);
    expect(await instance(onV1)).toMatchObject({ status: 'completed', version: 1 });
    const { rows: steps } = await db.query<{ version: number }>(
      'select distinct s.version from journey_steps s join journey_instances i on i.workspace_id = s.workspace_id and i.id = s.instance_id where i.profile_id = $1',
      [onV1],
    );
    expect(steps.map((r) => r.version)).toEqual([1]);
    expect((await versionCounts(db, workspace.id, journey.id)).get(1)).toEqual({ active: 0, completed: 1, converted: 0, exited: 0 });
  });

  it('migration is the operator’s choice: refused while instances sit at removed nodes, unless mapped or told to exit them', async () => {
    const definition = welcomeSeries();
    definition.nodes.splice(3, 0, { id: 'long', kind: 'delay', duration: { amount: 3, unit: 'days' }, next: 'nudge' });
    definition.nodes[2] = { id: 'day', kind: 'delay', duration: { amount: 1, unit: 'days' }, next: 'long' };
    const { db, workspace, clock, enter, drain, instance } = await setup(definition);
    const atDay = await insertProfile(db, workspace.id);
    await enter([atDay]);
    await drain();
    clock.advance(HOUR);
    const atLong = await insertProfile(db, workspace.id);
    await enter([atLong]);
    await drain();
    clock.advance(DAY - HOUR / 2);
    await drain(); // atDay moves on to long; atLong is still at day
    expect((await instance(atDay)).node_id).toBe('long');
    expect((await instance(atLong)).node_id).toBe('day');

    // Version 2 drops the long delay and adds a coupon before the nudge.
    const v2 = welcomeSeries();
    v2.nodes[2] = { id: 'day', kind: 'delay', duration: { amount: 1, unit: 'days' }, next: 'coupon' };
    v2.nodes.splice(3, 0, { id: 'coupon', kind: 'send', channel: 'sms', template: 'coupon', purpose: 'marketing', next: 'nudge' });
    await updateJourney(db, workspace.id, 'welcome', { definition: v2 });
    // Migrating all with an instance at "long" (gone in version 2): a clear refusal, nothing published.
    const refused = await publishJourney(db, workspace.id, 'welcome', clock.now(), {}, { migrate: 'all' }).catch((error: unknown) => error);
    expect(refused).toMatchObject({ statusCode: 409, code: 'unmapped_instances', field: 'mapping.long', details: { unmapped: [{ version: 1, node: 'long', kind: 'delay', instances: 1 }] } });
    expect((refused as Error).message).toMatch(/v1 "long": 1, node "long" was removed in version 2/);
    expect(await instance(atDay)).toMatchObject({ status: 'active', node_id: 'long', version: 1 });
    const { rows: live } = await db.query<{ current_version: number }>('select current_version from journeys where workspace_id = $1', [workspace.id]);
    expect(live[0]!.current_version).toBe(1);
    // The explicit choice keeps the earlier live-edit behaviour: move by node id, exit the unmapped.
    const published = await publishJourney(db, workspace.id, 'welcome', clock.now(), {}, { migrate: 'all', exitUnmapped: true });
    expect(published).toMatchObject({ version: 2, migrated: 1, exited: 1, stayed: 0 });
    expect(await instance(atDay)).toMatchObject({ status: 'exited', end_reason: 'exited', end_detail: 'node "long" was removed in version 2' });
    expect(await instance(atLong)).toMatchObject({ status: 'active', node_id: 'day', version: 2 });
    clock.advance(DAY);
    await drain();
    const templates = (await recordedMessages(db, workspace.id)).filter((m) => m.profile_id === atLong).map((m) => m.template_key);
    expect(templates).toEqual(['welcome', 'coupon', 'nudge']);
    const exited = (await journeyEvents(db, workspace.id, atDay)).find((e) => e.event === 'Journey Exited');
    expect(exited?.properties).toMatchObject({ reason: 'exited', node_id: 'long', journey_version: 1 });
  });

  it('a failing enqueue undoes only that instance\'s step and retries it later with the error in its history', async () => {
    const { db, workspace, clock, deps, enter, instance } = await setup(welcomeSeries());
    const good = await insertProfile(db, workspace.id);
    const bad = await insertProfile(db, workspace.id);
    await enter([good, bad]);
    const flaky: EnqueueMessages = async (client, requests, now) => {
      if (requests.some((request) => request.profileId === bad)) throw new Error('channel store unavailable');
      return recordingEnqueue(client, requests, now);
    };
    const outcome = await advanceDueInstances({ ...deps, enqueue: flaky });
    expect(outcome.taken).toBe(2);
    expect(outcome.failed).toEqual([{ instanceId: (await instance(bad)).id, error: 'channel store unavailable' }]);
    expect((await recordedMessages(db, workspace.id)).map((m) => m.profile_id)).toEqual([good]);
    expect(await instance(bad)).toMatchObject({ status: 'active', node_id: 'in', phase: 'arrive' });
    expect((await instance(bad)).due_at!.getTime()).toBeGreaterThan(clock.now().getTime());
    expect(await stepsOf(db, workspace.id, (await instance(bad)).id)).toEqual([{ node_id: 'hello', outcome: 'failed' }]);
    clock.advance(60_000);
    expect((await advanceDueInstances(deps)).failed).toEqual([]);
    expect((await recordedMessages(db, workspace.id)).map((m) => m.profile_id)).toEqual([good, bad]);
    expect((await stepsOf(db, workspace.id, (await instance(bad)).id)).map((s) => s.outcome)).toEqual(['failed', 'next', 'queued', 'waiting']);
  });

  it('waits until a time of day in the workspace time zone', async () => {
    const definition = welcomeSeries();
    definition.nodes[2] = { id: 'day', kind: 'delay', until: { time: '10:00' }, next: 'nudge' };
    // 08:00 UTC is 16:00 in Shanghai: the next 10:00 there is 02:00 UTC tomorrow.
    const { db, workspace, enter, drain, instance } = await setup(definition, '2026-03-02T08:00:00Z', 'Asia/Shanghai');
    const profile = await insertProfile(db, workspace.id);
    await enter([profile]);
    await drain();
    expect((await instance(profile)).due_at!.toISOString()).toBe('2026-03-03T02:00:00.000Z');
  });
});
