import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import type { Db } from '../../storage/database.ts';
import type { SourceRef } from '../store.ts';
import { ImportError } from './errors.ts';
import type { ImportProgress } from './progress.ts';
import { runImport, type ImportPlan, type ImportSummary } from './run.ts';

/*
 * Imports started over HTTP (the dashboard's upload): the uploaded file is written to a temporary
 * folder, then imported by the same runImport as `touchpoint import`, in the background. Progress
 * lives in this process's memory — an import is one process's work, like the CLI's — and the
 * rejects file stays on disk for download until the job is evicted (the newest JOBS_PER_WORKSPACE
 * per workspace are kept) or JOB_TTL_MS after it ended.
 */

export const JOBS_PER_WORKSPACE = 20;
export const JOB_TTL_MS = 6 * 3600_000;

const Instant = Type.String({ format: 'date-time' });

export const ImportJobSchema = Type.Object({
  id: Type.String({ format: 'uuid' }),
  sourceId: Type.String({ format: 'uuid' }),
  sourceName: Type.String(),
  fileName: Type.String(),
  format: Type.Union([Type.Literal('csv'), Type.Literal('ndjson')]),
  status: Type.Union([Type.Literal('running'), Type.Literal('done'), Type.Literal('failed')]),
  progress: Type.Object({
    rowsRead: Type.Integer(),
    stored: Type.Integer(),
    duplicates: Type.Integer(),
    rejected: Type.Integer(),
    bytesRead: Type.Integer({ description: 'Bytes of the uploaded file read so far (compressed for gzip)' }),
    totalBytes: Type.Integer(),
    elapsedMs: Type.Integer(),
  }),
  rejectReasons: Type.Record(Type.String(), Type.Integer(), { description: 'Rejected rows per reason (when done)' }),
  hasRejects: Type.Boolean({ description: 'Whether GET /v1/imports/{id}/rejects.ndjson has rows' }),
  error: Type.Union([Type.Object({ code: Type.String(), message: Type.String(), field: Type.Union([Type.String(), Type.Null()]) }), Type.Null()]),
  createdAt: Instant,
  finishedAt: Type.Union([Instant, Type.Null()]),
});
export type ImportJob = Static<typeof ImportJobSchema>;
export const ImportJobListSchema = Type.Object({ items: Type.Array(ImportJobSchema) });

interface JobRecord {
  workspaceId: string;
  view: ImportJob;
  uploadFile: string;
  rejectsFile: string;
  done: Promise<void>;
  timer?: NodeJS.Timeout;
}

/** CLI option names in ImportError fields → the HTTP query parameter names. */
export function apiFieldOf(cliField: string | undefined): string | undefined {
  if (!cliField) return undefined;
  if (cliField === '--timezone') return 'timeZone';
  if (cliField === '--source') return 'source';
  if (cliField === '--file') return 'file';
  return cliField.replace(/^--/, '').replace(/-([a-z])/g, (_, letter: string) => letter.toUpperCase());
}

export function createImportJobs(options: { directory?: string; now?: () => Date } = {}) {
  const directory = options.directory ?? path.join(os.tmpdir(), 'touchpoint-imports');
  const now = options.now ?? (() => new Date());
  const jobs = new Map<string, JobRecord>();

  const remove = (record: JobRecord) => {
    jobs.delete(record.view.id);
    if (record.timer) clearTimeout(record.timer);
    void fs.promises.rm(record.uploadFile, { force: true });
    void fs.promises.rm(record.rejectsFile, { force: true });
  };

  const evict = (workspaceId: string) => {
    const mine = [...jobs.values()].filter((job) => job.workspaceId === workspaceId);
    // Oldest finished first; running imports are never evicted.
    const finished = mine.filter((job) => job.view.status !== 'running').sort((a, b) => a.view.createdAt.localeCompare(b.view.createdAt));
    while (mine.length > JOBS_PER_WORKSPACE && finished.length > 0) {
      const oldest = finished.shift()!;
      remove(oldest);
      mine.splice(mine.indexOf(oldest), 1);
    }
  };

  return {
    directory,

    /** A fresh path for an upload (the caller writes the file, then calls start). */
    async uploadPath(extension: string): Promise<{ id: string; file: string }> {
      await fs.promises.mkdir(directory, { recursive: true, mode: 0o700 });
      const id = randomUUID();
      return { id, file: path.join(directory, `${id}.${extension}`) };
    },

    /** Starts importing an uploaded file in the background; the job is returned at once. */
    start(db: Db, input: { id: string; plan: ImportPlan; source: SourceRef & { name: string }; fileName: string; totalBytes: number }): ImportJob {
      const { id, plan, source } = input;
      const view: ImportJob = {
        id,
        sourceId: source.sourceId,
        sourceName: source.name,
        fileName: input.fileName,
        format: plan.format,
        status: 'running',
        progress: { rowsRead: 0, stored: 0, duplicates: 0, rejected: 0, bytesRead: 0, totalBytes: input.totalBytes, elapsedMs: 0 },
        rejectReasons: {},
        hasRejects: false,
        error: null,
        createdAt: now().toISOString(),
        finishedAt: null,
      };
      const record: JobRecord = { workspaceId: source.workspaceId, view, uploadFile: plan.file, rejectsFile: plan.rejectsFile, done: Promise.resolve() };
      const onProgress = (progress: ImportProgress) => {
        view.progress = { ...progress };
      };
      const finish = async (update: Partial<ImportJob>) => {
        // The upload goes before the job reads as ended; the rejects stay for download.
        await fs.promises.rm(plan.file, { force: true });
        Object.assign(view, update, { finishedAt: now().toISOString() });
        record.timer = setTimeout(() => remove(record), JOB_TTL_MS);
        record.timer.unref();
      };
      record.done = runImport(db, plan, { onProgress, source }).then(
        (summary: ImportSummary) =>
          finish({
            status: 'done',
            rejectReasons: summary.rejectReasons,
            hasRejects: summary.rejectsFile !== null,
            progress: { ...view.progress, rowsRead: summary.rowsRead, stored: summary.stored, duplicates: summary.duplicates, rejected: summary.rejected, elapsedMs: summary.elapsedMs },
          }),
        (error: unknown) =>
          finish({
            status: 'failed',
            hasRejects: view.progress.rejected > 0,
            error:
              error instanceof ImportError
                ? { code: error.code, message: error.message, field: apiFieldOf(error.field) ?? null }
                : { code: 'import_failed', message: (error as Error).message, field: null },
          }),
      );
      jobs.set(id, record);
      evict(source.workspaceId);
      return view;
    },

    get(workspaceId: string, id: string): ImportJob | undefined {
      const record = jobs.get(id);
      return record && record.workspaceId === workspaceId ? record.view : undefined;
    },

    /** Newest first. */
    list(workspaceId: string): ImportJob[] {
      return [...jobs.values()]
        .filter((record) => record.workspaceId === workspaceId)
        .map((record) => record.view)
        .sort((a, b) => b.createdAt.localeCompare(a.createdAt));
    },

    rejectsFile(workspaceId: string, id: string): string | undefined {
      const record = jobs.get(id);
      return record && record.workspaceId === workspaceId && record.view.hasRejects ? record.rejectsFile : undefined;
    },

    /** Resolves when the job has ended (tests, shutdown). */
    async settled(id: string): Promise<void> {
      await jobs.get(id)?.done;
    },

    /** Waits for running imports and removes every file (server close). */
    async close(): Promise<void> {
      await Promise.all([...jobs.values()].map((record) => record.done));
      for (const record of [...jobs.values()]) remove(record);
    },
  };
}
export type ImportJobs = ReturnType<typeof createImportJobs>;
