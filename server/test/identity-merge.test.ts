import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mergeProfiles } from '../src/identity/merge.ts';
import { resolveQueuedEvents } from '../src/identity/resolver.ts';
import { unmergeIdentifier } from '../src/identity/unmerge.ts';
import { openPii, piiCodec } from '../src/privacy/pii-codec.ts';
import { basicAuth, startTestApp, type TestApp } from './support/app.ts';

describe('merging whole profiles (matches, operators)', () => {
  let t: TestApp;
  const owner = async (type: string, value: string) =>
    (
      await t.db.query('select profile_id from profile_identifiers where workspace_id = $1 and type = $2 and value = $3 and unbound_at is null', [
        t.workspace.id,
        type,
        // PII identifiers are stored as keyed-hash tokens (privacy/pii-codec.ts).
        (await piiCodec(t.db, t.workspace.id)).identifiers.encode(type, value),
      ])
    ).rows[0]?.profile_id as string;

  beforeAll(async () => {
    t = await startTestApp();
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/batch',
      headers: { authorization: basicAuth(t.writeKey) },
      payload: {
        batch: [
          { type: 'identify', userId: 'u-1', traits: { visits: 2, name: 'Zhang San' }, messageId: 'm1', timestamp: '2026-01-01T00:00:00Z' },
          { type: 'identify', anonymousId: 'crm-7', traits: { email: 'zs@x.cn', name: 'ZHANG San' }, messageId: 'm2', timestamp: '2026-01-02T00:00:00Z' },
          { type: 'identify', userId: 'u-2', messageId: 'm3', timestamp: '2026-01-03T00:00:00Z' },
        ],
      },
    });
    expect(res.json().accepted).toBe(3);
    while ((await resolveQueuedEvents(t.db, t.workspace.id)) > 0);
  });
  afterAll(async () => t.close());

  it('moves identifiers, events and traits to the survivor and logs the score', async () => {
    const a = await owner('user_id', 'u-1');
    const b = await owner('email', 'zs@x.cn');
    expect(a).not.toBe(b);
    const result = await mergeProfiles(t.db, t.workspace.id, [b, a], { kind: 'match', score: 12.5 });
    expect(result.survivorId).toBe(a); // the profile with the user id survives
    expect(await owner('email', 'zs@x.cn')).toBe(a);
    const { rows: events } = await t.db.query('select message_id from events where workspace_id = $1 and profile_id = $2 order by timestamp', [t.workspace.id, a]);
    expect(events.map((e) => e.message_id)).toEqual(['m1', 'm2']);
    const { rows: stored } = await t.db.query('select key, value from profile_traits where workspace_id = $1 and profile_id = $2 order by key', [t.workspace.id, a]);
    const traits = await openPii(t.db, t.workspace.id, stored);
    expect(traits).toEqual([
      { key: 'email', value: 'zs@x.cn' },
      { key: 'name', value: 'ZHANG San' },
      { key: 'visits', value: 2 },
    ]);
    const { rows: log } = await t.db.query('select kind, score, absorbed_ids from identity_merges where workspace_id = $1 and id = $2', [t.workspace.id, result.mergeId]);
    expect(log).toEqual([{ kind: 'match', score: 12.5, absorbed_ids: [b] }]);
    // The absorbed id still resolves to the survivor.
    const { rows: absorbed } = await t.db.query('select merged_into from profiles where workspace_id = $1 and id = $2', [t.workspace.id, b]);
    expect(absorbed[0].merged_into).toBe(a);
  });

  it('refuses a merge that would put two user ids on one profile', async () => {
    await expect(mergeProfiles(t.db, t.workspace.id, [await owner('user_id', 'u-1'), await owner('user_id', 'u-2')], { kind: 'manual' })).rejects.toThrow(
      /2 user_id values \(limit 1\)/,
    );
  });

  it('refuses to re-join profiles an operator split', async () => {
    const a = await owner('user_id', 'u-1');
    const split = await unmergeIdentifier(t.db, t.workspace.id, a, { type: 'email', value: 'zs@x.cn' });
    await expect(mergeProfiles(t.db, t.workspace.id, [a, split.newProfileId], { kind: 'manual' })).rejects.toThrow(/split by an operator/);
  });
});
