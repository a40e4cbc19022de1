import { Type, type Static } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';

export const TraitStrategySchema = Type.Union([
  Type.Object({ kind: Type.Literal('most_recent') }, { additionalProperties: false }),
  Type.Object({ kind: Type.Literal('first_seen') }, { additionalProperties: false }),
  Type.Object(
    {
      kind: Type.Literal('source_precedence'),
      order: Type.Array(Type.String({ minLength: 1, maxLength: 200 }), {
        minItems: 1,
        maxItems: 50,
        description: 'Source names or kinds, strongest first; sources not listed rank below all listed ones',
      }),
    },
    { additionalProperties: false },
  ),
  Type.Object(
    { kind: Type.Literal('sum') },
    { additionalProperties: false, description: "Each event's value is an increment; merged profiles add up" },
  ),
  Type.Object({ kind: Type.Literal('union') }, { additionalProperties: false, description: 'Lists are united without duplicates' }),
]);
export type TraitStrategy = Static<typeof TraitStrategySchema>;

export const TraitStrategiesSchema = Type.Object(
  {
    default: Type.Optional(TraitStrategySchema),
    traits: Type.Optional(Type.Record(Type.String({ minLength: 1, maxLength: 200 }), TraitStrategySchema)),
  },
  { additionalProperties: false },
);
export type TraitStrategies = Static<typeof TraitStrategiesSchema>;

const checkStrategies = TypeCompiler.Compile(TraitStrategiesSchema);

export function parseTraitStrategies(
  value: unknown,
): { ok: true; strategies: TraitStrategies } | { ok: false; error: { error: 'invalid_trait_strategies'; field: string | null; message: string } } {
  if (checkStrategies.Check(value)) return { ok: true, strategies: value };
  const first = checkStrategies.Errors(value).First();
  const field = first ? first.path.replace(/^\//, '').replaceAll('/', '.') || null : null;
  return { ok: false, error: { error: 'invalid_trait_strategies', field, message: `${field ?? 'strategies'}: ${first?.message ?? 'invalid'}` } };
}

export function strategyFor(strategies: TraitStrategies, trait: string): TraitStrategy {
  return strategies.traits?.[trait] ?? strategies.default ?? { kind: 'most_recent' };
}

export interface TraitSource {
  kind: string;
  name: string;
}

/**
 * The source kind of a computed trait's value (segments/computed/): its definition owns the key,
 * so events never overwrite it and merges never carry an absorbed profile's value over (the
 * survivor's value is recomputed from the merged events).
 */
export const COMPUTED_TRAIT_SOURCE_KIND = 'computed';

/** A trait's current value with where it came from. */
export interface TraitValue {
  value: unknown;
  source: TraitSource;
  eventId: string;
  at: Date;
}

export type TraitSet = Record<string, TraitValue>;

export interface TraitChange {
  trait: string;
  previous: TraitValue | null;
  next: TraitValue;
  /** False when only the provenance moved (the same value seen again, later or from another source). */
  valueChanged: boolean;
}

export interface RejectedTrait {
  trait: string;
  value: unknown;
  message: string;
}

export interface TraitUpdate {
  traits: TraitSet;
  /** One entry per trait whose value changed: the rows of its history. */
  changes: TraitChange[];
  /** Values a strategy cannot take (text for a sum): reported, never silently lost. */
  rejected: RejectedTrait[];
}

export interface TraitEvent {
  traits: Record<string, unknown>;
  source: TraitSource;
  eventId: string;
  at: Date;
}

/**
 * Applies one event's traits to a profile's. Every strategy is order-independent for values that
 * state a fact (most recent and first seen compare event times, not arrival), so late or replayed
 * events give the same result as events in order. Ties on time go to the greater event id.
 */
export function applyEventTraits(current: TraitSet, event: TraitEvent, strategies: TraitStrategies): TraitUpdate {
  const traits: TraitSet = { ...current };
  const changes: TraitChange[] = [];
  const rejected: RejectedTrait[] = [];
  for (const [trait, value] of Object.entries(event.traits)) {
    if (value === undefined) continue;
    const incoming: TraitValue = { value, source: event.source, eventId: event.eventId, at: event.at };
    const result = combine(strategyFor(strategies, trait), traits[trait] ?? null, incoming, 'event');
    if ('error' in result) {
      rejected.push({ trait, value, message: result.error });
      continue;
    }
    if (result.value !== traits[trait]) {
      changes.push(change(trait, traits[trait] ?? null, result.value));
      traits[trait] = result.value;
    }
  }
  return { traits, changes, rejected };
}

/**
 * The traits of two profiles merged into the survivor's: each trait by its strategy, so a sum adds
 * both sides and a union keeps every element. Changes are the survivor's traits that changed.
 */
export function mergeProfileTraits(survivor: TraitSet, absorbed: TraitSet, strategies: TraitStrategies): TraitUpdate {
  const traits: TraitSet = { ...survivor };
  const changes: TraitChange[] = [];
  const rejected: RejectedTrait[] = [];
  for (const [trait, other] of Object.entries(absorbed)) {
    if (other.source.kind === COMPUTED_TRAIT_SOURCE_KIND) continue;
    const result = combine(strategyFor(strategies, trait), traits[trait] ?? null, other, 'profile');
    if ('error' in result) {
      rejected.push({ trait, value: other.value, message: result.error });
      continue;
    }
    if (result.value !== traits[trait]) {
      changes.push(change(trait, traits[trait] ?? null, result.value));
      traits[trait] = result.value;
    }
  }
  return { traits, changes, rejected };
}

/** Positive when `a` is newer than `b`. */
function recency(a: TraitValue, b: TraitValue): number {
  return a.at.getTime() - b.at.getTime() || (a.eventId > b.eventId ? 1 : a.eventId < b.eventId ? -1 : 0);
}

function rank(order: readonly string[], source: TraitSource): number {
  const lowered = order.map((entry) => entry.toLowerCase());
  const byName = lowered.indexOf(source.name.toLowerCase());
  if (byName >= 0) return byName;
  const byKind = lowered.indexOf(source.kind.toLowerCase());
  return byKind >= 0 ? byKind : order.length;
}

function combine(
  strategy: TraitStrategy,
  current: TraitValue | null,
  incoming: TraitValue,
  mode: 'event' | 'profile',
): { value: TraitValue } | { error: string } {
  if (current?.source.kind === COMPUTED_TRAIT_SOURCE_KIND) {
    return mode === 'event' ? { error: 'a computed trait is set by its definition, not by events' } : { value: current };
  }
  switch (strategy.kind) {
    case 'most_recent':
      return { value: !current || recency(incoming, current) > 0 ? incoming : current };
    case 'first_seen':
      return { value: !current || recency(incoming, current) < 0 ? incoming : current };
    case 'source_precedence': {
      if (!current) return { value: incoming };
      const order = rank(strategy.order, incoming.source) - rank(strategy.order, current.source);
      return { value: order < 0 || (order === 0 && recency(incoming, current) > 0) ? incoming : current };
    }
    case 'sum': {
      if (typeof incoming.value !== 'number' || !Number.isFinite(incoming.value)) {
        return { error: `${mode === 'event' ? 'an increment' : 'a summed trait'} must be a number` };
      }
      if (!current) return { value: incoming };
      const total = (typeof current.value === 'number' ? current.value : 0) + incoming.value;
      return { value: { ...newer(current, incoming), value: total } };
    }
    case 'union': {
      if (incoming.value === null) return { error: 'null cannot be united into a list' };
      const items = Array.isArray(incoming.value) ? incoming.value : [incoming.value];
      if (!current) return { value: { ...incoming, value: unite([], items) } };
      const existing = Array.isArray(current.value) ? current.value : current.value === null ? [] : [current.value];
      const value = unite(existing, items);
      if (value.length === existing.length && Array.isArray(current.value)) return { value: current };
      return { value: { ...newer(current, incoming), value } };
    }
  }
}

function change(trait: string, previous: TraitValue | null, next: TraitValue): TraitChange {
  return { trait, previous, next, valueChanged: !previous || JSON.stringify(previous.value) !== JSON.stringify(next.value) };
}

function newer(a: TraitValue, b: TraitValue): TraitValue {
  return recency(a, b) >= 0 ? a : b;
}

/** Elements compared by their JSON form, so `{"sku":"A"}` twice is one element. */
function unite(existing: readonly unknown[], items: readonly unknown[]): unknown[] {
  const seen = new Set(existing.map((item) => JSON.stringify(item)));
  const result = [...existing];
  for (const item of items) {
    const key = JSON.stringify(item);
    if (seen.has(key)) continue;
    seen.add(key);
    result.push(item);
  }
  return result;
}
