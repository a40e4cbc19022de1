import type { Queryable } from '../storage/database.ts';
import { defaultIdentityConfig, parseIdentitySettings, type IdentityConfig, type IdentitySettings } from './identifier-types.ts';
import { parseTraitStrategies, type TraitStrategies } from './traits.ts';

export interface WorkspaceIdentity {
  config: IdentityConfig;
  strategies: TraitStrategies;
  settings: { identity: IdentitySettings; traitStrategies: TraitStrategies };
}

/** A workspace's identity settings; stored values were validated when saved, defaults otherwise. */
export async function loadWorkspaceIdentity(db: Queryable, workspaceId: string): Promise<WorkspaceIdentity> {
  const { rows } = await db.query<{ settings: { identity?: IdentitySettings; traitStrategies?: TraitStrategies } }>(
    'select settings from identity_settings where workspace_id = $1',
    [workspaceId],
  );
  const stored = rows[0]?.settings ?? {};
  const identity = stored.identity ?? {};
  const traitStrategies = stored.traitStrategies ?? {};
  const parsed = parseIdentitySettings(identity);
  const strategies = parseTraitStrategies(traitStrategies);
  return {
    config: parsed.ok ? parsed.config : defaultIdentityConfig(),
    strategies: strategies.ok ? strategies.strategies : {},
    settings: { identity, traitStrategies },
  };
}

/** Validates and saves settings; throws RangeError (400) naming the field when invalid. */
export async function saveWorkspaceIdentity(
  db: Queryable,
  workspaceId: string,
  input: { identity?: unknown; traitStrategies?: unknown },
): Promise<WorkspaceIdentity> {
  const current = await loadWorkspaceIdentity(db, workspaceId);
  const identity = input.identity ?? current.settings.identity;
  const traitStrategies = input.traitStrategies ?? current.settings.traitStrategies;
  const parsed = parseIdentitySettings(identity);
  if (!parsed.ok) throw new RangeError(parsed.error.message);
  const strategies = parseTraitStrategies(traitStrategies);
  if (!strategies.ok) throw new RangeError(strategies.error.message);
  await db.query(
    `insert into identity_settings (workspace_id, settings) values ($1, $2)
     on conflict (workspace_id) do update set settings = excluded.settings, updated_at = now()`,
    [workspaceId, JSON.stringify({ identity, traitStrategies })],
  );
  return loadWorkspaceIdentity(db, workspaceId);
}
