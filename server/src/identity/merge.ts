import { prepareMergeTransitions } from '../segments/queue.ts';
import type { Db } from '../storage/database.ts';
import { withTransaction } from '../storage/database.ts';
import { ConflictError } from '../workspaces/store.ts';
import { splitKey } from './batch.ts';
import { chooseSurvivor } from './resolve.ts';
import { loadOwnerProfiles, loadSplits, lockWorkspaceIdentity, writeMerge, writeTraits } from './resolver.ts';
import { loadWorkspaceIdentity } from './settings-store.ts';
import { mergeProfileTraits, type TraitChange } from './traits.ts';
import { liveProfileId } from './unmerge.ts';

export interface ProfileMergeRequest {
  kind: 'match' | 'manual';
  score?: number | null;
}

/**
 * Merges whole profiles outside event resolution (an approved or automatic probabilistic match, an
 * operator's decision). The same rules hold as on ingest: per-type limits, no two values of a
 * limit-1 type, no re-joining profiles an operator split; a merge that would break one is refused.
 */
export async function mergeProfiles(db: Db, workspaceId: string, profileIds: string[], request: ProfileMergeRequest) {
  await prepareMergeTransitions(db);
  return withTransaction(db, async (client) => {
    await lockWorkspaceIdentity(client, workspaceId);
    const live = [...new Set(await Promise.all(profileIds.map((id) => liveProfileId(client, workspaceId, id))))];
    if (live.length < 2) return { survivorId: live[0]!, absorbedIds: [] as string[], mergeId: null };
    const identity = await loadWorkspaceIdentity(client, workspaceId);
    const { rows: links } = await client.query<{ type: string; value: string }>(
      'select type, value from profile_identifiers where workspace_id = $1 and profile_id = any($2::uuid[]) and unbound_at is null',
      [workspaceId, live],
    );
    const profiles = await loadOwnerProfiles(client, workspaceId, links);
    const byId = new Map(profiles.map((profile) => [profile.id, profile]));
    const splits = await loadSplits(client, workspaceId, live);
    for (let i = 0; i < live.length; i++) {
      for (let j = i + 1; j < live.length; j++) {
        if (splits.has(splitKey(live[i]!, live[j]!))) {
          throw new ConflictError(`Profiles ${live[i]} and ${live[j]} were split by an operator; they are not merged again`);
        }
      }
    }
    const valuesByType = new Map<string, Set<string>>();
    for (const link of links) valuesByType.set(link.type, (valuesByType.get(link.type) ?? new Set()).add(link.value));
    for (const [type, values] of valuesByType) {
      const limit = identity.config.types.get(type)?.limit ?? Number.MAX_SAFE_INTEGER;
      if (values.size > limit) {
        throw new ConflictError(`Merging would give one profile ${values.size} ${type} values (limit ${limit}): ${[...values].join(', ')}`);
      }
    }
    const owners = live.map((id) => {
      const profile = byId.get(id);
      if (!profile) throw new ConflictError(`Profile ${id} has no live identifiers to merge`);
      return { profileId: id, createdAt: profile.createdAt, identifiers: profile.identifiers };
    });
    const survivor = chooseSurvivor(identity.config, owners);
    const absorbed = owners.filter((owner) => owner !== survivor);
    let traits = byId.get(survivor.profileId)!.traits;
    const changes: Array<{ profileId: string; change: TraitChange; reason: 'merge' }> = [];
    for (const owner of absorbed) {
      const merged = mergeProfileTraits(traits, byId.get(owner.profileId)!.traits, identity.strategies);
      traits = merged.traits;
      for (const change of merged.changes) changes.push({ profileId: survivor.profileId, change, reason: 'merge' });
    }
    const mergeId = await writeMerge(client, workspaceId, {
      survivorId: survivor.profileId,
      absorbed: absorbed.map((owner) => ({ profileId: owner.profileId, identifiers: owner.identifiers })),
      kind: request.kind,
      score: request.score ?? null,
    });
    await writeTraits(client, workspaceId, new Map([[survivor.profileId, traits]]), changes);
    return { survivorId: survivor.profileId, absorbedIds: absorbed.map((owner) => owner.profileId), mergeId };
  });
}
