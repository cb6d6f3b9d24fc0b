/**
 * POST /v1/detect: the same detection path as `tracemark detect --json`, under the gateway's serving key:
 * its own tracemark key, or in engine-native mode the engine's key (vLLM, transformers, SynthID, SGLang),
 * for which the result carries the scheme's score and `numGreen` is null where the scheme has no green lists.
 */
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { assertTextOrTokens } from '../errors.ts';
import { detectRequestSchema, detectResponseSchema, errorResponses } from '../schemas.ts';

interface DetectBody {
  readonly text?: string;
  readonly tokens?: number[];
  readonly prompt?: string | number[];
  readonly fpr?: number;
  readonly window?: boolean;
}

const detectRoutes: FastifyPluginAsync = async (fastify: FastifyInstance) => {
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
      const body = request.body as DetectBody;
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
