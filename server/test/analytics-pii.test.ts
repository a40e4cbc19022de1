import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendAndResolve } from './analytics-support.ts';
import { userWithRole, type Session } from './privacy-support.ts';
import { startTestApp, type TestApp } from './support/app.ts';
import { encryptExistingPii } from '../src/privacy/pii-backfill.ts';

/*
 * Analytics on personal data sealed in events (privacy/pii-hashes.ts, analytics/personal-data.ts):
 * groups and equality filters go by the keyed hash stored at ingest, so one e-mail typed in two
 * ways is one group; the answer shows each group's value to roles that may read PII and masks it
 * for the others, never a token or ciphertext.
 */
describe('analytics on sealed PII event fields', () => {
  let t: TestApp;
  const sessions: Record<string, Session> = {};
  let n = 0;
  const order = (userId: string, day: string, properties: Record<string, unknown>, context?: Record<string, unknown>) => ({
    type: 'track', event: 'Order Completed', userId, timestamp: `2026-03-${day}T10:00:00Z`, messageId: `o-${++n}`, properties, ...(context ? { context } : {}),
  });
  const viewed = (userId: string, day: string) => ({ type: 'track', event: 'Product Viewed', userId, timestamp: `2026-03-${day}T09:00:00Z`, messageId: `v-${++n}` });

  beforeAll(async () => {
    t = await startTestApp();
    for (const role of ['admin', 'analyst', 'viewer']) sessions[role] = await userWithRole(t.app, t.db, t.workspace.id, role);
    await sendAndResolve(t, [
      // alice: two spellings, two profiles, one group of 2 events.
      viewed('u1', '05'),
      order('u1', '05', { email: 'Alice@Example.com ', revenue: 10 }, { traits: { phone: '138 1234 5678' } }),
      viewed('u2', '06'),
      order('u2', '06', { email: ' alice@example.COM', revenue: 20 }, { traits: { phone: '13812345678' } }),
      // bob: 3 events of 2 profiles; u3 only viewed before one of them.
      order('u3', '07', { email: 'bob@example.com', revenue: 5 }),
      order('u3', '08', { email: 'BOB@example.com', revenue: 5 }),
      viewed('u4', '09'),
      order('u4', '09', { email: 'bob@example.com', revenue: 5 }, { traits: { phone: '+86 139-0000-1111' } }),
      // no e-mail at all.
      order('u5', '10', { revenue: 1 }),
    ]);
  });
  afterAll(async () => t?.close());

  const range = { from: '2026-03-01', to: '2026-03-31' };
  const asRole = async (role: string, url: string, payload: object, status = 200) => {
    const response = await t.app.inject({ method: 'POST', url, headers: sessions[role]!.headers(t.workspace.slug), payload });
    expect(response.statusCode, response.body).toBe(status);
    return { body: response.body, json: response.json() };
  };
  const emailTrend = { range, interval: 'month', series: [{ event: { event: 'Order Completed' } }], breakdown: { kind: 'property', property: 'email' } };
  const totals = (json: { series: Array<{ breakdownValue: string | null; total: number }> }) => Object.fromEntries(json.series.map((s) => [String(s.breakdownValue), s.total]));

  it('stores each sealed field with a keyed hash beside it: the ciphertexts differ, the hashes of equal values do not', async () => {
    const { rows } = await t.db.query<{ user_id: string; email: string; hash: string | null }>(
      `select user_id, properties ->> 'email' as email, pii_hashes ->> 'properties.email' as hash from events
        where workspace_id = $1 and event = 'Order Completed' order by timestamp`,
      [t.workspace.id],
    );
    expect(rows.map((row) => row.user_id)).toEqual(['u1', 'u2', 'u3', 'u3', 'u4', 'u5']);
    for (const row of rows.slice(0, 5)) expect(row.email).toMatch(/^tpe1\./);
    expect(rows[0]!.email).not.toBe(rows[1]!.email);
    expect(rows[0]!.hash).toMatch(/^tph1\./);
    expect(rows[1]!.hash).toBe(rows[0]!.hash);
    expect(new Set(rows.slice(2, 5).map((row) => row.hash)).size).toBe(1);
    expect(rows[2]!.hash).not.toBe(rows[0]!.hash);
    expect(rows[5]!.hash).toBeNull();
  });

  it('a trend broken down by e-mail groups equal addresses together; an admin sees the values', async () => {
    const { body, json } = await asRole('admin', '/v1/analytics/trends', emailTrend);
    expect(totals(json)).toEqual({ 'bob@example.com': 3, 'alice@example.com': 2, null: 1 });
    expect(body).not.toMatch(/tph1\.|tpe1\./);
  });

  it('analysts and viewers get the same groups with the values masked: no plaintext, token or ciphertext', async () => {
    for (const role of ['analyst', 'viewer']) {
      const { body, json } = await asRole(role, '/v1/analytics/trends', emailTrend);
      expect(totals(json)).toEqual({ 'b***@example.com': 3, 'a****@example.com': 2, null: 1 });
      expect(body).not.toMatch(/tph1\.|tpe1\.|alice@|bob@/i);
    }
  });

  it('a funnel broken down by a PII trait in the context groups phone numbers written differently', async () => {
    const funnel = {
      range,
      steps: [{ event: 'Product Viewed' }, { event: 'Order Completed' }],
      breakdown: { kind: 'property', property: 'context.traits.phone' },
      breakdownAttribution: 2,
    };
    const admin = await asRole('admin', '/v1/analytics/funnels', funnel);
    const counts = (json: { breakdown: Array<{ value: string | null; steps: Array<{ count: number }> }> }) =>
      Object.fromEntries(json.breakdown.map((group) => [String(group.value), group.steps.map((step) => step.count)]));
    // u1 and u2 ordered with one phone (two spellings); u4 with another.
    expect(counts(admin.json)).toEqual({ '13812345678': [2, 2], '+8613900001111': [1, 1] });
    expect(admin.json.engine.name).toBe('postgres');
    const analyst = await asRole('analyst', '/v1/analytics/funnels', funnel);
    expect(counts(analyst.json)).toEqual({ '138****5678': [2, 2], '+86139****1111': [1, 1] });
    expect(analyst.body).not.toMatch(/tph1\.|tpe1\.|13812345678/);
  });

  it('filters by e-mail equality compare hashes: any spelling of the address finds its events', async () => {
    const filtered = (filters: object[]) => ({ range, interval: 'month', series: [{ event: { event: 'Order Completed', filters } }] });
    const eq = await asRole('analyst', '/v1/analytics/trends', filtered([{ property: 'email', op: 'eq', value: 'ALICE@example.com' }]));
    expect(eq.json.series[0].total).toBe(2);
    const within = await asRole('analyst', '/v1/analytics/trends', filtered([{ property: 'email', op: 'in', values: ['bob@example.com ', 'carol@example.com'] }]));
    expect(within.json.series[0].total).toBe(3);
    const other = await asRole('analyst', '/v1/analytics/trends', filtered([{ property: 'email', op: 'neq', value: 'bob@example.com' }, { property: 'email', op: 'exists' }]));
    expect(other.json.series[0].total).toBe(2);
    const refused = await asRole('analyst', '/v1/analytics/trends', filtered([{ property: 'email', op: 'contains', value: 'example' }]), 400);
    expect(refused.json).toMatchObject({ error: 'pii_filter_unsupported', field: 'filters.0' });
  });

  it('drop-off profiles of a PII group are asked for by the value, and a path inside a sealed field is refused', async () => {
    const funnel = {
      range,
      steps: [{ event: 'Order Completed' }, { event: 'Product Viewed' }],
      breakdown: { kind: 'property', property: 'email' },
      dropOff: { step: 1, breakdownValue: ' Bob@Example.com' },
    };
    const { json } = await asRole('admin', '/v1/analytics/funnels', funnel);
    const { rows } = await t.db.query<{ id: string }>(
      `select profile_id as id from profile_identifiers where workspace_id = $1 and type = 'user_id' and value = any($2::text[]) order by profile_id`,
      [t.workspace.id, ['u3', 'u4']],
    );
    expect(json.dropOff.profileIds).toEqual(rows.map((row) => row.id));
    const masked = await asRole('analyst', '/v1/analytics/funnels', { ...funnel, dropOff: { step: 1, breakdownValue: 'b***@example.com' } }, 400);
    expect(masked.json).toMatchObject({ error: 'masked_value', field: 'dropOff.breakdownValue' });
    const nested = await asRole('admin', '/v1/analytics/trends', { ...emailTrend, breakdown: { kind: 'property', property: 'email.domain' } }, 400);
    expect(nested.json).toMatchObject({ error: 'pii_breakdown_unsupported', field: 'breakdown.property' });
  });

  it('a breakdown by a PII trait (stored as a token) is opened and masked alike, not shown as plaintext to analysts', async () => {
    await sendAndResolve(t, [{ type: 'identify', userId: 'u1', traits: { email: 'alice@example.com' }, timestamp: '2026-03-01T00:00:00Z', messageId: 'id-u1' }]);
    const trend = { ...emailTrend, breakdown: { kind: 'trait', trait: 'email' } };
    const admin = await asRole('admin', '/v1/analytics/trends', trend);
    expect(totals(admin.json)['alice@example.com']).toBe(1);
    const viewer = await asRole('viewer', '/v1/analytics/trends', trend);
    expect(totals(viewer.json)['a****@example.com']).toBe(1);
    expect(viewer.body).not.toMatch(/tph1\.|tpe1\.|alice@/);
  });

  it('events stored before the hashes existed get them from the backfill, and group again', async () => {
    await t.db.query('update events set pii_hashes = null where workspace_id = $1', [t.workspace.id]);
    const before = await asRole('admin', '/v1/analytics/trends', emailTrend);
    expect(totals(before.json)).toEqual({ null: 6 });
    const counts = await encryptExistingPii(t.db, t.workspace.id);
    expect(counts.events).toBe(5);
    const after = await asRole('admin', '/v1/analytics/trends', emailTrend);
    expect(totals(after.json)).toEqual({ 'bob@example.com': 3, 'alice@example.com': 2, null: 1 });
    expect((await encryptExistingPii(t.db, t.workspace.id)).events).toBe(0);
  });
});
