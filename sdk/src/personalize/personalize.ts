import { writeKeyAuthorization } from './base64.ts';

/** One GET the environment knows how to make (fetch in browsers, wx.request in mini-programs). */
export type HttpGet = (request: { url: string; headers: Record<string, string>; timeoutMs: number }) => Promise<{ status: number; body: unknown }>;

export interface Visitor {
  anonymousId: string;
  userId: string | null;
}

export interface PersonalizerOptions {
  writeKey: string;
  host: string;
  get: HttpGet;
  /** The current visitor, read at each call (it changes with identify and reset). */
  visitor: () => Visitor;
  /** Default time limit of a call (800 ms). */
  timeoutMs?: number;
  /**
   * Whether the visitor's ids may be sent now, e.g. the client's `consentGateOpen`: when false the
   * helpers answer their fallback without a request (nothing leaves the device before consent).
   */
  allowed?: () => boolean | Promise<boolean>;
}

/** A decision as the decisioning API answers it: a JSON object (placement, variant, content…). */
export type Decision = Record<string, unknown>;

export interface Personalizer {
  /**
   * Keys of the client-visible segments the visitor is in now (GET /v1/visitor/segments), or
   * `fallback` (default `[]`) if Touchpoint does not answer well within `timeoutMs`. Never rejects.
   */
  getProfileSegments(options?: { timeoutMs?: number; fallback?: string[] }): Promise<string[]>;
  /** The decision for a placement (GET /v1/decisions/{placement}), or `fallback` on any error or timeout. Never rejects. */
  getDecision<F>(placement: string, options: { timeoutMs?: number; fallback: F }): Promise<Decision | F>;
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/** `promise`'s value, or `fallback` once `timeoutMs` passed or if it rejects: a page never waits on Touchpoint. */
export function withFallback<T>(promise: Promise<T>, timeoutMs: number, fallback: T): Promise<T> {
  return new Promise<T>((resolve) => {
    const timer = setTimeout(() => resolve(fallback), timeoutMs);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      () => {
        clearTimeout(timer);
        resolve(fallback);
      },
    );
  });
}

export function createPersonalizer(options: PersonalizerOptions): Personalizer {
  const base = options.host.replace(/\/+$/, '');
  const headers = { authorization: writeKeyAuthorization(options.writeKey) };
  const defaultTimeout = options.timeoutMs ?? 800;

  const visitorQuery = () => {
    const visitor = options.visitor();
    const params = [`anonymousId=${encodeURIComponent(visitor.anonymousId)}`];
    if (visitor.userId !== null) params.push(`userId=${encodeURIComponent(visitor.userId)}`);
    return params.join('&');
  };

  /** The JSON body of a 200 that `accept` recognises; anything else rejects (and so falls back). */
  const getJson = async <T>(url: string, timeoutMs: number, accept: (body: unknown) => body is T): Promise<T> => {
    if (options.allowed && !(await options.allowed())) throw new Error('touchpoint: waiting for consent');
    const response = await options.get({ url, headers, timeoutMs });
    if (response.status !== 200 || !accept(response.body)) throw new Error(`touchpoint: ${url} answered ${response.status}`);
    return response.body;
  };

  return {
    getProfileSegments({ timeoutMs = defaultTimeout, fallback = [] } = {}) {
      const accept = (body: unknown): body is { segments: string[] } =>
        isObject(body) && Array.isArray(body.segments) && body.segments.every((key) => typeof key === 'string');
      const answer = Promise.resolve()
        .then(() => getJson(`${base}/v1/visitor/segments?${visitorQuery()}`, timeoutMs, accept))
        .then((body) => body.segments);
      return withFallback(answer, timeoutMs, fallback);
    },
    getDecision<F>(placement: string, { timeoutMs = defaultTimeout, fallback }: { timeoutMs?: number; fallback: F }) {
      if (typeof placement !== 'string' || placement === '') {
        console.warn('touchpoint: getDecision needs a placement name; answering the fallback');
        return Promise.resolve(fallback);
      }
      const url = `${base}/v1/decisions/${encodeURIComponent(placement)}?${visitorQuery()}`;
      const answer = Promise.resolve().then(() => getJson(url, timeoutMs, isObject));
      return withFallback<Decision | F>(answer, timeoutMs, fallback);
    },
  };
}

/** HttpGet on fetch (browsers, Node ≥ 18), abandoning the request at the time limit. */
export const fetchGet: HttpGet = async ({ url, headers, timeoutMs }) => {
  const controller = typeof AbortController === 'undefined' ? undefined : new AbortController();
  const timer = controller ? setTimeout(() => controller.abort(), timeoutMs) : undefined;
  try {
    const response = await fetch(url, { headers, signal: controller?.signal, credentials: 'omit' });
    const body: unknown = response.status === 200 ? await response.json() : null;
    return { status: response.status, body };
  } finally {
    if (timer !== undefined) clearTimeout(timer);
  }
};
