import type { Condition, EventMatch, Measure, ValueOperator } from '../../server/src/segments/ast.ts';

export type { Condition };

/**
 * The visual builder edits the segment's AST (server/src/segments/ast.ts) directly; the server's
 * parser and printer translate between it and the text form (preview answers both), so the two
 * editors cannot drift apart. Nodes the builder has no form for (sequences, buckets, aggregates
 * other than count) are kept untouched and shown as their text.
 */

/** A step into a node: the index of a child of and/or, or 'not' into a negation. */
export type Path = ReadonlyArray<number | 'not'>;

export const TRAIT_OPS = ['eq', 'neq', 'gt', 'gte', 'lt', 'lte', 'contains', 'starts_with', 'in', 'exists', 'missing'] as const;
export type TraitOp = (typeof TRAIT_OPS)[number];
export const COUNT_OPS = ['gte', 'gt', 'eq', 'lte', 'lt'] as const;

export function isGroup(condition: Condition): condition is Extract<Condition, { kind: 'and' | 'or' }> {
  return condition.kind === 'and' || condition.kind === 'or';
}

/** Whether the builder has a form for this node (groups count when all their children do not matter: they are walked). */
export function editable(condition: Condition): boolean {
  switch (condition.kind) {
    case 'and':
    case 'or':
    case 'not':
    case 'segment':
    case 'consent':
      return true;
    case 'trait':
      return (TRAIT_OPS as readonly string[]).includes(condition.op);
    case 'event':
      return (
        (condition.measure.kind === 'exists' || (condition.measure.kind === 'count' && condition.measure.test.op !== 'between' && condition.measure.test.op !== 'neq')) &&
        condition.match.filters.length === 0 &&
        (!condition.window || condition.window.kind === 'last')
      );
    default:
      return false;
  }
}

/** The builder always shows a group at the top. */
export function asRootGroup(condition: Condition | null): Extract<Condition, { kind: 'and' | 'or' }> {
  if (!condition) return { kind: 'and', conditions: [] };
  return isGroup(condition) ? condition : { kind: 'and', conditions: [condition] };
}

/** What the builder's root group means as a definition: null while empty, its only child alone. */
export function definitionOf(root: Extract<Condition, { kind: 'and' | 'or' }>): Condition | null {
  if (root.conditions.length === 0) return null;
  if (root.conditions.length === 1) return root.conditions[0]!;
  return root;
}

export function nodeAt(root: Condition, path: Path): Condition | undefined {
  let node: Condition | undefined = root;
  for (const step of path) {
    if (!node) return undefined;
    if (step === 'not') node = node.kind === 'not' ? node.condition : undefined;
    else node = isGroup(node) ? node.conditions[step] : undefined;
  }
  return node;
}

/** A copy of root with the node at path replaced (or removed when replacement is null). */
export function replaceAt(root: Condition, path: Path, replacement: Condition | null): Condition {
  if (path.length === 0) {
    if (!replacement) throw new Error('cannot remove the root');
    return replacement;
  }
  const [step, ...rest] = path;
  if (step === 'not') {
    if (root.kind !== 'not') throw new Error('path does not match the tree');
    if (rest.length === 0 && !replacement) throw new Error('remove the negation itself, not its condition');
    return { kind: 'not', condition: replaceAt(root.condition, rest, replacement) };
  }
  if (!isGroup(root) || step === undefined || step >= root.conditions.length) throw new Error('path does not match the tree');
  const conditions = [...root.conditions];
  if (rest.length === 0 && !replacement) conditions.splice(step, 1);
  else conditions[step] = replaceAt(conditions[step]!, rest, replacement);
  return { ...root, conditions };
}

export function appendTo(root: Condition, path: Path, child: Condition): Condition {
  const group = nodeAt(root, path);
  if (!group || !isGroup(group)) throw new Error('not a group');
  return replaceAt(root, path, { ...group, conditions: [...group.conditions, child] });
}

export function toggleNot(condition: Condition): Condition {
  return condition.kind === 'not' ? condition.condition : { kind: 'not', condition };
}

export const newTrait = (): Condition => ({ kind: 'trait', trait: 'city', op: 'eq', value: '' });
export const newEvent = (): Condition => ({
  kind: 'event',
  match: { type: 'track', name: 'Order Completed', filters: [] },
  window: { kind: 'last', duration: { amount: 30, unit: 'days' } },
  measure: { kind: 'count', test: { op: 'gte', value: 1 } },
});
export const newGroup = (kind: 'and' | 'or'): Condition => ({ kind, conditions: [newTrait()] });

/** A trait condition with a new operator, keeping the value where the new operator takes one of the same kind. */
export function traitWithOp(condition: Extract<Condition, { kind: 'trait' }>, op: TraitOp, rawValue: string): Condition {
  const base = { kind: 'trait' as const, trait: condition.trait };
  return { ...base, ...traitOperator(op, rawValue) };
}

/** The operator part of a trait condition from the form's operator and value text. */
export function traitOperator(op: TraitOp, rawValue: string): ValueOperator {
  switch (op) {
    case 'exists':
    case 'missing':
      return { op };
    case 'gt':
    case 'gte':
    case 'lt':
    case 'lte':
      return { op, value: Number(rawValue) || 0 };
    case 'contains':
    case 'starts_with':
      return { op, value: rawValue || ' ' };
    case 'in':
      return { op, values: rawValue.split(',').map((part) => scalar(part.trim())).filter((part) => part !== '') };
    default:
      return { op, value: scalar(rawValue) };
  }
}

/** Form text to a literal: numbers and booleans as themselves, everything else a string. */
export function scalar(text: string): string | number | boolean {
  if (text === 'true') return true;
  if (text === 'false') return false;
  if (/^-?\d+(\.\d+)?$/.test(text)) return Number(text);
  return text;
}

/** The value text a trait condition shows in its form. */
export function traitValueText(condition: Extract<Condition, { kind: 'trait' }>): string {
  if ('values' in condition) return condition.values.join(', ');
  if ('value' in condition) return String(condition.value);
  return '';
}

export function eventCount(condition: Extract<Condition, { kind: 'event' }>): { op: string; value: number } | null {
  const measure: Measure = condition.measure;
  return measure.kind === 'count' && 'value' in measure.test ? { op: measure.test.op, value: measure.test.value } : null;
}

export function withEventMatch(condition: Extract<Condition, { kind: 'event' }>, match: Partial<EventMatch>): Condition {
  return { ...condition, match: { ...condition.match, ...match } };
}
