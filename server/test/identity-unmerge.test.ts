import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { defaultIdentityConfig } from '../src/identity/identifier-types.ts';
import { resolveQueuedEvents } from '../src/identity/resolver.ts';
import { identifiersToSplit, unbindIdentifier, unmergeIdentifier } from '../src/identity/unmerge.ts';
import { openPii, piiCodec } from '../src/privacy/pii-codec.ts';
import { basicAuth, startTestApp, type TestApp } from './support/app.ts';

async function send(t: TestApp, batch: unknown[]) {
  const res = await t.app.inject({ method: 'POST', url: '/v1/batch', headers: { authorization: basicAuth(t.writeKey) }, payload: { batch } });
  expect(res.json()).toMatchObject({ rejected: [] });
  while ((await resolveQueuedEvents(t.db, t.workspace.id)) > 0);
}

// PII identifiers and trait values are stored as keyed-hash tokens (privacy/pii-codec.ts): lookups
// use the stored token, and trait values read from storage are opened through the vault.
async function profileOf(t: TestApp, type: string, value: string): Promise<string | undefined> {
  const { rows } = await t.db.query(
    'select profile_id from profile_identifiers where workspace_id = $1 and type = $2 and value = $3 and unbound_at is null',
    [t.workspace.id, type, (await piiCodec(t.db, t.workspace.id)).identifiers.encode(type, value)],
  );
  return rows[0]?.profile_id;
}

async function eventsOf(t: TestApp, profileId: string): Promise<string[]> {
  const { rows } = await t.db.query('select message_id from events where workspace_id = $1 and profile_id = $2 order by timestamp', [t.workspace.id, profileId]);
  return rows.map((row) => row.message_id);
}

const PHONE = '+8613800138000';

describe('identifiersToSplit (pure)', () => {
  const config = defaultIdentityConfig();
  const at = (s: string) => new Date(`2026-01-0${s}T00:00:00Z`);
  it('moves the identifier and what is connected to the profile only through it', () => {
    const ids = [
      { type: 'user_id', value: 'u-1', firstSeen: at('1') },
      { type: 'phone', value: PHONE, firstSeen: at('1') },
      { type: 'email', value: 'b@x.com', firstSeen: at('2') },
      { type: 'member_id', value: 'm-2', firstSeen: at('2') },
    ];
    const events = [
      [ids[0]!, ids[1]!],
      [ids[2]!, ids[3]!],
      [ids[2]!, ids[1]!],
    ];
    expect([...identifiersToSplit(config, ids, events, ids[1]!)].sort()).toEqual(['email:b@x.com', 'member_id:m-2', `phone:${PHONE}`]);
    // Detaching the email instead keeps the phone (it is joined to the user by event 1).
    expect([...identifiersToSplit(config, ids, events, ids[2]!)].sort()).toEqual(['email:b@x.com', 'member_id:m-2']);
  });
});

describe('unmerge and unbind on real PostgreSQL', () => {
  let t: TestApp;
  beforeEach(async () => {
    t = await startTestApp();
    await send(t, [
      { type: 'identify', userId: 'u-1', traits: { phone: '13800138000', name: 'Wang Fang' }, messageId: 'a1', timestamp: '2026-02-01T08:00:00Z' },
      { type: 'identify', anonymousId: 'x', context: { externalIds: [{ id: 'm-2', type: 'member_id' }] }, traits: { email: 'B@x.com', name: 'Wang Jun' }, messageId: 'b1', timestamp: '2026-02-02T08:00:00Z' },
    ]);
    // A store sale keyed by the family's shared phone and the son's email: the two people merge.
    await send(t, [
      { type: 'track', event: 'Order Completed', anonymousId: 'pos-1', traits: {}, context: { traits: { email: 'b@x.com', phone: '13800138000' } }, messageId: 'c1', timestamp: '2026-02-03T08:00:00Z' },
    ]);
  });
  afterEach(async () => t.close());

  it('splits a wrong merge back, re-attributes events and traits, logs it, and keeps them apart later', async () => {
    const merged = await profileOf(t, 'user_id', 'u-1');
    expect(await profileOf(t, 'member_id', 'm-2')).toBe(merged);
    const { rows: traitsBefore } = await t.db.query('select value from profile_traits where workspace_id = $1 and profile_id = $2 and key = $3', [t.workspace.id, merged, 'name']);
    expect(await openPii(t.db, t.workspace.id, traitsBefore[0].value)).toBe('Wang Jun');

    const result = await unmergeIdentifier(t.db, t.workspace.id, merged!, { type: 'phone', value: PHONE });
    expect(result.profileId).toBe(merged);
    expect(result.movedIdentifiers.map((i) => i.type).sort()).toEqual(['anonymous_id', 'anonymous_id', 'email', 'member_id', 'phone']);
    expect(await profileOf(t, 'user_id', 'u-1')).toBe(merged);
    expect(await profileOf(t, 'member_id', 'm-2')).toBe(result.newProfileId);
    expect(await eventsOf(t, merged!)).toEqual(['a1']);
    expect(await eventsOf(t, result.newProfileId)).toEqual(['b1', 'c1']);
    const traits = async (id: string) =>
      openPii(
        t.db,
        t.workspace.id,
        Object.fromEntries((await t.db.query('select key, value from profile_traits where workspace_id = $1 and profile_id = $2', [t.workspace.id, id])).rows.map((r) => [r.key, r.value])),
      );
    expect(await traits(merged!)).toEqual({ name: 'Wang Fang', phone: '13800138000' });
    expect(await traits(result.newProfileId)).toEqual({ name: 'Wang Jun', email: 'B@x.com' });

    const { rows: log } = await t.db.query('select kind, undone_at is not null as undone from identity_merges where workspace_id = $1 order by created_at', [t.workspace.id]);
    expect(log).toEqual([
      { kind: 'event', undone: true },
      { kind: 'unmerge', undone: false },
    ]);

    // The same evidence again does not re-join what an operator split.
    await send(t, [{ type: 'identify', userId: 'u-1', traits: { email: 'b@x.com' }, messageId: 'd1', timestamp: '2026-02-04T08:00:00Z' }]);
    expect(await profileOf(t, 'member_id', 'm-2')).toBe(result.newProfileId);
    expect(await eventsOf(t, merged!)).toEqual(['a1', 'd1']);
    const { rows: refusals } = await t.db.query('select reason, identifier_type from identity_refusals where workspace_id = $1 and message_id = $2', [t.workspace.id, 'd1']);
    expect(refusals).toEqual([{ reason: 'split_by_operator', identifier_type: 'email' }]);
  });

  it('unbind ends a link: later events with the identifier go elsewhere, history stays', async () => {
    const owner = (await profileOf(t, 'user_id', 'u-1'))!;
    await unbindIdentifier(t.db, t.workspace.id, owner, { type: 'phone', value: PHONE }, 'number released');
    expect(await profileOf(t, 'phone', PHONE)).toBeUndefined();
    await send(t, [{ type: 'identify', anonymousId: 'new-device', traits: { phone: '138 0013 8000' }, messageId: 'e1', timestamp: '2026-03-01T08:00:00Z' }]);
    const newOwner = await profileOf(t, 'phone', PHONE);
    expect(newOwner).toBeDefined();
    expect(newOwner).not.toBe(owner);
    expect(await eventsOf(t, owner)).toEqual(['a1', 'b1', 'c1']);
    expect(await eventsOf(t, newOwner!)).toEqual(['e1']);
    const { rows } = await t.db.query(
      'select unbound_reason from profile_identifiers where workspace_id = $1 and profile_id = $2 and type = $3',
      [t.workspace.id, owner, 'phone'],
    );
    expect(rows).toEqual([{ unbound_reason: 'number released' }]);
  });

  it('refuses to unmerge an identifier a profile does not have', async () => {
    const owner = (await profileOf(t, 'user_id', 'u-1'))!;
    await expect(unmergeIdentifier(t.db, t.workspace.id, owner, { type: 'email', value: 'nobody@x.com' })).rejects.toThrow(/not a live identifier/);
  });
});
