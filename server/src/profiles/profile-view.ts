import type { StoredEvent } from '../ingest/recent-events.ts';
import type { Queryable } from '../storage/database.ts';
import { encodeCursor } from '../api/pagination.ts';
import type { Profile, ProfileIdentifier, ProfileTag } from './schemas.ts';

/**
 * The single customer view's sections (profile row, traits, live identifiers, latest events,
 * tags, journeys, consent) read in ONE statement: each section a correlated sub-select aggregated
 * to JSON, so a read is one round trip, one connection and one snapshot instead of seven queries
 * on seven pooled connections (on a busy machine the slowest of seven set the p99). Times are
 * formatted by PostgreSQL exactly as `Date#toISOString` does (UTC, milliseconds), so the answer is
 * the same as the section-by-section read's.
 */

/** A timestamptz as `toISOString()` writes it. */
const iso = (column: string) => `to_char(${column} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

export interface TraitJson {
  key: string;
  value: unknown;
  source_kind: string;
  source_name: string;
  message_id: string;
  observed_at: string;
}

interface IdentifierJson {
  type: string;
  value: string;
  source_id: string | null;
  source_name: string | null;
  source_kind: string | null;
  first_seen: string;
  last_seen: string;
  linked_by_message_id: string | null;
  linked_by_seq: number | null;
  linked_via: string;
  bound_at: string;
}

type EventJson = Omit<StoredEvent, never> & { seq: number; cursorAt: string };

interface JourneyJson {
  key: string;
  name: string;
  id: string;
  version: number;
  node_id: string;
  node_kind: string | null;
  phase: string;
  step_count: number;
  holdout: boolean;
  entered_at: string;
  due_at: string | null;
}

interface ViewRow {
  id: string;
  created_at: string;
  first_seen: string | null;
  last_seen: string | null;
  traits: TraitJson[];
  identifiers: IdentifierJson[];
  events: EventJson[];
  tags: ProfileTag[];
  journeys: JourneyJson[];
  consent: Array<{ category: string; granted: boolean; observedAt: string }>;
}

const VIEW_SQL = `
select p.id, ${iso('p.created_at')} as created_at, ${iso('p.first_seen')} as first_seen, ${iso('p.last_seen')} as last_seen,
  (select coalesce(json_agg(json_build_object('key', t.key, 'value', t.value, 'source_kind', t.source_kind, 'source_name', t.source_name,
            'message_id', t.message_id, 'observed_at', ${iso('t.observed_at')}) order by t.key), '[]')
     from profile_traits t where t.workspace_id = $1 and t.profile_id = p.id) as traits,
  (select coalesce(json_agg(json_build_object('type', pi.type, 'value', pi.value, 'source_id', pi.source_id, 'source_name', s.name,
            'source_kind', s.kind, 'first_seen', ${iso('pi.first_seen')}, 'last_seen', ${iso('pi.last_seen')},
            'linked_by_message_id', pi.linked_by_message_id, 'linked_by_seq', pi.linked_by_seq, 'linked_via', pi.linked_via,
            'bound_at', ${iso('pi.bound_at')}) order by pi.first_seen, pi.id), '[]')
     from profile_identifiers pi left join sources s on s.workspace_id = pi.workspace_id and s.id = pi.source_id
    where pi.workspace_id = $1 and pi.profile_id = p.id and pi.unbound_at is null) as identifiers,
  (select coalesce(json_agg(x.j order by x.at desc, x.seq desc), '[]')
     from (select e.timestamp as at, e.seq, json_build_object('messageId', e.message_id, 'type', e.type, 'event', e.event, 'name', e.name,
                    'category', e.category, 'userId', e.user_id, 'anonymousId', e.anonymous_id, 'previousId', e.previous_id,
                    'groupId', e.group_id, 'properties', e.properties, 'traits', e.traits, 'context', e.context,
                    'integrations', e.integrations, 'extra', e.extra, 'sourceId', e.source_id, 'timestamp', ${iso('e.timestamp')},
                    'originalTimestamp', ${iso('e.original_timestamp')}, 'sentAt', ${iso('e.sent_at')}, 'receivedAt', ${iso('e.received_at')},
                    'seq', e.seq, 'cursorAt', to_json(e.timestamp) #>> '{}') as j
             from events e where e.workspace_id = $1 and e.profile_id = p.id
            order by e.timestamp desc, e.seq desc limit $3) x) as events,
  (select coalesce(json_agg(json_build_object('key', s.key, 'name', s.name, 'enteredAt', ${iso('m.entered_at')}) order by s.key), '[]')
     from segment_memberships m join segments s on s.workspace_id = m.workspace_id and s.id = m.segment_id
    where m.workspace_id = $1 and m.profile_id = p.id and s.is_tag and s.status <> 'archived') as tags,
  (select coalesce(json_agg(json_build_object('key', j.key, 'name', j.name, 'id', j.id, 'version', j.version, 'node_id', j.node_id,
            'node_kind', j.node_kind, 'phase', j.phase, 'step_count', j.step_count, 'holdout', j.holdout,
            'entered_at', ${iso('j.entered_at')}, 'due_at', ${iso('j.due_at')}) order by j.entered_at desc), '[]')
     from (select jr.key, jr.name, i.id, i.version, i.node_id, i.phase, i.step_count, i.holdout, i.entered_at, i.due_at,
                  (select n->>'kind' from jsonb_array_elements(v.definition->'nodes') n where n->>'id' = i.node_id limit 1) as node_kind
             from journey_instances i
             join journeys jr on jr.workspace_id = i.workspace_id and jr.id = i.journey_id
             left join journey_versions v on v.workspace_id = i.workspace_id and v.journey_id = i.journey_id and v.version = i.version
            where i.workspace_id = $1 and i.profile_id = p.id and i.status = 'active'
            order by i.entered_at desc limit 50) j) as journeys,
  (select coalesce(json_agg(json_build_object('category', c.category, 'granted', c.granted, 'observedAt', ${iso('c.observed_at')})
            order by c.category), '[]')
     from profile_consents c where c.workspace_id = $1 and c.profile_id = p.id) as consent
  from profiles p
 where p.workspace_id = $1 and p.id = $2`;

function toIdentifier(row: IdentifierJson): ProfileIdentifier {
  return {
    type: row.type,
    value: row.value,
    // A deleted source leaves the id without a name; the link itself still counts.
    source: row.source_id ? { id: row.source_id, name: row.source_name ?? 'unknown', kind: row.source_kind ?? 'unknown' } : null,
    firstSeen: row.first_seen,
    lastSeen: row.last_seen,
    linkedBy: { messageId: row.linked_by_message_id, seq: row.linked_by_seq, via: row.linked_via },
    boundAt: row.bound_at,
  };
}

/** What `getProfile` needs of the view: everything but the traits' form (plain or verbose). */
export interface ProfileView {
  profile: Omit<Profile, 'traits' | 'mergedFrom' | 'matchedBy'>;
  traitRows: TraitJson[];
}

/** The single customer view of a live profile in one statement, or null when there is no such profile. */
export async function readProfileView(db: Queryable, workspaceId: string, profileId: string, events: number): Promise<ProfileView | null> {
  // Named: planning this statement (seven sub-selects, one per events partition for the timeline)
  // took ~3 ms of a ~4.5 ms read at 1M profiles; each pooled connection now plans it once.
  const { rows } = await db.query<ViewRow>({ name: 'touchpoint_profile_view', text: VIEW_SQL, values: [workspaceId, profileId, events === 0 ? 0 : events + 1] });
  const row = rows[0];
  if (!row) return null;
  const page = row.events.slice(0, events);
  const last = page.at(-1);
  return {
    traitRows: row.traits,
    profile: {
      id: row.id,
      createdAt: row.created_at,
      firstSeen: row.first_seen,
      lastSeen: row.last_seen,
      identifiers: row.identifiers.map(toIdentifier),
      events: page.map(({ seq: _seq, cursorAt: _cursorAt, ...event }) => event),
      eventsNextCursor: row.events.length > events && last ? encodeCursor([last.cursorAt, String(last.seq)]) : null,
      segments: [],
      tags: row.tags,
      journeys: row.journeys.map((j) => ({
        journeyKey: j.key,
        journeyName: j.name,
        instanceId: j.id,
        version: j.version,
        nodeId: j.node_id,
        nodeKind: j.node_kind,
        phase: j.phase,
        stepCount: j.step_count,
        holdout: j.holdout,
        enteredAt: j.entered_at,
        dueAt: j.due_at,
      })),
      consent: Object.fromEntries(row.consent.map((c) => [c.category, { granted: c.granted, observedAt: c.observedAt }])),
      computed: Object.fromEntries(
        row.traits
          .filter((t) => t.source_kind === 'computed')
          .map((t) => [t.key, { value: t.value, source: t.source_name, observedAt: t.observed_at }]),
      ),
    },
  };
}
