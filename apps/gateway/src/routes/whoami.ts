/**
 * GET /v1/whoami (scope verify): the presented key's public view. The console signs in with it: one cheap
 * call that says whether the key is valid and can verify, and whose it is.
 */
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { errorResponses, type JsonSchema } from '../schemas.ts';

export const whoamiResponseSchema: JsonSchema = {
  type: 'object',
  required: ['object', 'id', 'name', 'account', 'scopes', 'expiresAt', 'watermarkKeyId'],
  properties: {
    object: { type: 'string', enum: ['tracemark.api_key'] },
    id: { type: 'string', description: 'Public key id, ak_…' },
    name: { type: 'string' },
    account: { type: 'string' },
    scopes: { type: 'array', items: { type: 'string', enum: ['generate', 'verify', 'logprobs', 'admin'] } },
    expiresAt: { type: ['string', 'null'] },
    watermarkKeyId: {
      type: 'string',
      description: 'Public id of the watermark key this gateway marks with.',
    },
  },
};

const whoamiRoutes: FastifyPluginAsync = async (fastify: FastifyInstance) => {
  fastify.get(
    '/v1/whoami',
    {
      config: { scope: 'verify' },
      schema: {
        summary: 'The API key presented: id, name, account, scopes, expiry (never the key or its hash)',
        tags: ['keys'],
        security: [{ bearerAuth: [] }],
        response: { 200: whoamiResponseSchema, ...errorResponses() },
      },
    },
    async (request) => {
      const key = request.apiKey!;
      return {
        object: 'tracemark.api_key',
        id: key.id,
        name: key.name,
        account: key.account,
        scopes: key.scopes,
        expiresAt: key.expiresAt,
        watermarkKeyId: fastify.gateway.watermarkKey.keyId,
      };
    },
  );
};

export default whoamiRoutes;
