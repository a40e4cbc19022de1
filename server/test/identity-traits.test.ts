import { describe, expect, it } from 'vitest';
import {
  applyEventTraits,
  mergeProfileTraits,
  parseTraitStrategies,
  strategyFor,
  type TraitEvent,
  type TraitSet,
  type TraitStrategies,
} from '../src/identity/traits.ts';

const web = { kind: 'web', name: 'web form' };
const crm = { kind: 'import', name: 'CRM' };
const app = { kind: 'ios', name: 'iOS app' };

function event(eventId: string, at: string, traits: Record<string, unknown>, source = web): TraitEvent {
  return { eventId, at: new Date(at), source, traits };
}

/** Applies events in the given order and returns the resulting values (without provenance). */
function run(strategies: TraitStrategies, events: TraitEvent[]): Record<string, unknown> {
  let traits: TraitSet = {};
  for (const item of events) traits = applyEventTraits(traits, item, strategies).traits;
  return Object.fromEntries(Object.entries(traits).map(([key, value]) => [key, value.value]));
}

describe('trait strategies: configuration', () => {
  it('most recent is the default; per-trait strategies override it', () => {
    expect(strategyFor({}, 'name')).toEqual({ kind: 'most_recent' });
    const strategies: TraitStrategies = { default: { kind: 'first_seen' }, traits: { points: { kind: 'sum' } } };
    expect(strategyFor(strategies, 'name')).toEqual({ kind: 'first_seen' });
    expect(strategyFor(strategies, 'points')).toEqual({ kind: 'sum' });
  });

  it.each([
    [{ traits: { name: { kind: 'loudest' } } }, 'traits.name'],
    [{ traits: { name: { kind: 'source_precedence' } } }, 'traits.name'],
    [{ traits: { name: { kind: 'source_precedence', order: [] } } }, 'traits.name'],
    [{ default: { kind: 'sum', extra: 1 } }, 'default'],
    [{ other: 1 }, 'other'],
  ])('refuses %j naming the field', (value, field) => {
    const result = parseTraitStrategies(value);
    expect(result).toMatchObject({ ok: false, error: { error: 'invalid_trait_strategies', field } });
  });

  it('accepts a valid configuration', () => {
    const value = { traits: { name: { kind: 'source_precedence', order: ['CRM', 'web form'] }, tags: { kind: 'union' } } };
    expect(parseTraitStrategies(value)).toEqual({ ok: true, strategies: value });
  });
});

describe('applyEventTraits', () => {
  it('most recent: the latest event time wins, whatever order events arrive in', () => {
    const events = [event('e1', '2024-01-01', { plan: 'free' }), event('e2', '2024-03-01', { plan: 'pro' }), event('e3', '2024-02-01', { plan: 'team' })];
    expect(run({}, events)).toEqual({ plan: 'pro' });
    expect(run({}, [...events].reverse())).toEqual({ plan: 'pro' });
  });

  it('most recent: ties on time are broken by event id, so the result does not depend on arrival', () => {
    const a = event('e-a', '2024-01-01', { plan: 'a' });
    const b = event('e-b', '2024-01-01', { plan: 'b' });
    expect(run({}, [a, b])).toEqual({ plan: 'b' });
    expect(run({}, [b, a])).toEqual({ plan: 'b' });
  });

  it('first seen: the earliest event keeps its value, also when it arrives late', () => {
    const strategies: TraitStrategies = { traits: { signup_channel: { kind: 'first_seen' } } };
    const events = [event('e2', '2024-02-01', { signup_channel: 'app' }), event('e1', '2024-01-01', { signup_channel: 'web' })];
    expect(run(strategies, events)).toEqual({ signup_channel: 'web' });
    expect(run(strategies, [...events].reverse())).toEqual({ signup_channel: 'web' });
  });

  it('source precedence: CRM beats the web form even when older; within a rank the newest wins; unlisted sources rank last', () => {
    const strategies: TraitStrategies = { traits: { name: { kind: 'source_precedence', order: ['CRM', 'web'] } } };
    const events = [
      event('e1', '2024-01-01', { name: 'Li Wei (CRM)' }, crm),
      event('e2', '2024-05-01', { name: 'liwei88' }, web),
      event('e3', '2024-06-01', { name: 'Wei from app' }, app),
    ];
    expect(run(strategies, events)).toEqual({ name: 'Li Wei (CRM)' });
    expect(run(strategies, [...events].reverse())).toEqual({ name: 'Li Wei (CRM)' });
    // `web` matches the source kind; app is not listed so it loses to web.
    expect(run(strategies, events.slice(1))).toEqual({ name: 'liwei88' });
    expect(run(strategies, [event('e4', '2024-07-01', { name: 'Li Wei, updated' }, crm), ...events])).toEqual({ name: 'Li Wei, updated' });
  });

  it('sum: each event adds its increment; text is reported, not added', () => {
    const strategies: TraitStrategies = { traits: { points: { kind: 'sum' } } };
    let traits: TraitSet = {};
    traits = applyEventTraits(traits, event('e1', '2024-01-01', { points: 10 }), strategies).traits;
    traits = applyEventTraits(traits, event('e2', '2024-01-02', { points: 5.5 }), strategies).traits;
    const update = applyEventTraits(traits, event('e3', '2024-01-03', { points: 'lots' }), strategies);
    expect(update.traits.points!.value).toBe(15.5);
    expect(update.rejected).toEqual([{ trait: 'points', value: 'lots', message: 'an increment must be a number' }]);
    expect(update.changes).toEqual([]);
  });

  it('union: lists are united without duplicates, keeping first-seen order; single values join as elements', () => {
    const strategies: TraitStrategies = { traits: { tags: { kind: 'union' } } };
    const events = [
      event('e1', '2024-01-01', { tags: ['vip', 'newsletter'] }),
      event('e2', '2024-01-02', { tags: ['newsletter', 'wechat'] }),
      event('e3', '2024-01-03', { tags: 'store' }),
      event('e4', '2024-01-04', { tags: [{ sku: 'A' }] }),
      event('e5', '2024-01-05', { tags: [{ sku: 'A' }] }),
    ];
    expect(run(strategies, events)).toEqual({ tags: ['vip', 'newsletter', 'wechat', 'store', { sku: 'A' }] });
    const update = applyEventTraits({}, event('e6', '2024-01-06', { tags: null }), strategies);
    expect(update.rejected).toMatchObject([{ trait: 'tags', value: null }]);
  });

  it('keeps provenance: value, source, event and time', () => {
    const update = applyEventTraits({}, event('e1', '2024-01-01T10:00:00Z', { email: 'a@x.com' }, crm), {});
    expect(update.traits.email).toEqual({ value: 'a@x.com', source: crm, eventId: 'e1', at: new Date('2024-01-01T10:00:00Z') });
  });

  it('reports each change with the previous value, for the trait history; an older event changes nothing', () => {
    const first = applyEventTraits({}, event('e1', '2024-01-01', { plan: 'free', city: 'Shanghai' }), {});
    expect(first.changes.map(({ trait, previous, valueChanged }) => [trait, previous, valueChanged])).toEqual([
      ['plan', null, true],
      ['city', null, true],
    ]);
    const second = applyEventTraits(first.traits, event('e2', '2024-02-01', { plan: 'pro', city: 'Shanghai' }), {});
    expect(second.changes).toMatchObject([
      { trait: 'plan', previous: { value: 'free', eventId: 'e1' }, next: { value: 'pro', eventId: 'e2' }, valueChanged: true },
      // Same value seen again later: provenance moves, the value history does not.
      { trait: 'city', previous: { eventId: 'e1' }, next: { eventId: 'e2' }, valueChanged: false },
    ]);
    const stale = applyEventTraits(second.traits, event('e0', '2023-12-01', { plan: 'trial' }), {});
    expect(stale.changes).toEqual([]);
    expect(stale.traits).toEqual(second.traits);
  });

  it('null is a value (a cleared trait) under most recent', () => {
    expect(run({}, [event('e1', '2024-01-01', { nickname: 'Wei' }), event('e2', '2024-01-02', { nickname: null })])).toEqual({ nickname: null });
  });

  it('does not modify the input set', () => {
    const before: TraitSet = applyEventTraits({}, event('e1', '2024-01-01', { plan: 'free' }), {}).traits;
    const copy = structuredClone(before);
    applyEventTraits(before, event('e2', '2024-02-01', { plan: 'pro' }), {});
    expect(before).toEqual(copy);
  });
});

describe('mergeProfileTraits', () => {
  const strategies: TraitStrategies = {
    traits: {
      name: { kind: 'source_precedence', order: ['CRM'] },
      first_channel: { kind: 'first_seen' },
      lifetime_points: { kind: 'sum' },
      tags: { kind: 'union' },
    },
  };

  function profileTraits(events: TraitEvent[]): TraitSet {
    let traits: TraitSet = {};
    for (const item of events) traits = applyEventTraits(traits, item, strategies).traits;
    return traits;
  }

  const survivor = profileTraits([
    event('s1', '2024-01-10', { name: 'liwei88', first_channel: 'app', lifetime_points: 30, tags: ['vip'], plan: 'pro' }, app),
  ]);
  const absorbed = profileTraits([
    event('a1', '2024-01-01', { name: 'Li Wei', first_channel: 'store', lifetime_points: 12, tags: ['store', 'vip'] }, crm),
    event('a2', '2024-02-01', { plan: 'team', city: 'Hangzhou' }, web),
  ]);

  it('merges every trait by its strategy and loses nothing', () => {
    const { traits, rejected } = mergeProfileTraits(survivor, absorbed, strategies);
    const values = Object.fromEntries(Object.entries(traits).map(([key, value]) => [key, value.value]));
    expect(values).toEqual({
      name: 'Li Wei',
      first_channel: 'store',
      lifetime_points: 42,
      tags: ['vip', 'store'],
      plan: 'team',
      city: 'Hangzhou',
    });
    expect(traits.name).toMatchObject({ source: crm, eventId: 'a1' });
    expect(rejected).toEqual([]);
  });

  it('merging equals applying every event of both profiles to one', () => {
    const merged = mergeProfileTraits(survivor, absorbed, strategies).traits;
    const replayed = profileTraits([
      event('s1', '2024-01-10', { name: 'liwei88', first_channel: 'app', lifetime_points: 30, tags: ['vip'], plan: 'pro' }, app),
      event('a1', '2024-01-01', { name: 'Li Wei', first_channel: 'store', lifetime_points: 12, tags: ['store', 'vip'] }, crm),
      event('a2', '2024-02-01', { plan: 'team', city: 'Hangzhou' }, web),
    ]);
    expect(merged).toEqual(replayed);
  });

  it('for values of a fact, the merge does not depend on which profile survives', () => {
    const factStrategies: TraitStrategies = { traits: { name: strategies.traits!.name!, first_channel: { kind: 'first_seen' } } };
    const one = mergeProfileTraits(survivor, absorbed, factStrategies).traits;
    const other = mergeProfileTraits(absorbed, survivor, factStrategies).traits;
    for (const trait of ['name', 'first_channel', 'plan', 'city']) expect(one[trait]).toEqual(other[trait]);
  });

  it('reports the survivor traits that changed', () => {
    const { changes } = mergeProfileTraits(survivor, absorbed, strategies);
    expect(changes.map((change) => change.trait).sort()).toEqual(['city', 'first_channel', 'lifetime_points', 'name', 'plan', 'tags']);
  });
});
