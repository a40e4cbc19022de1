/**
 * Last-seen times of known identifiers move on by link id, only forward and by at least
 * LAST_SEEN_RESOLUTION_MS (identity/resolver.ts writeBatch), and the phone normaliser's memo
 * answers per region like the parser.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { normalizePhone } from '../src/identity/normalizers.ts';
import { LAST_SEEN_RESOLUTION_MS, resolveQueuedEvents } from '../src/identity/resolver.ts';
import { basicAuth, startTestApp, type TestApp } from './support/app.ts';

const T0 = Date.parse('2026-03-01T08:00:00Z');
const at = (minutes: number) => new Date(T0 + minutes * 60_000);

describe('normalizePhone', () => {
  it('gives the same answer from its memo as the first time, per region', () => {
    const first = normalizePhone('139 0000 1111', 'CN');
    expect(first).toEqual({ ok: true, value: '+8613900001111' });
    expect(normalizePhone('139 0000 1111', 'CN')).toEqual(first);
    // The same digits read in another region are another (here: invalid) number.
    expect(normalizePhone('139 0000 1111', 'US')).toEqual({ ok: false, message: '"139 0000 1111" is not a valid phone number in region US' });
    expect(normalizePhone('139 0000 1111', 'CN')).toEqual(first);
  });
});

describe.each([{ batchSize: 1 }, { batchSize: 1000 }])('identifier last seen (batch $batchSize)', ({ batchSize }) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(async () => t.close());

  let counter = 0;
  it('follows the latest event of each identifier, whatever order events arrive in', async () => {
    const { workspace, writeKey } = await t.addWorkspace(`seen-${batchSize}-${++counter}`);
    const send = async (batch: unknown[]) => {
      const res = await t.app.inject({ method: 'POST', url: '/v1/batch', headers: { authorization: basicAuth(writeKey) }, payload: { batch } });
      expect(res.json().rejected).toEqual([]);
      while ((await resolveQueuedEvents(t.db, workspace.id, batchSize)) > 0);
    };
    const links = async () => {
      const { rows } = await t.db.query<{ key: string; first_seen: Date; last_seen: Date }>(
        `select type || ':' || value as key, first_seen, last_seen from profile_identifiers where workspace_id = $1 order by type, value`,
        [workspace.id],
      );
      return rows.map((row) => ({ key: row.key, first: row.first_seen.getTime(), last: row.last_seen.getTime() }));
    };
    const event = (messageId: string, minutes: number, extra: Record<string, unknown>) => ({
      type: 'track', event: 'Viewed', messageId, timestamp: at(minutes).toISOString(), ...extra,
    });

    await send([event('a', 10, { anonymousId: 'anon-1' })]);
    // Seen again later (moves on), then earlier than stored (stays), with a new identifier joining.
    await send([event('b', 30, { anonymousId: 'anon-1', userId: 'u-1' }), event('c', 20, { anonymousId: 'anon-1' })]);
    await send([event('d', 5, { userId: 'u-1' })]);
    expect(await links()).toEqual([
      { key: 'anonymous_id:anon-1', first: at(10).getTime(), last: at(30).getTime() },
      // Linked by the event at 30; the later-arriving event at 5 is older: first seen stays the link's.
      { key: 'user_id:u-1', first: at(30).getTime(), last: at(30).getTime() },
    ]);
    await send([event('e', 45, { userId: 'u-1' }), event('f', 40, { userId: 'u-1', anonymousId: 'anon-1' })]);
    expect(await links()).toEqual([
      { key: 'anonymous_id:anon-1', first: at(10).getTime(), last: at(40).getTime() },
      { key: 'user_id:u-1', first: at(30).getTime(), last: at(45).getTime() },
    ]);
    // Within the resolution (a minute) of the stored time, the link is left as it is; a minute on, it moves.
    const step = LAST_SEEN_RESOLUTION_MS / 60_000;
    await send([event('g', 45 + step / 2, { userId: 'u-1' })]);
    expect((await links())[1]).toEqual({ key: 'user_id:u-1', first: at(30).getTime(), last: at(45).getTime() });
    await send([event('h', 45 + step, { userId: 'u-1' })]);
    expect((await links())[1]).toEqual({ key: 'user_id:u-1', first: at(30).getTime(), last: at(45 + step).getTime() });
  });
});
