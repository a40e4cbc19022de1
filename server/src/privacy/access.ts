import { Readable, Transform } from 'node:stream';
import type { FastifyInstance, FastifyRequest, RouteOptions } from 'fastify';
import { presentedSecret, presentedWriteKey, type KeyResolver } from '../api/auth.ts';
import { ApiError } from '../api/errors.ts';
import type { Db } from '../storage/database.ts';
import type { ResolvedKey } from '../workspaces/store.ts';
import { registerAudit } from './audit.ts';
import { registerPiiOpening } from './pii-answers.ts';
import { MASKED_PERMISSIONS, maskPersonalData, maskText } from './masking.ts';
import {
  AUTHENTICATED,
  BUILT_IN_ROLES,
  INSTANCE_PERMISSIONS,
  isPermission,
  keyAllows,
  PII_READ,
  PUBLIC,
  ROLE_PERMISSIONS,
  roleAllows,
  type BuiltInRole,
} from './permissions.ts';
import { CSRF_HEADER, csrfMatches, readCookie, resolveSession, SESSION_COOKIE, type SessionUser } from './sessions.ts';

/** What a route declares in its Fastify config. */
export interface AccessConfig {
  /** '<area>.<action>', 'public' or 'authenticated'. Required on every route. */
  permission?: string;
  /** Collection routes: the write key may arrive in the JSON body, so it is checked once the body is read. */
  credentialsInBody?: boolean;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    permission?: string;
    credentialsInBody?: boolean;
    /** Browser GETs without custom headers: a write key may come as ?writeKey= (never a server key). */
    credentialsInQuery?: boolean;
    /** 'always': audit even a public route (login); 'never': not even a change. Default: changes and PII reads. */
    audit?: 'always' | 'never';
  }
  interface FastifyInstance {
    /** Every route with the permission it declared, for the access-control test. */
    registeredRoutes: RegisteredRoute[];
  }
  interface FastifyRequest {
    /** Who is calling and for which workspace; set by the access-control hook on every routed request. */
    access?: Access;
    /** Set by routes that establish who is calling themselves (login), for the audit log. */
    auditActor?: { kind: string; id: string; label: string };
  }
}

export type Principal =
  | { kind: 'admin' }
  | { kind: 'key'; key: ResolvedKey; permissions: string[] | null }
  | { kind: 'user'; user: SessionUser; role: string | null; rolePermissions: string[] };

export interface Access {
  principal: Principal;
  /** The permission the route declared. */
  permission: string;
  /** The workspace the request acts on; null for instance routes and workspace-less admin calls. */
  workspaceId: string | null;
  /** Whether the caller also holds another permission in this workspace (e.g. 'pii.read'). */
  can(permission: string): boolean;
}

/** Who the audit log names: a stable id and a kind, never a secret. */
export function actorOf(principal: Principal): { kind: string; id: string; label: string } {
  switch (principal.kind) {
    case 'admin':
      return { kind: 'admin_token', id: 'admin', label: 'admin token' };
    case 'key':
      return { kind: `${principal.key.kind}_key`, id: principal.key.keyId, label: `${principal.key.kind} key ${principal.key.keyId}` };
    case 'user':
      return { kind: 'user', id: principal.user.userId, label: principal.user.email };
  }
}

/** A route as registered, for the enumeration test and `describeRoutes`. */
export interface RegisteredRoute {
  method: string;
  url: string;
  permission: string | undefined;
  /** The route's JSON schemas (params, querystring, body), for tests that fill every field. */
  schema?: { params?: unknown; querystring?: unknown; body?: unknown };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const STATE_CHANGING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
const WORKSPACE_HEADER = 'x-touchpoint-workspace';

function bearer(header: string | undefined): string | undefined {
  return header?.startsWith('Bearer ') ? header.slice(7).trim() || undefined : undefined;
}

/** Routes fastify-cors adds for preflight requests: they carry no data and cannot declare a permission. */
function isCorsPreflight(route: RouteOptions): boolean {
  return route.method === 'OPTIONS' && route.url.endsWith('*');
}

export interface AccessOptions {
  db: Db;
  keys: KeyResolver;
  verifyAdmin: (token: string) => boolean;
}

/**
 * The one access-control hook: every route declares `config.permission`; each request's caller
 * (admin token, workspace key, or a user's session cookie with a CSRF token on changes) is
 * resolved and must hold that permission in the workspace the request acts on. Routes that
 * declare nothing are closed. Must be registered before any route.
 */
export function registerAccessControl(app: FastifyInstance, options: AccessOptions): { routes: RegisteredRoute[] } {
  const { db, keys, verifyAdmin } = options;
  const routes: RegisteredRoute[] = [];
  app.decorateRequest('access', undefined);

  app.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    for (const method of methods) {
      if (isCorsPreflight({ ...route, method })) continue;
      const schema = route.schema as { params?: unknown; querystring?: unknown; body?: unknown } | undefined;
      routes.push({ method, url: route.url, permission: route.config?.permission, schema: { params: schema?.params, querystring: schema?.querystring, body: schema?.body } });
    }
  });

  async function workspaceIdOf(idOrSlug: string): Promise<string | null> {
    const { rows } = UUID.test(idOrSlug)
      ? await db.query<{ id: string }>('select id from workspaces where id = $1', [idOrSlug])
      : await db.query<{ id: string }>('select id from workspaces where slug = $1', [idOrSlug]);
    return rows[0]?.id ?? null;
  }

  async function membership(userId: string, workspaceId: string): Promise<{ role: string; permissions: string[] } | null> {
    const { rows } = await db.query<{ role: string; permissions: string[] | null }>(
      `select m.role, r.permissions
         from workspace_members m
         left join workspace_roles r on r.workspace_id = m.workspace_id and r.key = m.role
        where m.workspace_id = $1 and m.user_id = $2`,
      [workspaceId, userId],
    );
    const row = rows[0];
    if (!row) return null;
    if ((BUILT_IN_ROLES as readonly string[]).includes(row.role)) return { role: row.role, permissions: ROLE_PERMISSIONS[row.role as BuiltInRole].permissions };
    return { role: row.role, permissions: row.permissions ?? [] };
  }

  async function soleWorkspace(userId: string): Promise<string | null> {
    const { rows } = await db.query<{ workspace_id: string }>('select workspace_id from workspace_members where user_id = $1 limit 2', [userId]);
    return rows.length === 1 ? rows[0]!.workspace_id : null;
  }

  /** The workspace named by the URL (`:workspace`) or the X-Touchpoint-Workspace header. */
  async function namedWorkspace(request: FastifyRequest): Promise<{ named: boolean; id: string | null }> {
    const params = request.params as Record<string, unknown> | undefined;
    const fromParams = typeof params?.workspace === 'string' ? params.workspace : undefined;
    const header = request.headers[WORKSPACE_HEADER];
    const named = fromParams ?? (typeof header === 'string' && header ? header : undefined);
    if (!named) return { named: false, id: null };
    return { named: true, id: await workspaceIdOf(named) };
  }

  async function authorise(request: FastifyRequest, permission: string, credentialsInBody: boolean): Promise<Access> {
    const instanceWide = INSTANCE_PERMISSIONS.has(permission);
    const token = bearer(request.headers.authorization);

    // The admin token: every permission, in any workspace.
    if (token && verifyAdmin(token)) {
      const workspace = await namedWorkspace(request);
      if (workspace.named && !workspace.id) throw new ApiError(404, 'not_found', 'Workspace not found');
      return { principal: { kind: 'admin' }, permission, workspaceId: workspace.id, can: () => true };
    }

    // A workspace key: write keys from the Basic username, X-Write-Key or the body; server keys as Bearer.
    const fromQuery = request.routeOptions.config.credentialsInQuery === true;
    const presented = credentialsInBody
      ? presentedWriteKey(request, request.body)
      : (presentedSecret(request) ?? presentedWriteKey(request, fromQuery ? request.query : undefined));
    const sessionToken = readCookie(request.headers.cookie, SESSION_COOKIE);
    if (presented || !sessionToken) {
      if (!presented) {
        throw new ApiError(
          401,
          'unauthorized',
          credentialsInBody
            ? 'A write key is required: HTTP Basic username, X-Write-Key header, or writeKey in the body'
            : 'Credentials are required: Authorization: Bearer <server key or admin token>, or a session cookie',
        );
      }
      const key = await keys.resolve(presented);
      if (fromQuery && key && key.kind !== 'write' && presentedSecret(request) !== presented) {
        throw new ApiError(401, 'unauthorized', 'Only write keys may travel in the URL; send server keys as Authorization: Bearer');
      }
      if (!key) throw new ApiError(401, 'unauthorized', permission === 'events.write' ? 'Unknown or disabled write key' : 'Unknown, disabled or expired key');
      const principal: Principal = { kind: 'key', key, permissions: key.permissions };
      request.auditActor = actorOf(principal);
      const can = (wanted: string) => keyAllows(key.kind, key.permissions, wanted);
      if (instanceWide) throw new ApiError(403, 'forbidden', `Keys cannot use instance-wide permission '${permission}'; use the admin token`);
      if (!can(permission)) {
        if (permission === 'events.write') throw new ApiError(401, 'unauthorized', 'Unknown or disabled write key');
        throw new ApiError(
          403,
          'forbidden',
          key.kind === 'write' && !key.permissions
            ? `Write keys can only send events; this route needs '${permission}' (use a server key)`
            : `This key lacks the permission '${permission}'`,
        );
      }
      const workspace = await namedWorkspace(request);
      if (workspace.named && workspace.id !== key.workspaceId) throw new ApiError(403, 'forbidden', 'This key belongs to another workspace');
      return { principal, permission, workspaceId: key.workspaceId, can };
    }

    // A user's session.
    const user = await resolveSession(db, sessionToken);
    if (!user) throw new ApiError(401, 'unauthorized', 'The session has expired or was ended; log in again');
    request.auditActor = { kind: 'user', id: user.userId, label: user.email };
    if (STATE_CHANGING.has(request.method)) {
      const csrf = request.headers[CSRF_HEADER];
      if (!csrfMatches(typeof csrf === 'string' ? csrf : undefined, user.csrfHash)) {
        throw new ApiError(403, 'csrf', `Changes made with a session need the ${CSRF_HEADER} header returned at login`);
      }
    }
    const workspace = await namedWorkspace(request);
    if (workspace.named && !workspace.id) throw new ApiError(404, 'not_found', 'Workspace not found');
    if (user.superuser) {
      return { principal: { kind: 'user', user, role: null, rolePermissions: ['*'] }, permission, workspaceId: workspace.id, can: () => true };
    }
    if (permission === AUTHENTICATED) {
      return { principal: { kind: 'user', user, role: null, rolePermissions: [] }, permission, workspaceId: workspace.id, can: () => false };
    }
    if (instanceWide) throw new ApiError(403, 'forbidden', `'${permission}' is reserved to instance administrators`);
    const workspaceId = workspace.id ?? (await soleWorkspace(user.userId));
    if (!workspaceId) throw new ApiError(400, 'workspace_required', `Name the workspace in the ${WORKSPACE_HEADER} header`, WORKSPACE_HEADER);
    const member = await membership(user.userId, workspaceId);
    if (!member) throw new ApiError(403, 'forbidden', 'You are not a member of this workspace');
    const can = (wanted: string) => roleAllows(member.permissions, wanted);
    if (!can(permission)) throw new ApiError(403, 'forbidden', `Your role '${member.role}' lacks the permission '${permission}'`);
    return { principal: { kind: 'user', user, role: member.role, rolePermissions: member.permissions }, permission, workspaceId, can };
  }

  async function enforce(request: FastifyRequest, phase: 'onRequest' | 'preValidation'): Promise<void> {
    const url = request.routeOptions.url;
    if (url === undefined) return; // no route: the 404 handler answers
    const config = request.routeOptions.config;
    const credentialsInBody = config.credentialsInBody === true;
    if ((phase === 'preValidation') !== credentialsInBody) return;
    if (request.method === 'OPTIONS' && url.endsWith('*')) return; // CORS preflight
    const permission = config.permission;
    if (!permission || !isPermission(permission)) {
      throw new ApiError(
        403,
        'route_without_permission',
        `${request.method} ${url} declares no valid permission; it stays closed until its route config has permission: '<area>.<action>'`,
      );
    }
    if (permission === PUBLIC) return;
    request.access = await authorise(request, permission, credentialsInBody);
  }

  registerAudit(app, db);
  registerPiiOpening(app, db);
  registerMasking(app);
  app.addHook('onRequest', async (request) => enforce(request, 'onRequest'));
  app.addHook('preValidation', async (request) => enforce(request, 'preValidation'));
  return { routes };
}

/**
 * Answers of personal-data routes are masked for callers who may read the route but not
 * 'pii.read' (marketers, analysts, viewers; keys limited to e.g. 'profiles.read').
 */
function registerMasking(app: FastifyInstance): void {
  app.addHook('onSend', async (request, reply, payload) => {
    const access = request.access;
    if (!access || !MASKED_PERMISSIONS.has(access.permission) || access.can(PII_READ) || reply.statusCode >= 400) return payload;
    const type = String(reply.getHeader('content-type') ?? '');
    if (payload instanceof Readable) return payload.pipe(maskLines());
    if (typeof payload !== 'string') return payload;
    if (type.includes('json')) return JSON.stringify(maskPersonalData(JSON.parse(payload)));
    return maskText(payload);
  });
}

/** Masks a streamed text answer (CSV exports) line by line, so no value is split between chunks. */
function maskLines(): Transform {
  let rest = '';
  return new Transform({
    transform(chunk: Buffer | string, _encoding, done) {
      const text = rest + chunk.toString();
      const end = text.lastIndexOf('\n') + 1;
      rest = text.slice(end);
      done(null, end > 0 ? maskText(text.slice(0, end)) : '');
    },
    flush(done) {
      done(null, rest ? maskText(rest) : '');
    },
  });
}
