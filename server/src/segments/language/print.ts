import type { Condition, Duration, EventMatch, Measure, Scalar, ValueOperator, Window } from '../ast.ts';
import { isPlainPathPart } from './parse.ts';

/**
 * The canonical text of a condition: parseSegment(printSegment(c)) deep-equals c for every
 * schema-valid AST. Parentheses only where precedence (not > and > or) or the AST's own nesting
 * needs them: an and inside an and keeps its group, since flattening it would change the AST.
 */
export function printSegment(condition: Condition): string {
  return printCondition(condition);
}

function printCondition(condition: Condition): string {
  switch (condition.kind) {
    case 'and':
    case 'or': {
      if (condition.conditions.length === 1) return `${condition.kind}(${printCondition(condition.conditions[0]!)})`;
      return condition.conditions.map((child) => printJoinedChild(child, condition.kind)).join(` ${condition.kind} `);
    }
    case 'not':
      return `not ${isGroupOfMany(condition.condition) ? `(${printCondition(condition.condition)})` : printCondition(condition.condition)}`;
    case 'trait':
      return `trait.${printPath(condition.trait)} ${printValueOperator(condition)}`;
    case 'event': {
      const args = measureArguments(condition.measure, condition.window);
      return `${printEventMatch(condition.match)}.${condition.measure.kind}(${args})${printMeasureTest(condition.measure)}`;
    }
    case 'sequence': {
      const starting = condition.window ? ` starting ${printWindow(condition.window)}` : '';
      return `${printEventMatch(condition.first)} then ${condition.negated ? 'not ' : ''}${printEventMatch(condition.then)} within ${printDuration(condition.within)}${starting}`;
    }
    case 'identifier':
      return `has_identifier(${printString(condition.type)})`;
    case 'segment':
      return `in_segment(${printString(condition.segment)})`;
    case 'consent':
      return `consent(${printString(condition.category)})`;
    case 'bucket':
      return `random_bucket(${printString(condition.salt)}) between ${printNumber(condition.from)} and ${printNumber(condition.to)}`;
  }
}

function isGroupOfMany(condition: Condition): boolean {
  return (condition.kind === 'and' || condition.kind === 'or') && condition.conditions.length > 1;
}

function printJoinedChild(child: Condition, joiner: 'and' | 'or'): string {
  // An or binds looser than and, and a group of the joiner's own kind must stay a group.
  const needsParentheses = isGroupOfMany(child) && (child.kind === joiner || child.kind === 'or');
  return needsParentheses ? `(${printCondition(child)})` : printCondition(child);
}

function printEventMatch(match: EventMatch): string {
  const keyword = match.type === 'track' ? 'event' : match.type;
  const parts: string[] = [];
  if (match.name !== undefined) parts.push(printString(match.name));
  if (match.filters.length > 0) {
    parts.push(`where ${match.filters.map((filter) => `${printPath(filter.property)} ${printValueOperator(filter)}`).join(' and ')}`);
  }
  return `${keyword}(${parts.join(' ')})`;
}

function measureArguments(measure: Measure, window: Window | undefined): string {
  const args: string[] = [];
  if ('property' in measure) args.push(printPath(measure.property));
  if (window) args.push(printWindow(window));
  return args.join(', ');
}

function printMeasureTest(measure: Measure): string {
  // Numeric and time tests are value operators with fewer choices, and print the same way.
  return measure.kind === 'exists' ? '' : ` ${printValueOperator(measure.test)}`;
}

const COMPARISON_SYMBOLS = { eq: '=', neq: '!=', lt: '<', lte: '<=', gt: '>', gte: '>=' } as const;

function printValueOperator(operator: ValueOperator): string {
  switch (operator.op) {
    case 'eq':
    case 'neq':
      return `${COMPARISON_SYMBOLS[operator.op]} ${printScalar(operator.value)}`;
    case 'lt':
    case 'lte':
    case 'gt':
    case 'gte':
      return `${COMPARISON_SYMBOLS[operator.op]} ${printNumber(operator.value)}`;
    case 'in':
    case 'not_in':
      return `${operator.op === 'in' ? 'in' : 'not in'} (${operator.values.map(printScalar).join(', ')})`;
    case 'between':
      return `between ${printNumber(operator.low)} and ${printNumber(operator.high)}`;
    case 'contains':
    case 'starts_with':
    case 'ends_with':
    case 'before':
    case 'after':
      return `${operator.op} ${printString(operator.value)}`;
    case 'matches':
      return `matches ${printString(operator.pattern)}`;
    case 'exists':
    case 'missing':
      return operator.op;
    case 'within_last':
      return `within last ${printDuration(operator.duration)}`;
    case 'within_next':
      return `within next ${printDuration(operator.duration)}`;
    case 'anniversary_within_next':
      return `anniversary within next ${printDuration(operator.duration)}`;
  }
}

function printWindow(window: Window): string {
  if (window.kind === 'last') return `within ${printDuration(window.duration)}`;
  if (window.from !== undefined && window.to !== undefined) return `between ${printString(window.from)} and ${printString(window.to)}`;
  if (window.from !== undefined) return `since ${printString(window.from)}`;
  if (window.to !== undefined) return `until ${printString(window.to)}`;
  return 'all time';
}

const UNIT_LETTERS: Record<Duration['unit'], string> = { minutes: 'm', hours: 'h', days: 'd', weeks: 'w' };

function printDuration(duration: Duration): string {
  return `${duration.amount}${UNIT_LETTERS[duration.unit]}`;
}

export function printPath(path: string): string {
  return path
    .split('.')
    .map((part) => (isPlainPathPart(part) ? part : `\`${part.replaceAll('`', '``')}\``))
    .join('.');
}

function printScalar(value: Scalar): string {
  if (typeof value === 'string') return printString(value);
  if (typeof value === 'number') return printNumber(value);
  return value ? 'true' : 'false';
}

export function printString(value: string): string {
  return JSON.stringify(value);
}

function printNumber(value: number): string {
  // JSON.stringify(-0) is "0", which would read back as a different number.
  return Object.is(value, -0) ? '-0' : String(value);
}
