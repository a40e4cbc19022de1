import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { createKeyResolver } from '../src/api/auth.ts';
import type { Db } from '../src/storage/database.ts';
import { createKey, createWorkspace, resolveKey, setKeyStatus } from '../src/workspaces/store.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';

/** The presented-key cache: one lookup per key at a time, a known key answered while it refreshes. */
describe('key resolver cache', () => {
  let t: TestDatabase;
  let workspaceId: string;
  beforeAll(async () => {
    t = await createTestDatabase();
    workspaceId = (await createWorkspace(t.db, { slug: 'keys', name: 'Keys' })).id;
  });
  afterAll(async () => t.drop());
  afterEach(() => vi.useRealTimers());

  function counted() {
    const calls: string[] = [];
    const lookup = (db: Db, key: string) => {
      calls.push(key);
      return resolveKey(db, key);
    };
    return { calls, resolver: createKeyResolver(t.db, lookup) };
  }

  it('makes one lookup for many concurrent requests with a cold key, and none while fresh', async () => {
    const { key } = await createKey(t.db, workspaceId, { kind: 'server' });
    const { calls, resolver } = counted();
    const answers = await Promise.all(Array.from({ length: 50 }, () => resolver.resolve(key)));
    expect(calls).toHaveLength(1);
    expect(new Set(answers.map((a) => a?.workspaceId))).toEqual(new Set([workspaceId]));
    await resolver.resolve(key);
    expect(calls).toHaveLength(1);
  });

  it('looks a key in use up again shortly before its entry expires, once, and never answers an entry past its 2 s', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const issued = await createKey(t.db, workspaceId, { kind: 'server' });
    const { calls, resolver } = counted();
    expect((await resolver.resolve(issued.key))?.keyId).toBe(issued.id);
    vi.setSystemTime(Date.now() + 1_700); // inside the last 500 ms of the entry
    const early = await Promise.all(Array.from({ length: 20 }, () => resolver.resolve(issued.key)));
    expect(early.every((a) => a?.keyId === issued.id)).toBe(true);
    await vi.waitFor(() => expect(calls).toHaveLength(2)); // one refresh for all twenty
    await setKeyStatus(t.db, workspaceId, issued.id, 'disabled');
    vi.setSystemTime(Date.now() + 2_100); // past the refreshed entry: the disabled key is refused
    expect(await resolver.resolve(issued.key)).toBeNull();
    expect(calls).toHaveLength(3);
  });

  it('waits for the lookup when the entry expired', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const issued = await createKey(t.db, workspaceId, { kind: 'server' });
    const { calls, resolver } = counted();
    await resolver.resolve(issued.key);
    await setKeyStatus(t.db, workspaceId, issued.id, 'disabled');
    vi.setSystemTime(Date.now() + 2_001);
    expect(await resolver.resolve(issued.key)).toBeNull();
    expect(calls).toHaveLength(2);
  });

  it('an unknown key is looked up again after the cache time', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const { calls, resolver } = counted();
    expect(await resolver.resolve('tp_not_a_key')).toBeNull();
    vi.setSystemTime(Date.now() + 3_000);
    expect(await resolver.resolve('tp_not_a_key')).toBeNull();
    expect(calls).toHaveLength(2);
  });
});
