import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { syncPair, type PairRef } from '../src/activation/sync.ts';
import type { WebhookPayload } from '../src/activation/webhook.ts';
import { putAccount } from '../src/channels/accounts.ts';
import type { MessageRequest } from '../src/channels/contract.ts';
import { createDispatcher } from '../src/channels/dispatch.ts';
import { enqueueMessages } from '../src/channels/index.ts';
import { getMessage } from '../src/channels/messages.ts';
import { closeSmtpTransports } from '../src/channels/providers/smtp.ts';
import { createTemplate } from '../src/channels/template-store.ts';
import { openPii, piiCodec, writeVault } from '../src/privacy/pii-codec.ts';
import { writeProfileTraits } from '../src/profiles/trait-writer.ts';
import { withTransaction } from '../src/storage/database.ts';
import { createSegment, startActivationApp, startReceiver, transition, type ActivationTestApp, type Receiver } from './activation-support.ts';
import { insertProfile, TEST_SECRETS_KEY } from './channels-support.ts';
import { startSmtpServer, type FakeSmtp } from './support/fake-providers/smtp.ts';

/*
 * Product paths that need personal data in clear now that PII identifiers and traits are stored
 * as keyed-hash tokens (privacy/pii-codec.ts): a send reaches the real address, templates see the
 * real name, a destination receives the identifier values, and a direct trait write stores PII
 * keys as tokens, not in clear. Profiles are stored exactly as the resolver stores them (codec
 * tokens + one sealed vault copy per value), and each test checks that first.
 */
describe('PII stored as tokens, opened where it is sent', () => {
  let t: ActivationTestApp;
  let smtp: FakeSmtp;
  const clock = new Date('2026-03-10T12:00:00Z');

  /** A profile whose PII traits and identifiers are stored as the resolver stores them. */
  async function sealedProfile(traits: Record<string, unknown>, identifiers: Array<{ type: string; value: string }> = []): Promise<string> {
    const codec = await piiCodec(t.db, t.workspaceId);
    const stored = codec.tokenizeTraits(traits);
    const encoded = identifiers.map((i) => ({ type: i.type, value: codec.identifiers.encode(i.type, i.value) }));
    await writeVault(t.db, codec);
    const id = await insertProfile(t.db, t.workspaceId, { traits: stored, identifiers: encoded });
    // At rest: no plaintext of any PII value in the profile's rows.
    const { rows } = await t.db.query<{ text: string }>(
      `select coalesce((select json_agg(value)::text from profile_traits where workspace_id = $1 and profile_id = $2), '') ||
              coalesce((select json_agg(value)::text from profile_identifiers where workspace_id = $1 and profile_id = $2), '') as text`,
      [t.workspaceId, id],
    );
    for (const value of [...Object.entries(traits).filter(([k]) => k !== 'plan').map(([, v]) => String(v)), ...identifiers.filter((i) => i.type !== 'user_id').map((i) => i.value)]) {
      expect(rows[0]!.text).not.toContain(value);
    }
    return id;
  }

  beforeAll(async () => {
    t = await startActivationApp({ now: () => clock });
    smtp = await startSmtpServer();
    await withTransaction(t.db, async (client) => {
      await putAccount(client, TEST_SECRETS_KEY, t.workspaceId, {
        key: 'mail',
        kind: 'email',
        provider: 'smtp',
        settings: { host: '127.0.0.1', port: smtp.port, from: 'Acme <news@acme.example>', startTls: false },
      });
      await createTemplate(client, t.workspaceId, {
        key: 'hello',
        channel: 'email',
        name: 'Hello',
        defaultLocale: 'en',
        content: { en: { subject: 'Hello {{ traits.name }} / {{ profile.email }}', text: 'Hi {{ traits.first_name }}' } },
      });
    });
  });
  afterAll(async () => {
    closeSmtpTransports();
    await smtp?.close();
    await t?.close();
  });

  const request = (profileId: string): MessageRequest => ({
    workspaceId: t.workspaceId,
    profileId,
    channel: 'email',
    templateKey: 'hello',
    idempotencyKey: crypto.randomUUID(),
    purpose: 'transactional',
    variables: {},
  });

  it('emails the plaintext address of a sealed email trait, with sealed name traits rendered in the template', async () => {
    const trait = await sealedProfile({ email: 'Ada@Example.com', name: 'Ada Lovelace', first_name: 'Ada', plan: 'pro' });
    // Only an e-mail identifier (no trait): the address comes from profile_identifiers.
    const identifier = await sealedProfile({ name: 'Bob', first_name: 'Bob' }, [{ type: 'email', value: 'bob@example.org' }]);
    const queued = await withTransaction(t.db, (client) => enqueueMessages(client, [request(trait), request(identifier)], clock));
    expect(queued.map((q) => q.status)).toEqual(['queued', 'queued']);
    const dispatcher = createDispatcher({ db: t.db, secretsKey: TEST_SECRETS_KEY, publicUrl: 'https://tp.example', now: () => clock, backoffBaseMs: 1000, random: () => 0 });
    for (let n = await dispatcher.dispatchOnce(); n > 0; n = await dispatcher.dispatchOnce());
    expect((await getMessage(t.db, t.workspaceId, queued[0]!.messageId))!).toMatchObject({ status: 'sent', address: 'ada@example.com' });
    const bobMessage = (await getMessage(t.db, t.workspaceId, queued[1]!.messageId))!;
    expect(bobMessage, JSON.stringify(bobMessage)).toMatchObject({ status: 'sent', address: 'bob@example.org' });
    const ada = smtp.mails.find((m) => m.to.includes('ada@example.com'));
    const bob = smtp.mails.find((m) => m.to.includes('bob@example.org'));
    expect(ada, JSON.stringify(smtp.mails.map((m) => m.to))).toBeDefined();
    expect(bob).toBeDefined();
    const unfold = (raw: string) => raw.replace(/=\r?\n/g, '').replace(/=3D/g, '=').replace(/\r?\n[ \t]+/g, ' ');
    expect(unfold(ada!.raw)).toContain('Subject: Hello Ada Lovelace / Ada@Example.com');
    expect(unfold(ada!.raw)).toContain('Hi Ada');
    expect(unfold(bob!.raw)).toContain('Subject: Hello Bob / bob@example.org');
    expect(ada!.raw + bob!.raw).not.toMatch(/tph1\.|tpe1\./);
  });

  it('a destination receives the plaintext values of the identifier types it is configured for', async () => {
    let destination: { id: string; secret: string } | undefined;
    const receiver: Receiver = await startReceiver(() => destination!.secret);
    try {
      const res = await t.call('POST', '/v1/destinations', { name: 'CRM', url: receiver.url, settings: { identifiers: ['email', 'phone', 'user_id'] } });
      expect(res.statusCode, res.body).toBe(201);
      destination = res.json() as { id: string; secret: string };
      const segment = await createSegment(t.db, t.workspaceId, 'pii-vip');
      const connect = await t.call('POST', `/v1/destinations/${destination.id}/segments`, { segment: 'pii-vip' });
      expect(connect.statusCode, connect.body).toBe(201);
      const profile = await sealedProfile({}, [
        { type: 'email', value: 'carol@example.com' },
        { type: 'phone', value: '+8613800000009' },
        { type: 'user_id', value: 'u-carol' },
      ]);
      await transition(t.db, t.workspaceId, segment, [profile], true);
      const pair: PairRef = { workspaceId: t.workspaceId, destinationId: destination.id, segmentId: segment.id };
      for (let run = 0; run < 50; run++) {
        const result = await syncPair({ db: t.db, now: () => new Date(), random: () => 0.5 }, pair);
        if (!result.more && !result.unsettled && !result.retryAt) break;
      }
      const changes = receiver.applied.flatMap((batch: WebhookPayload) => batch.changes);
      expect(changes.find((c) => c.profileId === profile)?.identifiers).toEqual({
        email: ['carol@example.com'],
        phone: ['+8613800000009'],
        user_id: ['u-carol'],
      });
    } finally {
      await receiver.close();
    }
  });

  it("a direct trait write (a journey's update_trait node) stores PII keys as tokens that open to the written value", async () => {
    const profile = await sealedProfile({ plan: 'basic' });
    const written = await withTransaction(t.db, (client) =>
      writeProfileTraits(client, t.workspaceId, [{ profileId: profile, set: { email: 'dave@example.com', plan: 'gold' } }], { kind: 'journey', name: 'journey:test' }, {
        messageId: crypto.randomUUID(),
        at: clock,
      }),
    );
    expect(written.map((w) => w.key).sort()).toEqual(['email', 'plan']);
    const { rows } = await t.db.query<{ key: string; value: unknown }>('select key, value from profile_traits where workspace_id = $1 and profile_id = $2 order by key', [
      t.workspaceId,
      profile,
    ]);
    const stored = Object.fromEntries(rows.map((r) => [r.key, r.value]));
    expect(stored.plan).toBe('gold');
    expect(stored.email).toMatch(/^tph1\./);
    expect(await openPii(t.db, t.workspaceId, stored)).toEqual({ email: 'dave@example.com', plan: 'gold' });
    const { rows: history } = await t.db.query<{ text: string }>(
      'select json_agg(value)::text as text from profile_trait_history where workspace_id = $1 and profile_id = $2',
      [t.workspaceId, profile],
    );
    expect(history[0]!.text).not.toContain('dave@example.com');
    // Writing the same value again is no change (compared as tokens).
    const again = await withTransaction(t.db, (client) =>
      writeProfileTraits(client, t.workspaceId, [{ profileId: profile, set: { email: 'dave@example.com' } }], { kind: 'journey', name: 'journey:test' }, {
        messageId: crypto.randomUUID(),
        at: clock,
      }),
    );
    expect(again).toEqual([]);
  });
});
