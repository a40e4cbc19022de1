import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkTemplate } from '../src/channels/index.ts';
import type { JourneyDefinition } from '../src/journeys/definition.ts';
import { nextDateOccurrence } from '../src/journeys/dates.ts';
import { drainScheduledEntries } from '../src/journeys/schedules.ts';
import { createJourney, publishJourney } from '../src/journeys/store.ts';
import { writeProfileTraits } from '../src/profiles/trait-writer.ts';
import { withTransaction, type Db } from '../src/storage/database.ts';
import { testClock } from './journeys-support.ts';
import { insertProfile } from './segments-lifecycle-support.ts';
import { startTestApp, type TestApp } from './support/app.ts';

describe('nextDateOccurrence', () => {
  it('is the first firing after the instant: next year once this one passed, 28 February for a 29th, null for a passed once', () => {
    const yearly = { time: '10:00', repeat: 'yearly' } as const;
    expect(nextDateOccurrence('1990-12-10', yearly, 'UTC', new Date('2026-12-10T09:59:00Z'))?.toISOString()).toBe('2026-12-10T10:00:00.000Z');
    expect(nextDateOccurrence('1990-12-10', yearly, 'UTC', new Date('2026-12-10T10:00:00Z'))?.toISOString()).toBe('2027-12-10T10:00:00.000Z');
    expect(nextDateOccurrence('2000-02-29', yearly, 'UTC', new Date('2027-01-01T00:00:00Z'))?.toISOString()).toBe('2027-02-28T10:00:00.000Z');
    expect(nextDateOccurrence('1990-01-02', { ...yearly, days: -3 }, 'UTC', new Date('2026-12-29T00:00:00Z'))?.toISOString()).toBe('2026-12-30T10:00:00.000Z');
    expect(nextDateOccurrence('2026-06-30', { time: '10:00', repeat: 'once' }, 'UTC', new Date('2026-07-01T00:00:00Z'))).toBeNull();
    expect(nextDateOccurrence('not a date', yearly, 'UTC', new Date('2026-07-01T00:00:00Z'))).toBeNull();
  });
});

// Date-trait entries read only due rows of journey_date_occurrences, kept current from the trait history.
describe('date-trait occurrence table on real PostgreSQL', () => {
  let t: TestApp;
  let db: Db;
  let counter = 0;
  const clock = testClock('2026-12-01T00:00:00Z');

  beforeAll(async () => {
    t = await startTestApp({ now: clock.now });
    db = t.db;
  });
  afterAll(async () => t?.close());

  const setup = async (timeZone: string) => {
    // The scan serves every workspace: earlier tests' journeys are out of its way.
    await db.query(`update journeys set status = 'archived'`);
    const { workspace } = await t.addWorkspace(`d-${++counter}`);
    await db.query('update workspaces set time_zone = $2 where id = $1', [workspace.id, timeZone]);
    return workspace.id;
  };
  const publish = async (ws: string, trigger: Record<string, unknown>) => {
    const definition = {
      nodes: [
        { id: 'in', kind: 'entry', trigger: { kind: 'date', trait: 'birthday', ...trigger }, reentry: { mode: 'after', days: 300 }, next: 'end' },
        { id: 'end', kind: 'end' },
      ],
    } as unknown as JourneyDefinition;
    const journey = await createJourney(db, ws, { key: 'bday', name: 'bday', definition });
    await publishJourney(db, ws, 'bday', clock.now(), { checkTemplate });
    return journey.id;
  };
  const scans: number[] = [];
  const drain = async (at: string) => {
    clock.set(at);
    return drainScheduledEntries(db, clock.now(), { settleTimeoutMs: 30_000, onDateScan: (scan) => scans.push(scan.dueRows) });
  };
  const nextAt = async (ws: string, journeyId: string, profileId: string) => {
    const { rows } = await db.query<{ next_at: Date }>(
      'select next_at from journey_date_occurrences where workspace_id = $1 and journey_id = $2 and profile_id = $3',
      [ws, journeyId, profileId],
    );
    return rows[0]?.next_at.toISOString() ?? null;
  };
  const write = (ws: string, profileId: string, set: Record<string, unknown>) =>
    withTransaction(db, (client) => writeProfileTraits(client, ws, [{ profileId, set }], { kind: 'crm_import', name: 'test' }, { messageId: crypto.randomUUID(), at: clock.now() }));

  it('a trait or time-zone change after the build moves the next occurrence; firing moves it to the next year', async () => {
    const ws = await setup('UTC');
    const ann = await insertProfile(db, ws, { traits: { birthday: '1990-12-10' } });
    const journey = await publish(ws, { time: '10:00', repeat: 'yearly' });
    expect(await drain('2026-12-01T00:01:00Z')).toBe(0);
    expect(await nextAt(ws, journey, ann)).toBe('2026-12-10T10:00:00.000Z');
    await write(ws, ann, { birthday: '1990-12-05' });
    expect(await drain('2026-12-01T00:02:00Z')).toBe(0);
    expect(await nextAt(ws, journey, ann)).toBe('2026-12-05T10:00:00.000Z');
    expect(await drain('2026-12-05T09:59:00Z')).toBe(0);
    expect(await drain('2026-12-05T10:00:00Z')).toBe(1);
    expect(await drain('2026-12-10T10:00:00Z')).toBe(0);
    expect(await nextAt(ws, journey, ann)).toBe('2027-12-05T10:00:00.000Z');
    // A time-zone trait counts too: 10:00 in Tokyo is 01:00 UTC.
    await write(ws, ann, { timezone: 'Asia/Tokyo' });
    await drain('2026-12-11T00:00:00Z');
    expect(await nextAt(ws, journey, ann)).toBe('2027-12-05T01:00:00.000Z');
    // Removing the date removes the row.
    await write(ws, ann, { birthday: null });
    await drain('2026-12-11T00:01:00Z');
    expect(await nextAt(ws, journey, ann)).toBeNull();
  });

  it('a birthday at a time in the spring-forward gap fires at the first instant after it', async () => {
    const ws = await setup('America/New_York');
    clock.set('2027-03-01T00:00:00Z');
    const bob = await insertProfile(db, ws, { traits: { birthday: '1990-03-14' } });
    const journey = await publish(ws, { time: '02:30', repeat: 'yearly' });
    await drain('2027-03-01T00:01:00Z');
    // 14 March 2027 02:30 does not exist in New York; 03:00 EDT is 07:00 UTC.
    expect(await nextAt(ws, journey, bob)).toBe('2027-03-14T07:00:00.000Z');
    expect(await drain('2027-03-14T06:59:00Z')).toBe(0);
    expect(await drain('2027-03-14T07:00:00Z')).toBe(1);
    // 2028's 14 March is after the switch: 02:30 EDT.
    expect(await nextAt(ws, journey, bob)).toBe('2028-03-14T06:30:00.000Z');
  });

  it('after the build, a scan reads only the due rows', async () => {
    const ws = await setup('UTC');
    clock.set('2026-12-01T00:00:00Z');
    const june = await Promise.all(Array.from({ length: 30 }, (_, i) => insertProfile(db, ws, { traits: { birthday: `1990-06-${String(i + 1).padStart(2, '0')}` } })));
    const dec = await insertProfile(db, ws, { traits: { birthday: '1991-12-03' } });
    const journey = await publish(ws, { time: '09:00', repeat: 'yearly' });
    scans.length = 0;
    expect(await drain('2026-12-01T00:01:00Z')).toBe(0);
    expect(await drain('2026-12-02T00:00:00Z')).toBe(0);
    expect(await drain('2026-12-03T09:00:00Z')).toBe(1);
    expect(await drain('2026-12-03T09:01:00Z')).toBe(0);
    expect(scans).toEqual([0, 0, 1, 0]);
    const { rows } = await db.query<{ n: string }>('select count(*) as n from journey_date_occurrences where workspace_id = $1 and journey_id = $2', [ws, journey]);
    expect(Number(rows[0]!.n)).toBe(june.length + 1);
    expect(await nextAt(ws, journey, dec)).toBe('2027-12-03T09:00:00.000Z');
  });

  it('a due row of a profile merged away or erased enters no one and is removed', async () => {
    const ws = await setup('UTC');
    clock.set('2026-12-01T00:00:00Z');
    const kept = await insertProfile(db, ws, { traits: { birthday: '1990-12-04' } });
    const absorbed = await insertProfile(db, ws, { traits: { birthday: '1990-12-04' } });
    const erased = await insertProfile(db, ws, { traits: { birthday: '1990-12-04' } });
    const journey = await publish(ws, { time: '09:00', repeat: 'yearly' });
    await drain('2026-12-01T00:01:00Z');
    await db.query('update profiles set merged_into = $3 where workspace_id = $1 and id = $2', [ws, absorbed, kept]);
    await db.query('delete from profile_traits where workspace_id = $1 and profile_id = $2', [ws, erased]);
    await db.query('delete from profiles where workspace_id = $1 and id = $2', [ws, erased]);
    expect(await drain('2026-12-04T09:00:00Z')).toBe(1);
    expect(await nextAt(ws, journey, kept)).toBe('2027-12-04T09:00:00.000Z');
    expect(await nextAt(ws, journey, absorbed)).toBeNull();
    expect(await nextAt(ws, journey, erased)).toBeNull();
  });
});
