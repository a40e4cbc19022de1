import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkTemplate } from '../src/channels/index.ts';
import type { JourneyDefinition } from '../src/journeys/definition.ts';
import { drainScheduledEntries } from '../src/journeys/schedules.ts';
import { createJourney, publishJourney } from '../src/journeys/store.ts';
import { createSegment } from '../src/segments/lifecycle.ts';
import type { Db } from '../src/storage/database.ts';
import { testClock } from './journeys-support.ts';
import { insertProfile } from './segments-lifecycle-support.ts';
import { ADMIN_TOKEN, startTestApp, type TestApp } from './support/app.ts';

// Schedules placed in a workspace's wall-clock time (periodic segments, cron broadcasts, date
// triggers) follow a change of the workspace's time zone from the next run on.
describe('changing a workspace time zone moves its schedules', () => {
  let t: TestApp;
  let db: Db;
  let ws: string;
  const clock = testClock('2026-03-02T00:00:00Z');

  beforeAll(async () => {
    t = await startTestApp({ now: clock.now });
    db = t.db;
    ws = (await t.addWorkspace('tz')).workspace.id;
    await db.query(`update workspaces set time_zone = 'Asia/Shanghai' where id = $1`, [ws]);
  });
  afterAll(async () => t?.close());

  const patchZone = (timeZone: string) =>
    t.app.inject({ method: 'PATCH', url: `/admin/workspaces/${ws}`, headers: { authorization: `Bearer ${ADMIN_TOKEN}` }, payload: { timeZone } });
  const segmentNextRun = async (key: string) =>
    (await db.query<{ next_run_at: Date | null }>('select next_run_at from segments where workspace_id = $1 and key = $2', [ws, key])).rows[0]!.next_run_at?.toISOString();
  const journeyNextRun = async (journeyId: string) =>
    (await db.query<{ next_run_at: Date | null }>('select next_run_at from journey_schedules where workspace_id = $1 and journey_id = $2', [ws, journeyId])).rows[0]?.next_run_at?.toISOString();
  const publish = async (key: string, trigger: Record<string, unknown>) => {
    const definition = {
      nodes: [
        { id: 'in', kind: 'entry', trigger, reentry: { mode: 'always' }, next: 'end' },
        { id: 'end', kind: 'end' },
      ],
    } as unknown as JourneyDefinition;
    const journey = await createJourney(db, ws, { key, name: key, definition });
    await publishJourney(db, ws, key, clock.now(), { checkTemplate });
    return journey.id;
  };

  it('moves waiting periodic runs and cron broadcasts in the workspace zone; leaves due runs, own-zone crons and instants', async () => {
    clock.set('2026-03-02T00:00:00Z');
    await createSegment(db, ws, { key: 'vip', name: 'vip', kind: 'periodic', text: 'trait.vip = true', schedule: '0 2 * * *' }, clock.now());
    await createSegment(db, ws, { key: 'due', name: 'due', kind: 'periodic', text: 'trait.vip = true', schedule: '0 3 * * *' }, clock.now());
    // 02:00 in Shanghai is 18:00 UTC the day before.
    expect(await segmentNextRun('vip')).toBe('2026-03-02T18:00:00.000Z');
    // A run already due when the zone changes keeps its time: the scheduler runs it.
    await db.query(`update segments set next_run_at = '2026-03-01T23:00:00Z' where workspace_id = $1 and key = 'due'`, [ws]);

    // Mondays 10:00; 2 March 2026 is a Monday: 02:00 UTC in Shanghai.
    const weekly = await publish('weekly', { kind: 'schedule', segment: 'vip', cron: '0 10 * * 1' });
    const tokyo = await publish('tokyo', { kind: 'schedule', segment: 'vip', cron: '0 10 * * 1', timeZone: 'Asia/Tokyo' });
    const once = await publish('once', { kind: 'schedule', segment: 'vip', at: '2026-03-10T00:00:00Z' });
    expect(await journeyNextRun(weekly)).toBe('2026-03-02T02:00:00.000Z');
    expect(await journeyNextRun(tokyo)).toBe('2026-03-02T01:00:00.000Z');

    const res = await patchZone('Europe/London');
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ timeZone: 'Europe/London' });
    // 02:00 in London (GMT in March before the 29th) is 02:00 UTC, the next one after now.
    expect(await segmentNextRun('vip')).toBe('2026-03-02T02:00:00.000Z');
    expect(await segmentNextRun('due')).toBe('2026-03-01T23:00:00.000Z');
    expect(await journeyNextRun(weekly)).toBe('2026-03-02T10:00:00.000Z');
    expect(await journeyNextRun(tokyo)).toBe('2026-03-02T01:00:00.000Z');
    expect(await journeyNextRun(once)).toBe('2026-03-10T00:00:00.000Z');

    // A refused zone moves nothing.
    const refused = await patchZone('Nowhere/City');
    expect(refused.statusCode).toBe(400);
    expect(await segmentNextRun('vip')).toBe('2026-03-02T02:00:00.000Z');
    expect(await journeyNextRun(weekly)).toBe('2026-03-02T10:00:00.000Z');
    // The same zone again moves nothing either (a run just placed stays where it is).
    await db.query(`update segments set next_run_at = '2026-03-05T02:00:00Z' where workspace_id = $1 and key = 'vip'`, [ws]);
    expect((await patchZone('Europe/London')).statusCode).toBe(200);
    expect(await segmentNextRun('vip')).toBe('2026-03-05T02:00:00.000Z');
  });

  it('a date trigger places the occurrences of profiles without a zone trait in the new zone at its next scan', async () => {
    await db.query(`update journeys set status = 'archived' where workspace_id = $1`, [ws]);
    await patchZone('Asia/Shanghai');
    clock.set('2026-12-01T00:00:00Z');
    const local = await insertProfile(db, ws, { traits: { birthday: '1990-12-10' } });
    const traveller = await insertProfile(db, ws, { traits: { birthday: '1990-12-10', timezone: 'America/New_York' } });
    const journey = await publish('bday', { kind: 'date', trait: 'birthday', time: '10:00', repeat: 'yearly' });
    const nextAt = async (profileId: string) =>
      (
        await db.query<{ next_at: Date }>('select next_at from journey_date_occurrences where workspace_id = $1 and journey_id = $2 and profile_id = $3', [ws, journey, profileId])
      ).rows[0]?.next_at.toISOString();
    const scan = async (at: string) => {
      clock.set(at);
      return drainScheduledEntries(db, clock.now(), { settleTimeoutMs: 30_000 });
    };
    await scan('2026-12-01T00:01:00Z');
    expect(await nextAt(local)).toBe('2026-12-10T02:00:00.000Z');
    expect(await nextAt(traveller)).toBe('2026-12-10T15:00:00.000Z');

    expect((await patchZone('Europe/Berlin')).statusCode).toBe(200);
    await scan('2026-12-01T00:10:00Z');
    // 10:00 in Berlin (CET) is 09:00 UTC; the profile's own zone still wins.
    expect(await nextAt(local)).toBe('2026-12-10T09:00:00.000Z');
    expect(await nextAt(traveller)).toBe('2026-12-10T15:00:00.000Z');
    expect(await scan('2026-12-10T02:00:00Z')).toBe(0);
    expect(await scan('2026-12-10T09:00:00Z')).toBe(1);
  });
});
