import crypto from 'node:crypto';
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { forgetKeys, lookupHashKey, rotateMasterKey, sealText, workspaceKeys } from '../src/privacy/data-keys.ts';
import { addSuppressions, createSuppressionFilter } from '../src/privacy/suppression.ts';
import type { NormalizedEvent } from '../src/ingest/normalize.ts';
import { derivedHashKey, masterKeyId, openHashKey } from '../src/privacy/encryption.ts';
import { piiTokenOf } from '../src/privacy/pii-codec.ts';
import type { Db } from '../src/storage/database.ts';
import { ensureMonthlyPartitions } from '../src/storage/partitions.ts';
import { startWorker, type WorkerLogLevel } from '../src/worker/runner.ts';
import { startTestApp, type TestApp } from './support/app.ts';
import { cli } from './support/cli.ts';
import { drain, profileUrl, send, serverKey } from './profiles-support.ts';

const EMAIL = 'Li.Na@Example.com';
const PHONE = '+8613811112222';
const NAME = 'Li Na';

const hexKey = () => crypto.randomBytes(32).toString('hex');

/** What migration 0055 runs for the workspaces that exist when it is applied. */
const MIGRATION_BACKFILL = /insert into workspace_hash_keys[^;]*;/.exec(
  fs.readFileSync(new URL('../src/storage/migrations/0055_workspace_hash_keys.sql', import.meta.url), 'utf8'),
)![0];

/** Sets the instance keys as a process would find them in its environment, and forgets cached ones (a restart). */
function useKeys(db: Db, keys: { master: string; previous?: string; privacy: string }): void {
  process.env.TOUCHPOINT_MASTER_KEY = keys.master;
  if (keys.previous === undefined) delete process.env.TOUCHPOINT_MASTER_KEY_PREVIOUS;
  else process.env.TOUCHPOINT_MASTER_KEY_PREVIOUS = keys.previous;
  process.env.TOUCHPOINT_PRIVACY_KEY = keys.privacy;
  forgetKeys(db);
}

async function identifierValues(db: Db, workspaceId: string): Promise<Array<{ type: string; value: string }>> {
  const { rows } = await db.query<{ type: string; value: string }>(
    'select type, value from profile_identifiers where workspace_id = $1 order by type, value',
    [workspaceId],
  );
  return rows;
}

async function liveProfiles(db: Db, workspaceId: string): Promise<string[]> {
  const { rows } = await db.query<{ id: string }>('select id from profiles where workspace_id = $1 and merged_into is null', [workspaceId]);
  return rows.map((row) => row.id);
}

async function hashKeyRow(db: Db, workspaceId: string) {
  const { rows } = await db.query<{ origin: string; sealed: Buffer | null; master_key_id: string | null }>(
    'select origin, sealed, master_key_id from workspace_hash_keys where workspace_id = $1',
    [workspaceId],
  );
  return rows[0];
}

describe('workspace hash keys: PII tokens survive master and privacy key rotation (real PostgreSQL)', () => {
  const saved = { ...process.env };
  let t: TestApp;
  let key: string;
  const masterA = hexKey();
  const masterB = crypto.randomBytes(32).toString('base64');
  const privacyP = hexKey();
  const privacyQ = hexKey();
  const get = (url: string) => t.app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${key}` } });

  beforeAll(async () => {
    t = await startTestApp();
    useKeys(t.db, { master: masterA, privacy: privacyP });
    key = await serverKey(t);
  });
  afterAll(async () => {
    process.env = saved;
    await t?.close();
  });

  it('gives a workspace created now a random hash key, sealed by the master key', async () => {
    await send(t, t.writeKey, [
      { type: 'identify', userId: 'u-lina', anonymousId: 'anon-l1', traits: { email: EMAIL, phone: PHONE, name: NAME, plan: 'gold' }, messageId: 'l-1' },
    ]);
    await drain(t);
    const row = await hashKeyRow(t.db, t.workspace.id);
    expect(row?.origin).toBe('random');
    expect(row?.master_key_id).toBe(masterKeyId(Buffer.from(masterA, 'hex')));
    const hashKey = openHashKey(Buffer.from(masterA, 'hex'), t.workspace.id, row!.sealed!);
    expect(hashKey.equals(derivedHashKey(Buffer.from(privacyP, 'hex'), t.workspace.id))).toBe(false);
    const email = (await identifierValues(t.db, t.workspace.id)).find((r) => r.type === 'email');
    expect(email?.value).toBe(piiTokenOf(hashKey, EMAIL.toLowerCase()));
  });

  it('after rotating the master key (old one in _PREVIOUS) and a restart, lookups, values and joins still work; then without the old key too', async () => {
    const tokensBefore = await identifierValues(t.db, t.workspace.id);
    const [profileId] = await liveProfiles(t.db, t.workspace.id);

    useKeys(t.db, { master: masterB, previous: masterA, privacy: privacyP });
    const rotated = await rotateMasterKey(t.db);
    expect(rotated.resealed).toBe(1);
    expect(rotated.hashKeysResealed).toBe(1);
    expect((await hashKeyRow(t.db, t.workspace.id))?.master_key_id).toBe(masterKeyId(Buffer.from(masterB, 'base64')));

    for (const keys of [
      { master: masterB, previous: masterA, privacy: privacyP },
      // The old master key dropped, and the instance privacy key rotated as well: neither changes a token.
      { master: masterB, privacy: privacyQ },
    ]) {
      useKeys(t.db, keys);
      const byEmail = await get(profileUrl(`email:${EMAIL.toUpperCase()}`));
      expect(byEmail.statusCode).toBe(200);
      expect(byEmail.json().id).toBe(profileId);
      expect(byEmail.json().traits.email).toBe(EMAIL);
      expect(byEmail.json().traits.name).toBe(NAME);
      const byPhone = await get(profileUrl(`phone:${PHONE}`));
      expect(byPhone.statusCode).toBe(200);
      expect(byPhone.json().id).toBe(profileId);
      expect(byPhone.json().identifiers.find((i: { type: string }) => i.type === 'phone').value).toBe(PHONE);
      expect(await identifierValues(t.db, t.workspace.id)).toEqual(expect.arrayContaining(tokensBefore));
    }

    // A new visitor giving the same e-mail joins the same person.
    await send(t, t.writeKey, [{ type: 'identify', anonymousId: 'anon-l-new', traits: { email: EMAIL }, messageId: 'l-2' }]);
    await drain(t);
    expect(await liveProfiles(t.db, t.workspace.id)).toEqual([profileId]);
    const anon = await get(profileUrl('anonymous_id:anon-l-new'));
    expect(anon.json().id).toBe(profileId);

    // The old master key alone opens nothing any more.
    useKeys(t.db, { master: masterA, privacy: privacyQ });
    await expect(workspaceKeys(t.db, t.workspace.id)).rejects.toThrow(/not configured/);
    useKeys(t.db, { master: masterB, privacy: privacyQ });
  });

  it('touchpoint privacy rotate-master-key reports the hash keys it re-sealed', async () => {
    const masterC = hexKey();
    useKeys(t.db, { master: masterC, previous: masterB, privacy: privacyQ });
    const result = await cli(['privacy', 'rotate-master-key'], t.database.url);
    expect(result.stderr).toBe('');
    expect(result.stdout).toMatch(/^Re-sealed 1 data key\(s\) and 1 hash key\(s\) under master key [0-9a-f]{16}/);
    useKeys(t.db, { master: masterC, privacy: privacyQ });
    expect((await get(profileUrl(`email:${EMAIL}`))).statusCode).toBe(200);
  }, 300_000); // a CLI process on a shared machine
});

describe('workspaces created before hash keys were stored keep their tokens (real PostgreSQL)', () => {
  const saved = { ...process.env };
  let t: TestApp;
  const master = hexKey();
  const privacy = hexKey();

  beforeAll(async () => {
    t = await startTestApp();
    useKeys(t.db, { master, privacy });
    // The workspace predates the migration: the migration leaves it a pending, derived hash key.
    await t.db.query(MIGRATION_BACKFILL);
  });
  afterAll(async () => {
    process.env = saved;
    await t?.close();
  });

  it('stores exactly the derived key first, so tokens written by the older version match; the privacy key can then rotate', async () => {
    const ws = t.workspace.id;
    expect(await hashKeyRow(t.db, ws)).toEqual({ origin: 'derived', sealed: null, master_key_id: null });

    // A person as the older version stored them: tokens under the derived key, one sealed vault copy each.
    const legacyKey = derivedHashKey(Buffer.from(privacy, 'hex'), ws);
    const email = 'old.friend@example.com';
    const emailToken = piiTokenOf(legacyKey, email);
    const phoneToken = piiTokenOf(legacyKey, PHONE);
    const { rows } = await t.db.query<{ id: string }>('insert into profiles (workspace_id, first_seen, last_seen) values ($1, now(), now()) returning id', [ws]);
    const profileId = rows[0]!.id;
    await t.db.query(
      `insert into profile_identifiers (workspace_id, profile_id, type, value, first_seen, last_seen) values
         ($1, $2, 'email', $3, now(), now()), ($1, $2, 'phone', $4, now(), now())`,
      [ws, profileId, emailToken, phoneToken],
    );
    await t.db.query(
      `insert into profile_traits (workspace_id, profile_id, key, value, source_kind, source_name, message_id, observed_at)
       values ($1, $2, 'email', to_jsonb($3::text), 'web', 'web', 'm0', now())`,
      [ws, profileId, emailToken],
    );
    for (const [token, value] of [[emailToken, email], [phoneToken, PHONE]] as const) {
      await t.db.query('insert into pii_vault (workspace_id, token, sealed, key_number) values ($1, $2, $3, 1)', [
        ws,
        token,
        await sealText(t.db, ws, `pii.vault\u0000${token}`, JSON.stringify(value)),
      ]);
    }

    // A process started without the privacy key the tokens were made with refuses to store a wrong key for good.
    useKeys(t.db, { master, privacy: hexKey() });
    await expect(workspaceKeys(t.db, ws)).rejects.toThrow(/not made with the configured instance privacy key/);
    expect(await hashKeyRow(t.db, ws)).toEqual({ origin: 'derived', sealed: null, master_key_id: null });
    useKeys(t.db, { master, privacy });

    const key = await serverKey(t);
    const get = (url: string) => t.app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${key}` } });
    const found = await get(profileUrl('email:Old.Friend@Example.com'));
    expect(found.statusCode).toBe(200);
    expect(found.json().id).toBe(profileId);
    expect(found.json().traits.email).toBe(email);
    const row = await hashKeyRow(t.db, ws);
    expect(row?.origin).toBe('derived');
    expect(openHashKey(Buffer.from(master, 'hex'), ws, row!.sealed!).equals(legacyKey)).toBe(true);

    // New master key, new privacy key, old ones gone: the stored key keeps the old tokens matching.
    const newMaster = hexKey();
    useKeys(t.db, { master: newMaster, previous: master, privacy: hexKey() });
    const rotated = await rotateMasterKey(t.db);
    expect(rotated.hashKeysResealed).toBe(1);
    useKeys(t.db, { master: newMaster, privacy: hexKey() });
    const byPhone = await get(profileUrl(`phone:${PHONE}`));
    expect(byPhone.statusCode).toBe(200);
    expect(byPhone.json().id).toBe(profileId);
    expect(byPhone.json().traits.email).toBe(email);
    await send(t, t.writeKey, [{ type: 'identify', anonymousId: 'anon-friend', traits: { email: 'OLD.FRIEND@example.com' }, messageId: 'f-1' }]);
    await drain(t);
    expect(await liveProfiles(t.db, ws)).toEqual([profileId]);
    expect((await identifierValues(t.db, ws)).filter((r) => r.type === 'email')).toEqual([{ type: 'email', value: emailToken }]);
  });
});

describe('the worker encrypts plaintext personal data once at start (real PostgreSQL)', () => {
  const saved = { ...process.env };
  let t: TestApp;

  beforeAll(async () => {
    t = await startTestApp();
    useKeys(t.db, { master: hexKey(), privacy: hexKey() });
  });
  afterAll(async () => {
    process.env = saved;
    await t?.close();
  });

  it('tokenises identifiers, traits, history and identity logs and seals event fields, seals pending hash keys, and logs the counts', async () => {
    const ws = t.workspace.id;
    await t.db.query(MIGRATION_BACKFILL); // acme predates hash keys: the worker seals its derived key
    const plain = 'plain.person@example.com';
    const { rows } = await t.db.query<{ id: string }>('insert into profiles (workspace_id, first_seen, last_seen) values ($1, now(), now()) returning id', [ws]);
    const profileId = rows[0]!.id;
    await t.db.query(
      `insert into profile_identifiers (workspace_id, profile_id, type, value, first_seen, last_seen) values
         ($1, $2, 'email', $3, now(), now()), ($1, $2, 'phone', '+8613900000009', now(), now()), ($1, $2, 'user_id', 'u-plain', now(), now())`,
      [ws, profileId, plain],
    );
    await t.db.query(
      `insert into profile_traits (workspace_id, profile_id, key, value, source_kind, source_name, message_id, observed_at)
       values ($1, $2, 'email', to_jsonb($3::text), 'web', 'web', 'm0', now())`,
      [ws, profileId, plain],
    );
    await t.db.query(
      `insert into profile_trait_history (workspace_id, profile_id, key, previous_value, value, source_kind, source_name, message_id, observed_at, reason)
       values ($1, $2, 'email', null, to_jsonb($3::text), 'web', 'web', 'm0', now(), 'event')`,
      [ws, profileId, plain],
    );
    const eventTime = new Date('2026-03-01T00:00:00Z');
    await ensureMonthlyPartitions(t.db, 'events', [eventTime]);
    await t.db.query(
      `insert into events (workspace_id, timestamp, message_id, source_id, type, event, properties, context, received_at, profile_id)
       values ($1, $2, 'plain-1', $3, 'track', 'Signed Up', $4, $5, now(), $6)`,
      [ws, eventTime, t.source.id, { email: plain, plan: 'basic' }, { traits: { email: plain } }, profileId],
    );
    const plaintextCount = async () =>
      Number(
        (
          await t.db.query<{ n: string }>(
            `select (select count(*) from profile_identifiers t where workspace_id = $1 and position($2 in t::text) > 0)
                  + (select count(*) from profile_traits t where workspace_id = $1 and position($2 in t::text) > 0)
                  + (select count(*) from profile_trait_history t where workspace_id = $1 and position($2 in t::text) > 0)
                  + (select count(*) from events t where workspace_id = $1 and position($2 in t::text) > 0) as n`,
            [ws, plain],
          )
        ).rows[0]!.n,
      );
    expect(await plaintextCount()).toBe(4);

    const logs: Array<{ level: WorkerLogLevel; message: string }> = [];
    const worker = await startWorker({ db: t.db, concurrency: 1, logger: (level, message) => void logs.push({ level, message }) });
    try {
      const deadline = Date.now() + 60_000;
      while (!logs.some((entry) => entry.message.startsWith('PII backfill done')) && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    } finally {
      await worker.stop();
    }
    expect(logs.filter((entry) => entry.level === 'error')).toEqual([]);
    expect(logs).toContainEqual({
      level: 'warning',
      message: `PII backfill: workspace ${ws} held plaintext personal data; encrypted 2 identifier(s), 0 identity log row(s), 1 trait(s), 1 trait history row(s), 1 event(s)`,
    });
    expect(logs.find((entry) => entry.message.startsWith('PII backfill done'))?.message).toMatch(/^PII backfill done: 1 workspace\(s\) walked, 0 found clean before, 1 pending hash key\(s\) sealed; encrypted 2 identifier/);
    expect(logs.map((entry) => entry.message).join('\n')).not.toContain(plain); // counts only
    expect(await plaintextCount()).toBe(0);
    expect((await hashKeyRow(t.db, ws))?.origin).toBe('derived');
    expect((await hashKeyRow(t.db, ws))?.sealed).not.toBeNull();

    const key = await serverKey(t);
    const found = await t.app.inject({ method: 'GET', url: profileUrl('email:Plain.Person@example.com'), headers: { authorization: `Bearer ${key}` } });
    expect(found.statusCode).toBe(200);
    expect(found.json().id).toBe(profileId);
    expect(found.json().traits.email).toBe(plain);
    const event = await t.db.query<{ properties: Record<string, unknown> }>(`select properties from events where workspace_id = $1 and message_id = 'plain-1'`, [ws]);
    expect(String(event.rows[0]!.properties.email)).toMatch(/^tpe1\./);
    expect(event.rows[0]!.properties.plan).toBe('basic');

    // The next start walks the workspace again (an older process may still have written plaintext
    // during the upgrade), finds nothing and marks it clean; the start after that skips it.
    const doneLine = async () => {
      const lines: string[] = [];
      const again = await startWorker({ db: t.db, concurrency: 1, logger: (_level, message) => void lines.push(message) });
      try {
        const deadline = Date.now() + 60_000;
        while (!lines.some((line) => line.startsWith('PII backfill done')) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
      } finally {
        await again.stop();
      }
      return lines.find((line) => line.startsWith('PII backfill done'));
    };
    expect(await doneLine()).toMatch(/^PII backfill done: 1 workspace\(s\) walked, 0 found clean before, 0 pending hash key\(s\) sealed; encrypted 0 identifier/);
    expect(await doneLine()).toMatch(/^PII backfill done: 0 workspace\(s\) walked, 1 found clean before, /);
  }, 180_000);
});

describe('the instance lookup key outlives a change of the privacy key (real PostgreSQL)', () => {
  const saved = { ...process.env };
  let t: TestApp;

  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(async () => {
    process.env = saved;
    await t?.close();
  });

  it('an erased identifier stays suppressed after the privacy key changes and the master key rotates', async () => {
    const masterA = hexKey();
    const masterB = hexKey();
    useKeys(t.db, { master: masterA, privacy: hexKey() });
    const ws = t.workspace.id;
    const erased = { type: 'email', value: 'erased.person@example.com' };
    await addSuppressions(t.db, ws, crypto.randomUUID(), [erased]);
    const identify = (messageId: string): NormalizedEvent => ({
      messageId,
      type: 'identify',
      event: null,
      name: null,
      category: null,
      userId: null,
      anonymousId: 'anon-erased',
      previousId: null,
      groupId: null,
      properties: null,
      traits: { email: erased.value },
      context: null,
      integrations: null,
      extra: null,
      timestamp: new Date(),
      originalTimestamp: null,
      sentAt: null,
      receivedAt: new Date(),
    });
    const suppressedNow = async () => (await createSuppressionFilter(t.db).filter(ws, [identify(`m-${crypto.randomUUID()}`)])).suppressed;
    expect(await suppressedNow()).toBe(1);

    // A new privacy key (a restart with another TOUCHPOINT_PRIVACY_KEY) and a master-key rotation.
    useKeys(t.db, { master: masterB, previous: masterA, privacy: hexKey() });
    await rotateMasterKey(t.db);
    expect(await suppressedNow()).toBe(1);
    useKeys(t.db, { master: masterB, privacy: hexKey() });
    expect(await suppressedNow()).toBe(1);
    // The stored key is sealed, not readable from the database alone.
    const { rows } = await t.db.query<{ value: { sealed: string; masterKeyId: string } }>("select value from instance_settings where key = 'privacy_lookup_key'");
    expect(rows[0]!.value.masterKeyId).toBe(masterKeyId(Buffer.from(masterB, 'hex')));
    // Without the master key that sealed it, it does not open: the lookup fails loudly rather than hashing with another key.
    useKeys(t.db, { master: hexKey(), privacy: hexKey() });
    await expect(lookupHashKey(t.db)).rejects.toThrow(/lookup key is sealed by master key/);
  });
});
