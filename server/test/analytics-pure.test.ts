import { describe, expect, it } from 'vitest';
import { instantOfLocal, nextPeriod, periodLabel, periodLabels, periodsBetween, resolveRange } from '../src/analytics/definition.ts';
import { evaluateFormula, FormulaError, parseFormula } from '../src/analytics/formula.ts';

describe('time-zone maths', () => {
  it('finds the instant of a wall-clock time, across daylight-saving changes', () => {
    expect(new Date(instantOfLocal({ year: 2026, month: 3, day: 1 }, 'Asia/Shanghai')).toISOString()).toBe('2026-02-28T16:00:00.000Z');
    expect(new Date(instantOfLocal({ year: 2026, month: 3, day: 8 }, 'America/New_York')).toISOString()).toBe('2026-03-08T05:00:00.000Z');
    expect(new Date(instantOfLocal({ year: 2026, month: 3, day: 9 }, 'America/New_York')).toISOString()).toBe('2026-03-09T04:00:00.000Z');
    // 02:30 on 8 March does not exist in New York: the instant after the gap.
    expect(new Date(instantOfLocal({ year: 2026, month: 3, day: 8, hour: 2, minute: 30 }, 'America/New_York')).toISOString()).toBe('2026-03-08T07:30:00.000Z');
    // 01:30 on 1 November happens twice: the earlier one (EDT).
    expect(new Date(instantOfLocal({ year: 2026, month: 11, day: 1, hour: 1, minute: 30 }, 'America/New_York')).toISOString()).toBe('2026-11-01T05:30:00.000Z');
  });

  it('resolves ranges: dates are whole local days with `to` inclusive, instants exact, lastDays from local midnight', () => {
    expect(resolveRange({ from: '2026-03-01', to: '2026-03-31' }, 'Asia/Shanghai', new Date())).toEqual({
      fromMs: Date.parse('2026-02-28T16:00:00Z'),
      toMs: Date.parse('2026-03-31T16:00:00Z'),
    });
    expect(resolveRange({ from: '2026-03-01T00:00:00Z', to: '2026-03-02T00:00:00+08:00' }, 'UTC', new Date())).toEqual({
      fromMs: Date.parse('2026-03-01T00:00:00Z'),
      toMs: Date.parse('2026-03-01T16:00:00Z'),
    });
    const now = new Date('2026-03-10T20:00:00Z'); // 04:00 on 11 March in Shanghai
    expect(resolveRange({ lastDays: 2 }, 'Asia/Shanghai', now).fromMs).toBe(Date.parse('2026-03-09T16:00:00Z'));
    expect(() => resolveRange({ from: '2026-02-29', to: '2026-03-01' }, 'UTC', now)).toThrow(/not a calendar date/);
    expect(() => resolveRange({ from: '2026-03-02', to: '2026-03-01' }, 'UTC', now)).toThrow(/after/);
    expect(() => resolveRange({ from: '2026-03-01T00:00:00', to: '2026-03-02' }, 'UTC', now)).toThrow(/zone/);
  });

  it('labels periods (ISO weeks from Monday) and steps through them', () => {
    const sunday = Date.parse('2026-03-08T15:00:00Z'); // Sunday 23:00 in Shanghai
    expect(periodLabel(sunday, 'week', 'Asia/Shanghai')).toBe('2026-03-02');
    expect(periodLabel(sunday + 3_600_000, 'week', 'Asia/Shanghai')).toBe('2026-03-09');
    expect(periodLabel(sunday, 'hour', 'Asia/Shanghai')).toBe('2026-03-08T23:00');
    expect(periodLabel(sunday, 'month', 'UTC')).toBe('2026-03-01');
    expect(nextPeriod('2026-12-01', 'month')).toBe('2027-01-01');
    expect(nextPeriod('2026-03-08T23:00', 'hour')).toBe('2026-03-09T00:00');
    expect(periodLabels({ fromMs: Date.parse('2026-01-30T00:00:00Z'), toMs: Date.parse('2026-03-01T00:00:00Z') }, 'month', 'UTC')).toEqual(['2026-01-01', '2026-02-01']);
    expect(periodsBetween('2025-11-01', '2026-02-01', 'month')).toBe(3);
    expect(periodsBetween('2026-03-02', '2026-03-23', 'week')).toBe(3);
    expect(() => periodLabels({ fromMs: 0, toMs: Date.parse('2026-01-01T00:00:00Z') }, 'hour', 'UTC')).toThrow(/coarser/);
  });
});

describe('formulas', () => {
  it('parses with precedence and evaluates per period, null on division by zero', () => {
    const formula = parseFormula('(A - B) / A * 100', 2);
    expect(evaluateFormula(formula, [200, 50])).toBe(75);
    expect(evaluateFormula(formula, [0, 0])).toBeNull();
    expect(evaluateFormula(parseFormula('-A + 2 * B', 2), [1, 3])).toBe(5);
    expect(evaluateFormula(parseFormula('A / 4', 1), [null])).toBeNull();
  });

  it('refuses unknown series and malformed text', () => {
    expect(() => parseFormula('A + C', 2)).toThrow(FormulaError);
    expect(() => parseFormula('(A + B', 2)).toThrow(/not closed/);
    expect(() => parseFormula('A +', 2)).toThrow(/ends too early/);
    expect(() => parseFormula('A $ B', 2)).toThrow(/Unexpected/);
    expect(() => parseFormula('A B', 2)).toThrow(/after the end/);
  });
});
