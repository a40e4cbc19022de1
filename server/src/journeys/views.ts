import { ApiError } from '../api/errors.ts';
import { decodeCursor, encodeCursor } from '../api/pagination.ts';
import type { Queryable } from '../storage/database.ts';
import { INSTANCE_COLUMNS, type InstanceRow } from './instances.ts';
import type { InstanceView } from './schemas.ts';
import type { JourneyRecord } from './store.ts';

/* What operators read: instances, one instance's path, per-node live counts. */

export function toInstanceView(row: InstanceRow): InstanceView {
  return {
    id: row.id,
    profileId: row.profile_id,
    version: row.version,
    status: row.status,
    currentNode: row.node_id,
    waiting: row.status === 'active' && row.phase === 'wait',
    nextDueAt: row.status === 'active' && row.due_at ? row.due_at.toISOString() : null,
    group: row.holdout ? 'holdout' : 'treatment',
    entry: row.entry,
    enteredAt: row.entered_at.toISOString(),
    endedAt: row.ended_at ? row.ended_at.toISOString() : null,
    endReason: row.end_reason,
    endDetail: row.end_detail,
  };
}

export async function listInstances(
  db: Queryable,
  workspaceId: string,
  journeyId: string,
  query: { status?: string; profileId?: string; version?: number; limit?: number; cursor?: string },
): Promise<{ items: InstanceView[]; nextCursor: string | null }> {
  const limit = query.limit ?? 50;
  const [cursorAt, cursorId] = query.cursor ? decodeCursor(query.cursor, ['instant', 'uuid']) : [null, null];
  const { rows } = await db.query<InstanceRow & { cursor_at: string }>(
    `select ${INSTANCE_COLUMNS}, to_json(i.entered_at)#>>'{}' as cursor_at from journey_instances i
      where i.workspace_id = $1 and i.journey_id = $2 and ($3::text is null or i.status = $3) and ($4::uuid is null or i.profile_id = $4)
        and ($5::timestamptz is null or (i.entered_at, i.id) < ($5, $6::uuid)) and ($8::int is null or i.version = $8)
      order by i.entered_at desc, i.id desc limit $7`,
    [workspaceId, journeyId, query.status ?? null, query.profileId ?? null, cursorAt, cursorId, limit + 1, query.version ?? null],
  );
  const page = rows.slice(0, limit);
  const last = page.at(-1);
  return { items: page.map(toInstanceView), nextCursor: rows.length > limit && last ? encodeCursor([last.cursor_at, last.id]) : null };
}

export async function getInstance(db: Queryable, workspaceId: string, journeyId: string, instanceId: string): Promise<InstanceRow> {
  const { rows } = await db.query<InstanceRow>(
    `select ${INSTANCE_COLUMNS} from journey_instances i where i.workspace_id = $1 and i.id = $2 and i.journey_id = $3`,
    [workspaceId, instanceId, journeyId],
  );
  if (!rows[0]) throw new ApiError(404, 'not_found', `No instance ${instanceId} in this journey`, 'instanceId');
  return rows[0];
}

export async function instancePath(db: Queryable, workspaceId: string, instanceId: string) {
  const { rows } = await db.query<{ step: number; node_id: string; kind: string; version: number; at: Date; outcome: string; detail: Record<string, unknown> | null }>(
    'select step, node_id, kind, version, at, outcome, detail from journey_steps where workspace_id = $1 and instance_id = $2 order by step',
    [workspaceId, instanceId],
  );
  return rows.map((row) => ({ step: row.step, nodeId: row.node_id, kind: row.kind, version: row.version, at: row.at.toISOString(), outcome: row.outcome, detail: row.detail }));
}

/**
 * Per node of the live version: arrivals (every version's, by node id), instances there now, and
 * instances that ended or converted there. Counted from the step history and the instances of
 * this journey only (indexes by journey), not kept as counters.
 */
export async function nodeCounts(db: Queryable, workspaceId: string, journey: JourneyRecord) {
  const { rows: versionRows } = await db.query<{ definition: { nodes: Array<{ id: string; kind: string }> } }>(
    'select definition from journey_versions where workspace_id = $1 and journey_id = $2 and version = $3',
    [workspaceId, journey.id, journey.currentVersion],
  );
  const nodes = versionRows[0]?.definition.nodes ?? journey.draft.nodes;
  const [entered, states, moves, perVersion] = await Promise.all([
    db.query<{ node_id: string; n: number }>(
      `select node_id, count(*)::int as n from journey_steps where workspace_id = $1 and journey_id = $2 and kind <> 'error' group by node_id`,
      [workspaceId, journey.id],
    ),
    db.query<{ node_id: string; status: string; n: number }>(
      `select node_id, status, count(*)::int as n from journey_instances where workspace_id = $1 and journey_id = $2 group by node_id, status`,
      [workspaceId, journey.id],
    ),
    // Each arrival with the node the instance came from: the traffic on every edge.
    db.query<{ source: string; target: string; n: number }>(
      `select source, target, count(*)::int as n
         from (select lag(node_id) over (partition by instance_id order by step) as source, node_id as target
                 from journey_steps where workspace_id = $1 and journey_id = $2 and kind <> 'error') s
        where source is not null and source <> target
        group by source, target`,
      [workspaceId, journey.id],
    ),
    versionCounts(db, workspaceId, journey.id),
  ]);
  const arrivals = new Map(entered.rows.map((row) => [row.node_id, row.n]));
  const count = (nodeId: string, statuses: string[]) =>
    states.rows.filter((row) => row.node_id === nodeId && statuses.includes(row.status)).reduce((sum, row) => sum + row.n, 0);
  return {
    version: journey.currentVersion,
    nodes: nodes.map((node) => ({
      nodeId: node.id,
      kind: node.kind,
      entered: arrivals.get(node.id) ?? 0,
      waiting: count(node.id, ['active']),
      exited: count(node.id, ['completed', 'exited']),
      converted: count(node.id, ['converted']),
    })),
    edges: moves.rows.map((row) => ({ source: row.source, target: row.target, count: row.n })),
    versions: [...perVersion.entries()].sort(([a], [b]) => b - a).map(([version, counts]) => ({ version, ...counts })),
  };
}

export interface VersionInstances {
  active: number;
  completed: number;
  converted: number;
  exited: number;
}

/** Instances per version and status (exited counts stopped and removed too): who is on which version now. */
export async function versionCounts(db: Queryable, workspaceId: string, journeyId: string): Promise<Map<number, VersionInstances>> {
  const { rows } = await db.query<{ version: number; status: keyof VersionInstances; n: number }>(
    'select version, status, count(*)::int as n from journey_instances where workspace_id = $1 and journey_id = $2 group by version, status',
    [workspaceId, journeyId],
  );
  const counts = new Map<number, VersionInstances>();
  for (const row of rows) {
    const entry = counts.get(row.version) ?? { active: 0, completed: 0, converted: 0, exited: 0 };
    entry[row.status] += row.n;
    counts.set(row.version, entry);
  }
  return counts;
}

/** Every published version of a journey with its frozen definition and its instances per status, newest first. */
export async function listVersions(db: Queryable, workspaceId: string, journey: JourneyRecord) {
  const [{ rows }, counts] = await Promise.all([
    db.query<{ version: number; published_at: Date; definition: JourneyRecord['draft'] }>(
      'select version, published_at, definition from journey_versions where workspace_id = $1 and journey_id = $2 order by version desc',
      [workspaceId, journey.id],
    ),
    versionCounts(db, workspaceId, journey.id),
  ]);
  return {
    items: rows.map((row) => ({
      version: row.version,
      publishedAt: row.published_at.toISOString(),
      live: row.version === journey.currentVersion,
      instances: counts.get(row.version) ?? { active: 0, completed: 0, converted: 0, exited: 0 },
      definition: row.definition,
    })),
  };
}
