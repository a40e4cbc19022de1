/*
 * A seeded random source and the distributions the simulations draw from (tests and benchmarks
 * generate data from known model parameters, then check the fits recover them).
 */

/** mulberry32: a small, fast, seeded generator of uniforms in [0, 1). */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function normal(random: () => number): number {
  const u = 1 - random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
}

/** Gamma(shape, rate) by Marsaglia–Tsang (shape < 1 boosted by U^(1/shape)). */
export function gamma(random: () => number, shape: number, rate: number): number {
  if (shape < 1) return gamma(random, shape + 1, rate) * Math.pow(random(), 1 / shape);
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
    const u = random();
    if (Math.log(u) < 0.5 * x * x + d - d * v + d * Math.log(v)) return (d * v) / rate;
  }
}

export function beta(random: () => number, a: number, b: number): number {
  const x = gamma(random, a, 1);
  return x / (x + gamma(random, b, 1));
}

export function exponential(random: () => number, rate: number): number {
  return -Math.log(1 - random()) / rate;
}
