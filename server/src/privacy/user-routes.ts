import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import { ErrorResponseSchema } from '../api/error-schema.ts';
import { ApiError } from '../api/errors.ts';
import { strictValidatorCompiler } from '../api/validation.ts';
import type { Db } from '../storage/database.ts';
import { getWorkspace } from '../workspaces/store.ts';
import { actorOf } from './access.ts';
import { assertMayGrant, roleGrant } from './grants.ts';
import { createSession, endSession, endUserSessions, SESSION_COOKIE, SESSION_IDLE_MS, sessionCookie } from './sessions.ts';
import {
  attemptLogin,
  changePassword,
  createUser,
  CreateUserSchema,
  deleteRole,
  getUser,
  listMembers,
  listRoles,
  listUsers,
  MemberSchema,
  memberRole,
  PutMemberSchema,
  putMember,
  putRole,
  PutRoleSchema,
  removeMember,
  RoleSchema,
  updateUser,
  UpdateUserSchema,
  UserSchema,
  workspacesOf,
} from './users.ts';

const errors = (...codes: number[]) => Object.fromEntries(codes.map((code) => [code, ErrorResponseSchema]));
const docs = <S extends object>(summary: string, schema: S) => ({ summary, tags: ['users'], ...schema });
const list = <T extends Parameters<typeof Type.Array>[0]>(item: T) => Type.Object({ items: Type.Array(item) });

const WorkspaceParams = Type.Object({ workspace: Type.String({ minLength: 1, description: 'Workspace id or slug' }) });
const UserParams = Type.Object({ userId: Type.String({ format: 'uuid' }) });
const MemberParams = Type.Composite([WorkspaceParams, UserParams]);
const RoleParams = Type.Composite([WorkspaceParams, Type.Object({ role: Type.String({ minLength: 1, maxLength: 63 }) })]);

const LoginSchema = Type.Object({ email: Type.String({ minLength: 1, maxLength: 320 }), password: Type.String({ minLength: 1, maxLength: 256 }) }, { additionalProperties: false });
const WorkspaceMembershipSchema = Type.Object({ id: Type.String(), slug: Type.String(), name: Type.String(), role: Type.String() });
const SessionSchema = Type.Object({
  kind: Type.String({ description: "'user', 'server_key', 'write_key' or 'admin_token'" }),
  user: Type.Optional(UserSchema),
  workspaces: Type.Array(WorkspaceMembershipSchema),
  csrfToken: Type.Optional(Type.String({ description: 'Send as X-CSRF-Token with every change made with this session; returned at login only' })),
});
const ChangePasswordSchema = Type.Object(
  { currentPassword: Type.String({ minLength: 1, maxLength: 256 }), newPassword: Type.String({ minLength: 12, maxLength: 256 }) },
  { additionalProperties: false },
);

/** Whether the caller may hand out or take away the owner role: owners, superusers and the admin token. */
async function mayManageOwners(db: Db, request: FastifyRequest, workspaceId: string): Promise<boolean> {
  const principal = request.access?.principal;
  if (!principal) return false;
  if (principal.kind === 'admin') return true;
  if (principal.kind === 'user') return principal.user.superuser || (await memberRole(db, workspaceId, principal.user.userId)) === 'owner';
  return principal.key.permissions?.includes('*') ?? false;
}

/**
 * Dashboard users: login/logout/session (`/v1/auth/*`), instance user management
 * (`/admin/users`, admin token or superusers), and per-workspace members and custom roles.
 */
export const userRoutes: FastifyPluginAsyncTypebox<{ db: Db }> = async (app, { db }) => {
  app.setValidatorCompiler(strictValidatorCompiler);

  // ---- sessions ------------------------------------------------------------------------------
  app.post(
    '/v1/auth/login',
    {
      config: { permission: 'public', audit: 'always' },
      schema: docs('Log in with email and password; sets an HttpOnly session cookie and returns the CSRF token', {
        body: LoginSchema,
        response: { 200: SessionSchema, ...errors(400, 401, 423) },
      }),
    },
    async (request, reply) => {
      const outcome = await attemptLogin(db, request.body.email, request.body.password);
      request.auditActor = { kind: 'user', id: outcome.ok ? outcome.user.id : 'unknown', label: request.body.email.toLowerCase() };
      if (!outcome.ok && outcome.reason === 'locked') {
        throw new ApiError(423, 'locked', `Too many failed logins; try again in ${Math.ceil(outcome.retryAfterSeconds / 60)} minutes`, undefined, {
          'retry-after': String(outcome.retryAfterSeconds),
        });
      }
      if (!outcome.ok) throw new ApiError(401, 'invalid_credentials', 'Wrong email or password');
      const session = await createSession(db, outcome.user.id, { ip: request.ip, userAgent: request.headers['user-agent'] });
      reply.header('set-cookie', sessionCookie(session.token, SESSION_IDLE_MS / 1000));
      return { kind: 'user', user: outcome.user, workspaces: await workspacesOf(db, outcome.user.id), csrfToken: session.csrfToken };
    },
  );

  app.post(
    '/v1/auth/logout',
    { config: { permission: 'authenticated' }, schema: docs('End this session', { response: { 204: Type.Null(), ...errors(401, 403) } }) },
    async (request, reply) => {
      const principal = request.access!.principal;
      if (principal.kind === 'user') await endSession(db, principal.user.tokenHash);
      reply.header('set-cookie', `${SESSION_COOKIE}=; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=0`);
      return reply.code(204).send(null);
    },
  );

  app.get(
    '/v1/auth/session',
    { config: { permission: 'authenticated' }, schema: docs('Who is calling, and the workspaces they belong to', { response: { 200: SessionSchema, ...errors(401) } }) },
    async (request) => {
      const principal = request.access!.principal;
      if (principal.kind !== 'user') return { kind: actorOf(principal).kind, workspaces: [] };
      return { kind: 'user', user: await getUser(db, principal.user.userId), workspaces: await workspacesOf(db, principal.user.userId) };
    },
  );

  app.post(
    '/v1/auth/password',
    {
      config: { permission: 'authenticated' },
      schema: docs('Change your password; your other sessions end', { body: ChangePasswordSchema, response: { 204: Type.Null(), ...errors(400, 401, 403) } }),
    },
    async (request, reply) => {
      const principal = request.access!.principal;
      if (principal.kind !== 'user') throw new ApiError(400, 'invalid_request', 'Only a logged-in user has a password to change');
      const changed = await withPasswordField(() => changePassword(db, principal.user.userId, request.body.currentPassword, request.body.newPassword));
      if (!changed) throw new ApiError(403, 'invalid_credentials', 'The current password is wrong', 'currentPassword');
      await endUserSessions(db, principal.user.userId);
      const session = await createSession(db, principal.user.userId, { ip: request.ip, userAgent: request.headers['user-agent'] });
      reply.header('set-cookie', sessionCookie(session.token, SESSION_IDLE_MS / 1000));
      reply.header('x-csrf-token', session.csrfToken);
      return reply.code(204).send(null);
    },
  );

  // ---- instance users ------------------------------------------------------------------------
  app.post(
    '/admin/users',
    { config: { permission: 'users.create' }, schema: docs('Create a dashboard user', { body: CreateUserSchema, response: { 201: UserSchema, ...errors(400, 401, 403, 409) } }) },
    async (request, reply) => reply.code(201).send(await withPasswordField(() => createUser(db, request.body))),
  );

  app.get(
    '/admin/users',
    { config: { permission: 'users.list' }, schema: docs('List dashboard users', { response: { 200: list(UserSchema), ...errors(401, 403) } }) },
    async () => ({ items: await listUsers(db) }),
  );

  app.patch(
    '/admin/users/:userId',
    {
      config: { permission: 'users.manage' },
      schema: docs('Rename, disable, reset the password of, unlock, or make superuser a user', {
        params: UserParams,
        body: UpdateUserSchema,
        response: { 200: UserSchema, ...errors(400, 401, 403, 404) },
      }),
    },
    async (request) => {
      const user = await withPasswordField(() => updateUser(db, request.params.userId, request.body));
      if (request.body.status === 'disabled' || request.body.password !== undefined) await endUserSessions(db, user.id);
      return user;
    },
  );

  // ---- members and roles ---------------------------------------------------------------------
  app.get(
    '/admin/workspaces/:workspace/members',
    { config: { permission: 'members.read' }, schema: docs('Members of a workspace and their roles', { params: WorkspaceParams, response: { 200: list(MemberSchema), ...errors(401, 403, 404) } }) },
    async (request) => ({ items: await listMembers(db, (await getWorkspace(db, request.params.workspace)).id) }),
  );

  app.put(
    '/admin/workspaces/:workspace/members/:userId',
    {
      config: { permission: 'members.write' },
      schema: docs('Add a user to a workspace or change their role', { params: MemberParams, body: PutMemberSchema, response: { 200: MemberSchema, ...errors(400, 401, 403, 404) } }),
    },
    async (request) => {
      const workspace = await getWorkspace(db, request.params.workspace);
      const current = await memberRole(db, workspace.id, request.params.userId);
      if ((request.body.role === 'owner' || current === 'owner') && !(await mayManageOwners(db, request, workspace.id))) {
        throw new ApiError(403, 'forbidden', 'Only owners may grant or take away the owner role', 'role');
      }
      const roles = await listRoles(db, workspace.id);
      const granted = roles.find((role) => role.key === request.body.role);
      if (granted) assertMayGrant(request, roleGrant(granted.permissions), granted.permissions, `give the role '${granted.key}'`, 'role');
      const held = current === null ? undefined : roles.find((role) => role.key === current);
      if (held) assertMayGrant(request, roleGrant(held.permissions), held.permissions, `change the role of a member holding '${held.key}'`, 'role');
      return withRoleField(() => putMember(db, workspace.id, request.params.userId, request.body.role));
    },
  );

  app.delete(
    '/admin/workspaces/:workspace/members/:userId',
    { config: { permission: 'members.write' }, schema: docs('Remove a user from a workspace', { params: MemberParams, response: { 204: Type.Null(), ...errors(401, 403, 404) } }) },
    async (request, reply) => {
      const workspace = await getWorkspace(db, request.params.workspace);
      if ((await memberRole(db, workspace.id, request.params.userId)) === 'owner' && !(await mayManageOwners(db, request, workspace.id))) {
        throw new ApiError(403, 'forbidden', 'Only owners may remove an owner');
      }
      const current = await memberRole(db, workspace.id, request.params.userId);
      const held = current === null ? undefined : (await listRoles(db, workspace.id)).find((role) => role.key === current);
      if (held) assertMayGrant(request, roleGrant(held.permissions), held.permissions, `remove a member holding '${held.key}'`, 'role');
      await removeMember(db, workspace.id, request.params.userId);
      return reply.code(204).send(null);
    },
  );

  app.get(
    '/admin/workspaces/:workspace/roles',
    { config: { permission: 'roles.read' }, schema: docs('Built-in and custom roles with their permissions', { params: WorkspaceParams, response: { 200: list(RoleSchema), ...errors(401, 403, 404) } }) },
    async (request) => ({ items: await listRoles(db, (await getWorkspace(db, request.params.workspace)).id) }),
  );

  app.put(
    '/admin/workspaces/:workspace/roles/:role',
    {
      config: { permission: 'roles.write' },
      schema: docs('Create or replace a custom role', { params: RoleParams, body: PutRoleSchema, response: { 200: RoleSchema, ...errors(400, 401, 403, 404, 409) } }),
    },
    async (request) => {
      const workspace = await getWorkspace(db, request.params.workspace);
      const { permissions } = request.body;
      assertMayGrant(request, roleGrant(permissions), permissions, `define role '${request.params.role}' this way`, 'permissions');
      const existing = (await listRoles(db, workspace.id)).find((role) => role.key === request.params.role && !role.builtIn);
      if (existing) assertMayGrant(request, roleGrant(existing.permissions), existing.permissions, `change role '${existing.key}'`, 'role');
      return withField('permissions', () => putRole(db, workspace.id, request.params.role, request.body));
    },
  );

  app.delete(
    '/admin/workspaces/:workspace/roles/:role',
    { config: { permission: 'roles.write' }, schema: docs('Delete a custom role no member holds', { params: RoleParams, response: { 204: Type.Null(), ...errors(401, 403, 404, 409) } }) },
    async (request, reply) => {
      await deleteRole(db, (await getWorkspace(db, request.params.workspace)).id, request.params.role);
      return reply.code(204).send(null);
    },
  );
};

async function withField<T>(field: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof RangeError) throw new ApiError(400, 'invalid_request', error.message, field);
    throw error;
  }
}
const withPasswordField = <T>(work: () => Promise<T>) => withField('password', work);
const withRoleField = <T>(work: () => Promise<T>) => withField('role', work);
