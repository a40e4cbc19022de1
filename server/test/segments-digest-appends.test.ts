import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mergeProfiles } from '../src/identity/merge.ts';
import { loadDigestEvents, type DigestSpec } from '../src/segments/digests.ts';
import { dropUnreadDigests } from '../src/segments/realtime.ts';
import { ownerOf, sendResolved } from './segments-digests-support.ts';
import { startTestApp, type TestApp } from './support/app.ts';

/*
 * The digests' appends (migration 0078): events given a profile are written as small rows that a
 * read folds into the profile's digest. Checked against the truth (`events`): each append folded
 * exactly once, nothing lost to writers racing a fold, and nothing stale or left behind when a
 * digest is invalidated while appends are pending.
 */

const NOW = Date.parse('2026-03-31T00:00:00Z');
const DAY = 86_400_000;
const iso = (ms: number) => new Date(ms).toISOString();

describe('segment digest appends', () => {
  let t: TestApp;
  const spec: DigestSpec = { kinds: ['page:*', 'track:Order Completed'], keys: ['revenue'] };

  const send = (batch: object[]) => sendResolved(t, batch);
  const owner = (id: string) => ownerOf(t, id);
  /** The profile's wanted events as `events` has them now, one line each (duplicates would show). */
  const truth = async (profileId: string) => {
    const { rows } = await t.db.query<{ line: string }>(
      `select type || ':' || coalesce(event, name) || ':' || floor(extract(epoch from timestamp) * 1000)::bigint || ':' || coalesce(properties -> 'revenue', 'null') as line
         from events where workspace_id = $1 and profile_id = $2 and segment_digest_wants($3::text[], type, event, name)`,
      [t.workspace.id, profileId, spec.kinds],
    );
    return rows.map((row) => row.line).sort();
  };
  const served = async (profileId: string) => {
    const result = await loadDigestEvents(t.db, t.workspace.id, [profileId], spec);
    expect(result.unserved).toEqual([]);
    const events = (result.events.get(profileId) ?? []).map((e) => `${e.type}:${e.event ?? e.name}:${e.timestamp}:${JSON.stringify(e.properties?.revenue ?? null)}`);
    return { built: result.built, events: events.sort() };
  };
  const pending = async (profileId: string) =>
    Number(
      (await t.db.query<{ n: string }>('select count(*) as n from segment_digest_appends where workspace_id = $1 and profile_id = $2', [t.workspace.id, profileId])).rows[0]!.n,
    );
  const stored = async (profileId: string) =>
    (
      await t.db.query<{ complete: boolean; events: unknown[] | null; xmin: string }>(
        'select complete, events, xmin::text from segment_event_digests where workspace_id = $1 and profile_id = $2',
        [t.workspace.id, profileId],
      )
    ).rows[0];
  /** Stores one event of `profileId` directly (as ingest of a known person does), on `via`. */
  const insertEvent = (via: { query: (sql: string, values: unknown[]) => Promise<unknown> }, profileId: string, messageId: string, revenue: number) =>
    via.query(
      `insert into events (workspace_id, timestamp, message_id, source_id, type, event, properties, received_at, profile_id)
       select workspace_id, $3, $4, source_id, 'track', 'Order Completed', jsonb_build_object('revenue', $5::int), now(), profile_id
         from events where workspace_id = $1 and profile_id = $2 limit 1`,
      [t.workspace.id, profileId, new Date(NOW - DAY), messageId, revenue],
    );

  beforeAll(async () => {
    t = await startTestApp();
    await send([
      { type: 'track', event: 'Order Completed', userId: 'a-1', properties: { revenue: 1 }, messageId: 'a1', timestamp: iso(NOW - 30 * DAY) },
      { type: 'page', name: 'Home', userId: 'a-2', messageId: 'a2', timestamp: iso(NOW - 20 * DAY) },
      { type: 'track', event: 'Order Completed', userId: 'a-3', properties: { revenue: 3 }, messageId: 'a3', timestamp: iso(NOW - 20 * DAY) },
      { type: 'identify', anonymousId: 'anon-4', traits: { email: 'd@x.cn' }, messageId: 'a4-i', timestamp: iso(NOW - 20 * DAY) },
      { type: 'track', event: 'Order Completed', anonymousId: 'anon-4', properties: { revenue: 4 }, messageId: 'a4', timestamp: iso(NOW - 20 * DAY) },
    ]);
  });
  afterAll(async () => t.close());

  it('appends ingested events without writing the digest, and folds them exactly once', async () => {
    const profile = await owner('a-1');
    expect((await served(profile)).built).toBe(1);
    const before = (await stored(profile))!;
    await send([
      { type: 'track', event: 'Order Completed', userId: 'a-1', properties: { revenue: 2 }, messageId: 'a1-2', timestamp: iso(NOW - 2 * DAY) },
      { type: 'track', event: 'Other', userId: 'a-1', messageId: 'a1-x', timestamp: iso(NOW - 2 * DAY) },
    ]);
    await send([{ type: 'page', name: 'Cart', userId: 'a-1', messageId: 'a1-3', timestamp: iso(NOW - DAY) }]);
    // Two statements, two appends (the event no digest holds makes none); the digest row untouched.
    expect(await pending(profile)).toBe(2);
    expect(await stored(profile)).toEqual(before);
    const folded = await served(profile);
    expect(folded.built).toBe(0);
    expect(folded.events).toEqual(await truth(profile));
    expect(folded.events).toEqual([`page:Cart:${NOW - DAY}:null`, `track:Order Completed:${NOW - 30 * DAY}:1`, `track:Order Completed:${NOW - 2 * DAY}:2`]);
    expect(await pending(profile)).toBe(0);
    // Read again: the same, nothing folded twice, no write.
    const written = (await stored(profile))!;
    expect(await served(profile)).toEqual({ built: 0, events: folded.events });
    expect(await stored(profile)).toEqual(written);
  });

  it('serves fewer than foldAt pending appends with the digest unwritten, and folds them once at foldAt', async () => {
    await send([{ type: 'track', event: 'Order Completed', userId: 'lazy-1', properties: { revenue: 1 }, messageId: 'lazy-0', timestamp: iso(NOW - 9 * DAY) }]);
    const profile = await owner('lazy-1');
    const lazily = async () => {
      const result = await loadDigestEvents(t.db, t.workspace.id, [profile], spec, { foldAt: 3 });
      expect(result.unserved).toEqual([]);
      return (result.events.get(profile) ?? []).map((e) => `${e.type}:${e.event ?? e.name}:${e.timestamp}:${JSON.stringify(e.properties?.revenue ?? null)}`).sort();
    };
    await lazily();
    const digest = (await stored(profile))!;
    for (const [i, day] of [8, 7].entries()) {
      await send([{ type: 'track', event: 'Order Completed', userId: 'lazy-1', properties: { revenue: 10 + i }, messageId: `lazy-${day}`, timestamp: iso(NOW - day * DAY) }]);
      // Below the threshold: every event served, the digest row not written, the appends kept.
      expect(await lazily()).toEqual(await truth(profile));
      expect(await stored(profile)).toEqual(digest);
      expect(await pending(profile)).toBe(i + 1);
    }
    // The third append reaches it: folded into the digest, each exactly once.
    await send([{ type: 'page', name: 'Lazy', userId: 'lazy-1', messageId: 'lazy-6', timestamp: iso(NOW - 6 * DAY) }]);
    expect(await lazily()).toEqual(await truth(profile));
    expect(await pending(profile)).toBe(0);
    expect((await stored(profile))!.events).toHaveLength(4);
    expect(await lazily()).toEqual(await truth(profile));
    // An append of another spec version still rebuilds, below the threshold too.
    await t.db.query(
      `insert into segment_digest_appends (workspace_id, profile_id, spec_version, seq, entries)
       select $1, $2, version - 1, 1, '[[1, "page", "Stale", 0, null]]' from segment_event_digest_specs where workspace_id = $1`,
      [t.workspace.id, profile],
    );
    const rebuilt = await loadDigestEvents(t.db, t.workspace.id, [profile], spec, { foldAt: 3 });
    expect(rebuilt.built).toBe(1);
    expect(await lazily()).toEqual(await truth(profile));
    expect(await pending(profile)).toBe(0);
  });

  it('a build deletes the appends of the events it read, so they are not folded again', async () => {
    const profile = await owner('a-2');
    await served(profile);
    await send([{ type: 'page', name: 'Search', userId: 'a-2', messageId: 'a2-s', timestamp: iso(NOW - 3 * DAY) }]);
    expect(await pending(profile)).toBe(1);
    // The digest is gone (as after an upgrade): built from events, which hold the new event.
    await t.db.query('delete from segment_event_digests where workspace_id = $1 and profile_id = $2', [t.workspace.id, profile]);
    const built = await served(profile);
    expect(built.built).toBe(1);
    expect(built.events).toEqual(await truth(profile));
    expect(await pending(profile)).toBe(0);
    expect(await served(profile)).toEqual({ built: 0, events: built.events });
  });

  it('loses nothing to writers racing the folds, and folds each of their events once', async () => {
    const profile = await owner('a-3');
    await served(profile);
    // An event committed after the fold's snapshot stays pending and comes with the next read.
    const writer = await t.db.connect();
    try {
      await writer.query('begin');
      await insertEvent(writer, profile, 'race-open', 100);
      await insertEvent(t.db, profile, 'race-committed', 101);
      const during = await served(profile);
      expect(during.events).toContain(`track:Order Completed:${NOW - DAY}:101`);
      expect(during.events).not.toContain(`track:Order Completed:${NOW - DAY}:100`);
      await writer.query('commit');
    } finally {
      writer.release();
    }
    expect(await pending(profile)).toBe(1);
    expect((await served(profile)).events).toEqual(await truth(profile));

    // Four writers, 25 events each, one statement at a time, while the profile is read in a loop.
    let writing = true;
    const writers = Promise.all(
      [0, 1, 2, 3].map(async (w) => {
        for (let i = 0; i < 25; i++) await insertEvent(t.db, profile, `race-${w}-${i}`, 1000 + w * 100 + i);
      }),
    ).finally(() => (writing = false));
    let reads = 0;
    while (writing) {
      const result = await loadDigestEvents(t.db, t.workspace.id, [profile], spec);
      expect(result.unserved).toEqual([]);
      reads++;
    }
    await writers;
    expect(reads).toBeGreaterThan(1);
    const after = await served(profile);
    expect(after.built).toBe(0);
    expect(after.events).toEqual(await truth(profile));
    expect(after.events.filter((line) => /:1[0-9]{3}$/.test(line))).toHaveLength(100);
    expect(await pending(profile)).toBe(0);
  });

  it('drops the pending appends of a profile whose events are deleted, changed in place or moved away', async () => {
    const profile = await owner('a-1');
    await served(profile);
    await send([{ type: 'track', event: 'Order Completed', userId: 'a-1', properties: { revenue: 7 }, messageId: 'a1-del', timestamp: iso(NOW - DAY) }]);
    expect(await pending(profile)).toBe(1);
    // Erasure, suppression and retention delete rows: the digest and every pending append go.
    await t.db.query(`delete from events where workspace_id = $1 and message_id = 'a1-del'`, [t.workspace.id]);
    expect(await pending(profile)).toBe(0);
    expect(await stored(profile)).toMatchObject({ complete: false, events: null });
    const rebuilt = await served(profile);
    expect(rebuilt.built).toBe(1);
    expect(rebuilt.events).toEqual(await truth(profile));
    expect(rebuilt.events.join()).not.toContain(':7');

    // An in-place change (field encryption) with an append of the changed event pending.
    await send([{ type: 'track', event: 'Order Completed', userId: 'a-1', properties: { revenue: 8 }, messageId: 'a1-upd', timestamp: iso(NOW - DAY) }]);
    await t.db.query(`update events set properties = '{"revenue": 9}' where workspace_id = $1 and message_id = 'a1-upd'`, [t.workspace.id]);
    expect(await pending(profile)).toBe(0);
    const changed = await served(profile);
    expect(changed.built).toBe(1);
    expect(changed.events).toEqual(await truth(profile));
    expect(changed.events).toContain(`track:Order Completed:${NOW - DAY}:9`);
    expect(changed.events.join()).not.toContain(':8');

    // A merge: the absorbed profile's pending appends go; its events are appended to the survivor.
    const absorbed = await owner('anon-4');
    await served(absorbed);
    await insertEvent(t.db, absorbed, 'a4-before-merge', 42);
    expect(await pending(absorbed)).toBe(1);
    await mergeProfiles(t.db, t.workspace.id, [profile, absorbed], { kind: 'manual' });
    expect(await pending(absorbed)).toBe(0);
    expect(await stored(absorbed)).toMatchObject({ complete: false, events: null });
    const merged = await served(profile);
    expect(merged.built).toBe(0);
    expect(merged.events).toEqual(await truth(profile));
    expect(merged.events).toContain(`track:Order Completed:${NOW - DAY}:42`);
  });

  it('does not wait on a digest row an open invalidation holds: reads events then, rebuilds after', async () => {
    const profile = await owner('a-2');
    await served(profile);
    await send([{ type: 'page', name: 'Checkout', userId: 'a-2', messageId: 'a2-2', timestamp: iso(NOW - DAY) }]);
    const writer = await t.db.connect();
    try {
      await writer.query('begin');
      await writer.query(`update events set properties = '{"revenue": 5}' where workspace_id = $1 and message_id = 'a2'`, [t.workspace.id]);
      const started = performance.now();
      const blocked = await loadDigestEvents(t.db, t.workspace.id, [profile], spec);
      expect(blocked).toMatchObject({ unserved: [profile], built: 0 });
      expect(performance.now() - started).toBeLessThan(2000);
      await writer.query('commit');
    } finally {
      writer.release();
    }
    const after = await served(profile);
    expect(after.built).toBe(1);
    expect(after.events).toEqual(await truth(profile));
    expect(after.events).toContain(`page:Checkout:${NOW - DAY}:null`);
    expect(after.events).toContain(`page:Home:${NOW - 20 * DAY}:5`);
  });

  it('rebuilds instead of folding appends made with another spec version', async () => {
    const profile = await owner('a-2');
    await served(profile);
    // As if written just before a spec change (the change waits for such writers, so a digest of
    // the new version is normally built after them; the fold still never mixes versions).
    await t.db.query(
      `insert into segment_digest_appends (workspace_id, profile_id, spec_version, seq, entries)
       select $1, $2, version - 1, 1, '[[1, "page", "Stale", 0, null]]' from segment_event_digest_specs where workspace_id = $1`,
      [t.workspace.id, profile],
    );
    const after = await served(profile);
    expect(after.built).toBe(1);
    expect(after.events).toEqual(await truth(profile));
    expect(await pending(profile)).toBe(0);
  });

  it('folds more profiles than one fold transaction takes, chunk by chunk, each exactly once', async () => {
    const people = Array.from({ length: 150 }, (_, i) => `fold-${i}`);
    const batch = (round: number) =>
      people.map((userId, i) => ({ type: 'track', event: 'Order Completed', userId, properties: { revenue: round * 1000 + i }, messageId: `fold-${round}-${i}`, timestamp: iso(NOW - DAY) }));
    await send(batch(1));
    const profiles = (await Promise.all(people.map(owner))).sort();
    expect((await loadDigestEvents(t.db, t.workspace.id, profiles, spec)).built).toBe(150);
    await send(batch(2));
    const result = await loadDigestEvents(t.db, t.workspace.id, profiles, spec);
    expect(result).toMatchObject({ unserved: [], built: 0 });
    for (const profile of profiles) expect((result.events.get(profile) ?? []).length, profile).toBe(2);
    expect(Number((await t.db.query<{ n: string }>('select count(*) as n from segment_digest_appends where profile_id = any($1::uuid[])', [profiles])).rows[0]!.n)).toBe(0);
    expect((await served(profiles[0]!)).events).toEqual(await truth(profiles[0]!));
  });

  it('empties the appends with the digests when events are truncated', async () => {
    const profile = await owner('a-2');
    await send([{ type: 'page', name: 'Last', userId: 'a-2', messageId: 'a2-last', timestamp: iso(NOW - DAY) }]);
    expect(await pending(profile)).toBe(1);
    await t.db.query('truncate events cascade');
    expect(Number((await t.db.query<{ n: string }>('select count(*) as n from segment_digest_appends')).rows[0]!.n)).toBe(0);
    expect(Number((await t.db.query<{ n: string }>('select count(*) as n from segment_event_digests')).rows[0]!.n)).toBe(0);
  });

  it('drops the digests and appends no drain reads; a spec made again later gets a newer version', async () => {
    const specVersion = async () =>
      (await t.db.query<{ version: number }>('select version from segment_event_digest_specs where workspace_id = $1', [t.workspace.id])).rows[0]?.version ?? null;
    const rowsOf = async (table: string) =>
      Number((await t.db.query<{ n: string }>(`select count(*) as n from ${table} where workspace_id = $1`, [t.workspace.id])).rows[0]!.n);
    await send([{ type: 'track', event: 'Order Completed', userId: 'drop-1', properties: { revenue: 7 }, messageId: 'drop-1a', timestamp: iso(NOW - 5 * DAY) }]);
    const profile = await owner('drop-1');
    await served(profile);
    await send([{ type: 'page', name: 'Again', userId: 'drop-1', messageId: 'drop-1b', timestamp: iso(NOW - 4 * DAY) }]);
    expect(await pending(profile)).toBe(1);
    const first = (await specVersion())!;
    expect(first).not.toBeNull();

    // Digests on, but this workspace has no real-time segment reading events: nothing folds them.
    expect(await dropUnreadDigests(t.db, true)).toBe(1);
    expect(await specVersion()).toBeNull();
    expect(await rowsOf('segment_event_digests')).toBe(0);
    expect(await rowsOf('segment_digest_appends')).toBe(0);
    // The triggers write nothing without a spec.
    await send([{ type: 'page', name: 'Unkept', userId: 'drop-1', messageId: 'drop-1c', timestamp: iso(NOW - 3 * DAY) }]);
    expect(await rowsOf('segment_digest_appends')).toBe(0);
    expect(await dropUnreadDigests(t.db, true)).toBe(0);

    // Read through digests again: a newer version, built from events, the event made meanwhile in it.
    const again = await served(profile);
    expect(again.built).toBe(1);
    expect(again.events).toEqual(await truth(profile));
    expect(again.events).toContain(`page:Unkept:${NOW - 3 * DAY}:null`);
    expect((await specVersion())!).toBeGreaterThan(first);

    // Digests switched off: dropped whatever the segments read.
    expect(await dropUnreadDigests(t.db, false)).toBe(1);
    expect(await specVersion()).toBeNull();
    expect(await rowsOf('segment_event_digests')).toBe(0);
  });
});
