import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { to as copyTo } from 'pg-copy-streams';
import { DuckDBInstance, type DuckDBAppender, type DuckDBConnection, type DuckDBDataChunk } from '@duckdb/node-api';
import type { Db } from '../../storage/database.ts';
import { settledSequence } from '../../storage/settle.ts';

/*
 * The columnar copy of the events for analytics: a DuckDB file in the data folder
 * (`<dataDir>/analytics/events.duckdb`), derived from PostgreSQL — the system of record — and
 * rebuildable from it at any time (delete the file, or `rebuild()`).
 *
 * It follows PostgreSQL like the other intakes (journeys/intake.ts): per workspace a seq cursor,
 * advanced only to a settled position (storage/settle.ts) and below the workspace's identity queue,
 * so every event it copies already has its profile. What changes events after that is followed too:
 *   - merges and unmerges (identity_merges rows, by created_at with an overlap): the profiles
 *     involved are re-read from PostgreSQL (their events up to the cursor replace theirs here);
 *   - deletions (erasure, suppression, retention's row deletes): the seqs logged by the trigger of
 *     migration 0043 are deleted here;
 *   - retention's dropped partitions: rows older than the workspace's event retention are deleted.
 * The data and the cursors change in one DuckDB transaction, so a reader sees a consistent copy.
 * Freshness is visible: `state()` gives each workspace's cursor and the last sync time, and the
 * engine answers only while the last sync is recent (columnar/engine.ts), else PostgreSQL does.
 */

export interface ColumnarState {
  path: string;
  /** When the last sync round finished (ms), null before the first. */
  lastSyncAt: number | null;
  /** Per workspace: the seq up to which events are copied. */
  cursors: Record<string, number>;
  events: number;
}

export interface SyncOutcome {
  copied: number;
  refreshedProfiles: number;
  deleted: number;
  /** False when a writer was still open past the settle timeout: events or deletions after it wait for the next round. */
  settled: boolean;
}

/** Seqs per read: at most this many events (seqs are shared by all workspaces, so often fewer). */
const EVENT_BATCH = 100_000;
/** Merges are re-read this far back each round (a merge's created_at is its transaction's start). */
const MERGE_OVERLAP_MS = 60_000;
const SETTLE_TIMEOUT_MS = 250;
/** Further behind than this many seqs, the copy catches up by COPY in windows of BULK_WINDOW seqs. */
const BULK_THRESHOLD = 500_000;
const BULK_WINDOW = 4_000_000;
const DEFAULT_MAX_LAG_MS = 30_000;

const SCHEMA = `
  create table if not exists events (
    workspace_id uuid not null,
    seq bigint not null,
    profile_id uuid not null,
    type varchar not null,
    event varchar,
    name varchar,
    ts_us bigint not null,
    source_id uuid,
    properties varchar
  );
  create table if not exists sync_state (key varchar primary key, value varchar not null);
`;

const COLUMNS = `seq::text, workspace_id::text, profile_id::text, type, event, name, (extract(epoch from timestamp) * 1000000)::bigint::text, source_id::text, properties::text`;

type PgRow = [string, string, string, string, string | null, string | null, string, string | null, string | null];

export class ColumnarStore {
  private writing: Promise<unknown> = Promise.resolve();
  private lastSyncAt: number | null = null;
  /** Merge rows applied within the overlap, so a round does not re-read them. */
  private seenMerges = new Map<string, number>();

  private constructor(
    readonly path: string,
    private readonly instance: DuckDBInstance,
    private readonly writer: DuckDBConnection,
  ) {}

  static async open(file: string, options: { threads?: number } = {}): Promise<ColumnarStore> {
    if (file !== ':memory:') fs.mkdirSync(path.dirname(file), { recursive: true });
    const instance = await DuckDBInstance.create(file, { threads: String(options.threads ?? 2) });
    const writer = await instance.connect();
    await writer.run(SCHEMA);
    return new ColumnarStore(file, instance, writer);
  }

  /** Further behind than this many seqs, catch up by COPY (tests lower it to exercise that path). */
  bulkThreshold = BULK_THRESHOLD;

  /** Catch up with PostgreSQL before every answer (tests, small installations): read-your-writes at the cost of a sync round per query. */
  syncBeforeRead = false;

  /** How stale the copy may be and still answer (the sync loop runs every second or so). */
  maxLagMs = DEFAULT_MAX_LAG_MS;

  /** When the last sync round finished (ms), null before the first. */
  lastSync(): number | null {
    return this.lastSyncAt;
  }

  /** Null when the copy is fresh enough to answer, else why not (PostgreSQL answers then). */
  staleness(now = Date.now()): string | null {
    if (this.lastSyncAt === null) return 'the columnar copy has not synced yet';
    if (now - this.lastSyncAt > this.maxLagMs) return `the columnar copy last synced ${Math.round((now - this.lastSyncAt) / 1000)} s ago`;
    return null;
  }

  /** A connection of its own for one query (readers see a consistent snapshot while sync writes). */
  async reader(): Promise<DuckDBConnection> {
    return this.instance.connect();
  }

  /**
   * Streams a query's result a chunk at a time on a reader connection of its own, closed after.
   * `rowCount` is passed in because `chunk.rowCount` asks the native binding on every read.
   */
  async streamChunks(sql: string, onChunk: (chunk: DuckDBDataChunk, rowCount: number) => void): Promise<void> {
    const connection = await this.reader();
    try {
      const result = await connection.stream(sql);
      for (;;) {
        const chunk = await result.fetchChunk();
        const rowCount = chunk?.rowCount ?? 0;
        if (!chunk || rowCount === 0) break;
        onChunk(chunk, rowCount);
      }
    } finally {
      connection.closeSync();
    }
  }

  async state(): Promise<ColumnarState> {
    const cursors = await this.cursors(this.writer);
    const count = await this.writer.runAndReadAll('select count(*)::double as n from events');
    return { path: this.path, lastSyncAt: this.lastSyncAt, cursors: Object.fromEntries(cursors), events: Number(count.getRowObjects()[0]!.n) };
  }

  /** One sync round over every workspace; serialised with other rounds and rebuilds. */
  sync(db: Db): Promise<SyncOutcome> {
    const run = this.writing.then(() => this.syncOnce(db));
    this.writing = run.catch(() => undefined);
    return run;
  }

  /**
   * Syncs until a round settled (read-your-writes: `syncBeforeRead`, tests). One round gives up
   * waiting for an open writer after 250 ms and copies only what settled before it, so on a busy
   * database a single round can leave a just-committed event out. Bounded: after `maxRounds` the
   * copy answers as fresh as it got.
   */
  async catchUp(db: Db, maxRounds = 40): Promise<SyncOutcome> {
    const total: SyncOutcome = { copied: 0, refreshedProfiles: 0, deleted: 0, settled: false };
    for (let round = 0; round < maxRounds && !total.settled; round++) {
      const outcome = await this.sync(db);
      total.copied += outcome.copied;
      total.refreshedProfiles += outcome.refreshedProfiles;
      total.deleted += outcome.deleted;
      total.settled = outcome.settled;
    }
    return total;
  }

  /** Empties the copy and reads everything again from PostgreSQL. */
  rebuild(db: Db): Promise<SyncOutcome> {
    const run = this.writing.then(async () => {
      await this.writer.run('begin; delete from events; delete from sync_state; commit;');
      await db.query('delete from analytics_event_deletions');
      this.seenMerges.clear();
      return this.syncOnce(db);
    });
    this.writing = run.catch(() => undefined);
    return run;
  }

  close(): void {
    this.writer.closeSync();
    this.instance.closeSync();
  }

  private async cursors(connection: DuckDBConnection): Promise<Map<string, number>> {
    const reader = await connection.runAndReadAll(`select key, value from sync_state where key like 'events:%'`);
    return new Map(reader.getRowObjects().map((row) => [String(row.key).slice('events:'.length), Number(row.value)]));
  }

  private async syncOnce(db: Db): Promise<SyncOutcome> {
    const outcome: SyncOutcome = { copied: 0, refreshedProfiles: 0, deleted: 0, settled: true };
    const settled = await settledSequence(db, `'events_seq'::regclass`, SETTLE_TIMEOUT_MS);
    const deletionsSettled = await settledSequence(db, `pg_get_serial_sequence('analytics_event_deletions', 'id')::regclass`, SETTLE_TIMEOUT_MS);
    outcome.settled = settled !== null && deletionsSettled !== null;
    const cursors = await this.cursors(this.writer);
    const { rows: workspaces } = await db.query<{ id: string; first_queued: string | null; retention_days: number | null }>(
      `select w.id, (select min(q.seq) from identity_queue q where q.workspace_id = w.id)::text as first_queued, s.event_retention_days as retention_days
         from workspaces w left join privacy_settings s on s.workspace_id = w.id`,
    );
    for (const workspace of workspaces) {
      let cursor = cursors.get(workspace.id) ?? 0;
      if (settled !== null) {
        const upTo = workspace.first_queued === null ? settled : Math.min(settled, Number(workspace.first_queued) - 1);
        // Far behind (a new copy, a rebuild): COPY out in large seq windows, read by DuckDB's CSV
        // reader — about 10× less CPU than rows through the client and the appender.
        while (upTo - cursor > this.bulkThreshold) {
          const next = Math.min(upTo, cursor + BULK_WINDOW);
          const copied = await this.bulkCopy(db, workspace.id, cursor, next);
          outcome.copied += copied;
          cursor = next;
        }
        while (cursor < upTo) {
          // A window of seqs, unordered: `order by seq limit` would sort every partition's events
          // above the cursor on each batch (events are partitioned by time, not seq).
          const next = Math.min(upTo, cursor + EVENT_BATCH);
          const { rows } = await db.query<PgRow>({
            text: `select ${COLUMNS} from events where workspace_id = $1 and seq > $2 and seq <= $3 and profile_id is not null`,
            values: [workspace.id, cursor, next],
            rowMode: 'array',
          });
          await this.inTransaction(async () => {
            await this.append(rows);
            await this.setCursor(workspace.id, next);
          });
          outcome.copied += rows.length;
          cursor = next;
          if (rows.length === 0 && cursor < upTo) {
            // Seqs are shared by every workspace: jump over a gap instead of reading it window by window.
            const { rows: ahead } = await db.query<{ first: string | null }>(
              'select min(seq)::text as first from events where workspace_id = $1 and seq > $2 and seq <= $3 and profile_id is not null',
              [workspace.id, cursor, upTo],
            );
            cursor = ahead[0]!.first === null ? upTo : Number(ahead[0]!.first) - 1;
            await this.setCursor(workspace.id, cursor);
          }
        }
      }
      outcome.refreshedProfiles += await this.followMerges(db, workspace.id, cursor);
      if (workspace.retention_days) {
        const cutoffUs = (Date.now() - workspace.retention_days * 86_400_000) * 1000;
        await this.writer.run(`delete from events where workspace_id = '${workspace.id}'::uuid and ts_us < ${Math.floor(cutoffUs)}`);
      }
    }
    if (deletionsSettled !== null) outcome.deleted = await this.followDeletions(db, deletionsSettled);
    this.lastSyncAt = Date.now();
    return outcome;
  }

  private async bulkCopy(db: Db, workspaceId: string, after: number, upTo: number): Promise<number> {
    const folder = this.path === ':memory:' ? os.tmpdir() : path.dirname(this.path);
    const file = path.join(folder, `copy-${process.pid}-${Date.now()}.csv`);
    const client = await db.connect();
    try {
      const out = client.query(
        copyTo(
          `copy (select workspace_id, seq, profile_id, type, event, name, (extract(epoch from timestamp) * 1000000)::bigint, source_id, properties::text
                   from events where workspace_id = '${uuidText(workspaceId)}' and seq > ${Math.floor(after)} and seq <= ${Math.floor(upTo)} and profile_id is not null)
             to stdout with (format csv)`,
        ),
      );
      await pipeline(out, fs.createWriteStream(file));
    } finally {
      client.release();
    }
    try {
      let copied = 0;
      await this.inTransaction(async () => {
        const reader = await this.writer.runAndReadAll(
          `insert into events select * from read_csv(${sqlString(file)}, header = false, quote = '"', escape = '"', allow_quoted_nulls = false, columns = {
             'workspace_id': 'UUID', 'seq': 'BIGINT', 'profile_id': 'UUID', 'type': 'VARCHAR', 'event': 'VARCHAR', 'name': 'VARCHAR',
             'ts_us': 'BIGINT', 'source_id': 'UUID', 'properties': 'VARCHAR' })`,
        );
        copied = Number(reader.getRows()[0]?.[0] ?? 0);
        await this.setCursor(workspaceId, upTo);
      });
      return copied;
    } finally {
      fs.rmSync(file, { force: true });
    }
  }

  private async followMerges(db: Db, workspaceId: string, cursor: number): Promise<number> {
    const key = `merges:${workspaceId}`;
    const reader = await this.writer.runAndReadAll(`select value from sync_state where key = '${key}'`);
    const since = Number(reader.getRowObjects()[0]?.value ?? 0);
    const { rows } = await db.query<{ id: string; survivor_id: string; absorbed_ids: string[]; at: string }>(
      `select id, survivor_id, absorbed_ids, (extract(epoch from created_at) * 1000)::bigint::text as at
         from identity_merges where workspace_id = $1 and created_at >= to_timestamp($2 / 1000.0) order by created_at`,
      [workspaceId, Math.max(0, since - MERGE_OVERLAP_MS)],
    );
    const fresh = rows.filter((row) => !this.seenMerges.has(row.id));
    const latest = rows.reduce((max, row) => Math.max(max, Number(row.at)), since);
    for (const [id, at] of this.seenMerges) if (at < latest - 2 * MERGE_OVERLAP_MS) this.seenMerges.delete(id);
    if (fresh.length === 0) {
      if (latest !== since) await this.writer.run(`insert or replace into sync_state values ('${key}', '${latest}')`);
      return 0;
    }
    const profiles = [...new Set(fresh.flatMap((row) => [row.survivor_id, ...row.absorbed_ids]))];
    await this.refreshProfiles(db, workspaceId, profiles, cursor, async () => {
      await this.writer.run(`insert or replace into sync_state values ('${key}', '${latest}')`);
    });
    for (const row of fresh) this.seenMerges.set(row.id, Number(row.at));
    return profiles.length;
  }

  /** Replaces the given profiles' events with PostgreSQL's, up to the workspace's cursor. */
  async refreshProfiles(db: Db, workspaceId: string, profileIds: readonly string[], cursor: number, alsoInTransaction?: () => Promise<void>): Promise<void> {
    for (let start = 0; start < profileIds.length; start += 1000) {
      const chunk = profileIds.slice(start, start + 1000);
      const { rows } = await db.query<PgRow>({
        text: `select ${COLUMNS} from events where workspace_id = $1 and profile_id = any($2::uuid[]) and seq <= $3`,
        values: [workspaceId, chunk, cursor],
        rowMode: 'array',
      });
      const list = chunk.map((id) => `'${uuidText(id)}'`).join(', ');
      await this.inTransaction(async () => {
        await this.writer.run(`delete from events where workspace_id = '${uuidText(workspaceId)}'::uuid and profile_id in (${list})`);
        await this.append(rows);
        if (start + 1000 >= profileIds.length && alsoInTransaction) await alsoInTransaction();
      });
    }
  }

  private async followDeletions(db: Db, settled: number): Promise<number> {
    let deleted = 0;
    for (;;) {
      const { rows } = await db.query<{ id: string; seq: string }>(
        'select id::text, seq::text from analytics_event_deletions where id <= $1 order by id limit 10000',
        [settled],
      );
      if (rows.length === 0) return deleted;
      await this.writer.run(`delete from events where seq in (${rows.map((row) => Number(row.seq)).join(', ')})`);
      await db.query('delete from analytics_event_deletions where id <= $1', [rows.at(-1)!.id]);
      deleted += rows.length;
      if (rows.length < 10000) return deleted;
    }
  }

  private async setCursor(workspaceId: string, seq: number): Promise<void> {
    await this.writer.run(`insert or replace into sync_state values ('events:${uuidText(workspaceId)}', '${seq}')`);
  }

  private async inTransaction(work: () => Promise<void>): Promise<void> {
    await this.writer.run('begin');
    try {
      await work();
      await this.writer.run('commit');
    } catch (error) {
      await this.writer.run('rollback');
      throw error;
    }
  }

  private async append(rows: readonly PgRow[]): Promise<void> {
    if (rows.length === 0) return;
    const appender: DuckDBAppender = await this.writer.createAppender('events');
    try {
      for (const row of rows) {
        appender.appendVarchar(row[1]);
        appender.appendBigInt(BigInt(row[0]));
        appender.appendVarchar(row[2]);
        appender.appendVarchar(row[3]);
        for (const value of [row[4], row[5]]) appendNullableVarchar(appender, value);
        appender.appendBigInt(BigInt(row[6]));
        for (const value of [row[7], row[8]]) appendNullableVarchar(appender, value);
        appender.endRow();
      }
      appender.flushSync();
    } finally {
      appender.closeSync();
    }
  }
}

const sqlString = (text: string) => `'${text.replaceAll("'", "''")}'`;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A uuid checked before it is put into DuckDB SQL text. */
export function uuidText(id: string): string {
  if (!UUID.test(id)) throw new Error(`Not a uuid: ${id}`);
  return id;
}

let active: ColumnarStore | null = null;

/** The process's columnar store, when one is open (`touchpoint start` opens it; tests and benches may set their own). */
export function activeColumnarStore(): ColumnarStore | null {
  return active;
}

export function setActiveColumnarStore(store: ColumnarStore | null): void {
  active = store;
}

function appendNullableVarchar(appender: DuckDBAppender, value: string | null): void {
  if (value === null) appender.appendNull();
  else appender.appendVarchar(value);
}
