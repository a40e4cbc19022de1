import { successors } from '../../server/src/journeys/successors.ts';
import type { JourneyDefinition, JourneyNode, JourneyProblem, JourneyStats } from './api/types.ts';

/*
 * The journey canvas's pure logic: which outputs (handles) each node kind has, reading and
 * writing the field behind an output, adding and removing nodes, problems per node, positions
 * and the live numbers of nodes and edges. No React here, so it is tested on its own.
 */

export type NodeKind = JourneyNode['kind'];
export const NODE_KINDS = ['entry', 'delay', 'wait', 'segment_wait', 'split', 'random', 'send', 'update_trait', 'webhook', 'end'] as const satisfies readonly NodeKind[];
/** Kinds the palette adds (a journey has exactly one entry, which it starts with). */
export const ADDABLE_KINDS = ['delay', 'wait', 'segment_wait', 'split', 'random', 'send', 'update_trait', 'webhook', 'end'] as const satisfies readonly NodeKind[];

/**
 * An output not connected yet. The API's schema wants a node id in every link, so an
 * unconnected output is saved as this id; validation then names it ("Node … does not exist")
 * on the node, and the canvas draws no edge for it.
 */
export const UNCONNECTED = '_unconnected';

export interface Output {
  /** The field of the node this output writes: next, yes, no, happened, timedOut, branches.N.next. */
  field: string;
  target: string;
}

/** A node's outputs: the server's own list (journeys/successors.ts), so canvas and engine agree. */
export const outputs: (node: JourneyNode) => Output[] = successors;

/** The node with the output `field` pointed at `target` (UNCONNECTED to cut it). */
export function withOutput(node: JourneyNode, field: string, target: string): JourneyNode {
  const branch = /^branches\.(\d+)\.next$/.exec(field);
  if (branch && node.kind === 'random') {
    const index = Number(branch[1]);
    return { ...node, branches: node.branches.map((b, i) => (i === index ? { ...b, next: target } : b)) };
  }
  if (node.kind === 'end' || node.kind === 'random') return node;
  if (!outputs(node).some((output) => output.field === field)) return node;
  return { ...node, [field]: target } as JourneyNode;
}

/** Replaces one node (by id) in the definition. */
export function replaceNode(definition: JourneyDefinition, id: string, next: JourneyNode): JourneyDefinition {
  // A renamed node keeps its links: every output that named the old id names the new one.
  const renamed = next.id !== id;
  return {
    ...definition,
    nodes: definition.nodes.map((node) => {
      const current = node.id === id ? next : node;
      if (!renamed) return current;
      return outputs(current).reduce((acc, output) => (output.target === id ? withOutput(acc, output.field, next.id) : acc), current);
    }),
  };
}

export function connect(definition: JourneyDefinition, source: string, field: string, target: string): JourneyDefinition {
  const node = definition.nodes.find((n) => n.id === source);
  return node ? replaceNode(definition, source, withOutput(node, field, target)) : definition;
}

/** Removes a node (never the entry) and cuts every output that led to it. */
export function removeNode(definition: JourneyDefinition, id: string): JourneyDefinition {
  const removed = definition.nodes.find((node) => node.id === id);
  if (!removed || removed.kind === 'entry') return definition;
  return {
    ...definition,
    nodes: definition.nodes
      .filter((node) => node.id !== id)
      .map((node) => outputs(node).reduce((acc, output) => (output.target === id ? withOutput(acc, output.field, UNCONNECTED) : acc), node)),
  };
}

/** A fresh id for a node of a kind: delay-1, delay-2 … */
export function freshId(definition: JourneyDefinition, kind: NodeKind): string {
  const taken = new Set(definition.nodes.map((node) => node.id));
  for (let i = 1; ; i++) if (!taken.has(`${kind}-${i}`)) return `${kind}-${i}`;
}

/** A new node of a kind with working defaults and unconnected outputs. */
export function newNode(kind: Exclude<NodeKind, 'entry'>, id: string, position: { x: number; y: number }, template = 'welcome'): JourneyNode {
  const open = UNCONNECTED;
  switch (kind) {
    case 'delay':
      return { id, kind, duration: { amount: 1, unit: 'days' }, next: open, position };
    case 'wait':
      return { id, kind, event: 'Order Completed', timeout: { amount: 3, unit: 'days' }, happened: open, timedOut: open, position };
    case 'split':
      return { id, kind, condition: 'trait.vip = true', yes: open, no: open, position };
    case 'random':
      return {
        id,
        kind,
        branches: [
          { key: 'a', percent: 50, next: open },
          { key: 'b', percent: 50, next: open },
        ],
        position,
      };
    case 'send':
      return { id, kind, channel: 'email', template, purpose: 'marketing', next: open, position };
    case 'segment_wait':
      return { id, kind, segment: 'segment-key', on: 'entered', timeout: { amount: 3, unit: 'days' }, happened: open, timedOut: open, position };
    case 'update_trait':
      return { id, kind, addTags: ['journey-reached'], next: open, position };
    case 'webhook':
      return { id, kind, channelConfigKey: 'webhook', template: 'webhook', next: open, position };
    case 'end':
      return { id, kind, position };
  }
}

/**
 * Adds a node of a kind. With a node selected, its first open output leads to the new node; when
 * all its outputs are linked, the new node goes between it and its first successor (and the
 * nodes below move down to make room). Returns the definition and the new node's id.
 */
export function addNodeAfter(definition: JourneyDefinition, kind: Exclude<NodeKind, 'entry'>, selected: string | null, template?: string): { definition: JourneyDefinition; id: string } {
  const placed = positions(definition);
  const id = freshId(definition, kind);
  const below = Math.max(0, ...[...placed.values()].map((p) => p.y)) + 170;
  let next: JourneyDefinition = { ...definition, nodes: [...definition.nodes, newNode(kind, id, { x: 0, y: below }, template)] };
  const from = definition.nodes.find((node) => node.id === selected);
  if (!from) return { definition: next, id };
  const fromOutputs = outputs(from);
  const open = fromOutputs.find((output) => output.target === UNCONNECTED);
  const first = fromOutputs[0];
  const at = placed.get(from.id)!;
  if (open) next = connect(next, from.id, open.field, id);
  else if (first) {
    const addedFirst = outputs(next.nodes.at(-1)!)[0];
    next = connect(next, from.id, first.field, id);
    if (addedFirst) next = connect(next, id, addedFirst.field, first.target);
    const moved = new Map([...positions(next)].filter(([nodeId, p]) => nodeId !== id && p.y > at.y).map(([nodeId, p]) => [nodeId, { x: p.x, y: p.y + 170 }]));
    next = withPositions(next, moved);
  }
  return { definition: withPositions(next, new Map([[id, { x: at.x, y: at.y + 170 }]])), id };
}

/** A new journey's definition: an entry by API call leading to an end. */
export function starterDefinition(): JourneyDefinition {
  return {
    nodes: [
      { id: 'entry', kind: 'entry', trigger: { kind: 'api' }, reentry: { mode: 'once' }, next: 'end', position: { x: 0, y: 0 } },
      { id: 'end', kind: 'end', position: { x: 0, y: 240 } },
    ],
  };
}

/** Where to draw each node: its saved position, else a column by depth from the entry. */
export function positions(definition: JourneyDefinition): Map<string, { x: number; y: number }> {
  const depth = new Map<string, number>();
  const entry = definition.nodes.find((node) => node.kind === 'entry');
  const byId = new Map(definition.nodes.map((node) => [node.id, node]));
  const queue: string[] = entry ? [entry.id] : [];
  if (entry) depth.set(entry.id, 0);
  while (queue.length) {
    const id = queue.shift()!;
    for (const output of outputs(byId.get(id)!)) {
      if (byId.has(output.target) && !depth.has(output.target)) {
        depth.set(output.target, depth.get(id)! + 1);
        queue.push(output.target);
      }
    }
  }
  const perRow = new Map<number, number>();
  const result = new Map<string, { x: number; y: number }>();
  for (const node of definition.nodes) {
    if (node.position) {
      result.set(node.id, node.position);
      continue;
    }
    const row = depth.get(node.id) ?? (perRow.size ? Math.max(...perRow.keys()) + 1 : 0);
    const column = perRow.get(row) ?? 0;
    perRow.set(row, column + 1);
    result.set(node.id, { x: column * 260, y: row * 170 });
  }
  return result;
}

/** The definition with each node's position as drawn. */
export function withPositions(definition: JourneyDefinition, moved: ReadonlyMap<string, { x: number; y: number }>): JourneyDefinition {
  return {
    ...definition,
    nodes: definition.nodes.map((node) => {
      const at = moved.get(node.id);
      return at ? { ...node, position: { x: Math.round(at.x), y: Math.round(at.y) } } : node;
    }),
  };
}

/**
 * Problems by node id (the API's `node`, else the node its `nodes.N…` field points at); problems
 * of the whole journey (no node: goals, exits, "no end node") under ''.
 */
export function problemsByNode(definition: JourneyDefinition, problems: readonly JourneyProblem[]): Map<string, JourneyProblem[]> {
  const result = new Map<string, JourneyProblem[]>();
  for (const problem of problems) {
    const index = /^nodes\.(\d+)/.exec(problem.field);
    const id = problem.node ?? (index ? definition.nodes[Number(index[1])]?.id : undefined) ?? '';
    result.set(id, [...(result.get(id) ?? []), problem]);
  }
  return result;
}

/** The part of a problem's field after its node (`nodes.3.timeout.amount` → `timeout.amount`), to show it beside that control. */
export function fieldWithinNode(field: string): string {
  return field.replace(/^nodes\.\d+\.?/, '');
}

/** Problems the page finds before asking the API: outputs not connected yet. */
export function localProblems(definition: JourneyDefinition): JourneyProblem[] {
  const problems: JourneyProblem[] = [];
  definition.nodes.forEach((node, i) => {
    for (const output of outputs(node)) {
      if (output.target === UNCONNECTED) problems.push({ node: node.id, field: `nodes.${i}.${output.field}`, message: `Connect the "${output.field}" output to a node` });
    }
  });
  return problems;
}

/** Drops the API's "does not exist" problem for unconnected outputs (the local one says it better). */
export function mergeProblems(definition: JourneyDefinition, api: readonly JourneyProblem[]): JourneyProblem[] {
  const local = localProblems(definition);
  const localFields = new Set(local.map((problem) => problem.field));
  return [...local, ...api.filter((problem) => !localFields.has(problem.field))];
}

export interface NodeNumbers {
  entered: number;
  waiting: number;
  converted: number;
  exited: number;
}

/** Live numbers per node, and per edge `source→target`. */
export function liveNumbers(stats: JourneyStats | undefined): { nodes: Map<string, NodeNumbers>; edges: Map<string, number> } {
  const nodes = new Map<string, NodeNumbers>();
  const edges = new Map<string, number>();
  for (const node of stats?.nodes ?? []) nodes.set(node.nodeId, { entered: node.entered, waiting: node.waiting, converted: node.converted, exited: node.exited });
  for (const edge of stats?.edges ?? []) edges.set(`${edge.source}→${edge.target}`, edge.count);
  return { nodes, edges };
}

/** A one-line summary of what a node does, for the canvas. */
export function nodeSummary(node: JourneyNode): string {
  switch (node.kind) {
    case 'entry':
      return node.trigger.kind === 'segment'
        ? `segment ${node.trigger.segment} ${node.trigger.on ?? 'entered'}`
        : node.trigger.kind === 'event'
          ? `event ${node.trigger.event}`
          : node.trigger.kind === 'date'
            ? `${node.trigger.trait} ${node.trigger.days ? `${node.trigger.days > 0 ? '+' : ''}${node.trigger.days}d ` : ''}${node.trigger.time} (${node.trigger.repeat})`
            : node.trigger.kind === 'schedule'
              ? `segment ${node.trigger.segment} · ${node.trigger.cron ?? node.trigger.at ?? ''}`
              : 'API call';
    case 'delay':
      return [node.duration ? `${node.duration.amount} ${node.duration.unit}` : '', node.until ? `until ${node.until.time}` : ''].filter(Boolean).join(' ');
    case 'wait':
      return `${node.event} ≤ ${node.timeout.amount} ${node.timeout.unit}`;
    case 'split':
      return node.condition;
    case 'random':
      return node.branches.map((branch) => `${branch.key} ${branch.percent}%`).join(' / ');
    case 'send':
      return `${node.channel} · ${node.template}`;
    case 'segment_wait':
      return `${node.on} ${node.segment} ≤ ${node.timeout.amount} ${node.timeout.unit}`;
    case 'update_trait':
      return [...Object.keys(node.set ?? {}), ...(node.addTags ?? []).map((tag) => `#${tag}`)].join(', ');
    case 'webhook':
      return `${node.channelConfigKey} · ${node.template}`;
    case 'end':
      return '';
  }
}

/** The label of an output on the canvas. */
export function outputLabel(node: JourneyNode, field: string): string {
  const branch = /^branches\.(\d+)\.next$/.exec(field);
  if (branch && node.kind === 'random') return node.branches[Number(branch[1])]?.key ?? field;
  return field === 'next' ? '' : field;
}
