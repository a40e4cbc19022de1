import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JourneyDefinition } from '../src/journeys/definition.ts';
import { advanceDueInstances, enterProfiles, type ExecutorDeps } from '../src/journeys/executor.ts';
import { drainJourneyEvents, drainSegmentEntries } from '../src/journeys/intake.ts';
import { createJourney, publishJourney } from '../src/journeys/store.ts';
import { prepareTransitionStorage, recordTransitions, type SegmentRef } from '../src/segments/transitions.ts';
import { withTransaction } from '../src/storage/database.ts';
import { createSource, createWorkspace } from '../src/workspaces/store.ts';
import { createRecordingOutbox, journeyEvents, recordedMessages, recordingEnqueue, stepsOf, testClock } from './journeys-support.ts';
import { insertProfile, insertTrack } from './segments-lifecycle-support.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';

const MINUTE = 60_000;
// Other test files' transactions on the same server hold the settle back; a test must not read that as idle.
const settle = { settleTimeoutMs: 30_000 };
const HOUR = 60 * MINUTE;

describe('journey entries and events on real PostgreSQL', () => {
  let database: TestDatabase;
  let counter = 0;

  beforeAll(async () => {
    database = await createTestDatabase();
    await createRecordingOutbox(database.db);
  });
  afterAll(async () => database.drop());

  const setup = async (definition: JourneyDefinition, before?: (workspaceId: string) => Promise<void>) => {
    const db = database.db;
    await db.query(`update journey_instances set status = 'exited', due_at = null where status = 'active'`);
    await db.query(`update journeys set status = 'archived'`);
    const workspace = await createWorkspace(db, { slug: `i-${++counter}`, name: 'i' });
    const { source } = await createSource(db, workspace.id, { name: 'web', kind: 'web' });
    const clock = testClock('2026-04-01T09:00:00Z');
    await before?.(workspace.id);
    const journey = await createJourney(db, workspace.id, { key: 'j', name: 'J', definition });
    await publishJourney(db, workspace.id, 'j', clock.now());
    const deps: ExecutorDeps = { db, enqueue: recordingEnqueue, now: clock.now };
    const drain = async () => {
      let total = 0;
      for (;;) {
        const moved = (await drainSegmentEntries(db, clock.now(), settle)) + (await drainJourneyEvents(db, clock.now(), settle)) + (await advanceDueInstances(deps)).taken;
        if (moved === 0) return total;
        total += moved;
      }
    };
    const track = (profileId: string, event: string, properties: Record<string, unknown> = {}) =>
      insertTrack(db, workspace.id, source.id, profileId, event, clock.now().toISOString(), properties);
    const instances = async () =>
      (
        await db.query<{ id: string; profile_id: string; status: string; node_id: string; end_reason: string | null; end_detail: string | null; entry: string }>(
          'select id, profile_id, status, node_id, end_reason, end_detail, entry from journey_instances where workspace_id = $1 order by entered_at, profile_id',
          [workspace.id],
        )
      ).rows;
    return { db, workspace, journey, clock, drain, track, instances };
  };

  const addSegment = async (workspaceId: string, key: string): Promise<SegmentRef> => {
    const { rows } = await database.db.query<{ id: string }>(
      `insert into segments (workspace_id, key, name, kind, definition, state) values ($1, $2, $2, 'realtime', $3, 'ready') returning id`,
      [workspaceId, key, JSON.stringify({ kind: 'trait', path: 'x', op: 'exists' })],
    );
    return { id: rows[0]!.id, key, name: key, version: 1 };
  };
  const transition = async (workspaceId: string, segment: SegmentRef, profileId: string, member: boolean, at: Date) => {
    await prepareTransitionStorage(database.db, at);
    await withTransaction(database.db, (client) => recordTransitions(client, workspaceId, [{ segment, profileId, member }], 'event', at));
  };

  it('enters profiles when they enter the trigger segment, once per transition, never for transitions before publishing', async () => {
    let segment!: SegmentRef;
    let early!: string;
    const definition: JourneyDefinition = {
      nodes: [
        { id: 'in', kind: 'entry', trigger: { kind: 'segment', segment: 'vip' }, reentry: { mode: 'always' }, next: 'wait' },
        { id: 'wait', kind: 'delay', duration: { amount: 1, unit: 'days' }, next: 'end' },
        { id: 'end', kind: 'end' },
      ],
    };
    const { db, workspace, clock, drain, instances } = await setup(definition, async (workspaceId) => {
      segment = await addSegment(workspaceId, 'vip');
      early = await insertProfile(database.db, workspaceId);
      await transition(workspaceId, segment, early, true, new Date('2026-04-01T08:00:00Z'));
    });
    const p1 = await insertProfile(db, workspace.id);
    const p2 = await insertProfile(db, workspace.id);
    await transition(workspace.id, segment, p1, true, clock.now());
    await transition(workspace.id, segment, p2, true, clock.now());
    await transition(workspace.id, segment, early, false, clock.now());
    await drain();
    const entered = await instances();
    expect(entered.map((i) => i.profile_id).sort()).toEqual([p1, p2].sort());
    expect(entered.every((i) => i.entry === 'segment' && i.node_id === 'wait')).toBe(true);
    // Leaving and re-entering the segment while in the journey does not start a second instance.
    await transition(workspace.id, segment, p1, false, clock.now());
    await transition(workspace.id, segment, p1, true, clock.now());
    await drain();
    expect((await instances()).length).toBe(2);
    expect(await drain()).toBe(0);
  });

  it('event trigger with property filter; wait for an event takes `happened` when it comes and `timedOut` when it does not', async () => {
    const definition: JourneyDefinition = {
      nodes: [
        { id: 'in', kind: 'entry', trigger: { kind: 'event', event: 'Product Added', where: 'price >= 100' }, next: 'buy' },
        { id: 'buy', kind: 'wait', event: 'Order Completed', timeout: { amount: 1, unit: 'hours' }, happened: 'thanks', timedOut: 'remind' },
        { id: 'thanks', kind: 'send', channel: 'email', template: 'thanks', purpose: 'transactional', next: 'end' },
        { id: 'remind', kind: 'send', channel: 'email', template: 'remind', purpose: 'marketing', next: 'end' },
        { id: 'end', kind: 'end' },
      ],
    };
    const { db, workspace, clock, drain, track, instances } = await setup(definition);
    const [buyer, browser, cheap] = [await insertProfile(db, workspace.id), await insertProfile(db, workspace.id), await insertProfile(db, workspace.id)];
    await track(buyer, 'Product Added', { price: 120, sku: 'A' });
    await track(browser, 'Product Added', { price: 300, sku: 'B' });
    await track(cheap, 'Product Added', { price: 5 });
    await drain();
    expect((await instances()).map((i) => i.profile_id).sort()).toEqual([buyer, browser].sort());
    clock.advance(20 * MINUTE);
    await track(buyer, 'Order Completed', { total: 120 });
    await drain();
    clock.advance(HOUR);
    await drain();
    const messages = await recordedMessages(db, workspace.id);
    expect(messages.map((m) => [m.profile_id, m.template_key])).toEqual([
      [buyer, 'thanks'],
      [browser, 'remind'],
    ]);
    // The trigger event's properties travel to the template.
    expect(messages[1]!.request.variables.event).toMatchObject({ price: 300, sku: 'B' });
    const buyerInstance = (await instances()).find((i) => i.profile_id === buyer)!;
    expect((await stepsOf(db, workspace.id, buyerInstance.id)).map((s) => `${s.node_id}:${s.outcome}`)).toEqual([
      'in:next',
      'buy:event',
      'thanks:queued',
      'end:completed',
    ]);
  });

  it('a goal converts the instance wherever it is; an exit condition ends it as exited; both with events', async () => {
    const definition: JourneyDefinition = {
      nodes: [
        { id: 'in', kind: 'entry', trigger: { kind: 'api' }, next: 'wait' },
        { id: 'wait', kind: 'delay', duration: { amount: 2, unit: 'days' }, next: 'mail' },
        { id: 'mail', kind: 'send', channel: 'email', template: 'x', purpose: 'marketing', next: 'end' },
        { id: 'end', kind: 'end' },
      ],
      goals: [{ id: 'purchase', condition: 'event("Order Completed").exists()' }],
      exits: [{ id: 'opt-out', condition: 'event("Unsubscribed").exists()' }],
    };
    const { db, workspace, journey, clock, drain, track, instances } = await setup(definition);
    const [buyer, leaver, idle] = [await insertProfile(db, workspace.id), await insertProfile(db, workspace.id), await insertProfile(db, workspace.id)];
    // The buyer ordered before entering: that is not this journey's conversion.
    await track(buyer, 'Order Completed');
    await drain();
    clock.advance(MINUTE);
    await prepareTransitionStorage(db, clock.now());
    await withTransaction(db, (client) =>
      enterProfiles(client, workspace.id, journey.id, [buyer, leaver, idle].map((profileId) => ({ profileId, entry: 'api' as const })), clock.now()),
    );
    await drain();
    clock.advance(HOUR);
    await track(idle, 'Page Viewed');
    await drain();
    expect((await instances()).every((i) => i.status === 'active')).toBe(true);
    await track(buyer, 'Order Completed');
    await track(leaver, 'Unsubscribed');
    await drain();
    const byProfile = new Map((await instances()).map((i) => [i.profile_id, i]));
    expect(byProfile.get(buyer)).toMatchObject({ status: 'converted', end_reason: 'converted', end_detail: 'purchase', node_id: 'wait' });
    expect(byProfile.get(leaver)).toMatchObject({ status: 'exited', end_reason: 'exited', end_detail: 'opt-out' });
    expect(byProfile.get(idle)).toMatchObject({ status: 'active' });
    clock.advance(2 * 24 * HOUR);
    await drain();
    expect((await recordedMessages(db, workspace.id)).map((m) => m.profile_id)).toEqual([idle]);
    const buyerEvents = await journeyEvents(db, workspace.id, buyer);
    expect(buyerEvents.map((e) => e.event)).toEqual(['Journey Entered', 'Journey Converted', 'Journey Exited']);
    expect(buyerEvents[1]!.properties).toMatchObject({ goal: 'purchase', node_id: 'wait' });
    expect(buyerEvents[2]!.properties).toMatchObject({ reason: 'converted' });
  });

  it('reads an event only once identity has resolved everything before it', async () => {
    const definition: JourneyDefinition = {
      nodes: [
        { id: 'in', kind: 'entry', trigger: { kind: 'event', event: 'Signed Up' }, next: 'end' },
        { id: 'end', kind: 'end' },
      ],
    };
    const { db, workspace, clock, drain, track, instances } = await setup(definition);
    const profile = await insertProfile(db, workspace.id);
    // An earlier event still waiting for identity resolution holds back everything after it.
    const { rows } = await db.query<{ seq: number }>(`select nextval('events_seq') as seq`);
    await db.query('insert into identity_queue (workspace_id, seq, events, seqs, timestamps) values ($1, $2, 1, array[$2::bigint], array[$3::timestamptz])', [workspace.id, rows[0]!.seq, clock.now()]);
    await track(profile, 'Signed Up');
    await drain();
    expect(await instances()).toEqual([]);
    await db.query('delete from identity_queue where workspace_id = $1', [workspace.id]);
    await drain();
    expect((await instances()).map((i) => i.profile_id)).toEqual([profile]);
  });
});
