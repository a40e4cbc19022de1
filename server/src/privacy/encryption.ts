/**
 * Field-level encryption, pure (keys are passed in): AES-256-GCM with envelope keys.
 * - A workspace has data keys (32 random bytes); each is stored only sealed by the instance's
 *   master key (AES-256-GCM, the workspace id and key number as associated data, so a sealed key
 *   moved to another workspace or number does not open).
 * - A value is sealed by the workspace's current data key into a self-describing text token
 *   `tpe1.<key number>.<iv>.<ciphertext+tag>` (base64url), with the workspace id and a purpose
 *   (e.g. 'quarantine.payload') as associated data.
 * - Lookups never decrypt: they go through keyed hashes. PII tokens (privacy/pii-codec.ts) use a
 *   per-workspace hash key, stored sealed by the master key like the data keys, so no root key
 *   rotation changes a token; other lookup hashes use the instance privacy key (privacy/secret.ts).
 */
import crypto from 'node:crypto';

const PREFIX = 'tpe1';
const IV_BYTES = 12;
const TAG_BYTES = 16;

/** A short public name of a master key (first 8 bytes of its SHA-256), stored beside what it sealed. */
export function masterKeyId(masterKey: Buffer): string {
  return crypto.createHash('sha256').update(masterKey).digest('hex').slice(0, 16);
}

/**
 * Random IVs are cut from a pool of CSPRNG bytes, refilled 4 KiB at a time: `randomBytes(12)` per
 * value cost 7–10 µs on the 2-core AMD host (a job object per call), as much as the seal itself,
 * and ingest seals every PII field of every event, the resolver every new PII value. Same
 * generator, each byte handed out once, so IVs stay random and never repeat a slice.
 */
const IV_POOL_BYTES = IV_BYTES * 341;
let ivPool = Buffer.alloc(0);
let ivTaken = 0;

export function nextIv(): Buffer {
  if (ivTaken + IV_BYTES > ivPool.length) {
    ivPool = crypto.randomBytes(IV_POOL_BYTES);
    ivTaken = 0;
  }
  const iv = ivPool.subarray(ivTaken, ivTaken + IV_BYTES);
  ivTaken += IV_BYTES;
  return iv;
}

function gcmSeal(key: Buffer, plaintext: Buffer, aad: string): Buffer {
  const iv = nextIv();
  const cipher = crypto.createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(aad, 'utf8'));
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([iv, body, cipher.getAuthTag()]);
}

function gcmOpen(key: Buffer, sealed: Buffer, aad: string): Buffer {
  if (sealed.length < IV_BYTES + TAG_BYTES) throw new Error('sealed value is truncated');
  const iv = sealed.subarray(0, IV_BYTES);
  const tag = sealed.subarray(sealed.length - TAG_BYTES);
  const decipher = crypto.createDecipheriv('aes-256-gcm', key, iv);
  decipher.setAAD(Buffer.from(aad, 'utf8'));
  decipher.setAuthTag(tag);
  return Buffer.concat([decipher.update(sealed.subarray(IV_BYTES, sealed.length - TAG_BYTES)), decipher.final()]);
}

const dataKeyAad = (workspaceId: string, keyNumber: number) => `touchpoint data key\u0000${workspaceId}\u0000${keyNumber}`;

export function newDataKey(): Buffer {
  return crypto.randomBytes(32);
}

/** A data key sealed by the master key, for storage. */
export function sealDataKey(masterKey: Buffer, workspaceId: string, keyNumber: number, dataKey: Buffer): Buffer {
  return gcmSeal(masterKey, dataKey, dataKeyAad(workspaceId, keyNumber));
}

/** Opens a stored data key; throws if the master key is not the one that sealed it or the row was tampered with. */
export function openDataKey(masterKey: Buffer, workspaceId: string, keyNumber: number, sealed: Buffer): Buffer {
  return gcmOpen(masterKey, sealed, dataKeyAad(workspaceId, keyNumber));
}

const hashKeyAad = (workspaceId: string) => `touchpoint hash key\u0000${workspaceId}`;

export function newHashKey(): Buffer {
  return crypto.randomBytes(32);
}

/** A workspace hash key sealed by the master key (bound to the workspace; a sealed data key does not open as one). */
export function sealHashKey(masterKey: Buffer, workspaceId: string, hashKey: Buffer): Buffer {
  return gcmSeal(masterKey, hashKey, hashKeyAad(workspaceId));
}

export function openHashKey(masterKey: Buffer, workspaceId: string, sealed: Buffer): Buffer {
  return gcmOpen(masterKey, sealed, hashKeyAad(workspaceId));
}

/**
 * The hash key a workspace used before hash keys were stored: HMAC of the workspace id under the
 * instance privacy key. Workspaces that existed then store exactly this key (once), so their
 * tokens keep matching without a rewrite; afterwards the privacy key no longer matters to them.
 */
export function derivedHashKey(privacyKey: Buffer, workspaceId: string): Buffer {
  return crypto.createHmac('sha256', privacyKey).update(`touchpoint pii hash key\u0000${workspaceId}`).digest();
}

export const PII_TOKEN_PREFIX = 'tph1.';

/** The token of a JSON value (privacy/pii-codec.ts): `tph1.` + 192 bits of HMAC-SHA-256 of its JSON text. */
export function piiTokenOf(hashKey: Buffer, value: unknown): string {
  return PII_TOKEN_PREFIX + crypto.createHmac('sha256', hashKey).update(JSON.stringify(value)).digest('base64url').slice(0, 32);
}

/** The purpose a value's one sealed copy in pii_vault is bound to (its token). */
export const vaultPurpose = (token: string): string => `pii.vault\u0000${token}`;

const valueAad = (workspaceId: string, purpose: string) => `${workspaceId}\u0000${purpose}`;

/** Seals a text value with a workspace data key. */
export function encryptText(dataKey: { number: number; key: Buffer }, workspaceId: string, purpose: string, text: string): string {
  const sealed = gcmSeal(dataKey.key, Buffer.from(text, 'utf8'), valueAad(workspaceId, purpose));
  return `${PREFIX}.${dataKey.number}.${sealed.toString('base64url')}`;
}

/** Whether a stored text is a sealed token (rows written before encryption stay plain). */
export function isEncrypted(text: string): boolean {
  return text.startsWith(`${PREFIX}.`);
}

/** The data key number a token was sealed with. */
export function tokenKeyNumber(token: string): number {
  const [prefix, number] = token.split('.', 3);
  if (prefix !== PREFIX || !number || !/^\d+$/.test(number)) throw new Error('not an encrypted value');
  return Number(number);
}

/** Opens a token sealed by `encryptText` with the same workspace and purpose. */
export function decryptText(dataKey: Buffer, workspaceId: string, purpose: string, token: string): string {
  const body = token.slice(token.indexOf('.', PREFIX.length + 1) + 1);
  return gcmOpen(dataKey, Buffer.from(body, 'base64url'), valueAad(workspaceId, purpose)).toString('utf8');
}
