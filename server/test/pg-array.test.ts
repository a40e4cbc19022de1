/**
 * Array literals built by storage/pg-array.ts must read back in PostgreSQL as the same arrays `pg`
 * itself sends.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { plainArray, textArray } from '../src/storage/pg-array.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';

let t: TestDatabase;
beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(async () => {
  await t.drop();
});

describe('array literals', () => {
  it('text values with quotes, backslashes, commas, braces, spaces, NULL-looking text and nulls read back unchanged', async () => {
    const values = ['plain', 'a"b', 'back\\slash', 'x,y', '{brace}', ' spaced ', 'NULL', 'null', '', 'ünï©ødé', '\\"', null, '{"k":"v\\"w"}'];
    const { rows } = await t.db.query<{ ours: Array<string | null>; theirs: Array<string | null> }>(
      'select $1::text[] as ours, $2::text[] as theirs',
      [textArray(values), values],
    );
    expect(rows[0]!.ours).toEqual(values);
    expect(rows[0]!.theirs).toEqual(values);
  });

  it('uuids, integers, ISO times and nulls read back as the same values', async () => {
    const ids = ['6f1c1a58-4a52-4c39-9d2e-9d7c0ad2b1e1', null, '00000000-0000-0000-0000-000000000000'];
    // ISO times as toISOString and as PostgreSQL's to_json write them (the resolver passes both).
    const times = ['2026-12-07T14:55:23.123Z', '1999-01-01T00:00:00.000Z', '2026-12-07T15:55:23.123+01:00'];
    const seqs = [1, 9007199254740991, 0];
    const { rows } = await t.db.query<{ ids: Array<string | null>; times: Date[]; seqs: number[] }>(
      'select $1::uuid[] as ids, $2::timestamptz[] as times, $3::bigint[] as seqs',
      [plainArray(ids), plainArray(times), plainArray(seqs)],
    );
    expect(rows[0]!.ids).toEqual(ids);
    expect(rows[0]!.times.map((d) => d.toISOString())).toEqual(['2026-12-07T14:55:23.123Z', '1999-01-01T00:00:00.000Z', '2026-12-07T14:55:23.123Z']);
    expect(rows[0]!.seqs.map(Number)).toEqual(seqs);
    expect(plainArray([])).toBe('{}');
  });

  it('plainArray refuses values that would need quoting', () => {
    expect(() => plainArray(['a b'])).toThrow(/not a plain array element/);
    expect(() => plainArray(['a,b'])).toThrow(/not a plain array element/);
    expect(() => plainArray(['NULL'])).toThrow(/not a plain array element/);
    expect(() => plainArray([Number.NaN])).toThrow(/not a plain array element/);
    expect(() => textArray([1 as unknown as string])).toThrow(/not a string/);
  });
});
