import { parsePhoneNumberFromString, type CountryCode } from 'libphonenumber-js/max';

export type Normalized = { ok: true; value: string } | { ok: false; message: string };

// Deliberately loose: one @, something on each side, a dot in the domain, no spaces. Stricter
// checks reject real addresses; this only keeps out "n/a", "test" and phone numbers in the email field.
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

export function normalizeEmail(raw: string): Normalized {
  const value = raw.trim().toLowerCase();
  if (!EMAIL.test(value)) return { ok: false, message: `"${raw.trim()}" is not an email address` };
  return { ok: true, value };
}

// Separators people type between digit groups; anything else (letters) makes the number invalid.
const PHONE_SEPARATORS = /[\s\-().\u00a0/]/g;

/**
 * E.164 (`+8613800138000`). A number without a country code is read in `region`. `00` is the
 * international prefix nearly everywhere (and the one Chinese users type: `0086…`), so it is
 * taken as `+` whatever the region; `86…` without a plus is a national number libphonenumber
 * recognises by length for CN.
 */
export function normalizePhone(raw: string, region: CountryCode): Normalized {
  // libphonenumber is most of identity resolution's extraction time (~7 µs a number), and a
  // batch sees the same person's number on several events: answers are kept per region and text.
  const key = `${region}\u0000${raw}`;
  const known = recentPhones.get(key);
  if (known) return known;
  const result = parsePhone(raw, region);
  if (recentPhones.size >= RECENT_PHONES) recentPhones.clear();
  recentPhones.set(key, result);
  return result;
}

const RECENT_PHONES = 10_000;
const recentPhones = new Map<string, Normalized>();

function parsePhone(raw: string, region: CountryCode): Normalized {
  let compact = raw.trim().replace(PHONE_SEPARATORS, '');
  if (compact.startsWith('00')) compact = `+${compact.slice(2)}`;
  if (!/^\+?\d+$/.test(compact)) return { ok: false, message: `"${raw.trim()}" is not a phone number` };
  const parsed = parsePhoneNumberFromString(compact, region);
  if (!parsed || !parsed.isValid()) {
    return { ok: false, message: `"${raw.trim()}" is not a valid phone number${compact.startsWith('+') ? '' : ` in region ${region}`}` };
  }
  return { ok: true, value: parsed.number };
}
