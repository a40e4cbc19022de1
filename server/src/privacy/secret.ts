import crypto from 'node:crypto';
import fs from 'node:fs';
import type { Queryable } from '../storage/database.ts';

const SETTING = 'privacy_hmac_key';
const cache = new WeakMap<object, Promise<Buffer>>();

export function decodeKey(text: string, from: string): Buffer {
  const trimmed = text.trim();
  const key = /^[0-9a-f]{64,}$/i.test(trimmed) ? Buffer.from(trimmed, 'hex') : Buffer.from(trimmed, 'base64');
  if (key.length < 32) throw new RangeError(`${from} must hold at least 32 bytes (64 hex digits or base64)`);
  return key;
}

/**
 * The configured privacy key: TOUCHPOINT_PRIVACY_KEY (hex or base64), or the file named by
 * TOUCHPOINT_PRIVACY_KEY_FILE, or else one generated at first use and kept in instance_settings.
 * Keyed hashes do not use it directly: it seeds the stored lookup key (data-keys.ts
 * `lookupHashKey`) and the hash keys of workspaces from before hash keys were stored, at first use.
 */
export function privacyKey(db: Queryable): Promise<Buffer> {
  let key = cache.get(db);
  if (!key) {
    key = loadKey(db);
    key.catch(() => cache.delete(db));
    cache.set(db, key);
  }
  return key;
}

/** Forgets the cached privacy key (tests that change TOUCHPOINT_PRIVACY_KEY, as a restart would). */
export function forgetPrivacyKey(db: Queryable): void {
  cache.delete(db);
}

async function loadKey(db: Queryable): Promise<Buffer> {
  if (process.env.TOUCHPOINT_PRIVACY_KEY) return decodeKey(process.env.TOUCHPOINT_PRIVACY_KEY, 'TOUCHPOINT_PRIVACY_KEY');
  if (process.env.TOUCHPOINT_PRIVACY_KEY_FILE) {
    return decodeKey(fs.readFileSync(process.env.TOUCHPOINT_PRIVACY_KEY_FILE, 'utf8'), process.env.TOUCHPOINT_PRIVACY_KEY_FILE);
  }
  await db.query(`insert into instance_settings (key, value) values ($1, to_jsonb($2::text)) on conflict (key) do nothing`, [
    SETTING,
    crypto.randomBytes(32).toString('hex'),
  ]);
  const { rows } = await db.query<{ value: string }>('select value from instance_settings where key = $1', [SETTING]);
  return Buffer.from(rows[0]!.value, 'hex');
}

/** A keyed hash of a value within a workspace: equal inputs give equal hashes, nothing else can be read from it. */
export function keyedHash(key: Buffer, workspaceId: string | null, kind: string, value: string): Buffer {
  return crypto.createHmac('sha256', key).update(`${workspaceId ?? ''}\u0000${kind}\u0000${value}`).digest();
}
