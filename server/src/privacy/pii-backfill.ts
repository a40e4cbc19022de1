/**
 * Jobs over stored personal data that need the keys (migrations never do):
 * - `encryptExistingPii`: rows written before field-level encryption (plain identifier values of
 *   PII types, plain PII trait values and history, plain PII fields in events, plain identifier
 *   values in identity logs) become tokens / sealed fields. Idempotent; run by
 *   `touchpoint privacy encrypt-existing` and by the worker once at start (`encryptAllExistingPii`,
 *   which also seals the hash keys still pending since migration 0055).
 * - `reencryptPii`: after `rotate-data-key`, values sealed by older data keys (vault copies, event
 *   fields, quarantined payloads) are sealed again with the current one.
 * Both walk in batches of `batchSize` rows.
 */
import { lockWorkspaceIdentity } from '../identity/resolver.ts';
import { withTransaction, type Db, type Queryable } from '../storage/database.ts';
import { tokenKeyNumber } from './encryption.ts';
import { openText, sealPendingHashKeys, sealText } from './data-keys.ts';
import { ENCRYPTED_IDENTIFIER_TYPES, isEncryptedKey, isPiiToken, isSealedValue, piiCodec, writeVault, type PiiCodec } from './pii-codec.ts';
import { eventPiiHashes } from './pii-hashes.ts';

export interface BackfillCounts {
  identifiers: number;
  identityLogs: number;
  traits: number;
  traitHistory: number;
  events: number;
}

const TYPES = [...ENCRYPTED_IDENTIFIER_TYPES];

/** Every workspace's id (the CLI's and worker's default). */
export async function allWorkspaceIds(db: Queryable): Promise<string[]> {
  return (await db.query<{ id: string }>('select id from workspaces order by id')).rows.map((row) => row.id);
}

interface EventPiiRow {
  timestamp: Date;
  seq: string;
  properties: unknown;
  traits: unknown;
  context: unknown;
  pii_hashes: Record<string, string> | null;
}

/** Walks a workspace's events in (timestamp, seq) order and writes back the rows `change` returns. */
async function rewriteEvents(
  db: Db,
  workspaceId: string,
  batchSize: number,
  change: (row: EventPiiRow) => EventPiiRow | null,
  signal?: AbortSignal,
): Promise<number> {
  let after = null as { timestamp: Date; seq: string } | null;
  let changed = 0;
  for (;;) {
    signal?.throwIfAborted();
    const { rows }: { rows: EventPiiRow[] } = await db.query<EventPiiRow>(
      `select timestamp, seq, properties, traits, context, pii_hashes from events
        where workspace_id = $1 and ($2::timestamptz is null or (timestamp, seq) > ($2, $3::bigint))
        order by timestamp, seq limit $4`,
      [workspaceId, after?.timestamp ?? null, after?.seq ?? null, batchSize],
    );
    if (rows.length === 0) return changed;
    after = rows.at(-1)!;
    const updates = rows.flatMap((row) => {
      const next = change(row);
      return next ? [next] : [];
    });
    if (updates.length > 0) {
      await db.query(
        `update events e set properties = u.properties, traits = u.traits, context = u.context, pii_hashes = u.pii_hashes
           from jsonb_to_recordset($2::jsonb) as u(timestamp timestamptz, seq bigint, properties jsonb, traits jsonb, context jsonb, pii_hashes jsonb)
          where e.workspace_id = $1 and e.timestamp = u.timestamp and e.seq = u.seq`,
        [workspaceId, JSON.stringify(updates)],
      );
      changed += updates.length;
    }
  }
}

function rewriteIdentifierList(value: unknown, codec: PiiCodec): { value: unknown; changed: boolean } {
  let changed = false;
  const walk = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(walk);
    if (node && typeof node === 'object') {
      const object = node as Record<string, unknown>;
      const out: Record<string, unknown> = {};
      for (const [key, item] of Object.entries(object)) out[key] = walk(item);
      if (typeof object.type === 'string' && ENCRYPTED_IDENTIFIER_TYPES.has(object.type) && typeof object.value === 'string' && !isPiiToken(object.value)) {
        out.value = codec.token(object.value);
        changed = true;
      }
      return out;
    }
    return node;
  };
  return { value: walk(value), changed };
}

/** Encrypts a workspace's personal data written before encryption (see the file comment). */
export async function encryptExistingPii(db: Db, workspaceId: string, options: { batchSize?: number; signal?: AbortSignal } = {}): Promise<BackfillCounts> {
  const batchSize = options.batchSize ?? 1000;
  const counts: BackfillCounts = { identifiers: 0, identityLogs: 0, traits: 0, traitHistory: 0, events: 0 };
  // Keys first, outside the transactions (a one-connection pool would otherwise wait on itself).
  const codec = await piiCodec(db, workspaceId);

  // The identity graph under the identity lock (resolution writes it), one batch per transaction,
  // walked by id: without the cursor every batch re-read the rows sealed before it (quadratic: at
  // 1M profiles a pass had not finished after 12 minutes, holding resolution back batch by batch).
  // Links made after the walk passed them are sealed when written.
  let after = '0';
  for (;;) {
    options.signal?.throwIfAborted();
    const done = await withTransaction(db, async (client) => {
      await lockWorkspaceIdentity(client, workspaceId);
      const { rows } = await client.query<{ id: string; value: string }>(
        `select id, value from profile_identifiers
          where workspace_id = $1 and id > $4::bigint and type = any($2::text[]) and value not like 'tph1.%' order by id limit $3`,
        [workspaceId, TYPES, batchSize, after],
      );
      if (rows.length > 0) after = rows.at(-1)!.id;
      if (rows.length > 0) {
        // A live plain link whose token is already live elsewhere (linked after encryption started,
        // before this backfill) is ended rather than left to break the one-owner index.
        await client.query(
          `update profile_identifiers pi
              set value = x.token,
                  unbound_at = case when pi.unbound_at is null and exists (
                    select 1 from profile_identifiers o where o.workspace_id = $1 and o.type = pi.type and o.value = x.token and o.unbound_at is null)
                    then now() else pi.unbound_at end,
                  unbound_reason = case when pi.unbound_at is null and exists (
                    select 1 from profile_identifiers o where o.workspace_id = $1 and o.type = pi.type and o.value = x.token and o.unbound_at is null)
                    then 'encrypted_duplicate' else pi.unbound_reason end
             from unnest($2::bigint[], $3::text[]) as x(id, token)
            where pi.workspace_id = $1 and pi.id = x.id`,
          [workspaceId, rows.map((r) => r.id), rows.map((r) => codec.token(r.value))],
        );
        counts.identifiers += rows.length;
        await writeVault(client, codec);
      }
      return rows.length < batchSize;
    });
    if (done) break;
  }

  await withTransaction(db, async (client) => {
    await lockWorkspaceIdentity(client, workspaceId);
    const refusals = await client.query<{ id: string; identifier_value: string }>(
      `select id, identifier_value from identity_refusals where workspace_id = $1 and identifier_type = any($2::text[]) and identifier_value not like 'tph1.%'`,
      [workspaceId, TYPES],
    );
    for (const row of refusals.rows) {
      await client.query('update identity_refusals set identifier_value = $3 where workspace_id = $1 and id = $2', [workspaceId, row.id, codec.token(row.identifier_value)]);
    }
    const merges = await client.query<{ id: string; details: unknown; cause_identifier_type: string | null; cause_identifier_value: string | null }>(
      'select id, details, cause_identifier_type, cause_identifier_value from identity_merges where workspace_id = $1',
      [workspaceId],
    );
    let logs = refusals.rows.length;
    for (const row of merges.rows) {
      const details = rewriteIdentifierList(row.details, codec);
      const causeIsPlain =
        row.cause_identifier_type !== null && ENCRYPTED_IDENTIFIER_TYPES.has(row.cause_identifier_type) && row.cause_identifier_value !== null && !isPiiToken(row.cause_identifier_value);
      if (!details.changed && !causeIsPlain) continue;
      await client.query('update identity_merges set details = $3, cause_identifier_value = $4 where workspace_id = $1 and id = $2', [
        workspaceId,
        row.id,
        JSON.stringify(details.value),
        causeIsPlain ? codec.token(row.cause_identifier_value) : row.cause_identifier_value,
      ]);
      logs++;
    }
    counts.identityLogs = logs;

    // Traits: current values and history of PII keys.
    const keys = (await client.query<{ key: string }>('select distinct key from profile_traits where workspace_id = $1', [workspaceId])).rows
      .map((row) => row.key)
      .filter(isEncryptedKey);
    const historyKeys = (await client.query<{ key: string }>('select distinct key from profile_trait_history where workspace_id = $1', [workspaceId])).rows
      .map((row) => row.key)
      .filter(isEncryptedKey);
    const traits = await client.query<{ profile_id: string; key: string; value: unknown }>(
      `select profile_id, key, value from profile_traits where workspace_id = $1 and key = any($2::text[])
          and not (jsonb_typeof(value) = 'string' and value #>> '{}' like 'tph1.%')`,
      [workspaceId, keys],
    );
    if (traits.rows.length > 0) {
      await client.query(
        `update profile_traits t set value = to_jsonb(u.token)
           from unnest($2::uuid[], $3::text[], $4::text[]) as u(profile_id, key, token)
          where t.workspace_id = $1 and t.profile_id = u.profile_id and t.key = u.key`,
        [workspaceId, traits.rows.map((r) => r.profile_id), traits.rows.map((r) => r.key), traits.rows.map((r) => codec.token(r.value))],
      );
    }
    counts.traits = traits.rows.length;
    const history = await client.query<{ id: string; value: unknown; previous_value: unknown }>(
      `select id, value, previous_value from profile_trait_history where workspace_id = $1 and key = any($2::text[])
          and (not (jsonb_typeof(value) = 'string' and value #>> '{}' like 'tph1.%')
               or (previous_value is not null and not (jsonb_typeof(previous_value) = 'string' and previous_value #>> '{}' like 'tph1.%')))`,
      [workspaceId, historyKeys],
    );
    if (history.rows.length > 0) {
      await client.query(
        `update profile_trait_history h set value = to_jsonb(u.value), previous_value = to_jsonb(u.previous)
           from unnest($2::bigint[], $3::text[], $4::text[]) as u(id, value, previous)
          where h.workspace_id = $1 and h.id = u.id`,
        [
          workspaceId,
          history.rows.map((r) => r.id),
          history.rows.map((r) => codec.token(r.value)),
          history.rows.map((r) => (r.previous_value === null ? null : codec.token(r.previous_value))),
        ],
      );
    }
    counts.traitHistory = history.rows.length;
    await writeVault(client, codec);
  });

  // Events: PII fields sealed in place (no lock: resolution only reads these columns), and the
  // keyed hashes analytics group them by written for events stored before there were any.
  counts.events = await rewriteEvents(
    db,
    workspaceId,
    batchSize,
    (row) => {
      const sealed = codec.sealEvent(row);
      const hashes = row.pii_hashes ?? eventPiiHashes(codec.openEvent(row), (value) => codec.hash(value));
      if (sealed === row && hashes === row.pii_hashes) return null;
      return { ...sealed, pii_hashes: hashes };
    },
    options.signal,
  );
  return counts;
}

/** "2 identifier(s), 0 identity log row(s), …": the CLI's and the worker's report (counts only, never values). */
export function describeBackfillCounts(counts: BackfillCounts): string {
  return (
    `${counts.identifiers} identifier(s), ${counts.identityLogs} identity log row(s), ${counts.traits} trait(s), ` +
    `${counts.traitHistory} trait history row(s), ${counts.events} event(s)`
  );
}

export function backfillTotal(counts: BackfillCounts): number {
  return counts.identifiers + counts.identityLogs + counts.traits + counts.traitHistory + counts.events;
}

/**
 * Raise when the PII rules change (a new sealed field or identifier type): every workspace is then
 * walked again at the next start, because rows its earlier clean pass accepted may now need sealing.
 */
export const PII_BACKFILL_RULES_VERSION = 1;
const CLEAN_SETTING = 'pii_backfill_clean';

/** Workspaces a start-up pass found clean under the current rules (instance_settings, by workspace id). */
async function cleanWorkspaces(db: Queryable): Promise<Set<string>> {
  const { rows } = await db.query<{ value: Record<string, number> }>('select value from instance_settings where key = $1', [CLEAN_SETTING]);
  const marks = rows[0]?.value ?? {};
  return new Set(Object.entries(marks).filter(([, version]) => version === PII_BACKFILL_RULES_VERSION).map(([id]) => id));
}

async function markClean(db: Queryable, workspaceId: string): Promise<void> {
  await db.query(
    `insert into instance_settings (key, value) values ($1, jsonb_build_object($2::text, $3::int))
     on conflict (key) do update set value = instance_settings.value || excluded.value`,
    [CLEAN_SETTING, workspaceId, PII_BACKFILL_RULES_VERSION],
  );
}

/**
 * The worker's start-up pass: seals the hash keys still pending (so the instance privacy key stops
 * mattering to PII tokens), then encrypts every workspace's plaintext rows, one workspace after
 * another, reporting each workspace's counts. Stops between batches when `signal` aborts.
 * A workspace whose pass finds nothing to encrypt is marked clean and skipped by later starts:
 * walking 20M events on every restart would cost hours of reading for nothing. It is marked only
 * after a pass that found nothing (not the pass that encrypted), so plaintext written by an older
 * process still running during the upgrade is caught by the next start. `touchpoint privacy
 * encrypt-existing` always walks everything.
 */
export async function encryptAllExistingPii(
  db: Db,
  options: { batchSize?: number; signal?: AbortSignal; onWorkspace?: (workspaceId: string, counts: BackfillCounts) => void } = {},
): Promise<{ hashKeysSealed: number; workspaces: number; skippedClean: number; totals: BackfillCounts }> {
  const hashKeysSealed = await sealPendingHashKeys(db);
  const totals: BackfillCounts = { identifiers: 0, identityLogs: 0, traits: 0, traitHistory: 0, events: 0 };
  const clean = await cleanWorkspaces(db);
  const ids = (await allWorkspaceIds(db)).filter((id) => !clean.has(id));
  for (const id of ids) {
    options.signal?.throwIfAborted();
    const counts = await encryptExistingPii(db, id, options);
    for (const key of Object.keys(totals) as Array<keyof BackfillCounts>) totals[key] += counts[key];
    if (backfillTotal(counts) === 0) await markClean(db, id);
    options.onWorkspace?.(id, counts);
  }
  return { hashKeysSealed, workspaces: ids.length, skippedClean: clean.size, totals };
}

export interface ReencryptCounts {
  keyNumber: number;
  vault: number;
  events: number;
  quarantine: number;
}

/** Seals again, with the current data key, every value sealed by an older one (after `rotate-data-key`). */
export async function reencryptPii(db: Db, workspaceId: string, options: { batchSize?: number } = {}): Promise<ReencryptCounts> {
  const batchSize = options.batchSize ?? 1000;
  const codec = await piiCodec(db, workspaceId, true);
  const current = codec.currentKeyNumber;
  const counts: ReencryptCounts = { keyNumber: current, vault: 0, events: 0, quarantine: 0 };
  for (;;) {
    const { rows } = await db.query<{ token: string; sealed: string }>(
      'select token, sealed from pii_vault where workspace_id = $1 and key_number <> $2 limit $3',
      [workspaceId, current, batchSize],
    );
    if (rows.length === 0) break;
    const entries = rows.map((row) => codec.sealVault(row.token, codec.openVault(row.token, row.sealed)));
    await db.query(
      `update pii_vault v set sealed = u.sealed, key_number = $4
         from unnest($2::text[], $3::text[]) as u(token, sealed) where v.workspace_id = $1 and v.token = u.token`,
      [workspaceId, entries.map((e) => e.token), entries.map((e) => e.sealed), current],
    );
    counts.vault += rows.length;
  }
  const stale = (value: unknown) => isSealedValue(value) && tokenKeyNumber(value) !== current;
  const hasStale = (node: unknown, depth = 0): boolean => {
    if (depth > 8) return false;
    if (typeof node === 'string') return stale(node);
    if (Array.isArray(node)) return node.some((item) => hasStale(item, depth + 1));
    if (node && typeof node === 'object') return Object.values(node).some((item) => hasStale(item, depth + 1));
    return false;
  };
  counts.events = await rewriteEvents(db, workspaceId, batchSize, (row) => {
    if (!hasStale(row.properties) && !hasStale(row.traits) && !hasStale(row.context)) return null;
    return codec.sealEvent(codec.openEvent(row));
  });
  const quarantined = await db.query<{ id: string; payload: string }>(
    `select id, payload from quarantine where workspace_id = $1 and payload like 'tpe1.%' and payload not like $2`,
    [workspaceId, `tpe1.${current}.%`],
  );
  for (const row of quarantined.rows) {
    const text = await openText(db, workspaceId, 'quarantine.payload', row.payload);
    await db.query('update quarantine set payload = $3 where workspace_id = $1 and id = $2', [workspaceId, row.id, await sealText(db, workspaceId, 'quarantine.payload', text)]);
  }
  counts.quarantine = quarantined.rows.length;
  return counts;
}
