import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Condition } from '../src/segments/ast.ts';
import { encodePiiCondition, piiConditionIssues } from '../src/privacy/pii-segments.ts';
import { rotateDataKey } from '../src/privacy/data-keys.ts';
import { encryptExistingPii, reencryptPii } from '../src/privacy/pii-backfill.ts';
import { isEncryptedKey, PiiCodec, piiCodec, tokenizeForResolution } from '../src/privacy/pii-codec.ts';
import type { Db } from '../src/storage/database.ts';
import { startTestApp, type TestApp } from './support/app.ts';
import { cli } from './support/cli.ts';
import { drain, profileUrl, send, serverKey } from './profiles-support.ts';
import { userWithRole } from './privacy-support.ts';

const EMAIL = 'Zhao.Lei@Example.com';
const PHONE = '+8613912345678';
const NAME = 'Zhao Leiming';
const ADDRESS = '88 Nanjing West Road';
const ID_NUMBER = '110101199003071234';

/** Every spelling a value could be stored in. */
const spellings = [EMAIL, EMAIL.toLowerCase(), PHONE, '13912345678', NAME, ADDRESS, ID_NUMBER];

/** Rows of the workspace's personal-data tables whose text holds any spelling of the person's PII. */
async function plaintextRows(db: Db, workspaceId: string, values = spellings): Promise<string[]> {
  const found: string[] = [];
  for (const table of ['profile_identifiers', 'profile_traits', 'profile_trait_history', 'events', 'identity_merges', 'identity_refusals', 'pii_vault']) {
    for (const value of values) {
      const { rows } = await db.query<{ n: string }>(`select count(*) as n from ${table} t where t.workspace_id = $1 and position(lower($2) in lower(t::text)) > 0`, [
        workspaceId,
        value,
      ]);
      if (Number(rows[0]!.n) > 0) found.push(`${table}: ${rows[0]!.n} row(s) with ${value}`);
    }
  }
  return found;
}

describe('PII codec (pure)', () => {
  const keys = { number: 1, key: crypto.randomBytes(32) };
  const codecFor = (ws: string, hashKey = HASH_KEY) => new PiiCodec(ws, hashKey, keys, new Map([[1, keys.key]]));
  const HASH_KEY = crypto.randomBytes(32);
  const WS = '00000000-0000-4000-8000-0000000000c1';

  it('seals PII fields of events, opens them again, and leaves other fields alone', () => {
    const codec = codecFor(WS);
    const event = {
      properties: { total: 10, email: EMAIL },
      traits: { phone: PHONE, plan: 'pro', address: { street: ADDRESS } },
      context: { traits: { name: NAME }, externalIds: [{ type: 'email', id: EMAIL, collection: 'users' }, { type: 'member_id', id: 'm-1' }], ip: '1.2.3.4' },
    };
    const sealed = codec.sealEvent(event);
    const text = JSON.stringify(sealed);
    for (const value of [EMAIL, PHONE, NAME, ADDRESS]) expect(text).not.toContain(value);
    expect(text).toContain('"plan":"pro"');
    expect(text).toContain('m-1');
    expect(codec.openEvent(sealed)).toEqual(event);
    expect(codec.sealEvent({ properties: { total: 1 }, traits: null, context: null })).toEqual({ properties: { total: 1 }, traits: null, context: null });
  });

  it('gives equal values equal tokens within a workspace, different ones across workspaces, and tokenizes PII traits only', () => {
    const codec = codecFor(WS);
    expect(codec.token(EMAIL)).toBe(codecFor(WS).token(EMAIL));
    expect(codec.token(EMAIL)).toMatch(/^tph1\.[A-Za-z0-9_-]{32}$/);
    expect(codecFor(WS, crypto.randomBytes(32)).token(EMAIL)).not.toBe(codec.token(EMAIL));
    const event = tokenizeForResolution(codec, { traits: { email: EMAIL, plan: 'pro' }, context: { traits: { phone: PHONE } } });
    expect(event.traits).toEqual({ email: codec.token(EMAIL), plan: 'pro' });
    expect(event.context).toEqual({ traits: { phone: codec.token(PHONE) } });
    expect(codec.plainOf(codec.token(PHONE))).toBe(PHONE);
    expect(codec.takeVaultEntries().map((entry) => entry.token).sort()).toEqual([codec.token(EMAIL), codec.token(PHONE)].sort());
    expect(isEncryptedKey('birthday')).toBe(false);
    expect(isEncryptedKey('first_name')).toBe(true);
  });

  it('allows presence and equality on PII traits (literals become tokens) and refuses the rest with the reason', () => {
    const codec = codecFor(WS);
    const condition = { kind: 'and', conditions: [
      { kind: 'trait', trait: 'email', op: 'eq', value: EMAIL },
      { kind: 'trait', trait: 'phone', op: 'in', values: [PHONE] },
      { kind: 'trait', trait: 'plan', op: 'eq', value: 'pro' },
    ] } as Condition;
    expect(piiConditionIssues(condition)).toEqual([]);
    expect(encodePiiCondition(condition, codec)).toEqual({ kind: 'and', conditions: [
      { kind: 'trait', trait: 'email', op: 'eq', value: codec.token(EMAIL) },
      { kind: 'trait', trait: 'phone', op: 'in', values: [codec.token(PHONE)] },
      { kind: 'trait', trait: 'plan', op: 'eq', value: 'pro' },
    ] });
    const issues = piiConditionIssues({ kind: 'or', conditions: [
      { kind: 'trait', trait: 'email', op: 'ends_with', value: '@example.com' },
      { kind: 'event', match: { type: 'track', name: 'Order', filters: [{ property: 'email', op: 'eq', value: EMAIL }] }, measure: { kind: 'count', op: 'gte', value: 1 } },
    ] } as Condition);
    expect(issues).toEqual([
      { path: '/conditions/0/op', message: expect.stringContaining('only exists, missing, =, !=, in and not in') },
      { path: '/conditions/1/match/filters/0/op', message: expect.stringContaining('only exists and missing') },
    ]);
  });
});

describe('PII encrypted at rest (real PostgreSQL)', () => {
  let t: TestApp;
  let key: string;
  const get = (url: string, headers: Record<string, string> = { authorization: `Bearer ${key}` }) => t.app.inject({ method: 'GET', url, headers });

  beforeAll(async () => {
    t = await startTestApp();
    key = await serverKey(t);
    await send(t, t.writeKey, [
      { type: 'page', anonymousId: 'anon-z1', name: 'Home', context: { traits: { email: EMAIL } }, messageId: 'z-1', timestamp: '2026-01-01T10:00:00Z' },
      {
        type: 'identify',
        userId: 'u-zhao',
        anonymousId: 'anon-z2',
        traits: { email: EMAIL, phone: PHONE, name: NAME, address: ADDRESS, id_number: ID_NUMBER, plan: 'gold' },
        messageId: 'z-2',
        timestamp: '2026-01-02T10:00:00Z',
      },
      { type: 'track', userId: 'u-zhao', event: 'Order Completed', properties: { total: 88, email: EMAIL }, context: { externalIds: [{ type: 'phone', id: PHONE }] }, messageId: 'z-3', timestamp: '2026-01-03T10:00:00Z' },
      { type: 'identify', userId: 'u-zhao', traits: { name: 'Zhao Lei' }, messageId: 'z-4', timestamp: '2026-01-04T10:00:00Z' },
    ]);
    await drain(t);
  });
  afterAll(async () => t?.close());

  it('stores no plaintext phone, e-mail, name, address or ID number in identifiers, traits, history, events or identity logs', async () => {
    expect(await plaintextRows(t.db, t.workspace.id, [...spellings, 'Zhao Lei'])).toEqual([]);
    const { rows } = await t.db.query<{ type: string; value: string }>('select type, value from profile_identifiers where workspace_id = $1 order by type', [t.workspace.id]);
    expect(rows.filter((r) => ['email', 'phone', 'name', 'address', 'id_number'].includes(r.type)).every((r) => r.value.startsWith('tph1.'))).toBe(true);
    expect(rows.find((r) => r.type === 'user_id')?.value).toBe('u-zhao'); // not PII by default: stays readable
    const traits = await t.db.query<{ key: string; value: unknown }>('select key, value from profile_traits where workspace_id = $1', [t.workspace.id]);
    expect(traits.rows.find((r) => r.key === 'plan')?.value).toBe('gold');
    expect(String(traits.rows.find((r) => r.key === 'email')?.value)).toMatch(/^tph1\./);
    const event = await t.db.query<{ properties: Record<string, unknown> }>(`select properties from events where workspace_id = $1 and message_id = 'z-3'`, [t.workspace.id]);
    expect(event.rows[0]!.properties.total).toBe(88);
    expect(String(event.rows[0]!.properties.email)).toMatch(/^tpe1\./);
  });

  it('resolves one person across the anonymous visit and the identify through the encrypted e-mail', async () => {
    const { rows } = await t.db.query<{ n: string }>('select count(*) as n from profiles where workspace_id = $1 and merged_into is null', [t.workspace.id]);
    expect(Number(rows[0]!.n)).toBe(1);
  });

  it('finds the profile by phone and by e-mail (any case), and shows the values to callers with pii.read', async () => {
    const byPhone = await get(profileUrl(`phone:${PHONE}`));
    expect(byPhone.statusCode).toBe(200);
    const byEmail = await get(profileUrl(`email:${EMAIL.toUpperCase()}`));
    expect(byEmail.statusCode).toBe(200);
    expect(byEmail.json().id).toBe(byPhone.json().id);
    const body = byEmail.json();
    expect(body.traits.email).toBe(EMAIL);
    expect(body.traits.name).toBe('Zhao Lei');
    expect(body.traits.address).toBe(ADDRESS);
    expect(body.identifiers.find((i: { type: string }) => i.type === 'phone').value).toBe(PHONE);
    expect(body.matchedBy.value).toBe(EMAIL.toLowerCase());
    expect(JSON.stringify(body.events)).toContain(EMAIL); // event fields opened
    expect(byEmail.body).not.toMatch(/tph1\.|tpe1\./);
    const missing = await get(profileUrl('email:nobody@example.com'));
    expect(missing.statusCode).toBe(404);

    const verbose = await get(profileUrl(`phone:${PHONE}`, '?verbose=true'));
    expect(verbose.json().traits.name.history.map((h: { value: unknown }) => h.value)).toEqual([NAME, 'Zhao Lei']);
    const graph = await get(profileUrl(`phone:${PHONE}`, '/identity'));
    expect(graph.statusCode).toBe(200);
    expect(graph.body).toContain(EMAIL.toLowerCase());
    expect(graph.body).not.toMatch(/tph1\./);
  });

  it('decrypts, then masks for roles without pii.read', async () => {
    const viewer = await userWithRole(t.app, t.db, t.workspace.id, 'viewer');
    const response = await get(profileUrl(`phone:${PHONE}`), viewer.headers());
    expect(response.statusCode).toBe(200);
    expect(response.body).not.toContain('13912345678');
    expect(response.body).not.toContain(EMAIL.toLowerCase());
    expect(response.body).not.toMatch(/tph1\./);
    expect(response.body).toContain('139****5678');
  });

  it('segments by a PII trait through its keyed hash, and refuses operators the hash cannot answer', async () => {
    const post = (url: string, payload: object) => t.app.inject({ method: 'POST', url, headers: { authorization: `Bearer ${key}` }, payload });
    const preview = await post('/v1/segments/preview', { text: `trait.email = "${EMAIL}" and trait.phone exists` });
    expect(preview.statusCode).toBe(200);
    expect(preview.json().estimatedSize).toBe(1);
    expect(preview.body).toContain(EMAIL); // the sample shows the values, opened
    const none = await post('/v1/segments/preview', { text: 'trait.email = "someone.else@example.com"' });
    expect(none.json().estimatedSize).toBe(0);
    const created = await post('/v1/segments', { key: 'zhao', name: 'Zhao', kind: 'realtime', text: `trait.phone in ("${PHONE}")` });
    expect(created.statusCode).toBe(201);
    const refused = await post('/v1/segments', { key: 'domain', name: 'Domain', kind: 'realtime', text: 'trait.email ends_with "@example.com"' });
    expect(refused.statusCode).toBe(400);
    expect(refused.json().message).toContain('personal data stored as a keyed hash');
  });

  it('exports the person in clear for an access request, and erasure leaves neither values nor tokens nor vault copies', async () => {
    const exported = await t.app.inject({ method: 'POST', url: '/v1/privacy/exports', headers: { authorization: `Bearer ${key}` }, payload: { subject: `email:${EMAIL}` } });
    expect(exported.statusCode).toBeLessThan(300);
    expect(exported.body).toContain(PHONE);
    expect(exported.body).toContain(ID_NUMBER);
    const codec = await piiCodec(t.db, t.workspace.id);
    const tokens = [EMAIL.toLowerCase(), PHONE, NAME, 'Zhao Lei', ADDRESS, ID_NUMBER].map((v) => codec.token(v));
    const vaultBefore = await t.db.query('select 1 from pii_vault where workspace_id = $1 and token = any($2::text[])', [t.workspace.id, tokens]);
    expect(vaultBefore.rows.length).toBeGreaterThanOrEqual(5);
    const erased = await t.app.inject({ method: 'POST', url: '/v1/privacy/erasures', headers: { authorization: `Bearer ${key}` }, payload: { subject: `phone:${PHONE}` } });
    expect(erased.statusCode).toBeLessThan(300);
    expect(await plaintextRows(t.db, t.workspace.id, [...spellings, ...tokens])).toEqual([]);
    // Suppressed by the value itself: the same person re-sent is dropped at collection.
    const again = await t.app.inject({
      method: 'POST',
      url: '/v1/identify',
      headers: { authorization: `Basic ${Buffer.from(`${t.writeKey}:`).toString('base64')}` },
      payload: { userId: 'u-new', traits: { email: EMAIL }, messageId: 'z-9' },
    });
    expect(again.statusCode).toBe(200);
    await drain(t);
    expect((await t.db.query(`select 1 from events where workspace_id = $1 and message_id = 'z-9'`, [t.workspace.id])).rows).toEqual([]);
  });
});

describe('backfill of plaintext rows and re-encryption after a data-key rotation (real PostgreSQL)', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(async () => t?.close());

  it('encrypts rows stored before encryption; lookups then resolve and new events join the same person', async () => {
    const ws = t.workspace.id;
    // A profile as an older version stored it: plain values everywhere.
    const { rows } = await t.db.query<{ id: string }>(`insert into profiles (workspace_id, first_seen, last_seen) values ($1, now(), now()) returning id`, [ws]);
    const profileId = rows[0]!.id;
    await t.db.query(
      `insert into profile_identifiers (workspace_id, profile_id, type, value, first_seen, last_seen) values
         ($1, $2, 'email', 'old.timer@example.com', now(), now()), ($1, $2, 'phone', '+8613700000001', now(), now()), ($1, $2, 'user_id', 'u-old', now(), now())`,
      [ws, profileId],
    );
    await t.db.query(
      `insert into profile_traits (workspace_id, profile_id, key, value, source_kind, source_name, message_id, observed_at) values
         ($1, $2, 'email', '"old.timer@example.com"', 'web', 'web', 'm0', now()), ($1, $2, 'plan', '"basic"', 'web', 'web', 'm0', now())`,
      [ws, profileId],
    );
    await t.db.query(
      `insert into profile_trait_history (workspace_id, profile_id, key, previous_value, value, source_kind, source_name, message_id, observed_at, reason)
       values ($1, $2, 'email', null, '"old.timer@example.com"', 'web', 'web', 'm0', now(), 'event')`,
      [ws, profileId],
    );
    await t.db.query(
      `insert into identity_refusals (workspace_id, profile_id, identifier_type, identifier_value, reason, message) values ($1, $2, 'phone', '+8613700000001', 'limit', 'x')`,
      [ws, profileId],
    );
    const olds = ['old.timer@example.com', '+8613700000001', '13700000001'];
    expect((await plaintextRows(t.db, ws, olds)).length).toBeGreaterThan(0);

    const result = await cli(['privacy', 'encrypt-existing', '--workspace', t.workspace.slug], t.database.url);
    expect(result.stderr).toBe('');
    expect(result.stdout).toContain('2 identifier(s)');
    expect(await plaintextRows(t.db, ws, olds)).toEqual([]);
    expect(await encryptExistingPii(t.db, ws)).toEqual({ identifiers: 0, identityLogs: 0, traits: 0, traitHistory: 0, events: 0 }); // idempotent

    const key = await serverKey(t);
    const found = await t.app.inject({ method: 'GET', url: profileUrl('email:Old.Timer@example.com'), headers: { authorization: `Bearer ${key}` } });
    expect(found.statusCode).toBe(200);
    expect(found.json().traits.email).toBe('old.timer@example.com');
    await send(t, t.writeKey, [{ type: 'identify', anonymousId: 'anon-old', traits: { phone: '+8613700000001' }, messageId: 'o-1', timestamp: '2026-02-01T00:00:00Z' }]);
    await drain(t);
    const { rows: live } = await t.db.query('select id from profiles where workspace_id = $1 and merged_into is null', [ws]);
    expect(live).toEqual([{ id: profileId }]);
  }, 300_000); // a CLI process on a shared machine

  it('re-seals vault copies, event fields and quarantined payloads sealed with a retired data key', async () => {
    const ws = t.workspace.id;
    await send(t, t.writeKey, [{ type: 'identify', userId: 'u-rot', traits: { email: 'rot@example.com' }, properties: {}, messageId: 'r-1', timestamp: '2026-02-02T00:00:00Z' }]);
    await drain(t);
    const before = await t.db.query<{ n: string }>('select count(*) as n from pii_vault where workspace_id = $1 and key_number = 1', [ws]);
    expect(Number(before.rows[0]!.n)).toBeGreaterThan(0);
    const number = await rotateDataKey(t.db, ws);
    expect(number).toBe(2);
    const counts = await reencryptPii(t.db, ws);
    expect(counts.vault).toBe(Number(before.rows[0]!.n));
    expect(counts.events).toBeGreaterThan(0);
    const after = await t.db.query<{ n: string }>('select count(*) as n from pii_vault where workspace_id = $1 and key_number <> 2', [ws]);
    expect(Number(after.rows[0]!.n)).toBe(0);
    const stale = await t.db.query<{ n: string }>(`select count(*) as n from events where workspace_id = $1 and (traits::text like '%tpe1.1.%' or context::text like '%tpe1.1.%')`, [ws]);
    expect(Number(stale.rows[0]!.n)).toBe(0);
    const key = await serverKey(t);
    const found = await t.app.inject({ method: 'GET', url: profileUrl('email:rot@example.com'), headers: { authorization: `Bearer ${key}` } });
    expect(found.statusCode).toBe(200);
    expect(found.json().traits.email).toBe('rot@example.com');
    expect(JSON.stringify(found.json().events)).toContain('rot@example.com');
  });

  it('walks the identifiers in batches by id: every plain one sealed once, already sealed ones between them left alone', async () => {
    const ws = t.workspace.id;
    const { rows } = await t.db.query<{ id: string }>(`insert into profiles (workspace_id, first_seen, last_seen) values ($1, now(), now()) returning id`, [ws]);
    const profileId = rows[0]!.id;
    const codec = await piiCodec(t.db, ws);
    const emails = Array.from({ length: 7 }, (_, i) => `batch.${i}@example.com`);
    // Plain and sealed rows interleaved by id, as a store half way through an upgrade has them.
    for (const [i, email] of emails.entries()) {
      await t.db.query(`insert into profile_identifiers (workspace_id, profile_id, type, value, first_seen, last_seen) values ($1, $2, 'email', $3, now(), now())`, [
        ws,
        profileId,
        i % 3 === 1 ? codec.token(email) : email,
      ]);
    }
    const plain = emails.filter((_, i) => i % 3 !== 1);
    const counts = await encryptExistingPii(t.db, ws, { batchSize: 2 });
    expect(counts.identifiers).toBe(plain.length);
    expect(await plaintextRows(t.db, ws, emails)).toEqual([]);
    const { rows: stored } = await t.db.query<{ value: string }>(`select value from profile_identifiers where workspace_id = $1 and profile_id = $2 order by id`, [ws, profileId]);
    expect(stored.map((row) => row.value)).toEqual(emails.map((email) => codec.token(email)));
  });
});
