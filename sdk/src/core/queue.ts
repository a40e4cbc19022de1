import type { BatchRequest, DeliveryError, KeyValueStorage, Message, Transport } from './types.ts';

export interface QueueOptions {
  writeKey: string;
  host: string;
  storage: KeyValueStorage;
  /** Storage key of the persistent queue. */
  storageKey: string;
  transport: Transport;
  /** Send as soon as this many messages wait. */
  flushAt: number;
  /** …or this long after the first message of a batch was queued. */
  flushIntervalMs: number;
  /** Serialised batch size limit (the server accepts 500 KB). */
  maxBatchBytes: number;
  /** One message's limit (the server accepts 32 KB). */
  maxMessageBytes: number;
  /** Oldest messages beyond this are dropped (and reported). */
  maxQueueSize: number;
  retryBaseMs: number;
  retryMaxMs: number;
  /** Failed attempts of one batch before it is given up on (reported); unlimited when absent. */
  maxRetries?: number;
  /** Whether messages may leave the device now (the consent gate). */
  canSend: () => boolean;
  /** Changes a message as it is sent (not as stored), e.g. to add the consent it leaves under. */
  stamp?: (message: Message) => Message;
  onError: (error: DeliveryError) => void;
  now: () => Date;
  random: () => number;
}

export interface Queue {
  push(message: Message): void;
  /** Sends everything that may be sent; resolves when done or when a send failed (a retry is then scheduled). */
  flush(): Promise<void>;
  /** Hands what is queued to `transport.beacon`; the messages stay queued (resent later, deduplicated by messageId). */
  flushOnUnload(): void;
  /** Drops every queued message, reporting them with the reason given. */
  discard(reason: DeliveryError['reason']): void;
  size(): number;
  /** Stops timers (for tests and shutdown). */
  stop(): void;
}

const RETRYABLE = new Set([408, 429]);
// sendBeacon refuses bodies over 64 KB in Chromium and Firefox.
const BEACON_BYTES = 60_000;

export function utf8Length(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x80) bytes += 1;
    else if (code < 0x800) bytes += 2;
    else if (code >= 0xd800 && code < 0xdc00) {
      bytes += 4;
      i++;
    } else bytes += 3;
  }
  return bytes;
}

/** Full-jitter exponential backoff; a server's Retry-After is a lower bound. */
export function backoffDelay(attempt: number, baseMs: number, maxMs: number, random: number, retryAfterMs?: number): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** attempt);
  const jittered = ceiling / 2 + (random * ceiling) / 2;
  return Math.max(retryAfterMs ?? 0, Math.round(jittered));
}

function readQueue(storage: KeyValueStorage, key: string): Message[] {
  const text = storage.get(key);
  if (!text) return [];
  try {
    const parsed: unknown = JSON.parse(text);
    return Array.isArray(parsed) ? (parsed as Message[]) : [];
  } catch {
    return [];
  }
}

/**
 * The persistent delivery queue: messages stay in storage until the server acknowledged them,
 * so a reload or a crash resends them (the server deduplicates by messageId). One batch is in
 * flight at a time, which keeps events in order.
 */
export function createQueue(options: QueueOptions): Queue {
  const { storage, storageKey, transport } = options;
  let messages = readQueue(storage, storageKey);
  let sending: Promise<void> | null = null;
  let timer: ReturnType<typeof setTimeout> | null = null;
  let timerDue = 0;
  let attempt = 0;
  let backingOffUntil = 0;

  const save = () => {
    if (messages.length === 0) storage.remove(storageKey);
    else storage.set(storageKey, JSON.stringify(messages));
  };

  const url = `${options.host.replace(/\/+$/, '')}/v1/batch`;
  const request = (batch: Message[]): BatchRequest => {
    const sentAt = options.now().toISOString();
    const messages = options.stamp ? batch.map(options.stamp) : batch;
    return { url, messages, body: JSON.stringify({ batch: messages, sentAt, writeKey: options.writeKey }) };
  };

  const remove = (batch: Message[]) => {
    const ids = new Set(batch.map((message) => message.messageId));
    messages = messages.filter((message) => !ids.has(message.messageId));
    save();
  };

  const schedule = (delayMs: number) => {
    const due = Date.now() + delayMs;
    if (timer !== null && timerDue <= due) return;
    if (timer !== null) clearTimeout(timer);
    timerDue = due;
    timer = setTimeout(() => {
      timer = null;
      void flush();
    }, delayMs);
  };

  /** The next batch from the head of the queue within the count and byte limits. */
  const nextBatch = (): Message[] => {
    const batch: Message[] = [];
    let bytes = 64;
    for (const message of messages) {
      const size = utf8Length(JSON.stringify(message)) + 1;
      if (batch.length > 0 && (bytes + size > options.maxBatchBytes || batch.length >= Math.max(options.flushAt, 100))) break;
      batch.push(message);
      bytes += size;
    }
    return batch;
  };

  /** Sends one batch; a 413 splits it. Returns false when sending should stop for now. */
  const sendBatch = async (batch: Message[]): Promise<boolean> => {
    // A transport that throws is treated like a request that never reached the server.
    const result = await Promise.resolve()
      .then(() => transport.send(request(batch)))
      .catch(() => ({ ok: false, status: 0, retryAfterMs: undefined }));
    if (result.ok) {
      remove(batch);
      attempt = 0;
      return true;
    }
    if (result.status === 413) {
      if (batch.length === 1) {
        remove(batch);
        options.onError({ reason: 'too_large', status: 413, messages: batch });
        return true;
      }
      const half = Math.ceil(batch.length / 2);
      return (await sendBatch(batch.slice(0, half))) && (await sendBatch(batch.slice(half)));
    }
    if (result.status >= 400 && result.status < 500 && !RETRYABLE.has(result.status)) {
      remove(batch);
      options.onError({ reason: 'rejected', status: result.status, messages: batch });
      return true;
    }
    if (options.maxRetries !== undefined && attempt >= options.maxRetries) {
      remove(batch);
      attempt = 0;
      options.onError({ reason: 'retries_exhausted', ...(result.status ? { status: result.status } : {}), messages: batch });
      return true;
    }
    const delay = backoffDelay(attempt, options.retryBaseMs, options.retryMaxMs, options.random(), result.retryAfterMs);
    attempt++;
    backingOffUntil = Date.now() + delay;
    schedule(delay);
    return false;
  };

  const drain = async () => {
    while (messages.length > 0 && options.canSend()) {
      if (!(await sendBatch(nextBatch()))) return;
    }
  };

  function flush(): Promise<void> {
    if (sending) return sending.then(() => (messages.length > 0 && Date.now() >= backingOffUntil ? flush() : undefined));
    backingOffUntil = 0;
    sending = drain().finally(() => {
      sending = null;
    });
    return sending;
  }

  const push = (message: Message) => {
    if (utf8Length(JSON.stringify(message)) > options.maxMessageBytes) {
      options.onError({ reason: 'too_large', messages: [message] });
      return;
    }
    messages.push(message);
    if (messages.length > options.maxQueueSize) {
      const dropped = messages.splice(0, messages.length - options.maxQueueSize);
      options.onError({ reason: 'queue_overflow', messages: dropped });
    }
    save();
    if (!options.canSend() || sending) return;
    const waitForBackoff = backingOffUntil - Date.now();
    if (waitForBackoff > 0) schedule(waitForBackoff);
    else if (messages.length >= options.flushAt) void flush();
    else schedule(options.flushIntervalMs);
  };

  return {
    push,
    flush,
    flushOnUnload() {
      if (!transport.beacon || !options.canSend()) return;
      let batch: Message[] = [];
      let bytes = 64;
      const sendBeacon = () => {
        if (batch.length > 0) transport.beacon!(request(batch));
        batch = [];
        bytes = 64;
      };
      for (const message of messages) {
        const size = utf8Length(JSON.stringify(message)) + 1;
        if (bytes + size > BEACON_BYTES) sendBeacon();
        batch.push(message);
        bytes += size;
      }
      sendBeacon();
    },
    discard(reason) {
      if (messages.length === 0) return;
      const dropped = messages;
      messages = [];
      save();
      options.onError({ reason, messages: dropped });
    },
    size: () => messages.length,
    stop() {
      if (timer !== null) clearTimeout(timer);
      timer = null;
    },
  };
}
