/*
 * Formulas between trend series: `A / B * 100`, `(A - B) / A`. Letters name series in order
 * (A is the first); numbers, + − × ÷, unary minus and parentheses. Pure: parse once, evaluate per
 * period; a division by zero, or a missing series value, gives null for that period.
 */

export type Formula =
  | { kind: 'number'; value: number }
  | { kind: 'series'; index: number }
  | { kind: 'negate'; operand: Formula }
  | { kind: 'binary'; operator: '+' | '-' | '*' | '/'; left: Formula; right: Formula };

export class FormulaError extends Error {}

const TOKEN = /\s*(?:(\d+(?:\.\d+)?)|([A-Z])|([-+*/()]))/y;

export function parseFormula(text: string, seriesCount: number): Formula {
  const tokens: string[] = [];
  TOKEN.lastIndex = 0;
  let position = 0;
  while (position < text.length) {
    if (/^\s*$/.test(text.slice(position))) break;
    TOKEN.lastIndex = position;
    const match = TOKEN.exec(text);
    if (!match) throw new FormulaError(`Unexpected "${text.slice(position).trim()[0]}" at position ${position + 1}`);
    tokens.push(match[1] ?? match[2] ?? match[3]!);
    position = TOKEN.lastIndex;
  }
  let index = 0;
  const peek = () => tokens[index];
  const expression = (): Formula => {
    let left = term();
    while (peek() === '+' || peek() === '-') {
      const operator = tokens[index++] as '+' | '-';
      left = { kind: 'binary', operator, left, right: term() };
    }
    return left;
  };
  const term = (): Formula => {
    let left = factor();
    while (peek() === '*' || peek() === '/') {
      const operator = tokens[index++] as '*' | '/';
      left = { kind: 'binary', operator, left, right: factor() };
    }
    return left;
  };
  const factor = (): Formula => {
    const token = tokens[index++];
    if (token === undefined) throw new FormulaError('The formula ends too early');
    if (token === '-') return { kind: 'negate', operand: factor() };
    if (token === '(') {
      const inner = expression();
      if (tokens[index++] !== ')') throw new FormulaError('A parenthesis is not closed');
      return inner;
    }
    if (/^[A-Z]$/.test(token)) {
      const seriesIndex = token.charCodeAt(0) - 65;
      if (seriesIndex >= seriesCount) throw new FormulaError(`There is no series ${token} (the query has ${seriesCount})`);
      return { kind: 'series', index: seriesIndex };
    }
    if (/^\d/.test(token)) return { kind: 'number', value: Number(token) };
    throw new FormulaError(`Unexpected "${token}"`);
  };
  const formula = expression();
  if (index < tokens.length) throw new FormulaError(`Unexpected "${tokens[index]}" after the end of the formula`);
  return formula;
}

/** The formula's value given each series' value (null = missing); null on division by zero. */
export function evaluateFormula(formula: Formula, series: ReadonlyArray<number | null>): number | null {
  switch (formula.kind) {
    case 'number':
      return formula.value;
    case 'series':
      return series[formula.index] ?? null;
    case 'negate': {
      const value = evaluateFormula(formula.operand, series);
      return value === null ? null : -value;
    }
    case 'binary': {
      const left = evaluateFormula(formula.left, series);
      const right = evaluateFormula(formula.right, series);
      if (left === null || right === null) return null;
      if (formula.operator === '+') return left + right;
      if (formula.operator === '-') return left - right;
      if (formula.operator === '*') return left * right;
      return right === 0 ? null : left / right;
    }
  }
}
