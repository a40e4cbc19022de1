import type { CancelMessages, ChannelKind, HoldMessages, ListMessages, MessageStatus, MessageSummary } from './contract.ts';
import type { Db, Queryable } from '../storage/database.ts';
import { withTransaction } from '../storage/database.ts';
import { ensureMonthlyPartitions } from '../storage/partitions.ts';
import { insertSystemEvents, type SystemEvent } from '../segments/transitions.ts';

interface MessageRow {
  id: string;
  channel: ChannelKind;
  template_key: string;
  status: MessageStatus;
  reason: string | null;
  journey_id: string | null;
  journey_version: number | null;
  instance_id: string | null;
  node_id: string | null;
  created_at: Date;
  updated_at: Date;
}

function summary(row: MessageRow): MessageSummary {
  return {
    messageId: row.id,
    channel: row.channel,
    templateKey: row.template_key,
    status: row.status,
    ...(row.reason ? { reason: row.reason } : {}),
    ...(row.journey_id
      ? { origin: { journeyId: row.journey_id, journeyVersion: row.journey_version ?? 0, instanceId: row.instance_id ?? '', nodeId: row.node_id ?? '' } }
      : {}),
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

const SUMMARY_COLUMNS = 'id, channel, template_key, status, reason, journey_id, journey_version, instance_id, node_id, created_at, updated_at';

/** Messages of an instance, a profile or a journey (at least one filter), oldest first, at most 1,000. */
export const listMessages: ListMessages = async (db, workspaceId, filter) => {
  if (!filter.instanceId && !filter.profileId && !filter.journeyId) throw new RangeError('listMessages needs instanceId, profileId or journeyId');
  const { rows } = await db.query<MessageRow>(
    `select ${SUMMARY_COLUMNS} from messages
      where workspace_id = $1 and ($2::text is null or instance_id = $2) and ($3::uuid is null or profile_id = $3)
        and ($4::text is null or journey_id = $4)
      order by created_at, id limit 1000`,
    [workspaceId, filter.instanceId ?? null, filter.profileId ?? null, filter.journeyId ?? null],
  );
  return rows.map(summary);
};

/** Pause (held = true) or resume a journey's messages: queued ↔ held, each change in the history. */
export const holdMessages: HoldMessages = async (client, workspaceId, journeyId, held) => {
  const [from, to] = held ? ['queued', 'held'] : ['held', 'queued'];
  const { rowCount } = await client.query(
    `with changed as (
       update messages set status = $4, updated_at = now()
        where workspace_id = $1 and journey_id = $2 and status = $3 returning id)
     insert into message_status_history (workspace_id, message_id, status, reason, at)
     select $1, id, $4, $5, now() from changed`,
    [workspaceId, journeyId, from, to, held ? 'journey_paused' : 'journey_resumed'],
  );
  return rowCount ?? 0;
};

/** Stop, removal from a journey, erasure: queued or held messages end as cancelled with the reason. */
export const cancelMessages: CancelMessages = async (client, workspaceId, filter, reason) => {
  if (!filter.journeyId && !filter.instanceId && !filter.profileId) throw new RangeError('cancelMessages needs journeyId, instanceId or profileId');
  const { rowCount } = await client.query(
    `with changed as (
       update messages set status = 'cancelled', reason = $5, updated_at = now()
        where workspace_id = $1 and status in ('queued', 'held')
          and ($2::text is null or journey_id = $2) and ($3::text is null or instance_id = $3) and ($4::uuid is null or profile_id = $4)
        returning id)
     insert into message_status_history (workspace_id, message_id, status, reason, at)
     select $1, id, 'cancelled', $5, now() from changed`,
    [workspaceId, filter.journeyId ?? null, filter.instanceId ?? null, filter.profileId ?? null, reason],
  );
  return rowCount ?? 0;
};

export interface MessageDetail extends MessageSummary {
  profileId: string;
  purpose: string;
  accountKey: string | null;
  templateVersion: number | null;
  address: string | null;
  dueAt: Date;
  attempts: number;
  provider: string | null;
  providerMessageId: string | null;
  history: { status: string; reason: string | null; detail: unknown; at: Date }[];
}

/** One message with every status it went through (the per-message view). */
export async function getMessage(db: Queryable, workspaceId: string, messageId: string): Promise<MessageDetail | undefined> {
  const { rows } = await db.query<
    MessageRow & {
      profile_id: string;
      purpose: string;
      account_key: string | null;
      template_version: number | null;
      address: string | null;
      due_at: Date;
      attempts: number;
      provider: string | null;
      provider_message_id: string | null;
      history: { status: string; reason: string | null; detail: unknown; at: string }[];
    }
  >(
    `select m.${SUMMARY_COLUMNS.split(', ').join(', m.')}, m.profile_id, m.purpose, m.account_key, m.template_version, m.address, m.due_at,
            m.attempts, m.provider, m.provider_message_id,
            (select jsonb_agg(jsonb_build_object('status', h.status, 'reason', h.reason, 'detail', h.detail, 'at', h.at) order by h.id)
               from message_status_history h where h.workspace_id = m.workspace_id and h.message_id = m.id) as history
       from messages m where m.workspace_id = $1 and m.id = $2`,
    [workspaceId, messageId],
  );
  const row = rows[0];
  if (!row) return undefined;
  return {
    ...summary(row),
    profileId: row.profile_id,
    purpose: row.purpose,
    accountKey: row.account_key,
    templateVersion: row.template_version,
    address: row.address,
    dueAt: row.due_at,
    attempts: row.attempts,
    provider: row.provider,
    providerMessageId: row.provider_message_id,
    history: (row.history ?? []).map((h) => ({ ...h, at: new Date(h.at) })),
  };
}

// Statuses that happen once per message: their timeline event id is derived from the message id.
const ONCE = new Set(['Message Queued', 'Message Sent', 'Message Delivered', 'Message Opened', 'Message Failed', 'Message Skipped', 'Message Bounced']);

/**
 * Writes pending `Message …` events (status history rows with an event) into the profiles'
 * timelines, in batches across workspaces; returns how many it wrote. The events' properties are
 * the ones docs/events.md names.
 */
export async function flushMessageEvents(db: Db, limit = 1000, now = new Date()): Promise<number> {
  await ensureMonthlyPartitions(db, 'events', [now]);
  return withTransaction(
    db,
    async (client) => {
      const { rows } = await client.query<{
        id: number;
        workspace_id: string;
        event: string;
        reason: string | null;
        detail: Record<string, unknown> | null;
        message_id: string;
        profile_id: string;
        channel: string;
        template_key: string;
        purpose: string;
        provider: string | null;
        provider_message_id: string | null;
        subscription_group: string | null;
        journey_id: string | null;
        journey_version: number | null;
        instance_id: string | null;
        node_id: string | null;
      }>(
        `with pending as (
           select workspace_id, id from message_status_history where not event_written order by id limit $1 for update skip locked)
         select h.id, h.workspace_id, h.event, h.reason, h.detail, m.id as message_id, m.profile_id, m.channel, m.template_key, m.purpose,
                m.provider, m.provider_message_id, m.subscription_group, m.journey_id, m.journey_version, m.instance_id, m.node_id
           from pending p join message_status_history h on h.workspace_id = p.workspace_id and h.id = p.id
           join messages m on m.workspace_id = h.workspace_id and m.id = h.message_id`,
        [limit],
      );
      if (rows.length === 0) return 0;
      const byWorkspace = new Map<string, SystemEvent[]>();
      for (const row of rows) {
        const properties: Record<string, unknown> = {
          message_id: row.message_id,
          channel: row.channel,
          template_key: row.template_key,
          purpose: row.purpose,
          ...(row.journey_id
            ? { journey_id: row.journey_id, journey_version: row.journey_version, instance_id: row.instance_id, node_id: row.node_id }
            : {}),
          ...eventProperties(row.event, row),
        };
        const slug = row.event.toLowerCase().replace(/\s+/g, '-');
        const events = byWorkspace.get(row.workspace_id) ?? [];
        events.push({
          messageId: ONCE.has(row.event) ? `${slug}-${row.message_id}` : `${slug}-${row.message_id}-${row.id}`,
          event: row.event,
          profileId: row.profile_id,
          properties,
        });
        byWorkspace.set(row.workspace_id, events);
      }
      for (const [workspaceId, events] of byWorkspace) await insertSystemEvents(client, workspaceId, events, now);
      await client.query(
        'update message_status_history h set event_written = true from unnest($1::uuid[], $2::bigint[]) as d(w, id) where h.workspace_id = d.w and h.id = d.id',
        [rows.map((r) => r.workspace_id), rows.map((r) => r.id)],
      );
      return rows.length;
    },
    { durability: 'local' },
  );
}

function eventProperties(
  event: string,
  row: { reason: string | null; detail: Record<string, unknown> | null; provider: string | null; provider_message_id: string | null; subscription_group: string | null },
): Record<string, unknown> {
  const detail = row.detail ?? {};
  switch (event) {
    case 'Message Queued':
      return detail.due_at ? { due_at: detail.due_at, deferred_by: detail.deferred_by } : {};
    case 'Message Sent':
      return { provider: row.provider, provider_message_id: row.provider_message_id };
    case 'Message Delivered':
      return { provider: row.provider };
    case 'Message Clicked':
      return { url: detail.url ?? null };
    case 'Message Failed':
      return { reason: row.reason, permanent: detail.permanent ?? true };
    case 'Message Bounced':
      return { reason: row.reason, permanent: detail.permanent ?? true, bounce_status: detail.status ?? null, diagnostic: detail.diagnostic ?? null };
    case 'Message Skipped':
      return { reason: row.reason };
    case 'Message Unsubscribed':
      return { subscription_group: detail.subscription_group ?? row.subscription_group };
    default:
      return {};
  }
}

// How far along a message is; a later report never moves it back (an open after a click stays clicked).
const PROGRESS: Record<string, number> = { queued: 0, held: 0, sending: 1, sent: 2, delivered: 3, opened: 4, clicked: 5 };

export interface StatusReport {
  /** bounced: a failure reported after the provider accepted the message (an email DSN). */
  status: 'sent' | 'delivered' | 'opened' | 'clicked' | 'failed' | 'bounced' | 'unsubscribed';
  reason?: string;
  detail?: Record<string, unknown>;
  providerMessageId?: string;
}

const EVENT_OF: Record<StatusReport['status'], string> = {
  sent: 'Message Sent',
  delivered: 'Message Delivered',
  opened: 'Message Opened',
  clicked: 'Message Clicked',
  failed: 'Message Failed',
  bounced: 'Message Bounced',
  unsubscribed: 'Message Unsubscribed',
};

/**
 * Records what a provider receipt or a tracking hit says about a message: the history row and
 * its `Message …` event, and the message status when the report moves it forward. A message the
 * dispatcher gave up on as outcome_unknown is settled by a receipt. Opens are recorded once;
 * clicks every time. Returns false for an unknown message.
 */
export async function recordReport(db: Db, workspaceId: string, messageId: string, report: StatusReport, at: Date): Promise<boolean> {
  return withTransaction(db, async (client) => {
    const { rows } = await client.query<{ status: MessageStatus; reason: string | null; opened: boolean }>(
      `select status, reason, exists (select 1 from message_status_history h where h.workspace_id = m.workspace_id and h.message_id = m.id and h.status = 'opened') as opened
         from messages m where workspace_id = $1 and id = $2 for update`,
      [workspaceId, messageId],
    );
    const current = rows[0];
    if (!current) return false;
    if (report.status === 'opened' && current.opened) return true;
    let next: MessageStatus = current.status;
    let reason = current.reason;
    const unknownOutcome = current.status === 'failed' && current.reason === 'outcome_unknown';
    if (report.status === 'failed' || report.status === 'bounced') {
      if (current.status !== 'failed') [next, reason] = ['failed', report.reason ?? report.status];
    } else if (report.status !== 'unsubscribed') {
      if (unknownOutcome || (PROGRESS[report.status]! > (PROGRESS[current.status] ?? -1) && current.status !== 'failed')) {
        [next, reason] = [report.status, null];
      }
    }
    await client.query(
      `update messages set status = $3, reason = $4, provider_message_id = coalesce(provider_message_id, $5), updated_at = $6
        where workspace_id = $1 and id = $2`,
      [workspaceId, messageId, next, reason, report.providerMessageId ?? null, at],
    );
    await client.query(
      `insert into message_status_history (workspace_id, message_id, status, reason, detail, event, event_written, at)
       values ($1, $2, $3, $4, $5, $6, false, $7)`,
      [workspaceId, messageId, report.status, report.reason ?? null, report.detail ? JSON.stringify(report.detail) : null, EVENT_OF[report.status], at],
    );
    return true;
  });
}

/** The message a tracking link or callback names, with what the handlers need. */
export async function messageForTracking(db: Queryable, workspaceId: string, messageId: string) {
  const { rows } = await db.query<{ profile_id: string; channel: ChannelKind; subscription_group: string | null; account_key: string | null; status: MessageStatus }>(
    'select profile_id, channel, subscription_group, account_key, status from messages where workspace_id = $1 and id = $2',
    [workspaceId, messageId],
  );
  return rows[0];
}

/** Our message for a provider's id (receipts that name only theirs, e.g. WeChat's MsgID). */
export async function messageIdByProviderId(db: Queryable, workspaceId: string, provider: string, providerMessageId: string): Promise<string | undefined> {
  const { rows } = await db.query<{ id: string }>(
    'select id from messages where workspace_id = $1 and provider = $2 and provider_message_id = $3 order by created_at desc limit 1',
    [workspaceId, provider, providerMessageId],
  );
  return rows[0]?.id;
}

/** Failed messages (the dead-letter list), newest first. */
export async function listDeadLetters(db: Queryable, workspaceId: string, limit: number): Promise<MessageSummary[]> {
  const { rows } = await db.query<MessageRow>(
    `select ${SUMMARY_COLUMNS} from messages where workspace_id = $1 and status = 'failed' order by updated_at desc limit $2`,
    [workspaceId, limit],
  );
  return rows.map(summary);
}

/** An operator's decision to try a dead letter again (same message, same idempotency key). */
export async function retryMessage(db: Db, workspaceId: string, messageId: string, at: Date): Promise<boolean> {
  const { rowCount } = await db.query(
    `with changed as (
       update messages set status = 'queued', reason = null, due_at = $3, updated_at = $3
        where workspace_id = $1 and id = $2 and status = 'failed' returning id)
     insert into message_status_history (workspace_id, message_id, status, reason, at)
     select $1, id, 'queued', 'operator_retry', $3 from changed`,
    [workspaceId, messageId, at],
  );
  return (rowCount ?? 0) > 0;
}
