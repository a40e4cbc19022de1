import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import type { Readable } from 'node:stream';
import zlib from 'node:zlib';
import { parse, type CsvError, type Options } from 'csv-parse';
import { ImportError } from './errors.ts';

export const FILE_FORMATS = ['csv', 'ndjson'] as const;
export type FileFormat = (typeof FILE_FORMATS)[number];

const GZIP_MAGIC = [0x1f, 0x8b];

/**
 * csv for `.csv`, ndjson for `.ndjson`/`.jsonl`, each optionally `.gz`; null when the name does
 * not say. `.json` is left out on purpose: it is usually one array, not one event per line.
 */
export function formatFromName(file: string): FileFormat | null {
  const name = path.basename(file).toLowerCase().replace(/\.gz$/, '');
  if (name.endsWith('.csv')) return 'csv';
  if (name.endsWith('.ndjson') || name.endsWith('.jsonl')) return 'ndjson';
  return null;
}

export interface ImportFile {
  format: FileFormat;
  gzip: boolean;
  /** Size on disk (compressed when gzip), for the progress ETA. */
  size: number;
  /** Bytes of the file read so far (compressed when gzip). */
  bytesRead(): number;
  /** The decompressed content. */
  content: Readable;
}

/** Opens a CSV or NDJSON file; gzip is recognised by its magic bytes, whatever the name says. */
export async function openImportFile(file: string, format?: FileFormat): Promise<ImportFile> {
  const resolvedFormat = format ?? formatFromName(file);
  if (!resolvedFormat) {
    throw new ImportError('unknown_format', `Cannot tell the format of ${file} from its name: pass --format csv or --format ndjson`, '--format');
  }
  let size: number;
  const head = Buffer.alloc(2);
  try {
    const handle = await fs.promises.open(file, 'r');
    try {
      size = (await handle.stat()).size;
      await handle.read(head, 0, 2, 0);
    } finally {
      await handle.close();
    }
  } catch (error) {
    throw new ImportError('unreadable_file', `Cannot read ${file}: ${(error as Error).message}`, '--file');
  }
  const gzip = size >= 2 && head[0] === GZIP_MAGIC[0] && head[1] === GZIP_MAGIC[1];
  const raw = fs.createReadStream(file, { highWaterMark: 256 * 1024 });
  let content: Readable = raw;
  if (gzip) {
    const gunzip = zlib.createGunzip();
    // pipe() does not forward errors; a failing read must surface from the consumer's loop.
    raw.once('error', (error) => gunzip.destroy(error));
    gunzip.once('close', () => raw.destroy());
    content = raw.pipe(gunzip);
  }
  return { format: resolvedFormat, gzip, size, bytesRead: () => raw.bytesRead, content };
}

export type CsvItem =
  | { kind: 'header'; line: number; fields: string[] }
  | { kind: 'row'; line: number; fields: string[] }
  /** A record the CSV parser could not read (a quote never closed); `raw` is its text. */
  | { kind: 'malformed'; line: number; message: string; raw: string };

/** Physical line breaks inside quoted fields: CRLF, LF and a lone CR each end one line. */
export function lineBreaks(fields: readonly string[]): number {
  let count = 0;
  for (const field of fields) {
    for (let i = field.indexOf('\n'); i >= 0; i = field.indexOf('\n', i + 1)) count++;
    for (let i = field.indexOf('\r'); i >= 0; i = field.indexOf('\r', i + 1)) if (field[i + 1] !== '\n') count++;
  }
  return count;
}

/**
 * Reads what a stream has buffered as arrays of up to `max` items: one await per array instead of
 * per item. Reading only when the consumer asks keeps backpressure intact.
 */
async function* readInArrays<T>(stream: Readable, max = 1_000): AsyncGenerator<T[]> {
  let wake: (() => void) | undefined;
  let ended = false;
  let failed: Error | undefined;
  const signal = () => {
    const resolve = wake;
    wake = undefined;
    resolve?.();
  };
  stream.on('readable', signal);
  stream.once('end', () => {
    ended = true;
    signal();
  });
  stream.once('close', () => {
    ended = true;
    signal();
  });
  stream.once('error', (error) => {
    failed = error;
    signal();
  });
  for (;;) {
    if (failed) throw failed;
    const items: T[] = [];
    let item: T | null;
    while (items.length < max && (item = stream.read() as T | null) !== null) items.push(item);
    if (items.length > 0) {
      yield items;
      continue;
    }
    if (failed) throw failed;
    if (ended) return;
    await new Promise<void>((resolve) => (wake = resolve));
  }
}

/**
 * Streams CSV records, in arrays, with the line each starts on. The first record is the header;
 * blank lines are skipped. Records of the wrong length come through (the caller rejects them).
 * A quote inside an unquoted field is kept as a character (`TV 5" screen`); a quoted field never
 * closed swallows the rest of the file, which comes back as one `malformed` item with that text.
 */
export async function* readCsv(content: Readable): AsyncGenerator<CsvItem[]> {
  // Reported by the parser as it meets them, tagged with how many records preceded them so they
  // are handed out in file order.
  const malformed: Array<{ afterRecords: number; message: string; raw: string }> = [];
  // csv-parse 5.6 implements on_skip but its type declarations lack it. Blank lines are not
  // skipped by the parser (they come as ['']) so that counting records counts lines; its own
  // `info` option would count them too, at a third of the parsing speed.
  const options: Options & { on_skip: (error: CsvError | undefined, raw: string | undefined) => void } = {
    bom: true,
    raw: true,
    relax_column_count: true,
    relax_quotes: true,
    skip_records_with_error: true,
    on_skip: (error, raw) => {
      malformed.push({ afterRecords: parser.info.records, message: error?.message ?? 'unreadable CSV record', raw: raw ?? '' });
    },
  };
  const parser = parse(options);
  content.once('error', (error) => parser.destroy(error));
  content.pipe(parser);
  let records = 0;
  let nextLine = 1;
  let header = true;
  const takeMalformed = (items: CsvItem[]) => {
    while (malformed.length > 0 && malformed[0]!.afterRecords <= records) {
      const { message, raw } = malformed.shift()!;
      items.push({ kind: 'malformed', line: nextLine, message, raw });
      nextLine += lineBreaks([raw.replace(/(\r\n|\r|\n)$/, '')]) + 1;
    }
  };
  try {
    for await (const chunk of readInArrays<{ record: string[] }>(parser)) {
      const items: CsvItem[] = [];
      for (const { record } of chunk) {
        takeMalformed(items);
        records++;
        const line = nextLine;
        nextLine += 1 + lineBreaks(record);
        if (record.length === 1 && record[0] === '') continue;
        items.push({ kind: header ? 'header' : 'row', line, fields: record });
        header = false;
      }
      takeMalformed(items);
      if (items.length > 0) yield items;
    }
    const rest: CsvItem[] = [];
    takeMalformed(rest);
    if (rest.length > 0) yield rest;
  } finally {
    // The consumer may stop early (an unknown column, a failed batch): release the file.
    content.destroy();
    parser.destroy();
  }
}

/** Streams the non-blank lines of an NDJSON file, in arrays, with their line numbers. */
export async function* readNdjson(content: Readable): AsyncGenerator<Array<{ line: number; text: string }>> {
  const lines = readline.createInterface({ input: content, crlfDelay: Infinity });
  let line = 0;
  let items: Array<{ line: number; text: string }> = [];
  try {
    for await (const text of lines) {
      line++;
      const clean = line === 1 ? text.replace(/^\uFEFF/, '') : text;
      if (clean.trim() !== '') items.push({ line, text: clean });
      // Arrays keep the caller's per-line work free of awaits.
      if (items.length >= 1_000) {
        yield items;
        items = [];
      }
    }
    if (items.length > 0) yield items;
  } finally {
    lines.close();
    content.destroy();
  }
}
