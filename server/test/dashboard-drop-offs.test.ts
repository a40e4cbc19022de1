import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { drain, reader, send, serverKey } from './profiles-support.ts';
import { startTestApp, type TestApp } from './support/app.ts';

/** POST /v1/analytics/funnels/drop-off-segment: a funnel step's drop-offs become a static list segment. */
describe('funnel drop-offs saved as a segment', () => {
  let t: TestApp;
  let call: ReturnType<typeof reader>;
  const funnel = {
    range: { lastDays: 7 },
    steps: [{ event: 'Product Viewed' }, { event: 'Added To Cart' }, { event: 'Order Completed' }],
  };

  beforeAll(async () => {
    t = await startTestApp();
    call = reader(t, await serverKey(t));
    const at = (minutesAgo: number) => new Date(Date.now() - minutesAgo * 60_000).toISOString();
    let n = 0;
    const track = (userId: string, event: string, minutesAgo: number) => ({ type: 'track', event, userId, messageId: `m-${n++}`, timestamp: at(minutesAgo) });
    await send(t, t.writeKey, [
      // a: converts; b and c: view and add, then stop; d: only views.
      track('a', 'Product Viewed', 60), track('a', 'Added To Cart', 50), track('a', 'Order Completed', 40),
      track('b', 'Product Viewed', 60), track('b', 'Added To Cart', 50),
      track('c', 'Product Viewed', 60), track('c', 'Added To Cart', 55),
      track('d', 'Product Viewed', 30),
    ]);
    await drain(t);
  });
  afterAll(async () => t?.close());

  it('makes the profiles that reached step 2 and not step 3 the members of a new static segment', async () => {
    const res = await call('POST', '/v1/analytics/funnels/drop-off-segment', { funnel, step: 2, segment: { key: 'cart_abandoners', name: 'Cart abandoners' } });
    expect(res.statusCode, res.body).toBe(201);
    expect(res.json()).toMatchObject({ key: 'cart_abandoners', step: 2, profiles: 2, memberCount: 2, truncated: false });

    const segment = await call('GET', '/v1/segments/cart_abandoners');
    expect(segment.json()).toMatchObject({ kind: 'static', memberCount: 2 });
    const members = (await call('GET', '/v1/segments/cart_abandoners/members')).json().items.map((m: { profileId: string }) => m.profileId);
    const userOf = async (id: string) => (await call('GET', `/v1/profiles/${id}`)).json().identifiers.find((i: { type: string }) => i.type === 'user_id').value;
    expect((await Promise.all(members.map(userOf))).sort()).toEqual(['b', 'c']);
  });

  it('takes the drop-offs of step 1 of another funnel (breakdown value null: all of them)', async () => {
    const res = await call('POST', '/v1/analytics/funnels/drop-off-segment', {
      funnel: { ...funnel, steps: funnel.steps.slice(1) },
      step: 1,
      breakdownValue: null,
      segment: { key: 'added_not_bought', name: 'Added, not bought' },
    });
    expect(res.statusCode, res.body).toBe(201);
    expect(res.json()).toMatchObject({ profiles: 2, memberCount: 2 });
  });

  it('names the field at fault: the last step, a taken key', async () => {
    const last = await call('POST', '/v1/analytics/funnels/drop-off-segment', { funnel, step: 3, segment: { key: 'x', name: 'x' } });
    expect(last.statusCode).toBe(400);
    expect(last.json()).toMatchObject({ error: 'invalid_request', field: 'step' });
    const taken = await call('POST', '/v1/analytics/funnels/drop-off-segment', { funnel, step: 1, segment: { key: 'cart_abandoners', name: 'Again' } });
    expect(taken.statusCode).toBe(409);
    expect(taken.json().field).toBe('segment.key');
  });
});
