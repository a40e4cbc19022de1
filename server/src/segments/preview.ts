import { performance } from 'node:perf_hooks';
import { ApiError } from '../api/errors.ts';
import { withTransaction, type Db } from '../storage/database.ts';
import { checkDefinition, conditionFromInput } from './definition.ts';
import { printSegment } from './language/print.ts';
import { segmentReferences } from './references.ts';
import type { Preview, PreviewBody } from './schemas.ts';
import { compileSegmentQuery } from './sql/compile.ts';
import { encodeSegmentCondition } from '../privacy/pii-segments.ts';
import { listLiveSegments, segmentIdsByKey } from './store.ts';

// The answer must come in under 2 s: the count and the sample run side by side, each cut off
// after this long; a cut-off count falls back to the planner's estimate.
const QUERY_BUDGET_MS = 1_500;
const DISPLAY_TRAITS = ['name', 'first_name', 'last_name', 'email', 'phone', 'city'];
const MAX_SAMPLE_TRAITS = 12;
const QUERY_CANCELED = '57014';

const isCanceled = (error: unknown) => (error as { code?: string }).code === QUERY_CANCELED;

interface CompiledQuery {
  text: string;
  values: unknown[];
}

/**
 * What a definition would select right now, without saving it: its size (counted, or estimated
 * when counting takes too long), a sample of members with the traits the definition reads, and
 * the checker's warnings.
 */
export async function previewSegment(db: Db, workspaceId: string, body: PreviewBody, now: Date): Promise<Preview> {
  const started = performance.now();
  const condition = conditionFromInput(body);
  if (!condition) throw new ApiError(400, 'invalid_request', 'Give the segment as definition or as text', 'definition');
  const live = await listLiveSegments(db, workspaceId);
  const warnings = await checkDefinition(db, workspaceId, condition, {
    field: body.text !== undefined ? 'text' : 'definition',
    segmentKeys: live.map((s) => s.key),
  });
  const query = compileSegmentQuery(await encodeSegmentCondition(db, workspaceId, condition), { workspaceId, now, segmentIds: segmentIdsByKey(live) });
  const traitKeys = [...new Set([...segmentReferences(condition).traits.map((path) => path.split('.')[0]!), ...DISPLAY_TRAITS])].slice(
    0,
    MAX_SAMPLE_TRAITS,
  );
  const [size, sample] = await Promise.all([
    countMembers(db, query),
    sampleMembers(db, workspaceId, query, body.sampleSize ?? 20, traitKeys),
  ]);
  return {
    estimatedSize: size.count,
    exact: size.exact,
    sample: sample.profiles,
    sampleComplete: sample.complete,
    definition: condition,
    text: printSegment(condition),
    warnings,
    durationMs: Math.round((performance.now() - started) * 10) / 10,
  };
}

/** The query's row count if it comes within `budgetMs`, else the planner's estimate of it. */
export async function countMembers(db: Db, query: CompiledQuery, budgetMs = QUERY_BUDGET_MS): Promise<{ count: number; exact: boolean }> {
  try {
    return await withTransaction(db, async (client) => {
      await client.query(`set local statement_timeout = ${Math.max(1, Math.round(budgetMs))}`);
      const { rows } = await client.query<{ count: number }>(`select count(*) as count from (${query.text}) as compiled`, query.values);
      return { count: rows[0]!.count, exact: true };
    });
  } catch (error) {
    if (!isCanceled(error)) throw error;
  }
  const { rows } = await db.query<{ 'QUERY PLAN': Array<{ Plan: { 'Plan Rows': number } }> }>(
    `explain (format json) select profile_id from (${query.text}) as compiled`,
    query.values,
  );
  return { count: Math.round(rows[0]!['QUERY PLAN'][0]!.Plan['Plan Rows']), exact: false };
}

async function sampleMembers(
  db: Db,
  workspaceId: string,
  query: CompiledQuery,
  size: number,
  traitKeys: readonly string[],
): Promise<{ profiles: Preview['sample']; complete: boolean }> {
  if (size === 0) return { profiles: [], complete: true };
  let ids: string[];
  try {
    ids = await withTransaction(db, async (client) => {
      await client.query(`set local statement_timeout = ${QUERY_BUDGET_MS}`);
      const { rows } = await client.query<{ profile_id: string }>(
        `select profile_id from (${query.text}) as compiled limit $${query.values.length + 1}`,
        [...query.values, size],
      );
      return rows.map((row) => row.profile_id);
    });
  } catch (error) {
    if (!isCanceled(error)) throw error;
    return { profiles: [], complete: false };
  }
  const { rows } = await db.query<{ profile_id: string; traits: Record<string, unknown> }>(
    `select profile_id, jsonb_object_agg(key, value) as traits from profile_traits
      where workspace_id = $1 and profile_id = any($2::uuid[]) and key = any($3::text[])
      group by profile_id`,
    [workspaceId, ids, traitKeys],
  );
  const traits = new Map(rows.map((row) => [row.profile_id, row.traits]));
  return { profiles: ids.map((id) => ({ id, traits: traits.get(id) ?? {} })), complete: true };
}
