import { Type, type Static } from '@sinclair/typebox';

export const SOURCE_KINDS = ['web', 'app', 'mini_program', 'server', 'store', 'call_centre', 'crm_import', 'warehouse'] as const;
export const SOURCE_PARTIES = ['first', 'second', 'third'] as const;
export const SOURCE_MODES = ['realtime', 'batch'] as const;

const Status = Type.Union([Type.Literal('active'), Type.Literal('disabled')]);
const literalUnion = <T extends readonly string[]>(values: T) => Type.Union(values.map((value) => Type.Literal(value)));

export const WorkspaceSchema = Type.Object({
  id: Type.String({ format: 'uuid' }),
  slug: Type.String(),
  name: Type.String(),
  timeZone: Type.String(),
  status: Status,
  createdAt: Type.String({ format: 'date-time' }),
});
export type Workspace = Static<typeof WorkspaceSchema>;

export const CreateWorkspaceSchema = Type.Object(
  {
    slug: Type.String({ pattern: '^[a-z0-9][a-z0-9-]{0,62}$', description: 'Lower-case letters, digits and dashes' }),
    name: Type.String({ minLength: 1, maxLength: 200 }),
    timeZone: Type.Optional(Type.String({ minLength: 1, description: 'IANA time zone, e.g. Asia/Shanghai' })),
  },
  { additionalProperties: false },
);
export type CreateWorkspace = Static<typeof CreateWorkspaceSchema>;

export const SourceSchema = Type.Object({
  id: Type.String({ format: 'uuid' }),
  workspaceId: Type.String({ format: 'uuid' }),
  name: Type.String(),
  kind: literalUnion(SOURCE_KINDS),
  party: literalUnion(SOURCE_PARTIES),
  mode: literalUnion(SOURCE_MODES),
  status: Status,
  rateLimitPerSecond: Type.Union([Type.Integer(), Type.Null()]),
  createdAt: Type.String({ format: 'date-time' }),
});
export type Source = Static<typeof SourceSchema>;

// Names starting with '$' belong to Touchpoint's own sources (segments/transitions.ts).
const SourceName = Type.String({ minLength: 1, maxLength: 200, pattern: '^[^$]' });

export const CreateSourceSchema = Type.Object(
  {
    name: SourceName,
    kind: literalUnion(SOURCE_KINDS),
    party: Type.Optional(literalUnion(SOURCE_PARTIES)),
    mode: Type.Optional(literalUnion(SOURCE_MODES)),
    rateLimitPerSecond: Type.Optional(Type.Union([Type.Integer({ minimum: 1 }), Type.Null()])),
  },
  { additionalProperties: false },
);
export type CreateSource = Static<typeof CreateSourceSchema>;

export const UpdateSourceSchema = Type.Object(
  {
    name: Type.Optional(SourceName),
    status: Type.Optional(Status),
    rateLimitPerSecond: Type.Optional(Type.Union([Type.Integer({ minimum: 1 }), Type.Null()])),
  },
  { additionalProperties: false },
);
export type UpdateSource = Static<typeof UpdateSourceSchema>;

export const ApiKeySchema = Type.Object({
  id: Type.String({ format: 'uuid' }),
  workspaceId: Type.String({ format: 'uuid' }),
  sourceId: Type.Union([Type.String({ format: 'uuid' }), Type.Null()]),
  kind: Type.Union([Type.Literal('write'), Type.Literal('server')]),
  prefix: Type.String({ description: 'First characters of the key, to recognise it' }),
  status: Status,
  expiresAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  createdAt: Type.String({ format: 'date-time' }),
  lastUsedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  permissions: Type.Union([Type.Array(Type.String()), Type.Null()], {
    description: "Permission patterns ('segments.read', 'profiles.*', '*.read'); null keeps the kind's default rights",
  }),
});
export type ApiKey = Static<typeof ApiKeySchema>;

/** A key record plus its plaintext, returned only by create and rotate. */
export const IssuedKeySchema = Type.Intersect([ApiKeySchema, Type.Object({ key: Type.String() })]);
export type IssuedKey = Static<typeof IssuedKeySchema>;

export const UpdateWorkspaceSchema = Type.Object(
  {
    status: Type.Optional(Status),
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    timeZone: Type.Optional(Type.String({ minLength: 1, description: 'IANA time zone, e.g. Asia/Shanghai' })),
  },
  { additionalProperties: false, minProperties: 1 },
);
export type UpdateWorkspace = Static<typeof UpdateWorkspaceSchema>;

export const CreateKeySchema = Type.Object(
  {
    kind: Type.Union([Type.Literal('write'), Type.Literal('server')], {
      description: "'write': a public key that sends events for one source; 'server': a secret key that reads this workspace",
    }),
    sourceId: Type.Optional(Type.String({ minLength: 1, description: 'Source id or name; required for write keys, refused for server keys' })),
    permissions: Type.Optional(
      Type.Array(Type.String({ pattern: '^(\\*|([a-z][a-z0-9-]*|\\*)\\.([a-z][a-z0-9-]*|\\*))$' }), {
        maxItems: 100,
        description:
          "Limit the key to these permission patterns, e.g. ['profiles.read'] for a read-only profile key or ['*'] for a workspace admin key; omitted keeps the kind's default",
      }),
    ),
  },
  { additionalProperties: false },
);
export type CreateKey = Static<typeof CreateKeySchema>;

export const UpdateKeySchema = Type.Object({ status: Status }, { additionalProperties: false });
export type UpdateKey = Static<typeof UpdateKeySchema>;

/** Longest grace a rotated key may keep working: long enough for an app-store release cycle. */
export const MAX_ROTATION_GRACE_SECONDS = 30 * 24 * 3600;

export const RotateKeySchema = Type.Object(
  {
    graceSeconds: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: MAX_ROTATION_GRACE_SECONDS,
        description: 'Seconds the old key keeps working (0, the default, disables it at once)',
      }),
    ),
  },
  { additionalProperties: false },
);
export type RotateKey = Static<typeof RotateKeySchema>;

export const RotatedKeySchema = Type.Object({
  key: IssuedKeySchema,
  previous: ApiKeySchema,
});
