/**
 * What the logs never hold: API keys and secrets, wherever a client put them (a header, the query string,
 * a body field, the path). Four layers, each cheap:
 * - the request serializer logs the path and the query's parameter names, never their values;
 * - pino's redaction removes the headers that carry credentials, wherever a request is logged whole;
 * - every logged plain object has its fields named like a key, secret, token, password or cookie replaced;
 * - every logged string has query values and anything shaped like an API key replaced.
 */
import type { FastifyRequest } from 'fastify';
import pino, { type LoggerOptions } from 'pino';

export const REDACTED = '[redacted]';

const CREDENTIAL_HEADERS = [
  'authorization',
  'proxy-authorization',
  'x-api-key',
  'api-key',
  'cookie',
  'set-cookie',
] as const;

/** Paths pino redacts (headers of a request or response logged whole, and top-level secret fields). */
export const REDACTED_PATHS: readonly string[] = [
  ...CREDENTIAL_HEADERS.flatMap((header) => [
    `req.headers["${header}"]`,
    `res.headers["${header}"]`,
    `headers["${header}"]`,
  ]),
  'authorization',
  'key',
  'apiKey',
  'secret',
  'serverSecret',
  'token',
  'password',
  '*.key',
  '*.secret',
  '*.apiKey',
  '*.api_key',
  '*.token',
  '*.password',
];

/** Field names whose values are credentials (`apiKey`, `api_key`, `x-api-key`, `serverSecret`, `accessToken`…). */
const SECRET_FIELD = /(?:key|secret|token|password|passphrase|authorization|cookies?|credentials?)$/i;
/** An API key of this gateway, or anything that starts like one. */
const API_KEY_SHAPE = /tm_(?:live|dev)_[A-Za-z0-9_-]*/g;
const API_KEY_START = /tm_(?:live|dev)_/;
/** A query parameter's value: `?name=value` or `&name=value`. */
const QUERY_VALUE = /([?&][^=&#\s"'?]*=)[^&#\s"']*/g;
const PARAMETER_NAME = /^[A-Za-z0-9_.[\]-]{1,40}$/;

/** A string with query values and API-key-shaped runs replaced. */
export function redactText(text: string): string {
  if (!text.includes('=') && !text.includes('tm_')) return text;
  return text.replace(API_KEY_SHAPE, REDACTED).replace(QUERY_VALUE, `$1${REDACTED}`);
}

/** The URL as logged: the path, and the query's parameter names (values never; odd names neither). */
export function redactUrl(url: string): string {
  const mark = url.indexOf('?');
  const path = (mark < 0 ? url : url.slice(0, mark)).replace(API_KEY_SHAPE, REDACTED);
  if (mark < 0) return path;
  const names = url
    .slice(mark + 1)
    .split('&')
    .filter((part) => part !== '')
    .map((part) => {
      const equals = part.indexOf('=');
      const name = equals < 0 ? part : part.slice(0, equals);
      return PARAMETER_NAME.test(name) && !API_KEY_START.test(name) ? `${name}=${REDACTED}` : REDACTED;
    });
  return names.length === 0 ? path : `${path}?${names.join('&')}`;
}

function isPlainObject(value: object): boolean {
  const prototype = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

/**
 * A copy of `value` with secret-named fields replaced and strings redacted, through plain objects and
 * arrays only (a request, a reply or an error is left to its serializer).
 */
export function redactFields(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return redactText(value);
  if (value === null || typeof value !== 'object' || depth > 8) return value;
  if (Array.isArray(value)) return value.map((item) => redactFields(item, depth + 1));
  if (!isPlainObject(value)) return value;
  const copy: Record<string, unknown> = {};
  for (const [name, field] of Object.entries(value)) {
    copy[name] =
      SECRET_FIELD.test(name) && field !== null && field !== undefined
        ? REDACTED
        : redactFields(field, depth + 1);
  }
  return copy;
}

/** Fastify's request serializer, with the URL redacted; anything else logged as `req` is redacted as a whole. */
export function serializeRequest(request: FastifyRequest): unknown {
  if (request === null || typeof request !== 'object' || typeof request.url !== 'string') {
    return redactFields(request);
  }
  return {
    method: request.method,
    url: redactUrl(request.url),
    host: request.host,
    remoteAddress: request.ip,
    remotePort: request.socket?.remotePort,
  };
}

/** pino's error serializer, with messages and stacks redacted. */
export function serializeError(error: Error): unknown {
  // The serialized error has a prototype of its own; its fields are copied to a plain object first.
  return redactFields({ ...pino.stdSerializers.err(error) });
}

/** The pino options that apply all of the above. */
export const redactingLoggerOptions: Pick<LoggerOptions, 'redact' | 'serializers' | 'formatters' | 'hooks'> =
  {
    redact: { paths: [...REDACTED_PATHS], censor: REDACTED },
    serializers: { req: serializeRequest, err: serializeError },
    formatters: {
      log: (object) => redactFields(object) as Record<string, unknown>,
    },
    hooks: {
      logMethod(args, method) {
        const redacted = args.map((arg) => (typeof arg === 'string' ? redactText(arg) : arg));
        method.apply(this, redacted as Parameters<typeof method>);
      },
    },
  };
