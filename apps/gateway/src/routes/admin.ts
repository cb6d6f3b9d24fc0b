/** The admin API (scope `admin`): API keys and the issuance log. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { keyState, SCOPES } from '../api-keys.ts';
import { jsonBodyStream } from '../completion/json-body.ts';
import { badRequest, GatewayError } from '../errors.ts';
import { createApiKey, listApiKeys, revokeApiKey } from '../key-management.ts';
import { errorResponses, list, nullable, stringEnum } from '../schemas.ts';
import type { IssuanceRecord } from '../storage/types.ts';

const createKeyRequestSchema = Type.Object(
  {
    scopes: Type.Array(stringEnum(SCOPES), { minItems: 1, uniqueItems: true }),
    name: Type.Optional(Type.String({ maxLength: 200 })),
    account: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    expiresAt: Type.Optional(Type.String({ format: 'date-time' })),
    rateLimitPerMinute: Type.Optional(Type.Integer({ minimum: 1 })),
    dailyTokenQuota: Type.Optional(Type.Integer({ minimum: 1 })),
  },
  { additionalProperties: false },
);

const apiKeyInfoSchema = Type.Object({
  id: Type.String(),
  environment: Type.String(),
  name: Type.String(),
  account: Type.String(),
  scopes: list(Type.String()),
  createdAt: Type.String(),
  expiresAt: nullable(Type.String()),
  revokedAt: nullable(Type.String()),
  rateLimitPerMinute: Type.Optional(nullable(Type.Integer())),
  dailyTokenQuota: Type.Optional(nullable(Type.Integer())),
  state: Type.Optional(stringEnum(['active', 'revoked', 'expired'])),
});

const createKeyResponseSchema = Type.Object({
  id: Type.String(),
  key: Type.String({ description: 'The API key. Shown once: the gateway keeps only its HMAC.' }),
  info: apiKeyInfoSchema,
});

const listKeysResponseSchema = Type.Object({
  object: stringEnum(['list']),
  data: Type.Array(apiKeyInfoSchema),
});

const issuanceRecordSchema = Type.Object({
  seq: Type.Optional(Type.Integer()),
  id: Type.Optional(Type.String()),
  completionId: Type.Optional(Type.String()),
  choiceIndex: Type.Optional(Type.Integer()),
  createdAt: Type.Optional(Type.String()),
  apiKeyId: Type.Optional(Type.String()),
  account: Type.Optional(Type.String()),
  endpoint: Type.Optional(Type.String()),
  model: Type.Optional(Type.String()),
  backend: Type.Optional(Type.String()),
  watermarkKeyId: Type.Optional(Type.String()),
  keyEpoch: Type.Optional(nullable(Type.String())),
  promptSha256: Type.Optional(Type.String()),
  outputSha256: Type.Optional(Type.String()),
  numPromptTokens: Type.Optional(Type.Integer()),
  numTokens: Type.Optional(Type.Integer()),
  outputTokens: Type.Optional(nullable(Type.Array(Type.Integer()))),
  finishReason: Type.Optional(Type.String()),
});

const listIssuanceResponseSchema = Type.Object({
  object: stringEnum(['list']),
  data: Type.Array(issuanceRecordSchema),
  total: Type.Optional(Type.Integer()),
});

const keyIdParams = Type.Object({ id: Type.String({ pattern: '^ak_[0-9a-f]{16}$' }) });

const issuanceQuery = Type.Object({
  after: Type.Optional(
    Type.String({ pattern: '^(-1|\\d{1,15})$', description: 'Records with seq greater than this' }),
  ),
  limit: Type.Optional(Type.String({ pattern: '^\\d{1,4}$', description: '1 … 1000, default 100' })),
  apiKeyId: Type.Optional(Type.String({ maxLength: 64 })),
});

const issuanceParams = Type.Object({ id: Type.String({ maxLength: 64 }) });

const adminSchema = { tags: ['admin'], security: [{ bearerAuth: [] }] };

/**
 * A record as the API shows it: the fields of {@link issuanceRecordSchema}, in its order (the token ids as
 * they are stored: {@link jsonBodyStream} writes them as an array).
 */
function issuanceFields(record: IssuanceRecord) {
  return {
    seq: record.seq,
    id: record.id,
    completionId: record.completionId,
    choiceIndex: record.choiceIndex,
    createdAt: record.createdAt,
    apiKeyId: record.apiKeyId,
    account: record.account,
    endpoint: record.endpoint,
    model: record.model,
    backend: record.backend,
    watermarkKeyId: record.watermarkKeyId,
    keyEpoch: record.keyEpoch,
    promptSha256: record.promptSha256,
    outputSha256: record.outputSha256,
    numPromptTokens: record.numPromptTokens,
    numTokens: record.numTokens,
    outputTokens: record.outputTokens,
    finishReason: record.finishReason,
  };
}

const adminRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
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
      const { body } = request;
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
        if (error instanceof RangeError) {
          // createApiKey's messages start with the field at fault
          const field = /^(\w+):/.exec(error.message)?.[1] ?? null;
          throw badRequest('TM_ERR_INVALID_REQUEST', error.message, field);
        }
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
        object: 'list' as const,
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
        params: keyIdParams,
        response: { 200: apiKeyInfoSchema, ...errorResponses() },
      },
    },
    async (request) => {
      const { id } = request.params;
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
        querystring: issuanceQuery,
        response: { 200: listIssuanceResponseSchema, ...errorResponses() },
      },
    },
    async (request, reply) => {
      const { query } = request;
      const limit = query.limit === undefined ? 100 : Number(query.limit);
      if (limit < 1 || limit > 1000)
        throw badRequest('TM_ERR_INVALID_REQUEST', 'limit must be from 1 to 1000', 'limit');
      const records = await storage.listIssuance({
        limit,
        ...(query.after === undefined ? {} : { afterSeq: Number(query.after) }),
        ...(query.apiKeyId === undefined ? {} : { apiKeyId: query.apiKeyId }),
      });
      // 1,000 records of 4,096 tokens are 25 MB of JSON, which held the event loop for 4.6 s written in one
      // go: written a piece at a time instead, other requests served in between (json-body.ts).
      const body = jsonBodyStream({
        object: 'list' as const,
        data: records.map(issuanceFields),
        total: await storage.countIssuance(),
      });
      // (the response schema documents the body; a stream of its JSON is sent as it is)
      return reply.type('application/json; charset=utf-8').send(body as never);
    },
  );

  fastify.get(
    '/v1/admin/issuance/:id',
    {
      config: { scope: 'admin' },
      schema: {
        ...adminSchema,
        summary: 'One issuance record',
        params: issuanceParams,
        response: { 200: issuanceRecordSchema, ...errorResponses() },
      },
    },
    async (request) => {
      const { id } = request.params;
      const record = await storage.getIssuance(id);
      if (record === null)
        throw new GatewayError(404, 'TM_ERR_NOT_FOUND', `no issuance record ${id}`, { param: 'id' });
      const fields = issuanceFields(record);
      return {
        ...fields,
        outputTokens: fields.outputTokens === null ? null : Array.from(fields.outputTokens),
      };
    },
  );
};

export default adminRoutes;
