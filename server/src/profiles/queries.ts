import { decodeCursor, encodeCursor } from '../api/pagination.ts';
import { ApiError } from '../api/errors.ts';
import { loadWorkspaceIdentity } from '../identity/settings-store.ts';
import { toEvent, type EventRow, STORED_EVENT_COLUMNS } from '../ingest/recent-events.ts';
import type { StoredEvent } from '../ingest/recent-events.ts';
import type { Queryable } from '../storage/database.ts';
import { isPiiToken, piiCodec, withPiiCodec } from '../privacy/pii-codec.ts';
import { normalizeIdentifier } from '../identity/identifier-types.ts';
import { readProfileView } from './profile-view.ts';
import { likePrefix, normalizeForLookup, parseProfileRef, searchPrefixes, type TraitFilter } from './reference.ts';
import type {
  IdentifierRef,
  IdentityGraph,
  Profile,
  ProfileIdentifier,
  SearchQuery,
  TimelineQuery,
  VerboseTrait,
} from './schemas.ts';

export interface LocatedProfile {
  /** The live profile. */
  profileId: string;
  /** The absorbed id that was asked for, when it resolved to its survivor. */
  mergedFrom: string | null;
  matchedBy: IdentifierRef | null;
}

const notFound = (what: string) => new ApiError(404, 'not_found', `No profile ${what} in this workspace`);

/**
 * Finds the live profile a reference names: a profile id (an absorbed one resolves to the profile
 * that absorbed it) or an identifier currently linked to it. Always within one workspace, so
 * another workspace's profile id is simply not found.
 */
export async function locateProfile(db: Queryable, workspaceId: string, ref: string, field = 'profile'): Promise<LocatedProfile> {
  const parsed = parseProfileRef(ref, field);
  if (parsed.kind === 'id') {
    const { rows } = await db.query<{ merged_into: string | null }>(
      'select merged_into from profiles where workspace_id = $1 and id = $2',
      [workspaceId, parsed.profileId],
    );
    if (!rows[0]) throw notFound(`with id ${parsed.profileId}`);
    const survivor = rows[0].merged_into;
    return { profileId: survivor ?? parsed.profileId, mergedFrom: survivor ? parsed.profileId : null, matchedBy: null };
  }
  const { config } = await loadWorkspaceIdentity(db, workspaceId);
  // PII identifiers are stored as keyed-hash tokens: the lookup value is encoded the same way.
  const codec = await piiCodec(db, workspaceId);
  const identifier = normalizeForLookup(withPiiCodec(config, codec), parsed.type, parsed.raw, { type: field, value: field });
  const { rows } = await db.query<{ profile_id: string }>(
    'select profile_id from profile_identifiers where workspace_id = $1 and type = $2 and value = $3 and unbound_at is null',
    [workspaceId, identifier.type, identifier.value],
  );
  if (!rows[0]) throw notFound(`has ${identifier.type} ${String(codec.identifiers.open(identifier.value))}`);
  return { profileId: rows[0].profile_id, mergedFrom: null, matchedBy: identifier };
}

interface IdentifierRow {
  profile_id: string;
  type: string;
  value: string;
  source_id: string | null;
  source_name: string | null;
  source_kind: string | null;
  first_seen: Date;
  last_seen: Date;
  linked_by_message_id: string | null;
  linked_by_seq: number | null;
  linked_via: string;
  bound_at: Date;
  unbound_at: Date | null;
  unbound_reason: string | null;
}

const IDENTIFIER_COLUMNS = `pi.profile_id, pi.type, pi.value, pi.source_id, s.name as source_name, s.kind as source_kind,
  pi.first_seen, pi.last_seen, pi.linked_by_message_id, pi.linked_by_seq, pi.linked_via, pi.bound_at, pi.unbound_at, pi.unbound_reason`;

function toIdentifier(row: IdentifierRow): ProfileIdentifier {
  return {
    type: row.type,
    value: row.value,
    // A deleted source leaves the id without a name; the link itself still counts.
    source: row.source_id ? { id: row.source_id, name: row.source_name ?? 'unknown', kind: row.source_kind ?? 'unknown' } : null,
    firstSeen: row.first_seen.toISOString(),
    lastSeen: row.last_seen.toISOString(),
    linkedBy: { messageId: row.linked_by_message_id, seq: row.linked_by_seq, via: row.linked_via },
    boundAt: row.bound_at.toISOString(),
  };
}

async function identifierRows(db: Queryable, workspaceId: string, profileIds: string[], liveOnly: boolean): Promise<IdentifierRow[]> {
  const { rows } = await db.query<IdentifierRow>(
    `select ${IDENTIFIER_COLUMNS}
       from profile_identifiers pi left join sources s on s.workspace_id = pi.workspace_id and s.id = pi.source_id
      where pi.workspace_id = $1 and pi.profile_id = any($2::uuid[]) and ($3::boolean is false or pi.unbound_at is null)
      order by pi.first_seen, pi.id`,
    [workspaceId, profileIds, liveOnly],
  );
  return rows;
}

async function absorbedIds(db: Queryable, workspaceId: string, profileId: string): Promise<Array<{ id: string; merged_at: Date | null }>> {
  const { rows } = await db.query<{ id: string; merged_at: Date | null }>(
    'select id, merged_at from profiles where workspace_id = $1 and merged_into = $2 order by merged_at, id',
    [workspaceId, profileId],
  );
  return rows;
}

interface TraitRow {
  key: string;
  value: unknown;
  source_kind: string;
  source_name: string;
  message_id: string;
  observed_at: Date;
}

async function verboseTraits(db: Queryable, workspaceId: string, profileId: string, current: TraitRow[]): Promise<Record<string, VerboseTrait>> {
  // The history of absorbed profiles belongs to the merged traits' story: include it.
  const ids = [profileId, ...(await absorbedIds(db, workspaceId, profileId)).map((row) => row.id)];
  const { rows } = await db.query<TraitRow & { previous_value: unknown; reason: string; recorded_at: Date }>(
    `select key, previous_value, value, source_kind, source_name, message_id, observed_at, reason, recorded_at
       from profile_trait_history
      where workspace_id = $1 and profile_id = any($2::uuid[]) and key = any($3::text[])
      order by id`,
    [workspaceId, ids, current.map((row) => row.key)],
  );
  const traits: Record<string, VerboseTrait> = {};
  for (const row of current) {
    traits[row.key] = {
      value: row.value,
      source: { kind: row.source_kind, name: row.source_name },
      messageId: row.message_id,
      observedAt: row.observed_at.toISOString(),
      history: [],
    };
  }
  for (const row of rows) {
    traits[row.key]!.history.push({
      previousValue: row.previous_value,
      value: row.value,
      source: { kind: row.source_kind, name: row.source_name },
      messageId: row.message_id,
      observedAt: row.observed_at.toISOString(),
      reason: row.reason,
      recordedAt: row.recorded_at.toISOString(),
    });
  }
  return traits;
}

/**
 * The single customer view: traits, identifiers, tags, journeys, consent and latest events of a
 * located profile, in one statement (profile-view.ts); verbose traits add their history.
 */
export async function getProfile(
  db: Queryable,
  workspaceId: string,
  located: LocatedProfile,
  options: { verbose?: boolean; events?: number } = {},
): Promise<Profile> {
  const { profileId } = located;
  const view = await readProfileView(db, workspaceId, profileId, options.events ?? 50);
  if (!view) throw notFound(`with id ${profileId}`);
  const traits = options.verbose
    ? await verboseTraits(db, workspaceId, profileId, view.traitRows.map((row) => ({ ...row, observed_at: new Date(row.observed_at) })))
    : Object.fromEntries(view.traitRows.map((row) => [row.key, row.value]));
  const { profile } = view;
  return {
    id: profile.id,
    mergedFrom: located.mergedFrom,
    matchedBy: located.matchedBy,
    createdAt: profile.createdAt,
    firstSeen: profile.firstSeen,
    lastSeen: profile.lastSeen,
    traits,
    identifiers: profile.identifiers,
    events: profile.events,
    eventsNextCursor: profile.eventsNextCursor,
    segments: profile.segments,
    tags: profile.tags,
    journeys: profile.journeys,
    consent: profile.consent,
    computed: profile.computed,
  };
}

/**
 * A profile's events, newest first, one page at a time. The cursor is the (timestamp, seq) of the
 * last event of the page; seq breaks ties between events of the same instant, so pages never skip
 * or repeat one. Walks the events_profile_timeline index.
 */
export async function listProfileEvents(
  db: Queryable,
  workspaceId: string,
  profileId: string,
  query: TimelineQuery,
): Promise<{ items: StoredEvent[]; nextCursor: string | null }> {
  const limit = query.limit ?? 50;
  const [cursorAt, cursorSeq] = query.cursor ? decodeCursor(query.cursor, ['instant', 'integer']) : [null, null];
  const { rows } = await db.query<EventRow>(
    `select ${STORED_EVENT_COLUMNS}
       from events
      where workspace_id = $1 and profile_id = $2
        and ($3::text[] is null or event = any($3) or (type in ('page', 'screen') and name = any($3)))
        and ($4::text[] is null or type = any($4))
        and ($5::text[] is null or source_id in (select id from sources where workspace_id = $1 and kind = any($5)))
        and ($6::timestamptz is null or timestamp >= $6)
        and ($7::timestamptz is null or timestamp < $7)
        and ($8::timestamptz is null or (timestamp <= $8 and (timestamp < $8 or seq < $9::bigint)))
      order by timestamp desc, seq desc
      limit $10`,
    [
      workspaceId,
      profileId,
      query.event ?? null,
      query.type ?? null,
      query.sourceKind ?? null,
      query.since ?? null,
      query.until ?? null,
      cursorAt,
      cursorSeq,
      limit + 1,
    ],
  );
  const page = rows.slice(0, limit);
  const last = page.at(-1);
  return {
    items: page.map(toEvent),
    nextCursor: rows.length > limit && last ? encodeCursor([last.cursor_at, String(last.seq)]) : null,
  };
}

interface MergeRow {
  id: string;
  kind: string;
  survivor_id: string;
  absorbed_ids: string[];
  details: Record<string, unknown>;
  cause_message_id: string | null;
  cause_seq: number | null;
  cause_identifier_type: string | null;
  cause_identifier_value: string | null;
  score: number | null;
  created_at: Date;
  undone_at: Date | null;
  undone_by: string | null;
}

function toMerge(row: MergeRow): IdentityGraph['merges'][number] {
  return {
    id: row.id,
    kind: row.kind,
    survivorId: row.survivor_id,
    absorbedIds: row.absorbed_ids,
    cause: {
      messageId: row.cause_message_id,
      seq: row.cause_seq,
      identifier:
        row.cause_identifier_type !== null && row.cause_identifier_value !== null
          ? { type: row.cause_identifier_type, value: row.cause_identifier_value }
          : null,
    },
    score: row.score,
    details: row.details,
    createdAt: row.created_at.toISOString(),
    undoneAt: row.undone_at?.toISOString() ?? null,
    undoneBy: row.undone_by,
  };
}

const REFUSAL_LIMIT = 100;

/**
 * The explainable identity graph of a profile: every identifier link it and the profiles it
 * absorbed ever had (ended ones too), the merges that joined them with the event and identifier
 * that caused each, splits, and merges the resolver refused. Answers "why are these one person?".
 */
export async function getIdentityGraph(db: Queryable, workspaceId: string, located: LocatedProfile): Promise<IdentityGraph> {
  const { profileId } = located;
  const absorbed = await absorbedIds(db, workspaceId, profileId);
  const ids = [profileId, ...absorbed.map((row) => row.id)];
  const [identifiers, merges, refusals] = await Promise.all([
    identifierRows(db, workspaceId, ids, false),
    db.query<MergeRow>(
      `select id, kind, survivor_id, absorbed_ids, details, cause_message_id, cause_seq, cause_identifier_type,
              cause_identifier_value, score, created_at, undone_at, undone_by
         from identity_merges
        where workspace_id = $1 and (survivor_id = any($2::uuid[]) or (kind = 'unmerge' and absorbed_ids && $2::uuid[]))
        order by created_at, id`,
      [workspaceId, ids],
    ),
    db.query<{
      profile_id: string | null;
      message_id: string | null;
      seq: number | null;
      identifier_type: string;
      identifier_value: string;
      reason: string;
      message: string;
      created_at: Date;
    }>(
      `select profile_id, message_id, seq, identifier_type, identifier_value, reason, message, created_at
         from identity_refusals where workspace_id = $1 and profile_id = any($2::uuid[])
        order by id desc limit $3`,
      [workspaceId, ids, REFUSAL_LIMIT],
    ),
  ]);
  // An unmerge row names the profile it split from as survivor and the new one as absorbed.
  const builtFrom = merges.rows.filter((row) => !(row.kind === 'unmerge' && !ids.includes(row.survivor_id)));
  const splitFrom = merges.rows.filter((row) => row.kind === 'unmerge' && !ids.includes(row.survivor_id));
  return {
    profileId,
    mergedFrom: located.mergedFrom,
    identifiers: identifiers.map((row) => ({
      ...toIdentifier(row),
      profileId: row.profile_id,
      live: row.unbound_at === null && row.profile_id === profileId,
      unboundAt: row.unbound_at?.toISOString() ?? null,
      unboundReason: row.unbound_reason,
    })),
    merges: builtFrom.map(toMerge),
    splitFrom: splitFrom.map(toMerge),
    absorbedProfiles: absorbed.map((row) => ({ id: row.id, mergedAt: row.merged_at?.toISOString() ?? null })),
    refusals: refusals.rows.map((row) => ({
      profileId: row.profile_id,
      messageId: row.message_id,
      seq: row.seq,
      identifier: { type: row.identifier_type, value: row.identifier_value },
      reason: row.reason,
      message: row.message,
      createdAt: row.created_at.toISOString(),
    })),
  };
}

/**
 * Live profiles by identifier prefix and/or trait equality, ordered by id. An identifier prefix
 * is looked up first (profile_identifiers_value_prefix index); trait filters narrow the result.
 */
export async function searchProfiles(
  db: Queryable,
  workspaceId: string,
  query: Pick<SearchQuery, 'identifier' | 'type' | 'limit' | 'cursor'>,
  traits: TraitFilter[],
) {
  const limit = query.limit ?? 50;
  const [after] = query.cursor ? decodeCursor(query.cursor, ['uuid']) : [null];
  // PII identifiers and traits are stored as keyed-hash tokens (privacy/pii-codec.ts): no prefix
  // can match them, the whole value can (docs/security.md).
  const codec = await piiCodec(db, workspaceId);
  let patterns: string[] | null = null;
  const exact: { type: string; value: string }[] = [];
  if (query.identifier !== undefined) {
    const { config } = await loadWorkspaceIdentity(db, workspaceId);
    patterns = searchPrefixes(config, query.identifier, query.type).map(likePrefix);
    const tokenizing = withPiiCodec(config, codec);
    for (const type of query.type === undefined ? [...config.types.keys()] : [query.type]) {
      const normalized = normalizeIdentifier(tokenizing, type, query.identifier.trim());
      if (normalized.ok && isPiiToken(normalized.value)) exact.push({ type, value: normalized.value });
    }
  } else if (query.type !== undefined) {
    throw new ApiError(400, 'invalid_request', 'type narrows an identifier search; give identifier=<prefix> too', 'type');
  }
  const traitKeys = traits.flatMap((filter) => filter.values.map(() => filter.key));
  const traitValues = traits.flatMap((filter) =>
    filter.values.map((value) => String(codec.tokenizeTraits({ [filter.key]: value })[filter.key])),
  );
  const params: unknown[] = [workspaceId, after, traits.length, traitKeys, traitValues, limit + 1];
  const param = (value: unknown) => `$${params.push(value)}`;
  // One LIKE per pattern rather than LIKE ANY: only a single known prefix lets the planner walk
  // the profile_identifiers_value_prefix index (two become a BitmapOr).
  const identifierCondition = patterns
    ? `p.id in (select pi.profile_id from profile_identifiers pi
                 where pi.workspace_id = $1 and pi.unbound_at is null
                   ${query.type === undefined ? '' : `and pi.type = ${param(query.type)}`}
                   and (${[
                     ...patterns.map((pattern) => `pi.value like ${param(pattern)}`),
                     ...exact.map((token) => `(pi.type = ${param(token.type)} and pi.value = ${param(token.value)})`),
                   ].join(' or ')}))`
    : 'true';
  const { rows } = await db.query<{
    id: string;
    created_at: Date;
    first_seen: Date | null;
    last_seen: Date | null;
    traits: Record<string, unknown> | null;
    identifiers: IdentifierRef[];
  }>(
    `with candidates as (
       select p.id, p.created_at, p.first_seen, p.last_seen
         from profiles p
        where p.workspace_id = $1 and p.merged_into is null
          and ($2::uuid is null or p.id > $2)
          and ${identifierCondition}
          and ($3::int = 0 or (
                select count(distinct t.key) from profile_traits t
                  join unnest($4::text[], $5::text[]) as f(key, value) on t.key = f.key and t.value #>> '{}' = f.value
                 where t.workspace_id = $1 and t.profile_id = p.id) = $3)
        order by p.id
        limit $6)
     select c.*,
       (select json_object_agg(t.key, t.value order by t.key) from profile_traits t where t.workspace_id = $1 and t.profile_id = c.id) as traits,
       (select coalesce(json_agg(json_build_object('type', i.type, 'value', i.value) order by i.type, i.value), '[]')
          from profile_identifiers i where i.workspace_id = $1 and i.profile_id = c.id and i.unbound_at is null) as identifiers
       from candidates c order by c.id`,
    params,
  );
  const page = rows.slice(0, limit);
  const last = page.at(-1);
  return {
    items: page.map((row) => ({
      id: row.id,
      createdAt: row.created_at.toISOString(),
      firstSeen: row.first_seen?.toISOString() ?? null,
      lastSeen: row.last_seen?.toISOString() ?? null,
      traits: row.traits ?? {},
      identifiers: row.identifiers,
    })),
    nextCursor: rows.length > limit && last ? encodeCursor([last.id]) : null,
  };
}
