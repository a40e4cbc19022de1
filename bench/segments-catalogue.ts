/**
 * Twenty typical retail segments over the data of bench/segments-data.ts, each in the segment
 * language and as the best SQL we could write by hand for the same meaning on this schema (as
 * server/src/segments/ast.ts defines it). The benchmark checks that both return the same profiles
 * and compares their times.
 *
 * Hand-written SQL knows what a person writing it for this data would know: every revenue, price
 * and date is well-formed (so plain casts are safe), merged-away profiles keep no traits, events or
 * consents (a merge moves them), and the windows are relative to `now`. It reads `profiles` only
 * where the meaning needs the set of all live profiles (negations). workspace_id has no statistics,
 * so the planner underestimates every workspace's rows; where that led to a per-row probe that
 * grows with the data, the query is written so it cannot (a NOT EXISTS against
 * segment_memberships took 16.8 s on 100,000 profiles where EXCEPT takes 0.5 s; the negated
 * sequences are one windowed scan, not a probe per event). Parameters: $1 the workspace,
 * then `params` from $2 (`now`, when the query has windows).
 */

export interface SegmentCase {
  key: string;
  name: string;
  /** The segment language (parsed by parseSegment). */
  text: string;
  /** One column of profile ids, each once. */
  handSql: string;
  /** Values for $2 … of handSql; `segmentIds` maps keys of other segments to their ids. */
  params?: (context: { segmentIds: ReadonlyMap<string, string> }) => unknown[];
}

const DAY_MS = 86_400_000;

const orders = (window: string) =>
  `select profile_id from events
    where workspace_id = $1 and type = 'track' and event = 'Order Completed' and profile_id is not null${window}`;
const since = (days: number) => ` and timestamp > $2::timestamptz - interval '${days} days'`;
const revenue = `(properties->>'revenue')::float8`;
const trait = (key: string, test: string) => `select profile_id from profile_traits where workspace_id = $1 and key = '${key}' and ${test}`;

/**
 * "A then not B within `within`", A inside the last `window`: one scan of both events in the window,
 * each A with the time of the first B after it in (timestamp, seq) order; A qualifies when its wait
 * is over and no B came in time. (B before the window cannot follow an A inside it.)
 */
const nextAfter = (first: string, then: string, window: string, within: string) =>
  `select distinct profile_id from (
     select profile_id, event, timestamp,
            min(timestamp) filter (where event = '${then}')
              over (partition by profile_id order by timestamp, seq rows between 1 following and unbounded following) as next_then
       from events
      where workspace_id = $1 and profile_id is not null and type = 'track' and event in ('${first}', '${then}')
        and timestamp > $2::timestamptz - interval '${window}') as x
    where event = '${first}' and timestamp <= $2::timestamptz - interval '${within}'
      and (next_then is null or next_then > timestamp + interval '${within}')`;

/** ISO date (UTC) of an instant. */
function isoDate(time: number): string {
  return new Date(time).toISOString().slice(0, 10);
}

/**
 * The month-days (MM-DD) of the `days` days from today (UTC), with 02-29 standing in for 28
 * February of a year without one: what `anniversary within next` matches.
 */
export function anniversaryMonthDays(now: Date, days: number): string[] {
  const today = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate());
  const monthDays = new Set<string>();
  for (let k = 0; k < days; k++) {
    const day = new Date(today + k * DAY_MS);
    const monthDay = isoDate(day.getTime()).slice(5);
    monthDays.add(monthDay);
    const year = day.getUTCFullYear();
    const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
    if (monthDay === '02-28' && !leap) monthDays.add('02-29');
  }
  return [...monthDays];
}

/** The 20 segments, in an order where a segment comes after those it uses (in_segment). */
export function segmentCatalogue(now: Date): SegmentCase[] {
  const churnDate = isoDate(now.getTime() - 180 * DAY_MS);
  return [
    {
      key: 'shanghai_members',
      name: '上海会员',
      text: 'trait.city = "上海" and trait.is_member = true',
      handSql: `select c.profile_id from profile_traits c
                  join profile_traits m on m.workspace_id = c.workspace_id and m.profile_id = c.profile_id and m.key = 'is_member' and m.value = 'true'
                 where c.workspace_id = $1 and c.key = 'city' and c.value = '"上海"'`,
    },
    {
      key: 'frequent_buyers_90d',
      name: 'Bought 3+ times in 90 days',
      text: 'event("Order Completed").count(within 90d) >= 3',
      handSql: `${orders(since(90))} group by profile_id having count(*) >= 3`,
      params: () => [now],
    },
    {
      key: 'spent_500_90d',
      name: 'Spent over ¥500 in 90 days',
      text: 'event("Order Completed").sum(revenue, within 90d) > 500',
      handSql: `${orders(since(90))} group by profile_id having sum(${revenue}) > 500`,
      params: () => [now],
    },
    {
      key: 'app_active_7d',
      name: 'Opened the app in the last 7 days',
      text: 'event("App Opened").exists(within 7d)',
      handSql: `select distinct profile_id from events
                 where workspace_id = $1 and type = 'track' and event = 'App Opened' and profile_id is not null${since(7)}`,
      params: () => [now],
    },
    {
      key: 'cart_abandoners',
      name: 'Added to cart, no order within 24h (last 7 days)',
      text: 'event("Product Added") then not event("Order Completed") within 24h starting within 7d',
      handSql: nextAfter('Product Added', 'Order Completed', '7 days', '24 hours'),
      params: () => [now],
    },
    {
      key: 'broadband_left_midway',
      name: 'Started a broadband order and left midway (last 30 days)',
      text: 'event("Broadband Order Started") then not event("Broadband Order Completed") within 3d starting within 30d',
      handSql: nextAfter('Broadband Order Started', 'Broadband Order Completed', '30 days', '3 days'),
      params: () => [now],
    },
    {
      key: 'inactive_30d',
      name: 'Inactive for 30 days',
      text:
        'not page().exists(within 30d) and not screen().exists(within 30d) and not event("Product Viewed").exists(within 30d) ' +
        'and not event("App Opened").exists(within 30d) and not event("Order Completed").exists(within 30d)',
      handSql: `select id from profiles where workspace_id = $1 and merged_into is null
                except
                select profile_id from events
                 where workspace_id = $1 and profile_id is not null and timestamp > $2::timestamptz - interval '30 days'
                   and (type in ('page', 'screen') or (type = 'track' and event in ('Product Viewed', 'App Opened', 'Order Completed')))
                 group by profile_id`,
      params: () => [now],
    },
    {
      key: 'new_7d',
      name: 'New in the last 7 days',
      text: 'trait.created_at within last 7d',
      handSql: trait('created_at', `(value #>> '{}')::timestamptz > $2::timestamptz - interval '7 days' and (value #>> '{}')::timestamptz <= $2::timestamptz`),
      params: () => [now],
    },
    {
      key: 'high_value_365d',
      name: 'High value: ¥5,000+ in a year',
      text: 'event("Order Completed").sum(revenue, within 365d) >= 5000',
      handSql: `${orders(since(365))} group by profile_id having sum(${revenue}) >= 5000`,
      params: () => [now],
    },
    {
      key: 'first_time_buyers',
      name: 'First-time buyers (exactly one order)',
      text: 'event("Order Completed").count() = 1',
      handSql: `${orders('')} group by profile_id having count(*) = 1`,
    },
    {
      key: 'repeat_buyers',
      name: 'Repeat buyers',
      text: 'event("Order Completed").count() >= 2',
      handSql: `${orders('')} group by profile_id having count(*) >= 2`,
    },
    {
      key: 'birthday_30d',
      name: 'Birthday in the next 30 days',
      text: 'trait.birthday anniversary within next 30d',
      handSql: trait('birthday', `substr(value #>> '{}', 6, 5) = any($2::text[])`),
      params: () => [anniversaryMonthDays(now, 30)],
    },
    {
      key: 'guangzhou_sms_buyers',
      name: '广州 members with SMS consent and an order',
      text: 'trait.city = "广州" and trait.is_member = true and consent("sms") and event("Order Completed").exists()',
      handSql: `select c.profile_id from profile_traits c
                  join profile_traits m on m.workspace_id = c.workspace_id and m.profile_id = c.profile_id and m.key = 'is_member' and m.value = 'true'
                  join profile_consents s on s.workspace_id = c.workspace_id and s.profile_id = c.profile_id and s.category = 'sms' and s.granted
                 where c.workspace_id = $1 and c.key = 'city' and c.value = '"广州"'
                   and exists (select from events e where e.workspace_id = $1 and e.profile_id = c.profile_id and e.type = 'track' and e.event = 'Order Completed')`,
    },
    {
      key: 'vip_levels',
      name: 'VIP: gold, platinum or diamond',
      text: 'trait.member_level in ("金卡", "白金卡", "钻石卡")',
      handSql: trait('member_level', `value in ('"金卡"', '"白金卡"', '"钻石卡"')`),
    },
    {
      key: 'app_never_ordered',
      name: 'Opened the app but never ordered',
      text: 'event("App Opened").exists() and not event("Order Completed").exists()',
      handSql: `select profile_id from events
                 where workspace_id = $1 and profile_id is not null and type = 'track' and event in ('App Opened', 'Order Completed')
                 group by profile_id having bool_or(event = 'App Opened') and not bool_or(event = 'Order Completed')`,
    },
    {
      key: 'aov_300',
      name: 'Average order value over ¥300',
      text: 'event("Order Completed").avg(revenue) > 300',
      handSql: `${orders('')} group by profile_id having avg(${revenue}) > 300`,
    },
    {
      key: 'category_explorers_30d',
      name: 'Viewed 3+ categories (items from ¥99) in 30 days',
      text: 'event("Product Viewed" where price >= 99).distinct(category, within 30d) >= 3',
      handSql: `select profile_id from events
                 where workspace_id = $1 and type = 'track' and event = 'Product Viewed' and profile_id is not null${since(30)}
                   and (properties->>'price')::float8 >= 99
                 group by profile_id having count(distinct properties->>'category') >= 3`,
      params: () => [now],
    },
    {
      key: 'churned',
      name: `Last order before ${churnDate}`,
      text: `event("Order Completed").last_time() before "${churnDate}"`,
      handSql: `${orders('')} group by profile_id having max(timestamp) < $2::timestamptz`,
      params: () => [`${churnDate}T00:00:00Z`],
    },
    {
      key: 'issue_example',
      name: 'The issue\'s example: active 上海 buyers with SMS consent, not churned',
      text:
        'trait.city = "上海" and event("Order Completed").count(within 90d) >= 3 and event("Order Completed").sum(revenue, within 90d) > 500 ' +
        'and event("App Opened").exists(within 7d) and consent("sms") and not in_segment("churned")',
      handSql: `select t.profile_id from profile_traits t
                  join (${orders(since(90))} group by profile_id having count(*) >= 3 and sum(${revenue}) > 500) o on o.profile_id = t.profile_id
                 where t.workspace_id = $1 and t.key = 'city' and t.value = '"上海"'
                   and exists (select from events a where a.workspace_id = $1 and a.profile_id = t.profile_id and a.type = 'track'
                                 and a.event = 'App Opened' and a.timestamp > $2::timestamptz - interval '7 days')
                   and exists (select from profile_consents c where c.workspace_id = $1 and c.profile_id = t.profile_id and c.category = 'sms' and c.granted)
                except
                select profile_id from segment_memberships where workspace_id = $1 and segment_id = $3`,
      params: ({ segmentIds }) => [now, segmentIds.get('churned')],
    },
    {
      key: 'member_bucket_0_9',
      name: 'Members in random bucket 0–9 (a 10 % test group)',
      text: 'trait.is_member = true and random_bucket("spring-test") between 0 and 9',
      handSql: `${trait('is_member', `value = 'true'`)}
                   and ('x' || substr(md5('spring-test:' || profile_id::text), 1, 8))::bit(32)::bigint % 100 between 0 and 9`,
    },
  ];
}
