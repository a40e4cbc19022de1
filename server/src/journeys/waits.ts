import { durationMs } from '../segments/ast.ts';
import type { NodeOf } from './definition.ts';
import { dateAt, parseDateTrait } from './dates.ts';
import { isValidTimeZone } from '../channels/guards.ts';
import { nextTimeOfDay } from './validate.ts';

/*
 * When the waiting nodes wake, pure: the executor and the dry run both ask these, with the
 * profile's traits as they are on arrival. Time of day is the profile's (trait `timezone` or
 * `time_zone`, as channels reads it), else the workspace's.
 */

const TIME_ZONE_TRAITS = ['timezone', 'time_zone'] as const;

/** The profile's IANA time zone from its traits, else the workspace's. */
export function profileTimeZone(traits: Readonly<Record<string, unknown>>, workspaceZone: string): string {
  for (const key of TIME_ZONE_TRAITS) {
    const value = traits[key];
    if (typeof value === 'string' && value !== '' && isValidTimeZone(value)) return value;
  }
  return workspaceZone;
}

export type DelayOutcome =
  /** Wait until `until`. */
  | { wait: true; until: Date; timeZone: string }
  /** No wait: a date already past, or no date at all. */
  | { wait: false; outcome: 'date_passed' | 'no_date'; detail: Record<string, unknown> };

/**
 * Where a delay ends for a profile arriving at `now`: the duration, then the next allowed time of
 * day in the profile's zone; or the date trait ± days (at `time` in the profile's zone, else the
 * date's own instant when the trait is one). A date already past, or a missing or unreadable
 * trait, means no wait at all (recorded as the outcome).
 */
export function delayOutcome(node: NodeOf<'delay'>, now: Date, traits: Readonly<Record<string, unknown>>, workspaceZone: string): DelayOutcome {
  const timeZone = profileTimeZone(traits, workspaceZone);
  if (node.untilDate) {
    const { trait, days = 0, time } = node.untilDate;
    const value = traits[trait];
    const date = parseDateTrait(value);
    if (!date) return { wait: false, outcome: 'no_date', detail: { trait } };
    let until: Date;
    if (time !== undefined) until = dateAt(date, days, time, timeZone);
    else {
      // Without a time of day: the instant the trait names (midnight in the profile's zone for a plain date).
      const instant = typeof value === 'string' && value.length > 10 ? new Date(value) : undefined;
      until =
        instant && !Number.isNaN(instant.getTime()) ? new Date(instant.getTime() + days * 86_400_000) : dateAt(date, days, '00:00', timeZone);
    }
    if (until.getTime() <= now.getTime()) return { wait: false, outcome: 'date_passed', detail: { trait, at: until.toISOString() } };
    return { wait: true, until, timeZone };
  }
  const afterDuration = new Date(now.getTime() + (node.duration ? durationMs(node.duration) : 0));
  const until = node.until ? nextTimeOfDay(afterDuration, node.until.time, timeZone, node.until.weekdays) : afterDuration;
  return { wait: true, until, timeZone };
}

/** A segment wait on arrival: already where it waits to be (take `happened` now), or wait until the timeout. */
export function segmentWaitOutcome(node: NodeOf<'segment_wait'>, isMember: boolean, now: Date): { happened: true } | { happened: false; timeoutAt: Date } {
  if (isMember === (node.on === 'entered')) return { happened: true };
  return { happened: false, timeoutAt: new Date(now.getTime() + durationMs(node.timeout)) };
}

/**
 * The trait values an update_trait node sets (null removes one): `set` as given, and `addTags`
 * added once each to the `tags` list trait as the profile has it.
 */
export function traitValuesOf(node: NodeOf<'update_trait'>, traits: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const values: Record<string, unknown> = { ...(node.set ?? {}) };
  if (node.addTags) {
    const current = traits.tags;
    const list = Array.isArray(current) ? [...current] : current === undefined || current === null ? [] : [current];
    for (const tag of node.addTags) if (!list.includes(tag)) list.push(tag);
    values.tags = list;
  }
  return values;
}
