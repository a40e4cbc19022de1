import type { DbClient } from '../storage/database.ts';
import type { QueuedEvent } from './batch.ts';

/*
 * Consent per category, from Segment's `context.consent.categoryPreferences` ({ "sms": true,
 * "email": false }) on any event. The latest observation of a category wins (by event time, then
 * arrival); a merge keeps, per category, the latest observation of all merged profiles.
 */

/** The longest category a segment's consent("…") can name (ast.ts); longer ones could never be read. */
const MAX_CATEGORY_LENGTH = 64;

export interface ConsentObservation {
  profileId: string;
  category: string;
  granted: boolean;
  sourceId: string;
  messageId: string;
  observedAt: Date;
  seq: number;
}

export interface IgnoredConsent {
  messageId: string;
  category: string | null;
  reason: 'not_boolean' | 'malformed';
}

/**
 * The latest observation per (profile, category) among a batch's events, and the values that were
 * not a category → boolean preference (counted, never stored). `profileOf` gives each event's
 * final profile by seq; events without one (no identifiers) belong to nobody.
 */
export function consentObservations(
  events: readonly QueuedEvent[],
  profileOf: ReadonlyMap<number, string>,
): { observations: ConsentObservation[]; ignored: IgnoredConsent[] } {
  const latest = new Map<string, ConsentObservation>();
  const ignored: IgnoredConsent[] = [];
  for (const event of events) {
    const consent = event.context?.consent;
    if (consent === undefined || consent === null) continue;
    if (!isObject(consent)) {
      ignored.push({ messageId: event.messageId, category: null, reason: 'malformed' });
      continue;
    }
    const preferences = consent.categoryPreferences;
    if (preferences === undefined || preferences === null) continue;
    if (!isObject(preferences)) {
      ignored.push({ messageId: event.messageId, category: null, reason: 'malformed' });
      continue;
    }
    const profileId = profileOf.get(event.seq);
    for (const [category, granted] of Object.entries(preferences)) {
      if (category.length === 0 || category.length > MAX_CATEGORY_LENGTH) {
        ignored.push({ messageId: event.messageId, category: category.slice(0, MAX_CATEGORY_LENGTH), reason: 'malformed' });
        continue;
      }
      if (typeof granted !== 'boolean') {
        ignored.push({ messageId: event.messageId, category, reason: 'not_boolean' });
        continue;
      }
      if (!profileId) continue;
      const observation: ConsentObservation = {
        profileId,
        category,
        granted,
        sourceId: event.sourceId,
        messageId: event.messageId,
        observedAt: event.timestamp,
        seq: event.seq,
      };
      const key = `${profileId}\u0000${category}`;
      const current = latest.get(key);
      if (!current || isLater(observation, current)) latest.set(key, observation);
    }
  }
  return { observations: [...latest.values()], ignored };
}

function isLater(a: ConsentObservation, b: ConsentObservation): boolean {
  return a.observedAt.getTime() - b.observedAt.getTime() > 0 || (a.observedAt.getTime() === b.observedAt.getTime() && a.seq > b.seq);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Stores observations where they are at least as recent as the stored one (an equal time means
 * the later-resolved event, which arrived later), and counts ignored values next to the ignored
 * identifiers (identity_ignored_counts, type 'consent'), where the identity stats show them.
 */
export async function writeConsents(
  client: DbClient,
  ws: string,
  result: { observations: readonly ConsentObservation[]; ignored: readonly IgnoredConsent[] },
): Promise<void> {
  const { observations, ignored } = result;
  if (observations.length > 0) {
    await client.query(
      `insert into profile_consents (workspace_id, profile_id, category, granted, source_id, message_id, observed_at)
       select $1, * from unnest($2::uuid[], $3::text[], $4::boolean[], $5::uuid[], $6::text[], $7::timestamptz[])
       on conflict (workspace_id, profile_id, category) do update
         set granted = excluded.granted, source_id = excluded.source_id, message_id = excluded.message_id,
             observed_at = excluded.observed_at, updated_at = now()
         where excluded.observed_at >= profile_consents.observed_at`,
      [
        ws,
        observations.map((o) => o.profileId),
        observations.map((o) => o.category),
        observations.map((o) => o.granted),
        observations.map((o) => o.sourceId),
        observations.map((o) => o.messageId),
        observations.map((o) => o.observedAt),
      ],
    );
  }
  if (ignored.length > 0) {
    const counts = new Map<string, number>();
    for (const entry of ignored) counts.set(entry.reason, (counts.get(entry.reason) ?? 0) + 1);
    await client.query(
      `insert into identity_ignored_counts (workspace_id, identifier_type, reason, count, last_seen)
       select $1, 'consent', reason, count, now() from unnest($2::text[], $3::bigint[]) as c(reason, count)
       on conflict (workspace_id, identifier_type, reason)
       do update set count = identity_ignored_counts.count + excluded.count, last_seen = excluded.last_seen`,
      [ws, [...counts.keys()], [...counts.values()]],
    );
  }
}

/**
 * Moves the absorbed profiles' consents to their survivors (pairs by position): per category the
 * latest observation of all of them wins; on equal times the survivor's stays.
 */
export async function moveConsents(client: DbClient, ws: string, absorbedIds: readonly string[], survivorIds: readonly string[]): Promise<void> {
  if (absorbedIds.length === 0) return;
  await client.query(
    `with moved as (
       delete from profile_consents c using unnest($2::uuid[], $3::uuid[]) as m(absorbed, survivor)
        where c.workspace_id = $1 and c.profile_id = any($2::uuid[]) and c.profile_id = m.absorbed
       returning m.survivor, c.category, c.granted, c.source_id, c.message_id, c.observed_at)
     insert into profile_consents (workspace_id, profile_id, category, granted, source_id, message_id, observed_at)
     select distinct on (survivor, category) $1, survivor, category, granted, source_id, message_id, observed_at
       from moved order by survivor, category, observed_at desc
     on conflict (workspace_id, profile_id, category) do update
       set granted = excluded.granted, source_id = excluded.source_id, message_id = excluded.message_id,
           observed_at = excluded.observed_at, updated_at = now()
       where excluded.observed_at > profile_consents.observed_at`,
    [ws, absorbedIds, survivorIds],
  );
}

/**
 * Recomputes profiles' consents from their own events (after an unmerge split the events): what
 * each side was told is all it keeps. Ignored values were counted when the events were resolved.
 */
export async function rewriteConsents(client: DbClient, ws: string, eventsByProfile: ReadonlyMap<string, readonly QueuedEvent[]>): Promise<void> {
  if (eventsByProfile.size === 0) return;
  await client.query('delete from profile_consents where workspace_id = $1 and profile_id = any($2::uuid[])', [ws, [...eventsByProfile.keys()]]);
  const profileOf = new Map<number, string>();
  for (const [profileId, events] of eventsByProfile) for (const event of events) profileOf.set(event.seq, profileId);
  const { observations } = consentObservations([...eventsByProfile.values()].flat(), profileOf);
  await writeConsents(client, ws, { observations, ignored: [] });
}
