/** Row ↔ record conversion shared by both implementations (column names are the same in both). */
import { type ApiKeyRecord, isScope, type KeyEnvironment, type Scope } from '../api-keys.ts';
import {
  type BackendKind,
  bytesToTokens,
  type Endpoint,
  type IssuanceInput,
  type IssuanceRecord,
  type MonitorEventInput,
  type PolicyAction,
  type RecordedFinding,
  type RiskActionKind,
  type RiskActionRecord,
  type StoredCheckpoint,
  type StoredMonitorEvent,
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

export const MONITOR_EVENT_COLUMNS = [
  'at',
  'account',
  'api_key_id',
  'completion_id',
  'endpoint',
  'subnet',
  'user_agent',
  'key_created_at',
  'prompt_tokens',
  'completion_tokens',
  'features',
  'signature',
  'skeleton',
  'skeleton_length',
  'reasoning',
  'enumeration',
  'input_action',
  'input_findings',
  'output_action',
  'output_findings',
  'review',
] as const;

/** Findings as stored: rule, category and severity only (a finding's text never reaches the database). */
function findingsJson(findings: readonly RecordedFinding[]): string {
  return JSON.stringify(
    findings.map((finding) => ({
      rule: finding.rule,
      category: finding.category,
      severity: finding.severity,
    })),
  );
}

export function monitorEventValues(event: MonitorEventInput): unknown[] {
  const { fingerprint } = event;
  return [
    event.at,
    event.account,
    event.apiKeyId,
    event.completionId,
    event.endpoint,
    event.subnet,
    event.userAgent,
    event.keyCreatedAt,
    event.promptTokens,
    event.completionTokens,
    Buffer.from(tokensToBytes(fingerprint.features)),
    Buffer.from(tokensToBytes(fingerprint.signature)),
    fingerprint.skeleton,
    fingerprint.skeletonLength,
    fingerprint.reasoning ? 1 : 0,
    fingerprint.enumeration ? 1 : 0,
    event.inputAction,
    findingsJson(event.inputFindings),
    event.outputAction,
    findingsJson(event.outputFindings),
    event.review ? 1 : 0,
  ];
}

export function monitorEventFromRow(row: Row): StoredMonitorEvent {
  return {
    id: Number(row.id),
    at: String(row.at),
    account: String(row.account),
    apiKeyId: String(row.api_key_id),
    completionId: stringOrNull(row.completion_id),
    endpoint: String(row.endpoint) as Endpoint,
    subnet: stringOrNull(row.subnet),
    userAgent: stringOrNull(row.user_agent),
    keyCreatedAt: stringOrNull(row.key_created_at),
    promptTokens: Number(row.prompt_tokens),
    completionTokens: Number(row.completion_tokens),
    fingerprint: {
      features: bytesToTokens(bytesOf(row.features)),
      signature: bytesToTokens(bytesOf(row.signature)),
      skeleton: Number(row.skeleton),
      skeletonLength: Number(row.skeleton_length),
      reasoning: Number(row.reasoning) === 1,
      enumeration: Number(row.enumeration) === 1,
    },
    inputAction: String(row.input_action) as PolicyAction,
    inputFindings: JSON.parse(String(row.input_findings)) as RecordedFinding[],
    outputAction: String(row.output_action) as PolicyAction,
    outputFindings: JSON.parse(String(row.output_findings)) as RecordedFinding[],
    review: Number(row.review) === 1,
  };
}

export function riskActionFromRow(row: Row): RiskActionRecord {
  return {
    id: Number(row.id),
    at: String(row.at),
    account: String(row.account),
    action: String(row.action) as RiskActionKind,
    reason: String(row.reason),
    adminKeyId: String(row.admin_key_id),
  };
}
