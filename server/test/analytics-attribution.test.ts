import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { conversionProbability, markovCredits, ruleCredits, ruleWeights, type Touch } from '../src/analytics/attribution-models.ts';
import { analyticsCaller, sendAndResolve } from './analytics-support.ts';
import { serverKey } from './profiles-support.ts';
import { startTestApp, type TestApp } from './support/app.ts';

const DAY = 86_400;
const options = { direct: 'direct', halfLifeSeconds: 7 * DAY };

describe('attribution models (pure)', () => {
  const path: Touch[] = [
    { channel: 'email', ageSeconds: 10 * DAY },
    { channel: 'sms', ageSeconds: 3 * DAY },
    { channel: 'direct', ageSeconds: DAY },
  ];

  it('splits one conversion by each rule', () => {
    expect(ruleWeights('first_touch', path, options)).toEqual([1, 0, 0]);
    expect(ruleWeights('last_touch', path, options)).toEqual([0, 0, 1]);
    expect(ruleWeights('last_non_direct', path, options)).toEqual([0, 1, 0]);
    expect(ruleWeights('last_non_direct', [{ channel: 'direct', ageSeconds: 1 }], options)).toEqual([1]);
    expect(ruleWeights('linear', path, options)).toEqual([1 / 3, 1 / 3, 1 / 3]);
    expect(ruleWeights('position_based', path, options)).toEqual([0.4, 0.2, 0.4]);
    expect(ruleWeights('position_based', path.slice(0, 2), options)).toEqual([0.5, 0.5]);
    // A touch one half-life older gets half the weight: 1/3 and 2/3.
    const decay = ruleWeights('time_decay', [{ channel: 'a', ageSeconds: 8 * DAY }, { channel: 'b', ageSeconds: DAY }], options);
    expect(decay[0]).toBeCloseTo(1 / 3, 12);
    expect(decay[1]).toBeCloseTo(2 / 3, 12);
  });

  it('adds credits and value over conversions', () => {
    const credits = ruleCredits('linear', [{ touches: path, value: 90 }, { touches: [path[1]!], value: 30 }], options);
    expect(credits).toEqual([
      { channel: 'sms', conversions: 1 + 1 / 3, value: 60 },
      { channel: 'direct', conversions: 1 / 3, value: 30 },
      { channel: 'email', conversions: 1 / 3, value: 30 },
    ]);
  });

  it('Markov: absorption probability and removal effects worked by hand', () => {
    // start→A 2, start→B 1; A→B 1, A→null 1; B→conversion 2 ⇒ p(A) = ½, p(start) = ⅔.
    const journeys = [
      { channels: ['A', 'B'], converted: true, count: 1 },
      { channels: ['A'], converted: false, count: 1 },
      { channels: ['B'], converted: true, count: 1 },
    ];
    expect(conversionProbability(journeys)).toBeCloseTo(2 / 3, 12);
    expect(conversionProbability(journeys, 'A')).toBeCloseTo(1 / 3, 12); // RE(A) = ½
    expect(conversionProbability(journeys, 'B')).toBe(0); // RE(B) = 1
    const credits = markovCredits(journeys, 2, 300);
    expect(credits.map((c) => c.channel)).toEqual(['B', 'A']);
    expect(credits[0]!.conversions).toBeCloseTo(4 / 3, 10);
    expect(credits[1]!.conversions).toBeCloseTo(2 / 3, 10);
    expect(credits[1]!.value).toBeCloseTo(100, 8);
    expect(credits[1]!.removalEffect).toBeCloseTo(0.5, 10);
  });
});

/*
 * Channel events as the channels stage writes them (docs/events.md), March 2026, UTC:
 *   m1: welcome email sent 1st, clicked; order 100 on the 2nd
 *   m2: welcome email sent 1st; order 50 on the 11th (outside a 7-day window)
 *   m3: promo sms sent 1st, clicked; order 30 on the 3rd
 *   m4: promo sms sent twice; no order       m5: order 20, no message
 */
describe('touchpoint performance and attribution over message events', () => {
  let t: TestApp;
  let post: ReturnType<typeof analyticsCaller>;
  let n = 0;
  const message = (userId: string, event: string, templateKey: string, channel: string, day: number, hour = 9) => ({
    type: 'track', event, userId, messageId: `msg-${++n}`, timestamp: `2026-03-${String(day).padStart(2, '0')}T${String(hour).padStart(2, '0')}:00:00Z`,
    properties: { message_id: `${userId}-${templateKey}`, channel, template_key: templateKey, purpose: 'marketing' },
  });
  const order = (userId: string, day: number, revenue: number) => ({
    type: 'track', event: 'Order Completed', userId, messageId: `o-${++n}`, timestamp: `2026-03-${String(day).padStart(2, '0')}T12:00:00Z`, properties: { revenue },
  });

  beforeAll(async () => {
    t = await startTestApp();
    post = analyticsCaller(t, await serverKey(t));
    await sendAndResolve(t, [
      message('m1', 'Message Sent', 'welcome', 'email', 1), message('m1', 'Message Clicked', 'welcome', 'email', 1, 10), order('m1', 2, 100),
      message('m2', 'Message Sent', 'welcome', 'email', 1), order('m2', 11, 50),
      message('m3', 'Message Sent', 'promo', 'sms', 1), message('m3', 'Message Clicked', 'promo', 'sms', 1, 10), order('m3', 3, 30),
      message('m4', 'Message Sent', 'promo', 'sms', 1), message('m4', 'Message Sent', 'promo', 'sms', 2),
      order('m5', 4, 20),
    ]);
  });
  afterAll(async () => t?.close());

  const range = { from: '2026-03-01', to: '2026-03-31' };

  it('ranks touchpoints by exposures, reach, clicks, CTR and conversions within the window', async () => {
    const result = await post('/v1/analytics/touchpoints', {
      range, conversion: { event: 'Order Completed' }, valueProperty: 'revenue', window: { amount: 7, unit: 'days' }, sort: 'value',
    });
    expect(result.touchpoints).toEqual([
      { touchpoint: 'welcome', exposures: 2, reach: 2, clicks: 1, clickers: 1, ctr: 0.5, conversions: 1, conversionRate: 0.5, value: 100 },
      { touchpoint: 'promo', exposures: 3, reach: 2, clicks: 1, clickers: 1, ctr: 1 / 3, conversions: 1, conversionRate: 0.5, value: 30 },
    ]);
    const byChannel = await post('/v1/analytics/touchpoints', { range, by: { kind: 'property', property: 'channel' }, sort: 'exposures' });
    expect(byChannel.touchpoints.map((r: { touchpoint: string; exposures: number }) => [r.touchpoint, r.exposures])).toEqual([['sms', 3], ['email', 2]]);
  });

  it('credits conversions to channels by every model', async () => {
    const result = await post('/v1/analytics/attribution', {
      range,
      conversion: { event: 'Order Completed' },
      valueProperty: 'revenue',
      touchpoints: [{ event: 'Message Sent' }, { event: 'Message Clicked' }],
      channel: { kind: 'property', property: 'channel' },
    });
    expect(result.conversions).toBe(4);
    expect(result.value).toBe(200);
    expect(result.unattributed).toEqual({ conversions: 1, value: 20 });
    // Paths: m1 [email, email] 100, m2 [email] 50, m3 [sms, sms] 30.
    expect(result.models.first_touch).toEqual([
      { channel: 'email', conversions: 2, value: 150 },
      { channel: 'sms', conversions: 1, value: 30 },
    ]);
    expect(result.models.linear).toEqual(result.models.first_touch);
    // Markov with m4's lost [sms, sms]: p(start) = ¾; without email ¼ (RE ⅔), without sms ½ (RE ⅓).
    const markov = Object.fromEntries(result.models.markov.map((c: { channel: string; conversions: number; value: number }) => [c.channel, c]));
    expect(markov.email.conversions).toBeCloseTo(2, 10);
    expect(markov.sms.conversions).toBeCloseTo(1, 10);
    expect(markov.email.value).toBeCloseTo(120, 8);
    expect(markov.sms.removalEffect).toBeCloseTo(1 / 3, 10);
  });
});
