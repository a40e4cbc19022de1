import { sealedFieldOf } from '../../privacy/pii-hashes.ts';
import type { ChannelJourney, ConversionPath, Touch } from '../attribution-models.ts';
import { windowMs, type Breakdown, type EventSelector } from '../definition.ts';
import type { ReportContext } from '../run.ts';
import { breakdownDuck, selectorDuck, sqlText } from './funnel.ts';
import { uuidText, type ColumnarStore } from './store.ts';

/*
 * Attribution journeys on the columnar copy (store.ts): one DuckDB scan of the conversions and
 * touches from the lookback before the range to its end, sorted by (profile, time, seq), streamed
 * here in column vectors and cut per profile into what attribution.ts's PostgreSQL queries return
 * (DuckDB's own join and ordered list aggregates had not finished after 170 CPU-s at 20M events):
 * each conversion in the range with its touches in the lookback before it, and the touch journeys
 * (in the range) of the profiles without a conversion. The models stay in attribution-models.ts.
 *
 * It declines (`columnarAttributionSupport` says why, PostgreSQL answers): property filters on the
 * conversion or a touchpoint, a segment filter, a trait channel, a `context.` or personal-data
 * channel or value property.
 */

/** The query shape both engines share (attribution.ts's AttributionQuery, restated to avoid an import cycle). */
export interface ColumnarAttributionQuery {
  conversion: EventSelector;
  touchpoints: EventSelector[];
  valueProperty?: string;
  channel: Breakdown;
  direct?: string;
  lookback?: { amount: number; unit: 'minutes' | 'hours' | 'days' | 'weeks' };
  segment?: unknown;
  sourceKinds?: string[];
}

export interface AttributionJourneys {
  /** Every conversion in the range (touches oldest first; none when unattributed). */
  paths: ConversionPath[];
  /** Touch journeys in the range of the touched profiles that did not convert, counted per channel sequence. */
  lost: ChannelJourney[];
}

/** Null when the columnar engine can answer the query, else the reason it declines. */
export function columnarAttributionSupport(query: ColumnarAttributionQuery): string | null {
  if ([query.conversion, ...query.touchpoints].some((selector) => (selector.filters ?? []).length > 0)) return 'property filters on the conversion or a touchpoint';
  if (query.segment !== undefined) return 'a segment filter';
  if (query.channel.kind === 'trait') return 'a trait channel';
  for (const property of [query.channel.kind === 'property' ? query.channel.property : undefined, query.valueProperty]) {
    if (property === undefined) continue;
    if (property.split('.')[0] === 'context') return 'a context channel or value property';
    // The copy holds properties as stored (PII sealed per event), not their keyed hashes (events.pii_hashes).
    if (sealedFieldOf(property)) return 'a channel or value property of personal data';
  }
  return null;
}

const NUMBER_TEXT = /^-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?$/;

/**
 * `coalesce(numberOf(properties #> path), 0)` (segments/sql/values.ts, migration 0008) on the
 * stored properties text: a JSON number, or a string that is a decimal number in full; a magnitude
 * beyond a double is no number.
 */
export function conversionValue(propertiesText: string | null, parts: readonly string[]): number {
  if (propertiesText === null) return 0;
  let node: unknown = JSON.parse(propertiesText);
  for (const part of parts) {
    if (Array.isArray(node)) {
      if (!/^-?[0-9]+$/.test(part)) return 0;
      const index = Number(part);
      node = node[index < 0 ? node.length + index : index];
    } else if (node !== null && typeof node === 'object') {
      node = Object.hasOwn(node, part) ? (node as Record<string, unknown>)[part] : undefined;
    } else return 0;
  }
  const number = typeof node === 'number' ? node : typeof node === 'string' && NUMBER_TEXT.test(node) ? Number(node) : NaN;
  return Number.isFinite(number) ? number : 0;
}

export async function columnarAttributionJourneys(store: ColumnarStore, context: ReportContext, query: ColumnarAttributionQuery, withLost: boolean): Promise<AttributionJourneys> {
  const lookbackUs = windowMs(query.lookback ?? { amount: 30, unit: 'days' }) * 1000;
  const direct = query.direct ?? 'direct';
  const fromUs = Math.round(context.range.fromMs * 1000);
  const toUs = Math.round(context.range.toMs * 1000);
  const conversionTest = selectorDuck(query.conversion);
  const touchTest = `(${query.touchpoints.map(selectorDuck).join(' or ')})`;
  let sourceFilter = 'true';
  if (query.sourceKinds) {
    const ids = (context.q.sources?.ids ?? []).filter((_, index) => query.sourceKinds!.includes(context.q.sources!.kinds[index]!));
    sourceFilter = ids.length ? `source_id in (${ids.map((id) => `${sqlText(uuidText(id))}::uuid`).join(', ')})` : 'false';
  }
  const valueParts = query.valueProperty?.split('.');
  // A conversion counts in the range only; a touch from the lookback before it.
  const sql = `
    select (hash(profile_id) >> 11)::double as p, ts_us::double as t,
           (${conversionTest} and ts_us >= ${fromUs})::boolean as c, ${touchTest}::boolean as k,
           coalesce(${breakdownDuck(query.channel, context.q.sources)}, ${sqlText(direct)}) as ch,
           ${valueParts ? `case when ${conversionTest} and ts_us >= ${fromUs} then properties end` : 'null::varchar'} as v
      from events
     where workspace_id = ${sqlText(uuidText(context.workspaceId))}::uuid and ts_us >= ${Math.round(fromUs - lookbackUs)} and ts_us < ${toUs}
       and (${conversionTest} or ${touchTest}) and ${sourceFilter}
     order by profile_id, ts_us, seq`;

  const paths: ConversionPath[] = [];
  const lost = new Map<string, ChannelJourney>();
  let touchTimes: number[] = [];
  let touchChannels: string[] = [];
  let converted = false;
  /** Touches before this index are older than any later conversion's lookback (times only grow). */
  let inWindow = 0;
  const flush = () => {
    if (withLost && !converted && touchTimes.length > 0) {
      const channels = touchChannels.filter((_, index) => touchTimes[index]! >= fromUs);
      if (channels.length > 0) {
        // The PostgreSQL query groups equal channel arrays; a separator no channel text holds keeps them apart.
        const key = channels.join('\u0000');
        const journey = lost.get(key);
        if (journey) journey.count++;
        else lost.set(key, { channels, converted: false, count: 1 });
      }
    }
    touchTimes = [];
    touchChannels = [];
    converted = false;
    inWindow = 0;
  };

  let currentKey = NaN;
  await store.streamChunks(sql, (chunk, rowCount) => {
    const [keys, tv, cv, kv, chv, vv] = [0, 1, 2, 3, 4, 5].map((column) => chunk.getColumnVector(column));
    for (let row = 0; row < rowCount; row++) {
      const key = keys!.getItem(row) as number;
      if (key !== currentKey) {
        flush();
        currentKey = key;
      }
      const t = tv!.getItem(row) as number;
      // A row both conversion and touch: the conversion first, as it is no touch of itself ((t, seq) < (c, seq)).
      if (cv!.getItem(row) === true) {
        converted = true;
        while (inWindow < touchTimes.length && touchTimes[inWindow]! <= t - lookbackUs) inWindow++;
        const touches: Touch[] = [];
        for (let index = inWindow; index < touchTimes.length; index++) touches.push({ channel: touchChannels[index]!, ageSeconds: (t - touchTimes[index]!) / 1e6 });
        paths.push({ touches, value: valueParts ? conversionValue(vv!.getItem(row) as string | null, valueParts) : 0 });
      }
      if (kv!.getItem(row) === true) {
        touchTimes.push(t);
        touchChannels.push(chv!.getItem(row) as string);
      }
    }
  });
  flush();
  return { paths, lost: [...lost.values()] };
}
