import crypto from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { Condition, EventMatch, Measure, PropertyFilter, ValueOperator, Window } from '../src/segments/ast.ts';
import { evaluateSegment, randomBucket } from '../src/segments/evaluate.ts';
import type { ProfileEvent, ProfileSnapshot } from '../src/segments/snapshot.ts';

const MINUTE = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;
const NOW = Date.UTC(2024, 5, 15, 12, 0, 0); // 2024-06-15T12:00:00Z

let nextSeq = 1;
function event(partial: Partial<ProfileEvent> & { timestamp: number }): ProfileEvent {
  return { seq: nextSeq++, type: 'track', event: 'Order Completed', name: null, properties: {}, context: null, ...partial };
}
function order(timestamp: number, properties: Record<string, unknown> = {}, seq?: number): ProfileEvent {
  return event({ timestamp, properties, ...(seq === undefined ? {} : { seq }) });
}

function profile(partial: Partial<ProfileSnapshot> = {}): ProfileSnapshot {
  return {
    profileId: '6f1c1f7e-2b0a-4c55-9a53-0d5d0f7a9e01',
    traits: {},
    identifierTypes: new Set(),
    consents: new Map(),
    memberships: new Set(),
    events: [],
    ...partial,
  };
}

function trait(path: string, operator: ValueOperator): Condition {
  return { kind: 'trait', trait: path, ...operator };
}
const ORDERS: EventMatch = { type: 'track', name: 'Order Completed', filters: [] };
function onOrders(measure: Measure, window?: Window, match: EventMatch = ORDERS): Condition {
  return { kind: 'event', match, measure, ...(window ? { window } : {}) };
}
const last = (amount: number, unit: 'minutes' | 'hours' | 'days' | 'weeks' = 'days'): Window => ({ kind: 'last', duration: { amount, unit } });

function member(condition: Condition, snapshot: ProfileSnapshot, now = NOW): boolean {
  return evaluateSegment(condition, snapshot, now).member;
}
function recheck(condition: Condition, snapshot: ProfileSnapshot, now = NOW): number | null {
  return evaluateSegment(condition, snapshot, now).recheckAt;
}
/** The trait test's answer for each value (undefined: the trait is absent). */
function traitAnswers(operator: ValueOperator, values: unknown[]): boolean[] {
  return values.map((value) => member(trait('t', operator), profile({ traits: value === undefined ? {} : { t: value } })));
}

describe('trait values', () => {
  it('eq: a number literal matches JSON numbers and decimal strings in full; strings and booleans only their own type', () => {
    expect(traitAnswers({ op: 'eq', value: 12.5 }, [12.5, '12.5', '1.25e1', '12.50', '12abc', ' 12.5', '12.5 ', true, null, undefined])).toEqual([
      true, true, true, true, false, false, false, false, false, false,
    ]);
    expect(traitAnswers({ op: 'eq', value: '12' }, ['12', 12, 'A12'])).toEqual([true, false, false]);
    expect(traitAnswers({ op: 'eq', value: 'Shoes' }, ['Shoes', 'shoes'])).toEqual([true, false]);
    expect(traitAnswers({ op: 'eq', value: true }, [true, 'true', 1, false])).toEqual([true, false, false, false]);
    expect(traitAnswers({ op: 'eq', value: -1 }, ['-1', '-1.0', '+1', '-1e0'])).toEqual([true, true, false, true]);
  });

  it('neq and not_in are exactly not eq / not in: true on absent and null values', () => {
    expect(traitAnswers({ op: 'neq', value: 5 }, [5, '5', 6, 'abc', null, undefined])).toEqual([false, false, true, true, true, true]);
    expect(traitAnswers({ op: 'not_in', values: [5, 'a'] }, ['5.0', 'a', 'b', null, undefined])).toEqual([false, false, true, true, true]);
  });

  it('in: any literal of the list, each by its own rule', () => {
    expect(traitAnswers({ op: 'in', values: [1, 'a', false] }, [1, '1', '1.0', 'a', false, 'false', 'b', null, undefined])).toEqual([
      true, true, true, true, true, false, false, false, false,
    ]);
  });

  it('lt/lte/gt/gte/between compare numbers and numeric strings; anything else is false', () => {
    expect(traitAnswers({ op: 'lt', value: 10 }, [9.5, '9', 10, '10', 'abc', '9x', true, null, undefined])).toEqual([
      true, true, false, false, false, false, false, false, false,
    ]);
    expect(traitAnswers({ op: 'lte', value: 10 }, [10, '10.0', 10.5])).toEqual([true, true, false]);
    expect(traitAnswers({ op: 'gt', value: 10 }, [10.5, '1e2', 10, '12abc'])).toEqual([true, true, false, false]);
    expect(traitAnswers({ op: 'gte', value: -2 }, [-2, '-2', -3, '--2'])).toEqual([true, true, false, false]);
    expect(traitAnswers({ op: 'between', low: 1, high: 3 }, [1, 3, '2.5', 0.5, 3.5, '3'])).toEqual([true, true, true, false, false, true]);
  });

  it('contains: a substring of a string, or an element equal to the literal in an array', () => {
    expect(traitAnswers({ op: 'contains', value: '上海' }, ['上海市', '北京', ['上海', 'x'], ['上海市'], [5], 5, { a: '上海' }, undefined])).toEqual([
      true, false, true, false, false, false, false, false,
    ]);
    expect(traitAnswers({ op: 'contains', value: '5' }, [['5'], [5], '15'])).toEqual([true, false, true]);
  });

  it('starts_with / ends_with: strings only, case-sensitive', () => {
    expect(traitAnswers({ op: 'starts_with', value: 'ab' }, ['abc', 'Abc', 'cab', ['abc'], undefined])).toEqual([true, false, false, false, false]);
    expect(traitAnswers({ op: 'ends_with', value: 'bc' }, ['abc', 'abC', 'bcd', 123])).toEqual([true, false, false, false]);
  });

  it('matches: strings only; `.` matches newlines and astral characters as one code point, like PostgreSQL', () => {
    expect(traitAnswers({ op: 'matches', pattern: '^a.c$' }, ['abc', 'a\nc', 'a😀c', 'ac', 'abbc', 123])).toEqual([true, true, true, false, false, false]);
    expect(traitAnswers({ op: 'matches', pattern: '^[0-9]+(\\.[0-9]+)?$' }, ['12.5', '12.', 12])).toEqual([true, false, false]);
    expect(traitAnswers({ op: 'matches', pattern: '\\d' }, ['a1', 'abc'])).toEqual([true, false]);
  });

  it('a pattern no engine can read is a definition error, not a false test', () => {
    expect(() => member(trait('t', { op: 'matches', pattern: '(' }), profile({ traits: { t: 'x' } }))).toThrow(/regular expression/);
  });

  it('exists / missing: present means existing and not null', () => {
    expect(traitAnswers({ op: 'exists' }, [0, '', false, [], {}, null, undefined])).toEqual([true, true, true, true, true, false, false]);
    expect(traitAnswers({ op: 'missing' }, [0, null, undefined])).toEqual([false, true, true]);
  });

  it('before / after: ISO dates and date-times (no zone = UTC, date-only = midnight), strictly', () => {
    const before: ValueOperator = { op: 'before', value: '2024-03-15T12:30:00Z' };
    expect(traitAnswers(before, ['2024-03-15T12:29:59.999Z', '2024-03-15T12:30:00Z', '2024-03-15', '2024-03-15T20:29:00+08:00', '2024-03-15T12:29'])).toEqual([
      true, false, true, true, true,
    ]);
    expect(traitAnswers({ op: 'after', value: '2024-03-15' }, ['2024-03-15T00:00:00.001Z', '2024-03-15', '2024-02-30', 'tomorrow', 1710460800001, null])).toEqual([
      true, false, false, false, false, false,
    ]);
  });

  it('an invalid literal instant is a definition error', () => {
    expect(() => member(trait('t', { op: 'before', value: '2024-13-45T99:99:99Z' }), profile())).toThrow(/Invalid instant/);
  });

  it('paths walk into objects and arrays (by index, negative from the end) like jsonb #>', () => {
    const traits = { address: { city: '上海', lines: ['a', 'b', 'c'] }, 'order count': 3 };
    const snapshot = profile({ traits });
    expect(member(trait('address.city', { op: 'eq', value: '上海' }), snapshot)).toBe(true);
    expect(member(trait('address.lines.1', { op: 'eq', value: 'b' }), snapshot)).toBe(true);
    expect(member(trait('address.lines.-1', { op: 'eq', value: 'c' }), snapshot)).toBe(true);
    expect(member(trait('address.lines.3', { op: 'exists' }), snapshot)).toBe(false);
    expect(member(trait('address.lines.x', { op: 'exists' }), snapshot)).toBe(false);
    expect(member(trait('address.city.x', { op: 'missing' }), snapshot)).toBe(true);
    expect(member(trait('order count', { op: 'gte', value: 3 }), snapshot)).toBe(true);
    expect(member(trait('toString', { op: 'exists' }), snapshot)).toBe(false);
  });
});

describe('relative dates', () => {
  it('within_last: (now − d, now], re-checked when the date enters or leaves', () => {
    const condition = trait('t', { op: 'within_last', duration: { amount: 7, unit: 'days' } });
    const at = (t: number) => profile({ traits: { t: new Date(t).toISOString() } });
    expect(member(condition, at(NOW))).toBe(true);
    expect(recheck(condition, at(NOW))).toBe(NOW + 7 * DAY);
    expect(member(condition, at(NOW - 7 * DAY))).toBe(false);
    expect(recheck(condition, at(NOW - 7 * DAY))).toBeNull();
    expect(member(condition, at(NOW - 7 * DAY + 1))).toBe(true);
    expect(member(condition, at(NOW - 7 * DAY + 1), NOW + 1)).toBe(false);
    expect(member(condition, at(NOW + HOUR))).toBe(false);
    expect(recheck(condition, at(NOW + HOUR))).toBe(NOW + HOUR);
    expect(member(condition, at(NOW + HOUR), NOW + HOUR)).toBe(true);
  });

  it('within_next: [now, now + d), re-checked just after the date enters or leaves', () => {
    const condition = trait('t', { op: 'within_next', duration: { amount: 2, unit: 'hours' } });
    const at = (t: number) => profile({ traits: { t: new Date(t).toISOString() } });
    expect(member(condition, at(NOW))).toBe(true);
    expect(recheck(condition, at(NOW))).toBe(NOW + 1);
    expect(member(condition, at(NOW), NOW + 1)).toBe(false);
    expect(member(condition, at(NOW + 2 * HOUR))).toBe(false);
    expect(recheck(condition, at(NOW + 2 * HOUR))).toBe(NOW + 1);
    expect(member(condition, at(NOW + 3 * HOUR))).toBe(false);
    expect(recheck(condition, at(NOW + 3 * HOUR))).toBe(NOW + HOUR + 1);
    expect(member(condition, at(NOW + 3 * HOUR), NOW + HOUR)).toBe(false);
    expect(member(condition, at(NOW + 3 * HOUR), NOW + HOUR + 1)).toBe(true);
    expect(recheck(condition, at(NOW - 1))).toBeNull();
  });

  it('anniversary_within_next: month-day from today (UTC) for d days, across the year end', () => {
    const condition = (days: number) => trait('birthday', { op: 'anniversary_within_next', duration: { amount: days, unit: 'days' } });
    const snapshot = profile({ traits: { birthday: '1990-01-02' } });
    const dec30 = Date.UTC(2024, 11, 30, 15);
    expect(member(condition(4), snapshot, dec30)).toBe(true); // Dec 30, 31, Jan 1, 2
    expect(member(condition(3), snapshot, dec30)).toBe(false);
    // Outside: it comes in on the day the window's last day reaches Jan 2.
    expect(recheck(condition(3), snapshot, dec30)).toBe(Date.UTC(2024, 11, 31));
    expect(member(condition(3), snapshot, Date.UTC(2024, 11, 31))).toBe(true);
    // Inside: it goes out the day after the birthday.
    expect(recheck(condition(4), snapshot, dec30)).toBe(Date.UTC(2025, 0, 3));
    expect(member(condition(4), snapshot, Date.UTC(2025, 0, 2, 23, 59))).toBe(true);
    expect(member(condition(4), snapshot, Date.UTC(2025, 0, 3))).toBe(false);
    // The birthday itself, late in the day, with a 1-day window.
    expect(member(condition(1), snapshot, Date.UTC(2025, 0, 2, 23, 59))).toBe(true);
    // Weeks are 7 days; any 366-day window holds every month-day and never needs a re-check.
    expect(member(trait('birthday', { op: 'anniversary_within_next', duration: { amount: 1, unit: 'weeks' } }), snapshot, Date.UTC(2024, 11, 27))).toBe(true);
    expect(member(condition(366), snapshot, Date.UTC(2025, 0, 3))).toBe(true);
    expect(recheck(condition(366), snapshot, Date.UTC(2025, 0, 3))).toBeNull();
  });

  it('anniversary_within_next: 29 February counts as 28 February in years without one', () => {
    const condition = (days: number) => trait('birthday', { op: 'anniversary_within_next', duration: { amount: days, unit: 'days' } });
    const leapling = profile({ traits: { birthday: '2000-02-29T10:00:00Z' } });
    expect(member(condition(1), leapling, Date.UTC(2025, 1, 28, 8))).toBe(true);
    expect(member(condition(1), leapling, Date.UTC(2025, 1, 27))).toBe(false);
    expect(recheck(condition(1), leapling, Date.UTC(2025, 1, 27))).toBe(Date.UTC(2025, 1, 28));
    expect(member(condition(1), leapling, Date.UTC(2024, 1, 28))).toBe(false);
    expect(member(condition(1), leapling, Date.UTC(2024, 1, 29))).toBe(true);
    expect(member(condition(2), leapling, Date.UTC(2024, 1, 28))).toBe(true);
    // A 28 February birthday in a leap year is on the 28th only.
    const feb28 = profile({ traits: { birthday: '1999-02-28' } });
    expect(member(condition(1), feb28, Date.UTC(2024, 1, 29))).toBe(false);
    expect(recheck(condition(1), feb28, Date.UTC(2024, 1, 29))).toBe(Date.UTC(2025, 1, 28));
    // A non-date is never an anniversary and needs no re-check.
    expect(member(condition(30), profile({ traits: { birthday: 'soon' } }))).toBe(false);
    expect(recheck(condition(30), profile({ traits: { birthday: 'soon' } }))).toBeNull();
  });
});

describe('profile facts', () => {
  it('identifiers, segment memberships and consents', () => {
    const snapshot = profile({
      identifierTypes: new Set(['email']),
      memberships: new Set(['vip']),
      consents: new Map([
        ['sms', true],
        ['email', false],
      ]),
    });
    expect(member({ kind: 'identifier', type: 'email' }, snapshot)).toBe(true);
    expect(member({ kind: 'identifier', type: 'phone' }, snapshot)).toBe(false);
    expect(member({ kind: 'segment', segment: 'vip' }, snapshot)).toBe(true);
    expect(member({ kind: 'segment', segment: 'churned' }, snapshot)).toBe(false);
    expect(member({ kind: 'consent', category: 'sms' }, snapshot)).toBe(true);
    expect(member({ kind: 'consent', category: 'email' }, snapshot)).toBe(false);
    expect(member({ kind: 'consent', category: 'wechat' }, snapshot)).toBe(false);
  });

  it('bucket: parseInt(first 8 hex digits of md5(salt:profileId), 16) % 100, stable', () => {
    const ids = Array.from({ length: 200 }, (_, i) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`);
    const buckets = ids.map((id) => randomBucket('exp1', id));
    for (const [i, id] of ids.entries()) {
      const hex = crypto.createHash('md5').update(`exp1:${id}`).digest('hex');
      expect(buckets[i]).toBe(parseInt(hex.slice(0, 8), 16) % 100);
      const bucket = buckets[i]!;
      const snapshot = profile({ profileId: id });
      expect(member({ kind: 'bucket', salt: 'exp1', from: bucket, to: bucket }, snapshot)).toBe(true);
      expect(member({ kind: 'bucket', salt: 'exp1', from: 0, to: 99 }, snapshot)).toBe(true);
      if (bucket > 0) expect(member({ kind: 'bucket', salt: 'exp1', from: 0, to: bucket - 1 }, snapshot)).toBe(false);
    }
    // Spread over the range, and another salt shuffles the profiles.
    expect(new Set(buckets).size).toBeGreaterThan(70);
    expect(ids.map((id) => randomBucket('实验', id))).not.toEqual(buckets);
    expect(randomBucket('', 'abc')).toBe(parseInt(crypto.createHash('md5').update(':abc').digest('hex').slice(0, 8), 16) % 100);
  });
});

describe('event matching', () => {
  it('track by event name, page/screen by name (absent: every view), filters on properties and context', () => {
    const events = [
      event({ timestamp: NOW - HOUR, type: 'track', event: 'Order Completed', properties: { revenue: 10 }, context: { channel: 'app' } }),
      event({ timestamp: NOW - HOUR, type: 'page', event: null, name: 'Home' }),
      event({ timestamp: NOW - HOUR, type: 'screen', event: null, name: 'Cart' }),
      event({ timestamp: NOW - HOUR, type: 'identify', event: null, name: null }),
    ];
    const snapshot = profile({ events });
    const count = (match: EventMatch) => onOrders({ kind: 'count', test: { op: 'eq', value: 1 } }, undefined, match);
    expect(member(count({ type: 'track', name: 'Order Completed', filters: [] }), snapshot)).toBe(true);
    expect(member(count({ type: 'page', filters: [] }), snapshot)).toBe(true);
    expect(member(count({ type: 'page', name: 'Home', filters: [] }), snapshot)).toBe(true);
    expect(member(count({ type: 'screen', name: 'Home', filters: [] }), snapshot)).toBe(false);
    expect(member(count({ type: 'track', name: 'Order Completed', filters: [{ property: 'revenue', op: 'gt', value: 5 }] }), snapshot)).toBe(true);
    expect(member(count({ type: 'track', name: 'Order Completed', filters: [{ property: 'context.channel', op: 'eq', value: 'app' }] }), snapshot)).toBe(true);
    const missingChannel: PropertyFilter = { property: 'channel', op: 'missing' };
    expect(member(count({ type: 'track', name: 'Order Completed', filters: [missingChannel] }), snapshot)).toBe(true);
    expect(member(count({ type: 'track', name: 'Order Completed', filters: [{ property: 'revenue', op: 'gt', value: 50 }] }), snapshot)).toBe(false);
  });
});

describe('event measures', () => {
  it('a last window holds timestamp > now − d: out exactly at timestamp + d; future events count', () => {
    const exists = onOrders({ kind: 'exists' }, last(7));
    expect(member(exists, profile({ events: [order(NOW - 7 * DAY)] }))).toBe(false);
    expect(member(exists, profile({ events: [order(NOW - 7 * DAY + 1)] }))).toBe(true);
    expect(recheck(exists, profile({ events: [order(NOW - 7 * DAY + 1)] }))).toBe(NOW + 1);
    expect(member(exists, profile({ events: [order(NOW + DAY)] }))).toBe(true);
    // exists stays true until the latest event leaves.
    const snapshot = profile({ events: [order(NOW - 5 * DAY), order(NOW - DAY), order(NOW - 3 * DAY)] });
    expect(recheck(exists, snapshot)).toBe(NOW + 6 * DAY);
    expect(member(exists, snapshot, NOW + 6 * DAY - 1)).toBe(true);
    expect(member(exists, snapshot, NOW + 6 * DAY)).toBe(false);
  });

  it('a profile with no matching events needs no re-check', () => {
    const snapshot = profile({ events: [event({ timestamp: NOW - HOUR, event: 'Product Viewed' })] });
    for (const measure of [{ kind: 'exists' }, { kind: 'count', test: { op: 'gte', value: 1 } }] as Measure[]) {
      expect(evaluateSegment(onOrders(measure, last(7)), snapshot, NOW)).toEqual({ member: false, recheckAt: null });
    }
    expect(evaluateSegment(onOrders({ kind: 'count', test: { op: 'eq', value: 0 } }, last(7)), snapshot, NOW)).toEqual({ member: true, recheckAt: null });
  });

  it('count: re-checked at the departure that changes the answer, not at every departure', () => {
    const times = [NOW - 6 * DAY, NOW - 5 * DAY, NOW - 4 * DAY, NOW - 2 * DAY, NOW - DAY];
    const snapshot = profile({ events: times.map((t) => order(t)) });
    const atLeast3 = onOrders({ kind: 'count', test: { op: 'gte', value: 3 } }, last(7));
    expect(member(atLeast3, snapshot)).toBe(true);
    // 5 → 4 (day 1) → 3 (day 2) → 2 (day 3): out when the third-oldest leaves.
    expect(recheck(atLeast3, snapshot)).toBe(NOW + 3 * DAY);
    expect(member(atLeast3, snapshot, NOW + 3 * DAY - 1)).toBe(true);
    expect(member(atLeast3, snapshot, NOW + 3 * DAY)).toBe(false);
    const under2 = onOrders({ kind: 'count', test: { op: 'lt', value: 2 } }, last(7));
    expect(member(under2, snapshot)).toBe(false);
    expect(recheck(under2, snapshot)).toBe(NOW + 5 * DAY);
    // Events of one timestamp leave together.
    const tied = profile({ events: [order(NOW - DAY), order(NOW - DAY), order(NOW - HOUR)] });
    expect(recheck(onOrders({ kind: 'count', test: { op: 'eq', value: 3 } }, last(7)), tied)).toBe(NOW + 6 * DAY);
    expect(recheck(onOrders({ kind: 'count', test: { op: 'eq', value: 1 } }, last(7)), tied)).toBe(NOW + 6 * DAY);
    // 3 → 1 → 0: never 2, so a count = 2 test has nothing to wait for.
    expect(evaluateSegment(onOrders({ kind: 'count', test: { op: 'eq', value: 2 } }, last(7)), tied, NOW)).toEqual({ member: false, recheckAt: null });
  });

  it('sum: numbers and decimal strings only; sum of none is 0', () => {
    const snapshot = profile({
      events: [
        order(NOW - DAY, { revenue: 100 }),
        order(NOW - DAY, { revenue: '250.5' }),
        order(NOW - DAY, { revenue: '12abc' }),
        order(NOW - DAY, { revenue: null }),
        order(NOW - DAY, {}),
      ],
    });
    const sum = (test: Extract<Measure, { kind: 'count' }>['test']) => onOrders({ kind: 'sum', property: 'revenue', test }, last(30));
    expect(member(sum({ op: 'eq', value: 350.5 }), snapshot)).toBe(true);
    expect(member(sum({ op: 'eq', value: 0 }), profile())).toBe(true);
    expect(member(sum({ op: 'lt', value: 1 }), profile({ events: [order(NOW - DAY, { revenue: 'n/a' })] }))).toBe(true);
    expect(member(sum({ op: 'neq', value: 0 }), profile())).toBe(false);
  });

  it('sum: re-checked when the remaining sum crosses the test, not before', () => {
    const snapshot = profile({ events: [order(NOW - 6 * DAY, { revenue: 100 }), order(NOW - 5 * DAY, { revenue: 0 }), order(NOW - 2 * DAY, { revenue: 450 })] });
    const over500 = onOrders({ kind: 'sum', property: 'revenue', test: { op: 'gt', value: 500 } }, last(7));
    expect(member(over500, snapshot)).toBe(true);
    expect(recheck(over500, snapshot)).toBe(NOW + DAY);
    const over400 = onOrders({ kind: 'sum', property: 'revenue', test: { op: 'gt', value: 400 } }, last(7));
    expect(recheck(over400, snapshot)).toBe(NOW + 5 * DAY);
  });

  it('avg/min/max of none are absent: every test is false, neq included', () => {
    const none = profile({ events: [order(NOW - DAY, { revenue: 'free' })] });
    for (const kind of ['avg', 'min', 'max'] as const) {
      for (const test of [
        { op: 'neq', value: 1 },
        { op: 'eq', value: 0 },
        { op: 'lt', value: 1e9 },
        { op: 'gte', value: -1e9 },
        { op: 'between', low: -1e9, high: 1e9 },
      ] as const) {
        expect(member(onOrders({ kind, property: 'revenue', test }), none), `${kind} ${test.op}`).toBe(false);
        expect(member({ kind: 'not', condition: onOrders({ kind, property: 'revenue', test }) }, none)).toBe(true);
      }
    }
  });

  it('avg/min/max over the numeric values', () => {
    const snapshot = profile({ events: [order(NOW - DAY, { revenue: 10 }), order(NOW - DAY, { revenue: '2.5' }), order(NOW - DAY, { revenue: 'x' }), order(NOW, { revenue: 3 })] });
    expect(member(onOrders({ kind: 'avg', property: 'revenue', test: { op: 'eq', value: 5.166666666666667 } }), snapshot)).toBe(true);
    expect(member(onOrders({ kind: 'avg', property: 'revenue', test: { op: 'between', low: 5, high: 5.2 } }), snapshot)).toBe(true);
    expect(member(onOrders({ kind: 'min', property: 'revenue', test: { op: 'eq', value: 2.5 } }), snapshot)).toBe(true);
    expect(member(onOrders({ kind: 'max', property: 'revenue', test: { op: 'eq', value: 10 } }), snapshot)).toBe(true);
    // max over a 7d window changes when the 10 leaves, min when the 2.5 does (same moment here).
    const maxTest = onOrders({ kind: 'max', property: 'revenue', test: { op: 'gte', value: 10 } }, last(7));
    expect(recheck(maxTest, snapshot)).toBe(NOW + 6 * DAY);
    const minTest = onOrders({ kind: 'min', property: 'revenue', test: { op: 'lte', value: 3 } }, last(7));
    expect(recheck(minTest, snapshot)).toBe(NOW + 7 * DAY);
  });

  it('distinct counts present scalar values; a number and a string never equal', () => {
    const snapshot = profile({
      events: [
        order(NOW - DAY, { category: 'shoes' }),
        order(NOW - DAY, { category: 'shoes' }),
        order(NOW - DAY, { category: 5 }),
        order(NOW - DAY, { category: '5' }),
        order(NOW - DAY, { category: 5.0 }),
        order(NOW - DAY, { category: true }),
        order(NOW - DAY, { category: null }),
        order(NOW - DAY, { category: ['shoes'] }),
        order(NOW - DAY, {}),
      ],
    });
    expect(member(onOrders({ kind: 'distinct', property: 'category', test: { op: 'eq', value: 4 } }), snapshot)).toBe(true);
    expect(member(onOrders({ kind: 'distinct', property: 'category', test: { op: 'eq', value: 0 } }), profile())).toBe(true);
  });

  it('first/last time and value: ordered by (timestamp, seq), ties broken by seq', () => {
    const t = NOW - 2 * DAY;
    const snapshot = profile({
      events: [order(t, { sku: 'b' }, 20), order(t, { sku: 'a' }, 10), order(t + HOUR, { sku: 'c' }, 5), order(t + HOUR, {}, 6)],
    });
    expect(member(onOrders({ kind: 'first_value', property: 'sku', test: { op: 'eq', value: 'a' } }), snapshot)).toBe(true);
    // The latest event (seq 6) has no sku: the value is absent, so neq holds and exists does not.
    expect(member(onOrders({ kind: 'last_value', property: 'sku', test: { op: 'exists' } }), snapshot)).toBe(false);
    expect(member(onOrders({ kind: 'last_value', property: 'sku', test: { op: 'neq', value: 'c' } }), snapshot)).toBe(true);
    expect(member(onOrders({ kind: 'first_time', test: { op: 'before', value: new Date(t + 1).toISOString() } }), snapshot)).toBe(true);
    expect(member(onOrders({ kind: 'last_time', test: { op: 'after', value: new Date(t + HOUR - 1).toISOString() } }), snapshot)).toBe(true);
    expect(member(onOrders({ kind: 'last_time', test: { op: 'after', value: new Date(t + HOUR).toISOString() } }), snapshot)).toBe(false);
    // No events: the value is absent (neq true), the time is absent (every test false).
    expect(member(onOrders({ kind: 'first_value', property: 'sku', test: { op: 'neq', value: 'a' } }), profile())).toBe(true);
    expect(member(onOrders({ kind: 'first_time', test: { op: 'before', value: '2100-01-01' } }), profile())).toBe(false);
  });

  it('last_time within_last: re-checked when the latest event gets too old', () => {
    const snapshot = profile({ events: [order(NOW - 3 * DAY), order(NOW - 5 * DAY)] });
    const recent = onOrders({ kind: 'last_time', test: { op: 'within_last', duration: { amount: 7, unit: 'days' } } });
    expect(evaluateSegment(recent, snapshot, NOW)).toEqual({ member: true, recheckAt: NOW + 4 * DAY });
    expect(member(recent, snapshot, NOW + 4 * DAY)).toBe(false);
    // Inside a 30-day window the first value changes at each departure.
    const firstRecent = onOrders({ kind: 'first_time', test: { op: 'within_last', duration: { amount: 4, unit: 'days' } } }, last(30));
    expect(evaluateSegment(firstRecent, snapshot, NOW)).toEqual({ member: false, recheckAt: NOW + 25 * DAY });
  });

  it('range windows hold from ≤ timestamp < to and never need a re-check', () => {
    const window: Window = { kind: 'range', from: '2024-06-01', to: '2024-06-10T00:00:00Z' };
    const count = (n: number) => onOrders({ kind: 'count', test: { op: 'eq', value: n } }, window);
    const snapshot = profile({
      events: [order(Date.UTC(2024, 5, 1)), order(Date.UTC(2024, 5, 10)), order(Date.UTC(2024, 5, 9, 23, 59, 59, 999)), order(Date.UTC(2024, 4, 31, 23))],
    });
    expect(evaluateSegment(count(2), snapshot, NOW)).toEqual({ member: true, recheckAt: null });
    expect(member(onOrders({ kind: 'count', test: { op: 'eq', value: 3 } }, { kind: 'range', from: '2024-06-01' }), snapshot)).toBe(true);
    expect(member(onOrders({ kind: 'count', test: { op: 'eq', value: 2 } }, { kind: 'range', to: '2024-06-01T00:00:00.001Z' }), snapshot)).toBe(true);
  });

  it('a time-dependent filter re-checks when an event starts or stops matching', () => {
    const match: EventMatch = { type: 'track', name: 'Order Completed', filters: [{ property: 'delivery', op: 'within_next', duration: { amount: 1, unit: 'days' } }] };
    const snapshot = profile({ events: [order(NOW - DAY, { delivery: new Date(NOW + 3 * DAY).toISOString() })] });
    const condition = onOrders({ kind: 'exists' }, undefined, match);
    expect(evaluateSegment(condition, snapshot, NOW)).toEqual({ member: false, recheckAt: NOW + 2 * DAY + 1 });
    expect(member(condition, snapshot, NOW + 2 * DAY + 1)).toBe(true);
  });
});

describe('sequences', () => {
  const cart: EventMatch = { type: 'track', name: 'Product Added', filters: [] };
  const buy: EventMatch = ORDERS;
  const added = (t: number, seq?: number) => event({ timestamp: t, event: 'Product Added', ...(seq === undefined ? {} : { seq }) });
  const sequence = (negated: boolean, window?: Window): Condition => ({
    kind: 'sequence',
    first: cart,
    then: buy,
    negated,
    within: { amount: 1, unit: 'days' },
    ...(window ? { window } : {}),
  });

  it('A then B within: B later in (timestamp, seq) order, at most A + within', () => {
    const a = NOW - 3 * DAY;
    expect(member(sequence(false), profile({ events: [added(a), order(a + DAY)] }))).toBe(true);
    expect(member(sequence(false), profile({ events: [added(a), order(a + DAY + 1)] }))).toBe(false);
    expect(member(sequence(false), profile({ events: [order(a - 1), added(a)] }))).toBe(false);
    // Same timestamp: seq decides the order.
    expect(member(sequence(false), profile({ events: [added(a, 100), order(a, {}, 101)] }))).toBe(true);
    expect(member(sequence(false), profile({ events: [order(a, {}, 100), added(a, 101)] }))).toBe(false);
  });

  it('a same-name sequence needs two events', () => {
    const again: Condition = { kind: 'sequence', first: buy, then: buy, negated: false, within: { amount: 7, unit: 'days' } };
    expect(member(again, profile({ events: [order(NOW - DAY)] }))).toBe(false);
    expect(member(again, profile({ events: [order(NOW - 2 * DAY), order(NOW - DAY)] }))).toBe(true);
    const notAgain: Condition = { ...again, negated: true };
    expect(member(notAgain, profile({ events: [order(NOW - 8 * DAY)] }))).toBe(true);
    // The later order answers the earlier, but its own wait is not over yet.
    const twice = profile({ events: [order(NOW - 9 * DAY), order(NOW - 3 * DAY)] });
    expect(evaluateSegment(notAgain, twice, NOW)).toEqual({ member: false, recheckAt: NOW + 4 * DAY });
  });

  it('the window applies to the first event only; non-negated re-checks when the last answered A leaves', () => {
    const a = NOW - 6 * DAY;
    const snapshot = profile({ events: [added(a), order(a + HOUR), added(NOW - 10 * DAY), order(NOW - 10 * DAY + HOUR)] });
    expect(evaluateSegment(sequence(false, last(7)), snapshot, NOW)).toEqual({ member: true, recheckAt: a + 7 * DAY });
    // B outside the window still answers an A inside it.
    const edge = profile({ events: [added(NOW - 7 * DAY + MINUTE), order(NOW + HOUR)] });
    expect(member(sequence(false, last(7)), edge)).toBe(false);
    const edge2 = profile({ events: [added(NOW - 7 * DAY - MINUTE), order(NOW - 7 * DAY + MINUTE)] });
    expect(member(sequence(false, last(7)), edge2)).toBe(false);
  });

  it('negated (abandoned cart): false while waiting, true once A + within has passed with no B', () => {
    const a = NOW - 2 * HOUR;
    const abandoned = profile({ events: [added(a)] });
    expect(evaluateSegment(sequence(true), abandoned, NOW)).toEqual({ member: false, recheckAt: a + DAY });
    expect(member(sequence(true), abandoned, a + DAY - 1)).toBe(false);
    expect(evaluateSegment(sequence(true), abandoned, a + DAY)).toEqual({ member: true, recheckAt: null });
    const bought = profile({ events: [added(a), order(a + DAY)] });
    expect(evaluateSegment(sequence(true), bought, a + 2 * DAY)).toEqual({ member: false, recheckAt: null });
    // A B before A does not answer it.
    expect(member(sequence(true), profile({ events: [order(a - 1), added(a)] }), a + DAY)).toBe(true);
  });

  it('negated with a last window: counts from A + within until A leaves the window', () => {
    const a = NOW - 2 * DAY;
    const snapshot = profile({ events: [added(a)] });
    expect(evaluateSegment(sequence(true, last(7)), snapshot, NOW)).toEqual({ member: true, recheckAt: a + 7 * DAY });
    expect(member(sequence(true, last(7)), snapshot, a + 7 * DAY)).toBe(false);
    // Two carts: the union of their intervals decides; the answer holds across the overlap.
    const two = profile({ events: [added(a), added(a + 3 * DAY)] });
    expect(evaluateSegment(sequence(true, last(7)), two, NOW)).toEqual({ member: true, recheckAt: a + 10 * DAY });
    // A window shorter than the wait never holds.
    expect(evaluateSegment(sequence(true, last(12, 'hours')), snapshot, a + 2 * HOUR)).toEqual({ member: false, recheckAt: null });
  });
});

describe('and / or / not', () => {
  const expiring = onOrders({ kind: 'exists' }, last(7));
  const snapshot = profile({ events: [order(NOW - DAY)], identifierTypes: new Set(['email']) });
  const hasEmail: Condition = { kind: 'identifier', type: 'email' };
  const hasPhone: Condition = { kind: 'identifier', type: 'phone' };

  it('combine the answers', () => {
    expect(member({ kind: 'and', conditions: [expiring, hasEmail] }, snapshot)).toBe(true);
    expect(member({ kind: 'and', conditions: [expiring, hasPhone] }, snapshot)).toBe(false);
    expect(member({ kind: 'or', conditions: [hasPhone, expiring] }, snapshot)).toBe(true);
    expect(member({ kind: 'not', condition: expiring }, snapshot)).toBe(false);
  });

  it('re-check only when a change could matter', () => {
    expect(recheck({ kind: 'and', conditions: [expiring, hasEmail] }, snapshot)).toBe(NOW + 6 * DAY);
    // Fixed false in an and, fixed true in an or: nothing can change.
    expect(recheck({ kind: 'and', conditions: [expiring, hasPhone] }, snapshot)).toBeNull();
    expect(recheck({ kind: 'or', conditions: [expiring, hasEmail] }, snapshot)).toBeNull();
    expect(recheck({ kind: 'not', condition: expiring }, snapshot)).toBe(NOW + 6 * DAY);
    // An or held by two expiring children stays true until the later one expires.
    const later = onOrders({ kind: 'exists' }, last(30));
    expect(recheck({ kind: 'or', conditions: [expiring, later] }, snapshot)).toBe(NOW + 29 * DAY);
    // An and failing on two children cannot turn true before both have changed.
    const withoutEvents = profile();
    const birthdaySoon = trait('birthday', { op: 'within_next', duration: { amount: 1, unit: 'days' } });
    const soon = profile({ traits: { birthday: new Date(NOW + 3 * DAY).toISOString() } });
    expect(recheck({ kind: 'and', conditions: [birthdaySoon, { kind: 'not', condition: expiring }] }, soon)).toBe(NOW + 2 * DAY + 1);
    expect(recheck({ kind: 'and', conditions: [birthdaySoon, expiring] }, withoutEvents)).toBeNull();
  });
});

describe('caching', () => {
  it('the same snapshot serves many conditions, and the same condition many snapshots', () => {
    const shared = profile({ events: [order(NOW - DAY, { revenue: 5 }), event({ timestamp: NOW - HOUR, event: 'App Opened' })] });
    const opened = onOrders({ kind: 'exists' }, last(7), { type: 'track', name: 'App Opened', filters: [] });
    const spent = onOrders({ kind: 'sum', property: 'revenue', test: { op: 'eq', value: 5 } });
    expect(member(opened, shared)).toBe(true);
    expect(member(spent, shared)).toBe(true);
    expect(member(opened, profile({ events: [order(NOW - DAY)] }))).toBe(false);
    expect(member(spent, profile({ events: [order(NOW - DAY, { revenue: 6 })] }))).toBe(false);
    // The events array of a snapshot is read in any order.
    const reversed = profile({ events: [...shared.events].reverse() });
    expect(member(spent, reversed)).toBe(true);
  });
});
