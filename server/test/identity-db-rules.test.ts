/**
 * Every identity-resolution rule on real PostgreSQL: events go in through `POST /v1/batch`, the
 * real resolver drains the queue, and the assertions read the tables. Each rule runs twice: one
 * event per resolver transaction (every step goes through the database) and whole sends per
 * transaction (merges and links happen in the batch's in-memory graph). Both must agree.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { resolveQueuedEvents } from '../src/identity/resolver.ts';
import { saveWorkspaceIdentity } from '../src/identity/settings-store.ts';
import { openPii, piiCodec } from '../src/privacy/pii-codec.ts';
import { createSource } from '../src/workspaces/store.ts';
import { basicAuth, startTestApp, type TestApp } from './support/app.ts';

const T0 = Date.parse('2026-03-01T08:00:00Z');
/** An event time `minutes` after T0. */
const at = (minutes: number) => new Date(T0 + minutes * 60_000).toISOString();

describe.each([
  { mode: 'one event per transaction', batchSize: 1 },
  { mode: 'whole sends per transaction', batchSize: 1000 },
])('identity rules on real PostgreSQL ($mode)', ({ batchSize }) => {
  let t: TestApp;
  let ws: string;
  beforeEach(async () => {
    t = await startTestApp();
    ws = t.workspace.id;
  });
  afterEach(async () => t.close());

  async function send(batch: unknown[], writeKey = t.writeKey) {
    const res = await t.app.inject({ method: 'POST', url: '/v1/batch', headers: { authorization: basicAuth(writeKey) }, payload: { batch } });
    expect(res.statusCode).toBe(200);
    expect(res.json().rejected).toEqual([]);
  }

  /** Resolves everything queued for a workspace and checks the queue is empty afterwards. */
  async function drain(workspaceId = ws) {
    while ((await resolveQueuedEvents(t.db, workspaceId, batchSize)) > 0);
    const { rows } = await t.db.query('select count(*)::int as n from identity_queue where workspace_id = $1', [workspaceId]);
    expect(rows[0].n).toBe(0);
  }

  async function ownerOf(type: string, value: string, workspaceId = ws): Promise<string | undefined> {
    const { rows } = await t.db.query(
      'select profile_id from profile_identifiers where workspace_id = $1 and type = $2 and value = $3 and unbound_at is null',
      // PII identifiers are stored as keyed-hash tokens (privacy/pii-codec.ts).
      [workspaceId, type, (await piiCodec(t.db, workspaceId)).identifiers.encode(type, value)],
    );
    expect(rows.length).toBeLessThanOrEqual(1);
    return rows[0]?.profile_id;
  }

  async function identifiersOf(profileId: string | undefined, workspaceId = ws): Promise<string[]> {
    const { rows } = await t.db.query<{ type: string; value: string }>(
      `select type, value from profile_identifiers where workspace_id = $1 and profile_id = $2 and unbound_at is null`,
      [workspaceId, profileId],
    );
    // PII values are stored as tokens: opened, then ordered as the plain values.
    const opened = await openPii(t.db, workspaceId, rows);
    return opened
      .sort((a, b) => (a.type === b.type ? (a.value < b.value ? -1 : a.value > b.value ? 1 : 0) : a.type < b.type ? -1 : 1))
      .map((row) => `${row.type}:${row.value}`);
  }

  async function eventsOf(profileId: string | undefined, workspaceId = ws): Promise<string[]> {
    const { rows } = await t.db.query('select message_id from events where workspace_id = $1 and profile_id = $2 order by timestamp, seq', [
      workspaceId,
      profileId,
    ]);
    return rows.map((row) => row.message_id);
  }

  async function liveProfiles(workspaceId = ws): Promise<string[]> {
    const { rows } = await t.db.query('select id from profiles where workspace_id = $1 and merged_into is null order by id', [workspaceId]);
    return rows.map((row) => row.id);
  }

  async function eventCounts(): Promise<Record<string, number>> {
    const { rows } = await t.db.query(
      `select coalesce(profile_id::text, 'none') as profile, count(*)::int as n from events where workspace_id = $1 group by 1`,
      [ws],
    );
    return Object.fromEntries(rows.map((row) => [row.profile, row.n]));
  }

  async function refusals(workspaceId = ws) {
    const { rows } = await t.db.query(
      `select message_id, identifier_type as type, identifier_value as value, reason, profile_id, message
         from identity_refusals where workspace_id = $1 order by seq, id`,
      [workspaceId],
    );
    return openPii(t.db, workspaceId, rows);
  }

  async function ignoredCounts(workspaceId = ws): Promise<Record<string, number>> {
    const { rows } = await t.db.query('select identifier_type, reason, count from identity_ignored_counts where workspace_id = $1', [workspaceId]);
    return Object.fromEntries(rows.map((row) => [`${row.identifier_type}/${row.reason}`, row.count]));
  }

  async function merges() {
    const { rows } = await t.db.query(
      `select kind, survivor_id, absorbed_ids, cause_message_id, cause_identifier_type, cause_identifier_value, details
         from identity_merges where workspace_id = $1 order by cause_seq`,
      [ws],
    );
    return rows;
  }

  async function mergedInto(profileId: string | undefined): Promise<string | null> {
    const { rows } = await t.db.query('select merged_into from profiles where workspace_id = $1 and id = $2', [ws, profileId]);
    expect(rows).toHaveLength(1);
    return rows[0].merged_into;
  }

  describe('per-type limits', () => {
    it('never joins a second user_id: the identifiers that would are refused and recorded', async () => {
      await send([
        { type: 'identify', userId: 'u-1', anonymousId: 'a-1', traits: { email: 'shared@x.cn' }, messageId: 'e1', timestamp: at(1) },
        { type: 'identify', userId: 'u-2', anonymousId: 'a-1', messageId: 'e2', timestamp: at(2) },
        { type: 'identify', userId: 'u-2', traits: { email: 'Shared@X.cn' }, messageId: 'e3', timestamp: at(3) },
      ]);
      await drain();

      const first = await ownerOf('user_id', 'u-1');
      const second = await ownerOf('user_id', 'u-2');
      expect(first).toBeDefined();
      expect(second).toBeDefined();
      expect(second).not.toBe(first);
      expect(await identifiersOf(first)).toEqual(['anonymous_id:a-1', 'email:shared@x.cn', 'user_id:u-1']);
      expect(await identifiersOf(second)).toEqual(['user_id:u-2']);
      expect(await eventsOf(first)).toEqual(['e1']);
      expect(await eventsOf(second)).toEqual(['e2', 'e3']);
      expect(await merges()).toEqual([]);
      const refused = await refusals();
      expect(refused).toMatchObject([
        { message_id: 'e2', type: 'anonymous_id', value: 'a-1', reason: 'conflicting_value', profile_id: first },
        { message_id: 'e3', type: 'email', value: 'shared@x.cn', reason: 'conflicting_value', profile_id: first },
      ]);
      expect(refused[0].message).toMatch(/different user_id values \(u-1, u-2\)/);
    });

    it('refuses a 101st anonymous_id, both as a new link and as a merge, and keeps the event on the profile', async () => {
      await send(
        Array.from({ length: 100 }, (_, i) => ({
          type: 'page',
          userId: 'u-1',
          anonymousId: `a-${i + 1}`,
          messageId: `m-${i + 1}`,
          timestamp: at(i + 1),
        })),
      );
      await send([
        { type: 'page', userId: 'u-1', anonymousId: 'a-101', messageId: 'm-101', timestamp: at(101) },
        { type: 'page', anonymousId: 'a-101', messageId: 'm-102', timestamp: at(102) },
        { type: 'page', userId: 'u-1', anonymousId: 'a-101', messageId: 'm-103', timestamp: at(103) },
      ]);
      await drain();

      const user = await ownerOf('user_id', 'u-1');
      const stray = await ownerOf('anonymous_id', 'a-101');
      expect(stray).toBeDefined();
      expect(stray).not.toBe(user);
      const ids = await identifiersOf(user);
      expect(ids).toHaveLength(101);
      expect(ids.filter((id) => id.startsWith('anonymous_id:'))).toHaveLength(100);
      expect(await eventsOf(stray)).toEqual(['m-102']);
      expect(await eventsOf(user)).toHaveLength(102);
      expect(await eventsOf(user)).toContain('m-101');
      expect(await eventsOf(user)).toContain('m-103');
      const refused = await refusals();
      expect(refused).toMatchObject([
        { message_id: 'm-101', type: 'anonymous_id', value: 'a-101', reason: 'limit_exceeded', profile_id: null },
        { message_id: 'm-103', type: 'anonymous_id', value: 'a-101', reason: 'limit_exceeded', profile_id: stray },
      ]);
      expect(refused[0].message).toMatch(/101 anonymous_id values on one profile; the limit is 100/);
    });

    it('applies a limit configured for the workspace (two emails per profile)', async () => {
      await saveWorkspaceIdentity(t.db, ws, { identity: { types: { email: { limit: 2 } } } });
      await send([
        { type: 'identify', userId: 'u-1', traits: { email: 'one@x.cn' }, messageId: 'e1', timestamp: at(1) },
        { type: 'identify', userId: 'u-1', traits: { email: 'two@x.cn' }, messageId: 'e2', timestamp: at(2) },
        { type: 'identify', userId: 'u-1', traits: { email: 'three@x.cn' }, messageId: 'e3', timestamp: at(3) },
      ]);
      await drain();
      const user = await ownerOf('user_id', 'u-1');
      expect(await identifiersOf(user)).toEqual(['email:one@x.cn', 'email:two@x.cn', 'user_id:u-1']);
      expect(await ownerOf('email', 'three@x.cn')).toBeUndefined();
      expect(await eventsOf(user)).toEqual(['e1', 'e2', 'e3']);
      expect(await refusals()).toMatchObject([{ message_id: 'e3', type: 'email', value: 'three@x.cn', reason: 'limit_exceeded' }]);
    });
  });

  describe('priorities', () => {
    it('attaches an event whose merge is refused to the profile of its highest-priority identifier', async () => {
      await send([
        {
          type: 'identify',
          anonymousId: 'a-1',
          context: { externalIds: [{ id: 'M-1', type: 'member_id' }] },
          messageId: 'e1',
          timestamp: at(1),
        },
        {
          type: 'identify',
          anonymousId: 'a-2',
          traits: { phone: '13800138000' },
          context: { externalIds: [{ id: 'M-2', type: 'member_id' }] },
          messageId: 'e2',
          timestamp: at(2),
        },
        // member_id M-1 (priority 2) outranks the phone (4) that belongs to member M-2's profile.
        {
          type: 'track',
          event: 'Order Completed',
          anonymousId: 'a-3',
          context: { traits: { email: 'wf@x.cn', phone: '13800138000' }, externalIds: [{ id: 'M-1', type: 'member_id' }] },
          messageId: 'e3',
          timestamp: at(3),
        },
      ]);
      await drain();
      const first = await ownerOf('member_id', 'M-1');
      const second = await ownerOf('member_id', 'M-2');
      expect(first).not.toBe(second);
      expect(await identifiersOf(first)).toEqual(['anonymous_id:a-1', 'anonymous_id:a-3', 'email:wf@x.cn', 'member_id:M-1']);
      expect(await identifiersOf(second)).toEqual(['anonymous_id:a-2', 'member_id:M-2', 'phone:+8613800138000']);
      expect(await eventsOf(first)).toEqual(['e1', 'e3']);
      expect(await eventsOf(second)).toEqual(['e2']);
      expect(await refusals()).toMatchObject([
        { message_id: 'e3', type: 'phone', value: '+8613800138000', reason: 'conflicting_value', profile_id: second },
      ]);
    });

    it('keeps the profile with the strongest identifier type in a merge, even when it is the younger one', async () => {
      await send([{ type: 'page', anonymousId: 'a-1', messageId: 'p1', timestamp: at(1) }]);
      await drain();
      await send([{ type: 'identify', userId: 'u-1', messageId: 'p2', timestamp: at(2) }]);
      await drain();
      const anonymous = await ownerOf('anonymous_id', 'a-1');
      const user = await ownerOf('user_id', 'u-1');
      expect(anonymous).not.toBe(user);

      await send([{ type: 'track', event: 'Signed In', userId: 'u-1', anonymousId: 'a-1', messageId: 'p3', timestamp: at(3) }]);
      await drain();
      expect(await liveProfiles()).toEqual([user]);
      expect(await mergedInto(anonymous)).toBe(user);
      expect(await merges()).toMatchObject([
        {
          kind: 'event',
          survivor_id: user,
          absorbed_ids: [anonymous],
          cause_message_id: 'p3',
          cause_identifier_type: 'anonymous_id',
          cause_identifier_value: 'a-1',
        },
      ]);
    });

    it('among equally strong profiles keeps the oldest, whatever order the event lists them in', async () => {
      await send([{ type: 'page', anonymousId: 'b-1', messageId: 'q1', timestamp: at(1) }]);
      await drain();
      await send([{ type: 'page', anonymousId: 'b-2', messageId: 'q2', timestamp: at(2) }]);
      await drain();
      const older = await ownerOf('anonymous_id', 'b-1');
      const younger = await ownerOf('anonymous_id', 'b-2');
      // External ids are read before anonymousId: the younger profile is met first.
      await send([
        { type: 'page', anonymousId: 'b-1', context: { externalIds: [{ id: 'b-2', type: 'anonymous_id' }] }, messageId: 'q3', timestamp: at(3) },
      ]);
      await drain();
      expect(await liveProfiles()).toEqual([older]);
      expect(await mergedInto(younger)).toBe(older);
      expect(await eventsOf(older)).toEqual(['q1', 'q2', 'q3']);
    });

    it('survivor age is the profile creation order, not the event time of a late event', async () => {
      // A historical event (last year) creates a profile in the same batch that merges it with one
      // created earlier: the existing profile keeps its id.
      await send([{ type: 'page', anonymousId: 'c-1', messageId: 'r1', timestamp: at(10) }]);
      await drain();
      const existing = await ownerOf('anonymous_id', 'c-1');
      await send([
        { type: 'page', anonymousId: 'c-2', messageId: 'r2', timestamp: new Date(T0 - 365 * 86_400_000).toISOString() },
        { type: 'page', anonymousId: 'c-1', context: { externalIds: [{ id: 'c-2', type: 'anonymous_id' }] }, messageId: 'r3', timestamp: at(11) },
      ]);
      await drain();
      expect(await liveProfiles()).toEqual([existing]);
      expect(await eventsOf(existing)).toEqual(['r2', 'r1', 'r3']);
    });
  });

  describe('blocked values', () => {
    it('ignores the default placeholders, never links people by them, and counts them', async () => {
      await send([
        { type: 'identify', userId: 'u-1', anonymousId: 'anonymous', traits: { email: 'null', phone: '0' }, messageId: 'd1', timestamp: at(1) },
        {
          type: 'identify',
          userId: 'u-2',
          anonymousId: 'Anonymous',
          traits: { email: 'NULL', phone: '0' },
          context: { device: { id: '00000000-0000-0000-0000-000000000000' } },
          messageId: 'd2',
          timestamp: at(2),
        },
        { type: 'identify', userId: 'undefined', anonymousId: 'a-3', context: { device: { id: '-1' } }, messageId: 'd3', timestamp: at(3) },
        { type: 'track', event: 'Opened', anonymousId: 'a-5', context: { device: { id: '00:00:00:00:00:00' } }, messageId: 'd5', timestamp: at(5) },
      ]);
      await drain();
      const first = await ownerOf('user_id', 'u-1');
      const second = await ownerOf('user_id', 'u-2');
      expect(first).not.toBe(second);
      expect(await identifiersOf(first)).toEqual(['user_id:u-1']);
      expect(await identifiersOf(second)).toEqual(['user_id:u-2']);
      expect(await identifiersOf(await ownerOf('anonymous_id', 'a-3'))).toEqual(['anonymous_id:a-3']);
      expect(await identifiersOf(await ownerOf('anonymous_id', 'a-5'))).toEqual(['anonymous_id:a-5']);
      expect(await liveProfiles()).toHaveLength(4);
      expect(await eventCounts()).not.toHaveProperty('none');
      expect(await ignoredCounts()).toEqual({
        'anonymous_id/blocked': 2,
        'email/blocked': 2,
        'phone/blocked': 2,
        'device_id/blocked': 3,
        'user_id/blocked': 1,
      });
    });

    it('adds a workspace list (global and per type, matched after normalisation) to the defaults', async () => {
      const events = [
        { type: 'identify', userId: 'u-1', anonymousId: 'GUEST', traits: { email: ' test@example.com', phone: '13800138000' }, messageId: 'c1', timestamp: at(1) },
        { type: 'identify', userId: 'u-2', anonymousId: 'guest', traits: { email: 'TEST@example.com', phone: '138 0013 8000' }, messageId: 'c2', timestamp: at(2) },
      ];
      // Without the list these are real identifiers: the second user is refused them.
      const other = await t.addWorkspace('no-list');
      await send(events, other.writeKey);
      await drain(other.workspace.id);
      expect(await identifiersOf(await ownerOf('user_id', 'u-1', other.workspace.id), other.workspace.id)).toEqual([
        'anonymous_id:GUEST',
        'email:test@example.com',
        'phone:+8613800138000',
        'user_id:u-1',
      ]);
      expect(await refusals(other.workspace.id)).toHaveLength(2);

      await saveWorkspaceIdentity(t.db, ws, {
        identity: {
          blockedValues: ['guest'],
          types: { email: { blockedValues: ['Test@Example.com'] }, phone: { blockedValues: ['+86 138 0013 8000'] } },
        },
      });
      await send(events);
      await drain();
      const first = await ownerOf('user_id', 'u-1');
      const second = await ownerOf('user_id', 'u-2');
      expect(await identifiersOf(first)).toEqual(['user_id:u-1']);
      expect(await identifiersOf(second)).toEqual(['user_id:u-2']);
      expect(await refusals()).toEqual([]);
      expect(await ignoredCounts()).toEqual({ 'anonymous_id/blocked': 2, 'email/blocked': 2, 'phone/blocked': 2 });
    });
  });

  describe('normalisation', () => {
    it('joins email case and spacing and every form of a phone number (default region CN) into one profile', async () => {
      await send([
        { type: 'identify', userId: 'u-1', traits: { email: ' Li.Lei@Example.COM ', phone: '13800138000' }, messageId: 'n1', timestamp: at(1) },
        { type: 'track', event: 'Viewed', anonymousId: 'a-2', context: { traits: { email: 'li.lei@example.com' } }, messageId: 'n2', timestamp: at(2) },
        { type: 'track', event: 'Paid', anonymousId: 'a-3', context: { externalIds: [{ id: '+86 138 0013 8000', type: 'phone' }] }, messageId: 'n3', timestamp: at(3) },
        { type: 'track', event: 'Paid', anonymousId: 'a-4', context: { externalIds: [{ id: '0086-138-0013-8000', type: 'Phone Number' }] }, messageId: 'n4', timestamp: at(4) },
        { type: 'identify', anonymousId: 'a-5', traits: { phone: '(+86) 138-0013-8000' }, messageId: 'n5', timestamp: at(5) },
        { type: 'identify', anonymousId: 'a-6', traits: { phone: '1380013800' }, messageId: 'n6', timestamp: at(6) },
      ]);
      await drain();
      const user = await ownerOf('user_id', 'u-1');
      expect(await identifiersOf(user)).toEqual([
        'anonymous_id:a-2',
        'anonymous_id:a-3',
        'anonymous_id:a-4',
        'anonymous_id:a-5',
        'email:li.lei@example.com',
        'phone:+8613800138000',
        'user_id:u-1',
      ]);
      expect(await eventsOf(user)).toEqual(['n1', 'n2', 'n3', 'n4', 'n5']);
      expect(await identifiersOf(await ownerOf('anonymous_id', 'a-6'))).toEqual(['anonymous_id:a-6']);
      expect(await ignoredCounts()).toEqual({ 'phone/invalid': 1 });
    });

    it('reads numbers without a country code in the workspace region', async () => {
      const us = await t.addWorkspace('us-shop');
      await saveWorkspaceIdentity(t.db, us.workspace.id, { identity: { defaultPhoneRegion: 'US' } });
      await send(
        [
          { type: 'identify', userId: 'u-9', traits: { phone: '(415) 555-2671' }, messageId: 'w1', timestamp: at(1) },
          { type: 'track', event: 'Called', anonymousId: 'z-2', context: { externalIds: [{ id: '+1 415-555-2671', type: 'phone' }] }, messageId: 'w2', timestamp: at(2) },
          { type: 'identify', anonymousId: 'z-3', traits: { phone: '13800138000' }, messageId: 'w3', timestamp: at(3) },
        ],
        us.writeKey,
      );
      await drain(us.workspace.id);
      const user = await ownerOf('user_id', 'u-9', us.workspace.id);
      expect(await identifiersOf(user, us.workspace.id)).toEqual(['anonymous_id:z-2', 'phone:+14155552671', 'user_id:u-9']);
      expect(await eventsOf(user, us.workspace.id)).toEqual(['w1', 'w2']);
      expect(await ignoredCounts(us.workspace.id)).toEqual({ 'phone/invalid': 1 });
      // The same national number in the CN workspace is a Chinese number.
      await send([{ type: 'identify', anonymousId: 'z-3', traits: { phone: '13800138000' }, messageId: 'w3', timestamp: at(3) }]);
      await drain();
      expect(await identifiersOf(await ownerOf('anonymous_id', 'z-3'))).toEqual(['anonymous_id:z-3', 'phone:+8613800138000']);
    });
  });

  describe('alias', () => {
    it("merges the anonymous visitor's profile into the user's, logged as an alias merge", async () => {
      await send([
        { type: 'page', anonymousId: 'anon-1', name: 'Home', messageId: 'al1', timestamp: at(1) },
        { type: 'identify', userId: 'u-1', traits: { name: 'Li' }, messageId: 'al2', timestamp: at(2) },
      ]);
      await drain();
      const anonymous = await ownerOf('anonymous_id', 'anon-1');
      const user = await ownerOf('user_id', 'u-1');
      expect(anonymous).not.toBe(user);

      await send([
        { type: 'alias', previousId: 'anon-1', userId: 'u-1', messageId: 'al3', timestamp: at(3) },
        // A previousId never seen before becomes an anonymous id of the user, never a user id.
        { type: 'alias', previousId: 'anon-new', userId: 'u-1', messageId: 'al4', timestamp: at(4) },
      ]);
      await drain();
      expect(await liveProfiles()).toEqual([user]);
      expect(await mergedInto(anonymous)).toBe(user);
      expect(await eventsOf(user)).toEqual(['al1', 'al2', 'al3', 'al4']);
      expect(await identifiersOf(user)).toEqual(['anonymous_id:anon-1', 'anonymous_id:anon-new', 'user_id:u-1']);
      const log = await merges();
      expect(log).toMatchObject([
        {
          kind: 'alias',
          survivor_id: user,
          absorbed_ids: [anonymous],
          cause_message_id: 'al3',
          cause_identifier_type: 'anonymous_id',
          cause_identifier_value: 'anon-1',
        },
      ]);
      expect(log[0].details.absorbed).toEqual([{ profileId: anonymous, identifiers: [{ type: 'anonymous_id', value: 'anon-1' }] }]);
      const { rows: links } = await t.db.query(
        `select value, linked_via, linked_by_message_id from profile_identifiers where workspace_id = $1 and type = 'anonymous_id' order by value`,
        [ws],
      );
      expect(links).toEqual([
        { value: 'anon-1', linked_via: 'event', linked_by_message_id: 'al1' },
        { value: 'anon-new', linked_via: 'alias', linked_by_message_id: 'al4' },
      ]);
    });
  });

  describe('merge log and absorbed ids', () => {
    it('logs every merge with survivor, absorbed ids and cause, and re-points earlier absorbed ids to the final survivor', async () => {
      await send([{ type: 'page', anonymousId: 'b-1', messageId: 'k1', timestamp: at(1) }]);
      await drain();
      const b1 = (await ownerOf('anonymous_id', 'b-1'))!;
      await send([{ type: 'page', anonymousId: 'b-2', messageId: 'k2', timestamp: at(2) }]);
      await drain();
      const b2 = (await ownerOf('anonymous_id', 'b-2'))!;
      await send([
        { type: 'page', anonymousId: 'b-1', context: { externalIds: [{ id: 'b-2', type: 'anonymous_id' }] }, messageId: 'k3', timestamp: at(3) },
      ]);
      await drain();
      expect(await mergedInto(b2)).toBe(b1);
      await send([{ type: 'identify', userId: 'u-7', messageId: 'k4', timestamp: at(4) }]);
      await drain();
      const user = await ownerOf('user_id', 'u-7');
      expect(await eventCounts()).toEqual({ [b1]: 3, [user!]: 1 });

      await send([{ type: 'track', event: 'Signed In', userId: 'u-7', anonymousId: 'b-2', messageId: 'k5', timestamp: at(5) }]);
      await drain();
      expect(await liveProfiles()).toEqual([user]);
      expect(await mergedInto(b1)).toBe(user);
      expect(await mergedInto(b2)).toBe(user);
      expect(await eventCounts()).toEqual({ [user!]: 5 });
      const log = await merges();
      expect(log).toMatchObject([
        // k3 reached b-2's profile first; b-1 is the identifier that tied it to the survivor.
        { kind: 'event', survivor_id: b1, absorbed_ids: [b2], cause_message_id: 'k3', cause_identifier_type: 'anonymous_id', cause_identifier_value: 'b-1' },
        { kind: 'event', survivor_id: user, absorbed_ids: [b1], cause_message_id: 'k5', cause_identifier_type: 'anonymous_id', cause_identifier_value: 'b-2' },
      ]);
      expect(log[1].details.absorbed[0].identifiers).toEqual([
        { type: 'anonymous_id', value: 'b-1' },
        { type: 'anonymous_id', value: 'b-2' },
      ]);
      // The survivor's activity covers the absorbed profiles' events.
      const { rows } = await t.db.query('select first_seen, last_seen from profiles where workspace_id = $1 and id = $2', [ws, user]);
      expect(rows[0]).toEqual({ first_seen: new Date(at(1)), last_seen: new Date(at(5)) });
    });

    it('moves every event of the absorbed profiles to the survivor: nothing is lost', async () => {
      await send([
        { type: 'page', anonymousId: 'a-1', messageId: 'v1', timestamp: at(1) },
        { type: 'page', anonymousId: 'a-1', messageId: 'v2', timestamp: at(2) },
        { type: 'track', event: 'Added', anonymousId: 'a-1', context: { device: { id: 'dev-1' } }, messageId: 'v3', timestamp: at(3) },
        { type: 'identify', userId: 'u-1', messageId: 'v4', timestamp: at(4) },
        { type: 'track', event: 'Bought', userId: 'u-1', messageId: 'v5', timestamp: at(5) },
        { type: 'page', anonymousId: 'a-9', messageId: 'v6', timestamp: at(6) },
      ]);
      await drain();
      const anonymous = (await ownerOf('anonymous_id', 'a-1'))!;
      const user = (await ownerOf('user_id', 'u-1'))!;
      const bystander = (await ownerOf('anonymous_id', 'a-9'))!;
      expect(await eventCounts()).toEqual({ [anonymous]: 3, [user]: 2, [bystander]: 1 });

      await send([{ type: 'track', event: 'Signed In', userId: 'u-1', context: { device: { id: 'dev-1' } }, messageId: 'v7', timestamp: at(7) }]);
      await drain();
      expect(await eventCounts()).toEqual({ [user]: 6, [bystander]: 1 });
      expect(await eventsOf(user)).toEqual(['v1', 'v2', 'v3', 'v4', 'v5', 'v7']);
      expect(await identifiersOf(user)).toEqual(['anonymous_id:a-1', 'device_id:dev-1', 'user_id:u-1']);
    });
  });

  describe('traits', () => {
    const strategies = {
      default: { kind: 'most_recent' },
      traits: {
        first_channel: { kind: 'first_seen' },
        name: { kind: 'source_precedence', order: ['CRM'] },
        points: { kind: 'sum' },
        tags: { kind: 'union' },
      },
    };

    async function traits(profileId: string | undefined) {
      const { rows } = await t.db.query(
        `select key, value, source_name, message_id, observed_at from profile_traits where workspace_id = $1 and profile_id = $2 order by key`,
        [ws, profileId],
      );
      return openPii(t.db, ws, Object.fromEntries(rows.map((row) => [row.key, { value: row.value, source: row.source_name, event: row.message_id, at: row.observed_at.toISOString() }])));
    }

    async function history(profileId: string | undefined) {
      const { rows } = await t.db.query(
        `select key, previous_value, value, source_name, message_id, reason from profile_trait_history
          where workspace_id = $1 and profile_id = $2 order by id`,
        [ws, profileId],
      );
      return (await openPii(t.db, ws, rows)).map((row) => [row.key, row.previous_value, row.value, row.source_name, row.message_id, row.reason]);
    }

    it('applies each strategy on ingest (late events included) with provenance and a history of changes', async () => {
      await saveWorkspaceIdentity(t.db, ws, { traitStrategies: strategies });
      const crm = await createSource(t.db, ws, { name: 'CRM', kind: 'crm_import' });
      await send([{ type: 'identify', userId: 'u-1', traits: { plan: 'free', first_channel: 'web', name: 'lilei', points: 10, tags: ['a'] }, messageId: 't1', timestamp: at(1) }]);
      await send([{ type: 'identify', userId: 'u-1', traits: { name: 'Li Lei', plan: 'trial', points: 5, tags: ['b', 'a'] }, messageId: 't2', timestamp: at(2) }], crm.writeKey.key);
      await send([
        { type: 'identify', userId: 'u-1', traits: { name: 'LL', plan: 'pro', first_channel: 'app', points: -3, tags: 'c' }, messageId: 't3', timestamp: at(4) },
        // Arrives last but happened before t3: most recent and first seen go by event time.
        { type: 'identify', userId: 'u-1', traits: { plan: 'basic', first_channel: 'store' }, messageId: 't4', timestamp: at(3) },
      ]);
      await drain();
      const user = await ownerOf('user_id', 'u-1');
      expect(await traits(user)).toEqual({
        plan: { value: 'pro', source: 'Website', event: 't3', at: at(4) },
        first_channel: { value: 'web', source: 'Website', event: 't1', at: at(1) },
        name: { value: 'Li Lei', source: 'CRM', event: 't2', at: at(2) },
        points: { value: 12, source: 'Website', event: 't3', at: at(4) },
        tags: { value: ['a', 'b', 'c'], source: 'Website', event: 't3', at: at(4) },
      });
      const byKey = (key: string) => history(user).then((rows) => rows.filter((row) => row[0] === key).map((row) => row.slice(1)));
      expect(await byKey('plan')).toEqual([
        [null, 'free', 'Website', 't1', 'event'],
        ['free', 'trial', 'CRM', 't2', 'event'],
        ['trial', 'pro', 'Website', 't3', 'event'],
      ]);
      expect(await byKey('first_channel')).toEqual([[null, 'web', 'Website', 't1', 'event']]);
      expect(await byKey('name')).toEqual([
        [null, 'lilei', 'Website', 't1', 'event'],
        ['lilei', 'Li Lei', 'CRM', 't2', 'event'],
      ]);
      expect(await byKey('points')).toEqual([
        [null, 10, 'Website', 't1', 'event'],
        [10, 15, 'CRM', 't2', 'event'],
        [15, 12, 'Website', 't3', 'event'],
      ]);
      expect(await byKey('tags')).toEqual([
        [null, ['a'], 'Website', 't1', 'event'],
        [['a'], ['a', 'b'], 'CRM', 't2', 'event'],
        [['a', 'b'], ['a', 'b', 'c'], 'Website', 't3', 'event'],
      ]);
    });

    it('merges two profiles trait by trait with the same strategies, keeping the history of both', async () => {
      await saveWorkspaceIdentity(t.db, ws, { traitStrategies: strategies });
      const crm = await createSource(t.db, ws, { name: 'CRM', kind: 'crm_import' });
      await send([{ type: 'identify', anonymousId: 'a-1', traits: { plan: 'free', first_channel: 'web', name: 'web name', points: 7, tags: ['x'] }, messageId: 'm1', timestamp: at(1) }]);
      await send([{ type: 'identify', userId: 'u-1', traits: { plan: 'gold', first_channel: 'crm', name: 'CRM name', points: 3, tags: ['y', 'x'] }, messageId: 'm2', timestamp: at(2) }], crm.writeKey.key);
      await send([{ type: 'identify', anonymousId: 'a-1', traits: { plan: 'silver', name: 'web name 2' }, messageId: 'm3', timestamp: at(5) }]);
      await drain();
      const anonymous = await ownerOf('anonymous_id', 'a-1');
      const user = await ownerOf('user_id', 'u-1');
      expect(anonymous).not.toBe(user);

      await send([{ type: 'track', event: 'Signed In', userId: 'u-1', anonymousId: 'a-1', messageId: 'm4', timestamp: at(6) }]);
      await drain();
      expect(await liveProfiles()).toEqual([user]);
      expect(await traits(user)).toEqual({
        plan: { value: 'silver', source: 'Website', event: 'm3', at: at(5) },
        first_channel: { value: 'web', source: 'Website', event: 'm1', at: at(1) },
        name: { value: 'CRM name', source: 'CRM', event: 'm2', at: at(2) },
        points: { value: 10, source: 'CRM', event: 'm2', at: at(2) },
        tags: { value: ['y', 'x'], source: 'CRM', event: 'm2', at: at(2) },
      });
      expect(await traits(anonymous)).toEqual({});
      const merged = (await history(user)).filter((row) => row[5] === 'merge');
      expect(merged.map((row) => row.slice(0, 3)).sort()).toEqual([
        ['first_channel', 'crm', 'web'],
        ['plan', 'gold', 'silver'],
        ['points', 3, 10],
      ]);
      // The absorbed profile's history moved with it: the survivor explains every current value.
      const events = (await history(user)).filter((row) => row[5] === 'event').map((row) => `${row[0]}=${JSON.stringify(row[2])}@${row[4]}`);
      expect(events).toEqual(expect.arrayContaining(['plan="silver"@m3', 'first_channel="web"@m1', 'plan="gold"@m2']));
      expect(await history(anonymous)).toEqual([]);
    });
  });
});
