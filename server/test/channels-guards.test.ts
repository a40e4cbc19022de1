import { describe, expect, it } from 'vitest';
import { decide, quietHoursEnd, type GuardFacts } from '../src/channels/guards.ts';

const now = new Date('2026-03-10T12:00:00Z');
const base: GuardFacts = {
  channel: 'sms',
  purpose: 'marketing',
  profileExists: true,
  blocked: false,
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

  it('a blocked profile is never sent to, transactional or marketing, whatever else holds', () => {
    expect(decide({ ...base, blocked: true }, now)).toEqual({ action: 'skip', reason: 'blocked' });
    expect(decide({ ...base, blocked: true, purpose: 'transactional', consents: { sms: true } }, now)).toEqual({ action: 'skip', reason: 'blocked' });
    // A profile that does not exist (erased) is refused first, as such.
    expect(decide({ ...base, blocked: true, profileExists: false }, now)).toEqual({ action: 'skip', reason: 'profile_not_found' });
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

describe('quiet hours across DST changes (the local calendar of the profile zone)', () => {
  const at = (iso: string) => new Date(iso);
  const night = (instant: string, zone: string) => quietHoursEnd(at(instant), zone, '21:00', '08:00');

  it('New York spring forward (8 March 2026, 02:00 EST → 03:00 EDT): opens at 08:00 EDT, not an hour late', () => {
    // 23:00 EST on 7 March; nine wall-clock hours later is 08:00 EDT = 12:00Z (eight real hours).
    expect(night('2026-03-08T04:00:00Z', 'America/New_York')).toEqual(at('2026-03-08T12:00:00Z'));
  });

  it('New York fall back (1 November 2026, 02:00 EDT → 01:00 EST): opens at 08:00 EST, never at 07:00 inside the window', () => {
    // 22:00 EDT on 31 October; ten wall hours by the clock are eleven real hours.
    expect(night('2026-11-01T02:00:00Z', 'America/New_York')).toEqual(at('2026-11-01T13:00:00Z'));
  });

  it('Berlin spring forward and fall back', () => {
    // 23:00 CET on 28 March → 07:00 CEST on 29 March = 05:00Z.
    expect(quietHoursEnd(at('2026-03-28T22:00:00Z'), 'Europe/Berlin', '22:00', '07:00')).toEqual(at('2026-03-29T05:00:00Z'));
    // 23:00 CEST on 24 October → 07:00 CET on 25 October = 06:00Z.
    expect(quietHoursEnd(at('2026-10-24T21:00:00Z'), 'Europe/Berlin', '22:00', '07:00')).toEqual(at('2026-10-25T06:00:00Z'));
  });

  it('an end inside the spring-forward gap opens when the gap ends; an end that happens twice opens at the next occurrence, the same day', () => {
    // 01:15 EST on 8 March, window 01:00–02:30: 02:30 never happens that night; the clock jumps to 03:00 EDT = 07:00Z.
    expect(quietHoursEnd(at('2026-03-08T06:15:00Z'), 'America/New_York', '01:00', '02:30')).toEqual(at('2026-03-08T07:00:00Z'));
    // 1 November, window 01:00–01:30, which happens twice: first at 01:10 EDT, then at 01:10 EST.
    expect(quietHoursEnd(at('2026-11-01T05:10:00Z'), 'America/New_York', '01:00', '01:30')).toEqual(at('2026-11-01T05:30:00Z'));
    expect(quietHoursEnd(at('2026-11-01T05:30:00Z'), 'America/New_York', '01:00', '01:30')).toBeUndefined();
    expect(quietHoursEnd(at('2026-11-01T06:10:00Z'), 'America/New_York', '01:00', '01:30')).toEqual(at('2026-11-01T06:30:00Z'));
  });

  it('matches a minute-by-minute walk of the local clock around every change (never inside, never later, never a day skipped)', () => {
    const cases: [string, string, string, string][] = [
      ['America/New_York', '2026-03-07T00:00:00Z', '21:00', '08:00'],
      ['America/New_York', '2026-10-31T00:00:00Z', '21:00', '08:00'],
      ['America/New_York', '2026-03-07T12:00:00Z', '01:30', '02:30'],
      ['America/New_York', '2026-10-31T12:00:00Z', '00:30', '01:30'],
      ['Europe/Berlin', '2026-03-28T00:00:00Z', '22:00', '07:00'],
      ['Europe/Berlin', '2026-10-24T00:00:00Z', '02:15', '02:45'],
      ['Australia/Lord_Howe', '2026-04-04T00:00:00Z', '01:00', '02:00'],
    ];
    const MINUTE = 60_000;
    for (const [zone, from, start, end] of cases) {
      const s = Number(start.slice(0, 2)) * 60 + Number(start.slice(3));
      const e = Number(end.slice(0, 2)) * 60 + Number(end.slice(3));
      const format = new Intl.DateTimeFormat('en-GB', { timeZone: zone, hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
      const quiet = (instant: number) => {
        const local = format.formatToParts(new Date(instant));
        const minutes = Number(local.find((p) => p.type === 'hour')!.value) * 60 + Number(local.find((p) => p.type === 'minute')!.value);
        return s < e ? minutes >= s && minutes < e : minutes >= s || minutes < e;
      };
      for (let t = Date.parse(from); t < Date.parse(from) + 2 * 86_400_000; t += 20 * MINUTE) {
        let walk = t;
        while (quiet(walk)) walk += MINUTE;
        const opens = quietHoursEnd(new Date(t), zone, start, end);
        expect(opens?.getTime() ?? t, `${zone} ${start}–${end} at ${new Date(t).toISOString()}`).toBe(walk);
      }
    }
  });
});
