import type { PersonRecord } from './person.ts';
import { soundex } from './similarity.ts';

/** A blocking rule: records with the same non-null key are compared. */
export interface BlockingKey {
  name: string;
  key(record: PersonRecord): string | null;
}

const join = (...parts: (string | null)[]) => (parts.every((part) => part !== null && part !== '') ? parts.join('|') : null);
const sx = (value: string | null) => (value === null ? null : soundex(value));
const prefix = (value: string | null, length: number) => (value === null ? null : value.slice(0, length));

/**
 * Several independent keys, so one typo, a missing field or a moved house loses a pair only if it
 * breaks every key. The names key sorts the two codes, which also catches given and family name swapped.
 */
export const DEFAULT_BLOCKING_KEYS: readonly BlockingKey[] = [
  { name: 'family_soundex+postcode', key: (r) => join(sx(r.familyName), r.postcode) },
  { name: 'date_of_birth', key: (r) => join(r.dateOfBirth) },
  { name: 'name_soundexes', key: (r) => { const a = sx(r.givenName); const b = sx(r.familyName); return a && b ? [a, b].sort().join('|') : null; } },
  { name: 'given_prefix+city', key: (r) => join(prefix(r.givenName, 3), r.city) },
  { name: 'postcode+street_number', key: (r) => join(r.postcode, r.streetNumber) },
  { name: 'address_soundex+street_number', key: (r) => join(sx(r.addressLine1), r.streetNumber) },
  { name: 'family_soundex+address_soundex', key: (r) => join(sx(r.familyName), sx(r.addressLine1)) },
  { name: 'phone', key: (r) => join(r.phone) },
];

export interface BlockingResult {
  /** Pairs of record indexes, `a < b`, each once however many keys share it. */
  pairs: Array<[number, number]>;
  /** Blocks larger than the cap are not expanded (a common postcode would mean millions of pairs); named so they can be reported. */
  skippedBlocks: Array<{ key: string; value: string; size: number }>;
}

export function candidatePairs(records: readonly PersonRecord[], keys: readonly BlockingKey[], maxBlockSize = 500): BlockingResult {
  const seen = new Set<number>();
  const pairs: Array<[number, number]> = [];
  const skippedBlocks: BlockingResult['skippedBlocks'] = [];
  const n = records.length;
  for (const blockingKey of keys) {
    const blocks = new Map<string, number[]>();
    records.forEach((record, index) => {
      const value = blockingKey.key(record);
      if (value === null) return;
      const block = blocks.get(value);
      if (block) block.push(index);
      else blocks.set(value, [index]);
    });
    for (const [value, members] of blocks) {
      if (members.length < 2) continue;
      if (members.length > maxBlockSize) {
        skippedBlocks.push({ key: blockingKey.name, value, size: members.length });
        continue;
      }
      for (let i = 0; i < members.length; i++) {
        for (let j = i + 1; j < members.length; j++) {
          const a = members[i]!;
          const b = members[j]!;
          const id = a * n + b;
          if (seen.has(id)) continue;
          seen.add(id);
          pairs.push([a, b]);
        }
      }
    }
  }
  return { pairs, skippedBlocks };
}
