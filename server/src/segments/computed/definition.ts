import { Type, type Static } from '@sinclair/typebox';
import { EventMatchSchema, WindowSchema } from '../ast.ts';

/*
 * What a computed trait computes: the one source of truth (the API stores and accepts it, the
 * evaluator in ./evaluate.ts reads it). Every kind reads the profile's events that `match` selects
 * inside `window` (ast.ts EventMatch and Window, with the same meaning as in segments; no window:
 * all the profile's events) and measures them with ast.ts's value rules:
 *
 * - count: number of events (0 when none).
 * - sum / avg / min / max of `property` over the events whose value is a number (a JSON number or a
 *   string that is a decimal number in full): sum of none is 0; avg/min/max of none is absent.
 * - most_frequent: the present scalar value (string, number, boolean; a number and a string never
 *   equal) seen on most events; a tie goes to the value seen most recently, by (timestamp, seq).
 * - first_value / last_value: the property's value on the earliest / latest event by (timestamp,
 *   seq), as in segments: absent when that event lacks it (add a filter `exists` on the property
 *   for "the latest value anyone sent").
 * - unique_list: the distinct present scalar values in order of first occurrence, at most 100.
 * - unique_count: the number of distinct present scalar values (not capped).
 * - first_event_time / last_event_time: the timestamp of the earliest / latest event as an ISO-8601
 *   string (UTC, milliseconds). "Time since the last event" is this value: segments test it with
 *   `trait.<key> within last 30d` (or before/after), which stays right as time passes without the
 *   stored value having to change every second.
 *
 * Objects and arrays count as values only for first_value / last_value. An absent result (no
 * events for avg/min/max/most_frequent/first/last; an absent or null property for first/last
 * value) removes the trait from the profile; count 0, sum 0 and an empty unique_list are values.
 *
 * The trait key the value is stored under is not part of the definition: it is the computed
 * trait's own key (computed/schemas.ts), held once.
 */

const Property = Type.String({
  minLength: 1,
  maxLength: 300,
  pattern: '^[^.]+(\\.[^.]+)*$',
  description: 'Path into the event properties, or into its context when it starts with `context`',
});

function kindOf<K extends string, P extends Record<string, ReturnType<typeof Type.String>>>(kinds: readonly K[], extra: P, description: string) {
  return Type.Object(
    {
      kind: Type.Union(kinds.map((kind) => Type.Literal(kind))),
      ...extra,
      match: EventMatchSchema,
      window: Type.Optional(WindowSchema),
    },
    { additionalProperties: false, description },
  );
}

export const ComputedTraitDefinitionSchema = Type.Union(
  [
    kindOf(['count'], {}, 'Number of matching events'),
    kindOf(['sum', 'avg', 'min', 'max'], { property: Property }, 'Aggregate of a numeric property'),
    kindOf(['most_frequent'], { property: Property }, 'Most frequent value of a property (ties: the most recent)'),
    kindOf(['first_value', 'last_value'], { property: Property }, "A property's value on the first/last matching event"),
    kindOf(['unique_list', 'unique_count'], { property: Property }, 'Distinct values of a property (list: first 100 by first occurrence)'),
    kindOf(['first_event_time', 'last_event_time'], {}, 'Timestamp (ISO-8601) of the first/last matching event'),
  ],
  { description: 'What a computed trait computes over the events its match selects in its window' },
);
export type ComputedTraitDefinition = Static<typeof ComputedTraitDefinitionSchema>;
export type ComputedTraitKind = ComputedTraitDefinition['kind'];

/** unique_list keeps the first this many distinct values. */
export const UNIQUE_LIST_LIMIT = 100;
