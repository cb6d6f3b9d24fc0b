/** The Merkle leaf of an issuance record: the fields of @tracemark/provenance's `IssuanceRecord`. */
import { issuanceLeafHash, type IssuanceRecord as LeafRecord } from '@tracemark/provenance';
import type { IssuanceInput } from '../storage/types.ts';

/** What the leaf commits to: who asked (key id and account), which model and key, and the hashes. */
export function leafRecordOf(record: Omit<IssuanceInput, 'minhash'>): LeafRecord {
  return {
    id: record.id,
    time: record.createdAt,
    apiKeyId: record.apiKeyId,
    account: record.account,
    model: record.model,
    watermarkKeyId: record.watermarkKeyId,
    keyEpoch: record.keyEpoch,
    promptSha256: record.promptSha256,
    outputSha256: record.outputSha256,
    normalizedOutputSha256: record.normalizedOutputSha256,
    tokenCount: record.numTokens,
  };
}

export function leafHashOf(record: Omit<IssuanceInput, 'minhash'>): Uint8Array {
  return issuanceLeafHash(leafRecordOf(record));
}
