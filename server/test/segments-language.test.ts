import { Value } from '@sinclair/typebox/value';
import { describe, expect, it } from 'vitest';
import { ConditionSchema, type Condition } from '../src/segments/ast.ts';
import { parseSegment, type SegmentSyntaxError } from '../src/segments/language/parse.ts';
import { printSegment } from '../src/segments/language/print.ts';
import { createRng, randomCondition, type RandomSegmentOptions } from './support/random-segments.ts';

const VOCABULARY: RandomSegmentOptions = {
  events: ['Order Completed', 'Product Viewed', '下单', 'App Opened'],
  properties: ['revenue', 'category', 'items.sku', '城市'],
  traits: ['city', 'age', 'birthday', '会员等级'],
  identifierTypes: ['email', 'phone'],
  consentCategories: ['sms', 'email'],
  segments: ['vip', 'churned'],
  maxDepth: 4,
};

function parsed(text: string): Condition {
  const result = parseSegment(text);
  if (!result.ok) throw new Error(`${text}\n${JSON.stringify(result.error)}`);
  return result.condition;
}

function parseError(text: string): SegmentSyntaxError {
  const result = parseSegment(text);
  if (result.ok) throw new Error(`expected a syntax error for ${text}, got ${JSON.stringify(result.condition)}`);
  return result.error;
}

const ISSUE_EXAMPLE =
  'trait.city = "上海" and event("Order Completed").count(within 90d) >= 3 and event("Order Completed").sum(revenue, within 90d) > 500 and event("App Opened").exists(within 7d) and consent("sms") and not in_segment("churned")';

describe('segment language round-trip', () => {
  it('prints and parses back 3,000 random ASTs, ordinary and exotic, to the same AST', () => {
    const rng = createRng(20_240_601);
    for (let i = 0; i < 3000; i += 1) {
      const condition = randomCondition(rng, { ...VOCABULARY, exotic: i % 3 === 0 });
      const text = printSegment(condition);
      const back = parseSegment(text);
      if (!back.ok) throw new Error(`case ${i}: ${text}\n${JSON.stringify(back.error)}`);
      expect(back.condition, text).toStrictEqual(condition);
      // Printing is canonical: the text of the parsed AST is the same text.
      expect(printSegment(back.condition)).toBe(text);
    }
  });

  it('keeps the AST nesting that precedence alone would lose, with parentheses only where needed', () => {
    const a: Condition = { kind: 'consent', category: 'a' };
    const b: Condition = { kind: 'consent', category: 'b' };
    const c: Condition = { kind: 'consent', category: 'c' };
    const cases: Array<[Condition, string]> = [
      [{ kind: 'or', conditions: [{ kind: 'and', conditions: [a, b] }, c] }, 'consent("a") and consent("b") or consent("c")'],
      [{ kind: 'and', conditions: [{ kind: 'or', conditions: [a, b] }, c] }, '(consent("a") or consent("b")) and consent("c")'],
      [{ kind: 'and', conditions: [{ kind: 'and', conditions: [a, b] }, c] }, '(consent("a") and consent("b")) and consent("c")'],
      [{ kind: 'not', condition: { kind: 'and', conditions: [a, b] } }, 'not (consent("a") and consent("b"))'],
      [{ kind: 'not', condition: { kind: 'not', condition: a } }, 'not not consent("a")'],
      [{ kind: 'and', conditions: [a] }, 'and(consent("a"))'],
      [{ kind: 'or', conditions: [{ kind: 'or', conditions: [a] }, b] }, 'or(consent("a")) or consent("b")'],
    ];
    for (const [condition, text] of cases) {
      expect(printSegment(condition)).toBe(text);
      expect(parsed(text)).toStrictEqual(condition);
    }
  });
});

describe('parseSegment', () => {
  it("parses the issue's example to the AST it means", () => {
    const orderCompleted = { type: 'track', name: 'Order Completed', filters: [] };
    const last90d = { kind: 'last', duration: { amount: 90, unit: 'days' } };
    expect(parsed(ISSUE_EXAMPLE)).toStrictEqual({
      kind: 'and',
      conditions: [
        { kind: 'trait', trait: 'city', op: 'eq', value: '上海' },
        { kind: 'event', match: orderCompleted, window: last90d, measure: { kind: 'count', test: { op: 'gte', value: 3 } } },
        { kind: 'event', match: orderCompleted, window: last90d, measure: { kind: 'sum', property: 'revenue', test: { op: 'gt', value: 500 } } },
        { kind: 'event', match: { type: 'track', name: 'App Opened', filters: [] }, window: { kind: 'last', duration: { amount: 7, unit: 'days' } }, measure: { kind: 'exists' } },
        { kind: 'consent', category: 'sms' },
        { kind: 'not', condition: { kind: 'segment', segment: 'churned' } },
      ],
    });
    expect(printSegment(parsed(ISSUE_EXAMPLE))).toBe(ISSUE_EXAMPLE);
  });

  it('reads Chinese identifiers and values, backquoted paths, case-insensitive keywords and the Unicode operators', () => {
    expect(parsed('trait.城市 = "北京"')).toStrictEqual({ kind: 'trait', trait: '城市', op: 'eq', value: '北京' });
    expect(parsed('trait.`order count` ≥ 2.5')).toStrictEqual({ kind: 'trait', trait: 'order count', op: 'gte', value: 2.5 });
    expect(parsed('trait.address.`a``b` ≠ true')).toStrictEqual({ kind: 'trait', trait: 'address.a`b', op: 'neq', value: true });
    expect(parsed('TRAIT.age BETWEEN -1 AND 1e2 Or Not Consent("邮件")')).toStrictEqual({
      kind: 'or',
      conditions: [
        { kind: 'trait', trait: 'age', op: 'between', low: -1, high: 100 },
        { kind: 'not', condition: { kind: 'consent', category: '邮件' } },
      ],
    });
    expect(parsed('trait.tier not in ("金卡", 3, false)')).toStrictEqual({ kind: 'trait', trait: 'tier', op: 'not_in', values: ['金卡', 3, false] });
    expect(parsed('trait.birthday anniversary within next 2w')).toStrictEqual({
      kind: 'trait', trait: 'birthday', op: 'anniversary_within_next', duration: { amount: 2, unit: 'weeks' },
    });
  });

  it('reads event filters with and, between inside a filter, context paths, page() and screen views', () => {
    expect(parsed('event("Product Viewed" where category = "鞋" and price between 1 and 2.5 and context.campaign.source = "wechat").count(since "2024-01-01") >= 2')).toStrictEqual({
      kind: 'event',
      match: {
        type: 'track',
        name: 'Product Viewed',
        filters: [
          { property: 'category', op: 'eq', value: '鞋' },
          { property: 'price', op: 'between', low: 1, high: 2.5 },
          { property: 'context.campaign.source', op: 'eq', value: 'wechat' },
        ],
      },
      window: { kind: 'range', from: '2024-01-01' },
      measure: { kind: 'count', test: { op: 'gte', value: 2 } },
    });
    expect(parsed('page().exists(within 30m) and screen("首页" where x exists).last_time() within last 2h')).toStrictEqual({
      kind: 'and',
      conditions: [
        { kind: 'event', match: { type: 'page', filters: [] }, window: { kind: 'last', duration: { amount: 30, unit: 'minutes' } }, measure: { kind: 'exists' } },
        { kind: 'event', match: { type: 'screen', name: '首页', filters: [{ property: 'x', op: 'exists' }] }, measure: { kind: 'last_time', test: { op: 'within_last', duration: { amount: 2, unit: 'hours' } } } },
      ],
    });
  });

  it('reads every measure and window form', () => {
    const measure = (text: string): unknown => {
      const condition = parsed(text);
      return condition.kind === 'event' ? [condition.window, condition.measure] : condition;
    };
    expect(measure('event("A").avg(price, between "2024-01-01" and "2024-02-01") between 1 and 2')).toStrictEqual([
      { kind: 'range', from: '2024-01-01', to: '2024-02-01' }, { kind: 'avg', property: 'price', test: { op: 'between', low: 1, high: 2 } },
    ]);
    expect(measure('event("A").distinct(sku, until "2024-02-01") != 0')).toStrictEqual([
      { kind: 'range', to: '2024-02-01' }, { kind: 'distinct', property: 'sku', test: { op: 'neq', value: 0 } },
    ]);
    expect(measure('event("A").count(all time) = 1')).toStrictEqual([{ kind: 'range' }, { kind: 'count', test: { op: 'eq', value: 1 } }]);
    expect(measure('event("A").first_value(plan, within 1w) starts_with "pro"')).toStrictEqual([
      { kind: 'last', duration: { amount: 1, unit: 'weeks' } }, { kind: 'first_value', property: 'plan', test: { op: 'starts_with', value: 'pro' } },
    ]);
    expect(measure('event("A").first_time() before "2024-01-01T08:00:00+08:00"')).toStrictEqual([
      undefined, { kind: 'first_time', test: { op: 'before', value: '2024-01-01T08:00:00+08:00' } },
    ]);
  });

  it('reads sequences, negated or not, with a starting window', () => {
    expect(parsed('event("Product Added") then not event("Order Completed") within 24h starting within 7d')).toStrictEqual({
      kind: 'sequence',
      first: { type: 'track', name: 'Product Added', filters: [] },
      then: { type: 'track', name: 'Order Completed', filters: [] },
      negated: true,
      within: { amount: 24, unit: 'hours' },
      window: { kind: 'last', duration: { amount: 7, unit: 'days' } },
    });
    expect(parsed('event("A") then event("B") within 1d and consent("x")')).toMatchObject({ kind: 'and', conditions: [{ kind: 'sequence', negated: false }, { kind: 'consent' }] });
  });

  it('spans lines and reads strings with escapes', () => {
    const condition = parsed('trait.note = "say \\"hi\\"\\n"\n  and\n  random_bucket("exp") between 0 and 49');
    expect(condition).toStrictEqual({
      kind: 'and',
      conditions: [{ kind: 'trait', trait: 'note', op: 'eq', value: 'say "hi"\n' }, { kind: 'bucket', salt: 'exp', from: 0, to: 49 }],
    });
  });

  it('always returns schema-valid ASTs', () => {
    for (const text of [ISSUE_EXAMPLE, 'has_identifier("email") or in_segment("vip")', 'trait.x matches "^a"']) {
      expect(Value.Check(ConditionSchema, parsed(text))).toBe(true);
    }
  });
});

describe('syntax errors', () => {
  it('an unknown word, with the closest keyword as a suggestion', () => {
    expect(parseError('trait.a exists and evnt("Order Completed").exists()')).toMatchObject({
      line: 1, column: 20, offset: 19, length: 4, suggestion: 'event', message: expect.stringContaining('did you mean "event"'),
    });
    expect(parseError('event("A").cnt() > 1')).toMatchObject({ column: 12, suggestion: 'count' });
    expect(parseError('segment("vip")')).toMatchObject({ column: 1, suggestion: 'in_segment' });
  });

  it('an unknown operator word suggests the operator', () => {
    expect(parseError('trait.city equals "上海"')).toMatchObject({ line: 1, column: 12, length: 6, suggestion: '=', message: expect.stringContaining('did you mean "="') });
    expect(parseError('trait.city startswith "上"')).toMatchObject({ suggestion: 'starts_with' });
    expect(parseError('trait.city == "x"')).toMatchObject({ column: 12, length: 2, suggestion: '=' });
  });

  it('an unterminated string points at its opening quote, on its line', () => {
    expect(parseError('trait.a exists\nand trait.city = "上海\nand consent("sms")')).toMatchObject({
      line: 2, column: 18, offset: 32, message: expect.stringContaining('Unterminated string'),
    });
  });

  it('a missing ) says which ( it should close', () => {
    const error = parseError('(trait.a exists or\n  trait.b exists');
    expect(error).toMatchObject({ line: 2, column: 17, length: 0, expected: [')'] });
    expect(error.message).toContain('line 1, column 1');
    expect(parseError('event("A".exists()')).toMatchObject({ column: 10, expected: [')'] });
  });

  it('a number where a string is required', () => {
    expect(parseError('consent(5)')).toMatchObject({ column: 9, length: 1, suggestion: '"5"', message: expect.stringContaining('found the number 5') });
    expect(parseError('event(42).exists()')).toMatchObject({ column: 7, message: expect.stringContaining('double quotes') });
  });

  it('an invalid duration unit, and units written out', () => {
    expect(parseError('event("A").exists(within 90x)')).toMatchObject({ column: 28, length: 1, message: expect.stringContaining('Invalid duration unit "x"') });
    expect(parseError('event("A").exists(within 3mo)')).toMatchObject({ message: expect.stringContaining('use days') });
    expect(parseError('event("A").exists(within 7days)')).toMatchObject({ suggestion: '7d' });
    expect(parseError('event("A").exists(within 7 days)')).toMatchObject({ suggestion: '7d' });
    expect(parseError('event("A").exists(within 0d)')).toMatchObject({ message: expect.stringContaining('from 1 to 100000') });
  });

  it('trailing input after a complete condition', () => {
    expect(parseError('trait.a exists trait.b exists')).toMatchObject({ column: 16, length: 5, expected: ['and', 'or'] });
    expect(parseError('trait.a exists)')).toMatchObject({ column: 15, message: expect.stringContaining('no "("') });
  });

  it('other mistakes marketers make', () => {
    expect(parseError('')).toMatchObject({ line: 1, column: 1, message: expect.stringContaining('empty') });
    expect(parseError('trait.city = 上海')).toMatchObject({ column: 14, suggestion: '"上海"' });
    expect(parseError('trait.city = “上海”')).toMatchObject({ column: 14, message: expect.stringContaining('straight double quotes') });
    expect(parseError('event("A" where a = 1 or b = 2).exists()')).toMatchObject({ column: 23, message: expect.stringContaining('only be joined with "and"') });
    expect(parseError('event("A")')).toMatchObject({ column: 11, expected: ['.', 'then'] });
    expect(parseError('random_bucket("x") between 0 and 100')).toMatchObject({ column: 34, message: expect.stringContaining('0 to 99') });
    expect(parseError('trait.a > "5"')).toMatchObject({ column: 11, message: expect.stringContaining('Expected a number') });
    expect(parseError('trait.a in ()')).toMatchObject({ column: 13, message: expect.stringContaining('at least one value') });
    expect(parseError('trait.`a.b` exists')).toMatchObject({ column: 7, message: expect.stringContaining('cannot contain a dot') });
    expect(parseError('trait.a = "\\q"')).toMatchObject({ column: 12, message: expect.stringContaining('Invalid escape') });
    expect(parseError('event("A").sum(within 7d) > 1')).toMatchObject({ column: 16, message: expect.stringContaining('needs the property') });
    expect(parseError(`trait.a = "${'x'.repeat(1001)}"`)).toMatchObject({ column: 11, message: expect.stringContaining('at most 1000') });
  });

  it('refuses absurd nesting without throwing', () => {
    expect(parseError(`${'('.repeat(5000)}consent("a")${')'.repeat(5000)}`).message).toContain('nested too deeply');
    expect(parseError(`${'not '.repeat(5000)}consent("a")`).message).toContain('nested too deeply');
  });

  it('never throws on arbitrary input', () => {
    const rng = createRng(99);
    const alphabet = ['trait.', 'event(', '"', ')', '(', ' and ', ' or ', 'not ', '90d', '=', '≥', 'between ', '1', '上海', '`', '\\', '\n', '.', ',', 'where ', 'count(', 'x'];
    for (let i = 0; i < 3000; i += 1) {
      const text = Array.from({ length: rng.int(0, 12) }, () => rng.pick(alphabet)).join('');
      const result = parseSegment(text);
      if (!result.ok) {
        expect(result.error.offset).toBeGreaterThanOrEqual(0);
        expect(result.error.offset).toBeLessThanOrEqual(text.length);
        expect(result.error.line).toBeGreaterThanOrEqual(1);
        expect(result.error.column).toBeGreaterThanOrEqual(1);
      } else {
        expect(Value.Check(ConditionSchema, result.condition)).toBe(true);
      }
    }
  });
});
