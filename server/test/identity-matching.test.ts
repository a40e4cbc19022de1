import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { candidatePairs, DEFAULT_BLOCKING_KEYS } from '../src/identity/matching/blocking.ts';
import { comparisonVector, DEFAULT_COMPARATORS } from '../src/identity/matching/compare.ts';
import { connectedComponents, pairsWithinClusters, pairwiseQuality } from '../src/identity/matching/evaluate.ts';
import { countPatterns, matchProbability, randomPairs, trainFellegiSunter } from '../src/identity/matching/fellegi-sunter.ts';
import { DEFAULT_THRESHOLDS, findMatches } from '../src/identity/matching/matcher.ts';
import {
  normalizeAddress,
  normalizeDateOfBirth,
  normalizeName,
  normalizePerson,
  normalizePostcode,
  personFromTraits,
  type PersonInput,
} from '../src/identity/matching/person.ts';
import { jaro, jaroWinkler, levenshtein, soundex } from '../src/identity/matching/similarity.ts';

describe('string comparators', () => {
  it('Jaro and Jaro–Winkler give the published values', () => {
    expect(jaro('martha', 'marhta')).toBeCloseTo(0.9444, 4);
    expect(jaroWinkler('martha', 'marhta')).toBeCloseTo(0.9611, 4);
    expect(jaroWinkler('dwayne', 'duane')).toBeCloseTo(0.84, 4);
    expect(jaroWinkler('dixon', 'dicksonx')).toBeCloseTo(0.8133, 4);
    expect(jaroWinkler('same', 'same')).toBe(1);
    expect(jaroWinkler('abc', 'xyz')).toBe(0);
    expect(jaroWinkler('', '')).toBe(0);
    expect(jaroWinkler('a', '')).toBe(0);
  });

  it('Levenshtein counts edits', () => {
    expect(levenshtein('kitten', 'sitting')).toBe(3);
    expect(levenshtein('3139', '3193')).toBe(2);
    expect(levenshtein('', 'abc')).toBe(3);
    expect(levenshtein('flaw', 'lawn')).toBe(2);
  });

  it('Soundex codes names by sound', () => {
    expect(soundex('Robert')).toBe('r163');
    expect(soundex('Rupert')).toBe('r163');
    expect(soundex('Ashcraft')).toBe('a261');
    expect(soundex('Tymczak')).toBe('t522');
    expect(soundex('Pfister')).toBe('p236');
    expect(soundex('Honeyman')).toBe('h555');
    expect(soundex('Lee')).toBe('l000');
    expect(soundex('')).toBe('');
  });
});

describe('normalising person records', () => {
  it('names: case, accents, punctuation and spaces', () => {
    expect(normalizeName("  O'Brien ")).toBe('obrien');
    expect(normalizeName('José-María')).toBe('josemaria');
    expect(normalizeName('  ')).toBeNull();
    expect(normalizeName(undefined)).toBeNull();
  });

  it('addresses: one spelling per street-type word', () => {
    expect(normalizeAddress('12 Main Street')).toBe('12 main st');
    expect(normalizeAddress('Kambalda Crescent,')).toBe('kambalda cres');
    expect(normalizeAddress('Flat 3, Paul Coe Circuit')).toBe('u 3 paul coe cct');
  });

  it('postcodes compare without spaces and case', () => {
    expect(normalizePostcode(' sw1a 1aa ')).toBe('SW1A1AA');
    expect(normalizePostcode('02000')).toBe('02000');
  });

  it.each([
    ['19510826', '19510826'],
    ['1951-08-26', '19510826'],
    ['1951-8-6', '19510806'],
    ['1951/08/26', '19510826'],
    ['1951-08-26T00:00:00Z', '19510826'],
    ['26/08/1951', '19510826'],
    ['26.8.1951', '19510826'],
    ['next tuesday', null],
    ['', null],
  ])('date of birth %j → %j', (raw, expected) => {
    expect(normalizeDateOfBirth(raw)).toBe(expected);
  });

  it('reads month-first dates when told to', () => {
    expect(normalizeDateOfBirth('08/26/1951', 'MDY')).toBe('19510826');
  });

  it('splits a full name when there is no given or family name', () => {
    expect(normalizePerson({ id: '1', fullName: 'Mary Anne Smith' })).toMatchObject({ givenName: 'maryanne', familyName: 'smith' });
    expect(normalizePerson({ id: '1', fullName: 'Mary Smith', familyName: 'Jones' })).toMatchObject({ givenName: null, familyName: 'jones' });
  });

  it('phones to E.164 where possible, digits otherwise', () => {
    expect(normalizePerson({ id: '1', phone: '138 0013 8000' }).phone).toBe('+8613800138000');
    expect(normalizePerson({ id: '1', phone: '555-01' }).phone).toBe('55501');
  });

  it("reads identify traits (Segment's reserved names and common snake_case)", () => {
    const input = personFromTraits('row-1', {
      firstName: 'Li',
      lastName: 'Wei',
      birthday: '1990-04-01',
      phone: '13800138000',
      address: { street: '1 Nanjing Road', city: 'Shanghai', postalCode: '200001', state: 'SH' },
    });
    expect(normalizePerson(input)).toEqual({
      id: 'row-1',
      givenName: 'li',
      familyName: 'wei',
      dateOfBirth: '19900401',
      streetNumber: null,
      addressLine1: '1 nanjing rd',
      addressLine2: null,
      city: 'shanghai',
      postcode: '200001',
      state: 'sh',
      phone: '+8613800138000',
    });
    expect(personFromTraits('row-2', { first_name: 'A', surname: 'B', postcode: 2000, name: 'ignored' })).toMatchObject({
      givenName: 'A',
      familyName: 'B',
      postcode: '2000',
    });
  });
});

describe('blocking', () => {
  const records = [
    { id: 'a', givenName: 'karli', familyName: 'alderson', postcode: '3139', dateOfBirth: '19510826', city: 'tingalpa' },
    // Same person, surname typo (breaks the surname keys) but same birth date.
    { id: 'b', givenName: 'karli', familyName: 'aldersno', postcode: '3193', dateOfBirth: '19510826', city: 'tings lpa' },
    // Someone else entirely.
    { id: 'c', givenName: 'hugo', familyName: 'morrison', postcode: '4670', dateOfBirth: '19561224', city: 'cranbourne' },
    // Given and family name swapped: the sorted soundex key still pairs them.
    { id: 'd', givenName: 'alderson', familyName: 'karli', postcode: '9999', city: 'elsewhere' },
  ].map((input) => normalizePerson(input));

  it('several keys: a pair broken on one key is found by another, each pair once', () => {
    const { pairs, skippedBlocks } = candidatePairs(records, DEFAULT_BLOCKING_KEYS);
    const named = pairs.map(([x, y]) => `${records[x]!.id}${records[y]!.id}`).sort();
    expect(named).toContain('ab');
    expect(named).toContain('ad');
    expect(named).not.toContain('ac');
    expect(new Set(named).size).toBe(named.length);
    expect(skippedBlocks).toEqual([]);
  });

  it('names blocks too large to expand instead of silently comparing nothing', () => {
    const crowd = Array.from({ length: 6 }, (_, i) => normalizePerson({ id: `p${i}`, dateOfBirth: '20000101' }));
    const result = candidatePairs(crowd, [DEFAULT_BLOCKING_KEYS.find((key) => key.name === 'date_of_birth')!], 5);
    expect(result.pairs).toEqual([]);
    expect(result.skippedBlocks).toEqual([{ key: 'date_of_birth', value: '20000101', size: 6 }]);
    expect(candidatePairs(crowd, DEFAULT_BLOCKING_KEYS, 6).pairs).toHaveLength(15);
  });
});

describe('field comparisons', () => {
  const levels = (a: PersonInput, b: PersonInput) => {
    const vector = comparisonVector(normalizePerson(a), normalizePerson(b), DEFAULT_COMPARATORS);
    return Object.fromEntries(DEFAULT_COMPARATORS.map((comparator, i) => [comparator.field, vector[i]]));
  };

  it('grades names by Jaro–Winkler and marks missing fields', () => {
    expect(levels({ id: '1', givenName: 'martha' }, { id: '2', givenName: 'marhta' })).toMatchObject({ givenName: 2, familyName: -1 });
    expect(levels({ id: '1', givenName: 'dwayne' }, { id: '2', givenName: 'duane' })).toMatchObject({ givenName: 1 });
    expect(levels({ id: '1', givenName: 'anna' }, { id: '2', givenName: 'zoe' })).toMatchObject({ givenName: 0 });
  });

  it('address lines entered in the other order still agree', () => {
    expect(
      levels(
        { id: '1', addressLine1: 'kambalda crescent', addressLine2: 'lorne park' },
        { id: '2', addressLine1: 'lorne park', addressLine2: 'kambalda crescent' },
      ),
    ).toMatchObject({ addressLine1: 3, addressLine2: 3 });
    expect(
      levels(
        { id: '1', addressLine1: 'lambell close', addressLine2: 'glenmore' },
        { id: '2', addressLine1: 'glenmore', addressLine2: 'lambel lvose' },
      ),
    ).toMatchObject({ addressLine1: 1, addressLine2: 3 });
  });

  it('a birth date with a typo or day and month swapped nearly agrees', () => {
    expect(levels({ id: '1', dateOfBirth: '19371223' }, { id: '2', dateOfBirth: '19371233' })).toMatchObject({ dateOfBirth: 1 });
    expect(levels({ id: '1', dateOfBirth: '19800512' }, { id: '2', dateOfBirth: '19801205' })).toMatchObject({ dateOfBirth: 1 });
    expect(levels({ id: '1', dateOfBirth: '19800512' }, { id: '2', dateOfBirth: '19650101' })).toMatchObject({ dateOfBirth: 0 });
  });
});

describe('Fellegi–Sunter EM', () => {
  it('recovers m, u and the match share from unlabelled pairs', () => {
    // Pairs drawn from a known model: 3 binary fields, 30% matches.
    const truth = { lambda: 0.3, m: [0.9, 0.85, 0.95], u: [0.1, 0.2, 0.05] };
    const random = (() => {
      let state = 42;
      return () => ((state = (state * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    })();
    const vectors: number[][] = [];
    for (let i = 0; i < 20_000; i++) {
      const match = random() < truth.lambda;
      vectors.push([0, 1, 2].map((field) => (random() < (match ? truth.m[field]! : truth.u[field]!) ? 1 : 0)));
    }
    const model = trainFellegiSunter([2, 2, 2], countPatterns(vectors));
    expect(model.converged).toBe(true);
    expect(model.lambda).toBeCloseTo(truth.lambda, 1);
    model.m.forEach((row, field) => expect(Math.abs(row[1]! - truth.m[field]!)).toBeLessThan(0.03));
    model.u.forEach((row, field) => expect(Math.abs(row[1]! - truth.u[field]!)).toBeLessThan(0.03));
    expect(matchProbability(model, [1, 1, 1])).toBeGreaterThan(0.99);
    expect(matchProbability(model, [0, 0, 0])).toBeLessThan(0.01);
    // A missing field counts for neither side.
    expect(matchProbability(model, [1, -1, 1])).toBeLessThan(matchProbability(model, [1, 1, 1]));
    expect(matchProbability(model, [1, -1, 1])).toBeGreaterThan(matchProbability(model, [1, 0, 1]));
  });

  it('draws random pairs deterministically and never pairs a record with itself', () => {
    const pairs = randomPairs(10, 500, 7);
    expect(pairs).toEqual(randomPairs(10, 500, 7));
    for (const [a, b] of pairs) expect(a).toBeLessThan(b);
    expect(randomPairs(1, 10)).toEqual([]);
  });
});

describe('findMatches', () => {
  it('refuses thresholds out of order or outside [0, 1], and duplicate record ids', () => {
    expect(() => findMatches([], { thresholds: { autoMerge: 0.5, review: 0.9 } })).toThrow(RangeError);
    expect(() => findMatches([], { thresholds: { autoMerge: 1.5, review: 0.9 } })).toThrow(RangeError);
    expect(() => findMatches([], { thresholds: { autoMerge: 0.9, review: Number.NaN } })).toThrow(RangeError);
    expect(() => findMatches([{ id: 'x' }, { id: 'x' }])).toThrow(/unique/);
  });

  it('sorts pairs into auto-merge and review by the thresholds, with the evidence per field', () => {
    const people: PersonInput[] = [];
    const given = ['anna', 'ben', 'chloe', 'dan', 'eve', 'finn', 'gina', 'hugo', 'iris', 'jack', 'kate', 'liam'];
    const family = ['smith', 'jones', 'brown', 'wilson', 'taylor', 'nguyen', 'li', 'wang', 'martin', 'kelly', 'ryan', 'walsh'];
    given.forEach((name, i) => {
      const person = { givenName: name, familyName: family[i], dateOfBirth: `19${70 + i}0${(i % 9) + 1}1${i % 10}`, postcode: `${2000 + i * 37}`, city: `town${i}`, addressLine1: `${i + 1} ${family[(i + 3) % 12]} street` };
      people.push({ id: `${name}-crm`, ...person });
      people.push({ id: `${name}-store`, ...person, addressLine1: i % 2 ? person.addressLine1 : 'unknown' });
    });
    // Same name and birth date but everything else different: less evidence than the true pair.
    people.push({ id: 'anna-2', givenName: 'anna', familyName: 'smith', dateOfBirth: '19700110', postcode: '7000', city: 'far away', addressLine1: '9 other road' });
    const result = findMatches(people, { thresholds: { autoMerge: 0.99, review: 0.001 } });
    const decision = (a: string, b: string) =>
      result.candidates.find((c) => (c.a === a && c.b === b) || (c.a === b && c.b === a))?.decision ?? 'no match';
    for (const name of given) expect(decision(`${name}-crm`, `${name}-store`)).toBe('auto_merge');
    const weight = (a: string, b: string) => result.candidates.find((c) => (c.a === a && c.b === b) || (c.a === b && c.b === a))!.weight;
    expect(weight('anna-crm', 'anna-2')).toBeLessThan(weight('anna-crm', 'anna-store'));
    expect(decision('anna-crm', 'ben-crm')).toBe('no match');
    const pair = result.candidates.find((c) => [c.a, c.b].sort().join() === 'anna-crm,anna-store')!;
    expect(pair.levels).toMatchObject({ givenName: 3, familyName: 3, dateOfBirth: 2, phone: null });
    expect(pair.weight).toBeGreaterThan(0);
  });

  it('handles no records and one record', () => {
    expect(findMatches([]).candidates).toEqual([]);
    expect(findMatches([{ id: 'only', givenName: 'a' }]).candidates).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------
// Quality on FEBRL (synthetic Australian person records with typos, missing values and swaps).
// The `rec_id` column is the answer key: it names the entity (`rec-N-…`) and is read here only to
// score the matcher. Records are given row numbers as ids and no other field of the answer key.
// `soc_sec_id` is left out too, to show the matcher needs no identifier-like field.
// ---------------------------------------------------------------------------------------------

const FEBRL_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../shared/data/febrl');

function readFebrl(file: string): { inputs: PersonInput[]; entities: Map<string, string[]> } {
  const [, ...lines] = fs.readFileSync(path.join(FEBRL_DIR, file), 'utf8').trimEnd().split('\n');
  const inputs: PersonInput[] = [];
  const entities = new Map<string, string[]>();
  lines.forEach((line, row) => {
    const [recId, givenName, surname, streetNumber, address1, address2, suburb, postcode, state, dateOfBirth] = line
      .split(',')
      .map((field) => field.trim());
    const id = `row-${row}`;
    const entity = /^rec-(\d+)-/.exec(recId ?? '')?.[1];
    if (!entity) throw new Error(`${file} row ${row}: unexpected rec_id ${recId}`);
    entities.set(entity, [...(entities.get(entity) ?? []), id]);
    inputs.push({ id, givenName, familyName: surname, streetNumber, addressLine1: address1, addressLine2: address2, city: suburb, postcode, state, dateOfBirth });
  });
  return { inputs, entities };
}

describe('matching quality on FEBRL', () => {
  it.each([
    ['dataset1.csv', 1000, 500],
    ['dataset2.csv', 5000, 1934],
  ])('%s: pairwise F1 ≥ 0.95 at the default threshold', (file, rows, truePairs) => {
    const { inputs, entities } = readFebrl(file);
    const truth = pairsWithinClusters(entities.values());
    expect(inputs).toHaveLength(rows);
    expect(truth.size).toBe(truePairs);

    const started = performance.now();
    const result = findMatches(inputs);
    const seconds = (performance.now() - started) / 1000;

    const merged = result.candidates.filter((candidate) => candidate.decision === 'auto_merge').map(({ a, b }) => [a, b] as const);
    const pairs = pairwiseQuality(merged, truth);
    // Merges are transitive: the profiles that result are the connected components of the merged pairs.
    const profiles = connectedComponents(merged);
    const closure = pairwiseQuality(
      profiles.flatMap((members) => members.flatMap((a, i) => members.slice(i + 1).map((b) => [a, b] as const))),
      truth,
    );
    const review = result.candidates.filter((candidate) => candidate.decision === 'review').length;
    console.log(
      `FEBRL ${file}: ${rows} records, ${result.comparedPairs} candidate pairs, EM ${result.model.iterations} iterations; ` +
        `auto-merge ≥ ${DEFAULT_THRESHOLDS.autoMerge}: precision ${pairs.precision.toFixed(4)} recall ${pairs.recall.toFixed(4)} F1 ${pairs.f1.toFixed(4)} ` +
        `(${pairs.truePositives} TP, ${pairs.falsePositives} FP, ${pairs.falseNegatives} FN); after merging: precision ${closure.precision.toFixed(4)} ` +
        `recall ${closure.recall.toFixed(4)} F1 ${closure.f1.toFixed(4)}; ${review} pairs for review; ${seconds.toFixed(2)} s`,
    );
    expect(result.skippedBlocks).toEqual([]);
    expect(result.model.converged).toBe(true);
    expect(pairs.f1).toBeGreaterThanOrEqual(0.95);
    expect(closure.f1).toBeGreaterThanOrEqual(0.95);
  });
});
