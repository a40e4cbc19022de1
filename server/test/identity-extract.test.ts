import { describe, expect, it } from 'vitest';
import { externalIdTypeName, extractIdentifiers, type IdentifiedEvent } from '../src/identity/extract.ts';
import { defaultIdentityConfig, parseIdentitySettings } from '../src/identity/identifier-types.ts';
import { normalizeEvent } from '../src/ingest/normalize.ts';

const config = defaultIdentityConfig();

function event(fields: Partial<IdentifiedEvent>): IdentifiedEvent {
  return { type: 'track', userId: null, anonymousId: null, previousId: null, traits: null, context: null, ...fields };
}

const pairs = (identifiers: { type: string; value: string }[]) => identifiers.map(({ type, value }) => `${type}:${value}`);

describe('extractIdentifiers', () => {
  it('reads userId and anonymousId', () => {
    const result = extractIdentifiers(event({ userId: ' u-1 ', anonymousId: 'a-1' }), config);
    expect(result.identifiers).toEqual([
      { type: 'user_id', value: 'u-1', field: 'userId', linkIfNew: true },
      { type: 'anonymous_id', value: 'a-1', field: 'anonymousId', linkIfNew: true },
    ]);
    expect(result.ignored).toEqual([]);
    expect(result.alias).toBeNull();
  });

  it('reads email and phone from traits and context.traits, normalised', () => {
    const result = extractIdentifiers(
      event({
        type: 'identify',
        userId: 'u-1',
        traits: { email: ' Li.Wei@Example.com', phone: '138 0013 8000', name: 'Li Wei' },
        context: { traits: { email: 'other@example.com', phone: 8613800138001 } },
      }),
      config,
    );
    expect(pairs(result.identifiers)).toEqual([
      'user_id:u-1',
      'email:li.wei@example.com',
      'phone:+8613800138000',
      'email:other@example.com',
      'phone:+8613800138001',
    ]);
    expect(result.identifiers.map((identifier) => identifier.field)).toEqual([
      'userId',
      'traits.email',
      'traits.phone',
      'context.traits.email',
      'context.traits.phone',
    ]);
  });

  it('keeps one identifier when the same value appears twice, with the first field', () => {
    const result = extractIdentifiers(
      event({ traits: { email: 'A@x.com' }, context: { traits: { email: 'a@X.com' }, externalIds: [{ id: 'a@x.com', type: 'email' }] } }),
      config,
    );
    expect(result.identifiers).toEqual([{ type: 'email', value: 'a@x.com', field: 'context.externalIds[0]', linkIfNew: true }]);
  });

  it('reads context.device.id', () => {
    const result = extractIdentifiers(event({ anonymousId: 'a-1', context: { device: { id: 'D-1', type: 'ios' } } }), config);
    expect(pairs(result.identifiers)).toEqual(['device_id:D-1', 'anonymous_id:a-1']);
  });

  it("reads Segment's context.externalIds, mapping type names", () => {
    const result = extractIdentifiers(
      event({
        userId: 'u-1',
        context: {
          externalIds: [
            { id: 'M-100', type: 'member_id', collection: 'users', encoding: 'none' },
            { id: 'oAbc', type: 'openid' },
            { id: 'uXyz', type: 'wechat_unionid' },
            { id: '+86 138 0013 8000', type: 'Phone Number' },
            { id: 'dev-9', type: 'deviceId' },
            { id: 'ck-1', type: 'cookie' },
            { id: 'Foo@Bar.com', type: 'email' },
          ],
        },
      }),
      config,
    );
    expect(pairs(result.identifiers)).toEqual([
      'user_id:u-1',
      'member_id:M-100',
      'wechat_openid:oAbc',
      'wechat_unionid:uXyz',
      'phone:+8613800138000',
      'device_id:dev-9',
      'cookie_id:ck-1',
      'email:foo@bar.com',
    ]);
  });

  it('type names: camelCase, spaces and dots become snake_case', () => {
    expect(externalIdTypeName('memberId')).toBe('member_id');
    expect(externalIdTypeName('ios.idfa')).toBe('ios_idfa');
    expect(externalIdTypeName(' WeChat OpenID ')).toBe('wechat_openid');
    expect(externalIdTypeName('unionId')).toBe('wechat_unionid');
    expect(externalIdTypeName('email')).toBe('email');
  });

  it('reads custom types declared in the settings, from externalIds and from their trait keys', () => {
    const parsed = parseIdentitySettings({ types: { loyalty_card: { traitKeys: ['loyaltyCard'] } } });
    if (!parsed.ok) throw new Error(parsed.error.message);
    const result = extractIdentifiers(
      event({ traits: { loyaltyCard: 'LC-7' }, context: { externalIds: [{ id: 'LC-8', type: 'Loyalty Card' }] } }),
      parsed.config,
    );
    expect(pairs(result.identifiers)).toEqual(['loyalty_card:LC-8', 'loyalty_card:LC-7']);
  });

  it('reports blocked, invalid, unknown, hashed and malformed values with their field instead of dropping them silently', () => {
    const result = extractIdentifiers(
      event({
        userId: 'null',
        anonymousId: '00000000-0000-0000-0000-000000000000',
        traits: { email: 'not an email', phone: '12345' },
        context: {
          device: { id: 'undefined' },
          externalIds: [
            { id: 'x', type: 'loyalty_card' },
            { id: '5d41402abc4b2a76b9719d911017c592', type: 'email', encoding: 'md5' },
            'member-1',
            { id: 'M-1' },
            { id: 'M-2', type: 'member_id' },
          ],
        },
      }),
      config,
    );
    expect(pairs(result.identifiers)).toEqual(['member_id:M-2']);
    expect(result.ignored.map(({ type, field, reason }) => ({ type, field, reason }))).toEqual([
      { type: 'user_id', field: 'userId', reason: 'blocked' },
      { type: 'loyalty_card', field: 'context.externalIds[0]', reason: 'unknown_type' },
      { type: 'email', field: 'context.externalIds[1]', reason: 'unsupported_encoding' },
      { type: 'external_id', field: 'context.externalIds[2]', reason: 'malformed' },
      { type: 'external_id', field: 'context.externalIds[3]', reason: 'malformed' },
      { type: 'email', field: 'traits.email', reason: 'invalid' },
      { type: 'phone', field: 'traits.phone', reason: 'invalid' },
      { type: 'device_id', field: 'context.device.id', reason: 'blocked' },
      { type: 'anonymous_id', field: 'anonymousId', reason: 'blocked' },
    ]);
    expect(result.ignored[0]).toMatchObject({ value: 'null', message: expect.stringContaining('blocked') });
  });

  it('reports externalIds that is not an array', () => {
    const result = extractIdentifiers(event({ userId: 'u-1', context: { externalIds: { id: 'x', type: 'email' } } }), config);
    expect(result.ignored).toMatchObject([{ field: 'context.externalIds', reason: 'malformed' }]);
    expect(pairs(result.identifiers)).toEqual(['user_id:u-1']);
  });

  it('alias: links previousId to userId; previousId is looked up as a user_id but only linked as an anonymous id', () => {
    const result = extractIdentifiers(event({ type: 'alias', userId: 'u-1', previousId: ' anon-1 ' }), config);
    expect(result.alias).toEqual({ previousId: 'anon-1', userId: 'u-1' });
    expect(result.identifiers).toEqual([
      { type: 'user_id', value: 'u-1', field: 'userId', linkIfNew: true },
      { type: 'user_id', value: 'anon-1', field: 'previousId', linkIfNew: false },
      { type: 'anonymous_id', value: 'anon-1', field: 'previousId', linkIfNew: true },
    ]);
  });

  it('alias with a blocked previousId is reported once and links nothing', () => {
    const result = extractIdentifiers(event({ type: 'alias', userId: 'u-1', previousId: 'anonymous' }), config);
    expect(result.alias).toBeNull();
    expect(pairs(result.identifiers)).toEqual(['user_id:u-1']);
    expect(result.ignored).toMatchObject([{ field: 'previousId', reason: 'blocked' }]);
  });

  it('previousId on other call types is not an alias', () => {
    const result = extractIdentifiers(event({ type: 'identify', userId: 'u-1', previousId: 'old' }), config);
    expect(result.alias).toBeNull();
    expect(pairs(result.identifiers)).toEqual(['user_id:u-1']);
  });

  it('works on events as normalizeEvent stores them', () => {
    const normalized = normalizeEvent(
      {
        type: 'identify',
        userId: 42,
        anonymousId: 'a-9',
        traits: { email: 'X@Y.com' },
        context: { device: { id: 'dev-1' }, externalIds: [{ id: 'o-1', type: 'wechat_openid' }] },
      },
      { receivedAt: new Date('2024-06-01T00:00:00Z') },
    );
    if (!normalized.ok) throw new Error(normalized.rejection.message);
    expect(pairs(extractIdentifiers(normalized.event, config).identifiers)).toEqual([
      'user_id:42',
      'wechat_openid:o-1',
      'email:x@y.com',
      'device_id:dev-1',
      'anonymous_id:a-9',
    ]);
  });
});
