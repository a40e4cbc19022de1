import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { settledSequence } from '../src/storage/settle.ts';
import { assignTransactionId } from '../src/storage/database.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';

/*
 * The intake reads events only up to a "settled" seq: one no running writer can still commit
 * below. A writer takes its transaction id before drawing seqs (ingest's store and system
 * events do), and the reader reads the sequence before it takes the snapshot it waits on.
 */
describe('the settled position of events_seq', () => {
  let database: TestDatabase;
  beforeAll(async () => {
    database = await createTestDatabase();
  });
  afterAll(async () => database.drop());

  it('is held back while a writer that drew a seq is open, and covers it once the writer commits', async () => {
    const writer = await database.db.connect();
    try {
      await writer.query('begin');
      await assignTransactionId(writer);
      const { rows } = await writer.query<{ seq: string }>(`select nextval('events_seq')::text as seq`);
      const seq = Number(rows[0]!.seq);
      // Open writer: never settled at or past its seq.
      const during = await settledSequence(database.db, `'events_seq'::regclass`, 300);
      expect({ during, seq, ok: during === null || Number(during) < seq }).toMatchObject({ ok: true });
      await writer.query('commit');
      // Other test files' transactions on the same server can hold the settle back for a while.
      let after: number | null = null;
      for (let attempt = 0; attempt < 20 && after === null; attempt++) after = await settledSequence(database.db, `'events_seq'::regclass`, 5_000);
      expect(after).not.toBeNull();
      expect(Number(after)).toBeGreaterThanOrEqual(seq);
    } finally {
      writer.release();
    }
  });
});
