/**
 * The contract between the journey executor (`journeys/`) and message delivery (`channels/`).
 *
 * A journey's send node calls `enqueueMessage` inside the transaction that advances the instance,
 * so a message is queued exactly when the step commits. Everything after that belongs to
 * `channels/`: guards (suppression, consent and subscription, frequency caps, quiet hours, rate),
 * rendering, the outbox, provider calls with their idempotency keys, reconciliation after a crash,
 * and the `Message …` events (docs/events.md) that flow back into the timeline.
 *
 * Types only; `channels/index.ts` exports the implementations with these signatures.
 */
import type { DbClient, Queryable } from '../storage/database.ts';

export type ChannelKind = 'email' | 'sms' | 'wechat' | 'wecom' | 'push' | 'webhook';

/** Where a message came from, for the per-instance view, analytics and holds. */
export interface MessageOrigin {
  journeyId: string;
  journeyVersion: number;
  instanceId: string;
  nodeId: string;
}

export interface MessageRequest {
  workspaceId: string;
  profileId: string;
  channel: ChannelKind;
  /** A configured channel account (e.g. two SMS providers); the workspace's default for the kind when absent. */
  channelConfigKey?: string;
  templateKey: string;
  /** The template version fixed when the journey version was published; the latest when absent. */
  templateVersion?: number;
  /**
   * One logical send: a second enqueue with the same key in the workspace returns the first
   * message (`duplicate`). Journeys derive it from (instance, node, visit), never from an attempt.
   */
  idempotencyKey: string;
  /** marketing: consent, subscription, frequency caps and quiet hours apply; transactional: suppression and hard opt-outs only. */
  purpose: 'marketing' | 'transactional';
  subscriptionGroup?: string;
  /** Template variables beyond the profile (traits, computed traits, identifiers, locale). */
  variables: { event?: Record<string, unknown>; journey?: Record<string, unknown> };
  origin?: MessageOrigin;
  /** Broadcast pacing: at most this many messages per second leave for this origin journey. */
  ratePerSecond?: number;
}

export interface EnqueuedMessage {
  messageId: string;
  /** queued: it will be sent (perhaps later: quiet hours, pacing); skipped: a guard refused it, reason recorded; duplicate: the key was enqueued before. */
  status: 'queued' | 'skipped' | 'duplicate';
  reason?: string;
}

export type EnqueueMessage = (client: DbClient, request: MessageRequest, now: Date) => Promise<EnqueuedMessage>;

export interface TemplateProblem {
  /** Where in the template (e.g. `zh-CN.subject`, line:column when known). */
  path: string;
  message: string;
  /** A warning does not stop a publish (a trait no profile has yet); absent: an error. */
  severity?: 'warning';
  /** The variable at fault, when one is (`traits.frist_name`). */
  variable?: string;
}

/**
 * At journey publish: the template exists for the channel, parses, and every variable it reads is
 * one the send will have (event properties and journey variables only when listed: errors). Trait
 * names are checked against `traits` when given: an unknown one is a warning (`severity`), since
 * a trait may simply not have been sent yet. No error means it can be published.
 */
export type CheckTemplate = (
  db: Queryable,
  workspaceId: string,
  request: {
    templateKey: string;
    templateVersion?: number;
    channel: ChannelKind;
    eventProperties?: string[];
    journeyVariables?: string[];
    /** The workspace's known trait keys: a `traits.<key>` outside them is a warning. Absent: traits are not checked. */
    traits?: readonly string[];
  },
) => Promise<TemplateProblem[]>;

export type MessageStatus =
  | 'queued' // waiting to be sent (possibly until quiet hours end or pacing allows)
  | 'held' // its journey is paused
  | 'sending'
  | 'sent'
  | 'delivered'
  | 'opened'
  | 'clicked'
  | 'failed' // permanently; in the dead-letter list
  | 'skipped'
  | 'cancelled';

export interface MessageSummary {
  messageId: string;
  channel: ChannelKind;
  templateKey: string;
  status: MessageStatus;
  reason?: string;
  origin?: MessageOrigin;
  createdAt: Date;
  updatedAt: Date;
}

/** The per-instance view of a journey lists its messages through this. */
export type ListMessages = (db: Queryable, workspaceId: string, filter: { instanceId?: string; profileId?: string; journeyId?: string }) => Promise<MessageSummary[]>;

/** Pause/resume of a journey: its queued messages are held (not sent) and released. */
export type HoldMessages = (client: DbClient, workspaceId: string, journeyId: string, held: boolean) => Promise<number>;

/** Stop, removal of a profile from a journey, erasure: queued or held messages are cancelled. */
export type CancelMessages = (
  client: DbClient,
  workspaceId: string,
  filter: { journeyId?: string; instanceId?: string; profileId?: string },
  reason: string,
) => Promise<number>;
