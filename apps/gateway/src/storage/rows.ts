/** Row ↔ record conversion shared by both implementations (column names are the same in both). */
import { type ApiKeyRecord, isScope, type KeyEnvironment, type Scope } from '../api-keys.ts';
import {
  type BackendKind,
  bytesToTokens,
  type Endpoint,
  type IssuanceInput,
  type IssuanceRecord,
  type StoredCheckpoint,
  tokensToBytes,
} from './types.ts';

export type Row = Record<string, unknown>;

const numberOrNull = (value: unknown): number | null =>
  value === null || value === undefined ? null : Number(value);
const stringOrNull = (value: unknown): string | null =>
  value === null || value === undefined ? null : String(value);

export function apiKeyFromRow(row: Row): ApiKeyRecord {
  return {
    id: String(row.id),
    hash: String(row.hash),
    environment: String(row.environment) as KeyEnvironment,
    name: String(row.name),
    account: String(row.account),
    scopes: String(row.scopes)
      .split(',')
      .filter((scope): scope is Scope => isScope(scope)),
    createdAt: String(row.created_at),
    expiresAt: stringOrNull(row.expires_at),
    revokedAt: stringOrNull(row.revoked_at),
    rateLimitPerMinute: numberOrNull(row.rate_limit_per_minute),
    dailyTokenQuota: numberOrNull(row.daily_token_quota),
  };
}

export const API_KEY_COLUMNS = [
  'id',
  'hash',
  'environment',
  'name',
  'account',
  'scopes',
  'created_at',
  'expires_at',
  'revoked_at',
  'rate_limit_per_minute',
  'daily_token_quota',
] as const;

export function apiKeyValues(record: ApiKeyRecord): unknown[] {
  return [
    record.id,
    record.hash,
    record.environment,
    record.name,
    record.account,
    record.scopes.join(','),
    record.createdAt,
    record.expiresAt,
    record.revokedAt,
    record.rateLimitPerMinute,
    record.dailyTokenQuota,
  ];
}

export const ISSUANCE_COLUMNS = [
  'seq',
  'id',
  'completion_id',
  'choice_index',
  'created_at',
  'api_key_id',
  'account',
  'endpoint',
  'model',
  'backend',
  'watermark_key_id',
  'key_epoch',
  'prompt_sha256',
  'output_sha256',
  'num_prompt_tokens',
  'num_tokens',
  'output_tokens',
  'finish_reason',
  'normalized_sha256',
] as const;

export function issuanceValues(seq: number, record: Omit<IssuanceInput, 'minhash'>): unknown[] {
  return [
    seq,
    record.id,
    record.completionId,
    record.choiceIndex,
    record.createdAt,
    record.apiKeyId,
    record.account,
    record.endpoint,
    record.model,
    record.backend,
    record.watermarkKeyId,
    record.keyEpoch,
    record.promptSha256,
    record.outputSha256,
    record.numPromptTokens,
    record.numTokens,
    record.outputTokens === null ? null : Buffer.from(tokensToBytes(record.outputTokens)),
    record.finishReason,
    record.normalizedOutputSha256,
  ];
}

/** Bytes from a BLOB / BYTEA column, as a plain Uint8Array. */
export function bytesOf(value: unknown): Uint8Array {
  if (!(value instanceof Uint8Array)) throw new TypeError('expected a binary column');
  return new Uint8Array(value);
}

export function checkpointFromRow(row: Row): StoredCheckpoint {
  return {
    treeSize: Number(row.tree_size),
    rootHash: String(row.root_hash),
    note: String(row.note),
    createdAt: String(row.created_at),
  };
}

export function issuanceFromRow(row: Row): IssuanceRecord {
  const tokens = row.output_tokens;
  return {
    seq: Number(row.seq),
    id: String(row.id),
    completionId: String(row.completion_id),
    choiceIndex: Number(row.choice_index),
    createdAt: String(row.created_at),
    apiKeyId: String(row.api_key_id),
    account: String(row.account),
    endpoint: String(row.endpoint) as Endpoint,
    model: String(row.model),
    backend: String(row.backend) as BackendKind,
    watermarkKeyId: String(row.watermark_key_id),
    keyEpoch: stringOrNull(row.key_epoch),
    promptSha256: String(row.prompt_sha256),
    outputSha256: String(row.output_sha256),
    normalizedOutputSha256: stringOrNull(row.normalized_sha256),
    numPromptTokens: Number(row.num_prompt_tokens),
    numTokens: Number(row.num_tokens),
    outputTokens: tokens instanceof Uint8Array ? bytesToTokens(tokens) : null,
    finishReason: String(row.finish_reason),
  };
}
