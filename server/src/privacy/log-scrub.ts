/**
 * Keeps personal data out of the server's and the worker's logs. Two layers:
 * - structural: requests are logged by their route pattern (`/v1/profiles/:id`), never the
 *   concrete URL or its query, which may name a person (`/v1/profiles/email:ana@…`); bodies are
 *   never logged; PostgreSQL's `detail`/`where` (which quote the failing row) are dropped;
 * - a safety net on every log line: e-mail addresses, phone and ID numbers inside string values
 *   are masked (`a*****@example.com`, `138****5678`), whatever logged them.
 * Names and postal addresses have no recognisable shape: they stay out by the structural layer
 * (nothing logs bodies, trait values or pg row details), which `privacy-logs.test.ts` checks.
 */
import { Writable } from 'node:stream';
import { maskValue } from './masking.ts';

const EMAIL = /[^\s,;"'<>@()[\]{}/:]+@[^\s,;"'<>@()[\]{}/]+\.[A-Za-z]{2,}/g;
// Seven or more digits (spaces, dashes allowed inside; an ID number may end in X), not part of a
// longer word, a hex id or a UUID.
const NUMBER = /(?<![0-9A-Za-z_.-])\+?\d(?:[\d -]{5,})\d[Xx]?(?![0-9A-Za-z_-])/g;
/** PostgreSQL error fields that quote the rows involved. */
const ROW_FIELDS = new Set(['detail', 'where', 'internalQuery', 'parameters', 'body', 'payload']);

/** Free text with e-mail addresses and long numbers masked. */
export function scrubText(text: string): string {
  return text.replace(EMAIL, (match) => maskValue(match)).replace(NUMBER, (match) => (match.replace(/\D/g, '').length >= 7 ? maskValue(match) : match));
}

/** A copy of a log record with personal data masked in every string and row-quoting fields dropped. */
export function scrubLogRecord(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return scrubText(value);
  if (Array.isArray(value)) return value.map((item) => scrubLogRecord(item, depth + 1));
  if (!value || typeof value !== 'object' || depth > 12) return value;
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    if (ROW_FIELDS.has(key)) continue;
    out[key] = scrubLogRecord(item, depth + 1);
  }
  return out;
}

/** One log line (JSON or plain text) scrubbed. */
export function scrubLogLine(line: string): string {
  const trimmed = line.trimEnd();
  const newline = line.slice(trimmed.length);
  if (trimmed.startsWith('{')) {
    try {
      return JSON.stringify(scrubLogRecord(JSON.parse(trimmed))) + newline;
    } catch {
      // not JSON after all: scrub as text
    }
  }
  return scrubText(line);
}

/** Where log lines go: anything with a write(string) method (process.stdout, a test's capture). */
export interface LogDestination {
  write(line: string): unknown;
}

/** A pino destination that scrubs every line before passing it on. */
export function scrubbingDestination(target: LogDestination): Writable {
  return new Writable({
    decodeStrings: false,
    write(chunk: Buffer | string, _encoding, done) {
      const text = chunk.toString();
      target.write(text.split(/(?<=\n)/).map(scrubLogLine).join(''));
      done();
    },
  });
}

/**
 * What a request log line says about the request: method and route pattern (or, without a
 * route, the path with anything that may name a person masked); no query, host or headers.
 */
export function requestForLog(request: { method: string; url: string; routeOptions?: { url?: string }; id?: string }): Record<string, unknown> {
  const pattern = request.routeOptions?.url;
  const path = pattern ?? scrubText(decodeURIComponentSafe(request.url.split('?')[0] ?? '')).replace(/[^/]*:[^/]*/g, ':…');
  return { method: request.method, url: path };
}

function decodeURIComponentSafe(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
