import type { EventType } from '../ingest/schemas.ts';
import { extractIdentifiers, identifierKey, type EventIdentifier, type Extraction, type IgnoredIdentifier } from './extract.ts';
import type { IdentityConfig } from './identifier-types.ts';
import { resolveIdentity, type Identifier, type OwnerProfile } from './resolve.ts';
import { applyEventTraits, mergeProfileTraits, type TraitChange, type TraitSet, type TraitSource, type TraitStrategies } from './traits.ts';

/** A stored event as identity resolution reads it. */
export interface QueuedEvent {
  seq: number;
  messageId: string;
  timestamp: Date;
  sourceId: string;
  type: EventType;
  userId: string | null;
  anonymousId: string | null;
  previousId: string | null;
  traits: Record<string, unknown> | null;
  context: Record<string, unknown> | null;
}

/** A live profile as loaded from the database before the batch. */
export interface KnownProfile {
  id: string;
  createdAt: Date;
  identifiers: Identifier[];
  traits: TraitSet;
}

export interface BatchInput {
  config: IdentityConfig;
  strategies: TraitStrategies;
  /** In arrival (seq) order: per-person order is the order of this list. */
  events: QueuedEvent[];
  /** Live profiles owning any identifier of the batch's events, with all their live identifiers. */
  profiles: KnownProfile[];
  /** Pairs of profile ids an operator split apart (`a < b`): never joined again automatically. */
  splits: ReadonlySet<string>;
  sources: ReadonlyMap<string, TraitSource>;
  /**
   * When the batch runs (its transaction's time): profiles it creates are this old. Never an
   * event's time, which may be years back for an import and would make a brand-new profile look
   * older than stored ones when choosing a merge's survivor.
   */
  now: Date;
  newProfileId: () => string;
}

export interface NewLink {
  profileId: string;
  type: string;
  value: string;
  sourceId: string;
  firstSeen: Date;
  lastSeen: Date;
  messageId: string;
  seq: number;
  via: 'event' | 'alias';
}

export interface BatchMerge {
  survivorId: string;
  absorbed: Array<{ profileId: string; identifiers: Identifier[] }>;
  kind: 'event' | 'alias';
  messageId: string;
  seq: number;
  cause: Identifier;
}

export interface Refusal {
  profileId: string | null;
  messageId: string;
  seq: number;
  identifier: Identifier;
  reason: string;
  message: string;
}

export interface BatchResult {
  /** Final profile of every event (merges later in the batch already applied). */
  assignments: Array<{ seq: number; timestamp: Date; profileId: string }>;
  newProfiles: Array<{ id: string; createdAt: Date; firstSeen: Date }>;
  links: NewLink[];
  /** Existing links seen again: identifier key → latest event time. */
  seen: Map<string, { identifier: Identifier; at: Date }>;
  merges: BatchMerge[];
  refusals: Refusal[];
  ignored: IgnoredIdentifier[];
  /** Final traits of every live profile whose traits changed. */
  traits: Map<string, TraitSet>;
  traitChanges: Array<{ profileId: string; change: TraitChange; reason: 'event' | 'merge' }>;
  /** Time range of each touched live profile's events in this batch. */
  activity: Map<string, { first: Date; last: Date }>;
}

export function splitKey(a: string, b: string): string {
  return a < b ? `${a}|${b}` : `${b}|${a}`;
}

interface LiveProfile {
  id: string;
  createdAt: Date;
  identifiers: Identifier[];
  traits: TraitSet;
  isNew: boolean;
  /** This profile as resolveIdentity sees it, made once (its identifiers are the same array). */
  owner: OwnerProfile;
}

function liveProfile(id: string, createdAt: Date, identifiers: Identifier[], traits: TraitSet, isNew: boolean): LiveProfile {
  return { id, createdAt, identifiers, traits, isNew, owner: { profileId: id, createdAt, identifiers } };
}

/**
 * Resolves a batch of events in order against an in-memory copy of the part of the identity
 * graph they touch, and returns the final state to write. Doing the whole batch in memory and
 * writing once is what makes resolution fast; the caller holds the workspace's identity lock, so
 * the copy cannot go stale.
 */
export function resolveBatch(input: BatchInput): BatchResult {
  const batch = startBatch(input);
  for (const event of input.events) batch.add(event);
  return batch.finish();
}

/** `resolveBatch` one event at a time, for a caller that yields between chunks of a large batch. */
export interface BatchInProgress {
  /**
   * The next event in arrival (seq) order. `extraction` is the event's `extractIdentifiers` under
   * this batch's config when the caller already has it (the resolver extracts every event once to
   * know which profiles to load); otherwise it is extracted here.
   */
  add(event: QueuedEvent, extraction?: Extraction): void;
  /** The final state to write; call once, after the last event. */
  finish(): BatchResult;
}

export function startBatch(input: Omit<BatchInput, 'events'>): BatchInProgress {
  const { config, strategies } = input;
  const profiles = new Map<string, LiveProfile>();
  const owner = new Map<string, string>();
  const redirect = new Map<string, string>();
  const existingKeys = new Set<string>();
  for (const known of input.profiles) {
    profiles.set(known.id, liveProfile(known.id, known.createdAt, [...known.identifiers], { ...known.traits }, false));
    for (const identifier of known.identifiers) {
      owner.set(identifierKey(identifier), known.id);
      existingKeys.add(identifierKey(identifier));
    }
  }
  const result: BatchResult = {
    assignments: [],
    newProfiles: [],
    links: [],
    seen: new Map(),
    merges: [],
    refusals: [],
    ignored: [],
    traits: new Map(),
    traitChanges: [],
    activity: new Map(),
  };
  const linkByKey = new Map<string, NewLink>();
  const traitsTouched = new Set<string>();
  const finalOf = (id: string): string => {
    let current = id;
    while (redirect.has(current)) current = redirect.get(current)!;
    return current;
  };

  return { add, finish };

  function add(event: QueuedEvent, extracted?: Extraction): void {
    const extraction = extracted ?? extractIdentifiers(event, config);
    for (const ignored of extraction.ignored) result.ignored.push(ignored);
    let candidates = extraction.identifiers;
    let decision = resolveIdentity(config, candidates, ownersOf(candidates));

    // An operator's split outranks the automatic rules: leave out the identifiers that would
    // re-join the split profiles, strongest side kept, and record the refusal.
    for (let guard = 0; decision.action === 'merge' && input.splits.size > 0 && guard < 10; guard++) {
      const survivor = decision.profileId;
      const blocked = decision.absorbed.filter((absorbed) => input.splits.has(splitKey(survivor, absorbed.profileId)));
      if (blocked.length === 0) break;
      const blockedIds = new Set(blocked.map((b) => b.profileId));
      const removed = candidates.filter((identifier) => blockedIds.has(owner.get(identifierKey(identifier)) ?? ''));
      for (const identifier of removed) {
        result.refusals.push({
          profileId: owner.get(identifierKey(identifier)) ?? null,
          messageId: event.messageId,
          seq: event.seq,
          identifier: { type: identifier.type, value: identifier.value },
          reason: 'split_by_operator',
          message: `${identifier.type} ${identifier.value} belongs to a profile an operator split from ${survivor}; not merged again`,
        });
      }
      candidates = candidates.filter((identifier) => !removed.includes(identifier));
      decision = resolveIdentity(config, candidates, ownersOf(candidates));
    }

    for (const dropped of decision.dropped) {
      result.refusals.push({
        profileId: dropped.ownerProfileId,
        messageId: event.messageId,
        seq: event.seq,
        identifier: { type: dropped.identifier.type, value: dropped.identifier.value },
        reason: dropped.reason,
        message: dropped.message,
      });
    }
    if (decision.action === 'none') return;

    let profileId: string;
    if (decision.action === 'create') {
      profileId = input.newProfileId();
      profiles.set(profileId, liveProfile(profileId, input.now, [], {}, true));
      result.newProfiles.push({ id: profileId, createdAt: input.now, firstSeen: event.timestamp });
    } else {
      profileId = decision.profileId;
    }

    if (decision.action === 'merge') {
      const survivor = profiles.get(profileId)!;
      const absorbed: BatchMerge['absorbed'] = [];
      for (const { profileId: absorbedId } of decision.absorbed) {
        const gone = profiles.get(absorbedId)!;
        absorbed.push({ profileId: absorbedId, identifiers: [...gone.identifiers] });
        for (const identifier of gone.identifiers) owner.set(identifierKey(identifier), survivor.id);
        for (const identifier of gone.identifiers) survivor.identifiers.push(identifier);
        const merged = mergeProfileTraits(survivor.traits, gone.traits, strategies);
        survivor.traits = merged.traits;
        for (const change of merged.changes) result.traitChanges.push({ profileId: survivor.id, change, reason: 'merge' });
        if (Object.keys(gone.traits).length > 0) traitsTouched.add(survivor.id);
        profiles.delete(absorbedId);
        redirect.set(absorbedId, survivor.id);
        const activity = result.activity.get(absorbedId);
        if (activity) {
          touchActivity(result.activity, survivor.id, activity.first);
          touchActivity(result.activity, survivor.id, activity.last);
          result.activity.delete(absorbedId);
        }
        traitsTouched.delete(absorbedId);
      }
      const cause = decision.absorbed[0]!.via;
      result.merges.push({
        survivorId: survivor.id,
        absorbed,
        kind: event.type === 'alias' && cause.field === 'previousId' ? 'alias' : 'event',
        messageId: event.messageId,
        seq: event.seq,
        cause: { type: cause.type, value: cause.value },
      });
    }

    const profile = profiles.get(profileId)!;
    for (const identifier of decision.link) {
      const key = identifierKey(identifier);
      owner.set(key, profileId);
      profile.identifiers.push({ type: identifier.type, value: identifier.value });
      const link: NewLink = {
        profileId,
        type: identifier.type,
        value: identifier.value,
        sourceId: event.sourceId,
        firstSeen: event.timestamp,
        lastSeen: event.timestamp,
        messageId: event.messageId,
        seq: event.seq,
        via: event.type === 'alias' && identifier.field === 'previousId' ? 'alias' : 'event',
      };
      linkByKey.set(key, link);
      result.links.push(link);
    }
    // Every identifier of the event that now belongs to this profile was seen at this time.
    for (const identifier of candidates) {
      const key = identifierKey(identifier);
      if (owner.get(key) !== profileId) continue;
      const link = linkByKey.get(key);
      if (link) {
        if (event.timestamp < link.firstSeen) link.firstSeen = event.timestamp;
        if (event.timestamp > link.lastSeen) link.lastSeen = event.timestamp;
      } else if (existingKeys.has(key)) {
        const seen = result.seen.get(key);
        if (!seen || event.timestamp > seen.at) result.seen.set(key, { identifier: { type: identifier.type, value: identifier.value }, at: event.timestamp });
      }
    }

    const eventTraits = traitsOf(event);
    if (eventTraits) {
      const update = applyEventTraits(
        profile.traits,
        { traits: eventTraits, source: input.sources.get(event.sourceId) ?? { kind: 'unknown', name: event.sourceId }, eventId: event.messageId, at: event.timestamp },
        strategies,
      );
      profile.traits = update.traits;
      for (const change of update.changes) result.traitChanges.push({ profileId, change, reason: 'event' });
      if (update.changes.length > 0) traitsTouched.add(profileId);
    }

    touchActivity(result.activity, profileId, event.timestamp);
    result.assignments.push({ seq: event.seq, timestamp: event.timestamp, profileId });
  }

  function finish(): BatchResult {
    // Links, assignments and changes made for a profile absorbed later in the batch move to its
    // final survivor here, once (re-pointing them at each merge cost merges × links).
    for (const link of result.links) link.profileId = finalOf(link.profileId);
    for (const assignment of result.assignments) assignment.profileId = finalOf(assignment.profileId);
    for (const change of result.traitChanges) change.profileId = finalOf(change.profileId);
    for (const id of traitsTouched) {
      const live = profiles.get(finalOf(id));
      if (live) result.traits.set(live.id, live.traits);
    }
    return result;
  }

  function ownersOf(identifiers: EventIdentifier[]): OwnerProfile[] {
    const owners: OwnerProfile[] = [];
    for (const identifier of identifiers) {
      const id = owner.get(identifierKey(identifier));
      if (id === undefined) continue;
      const view = profiles.get(id)!.owner;
      if (!owners.includes(view)) owners.push(view);
    }
    return owners;
  }
}

function touchActivity(activity: Map<string, { first: Date; last: Date }>, profileId: string, at: Date): void {
  const current = activity.get(profileId);
  if (!current) activity.set(profileId, { first: at, last: at });
  else {
    if (at < current.first) current.first = at;
    if (at > current.last) current.last = at;
  }
}

/** The person's traits an event states: identify calls' `traits` over `context.traits`. */
export function traitsOf(event: Pick<QueuedEvent, 'type' | 'traits' | 'context'>): Record<string, unknown> | null {
  if (event.type !== 'identify') return null;
  const fromContext = event.context?.traits;
  const merged = {
    ...(typeof fromContext === 'object' && fromContext !== null && !Array.isArray(fromContext) ? (fromContext as Record<string, unknown>) : {}),
    ...(event.traits ?? {}),
  };
  return Object.keys(merged).length > 0 ? merged : null;
}
