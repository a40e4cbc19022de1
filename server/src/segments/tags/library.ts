import crypto from 'node:crypto';
import { ApiError } from '../../api/errors.ts';
import type { Condition, Duration } from '../ast.ts';
import { parseSegment } from '../language/parse.ts';
import { printString } from '../language/print.ts';
import { closest } from '../language/suggest.ts';

/*
 * Ready behaviour tags a user can switch on: each is segment text in the language with a few
 * parameters. Event names follow the Segment e-commerce spec (Product Viewed, Product Added,
 * Checkout Started, Order Completed with `revenue`), since that is what the SDKs send.
 *
 * Every definition says only what the language can say exactly, and the description says the
 * same thing in words: "did not buy within 24h" is the negated sequence's meaning, not "has not
 * bought since".
 */

export type TagParameterType = 'string' | 'number' | 'duration';
export type TagParameterValue = string | number;
type Localised = { en: string; zh: string };

export interface TagParameter {
  name: string;
  type: TagParameterType;
  /** A string, a number, or a duration written as in the language ("30d"). */
  default: TagParameterValue;
  description: Localised;
  /** Numbers only. */
  min?: number;
  integer?: boolean;
  /** Durations only: the units allowed (anniversaries count whole days). */
  units?: Duration['unit'][];
}

export interface TagTemplate {
  template: string;
  /** `{parameter}` in a name is replaced by the parameter's value when the tag is made. */
  name: Localised;
  description: Localised;
  parameters: TagParameter[];
  /** The segment text; string parameters arrive validated but raw, and are quoted here. */
  text: (params: Readonly<Record<string, TagParameterValue>>) => string;
}

const string = (params: Readonly<Record<string, TagParameterValue>>, name: string): string => printString(String(params[name]));

export const TAG_LIBRARY: readonly TagTemplate[] = [
  {
    template: 'browsed_category',
    name: { en: 'Browsed {category}', zh: '浏览过{category}' },
    description: {
      en: 'Viewed at least one product of the category within the period (Product Viewed with that category).',
      zh: '在时间段内浏览过该品类的商品（Product Viewed 事件的 category 属性）。',
    },
    parameters: [
      { name: 'category', type: 'string', default: 'Shoes', description: { en: 'The category property value', zh: '品类（category 属性值）' } },
      { name: 'period', type: 'duration', default: '30d', description: { en: 'How far back to look', zh: '回溯时长' } },
    ],
    text: (p) => `event("Product Viewed" where category = ${string(p, 'category')}).exists(within ${p.period})`,
  },
  {
    template: 'cart_abandoned',
    name: { en: 'Added to cart, did not buy', zh: '加购未下单' },
    description: {
      en: 'Added a product to the cart within the period and completed no order within the wait after that (Product Added, then no Order Completed).',
      zh: '在时间段内加购了商品，且加购后在等待时长内没有完成订单。',
    },
    parameters: [
      { name: 'wait', type: 'duration', default: '24h', description: { en: 'Time to buy after adding to cart', zh: '加购后的下单等待时长' } },
      { name: 'period', type: 'duration', default: '7d', description: { en: 'How recent the cart addition must be', zh: '加购发生的回溯时长' } },
    ],
    text: (p) => `event("Product Added") then not event("Order Completed") within ${p.wait} starting within ${p.period}`,
  },
  {
    template: 'checkout_abandoned',
    name: { en: 'Started checkout, did not buy', zh: '结算未支付' },
    description: {
      en: 'Started a checkout within the period and completed no order within the wait after that (Checkout Started, then no Order Completed).',
      zh: '在时间段内开始结算，且之后在等待时长内没有完成订单。',
    },
    parameters: [
      { name: 'wait', type: 'duration', default: '1h', description: { en: 'Time to complete the order', zh: '完成订单的等待时长' } },
      { name: 'period', type: 'duration', default: '7d', description: { en: 'How recent the checkout must be', zh: '结算发生的回溯时长' } },
    ],
    text: (p) => `event("Checkout Started") then not event("Order Completed") within ${p.wait} starting within ${p.period}`,
  },
  {
    template: 'process_abandoned',
    name: { en: 'Left {started_event} midway', zh: '中途放弃：{started_event}' },
    description: {
      en: 'Started a process (the start event) within the period and did not finish it (no completion event) within the wait.',
      zh: '在时间段内开始了一个流程（开始事件），且在等待时长内没有完成（没有完成事件）。',
    },
    parameters: [
      { name: 'started_event', type: 'string', default: 'Broadband Order Started', description: { en: 'Event that starts the process', zh: '流程开始事件' } },
      { name: 'completed_event', type: 'string', default: 'Broadband Order Completed', description: { en: 'Event that completes it', zh: '流程完成事件' } },
      { name: 'wait', type: 'duration', default: '1d', description: { en: 'Time allowed to complete', zh: '允许完成的时长' } },
      { name: 'period', type: 'duration', default: '30d', description: { en: 'How recent the start must be', zh: '开始发生的回溯时长' } },
    ],
    text: (p) => `event(${string(p, 'started_event')}) then not event(${string(p, 'completed_event')}) within ${p.wait} starting within ${p.period}`,
  },
  {
    template: 'high_value',
    name: { en: 'High value (≥ {threshold})', zh: '高价值客户（≥ {threshold}）' },
    description: {
      en: 'Order revenue over the period adds up to at least the threshold (sum of Order Completed revenue).',
      zh: '时间段内订单收入（Order Completed 的 revenue 之和）不低于阈值。',
    },
    parameters: [
      { name: 'threshold', type: 'number', default: 1000, min: 0, description: { en: 'Minimum total revenue', zh: '最低累计收入' } },
      { name: 'period', type: 'duration', default: '365d', description: { en: 'Period the revenue is summed over', zh: '累计时长' } },
    ],
    text: (p) => `event("Order Completed").sum(revenue, within ${p.period}) >= ${p.threshold}`,
  },
  {
    template: 'inactive',
    name: { en: 'Inactive {period}', zh: '{period}未活跃' },
    description: {
      en: 'Was active once (any tracked event, page or screen view) but has had none within the period.',
      zh: '曾经活跃过（任意追踪事件、页面或屏幕浏览），但在时间段内没有任何活动。',
    },
    parameters: [{ name: 'period', type: 'duration', default: '30d', description: { en: 'Quiet period', zh: '未活跃时长' } }],
    text: (p) =>
      `(event().exists() or page().exists() or screen().exists()) and not event().exists(within ${p.period}) and not page().exists(within ${p.period}) and not screen().exists(within ${p.period})`,
  },
  {
    template: 'new_user',
    name: { en: 'New in the last {period}', zh: '近{period}新用户' },
    description: {
      en: 'First seen within the period: every kind of activity the profile has (tracked events, page and screen views) started within it.',
      zh: '在时间段内首次出现：该用户所有类型的活动（追踪事件、页面、屏幕浏览）都始于该时间段内。',
    },
    parameters: [{ name: 'period', type: 'duration', default: '7d', description: { en: 'How new', zh: '新用户时长' } }],
    text: (p) =>
      `(event().exists() or page().exists() or screen().exists())` +
      ` and (not event().exists() or event().first_time() within last ${p.period})` +
      ` and (not page().exists() or page().first_time() within last ${p.period})` +
      ` and (not screen().exists() or screen().first_time() within last ${p.period})`,
  },
  {
    template: 'first_purchase',
    name: { en: 'First-time buyer', zh: '首购客户' },
    description: { en: 'Has completed exactly one order, ever.', zh: '累计恰好完成过一笔订单。' },
    parameters: [],
    text: () => 'event("Order Completed").count(all time) = 1',
  },
  {
    template: 'repeat_buyer',
    name: { en: 'Repeat buyer ({min_orders}+ orders)', zh: '复购客户（{min_orders}单以上）' },
    description: { en: 'Has completed at least the given number of orders, ever.', zh: '累计完成订单数不少于设定值。' },
    parameters: [{ name: 'min_orders', type: 'number', default: 2, min: 2, integer: true, description: { en: 'Minimum number of orders', zh: '最少订单数' } }],
    text: (p) => `event("Order Completed").count(all time) >= ${p.min_orders}`,
  },
  {
    template: 'churn_risk',
    name: { en: 'Churn risk: no order in {quiet_period}', zh: '流失风险：{quiet_period}未下单' },
    description: {
      en: 'Has completed at least the given number of orders, but none within the quiet period.',
      zh: '累计订单数达到设定值，但在静默时长内没有下单。',
    },
    parameters: [
      { name: 'min_orders', type: 'number', default: 2, min: 1, integer: true, description: { en: 'Orders that make a regular customer', zh: '视为老客户的订单数' } },
      { name: 'quiet_period', type: 'duration', default: '90d', description: { en: 'Time without an order', zh: '未下单时长' } },
    ],
    text: (p) => `event("Order Completed").count(all time) >= ${p.min_orders} and not event("Order Completed").exists(within ${p.quiet_period})`,
  },
  {
    template: 'birthday_soon',
    name: { en: 'Birthday within {period}', zh: '{period}内过生日' },
    description: {
      en: 'The birthday trait (month and day, UTC) falls within the coming period, today included. A calendar month is not a fixed length, so this is a rolling window.',
      zh: 'birthday 特征的月日（UTC）落在从今天起的时间段内。自然月长度不固定，因此这里是滚动窗口。',
    },
    parameters: [{ name: 'period', type: 'duration', default: '30d', units: ['days', 'weeks'], description: { en: 'How far ahead', zh: '向后看的时长' } }],
    text: (p) => `trait.birthday anniversary within next ${p.period}`,
  },
];

export interface TagTemplateSummary {
  template: string;
  name: Localised;
  description: Localised;
  parameters: TagParameter[];
  /** The segment text with every parameter at its default. */
  exampleText: string;
}

/** The library as the API lists it. */
export function listTagTemplates(): TagTemplateSummary[] {
  return TAG_LIBRARY.map((entry) => ({
    template: entry.template,
    name: entry.name,
    description: entry.description,
    parameters: entry.parameters,
    exampleText: entry.text(defaults(entry)),
  }));
}

export interface InstantiatedTag {
  /** A segment key (≤ 64 characters, no quotes, backslashes or control characters), unique per template and parameters. */
  key: string;
  template: string;
  name: Localised;
  description: Localised;
  /** Every parameter, defaults filled in. */
  parameters: Record<string, TagParameterValue>;
  text: string;
  condition: Condition;
}

/**
 * A library tag with the given parameters (missing ones take their defaults). A bad template or
 * parameter is a 400 naming the field (`template`, `parameters.<name>`); unknown parameters are
 * refused, not ignored.
 */
export function instantiateTag(template: string, params: Readonly<Record<string, unknown>> = {}): InstantiatedTag {
  const entry = TAG_LIBRARY.find((candidate) => candidate.template === template);
  if (!entry) {
    const suggestion = closest(template, TAG_LIBRARY.map((candidate) => candidate.template));
    throw new ApiError(
      400,
      'unknown_tag_template',
      `Unknown tag template "${template}"${suggestion ? `; did you mean "${suggestion}"?` : ''} (known: ${TAG_LIBRARY.map((candidate) => candidate.template).join(', ')})`,
      'template',
    );
  }
  for (const name of Object.keys(params)) {
    if (!entry.parameters.some((parameter) => parameter.name === name)) {
      const known = entry.parameters.map((parameter) => parameter.name);
      throw new ApiError(
        400,
        'invalid_tag_parameter',
        `The tag "${template}" has no parameter "${name}"${known.length > 0 ? ` (it takes ${known.join(', ')})` : ' (it takes none)'}`,
        `parameters.${name}`,
      );
    }
  }
  const values: Record<string, TagParameterValue> = {};
  for (const parameter of entry.parameters) {
    const given = params[parameter.name];
    values[parameter.name] = given === undefined ? parameter.default : validParameter(parameter, given);
  }
  const text = entry.text(values);
  const parsed = parseSegment(text);
  // Parameters are validated and quoted above, so a failure here is a bug in the library.
  if (!parsed.ok) throw new Error(`Tag template ${template} produced text that does not parse: ${parsed.error.message} in ${text}`);
  return {
    key: tagKey(entry, values),
    template,
    name: { en: fillName(entry.name.en, entry, values, 'en'), zh: fillName(entry.name.zh, entry, values, 'zh') },
    description: entry.description,
    parameters: values,
    text,
    condition: parsed.condition,
  };
}

function defaults(entry: TagTemplate): Record<string, TagParameterValue> {
  return Object.fromEntries(entry.parameters.map((parameter) => [parameter.name, parameter.default]));
}

const DURATION_TEXT = /^(\d+)([mhdw])$/;
const UNIT_OF: Record<string, Duration['unit']> = { m: 'minutes', h: 'hours', d: 'days', w: 'weeks' };

function validParameter(parameter: TagParameter, value: unknown): TagParameterValue {
  const field = `parameters.${parameter.name}`;
  const invalid = (message: string): never => {
    throw new ApiError(400, 'invalid_tag_parameter', `${parameter.name}: ${message}`, field);
  };
  switch (parameter.type) {
    case 'string': {
      if (typeof value !== 'string') return invalid(`expected text, got ${describe(value)}`);
      if (value.trim() === '') return invalid('cannot be empty');
      if (value.length > 200) return invalid(`too long (${value.length} characters; at most 200)`);
      return value;
    }
    case 'number': {
      if (typeof value !== 'number' || !Number.isFinite(value)) return invalid(`expected a number, got ${describe(value)}`);
      if (parameter.integer && !Number.isInteger(value)) return invalid(`expected a whole number, got ${value}`);
      if (parameter.min !== undefined && value < parameter.min) return invalid(`must be at least ${parameter.min}, got ${value}`);
      return value;
    }
    case 'duration': {
      const match = typeof value === 'string' ? DURATION_TEXT.exec(value) : null;
      if (!match) return invalid(`expected a duration such as 30m, 12h, 90d or 2w, got ${describe(value)}`);
      const amount = Number(match[1]);
      if (amount < 1 || amount > 100_000) return invalid(`the amount must be from 1 to 100000, got ${amount}`);
      const unit = UNIT_OF[match[2]!]!;
      if (parameter.units && !parameter.units.includes(unit)) return invalid(`use ${parameter.units.join(' or ')}, e.g. 30d`);
      return `${amount}${match[2]}`;
    }
  }
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 37)}...` : value);
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  return typeof value === 'object' ? 'an object' : String(value);
}

const UNIT_WORDS: Record<Duration['unit'], { en: [string, string]; zh: string }> = {
  minutes: { en: ['minute', 'minutes'], zh: '分钟' },
  hours: { en: ['hour', 'hours'], zh: '小时' },
  days: { en: ['day', 'days'], zh: '天' },
  weeks: { en: ['week', 'weeks'], zh: '周' },
};

function fillName(pattern: string, entry: TagTemplate, values: Record<string, TagParameterValue>, language: 'en' | 'zh'): string {
  return pattern.replace(/\{(\w+)\}/g, (placeholder, name: string) => {
    const parameter = entry.parameters.find((candidate) => candidate.name === name);
    if (!parameter) return placeholder;
    const value = values[name]!;
    if (parameter.type !== 'duration') return String(value);
    const match = DURATION_TEXT.exec(String(value))!;
    const amount = Number(match[1]);
    const words = UNIT_WORDS[UNIT_OF[match[2]!]!];
    return language === 'zh' ? `${amount}${words.zh}` : `${amount} ${words.en[amount === 1 ? 0 : 1]}`;
  });
}

/**
 * The template's name alone with its defaults; otherwise the parameters, as readable as the key's
 * 64 characters allow, then a hash of all of them: readable parts alone could collide ("a-b" + "c"
 * and "a" + "b-c"), the hash cannot in practice.
 */
function tagKey(entry: TagTemplate, values: Record<string, TagParameterValue>): string {
  if (entry.parameters.every((parameter) => values[parameter.name] === parameter.default)) return entry.template;
  const hash = crypto.createHash('sha256').update(JSON.stringify([entry.template, values])).digest('hex').slice(0, 8);
  const readable = [entry.template, ...entry.parameters.map((parameter) => String(values[parameter.name]))]
    .join('-')
    // The key rule (no quote, backslash or control character) plus spaces, for readability.
    .replace(/["\\\p{Cc}\s]+/gu, '_');
  let prefix = '';
  for (const char of readable) {
    if (prefix.length + char.length > 64 - hash.length - 1) break;
    prefix += char;
  }
  return `${prefix}-${hash}`;
}
