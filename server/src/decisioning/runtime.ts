import crypto from 'node:crypto';
import { ApiError } from '../api/errors.ts';
import { loadWorkspaceIdentity } from '../identity/settings-store.ts';
import type { IdentityConfig } from '../identity/identifier-types.ts';
import { normalizeForLookup, parseProfileRef } from '../profiles/reference.ts';
import { withTransaction, type Db, type Queryable } from '../storage/database.ts';
import { horizonPassed, readSequenceHorizon, type SequenceHorizon } from '../storage/settle.ts';
import { insertSystemEvents, prepareTransitionStorage, type SystemEvent } from '../segments/transitions.ts';
import { allocationFromDraws, posteriorDraws, type ArmStats } from './bandit.ts';
import { choose, EMPTY_VIEW, type CompiledPlacement, type ProfileView, type StickyAssignment } from './policy.ts';
import { createRecommender, type Recommender } from './recommend/serve.ts';
import type { Decision, FeedbackKind } from './schemas.ts';
import { armCounts, loadCompiledPlacements, placementVersions, type ArmCounts } from './store.ts';
import { createViewInterner, loadViews, loadWorkspaceViews, type ViewInterner } from './views.ts';
import { piiCodec, withPiiCodec } from '../privacy/pii-codec.ts';

/*
 * The decide path and its in-process state. Per workspace it holds the compiled placements, the
 * bandit's counts and allocations, sticky assignments, impression times (caps) and a view of each
 * profile decide has met (memberships, traits, identifier types, consents), so a decision costs
 * no database round trip once a profile is cached. Freshness:
 *  - profile views follow a change cursor over segment_transitions and profile_trait_history
 *    (the real-time pipeline's outboxes), polled every CHANGE_POLL_MS; changed cached profiles are
 *    reloaded in bulk;
 *  - placements and bandit counts are re-read every STATE_POLL_MS (another process may edit them
 *    or record outcomes);
 *  - identifier → profile lookups are kept IDENTIFIER_TTL_MS (merges move identifiers rarely);
 *    past that a known one is still answered from memory while the background loop re-reads it
 *    (all such lookups of a poll in one query), so no request waits on the database for a
 *    profile the cache holds. Unknown identifiers (nobody had them) are looked up again on the
 *    request after UNKNOWN_IDENTIFIER_TTL_MS, since a first identify may take them any moment.
 *    The identity settings (normalisation) are re-read the same way.
 * Decisions and assignments are written behind, in batches every FLUSH_MS; an outcome reported
 * for a decision still in the buffer writes that decision in its own transaction first.
 */

const CHANGE_POLL_MS = 100;
const STATE_POLL_MS = 1_000;
const FLUSH_MS = 100;
const IDENTIFIER_TTL_MS = 60_000;
// An identifier nobody has may be taken any moment (a first identify): forgotten sooner.
const UNKNOWN_IDENTIFIER_TTL_MS = 2_000;
const IDENTITY_CONFIG_TTL_MS = 30_000;
// The bandit re-draws its posteriors at most this often per placement (and only after new results).
const ALLOCATION_REFRESH_MS = 1_000;
const ALLOCATION_DRAWS = 1_000;
// Most lookups re-read in one background query.
const REVALIDATE_BATCH = 5_000;

export interface DecisioningOptions {
  /** Most profile views kept per workspace (oldest dropped first). */
  maxViews?: number;
  now?: () => Date;
  /** Start the background refresh (tests may drive `refresh()` by hand). Default true. */
  background?: boolean;
  /** Load every live profile's view (up to maxViews) when a workspace is first used. Default false. */
  warmOnLoad?: boolean;
  /** How long a known identifier → profile lookup is trusted before the background re-reads it (ms). Default 60 s. */
  identifierTtlMs?: number;
}

export interface DecideRequest {
  placement: string;
  /** A profile id or <type>:<value> (server API). */
  profile?: string;
  /** The SDK's ids (visitor API): the user id is tried first. */
  userId?: string;
  anonymousId?: string;
}

interface DecisionRow {
  id: string;
  placement_id: string;
  placement_version: number;
  profile_id: string | null;
  subject: string;
  content_key: string | null;
  policy: string;
  variant: string | null;
  holdout: boolean;
  propensity: number;
  reason: string;
  items: string[] | null;
  decided_at: string;
}

interface Cursor {
  settled: number;
  /** Row ids above `settled` already handled. */
  seen: Set<number>;
  pending: SequenceHorizon | null;
}

interface WorkspaceState {
  workspaceId: string;
  placements: Map<string, CompiledPlacement>;
  signature: string;
  counts: Map<string, Map<string, ArmCounts>>;
  /** Per bandit placement: shared posterior draws and the allocations derived per eligible subset. */
  bandits: Map<string, { keys: string[]; samples: Float64Array; drawnAt: number; stale: boolean; subsets: Map<string, ReadonlyMap<string, number>> }>;
  sticky: Map<string, StickyAssignment>;
  impressions: Map<string, number[]>;
  views: Map<string, ProfileView>;
  identifiers: Map<string, { profileId: string | null; until: number }>;
  /** Known lookups past their TTL, answered from memory meanwhile, to re-read in the background (type null: a profile id). */
  revalidate: Map<string, { type: string | null; value: string }>;
  identity: { config: IdentityConfig; until: number; reloading: boolean } | null;
  interner: ViewInterner;
  transitions: Cursor;
  traits: Cursor;
}

const subjectKey = (placementId: string, subject: string) => `${placementId}|${subject}`;

export function createDecisioning(db: Db, options: DecisioningOptions = {}) {
  const maxViews = options.maxViews ?? 1_000_000;
  const identifierTtlMs = options.identifierTtlMs ?? IDENTIFIER_TTL_MS;
  const now = options.now ?? (() => new Date());
  const states = new Map<string, Promise<WorkspaceState>>();
  const recommender: Recommender = createRecommender(db);
  let decisionBuffer: DecisionRow[] = [];
  const buffered = new Map<string, DecisionRow>();
  let assignmentBuffer: Array<{ workspaceId: string; placementId: string; subject: string; assignment: StickyAssignment }> = [];
  const bufferWorkspace = new Map<string, string>();
  let flushing: Promise<void> = Promise.resolve();

  async function startCursor(table: 'segment_transitions' | 'profile_trait_history'): Promise<Cursor> {
    const { rows } = await db.query<{ last: string }>(
      `select coalesce(pg_sequence_last_value(pg_get_serial_sequence($1, 'id')::regclass), 0)::bigint as last`,
      [table],
    );
    // Changes committed before the state was loaded are in what we load; later ones follow.
    return { settled: Number(rows[0]!.last), seen: new Set(), pending: null };
  }

  async function loadState(workspaceId: string): Promise<WorkspaceState> {
    const [transitions, traits] = await Promise.all([startCursor('segment_transitions'), startCursor('profile_trait_history')]);
    const state: WorkspaceState = {
      workspaceId,
      placements: new Map(),
      signature: '',
      counts: new Map(),
      bandits: new Map(),
      sticky: new Map(),
      impressions: new Map(),
      views: new Map(),
      identifiers: new Map(),
      revalidate: new Map(),
      identity: null,
      interner: createViewInterner(),
      transitions,
      traits,
    };
    await refreshPlacements(state, true);
    await refreshCounts(state);
    const at = now();
    const { rows: sticky } = await db.query<{ placement_id: string; subject: string; content_key: string; propensity: number; assigned_at: Date }>(
      `select a.placement_id, a.subject, a.content_key, a.propensity, a.assigned_at from decision_assignments a
         join decision_placements p on p.workspace_id = a.workspace_id and p.id = a.placement_id
        where a.workspace_id = $1 and a.assigned_at > $2::timestamptz - make_interval(secs => p.sticky_hours * 3600)`,
      [workspaceId, at],
    );
    for (const row of sticky) {
      state.sticky.set(subjectKey(row.placement_id, row.subject), { contentKey: row.content_key, propensity: row.propensity, assignedAt: row.assigned_at.getTime() });
    }
    const longestCap = Math.max(0, ...[...state.placements.values()].flatMap((p) => p.contents.map((c) => c.cap?.withinMs ?? 0)));
    if (longestCap > 0) {
      const { rows } = await db.query<{ placement_id: string; subject: string; content_key: string; at: Date }>(
        `select placement_id, subject, content_key, impression_at as at from decisions
          where workspace_id = $1 and impression_at > $2 and content_key is not null`,
        [workspaceId, new Date(at.getTime() - longestCap)],
      );
      for (const row of rows) rememberImpression(state, row.placement_id, row.subject, row.content_key, row.at.getTime());
    }
    if (options.warmOnLoad) await warmViews(state);
    return state;
  }

  async function warmViews(state: WorkspaceState): Promise<number> {
    const identifiers: Array<[string, string]> = [];
    const views = await loadWorkspaceViews(db, state.workspaceId, maxViews, state.interner, (key, profileId) => identifiers.push([key, profileId]));
    for (const [id, view] of views) state.views.set(id, view);
    const until = Date.now() + identifierTtlMs;
    for (const [key, profileId] of identifiers) state.identifiers.set(key, { profileId, until });
    return views.size;
  }

  function stateOf(workspaceId: string): Promise<WorkspaceState> {
    let state = states.get(workspaceId);
    if (!state) {
      state = loadState(workspaceId);
      states.set(workspaceId, state);
      state.catch(() => states.delete(workspaceId));
    }
    return state;
  }

  async function refreshPlacements(state: WorkspaceState, force = false): Promise<void> {
    const signature = await placementVersions(db, state.workspaceId);
    if (!force && signature === state.signature) return;
    const placements = await loadCompiledPlacements(db, state.workspaceId);
    state.placements = new Map(placements.map((p) => [p.key, p]));
    state.signature = signature;
    state.bandits.clear();
  }

  async function refreshCounts(state: WorkspaceState): Promise<void> {
    const ids = [...state.placements.values()].filter((p) => p.policy === 'bandit').map((p) => p.id);
    if (ids.length === 0) return;
    const counts = await armCounts(db, state.workspaceId, ids);
    for (const id of ids) {
      const fresh = new Map((counts.get(id) ?? []).map((c) => [c.contentKey, c]));
      const old = state.counts.get(id);
      const field = goalField(state, id);
      if (!old || [...fresh].some(([key, c]) => old.get(key)?.impressions !== c.impressions || old.get(key)?.[field] !== c[field])) {
        const bandit = state.bandits.get(id);
        if (bandit) bandit.stale = true;
      }
      state.counts.set(id, fresh);
    }
  }

  function goalField(state: WorkspaceState, placementId: string): 'clicks' | 'conversions' {
    for (const p of state.placements.values()) if (p.id === placementId) return p.goal === 'conversion' ? 'conversions' : 'clicks';
    return 'clicks';
  }

  /** Draws the placement's posteriors afresh from its counts (background, or on first use). */
  function drawPosteriors(state: WorkspaceState, placement: CompiledPlacement) {
    const counts = state.counts.get(placement.id);
    const all = placement.contents.map((content) => content.key);
    const arms: ArmStats[] = all.map((key) => {
      const c = counts?.get(key);
      return { key, trials: c?.impressions ?? 0, successes: (placement.goal === 'conversion' ? c?.conversions : c?.clicks) ?? 0 };
    });
    const bandit = { keys: all, samples: posteriorDraws(arms, Math.random, ALLOCATION_DRAWS), drawnAt: Date.now(), stale: false, subsets: new Map<string, ReadonlyMap<string, number>>() };
    state.bandits.set(placement.id, bandit);
    return bandit;
  }

  /** Re-draws the posteriors of bandits with new results, off the request path. */
  function redrawStale(state: WorkspaceState): void {
    const at = Date.now();
    for (const placement of state.placements.values()) {
      const bandit = state.bandits.get(placement.id);
      if (bandit?.stale && at - bandit.drawnAt >= ALLOCATION_REFRESH_MS) drawPosteriors(state, placement);
    }
  }

  function allocationFor(state: WorkspaceState, placement: CompiledPlacement, keys: readonly string[]): ReadonlyMap<string, number> {
    const bandit = state.bandits.get(placement.id) ?? drawPosteriors(state, placement);
    const subsetKey = keys.join('\u0000');
    let allocation = bandit.subsets.get(subsetKey);
    if (!allocation) {
      const indexes = keys.map((key) => bandit.keys.indexOf(key));
      const shares = allocationFromDraws(bandit.samples, bandit.keys.length, indexes, placement.minExploration);
      allocation = new Map(keys.map((key, i) => [key, shares[i]!]));
      bandit.subsets.set(subsetKey, allocation);
    }
    return allocation;
  }

  function rememberImpression(state: WorkspaceState, placementId: string, subject: string, contentKey: string, at: number): void {
    const key = `${subjectKey(placementId, subject)}|${contentKey}`;
    const list = state.impressions.get(key) ?? [];
    list.push(at);
    if (list.length > 100) list.shift();
    state.impressions.set(key, list);
  }

  async function identityConfig(state: WorkspaceState): Promise<IdentityConfig> {
    const at = Date.now();
    if (!state.identity) {
      state.identity = { config: (await loadWorkspaceIdentity(db, state.workspaceId)).config, until: at + IDENTITY_CONFIG_TTL_MS, reloading: false };
    } else if (state.identity.until < at && !state.identity.reloading) {
      // Served as it is meanwhile: settings change rarely, and a request should not wait for them.
      const current = state.identity;
      current.reloading = true;
      void loadWorkspaceIdentity(db, state.workspaceId)
        .then((loaded) => {
          state.identity = { config: loaded.config, until: Date.now() + IDENTITY_CONFIG_TTL_MS, reloading: false };
        })
        .catch(() => {
          current.reloading = false;
        });
    }
    return state.identity.config;
  }

  async function profileByIdentifier(state: WorkspaceState, type: string, raw: string, field: string): Promise<string | null> {
    let config = await identityConfig(state);
    // PII identifier types (email, phone…) are stored as keyed-hash tokens: the lookup value is encoded
    // the same way (privacy/pii-codec.ts). The SDK's user/anonymous ids skip it (the hot path).
    if (type !== 'user_id' && type !== 'anonymous_id') config = withPiiCodec(config, await piiCodec(db, state.workspaceId));
    const identifier = normalizeForLookup(config, type, raw, { type: field, value: field });
    const key = `${identifier.type}:${identifier.value}`;
    const hit = state.identifiers.get(key);
    if (hit && hit.until > Date.now()) return hit.profileId;
    if (hit?.profileId) {
      if (state.revalidate.size < maxViews) state.revalidate.set(key, identifier);
      return hit.profileId;
    }
    const { rows } = await db.query<{ profile_id: string }>(
      `select pi.profile_id from profile_identifiers pi join profiles p on p.workspace_id = pi.workspace_id and p.id = pi.profile_id
        where pi.workspace_id = $1 and pi.type = $2 and pi.value = $3 and pi.unbound_at is null and p.merged_into is null`,
      [state.workspaceId, identifier.type, identifier.value],
    );
    const profileId = rows[0]?.profile_id ?? null;
    if (state.identifiers.size > maxViews) state.identifiers.clear();
    state.identifiers.set(key, { profileId, until: Date.now() + (profileId ? identifierTtlMs : UNKNOWN_IDENTIFIER_TTL_MS) });
    return profileId;
  }

  /** The profile and the subject (what sticky and holdout hash) a request is about. */
  async function resolveSubject(state: WorkspaceState, request: DecideRequest): Promise<{ profileId: string | null; subject: string }> {
    if (request.profile !== undefined) {
      const ref = parseProfileRef(request.profile);
      if (ref.kind === 'id') {
        const hit = state.identifiers.get(`id:${ref.profileId}`);
        if (hit && hit.until > Date.now()) {
          if (!hit.profileId) throw new ApiError(404, 'not_found', `No profile with id ${ref.profileId} in this workspace`, 'profile');
          return { profileId: hit.profileId, subject: hit.profileId };
        }
        if (hit?.profileId) {
          if (state.revalidate.size < maxViews) state.revalidate.set(`id:${ref.profileId}`, { type: null, value: ref.profileId });
          return { profileId: hit.profileId, subject: hit.profileId };
        }
        const { rows } = await db.query<{ merged_into: string | null }>('select merged_into from profiles where workspace_id = $1 and id = $2', [
          state.workspaceId,
          ref.profileId,
        ]);
        const live = rows[0] ? (rows[0].merged_into ?? ref.profileId) : null;
        state.identifiers.set(`id:${ref.profileId}`, { profileId: live, until: Date.now() + identifierTtlMs });
        if (!live) throw new ApiError(404, 'not_found', `No profile with id ${ref.profileId} in this workspace`, 'profile');
        return { profileId: live, subject: live };
      }
      const profileId = await profileByIdentifier(state, ref.type, ref.raw, 'profile');
      return { profileId, subject: profileId ?? `${ref.type}:${ref.raw}` };
    }
    if (request.userId !== undefined) {
      const profileId = await profileByIdentifier(state, 'user_id', request.userId, 'userId');
      if (profileId) return { profileId, subject: profileId };
    }
    if (request.anonymousId !== undefined) {
      const profileId = await profileByIdentifier(state, 'anonymous_id', request.anonymousId, 'anonymousId');
      if (profileId) return { profileId, subject: profileId };
      return { profileId: null, subject: `anonymous:${request.anonymousId}` };
    }
    if (request.userId !== undefined) return { profileId: null, subject: `user:${request.userId}` };
    throw new ApiError(400, 'invalid_request', 'Give the profile (server API) or the visitor\'s anonymousId or userId', 'profile');
  }

  async function viewOf(state: WorkspaceState, profileId: string): Promise<ProfileView> {
    const cached = state.views.get(profileId);
    if (cached) return cached;
    const loaded = (await loadViews(db, state.workspaceId, [profileId], state.interner)).get(profileId)!;
    if (state.views.size >= maxViews) state.views.delete(state.views.keys().next().value!);
    state.views.set(profileId, loaded);
    return loaded;
  }

  async function decide(workspaceId: string, request: DecideRequest): Promise<Decision> {
    const state = await stateOf(workspaceId);
    const placement = state.placements.get(request.placement);
    if (!placement) throw new ApiError(404, 'not_found', `No placement "${request.placement}" in this workspace`, 'placement');
    const { profileId, subject } = await resolveSubject(state, request);
    const view = profileId ? await viewOf(state, profileId) : EMPTY_VIEW;
    const at = now();
    const stickyKey = subjectKey(placement.id, subject);
    const choice = choose({
      placement,
      view,
      subject,
      now: at.getTime(),
      impressionsOf: (contentKey) => state.impressions.get(`${stickyKey}|${contentKey}`) ?? [],
      sticky: state.sticky.get(stickyKey) ?? null,
      allocation: (keys) => allocationFor(state, placement, keys),
      random: Math.random,
    });
    if (choice.assign) {
      state.sticky.set(stickyKey, choice.assign);
      assignmentBuffer.push({ workspaceId, placementId: placement.id, subject, assignment: choice.assign });
    }
    let content: Decision['content'] = null;
    let items: string[] | null = null;
    if (choice.content) {
      content = { key: choice.content.key, name: choice.content.name, payload: choice.content.payload };
      if (choice.content.recommendations) {
        const recommended = await recommender.recommend(workspaceId, profileId, choice.content.recommendations);
        content.items = recommended.items;
        content.recommendedBy = recommended.algorithm;
        items = recommended.items.map((item) => item.itemId);
      }
    }
    const id = crypto.randomUUID();
    const row: DecisionRow = {
      id,
      placement_id: placement.id,
      placement_version: placement.version,
      profile_id: profileId,
      subject,
      content_key: choice.content?.key ?? null,
      policy: placement.policy,
      variant: choice.variant,
      holdout: choice.holdout,
      propensity: choice.propensity,
      reason: choice.reason,
      items,
      decided_at: at.toISOString(),
    };
    decisionBuffer.push(row);
    buffered.set(id, row);
    bufferWorkspace.set(id, workspaceId);
    return {
      decisionId: id,
      placement: placement.key,
      content,
      policy: placement.policy,
      variant: choice.variant,
      holdout: choice.holdout,
      propensity: choice.propensity,
      reason: choice.reason,
    };
  }

  async function flushOnce(): Promise<void> {
    const decisions = decisionBuffer;
    const assignments = assignmentBuffer;
    decisionBuffer = [];
    assignmentBuffer = [];
    try {
      await writeBuffered(decisions, assignments);
    } catch (error) {
      // Kept for the next flush (inserts are idempotent: on conflict do nothing / update).
      decisionBuffer = [...decisions, ...decisionBuffer];
      assignmentBuffer = [...assignments, ...assignmentBuffer];
      throw error;
    }
  }

  /** Stores decisions (idempotent: a decision already stored is left as it is). */
  async function insertDecisions(client: Queryable, workspaceId: string, rows: readonly DecisionRow[]): Promise<void> {
    await client.query(
      `insert into decisions (workspace_id, id, placement_id, placement_version, profile_id, subject, content_key, policy, variant, holdout, propensity, reason, items, decided_at)
       select $1, id, placement_id, placement_version, profile_id, subject, content_key, policy, variant, holdout, propensity, reason, items, decided_at
         from jsonb_to_recordset($2::jsonb) as x(id uuid, placement_id uuid, placement_version int, profile_id uuid, subject text, content_key text,
              policy text, variant text, holdout boolean, propensity double precision, reason text, items jsonb, decided_at timestamptz)
       on conflict do nothing`,
      [workspaceId, JSON.stringify(rows)],
    );
  }

  async function writeBuffered(decisions: DecisionRow[], assignments: typeof assignmentBuffer): Promise<void> {
    const byWorkspace = new Map<string, DecisionRow[]>();
    for (const row of decisions) {
      const workspaceId = bufferWorkspace.get(row.id)!;
      const list = byWorkspace.get(workspaceId) ?? [];
      list.push(row);
      byWorkspace.set(workspaceId, list);
    }
    for (const [workspaceId, rows] of byWorkspace) await insertDecisions(db, workspaceId, rows);
    for (const row of decisions) {
      buffered.delete(row.id);
      bufferWorkspace.delete(row.id);
    }
    if (assignments.length > 0) {
      // The latest assignment per key wins (a batch may hold two for one subject).
      const latest = new Map(assignments.map((a) => [`${a.workspaceId}|${a.placementId}|${a.subject}`, a]));
      await db.query(
        `insert into decision_assignments (workspace_id, placement_id, subject, content_key, propensity, assigned_at)
         select workspace_id, placement_id, subject, content_key, propensity, assigned_at
           from jsonb_to_recordset($1::jsonb) as x(workspace_id uuid, placement_id uuid, subject text, content_key text, propensity double precision, assigned_at timestamptz)
         on conflict (workspace_id, placement_id, subject) do update
           set content_key = excluded.content_key, propensity = excluded.propensity, assigned_at = excluded.assigned_at`,
        [
          JSON.stringify(
            [...latest.values()].map((a) => ({
              workspace_id: a.workspaceId,
              placement_id: a.placementId,
              subject: a.subject,
              content_key: a.assignment.contentKey,
              propensity: a.assignment.propensity,
              assigned_at: new Date(a.assignment.assignedAt).toISOString(),
            })),
          ),
        ],
      );
    }
  }

  /** Writes buffered decisions and assignments; resolves when everything buffered so far is stored. */
  function flush(): Promise<void> {
    const next = flushing.catch(() => undefined).then(flushOnce);
    flushing = next;
    return next;
  }

  const FEEDBACK_COLUMN = { impression: 'impression_at', click: 'clicked_at', conversion: 'converted_at' } as const;
  const COUNT_COLUMN = { impression: 'impressions', click: 'clicks', conversion: 'conversions' } as const;
  const EVENT_NAME = { impression: 'Decision Impression', click: 'Decision Clicked', conversion: 'Decision Converted' } as const;

  /**
   * Records an outcome of a decision once (a repeated report changes nothing): stamps the
   * decision, counts it for the content (not for the holdout), and writes the Decision event into
   * the profile's timeline so analytics and segments see it. Clicks and conversions count only
   * for decisions that showed a content.
   */
  async function feedback(workspaceId: string, decisionId: string, kind: FeedbackKind, itemId?: string): Promise<{ recorded: boolean }> {
    // A decision still in the write-behind buffer (the usual case for an impression reported at
    // once) is stored here, in the outcome's transaction, rather than by flushing the whole buffer;
    // the buffer's later insert of it does nothing. Another workspace's decision is not found.
    const pending = buffered.get(decisionId);
    const pendingHere = pending && bufferWorkspace.get(decisionId) === workspaceId ? pending : null;
    const at = now();
    await prepareTransitionStorage(db, at);
    const outcome = await withTransaction(db, async (client) => {
      if (pendingHere) await insertDecisions(client, workspaceId, [pendingHere]);
      const column = FEEDBACK_COLUMN[kind];
      const { rows: found } = await client.query<{ placement_id: string; placement_key: string; content_key: string | null; holdout: boolean; profile_id: string | null; subject: string; policy: string; variant: string | null; stamped: boolean }>(
        `select d.placement_id, p.key as placement_key, d.content_key, d.holdout, d.profile_id, d.subject, d.policy, d.variant, d.${column} is not null as stamped
           from decisions d join decision_placements p on p.workspace_id = d.workspace_id and p.id = d.placement_id
          where d.workspace_id = $1 and d.id = $2 for update of d`,
        [workspaceId, decisionId],
      );
      const decision = found[0];
      if (!decision) throw new ApiError(404, 'not_found', `No decision ${decisionId} in this workspace`, 'id');
      if (decision.stamped) return { recorded: false, decision };
      await client.query(`update decisions set ${column} = $3 where workspace_id = $1 and id = $2`, [workspaceId, decisionId, at]);
      if (decision.content_key !== null && !decision.holdout) {
        await client.query(
          `insert into decision_arm_stats (workspace_id, placement_id, content_key, ${COUNT_COLUMN[kind]}) values ($1, $2, $3, 1)
           on conflict (workspace_id, placement_id, content_key) do update set ${COUNT_COLUMN[kind]} = decision_arm_stats.${COUNT_COLUMN[kind]} + 1`,
          [workspaceId, decision.placement_id, decision.content_key],
        );
      }
      if (decision.profile_id) {
        const properties: Record<string, unknown> = { decision_id: decisionId, placement: decision.placement_key, content_id: decision.content_key };
        if (kind === 'impression') Object.assign(properties, { policy: decision.policy, variant: decision.variant, holdout: decision.holdout });
        if (itemId !== undefined) properties.item_id = itemId;
        const event: SystemEvent = { messageId: `decision-${kind}-${decisionId}`, event: EVENT_NAME[kind], profileId: decision.profile_id, properties };
        await insertSystemEvents(client, workspaceId, [event], at);
      }
      return { recorded: true, decision };
    });
    const state = states.has(workspaceId) ? await stateOf(workspaceId) : null;
    const { decision } = outcome;
    if (state && outcome.recorded && decision.content_key !== null && !decision.holdout) {
      if (kind === 'impression') rememberImpression(state, decision.placement_id, decision.subject, decision.content_key, at.getTime());
      const counts = state.counts.get(decision.placement_id) ?? new Map<string, ArmCounts>();
      const arm = counts.get(decision.content_key) ?? { contentKey: decision.content_key, impressions: 0, clicks: 0, conversions: 0 };
      arm[COUNT_COLUMN[kind]]++;
      counts.set(decision.content_key, arm);
      state.counts.set(decision.placement_id, counts);
      const bandit = state.bandits.get(decision.placement_id);
      if (bandit) bandit.stale = true;
    }
    return { recorded: outcome.recorded };
  }

  /** Profiles whose memberships or traits changed after the cursor, per the outbox of `table`. */
  async function changedProfiles(state: WorkspaceState, table: 'segment_transitions' | 'profile_trait_history', cursor: Cursor): Promise<string[]> {
    // Ids are taken at insert but visible at commit, so a smaller id can appear after a larger
    // one: rows above `settled` are read again each poll (`seen` skips handled ones) until every
    // transaction that could hold a smaller id has ended (storage/settle.ts).
    // The settled point moves only after the rows up to it were read: a transaction that held an
    // id below it may have committed just before the check, and its rows must still be read.
    let nextSettled: number | null = null;
    if (cursor.pending) {
      if (await horizonPassed(db, cursor.pending)) {
        nextSettled = cursor.pending.last;
        cursor.pending = null;
      }
    }
    const { rows } = await db.query<{ id: string; profile_id: string }>(
      `select id, profile_id from ${table} where workspace_id = $1 and id > $2 order by id limit 10000`,
      [state.workspaceId, cursor.settled],
    );
    if (nextSettled !== null && rows.length < 10_000) {
      cursor.settled = Math.max(cursor.settled, nextSettled);
    }
    if (!cursor.pending) {
      cursor.pending = await readSequenceHorizon(db, `pg_get_serial_sequence('${table}', 'id')::regclass`);
    }
    const changed: string[] = [];
    for (const row of rows) {
      const id = Number(row.id);
      if (cursor.seen.has(id)) continue;
      cursor.seen.add(id);
      changed.push(row.profile_id);
    }
    for (const id of cursor.seen) if (id <= cursor.settled) cursor.seen.delete(id);
    return changed;
  }

  /** Re-reads, in bulk, the known lookups that requests answered from memory past their TTL. */
  async function revalidateIdentifiers(state: WorkspaceState): Promise<number> {
    if (state.revalidate.size === 0) return 0;
    const batch: Array<[string, { type: string | null; value: string }]> = [];
    for (const entry of state.revalidate) {
      batch.push(entry);
      state.revalidate.delete(entry[0]);
      if (batch.length >= REVALIDATE_BATCH) break;
    }
    const byIdentifier = batch.filter(([, ref]) => ref.type !== null);
    const byId = batch.filter(([, ref]) => ref.type === null);
    const found = new Map<string, string>();
    if (byIdentifier.length > 0) {
      const { rows } = await db.query<{ type: string; value: string; profile_id: string }>(
        `select x.type, x.value, pi.profile_id from unnest($2::text[], $3::text[]) as x(type, value)
           cross join lateral (select pi.profile_id from profile_identifiers pi join profiles p on p.workspace_id = pi.workspace_id and p.id = pi.profile_id
                                where pi.workspace_id = $1 and pi.type = x.type and pi.value = x.value and pi.unbound_at is null and p.merged_into is null) pi`,
        [state.workspaceId, byIdentifier.map(([, ref]) => ref.type), byIdentifier.map(([, ref]) => ref.value)],
      );
      for (const row of rows) found.set(`${row.type}:${row.value}`, row.profile_id);
    }
    if (byId.length > 0) {
      const { rows } = await db.query<{ id: string; live: string }>(
        `select p.id, coalesce(p.merged_into, p.id) as live from unnest($2::uuid[]) as x(id)
           cross join lateral (select id, merged_into from profiles where workspace_id = $1 and id = x.id) p`,
        [state.workspaceId, byId.map(([, ref]) => ref.value)],
      );
      for (const row of rows) found.set(`id:${row.id}`, row.live);
    }
    const at = Date.now();
    for (const [key] of batch) {
      const profileId = found.get(key) ?? null;
      // The cached profile's own id string where there is one (one string per profile in memory).
      const shared = profileId === null ? null : (state.views.get(profileId)?.profileId ?? profileId);
      state.identifiers.set(key, { profileId: shared, until: at + (shared ? identifierTtlMs : UNKNOWN_IDENTIFIER_TTL_MS) });
    }
    return batch.length;
  }

  /** Follows the real-time pipeline: reloads the cached views of profiles that changed. */
  async function followChanges(state: WorkspaceState): Promise<number> {
    const changed = new Set([...(await changedProfiles(state, 'segment_transitions', state.transitions)), ...(await changedProfiles(state, 'profile_trait_history', state.traits))]);
    const cached = [...changed].filter((id) => state.views.has(id));
    if (cached.length === 0) return 0;
    const fresh = await loadViews(db, state.workspaceId, cached, state.interner);
    for (const [id, view] of fresh) state.views.set(id, view);
    return cached.length;
  }

  /** Loads the view of every live profile of a workspace (up to maxViews), e.g. at start-up. */
  async function warm(workspaceId: string): Promise<number> {
    return warmViews(await stateOf(workspaceId));
  }

  let lastStatePoll = 0;
  /** One round of background freshness for every loaded workspace. */
  async function refresh(): Promise<void> {
    const pollState = Date.now() - lastStatePoll >= STATE_POLL_MS;
    if (pollState) lastStatePoll = Date.now();
    for (const pending of states.values()) {
      const state = await pending.catch(() => null);
      if (!state) continue;
      await followChanges(state);
      await revalidateIdentifiers(state);
      redrawStale(state);
      if (pollState) {
        await refreshPlacements(state);
        await refreshCounts(state);
      }
    }
    await recommender.refresh(pollState);
  }

  let running = options.background !== false;
  const loops: Array<Promise<void>> = [];
  const every = (ms: number, work: () => Promise<void>) =>
    (async () => {
      while (running) {
        await new Promise((resolve) => setTimeout(resolve, ms).unref());
        if (!running) break;
        await work().catch(() => undefined);
      }
    })();
  if (running) {
    loops.push(every(FLUSH_MS, flush), every(CHANGE_POLL_MS, refresh));
  }

  return {
    decide,
    feedback,
    flush,
    refresh,
    warm,
    /** Forgets a workspace's state (placements edited through the API in this process reload at once). */
    async invalidate(workspaceId: string): Promise<void> {
      const state = await states.get(workspaceId)?.catch(() => null);
      if (state) await refreshPlacements(state, true);
    },
    async close(): Promise<void> {
      running = false;
      await Promise.all(loops);
      await flush();
    },
    /** What the cache holds (for benchmarks and operations). */
    async cacheSize(workspaceId: string): Promise<{ views: number; placements: number }> {
      const state = await stateOf(workspaceId);
      return { views: state.views.size, placements: state.placements.size };
    },
    recommender,
  };
}

export type Decisioning = ReturnType<typeof createDecisioning>;
