import type { Transport } from '../core/index.ts';

function retryAfterMs(header: string | null): number | undefined {
  if (!header) return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds)) return seconds * 1000;
  const date = Date.parse(header);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

/**
 * fetch with a text/plain body (a "simple" CORS request: no preflight; the write key is in the
 * body) and keepalive when small enough, so a batch in flight survives navigation.
 */
export function browserTransport(): Transport {
  return {
    async send(request) {
      try {
        const response = await fetch(request.url, {
          method: 'POST',
          body: request.body,
          headers: { 'content-type': 'text/plain' },
          keepalive: request.body.length < 60_000,
          credentials: 'omit',
        });
        return { ok: response.ok, status: response.status, retryAfterMs: retryAfterMs(response.headers.get('retry-after')) };
      } catch {
        return { ok: false, status: 0 };
      }
    },
    beacon(request) {
      return typeof navigator.sendBeacon === 'function' && navigator.sendBeacon(request.url, new Blob([request.body], { type: 'text/plain' }));
    },
  };
}

/** `GET /v1/sdk/settings` with the write key in the URL: a simple CORS request the browser may cache. */
export function browserSettings(host: string, writeKey: string): () => Promise<unknown> {
  return async () => {
    const response = await fetch(`${host.replace(/\/+$/, '')}/v1/sdk/settings?writeKey=${encodeURIComponent(writeKey)}`, { credentials: 'omit' });
    if (!response.ok) throw new Error(`touchpoint: settings answered ${response.status}`);
    return response.json();
  };
}
