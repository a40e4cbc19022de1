import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateRetailData, TRACK_EVENTS, VIEW_NAMES, type RetailDataResult } from '../../bench/segments-data.ts';
import type { Db } from '../src/storage/database.ts';
import { createWorkspace } from '../src/workspaces/store.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';

const BIN = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'touchpoint.js');
const NOW = new Date('2026-03-01T08:00:00Z');
const PROFILES = 400;
const EVENTS = 8_123;

/** Everything the generator wrote for a workspace, without the ids that differ between workspaces (sources, seq). */
async function fingerprint(db: Db, workspaceId: string): Promise<Record<string, string>> {
  const digest = async (sql: string) => (await db.query<{ d: string }>(`select md5(coalesce(string_agg(r, '|' order by r), '')) as d from (${sql}) as x(r)`, [workspaceId])).rows[0]!.d;
  return {
    profiles: await digest(`select concat_ws(',', id, created_at, first_seen, last_seen) from profiles where workspace_id = $1`),
    identifiers: await digest(`select concat_ws(',', profile_id, type, value, first_seen, last_seen) from profile_identifiers where workspace_id = $1`),
    traits: await digest(`select concat_ws(',', profile_id, key, value::text, observed_at) from profile_traits where workspace_id = $1`),
    consents: await digest(`select concat_ws(',', profile_id, category, granted, observed_at) from profile_consents where workspace_id = $1`),
    events: await digest(
      `select concat_ws(',', message_id, profile_id, timestamp, type, event, name, user_id, anonymous_id, properties::text, context::text, received_at)
         from events where workspace_id = $1`,
    ),
  };
}

describe('the retail data generator (bench/segments-data.ts)', () => {
  let t: TestDatabase;
  const runs: Array<{ workspaceId: string; result: RetailDataResult }> = [];

  beforeAll(async () => {
    t = await createTestDatabase();
    for (const [slug, seed] of [['retail-a', 7], ['retail-b', 7], ['retail-c', 8]] as const) {
      const workspace = await createWorkspace(t.db, { slug, name: slug });
      const result = await generateRetailData(t.db, { workspaceId: workspace.id, profiles: PROFILES, events: EVENTS, seed, now: NOW });
      runs.push({ workspaceId: workspace.id, result });
    }
  });
  afterAll(async () => t.drop());

  it('writes exactly the profiles and events asked for, every event on a profile of its workspace', async () => {
    const [a] = runs;
    expect(a!.result).toMatchObject({ profiles: PROFILES, events: EVENTS, seed: 7, now: NOW.toISOString() });
    const { rows } = await t.db.query<{ profiles: number; events: number; unresolved: number; foreign: number; sources: number }>(
      `select (select count(*)::int from profiles where workspace_id = $1) as profiles,
              (select count(*)::int from events where workspace_id = $1) as events,
              (select count(*)::int from events where workspace_id = $1 and profile_id is null) as unresolved,
              (select count(*)::int from events e where workspace_id = $1
                  and not exists (select from profiles p where p.workspace_id = $1 and p.id = e.profile_id)) as foreign,
              (select count(distinct source_id)::int from events where workspace_id = $1) as sources`,
      [a!.workspaceId],
    );
    expect(rows[0]).toEqual({ profiles: PROFILES, events: EVENTS, unresolved: 0, foreign: 0, sources: 5 });
    // A profile's first and last seen are those of its events.
    const { rows: spans } = await t.db.query<{ wrong: number; with_events: number }>(
      `select count(*) filter (where p.first_seen <> e.first or p.last_seen <> e.last)::int as wrong, count(*)::int as with_events
         from profiles p join (select profile_id, min(timestamp) as first, max(timestamp) as last from events where workspace_id = $1 group by 1) e
           on e.profile_id = p.id
        where p.workspace_id = $1`,
      [a!.workspaceId],
    );
    expect(spans[0]!.wrong).toBe(0);
    expect(spans[0]!.with_events).toBeGreaterThan(PROFILES * 0.9);
  });

  it('gives every profile at least one identifier, members a user_id, and unique seqs and message ids', async () => {
    const ws = runs[0]!.workspaceId;
    const { rows } = await t.db.query<{ bare: number; members: number; user_ids: number; dup_seq: number; dup_ids: number }>(
      `select (select count(*)::int from profiles p where workspace_id = $1
                  and not exists (select from profile_identifiers i where i.workspace_id = $1 and i.profile_id = p.id)) as bare,
              (select count(*)::int from profile_traits where workspace_id = $1 and key = 'is_member' and value = 'true') as members,
              (select count(*)::int from profile_identifiers i where workspace_id = $1 and type = 'user_id'
                  and exists (select from profile_traits t where t.workspace_id = $1 and t.profile_id = i.profile_id and t.key = 'is_member' and t.value = 'true')) as user_ids,
              (select count(*)::int - count(distinct seq)::int from events where workspace_id = $1) as dup_seq,
              (select count(*)::int - count(distinct message_id)::int from events where workspace_id = $1) as dup_ids`,
      [ws],
    );
    expect(rows[0]!.bare).toBe(0);
    expect(rows[0]!.members).toBeGreaterThan(PROFILES * 0.4);
    expect(rows[0]!.user_ids).toBe(rows[0]!.members);
    expect(rows[0]!.dup_seq).toBe(0);
    expect(rows[0]!.dup_ids).toBe(0);
  });

  it('writes only catalogued event names, inside the 400 days before now, and counts them in the event catalogue', async () => {
    const ws = runs[0]!.workspaceId;
    const { rows } = await t.db.query<{ type: string; name: string; n: number; catalogued: number | null; oldest: Date; newest: Date }>(
      `select e.type, coalesce(e.event, e.name) as name, count(*)::int as n, min(c.volume)::int as catalogued,
              min(e.timestamp) as oldest, max(e.timestamp) as newest
         from events e left join event_catalogue c
           on c.workspace_id = e.workspace_id and c.event_type = e.type and c.event_name = coalesce(e.event, e.name)
        where e.workspace_id = $1 group by 1, 2`,
      [ws],
    );
    for (const row of rows) {
      expect(row.type === 'track' ? TRACK_EVENTS : VIEW_NAMES).toContain(row.name);
      expect(row.catalogued).toBe(row.n);
      expect(row.newest.getTime()).toBeLessThanOrEqual(NOW.getTime());
      expect(row.oldest.getTime()).toBeGreaterThan(NOW.getTime() - 411 * 86_400_000);
    }
    const names = new Set(rows.map((row) => row.name));
    // A realistic mix: the funnel, the broadband process and every channel's events all appear.
    for (const name of ['Product Viewed', 'Product Added', 'Checkout Started', 'Order Completed', 'Broadband Order Started', 'Store Visit', 'App Opened']) {
      expect(names).toContain(name);
    }
  });

  it('is deterministic for a seed and differs for another seed', async () => {
    const [a, b, c] = await Promise.all(runs.map((run) => fingerprint(t.db, run.workspaceId)));
    expect(b).toEqual(a);
    for (const table of Object.keys(a!)) expect(c![table]).not.toBe(a![table]);
  });

  it('refuses sizes that are not positive integers', async () => {
    const workspace = await createWorkspace(t.db, { slug: 'retail-bad', name: 'bad' });
    await expect(generateRetailData(t.db, { workspaceId: workspace.id, profiles: 0, events: 10 })).rejects.toThrow(/profiles must be an integer/);
    await expect(generateRetailData(t.db, { workspaceId: workspace.id, profiles: 10, events: 1.5 })).rejects.toThrow(/events must be an integer/);
  });
});

describe('touchpoint demo (real process, real PostgreSQL)', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase();
  });
  afterAll(async () => t.drop());

  const cli = (args: string[]) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env: { ...process.env, DATABASE_URL: t.url, TOUCHPOINT_ADMIN_TOKEN: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => child.once('exit', (code) => resolve({ code, stdout, stderr })));
  };

  it('seeds a workspace with the generator and the example segments, prints its keys, and refuses a slug in use', async () => {
    const run = await cli(['demo', '--workspace', 'demo-cli', '--profiles', '150', '--json']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const out = JSON.parse(run.stdout);
    expect(out.workspace.slug).toBe('demo-cli');
    expect(out.data).toMatchObject({ profiles: 150, events: 3000 });
    expect(out.serverKey).toMatch(/^tps_/);
    expect(Object.keys(out.sources).sort()).toEqual(['app', 'call_centre', 'mini_program', 'store', 'web']);
    expect(out.segments).toHaveLength(20);
    const { rows } = await t.db.query<{ key: string; member_count: number; state: string }>(
      'select key, member_count::int, state from segments where workspace_id = $1',
      [out.workspace.id],
    );
    expect(rows).toHaveLength(20);
    expect(rows.every((row) => row.state === 'ready')).toBe(true);
    expect(rows.find((row) => row.key === 'inactive_30d')!.member_count).toBeGreaterThan(0);
    expect(Object.fromEntries(rows.map((row) => [row.key, row.member_count]))).toEqual(
      Object.fromEntries(out.segments.map((s: { key: string; members: number }) => [s.key, s.members])),
    );

    const again = await cli(['demo', '--workspace', 'demo-cli', '--profiles', '10']);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('A workspace with slug "demo-cli" already exists');
  });
});
