/*
 * The statistics of analytics answers, pure: rates, the time-to-convert histogram bounds and, for
 * experiments, the two-proportion test with confidence intervals, a group-sequential boundary
 * against peeking, and the Bayesian chance to beat.
 */

/** `part / whole`, 0 when there is no whole. */
export function conversionRate(part: number, whole: number): number {
  return whole === 0 ? 0 : part / whole;
}

/** Upper bounds (seconds, exclusive) of the time-to-convert histogram; null is the open last bucket. */
export const TIME_TO_CONVERT_BUCKETS: ReadonlyArray<number | null> = [60, 300, 900, 3600, 6 * 3600, 86_400, 3 * 86_400, 7 * 86_400, 14 * 86_400, 30 * 86_400, null];

// ---- Normal and chi-square distributions ---------------------------------------------------------

/** erfc(x) by the Chebyshev fit of Numerical Recipes (relative error < 1.2e-7 everywhere). */
function erfc(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const r =
    t *
    Math.exp(
      -z * z - 1.26551223 +
        t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return x >= 0 ? r : 2 - r;
}

/** P(Z ≤ z) for a standard normal Z. */
export function normalCdf(z: number): number {
  return 0.5 * erfc(-z / Math.SQRT2);
}

/** The z with P(Z ≤ z) = p (Acklam's rational approximation, refined by one Newton step). */
export function normalQuantile(p: number): number {
  if (p <= 0 || p >= 1) throw new RangeError('p must be in (0, 1)');
  const a = [-39.69683028665376, 220.9460984245205, -275.9285104469687, 138.357751867269, -30.66479806614716, 2.506628277459239];
  const b = [-54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972, -13.28068155288572];
  const c = [-0.007784894002430293, -0.3223964580411365, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
  const d = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416];
  const low = 0.02425;
  let x: number;
  if (p < low) {
    const q = Math.sqrt(-2 * Math.log(p));
    x = (((((c[0]! * q + c[1]!) * q + c[2]!) * q + c[3]!) * q + c[4]!) * q + c[5]!) / ((((d[0]! * q + d[1]!) * q + d[2]!) * q + d[3]!) * q + 1);
  } else if (p <= 1 - low) {
    const q = p - 0.5;
    const r = q * q;
    x = ((((((a[0]! * r + a[1]!) * r + a[2]!) * r + a[3]!) * r + a[4]!) * r + a[5]!) * q) / (((((b[0]! * r + b[1]!) * r + b[2]!) * r + b[3]!) * r + b[4]!) * r + 1);
  } else {
    const q = Math.sqrt(-2 * Math.log(1 - p));
    x = -(((((c[0]! * q + c[1]!) * q + c[2]!) * q + c[3]!) * q + c[4]!) * q + c[5]!) / ((((d[0]! * q + d[1]!) * q + d[2]!) * q + d[3]!) * q + 1);
  }
  const e = normalCdf(x) - p;
  return x - e * Math.sqrt(2 * Math.PI) * Math.exp((x * x) / 2);
}

function logGamma(x: number): number {
  const g = [76.18009172947146, -86.50532032941678, 24.01409824083091, -1.231739572450155, 0.001208650973866179, -0.000005395239384953];
  let y = x;
  const tmp = x + 5.5 - (x + 0.5) * Math.log(x + 5.5);
  let series = 1.000000000190015;
  for (const coefficient of g) series += coefficient / ++y;
  return -tmp + Math.log((2.5066282746310002 * series) / x);
}

/** Regularised upper incomplete gamma Q(a, x) (series below a + 1, continued fraction above). */
function gammaQ(a: number, x: number): number {
  if (x <= 0) return 1;
  if (x < a + 1) {
    let sum = 1 / a;
    let term = sum;
    for (let n = 1; n < 1000; n++) {
      term *= x / (a + n);
      sum += term;
      if (Math.abs(term) < Math.abs(sum) * 1e-15) break;
    }
    return 1 - sum * Math.exp(-x + a * Math.log(x) - logGamma(a));
  }
  let b = x + 1 - a;
  let c = 1e300;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i < 1000; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < 1e-300) d = 1e-300;
    c = b + an / c;
    if (Math.abs(c) < 1e-300) c = 1e-300;
    d = 1 / d;
    const delta = d * c;
    h *= delta;
    if (Math.abs(delta - 1) < 1e-15) break;
  }
  return Math.exp(-x + a * Math.log(x) - logGamma(a)) * h;
}

/** P(X ≥ x) for X chi-square with `df` degrees of freedom. */
export function chiSquareSurvival(x: number, df: number): number {
  return gammaQ(df / 2, x / 2);
}

// ---- Tests of conversion rates -------------------------------------------------------------------

export interface Group {
  converted: number;
  total: number;
}

export interface ProportionComparison {
  /** Rate of the treatment minus rate of the control. */
  absoluteUplift: number;
  /** absoluteUplift / control rate (null when the control rate is 0). */
  relativeUplift: number | null;
  /** Confidence interval of the absolute uplift (unpooled standard error). */
  confidenceInterval: [number, number];
  /** Two-proportion z statistic (pooled standard error) and its two-sided p-value. */
  z: number;
  pValue: number;
  /** Bayesian probability that the treatment's true rate beats the control's (uniform priors). */
  chanceToBeat: number;
}

export function compareProportions(treatment: Group, control: Group, confidence = 0.95): ProportionComparison {
  const p1 = conversionRate(treatment.converted, treatment.total);
  const p2 = conversionRate(control.converted, control.total);
  const pooled = conversionRate(treatment.converted + control.converted, treatment.total + control.total);
  const pooledSe = Math.sqrt(pooled * (1 - pooled) * (1 / Math.max(treatment.total, 1) + 1 / Math.max(control.total, 1)));
  const z = pooledSe === 0 ? 0 : (p1 - p2) / pooledSe;
  const se = Math.sqrt((p1 * (1 - p1)) / Math.max(treatment.total, 1) + (p2 * (1 - p2)) / Math.max(control.total, 1));
  const critical = normalQuantile(1 - (1 - confidence) / 2);
  return {
    absoluteUplift: p1 - p2,
    relativeUplift: p2 === 0 ? null : (p1 - p2) / p2,
    confidenceInterval: [p1 - p2 - critical * se, p1 - p2 + critical * se],
    z,
    pValue: pooledSe === 0 ? 1 : 2 * (1 - normalCdf(Math.abs(z))),
    chanceToBeat: chanceToBeat(treatment, control),
  };
}

/** Pearson's chi-square test of independence over k groups × (converted, not). */
export function chiSquareTest(groups: readonly Group[]): { statistic: number; degreesOfFreedom: number; pValue: number } {
  const converted = groups.reduce((sum, g) => sum + g.converted, 0);
  const total = groups.reduce((sum, g) => sum + g.total, 0);
  const rate = conversionRate(converted, total);
  let statistic = 0;
  for (const group of groups) {
    const expectedYes = group.total * rate;
    const expectedNo = group.total * (1 - rate);
    if (expectedYes > 0) statistic += (group.converted - expectedYes) ** 2 / expectedYes;
    if (expectedNo > 0) statistic += (group.total - group.converted - expectedNo) ** 2 / expectedNo;
  }
  const degreesOfFreedom = groups.length - 1;
  return { statistic, degreesOfFreedom, pValue: rate === 0 || rate === 1 ? 1 : chiSquareSurvival(statistic, degreesOfFreedom) };
}

/**
 * P(rate_T > rate_C) with Beta(1 + converted, 1 + not converted) posteriors: the exact sum of
 * Evan Miller's formula for moderate counts, a normal approximation of the posteriors beyond.
 */
export function chanceToBeat(treatment: Group, control: Group): number {
  const aT = treatment.converted + 1;
  const bT = treatment.total - treatment.converted + 1;
  const aC = control.converted + 1;
  const bC = control.total - control.converted + 1;
  if (aT > 5000) {
    const mean = (a: number, b: number) => a / (a + b);
    const variance = (a: number, b: number) => (a * b) / ((a + b) ** 2 * (a + b + 1));
    return normalCdf((mean(aT, bT) - mean(aC, bC)) / Math.sqrt(variance(aT, bT) + variance(aC, bC)));
  }
  const logBeta = (a: number, b: number) => logGamma(a) + logGamma(b) - logGamma(a + b);
  let total = 0;
  for (let i = 0; i < aT; i++) {
    total += Math.exp(logBeta(aC + i, bT + bC) - Math.log(bT + i) - logBeta(1 + i, bT) - logBeta(aC, bC));
  }
  return Math.min(1, Math.max(0, total));
}

/**
 * Guard against peeking: with a planned sample size per group, the result is judged against an
 * O'Brien–Fleming-type boundary z(1 − α/2) / √t at information fraction t = n / planned (the
 * Lan–DeMets spending approximation), so looking at the numbers every day does not inflate the
 * false-positive rate; without a plan, the p-value holds only for one look at a horizon fixed in
 * advance, and the answer says so.
 */
export function sequentialDecision(
  z: number,
  smallestGroup: number,
  plannedPerGroup: number | undefined,
  alpha = 0.05,
): { decision: 'significant' | 'keep_running' | 'not_significant' | 'no_plan'; boundary: number | null; informationFraction: number | null } {
  if (plannedPerGroup === undefined) return { decision: 'no_plan', boundary: null, informationFraction: null };
  const fraction = Math.min(1, smallestGroup / plannedPerGroup);
  if (fraction === 0) return { decision: 'keep_running', boundary: null, informationFraction: 0 };
  const boundary = normalQuantile(1 - alpha / 2) / Math.sqrt(fraction);
  if (Math.abs(z) >= boundary) return { decision: 'significant', boundary, informationFraction: fraction };
  return { decision: fraction >= 1 ? 'not_significant' : 'keep_running', boundary, informationFraction: fraction };
}
