-- Each date-trait journey's next occurrence per profile, so the once-a-minute scan reads only due
-- rows instead of every profile row of the trait key. Built once per trigger (first scan after
-- publish), kept current from profile_trait_history (settled cursor) and moved on after firing.
create table journey_date_occurrences (
  workspace_id uuid not null,
  journey_id uuid not null,
  profile_id uuid not null,
  next_at timestamptz not null,
  primary key (workspace_id, journey_id, profile_id)
);
create index journey_date_occurrences_due on journey_date_occurrences (workspace_id, journey_id, next_at);

-- The trigger the table was built for (a changed trigger rebuilds it) and the trait history id read up to.
alter table journey_schedules add column dates_trigger jsonb, add column dates_history_cursor bigint;
