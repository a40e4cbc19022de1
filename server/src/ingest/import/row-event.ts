import { ImportError } from './errors.ts';
import type { FieldMapping } from './mapping.ts';
import { rowMessageId } from './message-id.ts';
import { isNaiveDateTime, parseDateTime } from './time.ts';
import { createConverter, multiply, toNumber } from './values.ts';

export type ImportEventType = 'identify' | 'track';

export interface RowOptions {
  /** The call type of every row; undefined only for NDJSON lines that carry their own. */
  type: ImportEventType | undefined;
  /** Constant event name of track rows (`--event`). */
  event: string | undefined;
  mappings: readonly FieldMapping[];
  /** Leave unmapped columns out instead of putting them into traits (identify) / properties (track). */
  onlyMapped: boolean;
  /** IANA zone of naive date-times. */
  timeZone: string;
  /** Part of the deterministic messageId of rows without one. */
  sourceId: string;
}

/** A row as a Segment-shaped event, still to be validated by normalizeEvent; or why it cannot be one. */
export type RowResult =
  | { ok: true; event: Record<string, unknown> }
  | { ok: false; reason: string; field: string | null; message: string };

type Reader<Row> = (row: Row) => unknown;
interface Compiled<Row> {
  mapping: FieldMapping;
  readers: Array<Reader<Row>>;
}

const TIMESTAMP_FIELDS = ['timestamp', 'originalTimestamp', 'sentAt'] as const;

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Assigns like `target[key] = value`, but a key named `__proto__` becomes a plain own property. */
function assign(target: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
  else target[key] = value;
}

function setPath(target: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let node = target;
  for (const segment of path.slice(0, -1)) {
    let next = node[segment];
    if (!isObject(next)) {
      next = {};
      node[segment] = next;
    }
    node = next as Record<string, unknown>;
  }
  node[path[path.length - 1]!] = value;
}

function unmappedBucket(type: ImportEventType | undefined): 'traits' | 'properties' {
  return type === 'identify' ? 'traits' : 'properties';
}

/**
 * Shared row → event logic for CSV fields and NDJSON objects: unmapped values first, then the
 * mapped ones, converted to their types. `isAbsent` says which raw values mean "no value".
 */
function createBuilder<Row>(
  options: RowOptions,
  compiled: ReadonlyArray<Compiled<Row>>,
  isAbsent: (value: unknown) => boolean,
) {
  const convert = createConverter(options.timeZone);
  const bucket = unmappedBucket(options.type);

  return (row: Row, unmapped: ReadonlyArray<readonly [string, unknown]>, line: number, rowText: string): RowResult => {
    const event: Record<string, unknown> = {};
    if (options.type) event.type = options.type;
    if (options.event !== undefined) event.event = options.event;
    const nested: Record<string, Record<string, unknown> | undefined> = {};

    for (const [key, value] of unmapped) {
      if (isAbsent(value)) continue;
      assign((nested[bucket] ??= {}), key, value);
    }

    for (const { mapping, readers } of compiled) {
      let value: unknown;
      if (readers.length === 1) {
        const raw = readers[0]!(row);
        if (isAbsent(raw)) continue;
        const converted = convert(raw, mapping.type);
        if (!converted.ok) {
          return {
            ok: false,
            reason: converted.reason,
            field: mapping.target,
            message: `Column ${mapping.columns[0]}: ${converted.problem} (mapped to ${mapping.target})`,
          };
        }
        value = converted.value;
      } else {
        const raws = readers.map((read) => read(row));
        if (raws.some(isAbsent)) continue;
        const factors: number[] = [];
        for (const [i, raw] of raws.entries()) {
          const number = toNumber(raw);
          if (number === null) {
            return {
              ok: false,
              reason: 'invalid_number',
              field: mapping.target,
              message: `Column ${mapping.columns[i]}: ${JSON.stringify(raw)} is not a number (a factor of ${mapping.target})`,
            };
          }
          factors.push(number);
        }
        value = multiply(factors);
        if (mapping.type === 'integer' && !Number.isSafeInteger(value)) {
          return { ok: false, reason: 'invalid_integer', field: mapping.target, message: `${mapping.target} = ${String(value)} is not an integer` };
        }
      }
      if (mapping.path.length === 0) event[mapping.root] = value;
      else setPath((nested[mapping.root] ??= {}), mapping.path, value);
    }

    for (const [key, value] of Object.entries(nested)) event[key] = value;
    if (event.messageId === undefined) event.messageId = rowMessageId(options.sourceId, line, rowText);
    return { ok: true, event };
  };
}

function usedColumns(mappings: readonly FieldMapping[]): Set<string> {
  return new Set(mappings.flatMap((mapping) => mapping.columns));
}

/**
 * Unmapped columns land at the top of traits/properties; a mapping writing the same key (or a
 * path below it) would overwrite them, so that is refused up front rather than losing data.
 */
function conflictingKey(options: RowOptions, key: string): FieldMapping | undefined {
  const bucket = unmappedBucket(options.type);
  return options.mappings.find((mapping) => mapping.root === bucket && mapping.path[0] === key);
}

/** Column names of a CSV header: trimmed, and `column_<n>` for blank ones. */
export function headerNames(header: readonly string[]): string[] {
  return header.map((name, i) => name.trim() || `column_${i + 1}`);
}

/** Converts CSV rows given the header; checks the mapping against it first (unknown columns etc.). */
export function createCsvRowConverter(header: readonly string[], options: RowOptions): (fields: readonly string[], line: number) => RowResult {
  const names = headerNames(header);
  const indexOf = (column: string): number => {
    const found = names.indexOf(column);
    if (found < 0) {
      throw new ImportError('unknown_column', `Column "${column}" is not in the file's header (${names.join(', ')})`, column);
    }
    if (names.indexOf(column, found + 1) >= 0) {
      throw new ImportError('ambiguous_column', `Column "${column}" appears more than once in the header`, column);
    }
    return found;
  };
  const compiled: Array<Compiled<readonly string[]>> = options.mappings.map((mapping) => ({
    mapping,
    readers: mapping.columns.map((column) => {
      const index = indexOf(column);
      return (fields: readonly string[]) => fields[index];
    }),
  }));

  const used = usedColumns(options.mappings);
  const unmapped: Array<[string, number]> = [];
  if (!options.onlyMapped) {
    for (const [index, name] of names.entries()) {
      if (used.has(name)) continue;
      if (names.indexOf(name) !== index) {
        throw new ImportError('ambiguous_column', `Column "${name}" appears more than once in the header: map the ones to keep, with --only-mapped`, name);
      }
      const conflict = conflictingKey(options, name);
      if (conflict) {
        throw new ImportError(
          'column_conflict',
          `Unmapped column "${name}" would be overwritten by the mapping to ${conflict.target}: map "${name}" explicitly or use --only-mapped`,
          name,
        );
      }
      unmapped.push([name, index]);
    }
  }

  const build = createBuilder<readonly string[]>(options, compiled, (value) => value === undefined || value === '');
  return (fields, line) => {
    if (fields.length !== names.length) {
      return {
        ok: false,
        reason: 'column_count',
        field: null,
        message: `The row has ${fields.length} fields; the header has ${names.length}`,
      };
    }
    const values = unmapped.map(([name, index]) => [name, fields[index]] as const);
    return build(fields, values, line, JSON.stringify(fields));
  };
}

/** Reads `a.b` as a top-level key if present, else as a path into nested objects. */
function readJsonColumn(column: string): Reader<Record<string, unknown>> {
  const path = column.split('.');
  return (row) => {
    if (Object.hasOwn(row, column)) return row[column];
    let node: unknown = row;
    for (const segment of path) {
      if (!isObject(node) || !Object.hasOwn(node, segment)) return undefined;
      node = node[segment];
    }
    return node;
  };
}

/**
 * Converts NDJSON lines. Without mappings a line is already a Segment event: it keeps its own
 * type, event and messageId (defaults from the options), and naive times get the time zone.
 * With mappings its top-level keys are the columns, as in a CSV file.
 */
export function createJsonRowConverter(options: RowOptions): (text: string, line: number) => RowResult {
  const passThrough = options.mappings.length === 0 && !options.onlyMapped;
  const compiled: Array<Compiled<Record<string, unknown>>> = options.mappings.map((mapping) => ({
    mapping,
    readers: mapping.columns.map(readJsonColumn),
  }));
  const usedKeys = new Set([...usedColumns(options.mappings)].map((column) => column.split('.')[0]!));
  const build = createBuilder<Record<string, unknown>>(options, compiled, (value) => value === undefined || value === null);

  return (text, line) => {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (error) {
      return { ok: false, reason: 'invalid_json', field: null, message: `The line is not JSON: ${(error as Error).message}` };
    }
    if (!isObject(parsed)) return { ok: false, reason: 'not_an_object', field: null, message: 'Each line must be a JSON object' };

    if (passThrough) {
      const event: Record<string, unknown> = { ...parsed };
      if (event.type === undefined && options.type) event.type = options.type;
      if (event.event === undefined && options.event !== undefined && event.type === 'track') event.event = options.event;
      if (event.messageId === undefined || event.messageId === null || event.messageId === '') {
        event.messageId = rowMessageId(options.sourceId, line, text);
      }
      for (const field of TIMESTAMP_FIELDS) {
        const value = event[field];
        if (typeof value !== 'string' || !isNaiveDateTime(value)) continue;
        const instant = parseDateTime(value, options.timeZone);
        if (instant) event[field] = instant.toISOString();
      }
      return { ok: true, event };
    }

    const unmapped: Array<readonly [string, unknown]> = [];
    if (!options.onlyMapped) {
      for (const [key, value] of Object.entries(parsed)) {
        if (usedKeys.has(key)) continue;
        const conflict = conflictingKey(options, key);
        if (conflict && value !== undefined && value !== null) {
          return {
            ok: false,
            reason: 'column_conflict',
            field: conflict.target,
            message: `Unmapped key "${key}" would be overwritten by the mapping to ${conflict.target}: map it explicitly or use --only-mapped`,
          };
        }
        unmapped.push([key, value]);
      }
    }
    return build(parsed, unmapped, line, text);
  };
}
