import { describe, expect, it } from 'vitest';
import { attributionChart, funnelChart, pathsChart, reportKey, retentionChart, shortDuration, toCsv, trendChart } from '../src/analytics-model.ts';
import type { FunnelResult, JourneyDefinition, RetentionResult } from '../src/api/types.ts';
import {
  addNodeAfter,
  connect,
  liveNumbers,
  localProblems,
  mergeProblems,
  newNode,
  outputs,
  positions,
  problemsByNode,
  removeNode,
  replaceNode,
  starterDefinition,
  UNCONNECTED,
} from '../src/journey-model.ts';

const words = (key: string) => key;

describe('journey canvas model', () => {
  it('inserts a step between a linked node and its successor, and links an open output directly', () => {
    const start = starterDefinition();
    const { definition, id } = addNodeAfter(start, 'delay', 'entry');
    expect(id).toBe('delay-1');
    const byId = new Map(definition.nodes.map((node) => [node.id, node]));
    expect(outputs(byId.get('entry')!)).toEqual([{ field: 'next', target: 'delay-1' }]);
    expect(outputs(byId.get('delay-1')!)).toEqual([{ field: 'next', target: 'end' }]);
    // The end moved down below the new node.
    const at = positions(definition);
    expect(at.get('delay-1')!.y).toBeGreaterThan(at.get('entry')!.y);
    expect(at.get('end')!.y).toBeGreaterThan(at.get('delay-1')!.y);

    // A split's first open output (yes) takes the next new node.
    const withSplit = addNodeAfter(definition, 'split', null);
    const linked = addNodeAfter(withSplit.definition, 'send', withSplit.id, 'welcome');
    const split = linked.definition.nodes.find((node) => node.id === 'split-1')!;
    expect(outputs(split)).toEqual([
      { field: 'yes', target: 'send-1' },
      { field: 'no', target: UNCONNECTED },
    ]);
    expect(linked.definition.nodes.find((node) => node.id === 'send-1')).toMatchObject({ kind: 'send', template: 'welcome', next: UNCONNECTED });
  });

  it('connects, cuts and removes: links to a removed node become open outputs, the entry cannot be removed', () => {
    let definition: JourneyDefinition = addNodeAfter(starterDefinition(), 'random', null).definition;
    definition = connect(definition, 'random-1', 'branches.1.next', 'end');
    expect(outputs(definition.nodes.find((node) => node.id === 'random-1')!).map((o) => o.target)).toEqual([UNCONNECTED, 'end']);
    const without = removeNode(definition, 'end');
    expect(without.nodes.map((node) => node.id)).toEqual(['entry', 'random-1']);
    expect(outputs(without.nodes[0]!)).toEqual([{ field: 'next', target: UNCONNECTED }]);
    expect(removeNode(definition, 'entry')).toBe(definition);
  });

  it('renaming a node keeps every link to it', () => {
    const definition = addNodeAfter(starterDefinition(), 'wait', 'entry').definition;
    const wait = definition.nodes.find((node) => node.id === 'wait-1')!;
    const renamed = replaceNode(definition, 'wait-1', { ...wait, id: 'wait-for-order' });
    expect(outputs(renamed.nodes[0]!)).toEqual([{ field: 'next', target: 'wait-for-order' }]);
  });

  it('puts problems on their nodes, by node id or by the nodes.N of the field; local ones replace the API\'s "does not exist" for open outputs', () => {
    const definition: JourneyDefinition = { nodes: [...starterDefinition().nodes, newNode('split', 'split-1', { x: 0, y: 400 })] };
    const api = [
      { node: 'split-1', field: 'nodes.2.yes', message: 'Node "_unconnected" does not exist' },
      { field: 'nodes.2', message: 'Node "split-1" cannot be reached from the entry node' },
      { field: 'goals.0.condition', message: 'bad condition' },
    ];
    const merged = mergeProblems(definition, api);
    expect(localProblems(definition).map((p) => p.field)).toEqual(['nodes.2.yes', 'nodes.2.no']);
    const byNode = problemsByNode(definition, merged);
    expect(byNode.get('split-1')!.map((p) => p.message)).toEqual([
      'Connect the "yes" output to a node',
      'Connect the "no" output to a node',
      'Node "split-1" cannot be reached from the entry node',
    ]);
    expect(byNode.get('')!.map((p) => p.field)).toEqual(['goals.0.condition']);
  });

  it('gives every node kind the outputs the engine walks', () => {
    const kinds = ['delay', 'wait', 'split', 'random', 'send', 'end'] as const;
    expect(Object.fromEntries(kinds.map((kind) => [kind, outputs(newNode(kind, kind, { x: 0, y: 0 })).map((o) => o.field)]))).toEqual({
      delay: ['next'],
      wait: ['happened', 'timedOut'],
      split: ['yes', 'no'],
      random: ['branches.0.next', 'branches.1.next'],
      send: ['next'],
      end: [],
    });
  });

  it('reads live numbers per node and per edge', () => {
    const numbers = liveNumbers({
      version: 1,
      nodes: [{ nodeId: 'entry', kind: 'entry', entered: 3, waiting: 0, exited: 0, converted: 1 }],
      edges: [{ source: 'entry', target: 'end', count: 2 }],
      versions: [{ version: 1, active: 0, completed: 2, converted: 1, exited: 0 }],
    });
    expect(numbers.nodes.get('entry')).toEqual({ entered: 3, waiting: 0, converted: 1, exited: 0 });
    expect(numbers.edges.get('entry→end')).toBe(2);
    expect(liveNumbers(undefined).nodes.size).toBe(0);
  });
});

describe('analytics charts and exports', () => {
  const funnel: FunnelResult = {
    steps: [
      { step: 1, label: 'Product Viewed', count: 10, conversionFromFirst: 1, conversionFromPrevious: 1, droppedFromPrevious: 0, medianSecondsFromPrevious: null, averageSecondsFromPrevious: null },
      { step: 2, label: 'Order Completed', count: 4, conversionFromFirst: 0.4, conversionFromPrevious: 0.4, droppedFromPrevious: 6, medianSecondsFromPrevious: 90, averageSecondsFromPrevious: 100 },
    ],
    timeToConvert: { converted: 4, medianSeconds: 90, p90Seconds: 7200, distribution: [{ upToSeconds: 60, count: 1 }, { upToSeconds: null, count: 3 }] },
    warnings: [],
    range: { from: '2026-12-01', to: '2026-12-07', timeZone: 'Asia/Shanghai' },
  };

  it('draws a funnel as converted and dropped bars per step, and exports every number', () => {
    const chart = funnelChart(funnel, words);
    const series = chart.option.series as Array<{ name: string; data: number[] }>;
    expect(series.map((s) => [s.name, s.data])).toEqual([
      ['converted', [10, 4]],
      ['dropped', [0, 6]],
    ]);
    expect(chart.csv[2]).toEqual([2, 'Order Completed', 4, 0.4, 0.4, 6, 90]);
  });

  it('writes CSV with quoting and a BOM for spreadsheets', () => {
    expect(toCsv([['a', 'b,c'], ['上海', 'say "hi"'], [null, 1]])).toBe('\uFEFFa,"b,c"\r\n上海,"say ""hi"""\r\n,1\r\n');
  });

  it('lays retention out as a cohort × period heat map with empty cells for periods not begun', () => {
    const retention: RetentionResult = {
      cohorts: [
        { cohort: '2026-12-01', size: 10, retained: [10, 4], rates: [1, 0.4] },
        { cohort: '2026-12-02', size: 5, retained: [5, null], rates: [1, null] },
      ],
      average: [1, 0.4],
      warnings: [],
      range: { from: '', to: '', timeZone: 'UTC' },
    };
    const chart = retentionChart(retention, words);
    expect((chart.option.series as Array<{ data: unknown[] }>)[0]!.data).toEqual([
      [0, 0, 100],
      [1, 0, 40],
      [0, 1, 100],
      [1, 1, '-'],
    ]);
    expect(chart.csv.at(-1)).toEqual(['average', null, null, 1, 0.4]);
  });

  it('draws paths as a Sankey by node id with the event names as labels; trends and attribution per series and model', () => {
    const paths = pathsChart({ anchor: 'A', profiles: 2, nodes: [{ id: '0:A', step: 0, label: 'A', count: 2, ended: 0 }, { id: '1:B', step: 1, label: 'B', count: 2, ended: 2 }], edges: [{ source: '0:A', target: '1:B', count: 2 }], topPaths: [], warnings: [] });
    expect((paths.option.series as Array<{ links: unknown[] }>)[0]!.links).toEqual([{ source: '0:A', target: '1:B', value: 2 }]);
    expect(paths.csv[1]).toEqual(['0:A', 'A', '1:B', 'B', 2]);

    const trend = trendChart(
      { periods: ['d1', 'd2'], series: [{ key: 'A', label: 'Order', measure: 'total', breakdownValue: 'web', values: [1, null], total: 1 }], formulas: [], breakdownTruncated: false, warnings: [], range: { from: '', to: '', timeZone: 'UTC' } },
      'bar',
    );
    expect(trend.csv).toEqual([['period', 'Order · web'], ['d1', 1], ['d2', null]]);

    const attribution = attributionChart({
      conversions: 2,
      value: 0,
      unattributed: { conversions: 0, value: 0 },
      models: { first_touch: [{ channel: 'email', conversions: 2, value: 0 }], linear: [{ channel: 'email', conversions: 1, value: 0 }, { channel: 'sms', conversions: 1, value: 0 }] },
      warnings: [],
    });
    expect(attribution.csv).toEqual([['channel', 'first_touch', 'linear'], ['email', 2, 1], ['sms', 0, 1]]);
  });

  it('names durations and report keys', () => {
    expect([shortDuration(30), shortDuration(600), shortDuration(5400), shortDuration(172800), shortDuration(null)]).toEqual(['30s', '10m', '1.5h', '2d', '∞']);
    expect(reportKey('Checkout Funnel (Q4)', 'x1')).toBe('checkout-funnel-q4-x1');
    expect(reportKey('漏斗', 'x1')).toBe('report-x1');
  });
});
