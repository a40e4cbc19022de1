/**
 * Who the dashboard acts as. Today: a workspace server key typed at login, kept in sessionStorage
 * (gone when the tab closes) and sent as a bearer token. When user accounts exist the session
 * cookie takes over here alone: `authHeaders` then sends nothing and the browser sends the cookie.
 */
export type Credentials = { kind: 'server-key'; key: string } | { kind: 'session'; user: string };

const SERVER_KEY = 'touchpoint.serverKey';
const SESSION_USER = 'touchpoint.sessionUser';

type Listener = (credentials: Credentials | null) => void;
const listeners = new Set<Listener>();

function storage(): Storage | undefined {
  return typeof sessionStorage === 'undefined' ? undefined : sessionStorage;
}

export function currentCredentials(): Credentials | null {
  const key = storage()?.getItem(SERVER_KEY);
  if (key) return { kind: 'server-key', key };
  const user = storage()?.getItem(SESSION_USER);
  if (user) return { kind: 'session', user };
  return null;
}

export function authHeaders(credentials: Credentials | null = currentCredentials()): Record<string, string> {
  return credentials?.kind === 'server-key' ? { authorization: `Bearer ${credentials.key}` } : {};
}

export function rememberCredentials(credentials: Credentials): void {
  if (credentials.kind === 'server-key') storage()?.setItem(SERVER_KEY, credentials.key);
  else storage()?.setItem(SESSION_USER, credentials.user);
  for (const listener of listeners) listener(credentials);
}

export function forgetCredentials(): void {
  storage()?.removeItem(SERVER_KEY);
  storage()?.removeItem(SESSION_USER);
  for (const listener of listeners) listener(null);
}

export function onCredentialsChange(listener: Listener): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}
