import { memoryStorage, STORAGE_KEYS, type KeyValueStorage } from '../core/index.ts';

const YEAR_SECONDS = 365 * 24 * 3600;

function readCookie(name: string): string | null {
  for (const part of document.cookie.split('; ')) {
    const at = part.indexOf('=');
    if (part.slice(0, at) === name) return decodeURIComponent(part.slice(at + 1));
  }
  return null;
}

function writeCookie(name: string, value: string | null, domain?: string): void {
  const attributes = `; path=/; SameSite=Lax${domain ? `; domain=${domain}` : ''}${location.protocol === 'https:' ? '; Secure' : ''}`;
  document.cookie = `${name}=${value === null ? '' : encodeURIComponent(value)}; max-age=${value === null ? 0 : YEAR_SECONDS}${attributes}`;
}

/** localStorage, or memory where it is unavailable (Safari private mode, blocked storage). */
export function localStore(): KeyValueStorage {
  try {
    const probe = '__tp_probe__';
    localStorage.setItem(probe, probe);
    localStorage.removeItem(probe);
    return {
      get: (key) => localStorage.getItem(key),
      set: (key, value) => {
        try {
          localStorage.setItem(key, value);
        } catch {
          // Quota exceeded: the in-memory queue still delivers; only reload survival is lost.
        }
      },
      remove: (key) => localStorage.removeItem(key),
    };
  } catch {
    return memoryStorage();
  }
}

/**
 * localStorage with the anonymous id also in a first-party cookie: the cookie survives where
 * storage is partitioned or cleared separately, and server-side code on the same site can read it.
 * The cookie wins when both exist.
 */
export function browserStorage(cookieDomain?: string): KeyValueStorage {
  const store = localStore();
  const cookieKey = STORAGE_KEYS.anonymousId;
  return {
    get(key) {
      if (key !== cookieKey) return store.get(key);
      const fromCookie = readCookie(key);
      const value = fromCookie ?? store.get(key);
      // Restore whichever copy was lost.
      if (value !== null && fromCookie === null) writeCookie(key, value, cookieDomain);
      if (value !== null && store.get(key) !== value) store.set(key, value);
      return value;
    },
    set(key, value) {
      if (key === cookieKey) writeCookie(key, value, cookieDomain);
      store.set(key, value);
    },
    remove(key) {
      if (key === cookieKey) writeCookie(key, null, cookieDomain);
      store.remove(key);
    },
  };
}
