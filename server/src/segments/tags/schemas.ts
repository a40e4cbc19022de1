import { Type, type Static } from '@sinclair/typebox';
import { NextCursor, PageQuery } from '../../api/pagination.ts';
import { IssueSchema, SegmentKeySchema } from '../schemas.ts';

const Instant = Type.String({ format: 'date-time' });
const NullableInstant = Type.Union([Instant, Type.Null()]);
const NullableString = Type.Union([Type.String(), Type.Null()]);

export const TAG_LOCALES = ['en', 'zh-CN'] as const;
export type TagLocale = (typeof TAG_LOCALES)[number];
const LocaleSchema = Type.Union(
  TAG_LOCALES.map((locale) => Type.Literal(locale)),
  { description: 'Language of names and descriptions; default en' },
);

export const LibraryQuerySchema = Type.Object({ locale: Type.Optional(LocaleSchema) }, { additionalProperties: false });

const ParameterValue = Type.Union([Type.String(), Type.Number()]);

export const LibraryParameterSchema = Type.Object({
  name: Type.String(),
  type: Type.Union([Type.Literal('string'), Type.Literal('number'), Type.Literal('duration')], {
    description: 'duration: an amount and a unit as in the language, e.g. 30m, 12h, 90d, 2w',
  }),
  default: ParameterValue,
  description: Type.String(),
  min: Type.Optional(Type.Number()),
  integer: Type.Optional(Type.Boolean()),
  units: Type.Optional(Type.Array(Type.String(), { description: 'The duration units allowed' })),
});

export const LibraryTemplateSchema = Type.Object({
  template: Type.String({ description: 'What POST /v1/tags takes as `template`' }),
  name: Type.String({ description: 'May hold {parameter} placeholders, filled in when the tag is switched on' }),
  description: Type.String(),
  parameters: Type.Array(LibraryParameterSchema),
  exampleText: Type.String({ description: 'The segment text with every parameter at its default' }),
});
export type LibraryTemplate = Static<typeof LibraryTemplateSchema>;

export const LibrarySchema = Type.Object({ locale: LocaleSchema, items: Type.Array(LibraryTemplateSchema) });

export const EnableTagSchema = Type.Object(
  {
    template: Type.String({ minLength: 1, maxLength: 100, description: 'A library template, see GET /v1/tags/library' }),
    parameters: Type.Optional(
      Type.Record(Type.String(), Type.Unknown(), { description: 'Parameter name → value; the ones left out take their defaults' }),
    ),
    key: Type.Optional({ ...SegmentKeySchema, description: 'The tag\'s segment key; default: the template, plus its parameters when they are not the defaults' }),
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'Default: the library name with the parameters filled in' })),
    locale: Type.Optional(LocaleSchema),
  },
  { additionalProperties: false },
);
export type EnableTag = Static<typeof EnableTagSchema>;

export const TagSchema = Type.Object({
  key: Type.String(),
  name: Type.String(),
  description: NullableString,
  template: Type.Union([Type.String(), Type.Null()], { description: 'The library entry; null for a segment marked as a tag by hand' }),
  text: Type.Union([Type.String(), Type.Null()], { description: 'The canonical segment text' }),
  kind: Type.String(),
  status: Type.Union([Type.Literal('active'), Type.Literal('paused'), Type.Literal('archived')]),
  state: Type.Union([Type.Literal('computing'), Type.Literal('ready'), Type.Literal('failed')]),
  lastError: NullableString,
  memberCount: Type.Integer(),
  computedAt: NullableInstant,
  createdAt: Instant,
  updatedAt: Instant,
});
export type TagView = Static<typeof TagSchema>;

export const EnabledTagSchema = Type.Composite([
  TagSchema,
  Type.Object({
    parameters: Type.Record(Type.String(), ParameterValue, { description: 'Every parameter, defaults filled in' }),
    restored: Type.Boolean({ description: 'true: the tag had been switched off under this key and was switched back on' }),
    warnings: Type.Array(IssueSchema, { description: 'Events and traits the workspace has never seen, with the closest known name' }),
  }),
]);

export const TagListQuerySchema = Type.Object({ ...PageQuery }, { additionalProperties: false });
export const TagListSchema = Type.Object({ items: Type.Array(TagSchema), nextCursor: NextCursor });

export const TagKeyParams = Type.Object({ key: SegmentKeySchema });
