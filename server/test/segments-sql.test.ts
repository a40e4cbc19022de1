import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseInstant } from '../src/ingest/normalize.ts';
import type { Condition, EventMatch, Measure, ValueOperator, Window } from '../src/segments/ast.ts';
import type { ProfileEvent } from '../src/segments/snapshot.ts';
import { compileSegmentPredicate, compileSegmentQuery } from '../src/segments/sql/compile.ts';
import { postgresPattern } from '../src/segments/sql/regex.ts';
import { anniversaryDays, instantOf, monthDayOf, valueTest, type Scope } from '../src/segments/sql/values.ts';
import { compileValueTest } from '../src/segments/evaluate/values.ts';
import { createWorkspace, loadProfiles, type TestWorkspace } from './segments-sql-support.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';

const NOW = Date.UTC(2024, 5, 15, 12); // 2024-06-15T12:00:00Z
const HOUR = 3_600_000;
const DAY = 86_400_000;

const NAMES = ['ann', 'bob', 'cat', 'dan', 'eve'] as const;
type Name = (typeof NAMES)[number];
const ids = Object.fromEntries(NAMES.map((name) => [name, crypto.randomUUID()])) as Record<Name, string>;
const names = new Map(NAMES.map((name) => [ids[name], name]));
const segmentIds = new Map([['vip', crypto.randomUUID()]]);

function event(seq: number, at: number, fields: Partial<ProfileEvent>): ProfileEvent {
  return { seq, type: 'track', event: null, name: null, timestamp: at, properties: {}, context: null, ...fields };
}
const order = (seq: number, at: number, properties: Record<string, unknown>) => event(seq, at, { event: 'Order Completed', properties });

let t: TestDatabase;
let workspace: TestWorkspace;

beforeAll(async () => {
  t = await createTestDatabase();
  workspace = await createWorkspace(t.db, 'segments-sql');
  await loadProfiles(
    t.db,
    workspace,
    [
      {
        id: ids.ann,
        traits: {
          city: '上海',
          age: 30,
          score: '10',
          vip: true,
          tags: ['a', 'shoes'],
          address: { city: '北京', zip: '100000' },
          birthday: '1990-06-20',
          signup: '2024-06-10T08:00:00+08:00',
          renewal: '2024-06-15T12:00:00Z',
          nickname: null,
          big: '123456789012345678901234567890',
        },
        identifiers: [{ type: 'email', value: 'ann@example.com' }],
        consents: { sms: true },
        memberships: [segmentIds.get('vip')!],
        events: [
          order(101, NOW - DAY, { revenue: 100, category: 'shoes' }),
          order(102, NOW - 10 * DAY, { revenue: '50.5', category: 'bags' }),
          order(103, NOW - 100 * DAY, { revenue: 'abc', category: 1 }),
          event(104, NOW - 2 * HOUR, { type: 'page', name: 'Home', context: { page: { path: '/' } } }),
          event(105, NOW - 3 * DAY, { event: 'Product Added', properties: { sku: 'x' } }),
        ],
      },
      {
        id: ids.bob,
        traits: {
          city: '北京',
          age: '25',
          score: 10.0,
          vip: false,
          tags: 'shoes and socks',
          birthday: '2000-02-29',
          signup: '2024-02-30',
          renewal: '2024-06-22T12:00:00Z',
        },
        identifiers: [{ type: 'email', value: 'bob@example.com', unbound: true }],
        consents: { sms: false },
        events: [
          order(201, NOW - 7 * DAY, { revenue: 20, category: 'shoes' }),
          order(202, NOW - 7 * DAY + 1, { revenue: 1, category: '1' }),
          event(203, NOW - 2 * DAY, { event: 'Product Added' }),
          event(204, NOW - HOUR, { type: 'screen', name: 'Cart' }),
        ],
      },
      {
        id: ids.cat,
        traits: {
          city: '上海市',
          age: 'abc',
          score: ' 10',
          birthday: '0099-06-16',
          huge: '1e400',
          tiny: '-1e-400',
          long: `0.${'0'.repeat(400)}1`,
        },
        identifiers: [{ type: 'phone', value: '+8613800000000' }],
        events: [
          // Same timestamp: (timestamp, seq) order puts 301 first.
          event(302, NOW - 5 * DAY, { event: 'Tie', properties: { v: 'second' } }),
          event(301, NOW - 5 * DAY, { event: 'Tie', properties: { v: 'first' } }),
          // In the future: a `last` window has no upper bound.
          order(303, NOW + DAY, { revenue: 5 }),
        ],
      },
      { id: ids.dan },
      { id: ids.eve, mergedInto: ids.ann, traits: { city: '上海' }, consents: { sms: true }, events: [order(501, NOW - DAY, { revenue: 1000 })] },
    ],
    [order(601, NOW - DAY, { revenue: 1000 })],
  );
});

afterAll(async () => t.drop());

async function members(condition: Condition, now = NOW): Promise<Name[]> {
  const query = compileSegmentQuery(condition, { workspaceId: workspace.workspaceId, now: new Date(now), segmentIds });
  const { rows } = await t.db.query<{ profile_id: string }>(query.text, query.values);
  const found = rows.map((row) => names.get(row.profile_id)!);
  expect(new Set(found).size).toBe(found.length);
  return found.sort();
}

const trait = (path: string, operator: ValueOperator): Condition => ({ kind: 'trait', trait: path, ...operator }) as Condition;
const match = (name: string, filters: EventMatch['filters'] = []): EventMatch => ({ type: 'track', name, filters });
const ev = (name: string, measure: Measure, window?: Window, filters: EventMatch['filters'] = []): Condition => ({
  kind: 'event',
  match: match(name, filters),
  ...(window ? { window } : {}),
  measure,
});
const last = (amount: number, unit: 'minutes' | 'hours' | 'days' | 'weeks' = 'days'): Window => ({ kind: 'last', duration: { amount, unit } });
const iso = (ms: number) => new Date(ms).toISOString();
const not = (condition: Condition): Condition => ({ kind: 'not', condition });
const and = (...conditions: Condition[]): Condition => ({ kind: 'and', conditions });
const or = (...conditions: Condition[]): Condition => ({ kind: 'or', conditions });

describe('trait conditions', () => {
  it('compare strings exactly and numbers as doubles, numeric strings included', async () => {
    expect(await members(trait('city', { op: 'eq', value: '上海' }))).toEqual(['ann']);
    expect(await members(trait('age', { op: 'eq', value: 25 }))).toEqual(['bob']);
    expect(await members(trait('age', { op: 'eq', value: '25' }))).toEqual(['bob']);
    expect(await members(trait('age', { op: 'eq', value: '30' }))).toEqual([]);
    expect(await members(trait('score', { op: 'eq', value: 10 }))).toEqual(['ann', 'bob']);
    expect(await members(trait('age', { op: 'gt', value: 26 }))).toEqual(['ann']);
    expect(await members(trait('age', { op: 'gte', value: 25 }))).toEqual(['ann', 'bob']);
    expect(await members(trait('age', { op: 'lt', value: 26 }))).toEqual(['bob']);
    expect(await members(trait('age', { op: 'lte', value: 30 }))).toEqual(['ann', 'bob']);
    expect(await members(trait('age', { op: 'between', low: 25, high: 30 }))).toEqual(['ann', 'bob']);
    expect(await members(trait('age', { op: 'between', low: 30, high: 25 }))).toEqual([]);
    expect(await members(trait('vip', { op: 'eq', value: true }))).toEqual(['ann']);
    expect(await members(trait('vip', { op: 'eq', value: 'true' }))).toEqual([]);
    expect(await members(trait('big', { op: 'eq', value: 1.2345678901234568e29 }))).toEqual(['ann']);
  });

  it('read out-of-range numeric strings like the evaluator: too large is not a number, too small is 0', async () => {
    expect(await members(trait('huge', { op: 'gt', value: 0 }))).toEqual([]);
    expect(await members(trait('huge', { op: 'neq', value: 0 }))).toEqual(['ann', 'bob', 'cat', 'dan']);
    expect(await members(trait('tiny', { op: 'eq', value: 0 }))).toEqual(['cat']);
    expect(await members(trait('long', { op: 'eq', value: 0 }))).toEqual(['cat']);
  });

  it('hold neq and not_in for absent values (and JSON null), and nothing else', async () => {
    expect(await members(trait('city', { op: 'neq', value: '上海' }))).toEqual(['bob', 'cat', 'dan']);
    expect(await members(trait('city', { op: 'in', values: ['北京', 30, true] }))).toEqual(['bob']);
    expect(await members(trait('city', { op: 'not_in', values: ['北京', '上海'] }))).toEqual(['cat', 'dan']);
    expect(await members(trait('vip', { op: 'neq', value: true }))).toEqual(['bob', 'cat', 'dan']);
    expect(await members(trait('nickname', { op: 'exists' }))).toEqual([]);
    expect(await members(trait('nickname', { op: 'missing' }))).toEqual(['ann', 'bob', 'cat', 'dan']);
    expect(await members(trait('city', { op: 'exists' }))).toEqual(['ann', 'bob', 'cat']);
    expect(await members(trait('nickname', { op: 'neq', value: 'x' }))).toEqual(['ann', 'bob', 'cat', 'dan']);
    expect(await members(trait('nickname', { op: 'lt', value: 1 }))).toEqual([]);
  });

  it('match strings: contains (strings and arrays), starts/ends with, regular expressions', async () => {
    expect(await members(trait('tags', { op: 'contains', value: 'shoes' }))).toEqual(['ann', 'bob']);
    expect(await members(trait('tags', { op: 'contains', value: 'sho' }))).toEqual(['bob']);
    expect(await members(trait('city', { op: 'starts_with', value: '上海' }))).toEqual(['ann', 'cat']);
    expect(await members(trait('city', { op: 'ends_with', value: '市' }))).toEqual(['cat']);
    expect(await members(trait('age', { op: 'matches', pattern: '^\\d+$' }))).toEqual(['bob']);
    expect(await members(trait('score', { op: 'matches', pattern: '\\s' }))).toEqual(['cat']);
    expect(await members(trait('city', { op: 'matches', pattern: '^上.$' }))).toEqual(['ann']);
    expect(await members(trait('city', { op: 'contains', value: 'a\u0000' }))).toEqual([]);
  });

  it('walk into objects and arrays', async () => {
    expect(await members(trait('address.city', { op: 'eq', value: '北京' }))).toEqual(['ann']);
    expect(await members(trait('address.city', { op: 'neq', value: '北京' }))).toEqual(['bob', 'cat', 'dan']);
    expect(await members(trait('tags.0', { op: 'eq', value: 'a' }))).toEqual(['ann']);
    expect(await members(trait('tags.-1', { op: 'eq', value: 'shoes' }))).toEqual(['ann']);
    expect(await members(trait('city.x', { op: 'missing' }))).toEqual(['ann', 'bob', 'cat', 'dan']);
  });

  it('read dates as parseInstant does, with offsets, dates alone and impossible dates', async () => {
    // ann's signup is 2024-06-10T00:00:00Z; bob's is 30 February (not a date).
    expect(await members(trait('signup', { op: 'before', value: '2024-06-10T00:00:00Z' }))).toEqual([]);
    expect(await members(trait('signup', { op: 'after', value: '2024-06-09T23:59:59.999Z' }))).toEqual(['ann']);
    expect(await members(trait('signup', { op: 'before', value: '2030-01-01' }))).toEqual(['ann']);
    expect(await members(trait('birthday', { op: 'before', value: '1995-01-01' }))).toEqual(['ann']);
    expect(await members(trait('signup', { op: 'within_last', duration: { amount: 7, unit: 'days' } }))).toEqual(['ann']);
    expect(await members(trait('signup', { op: 'within_last', duration: { amount: 5, unit: 'days' } }))).toEqual([]);
    // within_next is [now, now + d): ann's renewal is now, bob's now + 7d.
    expect(await members(trait('renewal', { op: 'within_next', duration: { amount: 7, unit: 'days' } }))).toEqual(['ann']);
    expect(await members(trait('renewal', { op: 'within_last', duration: { amount: 1, unit: 'minutes' } }))).toEqual(['ann']);
  });

  it('find anniversaries, 29 February on 28 February of other years', async () => {
    const anniversary = (amount: number): Condition => trait('birthday', { op: 'anniversary_within_next', duration: { amount, unit: 'days' } });
    expect(await members(anniversary(5))).toEqual([]);
    expect(await members(anniversary(6))).toEqual(['ann']);
    expect(await members(anniversary(1), Date.UTC(2023, 1, 28, 23))).toEqual(['bob']);
    expect(await members(anniversary(1), Date.UTC(2024, 1, 28, 23))).toEqual([]);
    expect(await members(anniversary(2), Date.UTC(2024, 1, 28, 23))).toEqual(['bob']);
    expect(await members(trait('birthday', { op: 'anniversary_within_next', duration: { amount: 60, unit: 'weeks' } }))).toEqual(['ann', 'bob']);
    expect(anniversaryDays(Date.UTC(2023, 1, 27), 3)).toEqual(['02-27', '02-28', '02-29', '03-01']);
    expect(anniversaryDays(Date.UTC(2024, 1, 27), 2)).toEqual(['02-27', '02-28']);
  });

  it('merge several trait conditions into one scan without changing their meaning', async () => {
    expect(await members(and(trait('city', { op: 'neq', value: '上海' }), trait('vip', { op: 'neq', value: true })))).toEqual(['bob', 'cat', 'dan']);
    expect(await members(or(trait('city', { op: 'eq', value: '上海' }), trait('age', { op: 'eq', value: 25 })))).toEqual(['ann', 'bob']);
    expect(await members(not(or(trait('city', { op: 'eq', value: '上海' }), trait('age', { op: 'eq', value: 25 }))))).toEqual(['cat', 'dan']);
    expect(await members(or(trait('nickname', { op: 'missing' }), trait('city', { op: 'eq', value: 'x' })))).toEqual(['ann', 'bob', 'cat', 'dan']);
  });
});

describe('event conditions', () => {
  it('count events inside `last` windows: an event leaves exactly at timestamp + d, future events stay', async () => {
    expect(await members(ev('Order Completed', { kind: 'exists' }, last(7)))).toEqual(['ann', 'bob', 'cat']);
    expect(await members(ev('Order Completed', { kind: 'count', test: { op: 'eq', value: 1 } }, last(7)))).toEqual(['ann', 'bob', 'cat']);
    expect(await members(ev('Order Completed', { kind: 'count', test: { op: 'eq', value: 2 } }, last(7)), NOW - 1)).toEqual(['bob']);
    expect(await members(ev('Order Completed', { kind: 'count', test: { op: 'gte', value: 3 } }))).toEqual(['ann']);
  });

  it('include profiles without events when the test holds for zero', async () => {
    expect(await members(ev('Order Completed', { kind: 'count', test: { op: 'eq', value: 0 } }, last(7)))).toEqual(['dan']);
    expect(await members(ev('Order Completed', { kind: 'count', test: { op: 'lt', value: 2 } }, last(30)))).toEqual(['cat', 'dan']);
    expect(await members(ev('Order Completed', { kind: 'count', test: { op: 'between', low: 0, high: 1 } }))).toEqual(['cat', 'dan']);
    expect(await members(not(ev('Order Completed', { kind: 'exists' }, last(7))))).toEqual(['dan']);
    expect(await members(ev('Order Completed', { kind: 'sum', property: 'revenue', test: { op: 'eq', value: 0 } }))).toEqual(['dan']);
    expect(await members(ev('Order Completed', { kind: 'distinct', property: 'category', test: { op: 'eq', value: 0 } }))).toEqual(['cat', 'dan']);
  });

  it('aggregate numeric properties only (numeric strings count, others are skipped)', async () => {
    // Revenues: ann 100 + "50.5" (+ "abc"), bob 20 + 1, cat 5.
    expect(await members(ev('Order Completed', { kind: 'sum', property: 'revenue', test: { op: 'eq', value: 150.5 } }))).toEqual(['ann']);
    expect(await members(ev('Order Completed', { kind: 'sum', property: 'revenue', test: { op: 'between', low: 5, high: 21 } }))).toEqual(['bob', 'cat']);
    expect(await members(ev('Order Completed', { kind: 'avg', property: 'revenue', test: { op: 'eq', value: 75.25 } }))).toEqual(['ann']);
    // avg/min/max of no events is absent: every test is false, neq included.
    expect(await members(ev('Order Completed', { kind: 'avg', property: 'revenue', test: { op: 'neq', value: 21 } }))).toEqual(['ann', 'bob', 'cat']);
    expect(await members(ev('Order Completed', { kind: 'min', property: 'revenue', test: { op: 'lt', value: 2 } }))).toEqual(['bob']);
    expect(await members(ev('Order Completed', { kind: 'max', property: 'revenue', test: { op: 'gte', value: 100 } }))).toEqual(['ann']);
    expect(await members(ev('Order Completed', { kind: 'max', property: 'category', test: { op: 'eq', value: 1 } }))).toEqual(['ann', 'bob']);
  });

  it('count distinct scalars, a number never equal to a string', async () => {
    // ann: "shoes", "bags", 1; bob: "shoes", "1".
    expect(await members(ev('Order Completed', { kind: 'distinct', property: 'category', test: { op: 'eq', value: 3 } }))).toEqual(['ann']);
    expect(await members(ev('Order Completed', { kind: 'distinct', property: 'category', test: { op: 'eq', value: 2 } }))).toEqual(['bob']);
  });

  it('test first and last times', async () => {
    expect(await members(ev('Order Completed', { kind: 'first_time', test: { op: 'before', value: iso(NOW - 50 * DAY) } }))).toEqual(['ann']);
    expect(await members(ev('Order Completed', { kind: 'last_time', test: { op: 'after', value: iso(NOW) } }))).toEqual(['cat']);
    expect(await members(ev('Order Completed', { kind: 'last_time', test: { op: 'within_last', duration: { amount: 2, unit: 'days' } } }))).toEqual(['ann']);
    expect(await members(ev('Order Completed', { kind: 'first_time', test: { op: 'within_last', duration: { amount: 7, unit: 'days' } } }, last(7)))).toEqual(['ann', 'bob']);
  });

  it('take first and last values by (timestamp, seq), absent as absent', async () => {
    expect(await members(ev('Tie', { kind: 'first_value', property: 'v', test: { op: 'eq', value: 'first' } }))).toEqual(['cat']);
    expect(await members(ev('Tie', { kind: 'last_value', property: 'v', test: { op: 'eq', value: 'second' } }))).toEqual(['cat']);
    expect(await members(ev('Tie', { kind: 'last_value', property: 'v', test: { op: 'neq', value: 'second' } }))).toEqual(['ann', 'bob', 'dan']);
    expect(await members(ev('Order Completed', { kind: 'first_value', property: 'category', test: { op: 'eq', value: 1 } }))).toEqual(['ann']);
    expect(await members(ev('Order Completed', { kind: 'last_value', property: 'category', test: { op: 'missing' } }))).toEqual(['cat', 'dan']);
  });

  it('filter by properties and context, by page and screen names', async () => {
    const shoes = [{ property: 'category', op: 'eq', value: 'shoes' }] as EventMatch['filters'];
    expect(await members(ev('Order Completed', { kind: 'exists' }, undefined, shoes))).toEqual(['ann', 'bob']);
    expect(await members(ev('Order Completed', { kind: 'exists' }, undefined, [{ property: 'revenue', op: 'gt', value: 50 }]))).toEqual(['ann']);
    const page = (type: 'page' | 'screen', name?: string, filters: EventMatch['filters'] = []): Condition => ({
      kind: 'event',
      match: { type, ...(name ? { name } : {}), filters },
      measure: { kind: 'exists' },
    });
    expect(await members(page('page'))).toEqual(['ann']);
    expect(await members(page('page', 'Home', [{ property: 'context.page.path', op: 'eq', value: '/' }]))).toEqual(['ann']);
    expect(await members(page('page', 'Home', [{ property: 'page.path', op: 'exists' }]))).toEqual([]);
    expect(await members(page('screen', 'Cart'))).toEqual(['bob']);
    expect(await members(page('page', 'Cart'))).toEqual([]);
  });

  it('use ranges inclusive at the start and exclusive at the end', async () => {
    const range: Window = { kind: 'range', from: iso(NOW - 10 * DAY), to: iso(NOW - DAY) };
    expect(await members(ev('Order Completed', { kind: 'count', test: { op: 'eq', value: 1 } }, range))).toEqual(['ann']);
    expect(await members(ev('Order Completed', { kind: 'count', test: { op: 'eq', value: 2 } }, range))).toEqual(['bob']);
    expect(await members(ev('Order Completed', { kind: 'exists' }, { kind: 'range', from: iso(NOW) }))).toEqual(['cat']);
    expect(await members(ev('Order Completed', { kind: 'exists' }, { kind: 'range' }))).toEqual(['ann', 'bob', 'cat']);
  });

  it('merge several event conditions into one scan without changing their meaning', async () => {
    const orders7d = ev('Order Completed', { kind: 'exists' }, last(7));
    const added = ev('Product Added', { kind: 'exists' });
    expect(await members(and(orders7d, not(added)))).toEqual(['cat']);
    expect(await members(or(not(orders7d), added))).toEqual(['ann', 'bob', 'dan']);
    expect(await members(not(and(orders7d, added)))).toEqual(['cat', 'dan']);
    // Did any of / did none of: one scan, no grouping.
    expect(await members(or(orders7d, added))).toEqual(['ann', 'bob', 'cat']);
    expect(await members(and(not(orders7d), not(added)))).toEqual(['dan']);
    expect(await members(not(or(added, ev('Tie', { kind: 'exists' }))))).toEqual(['dan']);
    expect(await members(or(and(not(added)), ev('Tie', { kind: 'exists' })))).toEqual(['cat', 'dan']);
    expect(
      await members(
        and(
          ev('Order Completed', { kind: 'count', test: { op: 'gte', value: 2 } }, last(30)),
          ev('Order Completed', { kind: 'sum', property: 'revenue', test: { op: 'gt', value: 100 } }, last(30)),
        ),
      ),
    ).toEqual(['ann']);
  });
});

describe('sequences', () => {
  const sequence = (negated: boolean, amount: number, unit: 'minutes' | 'days', first = match('Product Added'), then = match('Order Completed'), window?: Window): Condition => ({
    kind: 'sequence',
    first,
    then,
    negated,
    within: { amount, unit },
    ...(window ? { window } : {}),
  });

  it('find A then B within d, B at most A + d later', async () => {
    expect(await members(sequence(false, 3, 'days'))).toEqual(['ann']);
    expect(await members(sequence(false, 2, 'days'))).toEqual(['ann']);
    expect(await members(sequence(false, 1, 'days'))).toEqual([]);
    expect(await members(sequence(false, 3, 'days', undefined, undefined, last(2)))).toEqual([]);
  });

  it('find A without B once the wait is over (the abandoned cart)', async () => {
    expect(await members(sequence(true, 1, 'days'))).toEqual(['ann', 'bob']);
    expect(await members(sequence(true, 3, 'days'))).toEqual([]);
    // bob's Product Added is at now − 2d: its 2-day wait ends exactly now.
    expect(await members(sequence(true, 2, 'days'))).toEqual(['bob']);
    expect(await members(sequence(true, 2, 'days'), NOW - 1)).toEqual([]);
  });

  it('order events of one timestamp by seq', async () => {
    const first = match('Tie', [{ property: 'v', op: 'eq', value: 'first' }]);
    const second = match('Tie', [{ property: 'v', op: 'eq', value: 'second' }]);
    expect(await members(sequence(false, 1, 'minutes', first, second))).toEqual(['cat']);
    expect(await members(sequence(false, 1, 'minutes', second, first))).toEqual([]);
    expect(await members(sequence(true, 1, 'minutes', second, first))).toEqual(['cat']);
    // An event matching both sides does not answer itself.
    expect(await members(sequence(false, 1, 'minutes', match('Tie'), match('Tie')))).toEqual(['cat']);
    expect(await members(sequence(false, 1, 'minutes', second, match('Tie')))).toEqual([]);
  });
});

describe('other conditions', () => {
  it('read live identifiers, consents and memberships', async () => {
    expect(await members({ kind: 'identifier', type: 'email' })).toEqual(['ann']);
    expect(await members({ kind: 'identifier', type: 'phone' })).toEqual(['cat']);
    expect(await members({ kind: 'consent', category: 'sms' })).toEqual(['ann']);
    expect(await members(not({ kind: 'consent', category: 'sms' }))).toEqual(['bob', 'cat', 'dan']);
    expect(await members({ kind: 'segment', segment: 'vip' })).toEqual(['ann']);
    expect(await members({ kind: 'segment', segment: 'unknown' })).toEqual([]);
    expect(await members(not({ kind: 'segment', segment: 'unknown' }))).toEqual(['ann', 'bob', 'cat', 'dan']);
  });

  it('put profiles in stable random buckets', async () => {
    const bucket = (salt: string, id: string) => crypto.createHash('md5').update(`${salt}:${id}`).digest().readUInt32BE(0) % 100;
    const live = (['ann', 'bob', 'cat', 'dan'] as const).map((name) => ({ name, bucket: bucket('exp1', ids[name]) }));
    const median = [...live].sort((a, b) => a.bucket - b.bucket)[1]!.bucket;
    const expected = live.filter((p) => p.bucket <= median).map((p) => p.name).sort();
    expect(await members({ kind: 'bucket', salt: 'exp1', from: 0, to: median })).toEqual(expected);
    const others = live.map((p) => p.name).filter((name) => !expected.includes(name)).sort();
    expect(await members(not({ kind: 'bucket', salt: 'exp1', from: 0, to: median }))).toEqual(others);
    expect(await members(or({ kind: 'bucket', salt: 'exp1', from: 0, to: median }, { kind: 'consent', category: 'sms' }))).toEqual(
      [...new Set([...expected, 'ann'])].sort(),
    );
  });

  it('combine sets of different kinds with and/or/not', async () => {
    const orders7d = ev('Order Completed', { kind: 'exists' }, last(7));
    const sms = { kind: 'consent', category: 'sms' } as const;
    expect(await members(or(trait('city', { op: 'eq', value: '上海' }), not(orders7d)))).toEqual(['ann', 'dan']);
    expect(await members(and(not(sms), ev('Order Completed', { kind: 'exists' })))).toEqual(['bob', 'cat']);
    expect(await members(not(or({ kind: 'segment', segment: 'vip' }, trait('vip', { op: 'eq', value: false }))))).toEqual(['cat', 'dan']);
    expect(await members(or(not(sms), not(orders7d)))).toEqual(['bob', 'cat', 'dan']);
    expect(await members(and(or(not(sms), trait('city', { op: 'neq', value: '北京' })), or(orders7d, { kind: 'identifier', type: 'phone' })))).toEqual(
      ['ann', 'bob', 'cat'],
    );
    expect(await members(or(and(not(sms), not(orders7d)), and(sms, orders7d)))).toEqual(['ann', 'dan']);
  });

  it('never interpolates values into the SQL text', async () => {
    const evil = `x'); drop table profiles; --`;
    const query = compileSegmentQuery(
      and(trait('city', { op: 'eq', value: evil }), ev(evil, { kind: 'exists' }), { kind: 'consent', category: evil }),
      { workspaceId: workspace.workspaceId, now: new Date(NOW), segmentIds },
    );
    expect(query.text).not.toContain('drop table');
    expect(await members(trait('city', { op: 'neq', value: evil }))).toEqual(['ann', 'bob', 'cat', 'dan']);
  });

  it('composes as a predicate with the caller parameters', async () => {
    const values: unknown[] = [workspace.workspaceId];
    const predicate = compileSegmentPredicate(trait('city', { op: 'starts_with', value: '上海' }), { workspaceId: workspace.workspaceId, now: new Date(NOW), segmentIds }, values, '$1::uuid');
    const { rows } = await t.db.query<{ count: number }>(
      `select count(*)::int as count from profiles p where p.workspace_id = $1 and p.merged_into is null and ${predicate}`,
      values,
    );
    expect(rows[0]!.count).toBe(2);
  });

  it('refuses a definition with an invalid instant, as the evaluator does', () => {
    expect(() =>
      compileSegmentQuery(trait('signup', { op: 'before', value: '2024-13-45T00:00:00Z' }), { workspaceId: workspace.workspaceId, now: new Date(NOW), segmentIds }),
    ).toThrow(/Invalid instant/);
  });
});

describe('SQL value functions', () => {
  it('segment_text_instant reads exactly what parseInstant reads', async () => {
    const inputs = [
      '2024-02-29', '2023-02-29', '2024-02-30', '2024-04-31', '2024-12-31', '2024-13-01', '2024-00-10', '0099-06-16', '0100-01-01',
      '2024-06-10T08:00:00+08:00', '2024-06-10t08:00Z', '2024-06-10 08:00', '2024-06-10T08:00:00.1234567Z', '2024-06-10T08:00:00.5-0530',
      '2024-06-10T24:00:00Z', '2024-06-10T23:60:00Z', '2024-06-10T23:59:60Z', '2024-06-10T23:59:59+24:00', '2024-06-10T23:59:59+23:59',
      '2024-06-10T08', '2024-06-10T08:00:00', ' 2024-06-10', '2024-6-10', 'not a date', '2024-06-10T08:00:00+0800', '2024-06-10T08:00:00.Z',
    ];
    const { rows } = await t.db.query<{ value: string; instant: Date | null }>(
      `select value, segment_text_instant(value) as instant from unnest($1::text[]) as value`,
      [inputs],
    );
    for (const row of rows) expect({ value: row.value, ms: row.instant?.getTime() ?? null }).toEqual({ value: row.value, ms: parseInstant(row.value) });
  });

  it('the compiled date reading (fast paths for common shapes, the function for the rest) agrees with parseInstant', async () => {
    const strings = [
      '2024-06-20', '2024-02-28', '2024-02-29', '2023-02-29', '2024-04-30', '2024-04-31', '2024-05-31', '2024-12-31', '2024-13-01',
      '2024-00-01', '2024-01-00', '0099-12-31', '0100-01-01', '2024-06-10T08:00:00Z', '2024-06-10T08:00:00.123Z', '2024-06-10T23:59:59.999Z',
      '2024-06-10T24:00:00Z', '2024-06-10T08:60:00Z', '2024-06-31T08:00:00Z', '2024-07-31T08:00:00Z', '2024-06-10T08:00:00.1234Z',
      '2024-06-10T08:00:00+08:00', '2024-06-10T08:00:00z', '2024-06-10 08:00:00Z', '2024-06-10T08:00Z', 'x2024-06-10', '2024-06-10\n',
    ];
    const values = [...strings.map((s) => JSON.stringify(s)), '10', 'null', '["2024-06-20"]'];
    const { rows } = await t.db.query<{ instant: Date | null; month_day: string | null }>(
      `select ${instantOf('v')} as instant, ${monthDayOf('v')} as month_day from unnest($1::jsonb[]) with ordinality as x(v, n) order by n`,
      [values],
    );
    const expected = values.map((json) => {
      const value: unknown = JSON.parse(json);
      const ms = typeof value === 'string' ? parseInstant(value) : null;
      return { instant: ms, monthDay: ms === null ? null : new Date(ms).toISOString().slice(5, 10) };
    });
    expect(rows.map((row) => ({ instant: row.instant?.getTime() ?? null, monthDay: row.month_day }))).toEqual(expected);
  });

  it('date tests agree with the evaluator where offsets move the UTC day away from the written one', async () => {
    const dates = [
      '2024-06-15T02:00:00+08:00', '2024-06-14T20:00:00-08:00', '2024-06-15T23:59:59.999-23:59', '2024-06-15T00:00:00+23:59',
      '2024-02-29T23:30:00-01:00', '2023-03-01T00:30:00+01:00', '2024-06-15', '2024-12-31T23:00:00-05:00', '2025-01-01T01:00:00+05:00',
    ];
    const cases: Array<{ value: string; operator: ValueOperator; now: number }> = [];
    for (const value of dates) {
      const instant = parseInstant(value)!;
      for (const delta of [-DAY, -1, 0, 1, DAY]) {
        for (const op of ['before', 'after'] as const) cases.push({ value, operator: { op, value: iso(instant + delta) }, now: NOW });
      }
      for (const duration of [{ amount: 1, unit: 'minutes' }, { amount: 1, unit: 'days' }] as const) {
        const span = duration.amount * (duration.unit === 'days' ? DAY : 60_000);
        for (const delta of [-DAY - 1, -span - 1, -span, -1, 0, 1, span - 1, span, span + 1, DAY]) {
          for (const op of ['within_last', 'within_next'] as const) cases.push({ value, operator: { op, duration }, now: instant + delta });
        }
      }
      for (const amount of [1, 2]) {
        for (const delta of [-2 * DAY, -DAY, -HOUR, 0, HOUR, DAY]) {
          cases.push({ value, operator: { op: 'anniversary_within_next', duration: { amount, unit: 'days' } }, now: instant + delta });
        }
      }
    }
    const actual: boolean[] = [];
    for (const { value, operator, now } of cases) {
      const values: unknown[] = [JSON.stringify(value)];
      const bind = (v: unknown, type: string) => `$${values.push(v)}::${type}`;
      let nowParam: string | undefined;
      const scope: Scope = { bind, workspace: '', now, get nowParam() { return (nowParam ??= bind(iso(now), 'timestamptz')); }, segmentIds: new Map() };
      const test = valueTest(scope, '$1::jsonb', operator);
      const { rows } = await t.db.query<{ holds: boolean }>(`select ${test} as holds`, values);
      actual.push(rows[0]!.holds);
    }
    const expected = cases.map(({ value, operator, now }) => compileValueTest(operator).test(value, now));
    const differing = cases.filter((_, i) => actual[i] !== expected[i]).map((c) => ({ ...c, now: iso(c.now) }));
    expect(differing).toEqual([]);
    expect(expected.filter(Boolean).length).toBeGreaterThan(cases.length / 5);
  });

  it('segment_text_number reads numbers in full, and nothing else', async () => {
    const decimal = /^-?\d+(\.\d+)?([eE][+-]?\d+)?$/;
    const expected = (value: string): number | null => {
      if (!decimal.test(value)) return null;
      const number = Number(value);
      return Number.isFinite(number) ? number : null;
    };
    const inputs = ['10', '-2.5', '1e3', '1E-2', '0.1', '-0', '00012', '1.', '.5', ' 1', '1 ', '+1', '0x10', 'NaN', 'Infinity', '١٢', '1e400', '-1e400', '1e-400', '1e-310', '9'.repeat(400), `0.${'0'.repeat(330)}5`, '123456789012345678901234567890'];
    const { rows } = await t.db.query<{ value: string; number: number | null }>(
      `select value, segment_text_number(value) as number from unnest($1::text[]) as value`,
      [inputs],
    );
    for (const row of rows) {
      const want = expected(row.value);
      expect({ value: row.value, number: row.number === null ? null : Object.is(row.number, -0) ? 0 : row.number }).toEqual({
        value: row.value,
        number: want === null ? null : Object.is(want, -0) ? 0 : want,
      });
    }
  });

  it('regular expressions mean in PostgreSQL what they mean in JavaScript (flags su)', async () => {
    const patterns = ['\\d', '^\\d+$', '\\s', '\\S', '\\w+', '^\\W', '[\\d.]+$', 'a.c', '^.$', '[^a-z]', '[^]', '^(sale|shoes)$', 'o{2}'];
    const subjects = ['12', '١٢', 'a\u3000b', '\u00a0', 'x\ny', 'abc', 'a\nc', 'é', '😀', 'sale', 'shoes', 'foo', '3.5', '_', ' '];
    const pairs = patterns.flatMap((pattern) => subjects.map((subject) => ({ pattern, subject })));
    const { rows } = await t.db.query<{ matched: boolean }>(
      `select x.subject ~ x.pattern as matched from unnest($1::text[], $2::text[]) with ordinality as x(pattern, subject, n) order by x.n`,
      [pairs.map((pair) => postgresPattern(pair.pattern)), pairs.map((pair) => pair.subject)],
    );
    const actual = pairs.map((pair, i) => ({ ...pair, matched: rows[i]!.matched }));
    const expected = pairs.map((pair) => ({ ...pair, matched: new RegExp(pair.pattern, 'su').test(pair.subject) }));
    expect(actual).toEqual(expected);
  });
});
