import { ApiError } from '../api/errors.ts';
import { conditionFromInput } from '../segments/definition.ts';
import { compileSegmentPredicate } from '../segments/sql/compile.ts';
import { jsonPath, valueTest, type Scope } from '../segments/sql/values.ts';
import { normalisePiiValue, sealedFieldOf, type SealedField } from '../privacy/pii-hashes.ts';
import type { PropertyFilter } from '../segments/ast.ts';
import { findSegmentByKey, listLiveSegments, segmentIdsByKey } from '../segments/store.ts';
import type { Queryable } from '../storage/database.ts';
import { eventMatchOf, type Breakdown, type EventSelector, type ResolvedRange, type SegmentFilter } from './definition.ts';

/*
 * SQL fragments of the shared query definition, over `events e` (alias fixed), with every literal a
 * bound parameter. One QuerySql per query: $1 is always the workspace id; the time zone is bound on first use.
 */

export interface QuerySql {
  values: unknown[];
  /** Adds a parameter and returns its placeholder with a cast, e.g. `$3::text`. */
  bind(value: unknown, type: string): string;
  /** The segment language's scope, for its value tests. */
  scope: Scope;
  workspace: string;
  timeZone: string;
  /** The workspace's sources (id → kind), when loaded: a source breakdown looks the kind up in them instead of a subquery per event. */
  sources?: { ids: string[]; kinds: string[] };
  /** The workspace's keyed hash (privacy/pii-codec.ts `hash`): literals compared with sealed PII fields become tokens. */
  piiHash?: (value: unknown) => string;
}

export function querySql(workspaceId: string, timeZone: string, now: Date): QuerySql {
  const values: unknown[] = [workspaceId];
  const bind = (value: unknown, type: string) => {
    values.push(value);
    return `$${values.length}::${type}`;
  };
  let nowParam: string | undefined;
  const scope: Scope = {
    bind,
    workspace: '$1::uuid',
    now: now.getTime(),
    get nowParam() {
      nowParam ??= bind(now.toISOString(), 'timestamptz');
      return nowParam;
    },
    segmentIds: new Map(),
  };
  let zone: string | undefined;
  return {
    values,
    bind,
    scope,
    workspace: '$1::uuid',
    get timeZone() {
      zone ??= bind(timeZone, 'text');
      return zone;
    },
  };
}

/** A path into `e.properties`, or into `e.context` when it starts with `context.`, as jsonb. */
export function eventPathSql(q: QuerySql, path: string, alias = 'e'): string {
  const parts = path.split('.');
  return parts[0] === 'context' ? jsonPath(q.scope, `${alias}.context`, parts.slice(1)) : jsonPath(q.scope, `${alias}.properties`, parts);
}

/** Whether `e` matches the selector: track events by `event`, page/screen views by `name`, and every filter. */
export function selectorSql(q: QuerySql, selector: EventSelector, alias = 'e'): string {
  const match = eventMatchOf(selector);
  const tests = [`${alias}.type = ${q.bind(match.type, 'text')}`];
  if (match.name !== undefined) tests.push(`${alias}.${match.type === 'track' ? 'event' : 'name'} = ${q.bind(match.name, 'text')}`);
  match.filters.forEach((filter, index) => tests.push(filterSql(q, filter, index, alias)));
  return `(${tests.join(' and ')})`;
}

const PII_EQUALITY = new Set(['eq', 'neq', 'in', 'not_in']);

/**
 * One property condition. On a sealed PII field (privacy/pii-hashes.ts) presence reads the sealed
 * value and equality compares keyed hashes (the literals normalised and hashed like the stored
 * values); anything else would need the plaintext of every event and is refused.
 */
function filterSql(q: QuerySql, filter: PropertyFilter, index: number, alias: string): string {
  const sealed = sealedFieldOf(filter.property);
  if (!sealed || (!sealed.nested && (filter.op === 'exists' || filter.op === 'missing'))) return valueTest(q.scope, eventPathSql(q, filter.property, alias), filter);
  if (sealed.nested || !PII_EQUALITY.has(filter.op)) {
    throw new ApiError(
      400,
      'pii_filter_unsupported',
      `${filter.property} is personal data stored encrypted: only exists, missing, eq, neq, in and not_in work on it as a whole value (${sealed.nested ? 'a path inside it' : filter.op} cannot be evaluated)`,
      `filters.${index}`,
    );
  }
  const token = (value: unknown) => piiTokenOf(q, sealed, value);
  let hashed: PropertyFilter;
  if (filter.op === 'eq' || filter.op === 'neq') hashed = { ...filter, value: token(filter.value) };
  else if (filter.op === 'in' || filter.op === 'not_in') hashed = { ...filter, values: filter.values.map(token) };
  else throw new Error(`unreachable: ${filter.op}`);
  return valueTest(q.scope, `(${alias}.pii_hashes -> ${q.bind(sealed.field, 'text')})`, hashed);
}

/** The token a value of a sealed field is stored under (`pii_hashes`). */
export function piiTokenOf(q: QuerySql, sealed: SealedField, value: unknown): string {
  if (!q.piiHash) throw new Error('The query has no PII hash key: build it with reportContext');
  return q.piiHash(normalisePiiValue(sealed.key, value));
}

export function rangeSql(q: QuerySql, range: ResolvedRange, alias = 'e', extendMs = 0): string {
  return `${alias}.timestamp >= ${q.bind(new Date(range.fromMs).toISOString(), 'timestamptz')} and ${alias}.timestamp < ${q.bind(new Date(range.toMs + extendMs).toISOString(), 'timestamptz')}`;
}

/** The local period (label text) an event falls in, in the workspace time zone. */
export function periodSql(q: QuerySql, interval: string, format: string, column = 'e.timestamp'): string {
  return `to_char(date_trunc(${q.bind(interval, 'text')}, ${column} at time zone ${q.timeZone}), ${q.bind(format, 'text')})`;
}

/** Only events of sources of these kinds. */
export function sourceKindsSql(q: QuerySql, kinds: readonly string[] | undefined, alias = 'e'): string {
  if (!kinds) return 'true';
  return `${alias}.source_id in (select s.id from sources s where s.workspace_id = ${q.workspace} and s.kind = any(${q.bind(kinds, 'text[]')}))`;
}

/** A breakdown value (text, null when absent) of event `e`. */
export function breakdownSql(q: QuerySql, breakdown: Breakdown | undefined, alias = 'e'): string {
  if (!breakdown) return 'null::text';
  if (breakdown.kind === 'property') {
    // A sealed PII field groups by its keyed hash (equal values, equal group); the answer shows the values (analytics/personal-data.ts).
    const sealed = sealedFieldOf(breakdown.property);
    if (!sealed) return `(${eventPathSql(q, breakdown.property, alias)} #>> '{}')`;
    if (sealed.nested) {
      throw new ApiError(400, 'pii_breakdown_unsupported', `${breakdown.property} is inside personal data stored encrypted; break down by ${sealed.field.replace(/^properties\./, '')} as a whole`, 'breakdown.property');
    }
    return `(${alias}.pii_hashes ->> ${q.bind(sealed.field, 'text')})`;
  }
  if (breakdown.kind === 'source') {
    if (q.sources) return `(${q.bind(q.sources.kinds, 'text[]')})[array_position(${q.bind(q.sources.ids, 'uuid[]')}, ${alias}.source_id)]`;
    return `(select s.kind from sources s where s.workspace_id = ${q.workspace} and s.id = ${alias}.source_id)`;
  }
  return `(select t.value #>> '{}' from profile_traits t where t.workspace_id = ${q.workspace} and t.profile_id = ${alias}.profile_id and t.key = ${q.bind(breakdown.trait, 'text')})`;
}

/**
 * A predicate on a profile id column restricting it to a segment: a saved segment's current
 * members, or the profiles an inline definition/text selects now (the segment SQL compiler).
 */
export async function segmentFilterSql(db: Queryable, q: QuerySql, filter: SegmentFilter | undefined, column: string, now: Date): Promise<string> {
  if (!filter) return 'true';
  const given = [filter.key, filter.definition, filter.text].filter((part) => part !== undefined).length;
  if (given !== 1) throw new ApiError(400, 'invalid_request', 'Give the segment filter as one of key, definition or text', 'segment');
  if (filter.key !== undefined) {
    const segment = await findSegmentByKey(db, q.values[0] as string, filter.key);
    if (!segment || segment.status === 'archived') throw new ApiError(400, 'unknown_segment', `No live segment "${filter.key}" in this workspace`, 'segment.key');
    return `${column} in (select m.profile_id from segment_memberships m where m.workspace_id = ${q.workspace} and m.segment_id = ${q.bind(segment.id, 'uuid')})`;
  }
  const condition = conditionFromInput(filter.definition !== undefined ? { definition: filter.definition } : { text: filter.text! });
  const live = await listLiveSegments(db, q.values[0] as string);
  const predicate = compileSegmentPredicate(condition!, { workspaceId: q.values[0] as string, now, segmentIds: segmentIdsByKey(live) }, q.values, q.workspace);
  return `${column} in (select p.id from profiles p where p.workspace_id = ${q.workspace} and ${predicate})`;
}
