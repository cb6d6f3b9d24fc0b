/**
 * Authentication, scopes and per-key request rates. A route opts in with `config: { scope }`; public routes
 * (health, metrics, OpenAPI, the log, the console) have none, and those marked `config: { publicRateLimit }` are
 * limited per client address. Failed authentications are rate limited per client address.
 */
import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { Redis } from 'ioredis';
import { type ApiKeyRecord, apiKeyIdOf, keyState, type Scope, verifyApiKey } from '../api-keys.ts';
import { GatewayError } from '../errors.ts';
import type { GatewayStorage } from '../storage/types.ts';

declare module 'fastify' {
  interface FastifyRequest {
    apiKey: ApiKeyRecord | null;
  }
  interface FastifyContextConfig {
    /** The scope a route requires; absent: the route is public. */
    scope?: Scope;
    /** A public route limited per client address (`publicRateLimitPerMinute`): the log, keys, OpenAPI, console. */
    publicRateLimit?: boolean;
  }
}

export interface AuthPluginOptions {
  readonly storage: GatewayStorage;
  readonly serverSecret: Uint8Array;
  readonly rateLimitPerMinute: number;
  readonly authFailuresPerMinute: number;
  /** Requests per minute per client address to the public routes that opt in (`config.publicRateLimit`). */
  readonly publicRateLimitPerMinute: number;
  readonly redis: Redis | null;
  /** The per-key limiter's key for an authenticated request; default `key:<api key id>` (linked accounts share one). */
  readonly rateLimitKey?: (key: ApiKeyRecord) => string;
  /** The per-key limit given the key's own (or the default); lower for a throttled account. */
  readonly rateLimitMax?: (key: ApiKeyRecord, base: number) => number;
}

/** The presented key: `Authorization: Bearer <key>` (what OpenAI clients send) or `x-api-key`. */
export function presentedKey(request: FastifyRequest): string | null {
  const header = request.headers.authorization;
  if (typeof header === 'string') {
    const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
    return match === null ? null : match[1]!;
  }
  const alternative = request.headers['x-api-key'];
  return typeof alternative === 'string' && alternative !== '' ? alternative.trim() : null;
}

const authPlugin: FastifyPluginAsync<AuthPluginOptions> = async (fastify: FastifyInstance, options) => {
  await fastify.register(rateLimit, {
    global: false,
    ...(options.redis === null ? {} : { redis: options.redis, nameSpace: 'tracemark:rate:' }),
    skipOnError: false,
  });
  const keyLimiter = fastify.createRateLimit({
    timeWindow: 60_000,
    keyGenerator: (request) =>
      request.apiKey === null
        ? `key:${request.ip}`
        : (options.rateLimitKey?.(request.apiKey) ?? `key:${request.apiKey.id}`),
    max: (request) => {
      const base = request.apiKey?.rateLimitPerMinute ?? options.rateLimitPerMinute;
      return request.apiKey === null || options.rateLimitMax === undefined
        ? base
        : options.rateLimitMax(request.apiKey, base);
    },
  });
  const failureLimiter = fastify.createRateLimit({
    timeWindow: 60_000,
    keyGenerator: (request) => `authfail:${request.ip}`,
    max: options.authFailuresPerMinute,
  });
  const publicLimiter = fastify.createRateLimit({
    timeWindow: 60_000,
    keyGenerator: (request) => `public:${request.ip}`,
    max: options.publicRateLimitPerMinute,
  });

  const limit = async (
    limiter: typeof keyLimiter,
    request: FastifyRequest,
    reason: string,
  ): Promise<{ max: number; remaining: number; ttlInSeconds: number } | null> => {
    let result: Awaited<ReturnType<typeof keyLimiter>>;
    try {
      result = await limiter(request);
    } catch (error) {
      throw new GatewayError(503, 'TM_ERR_STORAGE_UNAVAILABLE', 'the rate limiter is unavailable', {
        retryAfterSeconds: 5,
        cause: error,
      });
    }
    if (result.isAllowed) return null;
    if (result.isExceeded) {
      fastify.metrics.rejected.inc({ reason });
      throw new GatewayError(
        429,
        'TM_ERR_RATE_LIMITED',
        reason === 'auth_failures'
          ? 'too many failed authentication attempts from this address; retry later'
          : reason === 'public_rate_limit'
            ? `rate limit of ${result.max} requests per minute to the public endpoints exceeded for this address`
            : `rate limit of ${result.max} requests per minute exceeded for this API key`,
        { retryAfterSeconds: result.ttlInSeconds },
      );
    }
    return result;
  };

  const fail = async (request: FastifyRequest, error: GatewayError): Promise<never> => {
    fastify.metrics.rejected.inc({ reason: error.code });
    await limit(failureLimiter, request, 'auth_failures');
    throw error;
  };

  const rateHeaders = (
    reply: FastifyReply,
    rate: { max: number; remaining: number; ttlInSeconds: number } | null,
  ) => {
    if (rate === null) return;
    reply.header('x-ratelimit-limit', String(rate.max));
    reply.header('x-ratelimit-remaining', String(rate.remaining));
    reply.header('x-ratelimit-reset', String(rate.ttlInSeconds));
  };

  fastify.decorateRequest('apiKey', null);
  fastify.addHook('onRequest', async (request, reply) => {
    const scope = request.routeOptions.config?.scope;
    if (scope === undefined) {
      if (request.routeOptions.config?.publicRateLimit === true) {
        rateHeaders(reply, await limit(publicLimiter, request, 'public_rate_limit'));
      }
      return;
    }
    const presented = presentedKey(request);
    if (presented === null) {
      return fail(
        request,
        new GatewayError(
          401,
          'TM_ERR_MISSING_API_KEY',
          'missing API key: send "Authorization: Bearer <key>"',
        ),
      );
    }
    const id = apiKeyIdOf(presented);
    let record: ApiKeyRecord | null = null;
    if (id !== null) {
      try {
        record = await options.storage.getApiKey(id);
      } catch (error) {
        throw new GatewayError(503, 'TM_ERR_STORAGE_UNAVAILABLE', 'storage is unavailable', {
          retryAfterSeconds: 5,
          cause: error,
        });
      }
    }
    if (!verifyApiKey(options.serverSecret, presented, record) || record === null) {
      return fail(request, new GatewayError(401, 'TM_ERR_INVALID_API_KEY', 'invalid API key'));
    }
    const state = keyState(record);
    if (state === 'revoked')
      return fail(request, new GatewayError(401, 'TM_ERR_API_KEY_REVOKED', 'this API key has been revoked'));
    if (state === 'expired')
      return fail(request, new GatewayError(401, 'TM_ERR_API_KEY_EXPIRED', 'this API key has expired'));
    request.apiKey = record;
    if (!record.scopes.includes(scope)) {
      fastify.metrics.rejected.inc({ reason: 'TM_ERR_SCOPE' });
      throw new GatewayError(403, 'TM_ERR_SCOPE', `this API key lacks the "${scope}" scope`);
    }
    rateHeaders(reply, await limit(keyLimiter, request, 'rate_limit'));
  });
};

const plugin: FastifyPluginAsync<AuthPluginOptions> = fp(authPlugin, {
  name: 'tracemark-auth',
  fastify: '5.x',
  dependencies: ['tracemark-metrics'],
});
export default plugin;
