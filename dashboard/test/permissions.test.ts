import { describe, expect, it } from 'vitest';
import type { Credentials } from '../src/auth.ts';
import { may } from '../src/permissions.ts';

const session = (role: string, superuser = false): Credentials => ({
  kind: 'session',
  email: 'a@example.cn',
  name: 'A',
  csrfToken: 'x',
  superuser,
  workspace: 'ws-1',
  workspaces: [{ id: 'ws-1', slug: 'acme', name: 'Acme', role }],
});

describe('what the page lets a role do (the server role matrix)', () => {
  it('viewers change nothing and cannot see keys or members', () => {
    const viewer = session('viewer');
    for (const permission of ['sources.write', 'keys.write', 'identity.write', 'imports.write', 'channels.write', 'segments.write', 'members.write']) {
      expect(may(permission, viewer), permission).toBe(false);
    }
    expect(may('sources.read', viewer)).toBe(true);
    expect(may('keys.read', viewer)).toBe(false);
    expect(may('members.read', viewer)).toBe(false);
  });

  it('analysts cannot publish journeys or change segments; marketers can, but not govern the workspace', () => {
    expect(may('journeys.write', session('analyst'))).toBe(false);
    expect(may('segments.write', session('analyst'))).toBe(false);
    expect(may('analytics.write', session('analyst'))).toBe(true);
    expect(may('journeys.write', session('marketer'))).toBe(true);
    expect(may('channels.write', session('marketer'))).toBe(true);
    expect(may('keys.write', session('marketer'))).toBe(false);
    expect(may('sources.write', session('marketer'))).toBe(false);
  });

  it('admins govern the workspace but not the instance; superusers, server keys and custom roles are left to the API', () => {
    expect(may('keys.write', session('admin'))).toBe(true);
    expect(may('users.create', session('admin'))).toBe(false);
    expect(may('users.create', session('admin', true))).toBe(true);
    expect(may('anything.write', { kind: 'server-key', key: 'tps_x' })).toBe(true);
    expect(may('keys.write', session('support-desk'))).toBe(true);
  });
});
