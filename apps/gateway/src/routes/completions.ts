/**
 * POST /v1/chat/completions and POST /v1/completions, in the OpenAI shapes. The route declares the
 * endpoints; the completion's stages live in ../completion/ (handle.ts names them in order).
 */
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import type { EngineNativeServices } from '../app.ts';
import { engineNativeSession } from '../completion/engine-native.ts';
import { type CompletionStages, createCompletionHandler } from '../completion/handle.ts';
import { checkWeakeningFields } from '../completion/request.ts';
import { samplingSession } from '../completion/session.ts';
import {
  chatRequestSchema,
  chatResponseSchema,
  completionRequestSchema,
  completionResponseSchema,
  errorResponses,
  eventStreamResponse,
  responsesRequestSchema,
  responsesResponseSchema,
} from '../schemas.ts';

/** The stages of the gateway's own sampler: it marks every token it samples with its key. */
function samplingStages(fastify: FastifyInstance): CompletionStages {
  const { config, backend, watermarker, keyEpoch } = fastify.gateway;
  if (watermarker === null) throw new Error('the gateway samples only with a tracemark key');
  return {
    session: samplingSession(backend, watermarker),
    issuance: {
      tokenizer: backend.tokenizer,
      watermarkKeyId: watermarker.keyId,
      keyEpoch,
      backendKind: backend.kind,
      retainTokens: config.issuanceTokenRetentionDays !== 0,
    },
    shaping: { tokenizer: backend.tokenizer, watermarkKeyId: watermarker.keyId, keyEpoch, watermarker },
  };
}

/**
 * The stages of engine-native mode: the engine samples and marks, the gateway streams its chunks through,
 * records each choice, and tests a sample of them in the background (upstream-mark/live-check.ts).
 */
function engineNativeStages(fastify: FastifyInstance, engine: EngineNativeServices): CompletionStages {
  const { config, watermarkKey } = fastify.gateway;
  const tokenizer = engine.upstream.tokenizer;
  const gauges = fastify.metrics.upstreamMark;
  const startup = engine.startupCheck;
  gauges.log10P.set(startup.log10P);
  gauges.scoredTokens.set(startup.numScored);
  gauges.missing.set(0);
  const live = fastify.gateway.upstreamMarkCheck!;
  return {
    session: engineNativeSession({
      upstream: engine.upstream,
      tokenizer,
      onIssued: (tokens) => live.observe(tokens),
    }),
    issuance: {
      tokenizer,
      watermarkKeyId: watermarkKey.keyId,
      keyEpoch: null,
      backendKind: 'engine-native',
      retainTokens: config.issuanceTokenRetentionDays !== 0,
    },
    shaping: { tokenizer, watermarkKeyId: watermarkKey.keyId, keyEpoch: null, watermarker: null },
  };
}

const completionsRoutes: FastifyPluginAsync = async (fastify: FastifyInstance) => {
  const engine = fastify.gateway.engineNative;
  const handle = createCompletionHandler(
    fastify,
    engine === null ? samplingStages(fastify) : engineNativeStages(fastify, engine),
  );

  const responses = (schema: object) => ({
    200: {
      description: 'The completion (JSON), or with "stream": true a text/event-stream of chunks.',
      content: {
        'application/json': { schema },
        'text/event-stream': { schema: eventStreamResponse },
      },
    },
    ...errorResponses(),
  });

  fastify.post(
    '/v1/chat/completions',
    {
      config: { scope: 'generate' },
      preValidation: async (request) => checkWeakeningFields(request.body),
      schema: {
        summary: 'Create a watermarked chat completion',
        tags: ['completions'],
        security: [{ bearerAuth: [] }],
        body: chatRequestSchema,
        response: responses(chatResponseSchema),
      },
    },
    (request, reply) => handle('chat.completions', request, reply),
  );

  fastify.post(
    '/v1/completions',
    {
      config: { scope: 'generate' },
      preValidation: async (request) => checkWeakeningFields(request.body),
      schema: {
        summary: 'Create a watermarked text completion (legacy)',
        tags: ['completions'],
        security: [{ bearerAuth: [] }],
        body: completionRequestSchema,
        response: responses(completionResponseSchema),
      },
    },
    (request, reply) => handle('completions', request, reply),
  );

  fastify.post(
    '/v1/responses',
    {
      config: { scope: 'generate' },
      preValidation: async (request) => checkWeakeningFields(request.body),
      schema: {
        summary: 'Create a watermarked response (the OpenAI Responses API: text input and output)',
        description:
          'Text input (a string, or message items with text parts) and one text output; with "stream": true the typed events response.created … response.output_text.delta … response.completed. No tools, no stored state (previous_response_id is refused).',
        tags: ['completions'],
        security: [{ bearerAuth: [] }],
        body: responsesRequestSchema,
        response: responses(responsesResponseSchema),
      },
    },
    (request, reply) => handle('responses', request, reply),
  );
};

export default completionsRoutes;
