import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { basicAuth, startTestApp, type TestApp } from './support/app.ts';

describe('collection smoke', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(async () => t.close());

  it('stores a track call once', async () => {
    const body = { userId: 'u1', event: 'Signed Up', messageId: 'm-1', properties: { plan: 'pro' } };
    const first = await t.app.inject({ method: 'POST', url: '/v1/track', headers: { authorization: basicAuth(t.writeKey) }, payload: body });
    expect(first.statusCode).toBe(200);
    expect(first.json()).toMatchObject({ success: true, accepted: 1, duplicates: 0 });
    const again = await t.app.inject({ method: 'POST', url: '/v1/track', headers: { authorization: basicAuth(t.writeKey) }, payload: body });
    expect(again.json()).toMatchObject({ accepted: 0, duplicates: 1 });
    const { rows } = await t.db.query('select user_id, event, properties from events where workspace_id = $1', [t.workspace.id]);
    expect(rows).toEqual([{ user_id: 'u1', event: 'Signed Up', properties: { plan: 'pro' } }]);
  });
});
