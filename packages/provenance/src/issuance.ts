/**
 * Issuance records: one per output the gateway issues, logged as a Merkle leaf. The leaf is the
 * canonical JSON (RFC 8785) of exactly the fields below, so anyone holding the record can recompute
 * the leaf and check it against an inclusion proof. The log itself stores only leaf hashes.
 */
import { canonicalJsonBytes } from './canonical-json.js';
import { leafHash } from './merkle.js';

export interface IssuanceRecord {
  /** Unique record id. */
  readonly id: string;
  /** Issue time, RFC 3339 (e.g. `2026-08-02T10:00:00.000Z`). */
  readonly time: string;
  /** Id of the API key that requested the output (never the key itself). */
  readonly apiKeyId: string;
  readonly account: string;
  readonly model: string;
  /** Id of the watermark key used (never the key itself). */
  readonly watermarkKeyId: string;
  /** Label of the epoch sub-key (`epoch/<label>`) that marked the output; null for the key itself. */
  readonly keyEpoch: string | null;
  /** Lower-case hex SHA-256 of the prompt and of the output text (UTF-8). */
  readonly promptSha256: string;
  readonly outputSha256: string;
  /**
   * Lower-case hex SHA-256 of the output after the tokenizer's normalization (invisible characters
   * removed, then NFC), the key of exact matches; null for records logged before it was kept.
   */
  readonly normalizedOutputSha256: string | null;
  /** Number of generated tokens. */
  readonly tokenCount: number;
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;

/** Why `record` is not a valid issuance record, or undefined. */
export function issuanceRecordProblem(record: unknown): string | undefined {
  if (typeof record !== 'object' || record === null || Array.isArray(record)) return 'must be an object';
  const r = record as Record<string, unknown>;
  for (const field of ['id', 'apiKeyId', 'account', 'model', 'watermarkKeyId'] as const) {
    if (typeof r[field] !== 'string' || r[field] === '') return `${field} must be a non-empty string`;
  }
  if (typeof r.time !== 'string' || !RFC3339.test(r.time) || Number.isNaN(Date.parse(r.time))) {
    return 'time must be an RFC 3339 timestamp';
  }
  if (r.keyEpoch !== null && (typeof r.keyEpoch !== 'string' || r.keyEpoch === '')) {
    return 'keyEpoch must be a non-empty string or null';
  }
  if (!Number.isSafeInteger(r.tokenCount) || (r.tokenCount as number) < 0)
    return 'tokenCount must be a non-negative integer';
  for (const field of ['promptSha256', 'outputSha256'] as const) {
    if (typeof r[field] !== 'string' || !SHA256_HEX.test(r[field]))
      return `${field} must be 64 lower-case hex digits`;
  }
  if (
    r.normalizedOutputSha256 !== null &&
    (typeof r.normalizedOutputSha256 !== 'string' || !SHA256_HEX.test(r.normalizedOutputSha256))
  ) {
    return 'normalizedOutputSha256 must be 64 lower-case hex digits or null';
  }
  return undefined;
}

/** The leaf bytes of an issuance record: canonical JSON of its eleven fields, nothing else. */
export function encodeIssuanceLeaf(record: IssuanceRecord): Uint8Array {
  const problem = issuanceRecordProblem(record);
  if (problem !== undefined) throw new TypeError(`record: ${problem}`);
  return canonicalJsonBytes({
    id: record.id,
    time: record.time,
    apiKeyId: record.apiKeyId,
    account: record.account,
    model: record.model,
    watermarkKeyId: record.watermarkKeyId,
    keyEpoch: record.keyEpoch,
    promptSha256: record.promptSha256,
    outputSha256: record.outputSha256,
    normalizedOutputSha256: record.normalizedOutputSha256,
    tokenCount: record.tokenCount,
  });
}

/** RFC 6962 leaf hash of {@link encodeIssuanceLeaf}. */
export function issuanceLeafHash(record: IssuanceRecord): Uint8Array {
  return leafHash(encodeIssuanceLeaf(record));
}
