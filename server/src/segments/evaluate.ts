import crypto from 'node:crypto';
import { durationMs, type Condition, type SequenceCondition } from './ast.ts';
import type { Evaluation, ProfileEvent, ProfileSnapshot } from './snapshot.ts';
import {
  compareEvents,
  compileEventMatch,
  compileWindow,
  earlier,
  eventsInWindow,
  later,
  matchingEvents,
  type CompiledWindow,
} from './evaluate/events.ts';
import { compileMeasure, type CompiledMeasure } from './evaluate/measures.ts';
import { compileValueTest, pathParts, walkJson } from './evaluate/values.ts';

/*
 * The incremental evaluator: one segment condition over one profile snapshot at `now`, following
 * ast.ts to the letter (the SQL compiler must agree; a property test compares them). Pure: no I/O,
 * no clock. A condition is compiled once (cached by object identity) and the snapshot's events
 * are sorted and filtered once per EventMatch (cached by events array), so evaluating many
 * segments over one snapshot, or one segment over many snapshots, repeats no work.
 *
 * Every node also answers when it could next change on its own (`recheckAt`): never late, early
 * only where being exact would cost more than a wasted re-check.
 */

interface NodeResult {
  value: boolean;
  /** The earliest moment after `now` at which `value` may change with no new data; null if never. */
  recheckAt: number | null;
}

interface EvaluationContext {
  profile: ProfileSnapshot;
  now: number;
}

interface CompiledNode {
  /** Rough relative cost, so and/or evaluate cheap children first and can stop early. */
  cost: number;
  evaluate(context: EvaluationContext): NodeResult;
}

const FIXED_FALSE: NodeResult = { value: false, recheckAt: null };
const FIXED_TRUE: NodeResult = { value: true, recheckAt: null };
const fixed = (value: boolean): NodeResult => (value ? FIXED_TRUE : FIXED_FALSE);

const compiledConditions = new WeakMap<Condition, CompiledNode>();

/**
 * Whether the profile satisfies the condition at `now` (ms since the epoch), and when the answer
 * may next change with no new data. Throws on a definition the checker would refuse (an invalid
 * instant or regular expression), never on profile data.
 */
export function evaluateSegment(condition: Condition, profile: ProfileSnapshot, now: number): Evaluation {
  let node = compiledConditions.get(condition);
  if (!node) {
    node = compileCondition(condition);
    compiledConditions.set(condition, node);
  }
  const result = node.evaluate({ profile, now });
  return { member: result.value, recheckAt: result.recheckAt };
}

function compileCondition(condition: Condition): CompiledNode {
  switch (condition.kind) {
    case 'and':
    case 'or':
      return compileJunction(condition.kind, condition.conditions.map(compileCondition));
    case 'not': {
      const inner = compileCondition(condition.condition);
      return {
        cost: inner.cost,
        evaluate: (context) => {
          const result = inner.evaluate(context);
          return { value: !result.value, recheckAt: result.recheckAt };
        },
      };
    }
    case 'trait': {
      const parts = pathParts(condition.trait);
      const test = compileValueTest(condition);
      return {
        cost: 1,
        evaluate: ({ profile, now }) => {
          const value = walkJson(profile.traits, parts);
          return { value: test.test(value, now), recheckAt: test.timeDependent ? test.recheckAt(value, now) : null };
        },
      };
    }
    case 'identifier': {
      const { type } = condition;
      return { cost: 0, evaluate: ({ profile }) => fixed(profile.identifierTypes.has(type)) };
    }
    case 'segment': {
      const { segment } = condition;
      return { cost: 0, evaluate: ({ profile }) => fixed(profile.memberships.has(segment)) };
    }
    case 'consent': {
      const { category } = condition;
      return { cost: 0, evaluate: ({ profile }) => fixed(profile.consents.get(category) === true) };
    }
    case 'bucket': {
      const { salt, from, to } = condition;
      return {
        cost: 2,
        evaluate: ({ profile }) => {
          const bucket = randomBucket(salt, profile.profileId);
          return fixed(bucket >= from && bucket <= to);
        },
      };
    }
    case 'event':
      return compileEventCondition(condition);
    case 'sequence':
      return compileSequence(condition);
  }
}

/** The profile's stable bucket (ast.ts): parseInt(first 8 hex digits of md5(salt + ':' + profileId), 16) % 100. */
export function randomBucket(salt: string, profileId: string): number {
  const digest = crypto.createHash('md5').update(`${salt}:${profileId}`, 'utf8').digest();
  return digest.readUInt32BE(0) % 100;
}

function compileJunction(kind: 'and' | 'or', unordered: CompiledNode[]): CompiledNode {
  // Cheap children first: a fixed decisive answer (false for and, true for or) ends the evaluation.
  const children = [...unordered].sort((a, b) => a.cost - b.cost);
  const decisive = kind === 'or';
  return {
    cost: Math.max(...children.map((child) => child.cost)),
    evaluate: (context) => {
      const results: NodeResult[] = [];
      for (const child of children) {
        const result = child.evaluate(context);
        if (result.value === decisive && result.recheckAt === null) return result;
        results.push(result);
      }
      if (results.some((result) => result.value === decisive)) {
        // Decided by the children that hold the decisive value: it stays until every one of them
        // has changed, so not before the last of their re-checks.
        let recheckAt = -Infinity;
        for (const result of results) if (result.value === decisive) recheckAt = later(recheckAt, result.recheckAt!);
        return { value: decisive, recheckAt };
      }
      // Every child agrees on the other value: any one changing may change the answer.
      let recheckAt: number | null = null;
      for (const result of results) recheckAt = earlier(recheckAt, result.recheckAt);
      return { value: !decisive, recheckAt };
    },
  };
}

function compileEventCondition(condition: Extract<Condition, { kind: 'event' }>): CompiledNode {
  const match = compileEventMatch(condition.match);
  const window = compileWindow(condition.window);
  const measure = compileMeasure(condition.measure);
  return {
    cost: 3,
    evaluate: ({ profile, now }) => {
      const matched = matchingEvents(profile.events, match, now);
      const selected = eventsInWindow(matched.events, window, now);
      const current = measure.value(selected);
      const value = measure.test(current, now);
      let recheckAt = matched.recheckAt;
      if (measure.timeDependent) recheckAt = earlier(recheckAt, measure.recheckAt(current, now));
      if (window.kind === 'last' && selected.length > 0) {
        recheckAt = earlier(recheckAt, firstChangingDeparture(measure, selected, window.span, current, value));
      }
      return { value, recheckAt };
    },
  };
}

/**
 * Events in a `last` window leave at timestamp + span, oldest first (events of one timestamp
 * together). Returns the first departure after which the answer may differ: for a test that
 * does not depend on time, the first one after which the test's answer changes; for one that
 * does, the first one that changes the measured value (the test's own timing is added by the
 * caller).
 */
function firstChangingDeparture(
  measure: CompiledMeasure,
  selected: readonly ProfileEvent[],
  span: number,
  current: unknown,
  answer: boolean,
): number | null {
  const suffixes = measure.suffixValues(selected);
  const scale = measure.scale ? measure.scale(selected) : 0;
  for (let k = 1; k <= selected.length; k++) {
    if (k < selected.length && selected[k]!.timestamp === selected[k - 1]!.timestamp) continue;
    const at = selected[k - 1]!.timestamp + span;
    const remaining = suffixes[k];
    if (measure.timeDependent) {
      if (remaining !== current) return at;
    } else if (measure.test(remaining, at) !== answer || measure.nearBoundary?.(remaining, scale)) {
      return at;
    }
  }
  return null;
}

function compileSequence(condition: SequenceCondition): CompiledNode {
  const first = compileEventMatch(condition.first);
  const then = compileEventMatch(condition.then);
  const window = compileWindow(condition.window);
  const within = durationMs(condition.within);
  return {
    cost: 4,
    evaluate: ({ profile, now }) => {
      const firsts = matchingEvents(profile.events, first, now);
      const thens = matchingEvents(profile.events, then, now);
      const matchRecheck = earlier(firsts.recheckAt, thens.recheckAt);
      const starts = eventsInWindow(firsts.events, window, now);
      const answered = answeredFirsts(starts, thens.events, within);
      const result = condition.negated
        ? unansweredSequence(starts, answered, window, within, now)
        : answeredSequence(starts, answered, window);
      return { value: result.value, recheckAt: earlier(result.recheckAt, matchRecheck) };
    },
  };
}

/** For each first event (sorted), whether a then event follows it in (timestamp, seq) order within `within`. */
function answeredFirsts(firsts: readonly ProfileEvent[], thens: readonly ProfileEvent[], within: number): boolean[] {
  const answered = new Array<boolean>(firsts.length);
  let next = 0;
  for (let i = 0; i < firsts.length; i++) {
    const start = firsts[i]!;
    // The first then event strictly after this first event; firsts are sorted, so it only moves on.
    while (next < thens.length && compareEvents(thens[next]!, start) <= 0) next++;
    answered[i] = next < thens.length && thens[next]!.timestamp <= start.timestamp + within;
  }
  return answered;
}

function answeredSequence(firsts: readonly ProfileEvent[], answered: readonly boolean[], window: CompiledWindow): NodeResult {
  let latest = -Infinity;
  for (let i = 0; i < firsts.length; i++) if (answered[i]) latest = firsts[i]!.timestamp;
  if (latest === -Infinity) return FIXED_FALSE;
  // True while an answered first event is inside the window: until the latest one leaves it.
  return { value: true, recheckAt: window.kind === 'last' ? latest + window.span : null };
}

/**
 * The abandoned-cart shape: an unanswered first event A counts from A + within (its wait is over)
 * until it leaves a `last` window (A + span), or for ever otherwise.
 */
function unansweredSequence(
  firsts: readonly ProfileEvent[],
  answered: readonly boolean[],
  window: CompiledWindow,
  within: number,
  now: number,
): NodeResult {
  const intervals: Array<[number, number]> = [];
  for (let i = 0; i < firsts.length; i++) {
    if (answered[i]) continue;
    const timestamp = firsts[i]!.timestamp;
    const start = timestamp + within;
    const end = window.kind === 'last' ? timestamp + window.span : Infinity;
    if (start < end) intervals.push([start, end]);
  }
  if (intervals.length === 0) return FIXED_FALSE;
  // The union of the intervals, in order: the answer is true inside it and changes at its edges.
  intervals.sort((a, b) => a[0] - b[0]);
  let index = 0;
  while (index < intervals.length) {
    const start = intervals[index]![0];
    let end = intervals[index]![1];
    for (index++; index < intervals.length && intervals[index]![0] <= end; index++) end = later(end, intervals[index]![1]);
    if (end <= now) continue;
    if (start > now) return { value: false, recheckAt: start };
    return { value: true, recheckAt: end === Infinity ? null : end };
  }
  return FIXED_FALSE;
}
