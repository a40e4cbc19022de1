import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyInstance, type LightMyRequestResponse } from 'fastify';
import { activationRoutes } from '../src/activation/routes.ts';
import type { Post } from '../src/activation/sync.ts';
import { verifySignature, type WebhookPayload } from '../src/activation/webhook.ts';
import { createKeyResolver } from '../src/api/auth.ts';
import { registerErrorHandler } from '../src/api/errors.ts';
import { prepareTransitionStorage, recordTransitions, type SegmentRef } from '../src/segments/transitions.ts';
import type { Db } from '../src/storage/database.ts';
import { createKey, createWorkspace } from '../src/workspaces/store.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';

export interface ActivationTestApp {
  app: FastifyInstance;
  db: Db;
  database: TestDatabase;
  workspaceId: string;
  serverKey: string;
  call(method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, payload?: object, key?: string): Promise<LightMyRequestResponse>;
  close(): Promise<void>;
}

/**
 * The activation plugin on its own Fastify app (the error handler and key auth the real server
 * uses), on a fresh database with one workspace and a server key.
 */
export async function startActivationApp(options: { now?: () => Date; post?: Post } = {}): Promise<ActivationTestApp> {
  const database = await createTestDatabase();
  const app = Fastify({ logger: false, ajv: { customOptions: { removeAdditional: false } } }).withTypeProvider<TypeBoxTypeProvider>();
  registerErrorHandler(app);
  await app.register(activationRoutes, { db: database.db, keys: createKeyResolver(database.db), ...options });
  await app.ready();
  const workspace = await createWorkspace(database.db, { slug: 'acme', name: 'Acme' });
  const serverKey = (await createKey(database.db, workspace.id, { kind: 'server' })).key;
  return {
    app,
    db: database.db,
    database,
    workspaceId: workspace.id,
    serverKey,
    call: (method, url, payload, key = serverKey) =>
      app.inject({ method, url, headers: { authorization: `Bearer ${key}` }, ...(payload === undefined ? {} : { payload }) }),
    close: async () => {
      await app.close();
      await database.drop();
    },
  };
}

export async function createSegment(db: Db, workspaceId: string, key: string, name = key): Promise<SegmentRef> {
  const { rows } = await db.query<{ id: string }>(
    `insert into segments (workspace_id, key, name, kind, state) values ($1, $2, $3, 'static', 'ready') returning id`,
    [workspaceId, key, name],
  );
  return { id: rows[0]!.id, key, name, version: 1 };
}

/** Profiles with live identifiers (type → value), created directly. */
export async function createProfiles(db: Db, workspaceId: string, identifiers: Array<Record<string, string>>): Promise<string[]> {
  const ids: string[] = [];
  for (const byType of identifiers) {
    const { rows } = await db.query<{ id: string }>('insert into profiles (workspace_id) values ($1) returning id', [workspaceId]);
    const id = rows[0]!.id;
    for (const [type, value] of Object.entries(byType)) {
      await db.query(
        `insert into profile_identifiers (workspace_id, profile_id, type, value, first_seen, last_seen) values ($1, $2, $3, $4, now(), now())`,
        [workspaceId, id, type, value],
      );
    }
    ids.push(id);
  }
  return ids;
}

/** Records membership changes through the real transition writer, one transaction per call. */
export async function transition(db: Db, workspaceId: string, segment: SegmentRef, profileIds: string[], member: boolean, at = new Date()) {
  await prepareTransitionStorage(db, at);
  const client = await db.connect();
  try {
    await client.query('begin');
    const recorded = await recordTransitions(client, workspaceId, profileIds.map((profileId) => ({ segment, profileId, member })), 'list', at);
    await client.query('commit');
    return recorded;
  } catch (error) {
    await client.query('rollback');
    throw error;
  } finally {
    client.release();
  }
}

export type ReceiverAction = { status: number; headers?: Record<string, string>; delayMs?: number; body?: string };

export interface ReceivedRequest {
  at: number;
  batchId: string | undefined;
  attempt: string | undefined;
  signatureOk: boolean;
  signatureError?: string;
  payload: WebhookPayload;
  status: number;
}

export interface Receiver {
  url: string;
  requests: ReceivedRequest[];
  /** Batches the receiver applied (answered 2xx, even if the answer came too late), deduplicated by batch id. */
  applied: WebhookPayload[];
  /** Requests answered 2xx whose batch id had already been applied. */
  duplicates: string[];
  close(): Promise<void>;
}

/**
 * A webhook receiver on 127.0.0.1 that verifies every signature with `secret`, answers by the
 * script (request n gets script[n], then 200), and applies each batch once by its batch id.
 */
export async function startReceiver(secret: () => string, script: ReceiverAction[] = []): Promise<Receiver> {
  const requests: ReceivedRequest[] = [];
  const applied: WebhookPayload[] = [];
  const appliedIds = new Set<string>();
  const duplicates: string[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const check = verifySignature(secret(), body, req.headers['x-touchpoint-signature'] as string | undefined, Math.floor(Date.now() / 1000));
      const action = script[requests.length] ?? { status: 200 };
      const status = check.ok ? action.status : 401;
      const payload = JSON.parse(body) as WebhookPayload;
      const batchId = req.headers['x-touchpoint-batch-id'] as string | undefined;
      requests.push({
        at: Date.now(),
        batchId,
        attempt: req.headers['x-touchpoint-attempt'] as string | undefined,
        signatureOk: check.ok,
        ...(check.ok ? {} : { signatureError: check.reason }),
        payload,
        status,
      });
      if (status >= 200 && status < 300 && batchId) {
        if (appliedIds.has(batchId)) duplicates.push(batchId);
        else {
          appliedIds.add(batchId);
          applied.push(payload);
        }
      }
      const answer = () => {
        if (res.destroyed) return;
        res.writeHead(status, { 'content-type': 'text/plain', ...action.headers });
        res.end(action.body ?? (status < 300 ? 'ok' : `refused with ${status}`));
      };
      if (action.delayMs) setTimeout(answer, action.delayMs);
      else answer();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hooks/touchpoint`,
    requests,
    applied,
    duplicates,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
