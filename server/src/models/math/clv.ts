import { bgNbdConditionalExpectedPurchases, type BgNbdParams, type RfmSummary } from './bgnbd.ts';

/**
 * Discounted customer lifetime value over `horizonWeeks`: the expected purchases in each week
 * after T (differences of the BG/NBD conditional expectation) times the expected value per
 * purchase, each discounted to today at `annualDiscountRate` (weekly rate (1+d)^(1/52) − 1).
 */
export function customerLifetimeValue(
  params: BgNbdParams,
  customer: RfmSummary,
  expectedSpend: number,
  horizonWeeks: number,
  annualDiscountRate: number,
): number {
  const weekly = Math.pow(1 + annualDiscountRate, 1 / 52) - 1;
  let value = 0;
  let before = 0;
  const weeks = Math.ceil(horizonWeeks);
  for (let k = 1; k <= weeks; k++) {
    const until = Math.min(k, horizonWeeks);
    const expected = bgNbdConditionalExpectedPurchases(params, customer, until);
    value += ((expected - before) * expectedSpend) / Math.pow(1 + weekly, k);
    before = expected;
  }
  return value;
}
