import crypto from 'node:crypto';
import type { DbClient } from '../storage/database.ts';
import type { ChannelKind, EnqueuedMessage, EnqueueMessage, MessageRequest } from './contract.ts';
import { channelSubscriptionKey, decide, isValidTimeZone, quietHoursEnd, type GuardDecision } from './guards.ts';
import { addressOf, loadRecipients, timeZoneOf, type RecipientFacts } from './recipients.ts';
import type { Policy } from './schemas.ts';

/*
 * Enqueue, set-based: a batch of requests costs the same handful of statements as one — load the
 * recipients, load every guard fact (policy, templates, accounts, groups, suppressions, consents,
 * subscriptions, recent marketing sends, earlier idempotency keys) in one query, reserve pacing
 * slots, then insert messages and their first status (the outbox of `Message …` events) in one
 * statement. Runs in the caller's transaction, so a message exists exactly when the journey step
 * that sent it committed.
 */

export const DEFAULT_POLICY: Policy = { frequencyCaps: [], quietHours: null, requireOptIn: [] };

interface WorkspaceFacts {
  policy: Policy | null;
  time_zone: string | null;
  templates: Record<string, { channel: ChannelKind; latest: number }> | null;
  accounts: Record<string, { kind: ChannelKind; is_default: boolean }> | null;
  groups: Record<string, { mode: 'opt_in' | 'opt_out'; channel: ChannelKind | null }> | null;
  suppressed: string[] | null;
  consents: Record<string, Record<string, boolean>> | null;
  subscriptions: Record<string, Record<string, boolean>> | null;
  recent: Record<string, { channel: ChannelKind; at: string }[]> | null;
  existing: Record<string, string> | null;
}

interface Planned {
  index: number;
  request: MessageRequest;
  profileId: string;
  address: string | undefined;
  accountKey: string | undefined;
  templateVersion: number | undefined;
  decision: GuardDecision;
}

export async function enqueueMessages(client: DbClient, requests: readonly MessageRequest[], now: Date): Promise<EnqueuedMessage[]> {
  const results: EnqueuedMessage[] = new Array(requests.length);
  const byWorkspace = new Map<string, number[]>();
  requests.forEach((request, index) => byWorkspace.set(request.workspaceId, [...(byWorkspace.get(request.workspaceId) ?? []), index]));
  for (const [workspaceId, indexes] of byWorkspace) {
    const outcome = await enqueueInWorkspace(client, workspaceId, indexes.map((i) => requests[i]!), now);
    outcome.forEach((result, i) => (results[indexes[i]!] = result));
  }
  return results;
}

export const enqueueMessage: EnqueueMessage = async (client, request, now) => (await enqueueMessages(client, [request], now))[0]!;

async function enqueueInWorkspace(client: DbClient, workspaceId: string, requests: readonly MessageRequest[], now: Date): Promise<EnqueuedMessage[]> {
  let recipients = await loadRecipients(client, workspaceId, requests.map((r) => r.profileId));
  const survivors = [...recipients.values()].filter((f) => f.mergedInto && !recipients.has(f.mergedInto)).map((f) => f.mergedInto!);
  if (survivors.length > 0) recipients = new Map([...recipients, ...(await loadRecipients(client, workspaceId, survivors))]);
  const finalFacts = (profileId: string): RecipientFacts | undefined => {
    const facts = recipients.get(profileId);
    return facts?.mergedInto ? recipients.get(facts.mergedInto) : facts;
  };
  const addresses = requests.map((r) => {
    const facts = finalFacts(r.profileId);
    return facts?.exists ? addressOf(r.channel, facts) : undefined;
  });
  await lockCappedProfiles(
    client,
    workspaceId,
    requests.filter((r) => r.purpose === 'marketing').map((r) => finalFacts(r.profileId)?.profileId ?? r.profileId),
  );
  const facts = await loadWorkspaceFacts(client, workspaceId, requests, addresses, now);
  const policy = facts.policy ?? DEFAULT_POLICY;
  const maxWindow = Math.max(0, ...policy.frequencyCaps.map((cap) => cap.windowSeconds));

  const results: EnqueuedMessage[] = new Array(requests.length);
  const planned: Planned[] = [];
  const seenKeys = new Map<string, number>();
  // Accepted in this batch, per profile: they count towards frequency caps like stored ones.
  const acceptedNow = new Map<string, { channel: ChannelKind; at: string }[]>();
  requests.forEach((request, index) => {
    const existing = facts.existing?.[request.idempotencyKey];
    if (existing) {
      results[index] = { messageId: existing, status: 'duplicate' };
      return;
    }
    if (seenKeys.has(request.idempotencyKey)) {
      results[index] = { messageId: '', status: 'duplicate' };
      return;
    }
    seenKeys.set(request.idempotencyKey, index);
    const recipient = finalFacts(request.profileId);
    const profileId = recipient?.profileId ?? request.profileId;
    const template = facts.templates?.[request.templateKey];
    const accountKey = request.channelConfigKey ?? defaultAccount(facts, request.channel);
    const account = accountKey ? facts.accounts?.[accountKey] : undefined;
    const groupKey = request.subscriptionGroup;
    const group = groupKey ? facts.groups?.[groupKey] : undefined;
    const profileZone = recipient ? timeZoneOf(recipient) : undefined;
    const recent = [...(facts.recent?.[profileId] ?? []), ...(acceptedNow.get(profileId) ?? [])];
    const decision = decide(
      {
        channel: request.channel,
        purpose: request.purpose,
        profileExists: recipient?.exists ?? false,
        // A block on the profile asked for or on the one it was merged into.
        blocked: (recipient?.blocked ?? false) || (recipients.get(request.profileId)?.blocked ?? false),
        address: addresses[index],
        suppressed: addresses[index] !== undefined && (facts.suppressed ?? []).includes(`${request.channel} ${addresses[index]}`),
        consents: facts.consents?.[profileId] ?? {},
        subscriptions: facts.subscriptions?.[profileId] ?? {},
        subscriptionGroup: groupKey ? (group ? { key: groupKey, mode: group.mode } : 'unknown') : undefined,
        capCounts: policy.frequencyCaps.map(
          (cap) => recent.filter((m) => (cap.channel === undefined || m.channel === cap.channel) && Date.parse(m.at) > now.getTime() - cap.windowSeconds * 1000).length,
        ),
        policy,
        timeZone: profileZone && isValidTimeZone(profileZone) ? profileZone : (facts.time_zone ?? 'UTC'),
        templateFound: template !== undefined && template.channel === request.channel,
        accountFound: account !== undefined && account.kind === request.channel,
      },
      now,
    );
    if (decision.action === 'queue' && request.purpose === 'marketing' && maxWindow > 0) {
      acceptedNow.set(profileId, [...(acceptedNow.get(profileId) ?? []), { channel: request.channel, at: now.toISOString() }]);
    }
    planned.push({
      index,
      request,
      profileId,
      address: addresses[index],
      accountKey,
      templateVersion: request.templateVersion ?? template?.latest,
      decision,
    });
  });

  await reservePacingSlots(client, workspaceId, planned, now, policy, facts.time_zone ?? 'UTC', recipients);

  const rows = planned.map((p) => ({
    id: crypto.randomUUID(),
    idempotency_key: p.request.idempotencyKey,
    profile_id: p.profileId,
    channel: p.request.channel,
    account_key: p.accountKey ?? null,
    template_key: p.request.templateKey,
    template_version: p.templateVersion ?? null,
    purpose: p.request.purpose,
    subscription_group: p.request.subscriptionGroup ?? null,
    address: p.address ?? null,
    variables: p.request.variables ?? {},
    journey_id: p.request.origin?.journeyId ?? null,
    journey_version: p.request.origin?.journeyVersion ?? null,
    instance_id: p.request.origin?.instanceId ?? null,
    node_id: p.request.origin?.nodeId ?? null,
    rate_per_second: p.request.ratePerSecond && p.request.ratePerSecond > 0 && p.request.origin?.journeyId ? p.request.ratePerSecond : null,
    status: p.decision.action === 'queue' ? 'queued' : 'skipped',
    reason: p.decision.action === 'skip' ? p.decision.reason : null,
    due_at: (p.decision.action === 'queue' ? p.decision.dueAt : now).toISOString(),
    deferred_by: p.decision.action === 'queue' ? (p.decision.deferredBy ?? null) : null,
  }));
  const inserted = new Set<string>();
  if (rows.length > 0) {
    const { rows: done } = await client.query<{ idempotency_key: string }>(
      `with incoming as (
         select * from jsonb_to_recordset($2::jsonb) as x(
           id uuid, idempotency_key text, profile_id uuid, channel text, account_key text, template_key text, template_version int,
           purpose text, subscription_group text, address text, variables jsonb, journey_id text, journey_version int, instance_id text,
           node_id text, rate_per_second float8, status text, reason text, due_at timestamptz, deferred_by text)),
       inserted as (
         insert into messages (workspace_id, id, idempotency_key, profile_id, channel, account_key, template_key, template_version, purpose,
                               subscription_group, address, variables, journey_id, journey_version, instance_id, node_id, rate_per_second,
                               status, reason, due_at, created_at, updated_at)
         select $1, id, idempotency_key, profile_id, channel, account_key, template_key, template_version, purpose, subscription_group,
                address, variables, journey_id, journey_version, instance_id, node_id, rate_per_second, status, reason, due_at, $3, $3
           from incoming
         on conflict (workspace_id, idempotency_key) do nothing
         returning id, idempotency_key),
       history as (
         insert into message_status_history (workspace_id, message_id, status, reason, detail, event, event_written, at)
         select $1, i.id, i.status, i.reason,
                case when i.deferred_by is not null then jsonb_build_object('due_at', i.due_at, 'deferred_by', i.deferred_by) else null end,
                case i.status when 'skipped' then 'Message Skipped' else 'Message Queued' end, false, $3
           from incoming i join inserted using (id))
       select idempotency_key from inserted`,
      [workspaceId, JSON.stringify(rows), now],
    );
    for (const row of done) inserted.add(row.idempotency_key);
  }
  const lost = rows.filter((row) => !inserted.has(row.idempotency_key)).map((row) => row.idempotency_key);
  // A concurrent transaction committed the same key between our look and our insert.
  const winners = lost.length > 0 ? await existingMessages(client, workspaceId, lost) : {};
  planned.forEach((p, i) => {
    const row = rows[i]!;
    if (inserted.has(row.idempotency_key)) {
      results[p.index] = p.decision.action === 'queue' ? { messageId: row.id, status: 'queued' } : { messageId: row.id, status: 'skipped', reason: p.decision.reason };
    } else {
      results[p.index] = { messageId: winners[row.idempotency_key] ?? '', status: 'duplicate' };
    }
  });
  // Repeats of a key within this batch answer with the message the first one created.
  requests.forEach((request, index) => {
    if (results[index]?.status === 'duplicate' && results[index].messageId === '') {
      results[index] = { messageId: results[seenKeys.get(request.idempotencyKey)!]?.messageId ?? '', status: 'duplicate' };
    }
  });
  return results;
}

/**
 * Frequency caps hold under concurrency: when the workspace has caps, every marketing enqueue
 * locks its profiles' rows (sorted, so batches queue behind each other) until the caller's
 * transaction commits. The facts read next (READ COMMITTED: a new snapshot per statement) then
 * include the messages a transaction that held the lock committed, so two never both take the
 * last free slot. A caller enqueueing for several profiles in separate calls of one transaction
 * can meet another doing the opposite: PostgreSQL then aborts one with a deadlock error (the
 * journey executor retries that instance's step).
 */
async function lockCappedProfiles(client: DbClient, workspaceId: string, profileIds: readonly string[]): Promise<void> {
  if (profileIds.length === 0) return;
  await client.query(
    `insert into channel_profile_locks (workspace_id, profile_id)
     select $1, p from unnest($2::uuid[]) as p
      where exists (select 1 from channel_policies where workspace_id = $1 and jsonb_array_length(frequency_caps) > 0)
      order by p
     on conflict (workspace_id, profile_id) do update set profile_id = excluded.profile_id where false`,
    [workspaceId, [...new Set(profileIds)].sort()],
  );
}

function defaultAccount(facts: WorkspaceFacts, kind: ChannelKind): string | undefined {
  return Object.entries(facts.accounts ?? {}).find(([, account]) => account.kind === kind && account.is_default)?.[0];
}

async function existingMessages(client: DbClient, workspaceId: string, keys: readonly string[]): Promise<Record<string, string>> {
  const { rows } = await client.query<{ idempotency_key: string; id: string }>(
    'select idempotency_key, id from messages where workspace_id = $1 and idempotency_key = any($2::text[])',
    [workspaceId, keys],
  );
  return Object.fromEntries(rows.map((row) => [row.idempotency_key, row.id]));
}

async function loadWorkspaceFacts(
  client: DbClient,
  workspaceId: string,
  requests: readonly MessageRequest[],
  addresses: readonly (string | undefined)[],
  now: Date,
): Promise<WorkspaceFacts> {
  const profiles = [...new Set(requests.map((r) => r.profileId))];
  const suppressionChannels: string[] = [];
  const suppressionAddresses: string[] = [];
  addresses.forEach((address, i) => {
    if (address === undefined) return;
    suppressionChannels.push(requests[i]!.channel);
    suppressionAddresses.push(address);
  });
  const { rows } = await client.query<WorkspaceFacts>(
    `with cap as (select coalesce(max((c ->> 'windowSeconds')::int), 0) as seconds
                   from channel_policies, jsonb_array_elements(frequency_caps) c where workspace_id = $1)
     select
       (select jsonb_build_object('frequencyCaps', frequency_caps, 'quietHours', quiet_hours, 'requireOptIn', to_jsonb(require_opt_in))
          from channel_policies where workspace_id = $1) as policy,
       (select time_zone from workspaces where id = $1) as time_zone,
       (select jsonb_object_agg(key, jsonb_build_object('channel', channel, 'latest', latest_version))
          from message_templates where workspace_id = $1 and key = any($2::text[])) as templates,
       (select jsonb_object_agg(key, jsonb_build_object('kind', kind, 'is_default', is_default))
          from channel_accounts where workspace_id = $1) as accounts,
       (select jsonb_object_agg(key, jsonb_build_object('mode', mode, 'channel', channel))
          from subscription_groups where workspace_id = $1 and key = any($3::text[])) as groups,
       (select jsonb_agg(s.channel || ' ' || s.address) from unnest($4::text[], $5::text[]) as a(channel, address)
          join channel_suppressions s on s.workspace_id = $1 and s.channel = a.channel and s.address = a.address) as suppressed,
       (select jsonb_object_agg(p.id, c.categories) from unnest($6::uuid[]) as p(id)
          cross join lateral (select jsonb_object_agg(category, granted) as categories from profile_consents
                               where workspace_id = $1 and profile_id = p.id) c where c.categories is not null) as consents,
       (select jsonb_object_agg(p.id, s.groups) from unnest($6::uuid[]) as p(id)
          cross join lateral (select jsonb_object_agg(group_key, subscribed) as groups from profile_subscriptions
                               where workspace_id = $1 and profile_id = p.id) s where s.groups is not null) as subscriptions,
       (select jsonb_object_agg(p.id, m.sent) from unnest($6::uuid[]) as p(id)
          cross join lateral (select jsonb_agg(jsonb_build_object('channel', channel, 'at', created_at)) as sent from messages
                               where workspace_id = $1 and profile_id = p.id and created_at > $8::timestamptz - make_interval(secs => (select seconds from cap))
                                 and purpose = 'marketing' and status not in ('skipped', 'cancelled')) m
         where m.sent is not null and (select seconds from cap) > 0) as recent,
       (select jsonb_object_agg(idempotency_key, id) from messages where workspace_id = $1 and idempotency_key = any($7::text[])) as existing`,
    [
      workspaceId,
      [...new Set(requests.map((r) => r.templateKey))],
      [...new Set(requests.flatMap((r) => (r.subscriptionGroup ? [r.subscriptionGroup] : [])))],
      suppressionChannels,
      suppressionAddresses,
      profiles,
      requests.map((r) => r.idempotencyKey),
      now,
    ],
  );
  return rows[0]!;
}

/**
 * Broadcast pacing: queued messages of a journey with `ratePerSecond` get consecutive slots
 * 1/rate apart after the journey's last reserved slot (one upsert for all journeys of the batch).
 */
async function reservePacingSlots(
  client: DbClient,
  workspaceId: string,
  planned: Planned[],
  now: Date,
  policy: Policy,
  workspaceZone: string,
  recipients: Map<string, RecipientFacts>,
): Promise<void> {
  const paced = new Map<string, { rate: number; items: Planned[] }>();
  for (const p of planned) {
    const rate = p.request.ratePerSecond;
    const journeyId = p.request.origin?.journeyId;
    if (p.decision.action !== 'queue' || !rate || rate <= 0 || !journeyId) continue;
    const entry = paced.get(journeyId) ?? { rate, items: [] };
    entry.items.push(p);
    paced.set(journeyId, entry);
  }
  if (paced.size === 0) return;
  const journeys = [...paced.keys()];
  const { rows } = await client.query<{ journey_id: string; next_slot: Date }>(
    `insert into message_pacing as p (workspace_id, journey_id, next_slot)
     select $1, j, $2::timestamptz + make_interval(secs => n / r) from unnest($3::text[], $4::int[], $5::float8[]) as u(j, n, r)
     on conflict (workspace_id, journey_id) do update set next_slot = greatest(p.next_slot, $2::timestamptz) + (excluded.next_slot - $2::timestamptz)
     returning journey_id, next_slot`,
    [workspaceId, now, journeys, journeys.map((j) => paced.get(j)!.items.length), journeys.map((j) => paced.get(j)!.rate)],
  );
  for (const row of rows) {
    const { rate, items } = paced.get(row.journey_id)!;
    const first = row.next_slot.getTime() - (items.length / rate) * 1000;
    items.forEach((p, i) => {
      if (p.decision.action !== 'queue') return;
      const slot = new Date(first + (i / rate) * 1000);
      if (slot.getTime() <= p.decision.dueAt.getTime()) return;
      const facts = recipients.get(p.profileId);
      const profileZone = facts ? timeZoneOf(facts) : undefined;
      const tz = profileZone && isValidTimeZone(profileZone) ? profileZone : workspaceZone;
      const quiet = p.request.purpose === 'marketing' && policy.quietHours ? quietHoursEnd(slot, tz, policy.quietHours.start, policy.quietHours.end) : undefined;
      p.decision = quiet ? { action: 'queue', dueAt: quiet, deferredBy: 'quiet_hours' } : { action: 'queue', dueAt: slot };
    });
  }
}

export { channelSubscriptionKey };
