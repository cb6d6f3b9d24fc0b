/**
 * POST /v1/chat/completions and POST /v1/completions, in the OpenAI shapes. The route declares the
 * endpoints; the completion's stages live in ../completion/ (handle.ts names them in order).
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import { type TSchema, Type } from 'typebox';
import { engineNativeSession } from '../completion/engine-native.ts';
import { type CompletionStages, createCompletionHandler } from '../completion/handle.ts';
import { checkWeakeningFields } from '../completion/request.ts';
import { samplingSession } from '../completion/session.ts';
import type { EngineNativeServices } from '../context.ts';
import { anyObject, errorResponses, nullable, recordOf, stringEnum } from '../schemas.ts';

// Requests: the OpenAI fields this gateway reads or accepts. Limits that depend on the configuration
// (max_tokens, n, logprobs) are checked later, in ../completion/request.ts.

const stopSchema = nullable(
  Type.Union([Type.String({ maxLength: 256 }), Type.Array(Type.String({ maxLength: 256 }), { maxItems: 4 })]),
);

const model = Type.String({ minLength: 1, maxLength: 256 });
const temperature = Type.Optional(nullable(Type.Number({ minimum: 0, maximum: 2 })));
const topP = Type.Optional(nullable(Type.Number({ exclusiveMinimum: 0, maximum: 1 })));
const stream = Type.Optional(nullable(Type.Boolean()));
const user = Type.Optional(nullable(Type.String({ maxLength: 256 })));
const penalty = Type.Optional(nullable(Type.Number({ minimum: -2, maximum: 2 })));

/** Sampling fields common to both endpoints. */
const samplingProperties = {
  model,
  max_tokens: Type.Optional(nullable(Type.Integer({ minimum: 1 }))),
  temperature,
  top_p: topP,
  n: Type.Optional(nullable(Type.Integer({ minimum: 1 }))),
  seed: Type.Optional(nullable(Type.Integer())),
  stop: Type.Optional(stopSchema),
  stream,
  stream_options: Type.Optional(
    nullable(
      Type.Object({
        include_usage: Type.Optional(nullable(Type.Boolean())),
        include_obfuscation: Type.Optional(nullable(Type.Boolean())),
      }),
    ),
  ),
  user,
  frequency_penalty: penalty,
  presence_penalty: penalty,
};

const textPart = Type.Object({ type: Type.String(), text: Type.Optional(Type.String()) });
const textContent = Type.Union([Type.String(), Type.Array(textPart, { maxItems: 256 })]);

const chatRequestSchema = Type.Object({
  ...samplingProperties,
  messages: Type.Array(
    Type.Object({
      role: stringEnum(['system', 'developer', 'user', 'assistant', 'tool', 'function']),
      content: Type.Optional(nullable(textContent)),
      name: Type.Optional(Type.String()),
    }),
    { minItems: 1, maxItems: 2048 },
  ),
  max_completion_tokens: Type.Optional(nullable(Type.Integer({ minimum: 1 }))),
  logprobs: Type.Optional(nullable(Type.Boolean())),
  top_logprobs: Type.Optional(nullable(Type.Integer({ minimum: 0, maximum: 20 }))),
  response_format: Type.Optional(nullable(Type.Object({ type: Type.String() }))),
});

/** POST /v1/responses (the OpenAI Responses API): text input and output, streamed or not. */
const responsesRequestSchema = Type.Object({
  model,
  input: Type.Union([
    Type.String(),
    Type.Array(
      Type.Object({
        type: Type.Optional(Type.String()),
        role: stringEnum(['system', 'developer', 'user', 'assistant']),
        content: Type.Optional(textContent),
      }),
      { minItems: 1, maxItems: 2048 },
    ),
  ]),
  instructions: Type.Optional(nullable(Type.String())),
  max_output_tokens: Type.Optional(nullable(Type.Integer({ minimum: 1 }))),
  temperature,
  top_p: topP,
  stream,
  user,
  store: Type.Optional(nullable(Type.Boolean())),
  metadata: Type.Optional(nullable(anyObject())),
  previous_response_id: Type.Optional(nullable(Type.String())),
  tools: Type.Optional(nullable(Type.Unsafe<unknown[]>({ type: 'array' }))),
  text: Type.Optional(nullable(anyObject())),
});

const completionRequestSchema = Type.Object({
  ...samplingProperties,
  prompt: Type.Union([
    Type.String(),
    Type.Array(Type.String(), { minItems: 1, maxItems: 128 }),
    Type.Array(Type.Integer({ minimum: 0 }), { minItems: 1 }),
    Type.Array(Type.Array(Type.Integer({ minimum: 0 }), { minItems: 1 }), { minItems: 1, maxItems: 128 }),
  ]),
  logprobs: Type.Optional(nullable(Type.Integer({ minimum: 0, maximum: 5 }))),
  echo: Type.Optional(nullable(Type.Boolean())),
  suffix: Type.Optional(nullable(Type.String())),
  best_of: Type.Optional(nullable(Type.Integer({ minimum: 1 }))),
});

// Responses.

/** The non-streamed Responses API body (the fields this gateway fills). */
const responsesResponseSchema = Type.Object({
  id: Type.String(),
  object: stringEnum(['response']),
  created_at: Type.Integer(),
  status: Type.String(),
  model: Type.String(),
  output: Type.Array(anyObject(true)),
  output_text: Type.Optional(Type.String()),
  usage: anyObject(true),
  tracemark: Type.Optional(anyObject(true)),
});

const usageSchema = Type.Object({
  prompt_tokens: Type.Integer(),
  completion_tokens: Type.Integer(),
  total_tokens: Type.Integer(),
});

const tracemarkSchema = Type.Object(
  {
    watermark_key_id: Type.String(),
    key_epoch: Type.Optional(nullable(Type.String())),
    issuance_ids: Type.Array(Type.String()),
    watermark_strength: Type.Optional(
      Type.Array(
        Type.Object({
          index: Type.Integer(),
          tokens: Type.Integer(),
          expected_green_fraction: Type.Number(),
          expected_z: Type.Number(),
          expected_log10_p: Type.Number(),
          spike_entropy_sum: Type.Number(),
        }),
        {
          description:
            'Per choice, the mark’s expected strength from the distributions its tokens were sampled from: expected green fraction, the z and log10 p a detector would report for it (an upper estimate: repeats are scored once), and the spike-entropy sum. A choice whose expected_log10_p is above log10(α) is provable only through the issuance log.',
        },
      ),
    ),
  },
  {
    description: 'Provenance: the watermark key id (public) and the issuance-log records of this response.',
  },
);

const topLogprobProperties = {
  token: Type.String(),
  logprob: Type.Number(),
  bytes: nullable(Type.Array(Type.Integer())),
};
const topLogprobSchema = Type.Object(topLogprobProperties);

const chatLogprobsSchema = nullable(
  Type.Object({
    content: nullable(
      Type.Array(Type.Object({ ...topLogprobProperties, top_logprobs: Type.Array(topLogprobSchema) })),
    ),
    refusal: Type.Optional(nullable(Type.Array(topLogprobSchema))),
  }),
);

const chatResponseSchema = Type.Object({
  id: Type.String(),
  object: stringEnum(['chat.completion']),
  created: Type.Integer(),
  model: Type.String(),
  system_fingerprint: Type.Optional(Type.String()),
  choices: Type.Array(
    Type.Object({
      index: Type.Integer(),
      message: Type.Object({
        role: stringEnum(['assistant']),
        content: Type.String(),
        refusal: Type.Optional(Type.Null()),
      }),
      logprobs: chatLogprobsSchema,
      finish_reason: Type.String(),
    }),
  ),
  usage: usageSchema,
  tracemark: Type.Optional(tracemarkSchema),
});

const legacyLogprobsSchema = nullable(
  Type.Object({
    tokens: Type.Array(Type.String()),
    token_logprobs: Type.Array(Type.Number()),
    top_logprobs: Type.Array(recordOf(Type.Number())),
    text_offset: Type.Array(Type.Integer()),
  }),
);

const completionResponseSchema = Type.Object({
  id: Type.String(),
  object: stringEnum(['text_completion']),
  created: Type.Integer(),
  model: Type.String(),
  system_fingerprint: Type.Optional(Type.String()),
  choices: Type.Array(
    Type.Object({
      index: Type.Integer(),
      text: Type.String(),
      logprobs: legacyLogprobsSchema,
      finish_reason: Type.String(),
    }),
  ),
  usage: usageSchema,
  tracemark: Type.Optional(tracemarkSchema),
});

/** A streamed completion: Server-Sent Events, one JSON chunk per `data:` line, then `data: [DONE]`. */
const eventStreamResponse = Type.String({
  description:
    'With "stream": true, text/event-stream: `data: {chunk}` lines, then `data: [DONE]`. If the issuance record cannot be written, an error event `data: {"error":{…}}` replaces [DONE].',
});

/** The stages of the gateway's own sampler: it marks every token it samples with its key. */
function samplingStages(fastify: FastifyInstance): CompletionStages {
  const { config, backend, watermarker, keyEpoch } = fastify.gateway;
  if (watermarker === null) throw new Error('the gateway samples only with a tracemark key');
  const accountKeys = fastify.gateway.accountKeys ?? null;
  return {
    session: samplingSession(backend, watermarker, accountKeys),
    issuance: {
      tokenizer: backend.tokenizer,
      watermarkKeyId: watermarker.keyId,
      keyEpoch,
      accountKeys,
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

const completionsRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  const engine = fastify.gateway.engineNative;
  const handle = createCompletionHandler(
    fastify,
    engine === null ? samplingStages(fastify) : engineNativeStages(fastify, engine),
  );

  const responses = (schema: TSchema) => ({
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
