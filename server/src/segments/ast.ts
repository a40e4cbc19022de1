import { Type, type Static, type TProperties } from '@sinclair/typebox';

/*
 * The segment language's JSON AST: the one source of truth. The API stores and accepts it, the
 * dashboard edits it, the text form parses to it and prints from it, and both evaluators (the SQL
 * compiler over all profiles, the incremental evaluator over one profile) read it. The meaning of
 * every node is written here once; evaluators must follow it to the letter, because a property
 * test asserts they agree on random segments and histories.
 *
 * Shared semantics
 * - `now` is an input of every evaluation (a controllable clock), never read from the system.
 * - Numbers: a literal number compares with a JSON number, or with a JSON string that is a decimal
 *   number in full (/^-?\d+(\.\d+)?([eE][+-]?\d+)?$/), as IEEE doubles (float8 in SQL). Any other
 *   value makes the comparison false.
 * - Strings: a literal string compares only with a JSON string, case-sensitively, by code points.
 *   Ordering (<, >) is never applied to strings; dates use before/after.
 * - Booleans: a literal boolean equals only a JSON boolean.
 * - Dates: a JSON string that is an ISO-8601 date or date-time (parseInstant in ingest/normalize.ts;
 *   no zone = UTC). A date-only value is midnight UTC. Anything else makes a date comparison false.
 * - A value is present when it exists and is not JSON null. `neq` is exactly `not eq` and `not_in`
 *   exactly `not in` (so both hold when the value is absent); every other operator is false on an
 *   absent value, except `missing`.
 * - Paths are dot-separated. For traits the first part is the trait key (profile_traits.key) and
 *   the rest walks into its JSON object. For event filters a path starts in `properties`, unless
 *   its first part is `context`, which walks into the event's context.
 */

const Path = Type.String({ minLength: 1, maxLength: 300, pattern: '^[^.]+(\\.[^.]+)*$' });
const Scalar = Type.Union([Type.String({ maxLength: 1000 }), Type.Number(), Type.Boolean()]);
export type Scalar = Static<typeof Scalar>;
const IsoInstant = Type.String({ minLength: 10, maxLength: 40, description: 'ISO-8601 date or date-time; no zone = UTC' });

export const DurationSchema = Type.Object(
  {
    amount: Type.Integer({ minimum: 1, maximum: 100_000 }),
    unit: Type.Union([Type.Literal('minutes'), Type.Literal('hours'), Type.Literal('days'), Type.Literal('weeks')]),
  },
  { additionalProperties: false, description: 'Text form: 30m, 12h, 90d, 2w' },
);
export type Duration = Static<typeof DurationSchema>;

const UNIT_MS: Record<Duration['unit'], number> = { minutes: 60_000, hours: 3_600_000, days: 86_400_000, weeks: 604_800_000 };
export function durationMs(duration: Duration): number {
  return duration.amount * UNIT_MS[duration.unit];
}

/**
 * Which events count. `last`: timestamp > now − duration (an event leaves the window exactly at
 * its timestamp + duration; no upper bound). `range`: from ≤ timestamp < to, either end optional.
 * No window: all the profile's events.
 */
export const WindowSchema = Type.Union([
  Type.Object({ kind: Type.Literal('last'), duration: DurationSchema }, { additionalProperties: false }),
  Type.Object({ kind: Type.Literal('range'), from: Type.Optional(IsoInstant), to: Type.Optional(IsoInstant) }, { additionalProperties: false }),
]);
export type Window = Static<typeof WindowSchema>;

/**
 * Operators on one value (a trait, an event property, an aggregate's first/last value).
 * eq/neq/in/not_in: scalar literals. lt/lte/gt/gte/between: numbers (between is inclusive, [low, high]).
 * contains: a string value contains the literal string, or an array value has an element equal to the literal.
 * starts_with/ends_with: string value and literal. matches: string value matches the regular expression
 *   (the portable subset both JavaScript and PostgreSQL read alike: literals, ., [...] classes, ^ $, * + ? {n,m},
 *   |, (...) groups, \d \w \s; no lookaround, backreferences or flags).
 * exists/missing: presence. before/after: a date value strictly before/after the literal instant.
 * within_last/within_next: a date value in (now − d, now] / [now, now + d).
 * anniversary_within_next: the value's month-day (UTC) falls on one of the days from today (UTC date of now)
 *   to today + d − 1 day inclusive, in any year; 29 February counts as 28 February in years without one. The
 *   duration must be in days or weeks.
 */
// Written as one function of the fields the operator sits next to (none, a trait path, a filter's
// property): an Intersect of an object with these closed objects would reject every value, because
// each closed branch sees the neighbouring fields as additional properties.
function valueOperatorWith<Extra extends TProperties>(extra: Extra) {
  return Type.Union([
    Type.Object({ ...extra, op: Type.Union([Type.Literal('eq'), Type.Literal('neq')]), value: Scalar }, { additionalProperties: false }),
    Type.Object(
      { ...extra, op: Type.Union([Type.Literal('in'), Type.Literal('not_in')]), values: Type.Array(Scalar, { minItems: 1, maxItems: 1000 }) },
      { additionalProperties: false },
    ),
    Type.Object(
      { ...extra, op: Type.Union([Type.Literal('lt'), Type.Literal('lte'), Type.Literal('gt'), Type.Literal('gte')]), value: Type.Number() },
      { additionalProperties: false },
    ),
    Type.Object({ ...extra, op: Type.Literal('between'), low: Type.Number(), high: Type.Number() }, { additionalProperties: false }),
    Type.Object(
      {
        ...extra,
        op: Type.Union([Type.Literal('contains'), Type.Literal('starts_with'), Type.Literal('ends_with')]),
        value: Type.String({ minLength: 1, maxLength: 1000 }),
      },
      { additionalProperties: false },
    ),
    Type.Object({ ...extra, op: Type.Literal('matches'), pattern: Type.String({ minLength: 1, maxLength: 500 }) }, { additionalProperties: false }),
    Type.Object({ ...extra, op: Type.Union([Type.Literal('exists'), Type.Literal('missing')]) }, { additionalProperties: false }),
    Type.Object({ ...extra, op: Type.Union([Type.Literal('before'), Type.Literal('after')]), value: IsoInstant }, { additionalProperties: false }),
    Type.Object(
      {
        ...extra,
        op: Type.Union([Type.Literal('within_last'), Type.Literal('within_next'), Type.Literal('anniversary_within_next')]),
        duration: DurationSchema,
      },
      { additionalProperties: false },
    ),
  ]);
}
export const ValueOperatorSchema = valueOperatorWith({});
export type ValueOperator = Static<typeof ValueOperatorSchema>;

export const PropertyFilterSchema = valueOperatorWith({ property: Path });
export type PropertyFilter = Static<typeof PropertyFilterSchema>;

/**
 * Which events match: `track` events whose `event` equals `name`, or `page`/`screen` events whose
 * `name` equals `name` (`name` absent: every page/screen view), and that pass every filter.
 */
export const EventMatchSchema = Type.Object(
  {
    type: Type.Union([Type.Literal('track'), Type.Literal('page'), Type.Literal('screen')]),
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    filters: Type.Array(PropertyFilterSchema, { maxItems: 20 }),
  },
  { additionalProperties: false },
);
export type EventMatch = Static<typeof EventMatchSchema>;

const NumericComparison = Type.Object(
  {
    op: Type.Union([Type.Literal('eq'), Type.Literal('neq'), Type.Literal('lt'), Type.Literal('lte'), Type.Literal('gt'), Type.Literal('gte')]),
    value: Type.Number(),
  },
  { additionalProperties: false },
);
const NumericBetween = Type.Object({ op: Type.Literal('between'), low: Type.Number(), high: Type.Number() }, { additionalProperties: false });
const NumericTest = Type.Union([NumericComparison, NumericBetween]);
const TimeTest = Type.Union([
  Type.Object({ op: Type.Union([Type.Literal('before'), Type.Literal('after')]), value: IsoInstant }, { additionalProperties: false }),
  Type.Object({ op: Type.Literal('within_last'), duration: DurationSchema }, { additionalProperties: false }),
]);

/**
 * What is measured over the matching events in the window, and the test applied to it.
 * exists: at least one event (no test). count: number of events.
 * sum/avg/min/max: over the events whose property is numeric (see Numbers); sum of none is 0;
 *   avg/min/max of none is absent, and every test on an absent measure is false (neq included).
 * distinct: number of distinct present scalar values of the property (a number and a string never equal).
 * first_time/last_time: timestamp of the earliest/latest matching event (absent if none).
 * first_value/last_value: the property's value on the earliest/latest matching event, ordered by
 *   (timestamp, seq); tested like a trait value (an absent property is absent).
 */
export const MeasureSchema = Type.Union([
  Type.Object({ kind: Type.Literal('exists') }, { additionalProperties: false }),
  Type.Object({ kind: Type.Literal('count'), test: NumericTest }, { additionalProperties: false }),
  Type.Object(
    {
      kind: Type.Union([Type.Literal('sum'), Type.Literal('avg'), Type.Literal('min'), Type.Literal('max'), Type.Literal('distinct')]),
      property: Path,
      test: NumericTest,
    },
    { additionalProperties: false },
  ),
  Type.Object({ kind: Type.Union([Type.Literal('first_time'), Type.Literal('last_time')]), test: TimeTest }, { additionalProperties: false }),
  Type.Object(
    { kind: Type.Union([Type.Literal('first_value'), Type.Literal('last_value')]), property: Path, test: ValueOperatorSchema },
    { additionalProperties: false },
  ),
]);
export type Measure = Static<typeof MeasureSchema>;

export type Condition =
  | { kind: 'and'; conditions: Condition[] }
  | { kind: 'or'; conditions: Condition[] }
  | { kind: 'not'; condition: Condition }
  | ({ kind: 'trait'; trait: string } & ValueOperator)
  | { kind: 'event'; match: EventMatch; window?: Window; measure: Measure }
  | SequenceCondition
  | { kind: 'identifier'; type: string }
  | { kind: 'segment'; segment: string }
  | { kind: 'consent'; category: string }
  | { kind: 'bucket'; salt: string; from: number; to: number };

/**
 * A then B. `negated: false`: some first event A (inside `window`, if given) is followed by a then
 * event B later in (timestamp, seq) order with B.timestamp ≤ A.timestamp + within.
 * `negated: true` (the abandoned-cart shape): some A inside `window` whose `within` has fully
 * passed (A.timestamp + within ≤ now) with no such B. It becomes true on its own at A + within.
 */
export interface SequenceCondition {
  kind: 'sequence';
  first: EventMatch;
  then: EventMatch;
  negated: boolean;
  within: Duration;
  window?: Window;
}

const TraitCondition = valueOperatorWith({ kind: Type.Literal('trait'), trait: Path });

export const ConditionSchema = Type.Recursive(
  (Self) =>
    Type.Union([
      Type.Object({ kind: Type.Literal('and'), conditions: Type.Array(Self, { minItems: 1, maxItems: 100 }) }, { additionalProperties: false }),
      Type.Object({ kind: Type.Literal('or'), conditions: Type.Array(Self, { minItems: 1, maxItems: 100 }) }, { additionalProperties: false }),
      Type.Object({ kind: Type.Literal('not'), condition: Self }, { additionalProperties: false }),
      TraitCondition,
      Type.Object(
        { kind: Type.Literal('event'), match: EventMatchSchema, window: Type.Optional(WindowSchema), measure: MeasureSchema },
        { additionalProperties: false },
      ),
      Type.Object(
        {
          kind: Type.Literal('sequence'),
          first: EventMatchSchema,
          then: EventMatchSchema,
          negated: Type.Boolean(),
          within: DurationSchema,
          window: Type.Optional(WindowSchema),
        },
        { additionalProperties: false },
      ),
      Type.Object({ kind: Type.Literal('identifier'), type: Type.String({ minLength: 1, maxLength: 64 }) }, { additionalProperties: false }),
      Type.Object(
        { kind: Type.Literal('segment'), segment: Type.String({ minLength: 1, maxLength: 64, description: 'Key of another segment' }) },
        { additionalProperties: false },
      ),
      Type.Object({ kind: Type.Literal('consent'), category: Type.String({ minLength: 1, maxLength: 64 }) }, { additionalProperties: false }),
      Type.Object(
        {
          kind: Type.Literal('bucket'),
          salt: Type.String({ maxLength: 100 }),
          from: Type.Integer({ minimum: 0, maximum: 99 }),
          to: Type.Integer({ minimum: 0, maximum: 99 }),
        },
        {
          additionalProperties: false,
          description:
            "Stable random bucket: the profile's bucket is parseInt(first 8 hex digits of md5(salt + ':' + profileId), 16) % 100; true when from ≤ bucket ≤ to",
        },
      ),
    ]),
  { $id: 'SegmentCondition' },
);

export type { Condition as SegmentCondition };

// The hand-written union reads better in editors; these lines keep it equal to the schema's type.
type SchemaCondition = Static<typeof ConditionSchema>;
const sameFromSchema = (c: SchemaCondition): Condition => c;
const sameToSchema = (c: Condition): SchemaCondition => c;
void sameFromSchema;
void sameToSchema;
