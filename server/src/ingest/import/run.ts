import fs from 'node:fs';
import { once } from 'node:events';
import type { Db } from '../../storage/database.ts';
import { resolveKey, touchKey } from '../../workspaces/store.ts';
import { normalizeEvent, type NormalizedEvent } from '../normalize.ts';
import { storeEvents, type SourceRef } from '../store.ts';
import { suppressionFilter } from '../../privacy/suppression.ts';
import { ImportError } from './errors.ts';
import { parseMappings, type FieldMapping } from './mapping.ts';
import { rowsPerSecond, type ImportProgress } from './progress.ts';
import { formatFromName, openImportFile, readCsv, readNdjson, type FileFormat } from './read.ts';
import { createCsvRowConverter, createJsonRowConverter, headerNames, type ImportEventType, type RowOptions, type RowResult } from './row-event.ts';
import { isValidTimeZone } from './time.ts';

/** What the user asked for, as the CLI options say it. */
export interface ImportRequest {
  file: string;
  writeKey: string;
  format?: FileFormat;
  type?: ImportEventType;
  /** Constant event name of track rows. */
  event?: string;
  /** Column holding the event name (same as `--map event=Column`). */
  eventColumn?: string;
  /** `target=Column[:type],…` items; several values add up. */
  map?: string[];
  onlyMapped?: boolean;
  /** IANA zone of naive date-times; default UTC. */
  timeZone?: string;
  /** Default `<file>.rejects.ndjson`. */
  rejectsFile?: string;
  batchSize?: number;
  /** Batches being stored at the same time. */
  concurrency?: number;
  /** Read, map and validate every row, write the rejects file, store nothing. */
  dryRun?: boolean;
}

/** A request checked for consistency, before any file or database is touched. */
export interface ImportPlan {
  file: string;
  writeKey: string;
  format: FileFormat;
  row: Omit<RowOptions, 'sourceId'>;
  rejectsFile: string;
  batchSize: number;
  concurrency: number;
  dryRun: boolean;
}

export interface ImportSummary {
  file: string;
  format: FileFormat;
  gzip: boolean;
  dryRun: boolean;
  /** Data rows read (CSV: excluding the header; NDJSON: non-blank lines). */
  rowsRead: number;
  /** Rows that became valid events (stored, duplicates, or — in a dry run — would be stored). */
  valid: number;
  stored: number;
  duplicates: number;
  /** Valid rows dropped for carrying an identifier of a person erased on request (not written to the rejects file). */
  suppressed: number;
  rejected: number;
  /** Rejected rows per reason, e.g. `{ missing_identity: 135080 }`. */
  rejectReasons: Record<string, number>;
  /** Null when no row was rejected (the file is then removed rather than left stale). */
  rejectsFile: string | null;
  elapsedMs: number;
  rowsPerSecond: number;
}

export interface ImportHooks {
  onProgress?: (progress: ImportProgress) => void;
  now?: () => Date;
  /**
   * The source, already resolved and authorised by the caller (the HTTP upload route, whose user
   * chose it); the plan's write key is then not read.
   */
  source?: SourceRef;
}

export const DEFAULT_BATCH_SIZE = 1_000;
export const MAX_BATCH_SIZE = 10_000;
export const DEFAULT_CONCURRENCY = 3;
const MAX_CONCURRENCY = 8;
const QUARANTINE_ENDPOINT = 'file_import';

function invalidOption(field: string, message: string): ImportError {
  return new ImportError('invalid_option', message, field);
}

function positiveInteger(value: number | undefined, fallback: number, max: number, field: string): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 1 || value > max) throw invalidOption(field, `${field} must be an integer from 1 to ${max}`);
  return value;
}

/** Checks that the options make sense together; every problem is an ImportError naming the option. */
export function planImport(request: ImportRequest): ImportPlan {
  const format = request.format ?? formatFromName(request.file);
  if (!format) {
    throw new ImportError('unknown_format', `Cannot tell the format of ${request.file} from its name: pass --format csv or --format ndjson`, '--format');
  }
  const timeZone = request.timeZone ?? 'UTC';
  if (!isValidTimeZone(timeZone)) throw invalidOption('--timezone', `"${timeZone}" is not an IANA time zone (e.g. Europe/London)`);

  const mappings: FieldMapping[] = parseMappings(request.map ?? []);
  if (request.event !== undefined && request.eventColumn !== undefined) {
    throw invalidOption('--event', 'Use either --event (one name for every row) or --event-column, not both');
  }
  if (request.event !== undefined && request.event.trim() === '') throw invalidOption('--event', '--event needs a non-empty name');
  if (request.eventColumn !== undefined) {
    if (mappings.some((mapping) => mapping.root === 'event')) throw invalidOption('--event-column', '--event-column and --map event=… both name the event column');
    mappings.push({ target: 'event', root: 'event', path: [], columns: [request.eventColumn], type: undefined });
  }
  const namesEvent = request.event !== undefined || mappings.some((mapping) => mapping.root === 'event');
  const mapped = format === 'csv' || mappings.length > 0;

  if (request.onlyMapped && mappings.length === 0) throw invalidOption('--only-mapped', '--only-mapped needs --map');
  if (mapped && !request.type) {
    throw invalidOption('--type', format === 'csv' ? 'CSV rows need --type identify or --type track' : 'Mapped NDJSON lines need --type identify or --type track');
  }
  if (request.type === 'identify' && namesEvent) throw invalidOption('--event', 'identify rows have no event name: drop --event/--event-column or use --type track');
  if (mapped && request.type === 'track' && !namesEvent) {
    throw invalidOption('--event', 'track rows need an event name: --event "Order Completed", --event-column <col> or --map event=<col>');
  }

  return {
    file: request.file,
    writeKey: request.writeKey,
    format,
    row: { type: request.type, event: request.event, mappings, onlyMapped: request.onlyMapped ?? false, timeZone },
    rejectsFile: request.rejectsFile ?? `${request.file}.rejects.ndjson`,
    batchSize: positiveInteger(request.batchSize, DEFAULT_BATCH_SIZE, MAX_BATCH_SIZE, '--batch-size'),
    concurrency: positiveInteger(request.concurrency, DEFAULT_CONCURRENCY, MAX_CONCURRENCY, '--concurrency'),
    dryRun: request.dryRun ?? false,
  };
}

async function resolveSource(db: Db, writeKey: string): Promise<SourceRef> {
  const resolved = await resolveKey(db, writeKey);
  if (!resolved) throw new ImportError('unauthorized', 'Unknown or disabled write key (check --source, and that its source and workspace are active)', '--source');
  if (resolved.kind !== 'write' || !resolved.sourceId) {
    throw new ImportError('unauthorized', 'This is a server key; importing needs a source write key', '--source');
  }
  await touchKey(db, resolved.workspaceId, resolved.keyId);
  return { workspaceId: resolved.workspaceId, sourceId: resolved.sourceId };
}

async function openRejects(file: string): Promise<fs.WriteStream> {
  const stream = fs.createWriteStream(file, { flags: 'w' });
  try {
    await once(stream, 'open');
  } catch (error) {
    throw new ImportError('unwritable_rejects', `Cannot write the rejects file ${file} (${(error as Error).message}): pass --rejects <path>`, '--rejects');
  }
  return stream;
}

/** Ends the stream and waits until it is closed; write errors are left to its 'error' listener. */
function closeStream(stream: fs.WriteStream): Promise<void> {
  if (stream.closed) return Promise.resolve();
  return new Promise((resolve) => {
    stream.once('close', resolve);
    stream.end();
  });
}

interface PendingRow {
  event: NormalizedEvent;
  line: number;
  row: () => unknown;
}

function describeColumn(mappings: readonly FieldMapping[], field: string | null): string {
  const mapping = field ? mappings.find((candidate) => candidate.target === field) : undefined;
  return mapping ? ` (${field} comes from column ${mapping.columns.join('*')})` : '';
}

function csvRowValue(header: readonly string[], fields: readonly string[]): unknown {
  if (fields.length !== header.length) return fields;
  const row: Record<string, string | undefined> = {};
  header.forEach((name, i) => {
    // Plain assignment to `__proto__` would set the prototype and drop the value.
    if (name === '__proto__') Object.defineProperty(row, name, { value: fields[i], enumerable: true, writable: true, configurable: true });
    else row[name] = fields[i];
  });
  return row;
}

function jsonRowValue(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/**
 * Imports a CSV or NDJSON file through the same validation (normalizeEvent, historical) and
 * storage (storeEvents) as the HTTP API: streamed in batches with a few in flight, every row
 * either stored, counted as a duplicate, or written to the rejects file with its line and reason.
 */
export async function runImport(db: Db, plan: ImportPlan, hooks: ImportHooks = {}): Promise<ImportSummary> {
  const now = hooks.now ?? (() => new Date());
  const started = Date.now();
  const source = hooks.source ?? (await resolveSource(db, plan.writeKey));
  const file = await openImportFile(plan.file, plan.format);
  let rejects: fs.WriteStream;
  try {
    rejects = await openRejects(plan.rejectsFile);
  } catch (error) {
    file.content.destroy();
    throw error;
  }
  const rowOptions: RowOptions = { ...plan.row, sourceId: source.sourceId };
  // A rejects file that cannot be written (disk full) must stop the import: rejected rows
  // would otherwise vanish.
  let rejectsError: Error | undefined;
  rejects.on('error', (error) => (rejectsError ??= error));
  /** Waits for the rejects file to drain, or stops on its write error. */
  const rejectsFailed = (error: Error) =>
    new ImportError('unwritable_rejects', `Writing the rejects file ${plan.rejectsFile} failed: ${error.message}`, '--rejects');
  const afterRow = async () => {
    if (rejects.writableNeedDrain && !rejectsError) await once(rejects, 'drain').catch(() => undefined);
    if (rejectsError) throw rejectsFailed(rejectsError);
  };

  const stats = { rowsRead: 0, valid: 0, stored: 0, duplicates: 0, suppressed: 0, rejected: 0 };
  const reasons: Record<string, number> = {};
  const inflight = new Set<Promise<void>>();
  let failure: { error: unknown } | undefined;
  let batch: PendingRow[] = [];
  let receivedAt = now();

  const storeFailed = (error: unknown) =>
    new ImportError(
      'store_failed',
      `Storing rows failed after ${stats.stored} were stored (${(error as Error).message}). ` +
        'Running the same import again is safe: rows already stored count as duplicates.',
    );

  const progress = () =>
    hooks.onProgress?.({ ...stats, bytesRead: file.bytesRead(), totalBytes: file.size, elapsedMs: Date.now() - started });

  const reject = (line: number, reason: string, field: string | null, message: string, row: unknown) => {
    stats.rejected++;
    reasons[reason] = (reasons[reason] ?? 0) + 1;
    rejects.write(`${JSON.stringify({ line, reason, field, message, row })}\n`);
  };

  const storeBatch = async (rows: PendingRow[]) => {
    // Like live collection: people erased on request are not re-created by an import; their rows
    // are counted, not written to the rejects file (which would keep their data).
    const { kept, suppressed } = await suppressionFilter(db).filter(source.workspaceId, rows.map((pending) => pending.event));
    stats.suppressed += suppressed;
    const result = await storeEvents(db, source, kept, QUARANTINE_ENDPOINT);
    stats.stored += result.stored.length;
    stats.duplicates += result.duplicates;
    if (result.failed.length > 0) {
      const byId = new Map(rows.map((pending) => [pending.event.messageId, pending]));
      for (const item of result.failed) {
        const pending = byId.get(item.messageId ?? '');
        reject(pending?.line ?? 0, item.error, item.field, `${item.message} (kept in quarantine ${item.quarantineId})`, pending?.row() ?? item.payload);
      }
    }
    progress();
  };

  const flush = async () => {
    const rows = batch;
    batch = [];
    receivedAt = now();
    if (rows.length === 0 || plan.dryRun) return;
    const task: Promise<void> = storeBatch(rows)
      .catch((error: unknown) => {
        failure ??= { error };
      })
      .finally(() => inflight.delete(task));
    inflight.add(task);
    // Waiting here stops reading the file: memory stays bounded by concurrency × batch size.
    if (inflight.size >= plan.concurrency) await Promise.race(inflight);
    if (failure) throw failure.error;
  };

  /** Validates one row into the batch or the rejects file; true when the batch is full. */
  const handle = (line: number, result: RowResult, row: () => unknown): boolean => {
    stats.rowsRead++;
    if (stats.rowsRead % 1000 === 0) progress();
    if (!result.ok) {
      reject(line, result.reason, result.field, result.message, row());
      return false;
    }
    const normalized = normalizeEvent(result.event, { receivedAt, historical: true });
    if (!normalized.ok) {
      const { error, field, message } = normalized.rejection;
      reject(line, error, field, `${message}${describeColumn(plan.row.mappings, field)}`, row());
      return false;
    }
    stats.valid++;
    batch.push({ event: normalized.event, line, row });
    return batch.length >= plan.batchSize;
  };

  const readAll = async () => {
    if (plan.format === 'csv') {
      let header: string[] = [];
      let convert: ((fields: readonly string[], line: number) => RowResult) | undefined;
      for await (const items of readCsv(file.content)) {
        for (const item of items) {
          if (item.kind === 'header') {
            header = headerNames(item.fields);
            convert = createCsvRowConverter(item.fields, rowOptions);
            continue;
          }
          if (item.kind === 'malformed') {
            stats.rowsRead++;
            reject(item.line, 'malformed_csv', null, item.message, item.raw);
          } else if (!convert) {
            throw new ImportError('no_header', `${plan.file} has no readable header row (line 1 must name the columns)`, '--file');
          } else {
            const fields = item.fields;
            if (handle(item.line, convert(fields, item.line), () => csvRowValue(header, fields))) await flush();
          }
          if (rejects.writableNeedDrain || rejectsError) await afterRow();
        }
      }
    } else {
      const convert = createJsonRowConverter(rowOptions);
      for await (const items of readNdjson(file.content)) {
        for (const { line, text } of items) {
          if (handle(line, convert(text, line), () => jsonRowValue(text))) await flush();
          if (rejects.writableNeedDrain || rejectsError) await afterRow();
        }
      }
    }
    await flush();
  };

  let stopped: { error: unknown } | undefined;
  try {
    await readAll();
  } catch (error) {
    stopped = { error };
  }
  // Batches already sent finish either way, so the counts below say what is stored.
  await Promise.all(inflight);
  await closeStream(rejects);
  // An empty rejects file (also after a refused mapping) would only suggest there were rejects.
  // Only an empty regular file goes: --rejects may name /dev/stdout.
  if (stats.rejected === 0) {
    const written = await fs.promises.stat(plan.rejectsFile).catch(() => null);
    if (written?.isFile() && written.size === 0) await fs.promises.rm(plan.rejectsFile, { force: true });
  }
  if (stopped?.error instanceof ImportError) throw stopped.error;
  if (failure) throw storeFailed(failure.error);
  if (stopped) {
    throw new ImportError(
      'read_failed',
      `Reading ${plan.file} failed after ${stats.rowsRead} rows, ${stats.stored} of them stored (${(stopped.error as Error).message}). ` +
        'Running the same import again after fixing the file is safe: rows already stored count as duplicates.',
      '--file',
    );
  }
  if (rejectsError) throw rejectsFailed(rejectsError);

  const rejectsFile = stats.rejected > 0 ? plan.rejectsFile : null;
  progress();
  const elapsedMs = Date.now() - started;
  return {
    file: plan.file,
    format: plan.format,
    gzip: file.gzip,
    dryRun: plan.dryRun,
    ...stats,
    rejectReasons: reasons,
    rejectsFile,
    elapsedMs,
    rowsPerSecond: rowsPerSecond(stats.rowsRead, elapsedMs),
  };
}
