import { describe, expect, it } from 'vitest';
import { splitProfiles } from '../src/analytics/columnar/funnel.ts';

/*
 * The columnar funnel sorts candidate events by a 53-bit profile hash, then time and seq. Two
 * profiles with the same hash arrive interleaved in one group; the second hash of each row must
 * separate them again, each keeping its (time, seq) order, or their events would be matched as
 * one history.
 */
describe('splitProfiles (columnar funnel, colliding profile hashes)', () => {
  it('one profile: one list with every row, in order', () => {
    expect(splitProfiles([7, 7, 7, 7])).toEqual([[0, 1, 2, 3]]);
  });

  it('interleaved profiles: one list each, in order of first appearance, rows in their sorted order', () => {
    expect(splitProfiles([5, 9, 9, 5, 3, 9, 5])).toEqual([
      [0, 3, 6],
      [1, 2, 5],
      [4],
    ]);
  });
});
