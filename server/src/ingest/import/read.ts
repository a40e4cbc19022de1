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

/** csv for `.csv`, ndjson for `.ndjson`/`.jsonl`/`.json`, each optionally `.gz`; null when the name does not say. */
export function formatFromName(file: string): FileFormat | null {
  const name = path.basename(file).toLowerCase().replace(/\.gz$/, '');
  if (name.endsWith('.csv')) return 'csv';
  if (name.endsWith('.ndjson') || name.endsWith('.jsonl') || name.endsWith('.json')) return 'ndjson';
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
  /** A record the CSV parser could not read (e.g. an unbalanced quote); `raw` is its text. */
  | { kind: 'malformed'; line: number; message: string; raw: string };

/** Line breaks inside quoted fields, counted the way csv-parse counts lines (CR and LF each). */
function embeddedBreaks(fields: readonly string[]): number {
  let count = 0;
  for (const field of fields) {
    for (let i = field.indexOf('\n'); i >= 0; i = field.indexOf('\n', i + 1)) count++;
    for (let i = field.indexOf('\r'); i >= 0; i = field.indexOf('\r', i + 1)) count++;
  }
  return count;
}

/**
 * Streams CSV records with the line each starts on. The first record is the header. Records of
 * the wrong length come through (the caller rejects them). A quote inside an unquoted field is
 * kept as a character (`TV 5" screen`); a quoted field never closed swallows the rest of the
 * file, which comes back as one `malformed` item holding that text.
 */
export async function* readCsv(content: Readable): AsyncGenerator<CsvItem> {
  const malformed: CsvItem[] = [];
  // csv-parse 5.6 implements on_skip but its type declarations lack it.
  const options: Options & { on_skip: (error: CsvError | undefined, raw: string | undefined) => void } = {
    bom: true,
    info: true,
    raw: true,
    relax_column_count: true,
    relax_quotes: true,
    skip_empty_lines: true,
    skip_records_with_error: true,
    on_skip: (error: CsvError | undefined, raw: string | undefined) => {
      // The parser reports the line it stopped on; the record started as many breaks earlier.
      const text = raw ?? '';
      const lastLine = (error as { lines?: number } | undefined)?.lines ?? 0;
      const line = Math.max(1, lastLine - embeddedBreaks([text.replace(/[\r\n]+$/, '')]));
      malformed.push({ kind: 'malformed', line, message: error?.message ?? 'unreadable CSV record', raw: text });
    },
  };
  const parser = parse(options);
  content.once('error', (error) => parser.destroy(error));
  content.pipe(parser);
  let header = true;
  try {
    for await (const item of parser as AsyncIterable<{ record: string[]; info: { lines: number } }>) {
      while (malformed.length > 0) yield malformed.shift()!;
      const line = item.info.lines - embeddedBreaks(item.record);
      yield { kind: header ? 'header' : 'row', line, fields: item.record };
      header = false;
    }
    while (malformed.length > 0) yield malformed.shift()!;
  } finally {
    // The consumer may stop early (an unknown column, a failed batch): release the file.
    content.destroy();
    parser.destroy();
  }
}

/** Streams the non-blank lines of an NDJSON file with their line numbers. */
export async function* readNdjson(content: Readable): AsyncGenerator<{ line: number; text: string }> {
  const lines = readline.createInterface({ input: content, crlfDelay: Infinity });
  let line = 0;
  try {
    for await (const text of lines) {
      line++;
      const clean = line === 1 ? text.replace(/^\uFEFF/, '') : text;
      if (clean.trim() === '') continue;
      yield { line, text: clean };
    }
  } finally {
    lines.close();
    content.destroy();
  }
}
