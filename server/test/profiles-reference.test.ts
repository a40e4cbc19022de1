import { describe, expect, it } from 'vitest';
import { ApiError } from '../src/api/errors.ts';
import { defaultIdentityConfig, parseIdentitySettings } from '../src/identity/identifier-types.ts';
import { formatProfile } from '../src/profiles/format.ts';
import { likePrefix, normalizeForLookup, parseProfileRef, parseTraitFilters, searchPrefixes } from '../src/profiles/reference.ts';
import type { Profile } from '../src/profiles/schemas.ts';

function apiError(work: () => unknown): ApiError {
  try {
    work();
  } catch (error) {
    if (error instanceof ApiError) return error;
    throw error;
  }
  throw new Error('expected an ApiError');
}

const config = defaultIdentityConfig();
const usConfig = (() => {
  const parsed = parseIdentitySettings({ defaultPhoneRegion: 'US' });
  if (!parsed.ok) throw new Error('bad test settings');
  return parsed.config;
})();

describe('profile references (pure)', () => {
  it('reads a profile id or <type>:<value>, splitting at the first colon', () => {
    expect(parseProfileRef('8F14E45F-CEEA-467F-A0E6-1F2B3C4D5E6F')).toEqual({ kind: 'id', profileId: '8f14e45f-ceea-467f-a0e6-1f2b3c4d5e6f' });
    expect(parseProfileRef('email:a@b.com')).toEqual({ kind: 'identifier', type: 'email', raw: 'a@b.com' });
    expect(parseProfileRef('cookie_id:ga:1.2.3')).toEqual({ kind: 'identifier', type: 'cookie_id', raw: 'ga:1.2.3' });
    expect(apiError(() => parseProfileRef('li-lei'))).toMatchObject({ statusCode: 400, field: 'profile' });
    expect(apiError(() => parseProfileRef(':x'))).toMatchObject({ statusCode: 400, field: 'profile' });
  });

  it('normalises a looked-up value like resolution does, naming the field at fault', () => {
    const fields = { type: 'identifier.type', value: 'identifier.value' };
    expect(normalizeForLookup(config, 'phone', '+86 138 0013 8000', fields)).toEqual({ type: 'phone', value: '+8613800138000' });
    expect(normalizeForLookup(config, 'phone', '138-0013-8000', fields)).toEqual({ type: 'phone', value: '+8613800138000' });
    expect(normalizeForLookup(usConfig, 'phone', '(415) 555-2671', fields)).toEqual({ type: 'phone', value: '+14155552671' });
    expect(normalizeForLookup(config, 'email', ' Li.Lei@Example.COM ', fields)).toEqual({ type: 'email', value: 'li.lei@example.com' });
    expect(apiError(() => normalizeForLookup(config, 'shoe_size', '42', fields))).toMatchObject({ statusCode: 400, field: 'identifier.type' });
    expect(apiError(() => normalizeForLookup(config, 'user_id', 'undefined', fields))).toMatchObject({ statusCode: 400, field: 'identifier.value' });
    expect(apiError(() => normalizeForLookup(config, 'device_id', '00000000-0000-0000-0000-000000000000', fields))).toMatchObject({ statusCode: 400 });
  });
});

describe('search prefixes (pure)', () => {
  it('applies what of the type\'s normaliser a prefix allows', () => {
    expect(searchPrefixes(config, ' Li.Lei', undefined)).toEqual(['Li.Lei', 'li.lei']);
    expect(searchPrefixes(config, 'abc', undefined)).toEqual(['abc']);
    expect(searchPrefixes(config, 'Li.Lei', 'email')).toEqual(['li.lei']);
    expect(searchPrefixes(config, 'U-1', 'user_id')).toEqual(['U-1']);
    expect(searchPrefixes(config, '+86 138', 'phone')).toEqual(['+86138']);
    expect(searchPrefixes(config, '138 0013', 'phone')).toEqual(['+861380013']);
    expect(searchPrefixes(config, '010-1234', 'phone')).toEqual(['+86101234']);
    expect(searchPrefixes(usConfig, '(415) 555', 'phone')).toEqual(['+1415555']);
    expect(apiError(() => searchPrefixes(config, 'x', 'shoe_size'))).toMatchObject({ field: 'type' });
    expect(apiError(() => searchPrefixes(config, '   ', undefined))).toMatchObject({ field: 'identifier' });
  });

  it('escapes LIKE wildcards so a prefix is matched literally', () => {
    expect(likePrefix('abc')).toBe('abc%');
    expect(likePrefix('50%_off\\')).toBe('50\\%\\_off\\\\%');
  });

  it('reads trait.<key> filters and refuses any other unknown parameter by name', () => {
    const known = new Set(['identifier', 'type', 'limit', 'cursor']);
    expect(parseTraitFilters({ identifier: 'li', 'trait.city': '上海', 'trait.plan.tier': ['gold', 'silver'] }, known)).toEqual([
      { key: 'city', values: ['上海'] },
      { key: 'plan.tier', values: ['gold', 'silver'] },
    ]);
    expect(parseTraitFilters({ limit: 5 }, known)).toEqual([]);
    expect(apiError(() => parseTraitFilters({ city: 'x' }, known))).toMatchObject({ statusCode: 400, field: 'city' });
    expect(apiError(() => parseTraitFilters({ 'trait.': 'x' }, known))).toMatchObject({ statusCode: 400, field: 'trait.' });
    const many = Object.fromEntries(Array.from({ length: 21 }, (_, i) => [`trait.k${i}`, 'v']));
    expect(apiError(() => parseTraitFilters(many, known))).toMatchObject({ statusCode: 400 });
  });
});

describe('formatProfile (pure)', () => {
  const profile: Profile = {
    id: '8f14e45f-ceea-467f-a0e6-1f2b3c4d5e6f',
    mergedFrom: null,
    matchedBy: { type: 'phone', value: '+8613800138000' },
    createdAt: '2026-01-01T10:00:00.000Z',
    firstSeen: '2026-01-01T10:00:00.000Z',
    lastSeen: '2026-01-05T10:00:00.000Z',
    traits: { name: 'Li Lei', tags: ['vip'] },
    identifiers: [
      {
        type: 'phone',
        value: '+8613800138000',
        source: { id: '1e2d3c4b-0000-4000-8000-000000000000', name: 'Store POS', kind: 'store' },
        firstSeen: '2026-01-04T10:00:00.000Z',
        lastSeen: '2026-01-05T10:00:00.000Z',
        linkedBy: { messageId: 'e4', seq: 4, via: 'event' },
        boundAt: '2026-01-04T10:00:01.000Z',
      },
    ],
    events: [],
    eventsNextCursor: null,
    segments: [],
    tags: [{ key: 'high_value', name: '高价值客户（≥ 1000）', enteredAt: '2026-01-05T10:00:01.000Z' }],
    journeys: [],
    consent: {},
    computed: {},
  };

  it('prints traits, identifiers with their source and the linking event, and events', () => {
    const text = formatProfile(profile);
    expect(text).toContain('Profile 8f14e45f-ceea-467f-a0e6-1f2b3c4d5e6f');
    expect(text).toContain('found by phone +8613800138000');
    expect(text).toMatch(/name\s+Li Lei/);
    expect(text).toMatch(/tags\s+\["vip"\]/);
    expect(text).toContain('phone: +8613800138000   via Store POS (store)');
    expect(text).toContain('linked by event e4');
    expect(text).toContain('高价值客户（≥ 1000） [high_value]   since 2026-01-05T10:00:01.000Z');
    expect(text).toContain('Latest events (0)');
  });

  it('shows provenance for verbose traits', () => {
    const verbose: Profile = {
      ...profile,
      traits: { city: { value: '上海', source: { kind: 'app', name: 'App' }, messageId: 'e5', observedAt: '2026-01-05T10:00:00.000Z', history: [] } },
    };
    expect(formatProfile(verbose)).toContain('city  上海   (App, 2026-01-05T10:00:00.000Z, event e5)');
  });
});
