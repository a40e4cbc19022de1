import { parse } from 'csv-parse/sync';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { memberRows } from '../src/activation/export.ts';
import { createKey, createSource, createWorkspace } from '../src/workspaces/store.ts';
import { createProfiles, createSegment, startActivationApp, type ActivationTestApp } from './activation-support.ts';

const MEMBERS = 12_345; // three chunks of 5,000 in the route

describe('segment CSV export', () => {
  let t: ActivationTestApp;
  let segmentId: string;
  const special: Record<string, { traits: Record<string, unknown>; emails: string[] }> = {};

  beforeAll(async () => {
    t = await startActivationApp({ now: () => new Date('2026-03-01T08:09:10Z') });
    const segment = await createSegment(t.db, t.workspaceId, '上海 VIP', '上海 VIP');
    segmentId = segment.id;
    await t.db.query(
      `with p as (insert into profiles (workspace_id) select $1 from generate_series(1, $3) returning id),
            n as (select id, row_number() over () as n from p),
            m as (insert into segment_memberships (workspace_id, segment_id, profile_id, entered_at)
                  select $1, $2, id, '2026-01-01T00:00:00Z'::timestamptz + n * interval '1 second' from n),
            i as (insert into profile_identifiers (workspace_id, profile_id, type, value, first_seen, last_seen)
                  select $1, id, 'email', 'user' || n || '@example.com', now(), now() from n)
       insert into profile_traits (workspace_id, profile_id, key, value, source_kind, source_name, message_id, observed_at)
       select $1, id, 'city', to_jsonb(case when n % 2 = 0 then '上海' else 'Beijing, CN' end), 'web', 'Website', 'm' || n, now() from n`,
      [t.workspaceId, segmentId, MEMBERS - 3],
    );
    // Three members whose values need quoting, one with two emails (the newer first) and a phone.
    const ids = await createProfiles(t.db, t.workspaceId, [{ email: 'old@x.cn', phone: '+8613800138000' }, { user_id: 'u,1' }, {}]);
    await t.db.query(`update profile_identifiers set last_seen = now() - interval '1 day' where workspace_id = $1 and value = 'old@x.cn'`, [t.workspaceId]);
    await t.db.query(
      `insert into profile_identifiers (workspace_id, profile_id, type, value, first_seen, last_seen) values ($1, $2, 'email', 'new@x.cn', now(), now())`,
      [t.workspaceId, ids[0]],
    );
    const traits = [
      { name: 'He said "hi", then left', city: '上海\n浦东' },
      { name: '张伟, Zhang Wei', city: 'line1\r\nline2' },
      { name: '  padded  ', city: null, tags: ['a', 'b'] },
    ];
    for (const [i, id] of ids.entries()) {
      for (const [key, value] of Object.entries(traits[i]!)) {
        await t.db.query(
          `insert into profile_traits (workspace_id, profile_id, key, value, source_kind, source_name, message_id, observed_at)
           values ($1, $2, $3, $4::jsonb, 'web', 'Website', 'x', now())`,
          [t.workspaceId, id, key, JSON.stringify(value)],
        );
      }
      await t.db.query(`insert into segment_memberships (workspace_id, segment_id, profile_id, entered_at) values ($1, $2, $3, now())`, [
        t.workspaceId,
        segmentId,
        id,
      ]);
      special[id] = { traits: traits[i]!, emails: i === 0 ? ['new@x.cn', 'old@x.cn'] : [] };
    }
    // Not a member: must not appear.
    await createProfiles(t.db, t.workspaceId, [{ email: 'outsider@x.cn' }]);
  });
  afterAll(async () => t.close());

  const url = (query = '') => `/v1/segments/${encodeURIComponent('上海 VIP')}/export.csv${query}`;

  it('streams every member exactly once with the selected identifiers and traits, quoted where needed', async () => {
    const res = await t.call('GET', url('?identifiers=email,phone,user_id&traits=city,name,tags'));
    expect(res.statusCode, res.body.slice(0, 300)).toBe(200);
    expect(res.headers['content-type']).toBe('text/csv; charset=utf-8');
    expect(res.headers['content-disposition']).toBe(
      `attachment; filename="segment-___VIP-20260301T080910Z.csv"; filename*=UTF-8''segment-%E4%B8%8A%E6%B5%B7%20VIP-20260301T080910Z.csv`,
    );
    const records = parse(res.body) as string[][];
    expect(records[0]).toEqual(['profile_id', 'entered_at', 'email', 'phone', 'user_id', 'trait.city', 'trait.name', 'trait.tags']);
    const rows = records.slice(1);
    expect(rows).toHaveLength(MEMBERS);
    const ids = rows.map((r) => r[0]!);
    expect(new Set(ids).size).toBe(MEMBERS);
    const { rows: members } = await t.db.query<{ profile_id: string }>(
      'select profile_id from segment_memberships where workspace_id = $1 and segment_id = $2 order by profile_id',
      [t.workspaceId, segmentId],
    );
    expect(ids).toEqual(members.map((m) => m.profile_id));

    const byId = new Map(rows.map((r) => [r[0]!, r]));
    const [first, second, third] = Object.keys(special);
    expect(byId.get(first!)!.slice(2)).toEqual(['new@x.cn|old@x.cn', '+8613800138000', '', '上海\n浦东', 'He said "hi", then left', '']);
    expect(byId.get(second!)!.slice(2)).toEqual(['', '', 'u,1', 'line1\r\nline2', '张伟, Zhang Wei', '']);
    expect(byId.get(third!)!.slice(2)).toEqual(['', '', '', '', '  padded  ', '["a","b"]']);
    // The quoting itself, as a spreadsheet reads it.
    expect(res.body).toContain('"He said ""hi"", then left"');
    expect(res.body).toContain('"张伟, Zhang Wei"');
    expect(res.body).toContain('"上海\n浦东"');
    expect(res.body).toContain(',"Beijing, CN",');

    const ordinary = rows.find((r) => r[2] === 'user17@example.com')!;
    expect(ordinary).toEqual([expect.any(String), '2026-01-01T00:00:17.000Z', 'user17@example.com', '', '', 'Beijing, CN', '', '']);
  });

  it('reads members in keyset chunks without losing or repeating any at chunk boundaries', async () => {
    const columns = { identifiers: [], traits: [] };
    const seen: string[] = [];
    for await (const row of memberRows(t.db, t.workspaceId, segmentId, columns, 1_000)) seen.push(row[0]!);
    expect(seen).toHaveLength(MEMBERS);
    expect(new Set(seen).size).toBe(MEMBERS);
    expect([...seen].sort()).toEqual(seen);
  });

  it('always writes the header row, also for an empty segment; a BOM on request', async () => {
    await createSegment(t.db, t.workspaceId, 'empty');
    const res = await t.call('GET', '/v1/segments/empty/export.csv?traits=city');
    expect(res.statusCode).toBe(200);
    expect(res.body).toBe('profile_id,entered_at,trait.city\n');
    const bom = await t.call('GET', '/v1/segments/empty/export.csv?bom=true');
    expect(bom.rawPayload.subarray(0, 3)).toEqual(Buffer.from([0xef, 0xbb, 0xbf]));
  });

  it('answers 404 for an unknown segment and 400 naming the field for bad columns', async () => {
    const missing = await t.call('GET', '/v1/segments/nope/export.csv');
    expect(missing.statusCode).toBe(404);
    expect(missing.json()).toMatchObject({ error: 'not_found', message: 'Segment "nope" not found' });
    const badType = await t.call('GET', url('?identifiers=email,emial'));
    expect(badType.statusCode).toBe(400);
    expect(badType.json()).toMatchObject({ error: 'invalid_request', field: 'identifiers', message: expect.stringContaining('"emial"') });
    const unknownParam = await t.call('GET', url('?columns=email'));
    expect(unknownParam.statusCode).toBe(400);
  });

  it('needs a server key of the segment\'s workspace', async () => {
    const anonymous = await t.app.inject({ method: 'GET', url: url() });
    expect(anonymous.statusCode).toBe(401);
    const source = await createSource(t.db, t.workspaceId, { name: 'Web', kind: 'web' });
    const write = await t.call('GET', url(), undefined, source.writeKey.key);
    expect(write.statusCode).toBe(403);
    const otherWorkspace = await createWorkspace(t.db, { slug: 'other', name: 'Other' });
    const otherKey = (await createKey(t.db, otherWorkspace.id, { kind: 'server' })).key;
    const other = await t.call('GET', url(), undefined, otherKey);
    expect(other.statusCode).toBe(404);
  });
});
