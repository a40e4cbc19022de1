import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildServer } from '../src/api/server.ts';
import type { RateLimits } from '../src/api/hardening.ts';
import { createSharedRateLimiter, createSharedTokenBuckets, maxBlock } from '../src/api/shared-rate-limit.ts';
import type { Db, Queryable } from '../src/storage/database.ts';
import { createKey, createSource, createWorkspace } from '../src/workspaces/store.ts';
import { ADMIN_TOKEN, basicAuth, startTestApp, type TestApp } from './support/app.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';

const count = (statuses: number[], status: number) => statuses.filter((s) => s === status).length;

describe('shared rate limiter (counts in PostgreSQL)', () => {
  let database: TestDatabase;
  let clock = Date.parse('2026-12-07T10:00:00Z');
  beforeAll(async () => {
    database = await createTestDatabase();
  });
  afterAll(async () => database?.drop());

  it('two limiters on one database together allow the limit once per window, each answering 429 past it', async () => {
    const a = createSharedRateLimiter(database.db);
    const b = createSharedRateLimiter(database.db);
    const waits: number[] = [];
    for (let i = 0; i < 20; i++) waits.push(await (i % 2 ? b : a).take('ip:api:1', 10, clock));
    expect(count(waits, 0)).toBe(10);
    // Both processes refuse once the shared count is spent, with the wait until the next window.
    expect(waits.filter((_, i) => i % 2 === 0)).toContain(1);
    expect(waits.filter((_, i) => i % 2 === 1)).toContain(1);
    const { rows } = await database.db.query<{ count: number }>('select count from rate_limit_windows where bucket = $1', ['ip:api:1']);
    expect(rows).toEqual([{ count: 10 }]);

    clock += 1000;
    expect(await b.take('ip:api:1', 10, clock)).toBe(0);
    expect(await a.take('ip:api:1', 10, clock)).toBe(0);
  });

  it('concurrent requests in two processes share one reservation per process and never pass the limit', async () => {
    const a = createSharedRateLimiter(database.db);
    const b = createSharedRateLimiter(database.db);
    // 40 requests at once in each: more than either could be granted, so every reserved token finds a request.
    const waits = await Promise.all(Array.from({ length: 80 }, (_, i) => (i % 2 ? b : a).take('caller:key:k1', 40, clock)));
    expect(count(waits, 0)).toBe(40);
    expect(count(waits, 1)).toBe(40);
    // The database handed out exactly the limit, no more.
    const { rows } = await database.db.query<{ count: number }>('select count from rate_limit_windows where bucket = $1', ['caller:key:k1']);
    expect(rows).toEqual([{ count: 40 }]);
  });

  it('tokens one process reserved but did not use are lost to the others for that window, at most one block each', async () => {
    const limit = 320; // blocks of 1, 2, 4, … up to 20
    let queries = 0;
    const counted: Queryable = { query: ((...args: Parameters<Db['query']>) => (queries++, database.db.query(...args))) as Db['query'] };
    const a = createSharedRateLimiter(counted);
    const b = createSharedRateLimiter(database.db);
    for (let i = 0; i < 40; i++) expect(await a.take('ip:collection:9', limit, clock)).toBe(0);
    // 40 requests, 7 round trips: the old-window cleanup and six reservations.
    expect(queries).toBe(7);
    let passed = 0;
    while ((await b.take('ip:collection:9', limit, clock)) === 0) passed++;
    // a used 40 of the 1+2+4+8+16+20 = 51 it reserved: b got the rest of the limit, and a still
    // holds 11 (less than one block), which it spends before it too is refused.
    expect(maxBlock(limit)).toBe(20);
    expect(passed).toBe(limit - 51);
    for (let i = 0; i < 11; i++) expect(await a.take('ip:collection:9', limit, clock)).toBe(0);
    expect(await a.take('ip:collection:9', limit, clock)).toBe(1);
  });

  it('deletes windows older than ten seconds, at most once a minute per process', async () => {
    const limiter = createSharedRateLimiter(database.db);
    await database.db.query('insert into rate_limit_windows values ($1, $2, 1, 1), ($1, $3, 1, 1)', ['old', Math.floor(clock / 1000) - 3600, Math.floor(clock / 1000) - 5]);
    expect(await limiter.take('ip:api:2', 5, clock)).toBe(0);
    const { rows } = await database.db.query<{ window_start: string }>(`select window_start from rate_limit_windows where bucket = 'old'`);
    expect(rows.map((row) => Number(row.window_start))).toEqual([Math.floor(clock / 1000) - 5]);
  });

  it('counts in the process while the database cannot be reached, and says so', async () => {
    const errors: unknown[] = [];
    const broken = { query: () => Promise.reject(new Error('connection refused')) };
    const limiter = createSharedRateLimiter(broken, { onStorageError: (error) => errors.push(error) });
    const waits = [];
    for (let i = 0; i < 4; i++) waits.push(await limiter.take('ip:api:3', 3, clock));
    expect(waits).toEqual([0, 0, 0, 1]);
    expect(errors.length).toBe(4);
  });
});

describe("shared token buckets (a source's events per second, counted in PostgreSQL)", () => {
  let database: TestDatabase;
  let ws: string;
  const clock = Date.parse('2026-12-07T10:30:00Z');
  beforeAll(async () => {
    database = await createTestDatabase();
    ws = (await createWorkspace(database.db, { slug: 'buckets', name: 'Buckets' })).id;
  });
  afterAll(async () => database?.drop());

  it("two processes together spend one bucket: a second's worth, then a wait; tokens come back at the rate", async () => {
    const a = createSharedTokenBuckets(database.db);
    const b = createSharedTokenBuckets(database.db);
    expect(await a.take(ws, 'source:s1', 10, 6, clock)).toBe(0);
    expect(await b.take(ws, 'source:s1', 10, 4, clock)).toBe(0);
    expect(await a.take(ws, 'source:s1', 10, 1, clock)).toBe(1);
    expect(await b.take(ws, 'source:s1', 10, 1, clock)).toBe(1);
    // 100 ms later one token (of ten a second) is back, for whichever process asks first.
    expect(await b.take(ws, 'source:s1', 10, 1, clock + 100)).toBe(0);
    expect(await a.take(ws, 'source:s1', 10, 1, clock + 100)).toBe(1);
    // Another source has its own bucket.
    expect(await a.take(ws, 'source:s2', 10, 10, clock)).toBe(0);
  });

  it('a batch bigger than the rate passes when the bucket is full and empties it; tokens then come back at the rate', async () => {
    const a = createSharedTokenBuckets(database.db);
    const b = createSharedTokenBuckets(database.db);
    expect(await a.take(ws, 'source:big', 10, 25, clock)).toBe(0);
    expect(await b.take(ws, 'source:big', 10, 1, clock)).toBe(1);
    expect(await b.take(ws, 'source:big', 10, 1, clock + 100)).toBe(0);
    // A refusal spends nothing: the token that came back by +200 ms is still there after it.
    expect(await a.take(ws, 'source:big', 10, 25, clock + 200)).toBe(1);
    expect(await a.take(ws, 'source:big', 10, 1, clock + 200)).toBe(0);
    expect(await a.take(ws, 'source:big', 10, 1, clock + 200)).toBe(1);
  });

  it('counts in the process while the database cannot be reached', async () => {
    const errors: unknown[] = [];
    const broken = { query: () => Promise.reject(new Error('connection refused')) };
    const buckets = createSharedTokenBuckets(broken, { onStorageError: (error) => errors.push(error) });
    expect(await buckets.take(ws, 'source:s3', 2, 2, clock)).toBe(0);
    expect(await buckets.take(ws, 'source:s3', 2, 1, clock)).toBe(1);
    expect(errors.length).toBe(2);
  });
});

describe('two API processes on one database', () => {
  let t: TestApp;
  let second: FastifyInstance;
  let clock = Date.parse('2026-12-07T11:00:00Z');
  const limits: RateLimits = { collectionPerIp: 6, apiPerIp: null, apiPerCaller: 4 };
  beforeAll(async () => {
    t = await startTestApp({ rateLimits: limits, now: () => new Date(clock) });
    second = await buildServer({ db: t.db, verifyAdmin: (token) => token === ADMIN_TOKEN, logLevel: false, rateLimits: limits, now: () => new Date(clock) });
  });
  afterAll(async () => {
    await second?.close();
    await t?.close();
  });

  const track = (app: FastifyInstance, ip: string) =>
    app.inject({ method: 'POST', url: '/v1/track', remoteAddress: ip, headers: { authorization: basicAuth(t.writeKey) }, payload: { userId: 'u-shared', event: 'E' } });

  it('collection per IP: together they allow the limit, then 429 with Retry-After; a window later requests pass again', async () => {
    const answers = [];
    for (let i = 0; i < 12; i++) answers.push(await track(i % 2 ? second : t.app, '203.0.113.70'));
    const statuses = answers.map((answer) => answer.statusCode);
    expect(count(statuses, 200)).toBe(6);
    expect(count(statuses, 429)).toBe(6);
    const refused = answers.find((answer) => answer.statusCode === 429)!;
    expect(refused.headers['retry-after']).toBe('1');
    expect(refused.json()).toMatchObject({ error: 'rate_limited' });
    // Each process alone would have allowed 6 of its own.
    expect(statuses.filter((_, i) => i % 2 === 0)).toContain(429);
    expect(statuses.filter((_, i) => i % 2 === 1)).toContain(429);
    // Only the allowed requests were stored.
    const { rows } = await t.db.query<{ n: string }>('select count(*) as n from events where workspace_id = $1', [t.workspace.id]);
    expect(Number(rows[0]!.n)).toBe(6);

    clock += 1000;
    expect((await track(second, '203.0.113.70')).statusCode).toBe(200);
    expect((await track(t.app, '203.0.113.70')).statusCode).toBe(200);
  });

  it("collection per write key: a source's events per second are limited across both processes", async () => {
    const limited = await createSource(t.db, t.workspace.id, { name: 'Limited shared', kind: 'web', rateLimitPerSecond: 4 });
    const send = (app: FastifyInstance, i: number) =>
      app.inject({
        method: 'POST',
        url: '/v1/track',
        remoteAddress: `198.51.100.${i}`,
        headers: { authorization: basicAuth(limited.writeKey.key) },
        payload: { userId: 'u-source', event: 'E', messageId: `src-${clock}-${i}` },
      });
    const answers = [];
    for (let i = 0; i < 8; i++) answers.push(await send(i % 2 ? second : t.app, i));
    const statuses = answers.map((answer) => answer.statusCode);
    // Each process alone would have allowed 4 of its own.
    expect(statuses).toEqual([200, 200, 200, 200, 429, 429, 429, 429]);
    expect(answers[4]!.json()).toMatchObject({ error: 'rate_limited', message: expect.stringMatching(/accepts 4 events per second/) });
    expect(answers[4]!.headers['retry-after']).toBe('1');
    const { rows } = await t.db.query<{ n: string }>('select count(*) as n from events where workspace_id = $1 and source_id = $2', [t.workspace.id, limited.source.id]);
    expect(Number(rows[0]!.n)).toBe(4);
    clock += 1000;
    expect((await send(second, 9)).statusCode).toBe(200);
  });

  it('API per key: the key is limited across both processes, another key is not', async () => {
    const key = (await createKey(t.db, t.workspace.id, { kind: 'server' })).key;
    const other = (await createKey(t.db, t.workspace.id, { kind: 'server' })).key;
    const read = (app: FastifyInstance, bearer: string) => app.inject({ method: 'GET', url: '/v1/segments', headers: { authorization: `Bearer ${bearer}` } });
    const statuses = await Promise.all(Array.from({ length: 10 }, (_, i) => read(i % 2 ? second : t.app, key).then((answer) => answer.statusCode)));
    expect(count(statuses, 200)).toBe(4);
    expect(count(statuses, 429)).toBe(6);
    expect((await read(second, other)).statusCode).toBe(200);
    clock += 1000;
    expect((await read(t.app, key)).statusCode).toBe(200);
  });
});
