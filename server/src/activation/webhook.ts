import crypto from 'node:crypto';

/**
 * The webhook protocol, without I/O: the body of a batch, its signature, how a response is
 * judged, and when the next attempt is due.
 */

export const SIGNATURE_HEADER = 'x-touchpoint-signature';
export const BATCH_ID_HEADER = 'x-touchpoint-batch-id';
export const ATTEMPT_HEADER = 'x-touchpoint-attempt';

export type Identifiers = Record<string, string[]>;

export interface MembershipChangeRow {
  profileId: string;
  change: 'add' | 'remove';
  /** When the profile entered or left (for a backfilled member: when it entered). */
  at: string;
  /** The segment_transitions id; null for members sent because of sendExisting. */
  transitionId: number | null;
}

export interface WebhookChange extends MembershipChangeRow {
  identifiers: Identifiers;
}

export interface WebhookPayload {
  destination: { id: string; name: string };
  segment: { key: string; name: string };
  batchId: string;
  changes: WebhookChange[];
}

export interface PayloadInput {
  destination: { id: string; name: string };
  segment: { key: string; name: string };
  batchId: string;
  changes: readonly MembershipChangeRow[];
  /** Live identifiers per profile id; a profile without any (merged away, unbound) gets {}. */
  identifiers: ReadonlyMap<string, Identifiers>;
}

/** The body of one batch; changes keep their order (transition id order, or profile id order). */
export function buildPayload(input: PayloadInput): WebhookPayload {
  return {
    destination: { id: input.destination.id, name: input.destination.name },
    segment: { key: input.segment.key, name: input.segment.name },
    batchId: input.batchId,
    changes: input.changes.map((change) => ({
      profileId: change.profileId,
      change: change.change,
      at: change.at,
      identifiers: input.identifiers.get(change.profileId) ?? {},
      transitionId: change.transitionId,
    })),
  };
}

function hmacHex(secret: string, timestamp: number, body: string): string {
  return crypto.createHmac('sha256', secret).update(`${timestamp}.${body}`, 'utf8').digest('hex');
}

/**
 * `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`. The timestamp is signed with the body
 * so a receiver can refuse replays of an old request.
 */
export function signatureHeader(secret: string, body: string, unixSeconds: number): string {
  return `t=${unixSeconds},v1=${hmacHex(secret, unixSeconds, body)}`;
}

export type SignatureCheck = { ok: true; timestamp: number } | { ok: false; reason: string };

/**
 * What a receiver does with the header: recompute the HMAC over the raw body and compare in
 * constant time; refuse timestamps further than `toleranceSeconds` from its clock.
 */
export function verifySignature(
  secret: string,
  body: string,
  header: string | undefined,
  nowUnixSeconds: number,
  toleranceSeconds = 300,
): SignatureCheck {
  if (!header) return { ok: false, reason: 'missing signature header' };
  const parts = new Map<string, string[]>();
  for (const part of header.split(',')) {
    const eq = part.indexOf('=');
    if (eq <= 0) return { ok: false, reason: `malformed signature part "${part}"` };
    const key = part.slice(0, eq).trim();
    parts.set(key, [...(parts.get(key) ?? []), part.slice(eq + 1).trim()]);
  }
  const t = parts.get('t')?.[0];
  if (!t || !/^\d{1,12}$/.test(t)) return { ok: false, reason: 'missing or malformed timestamp' };
  const timestamp = Number(t);
  if (Math.abs(nowUnixSeconds - timestamp) > toleranceSeconds) return { ok: false, reason: 'timestamp outside the tolerance' };
  const expected = Buffer.from(hmacHex(secret, timestamp, body), 'hex');
  // Several v1 values are accepted so a sender may sign with an old and a new secret during rotation.
  for (const candidate of parts.get('v1') ?? []) {
    const given = /^[0-9a-f]{64}$/i.test(candidate) ? Buffer.from(candidate, 'hex') : undefined;
    if (given && crypto.timingSafeEqual(given, expected)) return { ok: true, timestamp };
  }
  return { ok: false, reason: 'no v1 signature matches' };
}

export interface BackoffSettings {
  backoffBaseMs: number;
  backoffMaxMs: number;
}

/**
 * Delay after the `attempt`-th failed attempt (1-based): base·2^(attempt-1), capped, with "equal
 * jitter" (half fixed, half random) so retries of many pairs failing together spread out while
 * each still waits at least half the nominal delay. `random` is in [0, 1).
 */
export function backoffDelayMs(attempt: number, settings: BackoffSettings, random: number): number {
  const exponent = Math.min(Math.max(attempt - 1, 0), 30);
  const nominal = Math.min(settings.backoffMaxMs, settings.backoffBaseMs * 2 ** exponent);
  return Math.round(nominal / 2 + random * (nominal / 2));
}

/** A Retry-After value honoured at most this long, so one header cannot stall a pair for days. */
export const MAX_RETRY_AFTER_MS = 60 * 60 * 1000;

/** Retry-After as delta-seconds or an HTTP date, in ms from `now`; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | null | undefined, now: Date): number | undefined {
  if (!value) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Math.min(Number(trimmed) * 1000, MAX_RETRY_AFTER_MS);
  const at = Date.parse(trimmed);
  if (Number.isNaN(at)) return undefined;
  return Math.min(Math.max(at - now.getTime(), 0), MAX_RETRY_AFTER_MS);
}

export type AttemptResult =
  | { kind: 'response'; status: number; retryAfter?: string | null; body?: string }
  | { kind: 'timeout'; timeoutMs: number }
  | { kind: 'network'; message: string };

export type Verdict =
  | { outcome: 'delivered' }
  | { outcome: 'retry'; error: string; delayMs: number }
  | { outcome: 'dead'; error: string };

export interface RetryPolicy extends BackoffSettings {
  maxAttempts: number;
}

/** An attempt's failure as an operator reads it. */
export function describeAttempt(result: AttemptResult): string {
  switch (result.kind) {
    case 'timeout':
      return `no response within ${result.timeoutMs} ms`;
    case 'network':
      return `network error: ${result.message}`;
    case 'response': {
      const excerpt = result.body?.trim().slice(0, 200);
      return `HTTP ${result.status}${excerpt ? `: ${excerpt}` : ''}`;
    }
  }
}

/** 408 and 429 say "later"; every other 4xx says the request itself is wrong, so resending it is pointless. */
function isPermanent(status: number): boolean {
  return status >= 400 && status < 500 && status !== 408 && status !== 429;
}

export function isDelivered(result: AttemptResult): boolean {
  return result.kind === 'response' && result.status >= 200 && result.status < 300;
}

/**
 * What to do after attempt number `attempt` (1-based) of a batch: 2xx delivered it; a 4xx other
 * than 408/429 sends it to the dead letters at once; anything else (5xx, 408, 429, 3xx — redirects
 * are not followed, a signed body goes only where it was configured — timeouts, network errors)
 * is retried after the backoff, or after Retry-After on a 429, until `maxAttempts` attempts have
 * been made.
 */
export function judgeAttempt(result: AttemptResult, attempt: number, policy: RetryPolicy, now: Date, random: number): Verdict {
  if (isDelivered(result)) return { outcome: 'delivered' };
  const error = describeAttempt(result);
  if (result.kind === 'response' && isPermanent(result.status)) return { outcome: 'dead', error };
  if (attempt >= policy.maxAttempts) return { outcome: 'dead', error: `${error} (after ${attempt} attempts)` };
  const retryAfter = result.kind === 'response' && result.status === 429 ? parseRetryAfter(result.retryAfter, now) : undefined;
  return { outcome: 'retry', error, delayMs: retryAfter ?? backoffDelayMs(attempt, policy, random) };
}
