import type { NormalizedEvent } from '../ingest/normalize.ts';
import { normalizeIdentifier, type IdentityConfig, type IgnoreReason } from './identifier-types.ts';

/** The parts of a stored event that carry identifiers. */
export type IdentifiedEvent = Pick<NormalizedEvent, 'type' | 'userId' | 'anonymousId' | 'previousId' | 'traits' | 'context'>;

export interface EventIdentifier {
  type: string;
  value: string;
  /** Where in the event it was found, e.g. `userId`, `context.traits.email`, `context.externalIds[1]`. */
  field: string;
  /**
   * False for an alias's `previousId` read as a `user_id`: it is looked up so an existing profile
   * with that user id is merged, but it is never linked as a new user id (an alias's previousId is
   * usually an anonymous id, and a wrong user_id would block the person's real one by the limit of 1).
   */
  linkIfNew: boolean;
}

export interface IgnoredIdentifier {
  type: string;
  field: string;
  /** The value as received, shortened; for counting and for the explanation of a profile. */
  value: string;
  reason: IgnoreReason | 'unsupported_encoding' | 'malformed';
  message: string;
}

export interface AliasLink {
  previousId: string;
  userId: string;
}

export interface Extraction {
  /** Distinct identifiers in the order found; the first field wins when a value appears twice. */
  identifiers: EventIdentifier[];
  ignored: IgnoredIdentifier[];
  alias: AliasLink | null;
}

/**
 * Spellings Segment sources and SDKs use in `context.externalIds[].type`, compared without
 * underscores (`userId`, `user_id` and `USERID` are one name), mapped to our type names.
 */
const EXTERNAL_TYPE_ALIASES: Record<string, string> = {
  userid: 'user_id',
  user: 'user_id',
  anonymousid: 'anonymous_id',
  anonymous: 'anonymous_id',
  email: 'email',
  emailaddress: 'email',
  phone: 'phone',
  phonenumber: 'phone',
  mobile: 'phone',
  memberid: 'member_id',
  member: 'member_id',
  deviceid: 'device_id',
  device: 'device_id',
  cookieid: 'cookie_id',
  cookie: 'cookie_id',
  openid: 'wechat_openid',
  wechatopenid: 'wechat_openid',
  unionid: 'wechat_unionid',
  wechatunionid: 'wechat_unionid',
};

/** `Phone Number`, `ios.idfa`, `memberId` → `phone`, `ios_idfa`, `member_id`. */
export function externalIdTypeName(raw: string): string {
  const snake = raw
    .trim()
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '_')
    .replace(/^_+|_+$/g, '');
  return EXTERNAL_TYPE_ALIASES[snake.replaceAll('_', '')] ?? snake;
}

const PLAIN_ENCODINGS = new Set(['none', 'plain', 'raw', '']);

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function shorten(value: unknown): string {
  const text = typeof value === 'string' ? value : JSON.stringify(value) ?? String(value);
  return text.length > 100 ? `${text.slice(0, 100)}…` : text;
}

/**
 * Every identifier of one event, normalised. Values that cannot identify anyone (blocked
 * placeholders, malformed emails and phones, unknown types) are returned in `ignored` with the
 * reason, so they are counted rather than silently dropped.
 */
export function extractIdentifiers(event: IdentifiedEvent, config: IdentityConfig): Extraction {
  const identifiers: EventIdentifier[] = [];
  const ignored: IgnoredIdentifier[] = [];
  const seen = new Set<string>();

  const add = (type: string, raw: unknown, field: string, linkIfNew = true) => {
    const result = normalizeIdentifier(config, type, raw);
    if (!result.ok) {
      ignored.push({ type, field, value: shorten(raw), reason: result.reason, message: result.message });
      return;
    }
    const key = identifierKey(result);
    if (seen.has(key)) return;
    seen.add(key);
    identifiers.push({ type, value: result.value, field, linkIfNew });
  };

  if (event.userId !== null) add('user_id', event.userId, 'userId');

  const context = event.context ?? {};
  const externalIds = context.externalIds;
  if (externalIds !== undefined && !Array.isArray(externalIds)) {
    ignored.push({ type: 'external_id', field: 'context.externalIds', value: shorten(externalIds), reason: 'malformed', message: 'context.externalIds must be an array' });
  } else if (externalIds) {
    externalIds.forEach((entry: unknown, index: number) => {
      const field = `context.externalIds[${index}]`;
      if (!isObject(entry) || typeof entry.type !== 'string' || entry.id === undefined) {
        ignored.push({ type: 'external_id', field, value: shorten(entry), reason: 'malformed', message: `${field} must be {id, type}` });
        return;
      }
      const type = externalIdTypeName(entry.type);
      const encoding = typeof entry.encoding === 'string' ? entry.encoding.trim().toLowerCase() : '';
      if (!PLAIN_ENCODINGS.has(encoding)) {
        // A hashed email never equals the plain one; linking on it would split people, not join them.
        ignored.push({ type, field, value: shorten(entry.id), reason: 'unsupported_encoding', message: `${field}: encoding ${encoding} is not supported` });
        return;
      }
      add(type, entry.id, field);
    });
  }

  const traitSources: [string, unknown][] = [
    ['traits', event.traits],
    ['context.traits', context.traits],
  ];
  const traitTypes = [...config.types.values()].filter((type) => type.traitKeys.length > 0);
  for (const [prefix, traits] of traitSources) {
    if (!isObject(traits)) continue;
    for (const type of traitTypes) {
      for (const key of type.traitKeys) {
        if (traits[key] !== undefined) add(type.name, traits[key], `${prefix}.${key}`);
      }
    }
  }

  const device = context.device;
  if (isObject(device) && device.id !== undefined) add('device_id', device.id, 'context.device.id');

  if (event.anonymousId !== null) add('anonymous_id', event.anonymousId, 'anonymousId');

  let alias: AliasLink | null = null;
  if (event.type === 'alias' && event.previousId !== null) {
    // The previousId's type is not said: an existing user_id or anonymous_id with that value is
    // joined; an unknown one is kept as an anonymous id (the common case: the pre-login id).
    const asUser = normalizeIdentifier(config, 'user_id', event.previousId);
    const asAnonymous = normalizeIdentifier(config, 'anonymous_id', event.previousId);
    if (!asUser.ok && !asAnonymous.ok) {
      ignored.push({ type: 'anonymous_id', field: 'previousId', value: shorten(event.previousId), reason: asAnonymous.reason, message: asAnonymous.message });
    } else {
      if (asUser.ok) add('user_id', asUser.value, 'previousId', false);
      if (asAnonymous.ok) add('anonymous_id', asAnonymous.value, 'previousId');
      const userId = identifiers.find((identifier) => identifier.field === 'userId');
      const previous = asAnonymous.ok ? asAnonymous.value : asUser.ok ? asUser.value : null;
      if (userId && previous !== null) alias = { previousId: previous, userId: userId.value };
    }
  }

  return { identifiers, ignored, alias };
}

export function identifierKey(identifier: { type: string; value: string }): string {
  return `${identifier.type}:${identifier.value}`;
}
