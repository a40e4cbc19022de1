import { performance } from 'node:perf_hooks';
import { ApiError } from '../api/errors.ts';
import { withTransaction, type Db } from '../storage/database.ts';
import { checkDefinition, conditionFromInput } from './definition.ts';
import { printSegment } from './language/print.ts';
import { segmentReferences } from './references.ts';
import type { Condition } from './ast.ts';
import type { Preview, PreviewBody } from './schemas.ts';
import { estimateFromSample, uuidAtFraction, Z_95 } from './sample-estimate.ts';
import { compileSegmentQuery, type CompileContext, type ProfileRange } from './sql/compile.ts';
import { encodeSegmentCondition } from '../privacy/pii-segments.ts';
import { listLiveSegments, segmentIdsByKey } from './store.ts';

// The answer must come in under 2 s. Within this budget, side by side: an exact count of the
// whole definition, and the definition evaluated on a growing random sample of profiles (see
// sample-estimate.ts). The exact count wins when it finishes in time.
// Checking the definition before and reading the sample's traits after take the rest of the 2 s.
const QUERY_BUDGET_MS = 1_200;
// Live profiles the first sample stage covers; each later stage doubles the sample.
const FIRST_STAGE_PROFILES = 500;
// The sample stops growing once its 95 % interval is this narrow relative to the estimate (and
// it holds enough members for the sample shown), leaving the cores to the exact count.
const ENOUGH_PRECISION = 0.025;
// A stage is not started with less time left than this.
const MIN_STAGE_MS = 20;
const DISPLAY_TRAITS = ['name', 'first_name', 'last_name', 'email', 'phone', 'city'];
const MAX_SAMPLE_TRAITS = 12;
const QUERY_CANCELED = '57014';

const isCanceled = (error: unknown) => (error as { code?: string }).code === QUERY_CANCELED;

interface CompiledQuery {
  text: string;
  values: unknown[];
}

export interface PreviewOptions {
  /** How long the size and sample queries may take together (ms). */
  budgetMs?: number;
  /** How long the exact count may take (ms, at most budgetMs); 0: estimate from the sample only. */
  exactBudgetMs?: number;
  /** Live profiles in the first sample stage; a workspace no larger is counted exactly in it. */
  firstStageProfiles?: number;
  /** At most this many sample stages (a fixed sample whatever the machine's speed, for tests). */
  maxStages?: number;
}

/** How a preview's size was obtained, and how sure it is. */
export interface PreviewSize {
  method: 'exact' | 'sampled' | 'planner';
  estimate: number;
  /** 95 % interval (exact: the count twice); null for the planner's guess, which has none. */
  low: number | null;
  high: number | null;
  liveProfiles: number;
  /** Live profiles the sample evaluated the definition on, and how many of them matched (sampled only). */
  sampledProfiles: number | null;
  sampledMatches: number | null;
  /** Matching profiles, lowest ids first (a uniform random choice of members: ids are random). */
  memberIds: string[];
}

/**
 * What a definition would select right now, without saving it: its size (counted, or estimated
 * from a random sample of profiles with a 95 % interval when counting takes too long), a sample of
 * members with the traits the definition reads, and the checker's warnings.
 */
export async function previewSegment(db: Db, workspaceId: string, body: PreviewBody, now: Date, options: PreviewOptions = {}): Promise<Preview> {
  const started = performance.now();
  const condition = conditionFromInput(body);
  if (!condition) throw new ApiError(400, 'invalid_request', 'Give the segment as definition or as text', 'definition');
  const live = await listLiveSegments(db, workspaceId);
  const warnings = await checkDefinition(db, workspaceId, condition, {
    field: body.text !== undefined ? 'text' : 'definition',
    segmentKeys: live.map((s) => s.key),
  });
  const encoded = await encodeSegmentCondition(db, workspaceId, condition);
  const traitKeys = [...new Set([...segmentReferences(condition).traits.map((path) => path.split('.')[0]!), ...DISPLAY_TRAITS])].slice(
    0,
    MAX_SAMPLE_TRAITS,
  );
  const sampleSize = body.sampleSize ?? 20;
  const size = await measureSegment(db, encoded, { workspaceId, now, segmentIds: segmentIdsByKey(live) }, sampleSize, options);
  const sample = await withTraits(db, workspaceId, size.memberIds, traitKeys);
  return {
    estimatedSize: size.estimate,
    exact: size.method === 'exact',
    method: size.method,
    sizeInterval: size.low === null || size.high === null ? null : { low: size.low, high: size.high, confidence: size.method === 'exact' ? 1 : 0.95 },
    liveProfiles: size.liveProfiles,
    sampledProfiles: size.sampledProfiles,
    sampledMatches: size.sampledMatches,
    sample,
    // Shorter than asked only when more members surely exist than were shown.
    sampleComplete: sample.length >= Math.min(sampleSize, size.low ?? (size.method === 'planner' ? sampleSize : 0)),
    definition: condition,
    text: printSegment(condition),
    warnings,
    durationMs: Math.round((performance.now() - started) * 10) / 10,
  };
}

/**
 * The size of the condition's segment at `context.now` and up to `sampleSize` of its members:
 * exact when counting finishes within the budget (or the workspace is small enough to evaluate in
 * one sample stage), otherwise estimated from the largest random sample of profiles evaluated in
 * time, otherwise (not even a first sample stage finished) the planner's guess.
 */
export async function measureSegment(
  db: Db,
  condition: Condition,
  context: CompileContext,
  sampleSize: number,
  options: PreviewOptions = {},
): Promise<PreviewSize> {
  const budgetMs = options.budgetMs ?? QUERY_BUDGET_MS;
  const exactBudgetMs = Math.min(budgetMs, options.exactBudgetMs ?? budgetMs);
  const firstStageProfiles = options.firstStageProfiles ?? FIRST_STAGE_PROFILES;
  const maxStages = options.maxStages ?? Infinity;
  if (!(budgetMs > 0) || !(exactBudgetMs >= 0) || !(firstStageProfiles >= 1) || !(maxStages >= 1)) {
    throw new RangeError(`bad preview options: ${JSON.stringify(options)}`);
  }
  const deadline = performance.now() + budgetMs;
  const query = compileSegmentQuery(condition, context);
  const exactDone = { value: false };
  // Started at once, beside the count of live profiles the sample needs.
  const exact =
    exactBudgetMs > 0
      ? evaluate(db, query, context.workspaceId, null, sampleSize, exactBudgetMs).then((answer) => {
          if (answer) exactDone.value = true;
          return answer;
        })
      : Promise.resolve(null);
  // The stages start without waiting for the exact count of live profiles (a scan of them all):
  // their sizes come from the planner's row count of the profiles table (all workspaces), when
  // it has one.
  const live = countLiveProfiles(db, context.workspaceId);
  live.catch(() => undefined);
  const planned = await plannedProfiles(db);
  const liveProfilesFirst = planned === null || planned <= firstStageProfiles ? await live : null;
  if (liveProfilesFirst !== null && liveProfilesFirst <= firstStageProfiles) {
    // Small enough for one sample stage, which would be the whole workspace: count it.
    const remaining = deadline - performance.now();
    const all = (await exact) ?? (remaining > 0 ? await evaluate(db, query, context.workspaceId, null, sampleSize, remaining) : null);
    return all ? exactSize(all.matches, all.ids, liveProfilesFirst) : plannerGuess(db, query, liveProfilesFirst);
  }
  const stageBase = liveProfilesFirst ?? planned!;
  const [counted, sampled, liveProfiles] = await Promise.all([
    exact,
    sampleStages(db, condition, context, stageBase, { sampleSize, deadline, firstStageProfiles, maxStages, stop: exactDone }),
    live,
  ]);
  if (counted) return exactSize(counted.matches, counted.ids, liveProfiles);
  if (sampled.complete) return exactSize(sampled.matches, sampled.ids, liveProfiles);
  if (sampled.profiles === 0) return plannerGuess(db, query, liveProfiles);
  // Profiles created since the live count could make the sample exceed it.
  const population = Math.max(liveProfiles, sampled.profiles);
  const estimate = estimateFromSample(sampled.matches, sampled.profiles, population, Z_95);
  return {
    method: 'sampled',
    ...estimate,
    liveProfiles: population,
    sampledProfiles: sampled.profiles,
    sampledMatches: sampled.matches,
    memberIds: sampled.ids,
  };
}

function exactSize(count: number, memberIds: string[], liveProfiles: number): PreviewSize {
  return { method: 'exact', estimate: count, low: count, high: count, liveProfiles, sampledProfiles: null, sampledMatches: null, memberIds };
}

async function plannedProfiles(db: Db): Promise<number | null> {
  const { rows } = await db.query<{ n: number }>(`select reltuples::float8 as n from pg_class where oid = 'profiles'::regclass`);
  const n = rows[0]?.n ?? -1;
  return n > 0 ? Math.round(n) : null;
}

async function countLiveProfiles(db: Db, workspaceId: string): Promise<number> {
  const { rows } = await db.query<{ n: number }>('select count(*)::int as n from profiles where workspace_id = $1 and merged_into is null', [workspaceId]);
  return rows[0]!.n;
}

/**
 * Grows a sample of the UUID space from its start, stage by stage (each doubling it), until the
 * exact count has answered, the whole space is covered (then the answer is exact), the interval is
 * narrow enough, or the next stage would not finish by the deadline (predicted from the last one;
 * a stage cut off by the deadline is dropped, the stages before it stand).
 */
async function sampleStages(
  db: Db,
  condition: Condition,
  context: CompileContext,
  liveProfiles: number,
  options: { sampleSize: number; deadline: number; firstStageProfiles: number; maxStages: number; stop: { value: boolean } },
): Promise<{ profiles: number; matches: number; ids: string[]; complete: boolean }> {
  let covered = 0;
  let profiles = 0;
  let matches = 0;
  const ids: string[] = [];
  let next = options.firstStageProfiles / liveProfiles;
  let last: { ms: number; fraction: number } | null = null;
  for (let stages = 0; stages < options.maxStages && !options.stop.value; stages++) {
    const to = Math.min(1, next);
    const remaining = options.deadline - performance.now();
    if (remaining < MIN_STAGE_MS) break;
    if (last && (last.ms * (to - covered)) / last.fraction > remaining) break;
    const range: ProfileRange = { from: uuidAtFraction(covered)!, to: uuidAtFraction(to) };
    const query = compileSegmentQuery(condition, { ...context, profileRange: range });
    const stageStarted = performance.now();
    const stage = await evaluate(db, query, context.workspaceId, range, options.sampleSize - ids.length, remaining);
    if (!stage) break;
    last = { ms: performance.now() - stageStarted, fraction: to - covered };
    covered = to;
    profiles += stage.live;
    matches += stage.matches;
    ids.push(...stage.ids);
    if (covered >= 1) return { profiles, matches, ids, complete: true };
    if (ids.length >= options.sampleSize && matches > 0) {
      const { estimate, low, high } = estimateFromSample(matches, profiles, Math.max(liveProfiles, profiles));
      if ((high - low) / 2 <= ENOUGH_PRECISION * estimate) break;
    }
    next = covered * 2;
  }
  return { profiles, matches, ids, complete: false };
}

/**
 * Runs a compiled segment query (restricted to `range`, or not) within `budgetMs`: the number of
 * profiles it returns, the `limit` lowest of their ids, and the live profiles in the range;
 * null when cut off.
 */
async function evaluate(
  db: Db,
  query: CompiledQuery,
  workspaceId: string,
  range: ProfileRange | null,
  limit: number,
  budgetMs: number,
): Promise<{ matches: number; ids: string[]; live: number } | null> {
  const values = [...query.values, Math.max(0, limit)];
  const limitParam = `$${values.length}`;
  let live = '0';
  if (range) {
    values.push(workspaceId, range.from);
    live = `(select count(*)::int from profiles p where p.workspace_id = $${values.length - 1}::uuid and p.merged_into is null and p.id >= $${values.length}::uuid`;
    if (range.to !== null) {
      values.push(range.to);
      live += ` and p.id < $${values.length}::uuid`;
    }
    live += ')';
  }
  try {
    return await withTransaction(db, async (client) => {
      await client.query(`set local statement_timeout = ${Math.max(1, Math.round(budgetMs))}`);
      const { rows } = await client.query<{ matches: number; ids: string[]; live: number }>(
        `with m as materialized (${query.text})
         select (select count(*)::int from m) as matches,
                array(select profile_id::text from m order by profile_id limit ${limitParam}) as ids,
                ${live} as live`,
        values,
      );
      return rows[0]!;
    });
  } catch (error) {
    if (!isCanceled(error)) throw error;
    return null;
  }
}

async function plannerGuess(db: Db, query: CompiledQuery, liveProfiles: number): Promise<PreviewSize> {
  const { rows } = await db.query<{ 'QUERY PLAN': Array<{ Plan: { 'Plan Rows': number } }> }>(
    `explain (format json) select profile_id from (${query.text}) as compiled`,
    query.values,
  );
  const estimate = Math.min(liveProfiles, Math.round(rows[0]!['QUERY PLAN'][0]!.Plan['Plan Rows']));
  return { method: 'planner', estimate, low: null, high: null, liveProfiles, sampledProfiles: null, sampledMatches: null, memberIds: [] };
}

async function withTraits(db: Db, workspaceId: string, ids: readonly string[], traitKeys: readonly string[]): Promise<Preview['sample']> {
  if (ids.length === 0) return [];
  const { rows } = await db.query<{ profile_id: string; traits: Record<string, unknown> }>(
    `select profile_id, jsonb_object_agg(key, value) as traits from profile_traits
      where workspace_id = $1 and profile_id = any($2::uuid[]) and key = any($3::text[])
      group by profile_id`,
    [workspaceId, ids, traitKeys],
  );
  const traits = new Map(rows.map((row) => [row.profile_id, row.traits]));
  return ids.map((id) => ({ id, traits: traits.get(id) ?? {} }));
}
