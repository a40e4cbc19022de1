import crypto from 'node:crypto';
import { FormatRegistry } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { consentFailure, type ConsentRequirement } from './consent.ts';
import { EVENT_TYPES, EventSchema, LIMITS, type EventType, type IncomingEvent } from './schemas.ts';

// Instants outside this range are almost always client bugs (epoch 0, year 20240) and would
// create absurd partitions; they are rejected with a reason instead.
const MIN_TIME = Date.UTC(1970, 0, 2);
const MAX_TIME = Date.UTC(2200, 0, 1);
const ISO_INSTANT =
  /^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?(?:([Zz])|([+-])(\d{2}):?(\d{2}))?)?$/;

// JSON.stringify escapes exactly these: NUL and lone surrogates, which PostgreSQL's jsonb refuses.
const UNSTORABLE_ESCAPE = /(?<!\\)(?:\\\\)*\\u(?:0000|d[89a-f])/i;

/**
 * Milliseconds since the epoch of an ISO-8601 date or date-time, or null. Stricter than
 * Date.parse, which reads a time without a zone in the server's local zone (so the stored
 * instant would depend on where the server runs) and rolls 30 February over into March.
 * A time without a zone is UTC.
 */
export function parseInstant(value: string): number | null {
  // Each event's times are read twice (schema format check, then the value), a batch's sentAt
  // is the same text on every item, and the segment evaluator reads dates again and again.
  const known = recentInstants.get(value);
  if (known !== undefined) return known;
  const result = readInstant(value);
  if (recentInstants.size >= RECENT_INSTANTS) recentInstants.clear();
  recentInstants.set(value, result);
  return result;
}

const RECENT_INSTANTS = 4096;
const recentInstants = new Map<string, number | null>();

function readInstant(value: string): number | null {
  const match = ISO_INSTANT.exec(value);
  if (!match) return null;
  const year = Number(match[1]);
  const month = Number(match[2]);
  const day = Number(match[3]);
  const hour = Number(match[4] ?? 0);
  const minute = Number(match[5] ?? 0);
  const second = Number(match[6] ?? 0);
  const date = new Date(Date.UTC(year, month - 1, day));
  if (date.getUTCFullYear() !== year || date.getUTCMonth() !== month - 1 || date.getUTCDate() !== day) return null;
  const offsetHour = Number(match[10] ?? 0);
  const offsetMinute = Number(match[11] ?? 0);
  if (hour > 23 || minute > 59 || second > 59 || offsetHour > 23 || offsetMinute > 59) return null;
  const millis = Number((match[7] ?? '').padEnd(3, '0').slice(0, 3));
  const offsetMs = (match[9] === '-' ? -1 : 1) * (offsetHour * 60 + offsetMinute) * 60_000;
  return date.getTime() + ((hour * 60 + minute) * 60 + second) * 1000 + millis - offsetMs;
}

if (!FormatRegistry.Has('date-time')) {
  FormatRegistry.Set('date-time', (value) => parseInstant(value) !== null);
}
const checkEvent = TypeCompiler.Compile(EventSchema);

/** An event ready to store: identities as strings, instants as Dates, spec fields separated from extras. */
export interface NormalizedEvent {
  messageId: string;
  type: EventType;
  event: string | null;
  name: string | null;
  category: string | null;
  userId: string | null;
  anonymousId: string | null;
  previousId: string | null;
  groupId: string | null;
  properties: Record<string, unknown> | null;
  traits: Record<string, unknown> | null;
  context: Record<string, unknown> | null;
  integrations: Record<string, unknown> | null;
  extra: Record<string, unknown> | null;
  timestamp: Date;
  originalTimestamp: Date | null;
  sentAt: Date | null;
  receivedAt: Date;
}

export interface Rejection {
  /** Machine-readable reason, e.g. `missing_identity`. */
  error: string;
  field: string | null;
  message: string;
  messageId: string | null;
  /** The item as received (after batch defaults were merged), kept for quarantine and replay. */
  payload: unknown;
}

export type NormalizeResult = { ok: true; event: NormalizedEvent } | { ok: false; rejection: Rejection };

export interface NormalizeOptions {
  receivedAt: Date;
  /** The call type fixed by the endpoint (`/v1/track` …); batch items carry their own `type`. */
  type?: EventType;
  /** `/v1/import`: historical data, timestamps are taken as given with no clock-skew correction. */
  historical?: boolean;
  /** Batch-level `context`, `integrations` and `sentAt`, merged into each item (the item wins). */
  batch?: { context?: Record<string, unknown>; integrations?: Record<string, unknown>; sentAt?: string };
  /**
   * The workspace requires consent: an otherwise valid event whose `context.consent` does not
   * grant it is rejected (`consent_required`), so it is quarantined instead of stored.
   */
  consent?: ConsentRequirement | null;
}

const SPEC_FIELDS = new Set([
  'type', 'messageId', 'userId', 'anonymousId', 'previousId', 'groupId', 'event', 'name', 'category',
  'properties', 'traits', 'context', 'integrations', 'timestamp', 'originalTimestamp', 'sentAt', 'receivedAt', 'writeKey',
]);

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Dot path of the first number that is not finite, or null. */
function nonFinitePath(value: unknown, path: string): string | null {
  if (typeof value === 'number') return Number.isFinite(value) ? null : path;
  if (typeof value !== 'object' || value === null) return null;
  for (const [key, child] of Object.entries(value)) {
    const found = nonFinitePath(child, path ? `${path}.${key}` : key);
    if (found !== null) return found;
  }
  return null;
}

function isEventType(value: unknown): value is EventType {
  return typeof value === 'string' && (EVENT_TYPES as readonly string[]).includes(value);
}

/** Ids may arrive as numbers; blank strings mean "absent". */
function idString(value: unknown): string | null {
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  if (typeof value === 'string' && value.trim() !== '') return value;
  return null;
}

function instant(value: string | undefined): Date | null | 'invalid' {
  if (value === undefined) return null;
  const ms = parseInstant(value);
  if (ms === null || ms < MIN_TIME || ms >= MAX_TIME) return 'invalid';
  return new Date(ms);
}

/** The item with the batch's defaults under its own values; the item itself when none apply. */
function mergeDefaults(item: Record<string, unknown>, batch: NormalizeOptions['batch']): Record<string, unknown> {
  if (!batch) return item;
  // An item's own value that is not an object is left alone, so validation reports it rather
  // than the batch's object silently replacing it.
  const context = batch.context && (item.context === undefined || isObject(item.context)) ? { ...batch.context, ...item.context } : undefined;
  const integrations =
    batch.integrations && (item.integrations === undefined || isObject(item.integrations))
      ? { ...batch.integrations, ...item.integrations }
      : undefined;
  const sentAt = item.sentAt === undefined ? batch.sentAt : undefined;
  if (!context && !integrations && sentAt === undefined) return item;
  const merged = { ...item };
  if (context) merged.context = context;
  if (integrations) merged.integrations = integrations;
  if (sentAt !== undefined) merged.sentAt = sentAt;
  return merged;
}

/**
 * Validates one event against the Segment spec and computes its times:
 * `timestamp = receivedAt − (sentAt − originalTimestamp)` corrects the client's clock skew.
 */
export function normalizeEvent(raw: unknown, options: NormalizeOptions): NormalizeResult {
  const reject = (error: string, field: string | null, message: string, payload: unknown = raw): NormalizeResult => ({
    ok: false,
    rejection: {
      error,
      field,
      message,
      payload,
      messageId: isObject(raw) && typeof raw.messageId === 'string' ? raw.messageId.slice(0, 200) : null,
    },
  });
  if (!isObject(raw)) return reject('not_an_object', null, 'Each event must be a JSON object');

  const item = mergeDefaults(raw, options.batch);
  const rawJson = JSON.stringify(raw);
  const bytes = Buffer.byteLength(rawJson);
  if (bytes > LIMITS.eventBytes) {
    return reject('event_too_large', null, `Event is ${bytes} bytes; the limit is ${LIMITS.eventBytes} bytes (32 KB)`, item);
  }

  // Checked after merging: a NUL in the batch's context would otherwise reach PostgreSQL.
  // Most SDK batches carry no defaults, and then the item's text is the one just measured.
  const itemJson = item === raw ? rawJson : JSON.stringify(item);
  if (UNSTORABLE_ESCAPE.test(itemJson)) {
    return reject('invalid_character', null, 'Strings must not contain U+0000 or unpaired UTF-16 surrogates', item);
  }
  // JSON.parse turns a number too large for a double (1e400) into Infinity, which would be stored
  // as null; only then does the text hold a null, so the walk is skipped for most events.
  const overflow = itemJson.includes('null') ? nonFinitePath(item, '') : null;
  if (overflow !== null) {
    return reject('invalid_number', overflow, `${overflow} is a number too large to store`, item);
  }

  // The endpoint's type wins over a `type` the body may carry (as Segment does).
  const type = options.type ?? item.type;
  if (!isEventType(type)) {
    return reject('invalid_type', 'type', `type must be one of ${EVENT_TYPES.join(', ')}`, item);
  }

  // Most items carry their type already: then the item itself is what is checked (a copy with the
  // same keys in the same order would be), without a copy per event.
  const typed = item.type === type ? item : { ...item, type };
  if (!checkEvent.Check(typed)) {
    const first = checkEvent.Errors(typed).First();
    const field = first ? first.path.replace(/^\//, '').replaceAll('/', '.') || null : null;
    if (field === 'messageId' && typeof item.messageId === 'string' && item.messageId.length > LIMITS.messageIdLength) {
      return reject('message_id_too_long', 'messageId', `messageId must be at most ${LIMITS.messageIdLength} characters`, item);
    }
    if (field && ['timestamp', 'originalTimestamp', 'sentAt'].includes(field)) {
      return reject('invalid_timestamp', field, `${field} must be an ISO-8601 date-time`, item);
    }
    return reject('invalid_field', field, `${field ?? 'event'}: ${first?.message ?? 'invalid'}`, item);
  }
  const event: IncomingEvent & Record<string, unknown> = typed;

  const userId = idString(event.userId);
  const anonymousId = idString(event.anonymousId);
  const previousId = idString(event.previousId);
  const groupId = idString(event.groupId);
  if (type === 'alias') {
    if (!previousId) return reject('missing_previous_id', 'previousId', 'alias requires previousId', item);
    if (!userId) return reject('missing_identity', 'userId', 'alias requires userId', item);
  } else if (!userId && !anonymousId) {
    return reject('missing_identity', 'userId', 'userId or anonymousId is required', item);
  }
  if (type === 'track' && (typeof event.event !== 'string' || event.event.trim() === '')) {
    return reject('missing_event', 'event', 'track requires a non-empty event name', item);
  }
  if (type === 'group' && !groupId) return reject('missing_group_id', 'groupId', 'group requires groupId', item);

  const hasOriginal = event.originalTimestamp !== undefined;
  const original = instant(event.originalTimestamp ?? event.timestamp);
  const originalField = hasOriginal ? 'originalTimestamp' : 'timestamp';
  if (original === 'invalid') return reject('invalid_timestamp', originalField, `${originalField} is out of range (1970–2200)`, item);
  // RudderStack's SDKs send both when the caller sets `timestamp` (originalTimestamp is then when
  // the call was made); like RudderStack's server, that explicit time is kept as given.
  const explicit = hasOriginal ? instant(event.timestamp) : null;
  if (explicit === 'invalid') return reject('invalid_timestamp', 'timestamp', 'timestamp is out of range (1970–2200)', item);
  const sentAt = instant(event.sentAt);
  if (sentAt === 'invalid') return reject('invalid_timestamp', 'sentAt', 'sentAt is out of range (1970–2200)', item);

  const receivedAt = options.receivedAt;
  let timestamp: Date;
  if (explicit) timestamp = explicit;
  else if (!original) timestamp = receivedAt;
  else if (sentAt && !options.historical) timestamp = new Date(receivedAt.getTime() - (sentAt.getTime() - original.getTime()));
  else timestamp = original;
  if (timestamp.getTime() < MIN_TIME || timestamp.getTime() >= MAX_TIME) {
    return reject('invalid_timestamp', 'sentAt', 'the clock-skew corrected timestamp is out of range', item);
  }

  if (options.consent) {
    const failure = consentFailure(event.context, options.consent);
    if (failure) return reject('consent_required', failure.field, failure.message, item);
  }

  let extra: Record<string, unknown> | null = null;
  for (const key of Object.keys(event)) {
    // `event` only has a column for track; other types keep it as an extra field.
    if (SPEC_FIELDS.has(key) && !(key === 'event' && type !== 'track')) continue;
    extra ??= {};
    extra[key] = event[key];
  }

  return {
    ok: true,
    event: {
      messageId: event.messageId ?? crypto.randomUUID(),
      type,
      event: type === 'track' ? (event.event as string) : null,
      name: typeof event.name === 'string' ? event.name : null,
      category: typeof event.category === 'string' ? event.category : null,
      userId,
      anonymousId,
      previousId,
      groupId,
      properties: event.properties ?? null,
      traits: event.traits ?? null,
      context: event.context ?? null,
      integrations: event.integrations ?? null,
      extra,
      timestamp,
      originalTimestamp: original,
      sentAt,
      receivedAt,
    },
  };
}
