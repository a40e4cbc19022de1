/**
 * Workspace data keys for field-level encryption (privacy/encryption.ts), sealed by the instance
 * master key: TOUCHPOINT_MASTER_KEY (hex or base64, ≥ 32 bytes) or the file named by
 * TOUCHPOINT_MASTER_KEY_FILE. Rotation: start with the new key there and the old one in
 * TOUCHPOINT_MASTER_KEY_PREVIOUS (or _PREVIOUS_FILE), run `touchpoint privacy rotate-master-key`
 * (every data key and hash key is re-sealed; no value or token changes), then drop the old key.
 * Without a master key one is generated and kept in instance_settings — weaker: whoever reads the
 * database reads it.
 *
 * Each workspace also has one hash key (workspace_hash_keys) keying its PII tokens, sealed the
 * same way and cached with the data keys. Workspaces that existed before hash keys were stored
 * keep the key they had (derived from the instance privacy key, sealed at first use), so their
 * tokens never change; new workspaces get a random one.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import type { Queryable } from '../storage/database.ts';
import {
  decryptText,
  derivedHashKey,
  encryptText,
  isEncrypted,
  masterKeyId,
  newDataKey,
  newHashKey,
  openDataKey,
  openHashKey,
  piiTokenOf,
  sealDataKey,
  sealHashKey,
  tokenKeyNumber,
  vaultPurpose,
} from './encryption.ts';
import { decodeKey, forgetPrivacyKey, privacyKey } from './secret.ts';

const SETTING = 'privacy_master_key';

interface MasterKeys {
  current: Buffer;
  /** Keys a rotation may still find data keys sealed by. */
  previous: Buffer[];
}

interface WorkspaceKeys {
  current: { number: number; key: Buffer } | null;
  byNumber: Map<number, Buffer>;
  /** Null until the workspace's hash key is stored (sealed) for the first time. */
  hashKey: Buffer | null;
}

interface SealedHashKeyRow {
  workspace_id: string;
  sealed: Buffer;
  master_key_id: string;
}

const masters = new WeakMap<object, Promise<MasterKeys>>();
const workspaceKeyCache = new WeakMap<object, Map<string, Promise<WorkspaceKeys>>>();

function fromEnv(name: string): Buffer[] {
  const inline = process.env[name];
  const file = process.env[`${name}_FILE`];
  const text = inline || (file ? fs.readFileSync(file, 'utf8') : '');
  return text
    .split(/[\s,]+/)
    .filter(Boolean)
    .map((item) => decodeKey(item, inline ? name : `${name}_FILE`));
}

async function loadMasterKeys(db: Queryable): Promise<MasterKeys> {
  const previous = fromEnv('TOUCHPOINT_MASTER_KEY_PREVIOUS');
  const [current] = fromEnv('TOUCHPOINT_MASTER_KEY');
  if (current) return { current, previous };
  await db.query(`insert into instance_settings (key, value) values ($1, to_jsonb($2::text)) on conflict (key) do nothing`, [SETTING, crypto.randomBytes(32).toString('hex')]);
  const { rows } = await db.query<{ value: string }>('select value from instance_settings where key = $1', [SETTING]);
  return { current: Buffer.from(rows[0]!.value, 'hex'), previous };
}

function masterKeysOf(db: Queryable): Promise<MasterKeys> {
  let keys = masters.get(db);
  if (!keys) {
    keys = loadMasterKeys(db);
    keys.catch(() => masters.delete(db));
    masters.set(db, keys);
  }
  return keys;
}

function masterKeyById(master: MasterKeys, id: string, what: string): Buffer {
  const candidate = [master.current, ...master.previous].find((key) => masterKeyId(key) === id);
  if (!candidate) throw new Error(`${what} is sealed by master key ${id}, which is not configured (TOUCHPOINT_MASTER_KEY / _PREVIOUS)`);
  return candidate;
}

function openWithAny(master: MasterKeys, row: { workspace_id: string; number: number; sealed: Buffer; master_key_id: string }): Buffer {
  const key = masterKeyById(master, row.master_key_id, `Data key ${row.number} of workspace ${row.workspace_id}`);
  return openDataKey(key, row.workspace_id, row.number, row.sealed);
}

function openHashKeyWithAny(master: MasterKeys, row: SealedHashKeyRow): Buffer {
  return openHashKey(masterKeyById(master, row.master_key_id, `The hash key of workspace ${row.workspace_id}`), row.workspace_id, row.sealed);
}

async function loadWorkspaceKeys(db: Queryable, workspaceId: string): Promise<WorkspaceKeys> {
  const master = await masterKeysOf(db);
  const { rows } = await db.query<{ workspace_id: string; number: number; sealed: Buffer; master_key_id: string }>(
    'select workspace_id, number, sealed, master_key_id from workspace_data_keys where workspace_id = $1 order by number',
    [workspaceId],
  );
  const byNumber = new Map(rows.map((row) => [row.number, openWithAny(master, row)]));
  const last = rows.at(-1);
  const hash = await db.query<SealedHashKeyRow>(
    'select workspace_id, sealed, master_key_id from workspace_hash_keys where workspace_id = $1 and sealed is not null',
    [workspaceId],
  );
  const hashKey = hash.rows[0] ? openHashKeyWithAny(master, hash.rows[0]) : null;
  return { current: last ? { number: last.number, key: byNumber.get(last.number)! } : null, byNumber, hashKey };
}

function keysOf(db: Queryable, workspaceId: string, reload = false): Promise<WorkspaceKeys> {
  let map = workspaceKeyCache.get(db);
  if (!map) workspaceKeyCache.set(db, (map = new Map()));
  let keys = map.get(workspaceId);
  if (!keys || reload) {
    keys = loadWorkspaceKeys(db, workspaceId);
    keys.catch(() => map.delete(workspaceId));
    map.set(workspaceId, keys);
  }
  return keys;
}

/** Adds a data key to the workspace; new values are sealed with it, older ones keep opening with theirs. */
export async function rotateDataKey(db: Queryable, workspaceId: string): Promise<number> {
  const master = await masterKeysOf(db);
  const { rows } = await db.query<{ next: number }>('select coalesce(max(number), 0) + 1 as next from workspace_data_keys where workspace_id = $1', [workspaceId]);
  const number = rows[0]!.next;
  await db.query(
    `insert into workspace_data_keys (workspace_id, number, sealed, master_key_id) values ($1, $2, $3, $4) on conflict do nothing`,
    [workspaceId, number, sealDataKey(master.current, workspaceId, number, newDataKey()), masterKeyId(master.current)],
  );
  await keysOf(db, workspaceId, true);
  return number;
}

async function currentKey(db: Queryable, workspaceId: string): Promise<{ number: number; key: Buffer }> {
  const keys = await keysOf(db, workspaceId);
  if (keys.current) return keys.current;
  await rotateDataKey(db, workspaceId); // the first one (a concurrent first insert wins; both reload)
  const reloaded = await keysOf(db, workspaceId, true);
  return reloaded.current!;
}

/**
 * Whether `hashKey` made the workspace's existing tokens: one vault copy is opened and hashed
 * again (true when the workspace has none). Guards against sealing, for good, a key derived from
 * the wrong privacy key (a process started without TOUCHPOINT_PRIVACY_KEY).
 */
async function madeExistingTokens(db: Queryable, workspaceId: string, hashKey: Buffer): Promise<boolean> {
  const { rows } = await db.query<{ token: string; sealed: string }>('select token, sealed from pii_vault where workspace_id = $1 limit 1', [workspaceId]);
  const sample = rows[0];
  if (!sample) return true;
  const number = tokenKeyNumber(sample.sealed);
  const dataKey = (await keysOf(db, workspaceId)).byNumber.get(number) ?? (await keysOf(db, workspaceId, true)).byNumber.get(number);
  if (!dataKey) throw new Error(`Data key ${number} of workspace ${workspaceId} is missing`);
  const value: unknown = JSON.parse(decryptText(dataKey, workspaceId, vaultPurpose(sample.token), sample.sealed));
  return piiTokenOf(hashKey, value) === sample.token;
}

/**
 * Seals workspaces' pending hash keys (rows the migration left for workspaces that existed before
 * hash keys were stored) with the key derived from the instance privacy key, which is the key
 * their tokens were made with. Once none is pending, the privacy key can change without changing
 * a token. A concurrent sealer stores the same key; the first update wins.
 */
export async function sealPendingHashKeys(db: Queryable, workspaceId?: string): Promise<number> {
  const { rows } = await db.query<{ workspace_id: string }>(
    'select workspace_id from workspace_hash_keys where sealed is null and ($1::uuid is null or workspace_id = $1) order by workspace_id',
    [workspaceId ?? null],
  );
  if (rows.length === 0) return 0;
  const [master, privacy] = await Promise.all([masterKeysOf(db), privacyKey(db)]);
  let sealed = 0;
  for (const { workspace_id } of rows) {
    const hashKey = derivedHashKey(privacy, workspace_id);
    if (!(await madeExistingTokens(db, workspace_id, hashKey))) {
      throw new Error(
        `The PII tokens of workspace ${workspace_id} were not made with the configured instance privacy key (TOUCHPOINT_PRIVACY_KEY / _FILE, ` +
          'else the one kept in instance_settings); its hash key is not stored. Start with the privacy key the workspace was created under.',
      );
    }
    const result = await db.query(
      'update workspace_hash_keys set sealed = $2, master_key_id = $3 where workspace_id = $1 and sealed is null',
      [workspace_id, sealHashKey(master.current, workspace_id, hashKey), masterKeyId(master.current)],
    );
    sealed += result.rowCount ?? 0;
  }
  return sealed;
}

/** Stores the workspace's hash key if it has none yet: the derived one if pending, else a random one. */
async function storeHashKey(db: Queryable, workspaceId: string): Promise<void> {
  if ((await sealPendingHashKeys(db, workspaceId)) > 0) return;
  const master = await masterKeysOf(db);
  await db.query(
    `insert into workspace_hash_keys (workspace_id, origin, sealed, master_key_id) values ($1, 'random', $2, $3) on conflict (workspace_id) do nothing`,
    [workspaceId, sealHashKey(master.current, workspaceId, newHashKey()), masterKeyId(master.current)],
  );
}

/**
 * The workspace's data keys and hash key, opened (made if there are none), for callers that seal,
 * open and hash many values synchronously (privacy/pii-codec.ts). `reload` re-reads them (a key
 * rotated by another process).
 */
export async function workspaceKeys(
  db: Queryable,
  workspaceId: string,
  reload = false,
): Promise<{ current: { number: number; key: Buffer }; byNumber: ReadonlyMap<number, Buffer>; hashKey: Buffer }> {
  const current = await currentKey(db, workspaceId);
  let keys = await keysOf(db, workspaceId, reload);
  if (!keys.hashKey) {
    await storeHashKey(db, workspaceId); // a concurrent first store wins; both reload
    keys = await keysOf(db, workspaceId, true);
    if (!keys.hashKey) throw new Error(`The hash key of workspace ${workspaceId} could not be stored`);
  }
  return { current: reload ? keys.current ?? current : current, byNumber: keys.byNumber, hashKey: keys.hashKey };
}

/** Seals a value for storage (`purpose` names the column, e.g. 'quarantine.payload'). */
export async function sealText(db: Queryable, workspaceId: string, purpose: string, text: string): Promise<string> {
  return encryptText(await currentKey(db, workspaceId), workspaceId, purpose, text);
}

/** Opens a stored value; plain text written before encryption is returned as it is. */
export async function openText(db: Queryable, workspaceId: string, purpose: string, stored: string): Promise<string> {
  if (!isEncrypted(stored)) return stored;
  const number = tokenKeyNumber(stored);
  let key = (await keysOf(db, workspaceId)).byNumber.get(number);
  if (!key) key = (await keysOf(db, workspaceId, true)).byNumber.get(number); // rotated by another process
  if (!key) throw new Error(`Data key ${number} of workspace ${workspaceId} is missing`);
  return decryptText(key, workspaceId, purpose, stored);
}

const LOOKUP_SETTING = 'privacy_lookup_key';
/** Sealed like a workspace hash key, bound to this name instead of a workspace id (ids are UUIDs). */
const LOOKUP_KEY_OWNER = 'instance lookup hashes';
const lookupKeys = new WeakMap<object, Promise<Buffer>>();

interface StoredLookupKey {
  sealed: string;
  masterKeyId: string;
}

async function storedLookupKey(db: Queryable): Promise<StoredLookupKey | undefined> {
  const { rows } = await db.query<{ value: StoredLookupKey }>('select value from instance_settings where key = $1', [LOOKUP_SETTING]);
  return rows[0]?.value;
}

function sealedLookupKey(master: Buffer, key: Buffer): StoredLookupKey {
  return { sealed: sealHashKey(master, LOOKUP_KEY_OWNER, key).toString('base64'), masterKeyId: masterKeyId(master) };
}

async function loadLookupKey(db: Queryable): Promise<Buffer> {
  const master = await masterKeysOf(db);
  let stored = await storedLookupKey(db);
  if (!stored) {
    // First use: the privacy key as configured now, which is what every existing lookup hash was made with.
    await db.query('insert into instance_settings (key, value) values ($1, $2::jsonb) on conflict (key) do nothing', [
      LOOKUP_SETTING,
      JSON.stringify(sealedLookupKey(master.current, await privacyKey(db))),
    ]);
    stored = (await storedLookupKey(db))!;
  }
  return openHashKey(masterKeyById(master, stored.masterKeyId, 'The instance lookup key'), LOOKUP_KEY_OWNER, Buffer.from(stored.sealed, 'base64'));
}

/**
 * The key of the instance's lookup hashes that cannot be made again because their values are gone:
 * the suppression list, erasure request subjects, audit parameters, the quarantine subject index.
 * It is the privacy key (TOUCHPOINT_PRIVACY_KEY / _FILE / generated) as it was at first use, kept
 * sealed by the master key (re-sealed by rotate-master-key), so the privacy key can later be
 * changed or removed without erased people's identifiers slipping past the suppression list.
 */
export function lookupHashKey(db: Queryable): Promise<Buffer> {
  let key = lookupKeys.get(db);
  if (!key) {
    key = loadLookupKey(db);
    key.catch(() => lookupKeys.delete(db));
    lookupKeys.set(db, key);
  }
  return key;
}

/**
 * Re-seals every data key and hash key under the current master key (those sealed by a previous
 * one, or all with `all`); pending hash keys are sealed first. Values and tokens are not touched.
 */
export async function rotateMasterKey(
  db: Queryable,
  options: { all?: boolean } = {},
): Promise<{ resealed: number; hashKeysResealed: number; hashKeysSealed: number; masterKeyId: string }> {
  const master = await masterKeysOf(db);
  const currentId = masterKeyId(master.current);
  const { rows } = await db.query<{ workspace_id: string; number: number; sealed: Buffer; master_key_id: string }>(
    `select workspace_id, number, sealed, master_key_id from workspace_data_keys where $1 or master_key_id <> $2`,
    [options.all === true, currentId],
  );
  for (const row of rows) {
    const key = openWithAny(master, row);
    await db.query(`update workspace_data_keys set sealed = $3, master_key_id = $4, resealed_at = now() where workspace_id = $1 and number = $2`, [
      row.workspace_id,
      row.number,
      sealDataKey(master.current, row.workspace_id, row.number, key),
      currentId,
    ]);
  }
  const hashKeysSealed = await sealPendingHashKeys(db);
  const hashRows = await db.query<SealedHashKeyRow>(
    'select workspace_id, sealed, master_key_id from workspace_hash_keys where sealed is not null and ($1 or master_key_id <> $2)',
    [options.all === true, currentId],
  );
  for (const row of hashRows.rows) {
    const key = openHashKeyWithAny(master, row);
    await db.query('update workspace_hash_keys set sealed = $2, master_key_id = $3, resealed_at = now() where workspace_id = $1', [
      row.workspace_id,
      sealHashKey(master.current, row.workspace_id, key),
      currentId,
    ]);
  }
  const lookup = await storedLookupKey(db);
  if (lookup && (options.all === true || lookup.masterKeyId !== currentId)) {
    const key = openHashKey(masterKeyById(master, lookup.masterKeyId, 'The instance lookup key'), LOOKUP_KEY_OWNER, Buffer.from(lookup.sealed, 'base64'));
    await db.query('update instance_settings set value = $2::jsonb where key = $1', [LOOKUP_SETTING, JSON.stringify(sealedLookupKey(master.current, key))]);
  }
  return { resealed: rows.length, hashKeysResealed: hashRows.rows.length, hashKeysSealed, masterKeyId: currentId };
}

/** Forgets cached keys, as a restart would (tests that change TOUCHPOINT_MASTER_KEY or _PRIVACY_KEY between steps). */
export function forgetKeys(db: Queryable): void {
  masters.delete(db);
  workspaceKeyCache.delete(db);
  lookupKeys.delete(db);
  forgetPrivacyKey(db);
}
