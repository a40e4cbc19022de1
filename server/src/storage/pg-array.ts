/**
 * Array parameters as PostgreSQL array literals, built in one pass. `pg` encodes a JS array
 * parameter element by element (each element through its generic value conversion, then two regex
 * replaces and quotes): ~5 % of the identity resolver's Node time over a batch's dozens of arrays.
 * The literal is the same text `pg` would send, so the statement, its plan and its result do not
 * change; pass it where the statement casts the parameter (`$2::uuid[]`).
 */

/**
 * Values whose text never needs quoting inside an array literal: uuids, integers, ISO times
 * (digits, letters, `-`, `:`, `.`, `+`). Throws on anything else, so a wrong caller fails loudly
 * instead of sending a literal PostgreSQL would split or misread.
 */
export function plainArray(values: ReadonlyArray<string | number | null>): string {
  let out = '{';
  for (let i = 0; i < values.length; i++) {
    if (i > 0) out += ',';
    const value = values[i];
    if (value === null || value === undefined) {
      out += 'NULL';
      continue;
    }
    const text = typeof value === 'number' ? String(value) : value;
    if (typeof value === 'number' ? !Number.isFinite(value) : !PLAIN.test(text) || text.toUpperCase() === 'NULL') {
      throw new Error(`plainArray: ${JSON.stringify(value)} is not a plain array element (uuid, integer or ISO time)`);
    }
    out += text;
  }
  return `${out}}`;
}

const PLAIN = /^[0-9A-Za-z:.+-]+$/;

/** Any text values (null allowed), quoted and escaped as PostgreSQL's array input reads them. */
export function textArray(values: ReadonlyArray<string | null>): string {
  let out = '{';
  for (let i = 0; i < values.length; i++) {
    if (i > 0) out += ',';
    const value = values[i];
    if (value === null || value === undefined) {
      out += 'NULL';
      continue;
    }
    if (typeof value !== 'string') throw new Error(`textArray: element ${i} is a ${typeof value}, not a string`);
    out += NEEDS_ESCAPE.test(value) ? `"${value.replace(ESCAPE, '\\$&')}"` : `"${value}"`;
  }
  return `${out}}`;
}

const NEEDS_ESCAPE = /["\\]/;
const ESCAPE = /["\\]/g;
