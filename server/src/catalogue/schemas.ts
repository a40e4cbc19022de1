import { Type, type Static } from '@sinclair/typebox';
import { EVENT_TYPES } from '../ingest/schemas.ts';

const SCOPES = ['properties', 'traits', 'context'] as const;
const literals = <T extends readonly string[]>(values: T) => Type.Union(values.map((value) => Type.Literal(value)));
const Instant = Type.String({ format: 'date-time' });

export const EventTypeSchema = literals(EVENT_TYPES);

// What one ingest request stored, summarised (catalogue/observe.ts), as it waits in
// `catalogue_queue.observations`. Checked with TypeCompiler, which knows no string formats unless
// registered: plain strings here, the drain checks the instants itself.
const Count = Type.Integer({ minimum: 0 });
export const QueuedObservationsSchema = Type.Array(
  Type.Object({
    type: EventTypeSchema,
    name: Type.String(),
    count: Count,
    firstSeen: Type.String(),
    lastSeen: Type.String(),
    properties: Type.Array(
      Type.Object({
        scope: literals(SCOPES),
        path: Type.String({ minLength: 1 }),
        typeCounts: Type.Object(
          {
            string: Type.Optional(Count),
            number: Type.Optional(Count),
            boolean: Type.Optional(Count),
            object: Type.Optional(Count),
            array: Type.Optional(Count),
            null: Type.Optional(Count),
          },
          { additionalProperties: false },
        ),
      }),
    ),
  }),
);
export type QueuedObservations = Static<typeof QueuedObservationsSchema>;

/** The observations of one queued request, with the workspace they belong to. */
export interface WorkspaceObservations {
  workspaceId: string;
  observations: QueuedObservations;
}

export const CatalogueEventSchema = Type.Object({
  type: EventTypeSchema,
  name: Type.String({ description: "track: the event name; page/screen: the page name ('' when none); others: ''" }),
  firstSeen: Instant,
  lastSeen: Instant,
  volume: Type.Integer({ description: 'Events stored with this type and name' }),
  propertyCount: Type.Integer({ description: 'Distinct property paths observed' }),
});
export type CatalogueEvent = Static<typeof CatalogueEventSchema>;

export const CataloguePropertySchema = Type.Object({
  scope: literals(SCOPES),
  path: Type.String({ description: "Dot path; items of arrays of objects appear as 'list[].field'" }),
  types: Type.Record(Type.String(), Type.Integer(), { description: 'How often each JSON type was seen, e.g. {"string": 12, "null": 1}' }),
  firstSeen: Instant,
  lastSeen: Instant,
  volume: Type.Integer({ description: 'Times the path was seen' }),
});
export type CatalogueProperty = Static<typeof CataloguePropertySchema>;

export const CatalogueEventDetailSchema = Type.Composite([
  CatalogueEventSchema,
  Type.Object({ properties: Type.Array(CataloguePropertySchema) }),
]);
export type CatalogueEventDetail = Static<typeof CatalogueEventDetailSchema>;

export const CatalogueListQuerySchema = Type.Object(
  { type: Type.Optional(EventTypeSchema) },
  { additionalProperties: false },
);

export const CatalogueListSchema = Type.Object({ items: Type.Array(CatalogueEventSchema) });
