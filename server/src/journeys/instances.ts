import type { DbClient, Queryable } from '../storage/database.ts';
import type { SystemEvent } from '../segments/transitions.ts';
import type { JourneyDefinition } from './definition.ts';

/*
 * Journey instances as stored, the frozen versions they walk, and what every change of an
 * instance writes besides itself: the step history and the Journey events of docs/events.md.
 */

export type InstanceStatus = 'active' | 'completed' | 'converted' | 'exited';
export type EndReason = 'completed' | 'converted' | 'exited' | 'stopped' | 'removed';
export type EntryKind = 'event' | 'segment' | 'api' | 'date' | 'schedule';

export interface InstanceRow {
  workspace_id: string;
  id: string;
  journey_id: string;
  version: number;
  profile_id: string;
  status: InstanceStatus;
  node_id: string;
  phase: 'arrive' | 'wait';
  due_at: Date | null;
  holdout: boolean;
  entry: EntryKind;
  entered_at: Date;
  wait_started_at: Date | null;
  visits: Record<string, number>;
  step_count: number;
  variables: Record<string, unknown>;
  /** '' for one instance per profile; the key's value for per-key instances. */
  instance_key: string;
  ended_at: Date | null;
  end_reason: EndReason | null;
  end_detail: string | null;
}

export interface JourneyVersion {
  journeyId: string;
  journeyKey: string;
  version: number;
  definition: JourneyDefinition;
}

// Published versions never change, so a process keeps them once read.
const versionCache = new Map<string, JourneyVersion>();

export async function loadVersion(db: Queryable, workspaceId: string, journeyId: string, version: number): Promise<JourneyVersion> {
  const cacheKey = `${workspaceId}:${journeyId}:${version}`;
  const cached = versionCache.get(cacheKey);
  if (cached) return cached;
  const { rows } = await db.query<{ key: string; definition: JourneyDefinition }>(
    `select j.key, v.definition from journey_versions v join journeys j on j.workspace_id = v.workspace_id and j.id = v.journey_id
      where v.workspace_id = $1 and v.journey_id = $2 and v.version = $3`,
    [workspaceId, journeyId, version],
  );
  const row = rows[0];
  if (!row) throw new Error(`Journey ${journeyId} has no version ${version}`);
  const loaded = { journeyId, journeyKey: row.key, version, definition: row.definition };
  if (versionCache.size > 5_000) versionCache.clear();
  versionCache.set(cacheKey, loaded);
  return loaded;
}

/** The ids every Journey event carries. */
export function journeyIds(version: JourneyVersion, instanceId: string): Record<string, unknown> {
  return { journey_id: version.journeyId, journey_key: version.journeyKey, journey_version: version.version, instance_id: instanceId };
}

export async function recordStep(
  client: DbClient,
  instance: InstanceRow,
  step: { nodeId: string; kind: string; outcome: string; detail?: Record<string, unknown> },
  at: Date,
): Promise<void> {
  instance.step_count += 1;
  await client.query(
    `insert into journey_steps (workspace_id, instance_id, step, journey_id, version, node_id, kind, at, outcome, detail)
     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
    [instance.workspace_id, instance.id, instance.step_count, instance.journey_id, instance.version, step.nodeId, step.kind, at, step.outcome, step.detail ?? null],
  );
}

/** Sets the outcome of the instance's latest step (a wait learns how it ended when it ends). */
export async function settleLastStep(client: DbClient, instance: InstanceRow, outcome: string, detail?: Record<string, unknown>): Promise<void> {
  await client.query(
    `update journey_steps set outcome = $4, detail = coalesce(detail, '{}'::jsonb) || coalesce($5::jsonb, '{}'::jsonb)
      where workspace_id = $1 and instance_id = $2 and step = $3`,
    [instance.workspace_id, instance.id, instance.step_count, outcome, detail ? JSON.stringify(detail) : null],
  );
}

/** Writes an instance's moving parts back. */
export async function saveInstance(client: DbClient, instance: InstanceRow): Promise<void> {
  await client.query(
    `update journey_instances set version = $3, status = $4, node_id = $5, phase = $6, due_at = $7, wait_started_at = $8, visits = $9,
            step_count = $10, ended_at = $11, end_reason = $12, end_detail = $13
      where workspace_id = $1 and id = $2`,
    [
      instance.workspace_id,
      instance.id,
      instance.version,
      instance.status,
      instance.node_id,
      instance.phase,
      instance.due_at,
      instance.wait_started_at,
      JSON.stringify(instance.visits),
      instance.step_count,
      instance.ended_at,
      instance.end_reason,
      instance.end_detail,
    ],
  );
}

const STATUS_OF_REASON: Record<EndReason, InstanceStatus> = {
  completed: 'completed',
  converted: 'converted',
  exited: 'exited',
  stopped: 'exited',
  removed: 'exited',
};

/**
 * Ends an instance where it is (in memory; the caller saves it): Journey Converted for a goal,
 * then Journey Exited with the reason, each once per instance (message ids derive from it).
 */
export function finishInstance(instance: InstanceRow, version: JourneyVersion, reason: EndReason, detail: string | null, at: Date, events: SystemEvent[]): void {
  instance.status = STATUS_OF_REASON[reason];
  instance.ended_at = at;
  instance.end_reason = reason;
  instance.end_detail = detail;
  instance.due_at = null;
  const ids = journeyIds(version, instance.id);
  if (reason === 'converted') {
    events.push({
      messageId: `journey-converted-${instance.id}`,
      event: 'Journey Converted',
      profileId: instance.profile_id,
      properties: { ...ids, goal: detail, node_id: instance.node_id },
    });
  }
  events.push({
    messageId: `journey-exited-${instance.id}`,
    event: 'Journey Exited',
    profileId: instance.profile_id,
    properties: { ...ids, reason, node_id: instance.node_id, ...(detail === null ? {} : { detail }) },
  });
}

export const INSTANCE_COLUMNS = `i.workspace_id, i.id, i.journey_id, i.version, i.profile_id, i.status, i.node_id, i.phase, i.due_at, i.holdout, i.entry,
  i.entered_at, i.wait_started_at, i.visits, i.step_count, i.variables, i.instance_key, i.ended_at, i.end_reason, i.end_detail`;
