/**
 * POST /v1/detect: the same detection path as `tracemark detect --json`, under the gateway's serving key:
 * its own tracemark key, or in engine-native mode the engine's key (vLLM, transformers, SynthID, SGLang),
 * for which the result carries the scheme's score and `numGreen` is null where the scheme has no green lists.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { assertTextOrTokens } from '../errors.ts';
import { errorResponses, list, nullable, stringEnum } from '../schemas.ts';

const tokenIds = Type.Array(Type.Integer({ minimum: 0 }));

const detectRequestSchema = Type.Object({
  text: Type.Optional(Type.String()),
  tokens: Type.Optional(tokenIds),
  prompt: Type.Optional(Type.Union([Type.String(), tokenIds])),
  fpr: Type.Optional(Type.Number({ exclusiveMinimum: 0, exclusiveMaximum: 1 })),
  window: Type.Optional(Type.Boolean()),
});

const windowSchema = nullable(
  Type.Object({
    startToken: Type.Integer(),
    endToken: Type.Integer(),
    tapeStart: Type.Integer(),
    length: Type.Integer(),
    numGreen: Type.Integer(),
    score: Type.Optional(
      Type.Number({ description: "Keys without green lists: the best window's score sum" }),
    ),
    log10P: Type.Number(),
    windowsSearched: Type.Integer(),
    log10PCorrected: Type.Number(),
  }),
);

/** One key's result; the document's result carries the reported key's at its top level. */
const keyResultProperties = {
  keyId: Type.String(),
  verdict: stringEnum(['watermarked', 'not_watermarked', 'insufficient']),
  numScored: Type.Integer(),
  numGreen: nullable(Type.Integer(), { description: 'null for a key without green lists (Gumbel schemes)' }),
  greenFraction: nullable(Type.Number()),
  z: Type.Number(),
  log10P: Type.Number(),
  log10PAdjusted: Type.Number(),
  scheme: Type.Optional(
    Type.String({
      description: 'Keys other than green-list tracemark keys: the scheme (gumbel, vllm:gumbel, …)',
    }),
  ),
  score: Type.Optional(Type.Number({ description: 'Keys without green lists: the score S of their scheme' })),
  peerLog10P: Type.Optional(
    nullable(Type.Number(), { description: "Engines' keys: the engine's own p-value formula, log10" }),
  ),
  dedup: Type.Optional(stringEnum(['none', 'context', 'strict'])),
};

/** The `DocumentResult` of @tracemark/detection: the same fields `tracemark detect --json` prints. */
const detectResponseSchema = Type.Object({
  source: Type.String(),
  ...keyResultProperties,
  numTokens: Type.Integer(),
  tokenizer: Type.String(),
  keysTested: Type.Integer(),
  fpr: Type.Number(),
  tokensToSettle: nullable(Type.Number(), { description: 'null when no number of tokens would settle it' }),
  window: windowSchema,
  keys: list(Type.Partial(Type.Object(keyResultProperties))),
});

const detectRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.post(
    '/v1/detect',
    {
      config: { scope: 'verify' },
      schema: {
        summary: 'Detect the watermark in a text or a token sequence',
        description:
          'Send exactly one of "text" or "tokens"; "prompt" (text or token ids) excludes the prompt\'s windows. The result has the fields `tracemark detect --json` prints.',
        tags: ['detection'],
        security: [{ bearerAuth: [] }],
        body: detectRequestSchema,
        response: { 200: detectResponseSchema, ...errorResponses() },
      },
    },
    async (request) => {
      const { body } = request;
      assertTextOrTokens(body);
      // Tokenizing and scoring run on a work thread unless the input is small (src/work/pool.ts).
      const result = await fastify.gateway.work.run({
        kind: 'detect',
        ...(body.text === undefined ? {} : { text: body.text }),
        ...(body.tokens === undefined ? {} : { tokens: body.tokens }),
        ...(body.prompt === undefined ? {} : { prompt: body.prompt }),
        ...(body.fpr === undefined ? {} : { fpr: body.fpr }),
        window: body.window === true,
      });
      fastify.metrics.detections.inc({ verdict: result.verdict });
      return {
        ...result,
        tokensToSettle: Number.isFinite(result.tokensToSettle) ? result.tokensToSettle : null,
      };
    },
  );
};

export default detectRoutes;
