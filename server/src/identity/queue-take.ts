/**
 * The identity queue holds one row per ingest request: the request's stored events as ascending
 * `seqs` with their `timestamps`, `seq` the smallest of them (migration 0093). These statements are
 * what every writer and reader of its rows shares.
 */

/**
 * Takes (deletes and returns) up to `$2` of the workspace's oldest queued events in seq order:
 * the first events a per-event queue taken `order by seq` gave, at least one when any is queued
 * (identity_queue_take, migration 0093, says how rows are cut).
 *
 * The times only go back to PostgreSQL (the resolver's loadEvents), so they stay text: JSON's
 * ISO 8601, whatever the session's DateStyle, read back exactly. The transaction time comes as
 * epoch milliseconds, a number, not a date string parsed on each row.
 *
 * Parameters: $1 workspace, $2 events wanted (> 0). Rows: seq, timestamp (ISO 8601 text), now (epoch ms).
 */
export const TAKE_QUEUED_EVENTS = `
  select event_seq as seq, to_json(event_time) #>> '{}' as timestamp, floor(extract(epoch from now()) * 1000)::float8 as now
    from identity_queue_take($1, $2)`;

/**
 * CTEs that cut deleted events out of the queue, to follow a CTE named `gone` returning the deleted
 * events' `seq` (retention, erasure) in a statement whose `$1` is the workspace. A row holding any
 * of them is replaced by a row of its other events (none when it held only those): the rows left
 * keep their seqs ascending and their smallest as `seq`. Only rows whose smallest seq is at most
 * the largest deleted one can hold one, so the scan stops there.
 */
export const CUT_GONE_FROM_IDENTITY_QUEUE = `gone_seqs as (
    select array_agg(seq) as seqs, max(seq) as last from gone
  ), cut as (
    delete from identity_queue q
     where q.workspace_id = $1 and q.seq <= (select last from gone_seqs) and q.seqs && (select seqs from gone_seqs)
    returning q.seq as first, q.seqs, q.timestamps
  ), uncut as (
    insert into identity_queue (workspace_id, seq, events, seqs, timestamps)
    select $1, min(u.seq), count(*), array_agg(u.seq order by u.seq), array_agg(u.timestamp order by u.seq)
      from cut c cross join lateral unnest(c.seqs, c.timestamps) as u(seq, timestamp)
     where not exists (select 1 from gone g where g.seq = u.seq)
     group by c.first
  )`;

/** Events waiting in a workspace's identity queue (rows hold a request's events each). */
export const COUNT_QUEUED_EVENTS = 'select coalesce(sum(events), 0)::int as pending from identity_queue where workspace_id = $1';
