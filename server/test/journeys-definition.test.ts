import { Value } from '@sinclair/typebox/value';
import { describe, expect, it } from 'vitest';
import { JourneyDefinitionSchema, type JourneyDefinition } from '../src/journeys/definition.ts';
import { checkRules, eventMatches, inHoldout, randomBranch, reentryAllows } from '../src/journeys/rules.ts';
import { nextTimeOfDay, validateJourney } from '../src/journeys/validate.ts';
import { instantOfWall } from '../src/channels/guards.ts';
import { dateOccurrences } from '../src/journeys/dates.ts';
import type { ProfileEvent, ProfileSnapshot } from '../src/segments/snapshot.ts';

const context = { segmentKeys: new Set(['cart-abandoners', 'vip']) };

function abandonedCart(): JourneyDefinition {
  return {
    nodes: [
      { id: 'start', kind: 'entry', trigger: { kind: 'segment', segment: 'cart-abandoners' }, reentry: { mode: 'after', days: 7 }, next: 'wait' },
      { id: 'wait', kind: 'delay', duration: { amount: 1, unit: 'hours' }, next: 'vip' },
      { id: 'vip', kind: 'split', condition: 'in_segment("vip")', yes: 'email', no: 'email' },
      { id: 'email', kind: 'send', channel: 'email', template: 'cart-reminder', purpose: 'marketing', next: 'done' },
      { id: 'done', kind: 'end' },
    ],
    goals: [{ id: 'purchase', condition: 'event("Order Completed").exists()' }],
  };
}

describe('journey definition schema and validation', () => {
  it('accepts the abandoned-cart journey as schema-valid and problem-free', () => {
    expect(Value.Check(JourneyDefinitionSchema, abandonedCart())).toBe(true);
    expect(validateJourney(abandonedCart(), context)).toEqual([]);
  });

  it('refuses a node kind the schema does not know and extra fields', () => {
    const definition = abandonedCart() as unknown as { nodes: Array<Record<string, unknown>> };
    definition.nodes[1] = { id: 'wait', kind: 'sleep', next: 'vip' };
    expect(Value.Check(JourneyDefinitionSchema, definition)).toBe(false);
    const extra = abandonedCart() as unknown as { nodes: Array<Record<string, unknown>> };
    extra.nodes[4] = { id: 'done', kind: 'end', next: 'start' };
    expect(Value.Check(JourneyDefinitionSchema, extra)).toBe(false);
  });

  it('names the node and field of a link to a missing node and of an unreachable node', () => {
    const definition = abandonedCart();
    definition.nodes[2] = { id: 'vip', kind: 'split', condition: 'in_segment("vip")', yes: 'email', no: 'sms' };
    definition.nodes.push({ id: 'orphan', kind: 'end' });
    const problems = validateJourney(definition, context);
    expect(problems).toContainEqual({ node: 'vip', field: 'nodes.2.no', message: 'Node "sms" does not exist' });
    expect(problems).toContainEqual({ node: 'orphan', field: 'nodes.5', message: 'Node "orphan" cannot be reached from the entry node' });
    expect(problems).toHaveLength(2);
  });

  it('refuses a cycle without a delay but accepts one through a delay', () => {
    const looping: JourneyDefinition = {
      nodes: [
        { id: 'in', kind: 'entry', trigger: { kind: 'api' }, next: 'a' },
        { id: 'a', kind: 'send', channel: 'sms', template: 't', purpose: 'marketing', next: 'b' },
        { id: 'b', kind: 'split', condition: 'trait.vip = true', yes: 'a', no: 'end' },
        { id: 'end', kind: 'end' },
      ],
    };
    const problems = validateJourney(looping, context);
    expect(problems).toHaveLength(1);
    expect(problems[0]!.message).toMatch(/cycle a → b → a has no delay or wait/);
    expect(problems[0]!.field).toBe('nodes.1');

    looping.nodes[2] = { id: 'b', kind: 'split', condition: 'trait.vip = true', yes: 'pause', no: 'end' };
    looping.nodes.push({ id: 'pause', kind: 'delay', duration: { amount: 1, unit: 'days' }, next: 'a' });
    expect(validateJourney(looping, context)).toEqual([]);
  });

  it('reports unknown segments, bad conditions, random splits that do not add up, empty delays and unknown templates', () => {
    const definition: JourneyDefinition = {
      nodes: [
        { id: 'in', kind: 'entry', trigger: { kind: 'segment', segment: 'nope' }, next: 'r' },
        {
          id: 'r',
          kind: 'random',
          branches: [
            { key: 'a', percent: 50, next: 's' },
            { key: 'a', percent: 40, next: 'd' },
          ],
        },
        { id: 's', kind: 'split', condition: 'trait.x = ', yes: 'd', no: 'd' },
        { id: 'd', kind: 'delay', next: 'm' },
        { id: 'm', kind: 'send', channel: 'email', template: 'missing', purpose: 'marketing', next: 'e' },
        { id: 'e', kind: 'end' },
      ],
      exits: [{ id: 'gone', condition: 'in_segment("ghosts")' }],
    };
    const problems = validateJourney(definition, { ...context, templates: (channel, key) => channel === 'email' && key === 'welcome' });
    const byField = new Map(problems.map((p) => [p.field, p]));
    expect(byField.get('nodes.0.trigger.segment')?.message).toMatch(/Segment "nope" does not exist/);
    expect(byField.get('nodes.1.branches')?.message).toMatch(/add up to 90, not 100/);
    expect(byField.get('nodes.1.branches.1.key')?.node).toBe('r');
    expect(byField.get('nodes.2.condition')?.message).toMatch(/line 1, column/);
    expect(byField.get('nodes.3.duration')?.node).toBe('d');
    expect(byField.get('nodes.4.template')?.message).toBe('No email template "missing"');
    expect(byField.get('exits.0.condition')?.message).toMatch(/segment "ghosts" does not exist/);
    expect(problems).toHaveLength(7);
  });

  it('needs exactly one entry node, an end node and unique ids', () => {
    const definition: JourneyDefinition = {
      nodes: [
        { id: 'a', kind: 'delay', duration: { amount: 1, unit: 'days' }, next: 'b' },
        { id: 'a', kind: 'delay', duration: { amount: 1, unit: 'days' }, next: 'b' },
        { id: 'b', kind: 'delay', duration: { amount: 1, unit: 'days' }, next: 'a' },
      ],
    };
    const messages = validateJourney(definition, context).map((p) => `${p.field}: ${p.message}`);
    expect(messages).toContain('nodes: The journey has no entry node');
    expect(messages).toContain('nodes: The journey has no end node');
    expect(messages).toContain('nodes.1.id: Node id "a" is used twice (first at nodes.0)');
  });
});

const event = (name: string, timestamp: number, properties: Record<string, unknown> = {}): ProfileEvent => ({
  seq: timestamp,
  type: 'track',
  event: name,
  name: null,
  timestamp,
  properties,
  context: null,
});
const snapshot = (events: ProfileEvent[], traits: Record<string, unknown> = {}): ProfileSnapshot => ({
  profileId: '00000000-0000-4000-8000-000000000001',
  traits,
  identifierTypes: new Set(),
  consents: new Map(),
  memberships: new Set(),
  events,
});

describe('journey rules', () => {
  it('a goal counts only events since the instance entered; goals win over exits', () => {
    const definition: JourneyDefinition = {
      ...abandonedCart(),
      exits: [{ id: 'unsubscribed', condition: 'trait.unsubscribed = true' }],
    };
    const entered = Date.UTC(2026, 0, 10);
    const old = snapshot([event('Order Completed', entered - 1000)]);
    expect(checkRules(definition, old, entered, entered + 5000)).toBeNull();
    const bought = snapshot([event('Order Completed', entered + 1000)], { unsubscribed: true });
    expect(checkRules(definition, bought, entered, entered + 5000)).toMatchObject({ kind: 'converted', rule: { id: 'purchase' } });
    const unsubscribed = snapshot([], { unsubscribed: true });
    expect(checkRules(definition, unsubscribed, entered, entered + 5000)).toMatchObject({ kind: 'exited', rule: { id: 'unsubscribed' } });
  });

  it('matches events by name and property filters', () => {
    const id = '00000000-0000-4000-8000-000000000001';
    expect(eventMatches(event('Order Completed', 1, { total: 120 }), 'Order Completed', 'total > 100', id)).toBe(true);
    expect(eventMatches(event('Order Completed', 1, { total: 80 }), 'Order Completed', 'total > 100', id)).toBe(false);
    expect(eventMatches(event('Product Added', 1), 'Order Completed', undefined, id)).toBe(false);
  });

  it('assigns random branches stably and close to their percents', () => {
    const node = {
      id: 'ab',
      kind: 'random' as const,
      branches: [
        { key: 'a', percent: 20, next: 'x' },
        { key: 'b', percent: 80, next: 'y' },
      ],
    };
    const counts = { a: 0, b: 0 };
    for (let i = 0; i < 2000; i++) {
      const profile = `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`;
      const branch = randomBranch(node, 'journey-1', profile);
      expect(randomBranch(node, 'journey-1', profile)).toBe(branch);
      counts[branch.key as 'a' | 'b']++;
    }
    expect(counts.a).toBeGreaterThan(300);
    expect(counts.a).toBeLessThan(500);
    let held = 0;
    for (let i = 0; i < 1000; i++) if (inHoldout('journey-1', `p-${i}`, 10)) held++;
    expect(held).toBeGreaterThan(60);
    expect(held).toBeLessThan(140);
    expect(inHoldout('journey-1', 'p-1', 0)).toBe(false);
  });

  it('applies re-entry rules', () => {
    const now = new Date('2026-03-10T00:00:00Z');
    expect(reentryAllows({ mode: 'once' }, null, now)).toBe(true);
    expect(reentryAllows({ mode: 'once' }, new Date('2025-01-01T00:00:00Z'), now)).toBe(false);
    expect(reentryAllows(undefined, new Date('2025-01-01T00:00:00Z'), now)).toBe(false);
    expect(reentryAllows({ mode: 'after', days: 7 }, new Date('2026-03-04T00:00:00Z'), now)).toBe(false);
    expect(reentryAllows({ mode: 'after', days: 7 }, new Date('2026-03-03T00:00:00Z'), now)).toBe(true);
    expect(reentryAllows({ mode: 'always' }, new Date('2026-03-09T23:59:00Z'), now)).toBe(true);
  });

  it('finds the next time of day in a time zone, with weekdays and across DST', () => {
    // 2026-03-10 is a Tuesday; 10:00 in Shanghai is 02:00 UTC.
    expect(nextTimeOfDay(new Date('2026-03-10T01:00:00Z'), '10:00', 'Asia/Shanghai').toISOString()).toBe('2026-03-10T02:00:00.000Z');
    expect(nextTimeOfDay(new Date('2026-03-10T03:00:00Z'), '10:00', 'Asia/Shanghai').toISOString()).toBe('2026-03-11T02:00:00.000Z');
    // Only Saturdays (6).
    expect(nextTimeOfDay(new Date('2026-03-10T03:00:00Z'), '10:00', 'Asia/Shanghai', [6]).toISOString()).toBe('2026-03-14T02:00:00.000Z');
    // New York switches to EDT on 2026-03-08: 09:00 is 14:00 UTC before and 13:00 UTC after.
    expect(nextTimeOfDay(new Date('2026-03-07T15:00:00Z'), '09:00', 'America/New_York').toISOString()).toBe('2026-03-08T13:00:00.000Z');
    expect(nextTimeOfDay(new Date('2026-03-06T15:00:00Z'), '09:00', 'America/New_York').toISOString()).toBe('2026-03-07T14:00:00.000Z');
  });

  it('a time of day in a DST gap is the first instant after the gap, as channels quiet hours (instantOfWall)', () => {
    // 2026-03-08: New York's clocks go from 01:59:59 EST to 03:00 EDT; 02:30 does not happen.
    const gap = nextTimeOfDay(new Date('2026-03-08T05:00:00Z'), '02:30', 'America/New_York');
    expect(gap.toISOString()).toBe('2026-03-08T07:00:00.000Z'); // 03:00 EDT, never 01:30 EST (an hour early)
    expect(gap.getTime()).toBe(instantOfWall(Date.UTC(2026, 2, 8, 2, 30), 'America/New_York', 0));
    // Once past, the next 02:30 is the following day's (EDT).
    expect(nextTimeOfDay(new Date('2026-03-08T07:00:01Z'), '02:30', 'America/New_York').toISOString()).toBe('2026-03-09T06:30:00.000Z');
    // With weekdays: Sunday (7) only.
    expect(nextTimeOfDay(new Date('2026-03-07T12:00:00Z'), '02:30', 'America/New_York', [7]).toISOString()).toBe('2026-03-08T07:00:00.000Z');
  });

  it('a time of day in a DST overlap is its first occurrence, once per local day', () => {
    // 2026-11-01: 01:00–02:00 happens twice in New York (EDT 05:00–06:00Z, then EST 06:00–07:00Z).
    expect(nextTimeOfDay(new Date('2026-11-01T04:00:00Z'), '01:30', 'America/New_York').toISOString()).toBe('2026-11-01T05:30:00.000Z');
    // After the first 01:30 (EDT) the day has had its 01:30: the next is 2 November, 01:30 EST.
    expect(nextTimeOfDay(new Date('2026-11-01T05:45:00Z'), '01:30', 'America/New_York').toISOString()).toBe('2026-11-02T06:30:00.000Z');
    // Times outside the overlap are unambiguous on the day.
    expect(nextTimeOfDay(new Date('2026-11-01T04:00:00Z'), '09:00', 'America/New_York').toISOString()).toBe('2026-11-01T14:00:00.000Z');
  });

  it('date traits at a time in a DST gap fire after the gap', () => {
    const trigger = { days: 0, time: '02:30', repeat: 'yearly' as const };
    expect(dateOccurrences('1990-03-08', trigger, 'America/New_York', new Date('2026-03-08T00:00:00Z'), new Date('2026-03-09T00:00:00Z')).map((d) => d.toISOString())).toEqual([
      '2026-03-08T07:00:00.000Z',
    ]);
  });
});
