import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveQueuedEvents } from '../src/identity/resolver.ts';
import { planImport, runImport } from '../src/ingest/import/run.ts';
import { normalizeEvent, type NormalizedEvent } from '../src/ingest/normalize.ts';
import { storeEvents } from '../src/ingest/store.ts';
import { piiCodec } from '../src/privacy/pii-codec.ts';
import { requestErasure } from '../src/privacy/requests.ts';
import { ADMIN_TOKEN, basicAuth, startTestApp, type TestApp } from './support/app.ts';
import { drain, send } from './profiles-support.ts';

const admin = { authorization: `Bearer ${ADMIN_TOKEN}`, 'x-touchpoint-workspace': 'acme' };

function event(raw: Record<string, unknown>): NormalizedEvent {
  const result = normalizeEvent(raw, { receivedAt: new Date() });
  if (!result.ok) throw new Error(result.rejection.message);
  return result.event;
}

describe('suppression after erasure: bulk import, and events racing the erasure', () => {
  let t: TestApp;
  let dir: string;
  beforeAll(async () => {
    t = await startTestApp();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tp-suppression-'));
  });
  afterAll(async () => {
    await t?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  // PII identifiers are stored as keyed-hash tokens and PII fields of events sealed (docs/security.md
  // "Personal data"): look identifiers up by both the plain value and its token, and read events'
  // traits opened through the codec.
  const residue = async (values: string[]) => {
    const codec = await piiCodec(t.db, t.workspace.id);
    const lookups = [...values, ...values.map((value) => codec.identifiers.encode('email', value))];
    const identifiers = await t.db.query("select type, value from profile_identifiers where workspace_id = $1 and (value = any($2::text[]) or value like 'fresh-%')", [t.workspace.id, lookups]);
    const stored = await t.db.query<{ seq: string; user_id: string | null; anonymous_id: string | null; traits: unknown }>(
      'select seq, user_id, anonymous_id, traits from events where workspace_id = $1',
      [t.workspace.id],
    );
    const events = stored.rows
      .map((row) => codec.openEvent(row))
      .filter(
        (row) =>
          values.includes(row.user_id ?? '') ||
          values.includes(row.anonymous_id ?? '') ||
          values.some((value) => JSON.stringify(row.traits ?? null).toLowerCase().includes(value)),
      );
    return { identifiers: identifiers.rowCount, events: events.length };
  };
  const dropped = async () =>
    (await t.app.inject({ method: 'GET', url: '/v1/privacy/suppressions', headers: admin })).json() as { items: Array<{ identifierType: string; droppedEvents: number }> };
  const droppedTotal = async () => (await dropped()).items.reduce((sum, item) => sum + Number(item.droppedEvents), 0);

  it('touchpoint import drops rows of an erased person like live collection, counts them, and keeps them out of the rejects file', async () => {
    await send(t, t.writeKey, [{ type: 'identify', userId: 'imp-gone', traits: { email: 'gone@example.com' }, messageId: 'g-1' }]);
    await drain(t);
    const erased = await t.app.inject({ method: 'POST', url: '/v1/privacy/erasures', headers: admin, payload: { subject: 'email:gone@example.com' } });
    expect(erased.json()).toMatchObject({ status: 'completed' });
    const before = await droppedTotal();

    const file = path.join(dir, 'people.csv');
    // gone by e-mail (other user id), gone by user id, someone else, and a bad row.
    fs.writeFileSync(file, 'id,email\nimp-new-1,GONE@example.com\nimp-gone,\nimp-keep,keep@example.com\n,\n');
    const rejectsFile = path.join(dir, 'rejects.ndjson');
    const summary = await runImport(t.db, planImport({ file, writeKey: t.writeKey, type: 'identify', map: ['userId=id', 'traits.email=email'], rejectsFile }));
    expect(summary).toMatchObject({ rowsRead: 4, valid: 3, suppressed: 2, stored: 1, rejected: 1 });
    expect(fs.readFileSync(rejectsFile, 'utf8')).not.toMatch(/gone|imp-new-1/i);
    expect(await droppedTotal()).toBe(before + 2);

    // The HTTP import endpoint goes through the same filter.
    const http = await t.app.inject({
      method: 'POST',
      url: '/v1/import',
      headers: { authorization: basicAuth(t.writeKey) },
      payload: { batch: [{ type: 'identify', userId: 'imp-gone', timestamp: '2024-01-01T00:00:00Z' }, { type: 'identify', userId: 'imp-keep-2', timestamp: '2024-01-01T00:00:00Z' }] },
    });
    expect(http.json()).toMatchObject({ accepted: 1 });
    expect(await droppedTotal()).toBe(before + 3);
    await drain(t);
    expect(await residue(['gone@example.com', 'imp-gone', 'imp-new-1'])).toEqual({ identifiers: 0, events: 0 });
  });

  it('an erasure racing identity resolution: events for the person arriving meanwhile do not bring them back', async () => {
    const values = ['race@example.com', 'race-user', 'race-anon'];
    await send(t, t.writeKey, [
      { type: 'identify', userId: 'race-user', anonymousId: 'race-anon', traits: { email: 'race@example.com', plan: 'pro' }, messageId: 'r-0' },
      { type: 'identify', userId: 'bystander', traits: { email: 'bystander@example.com' }, messageId: 'b-0' },
    ]);
    await drain(t);
    const source = { workspaceId: t.workspace.id, sourceId: t.source.id };
    const before = await droppedTotal();

    // Events for the person stored straight into the event store (as a process whose suppression
    // list is not yet refreshed would), with resolution batches running, while the erasure runs.
    let writing = true;
    let written = 0;
    const writer = (async () => {
      while (writing || written < 10) {
        const n = written++;
        const id = n % 3 === 0 ? { userId: 'race-user' } : n % 3 === 1 ? { anonymousId: 'race-anon' } : { anonymousId: `fresh-${n}`, traits: { email: 'RACE@example.com' } };
        await storeEvents(t.db, source, [event({ type: n % 3 === 2 ? 'identify' : 'track', event: 'Viewed', ...id, messageId: `race-${n}` })]);
        await resolveQueuedEvents(t.db, t.workspace.id);
      }
    })();
    const erasure = await requestErasure(t.db, t.workspace.id, 'email:race@example.com', 'test');
    writing = false;
    await writer;
    expect(erasure.status).toBe('completed');
    // And a few more after the erasure committed.
    for (let n = 100; n < 103; n++) {
      await storeEvents(t.db, source, [event({ type: 'identify', userId: 'race-user', traits: { email: 'race@example.com' }, messageId: `late-${n}` })]);
    }
    await drain(t);

    expect(await residue(values)).toEqual({ identifiers: 0, events: 0 });
    const queued = await t.db.query('select 1 from identity_queue where workspace_id = $1', [t.workspace.id]);
    expect(queued.rowCount).toBe(0);
    expect(await droppedTotal()).toBeGreaterThanOrEqual(before + 3);
    // The bystander is untouched.
    expect((await residue(['bystander@example.com'])).identifiers).toBe(1);
  });
});
