import crypto from 'node:crypto';
import { enqueueSegmentEvaluation } from '../segments/queue.ts';
import type { Db, DbClient } from '../storage/database.ts';
import { withTransaction } from '../storage/database.ts';
import { NotFoundError, ConflictError } from '../workspaces/store.ts';
import { traitsOf, type QueuedEvent } from './batch.ts';
import { extractIdentifiers, identifierKey } from './extract.ts';
import { normalizeIdentifier, type IdentityConfig } from './identifier-types.ts';
import { isPiiToken, piiCodec, tokenizeForResolution, withPiiCodec, writeVault, type PiiCodec } from '../privacy/pii-codec.ts';
import type { Identifier } from './resolve.ts';
import { rewriteConsents } from './consents.ts';
import { IDENTITY_EVENT_COLUMNS, lockWorkspaceIdentity, toQueuedEvent, type IdentityEventRow } from './resolver.ts';
import { loadWorkspaceIdentity } from './settings-store.ts';
import { applyEventTraits, COMPUTED_TRAIT_SOURCE_KIND, type TraitSet, type TraitStrategies } from './traits.ts';

export interface LinkedIdentifier extends Identifier {
  firstSeen: Date;
}

/**
 * Which identifiers leave a profile when `detach` is split off: `detach` itself and every
 * identifier that is connected to the rest of the profile only through it. Identifiers are
 * connected when one event carried both. The rest stays with the profile's strongest remaining
 * identifier. Pure, so the rule is tested without a database.
 */
export function identifiersToSplit(
  config: IdentityConfig,
  identifiers: LinkedIdentifier[],
  eventIdentifierSets: Identifier[][],
  detach: Identifier,
): Set<string> {
  const detachKey = identifierKey(detach);
  const keys = identifiers.map(identifierKey);
  const parent = new Map(keys.map((key) => [key, key]));
  const find = (key: string): string => {
    let root = key;
    while (parent.get(root) !== root) root = parent.get(root)!;
    parent.set(key, root);
    return root;
  };
  for (const set of eventIdentifierSets) {
    const present = set.map(identifierKey).filter((key) => key !== detachKey && parent.has(key));
    for (let i = 1; i < present.length; i++) parent.set(find(present[i]!), find(present[0]!));
  }
  const priority = (identifier: Identifier) => config.types.get(identifier.type)?.priority ?? Number.MAX_SAFE_INTEGER;
  const anchor = identifiers
    .filter((identifier) => identifierKey(identifier) !== detachKey)
    .sort((a, b) => priority(a) - priority(b) || a.firstSeen.getTime() - b.firstSeen.getTime())[0];
  if (!anchor) return new Set();
  const anchorRoot = find(identifierKey(anchor));
  return new Set(keys.filter((key) => key === detachKey || find(key) !== anchorRoot));
}

/** Follows a merged (absorbed) profile id to the live profile. */
export async function liveProfileId(db: Pick<Db, 'query'>, workspaceId: string, profileId: string): Promise<string> {
  const { rows } = await db.query<{ id: string; merged_into: string | null }>(
    'select id, merged_into from profiles where workspace_id = $1 and id = $2',
    [workspaceId, profileId],
  );
  if (!rows[0]) throw new NotFoundError(`Profile ${profileId} not found`);
  return rows[0].merged_into ?? rows[0].id;
}

/**
 * The identifier as stored: PII types are keyed-hash tokens (privacy/pii-codec.ts), so a value
 * given in plain text (any caller, not only the HTTP routes) is normalised and encoded; a token
 * stays as it is, and a value that does not normalise is looked up as given (and not found).
 */
function storedIdentifier(config: IdentityConfig, codec: PiiCodec, identifier: Identifier): Identifier {
  if (isPiiToken(identifier.value)) return identifier;
  const normalized = normalizeIdentifier(withPiiCodec(config, codec), identifier.type, identifier.value);
  return normalized.ok ? { type: identifier.type, value: normalized.value } : identifier;
}

async function requireLiveLink(client: DbClient, workspaceId: string, profileId: string, identifier: Identifier) {
  const { rows } = await client.query<{ id: number }>(
    `select id from profile_identifiers where workspace_id = $1 and profile_id = $2 and type = $3 and value = $4 and unbound_at is null`,
    [workspaceId, profileId, identifier.type, identifier.value],
  );
  if (!rows[0]) throw new NotFoundError(`${identifier.type} ${identifier.value} is not a live identifier of profile ${profileId}`);
  return rows[0].id;
}

/**
 * Ends an identifier's link to a profile (e.g. a phone number released by one member and later
 * given to a family member): from now on events with it no longer join this profile, while the
 * events before stay where they are.
 */
export async function unbindIdentifier(db: Db, workspaceId: string, profileId: string, given: Identifier, reason = 'unbound by operator') {
  return withTransaction(db, async (client) => {
    await lockWorkspaceIdentity(client, workspaceId);
    const live = await liveProfileId(client, workspaceId, profileId);
    const { config } = await loadWorkspaceIdentity(client, workspaceId);
    const identifier = storedIdentifier(config, await piiCodec(client, workspaceId), given);
    const linkId = await requireLiveLink(client, workspaceId, live, identifier);
    await enqueueSegmentEvaluation(client, workspaceId, [live]);
    const { rows } = await client.query<{ unbound_at: Date }>(
      `update profile_identifiers set unbound_at = now(), unbound_reason = $3 where workspace_id = $1 and id = $2 returning unbound_at`,
      [workspaceId, linkId, reason],
    );
    return { profileId: live, identifier, unboundAt: rows[0]!.unbound_at };
  });
}

/**
 * Splits a profile: the identifier and what came only through it move to a new profile with
 * their events; both profiles' traits are recomputed from their own events. The merge that
 * brought the identifier in is marked undone, and the two profiles are never joined again
 * automatically (identity_splits).
 */
export async function unmergeIdentifier(db: Db, workspaceId: string, profileId: string, given: Identifier) {
  return withTransaction(db, async (client) => {
    await lockWorkspaceIdentity(client, workspaceId);
    const live = await liveProfileId(client, workspaceId, profileId);
    const identity = await loadWorkspaceIdentity(client, workspaceId);
    // Personal data is stored encrypted (privacy/pii-codec.ts): as in resolution, sealed event
    // fields are opened, and PII identifiers and traits are compared and rewritten as tokens.
    const codec = await piiCodec(client, workspaceId);
    const config = withPiiCodec(identity.config, codec);
    const detach = storedIdentifier(identity.config, codec, given);
    await requireLiveLink(client, workspaceId, live, detach);

    const { rows: links } = await client.query<{ type: string; value: string; first_seen: Date }>(
      'select type, value, first_seen from profile_identifiers where workspace_id = $1 and profile_id = $2 and unbound_at is null',
      [workspaceId, live],
    );
    const events = (await loadProfileEvents(client, workspaceId, live)).map((event) => tokenizeForResolution(codec, codec.openEvent(event)));
    const eventSets = events.map((event) => extractIdentifiers(event, config).identifiers);
    const moving = identifiersToSplit(
      config,
      links.map((l) => ({ type: l.type, value: l.value, firstSeen: l.first_seen })),
      eventSets,
      detach,
    );
    if (moving.size === 0 || moving.size === links.length) {
      throw new ConflictError(`Profile ${live} has no other identifier to keep; unbind ${detach.type} instead of unmerging it`);
    }
    const liveKeys = new Set(links.map((l) => identifierKey(l)));
    const movedEvents = events.filter((_, i) => {
      const own = eventSets[i]!.map(identifierKey).filter((key) => liveKeys.has(key));
      return own.length > 0 && own.every((key) => moving.has(key));
    });

    const newId = crypto.randomUUID();
    // Before the trait rewrites: queueing may wait for a running segment drain (queue.ts).
    await enqueueSegmentEvaluation(client, workspaceId, [live, newId]);
    const movedIdentifiers = links.filter((l) => moving.has(identifierKey(l)));
    await client.query(
      `insert into profiles (workspace_id, id, first_seen, last_seen) values ($1, $2, $3, $4)`,
      [workspaceId, newId, movedEvents[0]?.timestamp ?? null, movedEvents.at(-1)?.timestamp ?? null],
    );
    await client.query(
      `update profile_identifiers set profile_id = $3
        where workspace_id = $1 and profile_id = $2 and unbound_at is null and (type, value) in (select * from unnest($4::text[], $5::text[]))`,
      [workspaceId, live, newId, movedIdentifiers.map((l) => l.type), movedIdentifiers.map((l) => l.value)],
    );
    if (movedEvents.length > 0) {
      await client.query(
        `update events e set profile_id = $2
           from unnest($3::timestamptz[], $4::bigint[]) as m(timestamp, seq)
          where e.workspace_id = $1 and e.timestamp = m.timestamp and e.seq = m.seq`,
        [workspaceId, newId, movedEvents.map((e) => e.timestamp), movedEvents.map((e) => e.seq)],
      );
    }
    const movedSeqs = new Set(movedEvents.map((e) => e.seq));
    const staying = events.filter((e) => !movedSeqs.has(e.seq));
    await rewriteTraits(client, workspaceId, live, staying, identity.strategies);
    await rewriteTraits(client, workspaceId, newId, movedEvents, identity.strategies);
    await rewriteConsents(client, workspaceId, new Map([[live, staying], [newId, movedEvents]]));
    await writeVault(client, codec);
    await client.query(
      `update profiles set first_seen = $3, last_seen = $4, updated_at = now() where workspace_id = $1 and id = $2`,
      [workspaceId, live, staying[0]?.timestamp ?? null, staying.at(-1)?.timestamp ?? null],
    );

    const { rows: logged } = await client.query<{ id: string }>(
      `insert into identity_merges (workspace_id, kind, survivor_id, absorbed_ids, details, cause_identifier_type, cause_identifier_value)
       values ($1, 'unmerge', $2, $3, $4, $5, $6) returning id`,
      [workspaceId, live, [newId], JSON.stringify({ newProfileId: newId, movedIdentifiers, movedEvents: movedEvents.length }), detach.type, detach.value],
    );
    // A merge is undone when identifiers it absorbed left with the split.
    const { rows: merges } = await client.query<{ id: string; details: { absorbed?: Array<{ identifiers: Identifier[] }> } }>(
      `select id, details from identity_merges
        where workspace_id = $1 and survivor_id = $2 and kind <> 'unmerge' and undone_at is null`,
      [workspaceId, live],
    );
    const undone = merges
      .filter((merge) => (merge.details.absorbed ?? []).some((a) => a.identifiers.some((i) => moving.has(identifierKey(i)))))
      .map((merge) => merge.id);
    if (undone.length > 0) {
      await client.query(
        'update identity_merges set undone_at = now(), undone_by = $3 where workspace_id = $1 and id = any($2::uuid[])',
        [workspaceId, undone, logged[0]!.id],
      );
    }
    const [a, b] = live < newId ? [live, newId] : [newId, live];
    await client.query(
      'insert into identity_splits (workspace_id, profile_a, profile_b) values ($1, $2, $3) on conflict do nothing',
      [workspaceId, a, b],
    );
    return {
      profileId: live,
      newProfileId: newId,
      movedIdentifiers: movedIdentifiers.map((l) => ({ type: l.type, value: l.value })),
      movedEvents: movedEvents.length,
      mergeLogId: logged[0]!.id,
    };
  });
}

async function loadProfileEvents(client: DbClient, workspaceId: string, profileId: string): Promise<QueuedEvent[]> {
  const { rows } = await client.query<IdentityEventRow>(
    `select ${IDENTITY_EVENT_COLUMNS} from events e where e.workspace_id = $1 and e.profile_id = $2 order by e.timestamp, e.seq`,
    [workspaceId, profileId],
  );
  return rows.map((row) => toQueuedEvent(row, row.timestamp));
}

/** Recomputes a profile's traits from its own events, recording value changes as 'unmerge' history. */
async function rewriteTraits(client: DbClient, workspaceId: string, profileId: string, events: QueuedEvent[], strategies: TraitStrategies) {
  const { rows: sourceRows } = await client.query<{ id: string; kind: string; name: string }>(
    'select id, kind, name from sources where workspace_id = $1',
    [workspaceId],
  );
  const sources = new Map(sourceRows.map((row) => [row.id, { kind: row.kind, name: row.name }]));
  let traits: TraitSet = {};
  for (const event of events) {
    const stated = traitsOf(event);
    if (!stated) continue;
    traits = applyEventTraits(
      traits,
      { traits: stated, source: sources.get(event.sourceId) ?? { kind: 'unknown', name: event.sourceId }, eventId: event.messageId, at: event.timestamp },
      strategies,
    ).traits;
  }
  // Computed values stay: the computed-trait refresh recomputes them over each side's events.
  const { rows: before } = await client.query<{ key: string; value: unknown }>(
    `delete from profile_traits where workspace_id = $1 and profile_id = $2 and source_kind <> '${COMPUTED_TRAIT_SOURCE_KIND}' returning key, value`,
    [workspaceId, profileId],
  );
  const previous = new Map(before.map((row) => [row.key, row.value]));
  const entries = Object.entries(traits);
  if (entries.length === 0) return;
  const { rows: inserted } = await client.query<{ key: string }>(
    `insert into profile_traits (workspace_id, profile_id, key, value, source_kind, source_name, message_id, observed_at)
     select $1, $2, * from unnest($3::text[], $4::jsonb[], $5::text[], $6::text[], $7::text[], $8::timestamptz[])
     on conflict (workspace_id, profile_id, key) do nothing returning key`,
    [workspaceId, profileId, entries.map(([k]) => k), entries.map(([, t]) => JSON.stringify(t.value)), entries.map(([, t]) => t.source.kind),
      entries.map(([, t]) => t.source.name), entries.map(([, t]) => t.eventId), entries.map(([, t]) => t.at)],
  );
  const written = new Set(inserted.map((row) => row.key));
  const changed = entries.filter(([key, trait]) => written.has(key) && JSON.stringify(previous.get(key)) !== JSON.stringify(trait.value));
  if (changed.length === 0) return;
  await client.query(
    `insert into profile_trait_history (workspace_id, profile_id, key, previous_value, value, source_kind, source_name, message_id, observed_at, reason)
     select $1, $2, k, p, v, sk, sn, m, o, 'unmerge' from unnest($3::text[], $4::jsonb[], $5::jsonb[], $6::text[], $7::text[], $8::text[], $9::timestamptz[]) as x(k, p, v, sk, sn, m, o)`,
    [workspaceId, profileId, changed.map(([k]) => k), changed.map(([k]) => (previous.has(k) ? JSON.stringify(previous.get(k)) : null)),
      changed.map(([, t]) => JSON.stringify(t.value)), changed.map(([, t]) => t.source.kind), changed.map(([, t]) => t.source.name),
      changed.map(([, t]) => t.eventId), changed.map(([, t]) => t.at)],
  );
}
