import { Type, type Static } from '@sinclair/typebox';
import { FunnelQuerySchema } from '../analytics/funnel.ts';
import { SegmentKeySchema } from '../segments/schemas.ts';

const Instant = Type.String({ format: 'date-time' });

export const OverviewQuerySchema = Type.Object(
  {
    from: Type.String({ format: 'date-time', description: 'Start of the range (inclusive)' }),
    to: Type.String({ format: 'date-time', description: 'End of the range (exclusive)' }),
  },
  { additionalProperties: false },
);
export type OverviewQuery = Static<typeof OverviewQuerySchema>;

export const OverviewSchema = Type.Object({
  from: Instant,
  to: Instant,
  timeZone: Type.String({ description: "The workspace's time zone, in which days are counted" }),
  eventsPerDay: Type.Array(Type.Object({ day: Type.String({ description: 'YYYY-MM-DD in the workspace time zone' }), events: Type.Integer() })),
  events: Type.Integer({ description: 'Events in the range' }),
  activeProfiles: Type.Integer({ description: 'Profiles with at least one event in the range' }),
  profiles: Type.Integer({ description: 'Live profiles now (merged ones not counted)' }),
  identifiedProfiles: Type.Integer({ description: 'Live profiles with at least one identifier other than anonymous_id' }),
  newProfiles: Type.Integer({ description: 'Profiles first seen in the range' }),
  messages: Type.Object(
    {
      sent: Type.Integer({ description: 'Messages created in the range that reached the provider (sent, delivered, opened or clicked)' }),
      delivered: Type.Integer({ description: 'Of those, delivered (or opened or clicked)' }),
      clicked: Type.Integer({ description: 'Of those, clicked' }),
    },
    { description: 'Messages of every channel created in the range, by the furthest status they reached' },
  ),
  activeJourneys: Type.Integer({ description: 'Journeys published now' }),
  topSegments: Type.Array(
    Type.Object({ key: Type.String(), name: Type.String(), kind: Type.String(), members: Type.Integer(), isTag: Type.Boolean() }),
  ),
});
export type Overview = Static<typeof OverviewSchema>;

// ---- Funnel drop-offs saved as a segment (drop-offs.ts) ----

export const MAX_DROP_OFF_MEMBERS = 100_000;

export const DropOffSegmentBodySchema = Type.Object(
  {
    funnel: FunnelQuerySchema,
    step: Type.Integer({ minimum: 1, description: 'Profiles that reached this step (1-based) and not the next' }),
    breakdownValue: Type.Optional(Type.Union([Type.String(), Type.Null()], { description: 'Only the drop-offs of this breakdown value' })),
    segment: Type.Object(
      {
        key: SegmentKeySchema,
        name: Type.String({ minLength: 1, maxLength: 200 }),
        description: Type.Optional(Type.String({ maxLength: 2000 })),
      },
      { additionalProperties: false },
    ),
  },
  { additionalProperties: false },
);
export type DropOffSegmentBody = Static<typeof DropOffSegmentBodySchema>;

export const DropOffSegmentResultSchema = Type.Object({
  key: Type.String(),
  name: Type.String(),
  step: Type.Integer(),
  profiles: Type.Integer({ description: 'Drop-off profiles found (and made members)' }),
  memberCount: Type.Integer(),
  truncated: Type.Boolean({ description: `True when there were more than ${MAX_DROP_OFF_MEMBERS} drop-offs (the first ones are kept)` }),
});
export const SegmentTrendsQuerySchema = Type.Object(
  {
    from: Type.String({ format: 'date-time', description: 'Start of the range (inclusive)' }),
    to: Type.String({ format: 'date-time', description: 'End of the range (exclusive)' }),
    key: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'Only this segment' })),
  },
  { additionalProperties: false },
);

export const SegmentTrendsSchema = Type.Object({
  timeZone: Type.String({ description: "The workspace's time zone, in which days are counted" }),
  items: Type.Array(
    Type.Object({
      key: Type.String(),
      members: Type.Integer({ description: 'Members now' }),
      changedSince: Type.Integer({ description: 'Entries minus exits from the end of the range until now, to walk the size back' }),
      days: Type.Array(Type.Object({ day: Type.String({ description: 'YYYY-MM-DD' }), entered: Type.Integer(), exited: Type.Integer() }), {
        description: 'Days with entries or exits in the range, oldest first',
      }),
    }),
  ),
});
export type SegmentTrends = Static<typeof SegmentTrendsSchema>;
