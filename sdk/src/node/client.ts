import { memoryStorage } from '../core/client.ts';
import { uuid } from '../core/ids.ts';
import { buildMessage, type MessageInput } from '../core/payload.ts';
import { createQueue } from '../core/queue.ts';
import type { DeliveryError, Identifiers, Message, MessageType, Properties, SendResult, Transport } from '../core/types.ts';
import { nodeTransport } from './transport.ts';

export interface NodeClientOptions {
  writeKey: string;
  /** Base URL of the Touchpoint server, e.g. `https://cdp.example.com`. */
  host: string;
  /** Send when this many messages wait (default 20)… */
  flushAt?: number;
  /** …or this long after one was queued (default 1000 ms). */
  flushIntervalMs?: number;
  /** Failed attempts of a batch before it is given up on and reported to onError (default 3). */
  maxRetries?: number;
  /** One request's time limit (default 10 s); a request over it is retried. */
  timeoutMs?: number;
  /** The first retry waits about this long (default 1000 ms), doubling; a Retry-After is always honoured. */
  retryBaseMs?: number;
  retryMaxMs?: number;
  /** Messages held in memory at most (default 10,000); the oldest beyond it are dropped and reported. */
  maxQueueSize?: number;
  /** How long `close()` waits for the queue to drain by default (10 s). */
  closeTimeoutMs?: number;
  /** Every message given up on, with the reason. Defaults to console.warn. */
  onError?: (error: DeliveryError) => void;
  /** Replaces the HTTP transport (tests, proxies). */
  transport?: Transport;
}

/** Server SDKs know no current user: every call names the person by userId and/or anonymousId. */
export interface Who {
  userId?: string;
  anonymousId?: string;
}

export interface CallFields extends Who {
  /** Typed identifiers, sent as `context.externalIds`, e.g. `{ phone: '+8613800000000' }`. */
  identifiers?: Identifiers;
  context?: Properties;
  /** When it happened, if not now. */
  timestamp?: Date;
  /** Your own id for the message: a retried call with the same id is stored once. */
  messageId?: string;
}

export interface NodeClient {
  track(message: CallFields & { event: string; properties?: Properties }): void;
  identify(message: CallFields & { traits?: Properties }): void;
  page(message: CallFields & { name?: string; properties?: Properties }): void;
  screen(message: CallFields & { name: string; properties?: Properties }): void;
  group(message: CallFields & { groupId: string; traits?: Properties }): void;
  alias(message: CallFields & { userId: string; previousId: string }): void;
  /** Sends what is queued; resolves when the queue is empty or a send failed (a retry is then scheduled). */
  flush(): Promise<void>;
  /**
   * Stops accepting calls, sends everything queued (honouring retries and Retry-After) and
   * resolves when the queue is empty or `timeoutMs` passed; what is left is reported to onError
   * with reason `closed`.
   */
  close(options?: { timeoutMs?: number }): Promise<void>;
  /** Messages waiting in memory. */
  queued(): number;
}

function requireString(value: unknown, what: string): string {
  if (typeof value !== 'string' || value.trim() === '') throw new TypeError(`touchpoint: ${what} must be a non-empty string`);
  return value;
}

function optionalString(value: unknown, what: string): string | undefined {
  return value === undefined ? undefined : requireString(value, what);
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, ms)));

/**
 * The Node.js client: the core's queue in memory, batches to /v1/batch gzip-compressed, retries
 * with backoff honouring Retry-After up to `maxRetries`, and a `close()` that drains it.
 */
export function createNodeClient(options: NodeClientOptions): NodeClient {
  const writeKey = requireString(options.writeKey, 'writeKey');
  const host = requireString(options.host, 'host');
  const onError =
    options.onError ??
    ((error: DeliveryError) => console.warn(`touchpoint: ${error.messages.length} message(s) dropped: ${error.reason}`, error));
  const inner = options.transport ?? nodeTransport({ writeKey, timeoutMs: options.timeoutMs ?? 10_000 });
  // close() must not cut a backoff short (it would ignore the server's Retry-After), so it needs
  // to know whether the queue is waiting to retry.
  let retryScheduled = false;
  const transport: Transport = {
    async send(request) {
      const result: SendResult = await inner.send(request);
      retryScheduled = !result.ok && (result.status === 0 || result.status >= 500 || result.status === 408 || result.status === 429);
      return result;
    },
  };
  const queue = createQueue({
    writeKey,
    host,
    storage: memoryStorage(),
    storageKey: 'queue',
    transport,
    flushAt: options.flushAt ?? 20,
    flushIntervalMs: options.flushIntervalMs ?? 1000,
    maxBatchBytes: 450 * 1024,
    maxMessageBytes: 32 * 1024,
    maxQueueSize: options.maxQueueSize ?? 10_000,
    retryBaseMs: options.retryBaseMs ?? 1000,
    retryMaxMs: options.retryMaxMs ?? 60_000,
    maxRetries: options.maxRetries ?? 3,
    canSend: () => true,
    onError,
    now: () => new Date(),
    random: Math.random,
  });
  let closing: Promise<void> | null = null;

  const enqueue = (type: MessageType, call: CallFields, fields: MessageInput['fields']) => {
    if (closing) throw new Error(`touchpoint: ${type} after close(); the message was not queued`);
    if (typeof call !== 'object' || call === null) throw new TypeError(`touchpoint: ${type} expects an object`);
    const userId = optionalString(call.userId, `${type}: userId`);
    const anonymousId = optionalString(call.anonymousId, `${type}: anonymousId`);
    if (userId === undefined && anonymousId === undefined) throw new TypeError(`touchpoint: ${type} needs a userId or an anonymousId`);
    if (call.timestamp !== undefined && !(call.timestamp instanceof Date && !Number.isNaN(call.timestamp.getTime()))) {
      throw new TypeError(`touchpoint: ${type}: timestamp must be a valid Date`);
    }
    const message = buildMessage({
      type,
      messageId: optionalString(call.messageId, `${type}: messageId`) ?? uuid(),
      timestamp: call.timestamp ?? new Date(),
      anonymousId: anonymousId ?? '',
      userId: userId ?? null,
      fields,
      context: call.context ? [call.context] : [],
      identifiers: call.identifiers,
    });
    if (anonymousId === undefined) {
      // The Segment spec lets a server message carry only a userId; the queue only serialises it.
      const { anonymousId: _none, ...withoutAnonymousId } = message;
      queue.push(withoutAnonymousId as Message);
    } else {
      queue.push(message);
    }
  };

  return {
    track(call) {
      enqueue('track', call, { event: requireString(call?.event, 'track: event'), properties: call.properties ?? {} });
    },
    identify(call) {
      enqueue('identify', call, { traits: call?.traits ?? {} });
    },
    page(call) {
      enqueue('page', call, { name: optionalString(call?.name, 'page: name'), properties: call?.properties ?? {} });
    },
    screen(call) {
      enqueue('screen', call, { name: requireString(call?.name, 'screen: name'), properties: call.properties ?? {} });
    },
    group(call) {
      enqueue('group', call, { groupId: requireString(call?.groupId, 'group: groupId'), traits: call.traits ?? {} });
    },
    alias(call) {
      requireString(call?.userId, 'alias: userId');
      enqueue('alias', call, { previousId: requireString(call.previousId, 'alias: previousId') });
    },
    flush: () => queue.flush(),
    queued: () => queue.size(),
    close(closeOptions = {}) {
      if (closing) return closing;
      const timeoutMs = closeOptions.timeoutMs ?? options.closeTimeoutMs ?? 10_000;
      const deadline = Date.now() + timeoutMs;
      closing = (async () => {
        // While a retry is scheduled the queue's own timer sends it when the backoff is over.
        if (!retryScheduled) await Promise.race([queue.flush(), sleep(timeoutMs)]);
        while (queue.size() > 0 && Date.now() < deadline) await sleep(Math.min(20, deadline - Date.now()));
        queue.stop();
        queue.discard('closed');
        // A request still in flight would schedule a retry when it fails; stop that timer too so
        // the process can exit.
        void queue.flush().then(() => queue.stop());
      })();
      return closing;
    },
  };
}
