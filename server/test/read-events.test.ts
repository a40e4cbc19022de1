import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, basicAuth, startTestApp, type TestApp } from './support/app.ts';

interface Page {
  items: Array<{ messageId: string; type: string; event: string | null; userId: string | null; timestamp: string; sourceId: string }>;
  nextCursor: string | null;
}

describe('GET /v1/events (server key)', () => {
  let t: TestApp;
  let serverKey: string;
  const read = async (query = ''): Promise<{ status: number; body: Page & { field?: string; error?: string } }> => {
    const res = await t.app.inject({ method: 'GET', url: `/v1/events${query}`, headers: { authorization: `Bearer ${serverKey}` } });
    return { status: res.statusCode, body: res.json() };
  };

  beforeAll(async () => {
    t = await startTestApp();
    serverKey = (
      await t.app.inject({ method: 'POST', url: '/admin/workspaces/acme/keys', headers: { authorization: `Bearer ${ADMIN_TOKEN}` }, payload: { kind: 'server' } })
    ).json().key;
    // Historical import keeps the given times: three events share one instant, so order needs seq.
    const batch = [
      { type: 'track', userId: 'u1', event: 'Open', messageId: 'e1', timestamp: '2025-01-01T10:00:00Z' },
      { type: 'track', userId: 'u1', event: 'Buy', messageId: 'e2', timestamp: '2025-01-02T10:00:00Z' },
      { type: 'identify', userId: 'u2', messageId: 'e3', timestamp: '2025-01-02T10:00:00Z', traits: { plan: 'pro' } },
      { type: 'page', anonymousId: 'anon-1', name: 'Home', messageId: 'e4', timestamp: '2025-01-02T10:00:00Z' },
      { type: 'track', anonymousId: 'anon-1', event: 'Open', messageId: 'e5', timestamp: '2025-02-15T08:30:00Z' },
    ];
    const res = await t.app.inject({ method: 'POST', url: '/v1/import', headers: { authorization: basicAuth(t.writeKey) }, payload: { batch } });
    expect(res.json()).toMatchObject({ accepted: 5 });
  });
  afterAll(async () => t.close());

  it('returns the events newest first with their stored fields', async () => {
    const { status, body } = await read();
    expect(status).toBe(200);
    expect(body.items.map((e) => e.messageId)).toEqual(['e5', 'e4', 'e3', 'e2', 'e1']);
    expect(body.nextCursor).toBeNull();
    expect(body.items[2]).toMatchObject({ type: 'identify', userId: 'u2', timestamp: '2025-01-02T10:00:00.000Z', sourceId: t.source.id });
    expect(body.items[2]).toHaveProperty('traits', { plan: 'pro' });
  });

  it('pages with a cursor, including across events with the same timestamp', async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const { body }: { body: Page } = await read(`?limit=2${cursor ? `&cursor=${cursor}` : ''}`);
      seen.push(...body.items.map((e) => e.messageId));
      cursor = body.nextCursor;
      pages++;
    } while (cursor);
    expect(pages).toBe(3);
    expect(seen).toEqual(['e5', 'e4', 'e3', 'e2', 'e1']);
  });

  it('filters by type, event, userId, anonymousId, source and time range', async () => {
    const ids = async (query: string) => (await read(query)).body.items.map((e) => e.messageId);
    expect(await ids('?type=track')).toEqual(['e5', 'e2', 'e1']);
    expect(await ids('?event=Open')).toEqual(['e5', 'e1']);
    expect(await ids('?userId=u1')).toEqual(['e2', 'e1']);
    expect(await ids('?anonymousId=anon-1')).toEqual(['e5', 'e4']);
    expect(await ids(`?sourceId=${t.source.id}&type=page`)).toEqual(['e4']);
    expect(await ids('?since=2025-01-02T10:00:00Z&until=2025-02-01T00:00:00Z')).toEqual(['e4', 'e3', 'e2']);
    expect(await ids('?since=2025-02-01T00:00:00Z')).toEqual(['e5']);
    expect(await ids('?type=track&event=Open&limit=1')).toEqual(['e5']);
  });

  it('rejects bad parameters with 400 and the field', async () => {
    const cases: Array<[string, string]> = [
      ['?type=click', 'type'],
      ['?since=yesterday', 'since'],
      ['?limit=0', 'limit'],
      ['?limit=501', 'limit'],
      ['?cursor=bm9wZQ', 'cursor'],
      ['?colour=red', 'colour'],
    ];
    for (const [query, field] of cases) {
      const { status, body } = await read(query);
      expect(status, query).toBe(400);
      expect(body, query).toMatchObject({ field });
    }
  });
});
