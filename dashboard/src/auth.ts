/**
 * Who the dashboard acts as, in one place:
 * - a user session: POST /v1/auth/login set an HttpOnly cookie (the browser sends it) and returned
 *   a CSRF token, sent as X-CSRF-Token on every change; the chosen workspace goes in
 *   X-Touchpoint-Workspace. Only the CSRF token and the user's name are kept (sessionStorage).
 * - a workspace server key, typed at login, sent as a bearer token (for instances without users
 *   yet, and for scripts' owners). Kept in sessionStorage: gone when the tab closes.
 */
export interface WorkspaceMembership {
  id: string;
  slug: string;
  name: string;
  role: string;
}

export type Credentials =
  | { kind: 'server-key'; key: string }
  | { kind: 'session'; email: string; name: string; csrfToken: string; superuser: boolean; workspaces: WorkspaceMembership[]; workspace: string | null };

const STORAGE_KEY = 'touchpoint.credentials';

type Listener = (credentials: Credentials | null) => void;
const listeners = new Set<Listener>();

function storage(): Storage | undefined {
  return typeof sessionStorage === 'undefined' ? undefined : sessionStorage;
}

export function currentCredentials(): Credentials | null {
  const stored = storage()?.getItem(STORAGE_KEY);
  // The bench and older tabs set only the key.
  const legacyKey = storage()?.getItem('touchpoint.serverKey');
  if (!stored) return legacyKey ? { kind: 'server-key', key: legacyKey } : null;
  try {
    const value = JSON.parse(stored) as Credentials;
    return value.kind === 'server-key' || value.kind === 'session' ? value : null;
  } catch {
    return null;
  }
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** Headers that authorise one request (the session cookie itself is sent by the browser). */
export function authHeaders(method = 'GET', credentials: Credentials | null = currentCredentials()): Record<string, string> {
  if (!credentials) return {};
  if (credentials.kind === 'server-key') return { authorization: `Bearer ${credentials.key}` };
  const headers: Record<string, string> = {};
  if (credentials.workspace) headers['x-touchpoint-workspace'] = credentials.workspace;
  if (!SAFE_METHODS.has(method.toUpperCase())) headers['x-csrf-token'] = credentials.csrfToken;
  return headers;
}

export function rememberCredentials(credentials: Credentials): void {
  storage()?.setItem(STORAGE_KEY, JSON.stringify(credentials));
  for (const listener of listeners) listener(credentials);
}

export function forgetCredentials(): void {
  storage()?.removeItem(STORAGE_KEY);
  storage()?.removeItem('touchpoint.serverKey');
  for (const listener of listeners) listener(null);
}

export function onCredentialsChange(listener: Listener): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

/** The role in the current workspace: null for a server key or a superuser (all rights). */
export function currentRole(credentials: Credentials | null = currentCredentials()): string | null {
  if (!credentials || credentials.kind === 'server-key' || credentials.superuser) return null;
  return credentials.workspaces.find((w) => w.id === credentials.workspace || w.slug === credentials.workspace)?.role ?? null;
}

/** Whether the current user may change things (viewers may not); the server decides in the end. */
export function canChange(credentials: Credentials | null = currentCredentials()): boolean {
  return currentRole(credentials) !== 'viewer';
}

/** The workspace the admin-style paths (/admin/workspaces/{workspace}/…) name: the chosen one, or a user's only one. */
export function currentWorkspace(credentials: Credentials | null = currentCredentials()): string | null {
  if (!credentials || credentials.kind === 'server-key') return null;
  return credentials.workspace ?? (credentials.workspaces.length === 1 ? credentials.workspaces[0]!.id : null);
}
