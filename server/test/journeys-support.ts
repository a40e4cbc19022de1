import type { MessageRequest } from '../src/channels/contract.ts';
import type { EnqueueMessages } from '../src/journeys/executor.ts';
import type { JourneyDefinition } from '../src/journeys/definition.ts';
import type { Db } from '../src/storage/database.ts';

/*
 * A recording implementation of channels' EnqueueMessage contract (a test double of another
 * module, not of our database): every enqueue writes a row into `test_outbox` inside the caller's
 * transaction, so a rolled-back step leaves no row and a committed one exactly its rows. There is
 * deliberately no unique key: a step committed twice would show as two rows with one key.
 */

export async function createRecordingOutbox(db: Db): Promise<void> {
  await db.query(`create table if not exists test_outbox (
    id bigserial primary key,
    workspace_id uuid not null,
    profile_id uuid not null,
    idempotency_key text not null,
    channel text not null,
    template_key text not null,
    request jsonb not null,
    at timestamptz not null
  )`);
}

export const recordingEnqueue: EnqueueMessages = async (client, requests, now) => {
  if (requests.length === 0) return [];
  const { rows } = await client.query<{ id: number }>(
    `insert into test_outbox (workspace_id, profile_id, idempotency_key, channel, template_key, request, at)
     select (r ->> 'workspaceId')::uuid, (r ->> 'profileId')::uuid, r ->> 'idempotencyKey', r ->> 'channel', r ->> 'templateKey', r, $2
       from jsonb_array_elements($1::jsonb) with ordinality as x(r, n) order by n
     returning id`,
    [JSON.stringify(requests), now],
  );
  return rows.map((row) => ({ messageId: `test-${row.id}`, status: 'queued' as const }));
};

export interface RecordedMessage {
  profile_id: string;
  idempotency_key: string;
  channel: string;
  template_key: string;
  request: MessageRequest;
  at: Date;
}

export async function recordedMessages(db: Db, workspaceId: string): Promise<RecordedMessage[]> {
  const { rows } = await db.query<RecordedMessage>(
    'select profile_id, idempotency_key, channel, template_key, request, at from test_outbox where workspace_id = $1 order by id',
    [workspaceId],
  );
  return rows;
}

/** A mutable test clock. */
export function testClock(start: string | number) {
  let now = typeof start === 'string' ? Date.parse(start) : start;
  return {
    now: () => new Date(now),
    advance(ms: number) {
      now += ms;
    },
    set(at: string | number) {
      now = typeof at === 'string' ? Date.parse(at) : at;
    },
  };
}

export async function journeyEvents(db: Db, workspaceId: string, profileId?: string): Promise<Array<{ event: string; properties: Record<string, unknown> }>> {
  const { rows } = await db.query<{ event: string; properties: Record<string, unknown> }>(
    `select event, properties from events where workspace_id = $1 and event like 'Journey %' and ($2::uuid is null or profile_id = $2)
      order by seq`,
    [workspaceId, profileId ?? null],
  );
  return rows;
}

export async function stepsOf(db: Db, workspaceId: string, instanceId: string): Promise<Array<{ node_id: string; outcome: string }>> {
  const { rows } = await db.query<{ node_id: string; outcome: string }>(
    'select node_id, outcome from journey_steps where workspace_id = $1 and instance_id = $2 order by step',
    [workspaceId, instanceId],
  );
  return rows;
}

/** A small API-triggered journey: entry → send email → delay 1 day → send sms → end. */
export function welcomeSeries(): JourneyDefinition {
  return {
    nodes: [
      { id: 'in', kind: 'entry', trigger: { kind: 'api' }, reentry: { mode: 'always' }, next: 'hello' },
      { id: 'hello', kind: 'send', channel: 'email', template: 'welcome', purpose: 'marketing', next: 'day' },
      { id: 'day', kind: 'delay', duration: { amount: 1, unit: 'days' }, next: 'nudge' },
      { id: 'nudge', kind: 'send', channel: 'sms', template: 'nudge', purpose: 'marketing', next: 'bye' },
      { id: 'bye', kind: 'end' },
    ],
  };
}
