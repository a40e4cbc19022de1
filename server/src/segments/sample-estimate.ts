/*
 * Estimating a segment's size from a random sample of profiles (the preview's fallback when an
 * exact count cannot finish in time).
 *
 * The sample. Profile ids are random UUIDs (crypto.randomUUID in identity resolution, uniform md5
 * ids in the bench data), so the live profiles whose id falls in a range of the UUID space are a
 * uniform random sample of them, and a stable one: a profile is in the first x % of the space or it
 * is not, so previews of two definitions compare the same people and a repeated preview gives the
 * same answer. Growing the sample means extending the range, and every table the compiled segment
 * reads is indexed by (workspace_id, profile_id, …), so an id range is an index range scan.
 *
 * The interval. The share of matching profiles among the sampled ones, with a Wilson score
 * interval (good at proportions near 0 and 1, where the normal approximation claims too much),
 * its sample size raised by the finite population correction (a sample of most of the live
 * profiles leaves little unknown), times the live profiles; never below the matches found nor
 * above the profiles that were not ruled out.
 */

/** z for a two-sided 95 % interval. */
export const Z_95 = 1.959964;

export interface SizeEstimate {
  estimate: number;
  low: number;
  high: number;
}

/**
 * The number of matching profiles among `population` live profiles, from `matches` matches among
 * `sampled` of them drawn uniformly without replacement: point estimate and interval at `z`.
 */
export function estimateFromSample(matches: number, sampled: number, population: number, z = Z_95): SizeEstimate {
  for (const [name, value] of [
    ['matches', matches],
    ['sampled', sampled],
    ['population', population],
  ] as const) {
    if (!Number.isInteger(value) || value < 0) throw new RangeError(`${name} must be a non-negative integer, got ${value}`);
  }
  if (matches > sampled) throw new RangeError(`matches (${matches}) cannot exceed the sampled profiles (${sampled})`);
  if (sampled > population) throw new RangeError(`sampled profiles (${sampled}) cannot exceed the population (${population})`);
  if (!(z > 0)) throw new RangeError(`z must be positive, got ${z}`);
  // Everyone seen: nothing is left to estimate.
  if (sampled === population) return { estimate: matches, low: matches, high: matches };
  if (sampled === 0) return { estimate: 0, low: 0, high: population };
  const share = matches / sampled;
  const { low, high } = wilsonInterval(share, sampled * finitePopulationFactor(sampled, population), z);
  const unseen = population - sampled;
  return {
    estimate: Math.max(matches, Math.round(share * population)),
    low: Math.max(matches, Math.floor(low * population)),
    high: Math.min(matches + unseen, Math.ceil(high * population)),
  };
}

/**
 * How much more a sample of n out of N says than n draws with replacement: the variance of the
 * share shrinks by (N − n) / (N − 1), so the sample counts as n × (N − 1) / (N − n) draws.
 */
export function finitePopulationFactor(sampled: number, population: number): number {
  if (population <= 1 || sampled >= population) return Infinity;
  return (population - 1) / (population - sampled);
}

/** Wilson score interval of a proportion `share` observed over `n` (possibly fractional) trials. */
export function wilsonInterval(share: number, n: number, z = Z_95): { low: number; high: number } {
  if (!(share >= 0 && share <= 1)) throw new RangeError(`share must be within [0, 1], got ${share}`);
  if (!(n > 0)) throw new RangeError(`n must be positive, got ${n}`);
  if (n === Infinity) return { low: share, high: share };
  const z2 = z * z;
  const denominator = 1 + z2 / n;
  const centre = (share + z2 / (2 * n)) / denominator;
  const half = (z / denominator) * Math.sqrt((share * (1 - share)) / n + z2 / (4 * n * n));
  return { low: Math.max(0, centre - half), high: Math.min(1, centre + half) };
}

const UUID_SPACE_BITS = 128n;

/**
 * The UUID at `fraction` of the UUID space (0 → the smallest), as a range bound; null at 1 or
 * more (the end of the space, no upper bound). Fractions are resolved to 2^-53.
 */
export function uuidAtFraction(fraction: number): string | null {
  if (!(fraction >= 0)) throw new RangeError(`fraction must be a non-negative number, got ${fraction}`);
  if (fraction >= 1) return null;
  const steps = BigInt(Math.floor(fraction * 2 ** 53));
  const hex = (steps << (UUID_SPACE_BITS - 53n)).toString(16).padStart(32, '0');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
