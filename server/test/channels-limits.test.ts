import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { putAccount } from '../src/channels/accounts.ts';
import type { MessageRequest } from '../src/channels/contract.ts';
import { createDispatcher, type Dispatcher } from '../src/channels/dispatch.ts';
import { enqueueMessages } from '../src/channels/index.ts';
import { putPolicy } from '../src/channels/policy.ts';
import { createTemplate } from '../src/channels/template-store.ts';
import { createPool, withTransaction, type Db, type DbClient } from '../src/storage/database.ts';
import { createWorkspace } from '../src/workspaces/store.ts';
import { insertProfile, TEST_SECRETS_KEY } from './channels-support.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';
import { startFakeHttp, type FakeServer } from './support/fake-providers/http.ts';

/*
 * Limits that must hold across worker processes: each "process" here is its own connection pool
 * and its own dispatcher, racing the other on the same database with the same clock.
 */

let database: TestDatabase;
let db: Db;
let otherProcess: Db;
let ws: string;
let receiver: FakeServer;
let clock = new Date('2026-05-04T09:00:00Z');

const request = (profileId: string, overrides: Partial<MessageRequest> = {}): MessageRequest => ({
  workspaceId: ws,
  profileId,
  channel: 'webhook',
  templateKey: 'hook',
  idempotencyKey: crypto.randomUUID(),
  purpose: 'transactional',
  variables: {},
  ...overrides,
});

const enqueue = (requests: MessageRequest[], pool = db) => withTransaction(pool, (client) => enqueueMessages(client, requests, clock));
const dispatcherOn = (pool: Db): Dispatcher => createDispatcher({ db: pool, secretsKey: TEST_SECRETS_KEY, publicUrl: 'https://tp.example', now: () => clock });

/** Both dispatchers drain at once until neither takes anything more at this clock; returns the total. */
async function race(a: Dispatcher, b: Dispatcher): Promise<number> {
  const drain = async (d: Dispatcher) => {
    let total = 0;
    for (let n = await d.dispatchOnce(); n > 0; n = await d.dispatchOnce()) total += n;
    return total;
  };
  const [x, y] = await Promise.all([drain(a), drain(b)]);
  return x + y;
}

async function putHook(settings: Record<string, string | number>) {
  await withTransaction(db, (client) =>
    putAccount(client, TEST_SECRETS_KEY, ws, { key: 'hook', kind: 'webhook', provider: 'webhook', settings: { url: `${receiver.url}/in`, ...settings }, secrets: { signingSecret: 'limits-secret-0123' } }),
  );
}

beforeAll(async () => {
  database = await createTestDatabase();
  db = database.db;
  otherProcess = createPool(database.url, 4);
  ws = (await createWorkspace(db, { slug: 'limits', name: 'Limits' })).id;
  receiver = await startFakeHttp(() => ({ status: 200, body: {} }));
  await putHook({});
  await withTransaction(db, async (client) => {
    await createTemplate(client, ws, { key: 'hook', channel: 'webhook', name: 'Hook', defaultLocale: 'en', content: { en: { body: '{}' } } });
    await putAccount(client, TEST_SECRETS_KEY, ws, { key: 'sms', kind: 'sms', provider: 'twilio', settings: { accountSid: 'AC1', from: '+15550001111' }, secrets: { authToken: 't' } });
    await createTemplate(client, ws, { key: 'promo', channel: 'sms', name: 'Promo', defaultLocale: 'en', content: { en: { text: 'Sale' } } });
  });
});
afterAll(async () => {
  await receiver?.close();
  await otherProcess?.end();
  await database?.drop();
});

describe('rate limits shared by every dispatcher process (token buckets in PostgreSQL)', () => {
  it('two dispatchers together keep an account within its ratePerSecond', async () => {
    await putHook({ ratePerSecond: 5 });
    const profile = await insertProfile(db, ws, {});
    await enqueue(Array.from({ length: 23 }, () => request(profile)));
    const [a, b] = [dispatcherOn(db), dispatcherOn(otherProcess)];
    const before = receiver.requests.length;
    // A full bucket holds one second's worth: 5 between both processes, not 5 each.
    expect(await race(a, b)).toBe(5);
    expect(receiver.requests.length - before).toBe(5);
    clock = new Date(clock.getTime() + 1000);
    expect(await race(a, b)).toBe(5);
    clock = new Date(clock.getTime() + 400);
    expect(await race(a, b)).toBe(2);
    clock = new Date(clock.getTime() + 600);
    expect(await race(a, b)).toBe(3);
    // Idle time refills only up to one second's worth.
    clock = new Date(clock.getTime() + 60_000);
    expect(await race(a, b)).toBe(5);
    clock = new Date(clock.getTime() + 60_000);
    expect(await race(a, b)).toBe(3);
    expect(receiver.requests.length - before).toBe(23);
    await putHook({});
  });

  it("two dispatchers together keep a broadcast within its journey's send rate, also when its backlog is all due", async () => {
    const origin = { journeyId: 'spring-sale', journeyVersion: 1, instanceId: 'broadcast', nodeId: 'send' };
    const profiles = await Promise.all(Array.from({ length: 10 }, () => insertProfile(db, ws, {})));
    await enqueue(profiles.map((profile) => request(profile, { origin, ratePerSecond: 3 })));
    // A stalled worker: by the time dispatch resumes, every paced slot is past.
    clock = new Date(clock.getTime() + 3_600_000);
    const [a, b] = [dispatcherOn(db), dispatcherOn(otherProcess)];
    expect(await race(a, b)).toBe(3);
    clock = new Date(clock.getTime() + 1000);
    expect(await race(a, b)).toBe(3);
    clock = new Date(clock.getTime() + 1000);
    expect(await race(a, b)).toBe(3);
    clock = new Date(clock.getTime() + 1000);
    expect(await race(a, b)).toBe(1);
    const { rows } = await db.query<{ rate: number; scope: string }>('select scope, rate from channel_rate_buckets where workspace_id = $1 order by scope', [ws]);
    expect(rows).toEqual(expect.arrayContaining([{ scope: 'journey:spring-sale', rate: 3 }]));
  });
});

describe('frequency caps under concurrent enqueues of one profile', () => {
  const capped = async () => {
    await putPolicy(db, ws, { frequencyCaps: [{ channel: 'sms', maxMessages: 3, windowSeconds: 7 * 86_400 }], quietHours: null, requireOptIn: [] });
    return insertProfile(db, ws, { traits: { phone: '+8613800000123' } });
  };
  const marketing = (profile: string, journeyId: string) =>
    request(profile, { channel: 'sms', templateKey: 'promo', purpose: 'marketing', origin: { journeyId, journeyVersion: 1, instanceId: `${journeyId}-i`, nodeId: 'sms' } });

  it('a second transaction waits for the first and then counts its message (≤ 3 per week across journeys)', async () => {
    const profile = await capped();
    expect((await enqueue([marketing(profile, 'welcome'), marketing(profile, 'winback')])).map((r) => r.status)).toEqual(['queued', 'queued']);
    // Journey A's step holds its transaction open after taking the third slot.
    const a: DbClient = await db.connect();
    await a.query('begin');
    const first = await enqueueMessages(a, [marketing(profile, 'cart')], clock);
    expect(first[0]!.status).toBe('queued');
    // Journey B's step, in another process, asks for the same profile.
    const second = enqueue([marketing(profile, 'birthday')], otherProcess);
    let settled = false;
    void second.finally(() => (settled = true));
    for (;;) {
      const { rows } = await db.query<{ n: number }>(
        `select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock' and state = 'active'`,
      );
      if (rows[0]!.n > 0 || settled) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(settled).toBe(false); // B is waiting on A's lock of the profile
    await a.query('commit');
    a.release();
    expect((await second)[0]).toMatchObject({ status: 'skipped', reason: 'frequency_cap' });
    const { rows } = await db.query<{ n: number }>(
      `select count(*)::int as n from messages where workspace_id = $1 and profile_id = $2 and purpose = 'marketing' and status <> 'skipped'`,
      [ws, profile],
    );
    expect(rows[0]!.n).toBe(3);
  });

  // A smoke test of the same under real concurrency (the interleaving above is the one that proves the wait).
  it('twelve journeys racing from two processes for one profile: exactly three messages', async () => {
    const profile = await capped();
    const results = await Promise.all(
      Array.from({ length: 12 }, (_, i) => enqueue([marketing(profile, `journey-${i}`)], i % 2 === 0 ? db : otherProcess)),
    );
    const statuses = results.map(([r]) => r!.reason ?? r!.status);
    expect(statuses.filter((s) => s === 'queued')).toHaveLength(3);
    expect(statuses.filter((s) => s === 'frequency_cap')).toHaveLength(9);
    // Transactional messages are not capped and do not wait for the cap.
    expect((await enqueue([request(profile, { channel: 'sms', templateKey: 'promo' })]))[0]!.status).toBe('queued');
    await putPolicy(db, ws, { frequencyCaps: [], quietHours: null, requireOptIn: [] });
  });
});
