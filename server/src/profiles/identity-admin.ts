import { ApiError } from '../api/errors.ts';
import { compareTypes, parseIdentitySettings } from '../identity/identifier-types.ts';
import { loadWorkspaceIdentity, saveWorkspaceIdentity, type WorkspaceIdentity } from '../identity/settings-store.ts';
import { COUNT_QUEUED_EVENTS } from '../identity/queue-take.ts';
import { parseTraitStrategies } from '../identity/traits.ts';
import type { Queryable } from '../storage/database.ts';
import type { IdentitySettingsView, IdentityStats } from './schemas.ts';

/** Stored overrides and the configuration resolution actually applies (defaults filled in). */
export function settingsView(identity: WorkspaceIdentity): IdentitySettingsView {
  return {
    identity: identity.settings.identity,
    traitStrategies: identity.settings.traitStrategies,
    effective: {
      defaultPhoneRegion: identity.config.defaultPhoneRegion,
      types: [...identity.config.types.values()].sort(compareTypes).map((type) => ({
        name: type.name,
        builtIn: type.builtIn,
        priority: type.priority,
        limit: type.limit,
        normalizer: type.normalizer,
        blockedValues: [...type.blocked].sort(),
        traitKeys: [...type.traitKeys],
      })),
    },
  };
}

export async function getIdentitySettings(db: Queryable, workspaceId: string): Promise<IdentitySettingsView> {
  return settingsView(await loadWorkspaceIdentity(db, workspaceId));
}

/**
 * Validates with the same pure parsers resolution uses, so what is accepted here is exactly what
 * resolution will apply; a bad value is a 400 naming its field within the body.
 */
export async function putIdentitySettings(
  db: Queryable,
  workspaceId: string,
  body: { identity?: unknown; traitStrategies?: unknown },
): Promise<IdentitySettingsView> {
  if (body.identity !== undefined) {
    const parsed = parseIdentitySettings(body.identity);
    if (!parsed.ok) {
      const field = parsed.error.field ? `identity.${parsed.error.field}` : 'identity';
      throw new ApiError(400, parsed.error.error, parsed.error.message, field);
    }
  }
  if (body.traitStrategies !== undefined) {
    const parsed = parseTraitStrategies(body.traitStrategies);
    if (!parsed.ok) {
      const field = parsed.error.field ? `traitStrategies.${parsed.error.field}` : 'traitStrategies';
      throw new ApiError(400, parsed.error.error, parsed.error.message, field);
    }
  }
  return settingsView(await saveWorkspaceIdentity(db, workspaceId, body));
}

/** How the identity graph of a workspace looks: sizes, merges, refusals and ignored identifiers. */
export async function getIdentityStats(db: Queryable, workspaceId: string): Promise<IdentityStats> {
  const [profiles, identifiers, merges, refusals, ignored, queue] = await Promise.all([
    db.query<{ live: number; absorbed: number }>(
      `select count(*) filter (where merged_into is null) as live, count(*) filter (where merged_into is not null) as absorbed
         from profiles where workspace_id = $1`,
      [workspaceId],
    ),
    db.query<{ type: string; live: number; ended: number }>(
      `select type, count(*) filter (where unbound_at is null) as live, count(*) filter (where unbound_at is not null) as ended
         from profile_identifiers where workspace_id = $1 group by type order by type`,
      [workspaceId],
    ),
    db.query<{ kind: string; total: number; undone: number }>(
      `select kind, count(*) as total, count(*) filter (where undone_at is not null) as undone
         from identity_merges where workspace_id = $1 group by kind order by kind`,
      [workspaceId],
    ),
    db.query<{ reason: string; count: number }>(
      'select reason, count(*) as count from identity_refusals where workspace_id = $1 group by reason order by reason',
      [workspaceId],
    ),
    db.query<{ identifier_type: string; reason: string; count: number; last_seen: Date }>(
      `select identifier_type, reason, count, last_seen from identity_ignored_counts
        where workspace_id = $1 order by identifier_type, reason`,
      [workspaceId],
    ),
    db.query<{ pending: number }>(COUNT_QUEUED_EVENTS, [workspaceId]),
  ]);
  return {
    profiles: profiles.rows[0]!,
    identifiers: identifiers.rows,
    merges: {
      total: merges.rows.reduce((sum, row) => sum + row.total, 0),
      undone: merges.rows.reduce((sum, row) => sum + row.undone, 0),
      byKind: Object.fromEntries(merges.rows.map((row) => [row.kind, row.total])),
    },
    refusals: refusals.rows,
    ignored: ignored.rows.map((row) => ({ type: row.identifier_type, reason: row.reason, count: row.count, lastSeen: row.last_seen.toISOString() })),
    queue: queue.rows[0]!,
  };
}
