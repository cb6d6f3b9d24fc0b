/** Public operational routes: /healthz, /metrics (Prometheus), /openapi.json. */
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { errorResponses, healthResponseSchema } from '../schemas.ts';

const operationsRoutes: FastifyPluginAsync = async (fastify: FastifyInstance) => {
  const { storage, backend, watermarkKey, startedAt } = fastify.gateway;

  fastify.get(
    '/healthz',
    {
      schema: {
        summary: 'Liveness and readiness: 200 when storage answers, 503 when it does not',
        tags: ['operations'],
        response: { 200: healthResponseSchema, 503: healthResponseSchema, ...errorResponses() },
      },
    },
    async (_request, reply) => {
      const storageOk = await storage.ping().then(
        () => true,
        () => false,
      );
      const description = backend.describe();
      return reply.code(storageOk ? 200 : 503).send({
        status: storageOk ? 'ok' : 'degraded',
        storage: storage.kind,
        storageOk,
        backend: backend.kind,
        model: String(description.model ?? ''),
        watermarkKeyId: watermarkKey.keyId,
        uptimeSeconds: Math.round((Date.now() - startedAt) / 1000),
      });
    },
  );

  fastify.get(
    '/metrics',
    {
      schema: {
        summary: 'Prometheus metrics (text exposition format)',
        tags: ['operations'],
        response: { 200: { type: 'string' }, ...errorResponses() },
      },
    },
    async (_request, reply) => {
      const text = await fastify.metrics.registry.metrics();
      return reply.type(fastify.metrics.registry.contentType).send(text);
    },
  );

  fastify.get(
    '/openapi.json',
    {
      config: { publicRateLimit: true },
      schema: {
        summary: 'This API as an OpenAPI 3 document',
        tags: ['operations'],
        response: { 200: { type: 'object', additionalProperties: true }, ...errorResponses() },
      },
    },
    async () => fastify.swagger(),
  );
};

export default operationsRoutes;
