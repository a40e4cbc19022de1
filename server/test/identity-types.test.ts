import { describe, expect, it } from 'vitest';
import {
  BUILT_IN_IDENTIFIER_TYPES,
  CUSTOM_TYPE_DEFAULT_PRIORITY,
  defaultIdentityConfig,
  normalizeIdentifier,
  parseIdentitySettings,
  type IdentityConfig,
} from '../src/identity/identifier-types.ts';
import { normalizeEmail, normalizePhone } from '../src/identity/normalizers.ts';

function config(settings: unknown): IdentityConfig {
  const result = parseIdentitySettings(settings);
  if (!result.ok) throw new Error(`expected valid settings: ${result.error.message}`);
  return result.config;
}

function value(cfg: IdentityConfig, type: string, raw: unknown): string {
  const result = normalizeIdentifier(cfg, type, raw);
  if (!result.ok) throw new Error(`expected ${type} ${JSON.stringify(raw)} to be accepted: ${result.message}`);
  return result.value;
}

function reason(cfg: IdentityConfig, type: string, raw: unknown): string {
  const result = normalizeIdentifier(cfg, type, raw);
  if (result.ok) throw new Error(`expected ${type} ${JSON.stringify(raw)} to be ignored, got ${result.value}`);
  return result.reason;
}

describe('identifier types: defaults', () => {
  const defaults = defaultIdentityConfig();

  it('has every built-in type', () => {
    expect([...defaults.types.keys()].sort()).toEqual([...BUILT_IN_IDENTIFIER_TYPES].sort());
  });

  it('ranks user_id, member_id, email, phone, wechat_unionid first, in that order, and the rest after', () => {
    const priority = (type: string) => defaults.types.get(type)!.priority;
    expect(['user_id', 'member_id', 'email', 'phone', 'wechat_unionid'].map(priority)).toEqual([1, 2, 3, 4, 5]);
    for (const other of ['wechat_openid', 'device_id', 'cookie_id', 'anonymous_id']) expect(priority(other)).toBeGreaterThan(5);
  });

  it('limits user_id and member_id to 1, anonymous and cookie ids to 100, everything else to 5', () => {
    const limit = (type: string) => defaults.types.get(type)!.limit;
    expect(limit('user_id')).toBe(1);
    expect(limit('member_id')).toBe(1);
    expect(limit('anonymous_id')).toBe(100);
    expect(limit('cookie_id')).toBe(100);
    for (const other of ['email', 'phone', 'device_id', 'wechat_openid', 'wechat_unionid']) expect(limit(other)).toBe(5);
  });

  it('uses CN as the default phone region', () => {
    expect(defaults.defaultPhoneRegion).toBe('CN');
    expect(value(defaults, 'phone', '13800138000')).toBe('+8613800138000');
  });
});

describe('identifier types: blocked values', () => {
  const defaults = defaultIdentityConfig();

  it.each(['', '   ', 'null', 'NULL', 'undefined', 'Undefined', 'anonymous', 'ANONYMOUS', '0', '-1'])('blocks %j for every type', (raw) => {
    for (const type of BUILT_IN_IDENTIFIER_TYPES) expect(reason(defaults, type, raw)).toBe('blocked');
  });

  it.each(['00000000-0000-0000-0000-000000000000', '00000000000000000000000000000000', '00:00:00:00:00:00', '000000'])(
    'blocks the all-zero id %s',
    (raw) => {
      expect(reason(defaults, 'device_id', raw)).toBe('blocked');
      expect(reason(defaults, 'anonymous_id', raw)).toBe('blocked');
    },
  );

  it('does not block ids that merely contain zeros', () => {
    expect(value(defaults, 'device_id', '00000000-0000-0000-0000-000000000001')).toBe('00000000-0000-0000-0000-000000000001');
    expect(value(defaults, 'user_id', '10')).toBe('10');
  });

  it('null, numbers and non-strings', () => {
    expect(reason(defaults, 'user_id', null)).toBe('blocked');
    expect(reason(defaults, 'user_id', 0)).toBe('blocked');
    expect(value(defaults, 'user_id', 42)).toBe('42');
    expect(reason(defaults, 'user_id', { id: 1 })).toBe('not_a_string');
    expect(reason(defaults, 'user_id', true)).toBe('not_a_string');
    expect(reason(defaults, 'user_id', Number.NaN)).toBe('not_a_string');
  });

  it('adds the workspace list and a type list to the defaults, case-insensitively and after normalising', () => {
    const cfg = config({
      blockedValues: ['Guest'],
      types: { email: { blockedValues: ['Test@Example.com'] }, phone: { blockedValues: ['+86 138 0013 8000'] } },
    });
    expect(reason(cfg, 'user_id', 'guest')).toBe('blocked');
    expect(reason(cfg, 'email', 'GUEST')).toBe('blocked');
    expect(reason(cfg, 'email', ' test@example.COM ')).toBe('blocked');
    expect(value(cfg, 'user_id', 'test@example.com')).toBe('test@example.com');
    expect(reason(cfg, 'phone', '13800138000')).toBe('blocked');
    expect(reason(cfg, 'phone', '0086 138 0013 8000')).toBe('blocked');
    expect(value(cfg, 'phone', '13800138001')).toBe('+8613800138001');
    // The defaults stay.
    expect(reason(cfg, 'user_id', 'null')).toBe('blocked');
  });

  it('refuses over-long values instead of storing them', () => {
    expect(reason(defaults, 'user_id', 'x'.repeat(257))).toBe('too_long');
    expect(value(defaults, 'user_id', 'x'.repeat(256))).toHaveLength(256);
  });

  it('names an unknown type', () => {
    expect(reason(defaults, 'loyalty_card', 'L-1')).toBe('unknown_type');
  });
});

describe('identifier types: normalisers', () => {
  const defaults = defaultIdentityConfig();

  it('trims ids and keeps their case', () => {
    expect(value(defaults, 'user_id', '  User-42 ')).toBe('User-42');
    expect(value(defaults, 'wechat_openid', ' oAbC123 ')).toBe('oAbC123');
  });

  it('trims and lower-cases email, and refuses text that is not an address', () => {
    expect(value(defaults, 'email', '  Li.Wei@Example.COM ')).toBe('li.wei@example.com');
    expect(reason(defaults, 'email', 'n/a')).toBe('invalid');
    expect(reason(defaults, 'email', 'li wei@example.com')).toBe('invalid');
    expect(reason(defaults, 'email', '13800138000')).toBe('invalid');
    expect(normalizeEmail('a@b')).toMatchObject({ ok: false });
  });

  it.each([
    ['+86 138 0013 8000', '+8613800138000'],
    ['13800138000', '+8613800138000'],
    ['138-0013-8000', '+8613800138000'],
    ['(138) 0013 8000', '+8613800138000'],
    ['008613800138000', '+8613800138000'],
    ['0086 138 0013 8000', '+8613800138000'],
    ['8613800138000', '+8613800138000'],
    ['+8613800138000', '+8613800138000'],
    ['010 6552 9988', '+861065529988'],
    ['+44 20 7946 0958', '+442079460958'],
    ['+1 (415) 555-2671', '+14155552671'],
    ['0044 20 7946 0958', '+442079460958'],
  ])('phone %s → %s (default region CN)', (raw, expected) => {
    expect(value(defaults, 'phone', raw)).toBe(expected);
  });

  it.each(['12345', 'call me', '+86 138', '138001380001234', 'abc13800138000'])('refuses %j as a phone number', (raw) => {
    expect(reason(defaults, 'phone', raw)).toBe('invalid');
  });

  it('reads national numbers in the configured region', () => {
    const us = config({ defaultPhoneRegion: 'US' });
    expect(value(us, 'phone', '(415) 555-2671')).toBe('+14155552671');
    expect(value(us, 'phone', '+86 138 0013 8000')).toBe('+8613800138000');
    expect(reason(us, 'phone', '13800138000')).toBe('invalid');
    expect(normalizePhone('020 7946 0958', 'GB')).toEqual({ ok: true, value: '+442079460958' });
  });

  it('a type can switch normaliser', () => {
    const cfg = config({ types: { device_id: { normalizer: 'id_lowercase' }, crm_email: { normalizer: 'email' } } });
    expect(value(cfg, 'device_id', ' ABCD-EF ')).toBe('abcd-ef');
    expect(value(cfg, 'crm_email', ' A@B.CO ')).toBe('a@b.co');
  });
});

describe('identity settings', () => {
  it('overrides priority and limit of a built-in type and keeps the other defaults', () => {
    const cfg = config({ types: { email: { priority: 2, limit: 3 } } });
    expect(cfg.types.get('email')).toMatchObject({ priority: 2, limit: 3, normalizer: 'email', builtIn: true });
    expect(cfg.types.get('user_id')).toMatchObject({ priority: 1, limit: 1 });
  });

  it('declares custom types with defaults after the built-ins', () => {
    const cfg = config({ types: { loyalty_card: {}, store_member: { priority: 2, limit: 1, traitKeys: ['storeMemberNo'] } } });
    expect(cfg.types.get('loyalty_card')).toMatchObject({
      builtIn: false,
      priority: CUSTOM_TYPE_DEFAULT_PRIORITY,
      limit: 5,
      normalizer: 'id',
      traitKeys: [],
    });
    expect(cfg.types.get('store_member')).toMatchObject({ priority: 2, limit: 1, traitKeys: ['storeMemberNo'] });
    expect(value(cfg, 'loyalty_card', ' L-1 ')).toBe('L-1');
  });

  it.each([
    [{ types: { email: { limit: 0 } } }, 'types.email.limit'],
    [{ types: { email: { priority: 1.5 } } }, 'types.email.priority'],
    [{ types: { 'Bad Name': {} } }, 'types.Bad Name'],
    [{ types: { email: { normalizer: 'soundex' } } }, 'types.email.normalizer'],
    [{ types: { email: { colour: 'red' } } }, 'types.email.colour'],
    [{ defaultPhoneRegion: 'china' }, 'defaultPhoneRegion'],
    [{ defaultPhoneRegion: 'XX' }, 'defaultPhoneRegion'],
    [{ blockedValues: 'guest' }, 'blockedValues'],
    [{ unknown: true }, 'unknown'],
  ])('refuses %j naming the field', (settings, field) => {
    const result = parseIdentitySettings(settings);
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.error.error).toBe('invalid_identity_settings');
      expect(result.error.field).toBe(field);
      expect(result.error.message).toContain(field);
    }
  });

  it('refuses what is not an object', () => {
    expect(parseIdentitySettings(null)).toMatchObject({ ok: false, error: { field: null } });
    expect(parseIdentitySettings([])).toMatchObject({ ok: false });
  });
});
