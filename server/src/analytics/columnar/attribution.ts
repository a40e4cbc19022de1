import type { DuckDBConnection, DuckDBListValue, DuckDBValue } from '@duckdb/node-api';
import { sealedFieldOf } from '../../privacy/pii-hashes.ts';
import type { ChannelJourney, ConversionPath } from '../attribution-models.ts';
import { windowMs, type Breakdown, type EventSelector } from '../definition.ts';
import type { ReportContext } from '../run.ts';
import { breakdownDuck, selectorDuck, sqlText } from './funnel.ts';
import { uuidText, type ColumnarStore } from './store.ts';

/*
 * Attribution journeys on the columnar copy (store.ts), gathered by DuckDB (columnar, both cores)
 * in the shape attribution.ts's PostgreSQL queries return: each conversion in the range with its
 * touches in the lookback before it (channels and ages listed in (time, seq) order), and the touch
 * journeys in the range of the profiles without a conversion, counted per channel sequence. Only
 * those lists reach this process (not every touch row); the models stay in attribution-models.ts.
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
  const selected = `
    conversions as (
      select profile_id, ts_us, seq, ${valueParts ? 'properties' : 'null::varchar'} as v from events
       where workspace_id = ${sqlText(uuidText(context.workspaceId))}::uuid and ts_us >= ${fromUs} and ts_us < ${toUs} and ${conversionTest} and ${sourceFilter}
    ),
    touches as (
      select profile_id, ts_us, seq, coalesce(${breakdownDuck(query.channel, context.q.sources)}, ${sqlText(direct)}) as ch from events
       where workspace_id = ${sqlText(uuidText(context.workspaceId))}::uuid and ts_us >= ${Math.round(fromUs - lookbackUs)} and ts_us < ${toUs} and ${touchTest} and ${sourceFilter}
    )`;
  // Each conversion with its touches in the lookback before it (a conversion is no touch of itself: (t, seq) < (c, seq)).
  const pathsSql = `with ${selected}
    select c.v, list(t.ch order by t.ts_us, t.seq) filter (where t.profile_id is not null) as chs,
           list((c.ts_us - t.ts_us)::double order by t.ts_us, t.seq) filter (where t.profile_id is not null) as ages
      from conversions c
      left join touches t on t.profile_id = c.profile_id and t.ts_us > c.ts_us - ${lookbackUs}
                         and (t.ts_us < c.ts_us or (t.ts_us = c.ts_us and t.seq < c.seq))
     group by c.profile_id, c.ts_us, c.seq, c.v`;
  // The touch journeys in the range of the profiles without a conversion, counted per channel sequence.
  const lostSql = `with ${selected}
    select chs, count(*)::double as n from (
      select list(ch order by ts_us, seq) as chs from touches t
       where ts_us >= ${fromUs} and not exists (select 1 from conversions c where c.profile_id = t.profile_id)
       group by profile_id
    ) group by chs`;

  const connection: DuckDBConnection = await store.reader();
  try {
    const paths: ConversionPath[] = [];
    for (const [v, chs, ages] of await rowsOf(connection, pathsSql)) {
      const channels = (chs as DuckDBListValue | null)?.items ?? [];
      const ageItems = (ages as DuckDBListValue | null)?.items ?? [];
      paths.push({
        touches: channels.map((channel, index) => ({ channel: channel as string, ageSeconds: (ageItems[index] as number) / 1e6 })),
        value: valueParts ? conversionValue(v as string | null, valueParts) : 0,
      });
    }
    if (!withLost) return { paths, lost: [] };
    const lost: ChannelJourney[] = (await rowsOf(connection, lostSql)).map(([chs, n]) => ({
      channels: (chs as DuckDBListValue).items.map((channel) => channel as string),
      converted: false,
      count: n as number,
    }));
    return { paths, lost };
  } finally {
    connection.closeSync();
  }
}

async function rowsOf(connection: DuckDBConnection, sql: string): Promise<DuckDBValue[][]> {
  const result = await connection.run(sql);
  return result.getRows();
}
