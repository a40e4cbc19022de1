/**
 * Token buckets per key: `ratePerSecond` tokens refill continuously up to a burst of one
 * second's worth. Pure (the clock is passed in) so it is tested without waiting.
 */
export function createRateLimiter() {
  const buckets = new Map<string, { tokens: number; updatedAt: number }>();
  return {
    /** Takes `cost` tokens; returns 0 when allowed, otherwise the seconds to wait before retrying. */
    take(key: string, ratePerSecond: number, cost: number, nowMs: number): number {
      const capacity = Math.max(ratePerSecond, cost);
      // Per-IP buckets come and go: forget them all (a full bucket for everyone) rather than grow without bound.
      if (buckets.size >= 100_000 && !buckets.has(key)) buckets.clear();
      const bucket = buckets.get(key) ?? { tokens: capacity, updatedAt: nowMs };
      bucket.tokens = Math.min(capacity, bucket.tokens + ((nowMs - bucket.updatedAt) / 1000) * ratePerSecond);
      bucket.updatedAt = nowMs;
      buckets.set(key, bucket);
      if (bucket.tokens >= cost) {
        bucket.tokens -= cost;
        return 0;
      }
      return Math.max(1, Math.ceil((cost - bucket.tokens) / ratePerSecond));
    },
  };
}
export type RateLimiter = ReturnType<typeof createRateLimiter>;
