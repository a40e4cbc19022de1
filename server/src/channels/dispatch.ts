import { backoffDelayMs } from '../activation/webhook.ts';
import { withTransaction, type Db, type DbClient } from '../storage/database.ts';
import { loadAccounts, type ChannelAccount } from './accounts.ts';
import type { ChannelKind } from './contract.ts';
import { ADAPTERS, type OutgoingMessage, type ProviderAdapter, type SendOutcome } from './providers/index.ts';
import { loadRecipients, type RecipientFacts } from './recipients.ts';
import { renderForProfile } from './render.ts';
import type { StoredTemplate } from './template-store.ts';
import { RenderError, type TemplateContent } from './templates.ts';
import { messageLinks, trackHtml, trackingKey } from './tracking.ts';

/*
 * The dispatcher: takes due messages in batches (FOR UPDATE SKIP LOCKED, so several workers share
 * the queue) within the rate limits (token buckets in PostgreSQL, shared by every process), marks
 * them `sending` and commits — the record that a provider call may be under
 * way — then renders, calls the providers concurrently and writes every outcome of the batch in
 * one statement. A message left `sending` by a crash is settled by `reconcileOnce`: resent when
 * its provider deduplicates on our key, otherwise never repeated (dead letter `outcome_unknown`
 * unless a provider receipt settles it). So a provider never gets the same message twice from us.
 */

export interface DispatcherOptions {
  db: Db;
  /** The key sealing account secrets (read on the first batch, so an idle worker never needs one). */
  secretsKey: Buffer | (() => Buffer);
  /** Base URL of this server as recipients and providers reach it (tracking, callbacks). */
  publicUrl: string;
  batchSize?: number;
  /** Provider calls in flight at once per batch. */
  concurrency?: number;
  maxAttempts?: number;
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  /** A `sending` message older than this is a crashed send. Longer than any provider call. */
  leaseMs?: number;
  timeoutMs?: number;
  fetch?: typeof fetch;
  now?: () => Date;
  adapters?: Record<string, ProviderAdapter>;
  random?: () => number;
}

interface ClaimedRow {
  workspace_id: string;
  id: string;
  profile_id: string;
  channel: ChannelKind;
  account_key: string | null;
  template_key: string;
  template_version: number | null;
  purpose: 'marketing' | 'transactional';
  address: string | null;
  variables: { event?: Record<string, unknown>; journey?: Record<string, unknown> };
  attempts: number;
}

interface Outcome {
  workspace_id: string;
  id: string;
  status: 'queued' | 'sent' | 'failed' | 'skipped';
  reason: string | null;
  provider: string | null;
  provider_message_id: string | null;
  due_at: string | null;
  attempted: boolean;
  event: string | null;
  detail: Record<string, unknown> | null;
  suppress_channel: string | null;
  suppress_address: string | null;
}

export interface Dispatcher {
  /** One batch; returns how many messages it took (0: nothing due). */
  dispatchOnce(): Promise<number>;
  /** Settles crashed sends; returns how many. */
  reconcileOnce(): Promise<number>;
}

interface Candidate {
  workspace_id: string;
  id: string;
  account_key: string | null;
  journey_id: string | null;
  rate_per_second: number | null;
  account_rate: number | null;
}

/** The token buckets a message draws on: its account's rate and its journey's broadcast rate. */
function bucketsOf(row: Candidate): { scope: string; rate: number }[] {
  const buckets: { scope: string; rate: number }[] = [];
  if (row.account_key && row.account_rate && row.account_rate > 0) buckets.push({ scope: `account:${row.account_key}`, rate: row.account_rate });
  if (row.journey_id && row.rate_per_second && row.rate_per_second > 0) buckets.push({ scope: `journey:${row.journey_id}`, rate: row.rate_per_second });
  return buckets;
}

/**
 * Takes due messages within the rate limits, shared by every dispatcher process through
 * PostgreSQL: the candidates are locked (SKIP LOCKED), then the token buckets they need are
 * locked in one order (so two dispatchers queue behind each other instead of deadlocking),
 * refilled for the time passed (up to one second's worth, at least one token) and drawn on,
 * and the admitted messages become `sending` — all in one transaction.
 */
async function claimWithinLimits(client: DbClient, at: Date, batchSize: number): Promise<ClaimedRow[]> {
  const { rows: candidates } = await client.query<Candidate>(
    `with c as (
       select workspace_id, id, account_key, journey_id, rate_per_second, due_at from messages
        where status = 'queued' and due_at <= $1 order by due_at limit $2 for update skip locked)
     select c.workspace_id, c.id, c.account_key, c.journey_id, c.rate_per_second,
            (a.settings ->> 'ratePerSecond')::float8 as account_rate
       from c left join channel_accounts a on a.workspace_id = c.workspace_id and a.key = c.account_key
      order by c.due_at, c.id`,
    [at, batchSize * 4],
  );
  if (candidates.length === 0) return [];
  const wanted = new Map<string, { workspaceId: string; scope: string; rate: number }>();
  for (const row of candidates) {
    for (const bucket of bucketsOf(row)) wanted.set(`${row.workspace_id}/${bucket.scope}`, { workspaceId: row.workspace_id, ...bucket });
  }
  const tokens = new Map<string, number>();
  if (wanted.size > 0) {
    const list = [...wanted.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, bucket]) => bucket);
    // The do-update locks each bucket row (in the sorted order of the input) until commit.
    const { rows } = await client.query<{ workspace_id: string; scope: string; tokens: number }>(
      `insert into channel_rate_buckets as b (workspace_id, scope, rate, tokens, refilled_at)
       select w, s, r, greatest(r, 1), $1 from unnest($2::uuid[], $3::text[], $4::float8[]) with ordinality as u(w, s, r, n) order by n
       on conflict (workspace_id, scope) do update
         set rate = excluded.rate,
             tokens = least(greatest(excluded.rate, 1), b.tokens + greatest(0, extract(epoch from $1::timestamptz - b.refilled_at)) * excluded.rate),
             refilled_at = greatest(b.refilled_at, $1::timestamptz)
       returning workspace_id, scope, tokens`,
      [at, list.map((b) => b.workspaceId), list.map((b) => b.scope), list.map((b) => b.rate)],
    );
    for (const row of rows) tokens.set(`${row.workspace_id}/${row.scope}`, row.tokens);
  }
  const admitted: string[][] = [[], []];
  for (const row of candidates) {
    if (admitted[0]!.length >= batchSize) break;
    const keys = bucketsOf(row).map((bucket) => `${row.workspace_id}/${bucket.scope}`);
    if (keys.some((key) => (tokens.get(key) ?? 0) < 1)) continue;
    for (const key of keys) tokens.set(key, tokens.get(key)! - 1);
    admitted[0]!.push(row.workspace_id);
    admitted[1]!.push(row.id);
  }
  if (wanted.size > 0) {
    const drawn = [...wanted.entries()];
    await client.query(
      `update channel_rate_buckets b set tokens = u.t from unnest($1::uuid[], $2::text[], $3::float8[]) as u(w, s, t)
        where b.workspace_id = u.w and b.scope = u.s`,
      [drawn.map(([, b]) => b.workspaceId), drawn.map(([, b]) => b.scope), drawn.map(([key]) => tokens.get(key) ?? 0)],
    );
  }
  if (admitted[0]!.length === 0) return [];
  const { rows } = await client.query<ClaimedRow>(
    `update messages m set status = 'sending', claimed_at = $1, updated_at = $1
       from unnest($2::uuid[], $3::uuid[]) as a(workspace_id, id) where m.workspace_id = a.workspace_id and m.id = a.id
     returning m.workspace_id, m.id, m.profile_id, m.channel, m.account_key, m.template_key, m.template_version, m.purpose,
               m.address, m.variables, m.attempts`,
    [at, admitted[0], admitted[1]],
  );
  return rows;
}

async function mapLimit<T, R>(items: readonly T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const runners = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await work(items[index]!);
    }
  });
  await Promise.all(runners);
  return results;
}

export function createDispatcher(options: DispatcherOptions): Dispatcher {
  const db = options.db;
  const now = options.now ?? (() => new Date());
  const batchSize = options.batchSize ?? 200;
  const maxAttempts = options.maxAttempts ?? 6;
  const backoff = { backoffBaseMs: options.backoffBaseMs ?? 5_000, backoffMaxMs: options.backoffMaxMs ?? 3_600_000 };
  const leaseMs = options.leaseMs ?? 120_000;
  const adapters = options.adapters ?? ADAPTERS;
  const random = options.random ?? Math.random;
  const secrets = () => (typeof options.secretsKey === 'function' ? options.secretsKey() : options.secretsKey);
  let linkKeyCache: Buffer | undefined;
  const linkKey = () => (linkKeyCache ??= trackingKey(secrets()));
  const context = { fetch: options.fetch ?? fetch, now, timeoutMs: options.timeoutMs ?? 10_000 };
  const templates = new Map<string, Pick<StoredTemplate, 'key' | 'version' | 'defaultLocale' | 'content'>>();

  const claim = (at: Date) => withTransaction(db, (client) => claimWithinLimits(client, at, batchSize));

  async function loadTemplates(rows: readonly ClaimedRow[]): Promise<void> {
    const missing = rows.filter((r) => r.template_version !== null && !templates.has(`${r.workspace_id}/${r.template_key}/${r.template_version}`));
    if (missing.length === 0) return;
    const { rows: found } = await db.query<{ workspace_id: string; template_key: string; version: number; default_locale: string; content: TemplateContent }>(
      `select v.workspace_id, v.template_key, v.version, v.default_locale, v.content
         from unnest($1::uuid[], $2::text[], $3::int[]) as r(workspace_id, key, version)
         join message_template_versions v on v.workspace_id = r.workspace_id and v.template_key = r.key and v.version = r.version`,
      [missing.map((r) => r.workspace_id), missing.map((r) => r.template_key), missing.map((r) => r.template_version)],
    );
    for (const row of found) {
      templates.set(`${row.workspace_id}/${row.template_key}/${row.version}`, {
        key: row.template_key,
        version: row.version,
        defaultLocale: row.default_locale,
        content: row.content,
      });
    }
  }

  function failure(row: ClaimedRow, reason: string, permanent: boolean, extra: Partial<Outcome> = {}): Outcome {
    return {
      workspace_id: row.workspace_id,
      id: row.id,
      status: 'failed',
      reason,
      provider: null,
      provider_message_id: null,
      due_at: null,
      attempted: false,
      event: 'Message Failed',
      detail: { permanent },
      suppress_channel: null,
      suppress_address: null,
      ...extra,
    };
  }

  function outcomeOf(row: ClaimedRow, provider: string, result: SendOutcome, at: Date): Outcome {
    if (result.ok) {
      return {
        workspace_id: row.workspace_id,
        id: row.id,
        status: 'sent',
        reason: null,
        provider,
        provider_message_id: result.providerMessageId,
        due_at: null,
        attempted: true,
        event: 'Message Sent',
        detail: { attempt: row.attempts + 1 },
        suppress_channel: null,
        suppress_address: null,
      };
    }
    const attempt = row.attempts + 1;
    if (result.retryable && attempt < maxAttempts) {
      const delay = Math.max(result.retryAfterMs ?? 0, backoffDelayMs(attempt, backoff, random()));
      return {
        workspace_id: row.workspace_id,
        id: row.id,
        status: 'queued',
        reason: `retry: ${result.reason}`,
        provider,
        provider_message_id: null,
        due_at: new Date(at.getTime() + delay).toISOString(),
        attempted: true,
        event: null,
        detail: { attempt, retry_in_ms: delay },
        suppress_channel: null,
        suppress_address: null,
      };
    }
    const reason = result.retryable ? `attempts_exhausted: ${result.reason}` : result.reason;
    return failure(row, reason, true, {
      provider,
      attempted: true,
      detail: { permanent: true, attempt, invalid_recipient: result.invalidRecipient === true },
      ...(result.invalidRecipient && row.address ? { suppress_channel: row.channel, suppress_address: row.address } : {}),
    });
  }

  async function send(row: ClaimedRow, account: ChannelAccount | undefined, facts: RecipientFacts | undefined): Promise<Outcome> {
    if (!account) return failure(row, 'no_channel_account', true);
    const adapter = adapters[account.provider];
    if (!adapter) return failure(row, `no adapter for provider ${account.provider}`, true);
    const template = templates.get(`${row.workspace_id}/${row.template_key}/${row.template_version}`);
    if (!template) return failure(row, 'unknown_template', true);
    if (!facts?.exists || !row.address) return failure(row, facts?.exists ? 'no_address' : 'profile_not_found', true);
    // Blocked after it was queued: skipped like at enqueue, never sent.
    if (facts.blocked) return { ...failure(row, 'blocked', true), status: 'skipped', event: 'Message Skipped', detail: { at: 'dispatch' } };
    const links = messageLinks(linkKey(), options.publicUrl, row.workspace_id, row.id);
    let fields;
    try {
      fields = renderForProfile(row.workspace_id, template, facts, row.variables ?? {}, {
        id: row.id,
        unsubscribe_url: links.unsubscribeUrl,
        preferences_url: links.preferencesUrl,
      }).fields;
    } catch (error) {
      if (error instanceof RenderError) return failure(row, `render_error: ${error.message}`, true);
      throw error;
    }
    if (row.channel === 'email' && fields.html !== undefined && account.settings.tracking !== false) fields = { ...fields, html: trackHtml(fields.html, links) };
    const message: OutgoingMessage = {
      workspaceId: row.workspace_id,
      messageId: row.id,
      profileId: row.profile_id,
      templateKey: row.template_key,
      address: row.address,
      fields,
      ...(row.purpose === 'marketing' ? { unsubscribeUrl: links.unsubscribeUrl } : {}),
      callbackUrl: links.callbackUrl(account.provider),
    };
    let result: SendOutcome;
    try {
      result = await adapter.send(account, message, context);
    } catch (error) {
      result = { ok: false, retryable: true, reason: `adapter error: ${error instanceof Error ? error.message : String(error)}` };
    }
    return outcomeOf(row, account.provider, result, now());
  }

  async function dispatchOnce(): Promise<number> {
    const at = now();
    const rows = await claim(at);
    if (rows.length === 0) return 0;
    // An error from here on leaves the batch `sending`: whether a provider was called is then
    // unknown, and the reconcile step settles those messages after the lease, as after a crash.
    await loadTemplates(rows);
    const accounts = await loadAccounts(
      db,
      secrets(),
      [...new Map(rows.filter((r) => r.account_key).map((r) => [`${r.workspace_id}/${r.account_key}`, { workspaceId: r.workspace_id, key: r.account_key! }])).values()],
    );
    const facts = new Map<string, RecipientFacts>();
    const byWorkspace = new Map<string, string[]>();
    for (const row of rows) byWorkspace.set(row.workspace_id, [...(byWorkspace.get(row.workspace_id) ?? []), row.profile_id]);
    for (const [workspaceId, profiles] of byWorkspace) {
      for (const [id, fact] of await loadRecipients(db, workspaceId, profiles)) facts.set(`${workspaceId}/${id}`, fact);
    }
    const outcomes = await mapLimit(rows, options.concurrency ?? 32, (row) =>
      send(row, accounts.get(`${row.workspace_id}/${row.account_key}`), facts.get(`${row.workspace_id}/${row.profile_id}`)),
    );
    await writeOutcomes(db, outcomes, now());
    return rows.length;
  }

  async function reconcileOnce(): Promise<number> {
    const at = now();
    return withTransaction(db, async (client) => {
      const { rows } = await client.query<ClaimedRow & { provider: string | null }>(
        `select m.workspace_id, m.id, m.profile_id, m.channel, m.account_key, m.template_key, m.template_version, m.purpose, m.address,
                m.variables, m.attempts, a.provider
           from messages m left join channel_accounts a on a.workspace_id = m.workspace_id and a.key = m.account_key
          where m.status = 'sending' and m.claimed_at < $1 order by m.claimed_at limit 500 for update of m skip locked`,
        [new Date(at.getTime() - leaseMs)],
      );
      const outcomes = rows.map((row): Outcome => {
        const adapter = row.provider ? adapters[row.provider] : undefined;
        if (adapter?.idempotent) {
          return {
            workspace_id: row.workspace_id,
            id: row.id,
            status: 'queued',
            reason: 'reconcile: resent under the same idempotency key',
            provider: row.provider,
            provider_message_id: null,
            due_at: at.toISOString(),
            attempted: false,
            event: null,
            detail: { reconciled: true },
            suppress_channel: null,
            suppress_address: null,
          };
        }
        return failure(row, 'outcome_unknown', true, { provider: row.provider, detail: { permanent: true, reconciled: true } });
      });
      await writeOutcomes(client, outcomes, at);
      return rows.length;
    });
  }

  return { dispatchOnce, reconcileOnce };
}

/** Every outcome of a batch in one statement: message rows, their history (and events), suppressions. */
async function writeOutcomes(db: Db | DbClient, outcomes: readonly Outcome[], at: Date): Promise<void> {
  if (outcomes.length === 0) return;
  await db.query(
    `with o as (
       select * from jsonb_to_recordset($1::jsonb) as x(
         workspace_id uuid, id uuid, status text, reason text, provider text, provider_message_id text, due_at timestamptz,
         attempted boolean, event text, detail jsonb, suppress_channel text, suppress_address text)),
     updated as (
       update messages m set status = o.status, reason = o.reason, provider = coalesce(o.provider, m.provider),
              provider_message_id = coalesce(o.provider_message_id, m.provider_message_id), due_at = coalesce(o.due_at, m.due_at),
              attempts = m.attempts + case when o.attempted then 1 else 0 end, claimed_at = null, updated_at = $2
         from o where m.workspace_id = o.workspace_id and m.id = o.id and m.status = 'sending'
       returning m.workspace_id, m.id),
     history as (
       insert into message_status_history (workspace_id, message_id, status, reason, detail, event, event_written, at)
       select o.workspace_id, o.id, o.status, o.reason, o.detail, o.event, o.event is null, $2
         from o join updated u on u.workspace_id = o.workspace_id and u.id = o.id)
     insert into channel_suppressions (workspace_id, channel, address, reason)
     select workspace_id, suppress_channel, suppress_address, 'invalid_recipient: ' || left(reason, 200) from o
      where suppress_address is not null
     on conflict do nothing`,
    [JSON.stringify(outcomes), at],
  );
}
