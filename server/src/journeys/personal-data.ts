import { registerPersonalData } from '../privacy/registry.ts';

/** A person's journey instances and the steps they walked (privacy/steps.ts imports this). */
registerPersonalData({
  name: 'journey_instances',
  export: async (db, s) =>
    (
      await db.query(
        `select i.journey_id, i.version, i.status, i.node_id, i.entered_at,
                coalesce((select jsonb_agg(jsonb_build_object('node', st.node_id, 'kind', st.kind, 'outcome', st.outcome, 'at', st.at) order by st.step)
                            from journey_steps st where st.workspace_id = i.workspace_id and st.instance_id = i.id), '[]') as steps
           from journey_instances i
          where i.workspace_id = $1 and i.profile_id = any($2::uuid[])
          order by i.entered_at`,
        [s.workspaceId, s.profileIds],
      )
    ).rows,
  erase: async (db, s) => {
    // Their next date-trait occurrences too (no personal data beyond the id, but nothing to keep).
    await db.query('delete from journey_date_occurrences where workspace_id = $1 and profile_id = any($2::uuid[])', [s.workspaceId, s.profileIds]);
    const { rows } = await db.query<{ n: string }>(
      `with gone as (
         delete from journey_instances where workspace_id = $1 and profile_id = any($2::uuid[]) returning id
       ), steps as (
         delete from journey_steps st using gone where st.workspace_id = $1 and st.instance_id = gone.id
       )
       select count(*) as n from gone`,
      [s.workspaceId, s.profileIds],
    );
    return Number(rows[0]?.n ?? 0);
  },
});
