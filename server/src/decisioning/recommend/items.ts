import { parse } from 'csv-parse/sync';
import { ApiError } from '../../api/errors.ts';
import type { Db } from '../../storage/database.ts';

/*
 * The item catalogue import: CSV (a header row; itemId/id/product_id, name, category, inStock and
 * any other column as an attribute), NDJSON (one object per line) or a JSON array. Valid items are
 * upserted; invalid ones are reported by line with the field and the reason, never dropped silently.
 */

export const MAX_ITEMS_PER_IMPORT = 50_000;

export interface ItemRecord {
  itemId: string;
  name: string | null;
  category: string | null;
  inStock: boolean;
  attributes: Record<string, unknown>;
}

export interface RejectedItem {
  line: number;
  field: string;
  message: string;
}

const ID_FIELDS = ['itemId', 'item_id', 'id', 'product_id', 'productId', 'sku'];
const KNOWN = new Set([...ID_FIELDS, 'name', 'category', 'inStock', 'in_stock']);

function parseStock(value: unknown): boolean | null {
  if (value === undefined || value === null || value === '') return true;
  if (typeof value === 'boolean') return value;
  if (typeof value === 'number') return value === 0 ? false : value === 1 ? true : null;
  const text = String(value).trim().toLowerCase();
  if (['true', '1', 'yes', 'y'].includes(text)) return true;
  if (['false', '0', 'no', 'n'].includes(text)) return false;
  return null;
}

/** One record → an item, or the reason it is refused. CSV cells that look like lists (a|b) become arrays. */
export function toItem(record: Record<string, unknown>, fromCsv: boolean): ItemRecord | { field: string; message: string } {
  const idField = ID_FIELDS.find((field) => record[field] !== undefined && record[field] !== '');
  if (!idField) return { field: 'itemId', message: 'Each item needs an itemId (or id, product_id, sku)' };
  const raw = record[idField];
  if (typeof raw !== 'string' && typeof raw !== 'number') return { field: idField, message: 'The item id must be a string or a number' };
  const itemId = String(raw).trim();
  if (itemId.length === 0 || itemId.length > 200) return { field: idField, message: 'The item id must have 1 to 200 characters' };
  const text = (field: string): string | null | { field: string; message: string } => {
    const value = record[field];
    if (value === undefined || value === null || value === '') return null;
    if (typeof value !== 'string' && typeof value !== 'number') return { field, message: `${field} must be text` };
    const s = String(value);
    return s.length > 500 ? { field, message: `${field} is longer than 500 characters` } : s;
  };
  const name = text('name');
  if (name && typeof name === 'object') return name;
  const category = text('category');
  if (category && typeof category === 'object') return category;
  const stockField = record.inStock !== undefined ? 'inStock' : 'in_stock';
  const inStock = parseStock(record[stockField]);
  if (inStock === null) return { field: stockField, message: `${stockField} must be true/false (or 1/0, yes/no)` };
  const attributes: Record<string, unknown> = {};
  const nested = record.attributes;
  if (nested !== undefined && (typeof nested !== 'object' || nested === null || Array.isArray(nested))) {
    return { field: 'attributes', message: 'attributes must be an object' };
  }
  for (const [key, value] of Object.entries({ ...(nested as Record<string, unknown> | undefined), ...record })) {
    if (KNOWN.has(key) || key === 'attributes' || value === '' || value === undefined) continue;
    attributes[key] = fromCsv && typeof value === 'string' && value.includes('|') ? value.split('|').filter(Boolean) : value;
  }
  return { itemId, name, category, inStock, attributes };
}

/** Reads a request body in the given format into records with their line numbers. */
export function readRecords(body: unknown, format: 'csv' | 'ndjson' | 'json'): Array<{ line: number; record: unknown }> {
  if (format === 'json') {
    const list = Array.isArray(body) ? body : body && typeof body === 'object' && Array.isArray((body as { items?: unknown }).items) ? (body as { items: unknown[] }).items : null;
    if (!list) throw new ApiError(400, 'invalid_request', 'A JSON body must be an array of items or {"items": [...]}', 'items');
    return list.map((record, index) => ({ line: index + 1, record }));
  }
  const text = typeof body === 'string' ? body : Buffer.isBuffer(body) ? body.toString('utf8') : '';
  if (format === 'ndjson') {
    return text.split('\n').flatMap((line, index) => {
      if (line.trim() === '') return [];
      try {
        return [{ line: index + 1, record: JSON.parse(line) as unknown }];
      } catch {
        return [{ line: index + 1, record: Symbol.for('malformed') as unknown }];
      }
    });
  }
  try {
    const rows = parse(text, { columns: true, skip_empty_lines: true, bom: true, trim: true, relax_column_count: false }) as Array<Record<string, string>>;
    // Line 1 is the header.
    return rows.map((record, index) => ({ line: index + 2, record }));
  } catch (error) {
    throw new ApiError(400, 'invalid_csv', `CSV: ${(error as Error).message}`, 'body');
  }
}

export async function importItems(db: Db, workspaceId: string, body: unknown, format: 'csv' | 'ndjson' | 'json'): Promise<{ imported: number; rejected: RejectedItem[] }> {
  const records = readRecords(body, format);
  if (records.length > MAX_ITEMS_PER_IMPORT) {
    throw new ApiError(413, 'payload_too_large', `At most ${MAX_ITEMS_PER_IMPORT} items per import; got ${records.length}`, 'items');
  }
  const items = new Map<string, ItemRecord>();
  const rejected: RejectedItem[] = [];
  for (const { line, record } of records) {
    if (typeof record !== 'object' || record === null || Array.isArray(record)) {
      rejected.push({ line, field: 'item', message: format === 'ndjson' ? 'Not a JSON object' : 'Each item must be an object' });
      continue;
    }
    const item = toItem(record as Record<string, unknown>, format === 'csv');
    if ('message' in item) rejected.push({ line, ...item });
    else items.set(item.itemId, item); // the last line for an id wins
  }
  const list = [...items.values()];
  for (let offset = 0; offset < list.length; offset += 5_000) {
    const chunk = list.slice(offset, offset + 5_000);
    await db.query(
      `insert into decision_items (workspace_id, item_id, name, category, attributes, in_stock, updated_at)
       select $1, x.item_id, x.name, x.category, x.attributes, x.in_stock, now()
         from jsonb_to_recordset($2::jsonb) as x(item_id text, name text, category text, attributes jsonb, in_stock boolean)
       on conflict (workspace_id, item_id) do update set name = excluded.name, category = excluded.category,
         attributes = excluded.attributes, in_stock = excluded.in_stock, updated_at = now()`,
      [workspaceId, JSON.stringify(chunk.map((i) => ({ item_id: i.itemId, name: i.name, category: i.category, attributes: i.attributes, in_stock: i.inStock })))],
    );
  }
  return { imported: list.length, rejected };
}
