import { uuid } from './ids.ts';
import { buildMessage } from './payload.ts';
import { backoffDelay, createQueue } from './queue.ts';
import type {
  CollectionSettings,
  ConsentPreferences,
  DeliveryError,
  KeyValueStorage,
  Message,
  MessageOptions,
  MessageType,
  Properties,
  Transport,
} from './types.ts';

export interface ClientOptions {
  writeKey: string;
  /** Base URL of the Touchpoint server, e.g. `https://cdp.example.com`. */
  host: string;
  transport: Transport;
  /** Where identity, consent and the queue persist; memory when absent. */
  storage?: KeyValueStorage;
  /**
   * Hold every message on the device until `setConsent` grants `consentCategories`. When absent,
   * the workspace's setting is asked with `loadSettings` (messages wait for the answer).
   */
  requireConsent?: boolean;
  /** With `requireConsent: true`: categories that must all be granted (default: any one). */
  consentCategories?: string[];
  /**
   * Asks the server for the workspace's collection settings (`GET /v1/sdk/settings`); used when
   * `requireConsent` is not given. Until it answers nothing is sent; when it fails, the last answer
   * kept in storage applies (none: keep holding) and it is retried with backoff.
   */
  loadSettings?: () => Promise<unknown>;
  /** Send when this many messages wait (default 20)… */
  flushAt?: number;
  /** …or this long after one was queued (default 1000 ms). */
  flushIntervalMs?: number;
  /** Default 1000; the oldest are dropped beyond it (reported to onError). */
  maxQueueSize?: number;
  /** Backoff: the first retry waits about this long (default 1000 ms), doubling up to `retryMaxMs` (default 60 s). */
  retryBaseMs?: number;
  retryMaxMs?: number;
  /** Called for every message given up on, with the reason. Defaults to console.warn. */
  onError?: (error: DeliveryError) => void;
  /** Context the environment adds to every message (page, locale, userAgent…), read when the message is made. */
  context?: () => Properties;
  /** Last chance for the environment to change a message before it is queued (e.g. to add a session id). */
  enrich?: (message: Message) => Message;
  now?: () => Date;
  random?: () => number;
}

export interface UserState {
  anonymousId: string;
  userId: string | null;
  traits: Properties;
}

export interface Client {
  readonly writeKey: string;
  readonly host: string;
  track(event: string, properties?: Properties, options?: MessageOptions): void;
  page(name?: string, properties?: Properties, options?: MessageOptions): void;
  screen(name: string, properties?: Properties, options?: MessageOptions): void;
  /**
   * `identify('u1', { email }, { identifiers: { phone } })`, or `identify({ plan })` for traits of the
   * current user. Traits accumulate until `reset()`; a different user id starts with none.
   */
  identify(userId?: string | Properties | null, traits?: Properties, options?: MessageOptions): void;
  group(groupId: string, traits?: Properties, options?: MessageOptions): void;
  /** Links `previousId` (default: the current user id, else the anonymous id) to `userId`, which becomes the current user. */
  alias(userId: string, previousId?: string, options?: MessageOptions): void;
  /** Logout: forgets the user id and traits and starts a new anonymous id. Consent and queued messages stay. */
  reset(): void;
  /** Records consent (sent as an identify with `context.consent.categoryPreferences`) and opens or closes the gate. */
  setConsent(categories: ConsentPreferences): void;
  consent(): ConsentPreferences | null;
  /**
   * Whether messages may leave the device: resolves once the workspace's settings are known (or
   * failed to load), true when consent is not required or is granted.
   */
  consentGateOpen(): Promise<boolean>;
  user(): UserState;
  /** Sends what is queued; resolves when the queue is empty or a send failed (a retry is scheduled). */
  flush(): Promise<void>;
  /** For environments: hand the queue to `transport.beacon` as the page goes away. */
  flushOnUnload(): void;
  /** Messages waiting on the device. */
  queued(): number;
  /** Stops timers. Queued messages stay in storage. */
  close(): void;
}

export function memoryStorage(): KeyValueStorage {
  const values = new Map<string, string>();
  return {
    get: (key) => values.get(key) ?? null,
    set: (key, value) => void values.set(key, value),
    remove: (key) => void values.delete(key),
  };
}

export const STORAGE_KEYS = {
  anonymousId: 'tp_aid',
  userId: 'tp_uid',
  traits: 'tp_traits',
  consent: 'tp_consent',
  queue: 'tp_queue',
  settings: 'tp_settings',
} as const;

/** A well-formed settings answer, or null. */
function asSettings(value: unknown): CollectionSettings | null {
  const candidate = value as Partial<CollectionSettings> | null;
  if (typeof candidate !== 'object' || candidate === null || typeof candidate.requireConsent !== 'boolean') return null;
  const categories = candidate.consentCategories ?? [];
  if (!Array.isArray(categories) || !categories.every((category) => typeof category === 'string')) return null;
  return { requireConsent: candidate.requireConsent, consentCategories: categories };
}

function readJson<T>(storage: KeyValueStorage, key: string): T | null {
  const text = storage.get(key);
  if (text === null) return null;
  try {
    return JSON.parse(text) as T;
  } catch {
    return null;
  }
}

function requireString(value: unknown, what: string): string {
  if (typeof value !== 'string' || value.trim() === '') throw new TypeError(`touchpoint: ${what} must be a non-empty string`);
  return value;
}

/** The environment-independent client: identity, consent, Segment-spec messages and the delivery queue. */
export function createClient(options: ClientOptions): Client {
  const writeKey = requireString(options.writeKey, 'writeKey');
  const host = requireString(options.host, 'host');
  const storage = options.storage ?? memoryStorage();
  const now = options.now ?? (() => new Date());
  const onError =
    options.onError ??
    ((error: DeliveryError) => console.warn(`touchpoint: ${error.messages.length} message(s) dropped: ${error.reason}`, error));

  let anonymousId = storage.get(STORAGE_KEYS.anonymousId) ?? '';
  if (!anonymousId) {
    anonymousId = uuid();
    storage.set(STORAGE_KEYS.anonymousId, anonymousId);
  }
  let userId = storage.get(STORAGE_KEYS.userId);
  let traits = readJson<Properties>(storage, STORAGE_KEYS.traits) ?? {};
  let consent = readJson<ConsentPreferences>(storage, STORAGE_KEYS.consent);

  // null: not known yet, nothing may be sent. An explicit option needs no answer from the server.
  let settings: CollectionSettings | null =
    options.requireConsent !== undefined
      ? { requireConsent: options.requireConsent, consentCategories: options.consentCategories ?? [] }
      : options.loadSettings
        ? null
        : { requireConsent: false, consentCategories: [] };
  let settingsFresh = settings !== null;
  let settingsLoading: Promise<void> | null = null;
  let settingsRetry: ReturnType<typeof setTimeout> | null = null;
  let settingsAttempt = 0;

  const consentGiven = () => {
    if (consent === null) return false;
    const required = settings?.consentCategories ?? [];
    const given = consent;
    return required.length > 0 ? required.every((category) => given[category] === true) : Object.values(given).some(Boolean);
  };
  const requiresConsent = () => settings !== null && settings.requireConsent;
  const canSend = () => settings !== null && (!settings.requireConsent || consentGiven());

  const queue = createQueue({
    writeKey,
    host,
    storage,
    storageKey: STORAGE_KEYS.queue,
    transport: options.transport,
    flushAt: options.flushAt ?? 20,
    flushIntervalMs: options.flushIntervalMs ?? 1000,
    maxBatchBytes: 450 * 1024,
    maxMessageBytes: 32 * 1024,
    maxQueueSize: options.maxQueueSize ?? 1000,
    retryBaseMs: options.retryBaseMs ?? 1000,
    retryMaxMs: options.retryMaxMs ?? 60_000,
    canSend,
    // Messages held for consent were made before it was given; they leave the device under it.
    stamp: (message) =>
      requiresConsent() && consent !== null && message.context.consent === undefined
        ? { ...message, context: { ...message.context, consent: { categoryPreferences: { ...consent } } } }
        : message,
    onError,
    now,
    random: options.random ?? Math.random,
  });

  /** Applies the workspace's settings: drops what was held if consent was already refused, else sends what may go. */
  const useSettings = (next: CollectionSettings) => {
    settings = next;
    if (requiresConsent() && consent !== null && !consentGiven()) queue.discard('consent_denied');
    else if (canSend() && queue.size() > 0) void queue.flush();
  };

  /** Resolves once the settings are known or the attempt failed (a retry is then scheduled). */
  const loadSettings = (): Promise<void> => {
    const load = options.loadSettings;
    if (settingsFresh || !load) return Promise.resolve();
    if (settingsRetry !== null) clearTimeout(settingsRetry);
    settingsRetry = null;
    settingsLoading ??= Promise.resolve()
      .then(load)
      .then((answer) => {
        const next = asSettings(answer);
        if (!next) throw new TypeError('touchpoint: malformed settings');
        settingsFresh = true;
        settingsAttempt = 0;
        storage.set(STORAGE_KEYS.settings, JSON.stringify(next));
        useSettings(next);
      })
      .catch(() => {
        // The last answer this device had applies meanwhile: fail closed when it required consent.
        const known = asSettings(readJson(storage, STORAGE_KEYS.settings));
        if (settings === null && known) useSettings(known);
        const delay = backoffDelay(settingsAttempt++, options.retryBaseMs ?? 1000, options.retryMaxMs ?? 60_000, (options.random ?? Math.random)());
        settingsRetry = setTimeout(() => void loadSettings(), delay);
      })
      .finally(() => {
        settingsLoading = null;
      });
    return settingsLoading;
  };
  void loadSettings();

  const setUser = (id: string | null) => {
    userId = id;
    if (id === null) storage.remove(STORAGE_KEYS.userId);
    else storage.set(STORAGE_KEYS.userId, id);
  };
  const setTraits = (next: Properties) => {
    traits = next;
    storage.set(STORAGE_KEYS.traits, JSON.stringify(traits));
  };

  const enqueue = (type: MessageType, fields: Parameters<typeof buildMessage>[0]['fields'], callOptions: MessageOptions = {}) => {
    const automatic: Properties = options.context ? options.context() : {};
    const context: Properties[] = [automatic];
    if (consent !== null) context.push({ consent: { categoryPreferences: consent } });
    if (callOptions.context) context.push(callOptions.context);
    let message = buildMessage({
      type,
      messageId: uuid(),
      timestamp: callOptions.timestamp ?? now(),
      anonymousId,
      userId,
      fields,
      context,
      identifiers: callOptions.identifiers,
    });
    if (options.enrich) message = options.enrich(message);
    queue.push(message);
  };

  return {
    writeKey,
    host,
    track(event, properties = {}, callOptions) {
      enqueue('track', { event: requireString(event, 'track: the event name'), properties }, callOptions);
    },
    page(name, properties = {}, callOptions) {
      enqueue('page', { name, properties }, callOptions);
    },
    screen(name, properties = {}, callOptions) {
      enqueue('screen', { name: requireString(name, 'screen: the screen name'), properties }, callOptions);
    },
    identify(idOrTraits, newTraits, callOptions) {
      let id: string | null | undefined;
      let given: Properties | undefined = newTraits;
      if (typeof idOrTraits === 'object' && idOrTraits !== null) {
        given = idOrTraits;
        callOptions = newTraits as MessageOptions | undefined;
      } else if (idOrTraits !== undefined && idOrTraits !== null) {
        id = requireString(idOrTraits, 'identify: the user id');
      }
      if (id !== undefined && id !== userId) {
        // Another person logs in on this device: their traits are not the previous user's.
        if (userId !== null) setTraits({});
        setUser(id);
      }
      setTraits({ ...traits, ...(given ?? {}) });
      enqueue('identify', { traits: { ...traits } }, callOptions);
    },
    group(groupId, groupTraits = {}, callOptions) {
      enqueue('group', { groupId: requireString(groupId, 'group: the group id'), traits: groupTraits }, callOptions);
    },
    alias(newUserId, previousId, callOptions) {
      const to = requireString(newUserId, 'alias: the user id');
      const from = previousId ?? userId ?? anonymousId;
      setUser(to);
      enqueue('alias', { previousId: from }, callOptions);
    },
    reset() {
      setUser(null);
      traits = {};
      storage.remove(STORAGE_KEYS.traits);
      anonymousId = uuid();
      storage.set(STORAGE_KEYS.anonymousId, anonymousId);
    },
    setConsent(categories) {
      if (typeof categories !== 'object' || categories === null) throw new TypeError('touchpoint: setConsent expects { category: boolean }');
      consent = { ...categories };
      storage.set(STORAGE_KEYS.consent, JSON.stringify(consent));
      if (requiresConsent() && !consentGiven()) {
        queue.discard('consent_denied');
        return;
      }
      enqueue('identify', { traits: { ...traits } });
      void queue.flush();
    },
    consent: () => (consent === null ? null : { ...consent }),
    consentGateOpen: () => loadSettings().then(canSend),
    user: () => ({ anonymousId, userId, traits: { ...traits } }),
    flush: () => loadSettings().then(() => queue.flush()),
    flushOnUnload: () => queue.flushOnUnload(),
    queued: () => queue.size(),
    close: () => {
      if (settingsRetry !== null) clearTimeout(settingsRetry);
      settingsRetry = null;
      settingsFresh = true; // stops retries; a closed client fetches nothing more
      queue.stop();
    },
  };
}
