import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { GatewayError } from '../errors.ts';
import { errorResponses, stringEnum } from '../schemas.ts';

const modelSchema = Type.Object({
  id: Type.String(),
  object: stringEnum(['model']),
  created: Type.Integer(),
  owned_by: Type.String(),
});

const modelsResponseSchema = Type.Object({
  object: stringEnum(['list']),
  data: Type.Array(modelSchema),
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
    async () => ({ object: 'list' as const, data: models() }),
  );

  // GET /v1/models/{model}: what the OpenAI SDKs' models.retrieve() asks.
  fastify.get(
    '/v1/models/:model',
    {
      config: { scope: 'generate' },
      schema: {
        summary: 'One model this gateway serves',
        tags: ['models'],
        security: [{ bearerAuth: [] }],
        params: Type.Object({ model: Type.String({ maxLength: 256 }) }),
        response: { 200: modelSchema, ...errorResponses() },
      },
    },
    async (request) => {
      const model = models().find((info) => info.id === request.params.model);
      if (model === undefined) {
        throw new GatewayError(
          404,
          'TM_ERR_UNKNOWN_MODEL',
          `the model "${request.params.model}" does not exist here`,
          {
            param: 'model',
          },
        );
      }
      return model;
    },
  );

  function models() {
    return fastify.gateway.backend.models().map((model) => ({
      id: model.id,
      object: 'model' as const,
      created: model.created,
      owned_by: model.ownedBy,
    }));
  }
};

export default modelsRoutes;
