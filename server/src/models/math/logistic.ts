/*
 * L2-regularised logistic regression fitted by Newton's method (IRLS): the penalised
 * log-likelihood is concave, so Newton converges to its unique maximum in a few steps for the
 * tens of features the propensity models use. The intercept is not penalised. Features should be
 * standardised by the caller (standardize below) so one penalty suits all of them.
 */

export interface LogisticModel {
  intercept: number;
  coefficients: number[];
  iterations: number;
  converged: boolean;
}

export interface LogisticOptions {
  /** L2 penalty λ: the objective is Σ log-likelihood − λ/2 · ‖β‖². */
  l2?: number;
  maxIterations?: number;
  /** Per-row weights (default 1). */
  weights?: readonly number[];
}

export const sigmoid = (z: number): number => (z >= 0 ? 1 / (1 + Math.exp(-z)) : Math.exp(z) / (1 + Math.exp(z)));

export function predictLogistic(model: Pick<LogisticModel, 'intercept' | 'coefficients'>, row: readonly number[]): number {
  let z = model.intercept;
  for (let j = 0; j < model.coefficients.length; j++) z += model.coefficients[j]! * row[j]!;
  return sigmoid(z);
}

export function fitLogistic(rows: readonly (readonly number[])[], labels: readonly number[], options: LogisticOptions = {}): LogisticModel {
  const n = rows.length;
  if (n === 0 || labels.length !== n) throw new RangeError('fitLogistic needs as many labels as rows, and at least one row');
  const p = rows[0]!.length;
  const dim = p + 1;
  const l2 = options.l2 ?? 1;
  const maxIterations = options.maxIterations ?? 50;
  const beta = new Array<number>(dim).fill(0);
  let converged = false;
  let iterations = 0;
  for (; iterations < maxIterations; iterations++) {
    const gradient = new Array<number>(dim).fill(0);
    const hessian = Array.from({ length: dim }, () => new Array<number>(dim).fill(0));
    for (let i = 0; i < n; i++) {
      const row = rows[i]!;
      const w = options.weights?.[i] ?? 1;
      let z = beta[0]!;
      for (let j = 0; j < p; j++) z += beta[j + 1]! * row[j]!;
      const mu = sigmoid(z);
      const residual = w * (labels[i]! - mu);
      const curvature = w * mu * (1 - mu);
      for (let j = 0; j < dim; j++) {
        const xj = j === 0 ? 1 : row[j - 1]!;
        gradient[j]! += residual * xj;
        if (curvature === 0) continue;
        const hj = hessian[j]!;
        for (let k = 0; k <= j; k++) hj[k]! += curvature * xj * (k === 0 ? 1 : row[k - 1]!);
      }
    }
    for (let j = 1; j < dim; j++) {
      gradient[j]! -= l2 * beta[j]!;
      hessian[j]![j]! += l2;
    }
    for (let j = 0; j < dim; j++) for (let k = j + 1; k < dim; k++) hessian[j]![k] = hessian[k]![j]!;
    // Guard the intercept's curvature: all-one-class labels make it vanish.
    hessian[0]![0]! += 1e-9;
    const step = solveSymmetric(hessian, gradient);
    let largest = 0;
    for (let j = 0; j < dim; j++) {
      beta[j]! += step[j]!;
      largest = Math.max(largest, Math.abs(step[j]!));
    }
    if (largest < 1e-9) {
      converged = true;
      iterations++;
      break;
    }
  }
  return { intercept: beta[0]!, coefficients: beta.slice(1), iterations, converged };
}

/** Solves A x = b for symmetric positive definite A by Cholesky (A is copied). */
export function solveSymmetric(matrix: readonly (readonly number[])[], rhs: readonly number[]): number[] {
  const n = rhs.length;
  const L = Array.from({ length: n }, () => new Array<number>(n).fill(0));
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let sum = matrix[i]![j]!;
      for (let k = 0; k < j; k++) sum -= L[i]![k]! * L[j]![k]!;
      if (i === j) L[i]![i] = Math.sqrt(Math.max(sum, 1e-12));
      else L[i]![j] = sum / L[j]![j]!;
    }
  }
  const y = new Array<number>(n).fill(0);
  for (let i = 0; i < n; i++) {
    let sum = rhs[i]!;
    for (let k = 0; k < i; k++) sum -= L[i]![k]! * y[k]!;
    y[i] = sum / L[i]![i]!;
  }
  const x = new Array<number>(n).fill(0);
  for (let i = n - 1; i >= 0; i--) {
    let sum = y[i]!;
    for (let k = i + 1; k < n; k++) sum -= L[k]![i]! * x[k]!;
    x[i] = sum / L[i]![i]!;
  }
  return x;
}

export interface Standardizer {
  means: number[];
  scales: number[];
}

/** Column means and standard deviations (a constant column gets scale 1, so it maps to 0). */
export function standardizer(rows: readonly (readonly number[])[]): Standardizer {
  const p = rows[0]?.length ?? 0;
  const means = new Array<number>(p).fill(0);
  const scales = new Array<number>(p).fill(0);
  for (const row of rows) for (let j = 0; j < p; j++) means[j]! += row[j]! / rows.length;
  for (const row of rows) for (let j = 0; j < p; j++) scales[j]! += (row[j]! - means[j]!) ** 2 / rows.length;
  return { means, scales: scales.map((v) => (v > 1e-12 ? Math.sqrt(v) : 1)) };
}

export function standardize(s: Standardizer, row: readonly number[]): number[] {
  return row.map((v, j) => (v - s.means[j]!) / s.scales[j]!);
}
