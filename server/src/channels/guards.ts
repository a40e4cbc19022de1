import type { ChannelKind } from './contract.ts';
import type { Policy } from './schemas.ts';

/*
 * The enqueue guards, pure: given what the database knows about a profile at enqueue time, queue
 * the message (now, or later for quiet hours) or skip it with a reason. Every refusal has a
 * reason, recorded on the message and as a `Message Skipped` event.
 */

export type SkipReason =
  | 'profile_not_found'
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

/** Local wall-clock minutes of the day at `at` in `timeZone` (an unknown zone reads as UTC). */
export function localMinutes(at: Date, timeZone: string): number {
  let parts: Intl.DateTimeFormatPart[];
  try {
    parts = new Intl.DateTimeFormat('en-GB', { timeZone, hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).formatToParts(at);
  } catch {
    parts = new Intl.DateTimeFormat('en-GB', { timeZone: 'UTC', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).formatToParts(at);
  }
  const value = (type: string) => Number(parts.find((part) => part.type === type)?.value ?? 0);
  return value('hour') * 60 + value('minute');
}

export function isValidTimeZone(timeZone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-GB', { timeZone });
    return true;
  } catch {
    return false;
  }
}

/**
 * When `at` falls in the quiet window [start, end) of local time (a window may cross midnight),
 * the first instant the window is over; otherwise undefined. Computed by wall-clock distance, so
 * across a DST change the message opens up to an hour early or late — still outside the night.
 */
export function quietHoursEnd(at: Date, timeZone: string, start: string, end: string): Date | undefined {
  const s = minutesOf(start);
  const e = minutesOf(end);
  if (s === e) return undefined;
  const now = localMinutes(at, timeZone);
  const quiet = s < e ? now >= s && now < e : now >= s || now < e;
  if (!quiet) return undefined;
  const wait = (e - now + 1440) % 1440;
  const startOfMinute = Math.floor(at.getTime() / MINUTE) * MINUTE;
  return new Date(startOfMinute + wait * MINUTE);
}
