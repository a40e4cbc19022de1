import { describe, expect, it } from 'vitest';
import { encodeTraitFeatures, MAX_CATEGORY_COLUMNS } from '../src/models/trait-features.ts';

const traits = (entries: Record<string, Record<string, unknown>>) => new Map(Object.entries(entries).map(([id, t]) => [id, new Map(Object.entries(t))]));

describe('traits as model features', () => {
  it('reads numbers, numeric text and booleans as one numeric column, missing as the mean with an indicator', () => {
    const values = traits({ a: { points: 10, vip: true }, b: { points: '30', vip: false }, c: { vip: true } });
    const encoded = encodeTraitFeatures(['points', 'vip'], ['a', 'b', 'c'], values);
    expect(encoded.names).toEqual(['trait:points', 'trait:points:missing', 'trait:vip']);
    expect(encoded.rows).toEqual([
      [10, 0, 1],
      [30, 0, 0],
      [20, 1, 1],
    ]);
  });

  it('one-hot encodes other traits by their most frequent values, ties by value, the rest as zeros', () => {
    const cities = ['上海', '上海', '北京', '广州', '北京', '上海', ...Array.from({ length: 12 }, (_, i) => `city-${String(i).padStart(2, '0')}`)];
    const ids = cities.map((_, i) => `p${i}`);
    const values = traits(Object.fromEntries(cities.map((city, i) => [ids[i]!, { city }])));
    const encoded = encodeTraitFeatures(['city'], [...ids, 'unknown'], values);
    expect(encoded.names).toHaveLength(MAX_CATEGORY_COLUMNS + 1);
    expect(encoded.names.slice(0, 4)).toEqual(['trait:city=上海', 'trait:city=北京', 'trait:city=city-00', 'trait:city=city-01']);
    expect(encoded.names.at(-1)).toBe('trait:city:missing');
    expect(encoded.rows[0]!.slice(0, 2)).toEqual([1, 0]);
    expect(encoded.rows[2]!.slice(0, 2)).toEqual([0, 1]);
    // 广州 (once) lost its column to the earlier-named single values: all zeros but not missing.
    expect(encoded.rows[3]).toEqual(new Array(MAX_CATEGORY_COLUMNS + 1).fill(0));
    expect(encoded.rows.at(-1)!.at(-1)).toBe(1);
    // A mixed trait (a number and a word) is categorical, numbers named as JSON.
    const mixed = encodeTraitFeatures(['size'], ['a', 'b'], traits({ a: { size: 3 }, b: { size: 'large' } }));
    expect(mixed.names.sort()).toEqual(['trait:size=3', 'trait:size=large']);
  });

  it('leaves out a trait nobody has and keeps the profiles in the order given', () => {
    const encoded = encodeTraitFeatures(['none', 'tier'], ['b', 'a'], traits({ a: { tier: 'gold' }, b: { tier: 'silver' } }));
    expect(encoded.names).toEqual(['trait:tier=gold', 'trait:tier=silver']);
    expect(encoded.rows).toEqual([
      [0, 1],
      [1, 0],
    ]);
  });
});
