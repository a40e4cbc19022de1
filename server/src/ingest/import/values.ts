import type { ValueType } from './mapping.ts';
import { createDateParser } from './time.ts';

export type Converted = { ok: true; value: unknown } | { ok: false; reason: string; problem: string };

// Plain decimal notation only: Number() would also accept '', ' ', '0x1F', 'Infinity'.
const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const TRUE_WORDS = new Set(['true', 't', 'yes', 'y', '1']);
const FALSE_WORDS = new Set(['false', 'f', 'no', 'n', '0']);

const quote = (value: unknown) => (typeof value === 'string' ? JSON.stringify(value) : String(JSON.stringify(value)));

export function toNumber(value: unknown): number | null {
  if (typeof value === 'number') return Number.isFinite(value) ? value : null;
  if (typeof value !== 'string') return null;
  const trimmed = value.trim();
  if (!DECIMAL.test(trimmed)) return null;
  const number = Number(trimmed);
  return Number.isFinite(number) ? number : null;
}

/**
 * Multiplies numbers; the product is rounded to 15 significant digits so that 6 × 2.55 is 15.3,
 * not binary floating-point's 15.299999999999999.
 */
export function multiply(factors: readonly number[]): number {
  const product = factors.reduce((total, factor) => total * factor, 1);
  return product === 0 ? 0 : Number(product.toPrecision(15));
}

/** Converts values read from a file to the mapped type; `undefined` type keeps the value as read. */
export function createConverter(timeZone: string): (value: unknown, type: ValueType | undefined) => Converted {
  const parseDate = createDateParser(timeZone);
  return (value, type) => {
    switch (type) {
      case undefined:
        return { ok: true, value };
      case 'string':
        if (typeof value === 'string') return { ok: true, value };
        if (typeof value === 'number' || typeof value === 'boolean') return { ok: true, value: String(value) };
        return { ok: false, reason: 'invalid_string', problem: `${quote(value)} is not a string` };
      case 'number': {
        const number = toNumber(value);
        return number === null ? { ok: false, reason: 'invalid_number', problem: `${quote(value)} is not a number` } : { ok: true, value: number };
      }
      case 'integer': {
        const number = toNumber(value);
        return number === null || !Number.isSafeInteger(number)
          ? { ok: false, reason: 'invalid_integer', problem: `${quote(value)} is not an integer` }
          : { ok: true, value: number };
      }
      case 'boolean': {
        if (typeof value === 'boolean') return { ok: true, value };
        const word = typeof value === 'string' ? value.trim().toLowerCase() : typeof value === 'number' ? String(value) : '';
        if (TRUE_WORDS.has(word)) return { ok: true, value: true };
        if (FALSE_WORDS.has(word)) return { ok: true, value: false };
        return { ok: false, reason: 'invalid_boolean', problem: `${quote(value)} is not a boolean (true/false, yes/no, 1/0)` };
      }
      case 'date': {
        const date = typeof value === 'string' ? parseDate(value) : null;
        return date
          ? { ok: true, value: date.toISOString() }
          : { ok: false, reason: 'invalid_date', problem: `${quote(value)} is not a date (YYYY-MM-DD[ HH:MM[:SS]][zone])` };
      }
    }
  };
}
