import { Type, type Static } from '@sinclair/typebox';

export const CHANNEL_KINDS = ['email', 'sms', 'wechat', 'wecom', 'push', 'webhook'] as const;
export const ChannelKindSchema = Type.Union(CHANNEL_KINDS.map((kind) => Type.Literal(kind)));

const Key = Type.String({ pattern: '^[a-z0-9][a-z0-9_-]{0,62}$', description: 'Lower-case letters, digits, - and _' });
const TemplateKey = Type.String({ pattern: '^[a-z0-9][a-z0-9_.-]{0,62}$' });
const Instant = Type.String({ format: 'date-time' });
const SettingValue = Type.Union([Type.String({ maxLength: 4096 }), Type.Number(), Type.Boolean()]);

export const AccountBodySchema = Type.Object(
  {
    key: Key,
    kind: ChannelKindSchema,
    provider: Type.String({ minLength: 1, maxLength: 40, description: 'smtp, twilio, aliyun, wechat, wecom, fcm, webhook' }),
    settings: Type.Optional(Type.Record(Type.String({ maxLength: 64 }), SettingValue, { description: 'Provider settings (not secret)' })),
    secrets: Type.Optional(
      Type.Record(Type.String({ maxLength: 64 }), Type.String({ maxLength: 8192 }), { description: 'Provider credentials; stored encrypted, never returned' }),
    ),
    isDefault: Type.Optional(Type.Boolean({ description: "The workspace's account for this kind when a send names none" })),
  },
  { additionalProperties: false },
);
export type AccountBody = Static<typeof AccountBodySchema>;

export const AccountSchema = Type.Object({
  key: Type.String(),
  kind: ChannelKindSchema,
  provider: Type.String(),
  settings: Type.Record(Type.String(), SettingValue),
  secretNames: Type.Array(Type.String(), { description: 'Which secrets are set (their values are never returned)' }),
  isDefault: Type.Boolean(),
  callbackUrl: Type.Optional(
    Type.String({ description: 'Where this provider reports receipts for the whole account: Aliyun SmsReport, the WeChat server URL, email bounces (DSNs)' }),
  ),
  createdAt: Instant,
  updatedAt: Instant,
});
export type AccountView = Static<typeof AccountSchema>;
export const AccountListSchema = Type.Object({ items: Type.Array(AccountSchema) });
export const AccountParams = Type.Object({ key: Key });

const Fields = Type.Record(Type.String({ maxLength: 80 }), Type.String({ maxLength: 100_000 }));
export const TemplateContentSchema = Type.Record(Type.String({ maxLength: 35 }), Fields, {
  description: 'Per locale (en, zh-CN, …): fields (subject, html, text, title, body, url, template_id, provider_template, data.<name>, param.<name>) → Liquid source',
});

export const TemplateBodySchema = Type.Object(
  {
    key: TemplateKey,
    channel: ChannelKindSchema,
    name: Type.String({ minLength: 1, maxLength: 200 }),
    defaultLocale: Type.String({ minLength: 2, maxLength: 35 }),
    content: TemplateContentSchema,
  },
  { additionalProperties: false },
);
export type TemplateBody = Static<typeof TemplateBodySchema>;

export const TemplateVersionBodySchema = Type.Object(
  { defaultLocale: Type.String({ minLength: 2, maxLength: 35 }), content: TemplateContentSchema },
  { additionalProperties: false },
);
export type TemplateVersionBody = Static<typeof TemplateVersionBodySchema>;

export const TemplateSchema = Type.Object({
  key: Type.String(),
  channel: ChannelKindSchema,
  name: Type.String(),
  version: Type.Integer(),
  latestVersion: Type.Integer(),
  defaultLocale: Type.String(),
  content: TemplateContentSchema,
  createdAt: Instant,
});
export type TemplateView = Static<typeof TemplateSchema>;
export const TemplateListSchema = Type.Object({
  items: Type.Array(Type.Object({ key: Type.String(), channel: ChannelKindSchema, name: Type.String(), latestVersion: Type.Integer(), updatedAt: Instant })),
});
export const TemplateParams = Type.Object({ key: TemplateKey });
export const TemplateVersionQuery = Type.Object({ version: Type.Optional(Type.Integer({ minimum: 1 })) });

export const TemplateCheckBodySchema = Type.Object(
  {
    version: Type.Optional(Type.Integer({ minimum: 1 })),
    eventProperties: Type.Optional(Type.Array(Type.String({ maxLength: 200 }), { maxItems: 500 })),
    journeyVariables: Type.Optional(Type.Array(Type.String({ maxLength: 200 }), { maxItems: 500 })),
  },
  { additionalProperties: false },
);
export const TemplateProblemsSchema = Type.Object({ problems: Type.Array(Type.Object({ path: Type.String(), message: Type.String() })) });

export const PreviewBodySchema = Type.Object(
  {
    profileId: Type.String({ format: 'uuid' }),
    version: Type.Optional(Type.Integer({ minimum: 1 })),
    locale: Type.Optional(Type.String({ maxLength: 35 })),
    event: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
    journey: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  },
  { additionalProperties: false },
);
export type PreviewBody = Static<typeof PreviewBodySchema>;
export const PreviewSchema = Type.Object({ locale: Type.String(), version: Type.Integer(), fields: Type.Record(Type.String(), Type.String()) });

const Window = Type.Object(
  {
    channel: Type.Optional(ChannelKindSchema),
    maxMessages: Type.Integer({ minimum: 0, maximum: 10_000 }),
    windowSeconds: Type.Integer({ minimum: 60, maximum: 366 * 86_400 }),
  },
  { additionalProperties: false },
);
const ClockTime = Type.String({ pattern: '^([01][0-9]|2[0-3]):[0-5][0-9]$' });
export const PolicySchema = Type.Object(
  {
    frequencyCaps: Type.Array(Window, { maxItems: 20, description: 'Marketing messages per profile (per channel when given) within a window' }),
    quietHours: Type.Union([Type.Object({ start: ClockTime, end: ClockTime }, { additionalProperties: false }), Type.Null()], {
      description: "Marketing messages due in this window (the profile's time zone, else the workspace's) wait until it ends",
    }),
    requireOptIn: Type.Array(ChannelKindSchema, { uniqueItems: true, description: 'Channels whose marketing sends need a granted consent' }),
  },
  { additionalProperties: false },
);
export type Policy = Static<typeof PolicySchema>;
export type FrequencyCap = Static<typeof Window>;

export const SuppressionBodySchema = Type.Object(
  { channel: ChannelKindSchema, address: Type.String({ minLength: 1, maxLength: 320 }), reason: Type.Optional(Type.String({ maxLength: 200 })) },
  { additionalProperties: false },
);

export const SubscriptionGroupBodySchema = Type.Object(
  {
    key: TemplateKey,
    name: Type.String({ minLength: 1, maxLength: 200 }),
    channel: Type.Optional(ChannelKindSchema),
    mode: Type.Optional(Type.Union([Type.Literal('opt_in'), Type.Literal('opt_out')])),
  },
  { additionalProperties: false },
);

const Origin = Type.Object({ journeyId: Type.String(), journeyVersion: Type.Integer(), instanceId: Type.String(), nodeId: Type.String() });
export const MessageSummarySchema = Type.Object({
  messageId: Type.String(),
  channel: ChannelKindSchema,
  templateKey: Type.String(),
  status: Type.String(),
  reason: Type.Optional(Type.String()),
  origin: Type.Optional(Origin),
  createdAt: Instant,
  updatedAt: Instant,
});
export const MessageListSchema = Type.Object({ items: Type.Array(MessageSummarySchema) });
export const MessageListQuery = Type.Object({
  profileId: Type.Optional(Type.String({ format: 'uuid' })),
  journeyId: Type.Optional(Type.String({ maxLength: 200 })),
  instanceId: Type.Optional(Type.String({ maxLength: 200 })),
});
export const MessageDetailSchema = Type.Intersect([
  MessageSummarySchema,
  Type.Object({
    profileId: Type.String(),
    purpose: Type.String(),
    accountKey: Type.Union([Type.String(), Type.Null()]),
    templateVersion: Type.Union([Type.Integer(), Type.Null()]),
    address: Type.Union([Type.String(), Type.Null()]),
    dueAt: Instant,
    attempts: Type.Integer(),
    provider: Type.Union([Type.String(), Type.Null()]),
    providerMessageId: Type.Union([Type.String(), Type.Null()]),
    history: Type.Array(Type.Object({ status: Type.String(), reason: Type.Union([Type.String(), Type.Null()]), detail: Type.Unknown(), at: Instant })),
  }),
]);
export const MessageParams = Type.Object({ id: Type.String({ format: 'uuid' }) });
export const DeadLetterQuery = Type.Object({ limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 100 })) });

export const SendBodySchema = Type.Object(
  {
    profileId: Type.String({ format: 'uuid' }),
    channel: ChannelKindSchema,
    channelConfigKey: Type.Optional(Type.String({ maxLength: 63 })),
    templateKey: TemplateKey,
    templateVersion: Type.Optional(Type.Integer({ minimum: 1 })),
    idempotencyKey: Type.String({ minLength: 1, maxLength: 300 }),
    purpose: Type.Union([Type.Literal('marketing'), Type.Literal('transactional')]),
    subscriptionGroup: Type.Optional(Type.String({ maxLength: 63 })),
    variables: Type.Optional(
      Type.Object({ event: Type.Optional(Type.Record(Type.String(), Type.Unknown())), journey: Type.Optional(Type.Record(Type.String(), Type.Unknown())) }, { additionalProperties: false }),
    ),
  },
  { additionalProperties: false },
);
export const SendResultSchema = Type.Object({ messageId: Type.String(), status: Type.String(), reason: Type.Optional(Type.String()) });
export const SuppressionListSchema = Type.Object({
  items: Type.Array(Type.Object({ channel: ChannelKindSchema, address: Type.String(), reason: Type.String(), createdAt: Instant })),
});
export const SuppressionQuery = Type.Object({ channel: Type.Optional(ChannelKindSchema) });
export const SuppressionDeleteQuery = Type.Object({ channel: ChannelKindSchema, address: Type.String({ minLength: 1, maxLength: 320 }) });
export const SubscriptionGroupSchema = Type.Object({
  key: Type.String(),
  name: Type.String(),
  channel: Type.Union([ChannelKindSchema, Type.Null()]),
  mode: Type.Union([Type.Literal('opt_in'), Type.Literal('opt_out')]),
});
export const SubscriptionGroupListSchema = Type.Object({ items: Type.Array(SubscriptionGroupSchema) });

export const BlockParams = Type.Object({ profile: Type.String({ minLength: 1, maxLength: 400, description: 'A profile id or `<type>:<value>`' }) });
export const BlockBodySchema = Type.Object(
  { reason: Type.Optional(Type.String({ minLength: 1, maxLength: 500, description: 'Why, for the next operator (e.g. "fraud", "asked by phone")' })) },
  { additionalProperties: false },
);
export const ProfileBlockSchema = Type.Object({
  profileId: Type.String({ format: 'uuid' }),
  reason: Type.Union([Type.String(), Type.Null()]),
  blockedBy: Type.String({ description: 'The key or user that set the block (the audit log has the request)' }),
  blockedAt: Type.String({ format: 'date-time' }),
});
export const BlockResultSchema = Type.Object({
  block: ProfileBlockSchema,
  cancelledMessages: Type.Integer({ description: "The profile's queued or held messages cancelled (reason `blocked`)" }),
});
export const BlockListSchema = Type.Object({ items: Type.Array(ProfileBlockSchema) });
