import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keyAllows, permissionsBeyond, roleAllows } from '../src/privacy/permissions.ts';
import { createUser, putMember, putRole } from '../src/privacy/users.ts';
import { createKey } from '../src/workspaces/store.ts';
import { ADMIN_TOKEN, startTestApp, type TestApp } from './support/app.ts';
import { userWithRole } from './privacy-support.ts';

const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };
const KNOWN = ['segments.read', 'segments.write', 'segments.export', 'profiles.read', 'keys.write', 'keys.read'];

describe('permissionsBeyond (pure)', () => {
  it('finds what a grant reaches beyond the granter, including wildcards reaching future permissions', () => {
    const granter = (p: string) => keyAllows('server', ['keys.write', 'segments.read', 'segments.write', 'segments.export'], p);
    expect(permissionsBeyond(granter, (p) => keyAllows('server', ['segments.read'], p), KNOWN, ['segments.read'])).toEqual([]);
    // Holding every segments permission of today is not holding 'segments.*'.
    expect(permissionsBeyond(granter, (p) => keyAllows('server', ['segments.*'], p), KNOWN, ['segments.*'])).toEqual(['segments.zz-future']);
    expect(permissionsBeyond(granter, (p) => keyAllows('server', ['profiles.read'], p), KNOWN, ['profiles.read'])).toEqual(['profiles.read']);
    expect(permissionsBeyond(granter, (p) => keyAllows('server', ['pii.read'], p), KNOWN, ['pii.read'])).toEqual(['pii.read']);
    // A default server key reaches every data area, present and future.
    expect(permissionsBeyond(granter, (p) => keyAllows('server', null, p), KNOWN, null)).toContain('zz-future.zz-future');
    const everything = () => true;
    expect(permissionsBeyond(everything, (p) => keyAllows('server', ['*'], p), KNOWN, ['*'])).toEqual([]);
    // Roles: '*.read' grants no governance reads nor pii.read, so a '*.read' holder may grant it.
    const reader = (p: string) => roleAllows(['*.read', 'members.write'], p);
    expect(permissionsBeyond(reader, (p) => roleAllows(['*.read'], p), KNOWN, ['*.read'])).toEqual([]);
    expect(permissionsBeyond(reader, (p) => roleAllows(['*'], p), KNOWN, ['*'])).toContain('segments.write');
  });
});

describe('no privilege escalation through keys, roles or members', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(async () => t?.close());

  const createAs = (secret: string, payload: object) =>
    t.app.inject({ method: 'POST', url: '/admin/workspaces/acme/keys', headers: { authorization: `Bearer ${secret}` }, payload });

  it('a key holding keys.write issues only keys it could itself use', async () => {
    const keyAdmin = await createKey(t.db, t.workspace.id, { kind: 'server', permissions: ['keys.write', 'profiles.read', 'segments.*'] });
    for (const payload of [
      { kind: 'server', permissions: ['*'] },
      { kind: 'server' }, // the default server key reaches every data area
      { kind: 'server', permissions: ['profiles.read', 'pii.read'] },
      { kind: 'server', permissions: ['keys.*'] },
      { kind: 'server', permissions: ['*.read'] },
      { kind: 'server', permissions: ['audit.read'] },
      { kind: 'write', sourceId: t.source.id }, // default write key: events.write, visitor.read
    ]) {
      const refused = await createAs(keyAdmin.key, payload);
      expect(refused.statusCode, JSON.stringify(payload)).toBe(403);
      expect(refused.json()).toMatchObject({ error: 'forbidden', field: 'permissions' });
    }
    for (const permissions of [['profiles.read'], ['segments.*'], ['segments.read', 'keys.write']]) {
      const issued = await createAs(keyAdmin.key, { kind: 'server', permissions });
      expect(issued.statusCode, JSON.stringify(permissions)).toBe(201);
    }
    // Explicitly scoped write keys within the caller's permissions are fine.
    const collector = await createKey(t.db, t.workspace.id, { kind: 'server', permissions: ['keys.write', 'events.write'] });
    expect((await createAs(collector.key, { kind: 'write', sourceId: t.source.id, permissions: ['events.write'] })).statusCode).toBe(201);
    // The admin token and a '*' key may issue anything.
    const full = await createKey(t.db, t.workspace.id, { kind: 'server', permissions: ['*'] });
    expect((await createAs(full.key, { kind: 'server' })).statusCode).toBe(201);
    expect((await t.app.inject({ method: 'POST', url: '/admin/workspaces/acme/keys', headers: admin, payload: { kind: 'server', permissions: ['*'] } })).statusCode).toBe(201);
  });

  it('rotating a key needs its permissions: rotation hands out a fresh secret', async () => {
    const keyAdmin = await createKey(t.db, t.workspace.id, { kind: 'server', permissions: ['keys.write', 'profiles.read'] });
    const strong = await createKey(t.db, t.workspace.id, { kind: 'server', permissions: ['*'] });
    const weak = await createKey(t.db, t.workspace.id, { kind: 'server', permissions: ['profiles.read'] });
    const rotate = (id: string) =>
      t.app.inject({ method: 'POST', url: `/admin/workspaces/acme/keys/${id}/rotate`, headers: { authorization: `Bearer ${keyAdmin.key}` }, payload: {} });
    const refused = await rotate(strong.id);
    expect(refused.statusCode).toBe(403);
    expect(refused.json().message).toMatch(/rotate this key/);
    const stillActive = await t.db.query<{ status: string }>('select status from api_keys where id = $1', [strong.id]);
    expect(stillActive.rows[0]!.status).toBe('active');
    expect((await rotate(weak.id)).statusCode).toBe(201);
  });

  it('a member managing members or roles cannot hand out, define or take away more than their own role', async () => {
    await putRole(t.db, t.workspace.id, 'keeper', { name: 'Keeper', permissions: ['*.read', 'members.write', 'roles.write', 'segments.*'] });
    const keeper = await userWithRole(t.app, t.db, t.workspace.id, 'keeper');
    const other = await createUser(t.db, { email: 'other-grant@example.com', password: 'correct horse battery staple' });
    const setRole = (userId: string, role: string) =>
      t.app.inject({ method: 'PUT', url: `/admin/workspaces/acme/members/${userId}`, headers: keeper.headers(), payload: { role } });

    const toAdmin = await setRole(other.id, 'admin');
    expect(toAdmin.statusCode).toBe(403);
    expect(toAdmin.json()).toMatchObject({ field: 'role' });
    expect((await setRole(other.id, 'marketer')).statusCode).toBe(403); // marketers write journeys, channels…
    expect((await setRole(other.id, 'viewer')).statusCode).toBe(200);
    expect((await setRole(other.id, 'keeper')).statusCode).toBe(200);

    // Nor demote or remove someone stronger.
    const boss = await createUser(t.db, { email: 'boss-grant@example.com', password: 'correct horse battery staple' });
    await putMember(t.db, t.workspace.id, boss.id, 'admin');
    expect((await setRole(boss.id, 'viewer')).statusCode).toBe(403);
    const removal = await t.app.inject({ method: 'DELETE', url: `/admin/workspaces/acme/members/${boss.id}`, headers: keeper.headers() });
    expect(removal.statusCode).toBe(403);

    // Custom roles: only within the definer's own permissions.
    const defineRole = (key: string, permissions: string[]) =>
      t.app.inject({ method: 'PUT', url: `/admin/workspaces/acme/roles/${key}`, headers: keeper.headers(), payload: { name: key, permissions } });
    for (const permissions of [['*'], ['keys.write'], ['segments.read', 'pii.read'], ['audit.read'], ['journeys.write']]) {
      const refused = await defineRole('escalator', permissions);
      expect(refused.statusCode, JSON.stringify(permissions)).toBe(403);
      expect(refused.json()).toMatchObject({ field: 'permissions' });
    }
    expect((await defineRole('segmenter', ['segments.*', 'profiles.read'])).statusCode).toBe(200);
    // …and an existing stronger custom role cannot be rewritten by them.
    await putRole(t.db, t.workspace.id, 'auditor', { name: 'Auditor', permissions: ['audit.read'] });
    expect((await defineRole('auditor', ['segments.read'])).statusCode).toBe(403);

    // Admins may give any role but owner; the admin token everything.
    const adminUser = await userWithRole(t.app, t.db, t.workspace.id, 'admin');
    expect((await t.app.inject({ method: 'PUT', url: `/admin/workspaces/acme/members/${other.id}`, headers: adminUser.headers(), payload: { role: 'admin' } })).statusCode).toBe(200);
    expect((await t.app.inject({ method: 'PUT', url: `/admin/workspaces/acme/roles/everything`, headers: adminUser.headers(), payload: { name: 'All', permissions: ['*'] } })).statusCode).toBe(200);
  });
});
