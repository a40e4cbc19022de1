import type { FastifyRequest } from 'fastify';
import type { Db } from '../storage/database.ts';
import { resolveKey, touchKey, type ResolvedKey } from '../workspaces/store.ts';
import { ApiError } from './errors.ts';

const CACHE_MS = 2_000;
// A key in use is looked up again this long before its entry expires, so requests find it fresh.
const REFRESH_AHEAD_MS = 500;

/**
 * Resolves presented keys with a short cache: collection requests arrive hundreds of times a
 * second with the same key. Admin changes in this process clear it at once; changes made by
 * another process (the CLI) take effect within CACHE_MS (an entry is never answered past it).
 * One lookup per key at a time, started before the entry expires: before, every request arriving
 * between the expiry and the lookup's answer made its own lookup (at 1,000 decides/s a burst of
 * queries through the pool every 2 s, with every request waiting on it).
 */
export function createKeyResolver(db: Db, lookup: (db: Db, key: string) => Promise<ResolvedKey | null> = resolveKey) {
  const cache = new Map<string, { value: ResolvedKey | null; until: number }>();
  const inflight = new Map<string, Promise<ResolvedKey | null>>();
  let generation = 0;
  const refresh = (key: string): Promise<ResolvedKey | null> => {
    const running = inflight.get(key);
    if (running) return running;
    const startedIn = generation;
    const now = Date.now();
    const looked = lookup(db, key)
      .then((value) => {
        // An invalidate() while this lookup ran: its answer may predate the change.
        if (startedIn === generation) {
          if (cache.size > 10_000) cache.clear();
          const expires = value?.expiresAt?.getTime() ?? Infinity;
          cache.set(key, { value, until: Math.min(now + CACHE_MS, expires) });
        }
        if (value) void touchKey(db, value.workspaceId, value.keyId).catch(() => undefined);
        return value;
      })
      .finally(() => inflight.delete(key));
    inflight.set(key, looked);
    return looked;
  };
  return {
    async resolve(key: string): Promise<ResolvedKey | null> {
      const now = Date.now();
      const hit = cache.get(key);
      if (hit && hit.until > now) {
        if (hit.until - now < REFRESH_AHEAD_MS) void refresh(key).catch(() => undefined);
        return hit.value;
      }
      return refresh(key);
    },
    invalidate(): void {
      generation++;
      cache.clear();
      inflight.clear();
    },
  };
}
export type KeyResolver = ReturnType<typeof createKeyResolver>;

function basicUsername(header: string | undefined): string | undefined {
  if (!header?.startsWith('Basic ')) return undefined;
  const decoded = Buffer.from(header.slice(6), 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return (colon === -1 ? decoded : decoded.slice(0, colon)) || undefined;
}

function bearer(header: string | undefined): string | undefined {
  return header?.startsWith('Bearer ') ? header.slice(7).trim() || undefined : undefined;
}

/** Segment clients send the write key as the Basic username, in `X-Write-Key`, or as `writeKey` in the body. */
export function presentedWriteKey(request: FastifyRequest, body: unknown): string | undefined {
  const fromBasic = basicUsername(request.headers.authorization);
  if (fromBasic) return fromBasic;
  const header = request.headers['x-write-key'];
  if (typeof header === 'string' && header) return header;
  if (body && typeof body === 'object' && typeof (body as { writeKey?: unknown }).writeKey === 'string') {
    return (body as { writeKey: string }).writeKey;
  }
  return undefined;
}

/** A secret key for the read APIs: `Authorization: Bearer <key>` or Basic with the key as username. */
export function presentedSecret(request: FastifyRequest): string | undefined {
  return bearer(request.headers.authorization) ?? basicUsername(request.headers.authorization);
}

/**
 * The workspace a read/write API request acts for. Once the access-control hook
 * (privacy/access.ts) has authorised the request, its caller is used: a key as itself, a user
 * or the admin token as a server key of the workspace it named.
 */
export async function requireServerKey(resolver: KeyResolver, request: FastifyRequest): Promise<ResolvedKey> {
  const access = request.access;
  if (access) {
    if (access.principal.kind === 'key') return access.principal.key;
    if (!access.workspaceId) {
      throw new ApiError(400, 'workspace_required', 'Name the workspace in the X-Touchpoint-Workspace header', 'x-touchpoint-workspace');
    }
    return {
      keyId: access.principal.kind === 'user' ? `user:${access.principal.user.userId}` : 'admin',
      workspaceId: access.workspaceId,
      sourceId: null,
      kind: 'server',
      rateLimitPerSecond: null,
      expiresAt: null,
      permissions: null,
      // Only collection reads these, and collection always resolves the presented write key itself.
      collection: { requireConsent: false, consentCategories: [] },
    };
  }
  const key = presentedSecret(request);
  if (!key) throw new ApiError(401, 'unauthorized', 'A server key is required (Authorization: Bearer <key>)');
  const resolved = await resolver.resolve(key);
  if (!resolved) throw new ApiError(401, 'unauthorized', 'Unknown, disabled or expired key');
  if (resolved.kind !== 'server') throw new ApiError(403, 'forbidden', 'Write keys can only send events; use a server key to read');
  return resolved;
}

/** Admin routes: passes once the access-control hook has authorised the request for the route's permission. */
export function requireAdmin(verify: (token: string) => boolean, request: FastifyRequest): void {
  if (request.access) return;
  const token = bearer(request.headers.authorization);
  if (!token) throw new ApiError(401, 'unauthorized', 'The admin token is required (Authorization: Bearer <token>)');
  if (!verify(token)) throw new ApiError(401, 'unauthorized', 'Invalid admin token');
}
