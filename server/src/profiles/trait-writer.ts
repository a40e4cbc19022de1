import { lockWorkspaceIdentity } from '../identity/resolver.ts';
import { COMPUTED_TRAIT_SOURCE_KIND, type TraitSource } from '../identity/traits.ts';
import { sameJson } from '../segments/computed/store.ts';
import { lockWorkspaceSegments } from '../segments/lock.ts';
import { enqueueSegmentEvaluation } from '../segments/queue.ts';
import type { DbClient } from '../storage/database.ts';
import { isEncryptedKey, piiCodec, writeVault } from '../privacy/pii-codec.ts';

/*
 * Direct trait writes that are not events (a journey's update_trait node, an operator): the value
 * with its provenance (`source`, e.g. kind `journey`, name `journey:<id>`) in profile_traits, a
 * profile_trait_history row (reason `write`) per value that changed, and the profile queued for
 * real-time segment evaluation — in the caller's transaction. Under the workspace's identity lock
 * (the resolver rewrites a batch's traits from what it read under it, so a write between its read
 * and its write would be lost) and then the segment lock (lock order: segments/lock.ts). A value
 * a computed trait or model owns is never overwritten: those are recomputed, not written.
 */

export interface TraitWrite {
  profileId: string;
  /** key → value; null removes the trait. */
  set: Record<string, unknown>;
  /**
   * key → values added once each to the list trait (after `set` of the same key, if any). Applied to
   * the value read under the identity lock: a list read earlier (a journey's snapshot) would
   * overwrite values written since. Not for PII keys (their values are tokens, not lists).
   */
  add?: Record<string, readonly unknown[]>;
}

export interface TraitWriteResult {
  profileId: string;
  key: string;
  previous: unknown;
  value: unknown;
}

/** The changes `writes` make to the current values (pure): values equal to the stored ones and computed traits are left out. */
export function plannedTraitChanges(
  writes: readonly TraitWrite[],
  current: ReadonlyMap<string, ReadonlyMap<string, { value: unknown; computed: boolean }>>,
): TraitWriteResult[] {
  const changes: TraitWriteResult[] = [];
  for (const write of writes) {
    const stored = current.get(write.profileId);
    const values: Record<string, unknown> = { ...write.set };
    for (const [key, additions] of Object.entries(write.add ?? {})) {
      const base = key in values ? values[key] : stored?.get(key)?.value;
      const list = Array.isArray(base) ? [...(base as unknown[])] : base === undefined || base === null ? [] : [base];
      for (const value of additions) if (!list.some((have) => sameJson(have, value))) list.push(value);
      values[key] = list;
    }
    for (const [key, value] of Object.entries(values)) {
      const existing = stored?.get(key);
      if (existing?.computed) continue;
      const previous = existing?.value ?? null;
      if (value === null && existing === undefined) continue;
      if (existing !== undefined && value !== null && sameJson(existing.value, value)) continue;
      changes.push({ profileId: write.profileId, key, previous, value });
    }
  }
  return changes;
}

/** Writes traits with provenance; returns the values that changed. Profiles merged away are skipped. */
export async function writeProfileTraits(
  client: DbClient,
  workspaceId: string,
  writes: readonly TraitWrite[],
  source: TraitSource,
  options: { messageId: string; at: Date },
): Promise<TraitWriteResult[]> {
  if (writes.length === 0) return [];
  // Values of PII keys (email, phone, name…) are stored as keyed-hash tokens with one sealed copy in
  // pii_vault, as the resolver stores them (privacy/pii-codec.ts): never in clear.
  const codec = await piiCodec(client, workspaceId);
  for (const write of writes) {
    const pii = Object.keys(write.add ?? {}).find(isEncryptedKey);
    if (pii !== undefined) throw new Error(`List additions to the PII trait "${pii}" are not supported: set its value instead`);
  }
  writes = writes.map((write) => ({ ...write, set: codec.tokenizeTraits(write.set) }));
  await writeVault(client, codec);
  await lockWorkspaceIdentity(client, workspaceId);
  await lockWorkspaceSegments(client, workspaceId);
  const profileIds = [...new Set(writes.map((w) => w.profileId))];
  const keys = [...new Set(writes.flatMap((w) => [...Object.keys(w.set), ...Object.keys(w.add ?? {})]))];
  const { rows } = await client.query<{ profile_id: string; key: string; value: unknown; source_kind: string }>(
    `select t.profile_id, t.key, t.value, t.source_kind from profile_traits t
      where t.workspace_id = $1 and t.profile_id = any($2::uuid[]) and t.key = any($3::text[])`,
    [workspaceId, profileIds, keys],
  );
  const { rows: live } = await client.query<{ id: string }>(
    'select id from profiles where workspace_id = $1 and id = any($2::uuid[]) and merged_into is null',
    [workspaceId, profileIds],
  );
  const liveIds = new Set(live.map((row) => row.id));
  const current = new Map<string, Map<string, { value: unknown; computed: boolean }>>();
  for (const row of rows) {
    let byKey = current.get(row.profile_id);
    if (!byKey) current.set(row.profile_id, (byKey = new Map()));
    byKey.set(row.key, { value: row.value, computed: row.source_kind === COMPUTED_TRAIT_SOURCE_KIND });
  }
  const changes = plannedTraitChanges(
    writes.filter((w) => liveIds.has(w.profileId)),
    current,
  );
  if (changes.length === 0) return [];
  const present = changes.filter((c) => c.value !== null);
  const absent = changes.filter((c) => c.value === null);
  if (present.length > 0) {
    await client.query(
      `insert into profile_traits (workspace_id, profile_id, key, value, source_kind, source_name, message_id, observed_at, updated_at)
       select $1, p, k, v, $5, $6, $7, $8, $8 from unnest($2::uuid[], $3::text[], $4::jsonb[]) as x(p, k, v)
       on conflict (workspace_id, profile_id, key) do update
         set value = excluded.value, source_kind = excluded.source_kind, source_name = excluded.source_name,
             message_id = excluded.message_id, observed_at = excluded.observed_at, updated_at = excluded.updated_at
         where profile_traits.source_kind <> '${COMPUTED_TRAIT_SOURCE_KIND}'`,
      [
        workspaceId,
        present.map((c) => c.profileId),
        present.map((c) => c.key),
        present.map((c) => JSON.stringify(c.value)),
        source.kind,
        source.name,
        options.messageId,
        options.at,
      ],
    );
  }
  if (absent.length > 0) {
    await client.query(
      `delete from profile_traits t using unnest($2::uuid[], $3::text[]) as x(p, k)
        where t.workspace_id = $1 and t.profile_id = any($2::uuid[]) and t.profile_id = x.p and t.key = x.k
          and t.source_kind <> '${COMPUTED_TRAIT_SOURCE_KIND}'`,
      [workspaceId, absent.map((c) => c.profileId), absent.map((c) => c.key)],
    );
  }
  await client.query(
    `insert into profile_trait_history (workspace_id, profile_id, key, previous_value, value, source_kind, source_name, message_id, observed_at, reason)
     select $1, p, k, pv, v, $6, $7, $8, $9, 'write' from unnest($2::uuid[], $3::text[], $4::jsonb[], $5::jsonb[]) as x(p, k, pv, v)`,
    [
      workspaceId,
      changes.map((c) => c.profileId),
      changes.map((c) => c.key),
      changes.map((c) => (c.previous === null ? null : JSON.stringify(c.previous))),
      changes.map((c) => JSON.stringify(c.value)),
      source.kind,
      source.name,
      options.messageId,
      options.at,
    ],
  );
  await enqueueSegmentEvaluation(client, workspaceId, new Set(changes.map((c) => c.profileId)));
  return changes;
}
