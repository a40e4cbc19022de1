/**
 * Masking of personal data in API answers for callers without 'pii.read' (e.g. marketers and
 * viewers see `138****5678` and `l*****@example.com`). Pure functions; the hook applying them to
 * every personal-data route lives in access.ts.
 */

/** Identifier types and trait/property names that hold personal data by default. */
export const PII_IDENTIFIER_TYPES = new Set(['email', 'phone', 'id_number', 'name', 'address', 'wechat_openid', 'wechat_unionid']);
const PII_KEY = /^(e-?mail|phone|mobile|tel|telephone|phone_?number|name|first_?name|last_?name|full_?name|address|street|address_?line_?\d|id_?number|id_?card|national_?id|passport|birthday|date_?of_?birth)$/i;

export function isPiiKey(key: string): boolean {
  return PII_KEY.test(key);
}

export function maskValue(value: string): string {
  const at = value.indexOf('@');
  if (at > 0) return `${value[0]}${'*'.repeat(Math.max(3, at - 1))}${value.slice(at)}`;
  const digits = value.replace(/\D/g, '');
  if (digits.length >= 7 && digits.length >= value.replace(/[\s+\-().]/g, '').length) {
    // Phones and ID numbers: the head (country and carrier prefix) and last four digits stay: 138****5678.
    const tail = digits.length >= 11 ? 4 : 2;
    const head = digits.length >= 11 ? Math.min(6, Math.max(3, digits.length - 8)) : 2;
    return `${value.startsWith('+') ? '+' : ''}${digits.slice(0, head)}${'*'.repeat(digits.length - head - tail)}${digits.slice(-tail)}`;
  }
  if (value.length <= 1) return '*';
  return `${value[0]}${'*'.repeat(Math.min(8, value.length - 1))}`;
}

/** A copy of a JSON value with personal data masked wherever it is recognisable. */
export function maskPersonalData(value: unknown, parentKey?: string): unknown {
  if (Array.isArray(value)) return value.map((item) => maskPersonalData(item, parentKey));
  if (typeof value === 'string') return parentKey !== undefined && isPiiKey(parentKey) ? maskValue(value) : value;
  if (!value || typeof value !== 'object') return value;
  const object = value as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  // {type: 'email', value: '...'} identifiers (and {type: 'phone', id: '...'} context.externalIds) and {key: 'phone', value: ...} traits.
  // ...and {value, source...} records held under a personal key (traits.email = {value: ...}).
  const namedBy =
    typeof object.type === 'string' && PII_IDENTIFIER_TYPES.has(object.type)
      ? object.type
      : typeof object.key === 'string' && isPiiKey(object.key)
        ? object.key
        : parentKey !== undefined && isPiiKey(parentKey)
          ? parentKey
          : undefined;
  for (const [key, item] of Object.entries(object)) {
    if (namedBy && (key === 'value' || key === 'previousValue' || key === 'previous_value' || (key === 'id' && namedBy === object.type)) && item !== null) {
      out[key] = typeof item === 'string' ? maskValue(item) : maskPersonalData(item, namedBy);
    } else {
      out[key] = maskPersonalData(item, key);
    }
  }
  return out;
}

const EMAIL_IN_TEXT = /[^\s,;"'<>@]+@[^\s,;"'<>@]+\.[A-Za-z]{2,}/g;
const PHONE_IN_TEXT = /\+?\d[\d\s-]{6,}\d/g;

/** Routes whose answers are masked for callers without 'pii.read' (an access export is for its subject: never masked). */
export const MASKED_PERMISSIONS = new Set(['profiles.read', 'events.read', 'quarantine.read', 'segments.export']);

/** Free text (CSV exports): e-mail addresses and phone-like numbers are masked. */
export function maskText(text: string): string {
  return text.replace(EMAIL_IN_TEXT, (match) => maskValue(match)).replace(PHONE_IN_TEXT, (match) => maskValue(match));
}
