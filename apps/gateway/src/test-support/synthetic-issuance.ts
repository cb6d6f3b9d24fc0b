/** Synthetic issuance records for the benches and tests: what a completion of `tokens` would leave in the log. */
import { createHash, randomBytes } from 'node:crypto';
import type { IssuanceInput } from '../storage/types.ts';

const hex = (text: string) => createHash('sha256').update(text).digest('hex');

/**
 * Record `n` of a bench's log: `numTokens` tokens, with the token ids kept (`outputTokens`) or not, and a
 * MinHash signature (near-duplicate index) or none.
 */
export function syntheticIssuance(
  n: number,
  watermarkKeyId: string,
  fields: Pick<IssuanceInput, 'numTokens' | 'outputTokens' | 'minhash'>,
): IssuanceInput {
  return {
    id: `iss_${randomBytes(12).toString('hex')}`,
    completionId: `cmpl-${n}`,
    choiceIndex: 0,
    createdAt: new Date().toISOString(),
    apiKeyId: 'ak_0000000000000000',
    account: 'bench',
    endpoint: 'completions',
    model: 'tracemark-ngram',
    backend: 'embedded',
    watermarkKeyId,
    keyEpoch: null,
    promptSha256: hex(`prompt ${n}`),
    outputSha256: hex(`output ${n}`),
    normalizedOutputSha256: hex(`output ${n}`),
    numPromptTokens: 4,
    finishReason: 'length',
    ...fields,
  };
}
