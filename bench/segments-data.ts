/**
 * A realistic multi-channel retail data set, written with set-based SQL straight into the tables
 * segments read (profiles, profile_identifiers, profile_traits, profile_consents, events with
 * profile_id set, event_catalogue): the segment benchmark's data and the demo workspace's.
 *
 * Deterministic: every choice is a hash of (seed, profile or event number) through PostgreSQL's
 * hashint8extended, so the same seed, sizes and `now` give the same rows (ids included). Only
 * times move with `now`: events fall in the 400 days before it.
 *
 * Shape (per profile, from its hashes):
 * - 55 % members (user_id `M000000001`…, member_level, points, usually a birthday); email for some,
 *   phone for most members, wechat_openid for mini-program users, 1–2 anonymous ids for web/app
 *   users; every profile has at least one identifier.
 * - Channels: web 75 %, app 55 % of members / 25 % of others, mini program 35 %, stores 40 % / 15 %,
 *   call centre 8 %. Traits city (上海, 北京, 广州, 深圳, 杭州 … weighted), gender, birthday,
 *   member_level (普通会员 … 钻石卡), is_member, points, created_at.
 * - Consents sms / email / wechat, granted or denied, for most profiles that have the channel.
 * - Activity is skewed: events per profile follow a log-normal (σ 1.2): about 3 % have none, the
 *   median profile has half the mean, the busiest have ~150× it. Each profile is active over a
 *   lifetime of 1–400 days; half went quiet some time before `now`.
 * - Events come in episodes of 4: a shopping funnel (Product Viewed → Product Added → Checkout
 *   Started → Order Completed; 40 % stop after viewing, 27 % leave with a full cart, 8 % at
 *   checkout), a store visit with purchases, an app session with coupons, a broadband order some
 *   leave midway (Broadband Order Started without Completed), a call-centre contact, browsing
 *   (page and screen views).
 */
import type { Db } from '../server/src/storage/database.ts';
import { ensureMonthlyPartitions } from '../server/src/storage/partitions.ts';
import { createSource } from '../server/src/workspaces/store.ts';

export interface RetailDataOptions {
  workspaceId: string;
  profiles: number;
  /** Total events (exact). */
  events: number;
  seed?: number;
  /** Events fall before this instant; defaults to the current time rounded down to the minute. */
  now?: Date;
  /** Statements inserting events at once (each a connection of `db`). */
  concurrency?: number;
  log?: (line: string) => void;
}

export type ChannelKind = 'web' | 'app' | 'mini_program' | 'store' | 'call_centre';

export interface RetailDataResult {
  seed: number;
  now: string;
  profiles: number;
  events: number;
  identifiers: number;
  traits: number;
  consents: number;
  /** The sources events came from, with a write key each (shown once, as when created by the API). */
  sources: Record<ChannelKind, { id: string; name: string; writeKey: string }>;
  seconds: number;
  steps: Array<{ step: string; seconds: number }>;
}

export const CHANNELS: readonly ChannelKind[] = ['web', 'app', 'mini_program', 'store', 'call_centre'];
const SOURCE_NAMES: Record<ChannelKind, string> = {
  web: 'Web shop',
  app: 'Mobile app',
  mini_program: 'WeChat mini program',
  store: 'Stores (POS)',
  call_centre: 'Call centre',
};

/** Every `track` event name the generator writes. */
export const TRACK_EVENTS = [
  'Product Viewed',
  'Product Added',
  'Checkout Started',
  'Order Completed',
  'App Opened',
  'Coupon Redeemed',
  'Broadband Order Started',
  'Broadband Order Completed',
  'Customer Service Called',
  'Store Visit',
] as const;
/** Names of the `page` (web) and `screen` (app, mini program) views. */
export const VIEW_NAMES = ['Home', 'Category', 'Search', 'Product Detail', 'Member Centre'] as const;

/** Weighted lists, as [value, weight in %]. */
export const CITIES: ReadonlyArray<readonly [string, number]> = [
  ['上海', 18], ['北京', 16], ['广州', 10], ['深圳', 10], ['杭州', 8], ['成都', 7],
  ['南京', 6], ['武汉', 6], ['西安', 5], ['重庆', 5], ['苏州', 5], ['天津', 4],
];
export const MEMBER_LEVELS: ReadonlyArray<readonly [string, number]> = [
  ['普通会员', 50], ['银卡', 25], ['金卡', 15], ['白金卡', 7], ['钻石卡', 3],
];
export const CATEGORIES = ['手机', '电脑', '家电', '服饰', '美妆', '食品', '母婴', '运动'] as const;
/** Prices in whole yuan, so sums and averages of revenue are exact in float8 and JavaScript alike. */
const PRICES = [19, 39, 59, 99, 129, 199, 299, 499, 899, 1999, 4999];
const BROADBAND_PLANS: ReadonlyArray<readonly [string, number]> = [['100M', 199], ['300M', 299], ['1000M', 499]];
const SERVICE_REASONS = ['billing', 'delivery', 'return', 'broadband', 'membership'];

const DEFAULT_SEED = 20261123;
const DAY_S = 86_400;

// Property paths per event, for event_catalogue_properties (what the parser checks names against).
const PRODUCT_PROPS: Array<[string, string]> = [['product_id', 'string'], ['category', 'string'], ['price', 'number']];
const EVENT_PROPERTIES: Record<string, Array<[string, string]>> = {
  'Product Viewed': PRODUCT_PROPS,
  'Product Added': [...PRODUCT_PROPS, ['quantity', 'number']],
  'Checkout Started': [['cart_value', 'number'], ['product_count', 'number']],
  'Order Completed': [['order_id', 'string'], ['revenue', 'number'], ['product_count', 'number'], ['category', 'string'], ['channel', 'string'], ['currency', 'string']],
  'App Opened': [['app_version', 'string']],
  'Coupon Redeemed': [['coupon_id', 'string'], ['discount', 'number']],
  'Broadband Order Started': [['plan', 'string'], ['price', 'number']],
  'Broadband Order Completed': [['plan', 'string'], ['order_id', 'string'], ['revenue', 'number']],
  'Customer Service Called': [['reason', 'string'], ['duration_s', 'number']],
  'Store Visit': [['store_id', 'string'], ['city', 'string']],
};

function sqlText(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}
function sqlArray(values: readonly (string | number)[]): string {
  return `(array[${values.map((v) => (typeof v === 'number' ? String(v) : sqlText(v))).join(', ')}])`;
}
/** 100 entries, each value repeated by its weight: index 1 + floor(u × 100) picks by weight. */
function weighted(list: ReadonlyArray<readonly [string, number]>): string {
  const total = list.reduce((sum, [, weight]) => sum + weight, 0);
  if (total !== 100) throw new Error(`weights must add up to 100, got ${total}`);
  return sqlArray(list.flatMap(([value, weight]) => Array<string>(weight).fill(value)));
}

/**
 * A uniform number in [0, 1) from a bigint SQL expression and a salt: 53 bits of
 * hashint8extended. Salts are distinct per use and include the seed.
 */
function uniform(seed: number, key: string, salt: number): string {
  return `((hashint8extended((${key})::bigint, ${seed * 1000 + salt}) & 9007199254740991)::float8 / 9007199254740992)`;
}

function positiveInteger(name: string, value: number, minimum = 1): number {
  if (!Number.isInteger(value) || value < minimum) throw new RangeError(`${name} must be an integer ≥ ${minimum}, got ${value}`);
  return value;
}

/** The plan: one row per profile with every per-profile choice, read by the statements that follow. */
function planSql(seed: number, plan: string): string {
  const u = (salt: number) => uniform(seed, 'i', salt);
  return `create unlogged table ${plan} as
    select i, id, w, member, web, app, mini, store, call_centre, has_email, has_phone, f_days, l_days,
           case when member then 'M' || lpad(i::text, 9, '0') end as user_id,
           md5('anon:' || ${seed} || ':' || i || ':1')::uuid::text as anonymous_id,
           case when web or app then 1 + (${u(10)} < 0.3)::int
                when not member and not has_phone and not mini then 1 else 0 end as anon_count,
           array_remove(array[case when web then 'web' end, case when app then 'app' end, case when mini then 'mini_program' end,
                              case when store then 'store' end, case when call_centre then 'call_centre' end], null) as channels
      from (
        select i, md5('touchpoint-retail:' || ${seed} || ':' || i)::uuid as id,
               -- log-normal activity weight (Box-Muller): many light profiles, a few heavy ones
               exp(1.2 * sqrt(-2 * ln(1 - ${u(1)})) * cos(2 * pi() * ${u(2)})) as w,
               m.member,
               ${u(4)} < 0.75 or (not m.member and ${u(5)} < 0.2) as web,
               ${u(6)} < case when m.member then 0.55 else 0.25 end as app,
               ${u(7)} < 0.35 as mini,
               ${u(8)} < case when m.member then 0.4 else 0.15 end as store,
               ${u(9)} < 0.08 as call_centre,
               ${u(11)} < case when m.member then 0.6 else 0.2 end as has_email,
               ${u(12)} < case when m.member then 0.8 else 0.25 end as has_phone,
               f.f_days,
               case when ${u(14)} < 0.5 then 0 else f.f_days * ${u(15)} * 0.9 end as l_days
          from generate_series(1, $1::int) as i,
               lateral (select ${u(3)} < 0.55 as member) as m,
               lateral (select 1 + 399 * ${u(13)} as f_days) as f
      ) as p`;
}

/**
 * Events of the plan's profiles i in [from, to]: profile i's k-th event (k < n) is global event
 * number start + k; events come in episodes of 4 (k / 4), whose choices hash the episode's first
 * event number, and each slot (k % 4) is one step of the episode. Rows are inserted in time order,
 * so a chunk walks each month's primary-key index once instead of at random (a third faster).
 * The `offset 0` fences keep each level's columns computed once instead of inlined into every use.
 */
function eventsSql(seed: number, plan: string): string {
  const e = (salt: number) => uniform(seed, 'ep', 100 + salt);
  const g = (salt: number) => uniform(seed, 'gn', 200 + salt);
  const views = sqlArray(VIEW_NAMES);
  const categories = sqlArray(CATEGORIES);
  const prices = sqlArray(PRICES);
  const plans = sqlArray(BROADBAND_PLANS.map(([name]) => name));
  const planPrices = sqlArray(BROADBAND_PLANS.map(([, price]) => price));
  const cities = weighted(CITIES);
  // Episode kinds by channel; spans keep an episode's last step before now.
  const kind = `case ch when 'store' then 'store' when 'call_centre' then 'service'
                   else case when ${e(2)} < 0.55 then 'shop' when ${e(2)} < 0.60 then 'broadband'
                             when ${e(2)} < 0.78 and ch <> 'web' then 'app' else 'browse' end end`;
  const stage = `case when ${e(3)} < 0.40 then 1 when ${e(3)} < 0.67 then 2 when ${e(3)} < 0.75 then 3 else 4 end`;
  const browse = `case when ch = 'web' and ${g(1)} < 0.6 then 'page'
                       when ch in ('app', 'mini_program') and ${g(1)} < 0.5 then 'screen' else 'view_other' end`;
  const step = `case kind
      when 'shop' then case when slot < stage then (array['view', 'add', 'checkout', 'order'])[slot + 1]
                            when slot = stage and ch = 'app' then 'app_open' else ${browse} end
      when 'store' then case slot when 0 then 'store_visit'
                                  when 1 then case when ${e(8)} < 0.7 then 'order' else 'store_visit' end
                                  when 2 then case when ${e(9)} < 0.3 then 'coupon' else 'store_visit' end
                                  else case when ${e(10)} < 0.4 then 'order' else 'store_visit' end end
      when 'broadband' then case slot when 0 then 'bb_view' when 1 then 'bb_start'
                                      when 2 then case when ${e(11)} < 0.55 then 'bb_complete' when ${e(11)} < 0.75 then 'service' else ${browse} end
                                      else ${browse} end
      when 'service' then case when slot = 0 then 'service' else 'view_other' end
      when 'app' then case slot when 0 then 'app_open' when 1 then 'view'
                                when 2 then case when ${e(12)} < 0.2 then 'coupon' else 'view_other' end else 'app_open' end
      else ${browse} end`;
  // Seconds after the episode's start: funnels take minutes, store visits days, broadband hours.
  const offset = `case kind when 'store' then slot * 2 * ${DAY_S} + ${g(2)} * 3600
                            when 'broadband' then case when slot >= 2 then (1 + floor(${e(13)} * 72)) * 3600 + slot * 60 else slot * 300 end
                            when 'app' then case when slot = 3 then ${DAY_S} else slot * 180 end
                            else slot * 240 + ${g(2)} * 60 end`;
  const span = `case kind when 'store' then 7 * ${DAY_S} when 'broadband' then 4 * ${DAY_S} when 'app' then 2 * ${DAY_S} else 1200 end`;
  const product = `'SKU-' || (1000 + floor(${e(5)} * 800)::int)`;
  const otherProduct = `'SKU-' || (1000 + floor(${g(3)} * 800)::int)`;
  const category = `${categories}[1 + floor(${e(5)} * ${CATEGORIES.length})::int]`;
  const otherCategory = `${categories}[1 + floor(${g(3)} * ${CATEGORIES.length})::int]`;
  const price = `${prices}[1 + floor(${e(6)} * ${PRICES.length})::int]`;
  const quantity = `(1 + floor(${e(7)} ^ 3 * 3)::int)`;
  const bbPlan = `1 + floor(${e(14)} * ${BROADBAND_PLANS.length})::int`;
  const properties = `case step
      when 'view' then jsonb_build_object('product_id', ${product}, 'category', ${category}, 'price', ${price})
      when 'view_other' then jsonb_build_object('product_id', ${otherProduct}, 'category', ${otherCategory}, 'price', ${prices}[1 + floor(${g(4)} * ${PRICES.length})::int])
      when 'bb_view' then jsonb_build_object('product_id', 'BB-' || ${plans}[${bbPlan}], 'category', '宽带', 'price', ${planPrices}[${bbPlan}])
      when 'add' then jsonb_build_object('product_id', ${product}, 'category', ${category}, 'price', ${price}, 'quantity', ${quantity})
      when 'checkout' then jsonb_build_object('cart_value', ${price} * ${quantity}, 'product_count', ${quantity})
      when 'order' then case when kind = 'store'
          then jsonb_build_object('order_id', 'S' || gn, 'revenue', ${prices}[1 + floor(${g(5)} * 8)::int] * (1 + floor(${g(6)} * 3)::int),
                                  'product_count', 1 + floor(${g(6)} * 3)::int, 'category', ${otherCategory}, 'channel', 'store', 'currency', 'CNY')
          else jsonb_build_object('order_id', 'O' || gn, 'revenue', ${price} * ${quantity}, 'product_count', ${quantity},
                                  'category', ${category}, 'channel', ch, 'currency', 'CNY') end
      when 'app_open' then jsonb_build_object('app_version', case when ${g(7)} < 0.7 then '5.2.0' else '5.1.3' end)
      when 'coupon' then jsonb_build_object('coupon_id', 'C' || (100 + floor(${g(8)} * 40)::int), 'discount', (array[5, 10, 20, 50])[1 + floor(${g(9)} * 4)::int])
      when 'bb_start' then jsonb_build_object('plan', ${plans}[${bbPlan}], 'price', ${planPrices}[${bbPlan}])
      when 'bb_complete' then jsonb_build_object('plan', ${plans}[${bbPlan}], 'order_id', 'B' || gn, 'revenue', ${planPrices}[${bbPlan}])
      when 'service' then jsonb_build_object('reason', case when kind = 'broadband' then 'broadband' else ${sqlArray(SERVICE_REASONS)}[1 + floor(${g(10)} * ${SERVICE_REASONS.length})::int] end,
                                             'duration_s', 30 + floor(${g(11)} * 900)::int)
      when 'store_visit' then jsonb_build_object('store_id', 'ST' || (10 + floor(${e(15)} * 90)::int), 'city', ${cities}[1 + floor(${e(16)} * 100)::int])
      else jsonb_build_object('path', '/' || lower(replace(view_name, ' ', '-'))) end`;
  const event = `case step when 'view' then 'Product Viewed' when 'view_other' then 'Product Viewed' when 'bb_view' then 'Product Viewed'
      when 'add' then 'Product Added' when 'checkout' then 'Checkout Started' when 'order' then 'Order Completed'
      when 'app_open' then 'App Opened' when 'coupon' then 'Coupon Redeemed' when 'bb_start' then 'Broadband Order Started'
      when 'bb_complete' then 'Broadband Order Completed' when 'service' then 'Customer Service Called' when 'store_visit' then 'Store Visit' end`;
  // A call-centre contact in a web/app episode still comes from the call centre.
  const eventChannel = `case when step = 'service' then 'call_centre' else ch end`;
  return `insert into events (workspace_id, timestamp, seq, message_id, source_id, type, event, name, user_id, anonymous_id,
                              properties, context, received_at, profile_id)
    select $1, ts, $2::bigint + gn, $3 || gn,
           case ech when 'web' then $6::uuid when 'app' then $7::uuid when 'mini_program' then $8::uuid when 'store' then $9::uuid else $10::uuid end,
           case when step in ('page', 'screen') then step else 'track' end,
           case when step in ('page', 'screen') then null else ${event} end,
           case when step in ('page', 'screen') then view_name end,
           user_id, case when ech in ('web', 'app') then anonymous_id end,
           ${properties},
           case ech when 'web' then '{"library": {"name": "analytics.js"}}'::jsonb when 'app' then '{"library": {"name": "analytics-ios"}}'::jsonb
                    when 'mini_program' then '{"library": {"name": "touchpoint-miniprogram"}}'::jsonb when 'store' then '{"library": {"name": "pos"}}'::jsonb
                    else '{"library": {"name": "call-centre"}}'::jsonb end,
           ts + make_interval(secs => 1 + ${g(12)} * 5), id
      from (
        select x.*, ${eventChannel} as ech,
               least(now_ts - make_interval(secs => span), now_ts - make_interval(secs => (l_days + (f_days - l_days) * ${e(4)}) * ${DAY_S}))
                 + make_interval(secs => ${offset}) as ts
          from (
            select s.*, ${step} as step, ${span} as span
              from (
                select k.*, ${kind} as kind, ${stage} as stage
                  from (
                    select p.id, p.f_days, p.l_days, p.start + k as gn, k % 4 as slot, p.start + k - k % 4 as ep, $4::timestamptz as now_ts,
                           p.user_id, p.anonymous_id,
                           p.channels[1 + floor(${uniform(seed, 'p.start + k - k % 4', 101)} * cardinality(p.channels))::int] as ch,
                           ${views}[1 + floor(${uniform(seed, 'p.start + k', 213)} * ${VIEW_NAMES.length})::int] as view_name
                      from ${plan} p, generate_series(0, p.n - 1) as k
                     where p.i between $5 and $11 and p.n > 0
                    offset 0
                  ) as k
                offset 0
              ) as s
            offset 0
          ) as x
        offset 0
      ) as y
     order by ts`;
}

/**
 * Writes the data set into `workspaceId` (which should hold no profiles yet): five sources (one per
 * channel) are created, then profiles, identifiers, traits, consents, events (monthly partitions
 * created as needed), the event catalogue, and a vacuum analyze of the tables written.
 */
export async function generateRetailData(db: Db, options: RetailDataOptions): Promise<RetailDataResult> {
  const seed = positiveInteger('seed', options.seed ?? DEFAULT_SEED, 0);
  const profiles = positiveInteger('profiles', options.profiles);
  const eventCount = positiveInteger('events', options.events, 0);
  const concurrency = positiveInteger('concurrency', options.concurrency ?? 2);
  if (seed > 9_000_000_000) throw new RangeError('seed must be at most 9,000,000,000');
  const now = options.now ?? new Date(Math.floor(Date.now() / 60_000) * 60_000);
  const log = options.log ?? (() => undefined);
  const ws = options.workspaceId;
  const started = performance.now();
  const steps: Array<{ step: string; seconds: number }> = [];
  const timed = async <T>(step: string, work: () => Promise<T>): Promise<T> => {
    const t = performance.now();
    const result = await work();
    const seconds = Math.round((performance.now() - t) / 100) / 10;
    steps.push({ step, seconds });
    log(`  ${step}: ${seconds} s`);
    return result;
  };

  const sources = {} as RetailDataResult['sources'];
  for (const kind of CHANNELS) {
    const { source, writeKey } = await createSource(db, ws, { name: SOURCE_NAMES[kind], kind });
    sources[kind] = { id: source.id, name: source.name, writeKey: writeKey.key };
  }

  const plan = `retail_plan_${seed}_${Math.floor(Math.random() * 1e9)}`;
  const u = (salt: number) => uniform(seed, 'i', salt);
  try {
    await timed('plan (one row per profile)', async () => {
      await db.query(planSql(seed, plan), [profiles]);
      // Exact total: floor of each profile's share, the remainder one each to the first profiles.
      // numeric sums are exact, so the split does not depend on the order PostgreSQL adds in.
      const { rows } = await db.query<{ total: string }>(`select sum(w::numeric) as total from ${plan}`);
      const total = rows[0]!.total;
      await db.query(`alter table ${plan} add column n int, add column start bigint`);
      const { rows: floors } = await db.query<{ assigned: string }>(
        `select sum(floor(w::numeric * $1 / $2::numeric))::bigint as assigned from ${plan}`,
        [eventCount, total],
      );
      const remainder = eventCount - Number(floors[0]!.assigned);
      await db.query(
        `update ${plan} p set n = x.n, start = x.start
           from (select i, n, sum(n) over (order by i) - n as start
                   from (select i, floor(w::numeric * $1 / $2::numeric)::int + (i <= $3)::int as n from ${plan}) as a) as x
          where p.i = x.i`,
        [eventCount, total, remainder],
      );
      await db.query(`create index on ${plan} (i)`);
      await db.query(`analyze ${plan}`);
    });

    const cities = weighted(CITIES);
    const levels = weighted(MEMBER_LEVELS);
    await timed('traits', () =>
      db.query(
        `insert into profile_traits (workspace_id, profile_id, key, value, source_kind, source_name, message_id, observed_at, updated_at)
         select $1, id, key, value, 'crm_import', 'CRM', 'retail-' || ${seed} || '-' || i, observed, observed
           from (select p.*, $2::timestamptz - make_interval(secs => f_days * ${DAY_S}) as observed from ${plan} p) as p,
                lateral (
                  select 'city', to_jsonb(${cities}[1 + floor(${u(20)} * 100)::int]) where ${u(21)} < 0.96
                  union all select 'gender', to_jsonb(case when ${u(22)} < 0.53 then 'female' else 'male' end) where ${u(23)} < 0.9
                  union all select 'birthday', to_jsonb(to_char(date '1960-01-01' + floor(${u(24)} * 16800)::int, 'YYYY-MM-DD'))
                    where ${u(25)} < case when member then 0.85 else 0.1 end
                  union all select 'member_level', to_jsonb(${levels}[1 + floor(${u(26)} * 100)::int]) where member
                  union all select 'points', to_jsonb(floor(${u(27)} ^ 2 * 20000)::int) where member
                  union all select 'is_member', to_jsonb(member)
                  union all select 'created_at', to_jsonb(to_char(observed at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'))
                ) as t(key, value)`,
        [ws, now],
      ),
    );

    await timed('consents', () =>
      db.query(
        `insert into profile_consents (workspace_id, profile_id, category, granted, source_id, message_id, observed_at, updated_at)
         select $1, id, category, granted, $3, 'retail-' || ${seed} || '-' || i || '-consent', observed, observed
           from (select p.*, $2::timestamptz - make_interval(secs => f_days * ${DAY_S}) as observed from ${plan} p) as p,
                lateral (
                  select 'sms', ${u(30)} < 0.7 where has_phone and ${u(31)} < 0.85
                  union all select 'email', ${u(32)} < 0.6 where has_email and ${u(33)} < 0.8
                  union all select 'wechat', ${u(34)} < 0.75 where mini and ${u(35)} < 0.9
                ) as c(category, granted)`,
        [ws, now, sources.web.id],
      ),
    );

    // Partitions for the 400 days of history plus the longest episode, and the current month.
    const oldest = now.getTime() - 411 * DAY_S * 1000;
    const months: Date[] = [];
    for (let t = oldest; t < now.getTime() + 32 * DAY_S * 1000; t += 28 * DAY_S * 1000) months.push(new Date(t));
    months.push(now);
    await ensureMonthlyPartitions(db, 'events', months);

    // A block of the event sequence of our own, so seq stays unique next to events already stored.
    const { rows: seqRows } = await db.query<{ base: number }>(
      `select setval('events_seq', nextval('events_seq') + $1::bigint) - $1::bigint as base`,
      [eventCount],
    );
    const seqBase = seqRows[0]!.base;
    const sql = eventsSql(seed, plan);
    const messagePrefix = `retail-${seed}-`;
    await timed(`events (${eventCount.toLocaleString('en')})`, async () => {
      const chunkEvents = 400_000;
      const { rows: bounds } = await db.query<{ first: number; last: number }>(
        `select min(i) as first, max(i) as last from (select i, floor((start + n) / ${chunkEvents}::numeric) as chunk from ${plan}) x group by chunk order by 1`,
      );
      let next = 0;
      let done = 0;
      const worker = async () => {
        while (next < bounds.length) {
          const chunk = bounds[next++]!;
          const result = await db.query(sql, [
            ws, seqBase, messagePrefix, now, chunk.first,
            sources.web.id, sources.app.id, sources.mini_program.id, sources.store.id, sources.call_centre.id, chunk.last,
          ]);
          done += result.rowCount ?? 0;
          if (bounds.length > 4) log(`    ${done.toLocaleString('en')} events`);
        }
      };
      await Promise.all(Array.from({ length: Math.min(concurrency, bounds.length) }, () => worker()));
      if (done !== eventCount) throw new Error(`generated ${done} events, expected ${eventCount}`);
    });

    // Profiles last, so their first and last seen are those of their events.
    await timed('profiles', () =>
      db.query(
        `insert into profiles (workspace_id, id, created_at, updated_at, first_seen, last_seen)
         select $1, p.id, created, $2::timestamptz, coalesce(e.first_seen, created), coalesce(e.last_seen, created)
           from (select id, $2::timestamptz - make_interval(secs => f_days * ${DAY_S}) as created from ${plan}) as p
           left join (select profile_id, min(timestamp) as first_seen, max(timestamp) as last_seen from events
                       where workspace_id = $1 and seq > $3 and seq <= $3 + $4 group by profile_id) as e on e.profile_id = p.id`,
        [ws, now, seqBase, eventCount],
      ),
    );

    // Identifiers are seen over their profile's activity; linked when the profile was created.
    await timed('identifiers', () =>
      db.query(
        `insert into profile_identifiers (workspace_id, profile_id, type, value, source_id, first_seen, last_seen, linked_by_message_id, linked_via, bound_at)
         select $1, p.id, type, value, source_id, f.first_seen, f.last_seen, 'retail-' || ${seed} || '-' || i || '-' || type, 'import', f.created_at
           from ${plan} p
           join profiles f on f.workspace_id = $1 and f.id = p.id,
                lateral (
                  select 'user_id', user_id, $2::uuid where member
                  union all select 'email', 'customer' || i || '@example.com', $2::uuid where has_email
                  union all select 'phone', '+861' || (3 + i % 7) || lpad((i / 7)::text, 9, '0'), $3::uuid where has_phone
                  union all select 'wechat_openid', 'o' || substr(md5('openid:' || ${seed} || ':' || i), 1, 27), $4::uuid where mini
                  union all select 'anonymous_id', anonymous_id, $2::uuid where anon_count >= 1
                  union all select 'anonymous_id', md5('anon:' || ${seed} || ':' || i || ':2')::uuid::text, $2::uuid where anon_count = 2
                ) as x(type, value, source_id)`,
        [ws, sources.web.id, sources.store.id, sources.mini_program.id],
      ),
    );

    await timed('event catalogue', async () => {
      await db.query(
        `insert into event_catalogue (workspace_id, event_type, event_name, first_seen, last_seen, volume)
         select $1, type, coalesce(case when type = 'track' then event else name end, ''), min(timestamp), max(timestamp), count(*)
           from events where workspace_id = $1 and message_id like $2 group by 2, 3
         on conflict (workspace_id, event_type, event_name) do update
           set first_seen = least(event_catalogue.first_seen, excluded.first_seen), last_seen = greatest(event_catalogue.last_seen, excluded.last_seen),
               volume = event_catalogue.volume + excluded.volume`,
        [ws, `${messagePrefix}%`],
      );
      const rows = Object.entries(EVENT_PROPERTIES).flatMap(([name, paths]) => paths.map(([path, type]) => ({ name, path, type })));
      await db.query(
        `insert into event_catalogue_properties (workspace_id, event_type, event_name, scope, path, type_counts, first_seen, last_seen, volume)
         select c.workspace_id, 'track', c.event_name, 'properties', x.path, jsonb_build_object(x.type, c.volume), c.first_seen, c.last_seen, c.volume
           from jsonb_to_recordset($2::jsonb) as x(name text, path text, type text)
           join event_catalogue c on c.workspace_id = $1 and c.event_type = 'track' and c.event_name = x.name
         on conflict do nothing`,
        [ws, JSON.stringify(rows)],
      );
    });

    await timed('vacuum analyze', () =>
      db.query('vacuum analyze profiles, profile_identifiers, profile_traits, profile_consents, events, event_catalogue'),
    );

    const { rows: counts } = await db.query<{ profiles: number; identifiers: number; traits: number; consents: number }>(
      `select (select count(*)::int from profiles where workspace_id = $1) as profiles,
              (select count(*)::int from profile_identifiers where workspace_id = $1) as identifiers,
              (select count(*)::int from profile_traits where workspace_id = $1) as traits,
              (select count(*)::int from profile_consents where workspace_id = $1) as consents`,
      [ws],
    );
    const count = counts[0]!;
    return {
      seed,
      now: now.toISOString(),
      profiles: count.profiles,
      events: eventCount,
      identifiers: count.identifiers,
      traits: count.traits,
      consents: count.consents,
      sources,
      seconds: Math.round((performance.now() - started) / 100) / 10,
      steps,
    };
  } finally {
    await db.query(`drop table if exists ${plan}`);
  }
}
