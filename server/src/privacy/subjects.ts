import { loadWorkspaceIdentity } from '../identity/settings-store.ts';
import { normalizeForLookup, parseProfileRef } from '../profiles/reference.ts';
import type { Queryable } from '../storage/database.ts';
import type { DataSubject } from './registry.ts';
import { isPiiToken, openPii, piiCodec, withPiiCodec } from './pii-codec.ts';

/** How a request names its subject: the type (or 'profile_id') and the value as stored. */
export interface SubjectRef {
  type: string;
  value: string;
  /** The normalised value itself when `value` is its PII token. */
  plain?: string;
}

/** Reads `<type>:<value>` or a profile id, normalised as the workspace stores identifiers (400 otherwise). */
export async function parseSubject(db: Queryable, workspaceId: string, ref: string): Promise<SubjectRef> {
  const parsed = parseProfileRef(ref, 'subject');
  if (parsed.kind === 'id') return { type: 'profile_id', value: parsed.profileId };
  const { config } = await loadWorkspaceIdentity(db, workspaceId);
  // As stored: a PII identifier's value is its keyed-hash token (gatherSubject opens it again).
  const codec = await piiCodec(db, workspaceId);
  const found = normalizeForLookup(withPiiCodec(config, codec), parsed.type, parsed.raw, { type: 'subject', value: 'subject' });
  return isPiiToken(found.value) ? { ...found, plain: String(codec.identifiers.open(found.value)) } : found;
}

/**
 * Everything that identifies the person: the profile the identifier (or id) leads to, every
 * profile merged into it, and every identifier ever linked to any of them. A person Touchpoint
 * has not resolved yet (events still queued) is still a subject: their identifier alone.
 */
export async function gatherSubject(db: Queryable, workspaceId: string, ref: SubjectRef): Promise<DataSubject> {
  let start: string | undefined;
  if (ref.type === 'profile_id') {
    start = ref.value;
  } else {
    const { rows } = await db.query<{ profile_id: string }>(
      `select profile_id from profile_identifiers where workspace_id = $1 and type = $2 and value = $3
        order by unbound_at is null desc, bound_at desc limit 1`,
      [workspaceId, ref.type, ref.value],
    );
    start = rows[0]?.profile_id;
  }
  let profileIds: string[] = [];
  if (start) {
    const { rows } = await db.query<{ id: string }>(
      `with recursive root as (
         select id, merged_into, 0 as depth from profiles where workspace_id = $1 and id = $2
         union all
         select p.id, p.merged_into, root.depth + 1 from profiles p join root on p.id = root.merged_into
          where p.workspace_id = $1 and root.depth < 100
       ), family as (
         select id from (select id from root where merged_into is null limit 1) survivor
         union
         select p.id from profiles p join family f on p.merged_into = f.id where p.workspace_id = $1
       )
       select id from family`,
      [workspaceId, start],
    );
    profileIds = rows.map((row) => row.id);
  }
  const { rows: identifiers } = profileIds.length
    ? await db.query<{ type: string; value: string }>(
        'select distinct type, value from profile_identifiers where workspace_id = $1 and profile_id = any($2::uuid[]) order by type, value',
        [workspaceId, profileIds],
      )
    : { rows: [] as Array<{ type: string; value: string }> };
  if (ref.type !== 'profile_id' && !identifiers.some((identifier) => identifier.type === ref.type && identifier.value === ref.value)) {
    identifiers.push({ type: ref.type, value: ref.value });
  }
  // Suppression, events' user ids, quarantine hashes and other modules' address-keyed rows go by the
  // values themselves: PII tokens are opened (every token a link ever had has its vault copy).
  const opened = await openPii(db, workspaceId, identifiers);
  const plain = opened.filter((identifier) => !isPiiToken(identifier.value));
  if (ref.plain !== undefined && !plain.some((identifier) => identifier.type === ref.type && identifier.value === ref.plain)) {
    plain.push({ type: ref.type, value: ref.plain });
  }
  const tokens = identifiers.filter((identifier) => isPiiToken(identifier.value)).map((identifier) => identifier.value);
  return {
    workspaceId,
    profileIds,
    identifiers: plain,
    values: [...new Set(plain.map((identifier) => identifier.value))],
    tokens: [...new Set(tokens)],
  };
}
