import { Type, type Static } from '@sinclair/typebox';
import { DurationSchema } from '../segments/ast.ts';

/*
 * A journey definition: a JSON graph of nodes the dashboard draws and the executor walks. This
 * schema is the one source of truth: the API validates with it, the types below derive from it.
 *
 * Nodes link by id (`next`, `yes`/`no`, `happened`/`timedOut`, `branches[].next`). Exactly one
 * `entry` node starts the graph. Conditions (split, goals, exits, wait filters) are written in
 * the segment language (docs/segments-language.md) and evaluated by the segment evaluator.
 */

const NodeId = Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_.-]+$', description: 'Unique within the journey' });
const ConditionText = Type.String({ minLength: 1, maxLength: 20_000, description: 'A condition in the segment language' });
const Position = Type.Optional(
  Type.Object({ x: Type.Number(), y: Type.Number() }, { additionalProperties: false, description: 'Where the dashboard draws the node' }),
);

const SegmentTrigger = Type.Object(
  {
    kind: Type.Literal('segment'),
    segment: Type.String({ minLength: 1, maxLength: 64, description: 'Key of the segment' }),
    on: Type.Optional(Type.Union([Type.Literal('entered'), Type.Literal('exited')], { default: 'entered' })),
  },
  { additionalProperties: false },
);
const PropertyName = Type.String({ minLength: 1, maxLength: 200, pattern: '^[A-Za-z0-9_$-]+$', description: 'A top-level property name' });
const EventTrigger = Type.Object(
  {
    kind: Type.Literal('event'),
    event: Type.String({ minLength: 1, maxLength: 200, description: 'Track event name' }),
    where: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 5_000,
        description: 'Property filters as inside event(... where …) of the segment language, e.g. `total > 100 and currency = "CNY"`',
      }),
    ),
    instanceKey: Type.Optional(
      Type.Object(
        { property: PropertyName },
        {
          additionalProperties: false,
          description:
            'Per-key instances: one instance per value of this trigger-event property (e.g. order_id) instead of one per profile; events without it do not enter',
        },
      ),
    ),
    properties: Type.Optional(
      Type.Array(PropertyName, { maxItems: 200, description: 'Trigger-event properties templates may read (`event.<name>`), beyond those in the event catalogue' }),
    ),
  },
  { additionalProperties: false },
);
const ApiTrigger = Type.Object(
  {
    kind: Type.Literal('api'),
    properties: Type.Optional(
      Type.Array(PropertyName, { maxItems: 200, description: 'Entry variables an API call passes, readable in templates as `event.<name>`' }),
    ),
  },
  { additionalProperties: false },
);
const TimeOfDay = Type.String({ pattern: '^([01][0-9]|2[0-3]):[0-5][0-9]$', description: 'HH:MM, 24-hour' });
const DateTrigger = Type.Object(
  {
    kind: Type.Literal('date'),
    trait: Type.String({ minLength: 1, maxLength: 200, description: 'A date trait (YYYY-MM-DD or an ISO instant), e.g. birthday or contract_end' }),
    days: Type.Optional(Type.Integer({ minimum: -366, maximum: 366, description: 'Offset from the date in days: -3 = three days before' })),
    time: TimeOfDay,
    repeat: Type.Union([Type.Literal('yearly'), Type.Literal('once')], {
      description: 'yearly: every year on the date (birthdays, anniversaries); once: on the date itself (a contract end)',
    }),
  },
  { additionalProperties: false, description: "At `time` on the date ± days, in the profile's time zone (trait timezone, else the workspace's)" },
);
const ScheduleTrigger = Type.Object(
  {
    kind: Type.Literal('schedule'),
    segment: Type.String({ minLength: 1, maxLength: 64, description: 'Whose members enter at each run' }),
    at: Type.Optional(Type.String({ format: 'date-time', description: 'One-off: the instant of the single run' })),
    cron: Type.Optional(Type.String({ minLength: 1, maxLength: 100, description: 'Recurring: 5-field cron (minute hour day month weekday) in timeZone' })),
    timeZone: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: "The cron's time zone; the workspace's when absent" })),
  },
  { additionalProperties: false, description: "A broadcast: the segment's members at that moment enter (exactly one of at, cron)" },
);
export const TriggerSchema = Type.Union([SegmentTrigger, EventTrigger, ApiTrigger, DateTrigger, ScheduleTrigger]);
export type Trigger = Static<typeof TriggerSchema>;

export const ReentrySchema = Type.Union(
  [
    Type.Object({ mode: Type.Literal('once') }, { additionalProperties: false }),
    Type.Object({ mode: Type.Literal('after'), days: Type.Integer({ minimum: 1, maximum: 3650 }) }, { additionalProperties: false }),
    Type.Object({ mode: Type.Literal('always') }, { additionalProperties: false }),
  ],
  {
    description:
      'once: a profile enters at most once per journey; after: again only N days after its last entry; always: whenever it is not already in. A profile is never in the same journey twice at once.',
  },
);
export type Reentry = Static<typeof ReentrySchema>;

const EntryNode = Type.Object(
  {
    id: NodeId,
    kind: Type.Literal('entry'),
    trigger: TriggerSchema,
    reentry: Type.Optional(ReentrySchema),
    cap: Type.Optional(Type.Integer({ minimum: 1, description: 'At most this many entries into the journey in total (all versions)' })),
    holdoutPercent: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 99,
        description: 'Share of profiles held out (stable per profile and journey): they walk the journey but are sent nothing, for uplift',
      }),
    ),
    maxConcurrent: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 1000, description: 'At most this many running instances per profile (per-key instances); 1 without instanceKey' }),
    ),
    ratePerSecond: Type.Optional(
      Type.Number({ exclusiveMinimum: 0, maximum: 100_000, description: 'Send-rate limit of the journey (messages per second), for broadcasts' }),
    ),
    next: NodeId,
    position: Position,
  },
  { additionalProperties: false },
);

const Weekday = Type.Integer({ minimum: 1, maximum: 7, description: 'ISO weekday: 1 = Monday … 7 = Sunday' });

const DelayNode = Type.Object(
  {
    id: NodeId,
    kind: Type.Literal('delay'),
    duration: Type.Optional(DurationSchema),
    until: Type.Optional(
      Type.Object(
        {
          time: TimeOfDay,
          weekdays: Type.Optional(Type.Array(Weekday, { minItems: 1, maxItems: 7, uniqueItems: true })),
        },
        {
          additionalProperties: false,
          description: "The next such time of day in the profile's time zone (trait timezone, else the workspace's), after the duration when both are given",
        },
      ),
    ),
    untilDate: Type.Optional(
      Type.Object(
        {
          trait: Type.String({ minLength: 1, maxLength: 200, description: 'A date trait (YYYY-MM-DD or an ISO instant)' }),
          days: Type.Optional(Type.Integer({ minimum: -3650, maximum: 3650, description: 'Offset in days: -7 = a week before' })),
          time: Type.Optional(TimeOfDay),
        },
        {
          additionalProperties: false,
          description: "Until the date ± days (at `time` in the profile's time zone, else the date's own instant); a date already past or missing: at once",
        },
      ),
    ),
    next: NodeId,
    position: Position,
  },
  { additionalProperties: false, description: 'Waits a duration, until a time of day, both (duration first), or until a date trait ± offset' },
);

const WaitNode = Type.Object(
  {
    id: NodeId,
    kind: Type.Literal('wait'),
    event: Type.String({ minLength: 1, maxLength: 200, description: 'Track event name to wait for' }),
    where: Type.Optional(Type.String({ minLength: 1, maxLength: 5_000, description: 'Property filters, as for an event trigger' })),
    timeout: DurationSchema,
    happened: NodeId,
    timedOut: NodeId,
    position: Position,
  },
  { additionalProperties: false, description: 'Waits for an event; takes `happened` when it arrives, `timedOut` when the timeout passes first' },
);

const SegmentWaitNode = Type.Object(
  {
    id: NodeId,
    kind: Type.Literal('segment_wait'),
    segment: Type.String({ minLength: 1, maxLength: 64, description: 'Key of the segment' }),
    on: Type.Union([Type.Literal('entered'), Type.Literal('exited')], { description: 'entered: waits to be a member; exited: waits to leave' }),
    timeout: DurationSchema,
    happened: NodeId,
    timedOut: NodeId,
    position: Position,
  },
  {
    additionalProperties: false,
    description: 'Waits for the profile to enter (or leave) a segment; takes `happened` at once when it already is (or is not) there, `timedOut` after the timeout',
  },
);

const JsonValue = Type.Union([Type.String({ maxLength: 10_000 }), Type.Number(), Type.Boolean(), Type.Null()]);
const UpdateTraitNode = Type.Object(
  {
    id: NodeId,
    kind: Type.Literal('update_trait'),
    set: Type.Optional(
      Type.Record(Type.String({ minLength: 1, maxLength: 200 }), JsonValue, { description: 'Traits to set (null removes the value)', maxProperties: 50 }),
    ),
    addTags: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 100 }), { minItems: 1, maxItems: 20, description: 'Tags to add to the list trait `tags`' })),
    next: NodeId,
    position: Position,
  },
  { additionalProperties: false, description: 'Writes traits (provenance `journey:<id>`), or adds tags to the `tags` list trait' },
);

const WebhookNode = Type.Object(
  {
    id: NodeId,
    kind: Type.Literal('webhook'),
    channelConfigKey: Type.String({ minLength: 1, maxLength: 100, description: 'A webhook channel account (URL and signing secret)' }),
    template: Type.String({ minLength: 1, maxLength: 200, description: 'Webhook template key (its `body` is the payload)' }),
    next: NodeId,
    position: Position,
  },
  { additionalProperties: false, description: "Calls a signed webhook through channels' outbox (exactly once, retried); no marketing guards" },
);

const SplitNode = Type.Object(
  {
    id: NodeId,
    kind: Type.Literal('split'),
    condition: ConditionText,
    yes: NodeId,
    no: NodeId,
    position: Position,
  },
  { additionalProperties: false, description: "Branches on a segment-language condition over the profile at the moment it arrives" },
);

const RandomNode = Type.Object(
  {
    id: NodeId,
    kind: Type.Literal('random'),
    branches: Type.Array(
      Type.Object(
        {
          key: Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_.-]+$' }),
          percent: Type.Integer({ minimum: 1, maximum: 100 }),
          next: NodeId,
        },
        { additionalProperties: false },
      ),
      { minItems: 2, maxItems: 10 },
    ),
    position: Position,
  },
  { additionalProperties: false, description: 'A/B/n split, stable per profile (the same profile always takes the same branch); percents sum to 100' },
);

export const CHANNELS = ['email', 'sms', 'wechat', 'wecom', 'push', 'webhook'] as const;
const SendNode = Type.Object(
  {
    id: NodeId,
    kind: Type.Literal('send'),
    channel: Type.Union(CHANNELS.map((channel) => Type.Literal(channel))),
    template: Type.String({ minLength: 1, maxLength: 200, description: 'Template key' }),
    purpose: Type.Union([Type.Literal('marketing'), Type.Literal('transactional')]),
    subscriptionGroup: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
    channelConfigKey: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
    next: NodeId,
    position: Position,
  },
  { additionalProperties: false },
);

const EndNode = Type.Object({ id: NodeId, kind: Type.Literal('end'), position: Position }, { additionalProperties: false });

export const NodeSchema = Type.Union([EntryNode, DelayNode, WaitNode, SegmentWaitNode, SplitNode, RandomNode, SendNode, UpdateTraitNode, WebhookNode, EndNode]);
export type JourneyNode = Static<typeof NodeSchema>;
export type NodeKind = JourneyNode['kind'];
export type NodeOf<K extends NodeKind> = Extract<JourneyNode, { kind: K }>;

const ConditionRule = Type.Object(
  {
    id: NodeId,
    condition: Type.String({
      minLength: 1,
      maxLength: 20_000,
      description: 'Segment-language condition; event conditions see only the events since the profile entered, e.g. `event("Order Completed").exists()`',
    }),
  },
  { additionalProperties: false },
);

export const JourneyDefinitionSchema = Type.Object(
  {
    nodes: Type.Array(NodeSchema, { minItems: 2, maxItems: 500 }),
    goals: Type.Optional(Type.Array(ConditionRule, { maxItems: 20, description: 'Checked on every event: the first that holds ends the instance as converted' })),
    exits: Type.Optional(Type.Array(ConditionRule, { maxItems: 20, description: 'Checked on every event: the first that holds ends the instance as exited' })),
    variables: Type.Optional(
      Type.Record(Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z_][A-Za-z0-9_]*$' }), JsonValue, {
        maxProperties: 100,
        description: 'Journey variables, readable in send templates as `journey.<name>` (besides journey.key and journey.version)',
      }),
    ),
  },
  { additionalProperties: false },
);
export type JourneyDefinition = Static<typeof JourneyDefinitionSchema>;
export type ConditionRule = Static<typeof ConditionRule>;

export function entryNode(definition: JourneyDefinition): NodeOf<'entry'> {
  const entry = definition.nodes.find((node): node is NodeOf<'entry'> => node.kind === 'entry');
  if (!entry) throw new Error('A journey definition has no entry node (validate before use)');
  return entry;
}

export function nodeById(definition: JourneyDefinition, id: string): JourneyNode | undefined {
  return definition.nodes.find((node) => node.id === id);
}

export { successors } from './successors.ts';

/** Nodes where an instance stops and waits for time or an event. */
export const isWaitingNode = (node: JourneyNode) => node.kind === 'delay' || node.kind === 'wait' || node.kind === 'segment_wait';

/** The journey variables templates see as `journey.*`: the definition's, then key and version. */
export function journeyVariables(definition: JourneyDefinition, key: string, version: number): Record<string, unknown> {
  return { ...(definition.variables ?? {}), key, version };
}
