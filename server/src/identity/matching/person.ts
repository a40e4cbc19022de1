import type { CountryCode } from 'libphonenumber-js/max';
import { normalizePhone } from '../normalizers.ts';

/** A person as a CRM export or a store sign-up describes them: every field optional, free text. */
export interface PersonInput {
  id: string;
  givenName?: string | null;
  familyName?: string | null;
  /** Used only when given and family name are both missing: the last word is taken as the family name. */
  fullName?: string | null;
  dateOfBirth?: string | null;
  streetNumber?: string | null;
  addressLine1?: string | null;
  addressLine2?: string | null;
  city?: string | null;
  postcode?: string | null;
  state?: string | null;
  phone?: string | null;
}

/** The normalised form compared by the matcher; null means missing, which counts neither for nor against a match. */
export interface PersonRecord {
  id: string;
  givenName: string | null;
  familyName: string | null;
  /** `YYYYMMDD`; kept even when not a calendar date, since a typo'd birth date still nearly agrees. */
  dateOfBirth: string | null;
  streetNumber: string | null;
  addressLine1: string | null;
  addressLine2: string | null;
  city: string | null;
  postcode: string | null;
  state: string | null;
  phone: string | null;
}

export interface PersonNormalizeOptions {
  /** How `01/02/1990` is read. Day first is the convention outside North America. */
  dateOrder?: 'DMY' | 'MDY';
  phoneRegion?: CountryCode;
}

function blankToNull(value: string): string | null {
  return value === '' ? null : value;
}

/** Lower case, accents removed, anything but letters and digits turned into single spaces. */
export function normalizeText(raw: string | null | undefined): string | null {
  if (raw === null || raw === undefined) return null;
  const folded = raw
    .normalize('NFKD')
    .replace(/\p{M}/gu, '')
    .toLowerCase()
    .replace(/[^\p{L}\p{N}]+/gu, ' ')
    .trim();
  return blankToNull(folded);
}

/** Names compare on letters only: `O'Brien`, `o brien` and `OBrien` are one name. */
export function normalizeName(raw: string | null | undefined): string | null {
  const text = normalizeText(raw);
  return text === null ? null : blankToNull(text.replace(/[^\p{L}]/gu, ''));
}

const ADDRESS_WORDS: Record<string, string> = {
  street: 'st', road: 'rd', avenue: 'ave', av: 'ave', crescent: 'cres', circuit: 'cct', place: 'pl', drive: 'dr',
  court: 'ct', parade: 'pde', close: 'cl', terrace: 'tce', highway: 'hwy', lane: 'ln', boulevard: 'blvd',
  square: 'sq', grove: 'gr', way: 'wy', north: 'n', south: 's', east: 'e', west: 'w', apartment: 'apt',
  unit: 'u', flat: 'u', building: 'bldg', floor: 'fl', mount: 'mt', saint: 'st',
};

/** Street-type words shortened to one spelling, so `Main Street` and `main st.` agree. */
export function normalizeAddress(raw: string | null | undefined): string | null {
  const text = normalizeText(raw);
  if (text === null) return null;
  return text
    .split(' ')
    .map((word) => ADDRESS_WORDS[word] ?? word)
    .join(' ');
}

/** Postcodes compare without spaces and case (`sw1a 1aa` = `SW1A1AA`). */
export function normalizePostcode(raw: string | null | undefined): string | null {
  const text = normalizeText(raw);
  return text === null ? null : blankToNull(text.replaceAll(' ', '').toUpperCase());
}

/**
 * `YYYYMMDD` from `YYYYMMDD`, `YYYY-MM-DD` (a time after it is ignored), `YYYY/MM/DD` or
 * `DD/MM/YYYY` (`MM/DD/YYYY` with dateOrder MDY). Anything else is missing rather than guessed.
 */
export function normalizeDateOfBirth(raw: string | null | undefined, dateOrder: 'DMY' | 'MDY' = 'DMY'): string | null {
  if (raw === null || raw === undefined) return null;
  const text = raw.trim();
  if (/^\d{8}$/.test(text)) return text;
  const isoLike = /^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:[T ].*)?$/.exec(text);
  if (isoLike) return `${isoLike[1]}${isoLike[2]!.padStart(2, '0')}${isoLike[3]!.padStart(2, '0')}`;
  const dayFirst = /^(\d{1,2})[-/.](\d{1,2})[-/.](\d{4})$/.exec(text);
  if (dayFirst) {
    const [first, second] = [dayFirst[1]!.padStart(2, '0'), dayFirst[2]!.padStart(2, '0')];
    return dateOrder === 'DMY' ? `${dayFirst[3]}${second}${first}` : `${dayFirst[3]}${first}${second}`;
  }
  return null;
}

/** E.164 when the number parses; otherwise its digits, which still compare. */
export function normalizePersonPhone(raw: string | null | undefined, region: CountryCode = 'CN'): string | null {
  if (raw === null || raw === undefined || raw.trim() === '') return null;
  const parsed = normalizePhone(raw, region);
  if (parsed.ok) return parsed.value;
  return blankToNull(raw.replace(/\D/g, ''));
}

export function normalizePerson(input: PersonInput, options: PersonNormalizeOptions = {}): PersonRecord {
  let givenName = normalizeName(input.givenName);
  let familyName = normalizeName(input.familyName);
  if (givenName === null && familyName === null && input.fullName) {
    const words = (normalizeText(input.fullName) ?? '').split(' ').filter(Boolean);
    familyName = normalizeName(words.pop());
    givenName = normalizeName(words.join(''));
  }
  return {
    id: input.id,
    givenName,
    familyName,
    dateOfBirth: normalizeDateOfBirth(input.dateOfBirth, options.dateOrder),
    streetNumber: normalizePostcode(input.streetNumber),
    addressLine1: normalizeAddress(input.addressLine1),
    addressLine2: normalizeAddress(input.addressLine2),
    city: normalizeText(input.city),
    postcode: normalizePostcode(input.postcode),
    state: normalizeText(input.state),
    phone: normalizePersonPhone(input.phone, options.phoneRegion),
  };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function pick(source: Record<string, unknown>, keys: readonly string[]): string | null {
  for (const key of keys) {
    const value = source[key];
    if (typeof value === 'string' && value.trim() !== '') return value;
    if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  }
  return null;
}

/**
 * A person from identify traits, reading Segment's reserved traits (`firstName`, `lastName`,
 * `name`, `birthday`, `address.{street,city,postalCode,state}`, `phone`) and common snake_case spellings.
 */
export function personFromTraits(id: string, traits: Record<string, unknown>): PersonInput {
  const address = isObject(traits.address) ? traits.address : {};
  return {
    id,
    givenName: pick(traits, ['firstName', 'first_name', 'given_name', 'givenName']),
    familyName: pick(traits, ['lastName', 'last_name', 'surname', 'family_name', 'familyName']),
    fullName: pick(traits, ['name', 'full_name', 'fullName']),
    dateOfBirth: pick(traits, ['birthday', 'date_of_birth', 'dateOfBirth', 'dob']),
    streetNumber: pick(address, ['street_number', 'streetNumber']) ?? pick(traits, ['street_number', 'streetNumber']),
    addressLine1: pick(address, ['street', 'line1', 'address_1']) ?? pick(traits, ['street', 'address_1', 'address1']),
    addressLine2: pick(address, ['line2', 'address_2']) ?? pick(traits, ['address_2', 'address2']),
    city: pick(address, ['city', 'suburb']) ?? pick(traits, ['city', 'suburb']),
    postcode: pick(address, ['postalCode', 'postal_code', 'postcode', 'zip']) ?? pick(traits, ['postalCode', 'postal_code', 'postcode', 'zip']),
    state: pick(address, ['state', 'region']) ?? pick(traits, ['state']),
    phone: pick(traits, ['phone', 'mobile']),
  };
}
