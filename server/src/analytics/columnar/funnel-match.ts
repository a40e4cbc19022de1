/**
 * The per-profile funnel matcher of migration 0042 (`analytics_funnel_match`), the same meaning
 * restated in TypeScript for the columnar engine: one profile's candidate events in (time, seq)
 * order as parallel arrays (`ts` in any unit, `masks` with bit k for step k + 1 and bit 20 + x for
 * exclusion x), a slice [from, to) of them. Returns the indexes (into the arrays) of the best
 * attempt's hits: most steps, then the earliest start; empty when no start qualifies.
 *
 * Kept line by line beside the PL/pgSQL so the two cannot drift in meaning:
 * server/test/analytics-columnar.test.ts runs both engines on the same data.
 */
export type FunnelOrder = 'sequential' | 'strict' | 'any';

export interface MatchSpec {
  steps: number;
  /** Conversion window, in the unit of `ts`. */
  window: number;
  order: FunnelOrder;
  /** Starts at or after this (unit of `ts`) do not count: the range end. */
  startBefore: number;
  /** 0-based step indexes of each exclusion (fromStep − 1, toStep − 1). */
  exclusionFrom: readonly number[];
  exclusionTo: readonly number[];
}

const EXCLUSION_BIT = 20;

/** Lowest set bit index of `value` (value ≠ 0, at most 31 bits used by steps). */
function lowestBit(value: number): number {
  return 31 - Math.clz32(value & -value);
}

export function matchFunnel(ts: ArrayLike<number>, masks: ArrayLike<number>, from: number, to: number, spec: MatchSpec, pointers: Int32Array): number[] {
  const { steps, window, order } = spec;
  const fullMask = steps >= 31 ? -1 : (1 << steps) - 1;
  let best: number[] = [];
  pointers.fill(0, 0, Math.max(steps, 1));
  for (let i = from; i < to; i++) {
    if (ts[i]! >= spec.startBefore) break;
    const mask = masks[i]!;
    if (order !== 'any' ? (mask & 1) === 0 : (mask & fullMask) === 0) continue;
    const deadline = ts[i]! + window;
    const attempt = [i];
    let ranOut = false;
    if (order === 'sequential') {
      let p = i;
      for (let k = 1; k < steps; k++) {
        const bit = 1 << k;
        let q = pointers[k]!;
        if (q <= p) q = p + 1;
        while (q < to && (masks[q]! & bit) === 0) q++;
        pointers[k] = q;
        if (q >= to) {
          ranOut = true;
          break;
        }
        if (ts[q]! > deadline) break;
        attempt.push(q);
        p = q;
      }
    } else {
      let seen = order === 'any' ? 1 << lowestBit(mask & fullMask) : 1;
      // 0042 takes the lowest set bit of the whole mask for the start; a start's step bits are
      // below the exclusion bits, and it qualified on (mask & fullMask) ≠ 0, so this is the same bit.
      let nextStep = 1;
      for (let j = i + 1; j < to; j++) {
        if (ts[j]! > deadline || attempt.length === steps) break;
        const m = masks[j]!;
        if (order === 'any') {
          const free = m & fullMask & ~seen;
          if (free !== 0) {
            seen |= 1 << lowestBit(free);
            attempt.push(j);
          }
        } else if ((m & (1 << nextStep)) !== 0) {
          attempt.push(j);
          nextStep++;
        } else if (order === 'strict') {
          break;
        }
      }
    }
    let disqualified = false;
    for (let x = 0; x < spec.exclusionFrom.length && !disqualified; x++) {
      const fromStep = spec.exclusionFrom[x]!;
      const toStep = spec.exclusionTo[x]!;
      if (attempt.length <= fromStep) continue;
      const spanStart = attempt[fromStep]!;
      const spanEnd = attempt.length > toStep ? attempt[toStep]! : to;
      const bit = 1 << (EXCLUSION_BIT + x);
      for (let j = spanStart + 1; j < spanEnd; j++) {
        if (ts[j]! > deadline) break;
        if ((masks[j]! & bit) !== 0) {
          disqualified = true;
          break;
        }
      }
    }
    if (disqualified) continue;
    if (attempt.length > best.length) best = attempt;
    if (best.length === steps || ranOut) break;
  }
  return best;
}
