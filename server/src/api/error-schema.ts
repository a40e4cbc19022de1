import { Type } from '@sinclair/typebox';

/** The body of every error answer (see errors.ts), for the OpenAPI document and serialization. */
export const ErrorResponseSchema = Type.Object({
  error: Type.String({ description: 'Machine-readable code, e.g. invalid_request, not_found' }),
  message: Type.String(),
  field: Type.Optional(Type.String({ description: 'The request field at fault, as a dot path' })),
  details: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { description: 'Structured facts for programs, e.g. a syntax error\'s line and column' })),
});
