import crypto from 'node:crypto';
import type { MessageRequest } from '../channels/contract.ts';
import { enqueueMessages } from '../channels/index.ts';
import { loadRecipients } from '../channels/recipients.ts';
import { renderForProfile } from '../channels/render.ts';
import { findTemplate } from '../channels/template-store.ts';
import { RenderError } from '../channels/templates.ts';
import { loadProfileSnapshots, snapshotNeeds } from '../segments/snapshots.ts';
import type { ProfileSnapshot } from '../segments/snapshot.ts';
import type { Db, DbClient } from '../storage/database.ts';
import { entryNode, nodeById } from './definition.ts';
import type { InstanceRow, JourneyVersion } from './instances.ts';
import { inHoldout } from './rules.ts';
import { versionReads, walkInstance } from './walk.ts';

/*
 * A dry run: what the journey would do for one profile starting now. The walk is the executor's
 * own (walk.ts over the node kinds of steps.ts) on the profile's current data, with a simulated
 * clock that jumps to each wait's wake time; a wait for an event or a segment change times out
 * unless the caller assumes it happens. Each message is rendered with the real template and put
 * through channels' real enqueue guards (consent, subscriptions, frequency caps counting the run's
 * own earlier messages, quiet hours, pacing) inside a transaction that is always rolled back: the
 * run sends nothing and writes nothing, and trait updates change only the simulated profile.
 */

export interface DryRunOptions {
  /** The simulated start; now when absent. */
  start: Date;
  /** Per wait node id: `happened` to assume the event or segment change comes at once (default: it times out). */
  assume?: Readonly<Record<string, 'happened' | 'timedOut'>>;
  /** Entry variables (the trigger event's properties) the run starts with. */
  variables?: Record<string, unknown>;
  /** At most this many nodes are walked (a journey looping on delays stops here). */
  maxSteps?: number;
}

export interface DryRunStep {
  step: number;
  at: string;
  nodeId: string;
  kind: string;
  outcome: string;
  detail: Record<string, unknown> | null;
}

export interface DryRunWait {
  nodeId: string;
  kind: string;
  from: string;
  /** When it wakes (a delay's end, a wait's timeout), or the simulated moment its event is assumed. */
  until: string;
  ends: 'next' | 'timed_out' | 'happened';
}

export interface MessagePreview {
  /** send: the guards let it through (at sendAt); skip: a guard refuses it (reason); error: it cannot be checked or rendered. */
  decision: 'send' | 'skip' | 'error';
  reason?: string;
  sendAt?: string;
  /** quiet_hours when the send waits for the profile's quiet hours to end (or pacing). */
  deferredBy?: string;
  locale?: string;
  fields?: Record<string, string>;
  error?: string;
}

export interface DryRunMessage extends MessagePreview {
  nodeId: string;
  at: string;
  channel: string;
  templateKey: string;
  purpose: string;
}

export interface DryRunResult {
  profileId: string;
  group: 'treatment' | 'holdout';
  start: string;
  path: DryRunStep[];
  waits: DryRunWait[];
  messages: DryRunMessage[];
  /** Trait values the run would write (update_trait), in order. */
  traits: Array<{ nodeId: string; at: string; values: Record<string, unknown> }>;
  end: { reason: string; detail: string | null; at: string } | null;
  /** The walk stopped at maxSteps before the journey ended. */
  truncated: boolean;
}

/** Checks and renders one message at a simulated instant (channels' guards and templates). */
export type PreviewMessage = (request: MessageRequest, at: Date) => Promise<MessagePreview>;

const DEFAULT_MAX_STEPS = 200;

/**
 * The walk (pure but for `preview`): from the entry node with the profile's snapshot, at
 * `options.start`, jumping the clock from wait to wake, until the instance ends or maxSteps.
 */
export async function dryRunWalk(
  version: JourneyVersion,
  base: { workspaceId: string; profileId: string; timeZone: string; snapshot: ProfileSnapshot },
  options: DryRunOptions,
  preview: PreviewMessage,
): Promise<DryRunResult> {
  const maxSteps = options.maxSteps ?? DEFAULT_MAX_STEPS;
  const holdout = inHoldout(version.journeyId, base.profileId, entryNode(version.definition).holdoutPercent);
  let now = options.start;
  let snapshot = base.snapshot;
  let row: InstanceRow = {
    workspace_id: base.workspaceId,
    id: 'dry-run',
    journey_id: version.journeyId,
    version: version.version,
    profile_id: base.profileId,
    status: 'active',
    node_id: entryNode(version.definition).id,
    phase: 'arrive',
    due_at: now,
    holdout,
    entry: 'api',
    entered_at: now,
    wait_started_at: null,
    visits: {},
    step_count: 0,
    variables: options.variables ?? {},
    instance_key: '',
    ended_at: null,
    end_reason: null,
    end_detail: null,
  };
  const result: DryRunResult = {
    profileId: base.profileId,
    group: holdout ? 'holdout' : 'treatment',
    start: options.start.toISOString(),
    path: [],
    waits: [],
    messages: [],
    traits: [],
    end: null,
    truncated: false,
  };
  const settle = (step: number, outcome: string, detail?: Record<string, unknown>) => {
    const recorded = result.path[step - 1];
    if (!recorded) return;
    recorded.outcome = outcome;
    if (detail) recorded.detail = { ...recorded.detail, ...detail };
  };
  while (result.path.length < maxSteps) {
    const walked = walkInstance(row, version, { now, timeZone: base.timeZone, snapshot });
    if (typeof walked === 'symbol') throw new Error('A dry run always has the profile snapshot');
    if (walked.settle) settle(walked.settle.step, walked.settle.outcome, walked.settle.detail);
    for (const step of walked.steps) {
      result.path.push({ step: step.step, at: now.toISOString(), nodeId: step.nodeId, kind: step.kind, outcome: step.outcome, detail: step.detail ?? null });
    }
    for (const message of walked.messages) {
      const outcome = await preview(message.request, now);
      settle(message.step.step, outcome.decision === 'send' ? 'would_send' : outcome.decision === 'skip' ? 'would_skip' : 'error', {
        ...(outcome.reason ? { reason: outcome.reason } : {}),
      });
      result.messages.push({
        nodeId: message.step.nodeId,
        at: now.toISOString(),
        channel: message.request.channel,
        templateKey: message.request.templateKey,
        purpose: message.request.purpose,
        ...outcome,
      });
    }
    if (walked.traits) {
      const nodeId = walked.steps.filter((s) => s.kind === 'update_trait').at(-1)?.nodeId ?? row.node_id;
      result.traits.push({ nodeId, at: now.toISOString(), values: walked.traits });
      const traits: Record<string, unknown> = { ...snapshot.traits };
      for (const [key, value] of Object.entries(walked.traits)) {
        if (value === null) delete traits[key];
        else traits[key] = value;
      }
      snapshot = { ...snapshot, traits };
    }
    row = walked.instance;
    if (row.status !== 'active') {
      result.end = { reason: row.end_reason ?? row.status, detail: row.end_detail, at: now.toISOString() };
      return result;
    }
    if (row.phase !== 'wait') continue;
    const node = nodeById(version.definition, row.node_id)!;
    const due = row.due_at ?? now;
    if ((node.kind === 'wait' || node.kind === 'segment_wait') && options.assume?.[node.id] === 'happened') {
      result.waits.push({ nodeId: node.id, kind: node.kind, from: now.toISOString(), until: now.toISOString(), ends: 'happened' });
      settle(row.step_count, node.kind === 'wait' ? 'event' : 'happened', { assumed: true });
      row = { ...row, node_id: node.happened, phase: 'arrive', wait_started_at: null, due_at: now };
      continue;
    }
    result.waits.push({ nodeId: node.id, kind: node.kind, from: now.toISOString(), until: due.toISOString(), ends: node.kind === 'delay' ? 'next' : 'timed_out' });
    now = due;
  }
  result.truncated = true;
  return result;
}

/**
 * A dry run for a profile on a journey version: loads the profile's snapshot (what any node
 * reads, plus its traits) and walks with message previews in a transaction that is rolled back.
 */
export async function dryRun(db: Db, workspaceId: string, version: JourneyVersion, profileId: string, options: DryRunOptions): Promise<DryRunResult> {
  const client = await db.connect();
  try {
    await client.query('begin');
    const { rows } = await client.query<{ time_zone: string | null }>('select time_zone from workspaces where id = $1', [workspaceId]);
    const timeZone = rows[0]?.time_zone ?? 'UTC';
    const snapshot = await loadSnapshot(client, workspaceId, version, profileId, options.start);
    return await dryRunWalk(version, { workspaceId, profileId, timeZone, snapshot }, options, (request, at) => previewMessage(client, request, at));
  } finally {
    // Nothing of a dry run is kept: the guards' enqueues (and anything else) are undone.
    await client.query('rollback').catch(() => undefined);
    client.release();
  }
}

async function loadSnapshot(client: DbClient, workspaceId: string, version: JourneyVersion, profileId: string, now: Date): Promise<ProfileSnapshot> {
  const reads = { ...versionReads(version), traits: true };
  const needs = snapshotNeeds(reads, now.getTime());
  if (reads.segments.size > 0) {
    const { rows } = await client.query<{ id: string; key: string }>(
      `select id, key from segments where workspace_id = $1 and key = any($2::text[]) and status <> 'archived'`,
      [workspaceId, [...reads.segments]],
    );
    needs.memberships = new Map(rows.map((row) => [row.id, row.key]));
  }
  const [snapshot] = await loadProfileSnapshots(client, workspaceId, [profileId], needs);
  return snapshot ?? { profileId, traits: {}, identifierTypes: new Set(), consents: new Map(), memberships: new Set(), events: [] };
}

/**
 * One message through channels' enqueue (guards) in the run's transaction — its own key, so it
 * never meets a real message; kept until the final rollback so later messages of the run count
 * it against frequency caps — and rendered with the template version the enqueue chose.
 */
async function previewMessage(client: DbClient, request: MessageRequest, at: Date): Promise<MessagePreview> {
  await client.query('savepoint preview');
  try {
    const [enqueued] = await enqueueMessages(client, [{ ...request, idempotencyKey: `dry-run:${crypto.randomUUID()}` }], at);
    const { rows } = await client.query<{ status: string; reason: string | null; due_at: Date | null; template_version: number | null; deferred_by: string | null }>(
      `select m.status, m.reason, m.due_at, m.template_version,
              (select h.detail ->> 'deferred_by' from message_status_history h
                where h.workspace_id = m.workspace_id and h.message_id = m.id order by h.at limit 1) as deferred_by
         from messages m where m.workspace_id = $1 and m.id = $2`,
      [request.workspaceId, enqueued!.messageId],
    );
    await client.query('release savepoint preview');
    const message = rows[0];
    const rendered = await render(client, request, message?.template_version ?? undefined);
    if (!message || message.status === 'skipped') return { decision: 'skip', reason: message?.reason ?? enqueued!.reason ?? 'unknown', ...rendered };
    const dueAt = message.due_at ?? at;
    return {
      decision: rendered.error ? 'error' : 'send',
      sendAt: dueAt.toISOString(),
      ...(dueAt.getTime() > at.getTime() ? { deferredBy: message.deferred_by ?? 'pacing' } : {}),
      ...rendered,
    };
  } catch (error) {
    await client.query('rollback to savepoint preview');
    return { decision: 'error', error: error instanceof Error ? error.message : String(error) };
  }
}

async function render(client: DbClient, request: MessageRequest, version: number | undefined): Promise<Pick<MessagePreview, 'locale' | 'fields' | 'error'>> {
  const template = await findTemplate(client, request.workspaceId, request.templateKey, version);
  if (!template) return { error: `no template "${request.templateKey}"` };
  const facts = (await loadRecipients(client, request.workspaceId, [request.profileId])).get(request.profileId);
  if (!facts?.exists) return { error: 'profile not found' };
  try {
    const rendered = renderForProfile(request.workspaceId, template, facts, request.variables, {
      id: 'dry-run',
      unsubscribe_url: '#unsubscribe',
      preferences_url: '#preferences',
    });
    return { locale: rendered.locale, fields: rendered.fields };
  } catch (error) {
    if (error instanceof RenderError) return { error: `render_error: ${error.message}` };
    throw error;
  }
}
