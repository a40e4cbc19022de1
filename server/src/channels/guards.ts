import type { ChannelKind } from './contract.ts';
import type { Policy } from './schemas.ts';

/*
 * The enqueue guards, pure: given what the database knows about a profile at enqueue time, queue
 * the message (now, or later for quiet hours) or skip it with a reason. Every refusal has a
 * reason, recorded on the message and as a `Message Skipped` event.
 */

export type SkipReason =
  | 'profile_not_found'
  | 'blocked'
  | 'no_address'
  | 'suppressed'
  | 'no_consent'
  | 'unsubscribed'
  | 'unknown_subscription_group'
  | 'frequency_cap'
  | 'unknown_template'
  | 'no_channel_account';

export interface GuardFacts {
  channel: ChannelKind;
  purpose: 'marketing' | 'transactional';
  profileExists: boolean;
  /** An operator blocked the profile (or the one it was merged from): never sent to, transactional included. */
  blocked: boolean;
  address: string | undefined;
  /** The address is on the suppression list (hard bounce, complaint, STOP, operator). */
  suppressed: boolean;
  /** Consent categories of the profile (profile_consents): category → granted. */
  consents: Readonly<Record<string, boolean>>;
  /** Explicit subscription choices of the profile: group key → subscribed. */
  subscriptions: Readonly<Record<string, boolean>>;
  subscriptionGroup?: { key: string; mode: 'opt_in' | 'opt_out' } | 'unknown';
  /** Marketing messages accepted for this profile, per cap (same order as policy.frequencyCaps). */
  capCounts: readonly number[];
  policy: Policy;
  /** The profile's IANA time zone, else the workspace's. */
  timeZone: string;
  templateFound: boolean;
  accountFound: boolean;
}

export type GuardDecision = { action: 'queue'; dueAt: Date; deferredBy?: 'quiet_hours' } | { action: 'skip'; reason: SkipReason };

/** The subscription key every marketing message of a channel passes (one-click unsubscribe without a group). */
export const channelSubscriptionKey = (channel: ChannelKind) => `channel:${channel}`;

export function decide(facts: GuardFacts, notBefore: Date): GuardDecision {
  if (!facts.profileExists) return { action: 'skip', reason: 'profile_not_found' };
  if (facts.blocked) return { action: 'skip', reason: 'blocked' };
  if (!facts.templateFound) return { action: 'skip', reason: 'unknown_template' };
  if (!facts.accountFound) return { action: 'skip', reason: 'no_channel_account' };
  if (!facts.address) return { action: 'skip', reason: 'no_address' };
  if (facts.suppressed) return { action: 'skip', reason: 'suppressed' };
  if (facts.purpose === 'transactional') return { action: 'queue', dueAt: notBefore };

  const consent = consentFor(facts.consents, facts.channel);
  if (consent === false) return { action: 'skip', reason: 'no_consent' };
  if (consent === undefined && facts.policy.requireOptIn.includes(facts.channel)) return { action: 'skip', reason: 'no_consent' };

  if (facts.subscriptions[channelSubscriptionKey(facts.channel)] === false) return { action: 'skip', reason: 'unsubscribed' };
  const group = facts.subscriptionGroup;
  if (group === 'unknown') return { action: 'skip', reason: 'unknown_subscription_group' };
  if (group) {
    const choice = facts.subscriptions[group.key];
    if (choice === false || (group.mode === 'opt_in' && choice !== true)) return { action: 'skip', reason: 'unsubscribed' };
  }

  for (const [index, cap] of facts.policy.frequencyCaps.entries()) {
    if (cap.channel !== undefined && cap.channel !== facts.channel) continue;
    if ((facts.capCounts[index] ?? 0) >= cap.maxMessages) return { action: 'skip', reason: 'frequency_cap' };
  }

  const quiet = facts.policy.quietHours;
  if (quiet) {
    const opens = quietHoursEnd(notBefore, facts.timeZone, quiet.start, quiet.end);
    if (opens) return { action: 'queue', dueAt: opens, deferredBy: 'quiet_hours' };
  }
  return { action: 'queue', dueAt: notBefore };
}

/** A consent for the channel decides; otherwise one for all marketing; otherwise none is known. */
function consentFor(consents: Readonly<Record<string, boolean>>, channel: ChannelKind): boolean | undefined {
  return consents[channel] ?? consents.marketing;
}

const MINUTE = 60_000;

function minutesOf(clock: string): number {
  const [h, m] = clock.split(':').map(Number);
  return h! * 60 + m!;
}

// Building an Intl.DateTimeFormat costs far more than using one: one per zone, reused.
const formatters = new Map<string, Intl.DateTimeFormat | null>();

function formatterFor(timeZone: string): Intl.DateTimeFormat | null {
  let formatter = formatters.get(timeZone);
  if (formatter === undefined) {
    try {
      formatter = new Intl.DateTimeFormat('en-GB', {
        timeZone,
        year: 'numeric',
        month: '2-digit',
        day: '2-digit',
        hour: '2-digit',
        minute: '2-digit',
        hourCycle: 'h23',
      });
    } catch {
      formatter = null;
    }
    if (formatters.size > 1000) formatters.clear();
    formatters.set(timeZone, formatter);
  }
  return formatter;
}

/** The local wall clock at `at` in `timeZone` as if it were UTC (ms, whole minutes); an unknown zone reads as UTC. */
function wallOf(at: number, timeZone: string): number {
  const parts = (formatterFor(timeZone) ?? formatterFor('UTC')!).formatToParts(new Date(at));
  const value = (type: string) => Number(parts.find((part) => part.type === type)?.value ?? 0);
  return Date.UTC(value('year'), value('month') - 1, value('day'), value('hour'), value('minute'));
}

/** Local wall-clock minutes of the day at `at` in `timeZone` (an unknown zone reads as UTC). */
export function localMinutes(at: Date, timeZone: string): number {
  const wall = wallOf(at.getTime(), timeZone);
  return Math.floor(wall / MINUTE) % 1440;
}

export function isValidTimeZone(timeZone: string): boolean {
  return formatterFor(timeZone) !== null;
}

/** The zone's offset from UTC at `at` (ms, local minus UTC; whole minutes). */
function offsetAt(at: number, timeZone: string): number {
  const minute = Math.floor(at / MINUTE) * MINUTE;
  return wallOf(minute, timeZone) - minute;
}

/**
 * The first instant at or after `notBefore` whose local wall clock in `timeZone` reads `wall`
 * (a wall time given as UTC ms) or later: exact across DST changes. A wall time that happens
 * twice (autumn) gives its first occurrence not before `notBefore`; one that does not happen
 * (spring, inside the gap) gives the first instant after the gap.
 */
export function instantOfWall(wall: number, timeZone: string, notBefore: number): number {
  const DAY = 86_400_000;
  // A zone has at most two offsets within a day of any instant (one change at a time).
  const offsets = [...new Set([offsetAt(wall - DAY, timeZone), offsetAt(wall, timeZone), offsetAt(wall + DAY, timeZone)])];
  const exact = offsets
    .map((offset) => wall - offset)
    .filter((instant) => wallOf(instant, timeZone) === wall && instant >= notBefore)
    .sort((a, b) => a - b);
  if (exact.length > 0) return exact[0]!;
  // In the gap: the change happens between the instants the two offsets name; find it to the minute.
  let low = Math.min(...offsets.map((offset) => wall - offset));
  let high = Math.max(...offsets.map((offset) => wall - offset));
  if (wallOf(high, timeZone) < wall) return Math.max(high, notBefore);
  while (high - low > MINUTE) {
    const middle = Math.floor((low + high) / 2 / MINUTE) * MINUTE;
    if (wallOf(middle, timeZone) >= wall) high = middle;
    else low = middle;
  }
  return Math.max(high, notBefore);
}

/**
 * When `at` falls in the quiet window [start, end) of local time (a window may cross midnight),
 * the first instant the window is over; otherwise undefined. Computed on the local calendar of
 * the zone, so a DST change moves neither end: the message leaves when the local clock first
 * reads `end` (after the gap when `end` falls in a spring-forward gap), never inside the window
 * and never a day late.
 */
export function quietHoursEnd(at: Date, timeZone: string, start: string, end: string): Date | undefined {
  const s = minutesOf(start);
  const e = minutesOf(end);
  if (s === e) return undefined;
  const wall = wallOf(at.getTime(), timeZone);
  const now = Math.floor(wall / MINUTE) % 1440;
  const quiet = s < e ? now >= s && now < e : now >= s || now < e;
  if (!quiet) return undefined;
  const midnight = wall - now * MINUTE;
  // A window crossing midnight, entered before midnight, ends on the next local day.
  const endDay = s > e && now >= s ? midnight + 1440 * MINUTE : midnight;
  const opens = instantOfWall(endDay + e * MINUTE, timeZone, at.getTime());
  return new Date(opens);
}
