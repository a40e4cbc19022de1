import { useState, type FormEvent, type ReactNode } from 'react';
import { attributionChart, funnelChart, pathsChart, retentionChart, shortDuration, timeToConvertChart, touchpointChart, trendChart, type Chart, type Words } from '../analytics-model.ts';
import { api } from '../api/endpoints.ts';
import type {
  AttributionQuery,
  AttributionResult,
  Breakdown,
  DropOffSegmentResult,
  FunnelQuery,
  FunnelResult,
  PathsQuery,
  PathsResult,
  Report,
  RetentionQuery,
  RetentionResult,
  TouchpointQuery,
  TouchpointResult,
  TrendQuery,
  TrendResult,
} from '../api/types.ts';
import { canChange } from '../auth.ts';
import { ConfirmDialog, Empty, ErrorNotice, Loading } from '../components/common.tsx';
import { ChartCard } from '../components/echart.tsx';
import { useApi } from '../components/use-api.ts';
import { useI18n, type MessageKey } from '../i18n/index.tsx';
import { useRange } from '../range-context.tsx';
import { Link } from '../router.tsx';

const TABS = ['funnel', 'retention', 'paths', 'trends', 'touchpoints', 'attribution', 'boards'] as const;
type Tab = (typeof TABS)[number];
type Unit = 'minutes' | 'hours' | 'days' | 'weeks';

/** Chart words in the page's language. */
function useWords(): Words {
  const { t } = useI18n();
  return (key) => t(`chart.word.${key}` as MessageKey);
}

/** Event names seen in the workspace, offered in every event field. */
function EventNames() {
  const catalogue = useApi((signal) => api.catalogue(signal), []);
  return (
    <datalist id="analytics-event-names">
      {(catalogue.data?.items ?? [])
        .filter((item) => item.type === 'track')
        .map((item) => (
          <option key={item.name} value={item.name} />
        ))}
    </datalist>
  );
}

function EventInput({ label, value, onChange }: { label: string; value: string; onChange(value: string): void }) {
  return (
    <label>
      {label}
      <input list="analytics-event-names" value={value} required onChange={(event) => onChange(event.target.value)} />
    </label>
  );
}

/** Breakdown: none, an event property, a profile trait, or the source kind. */
function BreakdownInput({ value, onChange }: { value: Breakdown | undefined; onChange(value: Breakdown | undefined): void }) {
  const { t } = useI18n();
  const kind = value?.kind ?? '';
  const name = value?.kind === 'property' ? value.property : value?.kind === 'trait' ? value.trait : '';
  const set = (nextKind: string, nextName: string) =>
    onChange(nextKind === 'property' ? { kind: 'property', property: nextName || 'channel' } : nextKind === 'trait' ? { kind: 'trait', trait: nextName || 'city' } : nextKind === 'source' ? { kind: 'source' } : undefined);
  return (
    <>
      <label>
        {t('analytics.breakdown')}
        <select value={kind} onChange={(event) => set(event.target.value, '')}>
          <option value="">{t('analytics.breakdown.none')}</option>
          <option value="property">{t('analytics.breakdown.property')}</option>
          <option value="trait">{t('analytics.breakdown.trait')}</option>
          <option value="source">{t('analytics.breakdown.source')}</option>
        </select>
      </label>
      {(kind === 'property' || kind === 'trait') && (
        <label>
          {t('analytics.breakdown.name')}
          <input value={name} required onChange={(event) => set(kind, event.target.value)} />
        </label>
      )}
    </>
  );
}

/** Runs a query when the form is submitted; keeps the answer, the error and the query that gave it. */
function useQuery<Q, R>(run: (query: Q) => Promise<R>) {
  const [state, setState] = useState<{ query?: Q; result?: R; error?: unknown; busy: boolean }>({ busy: false });
  const submit = async (query: Q) => {
    setState((previous) => ({ ...previous, busy: true, error: undefined }));
    try {
      setState({ query, result: await run(query), busy: false });
    } catch (error) {
      setState({ query, error, busy: false });
    }
  };
  return { ...state, submit };
}

function QueryForm({ label, busy, onSubmit, children }: { label: string; busy: boolean; onSubmit(): void; children: ReactNode }) {
  const { t } = useI18n();
  return (
    <form
      className="query-form"
      aria-label={label}
      onSubmit={(event: FormEvent) => {
        event.preventDefault();
        onSubmit();
      }}
    >
      {children}
      <button type="submit" className="primary" disabled={busy}>
        {busy ? t('common.loading') : t('analytics.run')}
      </button>
    </form>
  );
}

function Warnings({ warnings }: { warnings: Array<{ field: string; message: string }> }) {
  if (!warnings.length) return null;
  return (
    <ul className="warnings">
      {warnings.map((warning, i) => (
        <li key={i}>
          <code>{warning.field}</code>: {warning.message}
        </li>
      ))}
    </ul>
  );
}

// ---- Funnel ----------------------------------------------------------------------------------

function DropOffSave({ query, step }: { query: FunnelQuery; step: number }) {
  const { t } = useI18n();
  const [open, setOpen] = useState(false);
  const [key, setKey] = useState(`funnel-dropped-step-${step}`);
  const [name, setName] = useState(t('analytics.funnel.dropOffName', { step }));
  const [error, setError] = useState<unknown>();
  const [saved, setSaved] = useState<DropOffSegmentResult | null>(null);
  if (!canChange()) return null;
  const save = async () => {
    setError(undefined);
    try {
      const { dropOff: _d, ...funnel } = query;
      setSaved(await api.dropOffSegment({ funnel, step, segment: { key, name } }));
      setOpen(false);
    } catch (caught) {
      setError(caught);
    }
  };
  return (
    <div className="drop-off-save" data-testid={`drop-off-${step}`}>
      {!open && !saved && (
        <button type="button" className="link" onClick={() => setOpen(true)}>
          {t('analytics.funnel.saveDropOffs')}
        </button>
      )}
      {open && (
        <span className="form-actions">
          <label>
            {t('analytics.funnel.segmentKey')}
            <input value={key} onChange={(event) => setKey(event.target.value)} />
          </label>
          <label>
            {t('analytics.funnel.segmentName')}
            <input value={name} onChange={(event) => setName(event.target.value)} />
          </label>
          <button type="button" className="primary" onClick={() => void save()}>
            {t('analytics.funnel.saveSegment')}
          </button>
          <button type="button" onClick={() => setOpen(false)}>
            {t('common.cancel')}
          </button>
        </span>
      )}
      {saved && (
        <span className="notice-inline" role="status" data-testid="drop-off-saved">
          {t('analytics.funnel.savedSegment', { count: saved.memberCount })} <Link to={`/segments/${encodeURIComponent(saved.key)}`}>{saved.name}</Link>
        </span>
      )}
      <ErrorNotice error={error} />
    </div>
  );
}

export function FunnelView({ result, query, report }: { result: FunnelResult; query: FunnelQuery; report: boolean }) {
  const { t, format } = useI18n();
  const words = useWords();
  const chart = funnelChart(result, words);
  const last = result.steps.at(-1);
  return (
    <>
      <ChartCard title={t('analytics.funnel.chart')} chart={chart} testId="funnel-chart" {...(report ? { report: { kind: 'funnel', definition: query as unknown as Record<string, unknown> } } : {})}>
        <table className="table compact" data-testid="funnel-steps">
          <thead>
            <tr>
              <th scope="col">{t('analytics.funnel.step')}</th>
              <th scope="col" className="num">
                {t('chart.word.profiles')}
              </th>
              <th scope="col" className="num">
                {t('analytics.funnel.fromFirst')}
              </th>
              <th scope="col" className="num">
                {t('analytics.funnel.fromPrevious')}
              </th>
              <th scope="col" className="num">
                {t('chart.word.dropped')}
              </th>
              <th scope="col" className="num">
                {t('analytics.funnel.medianTime')}
              </th>
              <th scope="col">{t('analytics.funnel.dropOffs')}</th>
            </tr>
          </thead>
          <tbody>
            {result.steps.map((step, i) => (
              <tr key={step.step}>
                <td>
                  {step.step}. {step.label}
                </td>
                <td className="num">{format.number(step.count)}</td>
                <td className="num">{format.percent(step.conversionFromFirst)}</td>
                <td className="num">{i === 0 ? '—' : format.percent(step.conversionFromPrevious)}</td>
                <td className="num">{i === 0 ? '—' : format.number(step.droppedFromPrevious)}</td>
                <td className="num">{i === 0 ? '—' : shortDuration(step.medianSecondsFromPrevious)}</td>
                <td>{i < result.steps.length - 1 && (result.steps[i + 1]!.droppedFromPrevious > 0 ? <DropOffSave query={query} step={step.step} /> : <span className="subtle">{t('analytics.funnel.noDropOffs')}</span>)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </ChartCard>
      <ChartCard title={t('analytics.funnel.timeToConvert')} chart={timeToConvertChart(result, words)} height={220}>
        <p className="help">
          {t('analytics.funnel.timeSummary', {
            converted: format.number(result.timeToConvert.converted),
            median: shortDuration(result.timeToConvert.medianSeconds),
            p90: shortDuration(result.timeToConvert.p90Seconds),
            rate: last ? format.percent(last.conversionFromFirst) : '—',
          })}
        </p>
      </ChartCard>
      {result.breakdown && (
        <section className="card" aria-label={t('analytics.breakdown')}>
          <h2>{t('analytics.breakdown')}</h2>
          <table className="table compact" data-testid="funnel-breakdown">
            <thead>
              <tr>
                <th scope="col">{t('common.value')}</th>
                {result.steps.map((step) => (
                  <th key={step.step} scope="col" className="num">
                    {step.step}. {step.label}
                  </th>
                ))}
                <th scope="col" className="num">
                  {t('analytics.funnel.conversion')}
                </th>
              </tr>
            </thead>
            <tbody>
              {result.breakdown.map((row) => (
                <tr key={row.value ?? '∅'}>
                  <td>{row.value ?? '—'}</td>
                  {row.steps.map((step) => (
                    <td key={step.step} className="num">
                      {format.number(step.count)}
                    </td>
                  ))}
                  <td className="num">{format.percent(row.steps.at(-1)?.conversionFromFirst ?? 0)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </section>
      )}
      <Warnings warnings={result.warnings} />
    </>
  );
}

function FunnelTab() {
  const { t } = useI18n();
  const { resolved } = useRange();
  const [steps, setSteps] = useState(['Product Viewed', 'Order Completed']);
  const [amount, setAmount] = useState(7);
  const [unit, setUnit] = useState<Unit>('days');
  const [order, setOrder] = useState<'sequential' | 'strict' | 'any'>('sequential');
  const [breakdown, setBreakdown] = useState<Breakdown | undefined>();
  const query = useQuery((q: FunnelQuery) => api.funnel(q));
  const build = (): FunnelQuery => ({
    range: resolved,
    steps: steps.map((event) => ({ event })),
    order,
    conversionWindow: { amount, unit },
    ...(breakdown ? { breakdown } : {}),
  });
  return (
    <>
      <QueryForm label={t('analytics.tab.funnel')} busy={query.busy} onSubmit={() => void query.submit(build())}>
        <fieldset className="steps">
          <legend>{t('analytics.funnel.steps')}</legend>
          {steps.map((step, i) => (
            <span key={i} className="inline-fields">
              <EventInput label={t('analytics.funnel.stepN', { n: i + 1 })} value={step} onChange={(value) => setSteps(steps.map((s, j) => (j === i ? value : s)))} />
              {steps.length > 2 && (
                <button type="button" className="link" onClick={() => setSteps(steps.filter((_, j) => j !== i))}>
                  {t('analytics.funnel.removeStep', { n: i + 1 })}
                </button>
              )}
            </span>
          ))}
          {steps.length < 20 && (
            <button type="button" onClick={() => setSteps([...steps, ''])}>
              {t('analytics.funnel.addStep')}
            </button>
          )}
        </fieldset>
        <label>
          {t('analytics.funnel.order')}
          <select value={order} onChange={(event) => setOrder(event.target.value as typeof order)}>
            <option value="sequential">{t('analytics.funnel.order.sequential')}</option>
            <option value="strict">{t('analytics.funnel.order.strict')}</option>
            <option value="any">{t('analytics.funnel.order.any')}</option>
          </select>
        </label>
        <label>
          {t('analytics.window')}
          <input type="number" min={1} value={amount} onChange={(event) => setAmount(Math.max(1, Number(event.target.value) || 1))} />
        </label>
        <label>
          {t('analytics.windowUnit')}
          <select value={unit} onChange={(event) => setUnit(event.target.value as Unit)}>
            {(['minutes', 'hours', 'days', 'weeks'] as const).map((value) => (
              <option key={value} value={value}>
                {t(`journeys.unit.${value}`)}
              </option>
            ))}
          </select>
        </label>
        <BreakdownInput value={breakdown} onChange={setBreakdown} />
      </QueryForm>
      <ErrorNotice error={query.error} />
      {!query.result && !query.error && <Empty>{t('analytics.funnel.empty')}</Empty>}
      {query.result && query.query && <FunnelView result={query.result} query={query.query} report />}
    </>
  );
}

// ---- Retention, paths, trends, touchpoints, attribution --------------------------------------------

export function RetentionView({ result, query }: { result: RetentionResult; query?: RetentionQuery }) {
  const { t } = useI18n();
  const words = useWords();
  if (!result.cohorts.length) return <Empty>{t('analytics.noData')}</Empty>;
  return (
    <>
      <ChartCard
        title={t('analytics.retention.chart')}
        chart={retentionChart(result, words)}
        height={Math.max(260, 60 + result.cohorts.length * 28)}
        testId="retention-chart"
        {...(query ? { report: { kind: 'retention', definition: query as unknown as Record<string, unknown> } } : {})}
      />
      <Warnings warnings={result.warnings} />
    </>
  );
}

function RetentionTab() {
  const { t } = useI18n();
  const { resolved } = useRange();
  const [start, setStart] = useState('Product Viewed');
  const [ret, setRet] = useState('Order Completed');
  const [interval, setInterval] = useState<'day' | 'week' | 'month'>('day');
  const [periods, setPeriods] = useState(7);
  const [mode, setMode] = useState<'on' | 'on_or_after'>('on');
  const query = useQuery((q: RetentionQuery) => api.retention(q));
  return (
    <>
      <QueryForm
        label={t('analytics.tab.retention')}
        busy={query.busy}
        onSubmit={() => void query.submit({ range: resolved, startEvent: { event: start }, returnEvent: { event: ret }, interval, periods, mode })}
      >
        <EventInput label={t('analytics.retention.start')} value={start} onChange={setStart} />
        <EventInput label={t('analytics.retention.return')} value={ret} onChange={setRet} />
        <label>
          {t('analytics.interval')}
          <select value={interval} onChange={(event) => setInterval(event.target.value as typeof interval)}>
            {(['day', 'week', 'month'] as const).map((value) => (
              <option key={value} value={value}>
                {t(`analytics.interval.${value}`)}
              </option>
            ))}
          </select>
        </label>
        <label>
          {t('analytics.retention.periods')}
          <input type="number" min={1} max={60} value={periods} onChange={(event) => setPeriods(Math.min(60, Math.max(1, Number(event.target.value) || 1)))} />
        </label>
        <label>
          {t('analytics.retention.mode')}
          <select value={mode} onChange={(event) => setMode(event.target.value as typeof mode)}>
            <option value="on">{t('analytics.retention.mode.on')}</option>
            <option value="on_or_after">{t('analytics.retention.mode.onOrAfter')}</option>
          </select>
        </label>
      </QueryForm>
      <ErrorNotice error={query.error} />
      {!query.result && !query.error && <Empty>{t('analytics.retention.empty')}</Empty>}
      {query.result && <RetentionView result={query.result} {...(query.query ? { query: query.query } : {})} />}
    </>
  );
}

export function PathsView({ result, query }: { result: PathsResult; query?: PathsQuery }) {
  const { t, format } = useI18n();
  if (!result.edges.length) return <Empty>{t('analytics.noData')}</Empty>;
  return (
    <>
      <ChartCard title={t('analytics.paths.chart', { anchor: result.anchor })} chart={pathsChart(result)} height={420} testId="paths-chart" {...(query ? { report: { kind: 'paths', definition: query as unknown as Record<string, unknown> } } : {})}>
        <h3>{t('analytics.paths.top')}</h3>
        <ol className="plain-list">
          {result.topPaths.slice(0, 10).map((path, i) => (
            <li key={i}>
              {path.path.join(' → ')} <span className="subtle">({format.number(path.count)})</span>
            </li>
          ))}
        </ol>
      </ChartCard>
      <Warnings warnings={result.warnings} />
    </>
  );
}

function PathsTab() {
  const { t } = useI18n();
  const { resolved } = useRange();
  const [anchor, setAnchor] = useState('Product Viewed');
  const [direction, setDirection] = useState<'after' | 'before'>('after');
  const [steps, setSteps] = useState(4);
  const query = useQuery((q: PathsQuery) => api.paths(q));
  return (
    <>
      <QueryForm label={t('analytics.tab.paths')} busy={query.busy} onSubmit={() => void query.submit({ range: resolved, anchor: { event: anchor }, direction, steps })}>
        <EventInput label={t('analytics.paths.anchor')} value={anchor} onChange={setAnchor} />
        <label>
          {t('analytics.paths.direction')}
          <select value={direction} onChange={(event) => setDirection(event.target.value as typeof direction)}>
            <option value="after">{t('analytics.paths.after')}</option>
            <option value="before">{t('analytics.paths.before')}</option>
          </select>
        </label>
        <label>
          {t('analytics.paths.steps')}
          <input type="number" min={1} max={10} value={steps} onChange={(event) => setSteps(Math.min(10, Math.max(1, Number(event.target.value) || 1)))} />
        </label>
      </QueryForm>
      <ErrorNotice error={query.error} />
      {!query.result && !query.error && <Empty>{t('analytics.paths.empty')}</Empty>}
      {query.result && <PathsView result={query.result} {...(query.query ? { query: query.query } : {})} />}
    </>
  );
}

export function TrendView({ result, query, kind }: { result: TrendResult; query?: TrendQuery; kind: 'line' | 'bar' }) {
  const { t } = useI18n();
  return (
    <>
      <ChartCard title={t('analytics.trends.chart')} chart={trendChart(result, kind)} testId="trend-chart" {...(query ? { report: { kind: 'trend', definition: query as unknown as Record<string, unknown> } } : {})} />
      {result.breakdownTruncated && <p className="help">{t('analytics.truncated')}</p>}
      <Warnings warnings={result.warnings} />
    </>
  );
}

const MEASURES = ['total', 'unique', 'per_profile', 'sum', 'avg'] as const;
function TrendsTab() {
  const { t } = useI18n();
  const { resolved } = useRange();
  const [series, setSeries] = useState<Array<{ event: string; measure: (typeof MEASURES)[number]; property: string }>>([{ event: 'Order Completed', measure: 'total', property: '' }]);
  const [interval, setInterval] = useState<'hour' | 'day' | 'week' | 'month'>('day');
  const [kind, setKind] = useState<'line' | 'bar'>('line');
  const [breakdown, setBreakdown] = useState<Breakdown | undefined>();
  const query = useQuery((q: TrendQuery) => api.trends(q));
  const build = (): TrendQuery => ({
    range: resolved,
    interval,
    series: series.map((s) => ({ event: { event: s.event }, measure: s.measure, ...(s.measure === 'sum' || s.measure === 'avg' ? { property: s.property || 'revenue' } : {}) })),
    ...(breakdown ? { breakdown } : {}),
  });
  return (
    <>
      <QueryForm label={t('analytics.tab.trends')} busy={query.busy} onSubmit={() => void query.submit(build())}>
        <fieldset className="steps">
          <legend>{t('analytics.trends.series')}</legend>
          {series.map((s, i) => (
            <span key={i} className="inline-fields">
              <EventInput label={t('analytics.trends.event', { n: i + 1 })} value={s.event} onChange={(event) => setSeries(series.map((x, j) => (j === i ? { ...x, event } : x)))} />
              <label>
                {t('analytics.trends.measure')}
                <select value={s.measure} onChange={(event) => setSeries(series.map((x, j) => (j === i ? { ...x, measure: event.target.value as (typeof MEASURES)[number] } : x)))}>
                  {MEASURES.map((measure) => (
                    <option key={measure} value={measure}>
                      {t(`analytics.measure.${measure}`)}
                    </option>
                  ))}
                </select>
              </label>
              {(s.measure === 'sum' || s.measure === 'avg') && (
                <label>
                  {t('analytics.trends.property')}
                  <input value={s.property} placeholder="revenue" onChange={(event) => setSeries(series.map((x, j) => (j === i ? { ...x, property: event.target.value } : x)))} />
                </label>
              )}
              {series.length > 1 && (
                <button type="button" className="link" onClick={() => setSeries(series.filter((_, j) => j !== i))}>
                  {t('analytics.trends.remove', { n: i + 1 })}
                </button>
              )}
            </span>
          ))}
          {series.length < 10 && (
            <button type="button" onClick={() => setSeries([...series, { event: '', measure: 'total', property: '' }])}>
              {t('analytics.trends.add')}
            </button>
          )}
        </fieldset>
        <label>
          {t('analytics.interval')}
          <select value={interval} onChange={(event) => setInterval(event.target.value as typeof interval)}>
            {(['hour', 'day', 'week', 'month'] as const).map((value) => (
              <option key={value} value={value}>
                {t(`analytics.interval.${value}`)}
              </option>
            ))}
          </select>
        </label>
        <label>
          {t('analytics.trends.kind')}
          <select value={kind} onChange={(event) => setKind(event.target.value as typeof kind)}>
            <option value="line">{t('analytics.trends.line')}</option>
            <option value="bar">{t('analytics.trends.bar')}</option>
          </select>
        </label>
        <BreakdownInput value={breakdown} onChange={setBreakdown} />
      </QueryForm>
      <ErrorNotice error={query.error} />
      {!query.result && !query.error && <Empty>{t('analytics.trends.empty')}</Empty>}
      {query.result && <TrendView result={query.result} kind={kind} {...(query.query ? { query: query.query } : {})} />}
    </>
  );
}

export function TouchpointView({ result, query }: { result: TouchpointResult; query?: TouchpointQuery }) {
  const { t, format } = useI18n();
  const words = useWords();
  if (!result.touchpoints.length) return <Empty>{t('analytics.touchpoints.none')}</Empty>;
  return (
    <ChartCard
      title={t('analytics.touchpoints.chart')}
      chart={touchpointChart(result, words, 'conversions')}
      height={Math.max(220, 40 + result.touchpoints.length * 26)}
      testId="touchpoint-chart"
      {...(query ? { report: { kind: 'touchpoints', definition: query as unknown as Record<string, unknown> } } : {})}
    >
      <table className="table compact">
        <thead>
          <tr>
            <th scope="col">{t('analytics.touchpoints.touchpoint')}</th>
            {(['exposures', 'reach', 'clicks', 'ctr', 'conversions', 'conversionRate', 'value'] as const).map((column) => (
              <th key={column} scope="col" className="num">
                {t(`analytics.touchpoints.${column}`)}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {result.touchpoints.map((row) => (
            <tr key={row.touchpoint ?? '∅'}>
              <td>{row.touchpoint ?? '—'}</td>
              <td className="num">{format.number(row.exposures)}</td>
              <td className="num">{format.number(row.reach)}</td>
              <td className="num">{format.number(row.clicks)}</td>
              <td className="num">{format.percent(row.ctr)}</td>
              <td className="num">{format.number(row.conversions)}</td>
              <td className="num">{format.percent(row.conversionRate)}</td>
              <td className="num">{format.currency(row.value)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </ChartCard>
  );
}

function TouchpointsTab() {
  const { t } = useI18n();
  const { resolved } = useRange();
  const [by, setBy] = useState<Breakdown | undefined>({ kind: 'property', property: 'template_key' });
  const [conversion, setConversion] = useState('Order Completed');
  const [sort, setSort] = useState<'conversions' | 'clicks' | 'exposures' | 'ctr' | 'value'>('conversions');
  const query = useQuery((q: TouchpointQuery) => api.touchpoints(q));
  return (
    <>
      <QueryForm label={t('analytics.tab.touchpoints')} busy={query.busy} onSubmit={() => void query.submit({ range: resolved, conversion: { event: conversion }, sort, ...(by ? { by } : {}) })}>
        <EventInput label={t('analytics.touchpoints.conversion')} value={conversion} onChange={setConversion} />
        <BreakdownInput value={by} onChange={setBy} />
        <label>
          {t('analytics.touchpoints.sort')}
          <select value={sort} onChange={(event) => setSort(event.target.value as typeof sort)}>
            {(['conversions', 'clicks', 'exposures', 'ctr', 'value'] as const).map((value) => (
              <option key={value} value={value}>
                {t(`analytics.touchpoints.${value}`)}
              </option>
            ))}
          </select>
        </label>
      </QueryForm>
      <p className="help">{t('analytics.touchpoints.help')}</p>
      <ErrorNotice error={query.error} />
      {!query.result && !query.error && <Empty>{t('analytics.touchpoints.empty')}</Empty>}
      {query.result && <TouchpointView result={query.result} {...(query.query ? { query: query.query } : {})} />}
    </>
  );
}

const MODELS = ['first_touch', 'last_touch', 'last_non_direct', 'linear', 'time_decay', 'position_based', 'markov'] as const;
export function AttributionView({ result, query }: { result: AttributionResult; query?: AttributionQuery }) {
  const { t, format } = useI18n();
  if (!Object.keys(result.models).length || result.conversions === 0) return <Empty>{t('analytics.attribution.none')}</Empty>;
  return (
    <>
      <ChartCard title={t('analytics.attribution.chart')} chart={attributionChart(result)} testId="attribution-chart" {...(query ? { report: { kind: 'attribution', definition: query as unknown as Record<string, unknown> } } : {})}>
        <p className="help">
          {t('analytics.attribution.summary', { conversions: format.number(result.conversions), value: format.currency(result.value), unattributed: format.number(result.unattributed.conversions) })}
        </p>
      </ChartCard>
      <Warnings warnings={result.warnings} />
    </>
  );
}

function AttributionTab() {
  const { t } = useI18n();
  const { resolved } = useRange();
  const [conversion, setConversion] = useState('Order Completed');
  const [touch, setTouch] = useState('Message Clicked');
  const [channel, setChannel] = useState('channel');
  const [models, setModels] = useState<Array<(typeof MODELS)[number]>>(['first_touch', 'last_touch', 'linear', 'markov']);
  const query = useQuery((q: AttributionQuery) => api.attribution(q));
  return (
    <>
      <QueryForm
        label={t('analytics.tab.attribution')}
        busy={query.busy}
        onSubmit={() => void query.submit({ range: resolved, conversion: { event: conversion }, touchpoints: [{ event: touch }], channel: { kind: 'property', property: channel }, valueProperty: 'revenue', models })}
      >
        <EventInput label={t('analytics.attribution.conversion')} value={conversion} onChange={setConversion} />
        <EventInput label={t('analytics.attribution.touch')} value={touch} onChange={setTouch} />
        <label>
          {t('analytics.attribution.channel')}
          <input value={channel} required onChange={(event) => setChannel(event.target.value)} />
        </label>
        <fieldset className="models">
          <legend>{t('analytics.attribution.models')}</legend>
          {MODELS.map((model) => (
            <label key={model} className="checkbox">
              <input
                type="checkbox"
                checked={models.includes(model)}
                onChange={(event) => setModels(event.target.checked ? [...models, model] : models.filter((m) => m !== model))}
              />
              {t(`analytics.model.${model}`)}
            </label>
          ))}
        </fieldset>
      </QueryForm>
      <ErrorNotice error={query.error} />
      {!query.result && !query.error && <Empty>{t('analytics.attribution.empty')}</Empty>}
      {query.result && <AttributionView result={query.result} {...(query.query ? { query: query.query } : {})} />}
    </>
  );
}

// ---- Boards: the saved reports, run and drawn ----------------------------------------------------

function SavedReport({ report, onArchived }: { report: Report; onArchived(): void }) {
  const { t } = useI18n();
  const { resolved } = useRange();
  const run = useApi((signal) => api.runReport(report.key, resolved, signal), [report.key, resolved.from, resolved.to]);
  const [confirm, setConfirm] = useState(false);
  const [error, setError] = useState<unknown>();
  const result = run.data?.result;
  let body: ReactNode = <Loading />;
  if (run.error) body = <ErrorNotice error={run.error} onRetry={run.reload} />;
  else if (result) {
    const definition = report.definition;
    switch (report.kind) {
      case 'funnel':
        body = <FunnelView result={result as unknown as FunnelResult} query={{ ...(definition as unknown as FunnelQuery), range: resolved }} report={false} />;
        break;
      case 'retention':
        body = <RetentionView result={result as unknown as RetentionResult} />;
        break;
      case 'paths':
        body = <PathsView result={result as unknown as PathsResult} />;
        break;
      case 'trend':
        body = <TrendView result={result as unknown as TrendResult} kind="line" />;
        break;
      case 'touchpoints':
        body = <TouchpointView result={result as unknown as TouchpointResult} />;
        break;
      case 'attribution':
        body = <AttributionView result={result as unknown as AttributionResult} />;
        break;
      default:
        body = <pre>{JSON.stringify(result, null, 2).slice(0, 2000)}</pre>;
    }
  }
  const archive = async () => {
    try {
      await api.archiveReport(report.key);
      setConfirm(false);
      onArchived();
    } catch (caught) {
      setError(caught);
      setConfirm(false);
    }
  };
  return (
    <section className="board-item" aria-label={report.name} data-testid={`report-${report.key}`}>
      <header className="card-header">
        <h2>
          {report.name} <span className="chip">{t(`analytics.tab.${report.kind === 'trend' ? 'trends' : report.kind}` as MessageKey)}</span> <span className="subtle">v{report.version}</span>
        </h2>
        {canChange() && (
          <button type="button" className="link" onClick={() => setConfirm(true)}>
            {t('analytics.boards.remove')}
          </button>
        )}
      </header>
      <ErrorNotice error={error} />
      {body}
      <ConfirmDialog open={confirm} message={t('analytics.boards.removeConfirm', { name: report.name })} onConfirm={() => void archive()} onCancel={() => setConfirm(false)} />
    </section>
  );
}

function BoardsTab() {
  const { t } = useI18n();
  const reports = useApi((signal) => api.reports(signal), []);
  const live = (reports.data?.items ?? []).filter((report) => report.status !== 'archived');
  return (
    <>
      <ErrorNotice error={reports.error} onRetry={reports.reload} />
      {reports.loading && !reports.data && <Loading />}
      {reports.data && live.length === 0 && <Empty>{t('analytics.boards.empty')}</Empty>}
      {live.map((report) => (
        <SavedReport key={report.key} report={report} onArchived={reports.reload} />
      ))}
    </>
  );
}

export function AnalyticsPage({ tab }: { tab: string }) {
  const { t } = useI18n();
  const current: Tab = (TABS as readonly string[]).includes(tab) ? (tab as Tab) : 'funnel';
  return (
    <>
      <div className="page-head">
        <h1>{t('analytics.title')}</h1>
      </div>
      <nav className="tabs" aria-label={t('analytics.tabs')}>
        {TABS.map((value) => (
          <Link key={value} to={value === 'funnel' ? '/analytics' : `/analytics/${value}`} className="tab" aria-current={value === current ? 'page' : undefined}>
            {t(`analytics.tab.${value}`)}
          </Link>
        ))}
      </nav>
      <EventNames />
      {current === 'funnel' && <FunnelTab />}
      {current === 'retention' && <RetentionTab />}
      {current === 'paths' && <PathsTab />}
      {current === 'trends' && <TrendsTab />}
      {current === 'touchpoints' && <TouchpointsTab />}
      {current === 'attribution' && <AttributionTab />}
      {current === 'boards' && <BoardsTab />}
    </>
  );
}

export type { Chart };
