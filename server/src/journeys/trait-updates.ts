import type { DbClient } from '../storage/database.ts';

/*
 * Trait values set by journey nodes (StepOutcome.traits), written by the executor for a whole
 * batch inside its transaction. No node kind sets traits yet: the update-trait node brings the
 * writer (set-based, one statement per batch, with trait history and segment re-evaluation as
 * identity writes them).
 */

export interface TraitUpdate {
  workspaceId: string;
  profileId: string;
  traits: Record<string, unknown>;
}

export async function writeTraitUpdates(_client: DbClient, updates: readonly TraitUpdate[], _now: Date): Promise<void> {
  if (updates.length > 0) throw new Error('No writer for journey trait updates yet (the update-trait node kind brings it)');
}
