import type { DbClient } from '../../storage/database.ts';
import type { EventMatch } from '../ast.ts';
import type { ProfileEvent, ProfileSnapshot } from '../snapshot.ts';
import type { ComputedTraitDefinition } from './definition.ts';
import { eventNeedOf, refreshValues, type EventNeed } from './compute.ts';
import { loadActiveComputedTraits, type ComputedTrait } from './store.ts';

/**
 * The events the given computed traits read, for a snapshot loader: a loader that includes every
 * event these match (and its segments') gives the refresh all it needs.
 */
export function computedTraitNeeds(definitions: readonly ComputedTraitDefinition[]): EventMatch[] {
  return definitions.map((definition) => eventNeedOf(definition).match);
}

/**
 * `computedTraitNeeds` with each match's window and whether it reads the event context, for a
 * loader that bounds the time range it reads (an event older than every window's start can go).
 */
export function computedTraitEventNeeds(definitions: readonly ComputedTraitDefinition[]): EventNeed[] {
  return definitions.map(eventNeedOf);
}

export interface RefreshOptions {
  /** What brought the profiles here, recorded on the change events: new data (default) or a re-check. */
  cause?: 'event' | 'expiry';
  /** The workspace's active computed traits, if the caller already loaded them (loadActiveComputedTraits). */
  traits?: readonly ComputedTrait[];
}

/**
 * Brings every active computed trait of the given profiles up to date from their snapshots'
 * events, before their segments are evaluated: writes only values that changed (with history and a
 * `Computed Trait Changed` event), and returns the snapshots with their traits updated, so a
 * segment on `trait.<key>` sees the new value in the same pass, plus each profile's earliest
 * re-check (time-based values: counts leaving a window, "last seen" within a period).
 *
 * The caller holds the workspace's segment lock and has prepared the events partition for `now`
 * (`prepareTransitionStorage`). Snapshots must hold every event `computedTraitNeeds` matches.
 */
export async function refreshComputedTraits(
  client: DbClient,
  workspaceId: string,
  snapshots: readonly ProfileSnapshot[],
  now: number,
  options: RefreshOptions = {},
): Promise<{ snapshots: ProfileSnapshot[]; recheckAt: Map<string, number> }> {
  const traits = options.traits ?? (await loadActiveComputedTraits(client, workspaceId));
  if (traits.length === 0 || snapshots.length === 0) return { snapshots: [...snapshots], recheckAt: new Map() };
  const events = new Map<string, readonly ProfileEvent[]>(snapshots.map((snapshot) => [snapshot.profileId, snapshot.events]));
  const { values, recheckAt } = await refreshValues(
    client,
    workspaceId,
    traits,
    snapshots.map((snapshot) => snapshot.profileId),
    events,
    now,
    options.cause ?? 'event',
  );
  const byProfile = new Map<string, typeof values>();
  for (const value of values) {
    const list = byProfile.get(value.profileId);
    if (list) list.push(value);
    else byProfile.set(value.profileId, [value]);
  }
  const updated = snapshots.map((snapshot) => {
    const own = byProfile.get(snapshot.profileId);
    if (!own) return snapshot;
    const traitValues: Record<string, unknown> = { ...snapshot.traits };
    for (const { trait, value } of own) {
      if (value === undefined) delete traitValues[trait.key];
      else traitValues[trait.key] = value;
    }
    return { ...snapshot, traits: traitValues };
  });
  return { snapshots: updated, recheckAt };
}
