/*
 * Profile traits as model features, pure. A lookalike seed is often defined by who people are
 * (tier, city, plan) as much as by what they did, so the named traits join the behaviour
 * features: a trait whose every value is a number (or numeric text, or a boolean) becomes one
 * numeric column, missing values imputed with the mean; any other trait becomes one 0/1 column
 * per frequent value. Either way a `:missing` column says the profile has no value, so "unknown"
 * is learnt as itself rather than as the mean or as "none of the values".
 */

/** Categorical traits keep their most frequent values only: one column each. */
export const MAX_CATEGORY_COLUMNS = 10;

export interface TraitColumns {
  names: string[];
  /** One row per profile, in the order of the profiles given. */
  rows: number[][];
}

const NUMERIC_TEXT = /^\s*-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$/;

function asNumber(value: unknown): number | null {
  if (typeof value === 'number') return Number.isFinite(value) ? value : null;
  if (typeof value === 'boolean') return value ? 1 : 0;
  if (typeof value === 'string' && NUMERIC_TEXT.test(value)) return Number(value);
  return null;
}

/** What a categorical value is called in a column name: text as it is, anything else as JSON. */
const categoryOf = (value: unknown) => (typeof value === 'string' ? value : JSON.stringify(value));

export function encodeTraitFeatures(keys: readonly string[], profiles: readonly string[], values: ReadonlyMap<string, ReadonlyMap<string, unknown>>): TraitColumns {
  const names: string[] = [];
  const columns: number[][] = [];
  for (const key of keys) {
    const present = profiles.map((id) => values.get(id)?.get(key)).map((v) => (v === null ? undefined : v));
    const known = present.filter((v) => v !== undefined);
    if (known.length === 0) continue;
    const missing = present.map((v) => (v === undefined ? 1 : 0));
    const numbers = known.map(asNumber);
    if (numbers.every((n) => n !== null)) {
      const mean = (numbers as number[]).reduce((s, n) => s + n, 0) / numbers.length;
      names.push(`trait:${key}`);
      columns.push(present.map((v) => (v === undefined ? mean : asNumber(v)!)));
    } else {
      const counts = new Map<string, number>();
      for (const v of known) counts.set(categoryOf(v), (counts.get(categoryOf(v)) ?? 0) + 1);
      const top = [...counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).slice(0, MAX_CATEGORY_COLUMNS);
      for (const [category] of top) {
        names.push(`trait:${key}=${category}`);
        columns.push(present.map((v) => (v !== undefined && categoryOf(v) === category ? 1 : 0)));
      }
    }
    if (known.length < present.length) {
      names.push(`trait:${key}:missing`);
      columns.push(missing);
    }
  }
  return { names, rows: profiles.map((_, i) => columns.map((column) => column[i]!)) };
}
