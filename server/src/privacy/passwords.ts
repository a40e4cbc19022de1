import crypto from 'node:crypto';
import { promisify } from 'node:util';
import argon2, { type HashOptions } from 'argon2';

const scrypt = promisify(crypto.scrypt) as (password: string, salt: Buffer, keylen: number, options: crypto.ScryptOptions) => Promise<Buffer>;

/**
 * Argon2id at 64 MiB, 3 passes, 1 lane (above OWASP's minimum of 19 MiB × 2). Tests lower the
 * memory through the environment so the suite does not spend tens of milliseconds per login.
 */
const argon2Options = (): HashOptions & Required<Pick<HashOptions, 'memoryCost' | 'timeCost' | 'parallelism'>> => ({
  type: argon2.argon2id,
  memoryCost: Number(process.env.TOUCHPOINT_ARGON2_MEMORY_KIB ?? 64 * 1024),
  timeCost: 3,
  parallelism: 1,
});

/** A PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`): it carries its own cost, so the cost can rise without breaking old hashes. */
export async function hashPassword(password: string): Promise<string> {
  return argon2.hash(password, argon2Options());
}

/**
 * Checks a password against an argon2 hash or against a `scrypt$N$r$p$salt$hash` one written
 * before argon2 (those are upgraded at the next successful login: see passwordNeedsRehash).
 */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  if (stored.startsWith('$argon2')) {
    try {
      return await argon2.verify(stored, password);
    } catch {
      return false; // a malformed stored hash matches nothing
    }
  }
  return verifyScrypt(password, stored);
}

/** True when the hash is not argon2id at today's cost (a legacy scrypt hash, or one made before the cost setting changed). */
export function passwordNeedsRehash(stored: string): boolean {
  if (!stored.startsWith('$argon2id$')) return true;
  const { memoryCost, timeCost, parallelism } = argon2Options();
  try {
    return argon2.needsRehash(stored, { memoryCost, timeCost, parallelism });
  } catch {
    return true;
  }
}

async function verifyScrypt(password: string, stored: string): Promise<boolean> {
  const [scheme, n, r, p, salt, hash] = stored.split('$');
  if (scheme !== 'scrypt' || !n || !r || !p || !salt || !hash) return false;
  const expected = Buffer.from(hash, 'base64url');
  const N = Number(n);
  const R = Number(r);
  const candidate = await scrypt(password, Buffer.from(salt, 'base64url'), expected.length, { N, r: R, p: Number(p), maxmem: 256 * N * R });
  return crypto.timingSafeEqual(candidate, expected);
}

/** Passwords a dashboard accepts: long enough to resist guessing, short enough to bound hashing work. */
export function passwordProblem(password: string): string | undefined {
  if (password.length < 12) return 'must be at least 12 characters';
  if (password.length > 256) return 'must be at most 256 characters';
  return undefined;
}
