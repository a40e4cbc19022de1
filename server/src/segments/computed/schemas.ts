import { Kind, Type, type TSchema } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { Value } from '@sinclair/typebox/value';
import type { ValueError } from '@sinclair/typebox/errors';
import type { FastifySchemaCompiler } from 'fastify';
import '../../api/validation.ts';
import { ComputedTraitDefinitionSchema } from './definition.ts';

const Instant = Type.String({ format: 'date-time' });

export const ComputedTraitKeySchema = Type.String({
  minLength: 1,
  maxLength: 200,
  // A segment path's first part (no dot), printable in the text form (no quote, backslash or control character).
  pattern: '^[^."\\\\\\u0000-\\u001f\\u007f]+$',
  description: 'The trait key the values are stored under (profile traits, `trait.<key>` in segments); no dots, quotes or backslashes',
});

const Status = Type.Union([Type.Literal('active'), Type.Literal('paused'), Type.Literal('archived')]);

export const ComputedTraitSchema = Type.Object({
  id: Type.String({ format: 'uuid' }),
  key: Type.String(),
  name: Type.String(),
  description: Type.Union([Type.String(), Type.Null()]),
  definition: ComputedTraitDefinitionSchema,
  status: Status,
  version: Type.Integer({ description: 'Bumped by every change of definition' }),
  state: Type.Union([Type.Literal('computing'), Type.Literal('ready'), Type.Literal('failed')], {
    description: 'computing: a full computation of this version is queued or running; ready: every profile has its value; failed: see lastError',
  }),
  computedAt: Type.Union([Instant, Type.Null()]),
  lastError: Type.Union([Type.String(), Type.Null()]),
  createdAt: Instant,
  updatedAt: Instant,
});

export const ComputedTraitListSchema = Type.Object({ items: Type.Array(ComputedTraitSchema) });

export const ComputedTraitListQuerySchema = Type.Object(
  { status: Type.Optional(Status) },
  { additionalProperties: false, description: 'Archived traits are listed only when asked for by status' },
);

export const ComputedTraitParams = Type.Object({ key: ComputedTraitKeySchema });

export const CreateComputedTraitSchema = Type.Object(
  {
    key: ComputedTraitKeySchema,
    name: Type.String({ minLength: 1, maxLength: 200 }),
    description: Type.Optional(Type.Union([Type.String({ maxLength: 2000 }), Type.Null()])),
    definition: ComputedTraitDefinitionSchema,
  },
  { additionalProperties: false },
);

export const UpdateComputedTraitSchema = Type.Object(
  {
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    description: Type.Optional(Type.Union([Type.String({ maxLength: 2000 }), Type.Null()])),
    definition: Type.Optional(ComputedTraitDefinitionSchema),
    status: Type.Optional(
      Type.Union([Type.Literal('active'), Type.Literal('paused')], {
        description: 'paused: values stay as they are and stop following events; active again: recomputed. Archive with DELETE',
      }),
    ),
  },
  { additionalProperties: false, description: 'The key cannot change: its values live under it' },
);

export const ArchiveResultSchema = Type.Object({
  trait: ComputedTraitSchema,
  removedValues: Type.Integer({ description: "Profiles whose value was removed" }),
});

export const ComputeAcceptedSchema = Type.Object({ trait: ComputedTraitSchema, jobId: Type.String() });

export const PreviewBodySchema = Type.Object(
  {
    definition: ComputedTraitDefinitionSchema,
    profileIds: Type.Optional(
      Type.Array(Type.String({ format: 'uuid' }), { minItems: 1, maxItems: 100, description: 'Preview these profiles instead of a random sample' }),
    ),
    sampleSize: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 20 })),
  },
  { additionalProperties: false },
);

export const PreviewResultSchema = Type.Object({
  items: Type.Array(
    Type.Object({
      profileId: Type.String({ format: 'uuid' }),
      value: Type.Optional(Type.Unknown({ description: 'Absent when the trait would have no value' })),
      recheckAt: Type.Union([Instant, Type.Null()], { description: 'When the value may change with no new event' }),
    }),
  ),
  withValue: Type.Integer({ description: 'Sampled profiles that would have a value' }),
  durationMs: Type.Number(),
});

/**
 * strictValidatorCompiler (types as declared, nothing coerced in bodies) with errors that point
 * into unions: a definition is a union of kinds, and "expected union value" at `definition` names
 * neither the field at fault nor the reason. The variant whose discriminating literals (kind, op,
 * type, unit) match is followed down to its first error.
 */
export const preciseValidatorCompiler: FastifySchemaCompiler<TSchema> = ({ schema, httpPart }) => {
  const check = TypeCompiler.Compile(schema);
  return (value: unknown) => {
    const converted = httpPart === 'body' ? (value ?? {}) : Value.Convert(schema, value);
    if (check.Check(converted)) return { value: converted };
    const first = check.Errors(converted).First();
    const error = first ? explain(mostSpecific(first)) : { path: '', message: 'is invalid', keyword: 'type' };
    return { error: [{ keyword: error.keyword, instancePath: error.path, schemaPath: '', params: {}, message: error.message }] };
  };
};

const DISCRIMINATORS = new Set(['kind', 'op', 'type', 'unit']);

function mostSpecific(error: ValueError): ValueError {
  if (error.errors.length === 0) return error;
  let best: ValueError[] | undefined;
  for (const variant of error.errors) {
    const errors = [...variant];
    if (errors.length === 0) continue;
    const mismatched = errors.some((e) => {
      const leaf = e.path.slice(error.path.length).split('/').filter(Boolean);
      return leaf.length === 1 && DISCRIMINATORS.has(leaf[0]!) && isLiteralish(e.schema);
    });
    if (mismatched) continue;
    if (!best || errors.length < best.length) best = errors;
  }
  return best ? mostSpecific(best[0]!) : error;
}

function isLiteralish(schema: TSchema): boolean {
  if (schema[Kind] === 'Literal') return true;
  if (schema[Kind] === 'Union') return (schema.anyOf as TSchema[]).every((s) => s[Kind] === 'Literal');
  return false;
}

/** Where and why: a union none of whose variants' discriminators match is reported at the discriminator. */
function explain(error: ValueError): { path: string; message: string; keyword: string } {
  if (error.errors.length > 0) {
    const allowed = allowedDiscriminators(error.schema);
    if (allowed) {
      return {
        path: `${error.path}/${allowed.field}`,
        message: `must be one of ${allowed.values.map((v) => JSON.stringify(v)).join(', ')}`,
        keyword: 'enum',
      };
    }
    return { path: error.path, message: 'matches none of the allowed forms', keyword: 'anyOf' };
  }
  return { path: error.path, message: error.message, keyword: String(error.type) };
}

/** For a union of objects told apart by one literal field: that field and its values. */
function allowedDiscriminators(schema: TSchema): { field: string; values: unknown[] } | null {
  if (schema[Kind] !== 'Union') return null;
  for (const field of DISCRIMINATORS) {
    const values: unknown[] = [];
    for (const variant of schema.anyOf as TSchema[]) {
      const property = (variant.properties as Record<string, TSchema> | undefined)?.[field];
      if (!property) {
        values.length = 0;
        break;
      }
      if (property[Kind] === 'Literal') values.push(property.const);
      else if (property[Kind] === 'Union') values.push(...(property.anyOf as TSchema[]).map((s) => s.const));
    }
    if (values.length > 0) return { field, values };
  }
  return null;
}
