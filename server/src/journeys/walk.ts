import type { MessageRequest } from '../channels/contract.ts';
import type { ProfileSnapshot } from '../segments/snapshot.ts';
import { emptyReads, type ConditionReads } from '../segments/snapshots.ts';
import type { SystemEvent } from '../segments/transitions.ts';
import { nodeById } from './definition.ts';
import { finishInstance, type InstanceRow, type JourneyVersion } from './instances.ts';
import { arriveAt, nodeReads, resumeAt } from './steps.ts';

/*
 * One instance's step, in memory: from where it is, through every node it can pass now, until it
 * waits, ends, or has passed MAX_NODES_PER_STEP nodes. Pure: the executor gives it the instance
 * row, the frozen version, the clock and (when a node reads the profile) the snapshot, and writes
 * what it returns. Running it twice on the same input gives the same result, which is what lets
 * the executor re-walk an instance after loading its snapshot or after a failed batch write.
 */

// Nodes one instance may pass in one step; validation refuses cycles without a wait, so this only
// trips on a definition that slipped past it.
export const MAX_NODES_PER_STEP = 200;

export interface RecordedStep {
  step: number;
  nodeId: string;
  kind: string;
  outcome: string;
  detail: Record<string, unknown> | undefined;
}

export interface WalkMessage {
  /** The step that sent it: its outcome becomes the enqueue's status. */
  step: RecordedStep;
  request: MessageRequest;
}

export interface WalkResult {
  /** The instance after the step (a copy; the input row is not changed). */
  instance: InstanceRow;
  /** The waiting step the instance left (its outcome was "waiting" until now). */
  settle: { step: number; outcome: string; detail: Record<string, unknown> | undefined } | undefined;
  steps: RecordedStep[];
  messages: WalkMessage[];
  events: SystemEvent[];
  /** Trait values set on the profile by the nodes passed, later ones winning. */
  traits: Record<string, unknown> | undefined;
  /**
   * Of `traits`, the keys only added to (never set outright in this walk), with the values added:
   * written as additions to the stored list, which may have changed since the snapshot was read.
   */
  listAdditions: Record<string, string[]> | undefined;
}

export interface WalkContext {
  now: Date;
  /** The workspace's time zone. */
  timeZone: string;
  /** The profile; undefined when it has not been loaded (the walk then stops at the first node that reads it). */
  snapshot: ProfileSnapshot | undefined;
}

/** The walk reached a node that reads the profile and was given no snapshot: load one (`versionReads`) and walk again. */
export const NEEDS_SNAPSHOT = Symbol('needs snapshot');

export function walkInstance(row: InstanceRow, version: JourneyVersion, context: WalkContext): WalkResult | typeof NEEDS_SNAPSHOT {
  const { now, timeZone } = context;
  let snapshot = context.snapshot;
  const instance: InstanceRow = { ...row, visits: { ...row.visits } };
  const result: WalkResult = { instance, settle: undefined, steps: [], messages: [], events: [], traits: undefined, listAdditions: undefined };
  const setOutright = new Set<string>();
  for (let passed = 0; passed < MAX_NODES_PER_STEP; passed++) {
    const node = nodeById(version.definition, instance.node_id);
    if (!node) {
      finishInstance(instance, version, 'exited', `node "${instance.node_id}" is not in version ${instance.version}`, now, result.events);
      return result;
    }
    if (snapshot === undefined && nodeReads(node) !== undefined) return NEEDS_SNAPSHOT;
    if (instance.phase === 'wait') {
      const resumed = atNode(node.id, () => resumeAt({ node, instance, version, visit: instance.visits[node.id] ?? 1, now, timeZone, snapshot }));
      result.settle = { step: instance.step_count, outcome: resumed.outcome, detail: resumed.detail };
      moveTo(instance, resumed.next, now);
      continue;
    }
    const visit = (instance.visits[node.id] ?? 0) + 1;
    instance.visits[node.id] = visit;
    const outcome = atNode(node.id, () => arriveAt({ node, instance, version, visit, now, timeZone, snapshot }));
    const moves = Number(outcome.next !== undefined) + Number(outcome.waitUntil !== undefined) + Number(outcome.end !== undefined);
    if (moves !== 1) throw new StepError(node.id, `The ${node.kind} node "${node.id}" gave ${moves} of next, waitUntil and end (exactly one expected)`);
    instance.step_count += 1;
    const step: RecordedStep = { step: instance.step_count, nodeId: node.id, kind: node.kind, outcome: outcome.outcome, detail: outcome.detail };
    result.steps.push(step);
    if (outcome.events) result.events.push(...outcome.events);
    if (outcome.traits) {
      result.traits = { ...result.traits, ...outcome.traits };
      recordListAdditions((result.listAdditions ??= {}), setOutright, outcome.traits, outcome.listAdditions);
      // Later nodes of this walk see the values set (the snapshot was read before the walk).
      if (snapshot) snapshot = { ...snapshot, traits: { ...snapshot.traits, ...outcome.traits } };
    }
    if (outcome.message) {
      result.messages.push({
        step,
        request: {
          ...outcome.message,
          workspaceId: instance.workspace_id,
          profileId: instance.profile_id,
          idempotencyKey: sendKey(instance.id, node.id, visit),
          origin: { journeyId: instance.journey_id, journeyVersion: instance.version, instanceId: instance.id, nodeId: node.id },
        },
      });
    }
    if (outcome.next !== undefined) {
      moveTo(instance, outcome.next, now);
      continue;
    }
    if (outcome.waitUntil !== undefined) {
      instance.phase = 'wait';
      instance.wait_started_at = now;
      instance.due_at = outcome.waitUntil;
      return result;
    }
    finishInstance(instance, version, outcome.end!.reason, outcome.end!.detail, now, result.events);
    return result;
  }
  // Passed MAX_NODES_PER_STEP nodes: continue in the next batch rather than hold the transaction.
  instance.due_at = now;
  return result;
}

/** A node kind's function threw (or broke the contract) at this node. */
export class StepError extends Error {
  constructor(
    readonly nodeId: string,
    message: string,
  ) {
    super(message);
  }
}

function atNode<T>(nodeId: string, run: () => T): T {
  try {
    return run();
  } catch (error) {
    throw new StepError(nodeId, error instanceof Error ? error.message : String(error));
  }
}

/** A send's idempotency key: one logical message per (instance, node, visit), whatever the attempt. */
export const sendKey = (instanceId: string, nodeId: string, visit: number) => `journey:${instanceId}:${nodeId}:${visit}`;

function moveTo(instance: InstanceRow, next: string, now: Date): void {
  instance.node_id = next;
  instance.phase = 'arrive';
  instance.wait_started_at = null;
  instance.due_at = now;
}

const versionReadsCache = new WeakMap<JourneyVersion, ConditionReads>();

/** Everything any node of the version reads of a profile: one snapshot serves a whole walk. */
export function versionReads(version: JourneyVersion): ConditionReads {
  let reads = versionReadsCache.get(version);
  if (!reads) {
    reads = emptyReads();
    for (const node of version.definition.nodes) {
      const more = nodeReads(node);
      if (more) mergeReads(reads, more);
    }
    versionReadsCache.set(version, reads);
  }
  return reads;
}

export function mergeReads(into: ConditionReads, more: ConditionReads): ConditionReads {
  into.events.push(...more.events);
  into.traits ||= more.traits;
  into.identifiers ||= more.identifiers;
  into.consents ||= more.consents;
  for (const key of more.segments) into.segments.add(key);
  return into;
}

/**
 * Records one node's trait outcome in a walk's list additions: a key the node sets outright stops
 * being an addition (the walk's value for it is whole, from the set value on), and an addition to a
 * key set outright earlier in the walk is already in that whole value.
 */
export function recordListAdditions(
  additions: Record<string, string[]>,
  setOutright: Set<string>,
  traits: Readonly<Record<string, unknown>>,
  added: Readonly<Record<string, string[]>> | undefined,
): void {
  for (const key of Object.keys(traits)) {
    const values = added?.[key];
    if (values === undefined) {
      setOutright.add(key);
      delete additions[key];
    } else if (!setOutright.has(key)) {
      additions[key] = [...new Set([...(additions[key] ?? []), ...values])];
    }
  }
}
