import { parseInstant } from '../../ingest/normalize.ts';
import type { Condition, Duration, EventMatch, Measure, ValueOperator, Window } from '../ast.ts';
import { closest } from './suggest.ts';

/** A problem at a place in the AST; `path` is a JSON pointer ("/conditions/1/pattern"). */
export interface Issue {
  path: string;
  message: string;
  suggestion?: string;
}

export interface CheckContext {
  /** The workspace's event catalogue. */
  events: Array<{ type: string; name: string }>;
  /** Trait keys the workspace has seen. */
  traits: string[];
  /** Identifier types configured for the workspace. */
  identifierTypes: string[];
  /** Keys of the segments in_segment may name. */
  segments: string[];
  /** The key of the segment being checked: it may not contain itself. */
  selfKey?: string;
}

export interface CheckResult {
  /** The condition cannot be saved: it is wrong or would mean different things to the two evaluators. */
  errors: Issue[];
  /** Probably a mistake, but legal (an event the workspace has not seen yet may still arrive). */
  warnings: Issue[];
}

/**
 * What a parsed (schema-valid) condition means that the schema cannot see: unreadable dates,
 * regular expressions outside the portable subset, empty ranges, references to nothing.
 */
export function checkSegment(condition: Condition, context: CheckContext): CheckResult {
  const errors: Issue[] = [];
  const warnings: Issue[] = [];
  const namesByType = new Map<string, Set<string>>();
  for (const event of context.events) {
    const names = namesByType.get(event.type) ?? new Set<string>();
    names.add(event.name);
    namesByType.set(event.type, names);
  }
  const knownTraits = new Set(context.traits);
  const knownSegments = new Set(context.segments);
  const knownIdentifierTypes = new Set(context.identifierTypes);

  const error = (path: string, message: string, suggestion?: string): void => {
    errors.push({ path, message, ...(suggestion !== undefined ? { suggestion } : {}) });
  };
  const warn = (path: string, message: string, suggestion?: string): void => {
    warnings.push({ path, message, ...(suggestion !== undefined ? { suggestion } : {}) });
  };

  const checkInstant = (path: string, value: string): void => {
    if (parseInstant(value) === null) error(path, `"${value}" is not a date: write "2024-01-31" or "2024-01-31T08:00:00Z" (no zone means UTC)`);
  };
  const checkRange = (path: string, low: number, high: number): void => {
    if (low > high) error(path, `The range ${low} to ${high} is empty: the lower bound comes first`);
  };
  const checkValueOperator = (path: string, operator: ValueOperator): void => {
    switch (operator.op) {
      case 'between':
        checkRange(`${path}/low`, operator.low, operator.high);
        return;
      case 'matches': {
        const problem = regexProblem(operator.pattern);
        if (problem) error(`${path}/pattern`, problem);
        return;
      }
      case 'before':
      case 'after':
        checkInstant(`${path}/value`, operator.value);
        return;
      case 'anniversary_within_next':
        if (operator.duration.unit !== 'days' && operator.duration.unit !== 'weeks') {
          error(`${path}/duration/unit`, `An anniversary is a whole day: use days or weeks, e.g. anniversary within next ${anniversaryHint(operator.duration)}`);
        }
        return;
      default:
        return;
    }
  };
  const checkWindow = (path: string, window: Window | undefined): void => {
    if (window?.kind !== 'range') return;
    if (window.from !== undefined) checkInstant(`${path}/from`, window.from);
    if (window.to !== undefined) checkInstant(`${path}/to`, window.to);
    const from = window.from === undefined ? null : parseInstant(window.from);
    const to = window.to === undefined ? null : parseInstant(window.to);
    if (from !== null && to !== null && from >= to) error(`${path}/to`, `The time range from "${window.from}" to "${window.to}" is empty: the start comes first`);
  };
  const checkMatch = (path: string, match: EventMatch): void => {
    // No name is deliberate (any tracked event, any page view): nothing to look up.
    if (match.name !== undefined) {
      const known = namesByType.get(match.type) ?? new Set<string>();
      if (!known.has(match.name)) {
        const suggestion = closest(match.name, known);
        const kind = match.type === 'track' ? 'event' : `${match.type} view`;
        warn(`${path}/name`, `No ${kind} named "${match.name}" has been received in this workspace yet${suggestion ? `; did you mean "${suggestion}"?` : ''}`, suggestion);
      }
    }
    match.filters.forEach((filter, index) => checkValueOperator(`${path}/filters/${index}`, filter));
  };
  const checkMeasure = (path: string, measure: Measure): void => {
    if (measure.kind === 'exists') return;
    const test = measure.test;
    if (test.op === 'between') checkRange(`${path}/test/low`, test.low, test.high);
    else if (test.op === 'before' || test.op === 'after') checkInstant(`${path}/test/value`, test.value);
    else if (measure.kind === 'first_value' || measure.kind === 'last_value') checkValueOperator(`${path}/test`, measure.test);
  };

  const visit = (path: string, node: Condition): void => {
    switch (node.kind) {
      case 'and':
      case 'or':
        node.conditions.forEach((child, index) => visit(`${path}/conditions/${index}`, child));
        return;
      case 'not':
        visit(`${path}/condition`, node.condition);
        return;
      case 'trait': {
        const key = node.trait.split('.')[0]!;
        if (!knownTraits.has(key)) {
          const suggestion = closest(key, knownTraits);
          warn(`${path}/trait`, `No profile has a trait "${key}" yet${suggestion ? `; did you mean "${suggestion}"?` : ''}`, suggestion);
        }
        checkValueOperator(path, node);
        return;
      }
      case 'event':
        checkMatch(`${path}/match`, node.match);
        checkWindow(`${path}/window`, node.window);
        checkMeasure(`${path}/measure`, node.measure);
        return;
      case 'sequence':
        checkMatch(`${path}/first`, node.first);
        checkMatch(`${path}/then`, node.then);
        checkWindow(`${path}/window`, node.window);
        return;
      case 'identifier':
        if (!knownIdentifierTypes.has(node.type)) {
          const suggestion = closest(node.type, knownIdentifierTypes);
          error(`${path}/type`, `Unknown identifier type "${node.type}"${suggestion ? `; did you mean "${suggestion}"?` : ''}`, suggestion);
        }
        return;
      case 'segment':
        if (context.selfKey !== undefined && node.segment === context.selfKey) {
          error(`${path}/segment`, `A segment cannot contain itself: in_segment("${node.segment}") is this segment`);
        } else if (!knownSegments.has(node.segment)) {
          const suggestion = closest(node.segment, knownSegments);
          error(`${path}/segment`, `Unknown segment "${node.segment}"${suggestion ? `; did you mean "${suggestion}"?` : ''}`, suggestion);
        }
        return;
      case 'consent':
        return;
      case 'bucket':
        if (node.from > node.to) error(`${path}/from`, `The bucket range ${node.from} to ${node.to} is empty: the lower bucket comes first`);
        return;
    }
  };
  visit('', condition);
  return { errors, warnings };
}

function anniversaryHint(duration: Duration): string {
  const days = Math.max(1, Math.ceil((duration.amount * (duration.unit === 'hours' ? 60 : 1)) / (24 * 60)));
  return `${days}d`;
}

/**
 * Why a pattern is not in the subset JavaScript and PostgreSQL's regular expressions read alike,
 * or null when it is. Both evaluators must agree on every profile, so anything either engine
 * reads differently (or only one accepts) is refused here rather than disagreeing later.
 */
export function regexProblem(pattern: string): string | null {
  if (/^\/.+\/[a-z]*$/s.test(pattern)) {
    return 'Write the regular expression without /slashes/ or flags: matches "^abc" (matching is case-sensitive; use [Aa] for either case)';
  }
  let inClass = false;
  let classStart = -1;
  let previousWasAtom = false;
  for (let i = 0; i < pattern.length; i += 1) {
    const char = pattern[i]!;
    if (char === '\\') {
      const problem = escapeProblem(pattern[i + 1] ?? '');
      if (problem) return problem;
      if (inClass && /[DWS]/.test(pattern[i + 1] ?? '')) {
        return `\\${pattern[i + 1]} inside a [...] class is not supported; use a negated class such as [^0-9] instead`;
      }
      i += 1;
      previousWasAtom = true;
      continue;
    }
    if (inClass) {
      if (char === '[' && /[:=.]/.test(pattern[i + 1] ?? '')) {
        return `"[${pattern[i + 1]}" inside a [...] class is read as a POSIX class by PostgreSQL but not by JavaScript; escape the "[" as \\[`;
      }
      if (char === ']' && i > classStart) {
        inClass = false;
        previousWasAtom = true;
      }
      continue;
    }
    if (char === '[') {
      inClass = true;
      classStart = pattern[i + 1] === '^' ? i + 2 : i + 1;
      if (pattern[classStart] === ']') return 'A "]" first in a [...] class is a literal in PostgreSQL but ends the class in JavaScript; write \\] instead';
      i = classStart - 1;
      continue;
    }
    if (char === '(' && pattern[i + 1] === '?') {
      const rest = pattern.slice(i + 2);
      if (rest.startsWith(':')) {
        previousWasAtom = false;
        i += 2;
        continue;
      }
      if (rest.startsWith('=') || rest.startsWith('!')) return 'Lookahead (?= and (?! is not supported: the two evaluators read it differently';
      if (rest.startsWith('<=') || rest.startsWith('<!')) return 'Lookbehind (?<= and (?<! is not supported: the two evaluators read it differently';
      if (rest.startsWith('<')) return 'Named groups (?<name>...) are not supported; use a plain group (...)';
      return 'Inline flags such as (?i) are not supported; matching is case-sensitive (use [Aa] for either case)';
    }
    if (char === '{') {
      const quantifier = /^\{(\d+)(,(\d*))?\}/.exec(pattern.slice(i));
      if (!quantifier || !previousWasAtom) return 'A "{" must start a repetition such as {2} or {1,3}; write \\{ for a literal brace';
      const counts = [quantifier[1], quantifier[3]].filter((count): count is string => count !== undefined && count !== '').map(Number);
      if (counts.some((count) => count > 255)) return 'Repetition counts above 255 are not supported (PostgreSQL refuses them)';
      i += quantifier[0].length - 1;
      previousWasAtom = false;
      continue;
    }
    if (char === '}') return 'A lone "}" is read differently by the two evaluators; write \\} for a literal brace';
    previousWasAtom = !'(|^'.includes(char) && !'*+?'.includes(char);
  }
  // The scan above names the constructs people reach for; the engine catches everything else.
  try {
    // As the incremental evaluator compiles it: by code points, `.` matching newlines like PostgreSQL's.
    new RegExp(pattern, 'su');
  } catch (error) {
    return `Not a valid regular expression: ${(error as Error).message.replace(/^Invalid regular expression: \/.*\/su: /s, '')}`;
  }
  return null;
}

function escapeProblem(escaped: string): string | null {
  if (escaped === '') return 'The pattern ends with a lone backslash';
  if (/[dDwWsSntrfv]/.test(escaped)) return null;
  if (/[1-9]/.test(escaped) || escaped === 'k') return 'Backreferences (\\1, \\k<name>) are not supported';
  if (escaped === 'b' || escaped === 'B') return '\\b is a word boundary in JavaScript but a backspace in PostgreSQL; it is not supported';
  if (escaped === 'p' || escaped === 'P') return 'Unicode property escapes (\\p{...}) are not supported; list the characters in a [...] class';
  if (/[xuc0]/.test(escaped)) return `\\${escaped} escapes are read differently by the two evaluators; write the character itself`;
  if (/[\p{L}\p{N}]/u.test(escaped)) return `\\${escaped} is not a portable escape; the supported ones are \\d \\w \\s (and \\D \\W \\S), \\n \\t \\r and a backslash before punctuation`;
  return null;
}
