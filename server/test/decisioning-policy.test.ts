import { describe, expect, it } from 'vitest';
import { allocationFromDraws, pickWeighted, posterior, posteriorDraws, stableUnit, thompsonAllocation, type ArmStats } from '../src/decisioning/bandit.ts';
import { beta, seededRandom } from '../src/models/math/random.ts';
import { choose, EMPTY_VIEW, inHoldout, isEligible, type CompiledContent, type CompiledPlacement, type DecideFacts } from '../src/decisioning/policy.ts';
import { parseSegment } from '../src/segments/language/parse.ts';
import type { Condition } from '../src/segments/ast.ts';

const condition = (text: string): Condition => {
  const parsed = parseSegment(text);
  if (!parsed.ok) throw new Error(parsed.error.message);
  return parsed.condition;
};

const content = (key: string, extra: Partial<CompiledContent> = {}): CompiledContent => ({
  key,
  name: null,
  payload: { title: key },
  eligibility: null,
  priority: 0,
  weight: 1,
  startsAt: null,
  endsAt: null,
  cap: null,
  recommendations: null,
  ...extra,
});

const placement = (extra: Partial<CompiledPlacement> = {}): CompiledPlacement => ({
  id: '00000000-0000-4000-8000-000000000001',
  workspaceId: '00000000-0000-4000-8000-0000000000aa',
  key: 'app_home_banner',
  policy: 'rules',
  goal: 'click',
  minExploration: 0.1,
  holdoutPercent: 0,
  stickyMs: 24 * 3_600_000,
  status: 'active',
  version: 1,
  contents: [content('a'), content('b')],
  ...extra,
});

const facts = (p: CompiledPlacement, extra: Partial<DecideFacts> = {}): DecideFacts => ({
  placement: p,
  view: EMPTY_VIEW,
  subject: 'profile-1',
  now: Date.parse('2026-03-01T00:00:00Z'),
  impressionsOf: () => [],
  sticky: null,
  allocation: (keys) => new Map(keys.map((k) => [k, 1 / keys.length])),
  random: seededRandom(1),
  ...extra,
});

describe('Beta posteriors and Thompson sampling', () => {
  it('samples Beta(a, b) with the right mean and variance', () => {
    const random = seededRandom(7);
    for (const [a, b] of [
      [2, 5],
      [0.5, 0.5],
      [30, 970],
    ] as const) {
      const n = 40_000;
      let sum = 0;
      let squares = 0;
      let outside = 0;
      for (let i = 0; i < n; i++) {
        const x = beta(random, a, b);
        if (!(x >= 0 && x <= 1)) outside++;
        sum += x;
        squares += x * x;
      }
      expect(outside).toBe(0);
      const mean = sum / n;
      const variance = squares / n - mean * mean;
      expect(mean).toBeCloseTo(a / (a + b), 2);
      expect(variance / ((a * b) / ((a + b) ** 2 * (a + b + 1)))).toBeGreaterThan(0.93);
      expect(variance / ((a * b) / ((a + b) ** 2 * (a + b + 1)))).toBeLessThan(1.07);
    }
  });

  it('uses a uniform prior and ignores impossible counts', () => {
    expect(posterior({ key: 'a', trials: 10, successes: 3 })).toEqual({ alpha: 4, beta: 8 });
    expect(posterior({ key: 'a', trials: 2, successes: 5 })).toEqual({ alpha: 3, beta: 1 });
  });

  it('keeps the exploration floor and sums to one', () => {
    const arms: ArmStats[] = [
      { key: 'good', trials: 10_000, successes: 1_000 },
      { key: 'bad', trials: 10_000, successes: 100 },
      { key: 'worse', trials: 10_000, successes: 50 },
    ];
    const allocation = thompsonAllocation(arms, 0.15, seededRandom(3));
    expect([...allocation.values()].reduce((a, b) => a + b, 0)).toBeCloseTo(1, 10);
    expect(allocation.get('bad')).toBeCloseTo(0.05, 3);
    expect(allocation.get('worse')).toBeCloseTo(0.05, 3);
    expect(allocation.get('good')).toBeCloseTo(0.9, 3);
    // With no data every arm is equally likely.
    const fresh = thompsonAllocation(arms.map((a) => ({ ...a, trials: 0, successes: 0 })), 0, seededRandom(4), 20_000);
    for (const share of fresh.values()) expect(share).toBeGreaterThan(0.3);
  });

  it('shares one set of posterior draws between eligible subsets, agreeing with a direct allocation', () => {
    const arms: ArmStats[] = [
      { key: 'a', trials: 200, successes: 20 },
      { key: 'b', trials: 200, successes: 26 },
      { key: 'c', trials: 50, successes: 3 },
    ];
    const samples = posteriorDraws(arms, seededRandom(5), 20_000);
    const shared = allocationFromDraws(samples, 3, [0, 1, 2], 0.1);
    const direct = thompsonAllocation(arms, 0.1, seededRandom(6), 20_000);
    shared.forEach((share, i) => expect(share).toBeCloseTo(direct.get(arms[i]!.key)!, 1));
    // A subset (c not eligible for this profile): only a and b, still with the floor.
    const subset = allocationFromDraws(samples, 3, [0, 1], 0.1);
    expect(subset[0]! + subset[1]!).toBeCloseTo(1, 10);
    expect(subset[0]!).toBeGreaterThanOrEqual(0.05);
    expect(subset[1]!).toBeGreaterThan(subset[0]!);
  });

  it('picks by cumulative weight and reports the probability', () => {
    const weights = [
      ['x', 1],
      ['y', 3],
      ['z', 0],
    ] as const;
    expect(pickWeighted(weights, 0.1)).toEqual({ key: 'x', probability: 0.25 });
    expect(pickWeighted(weights, 0.25)).toEqual({ key: 'y', probability: 0.75 });
    expect(pickWeighted(weights, 0.999)).toEqual({ key: 'y', probability: 0.75 });
  });

  /**
   * A simulated placement: four banners with true click-through rates; the policy's posteriors are
   * refreshed every 200 impressions (as the server folds reported clicks in batches). Regret is
   * the expected clicks lost against always showing the best banner.
   */
  function simulate(policy: 'bandit' | 'uniform', seed: number) {
    const ctr = new Map([
      ['a', 0.02],
      ['b', 0.03],
      ['c', 0.05],
      ['d', 0.08],
    ]);
    const best = Math.max(...ctr.values());
    const random = seededRandom(seed);
    const stats = new Map([...ctr.keys()].map((key) => [key, { key, trials: 0, successes: 0 }]));
    let allocation = new Map([...ctr.keys()].map((key) => [key, 0.25]));
    let regret = 0;
    const rounds = 20_000;
    const shown = new Map<string, number>();
    for (let t = 0; t < rounds; t++) {
      if (policy === 'bandit' && t % 200 === 0) allocation = thompsonAllocation([...stats.values()], 0.05, random, 500);
      const { key } = pickWeighted([...allocation], random());
      shown.set(key, (shown.get(key) ?? 0) + 1);
      const arm = stats.get(key)!;
      arm.trials++;
      if (random() < ctr.get(key)!) arm.successes++;
      regret += best - ctr.get(key)!;
    }
    return { regret, shown, allocation };
  }

  it('has far lower regret than uniform allocation on simulated click-through rates, and keeps exploring', () => {
    for (const seed of [11, 12, 13]) {
      const bandit = simulate('bandit', seed);
      const uniform = simulate('uniform', seed);
      expect(bandit.regret).toBeLessThan(uniform.regret * 0.5);
      // The best arm gets most of the traffic; the floor keeps 5% / 4 for each other arm.
      expect(bandit.shown.get('d')! / 20_000).toBeGreaterThan(0.5);
      for (const key of ['a', 'b', 'c']) expect(bandit.allocation.get(key)!).toBeGreaterThanOrEqual(0.0125 - 1e-9);
    }
  });
});

describe('placement policy', () => {
  const view = {
    profileId: 'p1',
    traits: { city: '上海', tier: 'gold' },
    identifierTypes: new Set(['email']),
    consents: new Map([['sms', true]]),
    memberships: new Set(['vip']),
  };

  it('evaluates eligibility in the segment language over memberships and traits', () => {
    const now = Date.parse('2026-03-01T00:00:00Z');
    expect(isEligible(content('x', { eligibility: condition('in_segment("vip") and trait.city = "上海"') }), view, now, [])).toBe(true);
    expect(isEligible(content('x', { eligibility: condition('in_segment("churned")') }), view, now, [])).toBe(false);
    expect(isEligible(content('x', { eligibility: condition('trait.tier in ("gold", "platinum") and consent("sms")') }), view, now, [])).toBe(true);
    expect(isEligible(content('x', { eligibility: condition('not has_identifier("email")') }), view, now, [])).toBe(false);
  });

  it('respects the schedule and the per-profile cap', () => {
    const now = Date.parse('2026-03-01T00:00:00Z');
    expect(isEligible(content('x', { startsAt: now + 1 }), view, now, [])).toBe(false);
    expect(isEligible(content('x', { endsAt: now }), view, now, [])).toBe(false);
    expect(isEligible(content('x', { startsAt: now, endsAt: now + 1 }), view, now, [])).toBe(true);
    const cap = { impressions: 2, withinMs: 3_600_000 };
    expect(isEligible(content('x', { cap }), view, now, [now - 10, now - 20])).toBe(false);
    // An impression older than the window no longer counts.
    expect(isEligible(content('x', { cap }), view, now, [now - 10, now - 3_600_001])).toBe(true);
  });

  it('rules: the highest-priority eligible content wins, propensity 1', () => {
    const p = placement({
      contents: [
        content('generic', { priority: 0 }),
        content('vip_offer', { priority: 10, eligibility: condition('in_segment("vip")') }),
        content('churn_offer', { priority: 20, eligibility: condition('in_segment("churned")') }),
      ],
    });
    const choice = choose(facts(p, { view }));
    expect(choice).toMatchObject({ holdout: false, propensity: 1, reason: 'chosen' });
    expect(choice.content?.key).toBe('vip_offer');
    expect(choose(facts(p)).content?.key).toBe('generic');
    const capped = choose(facts(p, { view, impressionsOf: (key) => (key === 'vip_offer' ? [Date.parse('2026-03-01T00:00:00Z') - 1] : []) }));
    expect(capped.content?.key).toBe('vip_offer');
    const p2 = placement({ contents: [content('only', { eligibility: condition('in_segment("churned")') })] });
    expect(choose(facts(p2, { view }))).toMatchObject({ content: null, reason: 'no_eligible_content' });
    expect(choose(facts(placement({ status: 'paused' })))).toMatchObject({ content: null, reason: 'paused' });
  });

  it('ab: sticky per subject and split by weight', () => {
    const p = placement({ policy: 'ab', contents: [content('a', { weight: 1 }), content('b', { weight: 3 })] });
    const counts = new Map<string, number>();
    for (let i = 0; i < 8_000; i++) {
      const subject = `profile-${i}`;
      const first = choose(facts(p, { subject, random: seededRandom(i) }));
      const again = choose(facts(p, { subject, random: seededRandom(i + 99_999) }));
      expect(again.content?.key).toBe(first.content?.key);
      counts.set(first.content!.key, (counts.get(first.content!.key) ?? 0) + 1);
      expect(first.propensity).toBe(first.content!.key === 'a' ? 0.25 : 0.75);
    }
    expect(counts.get('a')! / 8_000).toBeGreaterThan(0.23);
    expect(counts.get('a')! / 8_000).toBeLessThan(0.27);
  });

  it('bandit: draws from the allocation, then keeps the sticky assignment while it is eligible and fresh', () => {
    const p = placement({ policy: 'bandit', contents: [content('a'), content('b', { eligibility: condition('in_segment("vip")') })] });
    const allocation = () => new Map([['a', 0.2], ['b', 0.8]]);
    const first = choose(facts(p, { view, allocation, random: () => 0.5 }));
    expect(first).toMatchObject({ reason: 'chosen', propensity: 0.8, variant: 'b' });
    expect(first.assign).toMatchObject({ contentKey: 'b', propensity: 0.8 });
    const now = Date.parse('2026-03-01T00:00:00Z');
    const sticky = { contentKey: 'a', propensity: 0.2, assignedAt: now - 1_000 };
    // The allocation now favours b, but the profile keeps a.
    for (let i = 0; i < 50; i++) {
      expect(choose(facts(p, { view, allocation, sticky, random: seededRandom(i) }))).toMatchObject({ reason: 'sticky', variant: 'a', propensity: 0.2, assign: null });
    }
    // Expired or no longer eligible: drawn again.
    const expired = { ...sticky, assignedAt: now - p.stickyMs };
    expect(choose(facts(p, { view, allocation, sticky: expired, random: () => 0.5 }))).toMatchObject({ reason: 'chosen', variant: 'b' });
    const stuckOnB = { contentKey: 'b', propensity: 0.8, assignedAt: now - 1_000 };
    expect(choose(facts(p, { sticky: stuckOnB, allocation, random: () => 0.5 }))).toMatchObject({ reason: 'chosen', variant: 'a', propensity: 1 });
  });

  it('holdout: a stable share of subjects, the same ones every time, who get no content', () => {
    const p = placement({ policy: 'bandit', holdoutPercent: 10 });
    let held = 0;
    for (let i = 0; i < 20_000; i++) {
      const subject = `visitor-${i}`;
      const choice = choose(facts(p, { subject, random: seededRandom(i) }));
      expect(choice.holdout).toBe(inHoldout(p, subject));
      if (choice.holdout) {
        held++;
        expect(choice).toMatchObject({ content: null, reason: 'holdout', assign: null });
        // A sticky assignment from before never leaks past the holdout.
        const sticky = { contentKey: 'a', propensity: 1, assignedAt: Date.parse('2026-03-01T00:00:00Z') };
        expect(choose(facts(p, { subject, sticky })).content).toBeNull();
      }
    }
    expect(held / 20_000).toBeGreaterThan(0.09);
    expect(held / 20_000).toBeLessThan(0.11);
    // Another placement holds out other subjects (independent hashes).
    const other = placement({ id: '00000000-0000-4000-8000-000000000002', holdoutPercent: 10 });
    let both = 0;
    for (let i = 0; i < 20_000; i++) if (inHoldout(p, `visitor-${i}`) && inHoldout(other, `visitor-${i}`)) both++;
    expect(both / 20_000).toBeLessThan(0.02);
    expect(stableUnit('s', 'x')).toBe(stableUnit('s', 'x'));
  });
});
