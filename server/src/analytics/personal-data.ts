import { maskValue } from '../privacy/masking.ts';
import { isPiiToken, openPiiStrings, piiCodec } from '../privacy/pii-codec.ts';
import { normalisePiiValue, sealedFieldOf, type SealedField } from '../privacy/pii-hashes.ts';
import type { Queryable } from '../storage/database.ts';

/*
 * Analyses group personal data by keyed-hash tokens (a breakdown by a sealed event field reads
 * `events.pii_hashes`; a PII trait is stored as a token): the groups are right without opening
 * any event, but a token means nothing to a person. Before an answer leaves, each token in it is
 * replaced by its value — opened from the vault, or from one sealed event of the group — shown
 * to callers holding 'pii.read' and masked for everyone else. No token and no ciphertext is left.
 */

/** What a group shows when its value can no longer be opened (its events erased meanwhile). */
export const UNOPENABLE_VALUE = '(personal data)';

type Json = Record<string, unknown>;
const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);

function collectTokens(value: unknown, tokens: Set<string>, depth = 0): void {
  if (depth > 32) return;
  if (isPiiToken(value)) tokens.add(value);
  else if (Array.isArray(value)) for (const item of value) collectTokens(item, tokens, depth + 1);
  else if (isObject(value)) for (const key in value) collectTokens(value[key], tokens, depth + 1);
}

/** The sealed event fields a query breaks down by: every `{kind: 'property', property}` in it that reads one. */
export function sealedBreakdownFields(query: unknown): SealedField[] {
  const fields = new Map<string, SealedField>();
  const walk = (value: unknown, depth: number): void => {
    if (depth > 8) return;
    if (Array.isArray(value)) value.forEach((item) => walk(item, depth + 1));
    if (!isObject(value)) return;
    if (value.kind === 'property' && typeof value.property === 'string') {
      const sealed = sealedFieldOf(value.property);
      if (sealed && !sealed.nested) fields.set(sealed.field, sealed);
    }
    for (const key in value) walk(value[key], depth + 1);
  };
  walk(query, 0);
  return [...fields.values()];
}

/** A copy of a JSON value with strings found in `shown` replaced. */
export function replaceStrings<T>(value: T, shown: ReadonlyMap<string, string>, depth = 0): T {
  if (depth > 32) return value;
  if (typeof value === 'string') return (shown.get(value) ?? value) as T;
  if (Array.isArray(value)) return value.map((item: unknown) => replaceStrings(item, shown, depth + 1)) as T;
  if (isObject(value)) {
    const out: Json = {};
    for (const key in value) out[key] = replaceStrings(value[key], shown, depth + 1);
    return out as T;
  }
  return value;
}

/** Where the answer's range starts (a saved report's run holds the analysis's answer under `result`). */
function rangeFromOf(answer: unknown): string | undefined {
  const of = isObject(answer) && isObject(answer.result) ? answer.result : answer;
  return isObject(of) && isObject(of.range) && typeof of.range.from === 'string' ? of.range.from : undefined;
}

/** How a group's value is shown: as it is to callers who may read PII, masked to the others. */
export function displayValue(value: unknown, reveal: boolean): string {
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return reveal ? text : maskValue(text);
}

/**
 * The values behind tokens that name groups of a sealed event field: one sealed value of an event
 * holding each token, opened and normalised as the hash was. One pass over the range's events
 * whatever the number of groups shown (a probe per group would scan again for each rare value).
 */
async function openFromEvents(db: Queryable, workspaceId: string, tokens: string[], fields: SealedField[], from: string | undefined): Promise<Map<string, unknown>> {
  const opened = new Map<string, unknown>();
  if (tokens.length === 0 || fields.length === 0) return opened;
  let codec = await piiCodec(db, workspaceId);
  for (const sealed of fields) {
    const wanted = tokens.filter((token) => !opened.has(token));
    if (wanted.length === 0) break;
    const { rows } = await db.query<{ token: string; sealed: string | null }>(
      `select distinct on (e.pii_hashes ->> $4::text) e.pii_hashes ->> $4::text as token, e.${sealed.column} #>> $3::text[] as sealed
         from events e
        where e.workspace_id = $1 and e.pii_hashes ->> $4::text = any($2::text[])
          and ($5::timestamptz is null or e.timestamp >= $5::timestamptz)
        order by e.pii_hashes ->> $4::text`,
      [workspaceId, wanted, sealed.path, sealed.field, from ?? null],
    );
    for (const row of rows) {
      if (row.sealed === null) continue;
      if (!codec.canOpen(row.sealed)) codec = await piiCodec(db, workspaceId, true);
      opened.set(row.token, normalisePiiValue(sealed.key, codec.open(row.sealed)));
    }
  }
  return opened;
}

/**
 * The answer of an analysis as a caller may see it: every PII token in it (a group of a PII
 * breakdown) replaced by its value, masked unless `reveal` (the caller holds 'pii.read').
 */
export async function presentPersonalData<T>(db: Queryable, workspaceId: string, query: unknown, answer: T, reveal: boolean): Promise<T> {
  const tokens = new Set<string>();
  collectTokens(answer, tokens);
  if (tokens.size === 0) return answer;
  const values = await openPiiStrings(db, workspaceId, tokens, new Set());
  const range = rangeFromOf(answer);
  const rest = [...tokens].filter((token) => !values.has(token));
  for (const [token, value] of await openFromEvents(db, workspaceId, rest, sealedBreakdownFields(query), range)) values.set(token, value);
  const shown = new Map<string, string>();
  for (const token of tokens) shown.set(token, values.has(token) ? displayValue(values.get(token), reveal) : UNOPENABLE_VALUE);
  return replaceStrings(answer, shown);
}
