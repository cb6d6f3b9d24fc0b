/** The admin API (scope `admin`): API keys and the issuance log. */
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { keyState } from '../api-keys.ts';
import { badRequest, GatewayError } from '../errors.ts';
import { createApiKey, listApiKeys, revokeApiKey } from '../key-management.ts';
import {
  createKeyRequestSchema,
  createKeyResponseSchema,
  errorResponses,
  issuanceRecordSchema,
  keyInfoResponseSchema,
  listIssuanceResponseSchema,
  listKeysResponseSchema,
} from '../schemas.ts';
import type { IssuanceRecord } from '../storage/types.ts';

interface CreateKeyBody {
  readonly scopes: ('generate' | 'verify' | 'logprobs' | 'admin')[];
  readonly name?: string;
  readonly account?: string;
  readonly expiresAt?: string;
  readonly rateLimitPerMinute?: number;
  readonly dailyTokenQuota?: number;
}

const adminSchema = { tags: ['admin'], security: [{ bearerAuth: [] }] };

function issuanceJson(record: IssuanceRecord) {
  return { ...record, outputTokens: record.outputTokens === null ? null : Array.from(record.outputTokens) };
}

const adminRoutes: FastifyPluginAsync = async (fastify: FastifyInstance) => {
  const { storage, serverSecret } = fastify.gateway;

  fastify.post(
    '/v1/admin/keys',
    {
      config: { scope: 'admin' },
      schema: {
        ...adminSchema,
        summary: 'Create an API key (the key is in this response only)',
        body: createKeyRequestSchema,
        response: { 201: createKeyResponseSchema, ...errorResponses() },
      },
    },
    async (request, reply) => {
      const body = request.body as CreateKeyBody;
      try {
        const created = await createApiKey(storage, serverSecret, {
          scopes: body.scopes,
          ...(body.name === undefined ? {} : { name: body.name }),
          account: body.account ?? request.apiKey!.account,
          ...(body.expiresAt === undefined ? {} : { expiresAt: body.expiresAt }),
          ...(body.rateLimitPerMinute === undefined ? {} : { rateLimitPerMinute: body.rateLimitPerMinute }),
          ...(body.dailyTokenQuota === undefined ? {} : { dailyTokenQuota: body.dailyTokenQuota }),
        });
        request.log.info({ keyId: created.info.id, scopes: created.info.scopes }, 'API key created');
        return reply
          .code(201)
          .send({ id: created.info.id, key: created.key, info: { ...created.info, state: 'active' } });
      } catch (error) {
        if (error instanceof RangeError)
          throw badRequest('TM_ERR_INVALID_REQUEST', error.message, 'expiresAt');
        throw error;
      }
    },
  );

  fastify.get(
    '/v1/admin/keys',
    {
      config: { scope: 'admin' },
      schema: {
        ...adminSchema,
        summary: 'List API keys (never the keys themselves)',
        response: { 200: listKeysResponseSchema, ...errorResponses() },
      },
    },
    async () => {
      const now = new Date();
      const keys = await listApiKeys(storage);
      return {
        object: 'list',
        data: keys.map((info) => ({ ...info, state: keyState({ ...info, hash: '' }, now) })),
      };
    },
  );

  fastify.delete(
    '/v1/admin/keys/:id',
    {
      config: { scope: 'admin' },
      schema: {
        ...adminSchema,
        summary: 'Revoke an API key, effective immediately',
        params: {
          type: 'object',
          required: ['id'],
          properties: { id: { type: 'string', pattern: '^ak_[0-9a-f]{16}$' } },
        },
        response: { 200: keyInfoResponseSchema, ...errorResponses() },
      },
    },
    async (request) => {
      const { id } = request.params as { id: string };
      const info = await revokeApiKey(storage, id);
      if (info === null) throw new GatewayError(404, 'TM_ERR_NOT_FOUND', `no API key ${id}`, { param: 'id' });
      request.log.info({ keyId: id }, 'API key revoked');
      return { ...info, state: keyState({ ...info, hash: '' }) };
    },
  );

  fastify.get(
    '/v1/admin/issuance',
    {
      config: { scope: 'admin' },
      schema: {
        ...adminSchema,
        summary: 'Read the issuance log in order',
        querystring: {
          type: 'object',
          properties: {
            after: {
              type: 'string',
              pattern: '^(-1|\\d{1,15})$',
              description: 'Records with seq greater than this',
            },
            limit: { type: 'string', pattern: '^\\d{1,4}$', description: '1 … 1000, default 100' },
            apiKeyId: { type: 'string', maxLength: 64 },
          },
        },
        response: { 200: listIssuanceResponseSchema, ...errorResponses() },
      },
    },
    async (request) => {
      const query = request.query as { after?: string; limit?: string; apiKeyId?: string };
      const limit = query.limit === undefined ? 100 : Number(query.limit);
      if (limit < 1 || limit > 1000)
        throw badRequest('TM_ERR_INVALID_REQUEST', 'limit must be from 1 to 1000', 'limit');
      const records = await storage.listIssuance({
        limit,
        ...(query.after === undefined ? {} : { afterSeq: Number(query.after) }),
        ...(query.apiKeyId === undefined ? {} : { apiKeyId: query.apiKeyId }),
      });
      return { object: 'list', data: records.map(issuanceJson), total: await storage.countIssuance() };
    },
  );

  fastify.get(
    '/v1/admin/issuance/:id',
    {
      config: { scope: 'admin' },
      schema: {
        ...adminSchema,
        summary: 'One issuance record',
        params: { type: 'object', required: ['id'], properties: { id: { type: 'string', maxLength: 64 } } },
        response: { 200: issuanceRecordSchema, ...errorResponses() },
      },
    },
    async (request) => {
      const { id } = request.params as { id: string };
      const record = await storage.getIssuance(id);
      if (record === null)
        throw new GatewayError(404, 'TM_ERR_NOT_FOUND', `no issuance record ${id}`, { param: 'id' });
      return issuanceJson(record);
    },
  );
};

export default adminRoutes;
