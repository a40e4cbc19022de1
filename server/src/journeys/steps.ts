import type { MessageRequest } from '../channels/contract.ts';
import { durationMs } from '../segments/ast.ts';
import type { ProfileSnapshot } from '../segments/snapshot.ts';
import { conditionReads, emptyReads, type ConditionReads } from '../segments/snapshots.ts';
import type { SystemEvent } from '../segments/transitions.ts';
import { entryNode, journeyVariables, type NodeKind, type NodeOf } from './definition.ts';
import { journeyIds, type InstanceRow, type JourneyVersion } from './instances.ts';
import { conditionOf, randomBranch, splitHolds } from './rules.ts';
import { delayOutcome, segmentWaitOutcome, traitValuesOf } from './waits.ts';

/*
 * What each node kind does, as pure functions: no database, no clock, no randomness beyond the
 * stable hashes of rules.ts. The executor (executor.ts) claims a batch of due instances, walks
 * each through these functions in memory (walk.ts), and writes what they return for the whole
 * batch in a handful of statements. A new node kind is one entry in NODE_KINDS (the mapped type
 * makes a missing one a type error); the loop does not change. Contract in docs/journeys.md.
 */

/** Everything a node kind may look at when an instance arrives at (or resumes from) one of its nodes. */
export interface StepInput<K extends NodeKind = NodeKind> {
  node: NodeOf<K>;
  /** The instance as it stands on arrival; read only (the walk applies the outcome). */
  instance: Readonly<InstanceRow>;
  version: JourneyVersion;
  /** How many times this instance has arrived at this node, this arrival included (1 the first time). */
  visit: number;
  now: Date;
  /** The workspace's time zone (profile time zones are the kind's to read from the snapshot). */
  timeZone: string;
  /**
   * The profile as it stands in this transaction, loaded once per instance per batch with what
   * every profile-reading node of the version reads (`NodeKindSpec.reads`). Undefined for a kind
   * that declares no reads. A profile merged away answers as an empty profile.
   */
  snapshot: ProfileSnapshot | undefined;
}

/** A message to enqueue; the executor adds workspace, profile, idempotency key and origin. */
export type StepMessage = Omit<MessageRequest, 'workspaceId' | 'profileId' | 'idempotencyKey' | 'origin'>;

/**
 * What happened at a node. Exactly one of `next`, `waitUntil`, `end` says what the instance does
 * now; with none of them the step is refused as a bug in the kind.
 */
export interface StepOutcome {
  /** Recorded in the path (journey_steps.outcome): next, waiting, yes/no, a branch key … A step with `message` records the enqueue's status instead (queued/skipped/duplicate). */
  outcome: string;
  detail?: Record<string, unknown>;
  /** Go on to this node now, in the same step. */
  next?: string;
  /** Wait at this node until then; when it is due the kind's `resume` says where to go. */
  waitUntil?: Date;
  /** End the instance here (Journey Exited with the reason; completed for an end node). */
  end?: { reason: 'completed' | 'exited'; detail: string | null };
  /** One message, idempotency key (instance, node, visit): enqueued in the step's transaction. */
  message?: StepMessage;
  /** Timeline events (track events of docs/events.md) written with the step. */
  events?: SystemEvent[];
  /** Trait values to set on the instance's profile, null removing one (written with the step; see trait-updates.ts). */
  traits?: Record<string, unknown>;
  /**
   * Values added once each to list traits (addTags → `tags`). `traits` holds the list as the snapshot
   * had it plus these, for later nodes and the dry run; the write adds them to the stored list.
   */
  listAdditions?: Record<string, string[]>;
}

/** Where a waiting instance goes when its timer is due (a delay ended, a wait timed out). */
export interface ResumeOutcome {
  /** The settled outcome of the waiting step: next, timed_out … */
  outcome: string;
  detail?: Record<string, unknown>;
  next: string;
}

export interface NodeKindSpec<K extends NodeKind> {
  /** The instance arrives at the node. */
  arrive(input: StepInput<K>): StepOutcome;
  /** The instance waited here and its timer is due. Kinds that never wait leave it out. */
  resume?(input: StepInput<K>): ResumeOutcome;
  /** What `arrive`/`resume` read of the profile; absent or undefined: nothing (no snapshot is loaded for it). */
  reads?(node: NodeOf<K>): ConditionReads | undefined;
}

type Registry = { [K in NodeKind]: NodeKindSpec<K> };

export const NODE_KINDS: Registry = {
  entry: {
    arrive: ({ node }) => ({ outcome: 'next', next: node.next }),
  },
  delay: {
    arrive: ({ node, now, timeZone, snapshot }) => {
      // Time of day and dates are the profile's (its time zone trait), when the delay has them.
      const outcome = delayOutcome(node, now, snapshot?.traits ?? {}, timeZone);
      if (!outcome.wait) return { outcome: outcome.outcome, detail: outcome.detail, next: node.next };
      return { outcome: 'waiting', detail: { until: outcome.until.toISOString(), timeZone: outcome.timeZone }, waitUntil: outcome.until };
    },
    resume: ({ node }) => ({ outcome: 'next', next: node.next }),
    reads: (node) => (node.until || node.untilDate ? { ...emptyReads(), traits: true } : undefined),
  },
  wait: {
    arrive: ({ node, now }) => {
      const timeoutAt = new Date(now.getTime() + durationMs(node.timeout));
      return { outcome: 'waiting', detail: { event: node.event, timeoutAt: timeoutAt.toISOString() }, waitUntil: timeoutAt };
    },
    // The event arriving first is intake.ts's: it moves the instance to `happened`.
    resume: ({ node }) => ({ outcome: 'timed_out', next: node.timedOut }),
  },
  segment_wait: {
    arrive: ({ node, snapshot, now }) => {
      const outcome = segmentWaitOutcome(node, snapshot?.memberships.has(node.segment) ?? false, now);
      if (outcome.happened) return { outcome: 'happened', detail: { segment: node.segment, on: node.on, already: true }, next: node.happened };
      return { outcome: 'waiting', detail: { segment: node.segment, on: node.on, timeoutAt: outcome.timeoutAt.toISOString() }, waitUntil: outcome.timeoutAt };
    },
    // The transition arriving first is intake.ts's: it moves the instance to `happened`.
    resume: ({ node }) => ({ outcome: 'timed_out', next: node.timedOut }),
    reads: (node) => ({ ...emptyReads(), segments: new Set([node.segment]) }),
  },
  update_trait: {
    arrive: ({ node, snapshot }) => {
      const traits = traitValuesOf(node, snapshot?.traits ?? {});
      return { outcome: 'updated', detail: { traits: Object.keys(traits) }, next: node.next, traits, ...(node.addTags ? { listAdditions: { tags: node.addTags } } : {}) };
    },
    reads: (node) => (node.addTags ? { ...emptyReads(), traits: true } : undefined),
  },
  webhook: {
    arrive: ({ node, instance, version }) => {
      if (instance.holdout) return { outcome: 'held_out', next: node.next };
      return {
        outcome: 'queued',
        next: node.next,
        // An integration call, not marketing: no consent, caps or quiet hours; channels' signed webhook adapter sends it.
        message: {
          channel: 'webhook',
          channelConfigKey: node.channelConfigKey,
          templateKey: node.template,
          purpose: 'transactional',
          variables: { event: instance.variables, journey: journeyVariables(version.definition, version.journeyKey, version.version) },
          ...rateOf(version),
        },
      };
    },
  },
  split: {
    arrive: ({ node, snapshot, now }) => {
      const holds = splitHolds(node, snapshot!, now.getTime());
      return { outcome: holds ? 'yes' : 'no', next: holds ? node.yes : node.no };
    },
    reads: (node) => conditionReads(conditionOf(node.condition)),
  },
  random: {
    arrive: ({ node, instance, version, visit }) => {
      const branch = randomBranch(node, instance.journey_id, instance.profile_id);
      return {
        outcome: branch.key,
        next: branch.next,
        events: [
          {
            messageId: `journey-split-${instance.id}-${node.id}-${visit}`,
            event: 'Journey Split Assigned',
            profileId: instance.profile_id,
            properties: { ...journeyIds(version, instance.id), node_id: node.id, variant: branch.key },
          },
        ],
      };
    },
  },
  send: {
    arrive: ({ node, instance, version }) => {
      if (instance.holdout) return { outcome: 'held_out', next: node.next };
      return {
        outcome: 'queued',
        next: node.next,
        message: {
          channel: node.channel,
          ...(node.channelConfigKey ? { channelConfigKey: node.channelConfigKey } : {}),
          templateKey: node.template,
          purpose: node.purpose,
          ...(node.subscriptionGroup ? { subscriptionGroup: node.subscriptionGroup } : {}),
          variables: { event: instance.variables, journey: journeyVariables(version.definition, version.journeyKey, version.version) },
          ...rateOf(version),
        },
      };
    },
  },
  end: {
    arrive: () => ({ outcome: 'completed', end: { reason: 'completed', detail: null } }),
  },
};

/** The journey's send-rate limit (broadcast pacing), carried by each of its messages. */
function rateOf(version: JourneyVersion): { ratePerSecond?: number } {
  const rate = entryNode(version.definition).ratePerSecond;
  return rate ? { ratePerSecond: rate } : {};
}

function specOf<K extends NodeKind>(kind: K): NodeKindSpec<K> {
  return NODE_KINDS[kind] as NodeKindSpec<K>;
}

/** The one dispatch: the outcome of arriving at `input.node`. */
export function arriveAt(input: StepInput): StepOutcome {
  return specOf(input.node.kind).arrive(input as never);
}

/** The one dispatch for a due timer at `input.node`; throws for a kind that never waits. */
export function resumeAt(input: StepInput): ResumeOutcome {
  const spec = specOf(input.node.kind);
  if (!spec.resume) throw new Error(`Instance waits at ${input.node.kind} node "${input.node.id}", which never waits`);
  return spec.resume(input as never);
}

/** What a node reads of the profile, or undefined when it reads nothing. */
export function nodeReads(node: NodeOf<NodeKind>): ConditionReads | undefined {
  return specOf(node.kind).reads?.(node as never);
}
