/**
 * Array literals built by storage/pg-array.ts must read back in PostgreSQL as the same arrays `pg`
 * itself sends; the statement pipeline must keep order and report the first error.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { plainArray, textArray } from '../src/storage/pg-array.ts';
import { StatementPipeline } from '../src/storage/statement-pipeline.ts';
import { withTransaction } from '../src/storage/database.ts';
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
    const times = ['2026-12-07T14:55:23.123Z', '1999-01-01T00:00:00.000Z'];
    const seqs = [1, 9007199254740991, 0];
    const { rows } = await t.db.query<{ ids: Array<string | null>; times: Date[]; seqs: number[] }>(
      'select $1::uuid[] as ids, $2::timestamptz[] as times, $3::bigint[] as seqs',
      [plainArray(ids), plainArray(times), plainArray(seqs)],
    );
    expect(rows[0]!.ids).toEqual(ids);
    expect(rows[0]!.times.map((d) => d.toISOString())).toEqual(times);
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

describe('statement pipeline', () => {
  it('runs statements in the order sent', async () => {
    await t.db.query('create table pipeline_order (n int primary key, seen int)');
    await withTransaction(t.db, async (client) => {
      const pipe = new StatementPipeline(client);
      pipe.send('insert into pipeline_order values (1, 0)', []);
      pipe.send('update pipeline_order set seen = seen + 1 where n = $1', [1]);
      pipe.send('update pipeline_order set seen = seen * 10 where n = $1', [1]);
      await pipe.flush();
    });
    const { rows } = await t.db.query<{ seen: number }>('select seen from pipeline_order where n = 1');
    expect(rows[0]!.seen).toBe(10);
  });

  it('reports the first failing statement, not the aborted ones after it, and leaves no rejection unhandled', async () => {
    await t.db.query('create table pipeline_error (n int primary key)');
    const run = withTransaction(t.db, async (client) => {
      const pipe = new StatementPipeline(client);
      await pipe.run(async () => {
        pipe.send('insert into pipeline_error values (1)', []);
        pipe.send('insert into pipeline_error values (1)', []);
        pipe.send('insert into pipeline_error values (2)', []);
        // An awaited statement of the caller's own after the failure fails as "aborted".
        await client.query('select 1');
      });
    });
    await expect(run).rejects.toThrow(/duplicate key/);
    const { rows } = await t.db.query<{ count: number }>('select count(*)::int as count from pipeline_error');
    expect(rows[0]!.count).toBe(0);
  });
});
