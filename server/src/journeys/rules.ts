import type { Condition } from '../segments/ast.ts';
import { evaluateSegment, randomBucket } from '../segments/evaluate.ts';
import type { ProfileEvent, ProfileSnapshot } from '../segments/snapshot.ts';
import { conditionReads, emptyReads, type ConditionReads } from '../segments/snapshots.ts';
import type { ConditionRule, JourneyDefinition, NodeOf, Reentry } from './definition.ts';
import { eventConditionText, parseConditionText } from './validate.ts';

/*
 * The journey rules that need no I/O: parsed conditions, goal and exit checks over a profile
 * snapshot, event matching for triggers and waits, stable random assignment, re-entry.
 */

const parsedTexts = new Map<string, Condition>();

/** A condition text of a validated definition, parsed once per process. */
export function conditionOf(text: string): Condition {
  let condition = parsedTexts.get(text);
  if (!condition) {
    const parsed = parseConditionText(text);
    if (!parsed.ok) throw new Error(`Condition does not parse (validate before publishing): ${parsed.message}`);
    condition = parsed.condition;
    if (parsedTexts.size > 10_000) parsedTexts.clear();
    parsedTexts.set(text, condition);
  }
  return condition;
}

/** Whether one event matches an event name plus property filters. */
export function eventMatches(event: ProfileEvent, name: string, where: string | undefined, profileId: string): boolean {
  if (event.type !== 'track' || event.event !== name) return false;
  if (where === undefined) return true;
  const snapshot: ProfileSnapshot = {
    profileId,
    traits: {},
    identifierTypes: new Set(),
    consents: new Map(),
    memberships: new Set(),
    events: [event],
  };
  return evaluateSegment(conditionOf(eventConditionText(name, where)), snapshot, event.timestamp).member;
}

/** What the goals and exits of a definition read of a profile (to load its snapshot). */
export function rulesReads(definition: JourneyDefinition, into: ConditionReads = emptyReads()): ConditionReads {
  for (const rule of [...(definition.goals ?? []), ...(definition.exits ?? [])]) conditionReads(conditionOf(rule.condition), into);
  return into;
}

export type RuleOutcome = { kind: 'converted'; rule: ConditionRule } | { kind: 'exited'; rule: ConditionRule } | null;

/**
 * The first goal (then the first exit) that holds for the profile, where event conditions see only
 * the events at or after `since` (the instance's entry): an order placed last year is not this
 * journey's conversion. Goals win over exits when both hold.
 */
export function checkRules(definition: JourneyDefinition, snapshot: ProfileSnapshot, since: number, now: number): RuleOutcome {
  const goals = definition.goals ?? [];
  const exits = definition.exits ?? [];
  if (goals.length === 0 && exits.length === 0) return null;
  const recent: ProfileSnapshot = { ...snapshot, events: snapshot.events.filter((event) => event.timestamp >= since) };
  for (const rule of goals) if (evaluateSegment(conditionOf(rule.condition), recent, now).member) return { kind: 'converted', rule };
  for (const rule of exits) if (evaluateSegment(conditionOf(rule.condition), recent, now).member) return { kind: 'exited', rule };
  return null;
}

/** A split's answer for the profile now. */
export function splitHolds(node: NodeOf<'split'>, snapshot: ProfileSnapshot, now: number): boolean {
  return evaluateSegment(conditionOf(node.condition), snapshot, now).member;
}

/** The random split's branch for a profile: stable for (journey, node, profile), across versions and re-entries. */
export function randomBranch(node: NodeOf<'random'>, journeyId: string, profileId: string): NodeOf<'random'>['branches'][number] {
  const bucket = randomBucket(`journey:${journeyId}:${node.id}`, profileId);
  let upTo = 0;
  for (const branch of node.branches) {
    upTo += branch.percent;
    if (bucket < upTo) return branch;
  }
  return node.branches[node.branches.length - 1]!;
}

/** Whether a profile belongs to the journey's holdout: stable for (journey, profile), so re-entries keep their group. */
export function inHoldout(journeyId: string, profileId: string, holdoutPercent: number | undefined): boolean {
  if (!holdoutPercent) return false;
  return randomBucket(`journey-holdout:${journeyId}`, profileId) < holdoutPercent;
}

/**
 * Whether a profile may enter again given its previous entry (null: never entered). Being in the
 * journey right now is refused separately (one live instance per profile and journey).
 */
export function reentryAllows(reentry: Reentry | undefined, lastEnteredAt: Date | null, now: Date): boolean {
  if (lastEnteredAt === null) return true;
  const rule = reentry ?? { mode: 'once' };
  switch (rule.mode) {
    case 'once':
      return false;
    case 'always':
      return true;
    case 'after':
      return now.getTime() - lastEnteredAt.getTime() >= rule.days * 86_400_000;
  }
}
