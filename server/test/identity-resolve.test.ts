import { describe, expect, it } from 'vitest';
import { extractIdentifiers, identifierKey, type EventIdentifier, type IdentifiedEvent } from '../src/identity/extract.ts';
import { defaultIdentityConfig, parseIdentitySettings, type IdentityConfig } from '../src/identity/identifier-types.ts';
import { chooseSurvivor, resolveIdentity, type OwnerProfile, type Resolution } from '../src/identity/resolve.ts';

const config = defaultIdentityConfig();

/** `user_id:u1` → an identifier of the event, linkable. */
function ids(...specs: string[]): EventIdentifier[] {
  return specs.map((spec) => {
    const at = spec.indexOf(':');
    return { type: spec.slice(0, at), value: spec.slice(at + 1), field: spec.slice(0, at), linkIfNew: true };
  });
}

function profile(profileId: string, created: string, ...specs: string[]): OwnerProfile {
  return { profileId, createdAt: new Date(created), identifiers: ids(...specs).map(({ type, value }) => ({ type, value })) };
}

const keys = (identifiers: { type: string; value: string }[]) => identifiers.map(identifierKey);

function withSettings(settings: unknown): IdentityConfig {
  const parsed = parseIdentitySettings(settings);
  if (!parsed.ok) throw new Error(parsed.error.message);
  return parsed.config;
}

describe('resolveIdentity: create, attach, merge', () => {
  it('no owner: creates a profile with every identifier', () => {
    const result = resolveIdentity(config, ids('user_id:u1', 'email:a@x.com', 'anonymous_id:a1'), []);
    expect(result.action).toBe('create');
    if (result.action === 'create') expect(keys(result.link)).toEqual(['user_id:u1', 'email:a@x.com', 'anonymous_id:a1']);
    expect(result.dropped).toEqual([]);
  });

  it('no identifier at all: nothing to do', () => {
    expect(resolveIdentity(config, [], [])).toEqual({ action: 'none', dropped: [] });
  });

  it('one owner: attaches and links only the identifiers it does not have yet', () => {
    const owner = profile('p1', '2024-01-01', 'anonymous_id:a1');
    const result = resolveIdentity(config, ids('user_id:u1', 'anonymous_id:a1'), [owner]);
    expect(result).toMatchObject({ action: 'attach', profileId: 'p1', dropped: [] });
    if (result.action === 'attach') expect(keys(result.link)).toEqual(['user_id:u1']);
  });

  it('an event whose identifiers are all known links nothing', () => {
    const owner = profile('p1', '2024-01-01', 'user_id:u1', 'anonymous_id:a1');
    expect(resolveIdentity(config, ids('anonymous_id:a1', 'user_id:u1'), [owner])).toEqual({
      action: 'attach',
      profileId: 'p1',
      link: [],
      dropped: [],
    });
  });

  it('several owners: merges them into the one with the strongest identifier, recording which identifier joined each', () => {
    const known = profile('p-known', '2024-03-01', 'user_id:u1');
    const visitor = profile('p-visitor', '2024-01-01', 'anonymous_id:a1');
    const result = resolveIdentity(config, ids('user_id:u1', 'anonymous_id:a1', 'email:a@x.com'), [visitor, known]);
    expect(result.action).toBe('merge');
    if (result.action !== 'merge') return;
    // The newer profile survives because it holds a user_id; the anonymous one is absorbed.
    expect(result.profileId).toBe('p-known');
    expect(result.absorbed).toEqual([{ profileId: 'p-visitor', via: ids('anonymous_id:a1')[0] }]);
    expect(keys(result.link)).toEqual(['email:a@x.com']);
  });

  it('three owners merge at once; each absorbed profile names its cause', () => {
    const a = profile('pa', '2024-01-01', 'email:a@x.com');
    const b = profile('pb', '2024-01-02', 'phone:+8613800138000');
    const c = profile('pc', '2024-01-03', 'device_id:d1');
    const result = resolveIdentity(config, ids('device_id:d1', 'phone:+8613800138000', 'email:a@x.com'), [c, b, a]);
    expect(result).toMatchObject({ action: 'merge', profileId: 'pa', link: [], dropped: [] });
    if (result.action !== 'merge') return;
    expect(result.absorbed.map(({ profileId, via }) => [profileId, identifierKey(via)]).sort()).toEqual([
      ['pb', 'phone:+8613800138000'],
      ['pc', 'device_id:d1'],
    ]);
  });

  it('the first-joined profile, when absorbed, is explained by the identifier that joined the survivor', () => {
    const visitor = profile('pv', '2024-01-01', 'email:v@x.com');
    const member = profile('pm', '2024-02-01', 'member_id:m1', 'phone:+8613800138000');
    // email (priority 3) joins pv first, phone (4) then brings pm, which wins by holding a member_id.
    const result = resolveIdentity(config, ids('phone:+8613800138000', 'email:v@x.com'), [visitor, member]);
    expect(result).toMatchObject({ action: 'merge', profileId: 'pm' });
    if (result.action === 'merge') expect(result.absorbed).toEqual([{ profileId: 'pv', via: ids('phone:+8613800138000')[0] }]);
  });
});

describe('resolveIdentity: refusals', () => {
  it('refuses to join two user_ids: the weaker identifier is dropped and the event stays with its user_id', () => {
    const p1 = profile('p1', '2024-01-01', 'user_id:u1', 'email:one@x.com');
    const p2 = profile('p2', '2024-01-02', 'user_id:u2', 'email:shared@x.com');
    const result = resolveIdentity(config, ids('email:shared@x.com', 'user_id:u1'), [p1, p2]);
    expect(result).toMatchObject({ action: 'attach', profileId: 'p1', link: [] });
    expect(result.dropped).toEqual([
      {
        identifier: ids('email:shared@x.com')[0],
        reason: 'conflicting_value',
        type: 'user_id',
        limit: 1,
        ownerProfileId: 'p2',
        values: ['u1', 'u2'],
        message: 'would join different user_id values (u1, u2) on one profile',
      },
    ]);
  });

  it('an event with two different user_ids keeps the first found and drops the other', () => {
    const result = resolveIdentity(config, ids('user_id:u1', 'user_id:u2'), []);
    expect(result.action).toBe('create');
    if (result.action === 'create') expect(keys(result.link)).toEqual(['user_id:u1']);
    expect(result.dropped).toMatchObject([{ identifier: { value: 'u2' }, reason: 'conflicting_value', ownerProfileId: null }]);
  });

  it('a new user_id for a profile that has one is dropped, not linked', () => {
    const p1 = profile('p1', '2024-01-01', 'user_id:u1', 'anonymous_id:a1');
    // The strongest identifier is the new user_id u2: it gets a profile of its own; the anonymous id stays with p1.
    const result = resolveIdentity(config, ids('user_id:u2', 'anonymous_id:a1'), [p1]);
    expect(result.action).toBe('create');
    if (result.action === 'create') expect(keys(result.link)).toEqual(['user_id:u2']);
    expect(result.dropped).toMatchObject([
      { identifier: { type: 'anonymous_id', value: 'a1' }, reason: 'conflicting_value', type: 'user_id', ownerProfileId: 'p1' },
    ]);
  });

  it('two member_ids are refused like two user_ids', () => {
    const p1 = profile('p1', '2024-01-01', 'member_id:m1', 'phone:+8613800138000');
    const p2 = profile('p2', '2024-01-01', 'member_id:m2', 'email:a@x.com');
    const result = resolveIdentity(config, ids('email:a@x.com', 'phone:+8613800138000'), [p1, p2]);
    // email (3) outranks phone (4): the event lands on p2, the phone is refused.
    expect(result).toMatchObject({ action: 'attach', profileId: 'p2' });
    expect(result.dropped).toMatchObject([{ identifier: { type: 'phone' }, type: 'member_id', values: ['m1', 'm2'] }]);
  });

  it('only the conflicting identifiers are dropped; the rest still merge', () => {
    const p1 = profile('p1', '2024-01-01', 'user_id:u1');
    const p2 = profile('p2', '2024-01-01', 'user_id:u2', 'phone:+8613800138000');
    const p3 = profile('p3', '2024-01-01', 'anonymous_id:a1');
    const result = resolveIdentity(config, ids('anonymous_id:a1', 'phone:+8613800138000', 'user_id:u1', 'email:new@x.com'), [p1, p2, p3]);
    expect(result).toMatchObject({ action: 'merge', profileId: 'p1', absorbed: [{ profileId: 'p3' }] });
    if (result.action === 'merge') expect(keys(result.link)).toEqual(['email:new@x.com']);
    expect(result.dropped.map((drop) => identifierKey(drop.identifier))).toEqual(['phone:+8613800138000']);
  });

  it('a profile at its anonymous_id limit takes no 101st', () => {
    const anonymous = Array.from({ length: 100 }, (_, index) => `anonymous_id:a${index}`);
    const full = profile('p1', '2024-01-01', 'user_id:u1', ...anonymous);
    const result = resolveIdentity(config, ids('user_id:u1', 'anonymous_id:a100'), [full]);
    expect(result).toMatchObject({ action: 'attach', profileId: 'p1', link: [] });
    expect(result.dropped).toMatchObject([
      { identifier: { value: 'a100' }, reason: 'limit_exceeded', type: 'anonymous_id', limit: 100, ownerProfileId: null },
    ]);
    expect(result.dropped[0]!.values).toHaveLength(101);
    expect(result.dropped[0]!.message).toBe('would put 101 anonymous_id values on one profile; the limit is 100');
  });

  it('refuses a merge that would pass a limit (a shared device is not enough to make one super-profile)', () => {
    const p1 = profile('p1', '2024-01-01', 'email:1@x.com', 'email:2@x.com', 'email:3@x.com');
    const p2 = profile('p2', '2024-01-02', 'email:4@x.com', 'email:5@x.com', 'email:6@x.com');
    const result = resolveIdentity(config, ids('email:1@x.com', 'email:4@x.com'), [p1, p2]);
    expect(result).toMatchObject({ action: 'attach', profileId: 'p1' });
    expect(result.dropped).toMatchObject([{ identifier: { value: '4@x.com' }, reason: 'limit_exceeded', type: 'email', ownerProfileId: 'p2' }]);
  });

  it('exactly at the limit is allowed', () => {
    const p1 = profile('p1', '2024-01-01', 'email:1@x.com', 'email:2@x.com');
    const p2 = profile('p2', '2024-01-02', 'email:3@x.com', 'email:4@x.com');
    const result = resolveIdentity(config, ids('email:1@x.com', 'email:3@x.com', 'email:5@x.com'), [p1, p2]);
    expect(result).toMatchObject({ action: 'merge', profileId: 'p1', dropped: [] });
  });

  it('a profile over a limit that was lowered later still receives its events but gains no more values of that type', () => {
    const strict = withSettings({ types: { email: { limit: 2 } } });
    const over = profile('p1', '2024-01-01', 'email:1@x.com', 'email:2@x.com', 'email:3@x.com');
    expect(resolveIdentity(strict, ids('email:3@x.com'), [over])).toMatchObject({ action: 'attach', profileId: 'p1', dropped: [] });
    const other = profile('p2', '2024-01-01', 'phone:+8613800138000');
    expect(resolveIdentity(strict, ids('email:1@x.com', 'phone:+8613800138000'), [over, other])).toMatchObject({
      action: 'merge',
      dropped: [],
    });
    expect(resolveIdentity(strict, ids('email:1@x.com', 'email:4@x.com'), [over]).dropped).toMatchObject([
      { identifier: { value: '4@x.com' }, reason: 'limit_exceeded' },
    ]);
  });

  it('priorities decide which side wins a conflict', () => {
    const emailFirst = withSettings({ types: { email: { priority: 1 }, user_id: { priority: 2 } } });
    const p1 = profile('p1', '2024-01-01', 'user_id:u1');
    const p2 = profile('p2', '2024-01-01', 'user_id:u2', 'email:a@x.com');
    expect(resolveIdentity(config, ids('user_id:u1', 'email:a@x.com'), [p1, p2])).toMatchObject({ action: 'attach', profileId: 'p1' });
    const result = resolveIdentity(emailFirst, ids('user_id:u1', 'email:a@x.com'), [p1, p2]);
    expect(result).toMatchObject({ action: 'attach', profileId: 'p2' });
    expect(result.dropped).toMatchObject([{ identifier: { type: 'user_id', value: 'u1' }, ownerProfileId: 'p1' }]);
  });

  it('a custom limit-1 type conflicts like user_id', () => {
    const cfg = withSettings({ types: { national_id: { priority: 2, limit: 1 } } });
    const p1 = profile('p1', '2024-01-01', 'national_id:N1', 'phone:+8613800138000');
    const result = resolveIdentity(cfg, ids('national_id:N2', 'phone:+8613800138000'), [p1]);
    expect(result.action).toBe('create');
    expect(result.dropped).toMatchObject([{ type: 'national_id', values: ['N1', 'N2'] }]);
  });
});

describe('resolveIdentity: alias', () => {
  const alias = (previousId: string, userId: string): IdentifiedEvent => ({
    type: 'alias',
    userId,
    previousId,
    anonymousId: null,
    traits: null,
    context: null,
  });

  it('merges the profile of an anonymous previousId into the user', () => {
    const visitor = profile('pv', '2024-01-01', 'anonymous_id:anon-1');
    const user = profile('pu', '2024-02-01', 'user_id:u1');
    const { identifiers } = extractIdentifiers(alias('anon-1', 'u1'), config);
    expect(resolveIdentity(config, identifiers, [visitor, user])).toMatchObject({
      action: 'merge',
      profileId: 'pu',
      absorbed: [{ profileId: 'pv', via: { field: 'previousId', type: 'anonymous_id' } }],
      link: [],
    });
  });

  it('an unknown previousId is linked as an anonymous id, never as a second user_id', () => {
    const user = profile('pu', '2024-02-01', 'user_id:u1');
    const { identifiers } = extractIdentifiers(alias('old-id', 'u1'), config);
    const result = resolveIdentity(config, identifiers, [user]);
    expect(result).toMatchObject({ action: 'attach', profileId: 'pu', dropped: [] });
    if (result.action === 'attach') expect(keys(result.link)).toEqual(['anonymous_id:old-id']);
  });

  it('a previousId that is another profile\u2019s user_id is refused (two user_ids), and the refusal says so', () => {
    const old = profile('p-old', '2024-01-01', 'user_id:old-id');
    const user = profile('pu', '2024-02-01', 'user_id:u1');
    const { identifiers } = extractIdentifiers(alias('old-id', 'u1'), config);
    const result = resolveIdentity(config, identifiers, [old, user]);
    expect(result).toMatchObject({ action: 'attach', profileId: 'pu' });
    expect(result.dropped).toMatchObject([
      { identifier: { type: 'user_id', value: 'old-id', field: 'previousId' }, reason: 'conflicting_value', ownerProfileId: 'p-old' },
    ]);
  });
});

describe('resolveIdentity: determinism and integrity', () => {
  it('the survivor is the profile with the strongest identifier, then the oldest, then the smallest id', () => {
    const phoneOld = profile('p-phone', '2023-01-01', 'phone:+8613800138000');
    const emailNew = profile('p-email', '2024-01-01', 'email:a@x.com');
    const emailOld = profile('p-email-old', '2023-06-01', 'email:b@x.com');
    expect(chooseSurvivor(config, [phoneOld, emailNew]).profileId).toBe('p-email');
    expect(chooseSurvivor(config, [phoneOld, emailNew, emailOld]).profileId).toBe('p-email-old');
    const twinA = profile('b', '2024-01-01', 'email:c@x.com');
    const twinB = profile('a', '2024-01-01', 'email:d@x.com');
    expect(chooseSurvivor(config, [twinA, twinB]).profileId).toBe('a');
    expect(chooseSurvivor(config, [twinB, twinA]).profileId).toBe('a');
  });

  it('gives the same decision whatever order the owners are read in', () => {
    const owners = [
      profile('p1', '2024-01-03', 'anonymous_id:a1'),
      profile('p2', '2024-01-02', 'email:e@x.com', 'user_id:u2'),
      profile('p3', '2024-01-01', 'phone:+8613800138000', 'user_id:u3'),
      profile('p4', '2024-01-04', 'device_id:d1'),
    ];
    const event = ids('anonymous_id:a1', 'device_id:d1', 'phone:+8613800138000', 'email:e@x.com');
    const expected = resolveIdentity(config, event, owners) as Extract<Resolution, { action: 'merge' }>;
    expect(expected).toMatchObject({ action: 'merge', profileId: 'p2' });
    expect(expected.dropped.map((drop) => identifierKey(drop.identifier))).toEqual(['phone:+8613800138000']);
    const permutations = (list: OwnerProfile[]): OwnerProfile[][] =>
      list.length <= 1 ? [list] : list.flatMap((item, i) => permutations([...list.slice(0, i), ...list.slice(i + 1)]).map((rest) => [item, ...rest]));
    for (const order of permutations(owners)) {
      const result = resolveIdentity(config, event, order) as Extract<Resolution, { action: 'merge' }>;
      expect(result.profileId).toBe(expected.profileId);
      expect(result.absorbed.map((absorbed) => absorbed.profileId).sort()).toEqual(
        expected.absorbed.map((absorbed) => absorbed.profileId).sort(),
      );
      expect(result.dropped).toEqual(expected.dropped);
    }
  });

  it('refuses to work on a graph where one identifier has two live owners', () => {
    const p1 = profile('p1', '2024-01-01', 'email:a@x.com');
    const p2 = profile('p2', '2024-01-01', 'email:a@x.com');
    expect(() => resolveIdentity(config, ids('email:a@x.com'), [p1, p2])).toThrow(/belongs to two live profiles/);
  });
});

/**
 * A minimal in-memory identity graph that applies decisions the way the store will: it shows the
 * decisions compose over a person's story into one profile, and that no identifier gets two owners.
 */
class Graph {
  private profiles = new Map<string, OwnerProfile>();
  private next = 1;
  readonly events = new Map<string, string[]>();
  readonly refusals: string[] = [];

  apply(eventId: string, event: IdentifiedEvent): Resolution {
    const { identifiers } = extractIdentifiers(event, config);
    const wanted = new Set(identifiers.map(identifierKey));
    const owners = [...this.profiles.values()].filter((owner) => owner.identifiers.some((identifier) => wanted.has(identifierKey(identifier))));
    const result = resolveIdentity(config, identifiers, owners);
    let target: OwnerProfile | undefined;
    if (result.action === 'create') {
      target = { profileId: `p${this.next++}`, createdAt: new Date(Date.UTC(2024, 0, this.next)), identifiers: [] };
      this.profiles.set(target.profileId, target);
      this.events.set(target.profileId, []);
    } else if (result.action !== 'none') {
      target = this.profiles.get(result.profileId)!;
    }
    if (result.action === 'merge' && target) {
      for (const { profileId } of result.absorbed) {
        target.identifiers.push(...this.profiles.get(profileId)!.identifiers);
        this.events.get(target.profileId)!.push(...this.events.get(profileId)!);
        this.profiles.delete(profileId);
        this.events.delete(profileId);
      }
    }
    if (result.action !== 'none' && target) {
      target.identifiers.push(...result.link.map(({ type, value }) => ({ type, value })));
      this.events.get(target.profileId)!.push(eventId);
    }
    this.refusals.push(...result.dropped.map((drop) => `${eventId}: ${identifierKey(drop.identifier)} ${drop.reason}`));
    this.checkIntegrity();
    return result;
  }

  live(): OwnerProfile[] {
    return [...this.profiles.values()];
  }

  private checkIntegrity() {
    const owner = new Map<string, string>();
    for (const profile of this.profiles.values()) {
      for (const identifier of profile.identifiers) {
        const key = identifierKey(identifier);
        expect(owner.get(key), `${key} owned twice`).toBeUndefined();
        owner.set(key, profile.profileId);
      }
    }
  }
}

describe('resolveIdentity over a cross-channel story', () => {
  const base: IdentifiedEvent = { type: 'track', userId: null, anonymousId: null, previousId: null, traits: null, context: null };

  it('anonymous web visit → app login → WeChat mini-program → store purchase → CRM import: one profile, whole timeline', () => {
    const graph = new Graph();
    graph.apply('e1-web-visit', { ...base, type: 'page', anonymousId: 'web-anon-1' });
    graph.apply('e2-app-open', { ...base, anonymousId: 'app-anon-1', context: { device: { id: 'iphone-1' } } });
    graph.apply('e3-app-login', { ...base, type: 'identify', userId: 'u-100', anonymousId: 'app-anon-1' });
    graph.apply('e4-web-login', { ...base, type: 'identify', userId: 'u-100', anonymousId: 'web-anon-1' });
    graph.apply('e5-mini-program', {
      ...base,
      type: 'identify',
      anonymousId: 'mp-anon-1',
      traits: { phone: '+86 138 0013 8000' },
      context: { externalIds: [{ id: 'oOpen-1', type: 'wechat_openid' }] },
    });
    graph.apply('e6-mini-program-login', { ...base, type: 'identify', userId: 'u-100', anonymousId: 'mp-anon-1' });
    graph.apply('e7-store-purchase', { ...base, event: 'Order Completed', traits: { phone: '13800138000' }, anonymousId: 'pos-tx-77' } as IdentifiedEvent);
    graph.apply('e8-crm-import', {
      ...base,
      type: 'identify',
      traits: { phone: '0086 138 0013 8000', email: 'Li.Wei@Example.com' },
      context: { externalIds: [{ id: 'M-100', type: 'member_id' }] },
      anonymousId: 'crm-row-1',
    });

    const live = graph.live();
    expect(live).toHaveLength(1);
    const person = live[0]!;
    expect(graph.events.get(person.profileId)!.sort()).toEqual([
      'e1-web-visit',
      'e2-app-open',
      'e3-app-login',
      'e4-web-login',
      'e5-mini-program',
      'e6-mini-program-login',
      'e7-store-purchase',
      'e8-crm-import',
    ]);
    expect(keys(person.identifiers).sort()).toEqual([
      'anonymous_id:app-anon-1',
      'anonymous_id:crm-row-1',
      'anonymous_id:mp-anon-1',
      'anonymous_id:pos-tx-77',
      'anonymous_id:web-anon-1',
      'device_id:iphone-1',
      'email:li.wei@example.com',
      'member_id:M-100',
      'phone:+8613800138000',
      'user_id:u-100',
      'wechat_openid:oOpen-1',
    ]);
    expect(graph.refusals).toEqual([]);
  });

  it('a family sharing a tablet stays two people once both have logged in', () => {
    const graph = new Graph();
    graph.apply('e1', { ...base, type: 'identify', userId: 'mum', context: { device: { id: 'tablet' } } });
    graph.apply('e2', { ...base, type: 'identify', userId: 'son', context: { device: { id: 'tablet' } } });
    graph.apply('e3', { ...base, type: 'identify', userId: 'mum', traits: { email: 'mum@x.com' } });
    expect(graph.live()).toHaveLength(2);
    expect(graph.refusals).toEqual(['e2: device_id:tablet conflicting_value']);
    const son = graph.live().find((p) => p.identifiers.some((i) => i.value === 'son'))!;
    expect(keys(son.identifiers)).toEqual(['user_id:son']);
  });
});
