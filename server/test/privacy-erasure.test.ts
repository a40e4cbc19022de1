import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { personalDataSteps } from '../src/privacy/registry.ts';
import '../src/privacy/steps.ts';
import type { Db } from '../src/storage/database.ts';
import { basicAuth, startTestApp, type TestApp } from './support/app.ts';
import { drain, send, serverKey } from './profiles-support.ts';

const EMAIL = 'erase.me@example.com';
const PHONE = '+8613812345678';
const USER_ID = 'u-erase-1';
const ANON_1 = 'anon-erase-first-visit';
const ANON_2 = 'anon-erase-second-device';
const NAME = 'Erasmus Vanishing';

/** The person's events: two devices merged by an identify, a purchase, and a later visit. */
const personEvents = (prefix: string) => [
  { type: 'page', anonymousId: ANON_1, name: 'Home', messageId: `${prefix}-1`, timestamp: '2026-01-01T10:00:00Z' },
  { type: 'track', anonymousId: ANON_2, event: 'Viewed', properties: { sku: 'A1' }, messageId: `${prefix}-2`, timestamp: '2026-01-02T10:00:00Z' },
  { type: 'identify', anonymousId: ANON_1, userId: USER_ID, traits: { email: 'Erase.Me@Example.com', phone: PHONE, name: NAME, plan: 'pro' }, messageId: `${prefix}-3`, timestamp: '2026-01-03T10:00:00Z' },
  { type: 'identify', anonymousId: ANON_2, userId: USER_ID, messageId: `${prefix}-4`, timestamp: '2026-01-04T10:00:00Z' },
  { type: 'track', userId: USER_ID, event: 'Order Completed', properties: { total: 99, contact: EMAIL }, messageId: `${prefix}-5`, timestamp: '2026-01-05T10:00:00Z' },
];

/**
 * Every row of every table in the public schema (partitions included) whose text contains one of
 * the values, skipping the rows of `otherWorkspace` (which holds its own person with the same
 * identifiers). Row-to-text covers every column, jsonb and arrays included.
 */
async function residue(db: Db, values: string[], options: { otherWorkspace?: string; exceptTables?: string[] } = {}): Promise<string[]> {
  const { rows: tables } = await db.query<{ name: string; scoped: boolean }>(
    `select quote_ident(t.table_name) as name,
            exists (select 1 from information_schema.columns c
                     where c.table_schema = t.table_schema and c.table_name = t.table_name and c.column_name = 'workspace_id') as scoped
       from information_schema.tables t where t.table_schema = 'public' and t.table_type = 'BASE TABLE' order by 1`,
  );
  const found: string[] = [];
  for (const { name, scoped } of tables) {
    if (options.exceptTables?.includes(name)) continue;
    for (const value of values) {
      const { rows } = await db.query<{ n: string }>(
        `select count(*) as n from ${name} t where position(lower($1) in lower(t::text)) > 0 ${scoped ? 'and t.workspace_id is distinct from $2::uuid' : 'and ($2::uuid is null or $2::uuid is not null)'}`,
        [value, options.otherWorkspace ?? null],
      );
      if (Number(rows[0]!.n) > 0) found.push(`${name} holds ${rows[0]!.n} row(s) with "${value}"`);
    }
  }
  return found;
}

describe('data-subject rights: access export, erasure, suppression (real PostgreSQL)', () => {
  let t: TestApp;
  let key: string;
  let beta: Awaited<ReturnType<TestApp['addWorkspace']>>;
  let profileIds: string[];
  const call = (method: 'GET' | 'POST' | 'PUT', url: string, payload?: object, token = key) =>
    t.app.inject({ method, url, headers: { authorization: `Bearer ${token}` }, ...(payload ? { payload } : {}) });

  beforeAll(async () => {
    t = await startTestApp();
    key = await serverKey(t);
    beta = await t.addWorkspace('beta');
    await send(t, t.writeKey, personEvents('a'));
    // Someone else in the same workspace, and the same person's identifiers in another workspace.
    await send(t, t.writeKey, [{ type: 'identify', userId: 'u-keep', traits: { email: 'keep@example.com', plan: 'pro' }, messageId: 'k-1', timestamp: '2026-01-03T10:00:00Z' }]);
    await send(t, beta.writeKey, personEvents('b'));
    // An item refused at collection that names the person.
    await t.app.inject({ method: 'POST', url: '/v1/track', headers: { authorization: basicAuth(t.writeKey) }, payload: { userId: USER_ID, properties: { note: 'no event name' }, messageId: 'q-1' } });
    await drain(t);
    await drain(t, beta.workspace.id);
    const segment = await call('POST', '/v1/segments', { key: 'pro', name: 'Pro', kind: 'realtime', text: 'trait.plan = "pro"' });
    expect(segment.statusCode).toBe(201);
    const { rows } = await t.db.query<{ id: string }>(`select id from profiles where workspace_id = $1`, [t.workspace.id]);
    profileIds = rows.map((row) => row.id);
  });
  afterAll(async () => t?.close());

  it('registers a step for every core table with personal data', () => {
    expect(personalDataSteps().map((step) => step.name)).toEqual(
      expect.arrayContaining(['events', 'quarantine', 'profile_traits', 'segment_memberships', 'identity_history', 'profile_identifiers', 'profiles']),
    );
    expect(personalDataSteps().at(-1)!.name).toBe('profiles'); // the profiles themselves go last
  });

  it('exports everything held about the person, found by any of their identifiers', async () => {
    const exported = await call('POST', '/v1/privacy/exports', { subject: `phone:${PHONE}`, reason: 'ticket 1' });
    expect(exported.statusCode).toBe(200);
    const body = exported.json() as { request: { kind: string; status: string; subjectType: string }; subject: { identifiers: Array<{ type: string; value: string }>; profileIds: string[] }; data: Record<string, unknown[]> };
    expect(body.request).toMatchObject({ kind: 'access', status: 'completed', subjectType: 'phone' });
    expect(body.subject.identifiers).toEqual(
      expect.arrayContaining([
        { type: 'email', value: EMAIL },
        { type: 'phone', value: PHONE },
        { type: 'user_id', value: USER_ID },
        { type: 'anonymous_id', value: ANON_1 },
        { type: 'anonymous_id', value: ANON_2 },
      ]),
    );
    // The five sent, and the 'Segment Entered' event Touchpoint wrote on the profile (docs/events.md).
    const events = body.data.events as Array<{ message_id: string; event: string | null }>;
    expect(events.filter((event) => event.message_id.startsWith('a-')).map((event) => event.message_id)).toEqual(['a-1', 'a-2', 'a-3', 'a-4', 'a-5']);
    expect(events.map((event) => event.event)).toContain('Segment Entered');
    expect(body.data.profile_traits).toEqual(expect.arrayContaining([expect.objectContaining({ key: 'name', value: NAME })]));
    expect(body.data.segment_memberships).toEqual([expect.objectContaining({ segment: 'pro' })]);
    expect(body.data.quarantine).toHaveLength(1);
    // The same answer by another identifier.
    const byAnon = (await call('POST', '/v1/privacy/exports', { subject: `anonymous_id:${ANON_2}` })).json() as { subject: { profileIds: string[] } };
    expect(byAnon.subject.profileIds.sort()).toEqual(body.subject.profileIds.sort());
    // An export never leaks another workspace's person with the same identifiers.
    expect(JSON.stringify(body)).not.toContain(beta.workspace.id);
  });

  it('refuses a subject that can never identify anyone, naming the field', async () => {
    const bad = await call('POST', '/v1/privacy/erasures', { subject: 'not-an-identifier' });
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toMatchObject({ field: 'subject' });
  });

  it('erases the person from every table, leaves others and other workspaces alone, and records the request', async () => {
    const { rows: before } = await t.db.query<{ profile_id: string }>(`select distinct profile_id from profile_identifiers where workspace_id = $1 and value = $2`, [t.workspace.id, USER_ID]);
    const personProfiles = (await t.db.query<{ id: string }>(`select id from profiles where workspace_id = $1 and (id = $2 or merged_into = $2)`, [t.workspace.id, before[0]!.profile_id])).rows.map((row) => row.id);
    const keepProfile = profileIds.find((id) => !personProfiles.includes(id))!;

    // What later modules hold about the person: a journey instance and its steps, a message with
    // its history, a subscription choice, a suppressed address, decisions, an assignment, an item history.
    const person = personProfiles[0]!;
    const ws = t.workspace.id;
    await t.db.query(
      `with i as (
         insert into journey_instances (workspace_id, journey_id, version, profile_id, status, node_id, phase, entry, entered_at)
         values ($1, gen_random_uuid(), 1, $2, 'active', 'wait-1', 'wait', 'api', now()) returning id, journey_id
       )
       insert into journey_steps (workspace_id, instance_id, step, journey_id, version, node_id, kind, at, outcome)
       select $1, i.id, 1, i.journey_id, 1, 'entry', 'entry', now(), 'next' from i`,
      [ws, person],
    );
    await t.db.query(
      `with m as (
         insert into messages (workspace_id, idempotency_key, profile_id, channel, template_key, purpose, address, status, due_at)
         values ($1, 'erasure-test-1', $2, 'email', 'welcome', 'marketing', $3, 'queued', now() + interval '1 day') returning id
       )
       insert into message_status_history (workspace_id, message_id, status, at) select $1, m.id, 'queued', now() from m`,
      [ws, person, EMAIL],
    );
    await t.db.query(`insert into profile_subscriptions (workspace_id, profile_id, group_key, subscribed, source) values ($1, $2, 'news', false, 'test')`, [ws, person]);
    await t.db.query(`insert into channel_suppressions (workspace_id, channel, address, reason) values ($1, 'email', $2, 'bounced')`, [ws, EMAIL]);
    await t.db.query(
      `insert into decisions (workspace_id, id, placement_id, placement_version, profile_id, subject, policy, holdout, propensity, reason, decided_at)
       values ($1, gen_random_uuid(), gen_random_uuid(), 1, $2, $3, 'rules', false, 1, 'test', now()),
              ($1, gen_random_uuid(), gen_random_uuid(), 1, null, $4, 'rules', false, 1, 'test', now())`,
      [ws, person, person, `anonymous:${ANON_2}`],
    );
    await t.db.query(`insert into decision_assignments (workspace_id, placement_id, subject, content_key, propensity, assigned_at) values ($1, gen_random_uuid(), $2, 'a', 0.5, now())`, [ws, person]);
    await t.db.query(`insert into decision_profile_items (workspace_id, profile_id, item_id, weight, bought, last_at) values ($1, $2, 'sku-1', 1, true, now())`, [ws, person]);

    // The residue search does find the person before erasure.
    expect(await residue(t.db, [EMAIL, USER_ID], { otherWorkspace: beta.workspace.id })).toEqual(
      expect.arrayContaining([expect.stringMatching(/^events holds/), expect.stringMatching(/^profile_identifiers holds/)]),
    );
    // Quarantined payloads are sealed at rest (privacy/sealed-payloads.ts): the text search cannot
    // see the person's item there, erasure finds it by keyed hashes.
    const quarantinedItem = `select 1 from quarantine where workspace_id = $1 and message_id = 'q-1'`;
    expect((await t.db.query(quarantinedItem, [ws])).rowCount).toBe(1);
    const erased = await call('POST', '/v1/privacy/erasures', { subject: `email:${EMAIL.toUpperCase()}`, reason: 'GDPR art. 17, ticket 2' });
    expect(erased.statusCode).toBe(201);
    const request = erased.json() as { id: string; status: string; result: Record<string, number>; dueAt: string; overdue: boolean };
    expect(request).toMatchObject({ status: 'completed', overdue: false });
    expect(request.result.events).toBe(6);
    expect(request.result.profiles).toBe(personProfiles.length);
    expect(request.result.suppressed_identifiers).toBe(5);
    expect(new Date(request.dueAt).getTime() - Date.now()).toBeGreaterThan(29 * 24 * 3600 * 1000);

    // Residue: nothing anywhere holds the person's identifiers, traits or profile ids. The audit
    // log keeps pseudonymous profile ids of past requests (they now lead nowhere), never identifiers.
    const leftovers = await residue(t.db, [EMAIL, PHONE.slice(1), USER_ID, ANON_1, ANON_2, NAME], { otherWorkspace: beta.workspace.id });
    expect(leftovers, leftovers.join('\n')).toEqual([]);
    expect((await t.db.query(quarantinedItem, [ws])).rowCount).toBe(0);
    // Beta's person with the same identifiers is untouched.
    const inOtherWorkspace = (await t.db.query<{ n: string }>(`select count(*) as n from profile_identifiers where workspace_id = $1 and value = $2`, [beta.workspace.id, USER_ID])).rows[0]!.n;
    expect(Number(inOtherWorkspace)).toBe(1);
    const idLeftovers = await residue(t.db, personProfiles, { exceptTables: ['audit_log'] });
    expect(idLeftovers, idLeftovers.join('\n')).toEqual([]);

    // The other person is whole; the segment counts only them.
    expect((await t.db.query('select 1 from profiles where workspace_id = $1 and id = $2', [t.workspace.id, keepProfile])).rowCount).toBe(1);
    const segment = (await call('GET', '/v1/segments/pro')).json() as { memberCount: number };
    expect(segment.memberCount).toBe(1);
    // The request is listed; its subject is not readable in it.
    const listed = (await call('GET', '/v1/privacy/requests?kind=erasure')).json() as { items: Array<{ id: string; subjectType: string }> };
    expect(listed.items).toEqual([expect.objectContaining({ id: request.id, subjectType: 'email' })]);
  });

  it('drops the erased person re-sent by an SDK at collection, counts it, and does not re-create them', async () => {
    await send(t, t.writeKey, [
      { type: 'track', userId: USER_ID, event: 'Came Back', messageId: 'again-1' },
      { type: 'page', anonymousId: ANON_2, name: 'Home', messageId: 'again-2' },
      { type: 'identify', anonymousId: 'brand-new-anon', traits: { email: EMAIL }, messageId: 'again-3' },
      { type: 'track', userId: 'u-someone-new', event: 'Signed Up', messageId: 'again-4' },
    ]);
    await drain(t);
    const { rows } = await t.db.query<{ message_id: string }>(`select message_id from events where workspace_id = $1 and message_id like 'again-%'`, [t.workspace.id]);
    expect(rows.map((row) => row.message_id)).toEqual(['again-4']);
    const suppressions = (await call('GET', '/v1/privacy/suppressions')).json() as { items: Array<{ identifierType: string; count: number; droppedEvents: number }> };
    expect(suppressions.items.reduce((sum, item) => sum + item.droppedEvents, 0)).toBe(3);
    expect(suppressions.items.find((item) => item.identifierType === 'anonymous_id')).toMatchObject({ count: 2 });
    const recreated = await residue(t.db, [EMAIL, USER_ID, ANON_2], { otherWorkspace: beta.workspace.id });
    expect(recreated, recreated.join('\n')).toEqual([]);
    // The other workspace still collects the same identifiers.
    await send(t, beta.writeKey, [{ type: 'track', userId: USER_ID, event: 'Still Here', messageId: 'beta-again' }]);
    const inBeta = await t.db.query(`select 1 from events where workspace_id = $1 and message_id = 'beta-again'`, [beta.workspace.id]);
    expect(inBeta.rowCount).toBe(1);
  });

  it('only callers with privacy permissions may erase or export', async () => {
    const { createKey } = await import('../src/workspaces/store.ts');
    const reader = (await createKey(t.db, t.workspace.id, { kind: 'server', permissions: ['profiles.read'] })).key;
    expect((await call('POST', '/v1/privacy/erasures', { subject: 'user_id:u-keep' }, reader)).statusCode).toBe(403);
    expect((await call('POST', '/v1/privacy/exports', { subject: 'user_id:u-keep' }, reader)).statusCode).toBe(403);
  });
});
