import { expect } from 'vitest';
import { resolveQueuedEvents } from '../src/identity/resolver.ts';
import { createKey } from '../src/workspaces/store.ts';
import { basicAuth, type TestApp } from './support/app.ts';

/** Sends a batch through the collection API and insists every event was accepted. */
export async function send(t: TestApp, writeKey: string, batch: unknown[]): Promise<void> {
  const res = await t.app.inject({ method: 'POST', url: '/v1/batch', headers: { authorization: basicAuth(writeKey) }, payload: { batch } });
  expect(res.statusCode).toBe(200);
  expect(res.json().rejected).toEqual([]);
}

/** Resolves everything queued for the workspace, as the worker would. */
export async function drain(t: TestApp, workspaceId = t.workspace.id): Promise<void> {
  while ((await resolveQueuedEvents(t.db, workspaceId)) > 0);
}

/** A GET/POST with a server key, for the read API. */
export function reader(t: TestApp, key: string) {
  return async (method: 'GET' | 'POST', url: string, payload?: object) =>
    t.app.inject({ method, url, headers: { authorization: `Bearer ${key}` }, ...(payload === undefined ? {} : { payload }) });
}

export async function serverKey(t: TestApp, workspaceId = t.workspace.id): Promise<string> {
  return (await createKey(t.db, workspaceId, { kind: 'server' })).key;
}

export const profileUrl = (ref: string, suffix = '') => `/v1/profiles/${encodeURIComponent(ref)}${suffix}`;
