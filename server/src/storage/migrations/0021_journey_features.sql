-- Journeys, second part: per-key instances (one per value of a trigger-event property, e.g. an
-- order id), date-trait and scheduled-audience entries, and their schedule.

-- '' for the usual one instance per profile; the key's value for per-key instances.
alter table journey_instances add column instance_key text not null default '';
drop index journey_instances_live;
create unique index journey_instances_live on journey_instances (workspace_id, journey_id, profile_id, instance_key) where status = 'active';

alter table journey_instances drop constraint journey_instances_entry_check;
alter table journey_instances add constraint journey_instances_entry_check check (entry in ('event', 'segment', 'api', 'date', 'schedule'));

-- Date-trait and scheduled entries: one row per live journey with such a trigger. Date triggers
-- cover time up to covered_until (occurrences after it are still to enter); schedules run next at
-- next_run_at (null: a one-off that has run). The loop takes rows with FOR UPDATE SKIP LOCKED.
create table journey_schedules (
  workspace_id uuid not null,
  journey_id uuid not null,
  kind text not null check (kind in ('date', 'schedule')),
  next_run_at timestamptz,
  covered_until timestamptz,
  last_run_at timestamptz,
  last_entered integer not null default 0,
  primary key (workspace_id, journey_id),
  foreign key (workspace_id, journey_id) references journeys (workspace_id, id)
);
create index journey_schedules_due on journey_schedules (next_run_at) where next_run_at is not null;

-- Direct trait writes (profiles/trait-writer.ts: a journey's update_trait node) are history rows
-- with reason 'write' and their own provenance (source kind 'journey', name 'journey:<id>').
alter table profile_trait_history drop constraint profile_trait_history_reason_check;
alter table profile_trait_history add constraint profile_trait_history_reason_check
  check (reason in ('event', 'merge', 'unmerge', 'computed', 'write'));
