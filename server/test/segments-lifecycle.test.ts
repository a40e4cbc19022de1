import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiError } from '../src/api/errors.ts';
import { computeSegment } from '../src/segments/compute.ts';
import { archiveSegment, createSegment, refreshSegment, updateSegment, uploadSegmentMembers } from '../src/segments/lifecycle.ts';
import { runDueSegments } from '../src/segments/schedule.ts';
import { findSegmentByKey } from '../src/segments/store.ts';
import type { Db } from '../src/storage/database.ts';
import { piiCodec, writeVault } from '../src/privacy/pii-codec.ts';
import { createSource, createWorkspace } from '../src/workspaces/store.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';
import { insertProfile, insertTrack, memberIds, setTraits, sorted, transitionsOf } from './segments-lifecycle-support.ts';

const NOW = new Date('2026-03-01T00:00:00Z');
const later = (ms: number) => new Date(NOW.getTime() + ms);
const HOUR = 3_600_000;

async function expectApiError(promise: Promise<unknown>, status: number, field: string | undefined, message: RegExp): Promise<ApiError> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ApiError);
  const apiError = error as ApiError;
  expect({ status: apiError.statusCode, field: apiError.field }).toEqual({ status, field });
  expect(apiError.message).toMatch(message);
  return apiError;
}

describe('segment lifecycle on PostgreSQL', () => {
  let database: TestDatabase;
  let db: Db;
  let ws: string;
  let sourceId: string;
  const people: Record<string, string> = {};

  beforeAll(async () => {
    database = await createTestDatabase();
    db = database.db;
    const workspace = await createWorkspace(db, { slug: 'shop', name: 'Shop', timeZone: 'Asia/Shanghai' });
    ws = workspace.id;
    sourceId = (await createSource(db, ws, { name: 'Store', kind: 'store' })).source.id;
    const seeds: Array<[string, Record<string, unknown>, string]> = [
      ['li', { city: '上海', vip: true }, 'li@example.com'],
      ['wang', { city: '上海', vip: false }, 'wang@example.com'],
      ['zhang', { city: '北京', vip: true }, 'zhang@example.com'],
      ['zhao', { city: '广州' }, 'zhao@example.com'],
      ['chen', {}, 'chen@example.com'],
    ];
    // E-mail identifiers stored as identity resolution stores them: keyed-hash tokens (privacy/pii-codec.ts).
    const codec = await piiCodec(db, ws);
    for (const [name, traits, email] of seeds) {
      people[name] = await insertProfile(db, ws, { traits, identifiers: [{ type: 'email', value: codec.identifiers.encode('email', email) }] });
    }
    await writeVault(db, codec);
    const { rows: stored } = await db.query<{ value: string }>(`select value from profile_identifiers where workspace_id = $1 and type = 'email'`, [ws]);
    expect(stored.every((row) => row.value.startsWith('tph1.'))).toBe(true);
  });
  afterAll(async () => database.drop());

  const create = (key: string, fields: Record<string, unknown>, now = NOW) =>
    createSegment(db, ws, { key, name: key, kind: 'realtime', ...fields } as Parameters<typeof createSegment>[2], now);

  it('computes a new segment at once, and computing again records nothing', async () => {
    const { segment, computed } = await create('shanghai', { text: 'trait.city = "上海"' });
    expect(segment).toMatchObject({ state: 'ready', version: 1, memberCount: 2, lastError: null });
    expect(segment.computedAt?.toISOString()).toBe(NOW.toISOString());
    expect(computed).toMatchObject([{ key: 'shanghai', state: 'ready', entered: 2, exited: 0, memberCount: 2 }]);
    expect(await memberIds(db, ws, segment.id)).toEqual(sorted([people.li!, people.wang!]));
    const transitions = await transitionsOf(db, ws, segment.id);
    expect(transitions.map((t) => [t.transition, t.cause, t.segment_version])).toEqual([
      ['entered', 'compute', 1],
      ['entered', 'compute', 1],
    ]);

    const again = await computeSegment(db, ws, segment.id, later(HOUR));
    expect(again).toMatchObject({ state: 'ready', entered: 0, exited: 0, memberCount: 2 });
    expect(await transitionsOf(db, ws, segment.id)).toHaveLength(2);
  });

  it('an edit bumps the version and records only true transitions', async () => {
    const widened = await updateSegment(db, ws, 'shanghai', { text: 'trait.city in ("上海", "北京")' }, later(2 * HOUR));
    expect(widened.segment).toMatchObject({ version: 2, state: 'ready', memberCount: 3 });
    expect(widened.computed).toMatchObject([{ entered: 1, exited: 0 }]);
    let transitions = await transitionsOf(db, ws, widened.segment.id);
    // Li and Wang stayed in: nothing new for them; Zhang entered under version 2.
    expect(transitions.slice(2)).toEqual([{ profile_id: people.zhang, transition: 'entered', cause: 'compute', segment_version: 2 }]);

    const narrowed = await updateSegment(db, ws, 'shanghai', { text: 'trait.city = "北京"' }, later(3 * HOUR));
    expect(narrowed.segment).toMatchObject({ version: 3, memberCount: 1 });
    transitions = await transitionsOf(db, ws, widened.segment.id);
    expect(sorted(transitions.slice(3).map((t) => `${t.transition}:${t.profile_id}:${t.segment_version}`))).toEqual(
      sorted([`exited:${people.li}:3`, `exited:${people.wang}:3`]),
    );

    // A rename bumps the version but computes nothing.
    const renamed = await updateSegment(db, ws, 'shanghai', { name: 'Beijing customers' }, later(4 * HOUR));
    expect(renamed).toMatchObject({ computed: [], segment: { version: 4, name: 'Beijing customers', memberCount: 1 } });
    await updateSegment(db, ws, 'shanghai', { text: 'trait.city = "上海"' }, later(5 * HOUR));
  });

  it('a time-independent realtime segment asks the real-time worker for no re-checks', async () => {
    const { rows } = await db.query('select profile_id from segment_rechecks where workspace_id = $1', [ws]);
    expect(rows).toEqual([]);
  });

  it('counts events in windows as of the computation time', async () => {
    await insertTrack(db, ws, sourceId, people.zhao!, 'Order Completed', '2026-02-20T10:00:00Z', { revenue: 300 });
    await insertTrack(db, ws, sourceId, people.zhao!, 'Order Completed', '2026-02-25T10:00:00Z', { revenue: 250 });
    await insertTrack(db, ws, sourceId, people.chen!, 'Order Completed', '2026-02-26T10:00:00Z', { revenue: 900 });
    const { segment } = await create('buyers', { text: 'event("Order Completed").sum(revenue, within 7d) > 200' });
    // Within 7 days of 1 March: Zhao's 250 (25 Feb) and Chen's 900.
    expect(await memberIds(db, ws, segment.id)).toEqual(sorted([people.zhao!, people.chen!]));
    // The window slides: the real-time worker is asked to re-check the profiles with orders now,
    // so it files when each one's answer changes (Zhao's order leaves the window on 4 March).
    const { rows: rechecks } = await db.query<{ profile_id: string; due_at: Date }>(
      'select profile_id, due_at from segment_rechecks where workspace_id = $1 order by profile_id',
      [ws],
    );
    expect(rechecks).toEqual(sorted([people.zhao!, people.chen!]).map((id) => ({ profile_id: id, due_at: NOW })));
    // Three days later Zhao's order has left the window; a recomputation sees it.
    const outcome = await computeSegment(db, ws, segment.id, new Date('2026-03-04T11:00:00Z'));
    expect(outcome).toMatchObject({ entered: 0, exited: 1 });
    expect(await memberIds(db, ws, segment.id)).toEqual([people.chen]);
  });

  it('recomputes the segments that use a changed one, in dependency order', async () => {
    const { segment: vip } = await create('shanghai-vip', { text: 'in_segment("shanghai") and trait.vip = true' });
    const { segment: outer } = await create('not-shanghai-vip', { text: 'not in_segment("shanghai-vip")' });
    expect(await memberIds(db, ws, vip.id)).toEqual([people.li]);
    expect(await memberIds(db, ws, outer.id)).not.toContain(people.li);

    const { computed } = await updateSegment(db, ws, 'shanghai', { text: 'trait.city in ("上海", "北京")' }, later(6 * HOUR));
    expect(computed.map((c) => c.key)).toEqual(['shanghai', 'shanghai-vip', 'not-shanghai-vip']);
    expect(await memberIds(db, ws, vip.id)).toEqual(sorted([people.li!, people.zhang!]));
    expect(await memberIds(db, ws, outer.id)).not.toContain(people.zhang);
  });

  it('refuses cycles, unknown segments and archiving a segment in use', async () => {
    const cycle = await expectApiError(
      updateSegment(db, ws, 'shanghai', { text: 'trait.city = "上海" and not in_segment("not-shanghai-vip")' }, NOW),
      400,
      'text',
      /cycle: "shanghai" → "not-shanghai-vip" → "shanghai-vip" → "shanghai"/,
    );
    expect(cycle.code).toBe('segment_cycle');
    await expectApiError(updateSegment(db, ws, 'shanghai', { text: 'in_segment("shanghai")' }, NOW), 400, 'text', /shanghai/);
    await expectApiError(create('orphan', { text: 'in_segment("no-such-segment")' }), 400, 'text', /no-such-segment/);
    await expectApiError(
      create('orphan', { definition: { kind: 'and', conditions: [{ kind: 'segment', segment: 'no-such-segment' }] } }),
      400,
      'definition.conditions.0.segment',
      /no-such-segment/,
    );
    const inUse = await expectApiError(archiveSegment(db, ws, 'shanghai'), 409, 'key', /"shanghai-vip"/);
    expect(inUse.details).toEqual({ usedBy: ['shanghai-vip'] });
    // The definition did not change: the refused edits wrote nothing.
    expect((await findSegmentByKey(db, ws, 'shanghai'))!.definition).toMatchObject({ kind: 'trait', op: 'in' });

    // Archiving from the outside in works, and the key stays taken.
    await archiveSegment(db, ws, 'not-shanghai-vip');
    expect((await findSegmentByKey(db, ws, 'not-shanghai-vip'))!.status).toBe('archived');
    await expectApiError(create('not-shanghai-vip', { text: 'trait.vip = true' }), 409, 'key', /already exists/);
    await expectApiError(create('uses-archived', { text: 'in_segment("not-shanghai-vip")' }), 400, 'text', /not-shanghai-vip/);
  });

  it('refuses bad kinds, schedules and text with the field at fault', async () => {
    await expectApiError(create('no-def', {}), 400, 'definition', /needs a definition or text/);
    await expectApiError(create('sched', { text: 'trait.vip = true', schedule: '0 2 * * *' }), 400, 'schedule', /Only periodic/);
    await expectApiError(create('sched', { kind: 'periodic', text: 'trait.vip = true' }), 400, 'schedule', /needs a schedule/);
    await expectApiError(create('sched', { kind: 'periodic', text: 'trait.vip = true', schedule: '0 25 * * *' }), 400, 'schedule', /25/);
    const syntax = await expectApiError(create('typo', { text: 'trait.city = "上海" and evnt("Order Completed").exists()' }), 400, 'text', /line 1, column/);
    expect(syntax.details).toMatchObject({ line: 1 });
    await expectApiError(create('both', { text: 'trait.vip = true', definition: { kind: 'identifier', type: 'email' } }), 400, 'text', /not both/);
    await expectApiError(updateSegment(db, ws, 'shanghai', { kind: 'static' }, NOW), 409, 'kind', /cannot become static/);
  });

  it('runs periodic segments on their cron in the workspace time zone', async () => {
    const { segment } = await create('daily-vip', { kind: 'periodic', text: 'trait.vip = true', schedule: '0 2 * * *' });
    // 02:00 in Shanghai is 18:00 UTC the day before.
    expect(segment.nextRunAt?.toISOString()).toBe('2026-03-01T18:00:00.000Z');
    expect(segment.timeZone).toBe('Asia/Shanghai');
    expect(await memberIds(db, ws, segment.id)).toEqual(sorted([people.li!, people.zhang!]));

    await setTraits(db, ws, people.chen!, { vip: true });
    expect(await runDueSegments(db, new Date('2026-03-01T17:59:59Z'))).toEqual([]);
    expect(await memberIds(db, ws, segment.id)).not.toContain(people.chen);

    const ran = await runDueSegments(db, new Date('2026-03-01T18:00:05Z'));
    expect(ran).toMatchObject([{ key: 'daily-vip', state: 'ready', entered: 1, exited: 0 }]);
    expect(await memberIds(db, ws, segment.id)).toContain(people.chen);
    const after = (await findSegmentByKey(db, ws, 'daily-vip'))!;
    expect(after.nextRunAt?.toISOString()).toBe('2026-03-02T18:00:00.000Z');
    expect(after.computedAt?.toISOString()).toBe('2026-03-01T18:00:05.000Z');
    expect(await runDueSegments(db, new Date('2026-03-01T18:30:00Z'))).toEqual([]);

    // Missed runs (nothing ran for days) run once, and the next run is after now.
    const caughtUp = await runDueSegments(db, new Date('2026-03-05T09:00:00Z'));
    expect(caughtUp.map((c) => c.key)).toEqual(['daily-vip']);
    expect((await findSegmentByKey(db, ws, 'daily-vip'))!.nextRunAt?.toISOString()).toBe('2026-03-05T18:00:00.000Z');

    // A new schedule moves the next run; becoming realtime drops it.
    const hourly = await updateSegment(db, ws, 'daily-vip', { schedule: '30 * * * *' }, new Date('2026-03-05T09:00:00Z'));
    expect(hourly.segment.nextRunAt?.toISOString()).toBe('2026-03-05T09:30:00.000Z');
    const realtime = await updateSegment(db, ws, 'daily-vip', { kind: 'realtime' }, new Date('2026-03-05T09:10:00Z'));
    expect(realtime.segment).toMatchObject({ kind: 'realtime', schedule: null, nextRunAt: null });
    await setTraits(db, ws, people.chen!, { vip: false });
  });

  it('keeps a static snapshot as it was until refreshed', async () => {
    const { segment } = await create('launch-vips', { kind: 'static', text: 'trait.vip = true' });
    expect(segment.state).toBe('ready');
    const snapshot = await memberIds(db, ws, segment.id);
    expect(snapshot).toEqual(sorted([people.li!, people.zhang!]));

    await setTraits(db, ws, people.zhao!, { vip: true });
    await setTraits(db, ws, people.li!, { vip: false });
    await runDueSegments(db, later(100 * 24 * HOUR));
    // The in_segment users are recomputed when their dependency changes; a snapshot never is.
    await updateSegment(db, ws, 'shanghai', { text: 'trait.city = "上海"' }, later(7 * HOUR));
    expect(await memberIds(db, ws, segment.id)).toEqual(snapshot);

    const refreshed = await refreshSegment(db, ws, 'launch-vips', later(8 * HOUR));
    expect(refreshed.computed).toMatchObject([{ key: 'launch-vips', entered: 1, exited: 1 }]);
    expect(await memberIds(db, ws, segment.id)).toEqual(sorted([people.zhang!, people.zhao!]));
    await setTraits(db, ws, people.zhao!, { vip: undefined });
    await setTraits(db, ws, people.li!, { vip: true });
  });

  it('manages an uploaded list by identifier, reporting what it could not use', async () => {
    const { segment } = await create('call-list', { kind: 'static' });
    expect(segment).toMatchObject({ state: 'ready', memberCount: 0, definition: null });

    const added = await uploadSegmentMembers(
      db,
      ws,
      'call-list',
      {
        mode: 'add',
        identifiers: [
          { type: 'email', value: ' LI@Example.com ' },
          { type: 'email', value: 'wang@example.com' },
          { type: 'email', value: 'nobody@example.com' },
          { type: 'email', value: 'not an email' },
          { type: 'loyalty_card', value: '123' },
          { type: 'email', value: 'li@example.com' },
        ],
      },
      NOW,
    );
    expect(added).toMatchObject({ received: 6, matched: 3, profiles: 2, entered: 2, exited: 0, memberCount: 2 });
    expect(added.unknown).toEqual([{ index: 2, type: 'email', value: 'nobody@example.com', reason: expect.stringContaining('nobody@example.com') }]);
    expect(added.invalid.map((i) => [i.index, i.type])).toEqual([
      [3, 'email'],
      [4, 'loyalty_card'],
    ]);
    expect(await memberIds(db, ws, segment.id)).toEqual(sorted([people.li!, people.wang!]));

    const removed = await uploadSegmentMembers(db, ws, 'call-list', { mode: 'remove', identifiers: [{ type: 'email', value: 'wang@example.com' }] }, NOW);
    expect(removed).toMatchObject({ entered: 0, exited: 1, memberCount: 1 });

    const replaced = await uploadSegmentMembers(
      db,
      ws,
      'call-list',
      { mode: 'replace', identifiers: [{ type: 'email', value: 'zhang@example.com' }, { type: 'email', value: 'zhao@example.com' }] },
      NOW,
    );
    expect(replaced).toMatchObject({ entered: 2, exited: 1, memberCount: 2 });
    expect(await memberIds(db, ws, segment.id)).toEqual(sorted([people.zhang!, people.zhao!]));
    expect((await transitionsOf(db, ws, segment.id)).every((t) => t.cause === 'list')).toBe(true);

    // Adding members already in records nothing.
    const again = await uploadSegmentMembers(db, ws, 'call-list', { mode: 'add', identifiers: [{ type: 'email', value: 'zhao@example.com' }] }, NOW);
    expect(again).toMatchObject({ entered: 0, exited: 0, memberCount: 2 });

    await expectApiError(updateSegment(db, ws, 'call-list', { text: 'trait.vip = true' }, NOW), 409, 'text', /uploaded list/);
    await expectApiError(refreshSegment(db, ws, 'call-list', NOW), 409, 'key', /uploaded list/);
    await expectApiError(
      uploadSegmentMembers(db, ws, 'shanghai', { mode: 'add', identifiers: [{ type: 'email', value: 'li@example.com' }] }, NOW),
      409,
      'key',
      /defined by a condition/,
    );
    await expectApiError(updateSegment(db, ws, 'call-list', { kind: 'realtime' }, NOW), 409, 'kind', /cannot become realtime/);
  });

  it('a list used by other segments recomputes them when it changes', async () => {
    const { segment } = await create('called-vips', { text: 'in_segment("call-list") and trait.vip = true' });
    expect(await memberIds(db, ws, segment.id)).toEqual([people.zhang]);
    await uploadSegmentMembers(db, ws, 'call-list', { mode: 'add', identifiers: [{ type: 'email', value: 'li@example.com' }] }, NOW);
    expect(await memberIds(db, ws, segment.id)).toEqual(sorted([people.li!, people.zhang!]));
  });

  it('marks a segment failed with the error when its computation fails, and keeps its members', async () => {
    const { segment } = await create('fragile', { text: 'trait.vip = true' });
    const before = await memberIds(db, ws, segment.id);
    // Corrupt the stored definition behind the API's back, as a bug elsewhere might.
    await db.query(`update segments set definition = '{"kind":"nonsense"}' where workspace_id = $1 and id = $2`, [ws, segment.id]);
    const outcome = await computeSegment(db, ws, segment.id, NOW);
    expect(outcome.state).toBe('failed');
    expect(outcome.error).toBeTruthy();
    const stored = (await findSegmentByKey(db, ws, 'fragile'))!;
    expect(stored.state).toBe('failed');
    expect(stored.lastError).toBe(outcome.error);
    expect(await memberIds(db, ws, segment.id)).toEqual(before);

    // The scheduler retries a failed computation after a while, and it succeeds once the cause is gone.
    await db.query(`update segments set definition = $3 where workspace_id = $1 and id = $2`, [
      ws,
      segment.id,
      JSON.stringify({ kind: 'trait', trait: 'vip', op: 'eq', value: false }),
    ]);
    expect((await runDueSegments(db, NOW)).map((c) => c.key)).not.toContain('fragile');
    await db.query(`update segments set updated_at = now() - interval '11 minutes' where id = $1`, [segment.id]);
    expect(await runDueSegments(db, NOW)).toMatchObject([{ key: 'fragile', state: 'ready' }]);
    expect(await memberIds(db, ws, segment.id)).toEqual(sorted([people.wang!, people.chen!]));
  });

  it('a paused segment keeps its members through edits, and resuming computes it', async () => {
    const { segment } = await create('paused-vips', { text: 'trait.vip = true' });
    const before = await memberIds(db, ws, segment.id);
    await updateSegment(db, ws, 'paused-vips', { status: 'paused' }, NOW);
    const edited = await updateSegment(db, ws, 'paused-vips', { text: 'trait.city = "广州"' }, NOW);
    expect(edited.computed).toEqual([]);
    expect(edited.segment).toMatchObject({ status: 'paused', state: 'computing' });
    expect(await memberIds(db, ws, segment.id)).toEqual(before);
    // The scheduler's recovery of stalled computations leaves paused segments alone.
    await db.query(`update segments set updated_at = now() - interval '1 hour' where id = $1`, [segment.id]);
    expect((await runDueSegments(db, NOW)).map((c) => c.key)).not.toContain('paused-vips');

    const resumed = await updateSegment(db, ws, 'paused-vips', { status: 'active' }, NOW);
    expect(resumed.segment).toMatchObject({ status: 'active', state: 'ready' });
    expect(await memberIds(db, ws, segment.id)).toEqual([people.zhao]);
  });

  it('the scheduler computes a segment a dead process left computing', async () => {
    const { segment } = await create('stalled', { text: 'trait.city = "广州"' });
    await db.query(`delete from segment_memberships where segment_id = $1`, [segment.id]);
    await db.query(`update segments set state = 'computing', updated_at = now() - interval '11 minutes' where id = $1`, [segment.id]);
    const outcomes = await runDueSegments(db, NOW);
    expect(outcomes).toMatchObject([{ key: 'stalled', state: 'ready' }]);
    expect(await memberIds(db, ws, segment.id)).toEqual([people.zhao]);
    expect(await runDueSegments(db, NOW)).toEqual([]);
  });
});
