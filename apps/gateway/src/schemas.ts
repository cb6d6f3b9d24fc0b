/**
 * The building blocks of the gateway's request and response schemas, and the error shape every route shares.
 * Responses are serialized through their schemas, so a field that is not listed never reaches a client (no
 * key, hash or internal can leak by accident).
 *
 * Each schema is a TypeBox definition in the route file that serves it: fastify validates and serializes with
 * the JSON Schema, and the TypeBox type provider gives the handler `Static<>` of the same definition as its
 * body, query and params types, so there is no second, hand-written interface to drift. They stay in the
 * route files because `isolatedDeclarations` would make an exported definition spell its type out again.
 */
import {
  type Static,
  type TArray,
  type TArrayOptions,
  type TImmutable,
  type TSchema,
  type TSchemaOptions,
  type TUnsafe,
  Type,
} from 'typebox';

/**
 * The schema, or null: a type list when the schema has a single type (clearer errors), else anyOf. `options`
 * (a description) go on the outer schema.
 */
export function nullable<T extends TSchema>(
  schema: T,
  options: TSchemaOptions = {},
): TUnsafe<Static<T> | null> {
  const json = { ...schema } as unknown as Record<string, unknown>;
  return Type.Unsafe<Static<T> | null>(
    typeof json.type === 'string'
      ? { ...json, type: [json.type, 'null'], ...options }
      : { anyOf: [schema, Type.Null()], ...options },
  );
}

/** A string from a fixed list, as `enum` (errors name the allowed values; a union of consts would not). */
export function stringEnum<const Values extends readonly string[]>(
  values: Values,
  options: TSchemaOptions = {},
): TUnsafe<Values[number]> {
  return Type.Unsafe<Values[number]>({ type: 'string', enum: [...values], ...options });
}

/** `Type.Array` whose static type is a readonly array, so a handler can answer with the arrays it holds. */
export function list<T extends TSchema>(items: T, options: TArrayOptions = {}): TImmutable<TArray<T>> {
  return Type.Immutable(Type.Array(items, options));
}

/** An object of any keys whose values all match `values` (JSON Schema `additionalProperties`). */
export function recordOf<T extends TSchema>(
  values: T,
  options: TSchemaOptions = {},
): TUnsafe<Record<string, Static<T>>> {
  return Type.Unsafe<Record<string, Static<T>>>({ type: 'object', additionalProperties: values, ...options });
}

/** Any JSON object; `open` lists it as `additionalProperties: true` (serialized as it is). */
export function anyObject(open = false): TUnsafe<object> {
  return Type.Unsafe<object>(open ? { type: 'object', additionalProperties: true } : { type: 'object' });
}

const openAiError = Type.Object(
  {
    error: Type.Object({
      message: Type.String(),
      type: Type.String(),
      param: nullable(Type.String()),
      code: Type.String({ description: 'Stable error code, TM_ERR_…' }),
    }),
  },
  { $id: 'OpenAiError', description: 'OpenAI error shape with a stable tracemark code.' },
);

/** The OpenAI error shape with a tracemark code: `{ error: { message, type, param, code } }`. */
export const openAiErrorSchema: TSchema = openAiError;

export const ERROR_STATUSES = [400, 401, 403, 404, 413, 415, 422, 429, 500, 502, 503, 504] as const;
export type ErrorStatus = (typeof ERROR_STATUSES)[number];

/**
 * Every error status a route can answer with, all in the OpenAI error shape. The errors plugin sends them
 * for a thrown error, never a route's handler, so a handler's reply type leaves them out (`never`).
 */
export function errorResponses(): Record<ErrorStatus, TUnsafe<never>> {
  return Object.fromEntries(
    ERROR_STATUSES.map((status) => [status, Type.Unsafe<never>({ $ref: 'OpenAiError#' })]),
  ) as Record<ErrorStatus, TUnsafe<never>>;
}
