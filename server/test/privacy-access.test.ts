import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allows, INSTANCE_PERMISSIONS, isPermission, keyAllows, patternAllows, PUBLIC, roleAllows, ROLE_PERMISSIONS } from '../src/privacy/permissions.ts';
import type { RegisteredRoute } from '../src/privacy/access.ts';
import { createKey } from '../src/workspaces/store.ts';
import { ADMIN_TOKEN, startTestApp, type TestApp } from './support/app.ts';
import { concreteUrl } from './privacy-support.ts';

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

describe('permission patterns (pure)', () => {
  it('matches exact permissions, area and action wildcards', () => {
    expect(patternAllows('segments.read', 'segments.read')).toBe(true);
    expect(patternAllows('segments.read', 'segments.write')).toBe(false);
    expect(patternAllows('segments.*', 'segments.write')).toBe(true);
    expect(patternAllows('*.read', 'profiles.read')).toBe(true);
    expect(patternAllows('*.read', 'profiles.write')).toBe(false);
    expect(allows(['*'], 'anything.at-all')).toBe(true);
    expect(isPermission('segments.read')).toBe(true);
    expect(isPermission('Segments')).toBe(false);
  });

  it("roles' '*.read' stops at governance reads and PII; viewers cannot write", () => {
    const viewer = ROLE_PERMISSIONS.viewer.permissions;
    expect(roleAllows(viewer, 'segments.read')).toBe(true);
    expect(roleAllows(viewer, 'segments.write')).toBe(false);
    expect(roleAllows(viewer, 'audit.read')).toBe(false);
    expect(roleAllows(viewer, 'pii.read')).toBe(false);
    expect(roleAllows(ROLE_PERMISSIONS.marketer.permissions, 'journeys.write')).toBe(true);
    expect(roleAllows(ROLE_PERMISSIONS.analyst.permissions, 'journeys.write')).toBe(false);
    expect(roleAllows(ROLE_PERMISSIONS.owner.permissions, 'pii.read')).toBe(true);
    for (const permission of INSTANCE_PERMISSIONS) expect(roleAllows(['*'], permission)).toBe(false);
  });

  it('keys without explicit permissions keep their historic rights; explicit ones are exact', () => {
    expect(keyAllows('write', null, 'events.write')).toBe(true);
    expect(keyAllows('write', null, 'profiles.read')).toBe(false);
    expect(keyAllows('server', null, 'profiles.read')).toBe(true);
    expect(keyAllows('server', null, 'journeys.write')).toBe(true); // future areas keep working
    expect(keyAllows('server', null, 'keys.write')).toBe(false);
    expect(keyAllows('server', null, 'users.write')).toBe(false);
    expect(keyAllows('server', ['profiles.read'], 'profiles.read')).toBe(true);
    expect(keyAllows('server', ['profiles.read'], 'segments.read')).toBe(false);
    expect(keyAllows('server', ['*'], 'workspaces.create')).toBe(false);
  });
});

describe('access control over every registered route', () => {
  let t: TestApp;
  let routes: RegisteredRoute[];
  let noPermissionKey: string;
  let otherWorkspaceKey: string;

  beforeAll(async () => {
    t = await startTestApp();
    routes = t.app.registeredRoutes;
    noPermissionKey = (await createKey(t.db, t.workspace.id, { kind: 'server', permissions: ['nothing.none'] })).key;
    const other = await t.addWorkspace('other');
    otherWorkspaceKey = (await createKey(t.db, other.workspace.id, { kind: 'server', permissions: ['*'] })).key;
  });
  afterAll(async () => t?.close());

  it('every route declares a valid permission in its config', () => {
    expect(routes.length).toBeGreaterThan(60);
    const missing = routes
      .filter((route) => !route.permission || !isPermission(route.permission))
      .map(
        (route) =>
          `${route.method} ${route.url} declares ${route.permission ? `an invalid permission '${route.permission}'` : 'no permission'}: ` +
          `add config: { permission: '<area>.<read|write>' } to its route options (or 'public' for an unauthenticated route); see docs/privacy.md`,
      );
    expect(missing, missing.join('\n')).toEqual([]);
  });

  it('no non-public route answers a request without credentials', async () => {
    const open: string[] = [];
    for (const route of routes) {
      if (route.permission === PUBLIC || route.method === 'OPTIONS') continue;
      const response = await t.app.inject({ method: route.method as 'GET', url: concreteUrl(route, t.workspace.slug) });
      if (response.statusCode !== 401) {
        open.push(`${route.method} ${route.url} (permission '${route.permission}') answered ${response.statusCode} without credentials; it must answer 401 before doing anything`);
      }
    }
    expect(open, open.join('\n')).toEqual([]);
  }, 180_000);

  it('no route answers a key that lacks its permission, and none crosses into another workspace', async () => {
    const leaks: string[] = [];
    for (const route of routes) {
      if (route.permission === PUBLIC || route.method === 'OPTIONS' || route.permission === 'events.write') continue;
      const url = concreteUrl(route, t.workspace.slug);
      const response = await t.app.inject({ method: route.method as 'GET', url, headers: bearer(noPermissionKey) });
      if (response.statusCode !== 403) {
        leaks.push(`${route.method} ${route.url} answered ${response.statusCode} to a key without '${route.permission}'; expected 403`);
      }
      if (route.url.includes(':workspace')) {
        const crossing = await t.app.inject({ method: route.method as 'GET', url, headers: bearer(otherWorkspaceKey) });
        if (crossing.statusCode !== 403) leaks.push(`${route.method} ${route.url} answered ${crossing.statusCode} to another workspace's key; expected 403`);
      }
    }
    expect(leaks, leaks.join('\n')).toEqual([]);
  }, 180_000);

  it('every workspace route is reachable with exactly its permission (the hook lets it through)', async () => {
    const blocked: string[] = [];
    for (const route of routes) {
      const permission = route.permission!;
      if (permission === PUBLIC || route.method === 'OPTIONS' || permission === 'events.write' || permission === 'visitor.read') continue;
      if (INSTANCE_PERMISSIONS.has(permission) || permission === 'authenticated') continue;
      const key = (await createKey(t.db, t.workspace.id, { kind: 'server', permissions: [permission] })).key;
      const response = await t.app.inject({ method: route.method as 'GET', url: concreteUrl(route, t.workspace.slug), headers: bearer(key) });
      const body = response.body && String(response.headers['content-type']).startsWith('application/json') ? (response.json() as { error?: string }) : {};
      if (response.statusCode === 401 || (response.statusCode === 403 && ['forbidden', 'csrf'].includes(body.error ?? ''))) {
        blocked.push(`${route.method} ${route.url} refused a key holding '${permission}': ${response.statusCode} ${response.body}`);
      }
    }
    expect(blocked, blocked.join('\n')).toEqual([]);
  }, 180_000);

  it('instance routes are for the admin token only', async () => {
    const all = (await createKey(t.db, t.workspace.id, { kind: 'server', permissions: ['*'] })).key;
    expect((await t.app.inject({ method: 'GET', url: '/admin/workspaces', headers: bearer(all) })).statusCode).toBe(403);
    expect((await t.app.inject({ method: 'GET', url: '/admin/workspaces', headers: bearer(ADMIN_TOKEN) })).statusCode).toBe(200);
    // A workspace-wide key administers its own workspace through the admin paths.
    expect((await t.app.inject({ method: 'GET', url: `/admin/workspaces/${t.workspace.slug}/sources`, headers: bearer(all) })).statusCode).toBe(200);
  });

  it('a read-only profile key reads profiles and nothing else', async () => {
    const key = (await createKey(t.db, t.workspace.id, { kind: 'server', permissions: ['profiles.read'] })).key;
    expect((await t.app.inject({ method: 'GET', url: '/v1/profiles', headers: bearer(key) })).statusCode).not.toBe(403);
    const segments = await t.app.inject({ method: 'GET', url: '/v1/segments', headers: bearer(key) });
    expect(segments.statusCode).toBe(403);
    expect(segments.json()).toMatchObject({ error: 'forbidden', message: "This key lacks the permission 'segments.read'" });
  });

  it('the admin token acts in a workspace named by the X-Touchpoint-Workspace header', async () => {
    const response = await t.app.inject({ method: 'GET', url: '/v1/segments', headers: { ...bearer(ADMIN_TOKEN), 'x-touchpoint-workspace': t.workspace.slug } });
    expect(response.statusCode).toBe(200);
  });

  it('keys can be issued with permissions, which survive rotation', async () => {
    const issued = await t.app.inject({
      method: 'POST',
      url: `/admin/workspaces/${t.workspace.slug}/keys`,
      headers: bearer(ADMIN_TOKEN),
      payload: { kind: 'server', permissions: ['segments.read'] },
    });
    expect(issued.statusCode).toBe(201);
    expect(issued.json()).toMatchObject({ permissions: ['segments.read'] });
    const rotated = await t.app.inject({ method: 'POST', url: `/admin/workspaces/${t.workspace.slug}/keys/${issued.json().id}/rotate`, headers: bearer(ADMIN_TOKEN), payload: {} });
    expect(rotated.json()).toMatchObject({ key: { permissions: ['segments.read'] } });
    const bad = await t.app.inject({ method: 'POST', url: `/admin/workspaces/${t.workspace.slug}/keys`, headers: bearer(ADMIN_TOKEN), payload: { kind: 'server', permissions: ['Not A Permission'] } });
    expect(bad.statusCode).toBe(400);
  });
});
