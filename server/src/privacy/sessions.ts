import crypto from 'node:crypto';
import type { Queryable } from '../storage/database.ts';

export const SESSION_COOKIE = 'tp_session';
export const CSRF_HEADER = 'x-csrf-token';
/** Idle sessions end after this; every request moves the end on (at most once a minute). */
export const SESSION_IDLE_MS = 12 * 3600 * 1000;

const sha256 = (value: string) => crypto.createHash('sha256').update(value).digest();

export interface SessionUser {
  userId: string;
  email: string;
  name: string;
  superuser: boolean;
  tokenHash: Buffer;
  csrfHash: Buffer;
}

/** A new session: the cookie value and the CSRF token are returned once and kept only as hashes. */
export async function createSession(
  db: Queryable,
  userId: string,
  from: { ip: string; userAgent: string | undefined },
): Promise<{ token: string; csrfToken: string; expiresAt: Date }> {
  const token = crypto.randomBytes(32).toString('base64url');
  const csrfToken = crypto.randomBytes(24).toString('base64url');
  const expiresAt = new Date(Date.now() + SESSION_IDLE_MS);
  await db.query(
    `insert into user_sessions (token_hash, user_id, csrf_hash, ip, user_agent, expires_at) values ($1, $2, $3, $4, $5, $6)`,
    [sha256(token), userId, sha256(csrfToken), from.ip, from.userAgent?.slice(0, 300) ?? null, expiresAt],
  );
  return { token, csrfToken, expiresAt };
}

/** The active user behind a session cookie, or null when unknown, expired, or the user is disabled. */
export async function resolveSession(db: Queryable, token: string): Promise<SessionUser | null> {
  const tokenHash = sha256(token);
  const { rows } = await db.query<{ id: string; email: string; name: string; is_superuser: boolean; csrf_hash: Buffer; last_seen_at: Date }>(
    `select u.id, u.email, u.name, u.is_superuser, s.csrf_hash, s.last_seen_at
       from user_sessions s join users u on u.id = s.user_id
      where s.token_hash = $1 and s.expires_at > now() and u.status = 'active'`,
    [tokenHash],
  );
  const row = rows[0];
  if (!row) return null;
  if (Date.now() - row.last_seen_at.getTime() > 60_000) {
    await db.query(`update user_sessions set last_seen_at = now(), expires_at = now() + make_interval(secs => $2) where token_hash = $1`, [
      tokenHash,
      SESSION_IDLE_MS / 1000,
    ]);
  }
  return { userId: row.id, email: row.email, name: row.name, superuser: row.is_superuser, tokenHash, csrfHash: row.csrf_hash };
}

export function csrfMatches(presented: string | undefined, expectedHash: Buffer): boolean {
  if (!presented) return false;
  const candidate = sha256(presented);
  return candidate.length === expectedHash.length && crypto.timingSafeEqual(candidate, expectedHash);
}

export async function endSession(db: Queryable, tokenHash: Buffer): Promise<void> {
  await db.query('delete from user_sessions where token_hash = $1', [tokenHash]);
}

export async function endUserSessions(db: Queryable, userId: string): Promise<void> {
  await db.query('delete from user_sessions where user_id = $1', [userId]);
}

export function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const index = part.indexOf('=');
    if (index === -1) continue;
    if (part.slice(0, index).trim() === name) return decodeURIComponent(part.slice(index + 1).trim()) || undefined;
  }
  return undefined;
}

/** HttpOnly so scripts cannot read it, SameSite=Strict against cross-site requests, Secure for HTTPS only. */
export function sessionCookie(token: string, maxAgeSeconds: number): string {
  return `${SESSION_COOKIE}=${token}; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=${maxAgeSeconds}`;
}
