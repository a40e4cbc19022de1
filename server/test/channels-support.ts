import crypto from 'node:crypto';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyInstance, type LightMyRequestResponse } from 'fastify';
import { createKeyResolver } from '../src/api/auth.ts';
import { registerErrorHandler } from '../src/api/errors.ts';
import { channelRoutes, type ChannelRoutesOptions } from '../src/channels/routes.ts';
import type { Db } from '../src/storage/database.ts';
import { createKey, createWorkspace } from '../src/workspaces/store.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';

export { insertProfile, setTraits } from './segments-lifecycle-support.ts';

export const TEST_SECRETS_KEY = crypto.randomBytes(32);

export interface ChannelsTestApp {
  app: FastifyInstance;
  db: Db;
  database: TestDatabase;
  workspaceId: string;
  serverKey: string;
  call(method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', url: string, payload?: object, key?: string): Promise<LightMyRequestResponse>;
  close(): Promise<void>;
}

/** The channels plugin on its own Fastify app (the real error handler and key auth) on a fresh database. */
export async function startChannelsApp(options: Partial<Omit<ChannelRoutesOptions, 'db' | 'keys'>> = {}): Promise<ChannelsTestApp> {
  const database = await createTestDatabase();
  const app = Fastify({ logger: false, ajv: { customOptions: { removeAdditional: false } } }).withTypeProvider<TypeBoxTypeProvider>();
  registerErrorHandler(app);
  await app.register(channelRoutes, { db: database.db, keys: createKeyResolver(database.db), secretsKey: TEST_SECRETS_KEY, ...options });
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
