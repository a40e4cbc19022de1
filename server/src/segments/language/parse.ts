import { Value } from '@sinclair/typebox/value';
import { ConditionSchema, type Condition, type Duration, type EventMatch, type Measure, type PropertyFilter, type Scalar, type ValueOperator, type Window } from '../ast.ts';
import { closest } from './suggest.ts';

/*
 * The text form of a segment, read by hand-written recursive descent straight off the characters
 * (no separate tokenizer: what a word means depends on where it stands — `trait.and` is a path,
 * `90d` a duration). The grammar is in docs/segments-language.md; the points worth knowing here:
 *
 * - Precedence: not > and > or. A parenthesised group stays one node, so `(a and b) and c` keeps
 *   its nesting; `and(x)` / `or(x)` write a group of one (legal in the AST, so it must print).
 * - `and` is also part of `between A and B` and joins `where` filters. Neither is ambiguous: a
 *   `between` always takes exactly one `and` for its upper bound, and filters sit inside
 *   `event(...)`, so their `and`s end at the `)`.
 * - The parser accepts exactly what the AST schema accepts (lengths, counts, integer ranges) and no
 *   more meaning: a reversed range or an unreadable date parses, and checkSegment reports it. So
 *   every schema-valid AST prints to text that parses back to it.
 * - Positions are UTF-16 offsets, as editors count them; line and column are 1-based.
 */

export interface SegmentSyntaxError {
  message: string;
  line: number;
  column: number;
  offset: number;
  length: number;
  expected?: string[];
  suggestion?: string;
}

export type ParseSegmentResult = { ok: true; condition: Condition } | { ok: false; error: SegmentSyntaxError };

interface Failure {
  offset: number;
  length: number;
  message: string;
  expected?: string[];
  suggestion?: string;
}

const FAILURE = Symbol('segment syntax failure');
type ThrownFailure = Error & { [FAILURE]: Failure };

function fail(failure: Failure): never {
  throw Object.assign(new Error(failure.message), { [FAILURE]: failure });
}

function isFailure(error: unknown): error is ThrownFailure {
  return error instanceof Error && FAILURE in error;
}

interface Cursor {
  readonly text: string;
  pos: number;
  depth: number;
}

/** Parentheses and `not`s nested deeper than this are refused rather than risking the stack. */
const MAX_NESTING = 200;
const MAX_JOINED = 100;
const MAX_FILTERS = 20;
const MAX_LIST = 1000;

export function parseSegment(text: string): ParseSegmentResult {
  const cursor: Cursor = { text, pos: 0, depth: 0 };
  try {
    skipSpace(cursor);
    if (atEnd(cursor)) fail({ offset: 0, length: 0, message: 'The segment is empty: write a condition, e.g. trait.city = "上海"', expected: PRIMARY_STARTS });
    const condition = parseOr(cursor);
    skipSpace(cursor);
    if (!atEnd(cursor)) {
      const token = tokenAt(cursor);
      const closing = cursor.text[cursor.pos] === ')';
      fail({
        offset: cursor.pos,
        length: token.length,
        message: closing
          ? 'Unexpected ")": there is no "(" for it to close'
          : `Unexpected ${token.description} after a complete condition: join conditions with "and" or "or"`,
        expected: ['and', 'or'],
      });
    }
    // A backstop: the checks above mirror the schema, this catches any that drifted from it.
    if (!Value.Check(ConditionSchema, condition)) {
      const first = Value.Errors(ConditionSchema, condition).First();
      fail({ offset: 0, length: text.length, message: `The condition is not valid: ${first ? `${first.path || '/'}: ${first.message}` : 'schema check failed'}` });
    }
    return { ok: true, condition };
  } catch (error) {
    if (isFailure(error)) return { ok: false, error: locate(text, error[FAILURE]) };
    if (error instanceof RangeError) return { ok: false, error: locate(text, { offset: 0, length: text.length, message: 'The segment is nested too deeply' }) };
    throw error;
  }
}

function locate(text: string, failure: Failure): SegmentSyntaxError {
  const before = text.slice(0, failure.offset);
  const line = before.split('\n').length;
  const column = failure.offset - (before.lastIndexOf('\n') + 1) + 1;
  return {
    message: failure.message,
    line,
    column,
    offset: failure.offset,
    length: failure.length,
    ...(failure.expected ? { expected: failure.expected } : {}),
    ...(failure.suggestion !== undefined ? { suggestion: failure.suggestion } : {}),
  };
}

// ---------------------------------------------------------------------------------------------
// Characters and tokens

const WORD = /[\p{L}\p{N}\p{M}_]+/uy;
const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const DURATION = /(\d+)([\p{L}_]*)/uy;
/** Look-alikes typed on Chinese and other keyboards, with what the language wants instead. */
const LOOK_ALIKES: Record<string, string> = { '“': '"', '”': '"', '＂': '"', '「': '"', '」': '"', '（': '(', '）': ')', '，': ',', '．': '.', '。': '.', '＝': '=', '＞': '>', '＜': '<', '‘': '"', '’': '"' };

function atEnd(c: Cursor): boolean {
  return c.pos >= c.text.length;
}

function skipSpace(c: Cursor): void {
  while (c.pos < c.text.length && /\s/u.test(c.text[c.pos]!)) c.pos += 1;
}

interface Word {
  text: string;
  lower: string;
  start: number;
  end: number;
}

function peekWord(c: Cursor): Word | null {
  skipSpace(c);
  WORD.lastIndex = c.pos;
  const match = WORD.exec(c.text);
  if (!match) return null;
  return { text: match[0], lower: match[0].toLowerCase(), start: c.pos, end: c.pos + match[0].length };
}

function atKeyword(c: Cursor, keyword: string): boolean {
  return peekWord(c)?.lower === keyword;
}

function takeKeyword(c: Cursor, keyword: string): boolean {
  const word = peekWord(c);
  if (word?.lower !== keyword) return false;
  c.pos = word.end;
  return true;
}

function expectKeyword(c: Cursor, keyword: string, context: string): void {
  if (takeKeyword(c, keyword)) return;
  const token = tokenAt(c);
  const word = peekWord(c);
  const near = word && closest(word.text, [keyword]) ? keyword : undefined;
  fail({
    offset: c.pos,
    length: token.length,
    message: `Expected "${keyword}" ${context}, found ${token.description}${near ? `; did you mean "${keyword}"?` : ''}`,
    expected: [keyword],
    ...(near ? { suggestion: near } : {}),
  });
}

function peekChar(c: Cursor): string | undefined {
  skipSpace(c);
  return c.text[c.pos];
}

function takeChar(c: Cursor, char: string): boolean {
  if (peekChar(c) !== char) return false;
  c.pos += 1;
  return true;
}

function expectChar(c: Cursor, char: string, context: string): void {
  if (takeChar(c, char)) return;
  const token = tokenAt(c);
  const lookAlike = LOOK_ALIKES[c.text[c.pos] ?? ''] === char;
  fail({
    offset: c.pos,
    length: token.length,
    message: lookAlike
      ? `Use a plain "${char}" here instead of "${c.text[c.pos]}" ${context}`
      : `Expected "${char}" ${context}, found ${token.description}`,
    expected: [char],
    ...(lookAlike ? { suggestion: char } : {}),
  });
}

/** Closes a group opened at `openedAt`, with an error that points back at the opening. */
function expectClose(c: Cursor, openedAt: number, what: string): void {
  if (takeChar(c, ')')) return;
  const token = tokenAt(c);
  const { line, column } = locate(c.text, { offset: openedAt, length: 1, message: '' });
  fail({
    offset: c.pos,
    length: token.length,
    message: `Missing ")" to close the "(" of ${what} at line ${line}, column ${column}; found ${token.description}`,
    expected: [')'],
  });
}

/** What stands at the cursor, for error messages: its description and length. */
function tokenAt(c: Cursor): { description: string; length: number } {
  skipSpace(c);
  if (atEnd(c)) return { description: 'the end of the text', length: 0 };
  const char = c.text[c.pos]!;
  if (char === '"') {
    const end = c.text.indexOf('"', c.pos + 1);
    const lineEnd = c.text.indexOf('\n', c.pos);
    const stop = end === -1 || (lineEnd !== -1 && lineEnd < end) ? (lineEnd === -1 ? c.text.length : lineEnd) : end + 1;
    return { description: `the string ${shorten(c.text.slice(c.pos, stop))}`, length: stop - c.pos };
  }
  NUMBER.lastIndex = c.pos;
  const number = NUMBER.exec(c.text);
  if (number) return { description: `the number ${number[0]}`, length: number[0].length };
  const word = peekWord(c);
  if (word) return { description: `"${shorten(word.text)}"`, length: word.end - word.start };
  const codePoint = String.fromCodePoint(c.text.codePointAt(c.pos)!);
  return { description: `"${codePoint}"`, length: codePoint.length };
}

function shorten(text: string): string {
  return [...text].length > 40 ? `${[...text].slice(0, 37).join('')}...` : text;
}

// ---------------------------------------------------------------------------------------------
// Conditions

const PRIMARY_STARTS = ['trait.', 'event(', 'page(', 'screen(', 'has_identifier(', 'in_segment(', 'consent(', 'random_bucket(', 'not', '('];
const PRIMARY_WORDS = ['trait', 'event', 'page', 'screen', 'has_identifier', 'in_segment', 'consent', 'random_bucket', 'not'];
/** Words people reach for, and the keyword the language uses for them. */
const PRIMARY_ALIASES: Record<string, string> = {
  segment: 'in_segment',
  in_segments: 'in_segment',
  member_of: 'in_segment',
  identifier: 'has_identifier',
  has_id: 'has_identifier',
  bucket: 'random_bucket',
  track: 'event',
  traits: 'trait',
  user: 'trait',
  property: 'trait',
  consents: 'consent',
  subscribed: 'consent',
};

function parseOr(c: Cursor): Condition {
  return parseJoined(c, 'or', parseAnd);
}

function parseAnd(c: Cursor): Condition {
  return parseJoined(c, 'and', parseUnary);
}

function parseJoined(c: Cursor, joiner: 'and' | 'or', parseItem: (c: Cursor) => Condition): Condition {
  const items = [parseItem(c)];
  for (;;) {
    const word = peekWord(c);
    if (word?.lower !== joiner) break;
    if (items.length === MAX_JOINED) {
      fail({ offset: word.start, length: word.end - word.start, message: `Too many conditions joined by "${joiner}" (at most ${MAX_JOINED}); group some in parentheses` });
    }
    c.pos = word.end;
    items.push(parseItem(c));
  }
  return items.length === 1 ? items[0]! : { kind: joiner, conditions: items };
}

function parseUnary(c: Cursor): Condition {
  const word = peekWord(c);
  if (word?.lower === 'not') {
    c.pos = word.end;
    return nested(c, word.start, () => ({ kind: 'not', condition: parseUnary(c) }));
  }
  return parsePrimary(c);
}

function nested<T>(c: Cursor, at: number, parse: () => T): T {
  if (c.depth >= MAX_NESTING) fail({ offset: at, length: 1, message: `The segment is nested too deeply (more than ${MAX_NESTING} levels)` });
  c.depth += 1;
  const result = parse();
  c.depth -= 1;
  return result;
}

function parsePrimary(c: Cursor): Condition {
  skipSpace(c);
  const start = c.pos;
  if (takeChar(c, '(')) {
    return nested(c, start, () => {
      const inner = parseOr(c);
      expectClose(c, start, 'this group');
      return inner;
    });
  }
  const word = peekWord(c);
  if (!word) return failExpectedCondition(c);
  switch (word.lower) {
    case 'trait': {
      c.pos = word.end;
      if (c.text[c.pos] !== '.') {
        fail({ offset: c.pos, length: tokenAt(c).length, message: 'Write a trait as trait.<name>, e.g. trait.city', expected: ['.'] });
      }
      c.pos += 1;
      const trait = parsePath(c, 'trait name');
      return { kind: 'trait', trait, ...parseValueOperator(c, `trait.${trait}`) };
    }
    case 'event':
    case 'page':
    case 'screen':
      return parseEventCondition(c);
    case 'has_identifier':
      c.pos = word.end;
      return { kind: 'identifier', type: parseCallString(c, 'has_identifier', 'an identifier type, e.g. "email"', 64) };
    case 'in_segment':
      c.pos = word.end;
      return { kind: 'segment', segment: parseCallString(c, 'in_segment', 'a segment key, e.g. "vip"', 64) };
    case 'consent':
      c.pos = word.end;
      return { kind: 'consent', category: parseCallString(c, 'consent', 'a consent category, e.g. "sms"', 64) };
    case 'random_bucket': {
      c.pos = word.end;
      const salt = parseCallString(c, 'random_bucket', 'a salt string, e.g. "experiment-1"', 100, 0);
      expectKeyword(c, 'between', 'after random_bucket(...), as in random_bucket("x") between 0 and 49');
      const from = parseBucketNumber(c);
      expectKeyword(c, 'and', 'between the two bucket numbers');
      const to = parseBucketNumber(c);
      return { kind: 'bucket', salt, from, to };
    }
    case 'and':
    case 'or': {
      c.pos = word.end;
      if (peekChar(c) !== '(') {
        fail({ offset: word.start, length: word.end - word.start, message: `"${word.text}" needs a condition before it`, expected: PRIMARY_STARTS });
      }
      const open = c.pos;
      c.pos += 1;
      return nested(c, open, () => {
        const items = [parseOr(c)];
        while (takeChar(c, ',')) {
          if (items.length === MAX_JOINED) fail({ offset: c.pos - 1, length: 1, message: `Too many conditions in ${word.lower}(...) (at most ${MAX_JOINED})` });
          items.push(parseOr(c));
        }
        expectClose(c, open, `${word.lower}(...)`);
        return { kind: word.lower as 'and' | 'or', conditions: items };
      });
    }
    default: {
      const suggestion = PRIMARY_ALIASES[word.lower] ?? closest(word.text, PRIMARY_WORDS);
      fail({
        offset: word.start,
        length: word.end - word.start,
        message: `Unknown word "${shorten(word.text)}": a condition starts with trait., event(, page(, screen(, has_identifier(, in_segment(, consent(, random_bucket( or not${suggestion ? `; did you mean "${suggestion}"?` : ''}`,
        expected: PRIMARY_STARTS,
        ...(suggestion ? { suggestion } : {}),
      });
    }
  }
}

function failExpectedCondition(c: Cursor): never {
  const token = tokenAt(c);
  const char = c.text[c.pos] ?? '';
  const lookAlike = LOOK_ALIKES[char];
  fail({
    offset: c.pos,
    length: token.length,
    message: lookAlike
      ? `Use a plain "${lookAlike}" instead of "${char}"`
      : `Expected a condition, e.g. trait.city = "上海" or event("Order Completed").exists(), found ${token.description}`,
    expected: PRIMARY_STARTS,
    ...(lookAlike ? { suggestion: lookAlike } : {}),
  });
}

function parseCallString(c: Cursor, name: string, what: string, maxLength: number, minLength = 1): string {
  expectChar(c, '(', `after ${name}`);
  const open = c.pos - 1;
  const value = parseString(c, what, { minLength, maxLength });
  expectClose(c, open, `${name}(...)`);
  return value;
}

function parseBucketNumber(c: Cursor): number {
  const start = (skipSpace(c), c.pos);
  const value = parseNumber(c, 'a bucket number from 0 to 99');
  if (!Number.isInteger(value) || value < 0 || value > 99) {
    fail({ offset: start, length: c.pos - start, message: `A bucket number is a whole number from 0 to 99, not ${c.text.slice(start, c.pos)}` });
  }
  return value;
}

// ---------------------------------------------------------------------------------------------
// Events, measures and sequences

const MEASURES = ['exists', 'count', 'sum', 'avg', 'min', 'max', 'distinct', 'first_time', 'last_time', 'first_value', 'last_value'] as const;
type MeasureKind = (typeof MEASURES)[number];
const MEASURE_ALIASES: Record<string, MeasureKind> = {
  total: 'sum',
  average: 'avg',
  mean: 'avg',
  minimum: 'min',
  maximum: 'max',
  unique: 'distinct',
  count_distinct: 'distinct',
  distinct_count: 'distinct',
  any: 'exists',
  has: 'exists',
  happened: 'exists',
  first: 'first_time',
  last: 'last_time',
  times: 'count',
};

function parseEventCondition(c: Cursor): Condition {
  const match = parseEventMatch(c);
  if (takeChar(c, '.')) {
    const { measure, window } = parseMeasure(c);
    return { kind: 'event', match, ...(window ? { window } : {}), measure };
  }
  if (takeKeyword(c, 'then')) {
    const negated = takeKeyword(c, 'not');
    const word = peekWord(c);
    if (!word || !['event', 'page', 'screen'].includes(word.lower)) {
      const token = tokenAt(c);
      fail({ offset: c.pos, length: token.length, message: `Expected the event that follows, e.g. then event("Order Completed") within 1d; found ${token.description}`, expected: ['event(', 'page(', 'screen('] });
    }
    const then = parseEventMatch(c);
    expectKeyword(c, 'within', 'after the second event of a sequence, as in ... then event("B") within 1d');
    const within = parseDuration(c);
    const window = takeKeyword(c, 'starting') ? parseWindow(c) : undefined;
    return { kind: 'sequence', first: match, then, negated, within, ...(window ? { window } : {}) };
  }
  const token = tokenAt(c);
  fail({
    offset: c.pos,
    length: token.length,
    message: `Say what to measure about the events, e.g. .exists(), .count(within 30d) >= 2, or follow with "then event(...) within 1d"; found ${token.description}`,
    expected: ['.', 'then'],
  });
}

function parseEventMatch(c: Cursor): EventMatch {
  const word = peekWord(c)!;
  c.pos = word.end;
  const type = word.lower === 'event' ? 'track' : (word.lower as 'page' | 'screen');
  expectChar(c, '(', `after ${word.lower}, as in ${word.lower}("${type === 'track' ? 'Order Completed' : 'Home'}")`);
  const open = c.pos - 1;
  let name: string | undefined;
  if (peekChar(c) !== ')' && !atKeyword(c, 'where')) name = parseString(c, `the ${type === 'track' ? 'event' : type} name`, { minLength: 1, maxLength: 200 });
  const filters: PropertyFilter[] = [];
  if (takeKeyword(c, 'where')) {
    do {
      if (filters.length === MAX_FILTERS) fail({ offset: c.pos, length: 0, message: `At most ${MAX_FILTERS} filters per event` });
      const property = parsePath(c, 'property name');
      filters.push({ property, ...parseValueOperator(c, property) });
    } while (takeKeyword(c, 'and'));
    const or = peekWord(c);
    if (or?.lower === 'or') {
      fail({
        offset: or.start,
        length: or.end - or.start,
        message: 'Filters inside event(...) can only be joined with "and"; for either-or, use "in (...)" or two event conditions joined by "or"',
        expected: ['and', ')'],
      });
    }
  }
  expectClose(c, open, `${word.lower}(...)`);
  return { type, ...(name !== undefined ? { name } : {}), filters };
}

function parseMeasure(c: Cursor): { measure: Measure; window?: Window } {
  const word = peekWord(c);
  const kind = MEASURES.find((measure) => measure === word?.lower);
  if (!word || !kind) {
    const token = tokenAt(c);
    const suggestion = word ? (MEASURE_ALIASES[word.lower] ?? closest(word.text, MEASURES)) : undefined;
    fail({
      offset: c.pos,
      length: token.length,
      message: `Expected what to measure (${MEASURES.join(', ')}), found ${token.description}${suggestion ? `; did you mean "${suggestion}"?` : ''}`,
      expected: [...MEASURES],
      ...(suggestion ? { suggestion } : {}),
    });
  }
  c.pos = word.end;
  expectChar(c, '(', `after ${kind}`);
  const open = c.pos - 1;
  let property: string | undefined;
  const needsProperty = !['exists', 'count', 'first_time', 'last_time'].includes(kind);
  if (needsProperty) {
    if (peekChar(c) === ')' || peekWord(c)?.lower === 'within') {
      fail({ offset: c.pos, length: tokenAt(c).length, message: `${kind}(...) needs the property to measure first, e.g. ${kind}(revenue, within 90d)`, expected: ['property name'] });
    }
    property = parsePath(c, 'property name');
  }
  let window: Window | undefined;
  if (peekChar(c) !== ')') {
    if (needsProperty) expectChar(c, ',', `between the property and the time window of ${kind}(...)`);
    window = parseWindow(c);
  }
  expectClose(c, open, `${kind}(...)`);
  const measure = measureWithTest(c, kind, property);
  return { measure, ...(window ? { window } : {}) };
}

function measureWithTest(c: Cursor, kind: MeasureKind, property: string | undefined): Measure {
  switch (kind) {
    case 'exists':
      return { kind };
    case 'count':
      return { kind, test: parseNumericTest(c, kind) };
    case 'sum':
    case 'avg':
    case 'min':
    case 'max':
    case 'distinct':
      return { kind, property: property!, test: parseNumericTest(c, kind) };
    case 'first_time':
    case 'last_time':
      return { kind, test: parseTimeTest(c, kind) };
    case 'first_value':
    case 'last_value':
      return { kind, property: property!, test: parseValueOperator(c, `${kind}(${property!})`) };
  }
}

const NUMERIC_OPERATORS = ['=', '!=', '<', '<=', '>', '>=', 'between'];

function parseNumericTest(c: Cursor, kind: string): Extract<Measure, { kind: 'count' }>['test'] {
  const start = (skipSpace(c), c.pos);
  const comparison = takeComparison(c);
  if (comparison) return { op: comparison, value: parseNumber(c, 'a number') };
  if (takeKeyword(c, 'between')) {
    const low = parseNumber(c, 'the lower bound');
    expectKeyword(c, 'and', 'between the two bounds');
    return { op: 'between', low, high: parseNumber(c, 'the upper bound') };
  }
  const token = tokenAt(c);
  const word = peekWord(c);
  const suggestion = word ? (OPERATOR_ALIASES[word.lower] ?? closest(word.text, ['between'])) : undefined;
  fail({
    offset: start,
    length: token.length,
    message: `Compare ${kind}(...) with a number, e.g. ${kind}(...) >= 3; found ${token.description}${suggestion ? `; did you mean "${suggestion}"?` : ''}`,
    expected: NUMERIC_OPERATORS,
    ...(suggestion ? { suggestion } : {}),
  });
}

function parseTimeTest(c: Cursor, kind: string): Extract<Measure, { kind: 'first_time' | 'last_time' }>['test'] {
  const word = peekWord(c);
  if (word?.lower === 'before' || word?.lower === 'after') {
    c.pos = word.end;
    return { op: word.lower, value: parseInstantText(c) };
  }
  if (word?.lower === 'within') {
    c.pos = word.end;
    expectKeyword(c, 'last', `after within: ${kind}(...) can be tested with "within last 7d"`);
    return { op: 'within_last', duration: parseDuration(c) };
  }
  const token = tokenAt(c);
  const suggestion = word ? closest(word.text, ['before', 'after', 'within']) : undefined;
  fail({
    offset: c.pos,
    length: token.length,
    message: `Test ${kind}(...) with before "<date>", after "<date>" or within last <duration>; found ${token.description}${suggestion ? `; did you mean "${suggestion}"?` : ''}`,
    expected: ['before', 'after', 'within last'],
    ...(suggestion ? { suggestion } : {}),
  });
}

function parseWindow(c: Cursor): Window {
  const word = peekWord(c);
  switch (word?.lower) {
    case 'within':
      c.pos = word.end;
      // `within last 7d` reads naturally too; `within 7d` is the printed form.
      takeKeyword(c, 'last');
      return { kind: 'last', duration: parseDuration(c) };
    case 'between': {
      c.pos = word.end;
      const from = parseInstantText(c);
      expectKeyword(c, 'and', 'between the two dates of the range');
      return { kind: 'range', from, to: parseInstantText(c) };
    }
    case 'since':
      c.pos = word.end;
      return { kind: 'range', from: parseInstantText(c) };
    case 'until':
      c.pos = word.end;
      return { kind: 'range', to: parseInstantText(c) };
    case 'all':
      c.pos = word.end;
      expectKeyword(c, 'time', 'after all (a window over all events is written "all time")');
      return { kind: 'range' };
    default: {
      const token = tokenAt(c);
      const suggestion = word ? closest(word.text, ['within', 'between', 'since', 'until']) : undefined;
      fail({
        offset: c.pos,
        length: token.length,
        message: `Expected a time window: within 30d, since "2024-01-01", until "2024-12-31", between "2024-01-01" and "2024-02-01" or all time; found ${token.description}${suggestion ? `; did you mean "${suggestion}"?` : ''}`,
        expected: ['within', 'between', 'since', 'until', 'all time'],
        ...(suggestion ? { suggestion } : {}),
      });
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Value operators

const VALUE_OPERATORS = [
  '=', '!=', '<', '<=', '>', '>=', 'between', 'in', 'not in', 'contains', 'starts_with', 'ends_with', 'matches', 'exists', 'missing',
  'before', 'after', 'within last', 'within next', 'anniversary within next',
];
const OPERATOR_WORDS = ['between', 'in', 'not', 'contains', 'starts_with', 'ends_with', 'matches', 'exists', 'missing', 'before', 'after', 'within', 'anniversary'];
const OPERATOR_ALIASES: Record<string, string> = {
  equals: '=',
  equal: '=',
  eq: '=',
  is: '=',
  not_equals: '!=',
  not_equal: '!=',
  ne: '!=',
  neq: '!=',
  isnt: '!=',
  lt: '<',
  less: '<',
  lte: '<=',
  le: '<=',
  gt: '>',
  greater: '>',
  gte: '>=',
  ge: '>=',
  startswith: 'starts_with',
  starts: 'starts_with',
  begins_with: 'starts_with',
  endswith: 'ends_with',
  ends: 'ends_with',
  includes: 'contains',
  include: 'contains',
  has: 'contains',
  like: 'matches',
  regex: 'matches',
  regexp: 'matches',
  match: 'matches',
  present: 'exists',
  exist: 'exists',
  is_set: 'exists',
  absent: 'missing',
  null: 'missing',
  empty: 'missing',
  not_in: 'not in',
  since: 'after',
  until: 'before',
  anniversary_within_next: 'anniversary within next',
  birthday: 'anniversary within next',
};

function takeComparison(c: Cursor): 'eq' | 'neq' | 'lt' | 'lte' | 'gt' | 'gte' | undefined {
  skipSpace(c);
  const two = c.text.slice(c.pos, c.pos + 2);
  if (two === '==' || two === '<>') {
    const suggestion = two === '==' ? '=' : '!=';
    fail({ offset: c.pos, length: 2, message: `Write "${suggestion}" instead of "${two}"`, expected: [suggestion], suggestion });
  }
  const found: Array<[string, 'eq' | 'neq' | 'lt' | 'lte' | 'gt' | 'gte']> = [
    ['!=', 'neq'], ['<=', 'lte'], ['>=', 'gte'], ['≠', 'neq'], ['≤', 'lte'], ['≥', 'gte'], ['=', 'eq'], ['<', 'lt'], ['>', 'gt'],
  ];
  for (const [symbol, op] of found) {
    if (c.text.startsWith(symbol, c.pos)) {
      c.pos += symbol.length;
      return op;
    }
  }
  return undefined;
}

function parseValueOperator(c: Cursor, subject: string): ValueOperator {
  const start = (skipSpace(c), c.pos);
  const comparison = takeComparison(c);
  if (comparison === 'eq' || comparison === 'neq') return { op: comparison, value: parseLiteral(c) };
  if (comparison) return { op: comparison, value: parseNumber(c, 'a number (use before/after to compare dates)') };
  const word = peekWord(c);
  switch (word?.lower) {
    case 'between': {
      c.pos = word.end;
      const low = parseNumber(c, 'the lower bound');
      expectKeyword(c, 'and', 'between the two bounds');
      return { op: 'between', low, high: parseNumber(c, 'the upper bound') };
    }
    case 'in':
      c.pos = word.end;
      return { op: 'in', values: parseLiteralList(c) };
    case 'not':
      c.pos = word.end;
      if (!atKeyword(c, 'in')) {
        const token = tokenAt(c);
        fail({ offset: c.pos, length: token.length, message: `After ${subject} not, write "in (...)"; to negate a whole condition put "not" before it`, expected: ['in'] });
      }
      expectKeyword(c, 'in', '');
      return { op: 'not_in', values: parseLiteralList(c) };
    case 'contains':
    case 'starts_with':
    case 'ends_with':
      c.pos = word.end;
      return { op: word.lower, value: parseString(c, 'the text to look for', { minLength: 1, maxLength: 1000 }) };
    case 'matches':
      c.pos = word.end;
      return { op: 'matches', pattern: parseString(c, 'a regular expression', { minLength: 1, maxLength: 500 }) };
    case 'exists':
    case 'missing':
      c.pos = word.end;
      return { op: word.lower };
    case 'before':
    case 'after':
      c.pos = word.end;
      return { op: word.lower, value: parseInstantText(c) };
    case 'within': {
      c.pos = word.end;
      const direction = peekWord(c);
      if (direction?.lower !== 'last' && direction?.lower !== 'next') {
        const token = tokenAt(c);
        fail({ offset: c.pos, length: token.length, message: `Write "within last 7d" or "within next 7d"; found ${token.description}`, expected: ['last', 'next'] });
      }
      c.pos = direction.end;
      return { op: direction.lower === 'last' ? 'within_last' : 'within_next', duration: parseDuration(c) };
    }
    case 'anniversary':
      c.pos = word.end;
      expectKeyword(c, 'within', 'after anniversary, as in anniversary within next 30d');
      expectKeyword(c, 'next', 'after anniversary within, as in anniversary within next 30d');
      return { op: 'anniversary_within_next', duration: parseDuration(c) };
    default: {
      const token = tokenAt(c);
      const suggestion = word ? (OPERATOR_ALIASES[word.lower] ?? closest(word.text, OPERATOR_WORDS)) : LOOK_ALIKES[c.text[c.pos] ?? ''];
      fail({
        offset: start,
        length: token.length,
        message: `Expected a comparison after ${shorten(subject)} (=, !=, <, >, between, in, contains, exists, before, within last, ...), found ${token.description}${suggestion ? `; did you mean "${suggestion}"?` : ''}`,
        expected: VALUE_OPERATORS,
        ...(suggestion ? { suggestion } : {}),
      });
    }
  }
}

function parseLiteralList(c: Cursor): Scalar[] {
  expectChar(c, '(', 'to start the list, as in in ("a", "b")');
  const open = c.pos - 1;
  if (peekChar(c) === ')') fail({ offset: c.pos, length: 1, message: 'The list needs at least one value', expected: ['value'] });
  const values = [parseLiteral(c)];
  while (takeChar(c, ',')) {
    if (values.length === MAX_LIST) fail({ offset: c.pos - 1, length: 1, message: `A list holds at most ${MAX_LIST} values` });
    values.push(parseLiteral(c));
  }
  expectClose(c, open, 'the list');
  return values;
}

function parseLiteral(c: Cursor): Scalar {
  const char = peekChar(c);
  // parseString also explains curly and full-width quotes.
  if (char === '"' || (char !== undefined && LOOK_ALIKES[char] === '"')) return parseString(c, 'a value', { minLength: 0, maxLength: 1000 });
  const word = peekWord(c);
  if (word && (word.lower === 'true' || word.lower === 'false')) {
    c.pos = word.end;
    return word.lower === 'true';
  }
  NUMBER.lastIndex = c.pos;
  if (NUMBER.test(c.text)) return parseNumber(c, 'a value');
  const token = tokenAt(c);
  const quoted = word ? JSON.stringify(word.text) : undefined;
  fail({
    offset: c.pos,
    length: token.length,
    message: word
      ? `Text values need double quotes: write ${shorten(quoted!)}`
      : `Expected a value (a string in double quotes, a number, true or false), found ${token.description}`,
    expected: ['string', 'number', 'true', 'false'],
    ...(quoted ? { suggestion: quoted } : {}),
  });
}

// ---------------------------------------------------------------------------------------------
// Literals

function parseString(c: Cursor, what: string, limits: { minLength: number; maxLength: number }): string {
  skipSpace(c);
  const start = c.pos;
  const char = c.text[start];
  if (char !== '"') {
    const token = tokenAt(c);
    const lookAlike = char !== undefined && LOOK_ALIKES[char] === '"';
    NUMBER.lastIndex = start;
    const number = NUMBER.exec(c.text);
    fail({
      offset: start,
      length: token.length,
      message: lookAlike
        ? `Use straight double quotes "..." instead of ${char}...`
        : number
          ? `Expected ${what} (in double quotes), found the number ${number[0]}; write "${number[0]}"`
          : `Expected ${what} (in double quotes), found ${token.description}`,
      expected: ['string'],
      ...(number ? { suggestion: `"${number[0]}"` } : lookAlike ? { suggestion: '"' } : {}),
    });
  }
  let pos = start + 1;
  for (;;) {
    const next = c.text[pos];
    if (next === undefined || next === '\n' || next === '\r') {
      fail({
        offset: start,
        length: pos - start,
        message: 'Unterminated string: add the closing " (a string cannot run past the end of the line; write \\n for a line break)',
        expected: ['"'],
      });
    }
    if (next === '"') break;
    if (next === '\\') {
      const escape = c.text[pos + 1];
      if (escape === 'u' && /^[0-9a-fA-F]{4}$/.test(c.text.slice(pos + 2, pos + 6))) {
        pos += 6;
        continue;
      }
      if (escape === undefined || !'"\\/bfnrt'.includes(escape)) {
        fail({ offset: pos, length: escape === undefined ? 1 : 2, message: `Invalid escape "\\${escape ?? ''}" in a string: use \\" \\\\ \\n \\t or \\uXXXX` });
      }
      pos += 2;
      continue;
    }
    if (next < ' ') fail({ offset: pos, length: 1, message: 'Control characters must be escaped inside strings (\\t, \\uXXXX)' });
    pos += 1;
  }
  c.pos = pos + 1;
  const value = JSON.parse(c.text.slice(start, c.pos)) as string;
  if (value.length < limits.minLength) fail({ offset: start, length: c.pos - start, message: `${capitalise(what)} cannot be empty` });
  if (value.length > limits.maxLength) {
    fail({ offset: start, length: c.pos - start, message: `${capitalise(what)} is too long (${value.length} characters; at most ${limits.maxLength})` });
  }
  return value;
}

function parseInstantText(c: Cursor): string {
  // Only the schema's length here: whether it is a real instant is checkSegment's to say.
  return parseString(c, 'a date such as "2024-01-31" or "2024-01-31T08:00:00Z"', { minLength: 10, maxLength: 40 });
}

function parseNumber(c: Cursor, what: string): number {
  skipSpace(c);
  const start = c.pos;
  NUMBER.lastIndex = start;
  const match = NUMBER.exec(c.text);
  if (!match) {
    const token = tokenAt(c);
    fail({ offset: start, length: token.length, message: `Expected ${what}, found ${token.description}`, expected: ['number'] });
  }
  const value = Number(match[0]);
  if (!Number.isFinite(value)) fail({ offset: start, length: match[0].length, message: `The number ${match[0]} is too large` });
  c.pos = start + match[0].length;
  return value;
}

const UNITS: Record<string, Duration['unit']> = { m: 'minutes', h: 'hours', d: 'days', w: 'weeks' };
const LONG_UNITS: Record<string, string> = {
  min: 'm', mins: 'm', minute: 'm', minutes: 'm', hr: 'h', hrs: 'h', hour: 'h', hours: 'h', day: 'd', days: 'd', week: 'w', weeks: 'w',
};

function parseDuration(c: Cursor): Duration {
  skipSpace(c);
  const start = c.pos;
  DURATION.lastIndex = start;
  const match = DURATION.exec(c.text);
  if (!match) {
    const token = tokenAt(c);
    fail({ offset: start, length: token.length, message: `Expected a duration such as 30m, 12h, 90d or 2w, found ${token.description}`, expected: ['duration'] });
  }
  const [whole, digits, unitText] = match as unknown as [string, string, string];
  const amount = Number(digits);
  c.pos = start + whole.length;
  const unitStart = start + digits.length;
  if (unitText === '') {
    const spaced = peekWord(c);
    const spacedUnit = spaced && (UNITS[spaced.lower] ? spaced.lower : LONG_UNITS[spaced.lower]);
    if (spaced && spacedUnit) fail({ offset: start, length: spaced.end - start, message: `Write the unit right after the number: ${digits}${spacedUnit}`, suggestion: `${digits}${spacedUnit}` });
    fail({ offset: unitStart, length: 0, message: `The duration ${digits} needs a unit: m (minutes), h (hours), d (days) or w (weeks), e.g. ${digits}d`, expected: ['m', 'h', 'd', 'w'] });
  }
  const unit = UNITS[unitText.toLowerCase()];
  if (!unit) {
    const short = LONG_UNITS[unitText.toLowerCase()];
    const hint = short
      ? `; write ${digits}${short}`
      : /^(y|yr|yrs|year|years|mo|month|months)$/i.test(unitText)
        ? '; months and years vary in length, so use days, e.g. 30d or 365d'
        : /^(s|sec|secs|second|seconds)$/i.test(unitText)
          ? '; the shortest unit is minutes'
          : '';
    fail({
      offset: unitStart,
      length: unitText.length,
      message: `Invalid duration unit "${unitText}": use m (minutes), h (hours), d (days) or w (weeks)${hint}`,
      expected: ['m', 'h', 'd', 'w'],
      ...(short ? { suggestion: `${digits}${short}` } : {}),
    });
  }
  if (!Number.isSafeInteger(amount) || amount < 1 || amount > 100_000) {
    fail({ offset: start, length: whole.length, message: `A duration is a whole number from 1 to 100000 followed by its unit, not ${whole}` });
  }
  return { amount, unit };
}

// ---------------------------------------------------------------------------------------------
// Paths

const PLAIN_PATH_PART = /^[\p{L}\p{N}\p{M}_]+$/u;

/** Whether a path part can be written bare; otherwise it goes in backquotes. */
export function isPlainPathPart(part: string): boolean {
  return PLAIN_PATH_PART.test(part);
}

function parsePath(c: Cursor, what: string): string {
  skipSpace(c);
  const start = c.pos;
  const parts: string[] = [];
  for (;;) {
    parts.push(parsePathPart(c, what));
    if (c.text[c.pos] !== '.') break;
    c.pos += 1;
  }
  const path = parts.join('.');
  if (path.length > 300) fail({ offset: start, length: c.pos - start, message: `The ${what} is too long (${path.length} characters; at most 300)` });
  return path;
}

function parsePathPart(c: Cursor, what: string): string {
  const start = c.pos;
  if (c.text[start] === '`') {
    let pos = start + 1;
    let part = '';
    for (;;) {
      const next = c.text[pos];
      if (next === undefined) fail({ offset: start, length: pos - start, message: 'Unterminated name: add the closing backquote `', expected: ['`'] });
      if (next === '`') {
        if (c.text[pos + 1] === '`') {
          part += '`';
          pos += 2;
          continue;
        }
        break;
      }
      part += next;
      pos += 1;
    }
    c.pos = pos + 1;
    if (part === '') fail({ offset: start, length: c.pos - start, message: `An empty name is not a ${what}` });
    if (part.includes('.')) fail({ offset: start, length: c.pos - start, message: `A ${what} part cannot contain a dot: dots separate the parts of a path` });
    return part;
  }
  WORD.lastIndex = start;
  const match = WORD.exec(c.text);
  if (!match) {
    const token = tokenAt(c);
    fail({ offset: start, length: token.length, message: `Expected a ${what}, found ${token.description} (names other than letters, digits and _ go in backquotes: \`order count\`)`, expected: [what] });
  }
  c.pos = start + match[0].length;
  return match[0];
}

function capitalise(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}
