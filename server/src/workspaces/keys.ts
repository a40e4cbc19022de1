import crypto from 'node:crypto';

export type KeyKind = 'write' | 'server' | 'admin';

const PREFIX: Record<KeyKind, string> = { write: 'tpw_', server: 'tps_', admin: 'tpa_' };

/** A new random key; the prefix tells a leaked key's kind at a glance (and to secret scanners). */
export function generateKey(kind: KeyKind): string {
  return PREFIX[kind] + crypto.randomBytes(24).toString('base64url');
}

export function hashKey(key: string): Buffer {
  return crypto.createHash('sha256').update(key).digest();
}

/** What may be shown of a key after creation: enough to recognise it, not to use it. */
export function keyPrefix(key: string): string {
  return key.slice(0, 10);
}

/** Constant-time comparison of a presented secret with a stored hash. */
export function keyMatches(presented: string, storedHash: Buffer): boolean {
  const candidate = hashKey(presented);
  return candidate.length === storedHash.length && crypto.timingSafeEqual(candidate, storedHash);
}
