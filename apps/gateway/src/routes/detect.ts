/** POST /v1/detect: the same detection path as `tracemark detect --json`, under the gateway's watermark key. */
import { InputError } from '@tracemark/detection';
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { assertTextOrTokens, badRequest } from '../errors.ts';
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
      const detector = fastify.gateway.detector({
        ...(body.fpr === undefined ? {} : { fpr: body.fpr }),
        window: body.window === true,
      });
      const input = { source: 'request', ...(body.prompt === undefined ? {} : { prompt: body.prompt }) };
      try {
        const result =
          body.text !== undefined
            ? detector.detectText(body.text, input)
            : detector.detectTokens(body.tokens!, input);
        fastify.metrics.detections.inc({ verdict: result.verdict });
        return {
          ...result,
          tokensToSettle: Number.isFinite(result.tokensToSettle) ? result.tokensToSettle : null,
        };
      } catch (error) {
        if (error instanceof InputError) {
          throw badRequest(
            error.code === 'TM_ERR_INVALID_TOKENS' ? 'TM_ERR_INVALID_TOKENS' : 'TM_ERR_INVALID_REQUEST',
            error.message,
            body.text !== undefined ? 'text' : 'tokens',
          );
        }
        throw error;
      }
    },
  );
};

export default detectRoutes;
