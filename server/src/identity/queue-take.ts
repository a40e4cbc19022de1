/**
 * The identity queue holds one row per ingest request: the request's stored events as ascending
 * `seqs` with their `timestamps`, `seq` the smallest of them (migration 0093). These statements are
 * what every writer and reader of its rows shares.
 */

/**
 * Takes (deletes and returns) up to `$2` of the workspace's oldest queued events in seq order:
 * the first events a per-event queue taken `order by seq` gave, at least one when any is queued.
 *
 * The batch is every queued event below X, the (`$2`+1)-th smallest queued seq (all of them when
 * fewer are queued), and the rows to read are those whose seq (their smallest) is below X. X is
 * found without reading every row: rows are walked by seq (one primary-key probe each, the count
 * column only) until they hold `$2`+1 events; the (`$2`+1)-th smallest of their seqs, X0, is at
 * least X, so the rows after them with a seq below X0 (one range read) complete the candidates,
 * and X is the (`$2`+1)-th smallest of those. Concurrent requests' seqs interleave, so a taken row
 * may hold seqs past X: they must wait for the events between (one person's events are resolved in
 * seq order) and are put back as one row.
 *
 * The times only go back to PostgreSQL (the resolver's loadEvents), so they stay text: JSON's
 * ISO 8601, whatever the session's DateStyle, read back exactly. The transaction time comes as
 * epoch milliseconds, a number, not a date string parsed on each row.
 *
 * Parameters: $1 workspace, $2 events wanted (> 0). Rows: seq, timestamp (ISO 8601 text), now (epoch ms).
 */
export const TAKE_QUEUED_EVENTS = `
  with recursive walk as (
    (select seq, events::bigint as through from identity_queue where workspace_id = $1 order by seq limit 1)
    union all
    (select q.seq, w.through + q.events
       from walk w
       cross join lateral (select seq, events from identity_queue q
                            where q.workspace_id = $1 and q.seq > w.seq order by q.seq limit 1) q
      where w.through <= $2::int)
  ), walked as materialized (
    -- Keys as an array: one probe each, whatever statistics gathered on an empty queue say.
    select q.seq, q.seqs from identity_queue q where q.workspace_id = $1 and q.seq = any(array(select seq from walk))
  ), x0 as (
    select u.seq from walked w cross join lateral unnest(w.seqs) as u(seq) order by u.seq offset $2::int limit 1
  ), candidates as materialized (
    select seq, seqs from walked
    union all
    select q.seq, q.seqs from identity_queue q
     where q.workspace_id = $1 and q.seq > (select max(seq) from walk) and q.seq < (select seq from x0)
  ), cutoff as (
    select (select u.seq from candidates c cross join lateral unnest(c.seqs) as u(seq) order by u.seq offset $2::int limit 1) as seq
  ), taken as (
    delete from identity_queue
     where workspace_id = $1
       and seq = any(array(select seq from candidates where seq < coalesce((select seq from cutoff), 9223372036854775807)))
    returning seqs, timestamps
  ), events as materialized (
    select u.seq, u.timestamp from taken t cross join lateral unnest(t.seqs, t.timestamps) as u(seq, timestamp)
  ), put_back as (
    insert into identity_queue (workspace_id, seq, events, seqs, timestamps)
    select $1, min(e.seq), count(*), array_agg(e.seq order by e.seq), array_agg(e.timestamp order by e.seq)
      from events e where e.seq >= (select seq from cutoff)
    having count(*) > 0
  )
  select e.seq, to_json(e.timestamp) #>> '{}' as timestamp, floor(extract(epoch from now()) * 1000)::float8 as now
    from events e
   where (select seq from cutoff) is null or e.seq < (select seq from cutoff)
   order by e.seq`;

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
