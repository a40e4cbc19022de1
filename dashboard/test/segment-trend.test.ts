import { describe, expect, it } from 'vitest';
import { sizeSeries, sparklinePoints } from '../src/segment-trend.ts';

describe('segment size trend (pure)', () => {
  const days = ['2026-03-01', '2026-03-02', '2026-03-03', '2026-03-04'];

  it('walks the size back from now through each day’s entries and exits', () => {
    // 10 members now; on the 2nd 5 entered and 1 left, on the 4th 2 entered.
    const counts = [
      { day: '2026-03-02', entered: 5, exited: 1 },
      { day: '2026-03-04', entered: 2, exited: 0 },
    ];
    expect(sizeSeries(10, 0, days, counts)).toEqual([4, 8, 8, 10]);
  });

  it('takes off what changed after the range before walking back', () => {
    // 3 more entered after the range ended: the last day ended with 7.
    expect(sizeSeries(10, 3, days, [{ day: '2026-03-04', entered: 2, exited: 0 }])).toEqual([5, 5, 5, 7]);
    expect(sizeSeries(2, 2, days, [])).toEqual([0, 0, 0, 0]);
  });

  it('never goes below zero (transitions older than the counts kept)', () => {
    expect(sizeSeries(1, 0, days, [{ day: '2026-03-03', entered: 4, exited: 0 }])).toEqual([0, 0, 1, 1]);
  });

  it('draws the largest value at the top and a flat series in the middle of nothing', () => {
    expect(sparklinePoints([0, 5, 10], 100, 20)).toBe('0,20 50,10 100,0');
    expect(sparklinePoints([3, 3], 100, 20)).toBe('0,20 100,20');
    expect(sparklinePoints([], 100, 20)).toBe('');
  });
});
