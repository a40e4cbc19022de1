import { openPii } from '../privacy/pii-codec.ts';
import { pipeline, Readable } from 'node:stream';
import { stringify } from 'csv-stringify';
import { ApiError } from '../api/errors.ts';
import type { IdentityConfig } from '../identity/identifier-types.ts';
import type { Queryable } from '../storage/database.ts';

/**
 * A segment's current members as CSV, at any size in constant memory: members are read in
 * chunks by profile id (keyset pagination, so no connection or transaction is held while a slow
 * client reads) and each chunk is read only when the client has taken the previous rows.
 * Membership may change during a long export; each member still appears at most once, since
 * the profile id only grows.
 */

export const EXPORT_CHUNK_SIZE = 5_000;
const MAX_COLUMNS = 100;
const MAX_TRAIT_KEY_LENGTH = 200;
/** Separates several live values of one identifier type in a cell (most recently seen first). */
export const MULTI_VALUE_SEPARATOR = '|';

export interface ExportColumns {
  identifiers: string[];
  traits: string[];
}

function splitList(raw: string | undefined, field: string): string[] {
  if (raw === undefined) return [];
  const items = raw.split(',').map((item) => item.trim());
  items.forEach((item, i) => {
    if (!item) throw new ApiError(400, 'invalid_request', `${field} has an empty entry at position ${i + 1}`, field);
  });
  const seen = new Set<string>();
  for (const item of items) {
    if (seen.has(item)) throw new ApiError(400, 'invalid_request', `${field} names "${item}" twice`, field);
    seen.add(item);
  }
  return items;
}

/** The columns asked for: identifier types the workspace knows, any trait keys; 400 naming the field otherwise. */
export function parseExportColumns(query: { identifiers?: string; traits?: string }, config: IdentityConfig): ExportColumns {
  const identifiers = splitList(query.identifiers, 'identifiers');
  for (const type of identifiers) {
    if (!config.types.has(type)) {
      throw new ApiError(400, 'invalid_request', `Unknown identifier type "${type}"; this workspace has ${[...config.types.keys()].join(', ')}`, 'identifiers');
    }
  }
  const traits = splitList(query.traits, 'traits');
  for (const key of traits) {
    if (key.length > MAX_TRAIT_KEY_LENGTH) throw new ApiError(400, 'invalid_request', `Trait key "${key.slice(0, 40)}…" is longer than ${MAX_TRAIT_KEY_LENGTH} characters`, 'traits');
  }
  if (identifiers.length + traits.length > MAX_COLUMNS) {
    throw new ApiError(400, 'invalid_request', `At most ${MAX_COLUMNS} identifier and trait columns can be exported`, 'traits');
  }
  return { identifiers, traits };
}

/** Header row: profile_id, entered_at, one column per identifier type (its name), one per trait (trait.<key>). */
export function headerRow(columns: ExportColumns): string[] {
  return ['profile_id', 'entered_at', ...columns.identifiers, ...columns.traits.map((key) => `trait.${key}`)];
}

/** A trait's JSON value as a cell: text as is, numbers and booleans printed, null empty, objects and arrays as JSON. */
export function traitCell(value: unknown): string {
  if (value === undefined || value === null) return '';
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return JSON.stringify(value);
}

interface MemberRow {
  profile_id: string;
  entered_at: Date;
  identifiers: Record<string, string[]> | null;
  traits: Record<string, unknown> | null;
}

export function memberRow(row: MemberRow, columns: ExportColumns): string[] {
  return [
    row.profile_id,
    row.entered_at.toISOString(),
    ...columns.identifiers.map((type) => (row.identifiers?.[type] ?? []).join(MULTI_VALUE_SEPARATOR)),
    ...columns.traits.map((key) => traitCell(row.traits?.[key])),
  ];
}

/** The members of a segment in profile id order, one chunk per query. */
export async function* memberRows(
  db: Queryable,
  workspaceId: string,
  segmentId: string,
  columns: ExportColumns,
  chunkSize = EXPORT_CHUNK_SIZE,
): AsyncGenerator<string[]> {
  let after = '00000000-0000-0000-0000-000000000000';
  for (;;) {
    const { rows } = await db.query<MemberRow>(
      `select m.profile_id, m.entered_at,
              case when cardinality($4::text[]) > 0 then
                (select jsonb_object_agg(i.type, i.values) from (
                   select type, array_agg(value order by last_seen desc, id desc) as values from profile_identifiers
                    where workspace_id = $1 and profile_id = m.profile_id and unbound_at is null and type = any($4::text[])
                    group by type) i)
              end as identifiers,
              case when cardinality($5::text[]) > 0 then
                (select jsonb_object_agg(t.key, t.value) from profile_traits t
                  where t.workspace_id = $1 and t.profile_id = m.profile_id and t.key = any($5::text[]))
              end as traits
         from segment_memberships m
        where m.workspace_id = $1 and m.segment_id = $2 and m.profile_id > $3::uuid
        order by m.profile_id limit $6`,
      [workspaceId, segmentId, after, columns.identifiers, columns.traits, chunkSize],
    );
    // Identifiers and traits of PII types are stored encrypted (privacy/pii-codec.ts): opened for the export.
    for (const row of await openPii(db, workspaceId, rows)) yield memberRow(row, columns);
    if (rows.length < chunkSize) return;
    after = rows[rows.length - 1]!.profile_id;
  }
}

/**
 * The CSV byte stream: the header row (always, even for an empty segment), then the members.
 * `bom` prefixes a UTF-8 byte order mark, which spreadsheet programs need to read Chinese text.
 */
export function exportCsv(
  db: Queryable,
  workspaceId: string,
  segmentId: string,
  columns: ExportColumns,
  options: { bom?: boolean; chunkSize?: number } = {},
): Readable {
  const csv = stringify({ bom: options.bom ?? false });
  async function* rows() {
    yield headerRow(columns);
    yield* memberRows(db, workspaceId, segmentId, columns, options.chunkSize);
  }
  // pipeline: a query error destroys the CSV stream (the client sees the response cut off, not
  // a well-formed partial file), and a client that goes away stops the reading of chunks.
  pipeline(Readable.from(rows()), csv, () => undefined);
  return csv;
}

/** Content-Disposition for the export: an ASCII fallback name and the UTF-8 one (segment keys may be Chinese). */
export function exportFilename(key: string, at: Date): string {
  const stamp = at.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
  const name = `segment-${key}-${stamp}.csv`;
  const ascii = name.replace(/[^A-Za-z0-9._-]/g, '_');
  // RFC 5987 leaves ' ( ) * out of attr-char; encodeURIComponent does not encode them.
  const encoded = encodeURIComponent(name).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encoded}`;
}
