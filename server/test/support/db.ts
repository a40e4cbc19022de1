import crypto from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';
import { createPool, withDatabase, type Db } from '../../src/storage/database.ts';

export interface TestDatabase {
  db: Db;
  url: string;
  drop(): Promise<void>;
}

/** A fresh, migrated database cloned from the run's template; real PostgreSQL, never a fake. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const adminUrl = inject('pgAdminUrl');
  const template = inject('pgTemplate');
  // The template's pid prefix lets global teardown find databases left by a crashed file.
  const templatePid = template.split('_').pop();
  const name = `t_${templatePid}_${crypto.randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`create database ${name} template ${template}`);
  } finally {
    await admin.end();
  }
  const url = withDatabase(adminUrl, name);
  const db = createPool(url, 10);
  return {
    db,
    url,
    drop: async () => {
      await db.end();
      const client = new pg.Client({ connectionString: adminUrl });
      await client.connect();
      await client.query(`drop database if exists ${name} with (force)`);
      await client.end();
    },
  };
}
