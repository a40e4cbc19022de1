import { Type, type Static } from '@sinclair/typebox';

const Key = (what: string) =>
  Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_.-]+$', description: `${what}: letters, digits, _ . - (up to 64)` });
const Instant = Type.String({ format: 'date-time' });

export const POLICIES = ['rules', 'ab', 'bandit'] as const;
export type Policy = (typeof POLICIES)[number];
export const GOALS = ['click', 'conversion'] as const;
export type Goal = (typeof GOALS)[number];
export const ALGORITHMS = ['item_knn', 'user_knn', 'popular', 'content'] as const;
export type Algorithm = (typeof ALGORITHMS)[number];

export const RecommendationSpecSchema = Type.Object(
  {
    algorithm: Type.Optional(Type.Union(ALGORITHMS.map((a) => Type.Literal(a)), {
      default: 'item_knn',
      description:
        'item_knn: items co-occurring with the profile\'s history; user_knn: what similar profiles had; popular: popular with time decay; content: items like the history by attributes. Every algorithm falls back to content-based, then popular, when the profile has too little history',
    })),
    count: Type.Optional(Type.Integer({ minimum: 1, maximum: 50, default: 10 })),
    inStock: Type.Optional(Type.Boolean({ default: true, description: 'Only items in stock' })),
    excludeBought: Type.Optional(Type.Boolean({ default: true, description: 'Leave out items the profile already bought' })),
    category: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'Only items of this category' })),
  },
  { additionalProperties: false },
);
export type RecommendationSpec = Static<typeof RecommendationSpecSchema>;

export const ContentInputSchema = Type.Object(
  {
    key: Key('The content\'s key within its placement'),
    name: Type.Optional(Type.String({ maxLength: 200 })),
    payload: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { description: 'What the app renders (title, image, link …), returned as is' })),
    eligibility: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 20_000,
        description:
          'Who may see it, in the segment language over the profile\'s segment memberships, traits, identifiers and consents (e.g. `in_segment("vip") and trait.city = "上海"`). Behaviour (event(…)) is refused here: make it a segment and use in_segment',
      }),
    ),
    priority: Type.Optional(Type.Integer({ minimum: -1000, maximum: 1000, default: 0, description: 'rules policy: the highest eligible priority wins' })),
    weight: Type.Optional(Type.Number({ minimum: 0, maximum: 1_000_000, default: 1, description: 'ab policy: share of traffic relative to the other eligible contents' })),
    startsAt: Type.Optional(Instant),
    endsAt: Type.Optional(Instant),
    cap: Type.Optional(
      Type.Object(
        {
          impressions: Type.Integer({ minimum: 1, maximum: 10_000 }),
          withinHours: Type.Number({ exclusiveMinimum: 0, maximum: 24 * 366 }),
        },
        { additionalProperties: false, description: 'At most this many reported impressions per profile within the window' },
      ),
    ),
    recommendations: Type.Optional(RecommendationSpecSchema),
  },
  { additionalProperties: false },
);
export type ContentInput = Static<typeof ContentInputSchema>;

const placementFields = {
  name: Type.String({ minLength: 1, maxLength: 200 }),
  policy: Type.Union(POLICIES.map((p) => Type.Literal(p)), {
    description: 'rules: highest-priority eligible content; ab: fixed weights, sticky per profile; bandit: Thompson sampling on the goal',
  }),
  goal: Type.Optional(Type.Union(GOALS.map((g) => Type.Literal(g)), { default: 'click', description: 'What the bandit maximises per impression' })),
  minExploration: Type.Optional(Type.Number({ minimum: 0, maximum: 1, default: 0.1, description: 'bandit: share of traffic spread uniformly over eligible contents' })),
  holdoutPercent: Type.Optional(Type.Number({ minimum: 0, maximum: 50, default: 0, description: 'Profiles (stably hashed) who get no content, to measure the placement\'s lift' })),
  stickyHours: Type.Optional(Type.Number({ minimum: 0, maximum: 24 * 90, default: 24, description: 'bandit: how long a profile keeps the content it was assigned' })),
  status: Type.Optional(Type.Union([Type.Literal('active'), Type.Literal('paused')], { default: 'active' })),
  contents: Type.Array(ContentInputSchema, { minItems: 1, maxItems: 50 }),
};

export const PlacementInputSchema = Type.Object({ key: Key('The placement key, e.g. app_home_banner'), ...placementFields }, { additionalProperties: false });
export type PlacementInput = Static<typeof PlacementInputSchema>;
export const PlacementUpdateSchema = Type.Partial(Type.Object(placementFields, { additionalProperties: false }), { additionalProperties: false });
export type PlacementUpdate = Static<typeof PlacementUpdateSchema>;

const ContentViewSchema = Type.Composite([
  Type.Omit(ContentInputSchema, ['eligibility']),
  Type.Object({ eligibility: Type.Union([Type.String(), Type.Null()], { description: 'Canonical text of the eligibility rule' }) }),
]);
export const ArmStatsViewSchema = Type.Object({
  content: Type.String(),
  impressions: Type.Integer(),
  clicks: Type.Integer(),
  conversions: Type.Integer(),
});
export const PlacementSchema = Type.Object({
  id: Type.String({ format: 'uuid' }),
  key: Type.String(),
  ...placementFields,
  goal: Type.Union(GOALS.map((g) => Type.Literal(g))),
  minExploration: Type.Number(),
  holdoutPercent: Type.Number(),
  stickyHours: Type.Number(),
  status: Type.Union([Type.Literal('active'), Type.Literal('paused')]),
  contents: Type.Array(ContentViewSchema),
  version: Type.Integer(),
  createdAt: Instant,
  updatedAt: Instant,
  stats: Type.Array(ArmStatsViewSchema, { description: 'Reported results per content (holdout excluded)' }),
});
export type PlacementView = Static<typeof PlacementSchema>;
export const PlacementListSchema = Type.Object({ items: Type.Array(PlacementSchema) });
export const PlacementKeyParams = Type.Object({ key: Type.String({ minLength: 1, maxLength: 64 }) });

export const DecideQuerySchema = Type.Object(
  {
    placement: Type.String({ minLength: 1, maxLength: 64 }),
    profile: Type.Optional(Type.String({ minLength: 1, maxLength: 300, description: 'A profile id or <type>:<value>, e.g. email:li@example.com' })),
    anonymousId: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    userId: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
  },
  { additionalProperties: false },
);
export type DecideQuery = Static<typeof DecideQuerySchema>;

export const RecommendedItemSchema = Type.Object({
  itemId: Type.String(),
  name: Type.Union([Type.String(), Type.Null()]),
  category: Type.Union([Type.String(), Type.Null()]),
  attributes: Type.Record(Type.String(), Type.Unknown()),
  score: Type.Number(),
});
export const DecisionSchema = Type.Object({
  decisionId: Type.String({ format: 'uuid', description: 'Report impressions, clicks and conversions with this id' }),
  placement: Type.String(),
  content: Type.Union([
    Type.Object({
      key: Type.String(),
      name: Type.Union([Type.String(), Type.Null()]),
      payload: Type.Record(Type.String(), Type.Unknown()),
      items: Type.Optional(Type.Array(RecommendedItemSchema, { description: 'For a recommendations content: the items for this profile' })),
      recommendedBy: Type.Optional(Type.String({ description: 'The algorithm that produced the items (after fallbacks)' })),
    }),
    Type.Null(),
  ]),
  policy: Type.Union(POLICIES.map((p) => Type.Literal(p))),
  variant: Type.Union([Type.String(), Type.Null()]),
  holdout: Type.Boolean(),
  propensity: Type.Number({ description: 'Probability that this policy showed this content to this profile (1 for rules and the holdout)' }),
  reason: Type.String({ description: 'chosen, holdout, sticky, no_eligible_content, paused' }),
});
export type Decision = Static<typeof DecisionSchema>;

export const FEEDBACK_KINDS = ['impression', 'click', 'conversion'] as const;
export type FeedbackKind = (typeof FEEDBACK_KINDS)[number];
export const FeedbackBodySchema = Type.Object(
  {
    type: Type.Union(FEEDBACK_KINDS.map((k) => Type.Literal(k))),
    itemId: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'For recommendations: the item clicked or bought' })),
  },
  { additionalProperties: false },
);
export const FeedbackParams = Type.Object({ id: Type.String({ format: 'uuid' }) });
export const FeedbackResultSchema = Type.Object({
  decisionId: Type.String(),
  type: Type.String(),
  recorded: Type.Boolean({ description: 'false when this kind was already reported for the decision (reports are idempotent)' }),
});
