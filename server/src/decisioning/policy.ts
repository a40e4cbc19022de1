import type { Condition } from '../segments/ast.ts';
import { evaluateSegment } from '../segments/evaluate.ts';
import type { ProfileSnapshot } from '../segments/snapshot.ts';
import type { Random } from '../models/math/random.ts';
import { pickWeighted, stableUnit } from './bandit.ts';
import type { Goal, Policy, RecommendationSpec } from './schemas.ts';

/*
 * Which content a placement shows one profile, pure: eligibility (schedule, cap, segment-language
 * rule over the profile's view), the holdout, then the placement's policy. The caller brings the
 * facts (view, impressions, sticky assignment, bandit allocation) and the randomness.
 */

export interface CompiledContent {
  key: string;
  name: string | null;
  payload: Record<string, unknown>;
  eligibility: Condition | null;
  priority: number;
  weight: number;
  startsAt: number | null;
  endsAt: number | null;
  cap: { impressions: number; withinMs: number } | null;
  recommendations: RecommendationSpec | null;
}

export interface CompiledPlacement {
  id: string;
  workspaceId: string;
  key: string;
  policy: Policy;
  goal: Goal;
  minExploration: number;
  holdoutPercent: number;
  stickyMs: number;
  status: 'active' | 'paused';
  version: number;
  contents: CompiledContent[];
}

/** What eligibility rules may read of a profile: no events (they belong in segments). */
export type ProfileView = Omit<ProfileSnapshot, 'events'>;

export const EMPTY_VIEW: ProfileView = {
  profileId: '',
  traits: {},
  identifierTypes: new Set(),
  consents: new Map(),
  memberships: new Set(),
};

export interface StickyAssignment {
  contentKey: string;
  propensity: number;
  assignedAt: number;
}

export interface DecideFacts {
  placement: CompiledPlacement;
  view: ProfileView;
  /** Stable id of whoever asks (profile id, or the anonymous id of an unknown visitor): hashing input. */
  subject: string;
  now: number;
  /** Timestamps (ms) of this subject's reported impressions of a content, for caps. */
  impressionsOf: (contentKey: string) => readonly number[];
  sticky: StickyAssignment | null;
  /** bandit: the probability of each eligible content (Thompson allocation over their posteriors). */
  allocation: (eligibleKeys: readonly string[]) => ReadonlyMap<string, number>;
  random: Random;
}

export type ChoiceReason = 'chosen' | 'holdout' | 'sticky' | 'no_eligible_content' | 'paused';

export interface PolicyChoice {
  content: CompiledContent | null;
  holdout: boolean;
  propensity: number;
  /** ab: the variant (content key); bandit: the arm; rules: null. */
  variant: string | null;
  reason: ChoiceReason;
  /** bandit: a new sticky assignment to remember. */
  assign: StickyAssignment | null;
}

const EMPTY_EVENTS: never[] = [];

/** Whether a profile may see a content now: in schedule, under its cap, and satisfying its rule. */
export function isEligible(content: CompiledContent, view: ProfileView, now: number, impressions: readonly number[]): boolean {
  return eligibleFor(content, { ...view, events: EMPTY_EVENTS }, now, impressions);
}

function eligibleFor(content: CompiledContent, snapshot: ProfileSnapshot, now: number, impressions: readonly number[]): boolean {
  if (content.startsAt !== null && now < content.startsAt) return false;
  if (content.endsAt !== null && now >= content.endsAt) return false;
  if (content.cap) {
    const since = now - content.cap.withinMs;
    let seen = 0;
    for (const at of impressions) if (at > since) seen++;
    if (seen >= content.cap.impressions) return false;
  }
  if (!content.eligibility) return true;
  return evaluateSegment(content.eligibility, snapshot, now).member;
}

/** The persistent holdout: a stable hash of the placement and the subject, never re-drawn. */
export function inHoldout(placement: Pick<CompiledPlacement, 'id' | 'holdoutPercent'>, subject: string): boolean {
  return placement.holdoutPercent > 0 && stableUnit(`holdout:${placement.id}`, subject) * 100 < placement.holdoutPercent;
}

function byPriority(a: CompiledContent, b: CompiledContent): number {
  return b.priority - a.priority || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);
}

export function choose(facts: DecideFacts): PolicyChoice {
  const { placement, subject, now } = facts;
  const none = (reason: ChoiceReason, holdout = false): PolicyChoice => ({ content: null, holdout, propensity: 1, variant: null, reason, assign: null });
  if (placement.status === 'paused') return none('paused');
  if (inHoldout(placement, subject)) return none('holdout', true);
  const snapshot: ProfileSnapshot = { ...facts.view, events: EMPTY_EVENTS };
  const eligible = placement.contents.filter((content) => eligibleFor(content, snapshot, now, facts.impressionsOf(content.key)));
  if (eligible.length === 0) return none('no_eligible_content');

  if (placement.policy === 'rules') {
    const winner = [...eligible].sort(byPriority)[0]!;
    return { content: winner, holdout: false, propensity: 1, variant: null, reason: 'chosen', assign: null };
  }
  if (placement.policy === 'ab') {
    // Sticky by construction: the same subject hashes to the same point of the weights.
    const u = stableUnit(`ab:${placement.id}`, subject);
    const picked = pickWeighted(eligible.map((content) => [content, content.weight] as const), u);
    return { content: picked.key, holdout: false, propensity: picked.probability, variant: picked.key.key, reason: 'chosen', assign: null };
  }
  // bandit
  const sticky = facts.sticky;
  if (sticky && now - sticky.assignedAt < placement.stickyMs) {
    const kept = eligible.find((content) => content.key === sticky.contentKey);
    if (kept) return { content: kept, holdout: false, propensity: sticky.propensity, variant: kept.key, reason: 'sticky', assign: null };
  }
  const allocation = facts.allocation(eligible.map((content) => content.key));
  const picked = pickWeighted(eligible.map((content) => [content, allocation.get(content.key) ?? 0] as const), facts.random());
  const assign = placement.stickyMs > 0 ? { contentKey: picked.key.key, propensity: picked.probability, assignedAt: now } : null;
  return { content: picked.key, holdout: false, propensity: picked.probability, variant: picked.key.key, reason: 'chosen', assign };
}
