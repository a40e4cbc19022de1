/*
 * Special functions the models need, in log space where products of gammas would overflow.
 * Pure; no dependencies.
 */

// Lanczos approximation (g = 7, n = 9), relative error below 1e-14 for x > 0.
const LANCZOS = [
  0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905,
  -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
];

/** ln Γ(x) for x > 0 (reflection for x < 0.5). */
export function logGamma(x: number): number {
  if (x < 0.5) return Math.log(Math.PI / Math.abs(Math.sin(Math.PI * x))) - logGamma(1 - x);
  const z = x - 1;
  let sum = LANCZOS[0]!;
  const t = z + 7.5;
  for (let i = 1; i < 9; i++) sum += LANCZOS[i]! / (z + i);
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(sum);
}

/** ln B(a, b). */
export function logBeta(a: number, b: number): number {
  return logGamma(a) + logGamma(b) - logGamma(a + b);
}

/** ln(e^a + e^b) without overflow; -Infinity terms are allowed. */
export function logSumExp(a: number, b: number): number {
  if (a === -Infinity) return b;
  if (b === -Infinity) return a;
  const m = Math.max(a, b);
  return m + Math.log(Math.exp(a - m) + Math.exp(b - m));
}

/**
 * Gauss hypergeometric 2F1(a, b; c; z) for 0 ≤ z < 1 by its power series, summed until the terms
 * stop mattering. The models call it with z = t/(α+T+t) and positive a, b, c, where every term is
 * positive and the series converges geometrically in z.
 */
export function hyp2f1(a: number, b: number, c: number, z: number): number {
  if (!(z >= 0 && z < 1)) throw new RangeError(`hyp2f1 needs 0 ≤ z < 1, got ${z}`);
  let term = 1;
  let sum = 1;
  for (let n = 0; n < 200_000; n++) {
    term *= ((a + n) * (b + n)) / ((c + n) * (n + 1)) * z;
    sum += term;
    if (Math.abs(term) < 1e-15 * Math.abs(sum)) return sum;
  }
  return sum;
}
