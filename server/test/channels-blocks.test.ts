import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { putAccount } from '../src/channels/accounts.ts';
import type { MessageRequest } from '../src/channels/contract.ts';
import { createDispatcher } from '../src/channels/dispatch.ts';
import { enqueueMessages } from '../src/channels/index.ts';
import { createTemplate } from '../src/channels/template-store.ts';
import { withTransaction, type Db } from '../src/storage/database.ts';
import { insertProfile } from './channels-support.ts';
import { serverKey } from './profiles-support.ts';
import { startTestApp, type TestApp } from './support/app.ts';
import { startFakeHttp, type FakeServer } from './support/fake-providers/http.ts';

const SECRETS = Buffer.alloc(32, 9);

describe('blocked profiles (real server, real PostgreSQL)', () => {
  let t: TestApp;
  let db: Db;
  let ws: string;
  let key: string;
  let provider: FakeServer;
  const clock = new Date('2026-03-10T12:00:00Z');

  beforeAll(async () => {
    t = await startTestApp({ now: () => clock });
    db = t.db;
    ws = t.workspace.id;
    key = await serverKey(t);
    provider = await startFakeHttp(() => ({ status: 200, body: { ok: true } }));
    await withTransaction(db, async (client) => {
      await putAccount(client, SECRETS, ws, { key: 'hook', kind: 'webhook', provider: 'webhook', settings: { url: `${provider.url}/receive` }, secrets: { signingSecret: 'whsec_blocks' } });
      await createTemplate(client, ws, { key: 'hook', channel: 'webhook', name: 'Hook', defaultLocale: 'en', content: { en: { body: '{"p": "{{ profile.id }}"}' } } });
    });
  });
  afterAll(async () => {
    await provider?.close();
    await t?.close();
  });

  const call = async (method: 'GET' | 'PUT' | 'DELETE', url: string, payload?: object) => {
    const res = await t.app.inject({ method, url, headers: { authorization: `Bearer ${key}` }, ...(payload === undefined ? {} : { payload }) });
    return { status: res.statusCode, body: res.body ? (res.json() as Record<string, unknown>) : {} };
  };
  const request = (profileId: string, purpose: 'transactional' | 'marketing' = 'transactional'): MessageRequest => ({
    workspaceId: ws,
    profileId,
    channel: 'webhook',
    templateKey: 'hook',
    idempotencyKey: crypto.randomUUID(),
    purpose,
    variables: {},
  });
  const enqueue = (requests: MessageRequest[]) => withTransaction(db, (client) => enqueueMessages(client, requests, clock));
  const message = async (id: string) =>
    (await db.query<{ status: string; reason: string | null }>('select status, reason from messages where workspace_id = $1 and id = $2', [ws, id])).rows[0]!;
  const dispatch = () => createDispatcher({ db, secretsKey: SECRETS, publicUrl: 'https://tp.example', now: () => clock }).dispatchOnce();

  it('set with a reason (audited, queued messages cancelled), refused at enqueue and at dispatch, cleared again', async () => {
    const ana = await insertProfile(db, ws);
    const [before] = await enqueue([request(ana)]);
    expect(before!.status).toBe('queued');

    const blocked = await call('PUT', `/v1/channels/blocked-profiles/${ana}`, { reason: 'fraud' });
    expect(blocked.status).toBe(200);
    expect(blocked.body).toMatchObject({ block: { profileId: ana, reason: 'fraud' }, cancelledMessages: 1 });
    expect(await message(before!.messageId)).toEqual({ status: 'cancelled', reason: 'blocked' });

    // Every later send is skipped with the reason, transactional and marketing alike, and the skip is an event.
    const skipped = await enqueue([request(ana), request(ana, 'marketing')]);
    expect(skipped.map((r) => [r.status, r.reason])).toEqual([
      ['skipped', 'blocked'],
      ['skipped', 'blocked'],
    ]);
    const { rows: history } = await db.query<{ status: string; reason: string; event: string }>(
      'select status, reason, event from message_status_history where workspace_id = $1 and message_id = $2',
      [ws, skipped[0]!.messageId],
    );
    expect(history).toEqual([{ status: 'skipped', reason: 'blocked', event: 'Message Skipped' }]);

    // A message queued by a transaction that read the profile before the block committed is
    // caught at dispatch: skipped, the provider never called.
    const bo = await insertProfile(db, ws);
    const [late] = await enqueue([request(bo)]);
    await db.query(`insert into profile_blocks (workspace_id, profile_id, reason, blocked_by, blocked_at) values ($1, $2, null, 'test', now())`, [ws, bo]);
    const calls = provider.requests.length;
    expect(await dispatch()).toBe(1);
    expect(await message(late!.messageId)).toEqual({ status: 'skipped', reason: 'blocked' });
    expect(provider.requests.length).toBe(calls);

    const list = await call('GET', '/v1/channels/blocked-profiles');
    expect((list.body.items as Array<{ profileId: string; blockedBy: string }>).map((b) => b.profileId).sort()).toEqual([ana, bo].sort());
    expect((list.body.items as Array<{ profileId: string; blockedBy: string }>).find((b) => b.profileId === ana)!.blockedBy).toMatch(/.+/);

    // Who set and cleared it is in the audit log.
    expect((await call('DELETE', `/v1/channels/blocked-profiles/${ana}`)).status).toBe(204);
    expect(await call('DELETE', `/v1/channels/blocked-profiles/${ana}`)).toMatchObject({ status: 404, body: { error: 'not_found', field: 'profile' } });
    for (let i = 0; i < 50; i++) {
      const { rows } = await db.query<{ n: number }>(`select count(*)::int as n from audit_log where route = '/v1/channels/blocked-profiles/:profile'`);
      if (rows[0]!.n >= 3) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const { rows: audit } = await db.query<{ method: string; action: string; target: Record<string, string>; status: number }>(
      `select method, action, target, status from audit_log where workspace_id = $1 and route = '/v1/channels/blocked-profiles/:profile' order by seq`,
      [ws],
    );
    expect(audit.map((a) => [a.method, a.action, a.target.profile, a.status])).toEqual([
      ['PUT', 'channels.write', ana, 200],
      ['DELETE', 'channels.write', ana, 204],
      ['DELETE', 'channels.write', ana, 404],
    ]);

    // Cleared: sent to again.
    const [after] = await enqueue([request(ana)]);
    expect(after!.status).toBe('queued');
  });

  it('a block on a profile merged away still holds for the survivor; an erased profile is refused as not found', async () => {
    const survivor = await insertProfile(db, ws);
    const absorbed = await insertProfile(db, ws);
    await db.query('update profiles set merged_into = $3, merged_at = now() where workspace_id = $1 and id = $2', [ws, absorbed, survivor]);
    await db.query(`insert into profile_blocks (workspace_id, profile_id, reason, blocked_by, blocked_at) values ($1, $2, null, 'test', now())`, [ws, absorbed]);
    expect((await enqueue([request(absorbed)])).map((r) => r.reason)).toEqual(['blocked']);
    const erased = await insertProfile(db, ws);
    await db.query('delete from profiles where workspace_id = $1 and id = $2', [ws, erased]);
    expect((await enqueue([request(erased)])).map((r) => [r.status, r.reason])).toEqual([['skipped', 'profile_not_found']]);
  });

  it('refuses unknown profiles and bad bodies with the field named', async () => {
    expect(await call('PUT', `/v1/channels/blocked-profiles/${crypto.randomUUID()}`, {})).toMatchObject({ status: 404 });
    const ana = await insertProfile(db, ws);
    expect(await call('PUT', `/v1/channels/blocked-profiles/${ana}`, { reason: 'x'.repeat(501) })).toMatchObject({ status: 400 });
    expect(await call('PUT', `/v1/channels/blocked-profiles/${ana}`, { why: 'x' })).toMatchObject({ status: 400 });
  });
});
