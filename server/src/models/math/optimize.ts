/*
 * Nelder–Mead simplex minimisation (Lagarias et al. 1998 coefficients: reflection 1, expansion 2,
 * contraction 0.5, shrink 0.5). Derivative-free, so a likelihood only needs a value; the models
 * optimise over log-parameters, which keeps every parameter positive without constraints.
 */

export interface MinimizeOptions {
  /** Initial simplex step per coordinate. */
  step?: number;
  maxIterations?: number;
  /** Stop when the simplex's function values and points are this close. */
  tolerance?: number;
}

export interface MinimizeResult {
  x: number[];
  value: number;
  iterations: number;
  converged: boolean;
}

export function nelderMead(f: (x: readonly number[]) => number, start: readonly number[], options: MinimizeOptions = {}): MinimizeResult {
  const n = start.length;
  const step = options.step ?? 0.5;
  const maxIterations = options.maxIterations ?? 2000 * n;
  const tolerance = options.tolerance ?? 1e-10;
  // A NaN or infinite value (a parameter far outside where the likelihood is finite) is worst.
  const value = (x: readonly number[]) => {
    const v = f(x);
    return Number.isFinite(v) ? v : Infinity;
  };
  let simplex = [start.slice()];
  for (let i = 0; i < n; i++) {
    const point = start.slice();
    point[i] = point[i]! + step;
    simplex.push(point);
  }
  let values = simplex.map(value);
  let iterations = 0;
  let converged = false;
  for (; iterations < maxIterations; iterations++) {
    const order = values.map((_, i) => i).sort((i, j) => values[i]! - values[j]!);
    simplex = order.map((i) => simplex[i]!);
    values = order.map((i) => values[i]!);
    const spread = Math.abs(values[n]! - values[0]!);
    const size = Math.max(...simplex.slice(1).map((p) => Math.max(...p.map((c, k) => Math.abs(c - simplex[0]![k]!)))));
    if (spread <= tolerance * (Math.abs(values[0]!) + tolerance) && size <= 1e-8) {
      converged = true;
      break;
    }
    const centroid = new Array<number>(n).fill(0);
    for (let i = 0; i < n; i++) for (let k = 0; k < n; k++) centroid[k]! += simplex[i]![k]! / n;
    const worst = simplex[n]!;
    const along = (t: number) => centroid.map((c, k) => c + t * (c - worst[k]!));
    const reflected = along(1);
    const fr = value(reflected);
    if (fr < values[0]!) {
      const expanded = along(2);
      const fe = value(expanded);
      if (fe < fr) [simplex[n], values[n]] = [expanded, fe];
      else [simplex[n], values[n]] = [reflected, fr];
      continue;
    }
    if (fr < values[n - 1]!) {
      [simplex[n], values[n]] = [reflected, fr];
      continue;
    }
    const outside = fr < values[n]!;
    const contracted = along(outside ? 0.5 : -0.5);
    const fc = value(contracted);
    if (fc < (outside ? fr : values[n]!)) {
      [simplex[n], values[n]] = [contracted, fc];
      continue;
    }
    for (let i = 1; i <= n; i++) {
      simplex[i] = simplex[i]!.map((c, k) => simplex[0]![k]! + 0.5 * (c - simplex[0]![k]!));
      values[i] = value(simplex[i]!);
    }
  }
  const best = values.indexOf(Math.min(...values));
  return { x: simplex[best]!, value: values[best]!, iterations, converged };
}

/**
 * Nelder–Mead from several starts, each restarted once from where it stopped (a collapsed simplex
 * can stall short of the optimum); the best result wins.
 */
export function minimizeFromStarts(f: (x: readonly number[]) => number, starts: readonly (readonly number[])[], options: MinimizeOptions = {}): MinimizeResult {
  let best: MinimizeResult | null = null;
  for (const start of starts) {
    const first = nelderMead(f, start, options);
    const restarted = nelderMead(f, first.x, { ...options, step: 0.1 });
    const result = { ...restarted, iterations: first.iterations + restarted.iterations };
    if (!best || result.value < best.value) best = result;
  }
  if (!best) throw new RangeError('minimizeFromStarts needs at least one start');
  return best;
}
