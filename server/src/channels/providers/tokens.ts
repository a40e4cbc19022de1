/**
 * Access tokens of providers that hand out short-lived ones (WeChat, WeCom, FCM OAuth): one
 * fetch per account at a time, cached until shortly before expiry, dropped when the provider
 * says the token is invalid so the next send fetches a new one.
 */
interface Cached {
  token: string;
  expiresAt: number;
}

const cache = new Map<string, Cached>();
const inflight = new Map<string, Promise<Cached>>();
// WeChat tokens live 7,200 s; refresh five minutes early so none expires mid-batch.
const EARLY_MS = 300_000;

export async function accessToken(key: string, now: number, fetchToken: () => Promise<{ token: string; expiresInSeconds: number }>): Promise<string> {
  const hit = cache.get(key);
  if (hit && hit.expiresAt > now) return hit.token;
  let pending = inflight.get(key);
  if (!pending) {
    pending = fetchToken()
      .then(({ token, expiresInSeconds }) => {
        const entry = { token, expiresAt: now + Math.max(0, expiresInSeconds * 1000 - EARLY_MS) };
        cache.set(key, entry);
        return entry;
      })
      .finally(() => inflight.delete(key));
    inflight.set(key, pending);
  }
  return (await pending).token;
}

/** Forgets a token the provider refused (only if it is still the cached one). */
export function dropToken(key: string, token: string): void {
  if (cache.get(key)?.token === token) cache.delete(key);
}

export class TokenError extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
  ) {
    super(message);
  }
}
