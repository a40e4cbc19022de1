/*
 * The one seeded random source and the distributions drawn from it, pure. Simulations (tests and
 * benchmarks generate data from known model parameters, then check the fits recover them) and the
 * decisioning bandit's Thompson sampling both draw here, so a fix to a sampler reaches both.
 */

export type Random = () => number;

/** mulberry32: a small, fast, seeded generator of uniforms in [0, 1). */
export function seededRandom(seed: number): Random {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Standard normal by Box–Muller; 1 - u keeps the logarithm finite. */
export function normal(random: Random): number {
  const u = 1 - random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
}

/** Gamma(shape, rate) by Marsaglia and Tsang (2000); shape < 1 through the boost Gamma(a+1)·U^(1/a). */
export function gamma(random: Random, shape: number, rate = 1): number {
  if (!(shape > 0)) throw new RangeError(`Gamma shape must be positive, got ${shape}`);
  if (!(rate > 0)) throw new RangeError(`Gamma rate must be positive, got ${rate}`);
  if (shape < 1) return gamma(random, shape + 1, rate) * Math.pow(1 - random(), 1 / shape);
  const d = shape - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    let x: number;
    let v: number;
    do {
      x = normal(random);
      v = 1 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const u = 1 - random();
    // The squeeze accepts most draws without a logarithm.
    if (u < 1 - 0.0331 * x ** 4) return (d * v) / rate;
    if (Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return (d * v) / rate;
  }
}

export function beta(random: Random, a: number, b: number): number {
  const x = gamma(random, a);
  return x / (x + gamma(random, b));
}

export function exponential(random: Random, rate: number): number {
  return -Math.log(1 - random()) / rate;
}
