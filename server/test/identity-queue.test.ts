import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
      `insert into identity_queue (workspace_id, seq, timestamp)
       select w, s, now() from unnest($1::uuid[]) as w, generate_series(1, 50) as s`,
      [ids],
    );
    expect(await workspacesWithQueuedEvents(t.db)).toEqual([...ids].sort());
    expect(await workspacesWithQueuedEvents(t.db, 2)).toEqual([...ids].sort().slice(0, 2));
  });
});
