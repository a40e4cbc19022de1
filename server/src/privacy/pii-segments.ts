/**
 * What the segment language can still do on encrypted personal data (privacy/pii-codec.ts):
 * - PII traits (email, phone, name, address, id_number… as whole values) are stored as keyed-hash
 *   tokens: `exists`, `missing`, `=`, `!=`, `in`, `not in` work — the literals are turned into
 *   tokens before evaluation (`encodePiiCondition`); `contains`, `starts_with`, `ends_with`,
 *   `matches`, comparisons, dates and paths inside the value cannot, and are refused with a clear
 *   error when the segment is saved (`piiConditionIssues`).
 * - PII properties of events are sealed with random IVs: only `exists` / `missing` work.
 * Pure functions over the AST, and `encodeSegmentCondition` for evaluators.
 */
import type { Condition, EventMatch } from '../segments/ast.ts';
import type { Issue } from '../segments/language/check.ts';
import type { Queryable } from '../storage/database.ts';
import { isEncryptedEventPath, isEncryptedKey, piiCodec, type PiiCodec } from './pii-codec.ts';

const TRAIT_OPS = new Set(['eq', 'neq', 'in', 'not_in', 'exists', 'missing']);
const PRESENCE = new Set(['exists', 'missing']);

function filterIssues(match: EventMatch, path: string, issues: Issue[]): void {
  match.filters.forEach((filter, index) => {
    if (isEncryptedEventPath(filter.property) && !PRESENCE.has(filter.op)) {
      issues.push({
        path: `${path}/filters/${index}/op`,
        message: `event property ${filter.property} is personal data stored encrypted: only exists and missing work on it (${filter.op} cannot be evaluated)`,
      });
    }
  });
}

/** Conditions the encrypted storage cannot answer, as checker errors at their place. */
export function piiConditionIssues(condition: Condition, path = ''): Issue[] {
  const issues: Issue[] = [];
  const walk = (node: Condition, at: string): void => {
    switch (node.kind) {
      case 'and':
      case 'or':
        node.conditions.forEach((child, index) => walk(child, `${at}/conditions/${index}`));
        return;
      case 'not':
        walk(node.condition, `${at}/condition`);
        return;
      case 'trait': {
        const [key, ...rest] = node.trait.split('.');
        if (!isEncryptedKey(key!)) return;
        if (rest.length > 0 && !PRESENCE.has(node.op)) {
          issues.push({ path: `${at}/trait`, message: `trait ${key} is personal data stored as a keyed hash: paths inside it (${node.trait}) cannot be read; use ${key} itself` });
        } else if (!TRAIT_OPS.has(node.op)) {
          issues.push({
            path: `${at}/op`,
            message: `trait ${key} is personal data stored as a keyed hash: only exists, missing, =, !=, in and not in work on it (${node.op} cannot be evaluated)`,
          });
        }
        return;
      }
      case 'event':
        filterIssues(node.match, `${at}/match`, issues);
        return;
      case 'sequence':
        filterIssues(node.first, `${at}/first`, issues);
        filterIssues(node.then, `${at}/then`, issues);
        return;
      default:
        return;
    }
  };
  walk(condition, path);
  return issues;
}

/** Whether a condition compares a PII trait with literals (needs `encodePiiCondition`). */
export function comparesPiiTraits(condition: Condition): boolean {
  switch (condition.kind) {
    case 'and':
    case 'or':
      return condition.conditions.some(comparesPiiTraits);
    case 'not':
      return comparesPiiTraits(condition.condition);
    case 'trait':
      return isEncryptedKey(condition.trait) && (condition.op === 'eq' || condition.op === 'neq' || condition.op === 'in' || condition.op === 'not_in');
    default:
      return false;
  }
}

/** The condition with literals compared to PII traits replaced by their tokens (what the traits hold). */
export function encodePiiCondition(condition: Condition, codec: Pick<PiiCodec, 'token'>): Condition {
  switch (condition.kind) {
    case 'and':
    case 'or':
      return { ...condition, conditions: condition.conditions.map((child) => encodePiiCondition(child, codec)) };
    case 'not':
      return { ...condition, condition: encodePiiCondition(condition.condition, codec) };
    case 'trait':
      if (!isEncryptedKey(condition.trait)) return condition;
      if (condition.op === 'eq' || condition.op === 'neq') return { ...condition, value: codec.token(condition.value) };
      if (condition.op === 'in' || condition.op === 'not_in') return { ...condition, values: condition.values.map((value) => codec.token(value)) };
      return condition;
    default:
      return condition;
  }
}

/** `encodePiiCondition` with the workspace's codec, made only when the condition needs it. */
export async function encodeSegmentCondition(db: Queryable, workspaceId: string, condition: Condition): Promise<Condition> {
  if (!comparesPiiTraits(condition)) return condition;
  return encodePiiCondition(condition, await piiCodec(db, workspaceId));
}
