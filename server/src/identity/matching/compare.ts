import type { PersonRecord } from './person.ts';
import { jaroWinkler, levenshtein } from './similarity.ts';

/**
 * One field's comparison: an agreement level from 0 (disagree) to `levels − 1` (exact), or null
 * when either side is missing. Fellegi–Sunter learns how likely each level is for matches and non-matches.
 */
export interface FieldComparator {
  field: string;
  levels: number;
  compare(a: PersonRecord, b: PersonRecord): number | null;
}

type TextField = 'givenName' | 'familyName' | 'city';

/** exact / Jaro–Winkler ≥ 0.92 / ≥ 0.8 / disagree: the bands commonly used for names. */
function jaroWinklerLevel(x: string | null, y: string | null): number | null {
  if (x === null || y === null) return null;
  if (x === y) return 3;
  const similarity = jaroWinkler(x, y);
  return similarity >= 0.92 ? 2 : similarity >= 0.8 ? 1 : 0;
}

function jaroWinklerBands(field: TextField): FieldComparator {
  return { field, levels: 4, compare: (a, b) => jaroWinklerLevel(a[field], b[field]) };
}

/**
 * Which of b's address lines faces which of a's: forms differ on whether the street or the
 * building name goes first, so lines are paired the way that makes them most alike.
 */
function alignedAddressLines(a: PersonRecord, b: PersonRecord): [string | null, string | null] {
  const similarity = (x: string | null, y: string | null) => (x === null || y === null ? 0 : jaroWinkler(x, y));
  const straight = similarity(a.addressLine1, b.addressLine1) + similarity(a.addressLine2, b.addressLine2);
  const crossed = similarity(a.addressLine1, b.addressLine2) + similarity(a.addressLine2, b.addressLine1);
  return crossed > straight ? [b.addressLine2, b.addressLine1] : [b.addressLine1, b.addressLine2];
}

const addressLine1: FieldComparator = {
  field: 'addressLine1',
  levels: 4,
  compare: (a, b) => jaroWinklerLevel(a.addressLine1, alignedAddressLines(a, b)[0]),
};

const addressLine2: FieldComparator = {
  field: 'addressLine2',
  levels: 4,
  compare: (a, b) => jaroWinklerLevel(a.addressLine2, alignedAddressLines(a, b)[1]),
};

/** exact / one edit (a typo) / disagree: for codes and numbers, where "similar" means a typo, not a near value. */
function editBands(field: 'postcode' | 'streetNumber' | 'phone'): FieldComparator {
  return {
    field,
    levels: 3,
    compare(a, b) {
      const x = a[field];
      const y = b[field];
      if (x === null || y === null) return null;
      if (x === y) return 2;
      return levenshtein(x, y) <= 1 ? 1 : 0;
    },
  };
}

/** exact / one edit or day and month swapped / disagree. */
const dateOfBirth: FieldComparator = {
  field: 'dateOfBirth',
  levels: 3,
  compare(a, b) {
    const x = a.dateOfBirth;
    const y = b.dateOfBirth;
    if (x === null || y === null) return null;
    if (x === y) return 2;
    const swapped = x.length === 8 && `${x.slice(0, 4)}${x.slice(6, 8)}${x.slice(4, 6)}` === y;
    return swapped || levenshtein(x, y) <= 1 ? 1 : 0;
  },
};

const state: FieldComparator = {
  field: 'state',
  levels: 2,
  compare: (a, b) => (a.state === null || b.state === null ? null : a.state === b.state ? 1 : 0),
};

export const DEFAULT_COMPARATORS: readonly FieldComparator[] = [
  jaroWinklerBands('givenName'),
  jaroWinklerBands('familyName'),
  dateOfBirth,
  editBands('streetNumber'),
  addressLine1,
  addressLine2,
  jaroWinklerBands('city'),
  editBands('postcode'),
  state,
  editBands('phone'),
];

/** The comparison vector of a pair, one entry per comparator (-1 for missing, so vectors can be keyed). */
export function comparisonVector(a: PersonRecord, b: PersonRecord, comparators: readonly FieldComparator[]): number[] {
  return comparators.map((comparator) => comparator.compare(a, b) ?? -1);
}
