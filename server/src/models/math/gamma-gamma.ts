import { logGamma } from './special.ts';
import { minimizeFromStarts } from './optimize.ts';

/*
 * Gamma-Gamma spend model (Fader, Hardie & Lee 2005, "RFM and CLV"; Colombo & Jiang 1999): each
 * transaction's value is Gamma(p, ν), ν ~ Gamma(q, γ) across customers, independent of the
 * purchase process. A customer is summarised by x transactions of mean value m.
 */

export interface GammaGammaParams {
  p: number;
  q: number;
  gamma: number;
}

export interface SpendSummary {
  /** Number of transactions the mean is over (≥ 1). */
  x: number;
  /** Their mean value (> 0). */
  m: number;
}

/**
 * ln f(m | x) integrated over ν: x·m | ν ~ Gamma(px, ν), so
 * f(m) = Γ(px+q)/(Γ(px)Γ(q)) · γ^q · m^(px−1) · x^(px) / (γ + m·x)^(px+q).
 */
export function gammaGammaLogLikelihood({ p, q, gamma }: GammaGammaParams, { x, m }: SpendSummary): number {
  return (
    logGamma(p * x + q) - logGamma(p * x) - logGamma(q) + q * Math.log(gamma) + (p * x - 1) * Math.log(m) + p * x * Math.log(x) -
    (p * x + q) * Math.log(gamma + m * x)
  );
}

/** Sum over customers, with the gamma-function terms computed once per distinct x. */
export function gammaGammaTotalLogLikelihood(params: GammaGammaParams, customers: readonly SpendSummary[]): number {
  const { p, q, gamma } = params;
  const perX = new Map<number, number>();
  const base = -logGamma(q) + q * Math.log(gamma);
  let total = 0;
  for (const { x, m } of customers) {
    let constant = perX.get(x);
    if (constant === undefined) perX.set(x, (constant = base + logGamma(p * x + q) - logGamma(p * x) + p * x * Math.log(x)));
    total += constant + (p * x - 1) * Math.log(m) - (p * x + q) * Math.log(gamma + m * x);
  }
  return total;
}

/** E[M | x, m]: the customer's expected transaction value, a weighted mean of theirs and the population's. */
export function gammaGammaConditionalSpend({ p, q, gamma }: GammaGammaParams, { x, m }: SpendSummary): number {
  return (p * (gamma + m * x)) / (p * x + q - 1);
}

/** The population's mean transaction value pγ/(q−1) (infinite for q ≤ 1). */
export function gammaGammaPopulationSpend({ p, q, gamma }: GammaGammaParams): number {
  return q > 1 ? (p * gamma) / (q - 1) : Infinity;
}

export interface GammaGammaFit {
  params: GammaGammaParams;
  logLikelihood: number;
  customers: number;
  converged: boolean;
}

/** Maximum likelihood over ln p, ln q, ln γ by Nelder–Mead, starting from moment-like values. */
export function fitGammaGamma(customers: readonly SpendSummary[]): GammaGammaFit {
  const usable = customers.filter((c) => c.x >= 1 && c.m > 0 && Number.isFinite(c.m));
  if (usable.length === 0) throw new RangeError('fitGammaGamma needs customers with a positive mean spend');
  const mean = usable.reduce((s, c) => s + c.m, 0) / usable.length;
  const objective = (v: readonly number[]) => -gammaGammaTotalLogLikelihood({ p: Math.exp(v[0]!), q: Math.exp(v[1]!), gamma: Math.exp(v[2]!) }, usable);
  const starts = [
    [0, Math.log(2), Math.log(mean)],
    [Math.log(5), Math.log(3), Math.log(mean * 2)],
    [Math.log(0.5), Math.log(5), Math.log(mean * 8)],
  ];
  const result = minimizeFromStarts(objective, starts, { step: 0.7 });
  const [p, q, gamma] = result.x.map(Math.exp) as [number, number, number];
  return { params: { p, q, gamma }, logLikelihood: -result.value, customers: usable.length, converged: result.converged };
}
