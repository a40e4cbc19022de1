-- Analytics: the per-profile funnel matcher (run next to the data, over one profile's ordered
-- events) and saved reports.

-- One profile's funnel: `ts` and `masks` are its candidate events in (timestamp, seq) order; bit k
-- (0 ≤ k < steps) of a mask says the event matches step k, bit 20 + x that it matches exclusion x,
-- whose span runs from step excl_from[x] to step excl_to[x] (0-based). Returns the 1-based indices
-- of the events of the best attempt, one per step reached (empty when none started).
-- An attempt starts at a step-0 event before `start_before` (any step event for 'any' order) and
-- ends at its start + `conversion_window`. 'sequential': each next step is the earliest later event
-- matching it; 'strict': the very next event must match the next step, or the attempt stops there;
-- 'any': steps in any order, each counted at its first event in the window. An attempt with an
-- exclusion event after its from-step and before its to-step (or before its window ends, when the
-- to-step was not reached) does not count. Best: most steps, then the earliest start.
-- A plain TypeScript reimplementation in server/test/analytics-funnel.test.ts holds it to this text.
create function analytics_funnel_match(
  ts timestamptz[], masks bigint[], steps int, conversion_window interval, mode text,
  start_before timestamptz, excl_from int[], excl_to int[]
) returns int[] language plpgsql immutable parallel safe as $$
declare
  n int := coalesce(array_length(ts, 1), 0);
  best int[] := '{}';
  attempt int[];
  seen bigint;
  deadline timestamptz;
  bit int;
  next_step int;
  x int;
  span_start int;
  span_end int;
  disqualified boolean;
  full_mask bigint := (1::bigint << steps) - 1;
begin
  for i in 1 .. n loop
    exit when ts[i] >= start_before;
    continue when (mode <> 'any' and masks[i] & 1 = 0) or (mode = 'any' and masks[i] & full_mask = 0);
    deadline := ts[i] + conversion_window;
    attempt := array[i];
    if mode = 'any' then
      bit := 0;
      while masks[i] & (1::bigint << bit) = 0 loop bit := bit + 1; end loop;
      seen := 1::bigint << bit;
    else
      seen := 1;
    end if;
    next_step := 1;
    for j in i + 1 .. n loop
      exit when ts[j] > deadline or cardinality(attempt) = steps;
      if mode = 'any' then
        if masks[j] & full_mask & ~seen <> 0 then
          bit := 0;
          while (masks[j] & ~seen) & (1::bigint << bit) = 0 loop bit := bit + 1; end loop;
          seen := seen | (1::bigint << bit);
          attempt := attempt || j;
        end if;
      elsif masks[j] & (1::bigint << next_step) <> 0 then
        attempt := attempt || j;
        next_step := next_step + 1;
      elsif mode = 'strict' then
        exit;
      end if;
    end loop;
    disqualified := false;
    for x in 1 .. coalesce(array_length(excl_from, 1), 0) loop
      continue when cardinality(attempt) <= excl_from[x];
      span_start := attempt[excl_from[x] + 1];
      span_end := case when cardinality(attempt) > excl_to[x] then attempt[excl_to[x] + 1] else n + 1 end;
      for j in span_start + 1 .. span_end - 1 loop
        exit when ts[j] > deadline;
        if masks[j] & (1::bigint << (19 + x)) <> 0 then disqualified := true; exit; end if;
      end loop;
      exit when disqualified;
    end loop;
    continue when disqualified;
    if cardinality(attempt) > cardinality(best) then best := attempt; end if;
    exit when cardinality(best) = steps;
  end loop;
  return best;
end $$;

-- Saved reports: a named, versioned query definition, run on demand.
create table analytics_reports (
  workspace_id uuid not null,
  id uuid not null default gen_random_uuid(),
  key text not null,
  name text not null,
  description text,
  kind text not null check (kind in ('funnel', 'trend', 'retention', 'paths', 'lifecycle', 'attribution', 'touchpoints', 'journey', 'experiment')),
  definition jsonb not null,
  version int not null default 1,
  status text not null default 'active' check (status in ('active', 'archived')),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (workspace_id, id),
  unique (workspace_id, key)
);

-- Every version of a report's definition, so a number quoted last month can be reproduced.
create table analytics_report_versions (
  workspace_id uuid not null,
  report_id uuid not null,
  version int not null,
  definition jsonb not null,
  created_at timestamptz not null default now(),
  primary key (workspace_id, report_id, version),
  foreign key (workspace_id, report_id) references analytics_reports (workspace_id, id)
);
