/**
 * GET /v1/whoami (scope verify): the presented key's public view. The console signs in with it: one cheap
 * call that says whether the key is valid and can verify, and whose it is.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { SCOPES } from '../api-keys.ts';
import { errorResponses, list, nullable, stringEnum } from '../schemas.ts';

const whoamiResponseSchema = Type.Object({
  object: stringEnum(['tracemark.api_key']),
  id: Type.String({ description: 'Public key id, ak_…' }),
  name: Type.String(),
  account: Type.String(),
  scopes: list(stringEnum(SCOPES)),
  expiresAt: nullable(Type.String()),
  watermarkKeyId: Type.String({ description: 'Public id of the watermark key this gateway marks with.' }),
});

const whoamiRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
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
        object: 'tracemark.api_key' as const,
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
