/**
 * POST /v1/scan (scope verify): a small corpus → the radioactivity result of `scanCorpus`
 * (@tracemark/extraction, the library behind `tracemark scan`) under the gateway's watermark key, with every
 * fake key's p-value so that a client can plot the calibration. Larger corpora belong to `tracemark scan`.
 */
import { DEFAULT_FAKE_KEY_SEED, DEFAULT_FAKE_KEYS, isForeignKeyScan } from '@tracemark/extraction';
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { GatewayError } from '../errors.ts';
import { errorResponses, type JsonSchema } from '../schemas.ts';
import type { ScanTask } from '../work/tasks.ts';

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

const number = { type: 'number' };
const integer = { type: 'integer' };
const string = { type: 'string' };

export const scanRequestSchema: JsonSchema = {
  type: 'object',
  required: ['documents'],
  properties: {
    documents: {
      type: 'array',
      minItems: 1,
      maxItems: SCAN_MAX_DOCUMENTS,
      description: `The corpus, at most ${SCAN_MAX_DOCUMENTS} documents and 2 MiB of text in all.`,
      items: {
        type: 'object',
        required: ['text'],
        properties: {
          text: { type: 'string', description: 'The document (a completion, a web page, a model sample).' },
          prompt: {
            type: 'string',
            description: "The prompt it answered: the prompt's (window, token) pairs are never scored.",
          },
          source: { type: 'string', maxLength: 256, description: 'A name for it in the result.' },
        },
      },
    },
    fakeKeys: {
      type: 'integer',
      minimum: 20,
      maximum: 200,
      description: `Fake keys for the calibration (default ${DEFAULT_FAKE_KEYS}).`,
    },
    fakeKeySeed: {
      type: 'string',
      minLength: 1,
      maxLength: 200,
      description: `Public label the fake keys derive from (default "${DEFAULT_FAKE_KEY_SEED}").`,
    },
    alpha: { type: 'number', exclusiveMinimum: 0, exclusiveMaximum: 1, description: 'Default 1e-6.' },
  },
};

const location = {
  type: 'object',
  required: ['document', 'source', 'token'],
  properties: { document: integer, source: string, token: integer },
};

const keyScanSchema = {
  type: 'object',
  required: [
    'keyId',
    'scheme',
    'contextWidth',
    'gamma',
    'numScored',
    'numGreen',
    'greenFraction',
    'effect',
    'effectInterval',
    'z',
    'log10P',
    'log10PAdjusted',
    'calibration',
    'doseUpperBound',
    'verdict',
    'reason',
    'topDocuments',
    'passages',
    'fakeKeyLog10P',
    'fakeKeyRandomizedP',
  ],
  properties: {
    keyId: string,
    scheme: string,
    contextWidth: integer,
    gamma: number,
    tape: {
      type: 'object',
      properties: {
        numDocuments: integer,
        numTokens: integer,
        numPromptTokens: integer,
        numEligible: integer,
        numDistinct: integer,
        numExcludedByPrompt: integer,
      },
    },
    numScored: integer,
    numGreen: integer,
    greenFraction: number,
    effect: number,
    effectInterval: { type: 'array', items: number },
    z: number,
    log10P: number,
    log10PAdjusted: number,
    calibration: {
      type: 'object',
      required: ['fakeKeys', 'seed', 'rank', 'empiricalPValue', 'ksStatistic', 'ksPValue', 'uniform'],
      properties: {
        fakeKeys: integer,
        seed: string,
        rank: integer,
        empiricalPValue: number,
        ksStatistic: number,
        ksPValue: number,
        uniform: { type: ['boolean', 'null'] },
        minFakeLog10P: number,
      },
    },
    doseUpperBound: number,
    verdict: { type: 'string', enum: ['radioactive', 'not_radioactive', 'insufficient'] },
    reason: string,
    topDocuments: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          document: integer,
          source: string,
          numScored: integer,
          numGreen: integer,
          log10P: number,
          log10PCorrected: number,
        },
      },
    },
    passages: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          start: location,
          end: location,
          numScored: integer,
          numGreen: integer,
          log10P: number,
          log10PCorrected: number,
        },
      },
    },
    fakeKeyLog10P: {
      type: 'array',
      items: number,
      description: 'Each fake key’s exact log10 p-value, in index order (the rank compares with these).',
    },
    fakeKeyRandomizedP: {
      type: 'array',
      items: number,
      description:
        'Each fake key’s randomized p-value, exactly U(0, 1) under the null (the KS test uses these).',
    },
  },
};

/** An engine's key's corpus-wide test (`ForeignKeyScan` of @tracemark/extraction): an exact null, no fake keys. */
const foreignKeyScanSchema = {
  type: 'object',
  required: [
    'keyId',
    'family',
    'label',
    'scheme',
    'parameters',
    'nullDistribution',
    'numScored',
    'score',
    'log10P',
    'log10PAdjusted',
    'verdict',
    'reason',
  ],
  properties: {
    keyId: string,
    family: string,
    label: string,
    scheme: string,
    parameters: { type: 'object', additionalProperties: { type: ['string', 'number', 'boolean'] } },
    nullDistribution: string,
    numUnits: integer,
    numRepeated: integer,
    numExcludedByPrompt: integer,
    numScored: integer,
    score: number,
    numGreen: { type: ['integer', 'null'] },
    greenFraction: { type: ['number', 'null'] },
    z: { type: ['number', 'null'] },
    log10P: number,
    log10PAdjusted: number,
    calibration: { type: 'null' },
    doseUpperBound: { type: ['number', 'null'] },
    verdict: { type: 'string', enum: ['radioactive', 'not_radioactive', 'insufficient'] },
    reason: string,
    topDocuments: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          document: integer,
          source: string,
          numScored: integer,
          score: number,
          log10P: number,
          log10PCorrected: number,
        },
      },
    },
  },
};

export const scanResponseSchema: JsonSchema = {
  type: 'object',
  required: [
    'object',
    'verdict',
    'reason',
    'matchedKeyId',
    'alpha',
    'numDocuments',
    'numTokens',
    'numPromptTokens',
    'fakeKeys',
    'keys',
  ],
  properties: {
    object: { type: 'string', enum: ['tracemark.scan'] },
    verdict: { type: 'string', enum: ['radioactive', 'not_radioactive', 'insufficient'] },
    reason: string,
    matchedKeyId: { type: ['string', 'null'] },
    alpha: number,
    missRate: number,
    minimumDose: number,
    numDocuments: integer,
    numTokens: integer,
    numPromptTokens: integer,
    fakeKeys: { type: 'object', required: ['count', 'seed'], properties: { count: integer, seed: string } },
    keys: {
      type: 'array',
      description:
        "One entry per key: tracemark's (with fake-key calibration) or, in engine-native mode, the engine's.",
      items: { anyOf: [keyScanSchema, foreignKeyScanSchema] },
    },
  },
};

type ScanBody = Omit<ScanTask, 'kind'>;

const scanRoutes: FastifyPluginAsync = async (fastify: FastifyInstance) => {
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
      const body = request.body as ScanBody;
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
          object: 'tracemark.scan',
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
