/** The issuance stage: each returned choice becomes a record in the log before the client has all of it. */
import { createHash, randomBytes } from 'node:crypto';
import { minhashSignature } from '@tracemark/provenance';
import { normalizeText, type Tokenizer } from '@tracemark/tokenizers';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { AccountKeys } from '../account-keys.ts';
import { GatewayError } from '../errors.ts';
import type { IssuanceInput } from '../storage/types.ts';
import type { ChoiceResult, PreparedCompletion } from './types.ts';

const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex');

export interface IssuanceContext {
  readonly tokenizer: Tokenizer;
  /** The key that marks the output (a tracemark key's id, or an engine's key id). */
  readonly watermarkKeyId: string;
  readonly keyEpoch: string | null;
  readonly backendKind: IssuanceInput['backend'];
  readonly retainTokens: boolean;
  /** Per-account sub-keys: the records name the account's key instead of `watermarkKeyId`. */
  readonly accountKeys?: AccountKeys | null;
}

export function issuanceRecords(
  context: IssuanceContext,
  request: FastifyRequest,
  prepared: PreparedCompletion,
  completionId: string,
  results: readonly ChoiceResult[],
  key: { readonly keyId: string; readonly keyEpoch: string } | null = null,
): IssuanceInput[] {
  const createdAt = new Date().toISOString();
  return results.map((result) => ({
    id: `iss_${randomBytes(12).toString('hex')}`,
    completionId,
    choiceIndex: result.index,
    createdAt,
    apiKeyId: request.apiKey!.id,
    account: request.apiKey!.account,
    endpoint: prepared.endpoint,
    model: prepared.model,
    backend: context.backendKind,
    watermarkKeyId: key === null ? context.watermarkKeyId : key.keyId,
    keyEpoch: key === null ? context.keyEpoch : key.keyEpoch,
    promptSha256: sha256(result.prompt.text),
    outputSha256: sha256(result.text),
    normalizedOutputSha256: sha256(normalizeText(result.text)),
    // Shingles of the text's canonical tokens: what POST /v1/verify computes from a text it is sent.
    minhash: result.text === '' ? null : minhashSignature(context.tokenizer.encodeFast(result.text)),
    numPromptTokens: result.prompt.tokens.length,
    numTokens: result.tokens.length,
    outputTokens: context.retainTokens ? Uint32Array.from(result.tokens) : null,
    finishReason: result.finishReason,
  }));
}

/** Appends the records; the completion is withheld (500) if they cannot be written. */
export async function recordIssuance(
  fastify: FastifyInstance,
  request: FastifyRequest,
  records: IssuanceInput[],
): Promise<string[]> {
  if (records.length === 0) return [];
  try {
    const stored = await fastify.gateway.storage.appendIssuance(records);
    fastify.metrics.issuanceRecords.inc(stored.length);
    return stored.map((entry) => entry.id);
  } catch (error) {
    fastify.metrics.issuanceFailures.inc();
    request.log.error({ err: error }, 'issuance log write failed; completion withheld');
    throw new GatewayError(500, 'TM_ERR_ISSUANCE_LOG', 'the completion could not be recorded', {
      cause: error,
    });
  }
}
