-- Analytics: the per-profile funnel matcher of 0040, same meaning (see there), faster in
-- sequential order. 0040 scanned forward from every start to its window's end: starts × events
-- in the window, quadratic for busy profiles under a long window (a 10-step funnel with a 30-day
-- window spent most of its time there). Here each step keeps a pointer to the first event of that
-- step after the previous start's hit; greedy chains only move forward as the start moves forward,
-- so each pointer crosses the profile's events once: events × steps at most, usually far less.
-- A start whose chain ran out of events (no later event of its next step at all) cannot be beaten
-- by a later start, so the search stops there (unless an exclusion disqualified it).
-- Strict and any order are unchanged. server/test/analytics-funnel.test.ts holds all three orders,
-- with and without exclusions, equal to a plain TypeScript reimplementation on random histories.
create or replace function analytics_funnel_match(
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
  ran_out boolean;
  full_mask bigint := (1::bigint << steps) - 1;
  ptr int[] := array_fill(0, array[greatest(steps, 1)]);
  p int;
  q int;
  k int;
  step_bit bigint;
begin
  for i in 1 .. n loop
    exit when ts[i] >= start_before;
    continue when (mode <> 'any' and masks[i] & 1 = 0) or (mode = 'any' and masks[i] & full_mask = 0);
    deadline := ts[i] + conversion_window;
    attempt := array[i];
    ran_out := false;
    if mode = 'sequential' then
      p := i;
      for k in 1 .. steps - 1 loop
        step_bit := 1::bigint << k;
        q := ptr[k];
        if q <= p then q := p + 1; end if;
        while q <= n and masks[q] & step_bit = 0 loop q := q + 1; end loop;
        ptr[k] := q;
        if q > n then ran_out := true; exit; end if;
        exit when ts[q] > deadline;
        attempt := attempt || q;
        p := q;
      end loop;
    else
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
    end if;
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
    exit when cardinality(best) = steps or ran_out;
  end loop;
  return best;
end $$;
