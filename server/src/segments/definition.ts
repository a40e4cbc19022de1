import { ApiError } from '../api/errors.ts';
import { loadWorkspaceIdentity } from '../identity/settings-store.ts';
import { withTransaction, type Db } from '../storage/database.ts';
import type { Condition } from './ast.ts';
import { checkSegment, type Issue } from './language/check.ts';
import { parseSegment } from './language/parse.ts';
import { segmentReferences } from './references.ts';
import { piiConditionIssues } from '../privacy/pii-segments.ts';

export type { Issue };

/**
 * The condition a request gives as `definition` (the AST) or `text` (the language), null when it
 * gives neither. A syntax error is a 400 on `text` naming line and column, with the expected
 * words and a suggestion in `details` for editors.
 */
export function conditionFromInput(input: { definition?: Condition; text?: string }): Condition | null {
  if (input.definition !== undefined && input.text !== undefined) {
    throw new ApiError(400, 'invalid_request', 'Give the segment as definition or as text, not both', 'text');
  }
  if (input.definition !== undefined) return input.definition;
  if (input.text === undefined) return null;
  const parsed = parseSegment(input.text);
  if (parsed.ok) return parsed.condition;
  const { error } = parsed;
  const suggestion = error.suggestion ? ` ${/[.?!]$/.test(error.message) ? '' : '- '}did you mean ${error.suggestion}?` : '';
  throw new ApiError(400, 'invalid_segment_text', `text: line ${error.line}, column ${error.column}: ${error.message}${suggestion}`, 'text', {}, {
    line: error.line,
    column: error.column,
    offset: error.offset,
    length: error.length,
    ...(error.expected ? { expected: error.expected } : {}),
    ...(error.suggestion ? { suggestion: error.suggestion } : {}),
  });
}

/** `/conditions/1/pattern` under `definition` → `definition.conditions.1.pattern`. */
function fieldOfPointer(base: 'definition' | 'text', pointer: string): string {
  if (base === 'text') return 'text';
  const parts = pointer.split('/').filter(Boolean).map((part) => part.replaceAll('~1', '/').replaceAll('~0', '~'));
  return ['definition', ...parts].join('.');
}

export interface CheckOptions {
  /** The key of the segment being saved: in_segment of itself is refused. */
  selfKey?: string;
  /** Which request field the condition came from, for error fields. */
  field: 'definition' | 'text';
  /** Keys in_segment may name (the workspace's live segments). */
  segmentKeys: readonly string[];
}

/** What the checker says of a condition in this workspace: errors and warnings. */
export async function inspectDefinition(
  db: Db,
  workspaceId: string,
  condition: Condition,
  options: Omit<CheckOptions, 'field'>,
): Promise<{ errors: Issue[]; warnings: Issue[] }> {
  const references = segmentReferences(condition);
  const [events, traits, identity] = await Promise.all([
    catalogueEvents(db, workspaceId),
    knownTraits(db, workspaceId, references.traits),
    loadWorkspaceIdentity(db, workspaceId),
  ]);
  const result = checkSegment(condition, {
    events,
    traits,
    identifierTypes: [...identity.config.types.keys()],
    segments: [...options.segmentKeys],
    ...(options.selfKey === undefined ? {} : { selfKey: options.selfKey }),
  });
  // Encrypted personal data answers presence and equality only (privacy/pii-segments.ts).
  return { ...result, errors: [...result.errors, ...piiConditionIssues(condition)] };
}

/**
 * Checks a condition against the workspace: errors (bad regex, unknown segment or identifier
 * type, reversed ranges …) are a 400 on the field at fault, all of them in `details.errors`;
 * warnings (events and traits the workspace has never seen) are returned for the response.
 */
export async function checkDefinition(db: Db, workspaceId: string, condition: Condition, options: CheckOptions): Promise<Issue[]> {
  const result = await inspectDefinition(db, workspaceId, condition, options);
  const first = result.errors[0];
  if (first) {
    const more = result.errors.length > 1 ? ` (and ${result.errors.length - 1} more)` : '';
    const suggestion = first.suggestion ? ` Did you mean ${first.suggestion}?` : '';
    throw new ApiError(
      400,
      'invalid_segment',
      `${options.field === 'text' && first.path ? `${first.path}: ` : ''}${first.message}${suggestion}${more}`,
      fieldOfPointer(options.field, first.path),
      {},
      { errors: result.errors },
    );
  }
  return result.warnings;
}

async function catalogueEvents(db: Db, workspaceId: string): Promise<Array<{ type: string; name: string }>> {
  const { rows } = await db.query<{ type: string; name: string }>(
    `select event_type as type, event_name as name from event_catalogue
      where workspace_id = $1 and event_type in ('track', 'page', 'screen')`,
    [workspaceId],
  );
  return rows;
}

/**
 * Trait keys the workspace knows: those the catalogue saw on identify events (traits, and
 * context.traits on any event), computed traits, and — for keys the condition uses that neither
 * mentions — whether any profile has one. profile_traits has no index by key, so that probe gets
 * a short time limit; a key it cannot settle in time is taken as known (a missing warning costs
 * less than a slow save or a wrong one).
 */
export async function knownTraits(db: Db, workspaceId: string, used: readonly string[]): Promise<string[]> {
  const { rows } = await db.query<{ key: string }>(
    `select split_part(path, '.', 1) as key from event_catalogue_properties
      where workspace_id = $1 and event_type = 'identify' and scope = 'traits'
     union
     select split_part(path, '.', 2) from event_catalogue_properties
      where workspace_id = $1 and scope = 'context' and path like 'traits.%'
     union
     select key from computed_traits where workspace_id = $1 and status <> 'archived'`,
    [workspaceId],
  );
  const known = new Set(rows.map((row) => row.key.replace(/\[\]$/, '')));
  const unsettled = [...new Set(used.map((path) => path.split('.')[0]!))].filter((key) => !known.has(key));
  if (unsettled.length === 0) return [...known];
  try {
    const found = await withTransaction(db, async (client) => {
      await client.query(`set local statement_timeout = '300ms'`);
      const { rows: present } = await client.query<{ key: string }>(
        `select k.key from unnest($2::text[]) as k(key)
          where exists (select 1 from profile_traits t where t.workspace_id = $1 and t.key = k.key)`,
        [workspaceId, unsettled],
      );
      return present.map((row) => row.key);
    });
    for (const key of found) known.add(key);
  } catch {
    for (const key of unsettled) known.add(key);
  }
  return [...known];
}
