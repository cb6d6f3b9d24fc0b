/** One storage interface, two implementations (SQLite, PostgreSQL); the same test suite runs on both. */
import type { ApiKeyRecord } from '../api-keys.ts';

export type Endpoint = 'chat.completions' | 'completions';
export type BackendKind = 'embedded' | 'upstream';

/** One issued output (one choice of one completion), as it is recorded before it is returned. */
export interface IssuanceInput {
  /** `iss_` + random hex: the record's own id. */
  readonly id: string;
  /** The `id` the client saw (`chatcmpl-…`, `cmpl-…`). */
  readonly completionId: string;
  readonly choiceIndex: number;
  /** ISO 8601 UTC. */
  readonly createdAt: string;
  readonly apiKeyId: string;
  readonly account: string;
  readonly endpoint: Endpoint;
  readonly model: string;
  readonly backend: BackendKind;
  readonly watermarkKeyId: string;
  /** The epoch label of the sub-key that marked the output; null for the key itself. */
  readonly keyEpoch: string | null;
  /** SHA-256 (hex) of the prompt text as the model saw it (see the README on chat formatting). */
  readonly promptSha256: string;
  /** SHA-256 (hex) of the UTF-8 text returned to the client. */
  readonly outputSha256: string;
  readonly numPromptTokens: number;
  readonly numTokens: number;
  /** The generated token ids; null once pruned by the retention policy or when retention is 0. */
  readonly outputTokens: Uint32Array | null;
  /** stop, length, cancelled (client went away or the gateway shut down mid-stream). */
  readonly finishReason: string;
}

/** A stored record: `seq` is its position in the log, 0-based, gapless, in commit order (a future leaf index). */
export interface IssuanceRecord extends IssuanceInput {
  readonly seq: number;
}

export interface ListIssuanceOptions {
  /** Records with seq greater than this. */
  readonly afterSeq?: number;
  readonly limit: number;
  readonly apiKeyId?: string;
}

export interface GatewayStorage {
  readonly kind: 'sqlite' | 'postgres';
  /** Throws when the database cannot be reached. */
  ping(): Promise<void>;
  insertApiKey(record: ApiKeyRecord): Promise<void>;
  getApiKey(id: string): Promise<ApiKeyRecord | null>;
  listApiKeys(): Promise<ApiKeyRecord[]>;
  countApiKeys(): Promise<number>;
  /** Marks a key revoked; false when there is no such key or it was already revoked. */
  revokeApiKey(id: string, at: string): Promise<boolean>;
  /** Appends records in one transaction and returns them with their seq. All or nothing. */
  appendIssuance(records: readonly IssuanceInput[]): Promise<IssuanceRecord[]>;
  listIssuance(options: ListIssuanceOptions): Promise<IssuanceRecord[]>;
  getIssuance(id: string): Promise<IssuanceRecord | null>;
  countIssuance(): Promise<number>;
  /** Completion tokens issued to a key since `since` (ISO), for quota accounting after a restart. */
  sumTokensSince(apiKeyId: string, since: string): Promise<number>;
  /** Drops the output tokens of records created before `before` (ISO); hashes and counts stay. */
  pruneIssuedTokens(before: string): Promise<number>;
  /** Applied migration versions, ascending. */
  migrations(): Promise<number[]>;
  close(): Promise<void>;
}

export function tokensToBytes(tokens: Uint32Array): Uint8Array {
  const bytes = new Uint8Array(tokens.length * 4);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < tokens.length; i++) view.setUint32(4 * i, tokens[i]!, true);
  return bytes;
}

export function bytesToTokens(bytes: Uint8Array): Uint32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const tokens = new Uint32Array(bytes.byteLength >>> 2);
  for (let i = 0; i < tokens.length; i++) tokens[i] = view.getUint32(4 * i, true);
  return tokens;
}
