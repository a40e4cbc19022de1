import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { drainCatalogueQueue, listCatalogueEvents } from '../src/catalogue/store.ts';
import { INSERT_EVENTS_AND_OBSERVATIONS } from '../src/ingest/store.ts';
import { basicAuth, startTestApp, type TestApp } from './support/app.ts';

/*
 * A batch of new events is stored by one autocommit statement (ingest/store.ts): messageIds,
 * identity queue, events and the catalogue's observations commit together. A batch holding a
 * messageId stored before is refused by that statement (ingest_expect_all_fresh) and stored by the
 * transactional path, which observes only what it stored: the catalogue counts each event once.
 */
describe('ingest stores a batch in one statement', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(async () => t.close());

  async function send(batch: unknown[]) {
    const res = await t.app.inject({ method: 'POST', url: '/v1/batch', headers: { authorization: basicAuth(t.writeKey) }, payload: { batch } });
    expect(res.statusCode).toBe(200);
    return res.json() as { accepted: number; duplicates: number; rejected: unknown[] };
  }
  const track = (messageId: string, event = 'Viewed') => ({ type: 'track', event, userId: 'u-1', messageId, timestamp: '2026-03-01T10:00:00Z' });
  /** Rows of each table written by ingest, with the transaction that wrote them. */
  async function written(ids: string[]) {
    const q = async (sql: string) => (await t.db.query<{ xmin: string; n: number }>(sql, [t.workspace.id, ids])).rows;
    return {
      events: await q('select xmin::text, count(*)::int as n from events where workspace_id = $1 and message_id = any($2) group by 1'),
      messageIds: await q('select xmin::text, count(*)::int as n from event_message_ids where workspace_id = $1 and message_id = any($2) group by 1'),
      queued: await q(
        'select q.xmin::text, count(*)::int as n from identity_queue q cross join unnest(q.seqs) as s(seq) join events e on e.workspace_id = q.workspace_id and e.seq = s.seq where q.workspace_id = $1 and e.message_id = any($2) group by 1',
      ),
    };
  }
  async function volume(event: string) {
    while ((await drainCatalogueQueue(t.db)).taken > 0);
    return (await listCatalogueEvents(t.db, t.workspace.id)).find((row) => row.name === event)?.volume ?? 0;
  }

  it('writes a batch of new events, their ids, queue rows and observations in one transaction', async () => {
    const ids = ['s1', 's2', 's3'];
    const { rows: before } = await t.db.query<{ n: number }>('select count(*)::int as n from catalogue_queue where workspace_id = $1', [t.workspace.id]);
    expect(await send(ids.map((id) => track(id, 'One statement')))).toMatchObject({ accepted: 3, duplicates: 0, rejected: [] });
    const rows = await written(ids);
    expect(rows.events).toHaveLength(1);
    expect(rows.events[0]!.n).toBe(3);
    const xid = rows.events[0]!.xmin;
    expect(rows.messageIds).toEqual([{ xmin: xid, n: 3 }]);
    expect(rows.queued).toEqual([{ xmin: xid, n: 3 }]);
    const { rows: observed } = await t.db.query<{ xmin: string; n: number }>(
      'select xmin::text, count(*)::int as n from catalogue_queue where workspace_id = $1 group by 1',
      [t.workspace.id],
    );
    // One catalogue row for the request, written by the same transaction.
    expect(before[0]!.n).toBe(0);
    expect(observed).toEqual([{ xmin: xid, n: 1 }]);
    expect(await volume('One statement')).toBe(3);
  });

  it('stores only the new events of a batch that repeats stored ones, and the catalogue counts each event once', async () => {
    expect(await send([track('r1', 'Retried'), track('r2', 'Retried')])).toMatchObject({ accepted: 2, duplicates: 0 });
    // A client's retry with one more event, and a batch stored before in full.
    expect(await send([track('r1', 'Retried'), track('r2', 'Retried'), track('r3', 'Retried')])).toMatchObject({ accepted: 1, duplicates: 2, rejected: [] });
    expect(await send([track('r1', 'Retried'), track('r3', 'Retried')])).toMatchObject({ accepted: 0, duplicates: 2, rejected: [] });
    const { rows } = await t.db.query<{ n: number }>("select count(*)::int as n from events where workspace_id = $1 and event = 'Retried'", [t.workspace.id]);
    expect(rows[0]!.n).toBe(3);
    const { rows: queued } = await t.db.query<{ n: number }>(
      "select count(*)::int as n from identity_queue q cross join unnest(q.seqs) as s(seq) join events e on e.workspace_id = q.workspace_id and e.seq = s.seq where q.workspace_id = $1 and e.event = 'Retried'",
      [t.workspace.id],
    );
    expect(queued[0]!.n).toBe(3);
    expect(await volume('Retried')).toBe(3);
  });

  it('takes its transaction id before drawing seqs (storage/settle.ts): a one-time filter on it gates the numbering', async () => {
    const { rows } = await t.db.query<{ 'QUERY PLAN': string }>(`explain (verbose, costs off) ${INSERT_EVENTS_AND_OBSERVATIONS}`, [
      t.workspace.id,
      t.source.id,
      '[]',
      '[]',
      0,
    ]);
    const plan = rows.map((row) => row['QUERY PLAN']);
    const incoming = plan.findIndex((line) => line.includes('CTE incoming'));
    const gate = plan.findIndex((line, i) => i > incoming && line.includes('One-Time Filter') && line.includes('IS NOT NULL'));
    const numbering = plan.findIndex((line, i) => i > incoming && line.includes("nextval('events_seq'"));
    const scan = plan.findIndex((line, i) => i > incoming && line.includes('Function Scan on pg_catalog.jsonb_to_recordset'));
    if (process.env.SHOW_PLAN) console.log(plan.join('\n'));
    expect(incoming).toBeGreaterThanOrEqual(0);
    // The gate sits on the node that produces incoming's rows, above the scan that numbers them.
    expect(gate).toBeGreaterThan(incoming);
    expect(scan).toBeGreaterThan(gate);
    expect(numbering).toBeGreaterThan(incoming);
  });
});
