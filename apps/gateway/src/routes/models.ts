import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { errorResponses, modelsResponseSchema } from '../schemas.ts';

const modelsRoutes: FastifyPluginAsync = async (fastify: FastifyInstance) => {
  fastify.get(
    '/v1/models',
    {
      config: { scope: 'generate' },
      schema: {
        summary: 'List the models this gateway serves',
        tags: ['models'],
        security: [{ bearerAuth: [] }],
        response: { 200: modelsResponseSchema, ...errorResponses() },
      },
    },
    async () => ({
      object: 'list',
      data: fastify.gateway.backend.models().map((model) => ({
        id: model.id,
        object: 'model',
        created: model.created,
        owned_by: model.ownedBy,
      })),
    }),
  );
};

export default modelsRoutes;
