import {
  applyNodeChanges,
  Background,
  Controls,
  Handle,
  MarkerType,
  Position,
  ReactFlow,
  type Connection,
  type Edge,
  type EdgeChange,
  type Node,
  type NodeChange,
  type NodeProps,
  useReactFlow,
} from '@xyflow/react';
import '@xyflow/react/dist/style.css';
import { memo, useEffect, useMemo, useState } from 'react';
import type { JourneyDefinition, JourneyNode, JourneyProblem } from '../api/types.ts';
import { useI18n } from '../i18n/index.tsx';
import { nodeSummary, outputLabel, outputs, positions, UNCONNECTED, type NodeNumbers } from '../journey-model.ts';

interface NodeData extends Record<string, unknown> {
  node: JourneyNode;
  problems: JourneyProblem[];
  numbers: NodeNumbers | undefined;
  live: boolean;
  current: boolean;
}
type FlowNode = Node<NodeData, 'journey'>;

// Shapes every system font has (clock and hourglass emoji are missing on many Linux desktops).
const KIND_ICON: Record<JourneyNode['kind'], string> = {
  entry: '▶',
  delay: '◷',
  wait: '◎',
  segment_wait: '◑',
  split: '◇',
  random: '◈',
  send: '✉',
  update_trait: '✎',
  webhook: '⇄',
  end: '■',
};

/** One node on the canvas: kind, id, what it does, its live numbers, its problems, its outputs. */
const JourneyNodeView = memo(function JourneyNodeView({ data, selected }: NodeProps<FlowNode>) {
  const { t, format } = useI18n();
  const { node, problems, numbers, live, current } = data;
  const outs = outputs(node);
  const summary = nodeSummary(node);
  return (
    <div
      className={`jnode kind-${node.kind}${problems.length ? ' has-problems' : ''}${selected ? ' selected' : ''}${current ? ' current' : ''}`}
      data-testid={`node-${node.id}`}
    >
      {node.kind !== 'entry' && <Handle type="target" position={Position.Top} id="in" title={t('journeys.canvas.input', { id: node.id })} />}
      <div className="jnode-head">
        <span aria-hidden="true">{KIND_ICON[node.kind]}</span> <strong>{t(`journeys.kind.${node.kind}`)}</strong> <code>{node.id}</code>
      </div>
      {summary && <div className="jnode-summary">{summary}</div>}
      {live && numbers && (
        <dl className="jnode-numbers" data-testid={`numbers-${node.id}`}>
          <div>
            <dt>{t('journeys.numbers.entered')}</dt>
            <dd>{format.number(numbers.entered)}</dd>
          </div>
          <div>
            <dt>{t('journeys.numbers.waiting')}</dt>
            <dd>{format.number(numbers.waiting)}</dd>
          </div>
          <div>
            <dt>{t('journeys.numbers.converted')}</dt>
            <dd>{format.number(numbers.converted)}</dd>
          </div>
          <div>
            <dt>{t('journeys.numbers.exited')}</dt>
            <dd>{format.number(numbers.exited)}</dd>
          </div>
        </dl>
      )}
      {problems.length > 0 && (
        <ul className="jnode-problems" data-testid={`problems-${node.id}`}>
          {problems.map((problem, i) => (
            <li key={i}>{problem.message}</li>
          ))}
        </ul>
      )}
      <div className="jnode-outputs">
        {outs.map((output, i) => (
          <span key={output.field} className="jnode-output" style={{ left: `${((i + 1) / (outs.length + 1)) * 100}%` }}>
            {outputLabel(node, output.field)}
          </span>
        ))}
      </div>
      {outs.map((output, i) => (
        <Handle
          key={output.field}
          type="source"
          position={Position.Bottom}
          id={output.field}
          style={{ left: `${((i + 1) / (outs.length + 1)) * 100}%` }}
          title={t('journeys.canvas.output', { id: node.id, output: outputLabel(node, output.field) || output.field })}
        />
      ))}
    </div>
  );
});

const NODE_TYPES = { journey: JourneyNodeView };

/** Fits the journey on screen again when a node is added or removed (after React Flow has measured it). */
function FitOnChange({ count }: { count: number }) {
  const flow = useReactFlow();
  useEffect(() => {
    const timer = setTimeout(() => void flow.fitView({ padding: 0.2, maxZoom: 1, duration: 0 }), 50);
    return () => clearTimeout(timer);
  }, [count, flow]);
  return null;
}

export interface CanvasProps {
  definition: JourneyDefinition;
  problems: Map<string, JourneyProblem[]>;
  numbers: { nodes: Map<string, NodeNumbers>; edges: Map<string, number> };
  live: boolean;
  selected: string | null;
  currentNode?: string | null;
  editable: boolean;
  onSelect(id: string | null): void;
  onMove(id: string, position: { x: number; y: number }): void;
  onConnect(source: string, field: string, target: string): void;
  onDisconnect(source: string, field: string): void;
  onRemove(id: string): void;
}

/** The journey drawn with React Flow: drag nodes, connect outputs to inputs, select to edit, Delete to remove. */
export default function JourneyCanvas(props: CanvasProps) {
  const { t, format } = useI18n();
  const { definition, problems, numbers, live, selected, currentNode, editable } = props;
  const placed = useMemo(() => positions(definition), [definition]);
  const [nodes, setNodes] = useState<FlowNode[]>([]);

  // Rebuild the flow's nodes from the definition, keeping what React Flow measured.
  useEffect(() => {
    setNodes((previous) => {
      const measured = new Map(previous.map((node) => [node.id, node.measured]));
      return definition.nodes.map((node) => ({
        id: node.id,
        type: 'journey' as const,
        position: placed.get(node.id)!,
        selected: node.id === selected,
        deletable: editable && node.kind !== 'entry',
        draggable: editable,
        connectable: editable,
        ariaLabel: `${t(`journeys.kind.${node.kind}`)} ${node.id}`,
        ...(measured.get(node.id) ? { measured: measured.get(node.id) } : {}),
        data: {
          node,
          problems: problems.get(node.id) ?? [],
          numbers: numbers.nodes.get(node.id),
          live,
          current: node.id === currentNode,
        },
      }));
    });
  }, [definition, placed, selected, problems, numbers, live, currentNode, editable, t]);

  const edges = useMemo<Edge[]>(() => {
    const ids = new Set(definition.nodes.map((node) => node.id));
    return definition.nodes.flatMap((node) =>
      outputs(node)
        .filter((output) => output.target !== UNCONNECTED && ids.has(output.target))
        .map((output) => {
          const count = numbers.edges.get(`${node.id}→${output.target}`);
          const label = [outputLabel(node, output.field), live ? format.number(count ?? 0) : ''].filter(Boolean).join(' · ');
          return {
            id: `${node.id}:${output.field}`,
            source: node.id,
            sourceHandle: output.field,
            target: output.target,
            targetHandle: 'in',
            label: label || undefined,
            deletable: editable,
            markerEnd: { type: MarkerType.ArrowClosed },
            className: live && count ? 'traffic' : undefined,
            ariaLabel: t('journeys.canvas.edge', { from: node.id, to: output.target, count: count ?? 0 }),
          };
        }),
    );
  }, [definition, numbers, live, editable, format, t]);

  const onNodesChange = (changes: NodeChange<FlowNode>[]) => {
    setNodes((current) => applyNodeChanges(changes, current));
    for (const change of changes) {
      if (change.type === 'position' && change.position && change.dragging === false) props.onMove(change.id, change.position);
      if (change.type === 'position' && change.position && change.dragging) props.onMove(change.id, change.position);
      if (change.type === 'select' && change.selected) props.onSelect(change.id);
      if (change.type === 'remove') props.onRemove(change.id);
    }
  };
  const onEdgesChange = (changes: EdgeChange[]) => {
    for (const change of changes) {
      if (change.type !== 'remove') continue;
      const [source, ...field] = change.id.split(':');
      props.onDisconnect(source!, field.join(':'));
    }
  };
  const onConnect = (connection: Connection) => {
    if (connection.sourceHandle) props.onConnect(connection.source, connection.sourceHandle, connection.target);
  };

  return (
    <div className="journey-canvas" data-testid="journey-canvas" role="region" aria-label={t('journeys.canvas.label')}>
      <ReactFlow
        nodes={nodes}
        edges={edges}
        nodeTypes={NODE_TYPES}
        onNodesChange={onNodesChange}
        onEdgesChange={onEdgesChange}
        onConnect={onConnect}
        onPaneClick={() => props.onSelect(null)}
        nodesDraggable={editable}
        nodesConnectable={editable}
        fitView
        fitViewOptions={{ padding: 0.2, maxZoom: 1 }}
        minZoom={0.3}
        deleteKeyCode={editable ? ['Delete', 'Backspace'] : null}
        proOptions={{ hideAttribution: true }}
        ariaLabelConfig={{
          'node.a11yDescription.default': t('journeys.canvas.a11yNode'),
          'edge.a11yDescription.default': t('journeys.canvas.a11yEdge'),
          'controls.ariaLabel': t('journeys.canvas.controls'),
          'controls.zoomIn.ariaLabel': t('journeys.canvas.zoomIn'),
          'controls.zoomOut.ariaLabel': t('journeys.canvas.zoomOut'),
          'controls.fitView.ariaLabel': t('journeys.canvas.fitView'),
          'controls.interactive.ariaLabel': t('journeys.canvas.lock'),
        }}
      >
        <Background gap={20} />
        <Controls showInteractive={false} />
        <FitOnChange count={definition.nodes.length} />
      </ReactFlow>
    </div>
  );
}
