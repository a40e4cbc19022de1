import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mergeProfiles } from '../src/identity/merge.ts';
import { resolveQueuedEvents } from '../src/identity/resolver.ts';
import { unbindIdentifier } from '../src/identity/unmerge.ts';
import { piiCodec } from '../src/privacy/pii-codec.ts';
import type { Condition, EventMatch } from '../src/segments/ast.ts';
import { conditionReads, emptyReads, loadProfileSnapshots, snapshotNeeds } from '../src/segments/snapshots.ts';
import { basicAuth, startTestApp, type TestApp } from './support/app.ts';

const NOW = Date.parse('2026-03-31T00:00:00Z');
const DAY = 86_400_000;
const track = (name: string, filters: EventMatch['filters'] = []): EventMatch => ({ type: 'track', name, filters });
const last = (days: number) => ({ kind: 'last' as const, duration: { amount: days, unit: 'days' as const } });

describe('what a set of conditions needs loaded (pure)', () => {
  it('bounds each event name by the widest window that reads it; one unbounded reference loads its whole history', () => {
    const reads = emptyReads();
    const conditions: Condition[] = [
      { kind: 'event', match: track('Order Completed'), window: last(7), measure: { kind: 'exists' } },
      { kind: 'event', match: track('Order Completed'), window: last(90), measure: { kind: 'sum', property: 'revenue', test: { op: 'gt', value: 500 } } },
      { kind: 'event', match: track('App Opened'), window: last(7), measure: { kind: 'exists' } },
      { kind: 'event', match: track('App Opened'), measure: { kind: 'exists' } },
      { kind: 'event', match: { type: 'page', filters: [] }, window: last(30), measure: { kind: 'exists' } },
      {
        kind: 'sequence',
        first: { type: 'screen', name: 'Cart', filters: [] },
        then: track('Checkout Started'),
        negated: true,
        within: { amount: 1, unit: 'days' },
        window: { kind: 'range', from: '2026-03-01' },
      },
    ];
    for (const condition of conditions) conditionReads(condition, reads);
    const needs = snapshotNeeds(reads, NOW);
    const march = Date.parse('2026-03-01T00:00:00Z');
    expect([...needs.events.track.names]).toEqual([
      ['Order Completed', { since: NOW - 90 * DAY, properties: true }],
      ['App Opened', { since: null, properties: false }],
      ['Checkout Started', { since: march, properties: false }],
    ]);
    expect(needs.events.track.all).toBeNull();
    expect(needs.events.page).toEqual({ all: { since: NOW - 30 * DAY, properties: false }, names: new Map() });
    expect([...needs.events.screen.names]).toEqual([['Cart', { since: march, properties: false }]]);
    expect(needs.context).toBe(false);
    expect([needs.traits, needs.identifiers, needs.consents]).toEqual([false, false, false]);
  });

  it('notes reads of traits, identifiers, consents, other segments and event context', () => {
    const reads = conditionReads({
      kind: 'and',
      conditions: [
        { kind: 'trait', trait: 'city', op: 'eq', value: '上海' },
        { kind: 'not', condition: { kind: 'identifier', type: 'email' } },
        { kind: 'or', conditions: [{ kind: 'consent', category: 'sms' }, { kind: 'segment', segment: 'vip' }] },
        { kind: 'event', match: track('Viewed', [{ property: 'context.campaign.source', op: 'eq', value: 'wechat' }]), measure: { kind: 'exists' } },
      ],
    });
    expect([reads.traits, reads.identifiers, reads.consents, [...reads.segments]]).toEqual([true, true, true, ['vip']]);
    expect(snapshotNeeds(reads, NOW).context).toBe(true);
    const measured = conditionReads({
      kind: 'event',
      match: track('Viewed'),
      measure: { kind: 'last_value', property: 'context.page.path', test: { op: 'exists' } },
    });
    expect(snapshotNeeds(measured, NOW).context).toBe(true);
  });
});

describe('loadProfileSnapshots on real PostgreSQL', () => {
  let t: TestApp;
  let profile: string;
  let merged: string;
  let segmentId: string;

  // PII identifiers are stored as keyed-hash tokens (privacy/pii-codec.ts): looked up by the stored token.
  const owner = async (type: string, value: string) =>
    (
      await t.db.query('select profile_id from profile_identifiers where workspace_id = $1 and type = $2 and value = $3 and unbound_at is null', [
        t.workspace.id,
        type,
        (await piiCodec(t.db, t.workspace.id)).identifiers.encode(type, value),
      ])
    ).rows[0]?.profile_id as string;

  beforeAll(async () => {
    t = await startTestApp();
    const iso = (ms: number) => new Date(ms).toISOString();
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/batch',
      headers: { authorization: basicAuth(t.writeKey) },
      payload: {
        batch: [
          { type: 'identify', userId: 'u-1', traits: { city: '上海', email: 'a@x.cn', phone: '13800138000' }, messageId: 'i1', timestamp: iso(NOW - 60 * DAY) },
          { type: 'track', event: 'Order Completed', userId: 'u-1', properties: { revenue: 5 }, context: { campaign: { source: 'sms' } }, messageId: 'o-old', timestamp: iso(NOW - 60 * DAY) },
          { type: 'track', event: 'Order Completed', userId: 'u-1', properties: { revenue: 9 }, messageId: 'o-new', timestamp: iso(NOW - DAY) },
          { type: 'track', event: 'Other', userId: 'u-1', messageId: 'x', timestamp: iso(NOW - DAY) },
          { type: 'page', name: 'Home', userId: 'u-1', messageId: 'p-old', timestamp: iso(NOW - 40 * DAY) },
          { type: 'page', name: 'Home', userId: 'u-1', messageId: 'p-new', timestamp: iso(NOW - 2 * DAY) },
          { type: 'track', event: 'Signed Up', userId: 'u-1', context: { consent: { categoryPreferences: { sms: true, email: false } } }, messageId: 'c', timestamp: iso(NOW - DAY) },
          { type: 'identify', anonymousId: 'gone', traits: { email: 'gone@x.cn' }, messageId: 'g', timestamp: iso(NOW - DAY) },
        ],
      },
    });
    expect(res.json()).toMatchObject({ rejected: [] });
    while ((await resolveQueuedEvents(t.db, t.workspace.id)) > 0);
    profile = await owner('user_id', 'u-1');
    await unbindIdentifier(t.db, t.workspace.id, profile, { type: 'phone', value: '+8613800138000' });
    const gone = await owner('email', 'gone@x.cn');
    // A second profile merged away: left out of any batch that still names it.
    const merge = await mergeProfiles(t.db, t.workspace.id, [profile, gone], { kind: 'manual' });
    merged = merge.absorbedIds[0]!;
    const { rows } = await t.db.query<{ id: string }>(
      `insert into segments (workspace_id, key, name, kind, definition, state) values ($1, 'vip', 'VIP', 'static', null, 'ready') returning id`,
      [t.workspace.id],
    );
    segmentId = rows[0]!.id;
    await t.db.query(`insert into segment_memberships (workspace_id, segment_id, profile_id, entered_at) values ($1, $2, $3, now())`, [
      t.workspace.id,
      segmentId,
      profile,
    ]);
  });
  afterAll(async () => t.close());

  const reads = (...conditions: Condition[]) => {
    const into = emptyReads();
    for (const condition of conditions) conditionReads(condition, into);
    return into;
  };

  it('loads only the events the conditions can match, from their windows, and the parts they read', async () => {
    const needs = snapshotNeeds(
      reads(
        { kind: 'event', match: track('Order Completed'), window: last(7), measure: { kind: 'exists' } },
        { kind: 'event', match: { type: 'page', filters: [] }, window: last(30), measure: { kind: 'exists' } },
        { kind: 'trait', trait: 'city', op: 'exists' },
      ),
      NOW,
    );
    const [snapshot, ...rest] = await loadProfileSnapshots(t.db, t.workspace.id, [profile, merged], needs);
    expect(rest).toEqual([]); // the merged-away profile is left out
    expect(snapshot!.profileId).toBe(profile);
    expect(snapshot!.events.map((e) => `${e.type}:${e.event ?? e.name}:${(NOW - e.timestamp) / DAY}d`).sort()).toEqual([
      'page:Home:2d',
      'track:Order Completed:1d',
    ]);
    expect(snapshot!.events[0]!.context).toBeNull();
    expect(snapshot!.traits).toMatchObject({ city: '上海' });
    expect([snapshot!.identifierTypes.size, snapshot!.consents.size, snapshot!.memberships.size]).toEqual([0, 0, 0]);
  });

  it('loads a named page further back than an every-page window reaches, and properties only of events whose properties are read', async () => {
    const needs = snapshotNeeds(
      reads(
        { kind: 'event', match: { type: 'page', filters: [] }, window: last(30), measure: { kind: 'exists' } },
        { kind: 'event', match: { type: 'page', name: 'Home', filters: [] }, measure: { kind: 'count', test: { op: 'gte', value: 2 } } },
        { kind: 'event', match: track('Order Completed'), measure: { kind: 'sum', property: 'revenue', test: { op: 'gt', value: 0 } } },
        { kind: 'event', match: track('Other'), measure: { kind: 'exists' } },
      ),
      NOW,
    );
    const [snapshot] = await loadProfileSnapshots(t.db, t.workspace.id, [profile], needs);
    const seen = snapshot!.events.map((e) => `${e.event ?? e.name}:${(NOW - e.timestamp) / DAY}d:${JSON.stringify(e.properties)}`).sort();
    expect(seen).toEqual(['Home:2d:null', 'Home:40d:null', 'Order Completed:1d:{"revenue":9}', 'Order Completed:60d:{"revenue":5}', 'Other:1d:null']);
  });

  it('loads the whole history of an unbounded name, context when read, live identifier types, consents and memberships by key', async () => {
    const needs = snapshotNeeds(
      reads(
        { kind: 'event', match: track('Order Completed', [{ property: 'context.campaign.source', op: 'exists' }]), measure: { kind: 'exists' } },
        { kind: 'identifier', type: 'email' },
        { kind: 'consent', category: 'sms' },
      ),
      NOW,
    );
    needs.memberships = new Map([[segmentId, 'vip']]);
    const [snapshot] = await loadProfileSnapshots(t.db, t.workspace.id, [profile], needs, t.db);
    const orders = [...snapshot!.events].sort((a, b) => a.timestamp - b.timestamp);
    // Only the context is read: the properties stay in the database.
    expect(orders.map((e) => [e.event, e.properties, e.context?.campaign ?? null])).toEqual([
      ['Order Completed', null, { source: 'sms' }],
      ['Order Completed', null, null],
    ]);
    expect(orders[1]!.timestamp).toBe(NOW - DAY);
    expect([...snapshot!.identifierTypes].sort()).toEqual(['anonymous_id', 'email', 'user_id']); // the phone was unbound
    expect(Object.fromEntries(snapshot!.consents)).toEqual({ sms: true, email: false });
    expect([...snapshot!.memberships]).toEqual(['vip']);
  });
});
