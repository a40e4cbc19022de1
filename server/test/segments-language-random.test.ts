import { Value } from '@sinclair/typebox/value';
import { describe, expect, it } from 'vitest';
import { ConditionSchema, type Condition } from '../src/segments/ast.ts';
import { createRng, randomCondition, type RandomSegmentOptions } from './support/random-segments.ts';

const VOCABULARY: RandomSegmentOptions = {
  events: ['Order Completed', 'Product Viewed', '下单'],
  properties: ['revenue', 'category', 'items.sku'],
  traits: ['city', 'age', 'birthday', '城市'],
  identifierTypes: ['email', 'phone'],
  consentCategories: ['sms', 'email'],
  segments: ['vip', 'churned'],
  maxDepth: 3,
};

/** Every node kind, operator and measure the generator produced, as "kind:detail" strings. */
function features(condition: Condition, into: Set<string>): Set<string> {
  const visit = (value: unknown, key: string): void => {
    if (Array.isArray(value)) return value.forEach((item) => visit(item, key));
    if (value === null || typeof value !== 'object') return;
    const node = value as Record<string, unknown>;
    if (typeof node.kind === 'string') into.add(`${key}:${node.kind}`);
    if (typeof node.op === 'string') into.add(`${key}.op:${node.op}`);
    if (node.kind === 'sequence') into.add(`sequence:negated=${String(node.negated)}`);
    for (const [child, item] of Object.entries(node)) visit(item, child);
  };
  visit(condition, 'root');
  return into;
}

describe('random segment generator', () => {
  it('produces schema-valid ASTs, deterministically per seed', () => {
    for (const exotic of [false, true]) {
      const rng = createRng(42);
      for (let i = 0; i < 2000; i += 1) {
        const condition = randomCondition(rng, { ...VOCABULARY, exotic });
        if (!Value.Check(ConditionSchema, condition)) {
          throw new Error(`invalid AST ${JSON.stringify(condition)}: ${JSON.stringify([...Value.Errors(ConditionSchema, condition)].slice(0, 3))}`);
        }
      }
    }
    expect(randomCondition(createRng(7), VOCABULARY)).toEqual(randomCondition(createRng(7), VOCABULARY));
  });

  it('covers every node kind, operator, measure, window and sequence shape', () => {
    const rng = createRng(1);
    const seen = new Set<string>();
    for (let i = 0; i < 3000; i += 1) features(randomCondition(rng, VOCABULARY), seen);
    const required = [
      ...['and', 'or', 'not', 'trait', 'event', 'sequence', 'identifier', 'segment', 'consent', 'bucket'].map((kind) => `root:${kind}`),
      ...['exists', 'count', 'sum', 'avg', 'min', 'max', 'distinct', 'first_time', 'last_time', 'first_value', 'last_value'].map((kind) => `measure:${kind}`),
      'window:last', 'window:range', 'sequence:negated=true', 'sequence:negated=false',
      ...['eq', 'neq', 'in', 'not_in', 'lt', 'lte', 'gt', 'gte', 'between', 'contains', 'starts_with', 'ends_with', 'matches', 'exists', 'missing', 'before', 'after', 'within_last', 'within_next', 'anniversary_within_next'].map((op) => `conditions.op:${op}`),
      ...['before', 'after', 'within_last'].map((op) => `test.op:${op}`),
    ];
    const missing = required.filter((feature) => !seen.has(feature) && !seen.has(feature.replace(/^root:/, 'conditions:')) && !seen.has(feature.replace(/^root:/, 'condition:')));
    expect(missing).toEqual([]);
  });

  it('never uses minutes or hours for anniversaries, and keeps ranges ordered outside exotic mode', () => {
    const rng = createRng(3);
    for (let i = 0; i < 2000; i += 1) {
      const text = JSON.stringify(randomCondition(rng, VOCABULARY));
      expect(text).not.toMatch(/"anniversary_within_next","duration":\{"amount":\d+,"unit":"(minutes|hours)"/);
      for (const match of text.matchAll(/"low":(-?[\d.e+-]+),"high":(-?[\d.e+-]+)/g)) expect(Number(match[1])).toBeLessThanOrEqual(Number(match[2]));
      for (const match of text.matchAll(/"from":(\d+),"to":(\d+)/g)) expect(Number(match[1])).toBeLessThanOrEqual(Number(match[2]));
    }
  });
});
