import type { Queryable } from '../storage/database.ts';
import type { ChannelKind } from './contract.ts';
import { openPii } from '../privacy/pii-codec.ts';

/** What a send needs to know about a profile: traits (computed ones included) and live identifiers. */
export interface RecipientFacts {
  profileId: string;
  /** The survivor when the profile was merged away; sends go to it. */
  mergedInto: string | null;
  exists: boolean;
  traits: Record<string, unknown>;
  /** Live identifiers by type, most recently seen first. */
  identifiers: Record<string, string[]>;
}

/** Where each channel delivers: a trait, else a live identifier of that type. */
const ADDRESS_SOURCES: Record<ChannelKind, { trait?: string; identifier?: string }[]> = {
  email: [{ trait: 'email' }, { identifier: 'email' }],
  sms: [{ trait: 'phone' }, { identifier: 'phone' }],
  wechat: [{ identifier: 'wechat_openid' }, { trait: 'wechat_openid' }],
  wecom: [{ identifier: 'wecom_userid' }, { trait: 'wecom_userid' }],
  push: [{ identifier: 'push_token' }, { trait: 'push_token' }],
  webhook: [],
};

/** The address a channel sends to; webhooks address the profile itself. */
export function addressOf(channel: ChannelKind, facts: RecipientFacts): string | undefined {
  if (channel === 'webhook') return facts.profileId;
  for (const source of ADDRESS_SOURCES[channel]) {
    const value = source.trait ? facts.traits[source.trait] : facts.identifiers[source.identifier!]?.[0];
    if (typeof value === 'string' && value.trim() !== '') return channel === 'email' ? value.trim().toLowerCase() : value.trim();
  }
  return undefined;
}

export function localeOf(facts: RecipientFacts): string | undefined {
  const value = facts.traits.locale ?? facts.traits.language;
  return typeof value === 'string' && value !== '' ? value : undefined;
}

export function timeZoneOf(facts: RecipientFacts): string | undefined {
  const value = facts.traits.timezone ?? facts.traits.time_zone;
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/** Facts of many profiles in one statement (per-profile index probes through unnest + lateral). */
export async function loadRecipients(db: Queryable, workspaceId: string, profileIds: readonly string[]): Promise<Map<string, RecipientFacts>> {
  const unique = [...new Set(profileIds)];
  const facts = new Map<string, RecipientFacts>();
  if (unique.length === 0) return facts;
  const { rows } = await db.query<{ id: string; exists: boolean; merged_into: string | null; traits: Record<string, unknown> | null; identifiers: Record<string, string[]> | null }>(
    `select r.id, p.id is not null as exists, p.merged_into, t.traits, i.identifiers
       from unnest($2::uuid[]) as r(id)
       left join profiles p on p.workspace_id = $1 and p.id = r.id
       left join lateral (select jsonb_object_agg(key, value) as traits from profile_traits
                           where workspace_id = $1 and profile_id = r.id) t on true
       left join lateral (select jsonb_object_agg(type, values) as identifiers from (
                            select type, jsonb_agg(value order by last_seen desc) as values from profile_identifiers
                             where workspace_id = $1 and profile_id = r.id and unbound_at is null group by type) g) i on true`,
    [workspaceId, unique],
  );
  // PII identifiers and traits are stored as keyed-hash tokens (privacy/pii-codec.ts): a send needs the
  // real address and templates the real name, so they are opened here (one vault query for the batch).
  const opened = await openPii(db, workspaceId, rows);
  for (const row of opened) {
    facts.set(row.id, { profileId: row.id, exists: row.exists, mergedInto: row.merged_into, traits: row.traits ?? {}, identifiers: row.identifiers ?? {} });
  }
  return facts;
}

/** The `profile` object templates see. */
export function profileVariables(facts: RecipientFacts): Record<string, unknown> {
  const first = (type: string) => facts.identifiers[type]?.[0] ?? null;
  return {
    id: facts.profileId,
    email: typeof facts.traits.email === 'string' ? facts.traits.email : first('email'),
    phone: typeof facts.traits.phone === 'string' ? facts.traits.phone : first('phone'),
    user_id: first('user_id'),
    locale: localeOf(facts) ?? null,
    identifiers: facts.identifiers,
  };
}
