import { expect } from 'vitest';
import { resolveQueuedEvents } from '../src/identity/resolver.ts';
import { basicAuth, type TestApp } from './support/app.ts';

/*
 * What the digest tests (segments-digests, segments-digest-appends) share: events collected as
 * a client sends them and resolved at once, and the profile an identifier's events went to.
 */

/** Posts `batch` to /v1/batch (every item must be accepted) and resolves the workspace's queue. */
export async function sendResolved(t: TestApp, batch: object[]): Promise<void> {
  const res = await t.app.inject({ method: 'POST', url: '/v1/batch', headers: { authorization: basicAuth(t.writeKey) }, payload: { batch } });
  expect(res.json()).toMatchObject({ rejected: [] });
  while ((await resolveQueuedEvents(t.db, t.workspace.id)) > 0);
}

/** The profile the events of a user id or anonymous id were given. */
export async function ownerOf(t: TestApp, id: string): Promise<string> {
  const { rows } = await t.db.query<{ profile_id: string }>(
    `select profile_id from events where workspace_id = $1 and (user_id = $2 or anonymous_id = $2) and profile_id is not null limit 1`,
    [t.workspace.id, id],
  );
  return rows[0]!.profile_id;
}
