import crypto from 'node:crypto';
import argon2 from 'argon2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { INSTANCE_PERMISSIONS, PUBLIC, roleAllows, ROLE_PERMISSIONS, BUILT_IN_ROLES } from '../src/privacy/permissions.ts';
import { createUser, putMember, putRole } from '../src/privacy/users.ts';
import { ADMIN_TOKEN, startTestApp, type TestApp } from './support/app.ts';
import { concreteUrl, login, PASSWORD, userWithRole } from './privacy-support.ts';

const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };

describe('users, sessions and roles', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(async () => t?.close());

  it('creates users through the admin API; passwords are stored as argon2id hashes only', async () => {
    const created = await t.app.inject({ method: 'POST', url: '/admin/users', headers: admin, payload: { email: 'Ana@Example.com', name: 'Ana', password: PASSWORD } });
    expect(created.statusCode).toBe(201);
    expect(created.json()).toMatchObject({ email: 'ana@example.com', name: 'Ana', superuser: false, status: 'active' });
    const { rows } = await t.db.query<{ password_hash: string }>('select password_hash from users where email = $1', ['ana@example.com']);
    expect(rows[0]!.password_hash).toMatch(/^\$argon2id\$v=19\$m=1024,p=1,t=3\$/);
    expect(rows[0]!.password_hash).not.toContain(PASSWORD);
    const short = await t.app.inject({ method: 'POST', url: '/admin/users', headers: admin, payload: { email: 'b@example.com', password: 'short' } });
    expect(short.statusCode).toBe(400);
    expect(short.json()).toMatchObject({ field: 'password' });
    const twice = await t.app.inject({ method: 'POST', url: '/admin/users', headers: admin, payload: { email: 'ana@example.com', password: PASSWORD } });
    expect(twice.statusCode).toBe(409);
  });

  it('a password hashed with scrypt before argon2 still logs in, and that login replaces the hash with argon2id', async () => {
    const user = await createUser(t.db, { email: 'old@example.com', password: 'placeholder password' });
    const salt = crypto.randomBytes(16);
    const key = crypto.scryptSync(PASSWORD, salt, 32, { N: 1024, r: 8, p: 1 });
    const legacy = ['scrypt', 1024, 8, 1, salt.toString('base64url'), key.toString('base64url')].join('$');
    await t.db.query('update users set password_hash = $2 where id = $1', [user.id, legacy]);
    const storedHash = async () => (await t.db.query<{ password_hash: string }>('select password_hash from users where id = $1', [user.id])).rows[0]!.password_hash;

    const wrong = await t.app.inject({ method: 'POST', url: '/v1/auth/login', payload: { email: 'old@example.com', password: 'not the password' } });
    expect(wrong.statusCode).toBe(401);
    expect(await storedHash()).toBe(legacy); // a failed login upgrades nothing

    const right = await t.app.inject({ method: 'POST', url: '/v1/auth/login', payload: { email: 'old@example.com', password: PASSWORD } });
    expect(right.statusCode).toBe(200);
    const upgraded = await storedHash();
    expect(upgraded).toMatch(/^\$argon2id\$/);
    expect(await argon2.verify(upgraded, PASSWORD)).toBe(true);

    // The new hash is the one checked from now on; a second login leaves it as it is.
    await login(t.app, 'old@example.com');
    expect(await storedHash()).toBe(upgraded);
    const wrongAfter = await t.app.inject({ method: 'POST', url: '/v1/auth/login', payload: { email: 'old@example.com', password: 'not the password' } });
    expect(wrongAfter.statusCode).toBe(401);
  });

  it('a login rehashes an argon2id hash made at a lower cost than today\'s', async () => {
    const user = await createUser(t.db, { email: 'cheap@example.com', password: 'placeholder password' });
    const cheap = await argon2.hash(PASSWORD, { type: argon2.argon2id, memoryCost: 512, timeCost: 2, parallelism: 1 });
    await t.db.query('update users set password_hash = $2 where id = $1', [user.id, cheap]);
    await login(t.app, 'cheap@example.com');
    const { rows } = await t.db.query<{ password_hash: string }>('select password_hash from users where id = $1', [user.id]);
    expect(rows[0]!.password_hash).toMatch(/^\$argon2id\$v=19\$m=1024,p=1,t=3\$/);
  });

  it('logs in with a HttpOnly, SameSite=Strict cookie; the session names the user and their workspaces', async () => {
    const user = await createUser(t.db, { email: 'lee@example.com', password: PASSWORD });
    await putMember(t.db, t.workspace.id, user.id, 'analyst');
    const response = await t.app.inject({ method: 'POST', url: '/v1/auth/login', payload: { email: 'LEE@example.com', password: PASSWORD } });
    expect(response.statusCode).toBe(200);
    const cookie = String(response.headers['set-cookie']);
    expect(cookie).toMatch(/^tp_session=[\w-]{40,};/);
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/SameSite=Strict/);
    expect(cookie).toMatch(/Secure/);
    expect(response.json()).toMatchObject({ kind: 'user', user: { email: 'lee@example.com' }, workspaces: [{ slug: 'acme', role: 'analyst' }] });
    const token = cookie.split(';')[0]!.split('=')[1]!;
    const stored = await t.db.query('select 1 from user_sessions where token_hash = $1', [Buffer.from(token)]);
    expect(stored.rowCount).toBe(0); // only the hash is kept
    const session = await t.app.inject({ method: 'GET', url: '/v1/auth/session', headers: { cookie: cookie.split(';')[0]! } });
    expect(session.json()).toMatchObject({ kind: 'user', user: { email: 'lee@example.com' } });
  });

  it('refuses wrong passwords and unknown users alike, and locks the account after 5 failures', async () => {
    await createUser(t.db, { email: 'max@example.com', password: PASSWORD });
    const unknown = await t.app.inject({ method: 'POST', url: '/v1/auth/login', payload: { email: 'nobody@example.com', password: PASSWORD } });
    expect(unknown.statusCode).toBe(401);
    expect(unknown.json()).toEqual({ error: 'invalid_credentials', message: 'Wrong email or password' });
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) {
      statuses.push((await t.app.inject({ method: 'POST', url: '/v1/auth/login', payload: { email: 'max@example.com', password: 'wrong password!' } })).statusCode);
    }
    expect(statuses).toEqual([401, 401, 401, 401, 423]);
    const locked = await t.app.inject({ method: 'POST', url: '/v1/auth/login', payload: { email: 'max@example.com', password: PASSWORD } });
    expect(locked.statusCode).toBe(423);
    expect(Number(locked.headers['retry-after'])).toBeGreaterThan(800);
    const users = (await t.app.inject({ method: 'GET', url: '/admin/users', headers: admin })).json() as { items: Array<{ id: string; email: string; lockedUntil: string | null }> };
    const max = users.items.find((user) => user.email === 'max@example.com')!;
    expect(max.lockedUntil).not.toBeNull();
    const unlocked = await t.app.inject({ method: 'PATCH', url: `/admin/users/${max.id}`, headers: admin, payload: { unlock: true } });
    expect(unlocked.json()).toMatchObject({ lockedUntil: null });
    await login(t.app, 'max@example.com');
  });

  it('demands the CSRF token on changes made with a session', async () => {
    const session = await userWithRole(t.app, t.db, t.workspace.id, 'marketer');
    const payload = { key: 'csrf-check', name: 'CSRF check', kind: 'realtime', text: 'trait.plan = "pro"' };
    const without = await t.app.inject({ method: 'POST', url: '/v1/segments', headers: { cookie: session.cookie }, payload });
    expect(without.statusCode).toBe(403);
    expect(without.json()).toMatchObject({ error: 'csrf' });
    const wrong = await t.app.inject({ method: 'POST', url: '/v1/segments', headers: { cookie: session.cookie, 'x-csrf-token': 'forged' }, payload });
    expect(wrong.statusCode).toBe(403);
    const read = await t.app.inject({ method: 'GET', url: '/v1/segments', headers: { cookie: session.cookie } });
    expect(read.statusCode).toBe(200); // reads need no token
    const withToken = await t.app.inject({ method: 'POST', url: '/v1/segments', headers: session.headers(), payload });
    expect(withToken.json()).not.toMatchObject({ error: 'csrf' });
    expect(withToken.statusCode).toBe(201);
  });

  it('logout ends the session; a disabled user is refused at once', async () => {
    const session = await userWithRole(t.app, t.db, t.workspace.id, 'viewer');
    expect((await t.app.inject({ method: 'GET', url: '/v1/segments', headers: session.headers() })).statusCode).toBe(200);
    expect((await t.app.inject({ method: 'POST', url: '/v1/auth/logout', headers: session.headers() })).statusCode).toBe(204);
    expect((await t.app.inject({ method: 'GET', url: '/v1/segments', headers: session.headers() })).statusCode).toBe(401);
    const other = await userWithRole(t.app, t.db, t.workspace.id, 'viewer');
    await t.app.inject({ method: 'PATCH', url: `/admin/users/${other.userId}`, headers: admin, payload: { status: 'disabled' } });
    expect((await t.app.inject({ method: 'GET', url: '/v1/segments', headers: other.headers() })).statusCode).toBe(401);
  });

  it('keeps a member out of workspaces they do not belong to', async () => {
    const beta = await t.addWorkspace('beta');
    const session = await userWithRole(t.app, t.db, t.workspace.id, 'owner');
    const elsewhere = await t.app.inject({ method: 'GET', url: '/v1/segments', headers: session.headers('beta') });
    expect(elsewhere.statusCode).toBe(403);
    const viaPath = await t.app.inject({ method: 'GET', url: `/admin/workspaces/${beta.workspace.id}/sources`, headers: session.headers() });
    expect(viaPath.statusCode).toBe(403);
    expect((await t.app.inject({ method: 'GET', url: '/admin/workspaces/acme/sources', headers: session.headers() })).statusCode).toBe(200);
  });

  it('custom roles: created with permission patterns, enforced, refused while held', async () => {
    const role = await t.app.inject({
      method: 'PUT',
      url: '/admin/workspaces/acme/roles/segment-editor',
      headers: admin,
      payload: { name: 'Segment editor', permissions: ['segments.*'] },
    });
    expect(role.statusCode).toBe(200);
    const bad = await t.app.inject({ method: 'PUT', url: '/admin/workspaces/acme/roles/x', headers: admin, payload: { name: 'X', permissions: ['not a pattern'] } });
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toMatchObject({ field: 'permissions' });
    const builtIn = await t.app.inject({ method: 'PUT', url: '/admin/workspaces/acme/roles/viewer', headers: admin, payload: { name: 'X', permissions: ['*'] } });
    expect(builtIn.statusCode).toBe(409);
    const session = await userWithRole(t.app, t.db, t.workspace.id, 'segment-editor');
    expect((await t.app.inject({ method: 'GET', url: '/v1/segments', headers: session.headers() })).statusCode).toBe(200);
    expect((await t.app.inject({ method: 'GET', url: '/v1/profiles', headers: session.headers() })).statusCode).toBe(403);
    expect((await t.app.inject({ method: 'DELETE', url: '/admin/workspaces/acme/roles/segment-editor', headers: admin })).statusCode).toBe(409);
    const roles = (await t.app.inject({ method: 'GET', url: '/admin/workspaces/acme/roles', headers: admin })).json() as { items: Array<{ key: string; builtIn: boolean }> };
    expect(roles.items.map((item) => item.key)).toEqual([...BUILT_IN_ROLES, 'segment-editor']);
  });

  it('only owners hand out the owner role', async () => {
    const adminUser = await userWithRole(t.app, t.db, t.workspace.id, 'admin');
    const target = await createUser(t.db, { email: 'target@example.com', password: PASSWORD });
    const promote = await t.app.inject({ method: 'PUT', url: `/admin/workspaces/acme/members/${target.id}`, headers: adminUser.headers(), payload: { role: 'owner' } });
    expect(promote.statusCode).toBe(403);
    const asMarketer = await t.app.inject({ method: 'PUT', url: `/admin/workspaces/acme/members/${target.id}`, headers: adminUser.headers(), payload: { role: 'marketer' } });
    expect(asMarketer.statusCode).toBe(200);
    const owner = await userWithRole(t.app, t.db, t.workspace.id, 'owner');
    const byOwner = await t.app.inject({ method: 'PUT', url: `/admin/workspaces/acme/members/${target.id}`, headers: owner.headers(), payload: { role: 'owner' } });
    expect(byOwner.json()).toMatchObject({ role: 'owner' });
    const unknownRole = await t.app.inject({ method: 'PUT', url: `/admin/workspaces/acme/members/${target.id}`, headers: owner.headers(), payload: { role: 'nope' } });
    expect(unknownRole.statusCode).toBe(400);
  });

  it('role matrix: every route × every built-in role and a custom role answers as the role permits', async () => {
    await putRole(t.db, t.workspace.id, 'matrix-custom', { name: 'Custom', permissions: ['profiles.read', 'destinations.*'] });
    const roles: Record<string, string[]> = { ...Object.fromEntries(BUILT_IN_ROLES.map((role) => [role, ROLE_PERMISSIONS[role].permissions])), 'matrix-custom': ['profiles.read', 'destinations.*'] };
    const wrong: string[] = [];
    let checked = 0;
    for (const [role, permissions] of Object.entries(roles)) {
      const session = await userWithRole(t.app, t.db, t.workspace.id, role);
      for (const route of t.app.registeredRoutes) {
        const permission = route.permission!;
        if (permission === PUBLIC || route.method === 'OPTIONS' || permission === 'events.write' || permission === 'visitor.read') continue;
        if (route.url === '/v1/auth/logout' || route.url === '/v1/auth/password') continue; // would end the session under test
        const expected = permission === 'authenticated' || (!INSTANCE_PERMISSIONS.has(permission) && roleAllows(permissions, permission));
        const response = await t.app.inject({ method: route.method as 'GET', url: concreteUrl(route, t.workspace.slug), headers: session.headers(t.workspace.slug) });
        const error = response.body && String(response.headers['content-type']).startsWith('application/json') ? (response.json() as { error?: string }).error : undefined;
        // HEAD answers carry no body: any 403 there is the hook's.
        const refused = response.statusCode === 401 || (response.statusCode === 403 && (route.method === 'HEAD' || error === 'forbidden' || error === 'csrf'));
        if (refused === expected && !(route.url.includes('/members/') && response.statusCode === 403)) {
          wrong.push(`${role} ${route.method} ${route.url} ('${permission}'): expected ${expected ? 'allowed' : 'refused'}, got ${response.statusCode} ${response.body.slice(0, 120)}`);
        }
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(400);
    expect(wrong, wrong.join('\n')).toEqual([]);
  }, 300_000); // every route of every module, once per role: minutes on a busy 2-core machine
});
