import { Value } from '@sinclair/typebox/value';
import { describe, expect, it } from 'vitest';
import { candidateDates, dateOccurrences, parseDateTrait } from '../src/journeys/dates.ts';
import { JourneyDefinitionSchema, type JourneyDefinition, type JourneyNode } from '../src/journeys/definition.ts';
import { nextScheduledRun } from '../src/journeys/schedules.ts';
import { validateJourney } from '../src/journeys/validate.ts';
import { recordListAdditions } from '../src/journeys/walk.ts';
import { delayOutcome, profileTimeZone, segmentWaitOutcome, traitValuesOf } from '../src/journeys/waits.ts';
import { plannedTraitChanges } from '../src/profiles/trait-writer.ts';

const context = { segmentKeys: new Set(['vip', 'newsletter']), timeZone: 'Asia/Shanghai' };

const withNodes = (entry: Partial<Extract<JourneyNode, { kind: 'entry' }>>, ...middle: JourneyNode[]): JourneyDefinition => ({
  nodes: [
    { id: 'in', kind: 'entry', trigger: { kind: 'api' }, next: middle[0]?.id ?? 'end', ...entry } as JourneyNode,
    ...middle,
    { id: 'end', kind: 'end' },
  ],
});

describe('date traits', () => {
  it('reads plain dates and ISO instants as the date written', () => {
    expect(parseDateTrait('1990-12-10')).toEqual({ year: 1990, month: 12, day: 10 });
    expect(parseDateTrait('2027-03-31T23:30:00+08:00')).toEqual({ year: 2027, month: 3, day: 31 });
    expect(parseDateTrait('10/12/1990')).toBeUndefined();
    expect(parseDateTrait(19901210)).toBeUndefined();
  });

  it('fires yearly 3 days before a birthday at 10:00 in the profile time zone, once per year', () => {
    const trigger = { days: -3, time: '10:00', repeat: 'yearly' as const };
    // 10:00 in Shanghai on 7 December 2026 is 02:00 UTC.
    const at = dateOccurrences('1990-12-10', trigger, 'Asia/Shanghai', new Date('2026-12-06T00:00:00Z'), new Date('2026-12-08T00:00:00Z'));
    expect(at.map((d) => d.toISOString())).toEqual(['2026-12-07T02:00:00.000Z']);
    // The window is (from, to]: a minute earlier it has not fired; the window that ends on it has.
    expect(dateOccurrences('1990-12-10', trigger, 'Asia/Shanghai', new Date('2026-12-06T00:00:00Z'), new Date('2026-12-07T01:59:00Z'))).toEqual([]);
    expect(dateOccurrences('1990-12-10', trigger, 'Asia/Shanghai', new Date('2026-12-07T01:59:00Z'), new Date('2026-12-07T02:00:00Z'))).toHaveLength(1);
    // Over a whole year: exactly one.
    expect(dateOccurrences('1990-12-10', trigger, 'America/New_York', new Date('2026-01-01T00:00:00Z'), new Date('2027-01-01T00:00:00Z'))).toHaveLength(1);
    // An offset crossing the new year: 3 days before 2 January is 30 December of the year before.
    expect(
      dateOccurrences('2000-01-02', trigger, 'UTC', new Date('2026-12-01T00:00:00Z'), new Date('2027-01-05T00:00:00Z')).map((d) => d.toISOString()),
    ).toEqual(['2026-12-30T10:00:00.000Z']);
  });

  it('a 29 February birthday fires on the 28th in common years; a one-off date fires only in its year', () => {
    const yearly = { time: '09:00', repeat: 'yearly' as const };
    expect(dateOccurrences('2000-02-29', yearly, 'UTC', new Date('2027-01-01T00:00:00Z'), new Date('2028-01-01T00:00:00Z')).map((d) => d.toISOString())).toEqual([
      '2027-02-28T09:00:00.000Z',
    ]);
    expect(candidateDates({ repeat: 'yearly' }, new Date('2027-02-28T00:00:00Z'), new Date('2027-02-28T12:00:00Z'))).toContain('02-29');
    const once = { days: -7, time: '10:00', repeat: 'once' as const };
    expect(dateOccurrences('2026-06-30', once, 'UTC', new Date('2026-06-01T00:00:00Z'), new Date('2026-07-01T00:00:00Z')).map((d) => d.toISOString())).toEqual([
      '2026-06-23T10:00:00.000Z',
    ]);
    expect(dateOccurrences('2026-06-30', once, 'UTC', new Date('2027-06-01T00:00:00Z'), new Date('2027-07-01T00:00:00Z'))).toEqual([]);
    // The SQL prefilter names the trait values that can fire: the window's dates moved back by the offset.
    expect(candidateDates(once, new Date('2026-06-23T09:00:00Z'), new Date('2026-06-23T11:00:00Z'))).toContain('2026-06-30');
  });
});

describe('scheduled audiences', () => {
  it('a one-off runs once at its instant; a cron runs at its next time in its zone', () => {
    const oneOff = { kind: 'schedule' as const, segment: 'vip', at: '2026-05-01T02:00:00Z' };
    expect(nextScheduledRun(oneOff, 'UTC', new Date('2026-04-01T00:00:00Z'), null)?.toISOString()).toBe('2026-05-01T02:00:00.000Z');
    expect(nextScheduledRun(oneOff, 'UTC', new Date('2026-05-01T02:00:00Z'), new Date('2026-05-01T02:00:00Z'))).toBeNull();
    const weekly = { kind: 'schedule' as const, segment: 'vip', cron: '0 10 * * 1' };
    // Mondays at 10:00 Shanghai = 02:00 UTC; 2026-04-06 is a Monday.
    expect(nextScheduledRun(weekly, 'Asia/Shanghai', new Date('2026-04-01T00:00:00Z'), null)?.toISOString()).toBe('2026-04-06T02:00:00.000Z');
    expect(nextScheduledRun(weekly, 'Asia/Shanghai', new Date('2026-04-06T02:00:00Z'), null)?.toISOString()).toBe('2026-04-13T02:00:00.000Z');
  });
});

describe('waiting nodes in the profile time zone', () => {
  const now = new Date('2026-03-06T12:00:00Z'); // a Friday

  it('a time of day with weekdays is the profile zone when it has one, else the workspace zone', () => {
    const node = { id: 'd', kind: 'delay' as const, until: { time: '09:00', weekdays: [1, 2, 3, 4, 5] }, next: 'end' };
    // Friday 20:00 in Shanghai: the next weekday 09:00 there is Monday 9 March, 01:00 UTC.
    expect(delayOutcome(node, now, { timezone: 'Asia/Shanghai' }, 'UTC')).toEqual({ wait: true, until: new Date('2026-03-09T01:00:00Z'), timeZone: 'Asia/Shanghai' });
    // No (or an unknown) zone trait: the workspace's. Friday 12:00 UTC → Monday 09:00 UTC.
    expect(delayOutcome(node, now, { timezone: 'Mars/Olympus' }, 'UTC')).toMatchObject({ until: new Date('2026-03-09T09:00:00Z'), timeZone: 'UTC' });
    expect(profileTimeZone({ time_zone: 'Europe/Berlin' }, 'UTC')).toBe('Europe/Berlin');
  });

  it('until a date trait ± days: waits for a future date, passes at once for a past or missing one', () => {
    const node = { id: 'd', kind: 'delay' as const, untilDate: { trait: 'contract_end', days: -7, time: '10:00' }, next: 'end' };
    expect(delayOutcome(node, now, { contract_end: '2026-04-30', timezone: 'Asia/Shanghai' }, 'UTC')).toEqual({
      wait: true,
      until: new Date('2026-04-23T02:00:00Z'),
      timeZone: 'Asia/Shanghai',
    });
    expect(delayOutcome(node, now, { contract_end: '2026-03-01' }, 'UTC')).toMatchObject({ wait: false, outcome: 'date_passed' });
    expect(delayOutcome(node, now, {}, 'UTC')).toMatchObject({ wait: false, outcome: 'no_date' });
    const instant = { id: 'd', kind: 'delay' as const, untilDate: { trait: 'trial_ends_at', days: 1 }, next: 'end' };
    expect(delayOutcome(instant, now, { trial_ends_at: '2026-03-07T08:30:00Z' }, 'UTC')).toMatchObject({ until: new Date('2026-03-08T08:30:00Z') });
  });

  it('a segment wait takes happened at once when the profile already is where it waits to be', () => {
    const node = { id: 'w', kind: 'segment_wait' as const, segment: 'vip', on: 'entered' as const, timeout: { amount: 2, unit: 'days' as const }, happened: 'a', timedOut: 'b' };
    expect(segmentWaitOutcome(node, true, now)).toEqual({ happened: true });
    expect(segmentWaitOutcome(node, false, now)).toEqual({ happened: false, timeoutAt: new Date('2026-03-08T12:00:00Z') });
    expect(segmentWaitOutcome({ ...node, on: 'exited' }, false, now)).toEqual({ happened: true });
  });

  it('update_trait sets values and adds tags once each; the trait writer skips unchanged and computed values', () => {
    const node = { id: 'u', kind: 'update_trait' as const, set: { plan: 'gold', coupon: null }, addTags: ['vip', 'cny'], next: 'end' };
    expect(traitValuesOf(node, { tags: ['cny'] })).toEqual({ plan: 'gold', coupon: null, tags: ['cny', 'vip'] });
    expect(traitValuesOf(node, {})).toMatchObject({ tags: ['vip', 'cny'] });
    const current = new Map([
      [
        'p',
        new Map([
          ['plan', { value: 'gold', computed: false }],
          ['ltv', { value: 10, computed: true }],
          ['coupon', { value: 'X1', computed: false }],
        ]),
      ],
    ]);
    expect(plannedTraitChanges([{ profileId: 'p', set: { plan: 'gold', ltv: 99, coupon: null, city: 'Hangzhou', gone: null } }], current)).toEqual([
      { profileId: 'p', key: 'coupon', previous: 'X1', value: null },
      { profileId: 'p', key: 'city', previous: null, value: 'Hangzhou' },
    ]);
  });
});

describe('list additions (addTags) applied to the value read under the lock', () => {
  it('adds each value once to the stored list, after a set of the same key, and changes nothing when all are there', () => {
    const current = new Map([['p', new Map([['tags', { value: ['cny', 'late'], computed: false }], ['one', { value: 'solo', computed: false }]])]]);
    expect(plannedTraitChanges([{ profileId: 'p', set: {}, add: { tags: ['vip', 'cny', 'vip'] } }], current)).toEqual([
      { profileId: 'p', key: 'tags', previous: ['cny', 'late'], value: ['cny', 'late', 'vip'] },
    ]);
    expect(plannedTraitChanges([{ profileId: 'p', set: {}, add: { tags: ['late'] } }], current)).toEqual([]);
    // A scalar becomes the first element; an absent trait starts empty; a set value of the same key is the base.
    expect(plannedTraitChanges([{ profileId: 'p', set: {}, add: { one: ['two'], fresh: ['a'] } }], current)).toEqual([
      { profileId: 'p', key: 'one', previous: 'solo', value: ['solo', 'two'] },
      { profileId: 'p', key: 'fresh', previous: null, value: ['a'] },
    ]);
    expect(plannedTraitChanges([{ profileId: 'p', set: { tags: ['x'] }, add: { tags: ['y'] } }], current)).toEqual([
      { profileId: 'p', key: 'tags', previous: ['cny', 'late'], value: ['x', 'y'] },
    ]);
  });

  it('a walk keeps a key as an addition only while no node of the walk set it outright', () => {
    const additions: Record<string, string[]> = {};
    const setOutright = new Set<string>();
    recordListAdditions(additions, setOutright, { tags: ['a', 'vip'], plan: 'gold' }, { tags: ['vip'] });
    expect(additions).toEqual({ tags: ['vip'] });
    recordListAdditions(additions, setOutright, { tags: ['a', 'vip', 'cny'] }, { tags: ['cny', 'vip'] });
    expect(additions).toEqual({ tags: ['vip', 'cny'] });
    // Set outright: the walk's whole value is written from here on, later additions are inside it.
    recordListAdditions(additions, setOutright, { tags: ['only'] }, undefined);
    expect(additions).toEqual({});
    recordListAdditions(additions, setOutright, { tags: ['only', 'more'] }, { tags: ['more'] });
    expect(additions).toEqual({});
    expect([...setOutright].sort()).toEqual(['plan', 'tags']);
  });
});

describe('validation of the new entries and nodes', () => {
  it('accepts each new trigger and node kind as schema-valid and problem-free', () => {
    const definitions: JourneyDefinition[] = [
      withNodes({ trigger: { kind: 'date', trait: 'birthday', days: -3, time: '10:00', repeat: 'yearly' }, reentry: { mode: 'after', days: 300 } }),
      withNodes({ trigger: { kind: 'schedule', segment: 'vip', cron: '0 10 * * 1' }, reentry: { mode: 'always' }, ratePerSecond: 50 }),
      withNodes({ trigger: { kind: 'schedule', segment: 'vip', at: '2026-05-01T02:00:00Z' } }),
      withNodes({ trigger: { kind: 'event', event: 'Order Placed', instanceKey: { property: 'order_id' } }, maxConcurrent: 3 }),
      withNodes(
        {},
        { id: 's', kind: 'segment_wait', segment: 'vip', on: 'entered', timeout: { amount: 1, unit: 'days' }, happened: 'u', timedOut: 'end' },
        { id: 'u', kind: 'update_trait', set: { plan: 'gold' }, addTags: ['vip'], next: 'h' },
        { id: 'h', kind: 'webhook', channelConfigKey: 'crm', template: 'crm-sync', next: 'd' },
        { id: 'd', kind: 'delay', untilDate: { trait: 'contract_end', days: -7, time: '10:00' }, next: 'end' },
      ),
    ];
    for (const definition of definitions) {
      expect(Value.Check(JourneyDefinitionSchema, definition)).toBe(true);
      expect(validateJourney(definition, context)).toEqual([]);
    }
  });

  it('names node and field of each mistake in the new parts', () => {
    const problems = (definition: JourneyDefinition) => validateJourney(definition, context).map((p) => [p.node, p.field]);
    expect(problems(withNodes({ trigger: { kind: 'schedule', segment: 'vip' } }))).toEqual([['in', 'nodes.0.trigger']]);
    expect(problems(withNodes({ trigger: { kind: 'schedule', segment: 'gone', cron: '0 25 * * *' } }))).toEqual([
      ['in', 'nodes.0.trigger.segment'],
      ['in', 'nodes.0.trigger.cron'],
    ]);
    expect(problems(withNodes({ trigger: { kind: 'schedule', segment: 'vip', cron: '@daily', timeZone: 'Nowhere/City' } }))).toEqual([
      ['in', 'nodes.0.trigger.timeZone'],
    ]);
    expect(problems(withNodes({ maxConcurrent: 2 }))).toEqual([['in', 'nodes.0.maxConcurrent']]);
    expect(
      problems(
        withNodes(
          {},
          { id: 's', kind: 'segment_wait', segment: 'nope', on: 'exited', timeout: { amount: 1, unit: 'days' }, happened: 'u', timedOut: 'u' },
          { id: 'u', kind: 'update_trait', next: 'd' },
          { id: 'd', kind: 'delay', duration: { amount: 1, unit: 'days' }, untilDate: { trait: 'x' }, next: 'end' },
        ),
      ),
    ).toEqual([
      ['s', 'nodes.1.segment'],
      ['s', 'nodes.1.timedOut'],
      ['u', 'nodes.2.set'],
      ['d', 'nodes.3.untilDate'],
    ]);
    // A segment wait breaks a cycle like any wait.
    const loop = withNodes(
      {},
      { id: 's', kind: 'segment_wait', segment: 'vip', on: 'entered', timeout: { amount: 1, unit: 'days' }, happened: 'u', timedOut: 'end' },
      { id: 'u', kind: 'update_trait', addTags: ['again'], next: 's' },
    );
    expect(validateJourney(loop, context)).toEqual([]);
  });
});
