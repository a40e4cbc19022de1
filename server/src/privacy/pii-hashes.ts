/**
 * Keyed hashes of sealed event fields, stored beside them at ingest (`events.pii_hashes`), so
 * analytics can group and compare personal data without opening it: a sealed field (`tpe1.`)
 * differs per event (random IV), its hash does not — equal values (after normalisation) give
 * equal tokens in one workspace. Pure: the hash function comes from the workspace's codec.
 *
 * `pii_hashes` maps the field's place in the stored record to its token:
 * `{"properties.email": "tph1.…", "context.traits.phone": "tph1.…"}`.
 */
import { isEncryptedKey, isEncryptedPropertyKey } from './pii-codec.ts';

type Json = Record<string, unknown>;
const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);

const EMAIL_KEY = /^(e-?mail|email_?address)$/i;
const PHONE_KEY = /^(phone|mobile|tel|telephone|phone_?number|mobile_?number)$/i;
const ID_KEY = /^(id_?number|id_?card|national_?id|passport)$/i;

/**
 * The value as it is compared: e-mails trimmed and lower-cased, phone and ID numbers without
 * spaces and separators, names and addresses with their whitespace collapsed. What the user typed
 * differently ("Alice@Example.com ", "alice@example.com") is one value.
 */
export function normalisePiiValue(key: string, value: unknown): unknown {
  if (typeof value !== 'string' && typeof value !== 'number') return value;
  const text = String(value).normalize('NFC').trim();
  if (EMAIL_KEY.test(key)) return text.toLowerCase();
  if (PHONE_KEY.test(key)) return text.replace(/[\s\-().]/g, '');
  if (ID_KEY.test(key)) return text.replace(/\s/g, '').toUpperCase();
  return text.replace(/\s+/g, ' ');
}

/** The field of a stored event an analytics path reads (`email` → properties, `context.traits.phone` → context). */
export interface SealedField {
  /** The key in `pii_hashes`: `properties.email`, `context.traits.phone`. */
  field: string;
  /** The PII key itself (`email`), which says how its values are normalised. */
  key: string;
  /** The stored column and the path inside it, to read the sealed value. */
  column: 'properties' | 'context';
  path: string[];
  /** Whether the analytics path goes inside the sealed value (`email.domain`): unreadable. */
  nested: boolean;
}

/**
 * The sealed field an analytics path reads (paths read `properties`, or `context` when they start
 * with `context.`), or null when it reads no sealed field. Mirrors `PiiCodec.sealEvent`: top-level
 * property keys of the PII list (except `name`) and `context.traits` keys of the PII list.
 */
export function sealedFieldOf(path: string): SealedField | null {
  const parts = path.split('.');
  if (parts[0] === 'context') {
    const key = parts[2];
    if (parts[1] !== 'traits' || key === undefined || !isEncryptedKey(key)) return null;
    return { field: `context.traits.${key}`, key, column: 'context', path: ['traits', key], nested: parts.length > 3 };
  }
  const key = parts[0]!;
  if (!isEncryptedPropertyKey(key)) return null;
  return { field: `properties.${key}`, key, column: 'properties', path: [key], nested: parts.length > 1 };
}

/**
 * The hashes of a (plain, not yet sealed) event record's sealed fields, or null when it has none:
 * what ingest stores in `pii_hashes` beside the sealed values.
 */
export function eventPiiHashes(record: { properties?: unknown; context?: unknown }, hash: (value: unknown) => string): Record<string, string> | null {
  let hashes: Record<string, string> | null = null;
  const add = (prefix: string, object: unknown, isPii: (key: string) => boolean) => {
    if (!isObject(object)) return;
    for (const key in object) {
      const value = object[key];
      if (value === null || value === undefined || !isPii(key)) continue;
      hashes ??= {};
      hashes[`${prefix}.${key}`] = hash(normalisePiiValue(key, value));
    }
  };
  add('properties', record.properties, isEncryptedPropertyKey);
  if (isObject(record.context)) add('context.traits', record.context.traits, isEncryptedKey);
  return hashes;
}
