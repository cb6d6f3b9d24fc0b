/** One storage interface, two implementations (SQLite, PostgreSQL); the same test suite runs on both. */
import type { PromptFingerprint } from '@tracemark/monitoring';
import type { NodeRef } from '@tracemark/provenance';
import type { ApiKeyRecord } from '../api-keys.ts';

export type Endpoint = 'chat.completions' | 'completions' | 'responses';
/** Who produced the output: the embedded model, an upstream driven token by token, or an engine that marks natively. */
export type BackendKind = 'embedded' | 'upstream' | 'engine-native';

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
  /**
   * SHA-256 (hex) of that text after the tokenizer's normalization (invisible characters removed, then
   * NFC): the key of exact matches in POST /v1/verify. Null only for records logged before it was kept.
   */
  readonly normalizedOutputSha256: string | null;
  /**
   * MinHash signature of the shingles of the output's canonical tokens (`minhashSignature` of
   * @tracemark/provenance), for near-duplicate matches; null: not indexed.
   */
  readonly minhash: Uint32Array | null;
  readonly numPromptTokens: number;
  readonly numTokens: number;
  /** The generated token ids; null once pruned by the retention policy or when retention is 0. */
  readonly outputTokens: Uint32Array | null;
  /** stop, length, cancelled (client went away or the gateway shut down mid-stream). */
  readonly finishReason: string;
}

/** A stored record: `seq` is its position in the log, 0-based, gapless, in commit order, and its Merkle leaf index. */
export interface IssuanceRecord extends Omit<IssuanceInput, 'minhash'> {
  readonly seq: number;
}

/** A signed checkpoint (C2SP signed note) of the Merkle log, as stored. */
export interface StoredCheckpoint {
  readonly treeSize: number;
  /** Lower-case hex root hash. */
  readonly rootHash: string;
  readonly note: string;
  /** When it was first signed, ISO 8601 UTC. */
  readonly createdAt: string;
}

/** A near-duplicate candidate: a record sharing at least one LSH bucket with the query. */
export interface NearDuplicateCandidate {
  readonly seq: number;
  /** Bands whose bucket it shares. */
  readonly sharedBands: number;
  readonly signature: Uint32Array;
}

/** A watermark key epoch the gateway has marked output with (registered when it starts). */
export interface WatermarkEpoch {
  readonly watermarkKeyId: string;
  readonly keyEpoch: string | null;
  readonly firstSeenAt: string;
}

export interface ListIssuanceOptions {
  /** Records with seq greater than this. */
  readonly afterSeq?: number;
  readonly limit: number;
  readonly apiKeyId?: string;
  /** Only records of this account. */
  readonly account?: string;
}

/** One account's share of the issuance log. */
export interface IssuanceAccount {
  readonly account: string;
  /** Issued outputs (records). */
  readonly numOutputs: number;
  /** Issued completion tokens. */
  readonly numTokens: number;
}

/** A finding of the input screening or the output audit as recorded: the rule, never the matched text. */
export interface RecordedFinding {
  readonly rule: string;
  readonly category: string;
  readonly severity: 'high' | 'medium' | 'low';
}

/** What a content policy did to a request: nothing found, recorded, redacted, or refused. */
export type PolicyAction = 'none' | 'flag' | 'redact' | 'refuse';

/** One observed prompt (of one request), as the monitor saw it: its fingerprint, never its text. */
export interface MonitorEventInput {
  /** ISO 8601 UTC. */
  readonly at: string;
  readonly account: string;
  readonly apiKeyId: string;
  /** The completion it belongs to; null for a request refused before generation. */
  readonly completionId: string | null;
  readonly endpoint: Endpoint;
  /** The client's /24 (IPv4) or /48 (IPv6), never the address. */
  readonly subnet: string | null;
  readonly userAgent: string | null;
  /** When the API key was created (ISO). */
  readonly keyCreatedAt: string | null;
  readonly promptTokens: number;
  readonly completionTokens: number;
  readonly fingerprint: PromptFingerprint;
  readonly inputAction: PolicyAction;
  readonly inputFindings: readonly RecordedFinding[];
  readonly outputAction: PolicyAction;
  readonly outputFindings: readonly RecordedFinding[];
  /** The account was under the `review` action when it was served. */
  readonly review: boolean;
}

export interface StoredMonitorEvent extends MonitorEventInput {
  /** Increasing in insertion order. */
  readonly id: number;
}

export interface ListMonitorEventsOptions {
  /** Events with id greater than this. */
  readonly afterId?: number;
  /** Events at or after this time (ISO). */
  readonly since?: string;
  readonly account?: string;
  readonly limit: number;
}

export type RiskActionKind = 'throttle' | 'review' | 'suspend' | 'clear';

/** A policy action on an account, as the audit trail records it. */
export interface RiskActionInput {
  /** ISO 8601 UTC. */
  readonly at: string;
  readonly account: string;
  readonly action: RiskActionKind;
  readonly reason: string;
  /** The admin API key that took it. */
  readonly adminKeyId: string;
}

export interface RiskActionRecord extends RiskActionInput {
  readonly id: number;
}

/** How to open storage. */
export interface StorageOpenOptions {
  /**
   * Read only: no migration, no writes (the log's readers, e.g. `tracemark scan --issued`). Opening
   * fails when the database does not exist or is not migrated; every write method fails.
   */
  readonly readonly?: boolean;
  /**
   * Most records in one group commit (appends that arrive while a commit is in flight share the next one);
   * default 64. A single append with more records is committed alone, never split.
   */
  readonly maxBatchRecords?: number;
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
  /**
   * Appends records in one transaction and returns them with their seq. In the same transaction: each
   * record's Merkle leaf (the leaf index is its seq) and the subtree nodes it completes, and its
   * near-duplicate index entries. All or nothing. Resolves once the transaction is durable. Concurrent calls
   * are group-committed: those that arrive while a commit is in flight share the next transaction (in call
   * order, each call's records contiguous), and if it fails every one of them rejects with its error.
   */
  appendIssuance(records: readonly IssuanceInput[]): Promise<IssuanceRecord[]>;
  getIssuanceBySeq(seq: number): Promise<IssuanceRecord | null>;
  /** The first record whose output, exact or normalized, hashes to one of these. */
  findIssuanceByOutputHash(outputSha256: string, normalizedSha256: string): Promise<IssuanceRecord | null>;
  /** Records sharing an LSH bucket with `buckets` (one per band), most shared bands first, then by seq. */
  findNearDuplicateCandidates(buckets: Uint32Array, limit: number): Promise<NearDuplicateCandidate[]>;
  /** Leaves in the Merkle log (equal to the number of issuance records). */
  logSize(): Promise<number>;
  /** Hashes of complete subtrees of the Merkle log (level 0: leaves), in the order asked. */
  logNodeHashes(refs: readonly NodeRef[]): Promise<Uint8Array[]>;
  /** Stores a checkpoint unless one of that size is stored; returns the stored one. */
  saveCheckpoint(checkpoint: StoredCheckpoint): Promise<StoredCheckpoint>;
  getCheckpoint(treeSize: number): Promise<StoredCheckpoint | null>;
  latestCheckpoint(): Promise<StoredCheckpoint | null>;
  /** Verifier keys that have signed this log's checkpoints, oldest first. */
  logKeys(): Promise<string[]>;
  /** Records a verifier key for this log (idempotent). */
  addLogKey(verifierKey: string, at: string): Promise<void>;
  /** Records an epoch as active (idempotent). */
  registerWatermarkEpoch(watermarkKeyId: string, keyEpoch: string | null, at: string): Promise<void>;
  /** Every epoch registered, oldest first. */
  listWatermarkEpochs(): Promise<WatermarkEpoch[]>;
  listIssuance(options: ListIssuanceOptions): Promise<IssuanceRecord[]>;
  /** Accounts that were issued output, with their counts, by account name. */
  listIssuanceAccounts(): Promise<IssuanceAccount[]>;
  getIssuance(id: string): Promise<IssuanceRecord | null>;
  countIssuance(): Promise<number>;
  /** Completion tokens issued to a key since `since` (ISO), for quota accounting after a restart. */
  sumTokensSince(apiKeyId: string, since: string): Promise<number>;
  /** Drops the output tokens of records created before `before` (ISO); hashes and counts stay. */
  pruneIssuedTokens(before: string): Promise<number>;
  /** Appends monitor events in one transaction. */
  appendMonitorEvents(events: readonly MonitorEventInput[]): Promise<void>;
  /** Monitor events in id order. */
  listMonitorEvents(options: ListMonitorEventsOptions): Promise<StoredMonitorEvent[]>;
  /** Records a policy action (the audit trail is append-only). */
  appendRiskAction(action: RiskActionInput): Promise<RiskActionRecord>;
  /** Policy actions in id order (oldest first), of one account or of all. */
  listRiskActions(options?: { readonly account?: string }): Promise<RiskActionRecord[]>;
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
