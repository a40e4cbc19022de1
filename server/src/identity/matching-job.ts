import { Type } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { openPii } from '../privacy/pii-codec.ts';
import type { Db } from '../storage/database.ts';
import { ConflictError, NotFoundError } from '../workspaces/store.ts';
import { findMatches, type MatchThresholds } from './matching/matcher.ts';
import { personFromTraits } from './matching/person.ts';
import { mergeProfiles } from './merge.ts';
import { loadWorkspaceIdentity } from './settings-store.ts';

export interface MatchingRunOptions {
  thresholds?: MatchThresholds;
  /** Only profiles with events from sources of these kinds (default: CRM imports and stores). */
  sourceKinds?: string[];
}

export interface MatchingRunSummary {
  profiles: number;
  comparedPairs: number;
  autoMerged: number;
  refused: number;
  queuedForReview: number;
}

const PERSON_TRAITS = ['firstName', 'first_name', 'lastName', 'last_name', 'surname', 'name', 'full_name', 'birthday', 'date_of_birth', 'dob'];

/**
 * The batch job behind probabilistic matching: reads the person traits of live profiles fed by
 * imports (CRM/ERP exports, store sign-ups), finds likely same-person pairs (Fellegi–Sunter, EM),
 * merges those above the auto-merge threshold (logged as kind 'match', reversible by unmerge) and
 * queues the rest for review. Pairs already decided are not proposed again.
 */
export async function runProfileMatching(db: Db, workspaceId: string, options: MatchingRunOptions = {}): Promise<MatchingRunSummary> {
  const identity = await loadWorkspaceIdentity(db, workspaceId);
  const kinds = options.sourceKinds ?? ['crm_import', 'store', 'warehouse', 'call_centre'];
  const { rows: stored } = await db.query<{ profile_id: string; traits: Record<string, unknown> }>(
    `select t.profile_id, jsonb_object_agg(t.key, t.value) as traits
       from profile_traits t
       join profiles p on p.workspace_id = t.workspace_id and p.id = t.profile_id and p.merged_into is null
      where t.workspace_id = $1
        and exists (select 1 from profile_traits n where n.workspace_id = $1 and n.profile_id = t.profile_id and n.key = any($2::text[]))
        and exists (select 1 from profile_identifiers i join sources s on s.workspace_id = i.workspace_id and s.id = i.source_id
                     where i.workspace_id = $1 and i.profile_id = t.profile_id and s.kind = any($3::text[]))
      group by t.profile_id`,
    [workspaceId, PERSON_TRAITS, kinds],
  );
  // Names, phones and addresses are stored as keyed-hash tokens (privacy/pii-codec.ts): the fuzzy
  // comparators need the values themselves.
  const rows = await openPii(db, workspaceId, stored);
  const summary: MatchingRunSummary = { profiles: rows.length, comparedPairs: 0, autoMerged: 0, refused: 0, queuedForReview: 0 };
  if (rows.length < 2) return summary;
  const result = findMatches(
    rows.map((row) => personFromTraits(row.profile_id, row.traits)),
    { thresholds: options.thresholds, phoneRegion: identity.config.defaultPhoneRegion },
  );
  summary.comparedPairs = result.comparedPairs;

  const { rows: decided } = await db.query<{ profile_a: string; profile_b: string }>(
    'select profile_a, profile_b from match_candidates where workspace_id = $1',
    [workspaceId],
  );
  const known = new Set(decided.map((row) => `${row.profile_a}|${row.profile_b}`));
  for (const candidate of result.candidates.sort((x, y) => y.probability - x.probability)) {
    const [a, b] = candidate.a < candidate.b ? [candidate.a, candidate.b] : [candidate.b, candidate.a];
    if (known.has(`${a}|${b}`)) continue;
    known.add(`${a}|${b}`);
    let status: 'pending' | 'auto_merged' | 'refused' = 'pending';
    let reason: string | null = null;
    let mergeId: string | null = null;
    if (candidate.decision === 'auto_merge') {
      try {
        const merged = await mergeProfiles(db, workspaceId, [a, b], { kind: 'match', score: candidate.probability });
        status = 'auto_merged';
        mergeId = merged.mergeId;
        summary.autoMerged++;
      } catch (error) {
        if (!(error instanceof ConflictError)) throw error;
        status = 'refused';
        reason = error.message;
        summary.refused++;
      }
    } else {
      summary.queuedForReview++;
    }
    await db.query(
      `insert into match_candidates (workspace_id, profile_a, profile_b, probability, weight, levels, status, reason, merge_id, decided_at)
       values ($1, $2, $3, $4, $5, $6, $7, $8, $9, case when $7 = 'pending' then null else now() end)
       on conflict do nothing`,
      [workspaceId, a, b, candidate.probability, candidate.weight, JSON.stringify(candidate.levels), status, reason, mergeId],
    );
  }
  return summary;
}

/** A reviewer's decision on a pending pair: approve merges the two profiles, reject keeps them apart for good. */
export async function decideMatchCandidate(db: Db, workspaceId: string, candidateId: string, decision: 'approve' | 'reject') {
  const { rows } = await db.query<{ profile_a: string; profile_b: string; probability: number; status: string }>(
    'select profile_a, profile_b, probability, status from match_candidates where workspace_id = $1 and id = $2',
    [workspaceId, candidateId],
  );
  const candidate = rows[0];
  if (!candidate) throw new NotFoundError(`Match candidate ${candidateId} not found`);
  if (candidate.status !== 'pending') throw new ConflictError(`Match candidate ${candidateId} is already ${candidate.status}`);
  let mergeId: string | null = null;
  let reason: string | null = null;
  if (decision === 'approve') {
    const merged = await mergeProfiles(db, workspaceId, [candidate.profile_a, candidate.profile_b], { kind: 'match', score: candidate.probability });
    mergeId = merged.mergeId;
    // Other evidence may have joined the two since the pair was proposed.
    if (!mergeId) reason = 'already one profile when approved';
  }
  await db.query(
    `update match_candidates set status = $3, merge_id = $4, reason = coalesce($5, reason), decided_at = now() where workspace_id = $1 and id = $2`,
    [workspaceId, candidateId, decision === 'approve' ? 'approved' : 'rejected', mergeId, reason],
  );
  return { id: candidateId, status: decision === 'approve' ? 'approved' : 'rejected', mergeId };
}

const MatchingJobPayload = Type.Object({
  workspaceId: Type.String(),
  thresholds: Type.Optional(Type.Object({ autoMerge: Type.Number(), review: Type.Number() })),
  sourceKinds: Type.Optional(Type.Array(Type.String())),
});
const checkPayload = TypeCompiler.Compile(MatchingJobPayload);

/** The worker task `identity.match`. */
export async function runMatchingJob(db: Db, payload: unknown): Promise<MatchingRunSummary> {
  if (!checkPayload.Check(payload)) throw new Error(`identity.match: invalid payload ${JSON.stringify(payload)}`);
  return runProfileMatching(db, payload.workspaceId, { thresholds: payload.thresholds, sourceKinds: payload.sourceKinds });
}
