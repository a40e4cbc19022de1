import type { BgNbdParams } from './bgnbd.ts';
import type { GammaGammaParams } from './gamma-gamma.ts';
import { beta, exponential, gamma } from './random.ts';

/*
 * Purchase histories drawn from known BG/NBD and Gamma-Gamma parameters, for the recovery tests
 * and the benchmark: each customer's first purchase is at time 0 and they are observed for T.
 */

export interface SimulatedCustomer {
  /** Times of the purchases after the first, in (0, T + holdout]. */
  purchases: number[];
  /** Value of the first purchase and of each later one (same order). */
  values: number[];
  T: number;
}

export function simulateCustomers(
  random: () => number,
  count: number,
  bgnbd: BgNbdParams,
  spend: GammaGammaParams,
  observe: (i: number) => number,
  horizonAfterT = 0,
): SimulatedCustomer[] {
  const customers: SimulatedCustomer[] = [];
  for (let i = 0; i < count; i++) {
    const T = observe(i);
    const lambda = gamma(random, bgnbd.r, bgnbd.alpha);
    const p = beta(random, bgnbd.a, bgnbd.b);
    const nu = gamma(random, spend.q, spend.gamma);
    const purchases: number[] = [];
    const values = [gamma(random, spend.p, nu)];
    let time = 0;
    // Alive after the first purchase; after each repeat purchase the customer leaves with
    // probability p (the paper's likelihood: (1−p)^x survives x repeat purchases).
    for (;;) {
      time += exponential(random, lambda);
      if (time > T + horizonAfterT) break;
      purchases.push(time);
      values.push(gamma(random, spend.p, nu));
      if (random() < p) break;
    }
    customers.push({ purchases, values, T });
  }
  return customers;
}
