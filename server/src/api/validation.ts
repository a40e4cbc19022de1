import { FormatRegistry, type TSchema } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { Value } from '@sinclair/typebox/value';
import type { FastifySchemaCompiler } from 'fastify';
// Registers the 'date-time' format (the same rule events are held to).
import '../ingest/normalize.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
if (!FormatRegistry.Has('uuid')) FormatRegistry.Set('uuid', (value) => UUID.test(value));

/**
 * Validates requests with TypeBox exactly as the schemas say. Fastify's default Ajv setup would
 * coerce body values (0 or "" become null, so `rateLimitPerSecond: 0` silently meant "no limit")
 * and strip unknown fields; here a body is taken as sent and any mismatch is a 400 naming the
 * field. Query strings and path parameters are text, so they are converted to the schema's types.
 * A request without a body counts as `{}`, so a POST whose body fields are all optional needs none.
 */
export const strictValidatorCompiler: FastifySchemaCompiler<TSchema> = ({ schema, httpPart }) => {
  const check = TypeCompiler.Compile(schema);
  return (value: unknown) => {
    const converted = httpPart === 'body' ? (value ?? {}) : Value.Convert(schema, value);
    if (check.Check(converted)) return { value: converted };
    const first = check.Errors(converted).First();
    return {
      error: [
        {
          keyword: first ? String(first.type) : 'type',
          instancePath: first?.path ?? '',
          schemaPath: '',
          params: {},
          message: first?.message ?? 'is invalid',
        },
      ],
    };
  };
};
