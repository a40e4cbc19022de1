import { BarChart, HeatmapChart, LineChart, SankeyChart } from 'echarts/charts';
import { AriaComponent, GridComponent, LegendComponent, TooltipComponent, VisualMapComponent } from 'echarts/components';
import * as echarts from 'echarts/core';
import { CanvasRenderer } from 'echarts/renderers';
import { useEffect, useRef, useState, type ReactNode } from 'react';
import { toCsv, reportKey, type Chart } from '../analytics-model.ts';
import { api } from '../api/endpoints.ts';
import type { Report } from '../api/types.ts';
import { canChange } from '../auth.ts';
import { useI18n } from '../i18n/index.tsx';
import { ErrorNotice } from './common.tsx';

// Only the chart kinds the pages draw: a smaller chunk than the whole library.
echarts.use([BarChart, LineChart, HeatmapChart, SankeyChart, GridComponent, TooltipComponent, LegendComponent, VisualMapComponent, AriaComponent, CanvasRenderer]);

type Instance = ReturnType<typeof echarts.init>;

/** A thin React wrapper of ECharts: one instance per element, options replaced on change, resized with its box. */
export function EChart({ option, label, height = 320, onInstance }: { option: Record<string, unknown>; label: string; height?: number; onInstance?(chart: Instance | null): void }) {
  const element = useRef<HTMLDivElement>(null);
  const chart = useRef<Instance | null>(null);
  useEffect(() => {
    const instance = echarts.init(element.current!, undefined, { renderer: 'canvas' });
    chart.current = instance;
    onInstance?.(instance);
    const observer = new ResizeObserver(() => instance.resize());
    observer.observe(element.current!);
    return () => {
      observer.disconnect();
      onInstance?.(null);
      instance.dispose();
      chart.current = null;
    };
  }, []);
  useEffect(() => {
    chart.current?.setOption(option, { notMerge: true });
  }, [option]);
  return <div ref={element} className="echart" role="img" aria-label={label} style={{ height }} />;
}

function download(name: string, href: string): void {
  const link = document.createElement('a');
  link.href = href;
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
}

/** Saves the chart's query as a saved report (the workspace's board), under a name the user gives. */
function SaveToBoard({ kind, definition, title }: { kind: string; definition: Record<string, unknown>; title: string }) {
  const { t } = useI18n();
  const [open, setOpen] = useState(false);
  const [name, setName] = useState(title);
  const [error, setError] = useState<unknown>();
  const [saved, setSaved] = useState<Report | null>(null);
  const save = async () => {
    setError(undefined);
    try {
      setSaved(await api.createReport({ key: reportKey(name, Date.now().toString(36)), name, kind: kind as 'funnel', definition }));
      setOpen(false);
    } catch (caught) {
      setError(caught);
    }
  };
  if (!canChange()) return null;
  return (
    <span className="save-board">
      {!open && (
        <button type="button" onClick={() => setOpen(true)}>
          {t('chart.saveToBoard')}
        </button>
      )}
      {open && (
        <span className="form-actions">
          <label>
            {t('chart.reportName')}
            <input value={name} onChange={(event) => setName(event.target.value)} />
          </label>
          <button type="button" className="primary" disabled={!name.trim()} onClick={() => void save()}>
            {t('common.save')}
          </button>
          <button type="button" onClick={() => setOpen(false)}>
            {t('common.cancel')}
          </button>
        </span>
      )}
      {saved && (
        <span className="notice-inline" role="status">
          {t('chart.saved', { name: saved.name })}
        </span>
      )}
      <ErrorNotice error={error} />
    </span>
  );
}

/** A chart with its title, PNG and CSV export, and "save to board" when its query is given. */
export function ChartCard(props: { title: string; chart: Chart; height?: number; testId?: string; report?: { kind: string; definition: Record<string, unknown> }; children?: ReactNode }) {
  const { t } = useI18n();
  const instance = useRef<Instance | null>(null);
  const file = props.title.replace(/[^\p{L}\p{N}]+/gu, '-').replace(/^-|-$/g, '') || 'chart';
  return (
    <section className="card chart-card" aria-label={props.title} data-testid={props.testId}>
      <header className="card-header">
        <h2>{props.title}</h2>
        <div className="row-actions">
          {props.report && <SaveToBoard kind={props.report.kind} definition={props.report.definition} title={props.title} />}
          <button type="button" onClick={() => instance.current && download(`${file}.png`, instance.current.getDataURL({ type: 'png', pixelRatio: 2, backgroundColor: '#fff' }))}>
            {t('chart.exportPng')}
          </button>
          <button type="button" onClick={() => download(`${file}.csv`, URL.createObjectURL(new Blob([toCsv(props.chart.csv)], { type: 'text/csv;charset=utf-8' })))}>
            {t('chart.exportCsv')}
          </button>
        </div>
      </header>
      <EChart option={props.chart.option} label={props.title} height={props.height} onInstance={(chart) => (instance.current = chart)} />
      {props.children}
    </section>
  );
}
