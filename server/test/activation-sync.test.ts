import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { settledTransitionId, syncPair, sweepOnce, type PairRef, type SyncDeps } from '../src/activation/sync.ts';
import type { WebhookPayload } from '../src/activation/webhook.ts';
import type { SegmentRef } from '../src/segments/transitions.ts';
import {
  createProfiles,
  createSegment,
  startActivationApp,
  startReceiver,
  transition,
  type ActivationTestApp,
  type Receiver,
} from './activation-support.ts';
import { freePort } from './support/ports.ts';

/**
 * Sync against a real HTTP receiver. Time is a controllable clock (real time plus an offset the
 * test moves forward to each retry's due time), so backoffs cost nothing; only the one timeout
 * is real (300 ms).
 */
describe('webhook sync', () => {
  let t: ActivationTestApp;
  let offsetMs = 0;
  const now = () => new Date(Date.now() + offsetMs);
  const deps = (): SyncDeps => ({ db: t.db, now, random: () => 0.5 });

  beforeAll(async () => {
    t = await startActivationApp({ now });
  });
  afterAll(async () => t.close());

  async function createDestination(name: string, url: string, settings: object) {
    const res = await t.call('POST', '/v1/destinations', { name, url, settings });
    expect(res.statusCode, res.body).toBe(201);
    return res.json() as { id: string; secret: string };
  }

  /** Runs the pair as the worker would, jumping the clock to each retry; returns the retry delays seen. */
  async function drive(pair: PairRef, maxRuns = 200): Promise<number[]> {
    const delays: number[] = [];
    for (let run = 0; run < maxRuns; run++) {
      const result = await syncPair(deps(), pair);
      if (result.retryAt) {
        const { rows } = await t.db.query<{ delay: number }>(
          `select (extract(epoch from next_attempt_at - last_attempt_at) * 1000)::float8 as delay from destination_segments
            where workspace_id = $1 and destination_id = $2 and segment_id = $3`,
          [pair.workspaceId, pair.destinationId, pair.segmentId],
        );
        delays.push(Math.round(rows[0]!.delay));
        offsetMs += Math.max(result.retryAt.getTime() - now().getTime(), 0) + 1;
        continue;
      }
      // Another test file's long transaction can hold the outbox open for a moment.
      if (result.unsettled) continue;
      if (!result.more) return delays;
    }
    throw new Error('pair did not become idle');
  }

  const changesOf = (batches: WebhookPayload[]) => batches.flatMap((batch) => batch.changes);

  describe('failures, retries, a timeout, a refusal and redelivery', () => {
    let receiver: Receiver;
    let destination: { id: string; secret: string };
    let segment: SegmentRef;
    let pair: PairRef;
    let profiles: string[];
    const expected: Array<{ profileId: string; change: 'add' | 'remove'; transitionId: number }> = [];

    beforeAll(async () => {
      receiver = await startReceiver(() => destination.secret, [
        { status: 500 }, // batch 1, attempt 1
        { status: 503, body: 'busy' }, // batch 1, attempt 2
        { status: 200, delayMs: 1_000 }, // batch 1, attempt 3: applied, but the answer comes after our 300 ms timeout
        { status: 200 }, // batch 1, attempt 4: the same batch again (deduplicated by batch id)
        { status: 400, body: 'unknown field' }, // batch 2: refused -> dead letter at once
        { status: 429, headers: { 'retry-after': '7' } }, // batch 3, attempt 1
        { status: 200 }, // batch 3, attempt 2
      ]);
      destination = await createDestination('CRM webhook', receiver.url, { batchSize: 3, maxAttempts: 5, timeoutMs: 300, backoffBaseMs: 1000, backoffMaxMs: 8000 });
      segment = await createSegment(t.db, t.workspaceId, 'vip', 'VIP 客户');
      profiles = await createProfiles(
        t.db,
        t.workspaceId,
        Array.from({ length: 8 }, (_, i) => ({ email: `p${i}@example.com`, user_id: `u-${i}` })),
      );
      // Changes before the connection are not sent (no sendExisting).
      await transition(t.db, t.workspaceId, segment, [profiles[7]!], true);
      const connect = await t.call('POST', `/v1/destinations/${destination.id}/segments`, { segment: 'vip' });
      expect(connect.statusCode, connect.body).toBe(201);
      pair = { workspaceId: t.workspaceId, destinationId: destination.id, segmentId: segment.id };

      // 10 transitions -> batches of 3, 3, 3, 1
      for (const id of profiles.slice(0, 7)) {
        for (const r of await transition(t.db, t.workspaceId, segment, [id], true)) {
          expected.push({ profileId: r.profileId, change: 'add', transitionId: r.id });
        }
      }
      for (const r of await transition(t.db, t.workspaceId, segment, [profiles[0]!, profiles[1]!, profiles[7]!], false)) {
        expected.push({ profileId: r.profileId, change: 'remove', transitionId: r.id });
      }
      expect(expected).toHaveLength(10);
    });
    afterAll(async () => receiver.close());

    it('the sweep finds the pair with transitions after its cursor', async () => {
      const { rows } = await t.db.query(`select count(*)::int as n from graphile_worker._private_jobs`);
      const before = rows[0].n as number;
      const swept = await sweepOnce(t.db, now());
      expect(swept).toEqual({ enqueued: 1, active: 1 });
      const after = await t.db.query(`select count(*)::int as n from graphile_worker._private_jobs`);
      expect(after.rows[0].n).toBe(before + 1);
      // One job per pair: sweeping again replaces the waiting job instead of adding another.
      await sweepOnce(t.db, now());
      const again = await t.db.query(`select count(*)::int as n from graphile_worker._private_jobs`);
      expect(again.rows[0].n).toBe(before + 1);
    });

    it('delivers every change in order, retrying with backoff and Retry-After, dead-lettering the refused batch', async () => {
      const delays = await drive(pair);
      // Backoff with equal jitter at random 0.5: 0.75 x base·2^(n-1); the timeout counted as a failure; 429 waits Retry-After.
      expect(delays).toEqual([750, 1500, 3000, 7000]);

      expect(receiver.requests.every((r) => r.signatureOk)).toBe(true);
      expect(receiver.requests.map((r) => r.status)).toEqual([500, 503, 200, 200, 400, 429, 200, 200]);
      // The same batch (body and id) on every attempt; attempts numbered.
      const first = receiver.requests.slice(0, 4);
      expect(new Set(first.map((r) => r.batchId)).size).toBe(1);
      expect(first.map((r) => r.attempt)).toEqual(['1', '2', '3', '4']);
      expect(first.every((r) => JSON.stringify(r.payload) === JSON.stringify(first[0]!.payload))).toBe(true);
      // At least once: the timed-out attempt was applied by the receiver, the retry was a duplicate it dropped.
      expect(receiver.duplicates).toEqual([first[0]!.batchId]);

      const dead = receiver.requests[4]!.payload;
      const delivered = changesOf(receiver.applied);
      expect(delivered.map((c) => c.transitionId)).toEqual(
        expected.map((e) => e.transitionId).filter((id) => !dead.changes.some((c) => c.transitionId === id)),
      );
      expect(receiver.applied[0]).toMatchObject({
        destination: { id: destination.id, name: 'CRM webhook' },
        segment: { key: 'vip', name: 'VIP 客户' },
      });
      const firstChange = receiver.applied[0]!.changes[0]!;
      expect(firstChange).toEqual({
        profileId: profiles[0],
        change: 'add',
        at: expect.any(String),
        identifiers: { email: ['p0@example.com'], user_id: ['u-0'] },
        transitionId: expected[0]!.transitionId,
      });

      const link = await t.call('GET', `/v1/destinations/${destination.id}`);
      expect(link.json().segments[0]).toMatchObject({
        cursor: expected[9]!.transitionId,
        pendingBatch: null,
        deliveredBatches: 3,
        deliveredChanges: 7,
        deadBatches: 1,
        lastError: null,
      });
    });

    it('keeps the refused batch whole in the dead letters, and redelivers it with the same body and batch id', async () => {
      const list = await t.call('GET', `/v1/destinations/${destination.id}/dead-letters`);
      expect(list.statusCode).toBe(200);
      expect(list.json().items).toHaveLength(1);
      const letter = list.json().items[0];
      const refused = receiver.requests[4]!;
      expect(letter).toMatchObject({ batchId: refused.batchId, changes: 3, attempts: 1, status: 'dead', segmentId: segment.id });
      expect(letter.lastError).toBe('HTTP 400: unknown field');
      const detail = await t.call('GET', `/v1/destinations/${destination.id}/dead-letters/${letter.id}`);
      expect(detail.json().payload).toEqual(refused.payload);

      const redeliver = await t.call('POST', `/v1/destinations/${destination.id}/dead-letters/${letter.id}/redeliver`);
      expect(redeliver.statusCode, redeliver.body).toBe(200);
      expect(redeliver.json()).toMatchObject({ status: 'redelivered', attempts: 2, resolvedAt: expect.any(String) });
      const last = receiver.requests[receiver.requests.length - 1]!;
      expect(last).toMatchObject({ batchId: refused.batchId, signatureOk: true, status: 200, attempt: '2' });
      expect(last.payload).toEqual(refused.payload);

      // Every change now arrived exactly once (the redelivered batch late, as documented).
      const all = changesOf(receiver.applied).map((c) => ({ profileId: c.profileId, change: c.change, transitionId: c.transitionId }));
      expect([...all].sort((a, b) => a.transitionId! - b.transitionId!)).toEqual(expected);

      const again = await t.call('POST', `/v1/destinations/${destination.id}/dead-letters/${letter.id}/redeliver`);
      expect(again.statusCode).toBe(409);
      const discard = await t.call('POST', `/v1/destinations/${destination.id}/dead-letters/${letter.id}/discard`);
      expect(discard.statusCode).toBe(409);
    });

    it('sends later changes after the cursor, and nothing twice', async () => {
      const before = receiver.requests.length;
      const [late] = await transition(t.db, t.workspaceId, segment, [profiles[2]!], false);
      await drive(pair);
      expect(receiver.requests.length).toBe(before + 1);
      expect(receiver.applied.at(-1)!.changes.map((c) => c.transitionId)).toEqual([late!.id]);
      await drive(pair);
      expect(receiver.requests.length).toBe(before + 1);
      expect((await sweepOnce(t.db, now())).enqueued).toBe(0);
    });
  });

  it('moves a batch to the dead letters after maxAttempts (network errors) and keeps the pair going', async () => {
    const closedPort = await freePort();
    const destination = await createDestination('Down', `http://127.0.0.1:${closedPort}/hook`, { batchSize: 2, maxAttempts: 3, backoffBaseMs: 100, backoffMaxMs: 150 });
    const segment = await createSegment(t.db, t.workspaceId, 'down-segment');
    await t.call('POST', `/v1/destinations/${destination.id}/segments`, { segment: 'down-segment' });
    const profiles = await createProfiles(t.db, t.workspaceId, [{ email: 'a@x.cn' }, { email: 'b@x.cn' }, { email: 'c@x.cn' }]);
    await transition(t.db, t.workspaceId, segment, profiles, true);
    const pair = { workspaceId: t.workspaceId, destinationId: destination.id, segmentId: segment.id };

    const delays = await drive(pair);
    // Two batches (2 + 1 changes), each: fail, wait, fail, wait (capped at 150), fail -> dead.
    expect(delays).toEqual([75, 113, 75, 113]);
    const list = (await t.call('GET', `/v1/destinations/${destination.id}/dead-letters`)).json().items;
    expect(list.map((l: { changes: number; attempts: number }) => [l.changes, l.attempts])).toEqual([
      [1, 3],
      [2, 3],
    ]);
    expect(list[0].lastError).toMatch(/^network error: ECONNREFUSED \(after 3 attempts\)$/);
    const state = (await t.call('GET', `/v1/destinations/${destination.id}`)).json().segments[0];
    expect(state).toMatchObject({ deadBatches: 2, deliveredBatches: 0, pendingBatch: null });
    expect(state.lastError).toMatch(/ECONNREFUSED/);

    // Redelivery to a receiver that is still down answers 502 and keeps the letter dead, one attempt more.
    const redeliver = await t.call('POST', `/v1/destinations/${destination.id}/dead-letters/${list[0].id}/redeliver`);
    expect(redeliver.statusCode).toBe(502);
    expect(redeliver.json()).toMatchObject({ error: 'delivery_failed' });
    const after = (await t.call('GET', `/v1/destinations/${destination.id}/dead-letters/${list[0].id}`)).json();
    expect(after).toMatchObject({ status: 'dead', attempts: 4 });
    const discard = await t.call('POST', `/v1/destinations/${destination.id}/dead-letters/${list[0].id}/discard`);
    expect(discard.json()).toMatchObject({ status: 'discarded' });
    const dead = await t.call('GET', `/v1/destinations/${destination.id}/dead-letters?status=dead`);
    expect(dead.json().items.map((l: { id: string }) => l.id)).toEqual([list[1].id]);
  });

  it('sendExisting sends the members as adds first, then only the changes after the connection', async () => {
    let secret = '';
    const receiver = await startReceiver(() => secret);
    try {
      const destination = await createDestination('Backfill', receiver.url, { batchSize: 2, identifiers: ['email'] });
      secret = destination.secret;
      const segment = await createSegment(t.db, t.workspaceId, 'existing');
      const profiles = await createProfiles(t.db, t.workspaceId, [
        { email: 'e1@x.cn', user_id: 'e1' },
        { email: 'e2@x.cn' },
        { email: 'e3@x.cn' },
        { email: 'e4@x.cn' },
        { email: 'e5@x.cn' },
      ]);
      await transition(t.db, t.workspaceId, segment, profiles.slice(0, 4), true);
      await transition(t.db, t.workspaceId, segment, [profiles[3]!], false);
      const res = await t.call('POST', `/v1/destinations/${destination.id}/segments`, { segment: 'existing', sendExisting: true });
      expect(res.json()).toMatchObject({ backfillPending: true });
      const [later] = await transition(t.db, t.workspaceId, segment, [profiles[4]!], true);

      await drive({ workspaceId: t.workspaceId, destinationId: destination.id, segmentId: segment.id });
      const changes = changesOf(receiver.applied);
      const members = [...profiles.slice(0, 3)].sort();
      expect(changes.map((c) => [c.profileId, c.change, c.transitionId])).toEqual([
        ...members.map((id) => [id, 'add', null]),
        [profiles[4], 'add', later!.id],
      ]);
      // Only the configured identifier types are sent.
      expect(changes.find((c) => c.profileId === profiles[0])!.identifiers).toEqual({ email: ['e1@x.cn'] });
      expect(receiver.applied.map((b) => b.changes.length)).toEqual([2, 1, 1]);
      const state = (await t.call('GET', `/v1/destinations/${destination.id}`)).json().segments[0];
      expect(state).toMatchObject({ backfillPending: false, cursor: later!.id, deliveredChanges: 4 });
    } finally {
      await receiver.close();
    }
  });

  it('sends nothing while the destination or the connection is paused, and resumes where it stopped', async () => {
    let secret = '';
    const receiver = await startReceiver(() => secret);
    try {
      const destination = await createDestination('Pausable', receiver.url, {});
      secret = destination.secret;
      const segment = await createSegment(t.db, t.workspaceId, 'pausable');
      await t.call('POST', `/v1/destinations/${destination.id}/segments`, { segment: 'pausable' });
      const pair = { workspaceId: t.workspaceId, destinationId: destination.id, segmentId: segment.id };
      const [p1, p2] = await createProfiles(t.db, t.workspaceId, [{ email: 'pa@x.cn' }, { email: 'pb@x.cn' }]);

      expect((await t.call('PATCH', `/v1/destinations/${destination.id}`, { status: 'paused' })).statusCode).toBe(200);
      await transition(t.db, t.workspaceId, segment, [p1!], true);
      await drive(pair);
      expect(receiver.requests).toHaveLength(0);
      await t.call('PATCH', `/v1/destinations/${destination.id}`, { status: 'active' });
      const linkPause = await t.call('PATCH', `/v1/destinations/${destination.id}/segments/pausable`, { status: 'paused' });
      expect(linkPause.statusCode, linkPause.body).toBe(200);
      await transition(t.db, t.workspaceId, segment, [p2!], true);
      await drive(pair);
      expect(receiver.requests).toHaveLength(0);
      await t.call('PATCH', `/v1/destinations/${destination.id}/segments/pausable`, { status: 'active' });
      await drive(pair);
      expect(changesOf(receiver.applied).map((c) => c.profileId)).toEqual([p1, p2]);
    } finally {
      await receiver.close();
    }
  });

  it('never skips a transition numbered before one that committed first', async () => {
    let secret = '';
    const receiver = await startReceiver(() => secret);
    const slow = await t.db.connect();
    try {
      const destination = await createDestination('Ordered', receiver.url, {});
      secret = destination.secret;
      const segment = await createSegment(t.db, t.workspaceId, 'ordered');
      await t.call('POST', `/v1/destinations/${destination.id}/segments`, { segment: 'ordered' });
      const pair = { workspaceId: t.workspaceId, destinationId: destination.id, segmentId: segment.id };
      const [p1, p2] = await createProfiles(t.db, t.workspaceId, [{ email: 'slow@x.cn' }, { email: 'fast@x.cn' }]);

      // A transaction takes the smaller id and stays open while another one commits a larger id
      // (recordTransitions' own statements, in its order: the membership row, then the transition;
      // the rest of it would make the second writer wait on the segment row).
      await slow.query('begin');
      await slow.query(`insert into segment_memberships (workspace_id, segment_id, profile_id, entered_at) values ($1, $2, $3, now())`, [
        t.workspaceId,
        segment.id,
        p1,
      ]);
      const { rows } = await slow.query<{ id: number }>(
        `insert into segment_transitions (workspace_id, segment_id, profile_id, transition, at, cause, segment_version)
         values ($1, $2, $3, 'entered', now(), 'event', 1) returning id`,
        [t.workspaceId, segment.id, p1],
      );
      const early = rows[0];
      const [late] = await transition(t.db, t.workspaceId, segment, [p2!], true);
      expect(late!.id).toBeGreaterThan(early!.id);

      expect(await settledTransitionId(t.db, 100)).toBeNull();
      const blocked = await syncPair(deps(), pair);
      expect(blocked).toMatchObject({ delivered: 0, unsettled: true });
      expect(receiver.requests).toHaveLength(0);

      await slow.query('commit');
      await drive(pair);
      expect(changesOf(receiver.applied).map((c) => c.transitionId)).toEqual([early!.id, late!.id]);
    } finally {
      await slow.query('rollback').catch(() => undefined);
      slow.release();
      await receiver.close();
    }
  });
});
