import { eventMatchOf, periodLabel, windowMs, type Breakdown, type EventSelector, type Interval } from '../definition.ts';
import type { ReportContext } from '../run.ts';
import { TIME_TO_CONVERT_BUCKETS } from '../stats.ts';
import { matchFunnel, type MatchSpec } from './funnel-match.ts';
import { sealedFieldOf } from '../../privacy/pii-hashes.ts';
import { uuidText, type ColumnarStore } from './store.ts';

/*
 * Funnels on the columnar copy (store.ts): one scan of the candidate events in the range (DuckDB,
 * columnar, both cores), sorted by (profile, time, seq), streamed to this process in column
 * vectors, matched per profile by the TypeScript restatement of 0042 (funnel-match.ts) and
 * aggregated here into the same rows the PostgreSQL query returns (funnel.ts shapes both alike).
 *
 * What it cannot answer it declines (`columnarFunnelSupport` says why) and PostgreSQL answers:
 * property filters on steps or exclusions, a segment filter, a trait breakdown, a property
 * breakdown under `context.` or by a sealed PII field.
 */

/** The query shape both engines share (funnel.ts's FunnelQuery, restated to avoid an import cycle). */
export interface ColumnarFunnelQuery {
  steps: EventSelector[];
  order?: 'sequential' | 'strict' | 'any';
  conversionWindow?: { amount: number; unit: 'minutes' | 'hours' | 'days' | 'weeks' };
  exclusions?: Array<{ event: EventSelector; fromStep: number; toStep: number }>;
  breakdown?: Breakdown;
  breakdownAttribution?: 'first_touch' | 'last_touch' | number;
  trendInterval?: Interval;
  segment?: unknown;
  sourceKinds?: string[];
  dropOff?: { step: number; breakdownValue?: string | null; limit?: number };
}

export interface ColumnarFunnelRow {
  overall: boolean;
  by_breakdown: boolean;
  bd: string | null;
  period: string | null;
  [column: string]: unknown;
}

export interface ColumnarFunnelAnswer {
  rows: ColumnarFunnelRow[];
  dropOffProfileIds?: string[];
}

/** Null when the columnar engine can answer the query, else the reason it declines. */
export function columnarFunnelSupport(query: ColumnarFunnelQuery): string | null {
  const selectors = [...query.steps, ...(query.exclusions ?? []).map((exclusion) => exclusion.event)];
  if (selectors.some((selector) => (selector.filters ?? []).length > 0)) return 'property filters on a step or exclusion';
  if (query.segment !== undefined) return 'a segment filter';
  if (query.breakdown?.kind === 'trait') return 'a trait breakdown';
  if (query.breakdown?.kind === 'property' && query.breakdown.property.split('.')[0] === 'context') return 'a context breakdown';
  // The copy holds properties as stored (PII sealed per event), not their keyed hashes (events.pii_hashes).
  if (query.breakdown?.kind === 'property' && sealedFieldOf(query.breakdown.property)) return 'a breakdown by personal data';
  return null;
}

export const sqlText = (text: string) => `'${text.replaceAll("'", "''")}'`;

export function selectorDuck(selector: EventSelector): string {
  const match = eventMatchOf(selector);
  const tests = [`type = ${sqlText(match.type)}`];
  if (match.name !== undefined) tests.push(`${match.type === 'track' ? 'event' : 'name'} = ${sqlText(match.name)}`);
  return `(${tests.join(' and ')})`;
}

export function breakdownDuck(breakdown: Breakdown | undefined, sources: ReportContext['q']['sources']): string {
  if (!breakdown) return 'null::varchar';
  if (breakdown.kind === 'source') {
    const pairs = (sources?.ids ?? []).map((id, index) => `when ${sqlText(uuidText(id))}::uuid then ${sqlText(sources!.kinds[index]!)}`);
    return pairs.length ? `case source_id ${pairs.join(' ')} end` : 'null::varchar';
  }
  if (breakdown.kind === 'property') {
    const jsonPath = '$' + breakdown.property.split('.').map((part) => `."${part.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`).join('');
    return `json_extract_string(properties, ${sqlText(jsonPath)})`;
  }
  throw new Error('trait breakdowns are answered by PostgreSQL');
}

/** Each event's source kind as its index in `kinds` (null when the source is unknown or absent). */
function sourceKindCodeDuck(kinds: readonly string[], sources: ReportContext['q']['sources']): string {
  const pairs = (sources?.ids ?? []).map((id, index) => `when ${sqlText(uuidText(id))}::uuid then ${kinds.indexOf(sources!.kinds[index]!)}`);
  return pairs.length ? `(case source_id ${pairs.join(' ')} end)::integer` : 'null::integer';
}

/** PostgreSQL's percentile_cont over sorted values. */
function percentileCont(sorted: Float64Array | number[], p: number): number | null {
  if (sorted.length === 0) return null;
  const position = p * (sorted.length - 1);
  const low = Math.floor(position);
  const high = Math.ceil(position);
  return sorted[low]! + (sorted[high]! - sorted[low]!) * (position - low);
}

class Group {
  counts: number[];
  gaps: number[][];
  totals: number[] = [];
  constructor(readonly n: number) {
    this.counts = Array<number>(n).fill(0);
    this.gaps = Array.from({ length: n }, () => []);
  }
  add(reached: number, times: readonly number[]): void {
    for (let k = 0; k < reached; k++) this.counts[k]! += 1;
    for (let k = 1; k < reached; k++) this.gaps[k]!.push((times[k]! - times[k - 1]!) / 1e6);
    if (reached === this.n) this.totals.push((times[this.n - 1]! - times[0]!) / 1e6);
  }
  row(key: Pick<ColumnarFunnelRow, 'overall' | 'by_breakdown' | 'bd' | 'period'>): ColumnarFunnelRow {
    const row: ColumnarFunnelRow = { ...key };
    for (let k = 0; k < this.n; k++) row[`c${k + 1}`] = this.counts[k];
    for (let k = 1; k < this.n; k++) {
      const gaps = Float64Array.from(this.gaps[k]!).sort();
      row[`m${k + 1}`] = percentileCont(gaps, 0.5);
      row[`a${k + 1}`] = gaps.length ? gaps.reduce((sum, gap) => sum + gap, 0) / gaps.length : null;
    }
    const totals = Float64Array.from(this.totals).sort();
    row.ttc_median = percentileCont(totals, 0.5);
    row.ttc_p90 = percentileCont(totals, 0.9);
    TIME_TO_CONVERT_BUCKETS.forEach((upTo, index) => {
      const lower = index === 0 ? -Infinity : TIME_TO_CONVERT_BUCKETS[index - 1]!;
      const upper = upTo === null ? Infinity : upTo;
      let count = 0;
      for (const total of totals) if (total >= lower && total < upper) count++;
      row[`h${index}`] = count;
    });
    return row;
  }
}

/**
 * The rows of one sort group (one profile hash) split by the second hash: one list of row indexes
 * per profile, in order of first appearance, each keeping the rows' (time, seq) order.
 */
export function splitProfiles(secondHashes: readonly number[]): number[][] {
  const byHash = new Map<number, number[]>();
  secondHashes.forEach((hash, row) => {
    const rows = byHash.get(hash);
    if (rows) rows.push(row);
    else byHash.set(hash, [row]);
  });
  return [...byHash.values()];
}

const pick = <T>(values: ArrayLike<T>, rows: readonly number[]): T[] => rows.map((row) => values[row]!);

export async function columnarFunnel(store: ColumnarStore, context: ReportContext, query: ColumnarFunnelQuery): Promise<ColumnarFunnelAnswer> {
  const n = query.steps.length;
  const order = query.order ?? 'sequential';
  const window = query.conversionWindow ?? { amount: 14, unit: 'days' as const };
  const exclusions = query.exclusions ?? [];
  const stepTests = query.steps.map(selectorDuck);
  const exclusionTests = exclusions.map((exclusion) => selectorDuck(exclusion.event));
  const mask = [...stepTests.map((test, k) => `(case when ${test} then ${2 ** k} else 0 end)`), ...exclusionTests.map((test, x) => `(case when ${test} then ${2 ** (20 + x)} else 0 end)`)].join(' | ');
  const candidate = order === 'strict' ? `type in ('track', 'page', 'screen')` : `(${[...stepTests, ...exclusionTests].join(' or ')})`;
  const fromUs = Math.round(context.range.fromMs * 1000);
  const toUs = Math.round((context.range.toMs + windowMs(window)) * 1000);
  let sourceFilter = 'true';
  if (query.sourceKinds) {
    const ids = (context.q.sources?.ids ?? []).filter((_, index) => query.sourceKinds!.includes(context.q.sources!.kinds[index]!));
    sourceFilter = ids.length ? `source_id in (${ids.map((id) => `${sqlText(uuidText(id))}::uuid`).join(', ')})` : 'false';
  }
  const wantIds = query.dropOff !== undefined;
  // A source breakdown crosses into this process as a small integer (an index into the kinds) rather
  // than a string per row: decoding 5M strings was most of what the source-kind breakdown added.
  const kinds = query.breakdown?.kind === 'source' ? [...new Set(context.q.sources?.kinds ?? [])] : null;
  const breakdownSql = kinds ? sourceKindCodeDuck(kinds, context.q.sources) : breakdownDuck(query.breakdown, context.q.sources);
  // Sorted by a 53-bit hash of the profile rather than the uuid itself: on the 20M-event benchmark
  // (5M candidate events) DuckDB's sort takes about 1.6 s of CPU instead of 2.8 s. Profiles whose
  // hashes collide would interleave, so a second hash, of the uuid's text (independent of the
  // first), comes along to tell them apart (splitProfiles).
  const sql = `
    select p, t, m, q${query.breakdown ? ', bd' : ''}${wantIds ? ', id' : ''} from (
      select (hash(profile_id) >> 11)::double as p, ts_us::double as t, seq, (${mask})::integer as m,
             (hash(profile_id::varchar) >> 11)::double as q, ${breakdownSql} as bd${wantIds ? ', profile_id::varchar as id' : ''}
        from events
       where workspace_id = ${sqlText(uuidText(context.workspaceId))}::uuid and ts_us >= ${fromUs} and ts_us < ${toUs}
         and ${candidate} and ${sourceFilter})
     order by p, t, seq`;

  const spec: MatchSpec = {
    steps: n,
    window: windowMs(window) * 1000,
    order,
    startBefore: context.range.toMs * 1000,
    exclusionFrom: exclusions.map((x) => x.fromStep - 1),
    exclusionTo: exclusions.map((x) => x.toStep - 1),
  };
  const attribution = query.breakdownAttribution ?? 'first_touch';
  const overall = new Group(n);
  const byBreakdown = new Map<string | null, Group>();
  const byPeriod = new Map<string, Group>();
  const labels = new Map<number, string>();
  const periodOf = (us: number) => {
    // Every time zone's offset is a multiple of 15 minutes: one label per quarter hour.
    const quarter = Math.floor(us / 900_000_000);
    let label = labels.get(quarter);
    if (label === undefined) labels.set(quarter, (label = periodLabel(quarter * 900_000, query.trendInterval!, context.timeZone)));
    return label;
  };
  const dropOff: string[] = [];

  const pointers = new Int32Array(Math.max(n, 1));
  const times: number[] = [];
  const countProfile = (ts: ArrayLike<number>, masks: ArrayLike<number>, size: number, bds: ReadonlyArray<string | null>, id: string | null) => {
    const hit = matchFunnel(ts, masks, 0, size, spec, pointers);
    if (hit.length === 0) return;
    const reached = hit.length;
    const index = attribution === 'first_touch' ? hit[0]! : attribution === 'last_touch' ? hit[reached - 1]! : hit[attribution - 1];
    const bd = index === undefined || !query.breakdown ? null : bds[index]!;
    times.length = 0;
    for (const position of hit) times.push(ts[position]!);
    overall.add(reached, times);
    if (query.breakdown) {
      let group = byBreakdown.get(bd);
      if (!group) byBreakdown.set(bd, (group = new Group(n)));
      group.add(reached, times);
    }
    if (query.trendInterval) {
      const period = periodOf(times[0]!);
      let group = byPeriod.get(period);
      if (!group) byPeriod.set(period, (group = new Group(n)));
      group.add(reached, times);
    }
    if (query.dropOff && reached === query.dropOff.step && (query.dropOff.breakdownValue === undefined || query.dropOff.breakdownValue === bd)) dropOff.push(id!);
  };

  // One profile's rows at a time, in buffers reused from profile to profile (a fresh array per
  // profile was a good part of this process's CPU on half a million profiles: garbage collection).
  let capacity = 1024;
  let ts = new Float64Array(capacity);
  let masks = new Int32Array(capacity);
  let qs = new Float64Array(capacity);
  const bds: Array<string | null> = [];
  const ids: string[] = [];
  let size = 0;
  let currentKey = NaN;
  let collided = false;
  const grow = () => {
    capacity *= 2;
    const grown = <T extends Float64Array | Int32Array>(old: T, fresh: T): T => {
      fresh.set(old);
      return fresh;
    };
    ts = grown(ts, new Float64Array(capacity));
    masks = grown(masks, new Int32Array(capacity));
    qs = grown(qs, new Float64Array(capacity));
  };
  const flush = () => {
    if (size === 0) return;
    if (!collided) countProfile(ts, masks, size, bds, wantIds ? ids[0]! : null);
    else {
      for (const rows of splitProfiles(Array.from(qs.subarray(0, size)))) {
        countProfile(pick(ts, rows), pick(masks, rows), rows.length, pick(bds, rows), wantIds ? ids[rows[0]!]! : null);
      }
    }
    size = 0;
    bds.length = 0;
    ids.length = 0;
    collided = false;
  };

  await store.streamChunks(sql, (chunk, rowCount) => {
    const keys = chunk.getColumnVector(0);
    const tv = chunk.getColumnVector(1);
    const mv = chunk.getColumnVector(2);
    const qv = chunk.getColumnVector(3);
    const bv = query.breakdown ? chunk.getColumnVector(4) : null;
    const iv = wantIds ? chunk.getColumnVector(query.breakdown ? 5 : 4) : null;
    for (let row = 0; row < rowCount; row++) {
      const key = keys.getItem(row) as number;
      const q = qv.getItem(row) as number;
      if (key !== currentKey) {
        flush();
        currentKey = key;
      } else if (q !== qs[0]) {
        collided = true;
      }
      if (size === capacity) grow();
      ts[size] = tv.getItem(row) as number;
      masks[size] = mv.getItem(row) as number;
      qs[size] = q;
      size++;
      if (bv) {
        const value = bv.getItem(row) as string | number | null;
        bds.push(kinds && value !== null ? kinds[value as number]! : (value as string | null));
      }
      if (iv) ids.push(iv.getItem(row) as string);
    }
  });
  flush();

  const rows: ColumnarFunnelRow[] = [overall.row({ overall: true, by_breakdown: false, bd: null, period: null })];
  for (const [bd, group] of byBreakdown) rows.push(group.row({ overall: false, by_breakdown: true, bd, period: null }));
  for (const [period, group] of byPeriod) rows.push(group.row({ overall: false, by_breakdown: false, bd: null, period }));
  const answer: ColumnarFunnelAnswer = { rows };
  if (query.dropOff) answer.dropOffProfileIds = dropOff.sort();
  return answer;
}
