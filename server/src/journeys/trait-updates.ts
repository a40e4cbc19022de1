import { writeProfileTraits } from '../profiles/trait-writer.ts';
import type { DbClient } from '../storage/database.ts';

/*
 * Trait values set by journey nodes (StepOutcome.traits: update_trait), written by the executor
 * for a whole batch inside its transaction through the profiles trait writer: provenance
 * `journey:<id>` (source kind `journey`), a trait-history row per changed value (reason `write`),
 * and the profiles queued for real-time segment evaluation, as any trait write.
 */

export interface TraitUpdate {
  workspaceId: string;
  journeyId: string;
  instanceId: string;
  profileId: string;
  /** key → value; null removes the trait. */
  traits: Record<string, unknown>;
  /** Of `traits`, the list keys the journey only added to: written as additions to the stored list. */
  listAdditions: Record<string, string[]>;
}

/** The provenance a journey's trait writes carry. */
export const journeyTraitSource = (journeyId: string) => ({ kind: 'journey', name: `journey:${journeyId}` });

export async function writeTraitUpdates(client: DbClient, updates: readonly TraitUpdate[], now: Date): Promise<void> {
  const groups = new Map<string, TraitUpdate[]>();
  for (const update of updates) {
    const key = `${update.workspaceId}:${update.journeyId}`;
    groups.set(key, [...(groups.get(key) ?? []), update]);
  }
  // Workspaces in a fixed order: the writer takes each workspace's identity and segment locks.
  for (const key of [...groups.keys()].sort()) {
    const list = groups.get(key)!;
    const { workspaceId, journeyId } = list[0]!;
    await writeProfileTraits(
      client,
      workspaceId,
      list.map((update) => ({
        profileId: update.profileId,
        set: Object.fromEntries(Object.entries(update.traits).filter(([key]) => !(key in update.listAdditions))),
        add: update.listAdditions,
      })),
      journeyTraitSource(journeyId),
      // The message id a trait's provenance names: the journey (instances differ per profile).
      { messageId: `journey:${journeyId}`, at: now },
    );
  }
}
