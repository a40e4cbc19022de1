import { Value } from '@sinclair/typebox/value';
import { describe, expect, it } from 'vitest';
import { ApiError } from '../src/api/errors.ts';
import { ConditionSchema } from '../src/segments/ast.ts';
import { evaluateSegment } from '../src/segments/evaluate.ts';
import { checkSegment } from '../src/segments/language/check.ts';
import { parseSegment } from '../src/segments/language/parse.ts';
import { printSegment } from '../src/segments/language/print.ts';
import type { ProfileEvent, ProfileSnapshot } from '../src/segments/snapshot.ts';
import { instantiateTag, listTagTemplates, TAG_LIBRARY } from '../src/segments/tags/library.ts';

const SPEC_EVENTS = ['Product Viewed', 'Product Added', 'Checkout Started', 'Order Completed', 'Broadband Order Started', 'Broadband Order Completed'];
const CONTEXT = {
  events: SPEC_EVENTS.map((name) => ({ type: 'track', name })),
  traits: ['birthday'],
  identifierTypes: [],
  segments: [],
};

function apiError(run: () => unknown): ApiError {
  try {
    run();
  } catch (error) {
    if (error instanceof ApiError) return error;
    throw error;
  }
  throw new Error('expected an ApiError');
}

describe('tag library', () => {
  it('has the behaviours the issue asks for, each with English and Chinese names', () => {
    const templates = TAG_LIBRARY.map((entry) => entry.template);
    for (const required of ['browsed_category', 'cart_abandoned', 'process_abandoned', 'high_value', 'inactive', 'new_user', 'first_purchase', 'repeat_buyer', 'churn_risk', 'birthday_soon']) {
      expect(templates).toContain(required);
    }
    expect(new Set(templates).size).toBe(templates.length);
    for (const entry of TAG_LIBRARY) {
      for (const text of [entry.name.en, entry.name.zh, entry.description.en, entry.description.zh]) expect(text.length).toBeGreaterThan(0);
      expect(entry.name.zh).toMatch(/\p{Script=Han}/u);
    }
  });

  it('every template with its defaults parses, round-trips and checks with no errors or warnings', () => {
    for (const summary of listTagTemplates()) {
      const tag = instantiateTag(summary.template);
      expect(tag.key).toBe(summary.template);
      expect(tag.text).toBe(summary.exampleText);
      const parsed = parseSegment(tag.text);
      expect(parsed.ok, `${summary.template}: ${tag.text}`).toBe(true);
      expect(Value.Check(ConditionSchema, tag.condition)).toBe(true);
      expect(parseSegment(printSegment(tag.condition))).toStrictEqual({ ok: true, condition: tag.condition });
      expect(checkSegment(tag.condition, CONTEXT), summary.template).toStrictEqual({ errors: [], warnings: [] });
    }
  });

  it('fills parameters into the text, the names and a key that differs per parameter set', () => {
    const tag = instantiateTag('browsed_category', { category: '手机', period: '14d' });
    expect(tag.text).toBe('event("Product Viewed" where category = "手机").exists(within 14d)');
    expect(tag.name).toStrictEqual({ en: 'Browsed 手机', zh: '浏览过手机' });
    expect(tag.parameters).toStrictEqual({ category: '手机', period: '14d' });
    expect(tag.key).toMatch(/^browsed_category-手机-14d-[0-9a-f]{8}$/);
    expect(instantiateTag('inactive', { period: '2w' }).name).toStrictEqual({ en: 'Inactive 2 weeks', zh: '2周未活跃' });
    expect(instantiateTag('inactive', { period: '1d' }).name.en).toBe('Inactive 1 day');

    const a = instantiateTag('process_abandoned', { started_event: 'a-b', completed_event: 'c' });
    const b = instantiateTag('process_abandoned', { started_event: 'a', completed_event: 'b-c' });
    expect(a.key).not.toBe(b.key);
    const long = instantiateTag('process_abandoned', { started_event: '开始'.repeat(60), completed_event: 'x "quoted" \\ \n' });
    expect(long.key.length).toBeLessThanOrEqual(64);
    expect(long.key).toMatch(/^[^"\\\p{Cc}]+$/u);
    // The same parameters, spelled the same, give the same key; a default given explicitly is still the default.
    expect(instantiateTag('high_value', { threshold: 500 }).key).toBe(instantiateTag('high_value', { threshold: 500, period: '365d' }).key);
    expect(instantiateTag('high_value', { threshold: 1000 }).key).toBe('high_value');
  });

  it('keeps string parameters as values: quotes and keywords in them cannot change the condition', () => {
    const tag = instantiateTag('browsed_category', { category: 'x") or trait.vip exists or event("y' });
    expect(tag.condition).toStrictEqual({
      kind: 'event',
      match: { type: 'track', name: 'Product Viewed', filters: [{ property: 'category', op: 'eq', value: 'x") or trait.vip exists or event("y' }] },
      window: { kind: 'last', duration: { amount: 30, unit: 'days' } },
      measure: { kind: 'exists' },
    });
  });

  it('refuses bad parameters with the field at fault', () => {
    const cases: Array<[string, Record<string, unknown>, string, string]> = [
      ['browsed_category', { category: 42 }, 'parameters.category', 'expected text'],
      ['browsed_category', { category: '  ' }, 'parameters.category', 'cannot be empty'],
      ['browsed_category', { period: '30 days' }, 'parameters.period', 'duration such as'],
      ['browsed_category', { period: '0d' }, 'parameters.period', 'from 1 to 100000'],
      ['browsed_category', { colour: 'red' }, 'parameters.colour', 'no parameter "colour"'],
      ['high_value', { threshold: '1000' }, 'parameters.threshold', 'expected a number'],
      ['high_value', { threshold: -5 }, 'parameters.threshold', 'at least 0'],
      ['repeat_buyer', { min_orders: 2.5 }, 'parameters.min_orders', 'whole number'],
      ['repeat_buyer', { min_orders: 1 }, 'parameters.min_orders', 'at least 2'],
      ['birthday_soon', { period: '12h' }, 'parameters.period', 'use days or weeks'],
      ['first_purchase', { period: '7d' }, 'parameters.period', 'takes none'],
    ];
    for (const [template, params, field, message] of cases) {
      const error = apiError(() => instantiateTag(template, params));
      expect(error.statusCode, `${template} ${JSON.stringify(params)}`).toBe(400);
      expect(error.field).toBe(field);
      expect(error.message).toContain(message);
    }
    const unknown = apiError(() => instantiateTag('high_valu'));
    expect(unknown).toMatchObject({ statusCode: 400, field: 'template', code: 'unknown_tag_template' });
    expect(unknown.message).toContain('did you mean "high_value"');
  });
});

describe('tag meanings, through the incremental evaluator', () => {
  const DAY = 86_400_000;
  const NOW = Date.UTC(2024, 5, 15, 12);
  let seq = 0;
  const track = (event: string, daysAgo: number, properties: Record<string, unknown> = {}): ProfileEvent => ({
    seq: (seq += 1), type: 'track', event, name: null, timestamp: NOW - daysAgo * DAY, properties, context: null,
  });
  const page = (daysAgo: number): ProfileEvent => ({ seq: (seq += 1), type: 'page', event: null, name: 'Home', timestamp: NOW - daysAgo * DAY, properties: {}, context: null });
  const profile = (events: ProfileEvent[], traits: Record<string, unknown> = {}): ProfileSnapshot => ({
    profileId: '00000000-0000-0000-0000-000000000001', traits, identifierTypes: new Set(), consents: new Map(), memberships: new Set(), events,
  });
  const member = (template: string, snapshot: ProfileSnapshot, params: Record<string, unknown> = {}): boolean =>
    evaluateSegment(instantiateTag(template, params).condition, snapshot, NOW).member;

  it('cart abandoned: added within the period and no order within the wait after it', () => {
    expect(member('cart_abandoned', profile([track('Product Added', 2)]))).toBe(true);
    expect(member('cart_abandoned', profile([track('Product Added', 2), track('Order Completed', 1.9)]))).toBe(false);
    // The wait has not passed yet.
    expect(member('cart_abandoned', profile([track('Product Added', 0.5)]))).toBe(false);
    // Outside the period.
    expect(member('cart_abandoned', profile([track('Product Added', 10)]))).toBe(false);
  });

  it('inactive: active once, nothing within the period; new user: everything began within the period', () => {
    expect(member('inactive', profile([track('App Opened', 40), page(35)]))).toBe(true);
    expect(member('inactive', profile([track('App Opened', 40), page(3)]))).toBe(false);
    expect(member('inactive', profile([]))).toBe(false);
    expect(member('new_user', profile([page(2), track('Signed Up', 1)]))).toBe(true);
    expect(member('new_user', profile([page(20), track('Signed Up', 1)]))).toBe(false);
    expect(member('new_user', profile([]))).toBe(false);
  });

  it('purchases: first-time, repeat, high value, churn risk', () => {
    const once = profile([track('Order Completed', 100, { revenue: 600 })]);
    const twice = profile([track('Order Completed', 100, { revenue: 600 }), track('Order Completed', 95, { revenue: '500.5' })]);
    expect([member('first_purchase', once), member('first_purchase', twice)]).toStrictEqual([true, false]);
    expect([member('repeat_buyer', once), member('repeat_buyer', twice)]).toStrictEqual([false, true]);
    expect([member('high_value', once), member('high_value', twice)]).toStrictEqual([false, true]);
    expect([member('churn_risk', once), member('churn_risk', twice), member('churn_risk', twice, { quiet_period: '120d' })]).toStrictEqual([false, true, false]);
  });

  it('browsed category and birthday', () => {
    expect(member('browsed_category', profile([track('Product Viewed', 3, { category: '手机' })]), { category: '手机' })).toBe(true);
    expect(member('browsed_category', profile([track('Product Viewed', 3, { category: '电脑' })]), { category: '手机' })).toBe(false);
    expect(member('birthday_soon', profile([], { birthday: '1990-07-01' }))).toBe(true);
    expect(member('birthday_soon', profile([], { birthday: '1990-08-01' }))).toBe(false);
  });
});
