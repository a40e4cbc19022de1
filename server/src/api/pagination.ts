import { Type } from '@sinclair/typebox';
import { ApiError } from './errors.ts';

/** Query parameters shared by every cursor-paginated list. */
export const PageQuery = {
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 50, description: 'Items per page (at most 500)' })),
  cursor: Type.Optional(Type.String({ minLength: 1, description: 'nextCursor of the previous page' })),
};

export const NextCursor = Type.Union([Type.String(), Type.Null()], { description: 'Pass as cursor for the next page; null on the last page' });

// Instants travel in PostgreSQL's own JSON rendering (microseconds), so a page boundary never
// falls between two rows that JavaScript's millisecond Dates would consider equal.
const PG_INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?([+-]\d{2}(:\d{2})?|Z)$/;

export type CursorPart = 'instant' | 'uuid' | 'integer';
const CHECKS: Record<CursorPart, (value: unknown) => boolean> = {
  instant: (value) => typeof value === 'string' && PG_INSTANT.test(value),
  uuid: (value) => typeof value === 'string' && /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(value),
  integer: (value) => typeof value === 'string' && /^\d{1,19}$/.test(value),
};

/** An opaque cursor: the sort key of the last item of a page. */
export function encodeCursor(values: readonly string[]): string {
  return Buffer.from(JSON.stringify(values)).toString('base64url');
}

/** The sort key a cursor holds; 400 with field `cursor` when it was not made by encodeCursor for this list. */
export function decodeCursor(cursor: string, parts: readonly CursorPart[]): string[] {
  let values: unknown;
  try {
    values = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    values = undefined;
  }
  if (!Array.isArray(values) || values.length !== parts.length || !parts.every((part, i) => CHECKS[part](values[i]))) {
    throw new ApiError(400, 'invalid_cursor', 'cursor is not a nextCursor returned by this list', 'cursor');
  }
  return values as string[];
}
