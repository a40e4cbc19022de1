import { Type, type Static } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { isSupportedCountry, type CountryCode } from 'libphonenumber-js/max';
import { normalizeEmail, normalizePhone } from './normalizers.ts';

export const BUILT_IN_IDENTIFIER_TYPES = [
  'user_id',
  'anonymous_id',
  'email',
  'phone',
  'member_id',
  'device_id',
  'cookie_id',
  'wechat_openid',
  'wechat_unionid',
] as const;
export type BuiltInIdentifierType = (typeof BUILT_IN_IDENTIFIER_TYPES)[number];

export const NORMALIZERS = ['id', 'id_lowercase', 'email', 'phone'] as const;
export type NormalizerName = (typeof NORMALIZERS)[number];

/** Longer values are almost always a payload mistake (a whole object serialised into an id). */
export const MAX_IDENTIFIER_LENGTH = 256;

/** Priority 1 is the strongest identifier. Types without a listed priority come after all of these. */
const DEFAULT_PRIORITY: Record<BuiltInIdentifierType, number> = {
  user_id: 1,
  member_id: 2,
  email: 3,
  phone: 4,
  wechat_unionid: 5,
  wechat_openid: 6,
  device_id: 7,
  cookie_id: 8,
  anonymous_id: 9,
};
export const CUSTOM_TYPE_DEFAULT_PRIORITY = 10;

const DEFAULT_LIMIT: Record<BuiltInIdentifierType, number> = {
  user_id: 1,
  member_id: 1,
  email: 5,
  phone: 5,
  wechat_unionid: 5,
  wechat_openid: 5,
  device_id: 5,
  cookie_id: 100,
  anonymous_id: 100,
};
export const CUSTOM_TYPE_DEFAULT_LIMIT = 5;

const DEFAULT_NORMALIZER: Record<BuiltInIdentifierType, NormalizerName> = {
  user_id: 'id',
  member_id: 'id',
  email: 'email',
  phone: 'phone',
  wechat_unionid: 'id',
  wechat_openid: 'id',
  device_id: 'id',
  cookie_id: 'id',
  anonymous_id: 'id',
};

/** Trait keys (of `traits` and `context.traits`) an identifier is read from. */
const DEFAULT_TRAIT_KEYS: Partial<Record<BuiltInIdentifierType, string[]>> = {
  email: ['email'],
  phone: ['phone'],
};

/** Placeholders that SDKs and forms send when they have no real value; they must never link people. */
export const DEFAULT_BLOCKED_VALUES = ['', 'null', 'undefined', 'anonymous', '0', '-1'] as const;
/** All-zero ids: the nil UUID, a zeroed IDFA/GAID, `00:00:00:00:00:00`, `000000`. */
const ALL_ZEROS = /^[0\-:. ]+$/;

export const DEFAULT_PHONE_REGION = 'CN';

const TypeName = Type.String({
  pattern: '^[a-z][a-z0-9_]{0,62}$',
  description: 'Lower-case letters, digits and underscores, starting with a letter',
});

export const IdentifierTypeSettingsSchema = Type.Object(
  {
    priority: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, description: '1 is the strongest' })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000, description: 'Most values of this type one profile may hold' })),
    blockedValues: Type.Optional(
      Type.Array(Type.String({ maxLength: MAX_IDENTIFIER_LENGTH }), {
        maxItems: 1000,
        description: 'Added to the defaults; compared case-insensitively after normalisation',
      }),
    ),
    normalizer: Type.Optional(Type.Union(NORMALIZERS.map((name) => Type.Literal(name)))),
    traitKeys: Type.Optional(
      Type.Array(Type.String({ minLength: 1, maxLength: 100 }), {
        maxItems: 20,
        description: 'Trait keys of identify calls this identifier is read from',
      }),
    ),
  },
  { additionalProperties: false },
);
export type IdentifierTypeSettings = Static<typeof IdentifierTypeSettingsSchema>;

/** A workspace's identity settings as stored and as sent to the API: overrides of the defaults only. */
export const IdentitySettingsSchema = Type.Object(
  {
    defaultPhoneRegion: Type.Optional(
      Type.String({ pattern: '^[A-Z]{2}$', description: 'ISO 3166-1 alpha-2 region for phone numbers without +country code' }),
    ),
    blockedValues: Type.Optional(
      Type.Array(Type.String({ maxLength: MAX_IDENTIFIER_LENGTH }), { maxItems: 1000, description: 'Blocked for every type' }),
    ),
    types: Type.Optional(
      Type.Record(TypeName, IdentifierTypeSettingsSchema, {
        additionalProperties: false,
        description: 'Overrides for built-in types; any other name declares a custom type',
      }),
    ),
  },
  { additionalProperties: false },
);
export type IdentitySettings = Static<typeof IdentitySettingsSchema>;

export interface IdentifierTypeConfig {
  name: string;
  builtIn: boolean;
  priority: number;
  limit: number;
  normalizer: NormalizerName;
  /** Lower-cased, normalised blocked values (type's own, the workspace's and the defaults). */
  blocked: ReadonlySet<string>;
  traitKeys: readonly string[];
}

export interface IdentityConfig {
  defaultPhoneRegion: CountryCode;
  types: ReadonlyMap<string, IdentifierTypeConfig>;
  /**
   * Field-level encryption (privacy/pii-codec.ts, set with `withPiiCodec`): raw values that are
   * tokens are opened before normalising, and normalised values of PII types become the keyed-hash
   * tokens they are stored as. Absent: values as they are (suppression hashes plaintext).
   */
  pii?: { open(raw: string): unknown; encode(type: string, value: string): string };
}

export interface SettingsError {
  error: 'invalid_identity_settings';
  field: string | null;
  message: string;
}

const checkSettings = TypeCompiler.Compile(IdentitySettingsSchema);

/** Validates untrusted settings (API body, stored JSON) and merges them with the defaults. */
export function parseIdentitySettings(value: unknown): { ok: true; config: IdentityConfig } | { ok: false; error: SettingsError } {
  if (!checkSettings.Check(value)) {
    const first = checkSettings.Errors(value).First();
    const field = first ? first.path.replace(/^\//, '').replaceAll('/', '.') || null : null;
    return {
      ok: false,
      error: { error: 'invalid_identity_settings', field, message: `${field ?? 'settings'}: ${first?.message ?? 'invalid'}` },
    };
  }
  const region = value.defaultPhoneRegion ?? DEFAULT_PHONE_REGION;
  if (!isSupportedCountry(region)) {
    return {
      ok: false,
      error: { error: 'invalid_identity_settings', field: 'defaultPhoneRegion', message: `defaultPhoneRegion: unknown region ${region}` },
    };
  }
  return { ok: true, config: buildConfig(value, region) };
}

/** The configuration of a workspace with no overrides. */
export function defaultIdentityConfig(): IdentityConfig {
  return buildConfig({}, DEFAULT_PHONE_REGION);
}

function isBuiltIn(name: string): name is BuiltInIdentifierType {
  return (BUILT_IN_IDENTIFIER_TYPES as readonly string[]).includes(name);
}

function buildConfig(settings: IdentitySettings, region: CountryCode): IdentityConfig {
  const overrides = settings.types ?? {};
  const names = new Set<string>([...BUILT_IN_IDENTIFIER_TYPES, ...Object.keys(overrides)]);
  const types = new Map<string, IdentifierTypeConfig>();
  for (const name of names) {
    const override = overrides[name] ?? {};
    const builtIn = isBuiltIn(name);
    const normalizer = override.normalizer ?? (builtIn ? DEFAULT_NORMALIZER[name] : 'id');
    const blocked = new Set<string>();
    for (const raw of [...DEFAULT_BLOCKED_VALUES, ...(settings.blockedValues ?? []), ...(override.blockedValues ?? [])]) {
      blocked.add(raw.trim().toLowerCase());
      // A user's blocked "+86 138 0013 8000" must also match the normalised "+8613800138000".
      const normalized = applyNormalizer(normalizer, raw, region);
      if (normalized.ok) blocked.add(normalized.value.toLowerCase());
    }
    types.set(name, {
      name,
      builtIn,
      priority: override.priority ?? (builtIn ? DEFAULT_PRIORITY[name] : CUSTOM_TYPE_DEFAULT_PRIORITY),
      limit: override.limit ?? (builtIn ? DEFAULT_LIMIT[name] : CUSTOM_TYPE_DEFAULT_LIMIT),
      normalizer,
      blocked,
      traitKeys: override.traitKeys ?? (builtIn ? (DEFAULT_TRAIT_KEYS[name] ?? []) : []),
    });
  }
  return { defaultPhoneRegion: region, types };
}

export type IgnoreReason = 'unknown_type' | 'not_a_string' | 'too_long' | 'blocked' | 'invalid';

export type NormalizeIdentifierResult =
  | { ok: true; type: string; value: string }
  | { ok: false; type: string; reason: IgnoreReason; message: string };

function applyNormalizer(
  normalizer: NormalizerName,
  value: string,
  region: CountryCode,
): { ok: true; value: string } | { ok: false; message: string } {
  switch (normalizer) {
    case 'id':
      return { ok: true, value: value.trim() };
    case 'id_lowercase':
      return { ok: true, value: value.trim().toLowerCase() };
    case 'email':
      return normalizeEmail(value);
    case 'phone':
      return normalizePhone(value, region);
  }
}

/** Orders identifier types strongest first; equal priorities fall back to the name so the order never depends on input order. */
export function compareTypes(a: IdentifierTypeConfig, b: IdentifierTypeConfig): number {
  return a.priority - b.priority || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
}

/** Turns a raw value into the canonical form stored and matched, or says why it cannot identify anyone. */
export function normalizeIdentifier(config: IdentityConfig, type: string, raw: unknown): NormalizeIdentifierResult {
  if (!config.pii) return normalizePlain(config, type, raw);
  const result = normalizePlain(config, type, typeof raw === 'string' ? config.pii.open(raw) : raw);
  return result.ok ? { ok: true, type, value: config.pii.encode(type, result.value) } : result;
}

function normalizePlain(config: IdentityConfig, type: string, raw: unknown): NormalizeIdentifierResult {
  const typeConfig = config.types.get(type);
  if (!typeConfig) return { ok: false, type, reason: 'unknown_type', message: `${type} is not an identifier type of this workspace` };
  let text: string;
  if (typeof raw === 'string') text = raw;
  else if (typeof raw === 'number' && Number.isFinite(raw)) text = String(raw);
  else if (raw === null || raw === undefined) return { ok: false, type, reason: 'blocked', message: `${type} is empty` };
  else return { ok: false, type, reason: 'not_a_string', message: `${type} must be a string or a number` };

  const trimmed = text.trim();
  if (trimmed.length > MAX_IDENTIFIER_LENGTH) {
    return { ok: false, type, reason: 'too_long', message: `${type} is longer than ${MAX_IDENTIFIER_LENGTH} characters` };
  }
  // Checked before normalising too: "0" or "null" is not worth reporting as an invalid phone number.
  if (isBlocked(typeConfig, trimmed)) return { ok: false, type, reason: 'blocked', message: `${type} "${trimmed}" is a blocked value` };
  const normalized = applyNormalizer(typeConfig.normalizer, trimmed, config.defaultPhoneRegion);
  if (!normalized.ok) return { ok: false, type, reason: 'invalid', message: `${type}: ${normalized.message}` };
  if (isBlocked(typeConfig, normalized.value)) {
    return { ok: false, type, reason: 'blocked', message: `${type} "${normalized.value}" is a blocked value` };
  }
  return { ok: true, type, value: normalized.value };
}

function isBlocked(typeConfig: IdentifierTypeConfig, value: string): boolean {
  return typeConfig.blocked.has(value.toLowerCase()) || ALL_ZEROS.test(value);
}
