import { durationMs, type Condition, type EventMatch, type Measure, type SequenceCondition, type Window } from '../ast.ts';
import {
  bindInstant,
  holdsWhenAbsent,
  instantWindowTest,
  jsonPath,
  literalInstant,
  numberOf,
  numericTest,
  numericTestAt,
  valueTest,
  type Scope,
} from './values.ts';

/*
 * The SQL compiler: a segment condition as one PostgreSQL query over all of a workspace's profiles,
 * with exactly the meaning ast.ts gives it (a property test compares it with the incremental
 * evaluator on random segments and histories).
 *
 * Shape. Every condition becomes a set of profile ids that satisfy it, or of those that do not
 * (its complement): a condition true for a profile with no data at all (count = 0, trait neq,
 * not …) is computed as the set of profiles it is false for, so no query has to enumerate profiles
 * that have nothing. Sets are scans with hashing or sorting, never one probe per profile:
 * - event conditions over the same table are merged into one `group by profile_id` whose HAVING
 *   evaluates the whole and/or/not of them on FILTERed aggregates (one scan of events for
 *   "count ≥ 3 and sum > 500 and opened the app this week"), windows on `timestamp` so months
 *   outside every window are pruned;
 * - every other condition is one scan of its table (a trait key, consents of a category …);
 * - and/or/not of sets are INTERSECT / UNION ALL / EXCEPT, which hash or sort and spill to disk;
 * - at the end, a positive set only drops profiles merged into others, and a complement is taken
 *   from the live profiles, both with EXCEPT.
 * No part of the plan is a join whose order or method depends on row estimates: the workspace_id
 * columns carry no statistics (0006), so estimates are far too small on large workspaces, and
 * a planner trusting them would probe an index once per profile or, worse, rescan a subquery.
 */

export interface CompileContext {
  workspaceId: string;
  now: Date;
  /** Segment key → id, for in_segment conditions. A key not in the map has no members. */
  segmentIds: ReadonlyMap<string, string>;
  /**
   * Only profiles whose id is in [from, to) (uuid order; `to` null: to the end), for sampled
   * previews: every scan of every table is bounded to that id range, so event scans read the
   * profiles' index ranges instead of whole partitions. Every condition is a fact about one
   * profile's own rows, so the answer is exactly the unrestricted answer's profiles in the range.
   */
  profileRange?: ProfileRange;
}

export interface ProfileRange {
  from: string;
  to: string | null;
}

export interface CompiledQuery {
  text: string;
  values: unknown[];
}

/**
 * A query returning `profile_id`, one row per live profile (not merged into another) of the
 * workspace that satisfies the condition at `context.now`. Profile ids in the tables it reads
 * (events, traits, identifiers, consents, memberships) are taken to be profiles of the workspace,
 * as identity resolution writes them.
 */
export function compileSegmentQuery(condition: Condition, context: CompileContext): CompiledQuery {
  const values: unknown[] = [];
  return { text: compileInto(condition, context, values), values };
}

/**
 * The condition as a boolean SQL expression over `p.id` (a profile of the workspace), binding its
 * literals into `values` after the caller's own parameters, for counts, samples and diffs:
 * `select … from profiles p where p.workspace_id = $1 and <this>`. `workspacePlaceholder`
 * reuses a parameter the caller already bound (e.g. `$1::uuid`).
 */
export function compileSegmentPredicate(
  condition: Condition,
  context: CompileContext,
  values: unknown[],
  workspacePlaceholder?: string,
): string {
  return `p.id in (${compileInto(condition, context, values, workspacePlaceholder)})`;
}

function compileInto(condition: Condition, context: CompileContext, values: unknown[], workspacePlaceholder?: string): string {
  const firstOwn = values.length;
  // Bound on first use: PostgreSQL refuses a parameter the query never mentions.
  let workspace = workspacePlaceholder;
  let nowParam: string | undefined;
  let range: { from: string; to: string | null } | undefined;
  const scope: Scope = {
    bind: (value, type) => bindTo(values, value, type),
    get workspace() {
      workspace ??= bindTo(values, context.workspaceId, 'uuid');
      return workspace;
    },
    now: context.now.getTime(),
    get nowParam() {
      nowParam ??= bindTo(values, context.now.toISOString(), 'timestamptz');
      return nowParam;
    },
    segmentIds: context.segmentIds,
    inRange(column) {
      if (!context.profileRange) return '';
      range ??= {
        from: bindTo(values, context.profileRange.from, 'uuid'),
        to: context.profileRange.to === null ? null : bindTo(values, context.profileRange.to, 'uuid'),
      };
      return ` and ${column} >= ${range.from}${range.to === null ? '' : ` and ${column} < ${range.to}`}`;
    },
  };
  // Conditions on the profile id alone (random buckets) filter the result instead of being sets.
  const conjuncts = flattenConjuncts(condition);
  const rowConditions = conjuncts.filter(isRowCondition);
  const rest = conjuncts.filter((c) => !isRowCondition(c));
  const set = rest.length === 0 ? EVERYONE : compileSet(scope, rest.length === 1 ? rest[0]! : { kind: 'and', conditions: rest });
  const rowFilter = (id: string) => rowConditions.map((c) => ` and ${rowTest(scope, c, id)}`).join('');
  const live = `select p.id as profile_id from profiles p where p.workspace_id = ${scope.workspace} and p.merged_into is null${inRange(scope, 'p.id')}`;
  let text: string;
  if (set.sql === null) {
    text = set.complement ? `${live}${rowFilter('p.id')}` : `${live} and false`;
  } else if (set.complement) {
    text = `(${live}${rowFilter('p.id')}) except (${set.sql})`;
  } else {
    // EXCEPT rather than an anti-join: with the merged profiles estimated at one row, the planner
    // would scan all of them once per member.
    const merged = `select m.id from profiles m where m.workspace_id = ${scope.workspace} and m.merged_into is not null${inRange(scope, 'm.id')}`;
    const members = `(${set.sql}) except (${merged})`;
    text = rowConditions.length === 0 ? members : `select s.profile_id from (${members}) s where true${rowFilter('s.profile_id')}`;
  }
  return dropUnusedParameters(text, values, firstOwn);
}

/**
 * Removes the parameters bound from index `firstOwn` on that the text no longer mentions (parts
 * of the condition that turned out not to matter, like the rest of an and with a segment that
 * does not exist) and renumbers the others: PostgreSQL refuses a parameter it cannot type.
 */
function dropUnusedParameters(text: string, values: unknown[], firstOwn: number): string {
  const used = new Set<number>();
  for (const match of text.matchAll(/\$(\d+)/g)) used.add(Number(match[1]));
  const renumbered = new Map<number, number>();
  const kept: unknown[] = [];
  for (let index = firstOwn; index < values.length; index++) {
    if (!used.has(index + 1)) continue;
    kept.push(values[index]);
    renumbered.set(index + 1, firstOwn + kept.length);
  }
  values.splice(firstOwn, values.length - firstOwn, ...kept);
  return text.replace(/\$(\d+)/g, (placeholder, number: string) => {
    const to = renumbered.get(Number(number));
    return to === undefined ? placeholder : `$${to}`;
  });
}

/** The compile context's profile id range as a test on `column` (preceded by ` and `), or ''. */
function inRange(scope: Scope, column: string): string {
  return scope.inRange?.(column) ?? '';
}

function bindTo(values: unknown[], value: unknown, type: string): string {
  values.push(value);
  return `$${values.length}::${type}`;
}

/**
 * A set of profile ids (a query with one column, profile_id), or its complement among the live
 * profiles. `sql` null: no profiles (or, complemented, all of them). An id may appear more than once.
 */
interface ProfileSet {
  sql: string | null;
  complement: boolean;
}

const NOBODY: ProfileSet = { sql: null, complement: false };
const EVERYONE: ProfileSet = { sql: null, complement: true };

/** The condition as a list of conditions that must all hold (nested and, not-or, double not flattened). */
function flattenConjuncts(condition: Condition): Condition[] {
  if (condition.kind === 'and') return condition.conditions.flatMap(flattenConjuncts);
  if (condition.kind === 'not') {
    const inner = condition.condition;
    if (inner.kind === 'not') return flattenConjuncts(inner.condition);
    if (inner.kind === 'or') return inner.conditions.flatMap((c) => flattenConjuncts({ kind: 'not', condition: c }));
  }
  return [condition];
}

/** Whether every leaf is an event condition (so the whole tree is one grouped scan of events). */
function readsOnlyEvents(condition: Condition): boolean {
  if (condition.kind === 'event') return true;
  if (condition.kind === 'not') return readsOnlyEvents(condition.condition);
  if (condition.kind === 'and' || condition.kind === 'or') return condition.conditions.every(readsOnlyEvents);
  return false;
}

function compileSet(scope: Scope, condition: Condition): ProfileSet {
  if (isRowCondition(condition)) {
    return {
      sql: `select b.id as profile_id from profiles b where b.workspace_id = ${scope.workspace} and b.merged_into is null${inRange(scope, 'b.id')} and ${rowTest(scope, condition, 'b.id')}`,
      complement: false,
    };
  }
  switch (condition.kind) {
    case 'not': {
      const inner = compileSet(scope, condition.condition);
      return { ...inner, complement: !inner.complement };
    }
    case 'and':
    case 'or': {
      if (readsOnlyEvents(condition)) return eventSet(scope, condition);
      const events = condition.conditions.filter(readsOnlyEvents);
      const others = condition.conditions.filter((c) => !readsOnlyEvents(c));
      const sets: ProfileSet[] = [];
      if (events.length > 0) sets.push(eventSet(scope, events.length === 1 ? events[0]! : { kind: condition.kind, conditions: events }));
      for (const other of others) sets.push(compileSet(scope, other));
      return condition.kind === 'and' ? intersection(sets) : union(sets);
    }
    case 'event':
      return eventSet(scope, condition);
    case 'trait':
      return traitSet(scope, condition);
    case 'sequence':
      return { sql: sequenceSql(scope, condition), complement: false };
    case 'identifier':
      return {
        sql: `select i.profile_id from profile_identifiers i where i.workspace_id = ${scope.workspace}${inRange(scope, 'i.profile_id')} and i.type = ${scope.bind(condition.type, 'text')} and i.unbound_at is null`,
        complement: false,
      };
    case 'segment': {
      const segmentId = scope.segmentIds.get(condition.segment);
      if (segmentId === undefined) return NOBODY;
      return {
        sql: `select m.profile_id from segment_memberships m where m.workspace_id = ${scope.workspace} and m.segment_id = ${scope.bind(segmentId, 'uuid')}${inRange(scope, 'm.profile_id')}`,
        complement: false,
      };
    }
    case 'consent':
      return {
        sql: `select c.profile_id from profile_consents c where c.workspace_id = ${scope.workspace}${inRange(scope, 'c.profile_id')} and c.category = ${scope.bind(condition.category, 'text')} and c.granted`,
        complement: false,
      };
    case 'bucket':
      throw new Error('unreachable: a bucket is a row condition');
  }
}

// Set algebra on possibly complemented sets: A ∧ ¬B = A EXCEPT B, ¬A ∧ ¬B = ¬(A ∪ B), and dually.
// INTERSECT and EXCEPT return each id once; UNION ALL may repeat one.

function intersection(sets: ProfileSet[]): ProfileSet {
  if (sets.some((set) => set.sql === null && !set.complement)) return NOBODY;
  const positive = sets.filter((set) => !set.complement);
  const negative = sets.filter((set) => set.complement && set.sql !== null);
  if (positive.length === 0) return negative.length === 0 ? EVERYONE : { sql: setOp('union all', negative), complement: true };
  if (negative.length === 0) return { sql: setOp('intersect', positive), complement: false };
  return { sql: `(${setOp('intersect', positive)}) except (${setOp('union all', negative)})`, complement: false };
}

function union(sets: ProfileSet[]): ProfileSet {
  if (sets.some((set) => set.sql === null && set.complement)) return EVERYONE;
  const positive = sets.filter((set) => !set.complement && set.sql !== null);
  const negative = sets.filter((set) => set.complement);
  if (negative.length === 0) return positive.length === 0 ? NOBODY : { sql: setOp('union all', positive), complement: false };
  if (positive.length === 0) return { sql: setOp('intersect', negative), complement: true };
  return { sql: `(${setOp('intersect', negative)}) except (${setOp('union all', positive)})`, complement: true };
}

function setOp(operator: string, sets: ProfileSet[]): string {
  return sets.length === 1 ? sets[0]!.sql! : sets.map((set) => `(${set.sql})`).join(` ${operator} `);
}

/**
 * Conditions on the profile id itself (random buckets, and and/or/not of them) as a boolean over
 * the uuid expression `id`; null for any other condition. ast.ts bucket: parseInt(first 8 hex
 * digits of md5(salt + ':' + profileId), 16) % 100 in [from, to].
 */
function rowTest(scope: Scope, condition: Condition, id: string): string | null {
  switch (condition.kind) {
    case 'bucket': {
      const hash = `md5(${scope.bind(condition.salt, 'text')} || ':' || ${id}::text)`;
      return `(('x' || substr(${hash}, 1, 8))::bit(32)::bigint % 100 between ${scope.bind(condition.from, 'int')} and ${scope.bind(condition.to, 'int')})`;
    }
    case 'not': {
      const inner = rowTest(scope, condition.condition, id);
      return inner === null ? null : `not ${inner}`;
    }
    case 'and':
    case 'or': {
      if (!condition.conditions.every(isRowCondition)) return null;
      return `(${condition.conditions.map((child) => rowTest(scope, child, id)).join(` ${condition.kind} `)})`;
    }
    default:
      return null;
  }
}

function isRowCondition(condition: Condition): boolean {
  if (condition.kind === 'bucket') return true;
  if (condition.kind === 'not') return isRowCondition(condition.condition);
  if (condition.kind === 'and' || condition.kind === 'or') return condition.conditions.every(isRowCondition);
  return false;
}

// ---------------------------------------------------------------------------------------------
// A tree of conditions over one table, evaluated per profile in one grouped scan.

interface GroupLeaf {
  /** Total boolean over the group's aggregates: the leaf's answer for a profile in the group. */
  test: string;
  /** The leaf's answer for a profile with no rows in the scan. */
  empty: boolean;
}

/** Renders and/or/not of leaves, and evaluates it for a profile with no rows. */
function groupTree<L extends Condition>(
  condition: Condition,
  leaf: (condition: L) => GroupLeaf,
): { sql: string; empty: boolean } {
  switch (condition.kind) {
    case 'not': {
      const inner = groupTree(condition.condition, leaf);
      return { sql: `not ${inner.sql}`, empty: !inner.empty };
    }
    case 'and':
    case 'or': {
      const children = condition.conditions.map((child) => groupTree(child, leaf));
      const empty = condition.kind === 'and' ? children.every((child) => child.empty) : children.some((child) => child.empty);
      return { sql: `(${children.map((child) => child.sql).join(` ${condition.kind} `)})`, empty };
    }
    default: {
      const compiled = leaf(condition as L);
      return { sql: `(${compiled.test})`, empty: compiled.empty };
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Traits

/**
 * One key, at most one row per profile: the profiles whose value passes the test, or, when the
 * test holds for an absent value (neq, not_in, missing), the complement of those whose value fails it.
 */
function traitSet(scope: Scope, condition: Extract<Condition, { kind: 'trait' }>): ProfileSet {
  const [key, ...rest] = condition.trait.split('.');
  const test = valueTest(scope, jsonPath(scope, 't.value', rest), condition);
  const empty = holdsWhenAbsent(condition);
  return {
    sql: `select t.profile_id from profile_traits t where t.workspace_id = ${scope.workspace}${inRange(scope, 't.profile_id')} and t.key = ${scope.bind(key, 'text')} and ${empty ? `not ${test}` : test}`,
    complement: empty,
  };
}

// ---------------------------------------------------------------------------------------------
// Events

type EventCondition = Extract<Condition, { kind: 'event' }>;

/** Bounds on `timestamp` (ms) of the rows a condition reads; undefined = unbounded. */
interface TimeBounds {
  from?: number;
  to?: number;
}

interface EventFilter {
  sql: string;
  bounds: TimeBounds;
}

function eventFilterOf(scope: Scope, match: EventMatch, window: Window | undefined, cache: Map<string, EventFilter>): EventFilter {
  const key = JSON.stringify([match, window ?? null]);
  let filter = cache.get(key);
  if (!filter) {
    const bounds = windowBounds(scope, window);
    const tests = [matchSql(scope, match)];
    // `last` is exclusive at its start, `range` inclusive: the window is exact here, the bounds
    // of a whole scan (for partition pruning) may be looser.
    if (window?.kind === 'last') tests.push(`e.timestamp > ${bindInstant(scope, bounds.from!)}`);
    else if (bounds.from !== undefined) tests.push(`e.timestamp >= ${bindInstant(scope, bounds.from)}`);
    if (bounds.to !== undefined) tests.push(`e.timestamp < ${bindInstant(scope, bounds.to)}`);
    filter = { sql: tests.join(' and '), bounds };
    cache.set(key, filter);
  }
  return filter;
}

function windowBounds(scope: Scope, window: Window | undefined): TimeBounds {
  if (!window) return {};
  if (window.kind === 'last') return { from: scope.now - durationMs(window.duration) };
  return {
    ...(window.from !== undefined ? { from: literalInstant(window.from) } : {}),
    ...(window.to !== undefined ? { to: literalInstant(window.to) } : {}),
  };
}

/** ast.ts EventMatch over alias `e`: type, name (events.event for track, events.name otherwise), filters. */
function matchSql(scope: Scope, match: EventMatch): string {
  const tests = [`e.type = ${scope.bind(match.type, 'text')}`];
  if (match.name !== undefined) tests.push(`e.${match.type === 'track' ? 'event' : 'name'} = ${scope.bind(match.name, 'text')}`);
  for (const filter of match.filters) tests.push(valueTest(scope, eventPath(scope, filter.property), filter));
  return tests.join(' and ');
}

/** An event filter's path: into properties, or into context when its first part is `context`. */
function eventPath(scope: Scope, path: string): string {
  const parts = path.split('.');
  return parts[0] === 'context' ? jsonPath(scope, 'e.context', parts.slice(1)) : jsonPath(scope, 'e.properties', parts);
}

/** The loosest bounds covering all of them (for the scan's partition pruning). */
function coveringBounds(bounds: TimeBounds[]): TimeBounds {
  const froms = bounds.map((b) => b.from);
  const tos = bounds.map((b) => b.to);
  return {
    ...(froms.every((f) => f !== undefined) ? { from: Math.min(...(froms as number[])) } : {}),
    ...(tos.every((t) => t !== undefined) ? { to: Math.max(...(tos as number[])) } : {}),
  };
}

function boundsSql(scope: Scope, bounds: TimeBounds): string {
  let sql = '';
  if (bounds.from !== undefined) sql += ` and e.timestamp >= ${bindInstant(scope, bounds.from)}`;
  if (bounds.to !== undefined) sql += ` and e.timestamp < ${bindInstant(scope, bounds.to)}`;
  return sql;
}

function eventSet(scope: Scope, condition: Condition): ProfileSet {
  const filters = new Map<string, EventFilter>();
  const from = `from events e where e.workspace_id = ${scope.workspace} and e.profile_id is not null${inRange(scope, 'e.profile_id')}`;
  const anyOf = existsDisjunction(condition);
  if (anyOf) {
    // "Did any of …" / "did none of …": the profiles with a matching event, no grouping needed.
    const used = [...new Set(anyOf.leaves.map((leaf) => eventFilterOf(scope, leaf.match, leaf.window, filters)))];
    const scan = used.length === 1 ? used[0]!.sql : used.map((filter) => `(${filter.sql})`).join(' or ');
    const bounds = used.length === 1 ? '' : boundsSql(scope, coveringBounds(used.map((filter) => filter.bounds)));
    return { sql: `select e.profile_id ${from} and (${scan})${bounds}`, complement: anyOf.negated };
  }
  const used: EventFilter[] = [];
  for (const leaf of eventLeaves(condition)) {
    const filter = eventFilterOf(scope, leaf.match, leaf.window, filters);
    if (!used.includes(filter)) used.push(filter);
  }
  // When all leaves read the same events, every scanned row is theirs: no FILTER clauses.
  const tree = groupTree<EventCondition>(condition, (leaf) => {
    const filter = eventFilterOf(scope, leaf.match, leaf.window, filters);
    return measureLeaf(scope, leaf.measure, used.length === 1 ? null : filter.sql);
  });
  const scan = used.length === 1 ? used[0]!.sql : used.map((filter) => `(${filter.sql})`).join(' or ');
  const bounds = boundsSql(scope, coveringBounds(used.map((filter) => filter.bounds)));
  return {
    sql: `select e.profile_id ${from} and (${scan})${bounds} group by e.profile_id having ${tree.empty ? `not ${tree.sql}` : tree.sql}`,
    complement: tree.empty,
  };
}

/**
 * The condition as "some matching event exists for one of these" (or its negation), when it is
 * an or of exists conditions, an and of negated ones, or a not of either; null otherwise.
 */
function existsDisjunction(condition: Condition): { leaves: EventCondition[]; negated: boolean } | null {
  switch (condition.kind) {
    case 'event':
      return condition.measure.kind === 'exists' ? { leaves: [condition], negated: false } : null;
    case 'not': {
      const inner = existsDisjunction(condition.condition);
      return inner && { leaves: inner.leaves, negated: !inner.negated };
    }
    case 'and':
    case 'or': {
      // or(A, B) = any of A, B; and(not A, not B) = not any of A, B.
      const negated = condition.kind === 'and';
      const children = condition.conditions.map(existsDisjunction);
      if (children.some((child) => child === null || (child.negated !== negated && condition.conditions.length > 1))) return null;
      return { leaves: children.flatMap((child) => child!.leaves), negated: condition.conditions.length > 1 ? negated : children[0]!.negated };
    }
    default:
      return null;
  }
}

function eventLeaves(condition: Condition): EventCondition[] {
  if (condition.kind === 'event') return [condition];
  if (condition.kind === 'not') return eventLeaves(condition.condition);
  if (condition.kind === 'and' || condition.kind === 'or') return condition.conditions.flatMap(eventLeaves);
  return [];
}

/** ast.ts MeasureSchema: the measure over the events passing `filter` (null: every row of the group), and its test. */
function measureLeaf(scope: Scope, measure: Measure, filter: string | null): GroupLeaf {
  const over = (aggregate: string): string => (filter === null ? aggregate : `${aggregate} filter (where ${filter})`);
  switch (measure.kind) {
    case 'exists':
      return { test: `${over('count(*)')} > 0`, empty: false };
    case 'count':
      return { test: numericTest(scope, over('count(*)'), measure.test), empty: numericTestAt(measure.test, 0) };
    case 'sum': {
      const number = numberOf(eventPath(scope, measure.property));
      return { test: numericTest(scope, `coalesce(${over(`sum(${number})`)}, 0)`, measure.test), empty: numericTestAt(measure.test, 0) };
    }
    case 'avg':
    case 'min':
    case 'max': {
      const number = numberOf(eventPath(scope, measure.property));
      return { test: numericTest(scope, over(`${measure.kind}(${number})`), measure.test), empty: false };
    }
    case 'distinct': {
      const value = eventPath(scope, measure.property);
      // Equal keys for equal scalars (numbers as doubles, -0 as 0), a number never equal to a string.
      const key =
        `case jsonb_typeof(${value}) when 'string' then 's' || (${value} #>> '{}') ` +
        `when 'boolean' then 'b' || (${value} #>> '{}') ` +
        `when 'number' then 'n' || encode(float8send(${numberOf(value)} + 0), 'hex') end`;
      return { test: numericTest(scope, over(`count(distinct ${key})`), measure.test), empty: numericTestAt(measure.test, 0) };
    }
    case 'first_time':
    case 'last_time': {
      const time = over(`${measure.kind === 'first_time' ? 'min' : 'max'}(e.timestamp)`);
      const test = measure.test;
      if (test.op === 'within_last') return { test: instantWindowTest(scope, time, 'within_last', test.duration), empty: false };
      return {
        test: `coalesce(${time} ${test.op === 'before' ? '<' : '>'} ${bindInstant(scope, literalInstant(test.value))}, false)`,
        empty: false,
      };
    }
    case 'first_value':
    case 'last_value': {
      const order = measure.kind === 'first_value' ? 'e.timestamp, e.seq' : 'e.timestamp desc, e.seq desc';
      const value = `(${over(`array_agg(${eventPath(scope, measure.property)} order by ${order})`)})[1]`;
      return { test: valueTest(scope, value, measure.test), empty: holdsWhenAbsent(measure.test) };
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Sequences

/**
 * ast.ts SequenceCondition. Each first event A (inside the window) looks at the earliest then event
 * B after it in (timestamp, seq) order — a running min over the later rows, read in reverse order
 * so the frame only grows — and the profile qualifies when some A has such a B by A + within
 * (negated: has none, and A + within has passed).
 */
function sequenceSql(scope: Scope, condition: SequenceCondition): string {
  const within = durationMs(condition.within);
  const withinParam = scope.bind(`${within} milliseconds`, 'interval');
  const bounds = windowBounds(scope, condition.window);
  const filters = new Map<string, EventFilter>();
  const first = [eventFilterOf(scope, condition.first, condition.window, filters).sql];
  const then = [matchSql(scope, condition.then)];
  // A then event can only answer a first event at or after the window's start.
  if (bounds.from !== undefined) then.push(`e.timestamp >= ${bindInstant(scope, bounds.from)}`);
  let thenUntil: number | undefined;
  if (condition.negated) {
    // Only first events whose wait is over count, and their answers are then all in the past.
    first.push(`e.timestamp <= ${bindInstant(scope, scope.now - within)}`);
    thenUntil = scope.now;
    then.push(`e.timestamp <= ${scope.nowParam}`);
  } else if (bounds.to !== undefined) {
    thenUntil = bounds.to + within;
    then.push(`e.timestamp < ${bindInstant(scope, thenUntil)}`);
  }
  const firstSql = first.join(' and ');
  const thenSql = then.join(' and ');
  const scanBounds = boundsSql(scope, {
    ...(bounds.from !== undefined ? { from: bounds.from } : {}),
    ...(thenUntil !== undefined ? { to: thenUntil + 1 } : {}),
  });
  const answered = condition.negated
    ? `(s.next_then is null or s.next_then > s.timestamp + ${withinParam})`
    : `s.next_then <= s.timestamp + ${withinParam}`;
  return (
    `select s.profile_id from (select e.profile_id, e.timestamp, (${firstSql}) as is_first, ` +
    `min(case when ${thenSql} then e.timestamp end) over (partition by e.profile_id order by e.timestamp desc, e.seq desc ` +
    `rows between unbounded preceding and 1 preceding) as next_then ` +
    `from events e where e.workspace_id = ${scope.workspace} and e.profile_id is not null${inRange(scope, 'e.profile_id')} and ((${firstSql}) or (${thenSql}))${scanBounds}) s ` +
    `where s.is_first and ${answered}`
  );
}
