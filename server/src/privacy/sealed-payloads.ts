/**
 * Quarantined payloads (raw events refused at collection: full of personal data, kept for
 * review and replay) are stored sealed by the workspace data key (privacy/data-keys.ts). Erasure
 * and access export find a person's items without opening them, by keyed hashes of every string
 * value in the payload (as written, lower-cased, and digits only for phone-like values).
 */
import type { Queryable } from '../storage/database.ts';
import { openText, sealText } from './data-keys.ts';
import { lookupHashKey } from './data-keys.ts';
import { keyedHash } from './secret.ts';

const PURPOSE = 'quarantine.payload';

/** The forms a value is indexed and looked up under. */
export function lookupForms(value: string): string[] {
  const trimmed = value.trim();
  const forms = new Set([trimmed, trimmed.toLowerCase()]);
  const digits = trimmed.replace(/\D/g, '');
  if (digits.length >= 7 && digits.length >= trimmed.replace(/[\s+\-().]/g, '').length) forms.add(digits);
  forms.delete('');
  return [...forms];
}

function stringLeaves(value: unknown, out: Set<string>, depth = 0): void {
  if (depth > 20 || out.size > 500) return;
  if (typeof value === 'string') {
    if (value.length <= 512) for (const form of lookupForms(value)) out.add(form);
  } else if (Array.isArray(value)) {
    for (const item of value) stringLeaves(item, out, depth + 1);
  } else if (value && typeof value === 'object') {
    for (const item of Object.values(value)) stringLeaves(item, out, depth + 1);
  }
}

/** Keyed hashes of values, as erasure looks them up. */
export async function subjectHashes(db: Queryable, workspaceId: string, values: readonly string[]): Promise<Buffer[]> {
  const key = await lookupHashKey(db);
  const forms = new Set(values.flatMap(lookupForms));
  return [...forms].map((form) => keyedHash(key, workspaceId, 'sealed-subject', form));
}

/** The payload sealed, and the hashes of its string values. */
export async function sealQuarantinePayload(db: Queryable, workspaceId: string, payload: unknown): Promise<{ sealed: string; hashes: Buffer[] }> {
  const leaves = new Set<string>();
  stringLeaves(payload, leaves);
  const key = await lookupHashKey(db);
  return {
    sealed: await sealText(db, workspaceId, PURPOSE, JSON.stringify(payload) ?? 'null'),
    hashes: [...leaves].map((form) => keyedHash(key, workspaceId, 'sealed-subject', form)),
  };
}

/** The payload's JSON text (rows from before encryption are plain already). */
export function openQuarantinePayload(db: Queryable, workspaceId: string, stored: string): Promise<string> {
  return openText(db, workspaceId, PURPOSE, stored);
}

/** Rows with their payload opened, for readers of the quarantine table. */
export async function openQuarantineRows<R extends { payload: string }>(db: Queryable, workspaceId: string, rows: R[]): Promise<R[]> {
  return Promise.all(rows.map(async (row) => ({ ...row, payload: await openQuarantinePayload(db, workspaceId, row.payload) })));
}
