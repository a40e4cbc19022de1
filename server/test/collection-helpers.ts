import type { OutgoingHttpHeaders } from 'node:http';
import { expect } from 'vitest';
import { openQuarantinePayload } from '../src/privacy/sealed-payloads.ts';
import { piiCodec } from '../src/privacy/pii-codec.ts';
import { basicAuth, type TestApp } from './support/app.ts';

/** A stored event as the tests look at it: times as ISO strings, nulls left out for readable diffs. */
export interface StoredEvent {
  message_id: string;
  type: string;
  event: string | null;
  name: string | null;
  category: string | null;
  user_id: string | null;
  anonymous_id: string | null;
  previous_id: string | null;
  group_id: string | null;
  properties: Record<string, unknown> | null;
  traits: Record<string, unknown> | null;
  context: Record<string, unknown> | null;
  integrations: Record<string, unknown> | null;
  extra: Record<string, unknown> | null;
  timestamp: string;
  original_timestamp: string | null;
  sent_at: string | null;
  received_at: string;
  source_id: string;
  workspace_id: string;
}

export interface QuarantineRow {
  id: string;
  source_id: string | null;
  endpoint: string;
  message_id: string | null;
  reason: string;
  field: string | null;
  errors: unknown;
  payload: string;
}

/** POSTs through Fastify's injector (the whole request pipeline, no socket) with the write key as Basic username. */
export function post(t: TestApp, url: string, payload: unknown, headers: OutgoingHttpHeaders = {}, writeKey = t.writeKey) {
  return t.app.inject({
    method: 'POST',
    url,
    headers: { authorization: basicAuth(writeKey), ...headers },
    ...(typeof payload === 'string' || Buffer.isBuffer(payload) ? { payload } : { payload: payload as object }),
  });
}

export async function storedEvents(t: TestApp, where = 'true', params: unknown[] = []): Promise<StoredEvent[]> {
  const { rows } = await t.db.query<StoredEvent>(
    `select message_id, type, event, name, category, user_id, anonymous_id, previous_id, group_id, properties, traits,
            context, integrations, extra, source_id, workspace_id,
            to_json(timestamp)#>>'{}' as timestamp, to_json(original_timestamp)#>>'{}' as original_timestamp,
            to_json(sent_at)#>>'{}' as sent_at, to_json(received_at)#>>'{}' as received_at
       from events where ${where} order by seq`,
    params,
  );
  return rows;
}

/**
 * Stored events with their PII fields (traits.email, context.traits.name…, sealed at ingest as
 * `tpe1.` values, privacy/pii-codec.ts) opened through the codec, as readers see them.
 */
export async function openStoredEvents(t: TestApp, rows: StoredEvent[]): Promise<StoredEvent[]> {
  const opened: StoredEvent[] = [];
  for (const row of rows) opened.push((await piiCodec(t.db, row.workspace_id)).openEvent(row));
  return opened;
}

/**
 * The stored rows of the official-SDK tests, after checking that PII fields are sealed at rest
 * (no e-mail or name in clear anywhere in the row), opened through the codec as readers see them.
 */
export async function openedAfterCheckingSealed(t: TestApp): Promise<StoredEvent[]> {
  const raw = await storedEvents(t);
  const identify = raw.find((row) => row.type === 'identify');
  const group = raw.find((row) => row.type === 'group');
  expect(identify?.traits?.email).toMatch(/^tpe1\./);
  expect(group?.traits?.name).toMatch(/^tpe1\./);
  expect(JSON.stringify(raw)).not.toContain('ann@example.com');
  expect(JSON.stringify(raw)).not.toContain('Initech');
  return openStoredEvents(t, raw);
}

export async function quarantined(t: TestApp, where = 'true', params: unknown[] = []): Promise<QuarantineRow[]> {
  const { rows } = await t.db.query<QuarantineRow & { workspace_id: string }>(
    `select workspace_id, id, source_id, endpoint, message_id, reason, field, errors, payload from quarantine where ${where} order by received_at, message_id`,
    params,
  );
  // Payloads are stored sealed by the workspace data key (privacy/sealed-payloads.ts).
  return Promise.all(rows.map(async ({ workspace_id, ...row }) => ({ ...row, payload: await openQuarantinePayload(t.db, workspace_id, row.payload) })));
}

/** Timestamps come back from `to_json` in the session time zone; this compares instants. */
export function iso(value: string | null): string | null {
  return value === null ? null : new Date(value).toISOString();
}

/** Clears events and quarantine between tests that share one app. */
export async function clearEvents(t: TestApp): Promise<void> {
  await t.db.query('truncate events, event_message_ids, quarantine');
}
