import { describe, expect, it } from 'vitest';
import { displayValue, replaceStrings, sealedBreakdownFields } from '../src/analytics/personal-data.ts';
import { eventPiiHashes, normalisePiiValue, sealedFieldOf } from '../src/privacy/pii-hashes.ts';

describe('keyed hashes of sealed event fields (pure)', () => {
  it('normalises by kind: e-mails case and space, phones and ID numbers separators, names whitespace', () => {
    expect(normalisePiiValue('email', ' Alice@Example.COM ')).toBe('alice@example.com');
    expect(normalisePiiValue('Email_Address', 'A@B.CN')).toBe('a@b.cn');
    expect(normalisePiiValue('phone', '+86 (139) 0000-1111')).toBe('+8613900001111');
    expect(normalisePiiValue('mobile', 13812345678)).toBe('13812345678');
    expect(normalisePiiValue('id_number', ' 11010519491231002x ')).toBe('11010519491231002X');
    expect(normalisePiiValue('full_name', '  Ana   María ')).toBe('Ana María');
    expect(normalisePiiValue('address', { city: 'x' })).toEqual({ city: 'x' });
  });

  it('knows which analytics paths read a sealed field, and which go inside one', () => {
    expect(sealedFieldOf('email')).toEqual({ field: 'properties.email', key: 'email', column: 'properties', path: ['email'], nested: false });
    expect(sealedFieldOf('context.traits.phone')).toMatchObject({ field: 'context.traits.phone', column: 'context', path: ['traits', 'phone'], nested: false });
    expect(sealedFieldOf('email.domain')?.nested).toBe(true);
    // `name` in properties names a product or page: not sealed.
    expect(sealedFieldOf('name')).toBeNull();
    expect(sealedFieldOf('context.traits.name')).not.toBeNull();
    expect(sealedFieldOf('revenue')).toBeNull();
    expect(sealedFieldOf('context.page.url')).toBeNull();
  });

  it('hashes exactly the fields ingest seals, after normalising', () => {
    const hash = (value: unknown) => `h(${JSON.stringify(value)})`;
    expect(
      eventPiiHashes({ properties: { email: 'A@B.CN', name: 'Shoe', revenue: 3, phone: null }, context: { traits: { phone: '138 1234 5678' }, ip: '1.2.3.4' } }, hash),
    ).toEqual({ 'properties.email': 'h("a@b.cn")', 'context.traits.phone': 'h("13812345678")' });
    expect(eventPiiHashes({ properties: { revenue: 3 } }, hash)).toBeNull();
  });

  it('finds the sealed breakdowns of a query and shows values masked unless revealed', () => {
    expect(sealedBreakdownFields({ breakdown: { kind: 'property', property: 'email' }, channel: { kind: 'property', property: 'utm_source' } }).map((f) => f.field)).toEqual([
      'properties.email',
    ]);
    expect(displayValue('alice@example.com', false)).toBe('a****@example.com');
    expect(displayValue('alice@example.com', true)).toBe('alice@example.com');
    expect(replaceStrings({ a: ['t1', 'x'], b: { c: 't1' } }, new Map([['t1', 'v']]))).toEqual({ a: ['v', 'x'], b: { c: 'v' } });
  });
});
