/** Public operational routes: /healthz, /metrics (Prometheus), /openapi.json. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { anyObject, errorResponses, stringEnum } from '../schemas.ts';

const healthResponseSchema = Type.Object({
  status: stringEnum(['ok', 'degraded']),
  storage: Type.Optional(Type.String()),
  storageOk: Type.Optional(Type.Boolean()),
  backend: Type.Optional(Type.String()),
  model: Type.Optional(Type.String()),
  watermarkKeyId: Type.Optional(Type.String()),
  uptimeSeconds: Type.Optional(Type.Number()),
});

const operationsRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  const { storage, backend, watermarkKey, startedAt } = fastify.gateway;

  fastify.get(
    '/healthz',
    {
      schema: {
        summary: 'Liveness and readiness: 200 when storage answers, 503 when it does not',
        tags: ['operations'],
        // The errors first: a degraded gateway answers 503 with its health, not an error.
        response: { ...errorResponses(), 200: healthResponseSchema, 503: healthResponseSchema },
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
        response: { 200: Type.String(), ...errorResponses() },
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
        response: { 200: anyObject(true), ...errorResponses() },
      },
    },
    async () => fastify.swagger(),
  );
};

export default operationsRoutes;
