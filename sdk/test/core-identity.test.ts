import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createClient, type DeliveryError, type Message } from '../src/core/index.ts';
import { inspectableStorage, scriptedTransport } from './core-support.ts';

const HOST = 'https://cdp.example.com';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

async function sent(transport: ReturnType<typeof scriptedTransport>, client: { flush(): Promise<void> }): Promise<Message[]> {
  await client.flush();
  return transport.bodies().flatMap((body) => body.batch);
}

describe('identity', () => {
  it('identify sends typed identifiers as externalIds and makes the user id and traits stick', async () => {
    const transport = scriptedTransport();
    const client = createClient({ writeKey: 'wk', host: HOST, transport });
    client.identify('user-1', { email: 'ana@example.com' }, { identifiers: { phone: '+8613800000000', member_id: 'M-7', wechat_openid: '' } });
    client.identify({ plan: 'gold' });
    client.track('Bought', { sku: 'S1' });
    const [first, second, track] = await sent(transport, client);
    expect(first).toMatchObject({ type: 'identify', userId: 'user-1', traits: { email: 'ana@example.com' } });
    expect(first!.context.externalIds).toEqual([
      { id: '+8613800000000', type: 'phone', collection: 'users', encoding: 'none' },
      { id: 'M-7', type: 'member_id', collection: 'users', encoding: 'none' },
    ]);
    expect(second).toMatchObject({ userId: 'user-1', traits: { email: 'ana@example.com', plan: 'gold' } });
    expect(second!.context.externalIds).toBeUndefined();
    expect(track).toMatchObject({ type: 'track', event: 'Bought', userId: 'user-1', anonymousId: first!.anonymousId, properties: { sku: 'S1' } });
  });

  it('rejects unknown identifier types and missing names with a clear error', () => {
    const client = createClient({ writeKey: 'wk', host: HOST, transport: scriptedTransport() });
    expect(() => client.identify('u', {}, { identifiers: { passport: 'X' } as never })).toThrow(/unknown identifier type "passport"/);
    expect(() => client.track('')).toThrow(/event name/);
    expect(() => createClient({ writeKey: '', host: HOST, transport: scriptedTransport() })).toThrow(/writeKey/);
  });

  it('reset forgets the user and starts a new anonymous id', async () => {
    const transport = scriptedTransport();
    const storage = inspectableStorage();
    const client = createClient({ writeKey: 'wk', host: HOST, transport, storage });
    client.identify('user-1', { name: 'Ana' });
    const before = client.user().anonymousId;
    client.reset();
    client.track('After logout');
    const messages = await sent(transport, client);
    const after = messages[1]!;
    expect(after.userId).toBeUndefined();
    expect(after.anonymousId).not.toBe(before);
    expect(client.user()).toEqual({ anonymousId: after.anonymousId, userId: null, traits: {} });
    // Persisted: a reload after logout is still logged out.
    const reloaded = createClient({ writeKey: 'wk', host: HOST, transport, storage });
    expect(reloaded.user()).toEqual({ anonymousId: after.anonymousId, userId: null, traits: {} });
  });

  it("another user's identify does not inherit the previous user's traits", async () => {
    const transport = scriptedTransport();
    const client = createClient({ writeKey: 'wk', host: HOST, transport });
    client.identify('a', { email: 'a@example.com' });
    client.identify('b', { name: 'Bo' });
    const messages = await sent(transport, client);
    expect(messages[1]!.traits).toEqual({ name: 'Bo' });
  });

  it('alias links the anonymous id to the new user id, which becomes current', async () => {
    const transport = scriptedTransport();
    const client = createClient({ writeKey: 'wk', host: HOST, transport });
    const anonymousId = client.user().anonymousId;
    client.alias('user-9');
    client.track('Next');
    const [alias, next] = await sent(transport, client);
    expect(alias).toMatchObject({ type: 'alias', userId: 'user-9', previousId: anonymousId, anonymousId });
    expect(next).toMatchObject({ userId: 'user-9' });
  });

  it('page, screen and group carry their fields', async () => {
    const transport = scriptedTransport();
    const client = createClient({ writeKey: 'wk', host: HOST, transport, context: () => ({ locale: 'zh-CN' }) });
    client.page('Home', { path: '/' });
    client.screen('Cart');
    client.group('org-1', { name: 'Acme' }, { context: { ip: '0.0.0.0' } });
    const [page, screen, group] = await sent(transport, client);
    expect(page).toMatchObject({ type: 'page', name: 'Home', properties: { path: '/' }, context: { locale: 'zh-CN' } });
    expect(screen).toMatchObject({ type: 'screen', name: 'Cart' });
    expect(group).toMatchObject({ type: 'group', groupId: 'org-1', traits: { name: 'Acme' }, context: { locale: 'zh-CN', ip: '0.0.0.0' } });
  });
});

describe('consent gate', () => {
  it('holds every message until consent is granted, then sends them in order with the consent identify last', async () => {
    const transport = scriptedTransport();
    const storage = inspectableStorage();
    const client = createClient({ writeKey: 'wk', host: HOST, transport, storage, requireConsent: true, flushAt: 1 });
    client.page('Landing');
    client.track('Clicked');
    await vi.advanceTimersByTimeAsync(60_000);
    await client.flush();
    client.flushOnUnload();
    expect(transport.requests).toHaveLength(0);
    expect(client.queued()).toBe(2);

    // Held messages survive a reload too.
    client.close();
    const reloaded = createClient({ writeKey: 'wk', host: HOST, transport, storage, requireConsent: true, flushAt: 1 });
    reloaded.setConsent({ analytics: true, advertising: false });
    reloaded.track('After consent');
    await vi.advanceTimersByTimeAsync(0);
    const messages = await sent(transport, reloaded);
    expect(messages.map((m) => m.type + ':' + (m.event ?? m.name ?? ''))).toEqual(['page:Landing', 'track:Clicked', 'identify:', 'track:After consent']);
    expect(messages[2]!.context.consent).toEqual({ categoryPreferences: { analytics: true, advertising: false } });
    expect(messages[3]!.context.consent).toEqual({ categoryPreferences: { analytics: true, advertising: false } });
    expect(reloaded.consent()).toEqual({ analytics: true, advertising: false });
  });

  it('refusing every category discards the held messages and reports them', async () => {
    const errors: DeliveryError[] = [];
    const transport = scriptedTransport();
    const client = createClient({ writeKey: 'wk', host: HOST, transport, requireConsent: true, onError: (e) => errors.push(e) });
    client.track('Held');
    client.setConsent({ analytics: false });
    client.track('Still held');
    await client.flush();
    expect(transport.requests).toHaveLength(0);
    expect(errors.map((e) => [e.reason, e.messages.map((m) => m.event)])).toEqual([['consent_denied', ['Held']]]);
    expect(client.queued()).toBe(1);
  });

  it('without requireConsent, setConsent just records the preferences', async () => {
    const transport = scriptedTransport();
    const client = createClient({ writeKey: 'wk', host: HOST, transport });
    client.setConsent({ analytics: false });
    const [identify] = await sent(transport, client);
    expect(identify).toMatchObject({ type: 'identify', context: { consent: { categoryPreferences: { analytics: false } } } });
  });
});
