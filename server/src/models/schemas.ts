import { Type, type Static } from '@sinclair/typebox';

/*
 * The models API's schemas: the one source of truth for a model's configuration (stored with
 * defaults applied in models.config) and for what runs report.
 */

const EventName = Type.String({ minLength: 1, maxLength: 200, description: 'A track event name' });
const PropertyPath = Type.String({ minLength: 1, maxLength: 300, pattern: '^[^.]+(\\.[^.]+)*$', description: 'Path into the event properties' });
const Days = (description: string, maximum = 3650) => Type.Integer({ minimum: 1, maximum, description });

const purchase = {
  purchaseEvent: Type.Optional({ ...EventName, default: 'Order Completed', description: 'The event that records a purchase' }),
  revenueProperty: Type.Optional({ ...PropertyPath, default: 'revenue', description: "The purchase's value (a number or a decimal string)" }),
};

export const RfmConfigSchema = Type.Object({ kind: Type.Literal('rfm'), ...purchase }, { additionalProperties: false });

export const LifecycleConfigSchema = Type.Object(
  {
    kind: Type.Literal('lifecycle'),
    activityEvent: Type.Optional({ ...EventName, default: 'Order Completed', description: 'The event that counts as activity' }),
    newDays: Type.Optional({ ...Days('First activity at most this old: new'), default: 30 }),
    atRiskDays: Type.Optional({ ...Days('No activity for longer: at risk'), default: 60 }),
    churnedDays: Type.Optional({ ...Days('No activity for longer: churned (more than atRiskDays)'), default: 180 }),
    reactivatedDays: Type.Optional({ ...Days('A return after a churn-length gap stays reactivated this long'), default: 30 }),
  },
  { additionalProperties: false },
);

export const ClvConfigSchema = Type.Object(
  {
    kind: Type.Literal('clv'),
    ...purchase,
    horizonDays: Type.Optional({ ...Days('CLV over this many days'), default: 365 }),
    annualDiscountRate: Type.Optional(Type.Number({ minimum: 0, maximum: 1, default: 0.1, description: 'Yearly discount rate, e.g. 0.1' })),
    holdoutDays: Type.Optional(Type.Integer({ minimum: 0, maximum: 730, default: 84, description: 'Days held out to check the fit (0: none)' })),
  },
  { additionalProperties: false },
);

const propensity = {
  ...purchase,
  horizonDays: Type.Optional({ ...Days('Predict what happens in the next this many days', 365), default: 30 }),
  lookbackDays: Type.Optional({ ...Days('Profiles active in this many days before the cut are scored', 3650), default: 90 }),
  l2: Type.Optional(Type.Number({ minimum: 0, maximum: 10_000, default: 1, description: 'L2 penalty on standardised coefficients' })),
};

export const ChurnConfigSchema = Type.Object({ kind: Type.Literal('churn'), ...propensity }, { additionalProperties: false });
export const PurchaseConfigSchema = Type.Object({ kind: Type.Literal('purchase'), ...propensity }, { additionalProperties: false });

export const LookalikeConfigSchema = Type.Object(
  {
    kind: Type.Literal('lookalike'),
    ...purchase,
    seedSegment: Type.String({ minLength: 1, maxLength: 64, description: 'Key of the segment whose members are the seed' }),
    size: Type.Union(
      [
        Type.Object({ count: Type.Integer({ minimum: 1, maximum: 10_000_000 }) }, { additionalProperties: false }),
        Type.Object({ percent: Type.Number({ exclusiveMinimum: 0, maximum: 100 }) }, { additionalProperties: false }),
      ],
      { description: 'The audience: the top N profiles, or the top percent of the non-seed profiles' },
    ),
    segmentKey: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'Key of the audience segment (default: the model key)' })),
    lookbackDays: Type.Optional({ ...Days('Behaviour features over this many days', 3650), default: 90 }),
    traits: Type.Optional(
      Type.Array(Type.String({ minLength: 1, maxLength: 128 }), {
        maxItems: 20,
        uniqueItems: true,
        default: [],
        description: 'Profile traits used as features beside behaviour: numeric traits as values, others as their 10 most frequent values',
      }),
    ),
    l2: Type.Optional(Type.Number({ minimum: 0, maximum: 10_000, default: 1 })),
  },
  { additionalProperties: false },
);

export const ModelConfigSchema = Type.Union([RfmConfigSchema, LifecycleConfigSchema, ClvConfigSchema, ChurnConfigSchema, PurchaseConfigSchema, LookalikeConfigSchema]);
export type ModelConfig = Static<typeof ModelConfigSchema>;
export type ModelKind = ModelConfig['kind'];
export type RfmConfig = Required<Static<typeof RfmConfigSchema>>;
export type LifecycleConfig = Required<Static<typeof LifecycleConfigSchema>>;
export type ClvConfig = Required<Static<typeof ClvConfigSchema>>;
export type PropensityConfig = Required<Static<typeof ChurnConfigSchema>> | Required<Static<typeof PurchaseConfigSchema>>;
export type LookalikeConfig = Required<Static<typeof LookalikeConfigSchema>>;

export const ModelKeySchema = Type.String({ pattern: '^[a-z][a-z0-9_]{0,47}$', description: 'Lower-case letters, digits, _; starts the keys of the traits the model writes' });

export const CreateModelSchema = Type.Object(
  {
    key: ModelKeySchema,
    name: Type.String({ minLength: 1, maxLength: 200 }),
    description: Type.Optional(Type.String({ maxLength: 2000 })),
    config: ModelConfigSchema,
    scheduleHours: Type.Optional(Type.Integer({ minimum: 1, maximum: 8760, default: 24, description: 'Retrain every this many hours' })),
  },
  { additionalProperties: false },
);
export type CreateModel = Static<typeof CreateModelSchema>;

export const UpdateModelSchema = Type.Object(
  {
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    description: Type.Optional(Type.Union([Type.String({ maxLength: 2000 }), Type.Null()])),
    config: Type.Optional(ModelConfigSchema),
    scheduleHours: Type.Optional(Type.Integer({ minimum: 1, maximum: 8760 })),
    status: Type.Optional(Type.Union([Type.Literal('active'), Type.Literal('paused')])),
  },
  { additionalProperties: false },
);
export type UpdateModel = Static<typeof UpdateModelSchema>;

export const ModelRunSchema = Type.Object({
  id: Type.String({ format: 'uuid' }),
  modelKey: Type.String(),
  status: Type.Union([Type.Literal('queued'), Type.Literal('running'), Type.Literal('succeeded'), Type.Literal('failed')]),
  trigger: Type.Union([Type.Literal('schedule'), Type.Literal('api')]),
  config: Type.Unknown(),
  parameters: Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()]),
  metrics: Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()]),
  diagnostics: Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()]),
  profilesScored: Type.Union([Type.Integer(), Type.Null()]),
  profilesChanged: Type.Union([Type.Integer(), Type.Null()]),
  error: Type.Union([Type.String(), Type.Null()]),
  queuedAt: Type.String({ format: 'date-time' }),
  startedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  finishedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
});
export type ModelRunView = Static<typeof ModelRunSchema>;

export const ModelSchema = Type.Object({
  id: Type.String({ format: 'uuid' }),
  key: Type.String(),
  kind: Type.String(),
  name: Type.String(),
  description: Type.Union([Type.String(), Type.Null()]),
  config: Type.Unknown(),
  status: Type.String(),
  scheduleHours: Type.Integer(),
  traits: Type.Array(Type.String(), { description: 'The trait keys the model writes (segments read them as trait.<key>)' }),
  lastRun: Type.Union([ModelRunSchema, Type.Null()]),
  createdAt: Type.String({ format: 'date-time' }),
  updatedAt: Type.String({ format: 'date-time' }),
});
export type ModelView = Static<typeof ModelSchema>;

export const ModelParams = Type.Object({ key: ModelKeySchema });
export const RunParams = Type.Object({ key: ModelKeySchema, runId: Type.String({ format: 'uuid' }) });
export const ModelListSchema = Type.Object({ items: Type.Array(ModelSchema) });
export const RunListSchema = Type.Object({ items: Type.Array(ModelRunSchema) });
export const RunListQuerySchema = Type.Object({ limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 20 })) }, { additionalProperties: false });
