import type { EventIdentifier } from './extract.ts';
import { identifierKey } from './extract.ts';
import { compareTypes, type IdentityConfig, type IdentifierTypeConfig } from './identifier-types.ts';

export interface Identifier {
  type: string;
  value: string;
}

/** A live profile that owns at least one of the event's identifiers, with all its live identifiers. */
export interface OwnerProfile {
  profileId: string;
  createdAt: Date;
  identifiers: Identifier[];
}

export type DropReason = 'conflicting_value' | 'limit_exceeded';

/** An identifier of the event left out of linking because it would break a rule; the refusal to record. */
export interface DroppedIdentifier {
  identifier: EventIdentifier;
  reason: DropReason;
  /** The type whose rule would break (not always the dropped identifier's own type, when it would merge a profile). */
  type: string;
  limit: number;
  /** The profile the identifier belongs to, when linking it meant merging that profile. */
  ownerProfileId: string | null;
  /** The values of `type` that would have ended up on one profile. */
  values: string[];
  message: string;
}

export interface AbsorbedProfile {
  profileId: string;
  /** The identifier of the event that tied this profile to the survivor: the merge's cause. */
  via: EventIdentifier;
}

export type Resolution =
  | { action: 'create'; link: EventIdentifier[]; dropped: DroppedIdentifier[] }
  | { action: 'attach'; profileId: string; link: EventIdentifier[]; dropped: DroppedIdentifier[] }
  | { action: 'merge'; profileId: string; absorbed: AbsorbedProfile[]; link: EventIdentifier[]; dropped: DroppedIdentifier[] }
  /** The event carries no identifier that may be linked (all lookups of an alias found nothing). */
  | { action: 'none'; dropped: DroppedIdentifier[] };

interface Cluster {
  profiles: OwnerProfile[];
  newIdentifiers: EventIdentifier[];
}

/**
 * Decides what one event does to the identity graph. The event's identifiers are taken strongest
 * first (by type priority, then the order they were found in the event); each one either joins the
 * growing set of profiles and new identifiers or, if that would put more values of a type on one
 * profile than its limit allows (two user_ids, a 101st anonymous id), is dropped from this event's
 * linking with the reason. So the event always lands on the profile of its strongest identifier
 * and only weaker identifiers are ever refused.
 */
export function resolveIdentity(config: IdentityConfig, identifiers: EventIdentifier[], owners: OwnerProfile[]): Resolution {
  const ownerOf = indexOwners(owners);
  const ordered = identifiers
    .map((identifier, index) => ({ identifier, index, type: typeConfig(config, identifier.type) }))
    .sort((a, b) => compareTypes(a.type, b.type) || a.index - b.index);

  const cluster: Cluster = { profiles: [], newIdentifiers: [] };
  const absorbedVia = new Map<string, EventIdentifier>();
  const dropped: DroppedIdentifier[] = [];
  const seen = new Set<string>();

  for (const { identifier } of ordered) {
    const key = identifierKey(identifier);
    if (seen.has(key)) continue;
    seen.add(key);
    const owner = ownerOf.get(key);
    if (owner && cluster.profiles.includes(owner)) continue;
    if (!owner && !identifier.linkIfNew) continue;

    const candidate: Cluster = owner
      ? { profiles: [...cluster.profiles, owner], newIdentifiers: cluster.newIdentifiers }
      : { profiles: cluster.profiles, newIdentifiers: [...cluster.newIdentifiers, identifier] };
    const violation = findViolation(config, cluster, candidate, owner);
    if (violation) {
      dropped.push({ identifier, ownerProfileId: owner?.profileId ?? null, ...violation });
      continue;
    }
    if (owner && cluster.profiles.length > 0) absorbedVia.set(owner.profileId, identifier);
    cluster.profiles = candidate.profiles;
    cluster.newIdentifiers = candidate.newIdentifiers;
  }

  const link = cluster.newIdentifiers;
  if (cluster.profiles.length === 0) return link.length > 0 ? { action: 'create', link, dropped } : { action: 'none', dropped };
  if (cluster.profiles.length === 1) return { action: 'attach', profileId: cluster.profiles[0]!.profileId, link, dropped };

  const survivor = chooseSurvivor(config, cluster.profiles);
  // The first profile joined has no `via` of its own; if it is absorbed, the identifier that joined the survivor explains it.
  const absorbed = cluster.profiles
    .filter((profile) => profile !== survivor)
    .map((profile) => ({
      profileId: profile.profileId,
      via: absorbedVia.get(profile.profileId) ?? absorbedVia.get(survivor.profileId)!,
    }));
  return { action: 'merge', profileId: survivor.profileId, absorbed, link, dropped };
}

/**
 * The profile that keeps its id in a merge: the one holding the strongest identifier type
 * (a known user beats an anonymous visitor), then the oldest, then the smallest id. Depends only
 * on the profiles, never on which event triggered the merge.
 */
export function chooseSurvivor(config: IdentityConfig, profiles: OwnerProfile[]): OwnerProfile {
  const strongest = (profile: OwnerProfile) =>
    Math.min(...profile.identifiers.map((identifier) => typeConfig(config, identifier.type).priority));
  const [first, ...rest] = profiles;
  if (!first) throw new Error('chooseSurvivor needs at least one profile');
  return rest.reduce((best, profile) => {
    const order =
      strongest(profile) - strongest(best) ||
      profile.createdAt.getTime() - best.createdAt.getTime() ||
      (profile.profileId < best.profileId ? -1 : 1);
    return order < 0 ? profile : best;
  }, first);
}

function indexOwners(owners: OwnerProfile[]): Map<string, OwnerProfile> {
  const ownerOf = new Map<string, OwnerProfile>();
  for (const owner of owners) {
    for (const identifier of owner.identifiers) {
      const key = identifierKey(identifier);
      const other = ownerOf.get(key);
      // The store guarantees one live owner per identifier; two here means the caller read a torn graph.
      if (other && other !== owner) {
        throw new Error(`identifier ${key} belongs to two live profiles: ${other.profileId} and ${owner.profileId}`);
      }
      ownerOf.set(key, owner);
    }
  }
  return ownerOf;
}

/** Unknown types (e.g. a custom type removed from the settings since it was linked) rank last with the custom defaults. */
function typeConfig(config: IdentityConfig, type: string): IdentifierTypeConfig {
  return (
    config.types.get(type) ?? {
      name: type,
      builtIn: false,
      priority: Number.MAX_SAFE_INTEGER,
      limit: Number.MAX_SAFE_INTEGER,
      normalizer: 'id',
      blocked: new Set(),
      traitKeys: [],
    }
  );
}

/** True when no type has more identifiers in the cluster than its limit (so no rule can break). */
function withinLimits(config: IdentityConfig, cluster: Cluster): boolean {
  const counts = new Map<string, number>();
  const within = (identifier: Identifier): boolean => {
    const count = (counts.get(identifier.type) ?? 0) + 1;
    counts.set(identifier.type, count);
    return count <= typeConfig(config, identifier.type).limit;
  };
  for (const profile of cluster.profiles) for (const identifier of profile.identifiers) if (!within(identifier)) return false;
  for (const identifier of cluster.newIdentifiers) if (!within(identifier)) return false;
  return true;
}

function valuesByType(cluster: Cluster): Map<string, Set<string>> {
  const byType = new Map<string, Set<string>>();
  const add = (identifier: Identifier) => {
    let values = byType.get(identifier.type);
    if (!values) byType.set(identifier.type, (values = new Set()));
    values.add(identifier.value);
  };
  for (const profile of cluster.profiles) profile.identifiers.forEach(add);
  cluster.newIdentifiers.forEach(add);
  return byType;
}

/**
 * The first rule (strongest type first) the candidate breaks. A type breaks when it ends over its
 * limit with more values than either side had on its own: a profile already over a limit lowered
 * later is not punished for it, but cannot grow.
 */
function findViolation(
  config: IdentityConfig,
  current: Cluster,
  candidate: Cluster,
  owner: OwnerProfile | undefined,
): Omit<DroppedIdentifier, 'identifier' | 'ownerProfileId'> | null {
  // Almost every candidate is within every limit: counting identifiers per type (a count is at
  // least the number of distinct values) shows that without building the sets below.
  if (withinLimits(config, candidate)) return null;
  const before = valuesByType(current);
  const after = valuesByType(candidate);
  const added = owner ? valuesByType({ profiles: [owner], newIdentifiers: [] }) : new Map<string, Set<string>>();
  const types = [...after.keys()].map((name) => typeConfig(config, name)).sort(compareTypes);
  for (const type of types) {
    const values = after.get(type.name)!;
    const largestPart = Math.max(before.get(type.name)?.size ?? 0, added.get(type.name)?.size ?? 0);
    if (values.size <= type.limit || values.size <= largestPart) continue;
    const list = [...values].sort();
    if (type.limit === 1) {
      return {
        reason: 'conflicting_value',
        type: type.name,
        limit: type.limit,
        values: list,
        message: `would join different ${type.name} values (${list.join(', ')}) on one profile`,
      };
    }
    return {
      reason: 'limit_exceeded',
      type: type.name,
      limit: type.limit,
      values: list,
      message: `would put ${values.size} ${type.name} values on one profile; the limit is ${type.limit}`,
    };
  }
  return null;
}
