import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate, listMigrations } from '../src/storage/migrate.ts';
import { ensureMonthlyPartitions, partitionName, monthStart } from '../src/storage/partitions.ts';
import { startEmbeddedPostgres, StartupError, EMBEDDED_PG_MAJOR, embeddedSharedBuffersMb, availableMemoryBytes } from '../src/storage/embedded.ts';
import { closePool, createPool } from '../src/storage/database.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';
import { freePort } from './support/ports.ts';

describe('migrations', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase();
  });
  afterAll(async () => t.drop());

  it('are recorded and re-running applies nothing', async () => {
    const { rows } = await t.db.query<{ name: string }>('select name from schema_migrations order by version');
    expect(rows.map((row) => row.name)).toEqual(listMigrations().map((m) => m.name));
    expect(await migrate(t.db)).toEqual([]);
  });

  it('refuse to run when an applied migration file was edited', async () => {
    const edited = listMigrations().map((m, i) => (i === 0 ? { ...m, checksum: 'different' } : m));
    await expect(migrate(t.db, edited)).rejects.toThrow(/was changed after it was applied/);
  });

  it('roll back a failing migration and keep the schema as it was', async () => {
    const bad = [...listMigrations(), { version: 9999, name: '9999_broken', sql: 'create table half_done (id int); select 1/0;', checksum: 'x' }];
    await expect(migrate(t.db, bad)).rejects.toThrow(/9999_broken failed/);
    const { rows } = await t.db.query("select to_regclass('half_done') as t");
    expect(rows[0].t).toBeNull();
  });

  it('keep every tenant table keyed by workspace first', async () => {
    const { rows } = await t.db.query<{ table_name: string; first_key: string }>(`
      select c.relname as table_name, a.attname as first_key
        from pg_index i join pg_class c on c.oid = i.indrelid join pg_namespace n on n.oid = c.relnamespace
        join pg_attribute a on a.attrelid = c.oid and a.attnum = i.indkey[0]
       where i.indisprimary and n.nspname = 'public' and not c.relispartition
         and c.relname not in ('workspaces', 'schema_migrations', 'instance_settings')`);
    expect(rows.length).toBeGreaterThan(5);
    // Instance-level by design: a user works in many workspaces (their sessions with them), and the
    // audit log is one hash chain over the whole instance, with each entry's workspace in a column.
    // Rate limits are counted per client address before the workspace is known.
    const instanceLevel = ['users', 'user_sessions', 'audit_log', 'rate_limit_windows'];
    const notWorkspaceFirst = rows.filter((row) => row.first_key !== 'workspace_id').map((row) => row.table_name);
    expect(notWorkspaceFirst.sort()).toEqual(instanceLevel.filter((table) => rows.some((row) => row.table_name === table)).sort());
  });
});

describe('monthly partitions', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase();
  });
  afterAll(async () => t.drop());

  it('are created on demand, once, also when writers race', async () => {
    const times = [new Date('2011-03-15T10:00:00Z'), new Date('2011-03-31T23:59:59.999Z'), new Date('2011-04-01T00:00:00Z')];
    // Separate pools stand for separate processes, each with its own cache of known partitions.
    const pools = [t.db, ...Array.from({ length: 3 }, () => createPool(t.url, 2))];
    await Promise.all(pools.map((db) => ensureMonthlyPartitions(db, 'events', times)));
    await Promise.all(pools.slice(1).map((db) => db.end()));
    const { rows } = await t.db.query<{ name: string }>(
      `select c.relname as name from pg_inherits i join pg_class c on c.oid = i.inhrelid
        where i.inhparent = 'events'::regclass order by 1`,
    );
    expect(rows.map((row) => row.name)).toEqual(['events_y2011m03', 'events_y2011m04']);
    expect(partitionName('events', monthStart(times[1]!))).toBe('events_y2011m03');
  });

  it('leave room on each events page for the row version identity resolution writes', async () => {
    await ensureMonthlyPartitions(t.db, 'events', [new Date('2011-06-01T00:00:00Z')]);
    const { rows } = await t.db.query<{ options: string[] | null }>(`select reloptions as options from pg_class where relname = 'events_y2011m06'`);
    expect(rows[0]?.options).toEqual(['fillfactor=80']);
  });
});

describe('embedded PostgreSQL start-up errors', () => {
  it('names the port and the setting when the port is taken', async () => {
    const port = await freePort();
    const blocker = net.createServer().listen(port, '127.0.0.1');
    await new Promise((resolve) => blocker.once('listening', resolve));
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tp-port-'));
    try {
      const error = await startEmbeddedPostgres({ dataDir, port }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StartupError);
      expect((error as Error).message).toMatch(new RegExp(`Port ${port} .*in use.*TOUCHPOINT_PG_PORT`));
      expect((error as Error).message).not.toContain('\n');
    } finally {
      blocker.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('refuses a data folder from another PostgreSQL major version and says what to do', async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tp-version-'));
    fs.mkdirSync(path.join(dataDir, 'pg'));
    fs.writeFileSync(path.join(dataDir, 'pg', 'PG_VERSION'), `${EMBEDDED_PG_MAJOR - 3}\n`);
    try {
      const error = await startEmbeddedPostgres({ dataDir, port: await freePort() }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StartupError);
      expect((error as Error).message).toMatch(/created by PostgreSQL 14.*embeds PostgreSQL 17.*TOUCHPOINT_DATA_DIR/);
    } finally {
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe('closing a pool', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase();
  });
  afterAll(async () => t.drop());

  it('returns only after PostgreSQL has closed every connection of the pool', async () => {
    const pool = createPool(t.url, 4);
    const clients = await Promise.all([pool.connect(), pool.connect(), pool.connect()]);
    const pids = await Promise.all(clients.map(async (client) => (await client.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!.pid));
    const ended = clients.map((client) => {
      const state = { ended: false };
      client.once('end', () => (state.ended = true));
      return state;
    });
    for (const client of clients) client.release();
    await closePool(pool);
    // pool.end() alone returns while the connections are still closing.
    expect(ended.map((state) => state.ended)).toEqual([true, true, true]);
    const { rows } = await t.db.query<{ n: number }>('select count(*)::int as n from pg_stat_activity where pid = any($1::int[])', [pids]);
    expect(rows[0]!.n).toBe(0);
  });
});

describe('embedded PostgreSQL shared_buffers', () => {
  const GB = 1024 ** 3;

  it('is a quarter of the memory, between 128 MB and 16 GB', () => {
    expect(embeddedSharedBuffersMb(24 * GB)).toBe(6 * 1024);
    expect(embeddedSharedBuffersMb(8 * GB)).toBe(2 * 1024);
    expect(embeddedSharedBuffersMb(2 * GB)).toBe(512);
    expect(embeddedSharedBuffersMb(256 * 1024 * 1024)).toBe(128);
    expect(embeddedSharedBuffersMb(512 * GB)).toBe(16 * 1024);
    expect(embeddedSharedBuffersMb(Number.NaN)).toBe(128);
    expect(availableMemoryBytes()).toBeGreaterThan(0);
    expect(availableMemoryBytes()).toBeLessThanOrEqual(os.totalmem());
  });

  it('takes TOUCHPOINT_PG_SHARED_BUFFERS in megabytes and refuses anything else', () => {
    expect(embeddedSharedBuffersMb(24 * GB, '64')).toBe(64);
    expect(embeddedSharedBuffersMb(24 * GB, ' ')).toBe(6 * 1024);
    for (const bad of ['8', '1.5', '2GB', '-100']) {
      expect(() => embeddedSharedBuffersMb(24 * GB, bad)).toThrow(StartupError);
      expect(() => embeddedSharedBuffersMb(24 * GB, bad)).toThrow(/TOUCHPOINT_PG_SHARED_BUFFERS must be a whole number of megabytes/);
    }
  });

  it('is what the started server runs with, beside its WAL settings', async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tp-buffers-'));
    fs.chmodSync(dataDir, 0o755);
    const previous = process.env.TOUCHPOINT_PG_SHARED_BUFFERS;
    process.env.TOUCHPOINT_PG_SHARED_BUFFERS = '48';
    try {
      const server = await startEmbeddedPostgres({ dataDir, port: await freePort() });
      const db = createPool(server.url, 1);
      try {
        const { rows } = await db.query<{ shared_buffers: string }>('show shared_buffers');
        expect(rows[0]!.shared_buffers).toBe('48MB');
        // The WAL settings ingest relies on: full-page images compressed (pglz: this build has no
        // lz4/zstd, and an unknown method would stop the server from starting), commits flushed.
        const { rows: wal } = await db.query<{ wal_compression: string; synchronous_commit: string }>(
          `select current_setting('wal_compression') as wal_compression, current_setting('synchronous_commit') as synchronous_commit`,
        );
        expect(wal[0]).toEqual({ wal_compression: 'pglz', synchronous_commit: 'on' });
      } finally {
        await db.end();
        await server.stop();
      }
    } finally {
      if (previous === undefined) delete process.env.TOUCHPOINT_PG_SHARED_BUFFERS;
      else process.env.TOUCHPOINT_PG_SHARED_BUFFERS = previous;
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  }, 60_000);
});
