/**
 * POST /v1/scan (scope verify): a small corpus → the radioactivity result of `scanCorpus`
 * (@tracemark/extraction, the library behind `tracemark scan`) under the gateway's watermark key, with every
 * fake key's p-value so that a client can plot the calibration. Larger corpora belong to `tracemark scan`.
 */

import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { DEFAULT_FAKE_KEY_SEED, DEFAULT_FAKE_KEYS, isForeignKeyScan } from '@tracemark/extraction';
import { Type } from 'typebox';
import { GatewayError } from '../errors.ts';
import { errorResponses, list, nullable, recordOf, stringEnum } from '../schemas.ts';

/** At most this many documents per request. */
export const SCAN_MAX_DOCUMENTS = 2000;
/** At most this many bytes (UTF-8) of text and prompts per request. */
export const SCAN_MAX_TEXT_BYTES: number = 2 * 1024 * 1024;
/** The request body may exceed the text by its JSON escapes and field names. */
export const SCAN_BODY_LIMIT_BYTES: number = 4 * 1024 * 1024;
/**
 * Scans running at once: all work threads but one, so detection and prompts always find a thread; more
 * wait for none and get a 429 (a scan holds a thread for up to a few seconds).
 */
export function scanMaxConcurrent(workThreads: number): number {
  return Math.max(1, workThreads - 1);
}

const scanRequestSchema = Type.Object({
  documents: Type.Array(
    Type.Object({
      text: Type.String({ description: 'The document (a completion, a web page, a model sample).' }),
      prompt: Type.Optional(
        Type.String({
          description: "The prompt it answered: the prompt's (window, token) pairs are never scored.",
        }),
      ),
      source: Type.Optional(Type.String({ maxLength: 256, description: 'A name for it in the result.' })),
    }),
    {
      minItems: 1,
      maxItems: SCAN_MAX_DOCUMENTS,
      description: `The corpus, at most ${SCAN_MAX_DOCUMENTS} documents and 2 MiB of text in all.`,
    },
  ),
  fakeKeys: Type.Optional(
    Type.Integer({
      minimum: 20,
      maximum: 200,
      description: `Fake keys for the calibration (default ${DEFAULT_FAKE_KEYS}).`,
    }),
  ),
  fakeKeySeed: Type.Optional(
    Type.String({
      minLength: 1,
      maxLength: 200,
      description: `Public label the fake keys derive from (default "${DEFAULT_FAKE_KEY_SEED}").`,
    }),
  ),
  alpha: Type.Optional(
    Type.Number({ exclusiveMinimum: 0, exclusiveMaximum: 1, description: 'Default 1e-6.' }),
  ),
});

const location = Type.Object({ document: Type.Integer(), source: Type.String(), token: Type.Integer() });
const scanVerdict = stringEnum(['radioactive', 'not_radioactive', 'insufficient']);
const optionalInteger = Type.Optional(Type.Integer());
const optionalNumber = Type.Optional(Type.Number());

const keyScanSchema = Type.Object({
  keyId: Type.String(),
  scheme: Type.String(),
  contextWidth: Type.Integer(),
  gamma: Type.Number(),
  tape: Type.Optional(
    Type.Object({
      numDocuments: optionalInteger,
      numTokens: optionalInteger,
      numPromptTokens: optionalInteger,
      numEligible: optionalInteger,
      numDistinct: optionalInteger,
      numExcludedByPrompt: optionalInteger,
    }),
  ),
  numScored: Type.Integer(),
  numGreen: Type.Integer(),
  greenFraction: Type.Number(),
  effect: Type.Number(),
  effectInterval: list(Type.Number()),
  z: Type.Number(),
  log10P: Type.Number(),
  log10PAdjusted: Type.Number(),
  calibration: Type.Object({
    fakeKeys: Type.Integer(),
    seed: Type.String(),
    rank: Type.Integer(),
    empiricalPValue: Type.Number(),
    ksStatistic: Type.Number(),
    ksPValue: Type.Number(),
    uniform: nullable(Type.Boolean()),
    minFakeLog10P: optionalNumber,
  }),
  doseUpperBound: Type.Number(),
  verdict: scanVerdict,
  reason: Type.String(),
  topDocuments: list(
    Type.Object({
      document: optionalInteger,
      source: Type.Optional(Type.String()),
      numScored: optionalInteger,
      numGreen: optionalInteger,
      log10P: optionalNumber,
      log10PCorrected: optionalNumber,
    }),
  ),
  passages: list(
    Type.Object({
      start: Type.Optional(location),
      end: Type.Optional(location),
      numScored: optionalInteger,
      numGreen: optionalInteger,
      log10P: optionalNumber,
      log10PCorrected: optionalNumber,
    }),
  ),
  fakeKeyLog10P: list(Type.Number(), {
    description: 'Each fake key’s exact log10 p-value, in index order (the rank compares with these).',
  }),
  fakeKeyRandomizedP: list(Type.Number(), {
    description:
      'Each fake key’s randomized p-value, exactly U(0, 1) under the null (the KS test uses these).',
  }),
});

/** An engine's key's corpus-wide test (`ForeignKeyScan` of @tracemark/extraction): an exact null, no fake keys. */
const foreignKeyScanSchema = Type.Object({
  keyId: Type.String(),
  family: Type.String(),
  label: Type.String(),
  scheme: Type.String(),
  parameters: recordOf(Type.Unsafe<string | number | boolean>({ type: ['string', 'number', 'boolean'] })),
  nullDistribution: Type.String(),
  numUnits: optionalInteger,
  numRepeated: optionalInteger,
  numExcludedByPrompt: optionalInteger,
  numScored: Type.Integer(),
  score: Type.Number(),
  numGreen: Type.Optional(nullable(Type.Integer())),
  greenFraction: Type.Optional(nullable(Type.Number())),
  z: Type.Optional(nullable(Type.Number())),
  log10P: Type.Number(),
  log10PAdjusted: Type.Number(),
  calibration: Type.Optional(Type.Null()),
  doseUpperBound: Type.Optional(nullable(Type.Number())),
  verdict: scanVerdict,
  reason: Type.String(),
  topDocuments: Type.Optional(
    list(
      Type.Object({
        document: optionalInteger,
        source: Type.Optional(Type.String()),
        numScored: optionalInteger,
        score: optionalNumber,
        log10P: optionalNumber,
        log10PCorrected: optionalNumber,
      }),
    ),
  ),
});

const scanResponseSchema = Type.Object({
  object: stringEnum(['tracemark.scan']),
  verdict: scanVerdict,
  reason: Type.String(),
  matchedKeyId: nullable(Type.String()),
  alpha: Type.Number(),
  missRate: optionalNumber,
  minimumDose: optionalNumber,
  numDocuments: Type.Integer(),
  numTokens: Type.Integer(),
  numPromptTokens: Type.Integer(),
  fakeKeys: Type.Object({ count: Type.Integer(), seed: Type.String() }),
  keys: list(Type.Union([keyScanSchema, foreignKeyScanSchema]), {
    description:
      "One entry per key: tracemark's (with fake-key calibration) or, in engine-native mode, the engine's.",
  }),
});

const scanRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  const { work } = fastify.gateway;
  const maxConcurrent = scanMaxConcurrent(work.threads);
  let running = 0;
  fastify.post(
    '/v1/scan',
    {
      config: { scope: 'verify' },
      bodyLimit: Math.max(fastify.gateway.config.bodyLimitBytes, SCAN_BODY_LIMIT_BYTES),
      schema: {
        summary: 'Scan a small corpus for the watermark’s radioactivity, calibrated with fake keys',
        description: `The result of \`tracemark scan --json\` for up to ${SCAN_MAX_DOCUMENTS} documents (2 MiB of text) under the gateway's watermark key, with each fake key's p-value (for a calibration plot). Radioactive means that text generated by this service, or a model trained on it, is in the corpus.`,
        tags: ['detection'],
        security: [{ bearerAuth: [] }],
        body: scanRequestSchema,
        response: { 200: scanResponseSchema, ...errorResponses() },
      },
    },
    async (request) => {
      const { body } = request;
      let bytes = 0;
      for (const document of body.documents) {
        bytes += Buffer.byteLength(document.text, 'utf8');
        if (document.prompt !== undefined) bytes += Buffer.byteLength(document.prompt, 'utf8');
      }
      if (bytes > SCAN_MAX_TEXT_BYTES) {
        throw new GatewayError(
          413,
          'TM_ERR_BODY_TOO_LARGE',
          `the corpus holds ${(bytes / 1024 / 1024).toFixed(1)} MiB of text; /v1/scan takes at most 2 MiB (use \`tracemark scan\` for larger corpora)`,
          { param: 'documents' },
        );
      }
      if (running >= maxConcurrent) {
        throw new GatewayError(
          429,
          'TM_ERR_RATE_LIMITED',
          'other scans are running; retry in a few seconds',
          {
            retryAfterSeconds: 2,
          },
        );
      }
      running++;
      try {
        // Tokenizing and scoring run on a work thread, within the per-request work budget.
        const { fakeKeyLog10P, fakeKeyRandomizedP, ...report } = await work.run({
          kind: 'scan',
          documents: body.documents,
          ...(body.fakeKeys === undefined ? {} : { fakeKeys: body.fakeKeys }),
          ...(body.fakeKeySeed === undefined ? {} : { fakeKeySeed: body.fakeKeySeed }),
          ...(body.alpha === undefined ? {} : { alpha: body.alpha }),
        });
        return {
          object: 'tracemark.scan' as const,
          ...report,
          keys: report.keys.map((scan) =>
            isForeignKeyScan(scan) ? scan : { ...scan, fakeKeyLog10P, fakeKeyRandomizedP },
          ),
        };
      } finally {
        running--;
      }
    },
  );
};

export default scanRoutes;
