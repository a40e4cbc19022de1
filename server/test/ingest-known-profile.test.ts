import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveQueuedEvents } from '../src/identity/resolver.ts';
import { basicAuth, startTestApp, type TestApp } from './support/app.ts';

/*
 * Ingest writes the profile that already owns an event's user id (else anonymous id) with the row;
 * identity resolution rewrites the event only where it resolves elsewhere. The final attribution
 * must be what resolution decides, whatever ingest guessed.
 */
describe('events of known people are stored on their profile', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(async () => t.close());

  async function send(batch: unknown[]) {
    const res = await t.app.inject({ method: 'POST', url: '/v1/batch', headers: { authorization: basicAuth(t.writeKey) }, payload: { batch } });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ accepted: batch.length, rejected: [] });
  }
  async function drain() {
    while ((await resolveQueuedEvents(t.db, t.workspace.id, 3)) > 0);
  }
  /** profile_id and row version (xmin) of each event, by messageId. */
  async function rows(): Promise<Record<string, { profile: string | null; version: string }>> {
    const { rows } = await t.db.query<{ message_id: string; profile_id: string | null; xmin: string }>(
      'select message_id, profile_id, xmin::text from events where workspace_id = $1',
      [t.workspace.id],
    );
    return Object.fromEntries(rows.map((row) => [row.message_id, { profile: row.profile_id, version: row.xmin }]));
  }
  const ownerOf = async (type: string, value: string) =>
    (
      await t.db.query<{ profile_id: string }>(
        'select profile_id from profile_identifiers where workspace_id = $1 and type = $2 and value = $3 and unbound_at is null',
        [t.workspace.id, type, value],
      )
    ).rows[0]?.profile_id;

  it('writes the known profile at insert, leaves those rows alone in resolution, and corrects the others', async () => {
    const at = (day: number) => `2026-02-0${day}T10:00:00Z`;
    await send([{ type: 'identify', userId: 'u-1', anonymousId: 'a-1', messageId: 'm1', timestamp: at(1) }]);
    const before = await rows();
    expect(before.m1!.profile).toBeNull(); // a new person: resolution decides
    await drain();
    const p = await ownerOf('user_id', 'u-1');
    expect(p).toBeDefined();
    expect((await rows()).m1!.profile).toBe(p);

    await send([
      { type: 'track', event: 'Viewed', userId: 'u-1', messageId: 'm2', timestamp: at(2) }, // known user id
      { type: 'track', event: 'Viewed', anonymousId: 'a-1', messageId: 'm3', timestamp: at(2) }, // known anonymous id
      { type: 'track', event: 'Viewed', anonymousId: 'a-2', messageId: 'm4', timestamp: at(2) }, // nobody yet
      // A second user id on a-1: resolution refuses to join it to u-1's profile and gives it its own.
      { type: 'track', event: 'Viewed', userId: 'u-2', anonymousId: 'a-1', messageId: 'm5', timestamp: at(3) },
    ]);
    const stored = await rows();
    expect([stored.m2!.profile, stored.m3!.profile, stored.m4!.profile, stored.m5!.profile]).toEqual([p, p, null, p]);
    await drain();
    const after = await rows();
    const q = await ownerOf('user_id', 'u-2');
    expect(q).toBeDefined();
    expect(q).not.toBe(p);
    expect([after.m2!.profile, after.m3!.profile, after.m5!.profile]).toEqual([p, p, q]);
    expect(after.m4!.profile).toBe(await ownerOf('anonymous_id', 'a-2'));
    // Rows stored on the profile resolution chose were not written again.
    expect(after.m2!.version).toBe(stored.m2!.version);
    expect(after.m3!.version).toBe(stored.m3!.version);
    expect(after.m5!.version).not.toBe(stored.m5!.version);

    // A merge: a-2's profile and u-1's meet in one event stored on u-1's profile (by its user id).
    const r = await ownerOf('anonymous_id', 'a-2');
    await send([{ type: 'track', event: 'Viewed', userId: 'u-1', anonymousId: 'a-2', messageId: 'm6', timestamp: at(4) }]);
    expect((await rows()).m6!.profile).toBe(p);
    await drain();
    const survivor = await ownerOf('user_id', 'u-1');
    expect(await ownerOf('anonymous_id', 'a-2')).toBe(survivor);
    const { rows: merged } = await t.db.query<{ merged_into: string | null }>('select merged_into from profiles where workspace_id = $1 and id = any($2::uuid[])', [
      t.workspace.id,
      [p, r],
    ]);
    expect(merged.filter((row) => row.merged_into === null)).toHaveLength(1);
    const final = await rows();
    for (const id of ['m1', 'm2', 'm3', 'm4', 'm6']) expect(final[id]!.profile).toBe(survivor);
    expect(final.m5!.profile).toBe(q);
    const { rows: unresolved } = await t.db.query<{ n: number }>('select coalesce(sum(events), 0)::int as n from identity_queue where workspace_id = $1', [t.workspace.id]);
    expect(unresolved[0]!.n).toBe(0);
  });

  it('creates a profile with first and last seen over all its events of the batch, merged ones included', async () => {
    await send([
      { type: 'track', event: 'Viewed', anonymousId: 'n-1', messageId: 'n1', timestamp: '2026-03-05T10:00:00Z' },
      { type: 'track', event: 'Viewed', anonymousId: 'n-1', messageId: 'n2', timestamp: '2026-03-02T10:00:00Z' },
      { type: 'track', event: 'Viewed', anonymousId: 'n-2', messageId: 'n3', timestamp: '2026-03-09T10:00:00Z' },
      // Joins n-2's new profile to n-1's in the same batch.
      { type: 'identify', userId: 'u-9', anonymousId: 'n-1', messageId: 'n4', timestamp: '2026-03-04T10:00:00Z' },
      { type: 'identify', userId: 'u-9', anonymousId: 'n-2', messageId: 'n5', timestamp: '2026-03-03T10:00:00Z' },
    ]);
    while ((await resolveQueuedEvents(t.db, t.workspace.id, 10)) > 0);
    const owner = await ownerOf('user_id', 'u-9');
    const { rows } = await t.db.query('select first_seen, last_seen, merged_into from profiles where workspace_id = $1 and id = $2', [t.workspace.id, owner]);
    expect(rows[0]).toEqual({ first_seen: new Date('2026-03-02T10:00:00Z'), last_seen: new Date('2026-03-09T10:00:00Z'), merged_into: null });
    expect(await ownerOf('anonymous_id', 'n-2')).toBe(owner);
  });
});
