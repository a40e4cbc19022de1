import { hyp2f1, logBeta, logGamma, logSumExp } from './special.ts';
import { minimizeFromStarts } from './optimize.ts';

/*
 * BG/NBD (Fader, Hardie & Lee 2005, "Counting your customers the easy way"): while alive a
 * customer buys as a Poisson process with rate λ ~ Gamma(r, α); after each purchase they drop out
 * with probability p ~ Beta(a, b). A customer is summarised by x (repeat purchases), t_x (time of
 * the last purchase) and T (time since the first purchase), all from the first purchase, in one
 * time unit (the models use weeks).
 */

export interface BgNbdParams {
  r: number;
  alpha: number;
  a: number;
  b: number;
}

export interface RfmSummary {
  /** Repeat purchases (purchases after the first). */
  x: number;
  /** Time of the last purchase, from the first (0 when x = 0). */
  tx: number;
  /** Time from the first purchase to the end of observation. */
  T: number;
}

/**
 * ln L for one customer (paper eq. 6), as ln of a sum of two terms combined with logSumExp, so
 * large x or T never overflow: L = B(a,b+x)/B(a,b) · Γ(r+x)α^r/(Γ(r)(α+T)^(r+x))
 *                                 + [x>0] B(a+1,b+x−1)/B(a,b) · Γ(r+x)α^r/(Γ(r)(α+t_x)^(r+x)).
 */
export function bgNbdLogLikelihood({ r, alpha, a, b }: BgNbdParams, { x, tx, T }: RfmSummary): number {
  const common = logGamma(r + x) - logGamma(r) + r * Math.log(alpha);
  const alive = logBeta(a, b + x) - logBeta(a, b) - (r + x) * Math.log(alpha + T);
  const dropped = x > 0 ? logBeta(a + 1, b + x - 1) - logBeta(a, b) - (r + x) * Math.log(alpha + tx) : -Infinity;
  return common + logSumExp(alive, dropped);
}

/**
 * Sum of ln L over customers; `weights` count identical summaries once (default 1 each). The
 * gamma-function terms depend on x only, so they are computed once per distinct x: the same sum
 * as adding bgNbdLogLikelihood per customer, several times faster inside an optimiser.
 */
export function bgNbdTotalLogLikelihood(params: BgNbdParams, customers: readonly RfmSummary[], weights?: readonly number[]): number {
  const { r, alpha, a, b } = params;
  const perX = new Map<number, { common: number; alive: number; dropped: number }>();
  const base = -logGamma(r) + r * Math.log(alpha) - logBeta(a, b);
  let total = 0;
  for (let i = 0; i < customers.length; i++) {
    const { x, tx, T } = customers[i]!;
    let terms = perX.get(x);
    if (!terms) {
      terms = {
        common: base + logGamma(r + x),
        alive: logBeta(a, b + x),
        dropped: x > 0 ? logBeta(a + 1, b + x - 1) : -Infinity,
      };
      perX.set(x, terms);
    }
    const alive = terms.alive - (r + x) * Math.log(alpha + T);
    const dropped = x > 0 ? terms.dropped - (r + x) * Math.log(alpha + tx) : -Infinity;
    total += (weights?.[i] ?? 1) * (terms.common + logSumExp(alive, dropped));
  }
  return total;
}

/** P(alive | x, t_x, T) (paper eq. 11); 1 for a customer with no repeat purchase. */
export function bgNbdProbabilityAlive({ r, alpha, a, b }: BgNbdParams, { x, tx, T }: RfmSummary): number {
  if (x === 0) return 1;
  const logRatio = Math.log(a) - Math.log(b + x - 1) + (r + x) * (Math.log(alpha + T) - Math.log(alpha + tx));
  return 1 / (1 + Math.exp(logRatio));
}

/** E[X(t)]: expected purchases in (0, t] of a new customer (paper eq. 9). Needs a > 1. */
export function bgNbdExpectedPurchases({ r, alpha, a, b }: BgNbdParams, t: number): number {
  if (t <= 0) return 0;
  const z = t / (alpha + t);
  const tail = Math.exp(r * Math.log(alpha / (alpha + t))) * hyp2f1(r, b, a + b - 1, z);
  return ((a + b - 1) / (a - 1)) * (1 - tail);
}

/**
 * E[Y(t) | x, t_x, T]: expected purchases in the next t after T given the customer's history
 * (paper eq. 10). Needs a > 1 (the fit's `a` may be below 1 with few repeaters: then the expectation
 * is computed with the series' limit form a → max(a, 1 + 1e-6), which the caller should read as
 * an upper bound; `fitBgNbd` reports it).
 */
export function bgNbdConditionalExpectedPurchases(params: BgNbdParams, customer: RfmSummary, t: number): number {
  const { r, alpha, b } = params;
  const a = Math.max(params.a, 1 + 1e-6);
  const { x, tx, T } = customer;
  if (t <= 0) return 0;
  const z = t / (alpha + T + t);
  const tail = Math.exp((r + x) * Math.log((alpha + T) / (alpha + T + t))) * hyp2f1(r + x, b + x, a + b + x - 1, z);
  const numerator = ((a + b + x - 1) / (a - 1)) * (1 - tail);
  const denominator = x > 0 ? 1 + Math.exp(Math.log(a) - Math.log(b + x - 1) + (r + x) * (Math.log(alpha + T) - Math.log(alpha + tx))) : 1;
  return numerator / denominator;
}

export interface BgNbdFit {
  params: BgNbdParams;
  logLikelihood: number;
  customers: number;
  iterations: number;
  converged: boolean;
}

/**
 * Maximum-likelihood fit by Nelder–Mead over ln r, ln α, ln a, ln b from a few starts: r = 1 with
 * α at the mean observation time over the mean purchase count (a rate near the data's), and
 * (a, b) spread from rare to frequent drop-out. Identical summaries are weighted once, which makes
 * the likelihood cost proportional to the distinct (x, t_x, T) rather than the customers.
 */
export function fitBgNbd(customers: readonly RfmSummary[]): BgNbdFit {
  if (customers.length === 0) throw new RangeError('fitBgNbd needs at least one customer');
  const { distinct, weights } = compress(customers);
  const meanT = customers.reduce((s, c) => s + c.T, 0) / customers.length;
  const meanX = customers.reduce((s, c) => s + c.x, 0) / customers.length;
  const alpha0 = Math.max(meanT / Math.max(meanX, 0.1), 1e-3);
  const objective = (v: readonly number[]) => {
    const params = { r: Math.exp(v[0]!), alpha: Math.exp(v[1]!), a: Math.exp(v[2]!), b: Math.exp(v[3]!) };
    return -bgNbdTotalLogLikelihood(params, distinct, weights);
  };
  const starts = [
    [0, Math.log(alpha0), 0, 0],
    [Math.log(0.5), Math.log(alpha0), Math.log(0.5), Math.log(2)],
    [Math.log(2), Math.log(alpha0 * 2), Math.log(2), Math.log(5)],
  ];
  const result = minimizeFromStarts(objective, starts, { step: 0.7 });
  const [r, alpha, a, b] = result.x.map(Math.exp) as [number, number, number, number];
  return { params: { r, alpha, a, b }, logLikelihood: -result.value, customers: customers.length, iterations: result.iterations, converged: result.converged };
}

function compress(customers: readonly RfmSummary[]): { distinct: RfmSummary[]; weights: number[] } {
  const index = new Map<string, number>();
  const distinct: RfmSummary[] = [];
  const weights: number[] = [];
  for (const c of customers) {
    const key = `${c.x}|${c.tx}|${c.T}`;
    const at = index.get(key);
    if (at === undefined) {
      index.set(key, distinct.length);
      distinct.push(c);
      weights.push(1);
    } else weights[at]! += 1;
  }
  return { distinct, weights };
}
