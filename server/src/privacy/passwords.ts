import crypto from 'node:crypto';
import { promisify } from 'node:util';

const scrypt = promisify(crypto.scrypt) as (password: string, salt: Buffer, keylen: number, options: crypto.ScryptOptions) => Promise<Buffer>;

// OWASP's scrypt minimum (N=2^17, r=8, p=1) costs 128 MiB per hash; tests lower N through the
// environment so the suite does not spend seconds per login.
const cost = () => Number(process.env.TOUCHPOINT_SCRYPT_N ?? 2 ** 17);
const BLOCK = 8;
const PARALLEL = 1;
const KEY_LENGTH = 32;

/** A self-describing scrypt hash: `scrypt$N$r$p$salt$hash`, so the cost can rise without breaking old hashes. */
export async function hashPassword(password: string): Promise<string> {
  const salt = crypto.randomBytes(16);
  const N = cost();
  const hash = await scrypt(password, salt, KEY_LENGTH, { N, r: BLOCK, p: PARALLEL, maxmem: 256 * N * BLOCK });
  return ['scrypt', N, BLOCK, PARALLEL, salt.toString('base64url'), hash.toString('base64url')].join('$');
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
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
