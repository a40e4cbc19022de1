import { describe, expect, it } from 'vitest';
import {
  bgNbdConditionalExpectedPurchases,
  bgNbdExpectedPurchases,
  bgNbdLogLikelihood,
  bgNbdProbabilityAlive,
  bgNbdTotalLogLikelihood,
  fitBgNbd,
  type BgNbdParams,
  type RfmSummary,
} from '../src/models/math/bgnbd.ts';
import { customerLifetimeValue } from '../src/models/math/clv.ts';
import {
  fitGammaGamma,
  gammaGammaConditionalSpend,
  gammaGammaLogLikelihood,
  gammaGammaTotalLogLikelihood,
  type GammaGammaParams,
} from '../src/models/math/gamma-gamma.ts';
import { nelderMead } from '../src/models/math/optimize.ts';
import { seededRandom } from '../src/models/math/random.ts';
import { simulateCustomers } from '../src/models/math/simulate.ts';
import { hyp2f1, logGamma } from '../src/models/math/special.ts';

/*
 * The CLV maths without a database: special functions against closed forms, the BG/NBD and
 * Gamma-Gamma likelihoods against values worked out by hand and against a direct numerical
 * integration over the latent (λ, p) and ν (an independent computation: no shared formula), and
 * maximum-likelihood fits that recover the parameters of data simulated from known values.
 */

/** Composite Simpson's rule on [a, b] with n (even) intervals. */
function simpson(f: (x: number) => number, a: number, b: number, n: number): number {
  const h = (b - a) / n;
  let sum = f(a) + f(b);
  for (let i = 1; i < n; i++) sum += (i % 2 ? 4 : 2) * f(a + i * h);
  return (sum * h) / 3;
}

const gammaDensity = (x: number, shape: number, rate: number) =>
  x <= 0 ? 0 : Math.exp(shape * Math.log(rate) + (shape - 1) * Math.log(x) - rate * x - logGamma(shape));
const betaDensity = (p: number, a: number, b: number) =>
  p <= 0 || p >= 1 ? 0 : Math.exp((a - 1) * Math.log(p) + (b - 1) * Math.log(1 - p) - (logGamma(a) + logGamma(b) - logGamma(a + b)));

/** ∫∫ f(λ, p) g(λ | r, α) h(p | a, b) dλ dp numerically (r, a, b > 3 keep the integrand smooth enough for Simpson's rule). */
function integrateLatent(params: BgNbdParams, f: (lambda: number, p: number) => number): number {
  return simpson((p) => betaDensity(p, params.a, params.b) * simpson((l) => f(l, p) * gammaDensity(l, params.r, params.alpha), 0, 12, 2400), 0, 1, 800);
}

/** The individual-level likelihood given (λ, p) (paper eq. 3), with no mixing. */
const individualLikelihood = ({ x, tx, T }: RfmSummary) => (lambda: number, p: number) =>
  Math.pow(1 - p, x) * Math.pow(lambda, x) * Math.exp(-lambda * T) + (x > 0 ? p * Math.pow(1 - p, x - 1) * Math.pow(lambda, x) * Math.exp(-lambda * tx) : 0);

describe('special functions', () => {
  it('ln Γ matches factorials and Γ(1/2) = √π', () => {
    expect(logGamma(1)).toBeCloseTo(0, 12);
    expect(logGamma(10)).toBeCloseTo(Math.log(362_880), 10);
    expect(logGamma(0.5)).toBeCloseTo(0.5 * Math.log(Math.PI), 12);
    expect(logGamma(100)).toBeCloseTo(359.1342053695754, 8);
    expect(logGamma(0.1)).toBeCloseTo(Math.log(9.513507698668732), 10);
  });

  it('2F1 matches its closed forms', () => {
    for (const z of [0.1, 0.5, 0.9, 0.99]) {
      expect(hyp2f1(1, 1, 2, z)).toBeCloseTo(-Math.log(1 - z) / z, 9);
      expect(hyp2f1(2.5, 3, 3, z)).toBeCloseTo(Math.pow(1 - z, -2.5), 6);
    }
    expect(() => hyp2f1(1, 1, 2, 1)).toThrow(RangeError);
  });

  it('Nelder–Mead finds the minimum of the Rosenbrock valley', () => {
    const result = nelderMead(([x, y]) => 100 * (y! - x! * x!) ** 2 + (1 - x!) ** 2, [-1.2, 1]);
    expect(result.converged).toBe(true);
    expect(result.x[0]).toBeCloseTo(1, 4);
    expect(result.x[1]).toBeCloseTo(1, 4);
  });
});

describe('BG/NBD', () => {
  const unit = { r: 1, alpha: 1, a: 1, b: 1 };

  it('log-likelihood equals values worked out by hand', () => {
    // x = 0, T = 1: L = B(1,1)/B(1,1) · Γ(1)·1/(Γ(1)·2¹) = 1/2.
    expect(bgNbdLogLikelihood(unit, { x: 0, tx: 0, T: 1 })).toBeCloseTo(Math.log(1 / 2), 12);
    // x = 1, t_x = 1, T = 2: L = B(1,2)/B(1,1) · 1/3² + B(2,1)/B(1,1) · 1/2² = 1/18 + 1/8 = 13/72.
    expect(bgNbdLogLikelihood(unit, { x: 1, tx: 1, T: 2 })).toBeCloseTo(Math.log(13 / 72), 12);
    // P(alive) is the alive term's share of L: (1/18)/(13/72) = 4/13.
    expect(bgNbdProbabilityAlive(unit, { x: 1, tx: 1, T: 2 })).toBeCloseTo(4 / 13, 12);
    expect(bgNbdProbabilityAlive(unit, { x: 0, tx: 0, T: 5 })).toBe(1);
  });

  it('log-likelihood equals a numerical integration over (λ, p)', () => {
    const params = { r: 3.1, alpha: 3.3, a: 3.2, b: 3.4 };
    for (const customer of [
      { x: 0, tx: 0, T: 10 },
      { x: 2, tx: 4.5, T: 12 },
      { x: 7, tx: 30, T: 39 },
    ]) {
      const numeric = Math.log(integrateLatent(params, individualLikelihood(customer)));
      expect(bgNbdLogLikelihood(params, customer)).toBeCloseTo(numeric, 6);
    }
  });

  it('stays finite where the direct formula overflows, and the total is the sum over customers', () => {
    const params = { r: 0.243, alpha: 4.414, a: 0.793, b: 2.426 };
    const heavy = { x: 400, tx: 300, T: 310 };
    expect(Number.isFinite(bgNbdLogLikelihood(params, heavy))).toBe(true);
    const customers = [heavy, { x: 0, tx: 0, T: 38 }, { x: 3, tx: 20, T: 38 }, { x: 3, tx: 20, T: 38 }];
    const sum = customers.reduce((s, c) => s + bgNbdLogLikelihood(params, c), 0);
    expect(bgNbdTotalLogLikelihood(params, customers)).toBeCloseTo(sum, 8);
    expect(bgNbdTotalLogLikelihood(params, customers.slice(0, 3), [1, 1, 2])).toBeCloseTo(sum, 8);
  });

  it('conditional expected purchases equal the posterior expectation by numerical integration', () => {
    // E[Y(t) | λ, p, alive at T] = (1 − e^(−λpt))/p; weighted by the "alive" part of the likelihood.
    const params = { r: 3.1, alpha: 3.3, a: 3.2, b: 3.4 };
    const customer = { x: 3, tx: 8, T: 12 };
    const t = 10;
    const likelihood = individualLikelihood(customer);
    const total = integrateLatent(params, likelihood);
    const expected =
      integrateLatent(params, (l, p) => Math.pow(1 - p, customer.x) * Math.pow(l, customer.x) * Math.exp(-l * customer.T) * (p === 0 ? l * t : (1 - Math.exp(-l * p * t)) / p)) /
      total;
    expect(bgNbdConditionalExpectedPurchases(params, customer, t)).toBeCloseTo(expected, 5);
  });

  it('E[X(t)] matches the mean of simulated customers', () => {
    const params = { r: 1.5, alpha: 6, a: 1.8, b: 4 };
    const random = seededRandom(11);
    const t = 40;
    const customers = simulateCustomers(random, 40_000, params, { p: 2, q: 3, gamma: 10 }, () => t);
    const counts = customers.map((c) => c.purchases.length);
    const mean = counts.reduce((s, v) => s + v, 0) / counts.length;
    const sd = Math.sqrt(counts.reduce((s, v) => s + (v - mean) ** 2, 0) / counts.length);
    expect(Math.abs(bgNbdExpectedPurchases(params, t) - mean)).toBeLessThan((4 * sd) / Math.sqrt(counts.length));
  });

  const summarize = (c: { purchases: number[]; T: number }) => ({ x: c.purchases.length, tx: c.purchases.at(-1) ?? 0, T: c.T });

  it('recovers the CDNOW parameters of Fader, Hardie & Lee (2005) from data simulated with them', () => {
    // Published fit on CDNOW (2,357 customers, 39 weeks): r = 0.243, α = 4.414, a = 0.793, b = 2.426.
    const truth = { r: 0.243, alpha: 4.414, a: 0.793, b: 2.426 };
    const random = seededRandom(2005);
    // Observation periods of 27 to 39 weeks, as in CDNOW's 12-week acquisition cohort.
    const data = simulateCustomers(random, 10_000, truth, { p: 6, q: 4, gamma: 15 }, (i) => 27 + (i % 13)).map(summarize);
    const fit = fitBgNbd(data);
    expect(fit.converged).toBe(true);
    expect(fit.params.r).toBeGreaterThan(truth.r * 0.85);
    expect(fit.params.r).toBeLessThan(truth.r * 1.15);
    expect(fit.params.alpha).toBeGreaterThan(truth.alpha * 0.8);
    expect(fit.params.alpha).toBeLessThan(truth.alpha * 1.2);
    // a and b are weakly identified over 39 weeks; their mean drop-out probability a/(a+b) is not.
    const dropout = (p: BgNbdParams) => p.a / (p.a + p.b);
    expect(Math.abs(dropout(fit.params) - dropout(truth))).toBeLessThan(0.04);
    // The maximum is at least as good as the truth, and the truth is inside the 99% likelihood-ratio region (χ²₄ = 13.28).
    const atTruth = bgNbdTotalLogLikelihood(truth, data);
    expect(fit.logLikelihood).toBeGreaterThanOrEqual(atTruth);
    expect(2 * (fit.logLikelihood - atTruth)).toBeLessThan(13.28);
  });

  it('recovers every parameter within 20% over a long observation period', () => {
    const truth = { r: 0.8, alpha: 5, a: 1.5, b: 4 };
    const random = seededRandom(42);
    const data = simulateCustomers(random, 8000, truth, { p: 6, q: 4, gamma: 15 }, (i) => 100 + (i % 50)).map(summarize);
    const fit = fitBgNbd(data);
    for (const key of ['r', 'alpha', 'a', 'b'] as const) {
      expect(Math.abs(fit.params[key] / truth[key] - 1), key).toBeLessThan(0.2);
    }
  });
});

describe('Gamma-Gamma', () => {
  it('log-likelihood equals a numerical integration over ν', () => {
    const params = { p: 6.25, q: 3.74, gamma: 15.44 };
    for (const customer of [
      { x: 1, m: 35 },
      { x: 4, m: 12.5 },
    ]) {
      // x·m | ν ~ Gamma(px, ν), so m | ν has density x · Gamma(xm; px, ν).
      const numeric = simpson((nu) => customer.x * gammaDensity(customer.x * customer.m, params.p * customer.x, nu) * gammaDensity(nu, params.q, params.gamma), 0, 20, 20_000);
      expect(gammaGammaLogLikelihood(params, customer)).toBeCloseTo(Math.log(numeric), 6);
    }
    const customers = [{ x: 1, m: 35 }, { x: 4, m: 12.5 }, { x: 4, m: 20 }];
    expect(gammaGammaTotalLogLikelihood(params, customers)).toBeCloseTo(customers.reduce((s, c) => s + gammaGammaLogLikelihood(params, c), 0), 9);
  });

  it('conditional spend is the weighted mean worked out by hand', () => {
    // p = 1, q = 2, γ = 1, one purchase of 3: (γ + m·x)·p/(px + q − 1) = 4/2.
    expect(gammaGammaConditionalSpend({ p: 1, q: 2, gamma: 1 }, { x: 1, m: 3 })).toBeCloseTo(2, 12);
  });

  it('recovers simulated parameters within 15%', () => {
    const truth: GammaGammaParams = { p: 6.25, q: 3.74, gamma: 15.44 };
    const random = seededRandom(99);
    const customers = simulateCustomers(random, 12_000, { r: 1, alpha: 2, a: 1, b: 8 }, truth, () => 52)
      .filter((c) => c.purchases.length > 0)
      .map((c) => ({ x: c.purchases.length, m: c.values.slice(1).reduce((s, v) => s + v, 0) / c.purchases.length }));
    expect(customers.length).toBeGreaterThan(5000);
    const fit = fitGammaGamma(customers);
    for (const key of ['p', 'q', 'gamma'] as const) expect(Math.abs(fit.params[key] / truth[key] - 1), key).toBeLessThan(0.15);
  });
});

describe('CLV', () => {
  const params = { r: 0.8, alpha: 5, a: 1.5, b: 4 };
  const customer = { x: 4, tx: 30, T: 40 };
  it('is expected purchases × spend without discounting, and each week discounted with it', () => {
    expect(customerLifetimeValue(params, customer, 20, 52, 0)).toBeCloseTo(bgNbdConditionalExpectedPurchases(params, customer, 52) * 20, 9);
    // One week at 10% a year: E[Y(1)] · spend / 1.1^(1/52).
    expect(customerLifetimeValue(params, customer, 20, 1, 0.1)).toBeCloseTo((bgNbdConditionalExpectedPurchases(params, customer, 1) * 20) / Math.pow(1.1, 1 / 52), 9);
    expect(customerLifetimeValue(params, customer, 20, 52, 0.1)).toBeLessThan(customerLifetimeValue(params, customer, 20, 52, 0));
    // A customer gone quiet long ago is worth less than one who bought last week.
    expect(customerLifetimeValue(params, { x: 4, tx: 5, T: 40 }, 20, 52, 0.1)).toBeLessThan(customerLifetimeValue(params, customer, 20, 52, 0.1));
  });
});
