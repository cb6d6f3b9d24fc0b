/**
 * Provenance: POST /v1/verify (scope verify) returns a signed evidence report; the issuance log's signed
 * checkpoint and consistency proofs are public (sizes and hashes only); inclusion proofs need scope verify;
 * the public keys that check all of it are at /.well-known/tracemark/keys.json.
 */

import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { EVIDENCE_PREDICATE_TYPE, toHex } from '@tracemark/provenance';
import { Type } from 'typebox';
import { GATEWAY_VERSION } from '../context.ts';
import { assertTextOrTokens, badRequest, GatewayError } from '../errors.ts';
import { createSpoofingChecker } from '../provenance/spoofing.ts';
import { createVerifier, type VerifyInput } from '../provenance/verify.ts';
import { errorResponses, list, nullable, stringEnum } from '../schemas.ts';
import type { StoredCheckpoint } from '../storage/types.ts';

const tokenIds = Type.Array(Type.Integer({ minimum: 0 }));

const verifyRequestSchema = Type.Object({
  text: Type.Optional(
    Type.String({ description: 'The text to verify (exact bytes; the report is about its SHA-256).' }),
  ),
  tokens: Type.Optional(
    Type.Array(Type.Integer({ minimum: 0 }), {
      description: 'Or: token ids of the key’s tokenizer; the report then carries their decoding.',
    }),
  ),
  prompt: Type.Optional(Type.Union([Type.String(), tokenIds])),
  fpr: Type.Optional(Type.Number({ exclusiveMinimum: 0, exclusiveMaximum: 1 })),
});

/**
 * The detection numbers of a verification, for a tracemark key or an engine's (vLLM, SynthID, …). A new
 * field goes here and in the route's answer; the type provider then makes the handler fill it.
 */
const verifyDetectionSchema = Type.Object({
  keyId: Type.String(),
  numTokens: Type.Integer(),
  numScored: Type.Integer(),
  numGreen: nullable(Type.Integer(), { description: 'null for schemes without green lists' }),
  z: Type.Number(),
  log10P: Type.Number(),
  log10PAdjusted: Type.Number(),
  keysTested: Type.Integer(),
  fpr: Type.Number(),
  scheme: Type.Optional(
    Type.String({ description: "the reported key's scheme (tracemark:lefthash, vllm:gumbel, …)" }),
  ),
  score: Type.Optional(Type.Number({ description: "engines' keys: the scheme's test statistic" })),
  windowSearched: Type.Optional(
    Type.Boolean({
      description: "false for engines' keys: windowed search is not supported, the whole text was tested",
    }),
  ),
});

const issuanceMatchSchema = Type.Object({
  match: stringEnum(['exact', 'near-duplicate']),
  recordId: Type.String(),
  similarity: Type.Number(),
  leafIndex: Type.Integer(),
  treeSize: Type.Integer(),
  disclosed: Type.Boolean({ description: 'Whether the report carries the record (same account, or admin).' }),
});

const dsseEnvelopeSchema = Type.Object(
  {
    payloadType: Type.String(),
    payload: Type.String(),
    signatures: list(Type.Object({ keyid: Type.String(), sig: Type.String() })),
  },
  { description: 'DSSE envelope; the payload is the base64 of an in-toto Statement v1 (canonical JSON).' },
);

const verifyResponseSchema = Type.Object({
  object: stringEnum(['tracemark.verification']),
  verdict: stringEnum(['watermarked', 'not_watermarked', 'insufficient']),
  summary: Type.String({ description: 'The verdict in plain words.' }),
  detection: verifyDetectionSchema,
  issuance: nullable(issuanceMatchSchema),
  spoofing: nullable(
    Type.Object(
      {
        test: Type.String(),
        learnability: Type.String(),
        keyId: Type.String(),
        numScored: Type.Integer(),
        commonMarkedShare: nullable(Type.Number()),
        rareMarkedShare: nullable(Type.Number()),
        log10P: Type.Number(),
        alpha: Type.Number(),
        flagged: Type.Boolean(),
      },
      {
        description:
          'A watermarked text that no issued output matches exactly, under a green-list key of context 1 or 2: does its mark sit where an attacker who learned it would put it? Reported beside the verdict, never changing it; null where it does not apply.',
      },
    ),
  ),
  report: dsseEnvelopeSchema,
  keyId: Type.String({ description: 'DSSE key id of the signature: <name>+<key hash>.' }),
  verifierKey: Type.String({
    description: 'The signer’s verifier key string (also at /.well-known/tracemark/keys.json).',
  }),
});

const hex = Type.String({ pattern: '^[0-9a-f]{64}$' });
const treeSizeString = (options: { description?: string } = {}) =>
  Type.String({ pattern: '^\\d{1,15}$', ...options });

const checkpointProperties = {
  treeSize: Type.Integer(),
  rootHash: hex,
  checkpoint: Type.String({ description: 'C2SP signed checkpoint (signed note text).' }),
};

const checkpointResponseSchema = Type.Object({ origin: Type.String(), ...checkpointProperties });

const inclusionQuerySchema = Type.Object({
  leafIndex: Type.Optional(treeSizeString()),
  recordId: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
  treeSize: Type.Optional(treeSizeString({ description: 'Default: the whole log.' })),
});

const inclusionResponseSchema = Type.Object({
  recordId: Type.String(),
  leafIndex: Type.Integer(),
  leafHash: hex,
  inclusionProof: list(hex, { description: 'Audit path, leaf level first (RFC 9162 §2.1.3).' }),
  ...checkpointProperties,
});

const consistencyQuerySchema = Type.Object({
  from: treeSizeString(),
  to: Type.Optional(treeSizeString({ description: 'Default: the whole log.' })),
});

const consistencyResponseSchema = Type.Object({
  fromSize: Type.Integer(),
  fromRootHash: hex,
  consistencyProof: list(hex, { description: 'RFC 9162 §2.1.4.' }),
  ...checkpointProperties,
});

const publicKeysResponseSchema = Type.Object({
  logOrigin: Type.String(),
  keys: list(
    Type.Object({
      keyId: Type.String({ description: 'DSSE key id and signed-note key name + hash.' }),
      verifierKey: Type.String({ description: 'Signed-note verifier key string: <name>+<hash>+<base64>.' }),
      algorithm: stringEnum(['ed25519']),
      uses: list(stringEnum(['checkpoints', 'evidence-reports'])),
    }),
  ),
  watermarkKeyIds: list(Type.String(), {
    description: 'Public ids of the watermark keys verification tests.',
  }),
  predicateType: Type.String(),
});

const logSchema = { tags: ['provenance'] };

/** Consistency proofs kept in memory (each a few hundred bytes). */
const CONSISTENCY_CACHE_SIZE = 1024;

const provenanceRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  const { storage, issuanceLog, logSigningKey } = fastify.gateway;
  const { work } = fastify.gateway;
  // The analysis (tokens, detection, localization) and the report's signature run on a work thread unless
  // the text is small.
  const verifier = createVerifier(
    fastify.gateway,
    GATEWAY_VERSION,
    {
      analyze: (input, keys) => work.run({ kind: 'verify', input, keys }),
      sign: (predicate, text) => work.run({ kind: 'sign', predicate, text }),
    },
    fastify.gateway.engineNative === null ? createSpoofingChecker(fastify.gateway.backend.tokenizer) : null,
  );
  // Started with another key file than the one its log's outputs were marked under: say so at start, since
  // every verification of those outputs will say that their key was not tested.
  fastify.addHook('onReady', async () => {
    const unheld = await verifier.unheldKeyIds();
    if (unheld.length > 0) {
      fastify.log.warn(
        { unheldKeyIds: unheld },
        `the issuance log holds outputs marked under ${unheld.length === 1 ? 'a key' : `${unheld.length} keys`} this gateway does not hold (${unheld.join(', ')}): it was started before with another key file, and /v1/verify cannot test their mark (start it with that --key to verify them)`,
      );
    }
  });

  /**
   * The signed checkpoint a proof is served against: the latest (signed now if the log has grown since the
   * last one), or, when the client names a size, a checkpoint of that size signed before. A client never
   * makes the gateway sign or store a checkpoint of a size of its choosing.
   */
  const signedTreeOf = async (value: string | undefined, param: string): Promise<StoredCheckpoint> => {
    const latest = await issuanceLog.checkpoint();
    if (value === undefined) return latest;
    const requested = Number(value);
    if (requested > latest.treeSize) {
      throw badRequest(
        'TM_ERR_INVALID_REQUEST',
        `${param} ${requested} is larger than the log (${latest.treeSize} entries)`,
        param,
      );
    }
    const signed = requested === latest.treeSize ? latest : await issuanceLog.signedCheckpoint(requested);
    if (signed === null) {
      throw badRequest(
        'TM_ERR_INVALID_REQUEST',
        `no checkpoint of ${requested} entries was signed; name the size of a signed checkpoint (GET /v1/log/checkpoint), or leave ${param} out for the latest`,
        param,
      );
    }
    return signed;
  };

  /** Consistency proofs by "from/to": the log only grows, so a proof between two sizes never changes. */
  const consistencyCache = new Map<string, { fromRootHash: string; proof: string[] }>();
  const consistencyBetween = async (from: number, to: number) => {
    const cacheKey = `${from}/${to}`;
    let entry = consistencyCache.get(cacheKey);
    if (entry === undefined) {
      entry = {
        fromRootHash: await issuanceLog.rootHash(from),
        proof: (await issuanceLog.consistencyProof(from, to)).map(toHex),
      };
      if (consistencyCache.size >= CONSISTENCY_CACHE_SIZE) {
        consistencyCache.delete(consistencyCache.keys().next().value!);
      }
    } else {
      consistencyCache.delete(cacheKey);
    }
    consistencyCache.set(cacheKey, entry);
    return entry;
  };

  fastify.post(
    '/v1/verify',
    {
      config: { scope: 'verify' },
      schema: {
        ...logSchema,
        summary: 'Verify a text: issuance match, watermark detection and a signed evidence report',
        description:
          'Send exactly one of "text" or "tokens". The text is matched against issued outputs (exactly, then as a near-duplicate), tested for the watermark under every key epoch of this gateway (Holm-corrected; the numbers of `tracemark detect --json`; an engine\'s key in engine-native mode is tested on the whole text, without windowed search, and the summary says so), and the result is signed as a DSSE envelope carrying an in-toto Statement (predicate https://tracemark.dev/evidence/v1).',
        security: [{ bearerAuth: [] }],
        body: verifyRequestSchema,
        response: { 200: verifyResponseSchema, ...errorResponses() },
      },
    },
    async (request) => {
      const { body } = request;
      assertTextOrTokens(body);
      const input: VerifyInput = {
        ...(body.text === undefined ? {} : { text: body.text }),
        ...(body.tokens === undefined ? {} : { tokens: body.tokens }),
        ...(body.prompt === undefined ? {} : { prompt: body.prompt }),
        ...(body.fpr === undefined ? {} : { fpr: body.fpr }),
      };
      const result = await verifier.verify(input, request.apiKey!);
      fastify.metrics.detections.inc({ verdict: result.document.verdict });
      const d = result.document;
      return {
        object: 'tracemark.verification' as const,
        verdict: d.verdict,
        summary: result.summary,
        detection: {
          keyId: d.keyId,
          numTokens: d.numTokens,
          numScored: d.numScored,
          numGreen: d.numGreen,
          z: d.z,
          log10P: d.log10P,
          log10PAdjusted: d.log10PAdjusted,
          keysTested: d.keysTested,
          fpr: d.fpr,
          scheme: result.predicate.algorithm.name,
          ...(d.score === undefined ? {} : { score: d.score }),
          windowSearched: result.windowSearched,
        },
        issuance: result.issuance,
        spoofing: result.spoofing,
        report: result.envelope,
        keyId: logSigningKey.keyId,
        verifierKey: logSigningKey.verifierKey,
      };
    },
  );

  fastify.get(
    '/v1/log/checkpoint',
    {
      config: { publicRateLimit: true },
      schema: {
        ...logSchema,
        summary: "The issuance log's latest signed checkpoint (C2SP tlog-checkpoint)",
        response: { 200: checkpointResponseSchema, ...errorResponses() },
      },
    },
    async () => {
      const checkpoint = await issuanceLog.checkpoint();
      return {
        origin: issuanceLog.origin,
        treeSize: checkpoint.treeSize,
        rootHash: checkpoint.rootHash,
        checkpoint: checkpoint.note,
      };
    },
  );

  fastify.get(
    '/v1/log/inclusion',
    {
      config: { scope: 'verify' },
      schema: {
        ...logSchema,
        summary: 'Inclusion proof of one issuance record (by leaf index or record id) in a signed tree',
        security: [{ bearerAuth: [] }],
        querystring: inclusionQuerySchema,
        response: { 200: inclusionResponseSchema, ...errorResponses() },
      },
    },
    async (request) => {
      const { query } = request;
      if ((query.leafIndex === undefined) === (query.recordId === undefined)) {
        throw badRequest('TM_ERR_INVALID_REQUEST', 'give exactly one of leafIndex or recordId', 'leafIndex');
      }
      const record =
        query.recordId !== undefined
          ? await storage.getIssuance(query.recordId)
          : await storage.getIssuanceBySeq(Number(query.leafIndex));
      if (record === null) {
        throw new GatewayError(
          404,
          'TM_ERR_NOT_FOUND',
          query.recordId !== undefined
            ? `no issuance record ${query.recordId}`
            : `no leaf ${query.leafIndex} in the issuance log`,
          { param: query.recordId !== undefined ? 'recordId' : 'leafIndex' },
        );
      }
      const checkpoint = await signedTreeOf(query.treeSize, 'treeSize');
      const treeSize = checkpoint.treeSize;
      if (record.seq >= treeSize) {
        throw badRequest(
          'TM_ERR_INVALID_REQUEST',
          `leaf ${record.seq} is not in the tree of ${treeSize} entries`,
          'treeSize',
        );
      }
      return {
        recordId: record.id,
        leafIndex: record.seq,
        leafHash: toHex(await issuanceLog.leafHash(record.seq)),
        inclusionProof: (await issuanceLog.inclusionProof(record.seq, treeSize)).map(toHex),
        treeSize,
        rootHash: checkpoint.rootHash,
        checkpoint: checkpoint.note,
      };
    },
  );

  fastify.get(
    '/v1/log/consistency',
    {
      config: { publicRateLimit: true },
      schema: {
        ...logSchema,
        summary: 'Consistency proof from any earlier size to a signed checkpoint of the issuance log',
        description:
          '"to" is the size of a signed checkpoint (default: the latest); "from" any size up to it, whose root hash is returned unsigned (compare it with the checkpoint you hold).',
        querystring: consistencyQuerySchema,
        response: { 200: consistencyResponseSchema, ...errorResponses() },
      },
    },
    async (request) => {
      const { query } = request;
      const checkpoint = await signedTreeOf(query.to, 'to');
      const to = checkpoint.treeSize;
      const from = Number(query.from);
      if (from > to)
        throw badRequest('TM_ERR_INVALID_REQUEST', `from (${from}) is larger than to (${to})`, 'from');
      const { fromRootHash, proof } = await consistencyBetween(from, to);
      return {
        fromSize: from,
        fromRootHash,
        consistencyProof: proof,
        treeSize: to,
        rootHash: checkpoint.rootHash,
        checkpoint: checkpoint.note,
      };
    },
  );

  fastify.get(
    '/.well-known/tracemark/keys.json',
    {
      config: { publicRateLimit: true },
      schema: {
        ...logSchema,
        summary: 'The public keys that verify checkpoints and evidence reports',
        response: { 200: publicKeysResponseSchema, ...errorResponses() },
      },
    },
    async () => ({
      logOrigin: issuanceLog.origin,
      keys: [
        {
          keyId: logSigningKey.keyId,
          verifierKey: logSigningKey.verifierKey,
          algorithm: 'ed25519' as const,
          uses: ['checkpoints' as const, 'evidence-reports' as const],
        },
      ],
      watermarkKeyIds: (await verifier.keys()).map((key) => key.keyId),
      predicateType: EVIDENCE_PREDICATE_TYPE,
    }),
  );
};

export default provenanceRoutes;
