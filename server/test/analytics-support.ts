import crypto from 'node:crypto';
import { expect } from 'vitest';
import { drainCatalogueQueue } from '../src/catalogue/store.ts';
import type { Db } from '../src/storage/database.ts';
import { ensureMonthlyPartitions } from '../src/storage/partitions.ts';
import type { TestApp } from './support/app.ts';
import { drain, send } from './profiles-support.ts';

/** Sends events through the collection API, resolves identity and fills the catalogue, as the worker would. */
export async function sendAndResolve(t: TestApp, batch: unknown[]): Promise<void> {
  for (let i = 0; i < batch.length; i += 500) await send(t, t.writeKey, batch.slice(i, i + 500));
  await drain(t);
  while ((await drainCatalogueQueue(t.db)).taken > 0);
}

export async function setTimeZone(t: TestApp, timeZone: string): Promise<void> {
  await t.db.query('update workspaces set time_zone = $2 where id = $1', [t.workspace.id, timeZone]);
}

export function analyticsCaller(t: TestApp, key: string) {
  return async (url: string, payload: object, status = 200) => {
    const res = await t.app.inject({ method: 'POST', url, headers: { authorization: `Bearer ${key}` }, payload });
    if (res.statusCode !== status) expect(res.json()).toEqual({ statusCode: status });
    return res.json();
  };
}

/** A raw event for direct inserts (generated histories): profile already resolved. */
export interface RawEvent {
  profileId: string;
  event: string;
  at: number;
  properties?: Record<string, unknown>;
  type?: 'track' | 'page';
}

/** Writes generated events straight into `events` with profile_id set (bulk fixtures bypass ingest). */
export async function insertResolvedEvents(db: Db, workspaceId: string, sourceId: string, events: readonly RawEvent[]): Promise<void> {
  await ensureMonthlyPartitions(db, 'events', events.map((e) => new Date(e.at)));
  for (let i = 0; i < events.length; i += 2000) {
    const chunk = events.slice(i, i + 2000);
    await db.query(
      `insert into events (workspace_id, timestamp, message_id, source_id, type, event, name, properties, received_at, profile_id)
       select $1, t, m, $2, ty, case when ty = 'track' then ev end, case when ty <> 'track' then ev end, p, t, pr
         from unnest($3::timestamptz[], $4::text[], $5::text[], $6::text[], $7::jsonb[], $8::uuid[]) as u(t, m, ty, ev, p, pr)`,
      [
        workspaceId,
        sourceId,
        chunk.map((e) => new Date(e.at).toISOString()),
        chunk.map(() => crypto.randomUUID()),
        chunk.map((e) => e.type ?? 'track'),
        chunk.map((e) => e.event),
        chunk.map((e) => JSON.stringify(e.properties ?? {})),
        chunk.map((e) => e.profileId),
      ],
    );
  }
}

/** A small deterministic PRNG (mulberry32) for generated histories. */
export function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
