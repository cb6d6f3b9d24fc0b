/**
 * Provenance: POST /v1/verify (scope verify) returns a signed evidence report; the issuance log's signed
 * checkpoint and consistency proofs are public (sizes and hashes only); inclusion proofs need scope verify;
 * the public keys that check all of it are at /.well-known/tracemark/keys.json.
 */
import { InputError } from '@tracemark/detection';
import { EVIDENCE_PREDICATE_TYPE, toHex } from '@tracemark/provenance';
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { GATEWAY_VERSION } from '../app.ts';
import { assertTextOrTokens, badRequest, GatewayError } from '../errors.ts';
import { createVerifier, type VerifyInput } from '../provenance/verify.ts';
import {
  checkpointResponseSchema,
  consistencyQuerySchema,
  consistencyResponseSchema,
  errorResponses,
  inclusionQuerySchema,
  inclusionResponseSchema,
  publicKeysResponseSchema,
  verifyRequestSchema,
  verifyResponseSchema,
} from '../schemas.ts';

const logSchema = { tags: ['provenance'] };

const provenanceRoutes: FastifyPluginAsync = async (fastify: FastifyInstance) => {
  const { storage, issuanceLog, logSigningKey } = fastify.gateway;
  const verifier = createVerifier(fastify.gateway, GATEWAY_VERSION);

  /** A tree size from the query: the whole log by default, else at most its size. */
  const treeSizeOf = async (value: string | undefined, param: string): Promise<number> => {
    const size = await issuanceLog.size();
    if (value === undefined) return size;
    const requested = Number(value);
    if (requested > size) {
      throw badRequest(
        'TM_ERR_INVALID_REQUEST',
        `${param} ${requested} is larger than the log (${size} entries)`,
        param,
      );
    }
    return requested;
  };

  fastify.post(
    '/v1/verify',
    {
      config: { scope: 'verify' },
      schema: {
        ...logSchema,
        summary: 'Verify a text: issuance match, watermark detection and a signed evidence report',
        description:
          'Send exactly one of "text" or "tokens". The text is matched against issued outputs (exactly, then as a near-duplicate), tested for the watermark under every key epoch of this gateway (Holm-corrected; the numbers of `tracemark detect --json`), and the result is signed as a DSSE envelope carrying an in-toto Statement (predicate https://tracemark.dev/evidence/v1).',
        security: [{ bearerAuth: [] }],
        body: verifyRequestSchema,
        response: { 200: verifyResponseSchema, ...errorResponses() },
      },
    },
    async (request) => {
      const body = request.body as VerifyInput;
      assertTextOrTokens(body);
      try {
        const result = await verifier.verify(body, request.apiKey!);
        fastify.metrics.detections.inc({ verdict: result.document.verdict });
        const d = result.document;
        return {
          object: 'tracemark.verification',
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
          },
          issuance: result.issuance,
          report: result.envelope,
          keyId: logSigningKey.keyId,
          verifierKey: logSigningKey.verifierKey,
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

  fastify.get(
    '/v1/log/checkpoint',
    {
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
      const query = request.query as { leafIndex?: string; recordId?: string; treeSize?: string };
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
      const treeSize = await treeSizeOf(query.treeSize, 'treeSize');
      if (record.seq >= treeSize) {
        throw badRequest(
          'TM_ERR_INVALID_REQUEST',
          `leaf ${record.seq} is not in the tree of ${treeSize} entries`,
          'treeSize',
        );
      }
      const checkpoint = await issuanceLog.checkpoint(treeSize);
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
      schema: {
        ...logSchema,
        summary: 'Consistency proof between two sizes of the issuance log (the later one signed)',
        querystring: consistencyQuerySchema,
        response: { 200: consistencyResponseSchema, ...errorResponses() },
      },
    },
    async (request) => {
      const query = request.query as { from: string; to?: string };
      const to = await treeSizeOf(query.to, 'to');
      const from = Number(query.from);
      if (from > to)
        throw badRequest('TM_ERR_INVALID_REQUEST', `from (${from}) is larger than to (${to})`, 'from');
      const [old, checkpoint, proof] = [
        await issuanceLog.checkpoint(from),
        await issuanceLog.checkpoint(to),
        await issuanceLog.consistencyProof(from, to),
      ];
      return {
        fromSize: from,
        fromRootHash: old.rootHash,
        consistencyProof: proof.map(toHex),
        treeSize: to,
        rootHash: checkpoint.rootHash,
        checkpoint: checkpoint.note,
      };
    },
  );

  fastify.get(
    '/.well-known/tracemark/keys.json',
    {
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
          algorithm: 'ed25519',
          uses: ['checkpoints', 'evidence-reports'],
        },
      ],
      watermarkKeyIds: (await verifier.keys()).map((key) => key.keyId),
      predicateType: EVIDENCE_PREDICATE_TYPE,
    }),
  );
};

export default provenanceRoutes;
