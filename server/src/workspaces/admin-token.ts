import type { Queryable } from '../storage/database.ts';
import { generateKey, hashKey, keyMatches } from './keys.ts';

const SETTING = 'admin_token_sha256';

/**
 * The instance's admin token: TOUCHPOINT_ADMIN_TOKEN when set, otherwise one generated at first
 * start (returned so the caller can print it once) whose hash is kept in the database.
 */
export async function ensureAdminToken(
  db: Queryable,
  fromEnv: string | undefined,
): Promise<{ verify: (presented: string) => boolean; generated?: string }> {
  if (fromEnv) {
    const hash = hashKey(fromEnv);
    return { verify: (presented) => keyMatches(presented, hash) };
  }
  const existing = await db.query<{ value: string }>('select value from instance_settings where key = $1', [SETTING]);
  if (existing.rows[0]) {
    const hash = Buffer.from(existing.rows[0].value, 'hex');
    return { verify: (presented) => keyMatches(presented, hash) };
  }
  const token = generateKey('admin');
  const inserted = await db.query(
    `insert into instance_settings (key, value) values ($1, to_jsonb($2::text)) on conflict (key) do nothing`,
    [SETTING, hashKey(token).toString('hex')],
  );
  if (inserted.rowCount === 0) return ensureAdminToken(db, fromEnv); // another process won the race
  const hash = hashKey(token);
  return { verify: (presented) => keyMatches(presented, hash), generated: token };
}
