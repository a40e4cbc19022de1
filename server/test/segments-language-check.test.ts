import { describe, expect, it } from 'vitest';
import type { Condition } from '../src/segments/ast.ts';
import { checkSegment, regexProblem, type CheckContext } from '../src/segments/language/check.ts';
import { parseSegment } from '../src/segments/language/parse.ts';
import { segmentReferences } from '../src/segments/references.ts';
import { createRng, randomCondition, VALUE_POOLS } from './support/random-segments.ts';

const CONTEXT: CheckContext = {
  events: [
    { type: 'track', name: 'Order Completed' },
    { type: 'track', name: 'Product Viewed' },
    { type: 'page', name: 'Home' },
  ],
  traits: ['city', 'birthday', 'age'],
  identifierTypes: ['email', 'phone'],
  segments: ['vip', 'churned', 'self'],
  selfKey: 'self',
};

function parsed(text: string): Condition {
  const result = parseSegment(text);
  if (!result.ok) throw new Error(`${text}\n${JSON.stringify(result.error)}`);
  return result.condition;
}

function check(text: string) {
  return checkSegment(parsed(text), CONTEXT);
}

describe('checkSegment', () => {
  it('accepts a clean condition with no errors or warnings', () => {
    expect(
      check('trait.city = "上海" and event("Order Completed" where revenue > 1).count(within 90d) >= 3 and page("Home").exists() and has_identifier("email") and in_segment("vip") and trait.birthday anniversary within next 30d'),
    ).toStrictEqual({ errors: [], warnings: [] });
  });

  it('reports errors at JSON pointers into the AST', () => {
    const { errors } = check(
      [
        'trait.city matches "(?=x)"', // 0
        'trait.birthday before "2024-02-30"', // 1
        'trait.age between 5 and 1', // 2
        'random_bucket("x") between 50 and 10', // 3
        'trait.birthday anniversary within next 36h', // 4
        'in_segment("vipp")', // 5
        'in_segment("self")', // 6
        'has_identifier("emial")', // 7
        'event("Order Completed" where sku matches "\\\\bx").count(between "2024-02-01" and "2024-01-01") between 3 and 2', // 8
        'event("Order Completed").first_time() after "yesterday!!"', // 9
        'event("Order Completed").last_value(plan) matches "[[:alpha:]]"', // 10
      ].join(' and '),
    );
    expect(errors.map((issue) => [issue.path, issue.suggestion])).toStrictEqual([
      ['/conditions/0/pattern', undefined],
      ['/conditions/1/value', undefined],
      ['/conditions/2/low', undefined],
      ['/conditions/3/from', undefined],
      ['/conditions/4/duration/unit', undefined],
      ['/conditions/5/segment', 'vip'],
      ['/conditions/6/segment', undefined],
      ['/conditions/7/type', 'email'],
      ['/conditions/8/match/filters/0/pattern', undefined],
      ['/conditions/8/window/to', undefined],
      ['/conditions/8/measure/test/low', undefined],
      ['/conditions/9/measure/test/value', undefined],
      ['/conditions/10/measure/test/pattern', undefined],
    ]);
    expect(errors[0]!.message).toContain('Lookahead');
    expect(errors[1]!.message).toContain('"2024-02-30" is not a date');
    expect(errors[4]!.message).toContain('days or weeks');
    expect(errors[6]!.message).toContain('cannot contain itself');
  });

  it('warns about events and traits the workspace has not seen, suggesting the closest (an unnamed event() is any event)', () => {
    const { errors, warnings } = check('event("Order Complete").exists() and trait.ctiy exists and screen("Home").exists() and event().exists() and trait.城市 exists');
    expect(errors).toEqual([]);
    expect(warnings).toStrictEqual([
      { path: '/conditions/0/match/name', message: expect.stringContaining('did you mean "Order Completed"'), suggestion: 'Order Completed' },
      { path: '/conditions/1/trait', message: expect.stringContaining('did you mean "city"'), suggestion: 'city' },
      { path: '/conditions/2/match/name', message: expect.stringContaining('No screen view named "Home"'), suggestion: undefined },
      { path: '/conditions/4/trait', message: 'No profile has a trait "城市" yet' },
    ].map((issue) => (issue.suggestion === undefined ? { path: issue.path, message: issue.message } : issue)));
  });

  it('finds nothing wrong in random conditions over a known vocabulary', () => {
    const rng = createRng(11);
    const options = {
      events: ['Order Completed', 'Product Viewed'],
      properties: ['revenue'],
      traits: ['city', 'age'],
      identifierTypes: ['email', 'phone'],
      consentCategories: ['sms'],
      segments: ['vip'],
      maxDepth: 3,
    };
    for (let i = 0; i < 1000; i += 1) {
      const condition = randomCondition(rng, options);
      expect(checkSegment(condition, { ...CONTEXT, events: [...CONTEXT.events, { type: 'page', name: 'Product Viewed' }, { type: 'page', name: 'Order Completed' }] }).errors, JSON.stringify(condition)).toEqual([]);
    }
  });
});

describe('regexProblem', () => {
  it('accepts the portable subset, including every pattern the random generator uses', () => {
    for (const pattern of [...VALUE_POOLS.patterns, '^\\w+@\\w+\\.com$', '(?:ab)+', '\\s*', '[\\-+]?\\d{1,3}', 'a|b', '^$', '\\.', '[^0-9]']) {
      expect(regexProblem(pattern), pattern).toBeNull();
    }
  });

  it('refuses what JavaScript and PostgreSQL read differently, naming the construct', () => {
    const cases: Array<[string, string]> = [
      ['(?=a)', 'Lookahead'],
      ['(?<!a)b', 'Lookbehind'],
      ['(?<year>\\d{4})', 'Named groups'],
      ['(a)\\1', 'Backreferences'],
      ['\\bword', '\\b is a word boundary'],
      ['\\p{L}+', 'Unicode property'],
      ['/abc/i', 'without /slashes/'],
      ['(?i)abc', 'Inline flags'],
      ['[[:alpha:]]', 'POSIX class'],
      ['[]a]', 'first in a [...] class'],
      ['a{', 'literal brace'],
      ['a{1,300}', 'above 255'],
      ['\\x41', 'write the character itself'],
      ['[\\D.]', 'negated class'],
      ['\\A', 'not a portable escape'],
      ['(', 'Not a valid regular expression'],
      ['a\\', 'lone backslash'],
    ];
    for (const [pattern, problem] of cases) expect(regexProblem(pattern), pattern).toContain(problem);
  });
});

describe('segmentReferences', () => {
  it('lists what a condition reads, once each, and whether time alone can change it', () => {
    const references = segmentReferences(
      parsed('trait.address.city = "上海" and (in_segment("vip") or not in_segment("vip")) and event("A").count(since "2024-01-01") > 1 and event("A").exists() and page().exists() and has_identifier("email") and consent("sms") and trait.age > 3'),
    );
    expect(references).toStrictEqual({
      segments: ['vip'],
      events: [{ type: 'track', name: 'A', filters: [] }, { type: 'page', filters: [] }],
      traits: ['address', 'age'],
      identifierTypes: ['email'],
      consentCategories: ['sms'],
      timeDependent: false,
    });
  });

  it('is time-dependent for sliding windows, relative dates, anniversaries and negated sequences only', () => {
    const timeDependent = (text: string): boolean => segmentReferences(parsed(text)).timeDependent;
    expect(timeDependent('event("A").exists(within 7d)')).toBe(true);
    expect(timeDependent('event("A").last_time() within last 7d')).toBe(true);
    expect(timeDependent('event("A").last_value(at) within next 7d')).toBe(true);
    expect(timeDependent('event("A" where at within last 1d).exists()')).toBe(true);
    expect(timeDependent('not trait.birthday anniversary within next 7d')).toBe(true);
    expect(timeDependent('event("A") then not event("B") within 1d')).toBe(true);
    expect(timeDependent('event("A") then event("B") within 1d starting within 30d')).toBe(true);
    expect(timeDependent('event("A") then event("B") within 1d')).toBe(false);
    expect(timeDependent('event("A").first_time() before "2024-01-01" and trait.x after "2024-01-01"')).toBe(false);
    expect(timeDependent('event("A").count(between "2024-01-01" and "2024-02-01") > 1')).toBe(false);
  });
});
