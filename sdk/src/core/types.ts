/** Segment-spec message types; the server sees the same shapes as from the official SDKs. */
export type MessageType = 'track' | 'identify' | 'page' | 'screen' | 'group' | 'alias';

export type Properties = Record<string, unknown>;
/** Consent categories as in Segment's consent spec: `{ analytics: true, advertising: false }`. */
export type ConsentPreferences = Record<string, boolean>;

/** What the workspace asks of collection (`GET /v1/sdk/settings`). */
export interface CollectionSettings {
  /** Messages leave the device only once consent grants `consentCategories`. */
  requireConsent: boolean;
  /** Categories that must all be granted; empty means at least one granted category. */
  consentCategories: string[];
}

export interface Message {
  type: MessageType;
  messageId: string;
  timestamp: string;
  anonymousId: string;
  userId?: string;
  event?: string;
  name?: string;
  properties?: Properties;
  traits?: Properties;
  groupId?: string;
  previousId?: string;
  context: Properties;
}

/** Identifier types the server's identity graph knows; sent as `context.externalIds`. */
export type IdentifierType = 'phone' | 'email' | 'member_id' | 'wechat_openid' | 'wechat_unionid' | 'device_id' | 'cookie_id';
export type Identifiers = Partial<Record<IdentifierType, string>>;

export interface MessageOptions {
  /** Typed identifiers for this message only, e.g. `{ phone: '+8613800000000' }`. */
  identifiers?: Identifiers;
  /** Merged over the automatic context. */
  context?: Properties;
  /** When the event happened, if not now. */
  timestamp?: Date;
}

/** Synchronous string storage: localStorage, wx storage, a file, or memory. */
export interface KeyValueStorage {
  get(key: string): string | null;
  set(key: string, value: string): void;
  remove(key: string): void;
}

export interface BatchRequest {
  /** `${host}/v1/batch` */
  url: string;
  /** JSON of `{ batch, sentAt, writeKey }`; the write key is in the body so browsers need no preflight and beacons work. */
  body: string;
  messages: Message[];
}

export interface SendResult {
  /** True when the server stored the batch (2xx). */
  ok: boolean;
  /** HTTP status; 0 when the request did not reach the server (offline, DNS, timeout). */
  status: number;
  /** From a Retry-After header. */
  retryAfterMs?: number;
}

export interface Transport {
  send(request: BatchRequest): Promise<SendResult>;
  /**
   * Fire-and-forget delivery while the page unloads (navigator.sendBeacon). Returns whether the
   * environment accepted the request; it cannot say whether the server stored it.
   */
  beacon?(request: BatchRequest): boolean;
}

/** Why messages were given up on. Delivery never drops messages without calling `onError`. */
export type DeliveryErrorReason =
  /** The server refused the batch with a 4xx other than 408/413/429: retrying cannot help. */
  | 'rejected'
  /** A single message is larger than the server accepts (413, or over the per-message limit before sending). */
  | 'too_large'
  /** The queue reached `maxQueueSize`; the oldest messages were dropped. */
  | 'queue_overflow'
  /** Consent was refused for every category while messages were held for it. */
  | 'consent_denied'
  /** The batch failed `maxRetries` times (server clients, which cannot wait forever). */
  | 'retries_exhausted'
  /** Still queued when a server client's `close()` ran out of time. */
  | 'closed';

export interface DeliveryError {
  reason: DeliveryErrorReason;
  /** HTTP status when the server answered. */
  status?: number;
  messages: Message[];
}
