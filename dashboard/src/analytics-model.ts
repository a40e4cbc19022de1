import type { AttributionResult, FunnelResult, PathsResult, RetentionResult, TouchpointResult, TrendResult } from './api/types.ts';

/*
 * The analytics pages' pure logic: each answer of the analytics API as chart options (ECharts'
 * plain-object options) and as CSV rows. No React and no ECharts import here, so it is tested on
 * its own and the options are plain data.
 */

export type Rows = Array<Array<string | number | null>>;
export type ChartOption = Record<string, unknown>;
export interface Chart {
  option: ChartOption;
  csv: Rows;
}
/** The words a chart needs, in the page's language. */
export type Words = (key: string) => string;

const PALETTE = ['#2f5bea', '#e8684a', '#5ad8a6', '#f6bd16', '#6dc8ec', '#945fb9', '#ff9845', '#1e9493', '#ff99c3', '#5d7092'];
const base = (): ChartOption => ({ color: PALETTE, aria: { enabled: true }, animation: false, textStyle: { fontFamily: 'system-ui, sans-serif' } });

/** CSV text (RFC 4180 quoting), with a BOM so spreadsheet programs read Chinese correctly. */
export function toCsv(rows: Rows): string {
  const cell = (value: string | number | null) => {
    if (value === null || value === undefined) return '';
    const text = String(value);
    return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
  };
  return '\uFEFF' + rows.map((row) => row.map(cell).join(',')).join('\r\n') + '\r\n';
}

/** A report key from a name: lower-case letters, digits, _ and -, starting with a letter or digit, plus a short suffix. */
export function reportKey(name: string, suffix: string): string {
  const slug = name
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 40);
  return `${slug || 'report'}-${suffix}`.slice(0, 64);
}

const round = (value: number, digits = 4) => Math.round(value * 10 ** digits) / 10 ** digits;

export function funnelChart(result: FunnelResult, words: Words): Chart {
  const labels = result.steps.map((step) => `${step.step}. ${step.label}`);
  const option: ChartOption = {
    ...base(),
    tooltip: { trigger: 'axis', axisPointer: { type: 'shadow' } },
    legend: { data: [words('converted'), words('dropped')] },
    grid: { left: 48, right: 24, top: 40, bottom: 48 },
    xAxis: { type: 'category', data: labels },
    yAxis: { type: 'value' },
    series: [
      {
        name: words('converted'),
        type: 'bar',
        stack: 'funnel',
        data: result.steps.map((step) => step.count),
        label: { show: true, position: 'inside', formatter: (p: { dataIndex: number }) => `${Math.round((result.steps[p.dataIndex]?.conversionFromFirst ?? 0) * 1000) / 10}%` },
      },
      { name: words('dropped'), type: 'bar', stack: 'funnel', data: result.steps.map((step, i) => (i === 0 ? 0 : step.droppedFromPrevious)), itemStyle: { color: '#f3c6bd' } },
    ],
  };
  const csv: Rows = [
    ['step', 'event', 'profiles', 'conversion_from_first', 'conversion_from_previous', 'dropped_from_previous', 'median_seconds_from_previous'],
    ...result.steps.map((step) => [step.step, step.label, step.count, round(step.conversionFromFirst), round(step.conversionFromPrevious), step.droppedFromPrevious, step.medianSecondsFromPrevious]),
  ];
  return { option, csv };
}

/** A duration in seconds as 45s / 12m / 3.5h / 2.1d. */
export function shortDuration(seconds: number | null): string {
  if (seconds === null) return '∞';
  if (seconds < 60) return `${Math.round(seconds)}s`;
  if (seconds < 3600) return `${Math.round(seconds / 60)}m`;
  if (seconds < 86_400) return `${round(seconds / 3600, 1)}h`;
  return `${round(seconds / 86_400, 1)}d`;
}

export function timeToConvertChart(result: FunnelResult, words: Words): Chart {
  const labels = result.timeToConvert.distribution.map((bucket) => `≤ ${shortDuration(bucket.upToSeconds)}`);
  return {
    option: {
      ...base(),
      tooltip: { trigger: 'axis' },
      grid: { left: 48, right: 24, top: 24, bottom: 40 },
      xAxis: { type: 'category', data: labels },
      yAxis: { type: 'value', name: words('profiles') },
      series: [{ type: 'bar', name: words('converted'), data: result.timeToConvert.distribution.map((bucket) => bucket.count) }],
    },
    csv: [['up_to_seconds', 'converted'], ...result.timeToConvert.distribution.map((bucket) => [bucket.upToSeconds, bucket.count])],
  };
}

export function retentionChart(result: RetentionResult, words: Words): Chart {
  const periods = Math.max(0, ...result.cohorts.map((cohort) => cohort.rates.length));
  const xs = Array.from({ length: periods }, (_, k) => `${words('period')} ${k}`);
  const ys = result.cohorts.map((cohort) => (cohort.breakdownValue !== undefined ? `${cohort.cohort} · ${cohort.breakdownValue ?? '—'}` : cohort.cohort) + ` (${cohort.size})`);
  const data: Array<[number, number, number | '-']> = [];
  result.cohorts.forEach((cohort, y) => cohort.rates.forEach((rate, x) => data.push([x, y, rate === null ? '-' : round(rate * 100, 1)])));
  const option: ChartOption = {
    ...base(),
    tooltip: { position: 'top' },
    grid: { left: 150, right: 24, top: 16, bottom: 80 },
    xAxis: { type: 'category', data: xs, splitArea: { show: true } },
    yAxis: { type: 'category', data: ys, inverse: true, splitArea: { show: true } },
    visualMap: { min: 0, max: 100, calculable: true, orient: 'horizontal', left: 'center', bottom: 8, text: ['100%', '0%'], inRange: { color: ['#f0f4ff', '#2f5bea'] } },
    series: [{ name: words('retained'), type: 'heatmap', data, label: { show: true, formatter: (p: { value: [number, number, number | '-'] }) => (p.value[2] === '-' ? '' : `${p.value[2]}%`) } }],
  };
  const csv: Rows = [
    ['cohort', 'breakdown', 'size', ...xs.map((_, k) => `period_${k}`)],
    ...result.cohorts.map((cohort) => [cohort.cohort, cohort.breakdownValue ?? null, cohort.size, ...cohort.rates.map((rate) => (rate === null ? null : round(rate)))]),
    ['average', null, null, ...result.average.map((rate) => (rate === null ? null : round(rate)))],
  ];
  return { option, csv };
}

export function pathsChart(result: PathsResult): Chart {
  const labelOf = new Map(result.nodes.map((node) => [node.id, node.label]));
  const option: ChartOption = {
    ...base(),
    tooltip: { trigger: 'item' },
    series: [
      {
        type: 'sankey',
        left: 16,
        right: 120,
        top: 16,
        bottom: 16,
        emphasis: { focus: 'adjacency' },
        nodeGap: 10,
        data: result.nodes.map((node) => ({ name: node.id, value: node.count })),
        links: result.edges.map((edge) => ({ source: edge.source, target: edge.target, value: edge.count })),
        label: { formatter: (p: { name: string }) => labelOf.get(p.name) ?? p.name },
        lineStyle: { color: 'gradient', opacity: 0.4 },
      },
    ],
  };
  const csv: Rows = [['source', 'source_label', 'target', 'target_label', 'profiles'], ...result.edges.map((edge) => [edge.source, labelOf.get(edge.source) ?? '', edge.target, labelOf.get(edge.target) ?? '', edge.count])];
  return { option, csv };
}

export function trendChart(result: TrendResult, kind: 'line' | 'bar'): Chart {
  const name = (series: { label: string; breakdownValue?: string | null }) => (series.breakdownValue !== undefined ? `${series.label} · ${series.breakdownValue ?? '—'}` : series.label);
  const all = [...result.series.map((series) => ({ name: name(series), values: series.values })), ...result.formulas.map((formula) => ({ name: formula.breakdownValue !== undefined ? `${formula.name} · ${formula.breakdownValue ?? '—'}` : formula.name, values: formula.values }))];
  const option: ChartOption = {
    ...base(),
    tooltip: { trigger: 'axis' },
    legend: { type: 'scroll', data: all.map((series) => series.name) },
    grid: { left: 48, right: 24, top: 48, bottom: 40 },
    xAxis: { type: 'category', data: result.periods },
    yAxis: { type: 'value' },
    series: all.map((series) => ({ name: series.name, type: kind, data: series.values, ...(kind === 'line' ? { smooth: false, showSymbol: result.periods.length < 40 } : {}) })),
  };
  const csv: Rows = [['period', ...all.map((series) => series.name)], ...result.periods.map((period, i) => [period, ...all.map((series) => series.values[i] ?? null)])];
  return { option, csv };
}

export function touchpointChart(result: TouchpointResult, words: Words, measure: 'conversions' | 'clicks' | 'exposures' | 'value' = 'conversions'): Chart {
  const rows = [...result.touchpoints].reverse();
  const option: ChartOption = {
    ...base(),
    tooltip: { trigger: 'axis', axisPointer: { type: 'shadow' } },
    grid: { left: 160, right: 40, top: 16, bottom: 32 },
    xAxis: { type: 'value' },
    yAxis: { type: 'category', data: rows.map((row) => row.touchpoint ?? '—') },
    series: [{ type: 'bar', name: words(measure), data: rows.map((row) => row[measure]), label: { show: true, position: 'right' } }],
  };
  const csv: Rows = [
    ['touchpoint', 'exposures', 'reach', 'clicks', 'clickers', 'ctr', 'conversions', 'conversion_rate', 'value'],
    ...result.touchpoints.map((row) => [row.touchpoint, row.exposures, row.reach, row.clicks, row.clickers, round(row.ctr), row.conversions, round(row.conversionRate), row.value]),
  ];
  return { option, csv };
}

export function attributionChart(result: AttributionResult, measure: 'conversions' | 'value' = 'conversions'): Chart {
  const models = Object.keys(result.models);
  const channels = [...new Set(models.flatMap((model) => result.models[model]!.map((credit) => credit.channel)))].sort();
  const credit = (model: string, channel: string) => result.models[model]!.find((c) => c.channel === channel)?.[measure] ?? 0;
  const option: ChartOption = {
    ...base(),
    tooltip: { trigger: 'axis', axisPointer: { type: 'shadow' } },
    legend: { data: models },
    grid: { left: 48, right: 24, top: 40, bottom: 40 },
    xAxis: { type: 'category', data: channels },
    yAxis: { type: 'value' },
    series: models.map((model) => ({ name: model, type: 'bar', data: channels.map((channel) => round(credit(model, channel), 2)) })),
  };
  const csv: Rows = [['channel', ...models], ...channels.map((channel) => [channel, ...models.map((model) => round(credit(model, channel), 4))])];
  return { option, csv };
}
