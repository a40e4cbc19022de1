import { Type, type Static } from '@sinclair/typebox';

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
  topSegments: Type.Array(
    Type.Object({ key: Type.String(), name: Type.String(), kind: Type.String(), members: Type.Integer(), isTag: Type.Boolean() }),
  ),
});
export type Overview = Static<typeof OverviewSchema>;
