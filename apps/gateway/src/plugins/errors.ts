/** Every error leaves in the OpenAI shape with a stable code; a 5xx never carries internals. */
import type {
  FastifyError,
  FastifyInstance,
  FastifyPluginAsync,
  FastifyReply,
  FastifyRequest,
} from 'fastify';
import fp from 'fastify-plugin';
import {
  clientInputParam,
  GatewayError,
  type GatewayErrorCode,
  SERVER_ERROR_MESSAGES,
  unprocessableInput,
} from '../errors.ts';

/** Validation errors on these fields get their own code. */
const FIELD_CODES: Readonly<Record<string, GatewayErrorCode>> = {
  max_tokens: 'TM_ERR_MAX_TOKENS',
  max_completion_tokens: 'TM_ERR_MAX_TOKENS',
  max_output_tokens: 'TM_ERR_MAX_TOKENS',
  n: 'TM_ERR_TOO_MANY_CHOICES',
};

/** The forms of the request fields that take several (routes/completions.ts), in words. */
const UNION_FORMS: Readonly<Record<string, string>> = {
  stop: 'a string or an array of at most 4 strings (each at most 256 characters), or null',
  prompt:
    'a string, an array of at most 128 strings, an array of token ids, or an array of at most 128 arrays of token ids',
  input: 'a string or an array of at most 2048 message items',
  content: 'a string or an array of at most 256 text parts',
};

export function sendError(reply: FastifyReply, error: GatewayError): FastifyReply {
  if (error.retryAfterSeconds !== undefined)
    reply.header('retry-after', String(Math.max(1, Math.ceil(error.retryAfterSeconds))));
  const body =
    error.statusCode >= 500
      ? new GatewayError(
          error.statusCode,
          error.code,
          SERVER_ERROR_MESSAGES[error.code] ?? 'internal error',
        ).toBody()
      : error.toBody();
  return reply.code(error.statusCode).type('application/json; charset=utf-8').send(body);
}

/** Maps anything thrown to the GatewayError the client sees; `bodyLimit` is the route's, for a 413. */
export function toGatewayError(error: FastifyError | Error, bodyLimit?: number): GatewayError {
  if (error instanceof GatewayError) return error;
  // A RangeError or TypeError from tokenizing or decoding a client's field is the client's problem (400).
  const clientParam = clientInputParam(error);
  if (clientParam !== null) return unprocessableInput(clientParam, error);
  const fastifyError = error as FastifyError;
  if (fastifyError.validation !== undefined) {
    // A field of several forms (a union) fails every branch, and the validator lists them all ("stop must be
    // string, body/stop must NOT have more than 4 items, … must match a schema in anyOf"): say the forms.
    const union = fastifyError.validation.find((entry) => entry.keyword === 'anyOf');
    if (union !== undefined) {
      const parts = union.instancePath.replace(/^\//, '').split('/');
      const param = parts.join('.') || null;
      const forms = UNION_FORMS[parts[0] === 'messages' ? 'content' : (parts[0] ?? '')];
      return new GatewayError(
        400,
        'TM_ERR_INVALID_REQUEST',
        `${param ?? 'the request body'} must be ${forms ?? 'one of the forms the API documents'}`,
        { param },
      );
    }
    const first = fastifyError.validation[0];
    const path = (first?.instancePath ?? '').replace(/^\//, '').split('/');
    const missing = (first?.params as { missingProperty?: string } | undefined)?.missingProperty;
    const field = missing ?? path[0] ?? '';
    const param = missing ?? (path.filter((part) => part !== '').join('.') || null);
    const code = FIELD_CODES[field] ?? 'TM_ERR_INVALID_REQUEST';
    const where = fastifyError.validationContext ?? 'body';
    const rest = (fastifyError.message ?? 'invalid request').replace(new RegExp(`^${where}/?`), '');
    // A rule on the whole body or query ("body must be object") has no field to start the message with.
    const message = rest.startsWith(' ')
      ? `the ${where === 'body' ? 'request body' : where}${rest}`
      : `${where === 'body' ? '' : `${where}: `}${rest}`;
    return new GatewayError(400, code, message, { param });
  }
  switch (fastifyError.code) {
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new GatewayError(
        400,
        'TM_ERR_INVALID_JSON',
        `the request body is not valid JSON (${fastifyError.message})`,
      );
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new GatewayError(
        413,
        'TM_ERR_BODY_TOO_LARGE',
        bodyLimit === undefined
          ? 'the request body is larger than the gateway accepts'
          : `the request body is larger than this route accepts (${bodyLimit} bytes; TRACEMARK_BODY_LIMIT_BYTES sets the limit of most routes)`,
      );
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new GatewayError(
        415,
        'TM_ERR_UNSUPPORTED_MEDIA_TYPE',
        'send the request body as application/json',
      );
    case 'FST_ERR_BAD_URL':
      return new GatewayError(
        400,
        'TM_ERR_INVALID_REQUEST',
        'the request path is not a valid URL (bad percent-encoding)',
      );
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return new GatewayError(
        400,
        'TM_ERR_INVALID_REQUEST',
        'a path parameter is longer than the gateway accepts',
      );
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new GatewayError(
        400,
        'TM_ERR_INVALID_REQUEST',
        'the Content-Length header does not match the body',
      );
  }
  if (error instanceof SyntaxError || fastifyError.statusCode === 400) {
    return new GatewayError(400, 'TM_ERR_INVALID_JSON', 'the request body is not valid JSON');
  }
  const status = fastifyError.statusCode;
  if (status !== undefined && status >= 400 && status < 500) {
    if (status === 413)
      return new GatewayError(
        413,
        'TM_ERR_BODY_TOO_LARGE',
        'the request body is larger than the gateway accepts',
      );
    if (status === 404) return new GatewayError(404, 'TM_ERR_NOT_FOUND', 'not found');
    return new GatewayError(400, 'TM_ERR_INVALID_REQUEST', fastifyError.message);
  }
  return new GatewayError(500, 'TM_ERR_INTERNAL', 'internal error', { cause: error });
}

/** Answers a request with the error it failed with (mapped, counted, logged): the one error path. */
export function replyWithError(
  error: FastifyError | Error,
  request: FastifyRequest,
  reply: FastifyReply,
): FastifyReply {
  const mapped = toGatewayError(error, request.routeOptions.bodyLimit);
  if (mapped.code === 'TM_ERR_WORK_BUDGET' || mapped.code === 'TM_ERR_OVERLOADED') {
    request.server.metrics.rejected.inc({ reason: mapped.code });
  }
  if (mapped.statusCode >= 500) {
    request.log.error({ err: error, code: mapped.code }, 'request failed');
  } else {
    request.log.info({ code: mapped.code, statusCode: mapped.statusCode }, mapped.message);
  }
  return sendError(reply, mapped);
}

const errorsPlugin: FastifyPluginAsync = async (fastify: FastifyInstance) => {
  fastify.setErrorHandler((error: FastifyError, request, reply) => replyWithError(error, request, reply));
  fastify.setNotFoundHandler((request, reply) =>
    sendError(
      reply,
      new GatewayError(
        404,
        'TM_ERR_NOT_FOUND',
        `no route for ${request.method} ${request.url.split('?')[0]}`,
      ),
    ),
  );
};

const plugin: FastifyPluginAsync = fp(errorsPlugin, { name: 'tracemark-errors', fastify: '5.x' });
export default plugin;
