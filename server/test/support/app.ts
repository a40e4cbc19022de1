import type { FastifyInstance } from 'fastify';
import { buildServer, type ServerOptions } from '../../src/api/server.ts';
import type { Db } from '../../src/storage/database.ts';
import { createSource, createWorkspace } from '../../src/workspaces/store.ts';
import type { Source, Workspace } from '../../src/workspaces/schemas.ts';
import { createTestDatabase, type TestDatabase } from './db.ts';

export const ADMIN_TOKEN = 'tpa_test-admin-token';

export interface TestApp {
  app: FastifyInstance;
  db: Db;
  database: TestDatabase;
  workspace: Workspace;
  source: Source;
  writeKey: string;
  /** Creates another workspace with one source, e.g. for isolation tests. */
  addWorkspace(slug: string): Promise<{ workspace: Workspace; source: Source; writeKey: string }>;
  close(): Promise<void>;
}

/** A real server on a fresh database with one workspace and one web source. */
export async function startTestApp(options: Partial<ServerOptions> = {}): Promise<TestApp> {
  const database = await createTestDatabase();
  const app = await buildServer({
    db: database.db,
    verifyAdmin: (token) => token === ADMIN_TOKEN,
    logLevel: false,
    ...options,
  });
  const addWorkspace = async (slug: string) => {
    const workspace = await createWorkspace(database.db, { slug, name: slug });
    const { source, writeKey } = await createSource(database.db, workspace.id, { name: 'Website', kind: 'web' });
    return { workspace, source, writeKey: writeKey.key };
  };
  const first = await addWorkspace('acme');
  return {
    app,
    db: database.db,
    database,
    ...first,
    addWorkspace,
    close: async () => {
      await app.close();
      await database.drop();
    },
  };
}

export function basicAuth(writeKey: string): string {
  return `Basic ${Buffer.from(`${writeKey}:`).toString('base64')}`;
}
