import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chanceToBeat, chiSquareSurvival, chiSquareTest, compareProportions, normalCdf, normalQuantile, sequentialDecision } from '../src/analytics/stats.ts';
import { analyticsCaller, sendAndResolve } from './analytics-support.ts';
import { serverKey } from './profiles-support.ts';
import { startTestApp, type TestApp } from './support/app.ts';

describe('statistics (pure)', () => {
  it('normal and chi-square distributions match table values', () => {
    expect(normalCdf(1.96)).toBeCloseTo(0.975, 5);
    expect(normalCdf(-2.5758)).toBeCloseTo(0.005, 5);
    expect(normalQuantile(0.975)).toBeCloseTo(1.959964, 5);
    expect(normalQuantile(0.001)).toBeCloseTo(-3.090232, 5);
    expect(chiSquareSurvival(3.841459, 1)).toBeCloseTo(0.05, 5);
    expect(chiSquareSurvival(5.991465, 2)).toBeCloseTo(0.05, 5);
    expect(chiSquareSurvival(11.0705, 5)).toBeCloseTo(0.05, 4);
  });

  it('two-proportion test worked by hand: 200/1000 vs 150/1000', () => {
    // pooled 0.175, SE = √(0.175 · 0.825 · 2/1000) = 0.016993 → z = 0.05 / 0.016993 = 2.9424, p = 0.00326.
    // Unpooled SE = √(0.2 · 0.8/1000 + 0.15 · 0.85/1000) = 0.016956 → 95 % CI 0.05 ± 0.033233.
    const result = compareProportions({ converted: 200, total: 1000 }, { converted: 150, total: 1000 });
    expect(result.absoluteUplift).toBeCloseTo(0.05, 12);
    expect(result.relativeUplift).toBeCloseTo(1 / 3, 12);
    expect(result.z).toBeCloseTo(2.9424, 3);
    expect(result.pValue).toBeCloseTo(0.00326, 4);
    expect(result.confidenceInterval[0]).toBeCloseTo(0.05 - 0.033233, 5);
    expect(result.confidenceInterval[1]).toBeCloseTo(0.05 + 0.033233, 5);
    // With two groups the chi-square statistic is z² and gives the same p-value.
    const chi = chiSquareTest([{ converted: 200, total: 1000 }, { converted: 150, total: 1000 }]);
    expect(chi.statistic).toBeCloseTo(result.z ** 2, 8);
    expect(chi.pValue).toBeCloseTo(result.pValue, 5);
  });

  it('chance to beat: exact small cases and agreement of the exact sum with the normal approximation', () => {
    // Beta(2,1) vs Beta(1,2): ∫ 2x · (2x − x²) dx = 5/6.
    expect(chanceToBeat({ converted: 1, total: 1 }, { converted: 0, total: 1 })).toBeCloseTo(5 / 6, 10);
    expect(chanceToBeat({ converted: 40, total: 100 }, { converted: 40, total: 100 })).toBeCloseTo(0.5, 10);
    const exact = chanceToBeat({ converted: 400, total: 2000 }, { converted: 360, total: 2000 });
    const approx = chanceToBeat({ converted: 6000, total: 30000 }, { converted: 5400, total: 30000 });
    expect(exact).toBeGreaterThan(0.9);
    expect(exact).toBeLessThan(0.99);
    expect(approx).toBeGreaterThan(0.9999);
  });

  it('sequential boundary: an early look needs far stronger evidence', () => {
    // Quarter of the planned size: boundary 1.96 / √0.25 = 3.92.
    const early = sequentialDecision(2.5, 250, 1000);
    expect(early.decision).toBe('keep_running');
    expect(early.boundary).toBeCloseTo(3.919928, 5);
    expect(sequentialDecision(2.5, 1000, 1000).decision).toBe('significant');
    expect(sequentialDecision(1.5, 1200, 1000).decision).toBe('not_significant');
    expect(sequentialDecision(2.5, 250, undefined).decision).toBe('no_plan');
  });
});

/*
 * Journey j1 as the journey engine records it (docs/events.md), March 2026:
 *   treatment: i1 (split A, converted), i2 (B, converted), i3 (A, exits at email-1), i4 (B, converted)
 *   holdout:   i5 (converted), i6
 * Messages sent at email-1 for i1, i2, i3.
 */
describe('journey and experiment results', () => {
  let t: TestApp;
  let post: ReturnType<typeof analyticsCaller>;
  let n = 0;
  const ev = (instance: string, event: string, day: number, properties: Record<string, unknown> = {}) => ({
    type: 'track', event, userId: `user-${instance}`, messageId: `j-${++n}`, timestamp: `2026-03-${String(day).padStart(2, '0')}T10:00:00Z`,
    properties: { journey_id: 'j1', journey_key: 'welcome', journey_version: 1, instance_id: instance, ...properties },
  });

  beforeAll(async () => {
    t = await startTestApp();
    post = analyticsCaller(t, await serverKey(t));
    const batch: unknown[] = [];
    for (const [instance, group] of [['i1', 'treatment'], ['i2', 'treatment'], ['i3', 'treatment'], ['i4', 'treatment'], ['i5', 'holdout'], ['i6', 'holdout']]) {
      batch.push(ev(instance!, 'Journey Entered', 1, { entry: 'event', group }));
    }
    for (const [instance, variant] of [['i1', 'A'], ['i2', 'B'], ['i3', 'A'], ['i4', 'B']]) batch.push(ev(instance!, 'Journey Split Assigned', 2, { node_id: 'split-1', variant }));
    for (const instance of ['i1', 'i2', 'i3']) batch.push(ev(instance, 'Message Sent', 3, { node_id: 'email-1', message_id: `m-${instance}`, channel: 'email', template_key: 'w1', purpose: 'marketing' }));
    batch.push(ev('i3', 'Journey Exited', 4, { node_id: 'email-1', reason: 'completed' }));
    for (const instance of ['i1', 'i2', 'i4', 'i5']) batch.push(ev(instance, 'Journey Converted', 5, { node_id: 'goal', goal: 'g-order' }));
    await sendAndResolve(t, batch);
  });
  afterAll(async () => t?.close());

  const range = { from: '2026-03-01', to: '2026-03-31' };

  it('per journey: holdout vs treatment uplift, split variants and events per node', async () => {
    const result = await post('/v1/analytics/journeys', { range, journeyId: 'j1', plannedSampleSize: 100 });
    expect(result.entered).toBe(6);
    expect(result.groups.control).toBe('holdout');
    expect(result.groups.variants).toEqual([
      { variant: 'holdout', total: 2, converted: 1, conversionRate: 0.5 },
      { variant: 'treatment', total: 4, converted: 3, conversionRate: 0.75 },
    ]);
    const [comparison] = result.groups.comparisons;
    expect(comparison.absoluteUplift).toBeCloseTo(0.25, 12);
    expect(comparison.relativeUplift).toBeCloseTo(0.5, 12);
    expect(comparison.decision).toBe('keep_running'); // 2 of 100 planned
    expect(result.splits).toHaveLength(1);
    expect(result.splits[0].result.variants).toEqual([
      { variant: 'A', total: 2, converted: 1, conversionRate: 0.5 },
      { variant: 'B', total: 2, converted: 2, conversionRate: 1 },
    ]);
    expect(result.nodes).toEqual([
      { nodeId: 'email-1', counts: { 'Journey Exited:completed': 1, 'Message Sent': 3 } },
      { nodeId: 'goal', counts: { 'Journey Converted': 4 } },
      { nodeId: 'split-1', counts: { 'Journey Split Assigned:A': 2, 'Journey Split Assigned:B': 2 } },
    ]);
    const otherGoal = await post('/v1/analytics/journeys', { range, journeyId: 'j1', goal: 'g-other' });
    expect(otherGoal.groups.variants.map((v: { converted: number }) => v.converted)).toEqual([0, 0]);
    expect(otherGoal.warnings.map((w: { field: string }) => w.field)).toContain('plannedSampleSize');
  });

  it('generic A/B from assignment and conversion events, with the control named', async () => {
    const result = await post('/v1/analytics/experiments', {
      range,
      assignment: { event: 'Journey Split Assigned' },
      variantProperty: 'variant',
      conversion: { event: 'Journey Converted' },
      control: 'A',
    });
    expect(result.variants.map((v: { variant: string; total: number; converted: number }) => [v.variant, v.total, v.converted])).toEqual([
      ['A', 2, 1],
      ['B', 2, 2],
    ]);
    expect(result.comparisons[0].variant).toBe('B');
    expect(result.chiSquare.degreesOfFreedom).toBe(1);
    const unknown = await post('/v1/analytics/experiments', { range, assignment: { event: 'Journey Split Assigned' }, variantProperty: 'variant', conversion: { event: 'Journey Converted' }, control: 'Z' }, 400);
    expect(unknown).toMatchObject({ error: 'unknown_variant', field: 'control' });
  });
});
