import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COUNT_QUEUED_EVENTS, CUT_GONE_FROM_IDENTITY_QUEUE, TAKE_QUEUED_EVENTS } from '../src/identity/queue-take.ts';
import { workspacesWithQueuedEvents } from '../src/identity/resolver.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';

describe('workspacesWithQueuedEvents', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase();
  });
  afterAll(async () => t.drop());

  it('lists each workspace with queued events once, and none when the queue is empty', async () => {
    expect(await workspacesWithQueuedEvents(t.db)).toEqual([]);
    const ids = ['00000000-0000-4000-8000-000000000003', '00000000-0000-4000-8000-000000000001', '00000000-0000-4000-8000-000000000002'];
    await t.db.query(
      `insert into identity_queue (workspace_id, seq, events, seqs, timestamps)
       select w, s, 1, array[s::bigint], array[now()] from unnest($1::uuid[]) as w, generate_series(1, 50) as s`,
      [ids],
    );
    expect(await workspacesWithQueuedEvents(t.db)).toEqual([...ids].sort());
    expect(await workspacesWithQueuedEvents(t.db, 2)).toEqual([...ids].sort().slice(0, 2));
  });
});

describe('identity queue rows of a request each', () => {
  let t: TestDatabase;
  let ws = '00000000-0000-4000-8000-0000000000aa';
  beforeAll(async () => {
    t = await createTestDatabase();
  });
  afterAll(async () => t.drop());

  /** Queues rows of seqs (each row ascending, as ingest writes them), every event at a time of its seq. */
  async function queue(rows: number[][]) {
    for (const seqs of rows) {
      const sorted = [...seqs].sort((a, b) => a - b);
      await t.db.query(
        `insert into identity_queue (workspace_id, seq, events, seqs, timestamps)
         values ($1, $2, $3, $4::bigint[], array(select to_timestamp(s) from unnest($4::bigint[]) as s))`,
        [ws, sorted[0], sorted.length, sorted],
      );
    }
  }
  async function queuedRows() {
    const { rows } = await t.db.query<{ seq: number; events: number; seqs: number[]; times: number[] }>(
      `select seq, events, seqs, array(select extract(epoch from x)::int from unnest(timestamps) as x) as times
         from identity_queue where workspace_id = $1 order by seq`,
      [ws],
    );
    return rows.map((row) => ({ ...row, seqs: row.seqs.map(Number), seq: Number(row.seq) }));
  }
  async function take(n: number): Promise<number[]> {
    const { rows } = await t.db.query<{ seq: string; timestamp: string }>(TAKE_QUEUED_EVENTS, [ws, n]);
    // Each event comes with its own time.
    for (const row of rows) expect(Date.parse(row.timestamp) / 1000).toBe(Number(row.seq));
    return rows.map((row) => Number(row.seq));
  }

  it('takes the queue in seq order, n events at a time, across rows whose seqs interleave', async () => {
    // Deterministic pseudo-random interleaving: 40 requests of 1–30 events drawing from one sequence.
    let state = 7;
    const random = () => (state = (state * 1103515245 + 12345) % 2147483648) / 2147483648;
    const rows: number[][] = Array.from({ length: 40 }, () => []);
    const sizes = rows.map(() => 1 + Math.floor(random() * 30));
    let next = 1;
    while (rows.some((row, i) => row.length < sizes[i]!)) {
      const open = rows.map((row, i) => (row.length < sizes[i]! ? i : -1)).filter((i) => i >= 0);
      rows[open[Math.floor(random() * Math.min(open.length, 4))]!]!.push(next++);
    }
    await queue(rows);
    const all = rows.flat().sort((a, b) => a - b);
    const taken: number[] = [];
    for (const n of [1, 7, 50, 3, 100, 13]) {
      const batch = await take(n);
      expect(batch).toEqual(all.slice(taken.length, taken.length + n));
      taken.push(...batch);
      // What is left is every other event, in rows that keep the table's shape.
      const left = await queuedRows();
      expect(left.flatMap((row) => row.seqs).sort((a, b) => a - b)).toEqual(all.slice(taken.length));
      for (const row of left) {
        expect(row.seqs).toEqual([...row.seqs].sort((a, b) => a - b));
        expect(row.seq).toBe(row.seqs[0]);
        expect(row.times).toEqual(row.seqs);
      }
    }
    while (taken.length < all.length) taken.push(...(await take(64)));
    expect(taken).toEqual(all);
    expect(await take(10)).toEqual([]);
    expect(await queuedRows()).toEqual([]);
  });

  it('cuts deleted events out of the rows holding them, and drops rows left empty', async () => {
    ws = '00000000-0000-4000-8000-0000000000bb';
    await queue([[1, 4, 9], [2, 3], [5, 6, 7], [8]]);
    await t.db.query(`with gone as (select unnest($2::bigint[]) as seq), ${CUT_GONE_FROM_IDENTITY_QUEUE} select 1`, [ws, [1, 2, 3, 7]]);
    expect((await queuedRows()).map((row) => [row.seq, row.events, row.seqs, row.times])).toEqual([
      [4, 2, [4, 9], [4, 9]],
      [5, 2, [5, 6], [5, 6]],
      [8, 1, [8], [8]],
    ]);
    const { rows } = await t.db.query(COUNT_QUEUED_EVENTS, [ws]);
    expect(rows).toEqual([{ pending: 5 }]);
    expect(await take(100)).toEqual([4, 5, 6, 8, 9]);
  });
});
