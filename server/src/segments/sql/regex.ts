/*
 * Regular expressions of the segment language (the portable subset of ast.ts) in the form
 * PostgreSQL's `~` reads exactly as the incremental evaluator's JavaScript RegExp (flags `su`) does.
 * Most of the subset means the same in both; the class escapes do not: PostgreSQL reads \d, \w and
 * \s through the database's locale (which may reach beyond ASCII), JavaScript reads \d and \w as
 * ASCII and \s as its own list of Unicode spaces. They are spelled out here.
 */

const DIGITS = '0-9';
const WORD = 'A-Za-z0-9_';
// JavaScript's \s: WhiteSpace and LineTerminator of ECMA-262, as literal characters (a range for U+2000–U+200A).
const SPACES = '\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff';

const CLASS_ESCAPES: Record<string, string> = { d: DIGITS, w: WORD, s: SPACES };

/** The pattern rewritten for PostgreSQL's advanced regular expressions, with JavaScript's meaning. */
export function postgresPattern(pattern: string): string {
  let out = '';
  let inClass = false;
  for (let i = 0; i < pattern.length; i++) {
    const char = pattern[i]!;
    if (char === '\\' && i + 1 < pattern.length) {
      const next = pattern[i + 1]!;
      i++;
      const lower = next.toLowerCase();
      const members = CLASS_ESCAPES[lower];
      if (members === undefined) {
        out += `\\${next}`;
      } else if (next === lower) {
        out += inClass ? members : `[${members}]`;
      } else if (!inClass) {
        out += `[^${members}]`;
      } else {
        // A negated class escape inside a class ([\D.]) has no bracket form; the checker keeps
        // such patterns out of definitions.
        throw new Error(`Regular expression ${JSON.stringify(pattern)}: \\${next} inside [...] is not supported`);
      }
      continue;
    }
    if (inClass) {
      if (char === ']') inClass = false;
    } else if (char === '[') {
      // A ] right after [ or [^ closes the class in JavaScript ([] matches nothing, [^] anything)
      // but is a literal member in PostgreSQL.
      const negated = pattern[i + 1] === '^';
      if (pattern[i + (negated ? 2 : 1)] === ']') {
        if (!negated) throw new Error(`Regular expression ${JSON.stringify(pattern)}: [] matches nothing and is not supported`);
        out += '.';
        i += 2;
        continue;
      }
      inClass = true;
      if (negated) {
        out += '[^';
        i++;
        continue;
      }
    }
    out += char;
  }
  return out;
}
