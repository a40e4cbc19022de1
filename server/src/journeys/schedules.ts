import { nextRunAfter } from '../segments/cron.ts';
import { prepareTransitionStorage } from '../segments/transitions.ts';
import { withTransaction, type Db, type DbClient, type Queryable } from '../storage/database.ts';
import { entryNode, type JourneyDefinition, type Trigger } from './definition.ts';
import { enterProfiles, type EntryRequest } from './executor.ts';
import { dateOccurrences, nextDateOccurrence } from './dates.ts';
import { settledSequence } from '../storage/settle.ts';
import { isValidTimeZone } from '../channels/guards.ts';

/*
 * Entries that time starts: date traits ("3 days before the birthday at 10:00 local", yearly or
 * once) and scheduled audiences (a segment's members at a one-off instant or on a cron). Each live
 * journey with such a trigger has a `journey_schedules` row; the loop takes due rows with FOR
 * UPDATE SKIP LOCKED, enters whom the trigger names in the same transaction, and moves the row on,
 * so each occurrence enters once however many workers run. The journey's re-entry rules, cap,
 * holdout and send-rate limit apply as to any entry.
 */

type DateTrigger = Extract<Trigger, { kind: 'date' }>;
type ScheduleTrigger = Extract<Trigger, { kind: 'schedule' }>;

const DAY = 86_400_000;
/** How often a date-trait journey looks for occurrences (its entries are at most this late). */
export const DATE_SCAN_MS = 60_000;
// A date window longer than this (a worker down for a year) is cut to its end.
const MAX_WINDOW_MS = 400 * DAY;
const SETTLE_TIMEOUT_MS = 10_000;

/** When a scheduled audience runs next after `after`: the one-off instant (once), or the cron's next run. */
export function nextScheduledRun(trigger: ScheduleTrigger, workspaceZone: string, after: Date, lastRunAt: Date | null): Date | null {
  if (trigger.at !== undefined) {
    const at = new Date(trigger.at);
    return lastRunAt !== null && lastRunAt.getTime() >= at.getTime() ? null : at;
  }
  return nextRunAfter(trigger.cron!, trigger.timeZone ?? workspaceZone, after);
}

/**
 * At publish, in its transaction: the journey's schedule row follows its trigger. A date trigger
 * covers from now (publishing never enters past dates); a schedule computes its next run (a
 * one-off that already ran stays done); any other trigger removes the row.
 */
export async function syncJourneySchedule(client: DbClient, workspaceId: string, journeyId: string, definition: JourneyDefinition, now: Date): Promise<void> {
  const trigger = entryNode(definition).trigger;
  if (trigger.kind !== 'date') {
    await client.query('delete from journey_date_occurrences where workspace_id = $1 and journey_id = $2', [workspaceId, journeyId]);
  }
  if (trigger.kind !== 'date' && trigger.kind !== 'schedule') {
    await client.query('delete from journey_schedules where workspace_id = $1 and journey_id = $2', [workspaceId, journeyId]);
    return;
  }
  const { rows } = await client.query<{ kind: string; covered_until: Date | null; last_run_at: Date | null; time_zone: string }>(
    `select s.kind, s.covered_until, s.last_run_at, w.time_zone from workspaces w
       left join journey_schedules s on s.workspace_id = w.id and s.journey_id = $2 where w.id = $1`,
    [workspaceId, journeyId],
  );
  const existing = rows[0];
  const sameKind = existing?.kind === trigger.kind;
  if (trigger.kind === 'date') {
    await client.query(
      `insert into journey_schedules (workspace_id, journey_id, kind, next_run_at, covered_until) values ($1, $2, 'date', $3, $4)
       on conflict (workspace_id, journey_id) do update set kind = 'date', next_run_at = $3, covered_until = $4,
         -- Coming from another kind, the occurrence table is rebuilt (a changed date trigger is seen by the scan).
         dates_history_cursor = case when journey_schedules.kind = 'date' then journey_schedules.dates_history_cursor end`,
      [workspaceId, journeyId, now, sameKind && existing?.covered_until ? existing.covered_until : now],
    );
    return;
  }
  const lastRunAt = sameKind ? (existing?.last_run_at ?? null) : null;
  const next = nextScheduledRun(trigger, existing?.time_zone ?? 'UTC', now, lastRunAt);
  await client.query(
    `insert into journey_schedules (workspace_id, journey_id, kind, next_run_at, last_run_at) values ($1, $2, 'schedule', $3, $4)
     on conflict (workspace_id, journey_id) do update set kind = 'schedule', next_run_at = $3, last_run_at = $4, covered_until = null`,
    [workspaceId, journeyId, next, lastRunAt],
  );
}

/**
 * When a workspace's time zone changes, in the same transaction: each scheduled audience whose
 * cron follows the workspace zone (no zone of its own) and whose next run is still waiting moves
 * to the cron's next run in the new zone. Date triggers rebuild their occurrences at their next
 * scan (the zone is part of their key); one-off instants do not move.
 */
export async function rescheduleJourneysForTimeZone(db: Queryable, workspaceId: string, timeZone: string, now: Date): Promise<number> {
  const { rows } = await db.query<{ journey_id: string; definition: JourneyDefinition; last_run_at: Date | null }>(
    `select s.journey_id, v.definition, s.last_run_at
       from journey_schedules s
       join journeys j on j.workspace_id = s.workspace_id and j.id = s.journey_id
       join journey_versions v on v.workspace_id = j.workspace_id and v.journey_id = j.id and v.version = j.current_version
      where s.workspace_id = $1 and s.kind = 'schedule' and s.next_run_at > $2`,
    [workspaceId, now],
  );
  let moved = 0;
  for (const row of rows) {
    const trigger = entryNode(row.definition).trigger;
    if (trigger.kind !== 'schedule' || trigger.cron === undefined || trigger.timeZone !== undefined) continue;
    let next: Date | null;
    try {
      next = nextScheduledRun(trigger, timeZone, now, row.last_run_at);
    } catch {
      continue;
    }
    await db.query('update journey_schedules set next_run_at = $3 where workspace_id = $1 and journey_id = $2', [workspaceId, row.journey_id, next]);
    moved += 1;
  }
  return moved;
}

interface DueSchedule {
  workspace_id: string;
  journey_id: string;
  status: 'published' | 'paused';
  definition: JourneyDefinition;
  covered_until: Date | null;
  last_run_at: Date | null;
  time_zone: string;
  dates_trigger: unknown;
  dates_history_cursor: string | null;
}

export interface ScheduleOptions {
  /** Profiles entered per statement batch. */
  batchSize?: number;
  /** How long to wait for the trait history to settle before date scans (they wait a round if it does not). */
  settleTimeoutMs?: number;
  /** Told, per date scan, how many occurrence rows it read (only due ones). */
  onDateScan?: (scan: { journeyId: string; dueRows: number }) => void;
}

/** Runs every due date-trait scan and scheduled audience, one journey per transaction; returns profiles entered. */
export async function drainScheduledEntries(db: Db, now: Date, options: ScheduleOptions = {}): Promise<number> {
  const batchSize = options.batchSize ?? 1000;
  await prepareTransitionStorage(db, now);
  // Date scans follow the trait history up to its settled end (read outside any transaction).
  const { rows: dateDue } = await db.query(`select 1 from journey_schedules where kind = 'date' and next_run_at <= $1 limit 1`, [now]);
  const settled =
    dateDue.length > 0 ? await settledSequence(db, `pg_get_serial_sequence('profile_trait_history', 'id')::regclass`, options.settleTimeoutMs ?? SETTLE_TIMEOUT_MS) : null;
  let entered = 0;
  for (;;) {
    const result = await withTransaction(db, async (client) => {
      const { rows } = await client.query<DueSchedule>(
        `select s.workspace_id, s.journey_id, j.status, v.definition, s.covered_until, s.last_run_at, w.time_zone, s.dates_trigger, s.dates_history_cursor::text
           from journey_schedules s
           join journeys j on j.workspace_id = s.workspace_id and j.id = s.journey_id
           join journey_versions v on v.workspace_id = j.workspace_id and v.journey_id = j.id and v.version = j.current_version
           join workspaces w on w.id = s.workspace_id
          where s.next_run_at <= $1 and j.status in ('published', 'paused')
          order by s.next_run_at limit 1
          for update of s skip locked`,
        [now],
      );
      const due = rows[0];
      if (!due) return null;
      const trigger = entryNode(due.definition).trigger;
      if (trigger.kind === 'date') return runDateScan(client, due, trigger, now, batchSize, settled, options);
      if (trigger.kind === 'schedule') return runSchedule(client, due, trigger, now, batchSize);
      await client.query('delete from journey_schedules where workspace_id = $1 and journey_id = $2', [due.workspace_id, due.journey_id]);
      await client.query('delete from journey_date_occurrences where workspace_id = $1 and journey_id = $2', [due.workspace_id, due.journey_id]);
      return 0;
    });
    if (result === null) return entered;
    entered += result;
  }
}

/**
 * What the occurrence table depends on (a change rebuilds it): the trigger's fields and the
 * workspace time zone, which places the occurrences of every profile without a zone trait.
 */
const dateTriggerKey = (trigger: DateTrigger, workspaceZone: string) => [trigger.trait, trigger.days ?? 0, trigger.time, trigger.repeat, workspaceZone];

interface DateRow {
  profile_id: string;
  value: unknown;
  zone: string | null;
}

/** Current trait value and time-zone trait of live (unmerged) profiles: all holders of the trait, or the listed profiles. */
async function readDateRows(client: DbClient, workspaceId: string, trait: string, profileIds: string[] | null): Promise<DateRow[]> {
  const { rows } = await client.query<DateRow>(
    `select t.profile_id, t.value,
            (select z.value #>> '{}' from profile_traits z
              where z.workspace_id = t.workspace_id and z.profile_id = t.profile_id and z.key in ('timezone', 'time_zone')
              order by z.key limit 1) as zone
       from profile_traits t
       join profiles p on p.workspace_id = t.workspace_id and p.id = t.profile_id and p.merged_into is null
      where t.workspace_id = $1 and t.key = $2 and jsonb_typeof(t.value) = 'string'
        ${profileIds === null ? '' : 'and t.profile_id = any($3::uuid[])'}`,
    profileIds === null ? [workspaceId, trait] : [workspaceId, trait, profileIds],
  );
  return rows;
}

const zoneOf = (row: DateRow, fallback: string) => (row.zone && isValidTimeZone(row.zone) ? row.zone : fallback);

/** Writes each row's next occurrence after `after`; profiles in `profileIds` without one lose their row. */
async function storeNextOccurrences(client: DbClient, due: DueSchedule, trigger: DateTrigger, rows: DateRow[], profileIds: string[], after: Date): Promise<void> {
  const ids: string[] = [];
  const nexts: Date[] = [];
  for (const row of rows) {
    const next = nextDateOccurrence(row.value, trigger, zoneOf(row, due.time_zone), after);
    if (next) {
      ids.push(row.profile_id);
      nexts.push(next);
    }
  }
  const keep = new Set(ids);
  const gone = profileIds.filter((id) => !keep.has(id));
  if (gone.length > 0) {
    await client.query('delete from journey_date_occurrences where workspace_id = $1 and journey_id = $2 and profile_id = any($3::uuid[])', [due.workspace_id, due.journey_id, gone]);
  }
  for (let i = 0; i < ids.length; i += 10_000) {
    await client.query(
      `insert into journey_date_occurrences (workspace_id, journey_id, profile_id, next_at)
       select $1, $2, p, n from unnest($3::uuid[], $4::timestamptz[]) as u(p, n)
       on conflict (workspace_id, journey_id, profile_id) do update set next_at = excluded.next_at`,
      [due.workspace_id, due.journey_id, ids.slice(i, i + 10_000), nexts.slice(i, i + 10_000)],
    );
  }
}

/**
 * Brings the journey's occurrence table up to the settled trait history: built from every holder
 * of the trait when missing or built for another trigger, else recomputed for the profiles whose
 * trait or time zone changed (merges and unmerges write history too). Returns false when the
 * history has not settled (the scan waits for the next round).
 */
async function refreshOccurrences(client: DbClient, due: DueSchedule, trigger: DateTrigger, settled: number | null, after: Date): Promise<boolean> {
  if (settled === null) return false;
  const key = dateTriggerKey(trigger, due.time_zone);
  if (due.dates_history_cursor === null || JSON.stringify(due.dates_trigger) !== JSON.stringify(key)) {
    await client.query('delete from journey_date_occurrences where workspace_id = $1 and journey_id = $2', [due.workspace_id, due.journey_id]);
    await storeNextOccurrences(client, due, trigger, await readDateRows(client, due.workspace_id, trigger.trait, null), [], after);
  } else if (Number(due.dates_history_cursor) < settled) {
    const { rows } = await client.query<{ profile_id: string }>(
      `select distinct profile_id from profile_trait_history
        where workspace_id = $1 and id > $2 and id <= $3 and key in ($4, 'timezone', 'time_zone')`,
      [due.workspace_id, due.dates_history_cursor, settled, trigger.trait],
    );
    const changed = rows.map((r) => r.profile_id);
    if (changed.length > 0) await storeNextOccurrences(client, due, trigger, await readDateRows(client, due.workspace_id, trigger.trait, changed), changed, after);
  } else {
    return true;
  }
  await client.query('update journey_schedules set dates_trigger = $3, dates_history_cursor = $4 where workspace_id = $1 and journey_id = $2', [
    due.workspace_id,
    due.journey_id,
    JSON.stringify(key),
    Math.max(settled, Number(due.dates_history_cursor ?? 0)),
  ]);
  return true;
}

async function runDateScan(client: DbClient, due: DueSchedule, trigger: DateTrigger, now: Date, batchSize: number, settled: number | null, options: ScheduleOptions): Promise<number> {
  const to = now;
  const from = new Date(Math.max(due.covered_until?.getTime() ?? now.getTime(), now.getTime() - MAX_WINDOW_MS));
  if (!(await refreshOccurrences(client, due, trigger, settled, from))) {
    // The trait history has not settled: look again next round, the window stays open.
    await client.query('update journey_schedules set next_run_at = $3 where workspace_id = $1 and journey_id = $2', [due.workspace_id, due.journey_id, new Date(now.getTime() + DATE_SCAN_MS)]);
    return 0;
  }
  // Only the due rows: profiles whose next occurrence is in the window.
  const { rows: dueRows } = await client.query<{ profile_id: string }>(
    'select profile_id from journey_date_occurrences where workspace_id = $1 and journey_id = $2 and next_at <= $3',
    [due.workspace_id, due.journey_id, to],
  );
  options.onDateScan?.({ journeyId: due.journey_id, dueRows: dueRows.length });
  const profileIds = dueRows.map((r) => r.profile_id);
  const rows = profileIds.length > 0 ? await readDateRows(client, due.workspace_id, trigger.trait, profileIds) : [];
  let entered = 0;
  // A paused journey lets its dates pass: nothing enters while it is paused.
  if (due.status === 'published' && to.getTime() > from.getTime()) {
    const requests: EntryRequest[] = [];
    for (const row of rows) {
      for (const at of dateOccurrences(row.value, trigger, zoneOf(row, due.time_zone), from, to)) {
        requests.push({ profileId: row.profile_id, entry: 'date', variables: { trait: trigger.trait, date: row.value, occurrence: at.toISOString() } });
      }
    }
    for (let i = 0; i < requests.length; i += batchSize) {
      const results = await enterProfiles(client, due.workspace_id, due.journey_id, requests.slice(i, i + batchSize), now);
      entered += results.filter((r) => r.instanceId).length;
    }
  }
  // Fired (or passed) rows move to their next occurrence; merged, erased or dateless profiles lose theirs.
  if (profileIds.length > 0) await storeNextOccurrences(client, due, trigger, rows, profileIds, to);
  await client.query(
    `update journey_schedules set covered_until = $3, next_run_at = $4, last_run_at = $3, last_entered = $5 where workspace_id = $1 and journey_id = $2`,
    [due.workspace_id, due.journey_id, to, new Date(now.getTime() + DATE_SCAN_MS), entered],
  );
  return entered;
}

async function runSchedule(client: DbClient, due: DueSchedule, trigger: ScheduleTrigger, now: Date, batchSize: number): Promise<number> {
  // A paused journey's run waits for resume (then runs once, however many runs it missed).
  if (due.status !== 'published') return 0;
  const { rows } = await client.query<{ profile_id: string }>(
    `select m.profile_id from segment_memberships m
       join segments s on s.workspace_id = m.workspace_id and s.id = m.segment_id
      where m.workspace_id = $1 and s.key = $2 and s.status <> 'archived'
      order by m.profile_id`,
    [due.workspace_id, trigger.segment],
  );
  let entered = 0;
  for (let i = 0; i < rows.length; i += batchSize) {
    const requests: EntryRequest[] = rows
      .slice(i, i + batchSize)
      .map((row) => ({ profileId: row.profile_id, entry: 'schedule', variables: { segment_key: trigger.segment, scheduled_at: now.toISOString() } }));
    const results = await enterProfiles(client, due.workspace_id, due.journey_id, requests, now);
    entered += results.filter((r) => r.instanceId).length;
  }
  const next = nextScheduledRun(trigger, due.time_zone, now, now);
  await client.query(
    `update journey_schedules set next_run_at = $3, last_run_at = $4, last_entered = $5 where workspace_id = $1 and journey_id = $2`,
    [due.workspace_id, due.journey_id, next, now, entered],
  );
  return entered;
}
