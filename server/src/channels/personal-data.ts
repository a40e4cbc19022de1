import { registerPersonalData } from '../privacy/registry.ts';

/**
 * A person's messages (queued ones too: deleting them is what stops their sending), their status
 * history, subscription choices, and channel suppressions of their addresses. Re-creation of an
 * erased person is prevented by privacy's keyed-hash suppression, not by keeping their address here.
 */
registerPersonalData({
  name: 'messages',
  export: async (db, s) =>
    (
      await db.query(
        `select m.id, m.channel, m.template_key, m.purpose, m.address, m.status, m.created_at,
                coalesce((select jsonb_agg(jsonb_build_object('status', h.status, 'reason', h.reason, 'at', h.at) order by h.id)
                            from message_status_history h where h.workspace_id = m.workspace_id and h.message_id = m.id), '[]') as history
           from messages m
          where m.workspace_id = $1 and m.profile_id = any($2::uuid[])
          order by m.created_at`,
        [s.workspaceId, s.profileIds],
      )
    ).rows,
  erase: async (db, s) => {
    const { rows } = await db.query<{ n: string }>(
      `with gone as (
         delete from messages where workspace_id = $1 and profile_id = any($2::uuid[]) returning id
       ), history as (
         delete from message_status_history h using gone where h.workspace_id = $1 and h.message_id = gone.id
       )
       select count(*) as n from gone`,
      [s.workspaceId, s.profileIds],
    );
    return Number(rows[0]?.n ?? 0);
  },
});

registerPersonalData({
  name: 'profile_subscriptions',
  export: async (db, s) =>
    (await db.query(`select group_key, subscribed, source, updated_at from profile_subscriptions where workspace_id = $1 and profile_id = any($2::uuid[])`, [s.workspaceId, s.profileIds])).rows,
  erase: async (db, s) =>
    (await db.query(`delete from profile_subscriptions where workspace_id = $1 and profile_id = any($2::uuid[])`, [s.workspaceId, s.profileIds])).rowCount ?? 0,
});

registerPersonalData({
  name: 'channel_suppressions',
  export: async (db, s) =>
    (await db.query(`select channel, address, reason, created_at from channel_suppressions where workspace_id = $1 and lower(address) = any($2::text[])`, [s.workspaceId, s.values.map((v) => v.toLowerCase())])).rows,
  erase: async (db, s) =>
    (await db.query(`delete from channel_suppressions where workspace_id = $1 and lower(address) = any($2::text[])`, [s.workspaceId, s.values.map((v) => v.toLowerCase())])).rowCount ?? 0,
});

// Frequency-cap lock rows hold only the profile id: nothing to export, erased with the person.
registerPersonalData({
  name: 'channel_profile_locks',
  erase: async (db, s) =>
    (await db.query(`delete from channel_profile_locks where workspace_id = $1 and profile_id = any($2::uuid[])`, [s.workspaceId, s.profileIds])).rowCount ?? 0,
});

// A block names only the profile and an operator's reason: exported with the person, erased with them.
registerPersonalData({
  name: 'profile_blocks',
  export: async (db, s) =>
    (await db.query(`select reason, blocked_by, blocked_at from profile_blocks where workspace_id = $1 and profile_id = any($2::uuid[])`, [s.workspaceId, s.profileIds])).rows,
  erase: async (db, s) =>
    (await db.query(`delete from profile_blocks where workspace_id = $1 and profile_id = any($2::uuid[])`, [s.workspaceId, s.profileIds])).rowCount ?? 0,
});
