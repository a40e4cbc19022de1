import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createClient, STORAGE_KEYS, type CollectionSettings, type DeliveryError, type Message } from '../src/core/index.ts';
import { createPersonalizer, type HttpGet } from '../src/personalize/index.ts';
import { inspectableStorage, scriptedTransport } from './core-support.ts';

const HOST = 'https://cdp.example.com';
const REQUIRED: CollectionSettings = { requireConsent: true, consentCategories: ['analytics'] };
const NOT_REQUIRED: CollectionSettings = { requireConsent: false, consentCategories: [] };

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

/** A settings loader answering from a script of answers ('fail' rejects), then the last one; counts calls. */
function settingsServer(answers: Array<CollectionSettings | 'fail' | unknown>) {
  const loader = Object.assign(
    async () => {
      loader.calls++;
      const answer = answers.length > 1 ? answers.shift() : answers[0];
      if (answer === 'fail') throw new Error('offline');
      return answer;
    },
    { calls: 0 },
  );
  return loader;
}

const labels = (messages: Message[]) => messages.map((m) => `${m.type}:${m.event ?? m.name ?? ''}`);
const sentMessages = (transport: ReturnType<typeof scriptedTransport>) => transport.bodies().flatMap((body) => body.batch);

describe('consent gate from the workspace settings', () => {
  it('required: nothing leaves before consent; then everything held goes once, in order, under the consent', async () => {
    const transport = scriptedTransport();
    const storage = inspectableStorage();
    const loadSettings = settingsServer([REQUIRED]);
    const client = createClient({ writeKey: 'wk', host: HOST, transport, storage, loadSettings, flushAt: 1 });
    client.page('Landing');
    client.track('Clicked');
    await client.flush();
    await vi.advanceTimersByTimeAsync(60_000);
    client.flushOnUnload();
    expect(transport.requests).toHaveLength(0);
    expect(await client.consentGateOpen()).toBe(false);
    expect(JSON.parse(storage.dump()[STORAGE_KEYS.settings]!)).toEqual(REQUIRED);
    expect(JSON.parse(storage.dump()[STORAGE_KEYS.queue]!)).toHaveLength(2);

    client.setConsent({ analytics: true, ads: false });
    client.track('After');
    await client.flush();
    const messages = sentMessages(transport);
    expect(labels(messages)).toEqual(['page:Landing', 'track:Clicked', 'identify:', 'track:After']);
    // Messages made before consent leave under it (what the server checks); the stored copies are not rewritten.
    for (const message of messages) expect(message.context.consent).toEqual({ categoryPreferences: { analytics: true, ads: false } });
    expect(new Set(messages.map((m) => m.messageId)).size).toBe(4);
    expect(client.queued()).toBe(0);
    expect(await client.consentGateOpen()).toBe(true);
    expect(loadSettings.calls).toBe(1);
  });

  it('required: consent that does not grant the required categories discards what was held', async () => {
    const errors: DeliveryError[] = [];
    const transport = scriptedTransport();
    const client = createClient({ writeKey: 'wk', host: HOST, transport, loadSettings: settingsServer([REQUIRED]), onError: (e) => errors.push(e) });
    client.track('Held');
    await client.flush();
    client.setConsent({ ads: true, analytics: false });
    await client.flush();
    expect(transport.requests).toHaveLength(0);
    expect(errors.map((e) => [e.reason, labels(e.messages)])).toEqual([['consent_denied', ['track:Held']]]);
  });

  it('consent refused before the settings arrive: held messages are discarded when they say consent is required', async () => {
    const errors: DeliveryError[] = [];
    const transport = scriptedTransport();
    let answer: (settings: CollectionSettings) => void = () => undefined;
    const loadSettings = () => new Promise<CollectionSettings>((resolve) => (answer = resolve));
    const client = createClient({ writeKey: 'wk', host: HOST, transport, loadSettings, onError: (e) => errors.push(e) });
    client.track('Early');
    client.setConsent({ analytics: false });
    await vi.advanceTimersByTimeAsync(5_000);
    expect(transport.requests).toHaveLength(0);
    answer(REQUIRED);
    await client.flush();
    expect(transport.requests).toHaveLength(0);
    expect(errors.map((e) => [e.reason, labels(e.messages)])).toEqual([['consent_denied', ['track:Early', 'identify:']]]);
  });

  it('not required: messages wait for the answer, then go without consent', async () => {
    const transport = scriptedTransport();
    let answer: (settings: CollectionSettings) => void = () => undefined;
    const loadSettings = () => new Promise<CollectionSettings>((resolve) => (answer = resolve));
    const client = createClient({ writeKey: 'wk', host: HOST, transport, loadSettings, flushAt: 1 });
    client.track('A');
    client.track('B');
    await vi.advanceTimersByTimeAsync(10_000);
    expect(transport.requests).toHaveLength(0);
    answer(NOT_REQUIRED);
    await client.flush();
    expect(labels(sentMessages(transport))).toEqual(['track:A', 'track:B']);
    expect(sentMessages(transport)[0]!.context.consent).toBeUndefined();
  });

  it('fetch failing with no answer ever seen: keeps holding and retries with backoff until it answers', async () => {
    const transport = scriptedTransport();
    const storage = inspectableStorage();
    const loadSettings = settingsServer(['fail', 'fail', NOT_REQUIRED]);
    const client = createClient({ writeKey: 'wk', host: HOST, transport, storage, loadSettings, retryBaseMs: 1000, retryMaxMs: 8000, random: () => 1 });
    client.track('Waiting');
    await client.flush();
    expect(loadSettings.calls).toBe(1);
    expect(transport.requests).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(999);
    expect(loadSettings.calls).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(loadSettings.calls).toBe(2); // first retry after ~1 s
    expect(transport.requests).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(2000); // the second after ~2 s: answered
    expect(loadSettings.calls).toBe(3);
    await client.flush();
    expect(labels(sentMessages(transport))).toEqual(['track:Waiting']);
    expect(JSON.parse(storage.dump()[STORAGE_KEYS.settings]!)).toEqual(NOT_REQUIRED);
  });

  it('fetch failing after an earlier answer: the last answer applies, failing closed when it required consent', async () => {
    const storage = inspectableStorage();
    const first = createClient({ writeKey: 'wk', host: HOST, transport: scriptedTransport(), storage, loadSettings: settingsServer([REQUIRED]) });
    await first.flush();
    first.close();

    // The next visit is offline for the settings: consent is still required.
    const transport = scriptedTransport();
    const offline = settingsServer(['fail']);
    const second = createClient({ writeKey: 'wk', host: HOST, transport, storage, loadSettings: offline });
    second.track('Offline visit');
    await second.flush();
    expect(transport.requests).toHaveLength(0);
    second.setConsent({ analytics: true });
    await second.flush();
    expect(labels(sentMessages(transport))).toEqual(['track:Offline visit', 'identify:']);
    second.close();

    // A device whose last answer was "not required" sends meanwhile (the server still enforces).
    const relaxed = inspectableStorage();
    relaxed.set(STORAGE_KEYS.settings, JSON.stringify(NOT_REQUIRED));
    const relaxedTransport = scriptedTransport();
    const third = createClient({ writeKey: 'wk', host: HOST, transport: relaxedTransport, storage: relaxed, loadSettings: settingsServer(['fail']) });
    third.track('Sent');
    await third.flush();
    expect(labels(sentMessages(relaxedTransport))).toEqual(['track:Sent']);
    third.close();
  });

  it('a malformed answer counts as a failure', async () => {
    const transport = scriptedTransport();
    const loadSettings = settingsServer([{ requireConsent: 'no' }, { requireConsent: false, consentCategories: [1] }, NOT_REQUIRED]);
    const client = createClient({ writeKey: 'wk', host: HOST, transport, loadSettings, random: () => 0 });
    client.track('X');
    await client.flush();
    await vi.advanceTimersByTimeAsync(100);
    expect(transport.requests).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(60_000);
    await client.flush();
    expect(loadSettings.calls).toBe(3);
    expect(labels(sentMessages(transport))).toEqual(['track:X']);
  });

  it('an explicit init option overrides the workspace and is never asked for', async () => {
    const open = scriptedTransport();
    const askedOpen = settingsServer([REQUIRED]);
    const notRequired = createClient({ writeKey: 'wk', host: HOST, transport: open, loadSettings: askedOpen, requireConsent: false });
    notRequired.track('Goes');
    await notRequired.flush();
    expect(labels(sentMessages(open))).toEqual(['track:Goes']);
    expect(askedOpen.calls).toBe(0);

    const closed = scriptedTransport();
    const askedClosed = settingsServer([NOT_REQUIRED]);
    const errors: DeliveryError[] = [];
    const required = createClient({
      writeKey: 'wk',
      host: HOST,
      transport: closed,
      loadSettings: askedClosed,
      requireConsent: true,
      consentCategories: ['analytics', 'personalization'],
      onError: (e) => errors.push(e),
    });
    required.track('Held');
    // Only one of the two categories: a refusal, so what was held is dropped.
    required.setConsent({ analytics: true });
    await required.flush();
    expect(closed.requests).toHaveLength(0);
    expect(errors.map((e) => [e.reason, labels(e.messages)])).toEqual([['consent_denied', ['track:Held']]]);
    required.track('Later');
    required.setConsent({ analytics: true, personalization: true });
    await required.flush();
    expect(labels(sentMessages(closed))).toEqual(['track:Later', 'identify:']);
    expect(askedClosed.calls).toBe(0);
  });
});

describe('personalisation helpers behind the consent gate', () => {
  it('answer the fallback without a request while the gate is closed, and ask once it opens', async () => {
    vi.useRealTimers();
    const requests: string[] = [];
    const get: HttpGet = async ({ url }) => {
      requests.push(url);
      return { status: 200, body: { segments: ['vip'] } };
    };
    const client = createClient({ writeKey: 'wk', host: HOST, transport: scriptedTransport(), loadSettings: settingsServer([REQUIRED]) });
    const personalizer = createPersonalizer({ writeKey: 'wk', host: HOST, get, allowed: client.consentGateOpen, visitor: () => ({ anonymousId: 'a', userId: null }) });
    expect(await personalizer.getProfileSegments({ fallback: ['default'] })).toEqual(['default']);
    expect(await personalizer.getDecision('hero', { fallback: 'A' })).toBe('A');
    expect(requests).toEqual([]);
    client.setConsent({ analytics: true });
    expect(await personalizer.getProfileSegments({ fallback: ['default'] })).toEqual(['vip']);
    expect(requests).toEqual([`${HOST}/v1/visitor/segments?anonymousId=a`]);
    client.close();
  });
});
