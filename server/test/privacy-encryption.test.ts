import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { forgetKeys, openText, rotateDataKey, rotateMasterKey, sealText } from '../src/privacy/data-keys.ts';
import { decryptText, encryptText, masterKeyId, newDataKey, nextIv, openDataKey, sealDataKey, tokenKeyNumber } from '../src/privacy/encryption.ts';
import { lookupForms } from '../src/privacy/sealed-payloads.ts';
import { createKey } from '../src/workspaces/store.ts';
import { ADMIN_TOKEN, basicAuth, startTestApp, type TestApp } from './support/app.ts';
import { cli } from './support/cli.ts';

const WS = '00000000-0000-4000-8000-00000000000a';
const OTHER_WS = '00000000-0000-4000-8000-00000000000b';

describe('envelope encryption (pure)', () => {
  it('seals data keys under a master key, bound to workspace and key number', () => {
    const master = crypto.randomBytes(32);
    const dataKey = newDataKey();
    const sealed = sealDataKey(master, WS, 1, dataKey);
    expect(openDataKey(master, WS, 1, sealed)).toEqual(dataKey);
    expect(() => openDataKey(crypto.randomBytes(32), WS, 1, sealed)).toThrow();
    expect(() => openDataKey(master, OTHER_WS, 1, sealed)).toThrow();
    expect(() => openDataKey(master, WS, 2, sealed)).toThrow();
    expect(masterKeyId(master)).toMatch(/^[0-9a-f]{16}$/);
  });

  it('seals values into self-describing tokens that open only with the same key, workspace and purpose', () => {
    const key = { number: 3, key: newDataKey() };
    const token = encryptText(key, WS, 'quarantine.payload', '{"email":"ana@example.com"}');
    expect(token).toMatch(/^tpe1\.3\.[A-Za-z0-9_-]+$/);
    expect(token).not.toContain('ana');
    expect(tokenKeyNumber(token)).toBe(3);
    expect(decryptText(key.key, WS, 'quarantine.payload', token)).toBe('{"email":"ana@example.com"}');
    expect(encryptText(key, WS, 'quarantine.payload', 'same')).not.toBe(encryptText(key, WS, 'quarantine.payload', 'same')); // random IVs
    expect(() => decryptText(key.key, OTHER_WS, 'quarantine.payload', token)).toThrow();
    expect(() => decryptText(key.key, WS, 'other.purpose', token)).toThrow();
    const tampered = token.slice(0, -2) + (token.endsWith('A') ? 'B' : 'A') + token.slice(-1);
    expect(() => decryptText(key.key, WS, 'quarantine.payload', tampered)).toThrow();
  });

  it('gives every seal a fresh IV, across refills of the IV pool', () => {
    const key = { number: 1, key: newDataKey() };
    const ivs = new Set<string>();
    // More seals than one pool holds (341 IVs), so the pool is refilled at least twice.
    for (let i = 0; i < 1000; i++) {
      const token = encryptText(key, WS, 'event.pii', 'same value');
      ivs.add(Buffer.from(token.split('.')[2]!, 'base64url').subarray(0, 12).toString('hex'));
      expect(decryptText(key.key, WS, 'event.pii', token)).toBe('same value');
    }
    expect(ivs.size).toBe(1000);
    const next = [nextIv(), nextIv()];
    expect(next[0]).toHaveLength(12);
    expect(next[0]!.equals(next[1]!)).toBe(false);
  });

  it('indexes values as written, lower-cased and, for phone-like values, as digits', () => {
    expect(lookupForms(' Ana@Example.com ')).toEqual(['Ana@Example.com', 'ana@example.com']);
    expect(lookupForms('+86 139-1234-5678')).toEqual(['+86 139-1234-5678', '8613912345678']);
    expect(lookupForms('order 12345678')).toEqual(['order 12345678']);
  });
});

describe('workspace data keys, master key rotation and sealed quarantine payloads', () => {
  let t: TestApp;
  const saved = { ...process.env };
  const masterA = crypto.randomBytes(32).toString('hex');
  let masterB = crypto.randomBytes(32).toString('base64');
  const useMaster = (current: string | undefined, previous?: string) => {
    if (current === undefined) delete process.env.TOUCHPOINT_MASTER_KEY;
    else process.env.TOUCHPOINT_MASTER_KEY = current;
    if (previous === undefined) delete process.env.TOUCHPOINT_MASTER_KEY_PREVIOUS;
    else process.env.TOUCHPOINT_MASTER_KEY_PREVIOUS = previous;
    forgetKeys(t.db);
  };
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(async () => {
    process.env = saved;
    await t?.close();
  });

  it('creates a data key per workspace on first use; rotating the data key keeps old values readable', async () => {
    useMaster(masterA);
    const first = await sealText(t.db, t.workspace.id, 'test.value', 'phone 13912345678');
    expect(tokenKeyNumber(first)).toBe(1);
    const { rows } = await t.db.query<{ sealed: Buffer; master_key_id: string }>('select sealed, master_key_id from workspace_data_keys where workspace_id = $1', [t.workspace.id]);
    expect(rows).toHaveLength(1);
    expect(rows[0]!.master_key_id).toBe(masterKeyId(Buffer.from(masterA, 'hex')));
    expect(await rotateDataKey(t.db, t.workspace.id)).toBe(2);
    const second = await sealText(t.db, t.workspace.id, 'test.value', 'phone 13912345678');
    expect(tokenKeyNumber(second)).toBe(2);
    useMaster(masterA); // a fresh process
    expect(await openText(t.db, t.workspace.id, 'test.value', first)).toBe('phone 13912345678');
    expect(await openText(t.db, t.workspace.id, 'test.value', second)).toBe('phone 13912345678');
    expect(await openText(t.db, t.workspace.id, 'test.value', 'plain, from before encryption')).toBe('plain, from before encryption');
  });

  it('rotates the master key by re-sealing every data key; values are untouched and open with the new key alone', async () => {
    useMaster(masterA);
    const other = await t.addWorkspace('other-enc');
    const token = await sealText(t.db, other.workspace.id, 'test.value', 'Zhang Wei');
    useMaster(masterB, masterA);
    const rotated = await rotateMasterKey(t.db);
    expect(rotated.resealed).toBe(3); // two of acme's, one of other-enc's
    expect((await rotateMasterKey(t.db)).resealed).toBe(0);
    useMaster(masterB);
    expect(await openText(t.db, other.workspace.id, 'test.value', token)).toBe('Zhang Wei');
    // The old master key alone no longer opens anything.
    useMaster(masterA);
    await expect(openText(t.db, other.workspace.id, 'test.value', token)).rejects.toThrow(/not configured/);
    useMaster(masterB);
  });

  it('touchpoint privacy rotate-master-key re-seals from the command line', async () => {
    const masterC = crypto.randomBytes(32).toString('hex');
    useMaster(masterB);
    const token = await sealText(t.db, t.workspace.id, 'test.value', 'by the command');
    useMaster(masterC, masterB);
    const result = await cli(['privacy', 'rotate-master-key'], t.database.url);
    expect(result.stderr).toBe('');
    expect(result.stdout).toMatch(/^Re-sealed 3 data key\(s\) and 0 hash key\(s\) under master key [0-9a-f]{16}/);
    useMaster(masterC);
    expect(await openText(t.db, t.workspace.id, 'test.value', token)).toBe('by the command');
    const rotated = await cli(['privacy', 'rotate-data-key', '--workspace', 'acme'], t.database.url);
    expect(rotated.stdout).toMatch(/acme now seals new values with data key 3/);
    masterB = masterC; // the next test runs under the current master key
    useMaster(masterB);
  }, 300_000); // two CLI processes on a shared machine

  it('quarantined payloads are sealed at rest, open through the API, and are found by erasure without decrypting', async () => {
    useMaster(masterB);
    const refused = await t.app.inject({
      method: 'POST',
      url: '/v1/batch',
      headers: { authorization: basicAuth(t.writeKey) },
      payload: { batch: [{ type: 'track', userId: 'enc-user', properties: { email: 'Secret.Person@Example.com', phone: '+86 139 1234 5678' }, messageId: 'enc-q1' }] },
    });
    expect(refused.json().rejected).toHaveLength(1);
    const id = refused.json().rejected[0].quarantineId as string;
    const { rows } = await t.db.query<{ payload: string }>('select payload from quarantine where workspace_id = $1 and id = $2', [t.workspace.id, id]);
    expect(rows[0]!.payload).toMatch(/^tpe1\./);
    expect(rows[0]!.payload.toLowerCase()).not.toContain('secret');
    const key = (await createKey(t.db, t.workspace.id, { kind: 'server', permissions: ['quarantine.read', 'pii.read'] })).key;
    const item = await t.app.inject({ method: 'GET', url: `/v1/quarantine/${id}`, headers: { authorization: `Bearer ${key}` } });
    expect(item.json().payload).toMatchObject({ userId: 'enc-user', properties: { email: 'Secret.Person@Example.com' } });

    const admin = { authorization: `Bearer ${ADMIN_TOKEN}`, 'x-touchpoint-workspace': 'acme' };
    const exported = await t.app.inject({ method: 'POST', url: '/v1/privacy/exports', headers: admin, payload: { subject: 'user_id:enc-user' } });
    expect(JSON.stringify(exported.json().data.quarantine)).toContain('Secret.Person@Example.com');
    const erased = await t.app.inject({ method: 'POST', url: '/v1/privacy/erasures', headers: admin, payload: { subject: 'user_id:enc-user' } });
    expect(erased.json()).toMatchObject({ status: 'completed', result: { quarantine: 1 } });
    expect((await t.db.query('select 1 from quarantine where workspace_id = $1 and id = $2', [t.workspace.id, id])).rowCount).toBe(0);
  });
});
