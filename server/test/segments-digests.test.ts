import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mergeProfiles } from '../src/identity/merge.ts';
import { resolveQueuedEvents } from '../src/identity/resolver.ts';
import { unmergeIdentifier } from '../src/identity/unmerge.ts';
import { buildWorkspaceDigests, digestSpec, loadDigestEvents, type DigestSpec } from '../src/segments/digests.ts';
import { createSegment } from '../src/segments/lifecycle.ts';
import { drainSegmentQueue } from '../src/segments/realtime.ts';
import { conditionReads } from '../src/segments/snapshots.ts';
import { ownerOf, sendResolved } from './segments-digests-support.ts';
import { basicAuth, startTestApp, type TestApp } from './support/app.ts';

/*
 * The per-profile event digests (migration 0076, segments/digests.ts) against the truth, the
 * `events` table, after every kind of change that gives events a profile, moves them or removes
 * them: a digest that is served must hold exactly the profile's wanted events, and one that cannot
 * be trusted must be rebuilt (never served stale).
 */

const NOW = Date.parse('2026-03-31T00:00:00Z');
const DAY = 86_400_000;
const iso = (ms: number) => new Date(ms).toISOString();

describe('segment event digests', () => {
  let t: TestApp;
  const spec: DigestSpec = { kinds: ['page:*', 'track:Order Completed'], keys: ['revenue'] };

  const send = (batch: object[]) => sendResolved(t, batch);
  const owner = (id: string) => ownerOf(t, id);
  /** The profile's wanted events as `events` has them now, in the digest's terms. */
  const truth = async (profileId: string, keys = spec.keys) => {
    const { rows } = await t.db.query<{ type: string; event: string | null; name: string | null; ms: number; properties: Record<string, unknown> | null }>(
      `select type, event, name, floor(extract(epoch from timestamp) * 1000)::float8 as ms, properties from events
        where workspace_id = $1 and profile_id = $2 and segment_digest_wants($3::text[], type, event, name)`,
      [t.workspace.id, profileId, spec.kinds],
    );
    return rows
      .map((row) => {
        const properties = keys === null || row.properties === null ? row.properties : Object.fromEntries(Object.entries(row.properties).filter(([key]) => keys.includes(key)));
        return `${row.type}:${row.event ?? row.name}:${row.ms}:${JSON.stringify(properties && Object.keys(properties).length > 0 ? properties : null)}`;
      })
      .sort();
  };
  const served = async (profileId: string, using = spec) => {
    const result = await loadDigestEvents(t.db, t.workspace.id, [profileId], using);
    expect(result.unserved).toEqual([]);
    const events = (result.events.get(profileId) ?? []).map(
      (e) => `${e.type}:${e.event ?? e.name}:${e.timestamp}:${JSON.stringify(e.properties && Object.keys(e.properties).length > 0 ? e.properties : null)}`,
    );
    return { built: result.built, events: events.sort() };
  };
  const stored = async (profileId: string) =>
    (
      await t.db.query<{ complete: boolean; events: unknown[] | null }>('select complete, events from segment_event_digests where workspace_id = $1 and profile_id = $2', [
        t.workspace.id,
        profileId,
      ])
    ).rows[0];

  beforeAll(async () => {
    t = await startTestApp();
    await send([
      { type: 'identify', userId: 'u-1', traits: { email: 'a@x.cn' }, messageId: 'i1', timestamp: iso(NOW - 60 * DAY) },
      { type: 'track', event: 'Order Completed', userId: 'u-1', properties: { revenue: 5, sku: 'a' }, messageId: 'o1', timestamp: iso(NOW - 60 * DAY) },
      { type: 'track', event: 'Other', userId: 'u-1', properties: { revenue: 1 }, messageId: 'x1', timestamp: iso(NOW - DAY) },
      { type: 'page', name: 'Home', userId: 'u-1', messageId: 'p1', timestamp: iso(NOW - 2 * DAY) },
      { type: 'identify', anonymousId: 'anon-2', traits: { email: 'b@x.cn' }, messageId: 'i2', timestamp: iso(NOW - 50 * DAY) },
      { type: 'track', event: 'Order Completed', anonymousId: 'anon-2', properties: { revenue: 7 }, messageId: 'o2', timestamp: iso(NOW - 10 * DAY) },
    ]);
  });
  afterAll(async () => t.close());

  it('is built from events when missing, then served as stored', async () => {
    const profile = await owner('u-1');
    const first = await served(profile);
    expect(first.built).toBe(1);
    expect(first.events).toEqual(await truth(profile));
    expect(first.events).toEqual([`page:Home:${NOW - 2 * DAY}:null`, `track:Order Completed:${NOW - 60 * DAY}:{"revenue":5}`]);
    expect(await served(profile)).toEqual({ built: 0, events: first.events });
  });

  it('gets the events of a known person appended by ingest and resolution, without a rebuild', async () => {
    const profile = await owner('u-1');
    await served(profile);
    await send([
      { type: 'track', event: 'Order Completed', userId: 'u-1', properties: { revenue: 9 }, messageId: 'o3', timestamp: iso(NOW - DAY) },
      { type: 'track', event: 'Other', userId: 'u-1', messageId: 'x2', timestamp: iso(NOW - DAY) },
      // Anonymous first, then tied to u-1: resolution assigns the earlier event to the profile.
      { type: 'page', name: 'Cart', anonymousId: 'anon-1', messageId: 'p2', timestamp: iso(NOW - 3 * DAY) },
      { type: 'identify', userId: 'u-1', anonymousId: 'anon-1', messageId: 'i3', timestamp: iso(NOW - 3 * DAY + 1000) },
    ]);
    expect((await stored(profile))!.complete).toBe(true);
    const after = await served(profile);
    expect(after.built).toBe(0);
    expect(after.events).toEqual(await truth(profile));
    expect(after.events).toContain(`page:Cart:${NOW - 3 * DAY}:null`);
    expect(after.events).toContain(`track:Order Completed:${NOW - DAY}:{"revenue":9}`);
  });

  it('follows a merge (the survivor gets the events appended) and an unmerge (both sides rebuilt, right)', async () => {
    const survivor = await owner('u-1');
    const absorbed = await owner('anon-2');
    await served(survivor);
    expect((await served(absorbed)).events).toEqual(await truth(absorbed));
    await mergeProfiles(t.db, t.workspace.id, [survivor, absorbed], { kind: 'manual' });
    expect((await stored(absorbed))!).toMatchObject({ complete: false, events: null });
    const merged = await served(survivor);
    expect(merged.built).toBe(0);
    expect(merged.events).toEqual(await truth(survivor));
    expect(merged.events).toContain(`track:Order Completed:${NOW - 10 * DAY}:{"revenue":7}`);

    await unmergeIdentifier(t.db, t.workspace.id, survivor, { type: 'anonymous_id', value: 'anon-2' });
    const split = await owner('anon-2');
    expect(split).not.toBe(survivor);
    expect((await stored(survivor))!.complete).toBe(false);
    const kept = await served(survivor);
    expect(kept.built).toBe(1);
    expect(kept.events).toEqual(await truth(survivor));
    expect(kept.events).not.toContain(`track:Order Completed:${NOW - 10 * DAY}:{"revenue":7}`);
    expect((await served(split)).events).toEqual([`track:Order Completed:${NOW - 10 * DAY}:{"revenue":7}`]);
  });

  it('forgets deleted events (erasure, suppression, retention delete rows): the digest is emptied and rebuilt without them', async () => {
    const profile = await owner('u-1');
    await served(profile);
    // An event no digest holds (another name): the digest stays as it is.
    await t.db.query(`delete from events where workspace_id = $1 and message_id = 'x1'`, [t.workspace.id]);
    expect((await stored(profile))!.complete).toBe(true);
    expect(await served(profile)).toEqual({ built: 0, events: await truth(profile) });
    await t.db.query(`delete from events where workspace_id = $1 and message_id = 'o3'`, [t.workspace.id]);
    // Nothing of the deleted event stays behind in the store.
    expect((await stored(profile))!).toMatchObject({ complete: false, events: null });
    const after = await served(profile);
    expect(after.built).toBe(1);
    expect(after.events).toEqual(await truth(profile));
    expect(after.events).not.toContain(`track:Order Completed:${NOW - DAY}:{"revenue":9}`);
  });

  it('invalidates a profile whose events change in place (field encryption rewriting properties)', async () => {
    const profile = await owner('u-1');
    await served(profile);
    await t.db.query(`update events set properties = properties || '{"revenue": 6}' where workspace_id = $1 and message_id = 'o1'`, [t.workspace.id]);
    expect((await stored(profile))!.complete).toBe(false);
    const after = await served(profile);
    expect(after.events).toEqual(await truth(profile));
    expect(after.events).toContain(`track:Order Completed:${NOW - 60 * DAY}:{"revenue":6}`);
  });

  it('rebuilds every digest when the spec changes (other kinds or keys), never serving one of the old spec', async () => {
    const profile = await owner('u-1');
    await served(profile);
    const wider: DigestSpec = { kinds: [...spec.kinds, 'track:Other'], keys: null };
    const result = await loadDigestEvents(t.db, t.workspace.id, [profile], wider);
    expect(result.built).toBe(1);
    const events = result.events.get(profile)!;
    expect(events.filter((e) => e.event === 'Other').map((e) => e.timestamp)).toEqual([NOW - DAY]); // x2 (x1 was deleted above)
    expect(events.find((e) => e.event === 'Order Completed' && e.timestamp === NOW - 60 * DAY)!.properties).toEqual({ revenue: 6, sku: 'a' });
    // And back: the old spec's digests are of another version now, so they are built again.
    expect((await served(profile)).built).toBe(1);
  });

  it('builds beside a transaction still inserting the profile’s event, which is folded in once it commits', async () => {
    const profile = await owner('u-1');
    await served(profile);
    await t.db.query(`update segment_event_digests set complete = false, events = null where workspace_id = $1 and profile_id = $2`, [t.workspace.id, profile]);
    const writer = await t.db.connect();
    try {
      await writer.query('begin');
      await writer.query(
        `insert into events (workspace_id, timestamp, message_id, source_id, type, event, properties, received_at, profile_id)
         select workspace_id, $3, 'late', source_id, 'track', 'Order Completed', '{"revenue": 11}', now(), profile_id
           from events where workspace_id = $1 and profile_id = $2 limit 1`,
        [t.workspace.id, profile, new Date(NOW - 5 * DAY)],
      );
      // Inserts no longer write the digest row (they append), so the build does not wait for them:
      // it reads what is committed, and the uncommitted event's append stays for the next read.
      const during = await served(profile);
      expect(during.built).toBe(1);
      expect(during.events).not.toContain(`track:Order Completed:${NOW - 5 * DAY}:{"revenue":11}`);
      await writer.query('commit');
    } finally {
      writer.release();
    }
    const after = await served(profile);
    expect(after.built).toBe(0);
    expect(after.events).toContain(`track:Order Completed:${NOW - 5 * DAY}:{"revenue":11}`);
    expect(after.events).toEqual(await truth(profile));
  });

  it('does not wait on an open writer to change the spec (it may be waiting for the drain): the caller reads events this time', async () => {
    const profile = await owner('u-1');
    const other: DigestSpec = { kinds: [...spec.kinds, 'track:Signed Up'], keys: spec.keys };
    const writer = await t.db.connect();
    try {
      await writer.query('begin');
      // The insert trigger holds the workspace's digest lock shared until this transaction ends.
      await writer.query(
        `insert into events (workspace_id, timestamp, message_id, source_id, type, event, properties, received_at, profile_id)
         select workspace_id, $3, 'late-2', source_id, 'track', 'Order Completed', '{"revenue": 13}', now(), profile_id
           from events where workspace_id = $1 and profile_id = $2 limit 1`,
        [t.workspace.id, profile, new Date(NOW - 4 * DAY)],
      );
      const started = performance.now();
      const blocked = await loadDigestEvents(t.db, t.workspace.id, [profile], other);
      expect(blocked).toMatchObject({ unserved: [profile], built: 0 });
      expect(performance.now() - started).toBeLessThan(2000);
      await writer.query('commit');
    } finally {
      writer.release();
    }
    const after = await served(profile, other);
    expect(after.built).toBe(1);
    expect(after.events).toContain(`track:Order Completed:${NOW - 4 * DAY}:{"revenue":13}`);
    expect((await served(profile)).built).toBe(1); // back to the first spec: built again
  });

  it('derives the spec from what the conditions read; none when one reads the events’ context', () => {
    const reads = conditionReads({
      kind: 'and',
      conditions: [
        { kind: 'event', match: { type: 'track', name: 'Order Completed', filters: [{ property: 'items.sku', op: 'exists' }] }, measure: { kind: 'sum', property: 'revenue', test: { op: 'gt', value: 1 } } },
        { kind: 'event', match: { type: 'page', filters: [] }, measure: { kind: 'exists' } },
      ],
    });
    expect(digestSpec(reads)).toEqual({ kinds: ['page:*', 'track:Order Completed'], keys: ['items', 'revenue'] });
    conditionReads({ kind: 'event', match: { type: 'track', name: 'X', filters: [{ property: 'context.ip', op: 'exists' }] }, measure: { kind: 'exists' } }, reads);
    expect(digestSpec(reads)).toBeNull();
  });

  it('builds every live profile’s digest in one pass, the same as the per-profile build', async () => {
    await send([
      { type: 'track', event: 'Order Completed', userId: 'u-bulk', properties: { revenue: 3, note: 'x' }, messageId: 'bulk-1', timestamp: iso(NOW - 3 * DAY) },
      { type: 'identify', userId: 'u-quiet', messageId: 'bulk-2', timestamp: iso(NOW - 3 * DAY) },
    ]);
    await t.db.query('delete from segment_event_digests where workspace_id = $1', [t.workspace.id]);
    const written = await buildWorkspaceDigests(t.db, t.workspace.id, spec);
    const { rows: live } = await t.db.query<{ id: string }>('select id from profiles where workspace_id = $1 and merged_into is null', [t.workspace.id]);
    expect(written).toBe(live.length);
    expect(live.length).toBeGreaterThanOrEqual(3);
    for (const { id } of live) {
      const fromBulk = await served(id);
      expect(fromBulk.built, id).toBe(0); // served as stored: the bulk pass made it complete
      expect(fromBulk.events, id).toEqual(await truth(id));
    }
    // A profile without wanted events gets an empty, complete digest (not rebuilt at each read).
    expect(await stored(await owner('u-quiet'))).toEqual({ complete: true, events: [] });
    // Events after the pass are appended by the triggers as before.
    await send([{ type: 'track', event: 'Order Completed', userId: 'u-bulk', properties: { revenue: 4 }, messageId: 'bulk-3', timestamp: iso(NOW - DAY) }]);
    const bulkProfile = await owner('u-bulk');
    expect((await served(bulkProfile)).events).toEqual(await truth(bulkProfile));
  });

  it('builds more profiles than one build transaction takes, chunk by chunk, each digest exact', async () => {
    const people = Array.from({ length: 120 }, (_, i) => `chunk-${i}`);
    await send(
      people.map((userId, i) => ({ type: 'track', event: 'Order Completed', userId, properties: { revenue: i }, messageId: `chunk-o-${i}`, timestamp: iso(NOW - DAY) })),
    );
    const profiles = await Promise.all(people.map(owner));
    await t.db.query('delete from segment_event_digests where workspace_id = $1 and profile_id = any($2::uuid[])', [t.workspace.id, profiles]);
    const result = await loadDigestEvents(t.db, t.workspace.id, [...profiles].sort(), spec);
    expect(result).toMatchObject({ unserved: [], built: 120 });
    for (const [i, profile] of profiles.entries()) {
      expect(result.events.get(profile)?.map((e) => e.properties), people[i]).toEqual([{ revenue: i }]);
    }
  });
});

describe('the drain reads digests only when asked (TOUCHPOINT_SEGMENT_DIGESTS)', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(async () => t?.close());

  it('off by default: no digest is written; on: digests are built and the memberships are the same', async () => {
    const now = new Date();
    await createSegment(t.db, t.workspace.id, { key: 'buyers', name: 'Buyers', kind: 'realtime', text: 'event("Order Completed").count(within 30d) >= 1' }, now);
    const digestRows = async () =>
      Number((await t.db.query<{ n: string }>('select count(*) as n from segment_event_digests where workspace_id = $1', [t.workspace.id])).rows[0]!.n);
    const members = async () =>
      Number((await t.db.query<{ n: string }>(`select count(*) as n from segment_memberships m join segments s on s.id = m.segment_id where s.workspace_id = $1 and s.key = 'buyers'`, [t.workspace.id])).rows[0]!.n);
    const order = (userId: string, messageId: string) => ({ type: 'track', event: 'Order Completed', userId, properties: { revenue: 1 }, messageId, timestamp: now.toISOString() });

    const res = await t.app.inject({ method: 'POST', url: '/v1/batch', headers: { authorization: basicAuth(t.writeKey) }, payload: { batch: [order('off-1', 'm-off-1')] } });
    expect(res.statusCode).toBe(200);
    while ((await resolveQueuedEvents(t.db, t.workspace.id)) > 0);
    while ((await drainSegmentQueue(t.db, { now })) > 0);
    expect(await members()).toBe(1);
    expect(await digestRows()).toBe(0);

    const again = await t.app.inject({ method: 'POST', url: '/v1/batch', headers: { authorization: basicAuth(t.writeKey) }, payload: { batch: [order('on-1', 'm-on-1')] } });
    expect(again.statusCode).toBe(200);
    while ((await resolveQueuedEvents(t.db, t.workspace.id)) > 0);
    while ((await drainSegmentQueue(t.db, { now, digests: true })) > 0);
    expect(await members()).toBe(2);
    expect(await digestRows()).toBeGreaterThan(0);
  });
});
