import { getCountryCallingCode } from 'libphonenumber-js/max';
import { ApiError } from '../api/errors.ts';
import { normalizeIdentifier, type IdentityConfig } from '../identity/identifier-types.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export type ProfileRef = { kind: 'id'; profileId: string } | { kind: 'identifier'; type: string; raw: string };

/**
 * Reads a profile id or `<type>:<value>`. Type names never contain a colon, so the first colon
 * separates them and a value may hold more. The value still needs the workspace's normaliser
 * (normalizeForLookup) before it can match a stored one.
 */
export function parseProfileRef(ref: string, field = 'profile'): ProfileRef {
  const colon = ref.indexOf(':');
  if (colon === -1) {
    if (UUID.test(ref)) return { kind: 'id', profileId: ref.toLowerCase() };
    throw new ApiError(400, 'invalid_request', `${field} must be a profile id or <type>:<value>, e.g. email:li.lei@example.com`, field);
  }
  const type = ref.slice(0, colon);
  if (!type) throw new ApiError(400, 'invalid_request', `${field}: the identifier type before ":" is missing`, field);
  return { kind: 'identifier', type, raw: ref.slice(colon + 1) };
}

/**
 * An identifier as stored (so `phone:+86 138 0013 8000` finds `+8613800138000`), or 400 saying
 * why the value can never identify anyone.
 */
export function normalizeForLookup(
  config: IdentityConfig,
  type: string,
  raw: string,
  fields: { type: string; value: string },
): { type: string; value: string } {
  const normalized = normalizeIdentifier(config, type, raw);
  if (normalized.ok) return { type, value: normalized.value };
  const field = normalized.reason === 'unknown_type' ? fields.type : fields.value;
  throw new ApiError(400, 'invalid_identifier', normalized.message, field);
}

/**
 * The stored-value prefixes an identifier search matches. With a type, its normaliser is applied
 * as far as a prefix allows (case, a local phone number's country code); without one the prefix
 * is matched as typed and lower-cased, since emails and lower-cased ids are stored that way.
 */
export function searchPrefixes(config: IdentityConfig, prefix: string, type: string | undefined): string[] {
  const trimmed = prefix.trim();
  if (!trimmed) throw new ApiError(400, 'invalid_request', 'identifier must not be blank', 'identifier');
  if (type === undefined) return [...new Set([trimmed, trimmed.toLowerCase()])];
  const typeConfig = config.types.get(type);
  if (!typeConfig) throw new ApiError(400, 'invalid_request', `${type} is not an identifier type of this workspace`, 'type');
  switch (typeConfig.normalizer) {
    case 'id':
      return [trimmed];
    case 'id_lowercase':
    case 'email':
      return [trimmed.toLowerCase()];
    case 'phone': {
      const digits = trimmed.replace(/[\s\-().]/g, '');
      if (digits.startsWith('+')) return [digits];
      return [`+${getCountryCallingCode(config.defaultPhoneRegion)}${digits.replace(/^0+/, '')}`];
    }
  }
}

/** A LIKE pattern matching values that start with `prefix` literally. */
export function likePrefix(prefix: string): string {
  return `${prefix.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

export interface TraitFilter {
  key: string;
  /** Any of these; numbers and booleans compare by their text. */
  values: string[];
}

const MAX_TRAIT_FILTERS = 20;

/**
 * The `trait.<key>=<value>` parameters of a search. Any other parameter the schema does not know
 * is refused by name rather than ignored, so a typo never widens a search silently.
 */
export function parseTraitFilters(query: Record<string, unknown>, known: ReadonlySet<string>): TraitFilter[] {
  const filters: TraitFilter[] = [];
  for (const [name, raw] of Object.entries(query)) {
    if (known.has(name)) continue;
    if (!name.startsWith('trait.')) {
      throw new ApiError(400, 'invalid_request', `Unknown query parameter ${name}; filter traits with trait.<key>=<value>`, name);
    }
    const key = name.slice('trait.'.length);
    if (!key) throw new ApiError(400, 'invalid_request', 'trait. needs a trait key, e.g. trait.city=Shanghai', name);
    const values = (Array.isArray(raw) ? raw : [raw]).map(String);
    filters.push({ key, values });
  }
  if (filters.length > MAX_TRAIT_FILTERS) {
    throw new ApiError(400, 'invalid_request', `At most ${MAX_TRAIT_FILTERS} trait filters`, 'trait');
  }
  return filters;
}
