import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { NextCursor, PageQuery } from '../api/pagination.ts';
import { IdentitySettingsSchema, NORMALIZERS } from '../identity/identifier-types.ts';
import { TraitStrategiesSchema } from '../identity/traits.ts';
import { StoredEventSchema } from '../ingest/recent-events.ts';
import { EVENT_TYPES } from '../ingest/schemas.ts';
import { SOURCE_KINDS } from '../workspaces/schemas.ts';

const Instant = Type.String({ format: 'date-time' });
const NullableInstant = Type.Union([Instant, Type.Null()]);
const NullableString = Type.Union([Type.String(), Type.Null()]);

export const IdentifierSchema = Type.Object({ type: Type.String(), value: Type.String() });
export type IdentifierRef = Static<typeof IdentifierSchema>;

export const ProfileRefParams = Type.Object({
  profile: Type.String({
    minLength: 1,
    description: 'A profile id (an absorbed id resolves to the surviving profile) or `<type>:<value>`, e.g. `phone:+86 138 0013 8000`',
  }),
});

const LinkSourceSchema = Type.Union([
  Type.Object({ id: Type.String({ format: 'uuid' }), name: Type.String(), kind: Type.String() }),
  Type.Null(),
]);
const LinkedBySchema = Type.Object({
  messageId: NullableString,
  seq: Type.Union([Type.Integer(), Type.Null()]),
  via: Type.String({ description: 'event, alias, import, match or manual' }),
});

/** A live identifier of a profile and how it got there. */
export const ProfileIdentifierSchema = Type.Object({
  type: Type.String(),
  value: Type.String(),
  source: LinkSourceSchema,
  firstSeen: Instant,
  lastSeen: Instant,
  linkedBy: LinkedBySchema,
  boundAt: Instant,
});
export type ProfileIdentifier = Static<typeof ProfileIdentifierSchema>;

const TraitSourceSchema = Type.Object({ kind: Type.String(), name: Type.String() });

export const TraitHistoryEntrySchema = Type.Object({
  previousValue: Type.Unknown({ description: 'null when the trait was first set' }),
  value: Type.Unknown(),
  source: TraitSourceSchema,
  messageId: Type.String(),
  observedAt: Instant,
  reason: Type.String({ description: 'event, merge or unmerge' }),
  recordedAt: Instant,
});

export const VerboseTraitSchema = Type.Object({
  value: Type.Unknown(),
  source: TraitSourceSchema,
  messageId: Type.String({ description: 'The event that set the current value' }),
  observedAt: Instant,
  history: Type.Array(TraitHistoryEntrySchema, { description: 'Value changes, oldest first' }),
});
export type VerboseTrait = Static<typeof VerboseTraitSchema>;

export const ProfileTagSchema = Type.Object({
  key: Type.String({ description: 'The tag segment\'s key' }),
  name: Type.String(),
  enteredAt: Instant,
});
export type ProfileTag = Static<typeof ProfileTagSchema>;

const PlainTraits = Type.Record(Type.String(), Type.Unknown(), { description: 'Trait key → current value' });
const VerboseTraits = Type.Record(Type.String(), VerboseTraitSchema, { description: 'With ?verbose=true: value, provenance and history' });

export const ProfileQuerySchema = Type.Object(
  {
    verbose: Type.Optional(Type.Boolean({ default: false, description: 'Traits with provenance and change history' })),
    events: Type.Optional(Type.Integer({ minimum: 0, maximum: 500, default: 50, description: 'How many latest events to include' })),
  },
  { additionalProperties: false },
);

export const ProfileJourneySchema = Type.Object({
  journeyKey: Type.String(),
  journeyName: Type.String(),
  instanceId: Type.String({ format: 'uuid' }),
  version: Type.Integer(),
  nodeId: Type.String({ description: 'The step the instance is at' }),
  nodeKind: Type.Union([Type.String(), Type.Null()], { description: 'entry, delay, wait, split, random, send or end' }),
  phase: Type.String({ description: 'arrive: about to run the node; wait: waiting in it until dueAt' }),
  stepCount: Type.Integer(),
  holdout: Type.Boolean(),
  enteredAt: Instant,
  dueAt: NullableInstant,
});
export const ProfileConsentSchema = Type.Object({ granted: Type.Boolean(), observedAt: Instant });
export const ProfileComputedSchema = Type.Object({ value: Type.Unknown(), source: Type.String(), observedAt: Instant });

export const ProfileSchema = Type.Object({
  id: Type.String({ format: 'uuid' }),
  mergedFrom: Type.Union([Type.String({ format: 'uuid' }), Type.Null()], {
    description: 'The absorbed profile id that was asked for, when it resolved to this (surviving) profile',
  }),
  matchedBy: Type.Union([IdentifierSchema, Type.Null()], { description: 'The normalised identifier that was asked for' }),
  createdAt: Instant,
  firstSeen: NullableInstant,
  lastSeen: NullableInstant,
  // Verbose first: a plain value never has the verbose shape, so serialization picks the right branch.
  traits: Type.Union([VerboseTraits, PlainTraits]),
  identifiers: Type.Array(ProfileIdentifierSchema),
  events: Type.Array(StoredEventSchema, { description: 'Latest events, newest first' }),
  eventsNextCursor: Type.Union([Type.String(), Type.Null()], { description: 'cursor for /v1/profiles/{id}/events to read further back' }),
  segments: Type.Array(Type.Unknown(), { description: 'Segment memberships (filled by segmentation)' }),
  tags: Type.Array(ProfileTagSchema, { description: 'Behaviour tags the profile carries now (tag segments it is a member of), by key' }),
  journeys: Type.Array(ProfileJourneySchema, { description: 'Journeys the profile is walking now, with the step it is at' }),
  consent: Type.Record(Type.String(), ProfileConsentSchema, { description: 'Consent by category (context.consent.categoryPreferences), latest observation' }),
  computed: Type.Record(Type.String(), ProfileComputedSchema, {
    description: 'Traits written by computed traits and models (source name model:<key>): the values also in traits, with their owner',
  }),
});
export type Profile = Static<typeof ProfileSchema>;

const oneOrMany = <T extends TSchema>(item: T, description: string) =>
  Type.Optional(Type.Array(item, { minItems: 1, maxItems: 50, description: `${description}; repeat the parameter for several` }));

export const TimelineQuerySchema = Type.Object(
  {
    event: oneOrMany(Type.String({ minLength: 1 }), 'Track event name or page/screen name'),
    type: oneOrMany(Type.Union(EVENT_TYPES.map((t) => Type.Literal(t))), 'Event type'),
    sourceKind: oneOrMany(Type.Union(SOURCE_KINDS.map((k) => Type.Literal(k))), 'Kind of the source that sent the event'),
    since: Type.Optional(Type.String({ format: 'date-time', description: 'Only events at or after this time' })),
    until: Type.Optional(Type.String({ format: 'date-time', description: 'Only events before this time' })),
    ...PageQuery,
  },
  { additionalProperties: false },
);
export type TimelineQuery = Static<typeof TimelineQuerySchema>;

export const TimelineSchema = Type.Object({
  profileId: Type.String({ format: 'uuid' }),
  items: Type.Array(StoredEventSchema),
  nextCursor: NextCursor,
});

export const GraphIdentifierSchema = Type.Composite([
  ProfileIdentifierSchema,
  Type.Object({
    profileId: Type.String({ format: 'uuid', description: 'The profile the link belongs to (this one or one it absorbed)' }),
    live: Type.Boolean(),
    unboundAt: NullableInstant,
    unboundReason: NullableString,
  }),
]);

export const GraphMergeSchema = Type.Object({
  id: Type.String({ format: 'uuid' }),
  kind: Type.String({ description: 'event, alias, match, manual; unmerge for a split' }),
  survivorId: Type.String({ format: 'uuid' }),
  absorbedIds: Type.Array(Type.String({ format: 'uuid' })),
  cause: Type.Object({
    messageId: NullableString,
    seq: Type.Union([Type.Integer(), Type.Null()]),
    identifier: Type.Union([IdentifierSchema, Type.Null()], { description: 'The identifier the profiles shared' }),
  }),
  score: Type.Union([Type.Number(), Type.Null()], { description: 'Match probability for probabilistic merges' }),
  details: Type.Record(Type.String(), Type.Unknown(), { description: 'For merges: the identifiers each absorbed profile had' }),
  createdAt: Instant,
  undoneAt: NullableInstant,
  undoneBy: Type.Union([Type.String({ format: 'uuid' }), Type.Null()]),
});

export const GraphRefusalSchema = Type.Object({
  profileId: Type.Union([Type.String({ format: 'uuid' }), Type.Null()]),
  messageId: NullableString,
  seq: Type.Union([Type.Integer(), Type.Null()]),
  identifier: IdentifierSchema,
  reason: Type.String(),
  message: Type.String(),
  createdAt: Instant,
});

export const IdentityGraphSchema = Type.Object({
  profileId: Type.String({ format: 'uuid' }),
  mergedFrom: Type.Union([Type.String({ format: 'uuid' }), Type.Null()]),
  identifiers: Type.Array(GraphIdentifierSchema, { description: 'Live and ended links, oldest first' }),
  merges: Type.Array(GraphMergeSchema, { description: 'Merges that built this profile and splits made from it, oldest first' }),
  splitFrom: Type.Array(GraphMergeSchema, { description: 'Unmerges that created this profile out of another' }),
  absorbedProfiles: Type.Array(Type.Object({ id: Type.String({ format: 'uuid' }), mergedAt: NullableInstant })),
  refusals: Type.Array(GraphRefusalSchema, { description: 'Merges refused for events of this profile, latest 100' }),
});
export type IdentityGraph = Static<typeof IdentityGraphSchema>;

export const SearchQuerySchema = Type.Object(
  {
    identifier: Type.Optional(Type.String({ minLength: 1, maxLength: 256, description: 'Prefix of a live identifier value' })),
    type: Type.Optional(Type.String({ minLength: 1, description: 'Only identifiers of this type (its normaliser is applied to the prefix)' })),
    ...PageQuery,
  },
  {
    // `trait.<key>=<value>` parameters: checked by the route (a schema cannot name a key pattern here).
    additionalProperties: Type.Union([Type.String(), Type.Array(Type.String())]),
    description: 'Also `trait.<key>=<value>`: equality on a current trait (repeat a key for any of several values)',
  },
);
export type SearchQuery = Static<typeof SearchQuerySchema>;

export const ProfileSummarySchema = Type.Object({
  id: Type.String({ format: 'uuid' }),
  createdAt: Instant,
  firstSeen: NullableInstant,
  lastSeen: NullableInstant,
  traits: PlainTraits,
  identifiers: Type.Array(IdentifierSchema),
});
export const SearchResultSchema = Type.Object({ items: Type.Array(ProfileSummarySchema), nextCursor: NextCursor });

export const UnmergeBodySchema = Type.Object(
  { identifier: Type.Object({ type: Type.String({ minLength: 1 }), value: Type.String({ minLength: 1 }) }, { additionalProperties: false }) },
  { additionalProperties: false },
);
export const UnbindBodySchema = Type.Object(
  {
    identifier: Type.Object({ type: Type.String({ minLength: 1 }), value: Type.String({ minLength: 1 }) }, { additionalProperties: false }),
    reason: Type.Optional(Type.String({ minLength: 1, maxLength: 500 })),
  },
  { additionalProperties: false },
);
export const UnmergeResultSchema = Type.Object({
  profileId: Type.String({ format: 'uuid' }),
  newProfileId: Type.String({ format: 'uuid' }),
  movedIdentifiers: Type.Array(IdentifierSchema),
  movedEvents: Type.Integer(),
  mergeLogId: Type.String({ format: 'uuid' }),
});
export const UnbindResultSchema = Type.Object({ profileId: Type.String({ format: 'uuid' }), identifier: IdentifierSchema, unboundAt: Instant });

// ---- admin: identity settings and stats -----------------------------------------------------------

export const IdentitySettingsBodySchema = Type.Object(
  { identity: Type.Optional(IdentitySettingsSchema), traitStrategies: Type.Optional(TraitStrategiesSchema) },
  { additionalProperties: false, description: 'Each part given replaces the stored one; a part left out stays as it is' },
);

export const EffectiveTypeSchema = Type.Object({
  name: Type.String(),
  builtIn: Type.Boolean(),
  priority: Type.Integer(),
  limit: Type.Integer(),
  normalizer: Type.Union(NORMALIZERS.map((n) => Type.Literal(n))),
  blockedValues: Type.Array(Type.String()),
  traitKeys: Type.Array(Type.String()),
});

export const IdentitySettingsViewSchema = Type.Object({
  identity: IdentitySettingsSchema,
  traitStrategies: TraitStrategiesSchema,
  effective: Type.Object(
    { defaultPhoneRegion: Type.String(), types: Type.Array(EffectiveTypeSchema, { description: 'Strongest first' }) },
    { description: 'The settings merged with the defaults, as resolution applies them' },
  ),
});
export type IdentitySettingsView = Static<typeof IdentitySettingsViewSchema>;

export const IdentityStatsSchema = Type.Object({
  profiles: Type.Object({ live: Type.Integer(), absorbed: Type.Integer() }),
  identifiers: Type.Array(Type.Object({ type: Type.String(), live: Type.Integer(), ended: Type.Integer() })),
  merges: Type.Object({ total: Type.Integer(), undone: Type.Integer(), byKind: Type.Record(Type.String(), Type.Integer()) }),
  refusals: Type.Array(Type.Object({ reason: Type.String(), count: Type.Integer() })),
  ignored: Type.Array(Type.Object({ type: Type.String(), reason: Type.String(), count: Type.Integer(), lastSeen: Instant })),
  queue: Type.Object({ pending: Type.Integer({ description: 'Stored events waiting for resolution' }) }),
});
export type IdentityStats = Static<typeof IdentityStatsSchema>;
