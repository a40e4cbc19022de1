import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { drain, profileUrl, reader, send, serverKey } from './profiles-support.ts';
import { startTestApp, type TestApp } from './support/app.ts';

const PHONE = '+8613800138000';

/**
 * A mother (u-1, the family phone) and her son (member m-2, his email) merged by a store sale
 * that carried both; taken apart again through the API.
 */
describe('unmerge and unbind through the profile API', () => {
  let t: TestApp;
  let call: ReturnType<typeof reader>;
  beforeEach(async () => {
    t = await startTestApp();
    call = reader(t, await serverKey(t));
    await send(t, t.writeKey, [
      { type: 'identify', userId: 'u-1', traits: { phone: '13800138000', name: 'Wang Fang' }, messageId: 'a1', timestamp: '2026-02-01T08:00:00Z' },
      { type: 'identify', anonymousId: 'x', context: { externalIds: [{ id: 'm-2', type: 'member_id' }] }, traits: { email: 'B@x.com', name: 'Wang Jun' }, messageId: 'b1', timestamp: '2026-02-02T08:00:00Z' },
    ]);
    await drain(t);
    await send(t, t.writeKey, [
      { type: 'track', event: 'Order Completed', anonymousId: 'pos-1', context: { traits: { email: 'b@x.com', phone: '13800138000' } }, messageId: 'c1', timestamp: '2026-02-03T08:00:00Z' },
    ]);
    await drain(t);
  });
  afterEach(async () => t.close());

  it('splits the son off again, and the identity graphs of both say what happened', async () => {
    const merged = (await call('GET', profileUrl('user_id:u-1'))).json();
    expect((await call('GET', profileUrl('member_id:m-2'))).json().id).toBe(merged.id);

    const res = await call('POST', profileUrl('user_id:u-1', '/unmerge'), { identifier: { type: 'email', value: ' B@X.com ' } });
    expect(res.statusCode).toBe(200);
    const split = res.json();
    expect(split.profileId).toBe(merged.id);
    expect(split.movedIdentifiers).toEqual(expect.arrayContaining([{ type: 'email', value: 'b@x.com' }, { type: 'member_id', value: 'm-2' }]));
    expect(split.movedIdentifiers).not.toContainEqual({ type: 'user_id', value: 'u-1' });

    const son = (await call('GET', profileUrl('member_id:m-2'))).json();
    expect(son.id).toBe(split.newProfileId);
    expect(son.traits.name).toBe('Wang Jun');
    expect(son.events.map((e: { messageId: string }) => e.messageId)).toContain('b1');
    const mother = (await call('GET', profileUrl('user_id:u-1'))).json();
    expect(mother.traits.name).toBe('Wang Fang');
    expect(mother.events.map((e: { messageId: string }) => e.messageId)).not.toContain('b1');

    const motherGraph = (await call('GET', profileUrl(merged.id, '/identity'))).json();
    const unmergeRow = motherGraph.merges.find((m: { kind: string }) => m.kind === 'unmerge');
    expect(unmergeRow).toMatchObject({ survivorId: merged.id, absorbedIds: [split.newProfileId], cause: { identifier: { type: 'email', value: 'b@x.com' } } });
    const undone = motherGraph.merges.filter((m: { kind: string; undoneAt: string | null }) => m.kind !== 'unmerge');
    expect(undone.length).toBeGreaterThan(0);
    expect(undone.every((m: { undoneAt: string | null; undoneBy: string }) => m.undoneAt !== null && m.undoneBy === unmergeRow.id)).toBe(true);
    const sonGraph = (await call('GET', profileUrl('email:b@x.com', '/identity'))).json();
    expect(sonGraph.splitFrom).toEqual([expect.objectContaining({ id: unmergeRow.id, survivorId: merged.id })]);
    expect(sonGraph.merges).toEqual([]);
  });

  it('ends a link with unbind: the identifier no longer finds the profile, the graph keeps the ended link', async () => {
    const profile = (await call('GET', profileUrl('user_id:u-1'))).json();
    const res = await call('POST', profileUrl(profile.id, '/unbind'), { identifier: { type: 'phone', value: '138 0013 8000' }, reason: 'number released' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ profileId: profile.id, identifier: { type: 'phone', value: PHONE }, unboundAt: expect.any(String) });

    expect((await call('GET', profileUrl(`phone:${PHONE}`))).statusCode).toBe(404);
    const graph = (await call('GET', profileUrl(profile.id, '/identity'))).json();
    expect(graph.identifiers.find((i: { type: string }) => i.type === 'phone')).toMatchObject({
      value: PHONE,
      live: false,
      unboundReason: 'number released',
      unboundAt: res.json().unboundAt,
    });
    expect((await call('GET', profileUrl(profile.id))).json().identifiers.map((i: { type: string }) => i.type)).not.toContain('phone');

    // A later event with the released number starts someone new.
    await send(t, t.writeKey, [{ type: 'identify', userId: 'u-7', traits: { phone: '13800138000' }, messageId: 'd1', timestamp: '2026-03-01T08:00:00Z' }]);
    await drain(t);
    expect((await call('GET', profileUrl(`phone:${PHONE}`))).json().id).not.toBe(profile.id);

    const again = await call('POST', profileUrl(profile.id, '/unbind'), { identifier: { type: 'phone', value: PHONE } });
    expect(again.statusCode).toBe(404);
  });

  it('refuses bad unmerge and unbind requests clearly', async () => {
    const id = (await call('GET', profileUrl('user_id:u-1'))).json().id;
    const cases: Array<[string, object, number, string | undefined]> = [
      ['/unmerge', {}, 400, 'identifier'],
      ['/unmerge', { identifier: { type: 'email' } }, 400, 'identifier.value'],
      ['/unmerge', { identifier: { type: 'shoe_size', value: '42' } }, 400, 'identifier.type'],
      ['/unmerge', { identifier: { type: 'phone', value: 'call me' } }, 400, 'identifier.value'],
      ['/unmerge', { identifier: { type: 'email', value: 'nobody@x.com' } }, 404, undefined],
      ['/unbind', { identifier: { type: 'email', value: 'b@x.com' }, reason: '' }, 400, 'reason'],
      ['/unbind', { identifier: { type: 'email', value: 'b@x.com' }, extra: true }, 400, 'extra'],
    ];
    for (const [suffix, body, status, field] of cases) {
      const res = await call('POST', profileUrl(id, suffix), body);
      expect(res.statusCode, JSON.stringify(body)).toBe(status);
      expect(res.json().field, JSON.stringify(body)).toBe(field);
    }
    // Unmerging the only identifier a profile would keep is a conflict, not a silent no-op.
    await send(t, t.writeKey, [{ type: 'identify', userId: 'solo', messageId: 's1', timestamp: '2026-02-05T08:00:00Z' }]);
    await drain(t);
    const solo = await call('POST', profileUrl('user_id:solo', '/unmerge'), { identifier: { type: 'user_id', value: 'solo' } });
    expect(solo.statusCode).toBe(409);
    expect((await call('POST', profileUrl('user_id:nobody', '/unbind'), { identifier: { type: 'user_id', value: 'nobody' } })).statusCode).toBe(404);
  });
});
