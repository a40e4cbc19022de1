import crypto from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parseInstant } from '../src/ingest/normalize.ts';
import { durationMs, type Condition, type EventMatch, type Measure, type ValueOperator, type Window } from '../src/segments/ast.ts';
import { evaluateSegment } from '../src/segments/evaluate.ts';
import type { ProfileEvent, ProfileSnapshot } from '../src/segments/snapshot.ts';
import {
  createRng,
  randomCondition,
  randomEventMatch,
  randomValueOperator,
  VALUE_POOLS,
  type RandomSegmentOptions,
  type Rng,
} from './support/random-segments.ts';

/*
 * The optimised evaluator against a naive reading of ast.ts (no caching, no suffix bookkeeping),
 * on random conditions and histories, and the honesty of recheckAt: every moment at which a
 * condition over this data can change is one of a finite set (an instant from the data plus or
 * minus a duration from the condition, ±1 ms, or a UTC midnight), and at none of them before
 * recheckAt may the answer differ from the answer at now.
 */

const HOUR = 3_600_000;
const DAY = 86_400_000;
const NOW = Date.UTC(2024, 5, 30, 12, 0, 0);

const VOCABULARY: RandomSegmentOptions = {
  events: ['Order Completed', 'Product Added', '下单'],
  properties: ['revenue', 'category', 'when'],
  traits: ['city', 'age', 'birthday', 'tags'],
  identifierTypes: ['email', 'phone'],
  consentCategories: ['sms', 'email'],
  segments: ['vip', 'churned'],
  maxDepth: 3,
};

// ---- the naive reading of ast.ts ----

const DECIMAL = /^-?\d+(\.\d+)?([eE][+-]?\d+)?$/;
const num = (v: unknown): number | null =>
  typeof v === 'number' ? v : typeof v === 'string' && DECIMAL.test(v) && Number.isFinite(Number(v)) ? Number(v) : null;
const date = (v: unknown): number | null => (typeof v === 'string' ? parseInstant(v) : null);
const present = (v: unknown): boolean => v !== undefined && v !== null;

function walk(root: unknown, parts: string[]): unknown {
  let v = root;
  for (const part of parts) {
    if (Array.isArray(v)) {
      if (!/^-?\d+$/.test(part)) return undefined;
      const i = Number(part);
      v = v[i < 0 ? v.length + i : i];
    } else if (v !== null && typeof v === 'object' && Object.hasOwn(v, part)) v = (v as Record<string, unknown>)[part];
    else return undefined;
  }
  return v;
}

function eqScalar(literal: unknown, v: unknown): boolean {
  return typeof literal === 'number' ? num(v) === literal : v === literal;
}

function utcDay(ms: number): number {
  return Math.floor(ms / DAY) * DAY;
}

function anniversaryOn(instant: number, day: number): boolean {
  const v = new Date(instant);
  const d = new Date(day);
  const leap = (y: number) => (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
  const month = v.getUTCMonth();
  const dom = month === 1 && v.getUTCDate() === 29 && !leap(d.getUTCFullYear()) ? 28 : v.getUTCDate();
  return d.getUTCMonth() === month && d.getUTCDate() === dom;
}

const regexes = new Map<string, RegExp>();
function regex(pattern: string): RegExp {
  if (!regexes.has(pattern)) regexes.set(pattern, new RegExp(pattern, 'su'));
  return regexes.get(pattern)!;
}

function testValue(op: ValueOperator, v: unknown, now: number): boolean {
  switch (op.op) {
    case 'eq':
      return eqScalar(op.value, v);
    case 'neq':
      return !eqScalar(op.value, v);
    case 'in':
      return op.values.some((l) => eqScalar(l, v));
    case 'not_in':
      return !op.values.some((l) => eqScalar(l, v));
    case 'lt':
      return num(v) !== null && num(v)! < op.value;
    case 'lte':
      return num(v) !== null && num(v)! <= op.value;
    case 'gt':
      return num(v) !== null && num(v)! > op.value;
    case 'gte':
      return num(v) !== null && num(v)! >= op.value;
    case 'between':
      return num(v) !== null && num(v)! >= op.low && num(v)! <= op.high;
    case 'contains':
      return typeof v === 'string' ? v.includes(op.value) : Array.isArray(v) && v.includes(op.value);
    case 'starts_with':
      return typeof v === 'string' && v.startsWith(op.value);
    case 'ends_with':
      return typeof v === 'string' && v.endsWith(op.value);
    case 'matches':
      return typeof v === 'string' && regex(op.pattern).test(v);
    case 'exists':
      return present(v);
    case 'missing':
      return !present(v);
    case 'before':
      return date(v) !== null && date(v)! < parseInstant(op.value)!;
    case 'after':
      return date(v) !== null && date(v)! > parseInstant(op.value)!;
    case 'within_last':
      return date(v) !== null && date(v)! > now - durationMs(op.duration) && date(v)! <= now;
    case 'within_next':
      return date(v) !== null && date(v)! >= now && date(v)! < now + durationMs(op.duration);
    case 'anniversary_within_next': {
      const d = date(v);
      if (d === null) return false;
      const days = durationMs(op.duration) / DAY;
      for (let i = 0; i < days; i++) if (anniversaryOn(d, utcDay(now) + i * DAY)) return true;
      return false;
    }
  }
}

function readEvent(e: ProfileEvent, path: string): unknown {
  const parts = path.split('.');
  return parts[0] === 'context' ? walk(e.context, parts.slice(1)) : walk(e.properties, parts);
}

function matches(m: EventMatch, e: ProfileEvent, now: number): boolean {
  if (e.type !== m.type) return false;
  if (m.name !== undefined && (m.type === 'track' ? e.event : e.name) !== m.name) return false;
  return m.filters.every((f) => testValue(f, readEvent(e, f.property), now));
}

function inWindow(w: Window | undefined, e: ProfileEvent, now: number): boolean {
  if (!w) return true;
  if (w.kind === 'last') return e.timestamp > now - durationMs(w.duration);
  return (w.from === undefined || e.timestamp >= parseInstant(w.from)!) && (w.to === undefined || e.timestamp < parseInstant(w.to)!);
}

const order = (a: ProfileEvent, b: ProfileEvent) => a.timestamp - b.timestamp || a.seq - b.seq;
const sortedEvents = new WeakMap<ProfileSnapshot, ProfileEvent[]>();
function sorted(p: ProfileSnapshot): ProfileEvent[] {
  if (!sortedEvents.has(p)) sortedEvents.set(p, [...p.events].sort(order));
  return sortedEvents.get(p)!;
}

function numericTest(test: Extract<Measure, { kind: 'count' }>['test'], v: number | undefined): boolean {
  if (v === undefined) return false;
  switch (test.op) {
    case 'eq':
      return v === test.value;
    case 'neq':
      return v !== test.value;
    case 'lt':
      return v < test.value;
    case 'lte':
      return v <= test.value;
    case 'gt':
      return v > test.value;
    case 'gte':
      return v >= test.value;
    case 'between':
      return v >= test.low && v <= test.high;
  }
}

function measure(m: Measure, events: ProfileEvent[], now: number): boolean {
  const values = 'property' in m ? events.map((e) => readEvent(e, m.property)) : [];
  const numbers = values.map(num).filter((n): n is number => n !== null);
  switch (m.kind) {
    case 'exists':
      return events.length > 0;
    case 'count':
      return numericTest(m.test, events.length);
    case 'sum':
      return numericTest(m.test, numbers.reduce((a, b) => a + b, 0));
    case 'avg':
      return numericTest(m.test, numbers.length ? numbers.reduce((a, b) => a + b, 0) / numbers.length : undefined);
    case 'min':
      return numericTest(m.test, numbers.length ? Math.min(...numbers) : undefined);
    case 'max':
      return numericTest(m.test, numbers.length ? Math.max(...numbers) : undefined);
    case 'distinct': {
      const keys = new Set(values.filter((v) => ['string', 'number', 'boolean'].includes(typeof v)).map((v) => `${typeof v}:${String(v)}`));
      return numericTest(m.test, keys.size);
    }
    case 'first_time':
    case 'last_time': {
      if (events.length === 0) return false;
      const t = (m.kind === 'first_time' ? events[0] : events[events.length - 1])!.timestamp;
      if (m.test.op === 'within_last') return t > now - durationMs(m.test.duration) && t <= now;
      return m.test.op === 'before' ? t < parseInstant(m.test.value)! : t > parseInstant(m.test.value)!;
    }
    case 'first_value':
    case 'last_value': {
      const e = m.kind === 'first_value' ? events[0] : events[events.length - 1];
      return testValue(m.test, e ? readEvent(e, m.property) : undefined, now);
    }
  }
}

function naive(c: Condition, p: ProfileSnapshot, now: number): boolean {
  switch (c.kind) {
    case 'and':
      return c.conditions.every((x) => naive(x, p, now));
    case 'or':
      return c.conditions.some((x) => naive(x, p, now));
    case 'not':
      return !naive(c.condition, p, now);
    case 'trait':
      return testValue(c, walk(p.traits, c.trait.split('.')), now);
    case 'identifier':
      return p.identifierTypes.has(c.type);
    case 'segment':
      return p.memberships.has(c.segment);
    case 'consent':
      return p.consents.get(c.category) === true;
    case 'bucket': {
      const b = parseInt(crypto.createHash('md5').update(`${c.salt}:${p.profileId}`).digest('hex').slice(0, 8), 16) % 100;
      return c.from <= b && b <= c.to;
    }
    case 'event': {
      const events = sorted(p).filter((e) => matches(c.match, e, now) && inWindow(c.window, e, now));
      return measure(c.measure, events, now);
    }
    case 'sequence': {
      const events = sorted(p);
      const within = durationMs(c.within);
      const answered = (a: ProfileEvent) => events.some((b) => order(b, a) > 0 && b.timestamp <= a.timestamp + within && matches(c.then, b, now));
      const firsts = events.filter((a) => matches(c.first, a, now) && inWindow(c.window, a, now));
      return c.negated ? firsts.some((a) => a.timestamp + within <= now && !answered(a)) : firsts.some(answered);
    }
  }
}

// ---- random data ----

function randomValue(rng: Rng): unknown {
  const roll = rng.next();
  if (roll < 0.08) return undefined;
  if (roll < 0.12) return null;
  if (roll < 0.35) return rng.pick(VALUE_POOLS.numbers);
  if (roll < 0.45) return String(rng.pick(VALUE_POOLS.numbers));
  if (roll < 0.6) return rng.pick(VALUE_POOLS.strings);
  if (roll < 0.7) return rng.pick(VALUE_POOLS.dates);
  if (roll < 0.85) return new Date(NOW + rng.int(-40, 40) * rng.pick([HOUR, DAY, 1])).toISOString();
  if (roll < 0.9) return rng.next() < 0.5;
  if (roll < 0.95) return [rng.pick(VALUE_POOLS.strings), rng.pick(VALUE_POOLS.numbers)];
  return '12abc';
}

function randomObject(rng: Rng, keys: string[]): Record<string, unknown> {
  const object: Record<string, unknown> = {};
  for (const key of keys) {
    const value = randomValue(rng);
    if (value !== undefined) object[key] = value;
  }
  return object;
}

const OFFSETS = [0, 1, 30 * 60_000, HOUR, 2 * HOUR, 12 * HOUR, DAY, 7 * DAY, 30 * DAY, 90 * DAY];

function randomProfile(rng: Rng, index: number): ProfileSnapshot {
  const events: ProfileEvent[] = [];
  const count = rng.pick([0, 2, 4, 6, 10]);
  let seq = index * 1000;
  for (let i = 0; i < count; i++) {
    const type = rng.pick(['track', 'track', 'track', 'track', 'page', 'screen', 'identify'] as const);
    const name = rng.pick(VOCABULARY.events);
    // Timestamps at and around window edges, now and then tied with the previous event.
    const timestamp =
      i > 0 && rng.next() < 0.15
        ? events[i - 1]!.timestamp
        : NOW - rng.pick(OFFSETS) * rng.pick([1, 1, 2, 3]) + rng.pick([0, 0, 0, -1, 1, rng.int(-HOUR, HOUR)]);
    events.push({
      seq: seq++,
      type,
      event: type === 'track' ? name : null,
      name: type === 'page' || type === 'screen' ? (rng.next() < 0.8 ? name : null) : null,
      timestamp,
      properties: rng.next() < 0.1 ? null : randomObject(rng, VOCABULARY.properties),
      context: rng.next() < 0.5 ? null : randomObject(rng, VOCABULARY.properties),
    });
  }
  const traits = randomObject(rng, VOCABULARY.traits);
  if (rng.next() < 0.2) traits.age = { revenue: randomValue(rng), category: rng.pick(VALUE_POOLS.strings) };
  return {
    profileId: `00000000-0000-4000-8000-${String(index).padStart(12, '0')}`,
    traits,
    identifierTypes: new Set(VOCABULARY.identifierTypes.filter(() => rng.next() < 0.5)),
    consents: new Map(VOCABULARY.consentCategories.filter(() => rng.next() < 0.6).map((c) => [c, rng.next() < 0.5])),
    memberships: new Set(VOCABULARY.segments.filter(() => rng.next() < 0.4)),
    events: rng.next() < 0.5 ? events : [...events].reverse(),
  };
}

/** Every duration in the condition, and every window/within pair a sequence adds up. */
function durations(condition: Condition): number[] {
  const found = new Set<number>();
  const visit = (value: unknown): void => {
    if (Array.isArray(value)) return value.forEach(visit);
    if (value === null || typeof value !== 'object') return;
    const node = value as Record<string, unknown>;
    if (typeof node.amount === 'number' && typeof node.unit === 'string') found.add(durationMs(node as never));
    Object.values(node).forEach(visit);
  };
  visit(condition);
  return [...found];
}

/** Every moment at which an answer over this profile can change: data instants ± condition durations (± 1 ms) and midnights. */
function candidateMoments(condition: Condition, snapshot: ProfileSnapshot, from: number, to: number): number[] {
  const instants: number[] = [];
  const collect = (value: unknown): void => {
    if (Array.isArray(value)) return value.forEach(collect);
    if (value !== null && typeof value === 'object') return Object.values(value).forEach(collect);
    const ms = date(value);
    if (ms !== null) instants.push(ms);
  };
  collect(snapshot.traits);
  for (const event of snapshot.events) {
    instants.push(event.timestamp);
    collect(event.properties);
    collect(event.context);
  }
  const moments = new Set<number>();
  const spans = [0, ...durations(condition)];
  for (const instant of instants) {
    for (const span of spans) for (const sign of [1, -1]) for (const nudge of [-1, 0, 1]) moments.add(instant + sign * span + nudge);
  }
  const anniversaries = JSON.stringify(condition).includes('anniversary_within_next');
  for (let day = utcDay(from) + DAY; anniversaries && day <= to && day < from + 400 * DAY; day += DAY) {
    moments.add(day - 1);
    moments.add(day);
  }
  return [...moments].filter((t) => t > from && t < to).sort((a, b) => a - b);
}

const TIME_UNITS = [
  { amount: 30, unit: 'minutes' },
  { amount: 2, unit: 'hours' },
  { amount: 1, unit: 'days' },
  { amount: 7, unit: 'days' },
  { amount: 30, unit: 'days' },
  { amount: 1, unit: 'weeks' },
] as const;

/** Conditions that depend on time: measures over last windows, sequences, relative dates. */
function timeDependentCondition(rng: Rng): Condition {
  const duration = () => ({ ...rng.pick(TIME_UNITS) });
  const match = (): EventMatch => ({ ...randomEventMatch(rng, VOCABULARY), filters: rng.next() < 0.7 ? [] : randomEventMatch(rng, VOCABULARY).filters });
  const numericTest = (pool: readonly number[]) =>
    rng.next() < 0.2
      ? { op: 'between' as const, low: Math.min(rng.pick(pool), rng.pick(pool)), high: Math.max(rng.pick(pool), rng.pick(pool)) }
      : { op: rng.pick(['eq', 'neq', 'lt', 'lte', 'gt', 'gte'] as const), value: rng.pick(pool) };
  const property = () => rng.pick(VOCABULARY.properties);
  const measures: Array<() => Measure> = [
    () => ({ kind: 'exists' }),
    () => ({ kind: 'count', test: numericTest([0, 1, 2, 3]) }),
    () => ({ kind: rng.pick(['sum', 'avg', 'min', 'max', 'distinct'] as const), property: property(), test: numericTest(VALUE_POOLS.numbers) }),
    () => ({ kind: rng.pick(['first_time', 'last_time'] as const), test: { op: 'within_last', duration: duration() } }),
    () => ({ kind: rng.pick(['first_value', 'last_value'] as const), property: property(), test: randomValueOperator(rng, VOCABULARY) }),
  ];
  const roll = rng.next();
  let leaf: Condition;
  if (roll < 0.55) {
    leaf = { kind: 'event', match: match(), window: { kind: 'last', duration: duration() }, measure: rng.pick(measures)() };
  } else if (roll < 0.8) {
    leaf = {
      kind: 'sequence',
      first: match(),
      then: match(),
      negated: rng.next() < 0.7,
      within: duration(),
      ...(rng.next() < 0.6 ? { window: { kind: 'last' as const, duration: duration() } } : {}),
    };
  } else {
    const op = rng.pick(['within_last', 'within_next', 'anniversary_within_next'] as const);
    const span = op === 'anniversary_within_next' ? { amount: rng.pick([1, 2, 7, 30]), unit: 'days' as const } : duration();
    leaf = rng.next() < 0.5
      ? { kind: 'trait', trait: rng.pick(['birthday', 'city']), op, duration: span }
      : { kind: 'event', match: { ...match(), filters: [{ property: 'when', op, duration: span }] }, measure: { kind: 'exists' } };
  }
  const shape = rng.next();
  if (shape < 0.5) return leaf;
  if (shape < 0.65) return { kind: 'not', condition: leaf };
  return { kind: rng.pick(['and', 'or'] as const), conditions: [leaf, rng.next() < 0.5 ? timeDependentCondition(rng) : randomCondition(rng, { ...VOCABULARY, maxDepth: 1 })] };
}

describe('evaluateSegment on random conditions and histories', () => {
  it('agrees with a naive reading of ast.ts, and recheckAt is never late', () => {
    const rng = createRng(20240630);
    const profiles = Array.from({ length: 40 }, (_, i) => randomProfile(rng, i));
    let conditions = 0;
    let rechecks = 0;
    let members = 0;
    for (let c = 0; c < 600; c++) {
      const condition = c % 2 === 0 ? randomCondition(rng, VOCABULARY) : timeDependentCondition(rng);
      const text = JSON.stringify(condition);
      const timeDependent = /"kind":"last"|"op":"(within_last|within_next|anniversary_within_next)"|"negated":true/.test(text);
      conditions++;
      for (const snapshot of profiles) {
        const { member, recheckAt } = evaluateSegment(condition, snapshot, NOW);
        const context = () => `condition ${JSON.stringify(condition)}\nprofile ${JSON.stringify({ ...snapshot, identifierTypes: [...snapshot.identifierTypes], consents: [...snapshot.consents], memberships: [...snapshot.memberships] })}`;
        expect(member, context()).toBe(naive(condition, snapshot, NOW));
        if (member) members++;
        if (recheckAt === null) {
          if (!timeDependent) continue;
          // Nothing may change for a long while (we look a year ahead).
          for (const t of candidateMoments(condition, snapshot, NOW, NOW + 400 * DAY)) {
            if (naive(condition, snapshot, t) !== member) throw new Error(`changes at ${new Date(t).toISOString()} with no re-check\n${context()}`);
          }
          continue;
        }
        rechecks++;
        expect(recheckAt, context()).toBeGreaterThan(NOW);
        for (const t of candidateMoments(condition, snapshot, NOW, recheckAt)) {
          if (naive(condition, snapshot, t) !== member) {
            throw new Error(`changes at ${new Date(t).toISOString()}, before recheckAt ${new Date(recheckAt).toISOString()}\n${context()}`);
          }
        }
        // At the re-check the optimised evaluator still agrees with the naive one.
        expect(evaluateSegment(condition, snapshot, recheckAt).member, context()).toBe(naive(condition, snapshot, recheckAt));
      }
    }
    expect(conditions).toBe(600);
    // The data must exercise both answers and time-dependence, or the test proves little.
    expect(members).toBeGreaterThan(5000);
    expect(rechecks).toBeGreaterThan(1000);
  });
});
