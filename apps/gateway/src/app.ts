/**
 * Builds the gateway as a fastify app, without listening (server.ts listens). Cross-cutting parts are named
 * plugins (errors, metrics, auth with rate limits, OpenAPI); routes are encapsulated plugins.
 */
import { isUtf8 } from 'node:buffer';
import swagger from '@fastify/swagger';
import { createWatermarker } from '@tracemark/core';
import { isForeignKey } from '@tracemark/detection';
import Fastify, { type FastifyInstance, type FastifyPluginAsync, type FastifyServerOptions } from 'fastify';
import fp from 'fastify-plugin';
import {
  type EngineNativeServices,
  GATEWAY_VERSION,
  type GatewayContext,
  type GatewayServices,
} from './context.ts';
import { GatewayError } from './errors.ts';
import { redactingLoggerOptions } from './log-redaction.ts';
import { createMonitoringService } from './monitoring/service.ts';
import authPlugin from './plugins/auth.ts';
import consolePlugin from './plugins/console.ts';
import errorsPlugin, { replyWithError } from './plugins/errors.ts';
import metricsPlugin from './plugins/metrics.ts';
import { createIssuanceLog } from './provenance/issuance-log.ts';
import { createMemoryQuotaStore, createRedisQuotaStore } from './quota.ts';
import adminRoutes from './routes/admin.ts';
import completionsRoutes from './routes/completions.ts';
import detectRoutes from './routes/detect.ts';
import modelsRoutes from './routes/models.ts';
import operationsRoutes from './routes/operations.ts';
import provenanceRoutes from './routes/provenance.ts';
import riskRoutes from './routes/risk.ts';
import scanRoutes from './routes/scan.ts';
import whoamiRoutes from './routes/whoami.ts';
import { openAiErrorSchema } from './schemas.ts';
import { createLiveMarkCheck, type LiveMarkCheck } from './upstream-mark/live-check.ts';
import { MARK_CHECK_FPR } from './upstream-mark/self-check.ts';
import { createWorkPool, type WorkPool } from './work/pool.ts';

export {
  type EngineNativeServices,
  GATEWAY_VERSION,
  type GatewayContext,
  type GatewayServices,
} from './context.ts';

export { REDACTED_PATHS } from './log-redaction.ts';

export type LoggerSetting = NonNullable<FastifyServerOptions['logger']>;

/** pino at `level`, with every secret redacted (see log-redaction.ts), on stdout or `stream`. */
export function loggerOptions(level: string, stream?: NodeJS.WritableStream): LoggerSetting {
  return {
    level,
    ...redactingLoggerOptions,
    ...(stream === undefined ? {} : { stream }),
  } as LoggerSetting;
}

const servicesPlugin: FastifyPluginAsync<GatewayServices> = async (fastify, services) => {
  const key = services.watermarkKey;
  const watermarker = isForeignKey(key)
    ? null
    : createWatermarker(key, { specialTokenIds: services.backend.tokenizer.specialTokenIds });
  const work = createWorkPool({
    keys: {
      watermarkKey: services.watermarkKey,
      rootWatermarkKey: services.rootWatermarkKey,
      logSigningKey: services.logSigningKey,
    },
    threads: services.config.workerThreads,
    budgetMs: services.config.workBudgetMs,
    queueLimit: services.config.workQueueLimit,
    onThreadError: (error) => fastify.log.error({ err: error }, 'a work thread failed'),
  });
  const engine = services.engineNative ?? null;
  const context: GatewayContext = {
    ...services,
    watermarker,
    engineNative: engine,
    upstreamMarkCheck: engine === null ? null : liveMarkCheck(fastify, services, engine, work),
    issuanceLog: createIssuanceLog(services.storage, services.logSigningKey),
    startedAt: Date.now(),
    activeGenerations: new Set(),
    detector: (options) => work.context.detector(options),
    work,
    // Metrics are registered after this plugin; the service reads them only once started.
    monitoring: createMonitoringService({
      config: services.config,
      storage: services.storage,
      log: fastify.log,
      metrics: () => fastify.metrics.monitoring,
      ...(services.monitorOptions === undefined ? {} : { monitorOptions: services.monitorOptions }),
    }),
  };
  fastify.decorate('gateway', context);
  fastify.addHook('onClose', async () => {
    await context.monitoring.close();
    await context.upstreamMarkCheck?.idle();
    await work.close();
  });
  fastify.addHook('preClose', async () => {
    for (const controller of context.activeGenerations) {
      controller.abort(new GatewayError(503, 'TM_ERR_SHUTTING_DOWN', 'the gateway is shutting down'));
    }
    // Let aborted streams record what they sent and write their error event, so their connections are idle
    // (and closed) when the server stops.
    const deadline = Date.now() + 10_000;
    while (context.activeGenerations.size > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  });
  const seed = (apiKeyId: string, since: string) => services.storage.sumTokensSince(apiKeyId, since);
  fastify.decorate(
    'quota',
    services.redis === null ? createMemoryQuotaStore(seed) : createRedisQuotaStore(services.redis, seed),
  );
};

/** The live check of engine-native mode: detection on the work pool, a gauge and a log line when the mark goes. */
function liveMarkCheck(
  fastify: FastifyInstance,
  services: GatewayServices,
  engine: EngineNativeServices,
  work: WorkPool,
): LiveMarkCheck {
  const { config } = services;
  const facts = {
    keyId: services.watermarkKey.keyId,
    upstream: engine.upstream.origin,
    model: engine.upstream.model,
  };
  // Metrics are registered after this plugin; the callbacks run only once completions are served.
  const gauges = () => fastify.metrics.upstreamMark;
  return createLiveMarkCheck({
    sampleRate: config.upstreamMarkSampleRate,
    windowTokens: config.upstreamMarkWindowTokens,
    startupScored: engine.startupCheck.numScored,
    detect: (ids) => work.run({ kind: 'detect', tokens: ids, fpr: MARK_CHECK_FPR, window: false }),
    onResult: (state, result) => {
      gauges().checks.inc({ verdict: result.verdict });
      gauges().log10P.set(state.log10P ?? 0);
      gauges().scoredTokens.set(state.numScored);
      gauges().missing.set(state.missing ? 1 : 0);
    },
    onAlert: (state) =>
      fastify.log.error(
        {
          ...facts,
          verdict: state.verdict,
          numTokens: state.numTokens,
          numScored: state.numScored,
          log10P: state.log10P,
          minScored: state.minScored,
        },
        "upstream mark missing: the engine's recent completions no longer carry the serving key's mark (is it running without its watermark, or with another key?)",
      ),
    onRecover: (state) =>
      fastify.log.info(
        { ...facts, verdict: state.verdict, numScored: state.numScored, log10P: state.log10P },
        "upstream mark back: the engine's recent completions carry the serving key's mark again",
      ),
    onError: (error) => fastify.log.warn({ err: error }, 'the live check of the upstream mark failed'),
  });
}

const gateway: FastifyPluginAsync<GatewayServices> = async (fastify: FastifyInstance, services) => {
  fastify.addSchema(openAiErrorSchema);
  // JSON only: a text/plain body is a 415, not a string that fails validation.
  fastify.removeContentTypeParser(['text/plain']);
  await fastify.register(fp(servicesPlugin, { name: 'tracemark-services', fastify: '5.x' }), services);
  await fastify.register(errorsPlugin);
  await fastify.register(metricsPlugin, {
    backendStats: services.backend.stats,
    workStats: () => fastify.gateway.work.stats(),
  });
  const { monitoring } = fastify.gateway;
  // The scoring window is replayed from storage before the first request, so a restart keeps the picture.
  await monitoring.start();
  await fastify.register(authPlugin, {
    rateLimitKey: (key) => monitoring.rateLimitKey(key),
    rateLimitMax: (key, base) => monitoring.rateLimitMax(key, base),
    storage: services.storage,
    serverSecret: services.serverSecret,
    rateLimitPerMinute: services.config.rateLimitPerMinute,
    authFailuresPerMinute: services.config.authFailuresPerMinute,
    publicRateLimitPerMinute: services.config.publicRateLimitPerMinute,
    redis: services.redis,
  });
  await fastify.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'tracemark gateway',
        version: GATEWAY_VERSION,
        description:
          'An OpenAI-compatible API that watermarks every completion (tracemark watermark v1) and records it in an issuance log before returning it.',
      },
      components: {
        securitySchemes: {
          bearerAuth: { type: 'http', scheme: 'bearer', description: 'tm_live_… or tm_dev_… API key' },
        },
      },
    },
  });
  await fastify.register(operationsRoutes);
  await fastify.register(modelsRoutes);
  await fastify.register(completionsRoutes);
  await fastify.register(detectRoutes);
  await fastify.register(provenanceRoutes);
  await fastify.register(adminRoutes);
  await fastify.register(riskRoutes);
  await fastify.register(scanRoutes);
  await fastify.register(whoamiRoutes);
  await fastify.register(consolePlugin);
};

/**
 * The whole gateway as one plugin: register it on any fastify instance. It is not encapsulated, so the
 * instance it is registered on carries `gateway`, `metrics` and `quota`, and closing it aborts generations.
 */
export const gatewayPlugin: FastifyPluginAsync<GatewayServices> = fp(gateway, {
  name: 'tracemark-gateway',
  fastify: '5.x',
});

export interface BuildAppOptions {
  /** A pino-compatible logger configuration; default: the configured level on stdout. */
  readonly logger?: LoggerSetting;
}

/** A fastify instance with the gateway registered and ready (not listening). */
export async function buildApp(
  services: GatewayServices,
  options: BuildAppOptions = {},
): Promise<FastifyInstance> {
  const { config } = services;
  const app = Fastify({
    logger: options.logger ?? loggerOptions(config.logLevel),
    bodyLimit: config.bodyLimitBytes,
    trustProxy: config.trustProxy,
    // Slow clients: a request must arrive in full within 30 s; an idle keep-alive socket closes after 72 s.
    requestTimeout: 30_000,
    keepAliveTimeout: 72_000,
    connectionTimeout: 0,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    ajv: { customOptions: { coerceTypes: false, removeAdditional: true, allErrors: false } },
    genReqId: () => `req_${Math.random().toString(36).slice(2, 12)}`,
    // Errors the router raises before a route runs (a bad percent-encoding, an overlong parameter) leave in
    // the same shape as every other.
    frameworkErrors: (error, request, reply) => {
      replyWithError(error, request, reply);
    },
    // A request that does not arrive in full within requestTimeout, or that the HTTP parser refuses.
    clientErrorHandler: (error, socket) => {
      if (!socket.writable) return;
      const timedOut = (error as { code?: string }).code === 'ERR_HTTP_REQUEST_TIMEOUT';
      const body = JSON.stringify(
        timedOut
          ? new GatewayError(408, 'TM_ERR_TIMEOUT', 'the request did not arrive in full within 30 s').toBody()
          : new GatewayError(400, 'TM_ERR_INVALID_REQUEST', 'the request is not valid HTTP').toBody(),
      );
      socket.end(
        `HTTP/1.1 ${timedOut ? '408 Request Timeout' : '400 Bad Request'}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      );
    },
  });
  // JSON bodies must be UTF-8 (RFC 8259): bytes that are not would be read as U+FFFD, and a text verified,
  // detected or generated from would silently differ from the one sent.
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
    const bytes = body as Buffer;
    const encoding = request.headers['content-encoding'];
    if (encoding !== undefined && encoding.toLowerCase() !== 'identity') {
      done(
        new GatewayError(
          415,
          'TM_ERR_UNSUPPORTED_MEDIA_TYPE',
          `Content-Encoding ${encoding} is not accepted: send the JSON body uncompressed`,
        ),
        undefined,
      );
      return;
    }
    if (!isUtf8(bytes)) {
      done(
        new GatewayError(
          400,
          'TM_ERR_INVALID_JSON',
          'the request body is not valid UTF-8: send JSON encoded as UTF-8 (text with other bytes cannot be verified as sent)',
        ),
        undefined,
      );
      return;
    }
    parseJson(request, bytes.toString('utf8'), done);
  });
  await app.register(gatewayPlugin, services);
  await app.ready();
  return app as unknown as FastifyInstance;
}
