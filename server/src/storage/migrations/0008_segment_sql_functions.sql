-- Value rules of the segment language (segments/ast.ts, "Shared semantics") as SQL functions, so the
-- compiled segment queries (segments/sql/) read numbers and dates exactly as the incremental
-- evaluator does, and never fail on a value that is not one: they return null instead.
--
-- The number and date functions are plain SQL where possible so the planner inlines them; the
-- PL/pgSQL ones are reached only for rare shapes (exponents, out-of-range magnitudes) or need a
-- regular-expression match whose groups are used several times.

-- The text of a number in full (/^-?\d+(\.\d+)?([eE][+-]?\d+)?$/, ASCII digits only) as a double,
-- for the shapes float8 input could refuse: a magnitude too large is not a number (null), one too
-- small is 0, as JavaScript's Number() reads it.
create function segment_text_number_extreme(value text) returns double precision
language plpgsql immutable strict parallel safe as $$
declare
  parts text[];
  integer_digits text;
  fraction_digits text;
  leading_exponent numeric;
begin
  return value::double precision;
exception when numeric_value_out_of_range then
  parts := regexp_match(value, '^-?([0-9]+)(?:\.([0-9]+))?(?:[eE]([+-]?[0-9]+))?$');
  integer_digits := ltrim(parts[1], '0');
  fraction_digits := coalesce(parts[2], '');
  -- The power of ten of the first significant digit decides overflow (>= 0) or underflow (< 0).
  if integer_digits <> '' then
    leading_exponent := length(integer_digits) - 1;
  else
    leading_exponent := -(length(fraction_digits) - length(ltrim(fraction_digits, '0'))) - 1;
  end if;
  leading_exponent := leading_exponent + coalesce(parts[3]::numeric, 0);
  if leading_exponent >= 0 then
    return null;
  end if;
  return 0;
end $$;

create function segment_text_number(value text) returns double precision
language sql immutable parallel safe as $$
  select case
    -- Up to 300 digits with no exponent (or a small one) is always inside the range of a double.
    when value ~ '^-?[0-9]+(\.[0-9]+)?$' and length(value) <= 300 then value::double precision
    when value ~ '^-?[0-9]{1,100}(\.[0-9]{1,100})?[eE][+-]?[0-9]{1,2}$' then value::double precision
    when value ~ '^-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?$' then segment_text_number_extreme(value)
  end
$$;

-- A JSON value as a number: a JSON number, or a JSON string that is a decimal number in full.
create function segment_json_number(value jsonb) returns double precision
language sql immutable parallel safe as $$
  select case when jsonb_typeof(value) in ('number', 'string') then segment_text_number(value #>> '{}') end
$$;

-- An ISO-8601 date or date-time as ingest/normalize.ts parseInstant reads it: no zone is UTC, a
-- date alone is midnight UTC, fractions beyond milliseconds are cut, impossible dates and times
-- (30 February, 24:00, years before 100) are not instants.
create function segment_text_instant(value text) returns timestamptz
language plpgsql immutable strict parallel safe as $$
declare
  parts text[];
  year integer;
  month integer;
  day integer;
  hour integer;
  minute integer;
  second integer;
  millisecond integer;
  offset_hour integer;
  offset_minute integer;
begin
  parts := regexp_match(value,
    '^([0-9]{4})-([0-9]{2})-([0-9]{2})(?:[Tt ]([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.([0-9]+))?)?(?:([Zz])|([+-])([0-9]{2}):?([0-9]{2}))?)?$');
  if parts is null then
    return null;
  end if;
  year := parts[1]::integer;
  month := parts[2]::integer;
  day := parts[3]::integer;
  hour := coalesce(parts[4]::integer, 0);
  minute := coalesce(parts[5]::integer, 0);
  second := coalesce(parts[6]::integer, 0);
  millisecond := coalesce(substr(rpad(parts[7], 3, '0'), 1, 3)::integer, 0);
  offset_hour := coalesce(parts[10]::integer, 0);
  offset_minute := coalesce(parts[11]::integer, 0);
  -- JavaScript's Date.UTC reads years 0-99 as 1900-1999, so parseInstant refuses them.
  if year < 100 or month < 1 or month > 12 or day < 1 then
    return null;
  end if;
  if day > make_date(year + month / 12, month % 12 + 1, 1) - make_date(year, month, 1) then
    return null;
  end if;
  if hour > 23 or minute > 59 or second > 59 or offset_hour > 23 or offset_minute > 59 then
    return null;
  end if;
  return make_timestamptz(year, month, day, hour, minute, second + millisecond / 1000.0, 'UTC')
    - (case when parts[9] = '-' then -1 else 1 end) * (offset_hour * 60 + offset_minute) * interval '1 minute';
end $$;

-- A JSON value as an instant: only a JSON string can be one.
create function segment_json_instant(value jsonb) returns timestamptz
language sql immutable parallel safe as $$
  select case when jsonb_typeof(value) = 'string' then segment_text_instant(value #>> '{}') end
$$;
