import { describe, expect, it } from 'vitest';
import { decide, quietHoursEnd, type GuardFacts } from '../src/channels/guards.ts';

const now = new Date('2026-03-10T12:00:00Z');
const base: GuardFacts = {
  channel: 'sms',
  purpose: 'marketing',
  profileExists: true,
  address: '+8613800000000',
  suppressed: false,
  consents: {},
  subscriptions: {},
  capCounts: [],
  policy: { frequencyCaps: [], quietHours: null, requireOptIn: [] },
  timeZone: 'UTC',
  templateFound: true,
  accountFound: true,
};

describe('enqueue guards', () => {
  it('queues a marketing message that nothing stops, now', () => {
    expect(decide(base, now)).toEqual({ action: 'queue', dueAt: now });
  });

  it('skips with a reason: no profile, template, account, address; suppressed', () => {
    expect(decide({ ...base, profileExists: false }, now)).toEqual({ action: 'skip', reason: 'profile_not_found' });
    expect(decide({ ...base, templateFound: false }, now)).toEqual({ action: 'skip', reason: 'unknown_template' });
    expect(decide({ ...base, accountFound: false }, now)).toEqual({ action: 'skip', reason: 'no_channel_account' });
    expect(decide({ ...base, address: undefined }, now)).toEqual({ action: 'skip', reason: 'no_address' });
    expect(decide({ ...base, suppressed: true, purpose: 'transactional' }, now)).toEqual({ action: 'skip', reason: 'suppressed' });
  });

  it('consent: a denial of the channel or of marketing stops marketing; opt-in channels need a grant', () => {
    expect(decide({ ...base, consents: { sms: false } }, now)).toEqual({ action: 'skip', reason: 'no_consent' });
    expect(decide({ ...base, consents: { marketing: false } }, now)).toEqual({ action: 'skip', reason: 'no_consent' });
    expect(decide({ ...base, consents: { marketing: false, sms: true } }, now).action).toBe('queue');
    const optIn = { ...base, policy: { ...base.policy, requireOptIn: ['sms' as const] } };
    expect(decide(optIn, now)).toEqual({ action: 'skip', reason: 'no_consent' });
    expect(decide({ ...optIn, consents: { sms: true } }, now).action).toBe('queue');
  });

  it('transactional messages pass consent, subscriptions, caps and quiet hours', () => {
    const everything: GuardFacts = {
      ...base,
      purpose: 'transactional',
      consents: { sms: false },
      subscriptions: { 'channel:sms': false },
      capCounts: [99],
      policy: { frequencyCaps: [{ maxMessages: 1, windowSeconds: 86_400 }], quietHours: { start: '00:00', end: '23:59' }, requireOptIn: ['sms'] },
    };
    expect(decide(everything, now)).toEqual({ action: 'queue', dueAt: now });
  });

  it('subscription groups: opt-out groups send unless unsubscribed, opt-in groups only after subscribing', () => {
    expect(decide({ ...base, subscriptions: { 'channel:sms': false } }, now)).toEqual({ action: 'skip', reason: 'unsubscribed' });
    const news = { key: 'news', mode: 'opt_out' as const };
    expect(decide({ ...base, subscriptionGroup: news }, now).action).toBe('queue');
    expect(decide({ ...base, subscriptionGroup: news, subscriptions: { news: false } }, now)).toEqual({ action: 'skip', reason: 'unsubscribed' });
    const vip = { key: 'vip', mode: 'opt_in' as const };
    expect(decide({ ...base, subscriptionGroup: vip }, now)).toEqual({ action: 'skip', reason: 'unsubscribed' });
    expect(decide({ ...base, subscriptionGroup: vip, subscriptions: { vip: true } }, now).action).toBe('queue');
    expect(decide({ ...base, subscriptionGroup: 'unknown' }, now)).toEqual({ action: 'skip', reason: 'unknown_subscription_group' });
  });

  it('frequency caps apply per channel or across channels', () => {
    const policy = { ...base.policy, frequencyCaps: [{ channel: 'email' as const, maxMessages: 1, windowSeconds: 3600 }, { maxMessages: 3, windowSeconds: 604_800 }] };
    expect(decide({ ...base, policy, capCounts: [5, 2] }, now).action).toBe('queue'); // the email cap does not apply to sms
    expect(decide({ ...base, policy, capCounts: [0, 3] }, now)).toEqual({ action: 'skip', reason: 'frequency_cap' });
    expect(decide({ ...base, channel: 'email', policy, capCounts: [1, 0] }, now)).toEqual({ action: 'skip', reason: 'frequency_cap' });
  });

  it('quiet hours defer to the end of the window in the profile time zone (never drop)', () => {
    const policy = { ...base.policy, quietHours: { start: '21:00', end: '08:00' } };
    // 12:00 UTC is 20:00 in Shanghai: not quiet yet.
    expect(decide({ ...base, policy, timeZone: 'Asia/Shanghai' }, now)).toEqual({ action: 'queue', dueAt: now });
    // 14:30 UTC is 22:30 in Shanghai: wait until 08:00 Shanghai = 00:00 UTC next day.
    const late = new Date('2026-03-10T14:30:00Z');
    expect(decide({ ...base, policy, timeZone: 'Asia/Shanghai' }, late)).toEqual({
      action: 'queue',
      dueAt: new Date('2026-03-11T00:00:00Z'),
      deferredBy: 'quiet_hours',
    });
    // The same instant is 10:30 in New York (EDT from 8 March 2026): not quiet.
    expect(decide({ ...base, policy, timeZone: 'America/New_York' }, late)).toEqual({ action: 'queue', dueAt: late });
  });

  it('quiet windows within a day and unknown zones', () => {
    expect(quietHoursEnd(new Date('2026-01-01T12:15:40Z'), 'UTC', '12:00', '13:30')).toEqual(new Date('2026-01-01T13:30:00Z'));
    expect(quietHoursEnd(new Date('2026-01-01T13:30:00Z'), 'UTC', '12:00', '13:30')).toBeUndefined();
    expect(quietHoursEnd(new Date('2026-01-01T12:15:00Z'), 'Not/AZone', '12:00', '13:30')).toEqual(new Date('2026-01-01T13:30:00Z'));
    expect(quietHoursEnd(new Date('2026-01-01T12:15:00Z'), 'UTC', '09:00', '09:00')).toBeUndefined();
  });
});
