import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { basicAuth, startTestApp, type TestApp } from './support/app.ts';

describe('arrival order inside one batch', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(async () => t.close());

  it('numbers events (seq) in the order the client sent them, not by messageId', async () => {
    const ids = ['m-z', 'm-b', 'm-y', 'm-a'];
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/batch',
      headers: { authorization: basicAuth(t.writeKey) },
      payload: { batch: ids.map((messageId, i) => ({ type: 'track', userId: 'u', event: `Step ${i}`, messageId })) },
    });
    expect(res.json().accepted).toBe(4);
    const { rows } = await t.db.query('select message_id from events where workspace_id = $1 order by seq', [t.workspace.id]);
    expect(rows.map((row) => row.message_id)).toEqual(ids);
    const { rows: queued } = await t.db.query(
      'select e.message_id from identity_queue q cross join unnest(q.seqs) with ordinality as s(seq, n) join events e on e.workspace_id = q.workspace_id and e.seq = s.seq where q.workspace_id = $1 order by q.seq, s.n',
      [t.workspace.id],
    );
    expect(queued.map((row) => row.message_id)).toEqual(ids);
  });
});
