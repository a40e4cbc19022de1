import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSource } from '../src/workspaces/store.ts';
import { drain, send } from './profiles-support.ts';
import { cli } from './support/cli.ts';
import { startTestApp, type TestApp } from './support/app.ts';


describe('touchpoint profile show (real process, real PostgreSQL)', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
    const store = await createSource(t.db, t.workspace.id, { name: 'Store POS', kind: 'store' });
    await send(t, t.writeKey, [
      { type: 'identify', userId: 'u-1', traits: { name: 'Li Lei', city: '上海' }, messageId: 'e1', timestamp: '2026-01-01T10:00:00Z' },
    ]);
    await send(t, store.writeKey.key, [
      { type: 'track', event: 'Order Completed', userId: 'u-1', context: { externalIds: [{ id: '13800138000', type: 'phone' }] }, messageId: 'e2', timestamp: '2026-01-02T10:00:00Z' },
    ]);
    await drain(t);
  });
  afterAll(async () => t.close());

  it('prints the profile readably, and as the API\'s JSON with --json', async () => {
    const text = await cli(['profile', 'show', 'phone:+86 138 0013 8000', '--workspace', 'acme'], t.database.url);
    expect(text.stderr).toBe('');
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/city\s+上海/);
    expect(text.stdout).toContain('phone: +8613800138000   via Store POS (store)');
    expect(text.stdout).toContain('user_id: u-1');
    expect(text.stdout).toMatch(/2026-01-02T10:00:00.000Z {2}Order Completed {3}e2/);

    const json = await cli(['profile', 'show', 'user_id:u-1', '--workspace', 'acme', '--json', '--verbose'], t.database.url);
    expect(json.code).toBe(0);
    const body = JSON.parse(json.stdout);
    expect(body.matchedBy).toEqual({ type: 'user_id', value: 'u-1' });
    expect(body.traits.name).toMatchObject({ value: 'Li Lei', messageId: 'e1', source: { kind: 'web', name: 'Website' } });
    expect(body.events.map((e: { messageId: string }) => e.messageId)).toEqual(['e2', 'e1']);

    const byId = await cli(['profile', 'show', body.id, '--workspace', t.workspace.id, '--json', '--events', '0'], t.database.url);
    expect(JSON.parse(byId.stdout)).toMatchObject({ id: body.id, events: [], traits: { name: 'Li Lei', city: '上海' } });
  });

  it('answers unknown profiles and bad references in one line with a failing exit code', async () => {
    const missing = await cli(['profile', 'show', 'user_id:nobody', '--workspace', 'acme'], t.database.url);
    expect(missing.code).toBe(1);
    expect(missing.stderr.trim()).toBe('touchpoint: No profile has user_id nobody in this workspace');
    const bad = await cli(['profile', 'show', 'shoe_size:42', '--workspace', 'acme'], t.database.url);
    expect(bad.code).toBe(1);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(bad.stderr).toContain('shoe_size is not an identifier type');
    const noWorkspace = await cli(['profile', 'show', 'user_id:u-1', '--workspace', 'nowhere'], t.database.url);
    expect(noWorkspace.code).toBe(1);
    expect(noWorkspace.stderr).toContain('Workspace "nowhere" not found');
  });
});
