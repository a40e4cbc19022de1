import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { QueuedEvent } from '../src/identity/batch.ts';
import { consentObservations } from '../src/identity/consents.ts';
import { mergeProfiles } from '../src/identity/merge.ts';
import { resolveQueuedEvents } from '../src/identity/resolver.ts';
import { unmergeIdentifier } from '../src/identity/unmerge.ts';
import { piiCodec } from '../src/privacy/pii-codec.ts';
import { basicAuth, startTestApp, type TestApp } from './support/app.ts';

function event(seq: number, timestamp: string, context: Record<string, unknown> | null): QueuedEvent {
  return {
    seq,
    messageId: `m${seq}`,
    timestamp: new Date(timestamp),
    sourceId: 'src',
    type: 'track',
    userId: 'u',
    anonymousId: null,
    previousId: null,
    traits: null,
    context,
  };
}

describe('consentObservations (pure)', () => {
  const prefs = (categoryPreferences: unknown) => ({ consent: { categoryPreferences } });

  it('keeps the latest observation per profile and category, by time then arrival', () => {
    const events = [
      event(1, '2026-03-02T00:00:00Z', prefs({ sms: true, email: false })),
      event(2, '2026-03-01T00:00:00Z', prefs({ sms: false })), // older, arrived later: loses
      event(3, '2026-03-02T00:00:00Z', prefs({ email: true })), // same time, arrived later: wins
      event(4, '2026-03-05T00:00:00Z', prefs({ sms: false })), // another profile
    ];
    const owners = new Map([
      [1, 'p1'],
      [2, 'p1'],
      [3, 'p1'],
      [4, 'p2'],
    ]);
    const { observations, ignored } = consentObservations(events, owners);
    const summary = observations.map((o) => `${o.profileId}:${o.category}=${o.granted}@${o.messageId}`).sort();
    expect(summary).toEqual(['p1:email=true@m3', 'p1:sms=true@m1', 'p2:sms=false@m4']);
    expect(ignored).toEqual([]);
  });

  it('ignores and reports values that are not booleans, and malformed preferences', () => {
    const events = [
      event(1, '2026-03-01T00:00:00Z', prefs({ sms: 'yes', email: 1, push: null, ok: true })),
      event(2, '2026-03-01T00:00:00Z', prefs(['sms'])),
      event(3, '2026-03-01T00:00:00Z', { consent: 'all' }),
      event(4, '2026-03-01T00:00:00Z', { consent: {} }), // no preferences: nothing to say
      event(5, '2026-03-01T00:00:00Z', null),
    ];
    const owners = new Map([1, 2, 3, 4, 5].map((seq) => [seq, 'p1'] as const));
    const { observations, ignored } = consentObservations(events, owners);
    expect(observations.map((o) => o.category)).toEqual(['ok']);
    expect(ignored.map((i) => `${i.messageId}:${i.category}:${i.reason}`)).toEqual([
      'm1:sms:not_boolean',
      'm1:email:not_boolean',
      'm1:push:not_boolean',
      'm2:null:malformed',
      'm3:null:malformed',
    ]);
  });

  it('stores nothing for an event that belongs to no profile', () => {
    expect(consentObservations([event(1, '2026-03-01T00:00:00Z', prefs({ sms: true }))], new Map()).observations).toEqual([]);
  });
});

describe('consents on real PostgreSQL', () => {
  let t: TestApp;
  const send = async (batch: unknown[]) => {
    const res = await t.app.inject({ method: 'POST', url: '/v1/batch', headers: { authorization: basicAuth(t.writeKey) }, payload: { batch } });
    expect(res.json()).toMatchObject({ rejected: [] });
    while ((await resolveQueuedEvents(t.db, t.workspace.id)) > 0);
  };
  // PII identifiers are stored as keyed-hash tokens (privacy/pii-codec.ts): looked up by the stored token.
  const owner = async (type: string, value: string) =>
    (
      await t.db.query('select profile_id from profile_identifiers where workspace_id = $1 and type = $2 and value = $3 and unbound_at is null', [
        t.workspace.id,
        type,
        (await piiCodec(t.db, t.workspace.id)).identifiers.encode(type, value),
      ])
    ).rows[0]?.profile_id as string;
  const consents = async (profileId: string) => {
    const { rows } = await t.db.query<{ category: string; granted: boolean; message_id: string }>(
      'select category, granted, message_id from profile_consents where workspace_id = $1 and profile_id = $2 order by category',
      [t.workspace.id, profileId],
    );
    return Object.fromEntries(rows.map((row) => [row.category, `${row.granted}@${row.message_id}`]));
  };
  const consent = (categoryPreferences: unknown) => ({ consent: { categoryPreferences } });

  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(async () => t.close());

  it('stores the latest observation per category across batches; an older one arriving later does not win', async () => {
    await send([
      { type: 'track', event: 'Signed Up', userId: 'c-1', context: consent({ sms: true, email: true }), messageId: 'c1', timestamp: '2026-03-02T00:00:00Z' },
    ]);
    await send([
      { type: 'track', event: 'Opted Out', userId: 'c-1', context: consent({ sms: false }), messageId: 'c2', timestamp: '2026-03-03T00:00:00Z' },
      { type: 'track', event: 'Late', userId: 'c-1', context: consent({ email: false }), messageId: 'c3', timestamp: '2026-03-01T00:00:00Z' },
    ]);
    expect(await consents(await owner('user_id', 'c-1'))).toEqual({ email: 'true@c1', sms: 'false@c2' });
  });

  it('counts non-boolean values as ignored and stores the rest of the event', async () => {
    await send([
      { type: 'track', event: 'Prefs', userId: 'c-2', context: consent({ sms: 'yes', push: true }), messageId: 'c4', timestamp: '2026-03-02T00:00:00Z' },
    ]);
    expect(await consents(await owner('user_id', 'c-2'))).toEqual({ push: 'true@c4' });
    const { rows } = await t.db.query(
      `select reason, count from identity_ignored_counts where workspace_id = $1 and identifier_type = 'consent'`,
      [t.workspace.id],
    );
    expect(rows).toEqual([{ reason: 'not_boolean', count: 1 }]);
  });

  it('a merge in resolution moves consents to the survivor, the latest observation per category winning', async () => {
    await send([
      { type: 'track', event: 'A', userId: 'm-1', context: consent({ sms: true, email: false }), messageId: 'm1', timestamp: '2026-03-05T00:00:00Z' },
      { type: 'track', event: 'B', anonymousId: 'anon-m', context: consent({ sms: false, push: true }), messageId: 'm2', timestamp: '2026-03-04T00:00:00Z' },
      { type: 'track', event: 'C', anonymousId: 'anon-m2', context: consent({ email: true }), messageId: 'm3', timestamp: '2026-03-06T00:00:00Z' },
    ]);
    const survivor = await owner('user_id', 'm-1');
    const absorbed = [await owner('anonymous_id', 'anon-m'), await owner('anonymous_id', 'anon-m2')];
    expect(new Set([survivor, ...absorbed]).size).toBe(3);
    // Both anonymous profiles join the user in a later batch, by an event with no consent of its own.
    await send([{ type: 'identify', userId: 'm-1', anonymousId: 'anon-m', messageId: 'm4', timestamp: '2026-03-07T00:00:00Z' }]);
    await send([{ type: 'identify', userId: 'm-1', anonymousId: 'anon-m2', messageId: 'm5', timestamp: '2026-03-07T00:00:01Z' }]);
    expect(await owner('anonymous_id', 'anon-m')).toBe(survivor);
    expect(await consents(survivor)).toEqual({ email: 'true@m3', push: 'true@m2', sms: 'true@m1' });
    for (const id of absorbed) expect(await consents(id)).toEqual({});
  });

  it('an operator merge moves consents too, and unmerge gives each side the consents of its own events', async () => {
    await send([
      { type: 'track', event: 'A', userId: 'o-1', context: consent({ sms: false }), messageId: 'o1', timestamp: '2026-03-01T00:00:00Z' },
      { type: 'identify', anonymousId: 'crm-o', traits: { email: 'o@x.cn' }, context: consent({ sms: true }), messageId: 'o2', timestamp: '2026-03-02T00:00:00Z' },
    ]);
    const user = await owner('user_id', 'o-1');
    const crm = await owner('email', 'o@x.cn');
    const { survivorId } = await mergeProfiles(t.db, t.workspace.id, [user, crm], { kind: 'manual' });
    expect(survivorId).toBe(user);
    expect(await consents(user)).toEqual({ sms: 'true@o2' });
    expect(await consents(crm)).toEqual({});

    const split = await unmergeIdentifier(t.db, t.workspace.id, user, { type: 'email', value: 'o@x.cn' });
    expect(await consents(user)).toEqual({ sms: 'false@o1' });
    expect(await consents(split.newProfileId)).toEqual({ sms: 'true@o2' });
  });
});
