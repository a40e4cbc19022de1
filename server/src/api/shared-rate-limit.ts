import type { Queryable } from '../storage/database.ts';
import { createRateLimiter } from '../ingest/rate-limit.ts';

/**
 * Rate limits shared by every process on one database: each bucket may be used `limit` times per
 * one-second window (on the caller's clock), counted in `rate_limit_windows`.
 *
 * So that a request does not cost a round trip, a process reserves tokens in blocks (1, 2, 4, …
 * doubling within a window up to maxBlock(limit)) and spends them locally. The database never
 * hands out more than `limit` tokens per window, so the processes together never allow more than
 * the limit. Tokens a process reserved but does not use are lost for that window: with P
 * processes using one bucket, up to (P − 1) × maxBlock(limit) requests may be refused before the
 * limit is reached (about 1/16 of it per other process). Like any fixed window, a client can spend
 * a full window just before a boundary and another just after, as the token bucket's burst allowed.
 */
export interface SharedRateLimiter {
  /** Counts one request; 0 when allowed, otherwise the seconds to wait before retrying. */
  take(bucket: string, limit: number, nowMs: number): Promise<number>;
}

export interface SharedRateLimiterOptions {
  /** Called when the database cannot be reached; the process then limits on its own counts until it can. */
  onStorageError?: (error: unknown) => void;
}

/** The largest block one reservation asks for: a sixteenth of the limit, at most 64 tokens. */
export function maxBlock(limit: number): number {
  return Math.max(1, Math.min(64, Math.floor(limit / 16)));
}

export function windowOf(nowMs: number): number {
  return Math.floor(nowMs / 1000);
}

/** Seconds from now until the window after this one starts (at least 1, as Retry-After). */
export function secondsUntilNextWindow(window: number, nowMs: number): number {
  return Math.max(1, Math.ceil(((window + 1) * 1000 - nowMs) / 1000));
}

/** What a process holds of one bucket in one window. */
interface Lease {
  window: number;
  remaining: number;
  nextBlock: number;
  /** The database granted less than was asked: nothing is left in this window. */
  exhausted: boolean;
  /** One reservation at a time per bucket: concurrent requests wait for it instead of each asking. */
  pending?: Promise<void>;
}

const PRUNE_AT = 10_000;
const CLEANUP_EVERY_SECONDS = 60;
/** Windows kept behind the current one: room for processes whose clocks run a little behind. */
const KEEP_SECONDS = 10;

/** Reserves up to `want` tokens of the window; returns how many the database granted (0 when the limit is reached). */
export async function reserveTokens(db: Queryable, bucket: string, window: number, limit: number, want: number): Promise<number> {
  const { rows } = await db.query<{ last_grant: number }>(
    `insert into rate_limit_windows as w (bucket, window_start, count, last_grant)
       values ($1, $2, least($3::int, $4::int), least($3::int, $4::int))
     on conflict (bucket, window_start) do update set
       count = least($3::int, w.count + $4::int),
       last_grant = least($3::int, w.count + $4::int) - w.count
     returning last_grant`,
    [bucket, window, limit, want],
  );
  return rows[0]?.last_grant ?? 0;
}

export async function deleteOldWindows(db: Queryable, before: number): Promise<void> {
  await db.query('delete from rate_limit_windows where window_start < $1', [before]);
}

export function createSharedRateLimiter(db: Queryable, options: SharedRateLimiterOptions = {}): SharedRateLimiter {
  const leases = new Map<string, Lease>();
  const fallback = createRateLimiter();
  let lastCleanup = 0;
  let prunedInWindow = -1;

  const leaseFor = (bucket: string, window: number): Lease => {
    const held = leases.get(bucket);
    // A request that waited past a window boundary counts against the newer window (never an older one).
    if (held && held.window >= window) return held;
    // Leases of past windows are worthless; sweep them once a window when there are many (a flood
    // from many addresses), not on every new bucket.
    if (leases.size >= PRUNE_AT && window !== prunedInWindow) {
      prunedInWindow = window;
      for (const [key, lease] of leases) if (lease.window < window && !lease.pending) leases.delete(key);
    }
    const fresh: Lease = { window, remaining: 0, nextBlock: 1, exhausted: false };
    leases.set(bucket, fresh);
    return fresh;
  };

  const reserve = async (bucket: string, lease: Lease, limit: number): Promise<void> => {
    if (lease.window - lastCleanup >= CLEANUP_EVERY_SECONDS) {
      lastCleanup = lease.window;
      await deleteOldWindows(db, lease.window - KEEP_SECONDS);
    }
    const want = Math.min(lease.nextBlock, maxBlock(limit));
    const granted = await reserveTokens(db, bucket, lease.window, limit, want);
    lease.remaining += granted;
    if (granted < want) lease.exhausted = true;
    lease.nextBlock = Math.min(want * 2, maxBlock(limit));
  };

  return {
    async take(bucket, rate, nowMs) {
      const limit = Math.max(1, Math.floor(rate));
      const window = windowOf(nowMs);
      for (;;) {
        const lease = leaseFor(bucket, window);
        if (lease.remaining > 0) {
          lease.remaining--;
          return 0;
        }
        if (lease.exhausted) return secondsUntilNextWindow(lease.window, nowMs);
        lease.pending ??= reserve(bucket, lease, limit).finally(() => {
          lease.pending = undefined;
        });
        try {
          await lease.pending;
        } catch (error) {
          options.onStorageError?.(error);
          return fallback.take(bucket, limit, 1, nowMs);
        }
      }
    },
  };
}

/**
 * Token buckets shared by every process on one database, for limits where one request spends
 * several tokens (a source's events per second: a batch spends one per event). Same meaning as
 * ingest/rate-limit.ts's in-process bucket: `rate` tokens a second, a burst of one second's worth,
 * and a request bigger than that passes when the bucket is full (it empties the bucket; what it
 * spent beyond a second's worth is not owed afterwards, as a bucket cannot hold less than nothing).
 * Stored as the time the bucket would be full again (GCRA), so one upsert decides and spends
 * atomically: one round trip per request, only for buckets that have a limit.
 */
export interface SharedTokenBuckets {
  /** Spends `cost` tokens; 0 when allowed, otherwise the seconds to wait before retrying. */
  take(workspaceId: string, bucket: string, rate: number, cost: number, nowMs: number): Promise<number>;
}

export async function spendTokens(db: Queryable, workspaceId: string, bucket: string, rate: number, cost: number, nowMs: number): Promise<number> {
  const spendMs = (cost / rate) * 1000;
  // Allowed while the bucket, after spending, is at most one burst (a second, or the whole request) from full.
  const burstMs = Math.max(1000, spendMs);
  const { rows } = await db.query<{ full_at_ms: number }>(
    `insert into rate_limit_buckets as b (workspace_id, bucket, full_at_ms) values ($5, $1, $2::float8 + least($3::float8, 1000))
     on conflict (workspace_id, bucket) do update set full_at_ms = least(greatest(b.full_at_ms, $2::float8) + $3::float8, $2::float8 + 1000)
      where greatest(b.full_at_ms, $2::float8) + $3::float8 - $2::float8 <= $4::float8
     returning full_at_ms`,
    [bucket, nowMs, spendMs, burstMs, workspaceId],
  );
  if (rows.length > 0) return 0;
  const held = await db.query<{ full_at_ms: number }>('select full_at_ms from rate_limit_buckets where workspace_id = $1 and bucket = $2', [workspaceId, bucket]);
  const fullAt = held.rows[0]?.full_at_ms ?? nowMs;
  return Math.max(1, Math.ceil((Math.max(fullAt, nowMs) + spendMs - nowMs - burstMs) / 1000));
}

export function createSharedTokenBuckets(db: Queryable, options: SharedRateLimiterOptions = {}): SharedTokenBuckets {
  const fallback = createRateLimiter();
  return {
    async take(workspaceId, bucket, rate, cost, nowMs) {
      try {
        return await spendTokens(db, workspaceId, bucket, rate, cost, nowMs);
      } catch (error) {
        options.onStorageError?.(error);
        return fallback.take(`${workspaceId}:${bucket}`, rate, cost, nowMs);
      }
    },
  };
}
