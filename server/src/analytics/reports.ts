import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { ApiError } from '../api/errors.ts';
import { withTransaction, type Db, type Queryable } from '../storage/database.ts';
import { AttributionQuerySchema, runAttribution } from './attribution.ts';
import { TimeRangeSchema } from './definition.ts';
import { ExperimentQuerySchema, JourneyResultsQuerySchema, runExperiment, runJourneyResults } from './experiments.ts';
import { FunnelQuerySchema, runFunnel } from './funnel.ts';
import { LifecycleQuerySchema, runLifecycle } from './lifecycle.ts';
import { PathsQuerySchema, runPaths } from './paths.ts';
import { RetentionQuerySchema, runRetention } from './retention.ts';
import { runTouchpoints, TouchpointQuerySchema } from './touchpoints.ts';
import { runTrend, TrendQuerySchema } from './trends.ts';

/*
 * Saved reports: a named query definition of one kind, versioned (every change of definition is
 * a new version, kept), run on demand with its own range or one given at run time. A saved trend
 * with one series is how a team defines a metric once ("order conversion rate", "GMV") and reuses it.
 */

type Runner = (db: Db, workspaceId: string, definition: never, now: Date) => Promise<object>;
const KINDS = {
  funnel: { schema: FunnelQuerySchema, run: runFunnel as Runner },
  trend: { schema: TrendQuerySchema, run: runTrend as Runner },
  retention: { schema: RetentionQuerySchema, run: runRetention as Runner },
  paths: { schema: PathsQuerySchema, run: runPaths as Runner },
  lifecycle: { schema: LifecycleQuerySchema, run: runLifecycle as Runner },
  attribution: { schema: AttributionQuerySchema, run: runAttribution as Runner },
  touchpoints: { schema: TouchpointQuerySchema, run: runTouchpoints as Runner },
  journey: { schema: JourneyResultsQuerySchema, run: runJourneyResults as Runner },
  experiment: { schema: ExperimentQuerySchema, run: runExperiment as Runner },
} satisfies Record<string, { schema: TSchema; run: Runner }>;
export type ReportKind = keyof typeof KINDS;
const KIND_NAMES = Object.keys(KINDS) as ReportKind[];

const ReportKey = Type.String({ minLength: 1, maxLength: 64, pattern: '^[a-z0-9][a-z0-9_-]*$' });
const KindSchema = Type.Union(KIND_NAMES.map((kind) => Type.Literal(kind)));
const Definition = Type.Record(Type.String(), Type.Unknown(), { description: "The query body of the kind's endpoint (e.g. POST /v1/analytics/funnels)" });

export const CreateReportSchema = Type.Object(
  {
    key: ReportKey,
    name: Type.String({ minLength: 1, maxLength: 200 }),
    description: Type.Optional(Type.String({ maxLength: 2000 })),
    kind: KindSchema,
    definition: Definition,
  },
  { additionalProperties: false },
);
export type CreateReport = Static<typeof CreateReportSchema>;

export const UpdateReportSchema = Type.Object(
  {
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    description: Type.Optional(Type.Union([Type.String({ maxLength: 2000 }), Type.Null()])),
    definition: Type.Optional(Definition),
  },
  { additionalProperties: false },
);
export type UpdateReport = Static<typeof UpdateReportSchema>;

export const RunReportSchema = Type.Object(
  {
    range: Type.Optional(TimeRangeSchema),
    version: Type.Optional(Type.Integer({ minimum: 1, description: 'Run an earlier version of the definition' })),
  },
  { additionalProperties: false },
);
export type RunReport = Static<typeof RunReportSchema>;

export const ReportSchema = Type.Object({
  id: Type.String(),
  key: Type.String(),
  name: Type.String(),
  description: Type.Union([Type.String(), Type.Null()]),
  kind: Type.String(),
  definition: Definition,
  version: Type.Integer(),
  status: Type.String(),
  createdAt: Type.String(),
  updatedAt: Type.String(),
});
export type Report = Static<typeof ReportSchema>;
export const ReportListSchema = Type.Object({ items: Type.Array(ReportSchema) });
export const ReportRunSchema = Type.Object({ report: ReportSchema, version: Type.Integer(), result: Type.Record(Type.String(), Type.Unknown()) });
export const ReportKeyParams = Type.Object({ key: ReportKey });

/** Refuses a definition its kind's endpoint would refuse, naming the field under `definition`. */
function checkDefinition(kind: ReportKind, definition: unknown): void {
  const schema = KINDS[kind].schema;
  if (Value.Check(schema, definition)) return;
  const first = Value.Errors(schema, definition).First();
  const path = first?.path.replace(/^\//, '').replaceAll('/', '.') ?? '';
  throw new ApiError(400, 'invalid_definition', `definition${path ? `.${path}` : ''}: ${first?.message ?? 'is invalid'} (for a ${kind} report)`, path ? `definition.${path}` : 'definition');
}

interface ReportRow {
  id: string;
  key: string;
  name: string;
  description: string | null;
  kind: ReportKind;
  definition: Record<string, unknown>;
  version: number;
  status: string;
  created_at: Date;
  updated_at: Date;
}

const toReport = (row: ReportRow): Report => ({
  id: row.id,
  key: row.key,
  name: row.name,
  description: row.description,
  kind: row.kind,
  definition: row.definition,
  version: row.version,
  status: row.status,
  createdAt: row.created_at.toISOString(),
  updatedAt: row.updated_at.toISOString(),
});

async function findReport(db: Queryable, workspaceId: string, key: string): Promise<ReportRow> {
  const { rows } = await db.query<ReportRow>('select * from analytics_reports where workspace_id = $1 and key = $2', [workspaceId, key]);
  if (!rows[0]) throw new ApiError(404, 'not_found', `No report "${key}" in this workspace`, 'key');
  return rows[0];
}

export async function createReport(db: Db, workspaceId: string, input: CreateReport): Promise<Report> {
  checkDefinition(input.kind, input.definition);
  return withTransaction(db, async (client) => {
    const { rows } = await client.query<ReportRow>(
      `insert into analytics_reports (workspace_id, key, name, description, kind, definition) values ($1, $2, $3, $4, $5, $6)
       on conflict (workspace_id, key) do nothing returning *`,
      [workspaceId, input.key, input.name, input.description ?? null, input.kind, input.definition],
    );
    if (!rows[0]) throw new ApiError(409, 'conflict', `A report "${input.key}" already exists`, 'key');
    await client.query('insert into analytics_report_versions (workspace_id, report_id, version, definition) values ($1, $2, 1, $3)', [workspaceId, rows[0].id, input.definition]);
    return toReport(rows[0]);
  });
}

export async function listReports(db: Queryable, workspaceId: string): Promise<Report[]> {
  const { rows } = await db.query<ReportRow>(`select * from analytics_reports where workspace_id = $1 and status = 'active' order by key`, [workspaceId]);
  return rows.map(toReport);
}

export async function getReport(db: Queryable, workspaceId: string, key: string): Promise<Report> {
  return toReport(await findReport(db, workspaceId, key));
}

export async function updateReport(db: Db, workspaceId: string, key: string, input: UpdateReport): Promise<Report> {
  return withTransaction(db, async (client) => {
    const current = await findReport(client, workspaceId, key);
    if (current.status === 'archived') throw new ApiError(409, 'archived', `Report "${key}" is archived`, 'key');
    const changed = input.definition !== undefined && JSON.stringify(input.definition) !== JSON.stringify(current.definition);
    if (input.definition !== undefined) checkDefinition(current.kind, input.definition);
    const version = changed ? current.version + 1 : current.version;
    const { rows } = await client.query<ReportRow>(
      `update analytics_reports set name = $3, description = $4, definition = $5, version = $6, updated_at = now()
        where workspace_id = $1 and id = $2 returning *`,
      [workspaceId, current.id, input.name ?? current.name, input.description === undefined ? current.description : input.description, input.definition ?? current.definition, version],
    );
    if (changed) {
      await client.query('insert into analytics_report_versions (workspace_id, report_id, version, definition) values ($1, $2, $3, $4)', [workspaceId, current.id, version, input.definition]);
    }
    return toReport(rows[0]!);
  });
}

export async function archiveReport(db: Db, workspaceId: string, key: string): Promise<Report> {
  const current = await findReport(db, workspaceId, key);
  const { rows } = await db.query<ReportRow>(`update analytics_reports set status = 'archived', updated_at = now() where workspace_id = $1 and id = $2 returning *`, [workspaceId, current.id]);
  return toReport(rows[0]!);
}

/** Runs a saved report (its current version, or an earlier one), with an optional range instead of its own. */
export async function runReport(db: Db, workspaceId: string, key: string, input: RunReport, now: Date): Promise<Static<typeof ReportRunSchema>> {
  const report = await findReport(db, workspaceId, key);
  if (report.status === 'archived') throw new ApiError(409, 'archived', `Report "${key}" is archived`, 'key');
  let definition = report.definition;
  const version = input.version ?? report.version;
  if (input.version !== undefined && input.version !== report.version) {
    const { rows } = await db.query<{ definition: Record<string, unknown> }>(
      'select definition from analytics_report_versions where workspace_id = $1 and report_id = $2 and version = $3',
      [workspaceId, report.id, input.version],
    );
    if (!rows[0]) throw new ApiError(404, 'not_found', `Report "${key}" has no version ${input.version}`, 'version');
    definition = rows[0].definition;
  }
  const body = input.range ? { ...definition, range: input.range } : definition;
  checkDefinition(report.kind, body);
  const result = await KINDS[report.kind].run(db, workspaceId, body as never, now);
  return { report: toReport(report), version, result: result as Record<string, unknown> };
}
