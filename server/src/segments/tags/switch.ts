import { isDeepStrictEqual } from 'node:util';
import { ApiError } from '../../api/errors.ts';
import { withTransaction, type Db, type Queryable } from '../../storage/database.ts';
import { computeSegmentWithDependents } from '../compute.ts';
import type { Issue } from '../definition.ts';
import { archiveSegment, createSegment, segmentWarnings } from '../lifecycle.ts';
import { printSegment } from '../language/print.ts';
import { lockWorkspaceSegments } from '../lock.ts';
import { findSegmentById, findSegmentByKey, getSegmentByKey, listLiveSegments, listSegments, updateSegmentRow, type SegmentRecord } from '../store.ts';
import { instantiateTag, listTagTemplates, type InstantiatedTag, type TagParameterValue } from './library.ts';
import type { EnableTag, LibraryTemplate, TagLocale, TagView } from './schemas.ts';

/*
 * Switching library tags on and off. A tag is a realtime segment with is_tag and its template;
 * everything that makes it one (checks, the row, the first computation, archiving) goes through
 * the segment lifecycle, so a tag is computed at once and kept fresh by the worker like any
 * other realtime segment.
 */

const language = (locale: TagLocale | undefined): 'en' | 'zh' => (locale === 'zh-CN' ? 'zh' : 'en');

/** The library in one language: names, descriptions and parameter descriptions as text. */
export function localizedLibrary(locale: TagLocale | undefined): LibraryTemplate[] {
  const lang = language(locale);
  return listTagTemplates().map((entry) => ({
    template: entry.template,
    name: entry.name[lang],
    description: entry.description[lang],
    parameters: entry.parameters.map((parameter) => ({
      name: parameter.name,
      type: parameter.type,
      default: parameter.default,
      description: parameter.description[lang],
      ...(parameter.min === undefined ? {} : { min: parameter.min }),
      ...(parameter.integer === undefined ? {} : { integer: parameter.integer }),
      ...(parameter.units === undefined ? {} : { units: parameter.units }),
    })),
    exampleText: entry.exampleText,
  }));
}

export function toTagView(segment: SegmentRecord): TagView {
  return {
    key: segment.key,
    name: segment.name,
    description: segment.description,
    template: segment.template,
    text: segment.definition ? printSegment(segment.definition) : null,
    kind: segment.kind,
    status: segment.status,
    state: segment.state,
    lastError: segment.lastError,
    memberCount: segment.memberCount,
    computedAt: segment.computedAt?.toISOString() ?? null,
    createdAt: segment.createdAt.toISOString(),
    updatedAt: segment.updatedAt.toISOString(),
  };
}

/**
 * Whether a stored segment is this tag: a realtime tag of the same template whose definition is
 * the one these parameters make (the definition is what the parameters decide, so equal
 * definitions are equal parameters, whatever key or name either was given).
 */
function isSameTag(segment: SegmentRecord, tag: InstantiatedTag): boolean {
  // Through JSON, as the stored definition went: properties the parser left undefined drop out.
  const definition: unknown = JSON.parse(JSON.stringify(tag.condition));
  return segment.isTag && segment.kind === 'realtime' && segment.template === tag.template && isDeepStrictEqual(segment.definition, definition);
}

async function liveTwin(db: Queryable, workspaceId: string, tag: InstantiatedTag): Promise<SegmentRecord | undefined> {
  return (await listLiveSegments(db, workspaceId)).find((segment) => isSameTag(segment, tag));
}

function alreadyOn(existing: SegmentRecord): ApiError {
  return new ApiError(
    409,
    'tag_exists',
    `This tag (template "${existing.template}" with these parameters) is already on with key "${existing.key}"${existing.status === 'paused' ? ' (paused)' : ''}`,
    'template',
    {},
    { key: existing.key },
  );
}

export interface EnabledTag {
  segment: SegmentRecord;
  parameters: Record<string, TagParameterValue>;
  /** The tag had been switched off under this key and is back on, with its history. */
  restored: boolean;
  warnings: Issue[];
}

/**
 * Switches a library tag on: a new realtime tag segment, created and computed through the
 * segment lifecycle. The same template and parameters twice is a 409 naming the key that has
 * them. A tag switched off earlier under the same key is switched back on (same segment, history
 * kept, membership recomputed) rather than refused because archived keys stay taken.
 */
export async function enableTag(db: Db, workspaceId: string, input: EnableTag, now: Date): Promise<EnabledTag> {
  const tag = instantiateTag(input.template, input.parameters ?? {});
  const lang = language(input.locale);
  const key = input.key ?? tag.key;
  const name = input.name ?? tag.name[lang];
  const description = tag.description[lang];

  const twin = await liveTwin(db, workspaceId, tag);
  if (twin) throw alreadyOn(twin);

  const taken = await findSegmentByKey(db, workspaceId, key);
  if (taken?.status === 'archived' && isSameTag(taken, tag)) {
    const segment = await restoreTag(db, workspaceId, taken.id, tag, { name, description }, now);
    return { segment, parameters: tag.parameters, restored: true, warnings: await segmentWarnings(db, segment) };
  }

  try {
    const saved = await createSegment(
      db,
      workspaceId,
      { key, name, description, kind: 'realtime', definition: tag.condition, isTag: true, template: tag.template },
      now,
    );
    return { segment: saved.segment, parameters: tag.parameters, restored: false, warnings: saved.warnings };
  } catch (error) {
    // The key was taken between the look above and the insert: by this very tag, switched on concurrently?
    if (error instanceof ApiError && error.statusCode === 409) {
      const raced = await liveTwin(db, workspaceId, tag);
      if (raced) throw alreadyOn(raced);
    }
    throw error;
  }
}

/**
 * Un-archives a switched-off tag and computes it: entries and exits are recorded against the
 * membership it had when it was switched off, so the history reads as one tag that was paused.
 */
async function restoreTag(
  db: Db,
  workspaceId: string,
  segmentId: string,
  tag: InstantiatedTag,
  labels: { name: string; description: string },
  now: Date,
): Promise<SegmentRecord> {
  await withTransaction(db, async (client) => {
    await lockWorkspaceSegments(client, workspaceId);
    // Read again under the lock: another request may have switched it on, or on under another key.
    const twin = await liveTwin(client, workspaceId, tag);
    if (twin) throw alreadyOn(twin);
    const current = await findSegmentById(client, workspaceId, segmentId);
    if (current?.status !== 'archived') throw new ApiError(409, 'conflict', `Segment "${current?.key ?? segmentId}" changed meanwhile; try again`, 'key');
    await updateSegmentRow(client, workspaceId, segmentId, { status: 'active', state: 'computing', ...labels });
  });
  await computeSegmentWithDependents(db, workspaceId, segmentId, now);
  return (await findSegmentById(db, workspaceId, segmentId))!;
}

/** The segment behind a tag key; 404 for a key that is no segment or a segment that is no tag. */
async function getTag(db: Queryable, workspaceId: string, key: string): Promise<SegmentRecord> {
  const segment = await getSegmentByKey(db, workspaceId, key);
  if (!segment.isTag) {
    throw new ApiError(404, 'not_found', `Segment "${key}" is not a tag; segments are managed under /v1/segments/{key}`, 'key');
  }
  return segment;
}

/**
 * Switches a tag off: its segment is archived (not evaluated, not shown on profiles, key kept for
 * switching it on again). Refused with 409 while other segments use it through in_segment.
 */
export async function disableTag(db: Db, workspaceId: string, key: string): Promise<SegmentRecord> {
  await getTag(db, workspaceId, key);
  return archiveSegment(db, workspaceId, key);
}

/** The workspace's tags that are not switched off, newest first, with their member counts. */
export async function listTags(db: Queryable, workspaceId: string, page: { limit?: number; cursor?: string }) {
  const result = await listSegments(db, workspaceId, { ...page, isTag: true });
  return { items: result.items.map(toTagView), nextCursor: result.nextCursor };
}
