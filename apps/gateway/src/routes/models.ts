import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { errorResponses, stringEnum } from '../schemas.ts';

const modelsResponseSchema = Type.Object({
  object: stringEnum(['list']),
  data: Type.Array(
    Type.Object({
      id: Type.String(),
      object: stringEnum(['model']),
      created: Type.Integer(),
      owned_by: Type.String(),
    }),
  ),
});

const modelsRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
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
      object: 'list' as const,
      data: fastify.gateway.backend.models().map((model) => ({
        id: model.id,
        object: 'model' as const,
        created: model.created,
        owned_by: model.ownedBy,
      })),
    }),
  );
};

export default modelsRoutes;
