import { ImportError } from './errors.ts';

export const VALUE_TYPES = ['string', 'number', 'integer', 'boolean', 'date'] as const;
export type ValueType = (typeof VALUE_TYPES)[number];

/** Top-level event fields a column can fill. */
export const TOP_LEVEL_TARGETS = ['userId', 'anonymousId', 'messageId', 'timestamp', 'event'] as const;
/** Event objects a column can fill at a dot path, e.g. `traits.address.city`. */
export const NESTED_TARGETS = ['traits', 'properties', 'context'] as const;

type TopLevelTarget = (typeof TOP_LEVEL_TARGETS)[number];
type NestedTarget = (typeof NESTED_TARGETS)[number];

export interface FieldMapping {
  /** As written, e.g. `properties.revenue`; used in reject reasons. */
  target: string;
  root: TopLevelTarget | NestedTarget;
  /** Path inside traits/properties/context; empty for top-level targets. */
  path: string[];
  /** The source column, or several whose numbers are multiplied (`Quantity*UnitPrice`). */
  columns: string[];
  /** Conversion; undefined keeps the value as read (CSV: a string). */
  type: ValueType | undefined;
}

// Keys that would reach Object.prototype when assigned on a plain object.
const FORBIDDEN_KEYS = new Set(['__proto__', 'prototype', 'constructor']);

function invalid(message: string): ImportError {
  return new ImportError('invalid_mapping', message, '--map');
}

function parseTarget(target: string): Pick<FieldMapping, 'root' | 'path'> {
  if ((TOP_LEVEL_TARGETS as readonly string[]).includes(target)) return { root: target as TopLevelTarget, path: [] };
  const [root, ...path] = target.split('.');
  if (!(NESTED_TARGETS as readonly string[]).includes(root!)) {
    throw invalid(
      `Unknown target "${target}": use one of ${TOP_LEVEL_TARGETS.join(', ')}, or traits.<path>, properties.<path>, context.<path>`,
    );
  }
  if (path.length === 0 || path.some((segment) => segment === '')) {
    throw invalid(`Target "${target}" needs a dot path after ${root}, e.g. ${root}.plan`);
  }
  const forbidden = path.find((segment) => FORBIDDEN_KEYS.has(segment));
  if (forbidden) throw invalid(`Target "${target}" uses the reserved key "${forbidden}"`);
  return { root: root as NestedTarget, path };
}

function parseItem(item: string): FieldMapping {
  const equals = item.indexOf('=');
  if (equals < 0) throw invalid(`Each --map item is target=Column[:type]; got "${item}"`);
  const target = item.slice(0, equals).trim();
  let source = item.slice(equals + 1).trim();
  let type: ValueType | undefined;
  const colon = source.lastIndexOf(':');
  if (colon >= 0) {
    const written = source.slice(colon + 1).trim();
    if (!(VALUE_TYPES as readonly string[]).includes(written)) {
      throw invalid(`Unknown type "${written}" in "${item}": use one of ${VALUE_TYPES.join(', ')}`);
    }
    type = written as ValueType;
    source = source.slice(0, colon).trim();
  }
  const columns = source.split('*').map((column) => column.trim());
  if (columns.some((column) => column === '')) throw invalid(`Missing column name in "${item}"`);

  const { root, path } = parseTarget(target);
  if (columns.length > 1) {
    if (type !== undefined && type !== 'number' && type !== 'integer') {
      throw invalid(`"${item}" multiplies columns, so its type is number or integer, not ${type}`);
    }
    if (root !== 'traits' && root !== 'properties' && root !== 'context') {
      throw invalid(`"${item}": only traits, properties and context values can be a product of columns`);
    }
    type ??= 'number';
  }
  if (root === 'timestamp') {
    if (type !== undefined && type !== 'date') throw invalid(`"${item}": timestamp is always a date`);
    type = 'date';
  } else if (path.length === 0 && type !== undefined && type !== 'string') {
    throw invalid(`"${item}": ${root} is always a string`);
  }
  return { target, root, path, columns, type };
}

/**
 * Parses `--map` values: comma-separated `target=Column[:type]` items, e.g.
 * `userId=CustomerID,properties.revenue=Quantity*UnitPrice:number`. Several --map options add up.
 */
export function parseMappings(specs: readonly string[]): FieldMapping[] {
  const mappings: FieldMapping[] = [];
  const targets = new Set<string>();
  for (const spec of specs) {
    for (const item of spec.split(',')) {
      if (item.trim() === '') continue;
      const mapping = parseItem(item);
      if (targets.has(mapping.target)) throw invalid(`Target "${mapping.target}" is mapped twice`);
      targets.add(mapping.target);
      mappings.push(mapping);
    }
  }
  // traits.a and traits.a.b cannot both hold a value.
  for (const mapping of mappings) {
    if (mapping.path.length === 0) continue;
    const clash = mappings.find(
      (other) => other !== mapping && other.root === mapping.root && other.path.length > mapping.path.length &&
        mapping.path.every((segment, i) => other.path[i] === segment),
    );
    if (clash) throw invalid(`Targets "${mapping.target}" and "${clash.target}" overlap: one would overwrite the other`);
  }
  return mappings;
}
