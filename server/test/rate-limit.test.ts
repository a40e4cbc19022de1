import { describe, expect, it } from 'vitest';
import { createRateLimiter } from '../src/ingest/rate-limit.ts';

describe('rate limiter (token bucket per source)', () => {
  it("allows a second's worth at once, then refuses with the seconds to wait", () => {
    const limiter = createRateLimiter();
    for (let i = 0; i < 10; i++) expect(limiter.take('s', 10, 1, 0)).toBe(0);
    expect(limiter.take('s', 10, 1, 0)).toBe(1);
    expect(limiter.take('s', 10, 1, 50)).toBe(1);
  });

  it('refills continuously at the rate', () => {
    const limiter = createRateLimiter();
    expect(limiter.take('s', 10, 10, 0)).toBe(0);
    // 200 ms later 2 tokens are back: 3 are refused (taking none), 2 are allowed.
    expect(limiter.take('s', 10, 3, 200)).toBe(1);
    expect(limiter.take('s', 10, 2, 200)).toBe(0);
    expect(limiter.take('s', 10, 1, 200)).toBe(1);
    expect(limiter.take('s', 10, 1, 300)).toBe(0);
  });

  it('does not bank more than one second of tokens', () => {
    const limiter = createRateLimiter();
    expect(limiter.take('s', 5, 5, 0)).toBe(0);
    // An hour idle still only allows a burst of 5.
    expect(limiter.take('s', 5, 5, 3_600_000)).toBe(0);
    expect(limiter.take('s', 5, 1, 3_600_000)).toBe(1);
  });

  it('lets a batch bigger than the rate through when the bucket has had time to fill, and says how long that takes', () => {
    const limiter = createRateLimiter();
    expect(limiter.take('s', 10, 10, 0)).toBe(0);
    // 25 events at 10/s: 2.5 s of refill needed from empty.
    expect(limiter.take('s', 10, 25, 0)).toBe(3);
    expect(limiter.take('s', 10, 25, 2_400)).toBe(1);
    expect(limiter.take('s', 10, 25, 2_500)).toBe(0);
  });

  it('keeps sources apart', () => {
    const limiter = createRateLimiter();
    expect(limiter.take('a', 1, 1, 0)).toBe(0);
    expect(limiter.take('a', 1, 1, 0)).toBe(1);
    expect(limiter.take('b', 1, 1, 0)).toBe(0);
  });
});
