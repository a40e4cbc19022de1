import type { FastifyInstance } from 'fastify';
import type { RegisteredRoute } from '../src/privacy/access.ts';
import type { Db } from '../src/storage/database.ts';
import { createUser, putMember } from '../src/privacy/users.ts';

// Passwords are hashed with little memory in tests (the production cost spends ~100 ms each).
process.env.TOUCHPOINT_ARGON2_MEMORY_KIB ??= '1024';

export const PASSWORD = 'correct horse battery staple';
const DUMMY_ID = '00000000-0000-4000-8000-000000000000';

/** A concrete URL for a route pattern: `:workspace` names the given workspace, other parameters a dummy id. */
export function concreteUrl(route: RegisteredRoute, workspace: string): string {
  return route.url.replace(/:workspace\b/, workspace).replace(/:[A-Za-z]+/g, DUMMY_ID).replace(/\*$/, 'x');
}

export interface Session {
  userId: string;
  cookie: string;
  csrfToken: string;
  /** Headers for a request made with this session (cookie, CSRF token, workspace). */
  headers(workspace?: string): Record<string, string>;
}

export async function login(app: FastifyInstance, email: string, password = PASSWORD): Promise<Session> {
  const response = await app.inject({ method: 'POST', url: '/v1/auth/login', payload: { email, password } });
  if (response.statusCode !== 200) throw new Error(`login failed: ${response.statusCode} ${response.body}`);
  const cookie = String(response.headers['set-cookie']).split(';')[0]!;
  const body = response.json() as { csrfToken: string; user: { id: string } };
  return {
    userId: body.user.id,
    cookie,
    csrfToken: body.csrfToken,
    headers: (workspace) => ({ cookie, 'x-csrf-token': body.csrfToken, ...(workspace ? { 'x-touchpoint-workspace': workspace } : {}) }),
  };
}

/** A user who is a member of the workspace with the role, logged in. */
export async function userWithRole(app: FastifyInstance, db: Db, workspaceId: string, role: string, email = `${role}-${Math.random().toString(36).slice(2, 8)}@example.com`): Promise<Session> {
  const user = await createUser(db, { email, password: PASSWORD });
  await putMember(db, workspaceId, user.id, role);
  return login(app, email);
}
