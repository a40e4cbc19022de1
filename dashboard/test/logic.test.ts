import { describe, expect, it } from 'vitest';
import { queryString } from '../src/api/client.ts';
import { layoutGraph } from '../src/components/identity-graph.tsx';
import { en } from '../src/i18n/en.ts';
import { formatters, initialLocale, translate } from '../src/i18n/index.tsx';
import { zhCN } from '../src/i18n/zh-CN.ts';
import { matchPath } from '../src/router.tsx';
import { errorMarker, transitionsPerDay } from '../src/segment-text.ts';
import { customRange, daysOf, presetRange, resolveRange } from '../src/time-range.ts';
import type { IdentityGraph } from '../src/api/types.ts';

describe('time ranges', () => {
  it('a preset covers whole local days ending tomorrow at midnight', () => {
    const now = new Date(2026, 11, 6, 15, 30);
    const range = presetRange('7d', now);
    expect(new Date(range.to)).toEqual(new Date(2026, 11, 7));
    expect(new Date(range.from)).toEqual(new Date(2026, 10, 30));
    expect(resolveRange({ preset: 'today', from: '', to: '' }, now)).toEqual({
      from: new Date(2026, 11, 6).toISOString(),
      to: new Date(2026, 11, 7).toISOString(),
    });
  });

  it('a custom range includes its last day and refuses a reversed one', () => {
    const range = customRange('2026-11-01', '2026-11-03');
    expect(range).toEqual({ preset: 'custom', from: new Date(2026, 10, 1).toISOString(), to: new Date(2026, 10, 4).toISOString() });
    expect(customRange('2026-11-03', '2026-11-01')).toBeNull();
    expect(customRange('nonsense', '2026-11-01')).toBeNull();
  });

  it('lists every day of a range in a time zone, so empty days still get a bar', () => {
    expect(daysOf({ from: '2026-11-30T16:00:00Z', to: '2026-12-03T16:00:00Z' }, 'Asia/Shanghai')).toEqual(['2026-12-01', '2026-12-02', '2026-12-03']);
    expect(daysOf({ from: '2026-11-30T00:00:00Z', to: '2026-12-02T00:00:00Z' }, 'UTC')).toEqual(['2026-11-30', '2026-12-01']);
  });
});

describe('i18n', () => {
  it('zh-CN translates every English message, keeping its placeholders', () => {
    expect(Object.keys(zhCN).sort()).toEqual(Object.keys(en).sort());
    for (const [key, english] of Object.entries(en)) {
      const chinese = zhCN[key as keyof typeof en];
      expect(chinese.trim(), key).not.toBe('');
      const placeholders = (text: string) => [...text.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();
      expect(placeholders(chinese), key).toEqual(placeholders(english));
    }
  });

  it('fills placeholders and leaves unknown ones visible', () => {
    expect(translate('en', 'error.position', { line: 2, column: 7 })).toBe('Line 2, column 7');
    expect(translate('zh-CN', 'error.position', { line: 2, column: 7 })).toBe('第 2 行，第 7 列');
    expect(translate('en', 'error.position', { line: 2 })).toBe('Line 2, column {column}');
  });

  it('starts from the remembered choice, else the browser language', () => {
    expect(initialLocale('zh-CN', ['en-US'])).toBe('zh-CN');
    expect(initialLocale(null, ['zh-TW', 'en'])).toBe('zh-CN');
    expect(initialLocale(null, ['de-DE'])).toBe('en');
    expect(initialLocale('fr', ['en-GB'])).toBe('en');
  });

  it('formats numbers, money and days by locale', () => {
    const en = formatters('en');
    const zh = formatters('zh-CN');
    expect(en.number(1234567)).toBe('1,234,567');
    expect(en.percent(0.8125)).toBe('81.3%');
    expect(zh.currency(399)).toBe('¥399.00');
    expect(en.currency(399)).toBe('$399.00');
    expect(en.compact(12_300)).toBe('12.3K');
    expect(zh.compact(12_300)).toBe('1.2万');
    expect(en.day('2026-12-01')).toBe('12/1');
    expect(zh.date('2026-12-01T12:00:00Z')).toContain('2026');
    expect(en.dateTime(null)).toBe('—');
  });
});

describe('segment editor helpers', () => {
  it('puts a caret under the column the parser names', () => {
    const text = 'trait.city = "上海" and\nevent("Order").count(within 30d) >= x';
    expect(errorMarker(text, 2, 37)).toEqual({ lineText: 'event("Order").count(within 30d) >= x', caret: `${' '.repeat(36)}^` });
    expect(errorMarker(text, 1, 1, 5)?.caret).toBe('^^^^^');
    expect(errorMarker(text, 3, 1)).toBeNull();
  });

  it('counts entries and exits per local day, in day order', () => {
    const at = (day: number, hour: number) => new Date(2026, 11, day, hour).toISOString();
    const days = transitionsPerDay([
      { transition: 'entered', at: at(2, 10) },
      { transition: 'entered', at: at(1, 9) },
      { transition: 'exited', at: at(2, 23) },
      { transition: 'entered', at: at(2, 1) },
    ]);
    expect(days).toEqual([
      { day: '2026-12-01', entered: 1, exited: 0 },
      { day: '2026-12-02', entered: 2, exited: 1 },
    ]);
  });
});

describe('routing and requests', () => {
  it('matches paths with parameters, decoding them', () => {
    expect(matchPath('/profiles/:ref', '/profiles/email%3Aann%40example.com')).toEqual({ ref: 'email:ann@example.com' });
    expect(matchPath('/segments/new', '/segments/new')).toEqual({});
    expect(matchPath('/segments/:key', '/segments')).toBeNull();
    expect(matchPath('/', '/')).toEqual({});
  });

  it('builds query strings with repeated parameters and without empty ones', () => {
    expect(queryString({ type: ['track', 'page'], event: '', since: undefined, limit: 50, 'trait.city': '上海' })).toBe(
      '?type=track&type=page&limit=50&trait.city=%E4%B8%8A%E6%B5%B7',
    );
    expect(queryString({})).toBe('');
  });
});

describe('identity graph layout', () => {
  const identifier = (profileId: string, type: string, value: string, live = true) => ({
    profileId,
    type,
    value,
    live,
    unboundAt: live ? null : '2026-12-01T00:00:00Z',
    unboundReason: null,
    source: null,
    firstSeen: '2026-11-01T00:00:00Z',
    lastSeen: '2026-11-01T00:00:00Z',
    linkedBy: { messageId: null, seq: null, via: 'event' },
    boundAt: '2026-11-01T00:00:00Z',
  });
  const graph: IdentityGraph = {
    profileId: 'p-survivor',
    mergedFrom: null,
    identifiers: [identifier('p-survivor', 'user_id', 'u1'), identifier('p-absorbed', 'anonymous_id', 'a1'), identifier('p-gone', 'email', 'x@y', false)],
    merges: [],
    splitFrom: [],
    absorbedProfiles: [{ id: 'p-absorbed', mergedAt: '2026-11-02T00:00:00Z' }],
    refusals: [],
  };

  it('puts the survivor in the middle and hangs each identifier on the profile it came through', () => {
    const layout = layoutGraph(graph, 400);
    expect(layout.profiles[0]).toMatchObject({ id: 'p-survivor', x: 200, y: 200, survivor: true });
    expect(layout.profiles.map((p) => p.id)).toEqual(['p-survivor', 'p-absorbed']);
    const byValue = new Map(layout.identifiers.map((i) => [i.value, i]));
    expect(byValue.get('a1')?.profileId).toBe('p-absorbed');
    expect(byValue.get('u1')?.profileId).toBe('p-survivor');
    // An identifier of a profile not drawn (split off since) hangs on the survivor.
    expect(byValue.get('x@y')).toMatchObject({ profileId: 'p-survivor', live: false });
    // No two nodes on the same spot.
    const spots = new Set([...layout.profiles, ...layout.identifiers].map((n) => `${Math.round(n.x)},${Math.round(n.y)}`));
    expect(spots.size).toBe(layout.profiles.length + layout.identifiers.length);
  });
});
