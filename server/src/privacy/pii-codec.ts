/**
 * Field-level encryption of personal data at rest: the narrow codec every writer and reader of
 * identifiers, traits and events calls.
 *
 * - Identifier values of PII types (email, phone, id_number, name, address) and values of PII
 *   trait keys are stored as keyed-hash tokens `tph1.<HMAC-SHA-256>`, keyed per workspace (its
 *   hash key, stored sealed by the master key: privacy/data-keys.ts). Equal values give equal
 *   tokens, so the live unique index, the resolver's owner lookups, lookups by phone/e-mail and
 *   segment equality keep working without any plaintext in the table.
 * - The one sealed copy of each distinct value lives in `pii_vault` (AES-256-GCM by the
 *   workspace data key, privacy/data-keys.ts), written once per value, opened only where a value
 *   is shown (API answers, exports) or sent (channels, destinations).
 * - PII fields inside stored events (`traits.email`, `properties.phone`, `context.traits.name`,
 *   `context.externalIds[].id` of PII types…) are sealed in place as `tpe1.` tokens at ingest and
 *   opened by identity resolution and by readers.
 *
 * Pure where it can be: a codec is made once per batch (`piiCodec`, async: keys) and then seals,
 * opens and hashes synchronously (a few µs per value).
 */
import type { Queryable } from '../storage/database.ts';
import { decryptText, encryptText, PII_TOKEN_PREFIX, piiTokenOf, tokenKeyNumber, vaultPurpose } from './encryption.ts';
import { workspaceKeys } from './data-keys.ts';

const SEALED_PREFIX = 'tpe1.';
const EVENT_PURPOSE = 'event.pii';
export { PII_TOKEN_PREFIX, piiTokenOf };

/** Identifier types whose values are stored as keyed-hash tokens (issue 8's default PII list). */
export const ENCRYPTED_IDENTIFIER_TYPES: ReadonlySet<string> = new Set(['email', 'phone', 'id_number', 'name', 'address']);

/**
 * Trait / property names whose values are encrypted: e-mail, phone, name, address and ID numbers.
 * (Birthdays are masked in answers but stay in clear: date-trait journeys and segment date
 * conditions compute on them in SQL.)
 */
const ENCRYPTED_KEY =
  /^(e-?mail|email_?address|phone|mobile|tel|telephone|phone_?number|mobile_?number|name|first_?name|last_?name|full_?name|address|street|address_?line_?\d|id_?number|id_?card|national_?id|passport)$/i;

export function isEncryptedKey(key: string): boolean {
  return ENCRYPTED_KEY.test(key);
}

/**
 * Event property names whose values are sealed: the PII list except `name`, which in properties
 * names a product, page or screen (Segment's e-commerce and page specs); a person's name comes in
 * traits. Product names stay readable for segments and analytics breakdowns.
 */
export function isEncryptedPropertyKey(key: string): boolean {
  return key.toLowerCase() !== 'name' && isEncryptedKey(key);
}

/** Whether an event field path (`traits.email`, `context.traits.name`, `properties.phone`, `phone`) holds a sealed value. */
export function isEncryptedEventPath(path: string): boolean {
  const parts = path.split('.');
  if (parts[0] === 'traits') return parts.length > 1 && isEncryptedKey(parts[1]!);
  if (parts[0] === 'context') return parts[1] === 'traits' && parts.length > 2 && isEncryptedKey(parts[2]!);
  const key = parts[0] === 'properties' ? parts[1] : parts[0];
  return key !== undefined && isEncryptedPropertyKey(key);
}

export function isPiiToken(value: unknown): value is string {
  return typeof value === 'string' && value.startsWith(PII_TOKEN_PREFIX);
}

export function isSealedValue(value: unknown): value is string {
  return typeof value === 'string' && value.startsWith(SEALED_PREFIX);
}

type Json = Record<string, unknown>;
const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);

/** Spellings of `context.externalIds[].type` that name an encrypted identifier type. */
const EXTERNAL_PII_TYPE = /^(e-?mail|email_?address|phone|phone_?number|mobile|id_?number|name|address)$/i;

export interface VaultEntry {
  token: string;
  sealed: string;
  keyNumber: number;
}

export class PiiCodec {
  readonly workspaceId: string;
  private readonly hashKey: Buffer;
  private readonly current: { number: number; key: Buffer };
  private readonly keys: ReadonlyMap<number, Buffer>;
  /** JSON text → token, token → value: tokens made (or opened) by this codec. */
  private readonly tokens = new Map<string, string>();
  private readonly plain = new Map<string, unknown>();
  /** Tokens made since the last `takeVaultEntries`, to be stored sealed once. */
  private pending = new Set<string>();

  constructor(workspaceId: string, hashKey: Buffer, current: { number: number; key: Buffer }, keys: ReadonlyMap<number, Buffer>) {
    this.workspaceId = workspaceId;
    this.hashKey = hashKey;
    this.current = current;
    this.keys = keys;
  }

  get currentKeyNumber(): number {
    return this.current.number;
  }

  /** The keyed-hash token of a value (remembering the value, for the vault and for `plainOf`). */
  token(value: unknown): string {
    if (isPiiToken(value)) return value;
    const json = JSON.stringify(value);
    let token = this.tokens.get(json);
    if (token === undefined) {
      token = piiTokenOf(this.hashKey, value);
      this.tokens.set(json, token);
      this.plain.set(token, value);
      this.pending.add(token);
    }
    return token;
  }

  /**
   * The keyed-hash token of a value without keeping the value (event field hashes, literals compared
   * with them): nothing goes to the vault.
   */
  hash(value: unknown): string {
    return isPiiToken(value) ? value : piiTokenOf(this.hashKey, value);
  }

  /** The value behind a token this codec made or was given (`remember`); undefined otherwise. */
  plainOf(token: string): unknown {
    return this.plain.get(token);
  }

  remember(token: string, value: unknown): void {
    this.plain.set(token, value);
  }

  /** Seals a JSON value into a self-describing `tpe1.` token. */
  seal(value: unknown, purpose = EVENT_PURPOSE): string {
    return encryptText(this.current, this.workspaceId, purpose, JSON.stringify(value));
  }

  /** Whether a sealed token can be opened with the keys this codec holds. */
  canOpen(sealed: string): boolean {
    return this.keys.has(tokenKeyNumber(sealed));
  }

  /** Opens a `tpe1.` token back into its JSON value. */
  open(sealed: string, purpose = EVENT_PURPOSE): unknown {
    const number = tokenKeyNumber(sealed);
    const key = this.keys.get(number);
    if (!key) throw new Error(`Data key ${number} of workspace ${this.workspaceId} is missing`);
    return JSON.parse(decryptText(key, this.workspaceId, purpose, sealed));
  }

  /** The vault rows for the tokens made since the last call: one sealed copy per distinct value. */
  takeVaultEntries(): VaultEntry[] {
    const entries = [...this.pending].map((token) => ({
      token,
      sealed: this.seal(this.plain.get(token), vaultPurpose(token)),
      keyNumber: this.current.number,
    }));
    this.pending = new Set();
    return entries;
  }

  openVault(token: string, sealed: string): unknown {
    const value = this.open(sealed, vaultPurpose(token));
    this.plain.set(token, value);
    return value;
  }

  sealVault(token: string, value: unknown): VaultEntry {
    return { token, sealed: this.seal(value, vaultPurpose(token)), keyNumber: this.current.number };
  }

  /** Hooks for identifier normalisation (identity/identifier-types.ts normalizeIdentifier). */
  readonly identifiers = {
    /** A token or sealed value found where an identifier is read → the value behind it. */
    open: (raw: string): unknown => {
      if (isPiiToken(raw)) return this.plainOf(raw) ?? raw;
      if (isSealedValue(raw)) return this.open(raw);
      return raw;
    },
    /** A normalised identifier value → what is stored: a token for PII types. */
    encode: (type: string, value: string): string => (ENCRYPTED_IDENTIFIER_TYPES.has(type) ? this.token(value) : value),
  };

  /** A copy of a traits object with values of PII keys replaced by tokens (null stays null). */
  tokenizeTraits<T extends Json | null>(traits: T): T {
    if (!traits) return traits;
    let out: Json | null = null;
    for (const key in traits) {
      const value = traits[key];
      if (value === null || value === undefined || !isEncryptedKey(key) || isPiiToken(value)) continue;
      out ??= { ...traits };
      out[key] = this.token(value);
    }
    return (out ?? traits) as T;
  }

  /** Replaces PII values of one object's PII keys by `transform` (copy on first change). */
  private mapPiiKeys(object: unknown, transform: (value: unknown) => unknown, isPiiKey: (key: string) => boolean = isEncryptedKey): unknown {
    if (!isObject(object)) return object;
    let out: Json | null = null;
    for (const key in object) {
      const value = object[key];
      if (value === null || value === undefined || !isPiiKey(key)) continue;
      const next = transform(value);
      if (next === value) continue;
      out ??= { ...object };
      out[key] = next;
    }
    return out ?? object;
  }

  private mapContext(context: unknown, transform: (value: unknown) => unknown): unknown {
    if (!isObject(context)) return context;
    const traits = this.mapPiiKeys(context.traits, transform);
    const externalIds = Array.isArray(context.externalIds)
      ? mapArray(context.externalIds, (entry) => {
          if (!isObject(entry) || typeof entry.type !== 'string' || !EXTERNAL_PII_TYPE.test(entry.type.trim()) || entry.id == null) return entry;
          const id = transform(entry.id);
          return id === entry.id ? entry : { ...entry, id };
        })
      : context.externalIds;
    if (traits === context.traits && externalIds === context.externalIds) return context;
    return { ...context, traits, externalIds };
  }

  private sealOne = (value: unknown): unknown => (isSealedValue(value) ? value : this.seal(value));
  private openOne = (value: unknown): unknown => (isSealedValue(value) ? this.open(value) : value);

  /** An event record with PII fields of traits, properties and context sealed (ingest). */
  sealEvent<R extends { properties?: unknown; traits?: unknown; context?: unknown }>(record: R): R {
    const properties = this.mapPiiKeys(record.properties, this.sealOne, isEncryptedPropertyKey);
    const traits = this.mapPiiKeys(record.traits, this.sealOne);
    const context = this.mapContext(record.context, this.sealOne);
    if (properties === record.properties && traits === record.traits && context === record.context) return record;
    return { ...record, properties, traits, context };
  }

  /** The reverse of `sealEvent` (identity resolution, readers). */
  openEvent<R extends { properties?: unknown; traits?: unknown; context?: unknown }>(record: R): R {
    const properties = this.mapPiiKeys(record.properties, this.openOne);
    const traits = this.mapPiiKeys(record.traits, this.openOne);
    const context = this.mapContext(record.context, this.openOne);
    if (properties === record.properties && traits === record.traits && context === record.context) return record;
    return { ...record, properties, traits, context } as R;
  }
}

function mapArray(items: unknown[], transform: (item: unknown) => unknown): unknown[] {
  let out: unknown[] | null = null;
  items.forEach((item, index) => {
    const next = transform(item);
    if (next !== item) {
      out ??= [...items];
      out[index] = next;
    }
  });
  return out ?? items;
}

/** A codec for one workspace (keys cached per database handle; `reload` after a rotation elsewhere). */
export async function piiCodec(db: Queryable, workspaceId: string, reload = false): Promise<PiiCodec> {
  const keys = await workspaceKeys(db, workspaceId, reload);
  return new PiiCodec(workspaceId, keys.hashKey, keys.current, keys.byNumber);
}

/** Stores the sealed copies of the tokens a codec made (once per value: existing rows are kept). */
export async function writeVault(db: Queryable, codec: PiiCodec): Promise<void> {
  const entries = codec.takeVaultEntries();
  if (entries.length === 0) return;
  await db.query(
    `insert into pii_vault (workspace_id, token, sealed, key_number)
     select $1::uuid, * from unnest($2::text[], $3::text[], $4::int[]) order by 2
     on conflict (workspace_id, token) do nothing`,
    [codec.workspaceId, entries.map((e) => e.token), entries.map((e) => e.sealed), entries.map((e) => e.keyNumber)],
  );
}

function collectTokens(value: unknown, tokens: Set<string>, sealed: Set<string>, depth = 0): void {
  if (depth > 64) return;
  if (typeof value === 'string') {
    if (isPiiToken(value)) tokens.add(value);
    else if (isSealedValue(value)) sealed.add(value);
  } else if (Array.isArray(value)) {
    for (const item of value) collectTokens(item, tokens, sealed, depth + 1);
  } else if (isObject(value)) {
    for (const key in value) collectTokens(value[key], tokens, sealed, depth + 1);
  }
}

function isPlainObject(value: object): boolean {
  const prototype: unknown = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

function replaceTokens(value: unknown, opened: ReadonlyMap<string, unknown>, depth = 0): unknown {
  if (depth > 64) return value;
  if (typeof value === 'string') return opened.has(value) ? opened.get(value) : value;
  if (Array.isArray(value)) return value.map((item) => replaceTokens(item, opened, depth + 1));
  // Only plain objects are copied: a Date (a row's timestamp) or Buffer copied key by key became {}.
  if (isObject(value) && isPlainObject(value)) {
    const out: Json = {};
    for (const key in value) out[key] = replaceTokens(value[key], opened, depth + 1);
    return out;
  }
  return value;
}

/** The values behind tokens and sealed strings, from the vault (a token without a vault row stays as it is). */
export async function openPiiStrings(db: Queryable, workspaceId: string, tokens: Set<string>, sealed: Set<string>): Promise<Map<string, unknown>> {
  const opened = new Map<string, unknown>();
  if (tokens.size === 0 && sealed.size === 0) return opened;
  let codec = await piiCodec(db, workspaceId);
  const rows =
    tokens.size === 0
      ? []
      : (
          await db.query<{ token: string; sealed: string }>('select token, sealed from pii_vault where workspace_id = $1 and token = any($2::text[])', [
            workspaceId,
            [...tokens],
          ])
        ).rows;
  if ([...rows.map((r) => r.sealed), ...sealed].some((s) => !codec.canOpen(s))) codec = await piiCodec(db, workspaceId, true);
  for (const row of rows) opened.set(row.token, codec.openVault(row.token, row.sealed));
  for (const value of sealed) {
    try {
      opened.set(value, codec.open(value));
    } catch {
      // Not one of ours (a client sent a string that merely looks like a token, or another purpose): shown as is.
    }
  }
  return opened;
}

/**
 * A copy of any JSON value (an API answer, a row set for an export, recipients' facts) with every
 * PII token and sealed event field replaced by its value. One vault query however many tokens.
 */
export async function openPii<T>(db: Queryable, workspaceId: string, value: T): Promise<T> {
  const tokens = new Set<string>();
  const sealed = new Set<string>();
  collectTokens(value, tokens, sealed);
  if (tokens.size === 0 && sealed.size === 0) return value;
  return replaceTokens(value, await openPiiStrings(db, workspaceId, tokens, sealed)) as T;
}

/** Whether a text (an answer about to be sent) may hold tokens: a cheap test before parsing. */
export function mayHoldPii(text: string): boolean {
  return text.includes(PII_TOKEN_PREFIX) || text.includes(SEALED_PREFIX);
}


/** An identity config whose identifier values of PII types normalise to their stored tokens (lookups, resolution). */
export function withPiiCodec<C extends { pii?: unknown }>(config: C, codec: PiiCodec): C & { pii: PiiCodec['identifiers'] } {
  return { ...config, pii: codec.identifiers };
}

/**
 * Identity resolution's view of stored events: sealed fields opened, then values of PII trait keys
 * (`traits`, `context.traits`) replaced by their tokens, so traits are compared, merged and stored
 * as tokens; identifiers read from them are opened and re-encoded by the config's hooks.
 */
export function tokenizeForResolution<E extends { traits: Json | null; context: Json | null }>(codec: PiiCodec, event: E): E {
  const traits = codec.tokenizeTraits(event.traits);
  const contextTraits = event.context && isObject(event.context.traits) ? codec.tokenizeTraits(event.context.traits) : undefined;
  if (traits === event.traits && (contextTraits === undefined || contextTraits === event.context?.traits)) return event;
  return { ...event, traits, context: contextTraits === undefined ? event.context : { ...event.context, traits: contextTraits } };
}
