/**
 * The request and response bodies of the gateway's HTTP API, as its route schemas define them
 * (apps/gateway/src/schemas.ts and apps/gateway/src/routes/*.ts). The gateway serializes every response
 * through its schema, so a field not listed there never arrives. Optional fields here are those the schema
 * does not require and the gateway may leave out; a field the schema leaves unrequired but the gateway
 * always fills (from the result types of @tracemark/detection and @tracemark/extraction) is required.
 */
import type { DsseEnvelope } from '@tracemark/provenance';

/** The scopes an API key can hold. */
export type ApiKeyScope = 'generate' | 'verify' | 'logprobs' | 'admin';

/** A text's verdict: `insufficient` when there is too little text to decide. */
export type DetectionVerdict = 'watermarked' | 'not_watermarked' | 'insufficient';

/** Exactly one of `text` (the exact text) or `tokens` (ids of the key's tokenizer). */
export type TextOrTokens =
  | { readonly text: string; readonly tokens?: never }
  | { readonly tokens: readonly number[]; readonly text?: never };

/** POST /v1/verify. */
export type VerifyRequest = TextOrTokens & {
  /** The prompt the text answered (text or token ids): its windows are not scored. */
  readonly prompt?: string | readonly number[];
  /** The false-positive rate α the corrected p-value is compared with (default: the gateway's). */
  readonly fpr?: number;
};

/** The issuance-log entry a verified text matched. */
export interface IssuanceMatchSummary {
  /** `exact`: the same text after normalization; `near-duplicate`: an edited copy. */
  readonly match: 'exact' | 'near-duplicate';
  readonly recordId: string;
  /** Shingle similarity with the issued output (1 for an exact match). */
  readonly similarity: number;
  readonly leafIndex: number;
  readonly treeSize: number;
  /** Whether the signed report carries the record (same account as the key, or an admin key). */
  readonly disclosed: boolean;
}

/** The spoofing-artefact test of POST /v1/verify (`tracemark-spoof-fisher-v1`). */
export interface SpoofingResult {
  readonly test: string;
  /** What "common" word pairs are measured against. */
  readonly learnability: string;
  readonly keyId: string;
  readonly numScored: number;
  readonly commonMarkedShare: number | null;
  readonly rareMarkedShare: number | null;
  /** log10 of the exact one-sided Fisher p-value. */
  readonly log10P: number;
  readonly alpha: number;
  readonly flagged: boolean;
}

/** The answer of POST /v1/verify: the verdict, its numbers, the issuance match and the signed report. */
export interface VerifyResponse {
  readonly object: 'tracemark.verification';
  readonly verdict: DetectionVerdict;
  /** The verdict in plain words. */
  readonly summary: string;
  readonly detection: {
    readonly keyId: string;
    readonly numTokens: number;
    readonly numScored: number;
    /** null for a key without green lists (Gumbel schemes, engines' keys such as vllm:gumbel). */
    readonly numGreen: number | null;
    readonly z: number;
    readonly log10P: number;
    /** Corrected (Holm) for every key tested. */
    readonly log10PAdjusted: number;
    readonly keysTested: number;
    readonly fpr: number;
    /** The reported key's scheme (tracemark-v1/lefthash, vllm:gumbel, …). */
    readonly scheme?: string;
    /** Keys without green lists: the scheme's test statistic. */
    readonly score?: number;
    /** False for engines' keys: the whole text was tested, without windowed search. */
    readonly windowSearched?: boolean;
  };
  readonly issuance: IssuanceMatchSummary | null;
  /**
   * The spoofing-artefact test of a watermarked text that no issued output matches exactly (green-list keys
   * of context 1 or 2): `flagged` means its mark sits where someone who learned it from this service's
   * outputs would put it. Reported beside the verdict, never changing it; null where it does not apply.
   * Absent from gateways older than the test.
   */
  readonly spoofing?: SpoofingResult | null;
  /** The signed evidence report: a DSSE envelope carrying an in-toto Statement. */
  readonly report: DsseEnvelope;
  /** DSSE key id of the signature: `<name>+<key hash>`. */
  readonly keyId: string;
  /** The signer's verifier key as the gateway names it (pin it with {@link ServiceKeys} instead). */
  readonly verifierKey: string;
}

/** POST /v1/detect. */
export type DetectRequest = TextOrTokens & {
  readonly prompt?: string | readonly number[];
  readonly fpr?: number;
  /** Also search for the most watermarked passage (corrected for the windows searched). */
  readonly window?: boolean;
};

/** One key's result within a detection. */
export interface DetectKeyResult {
  readonly keyId: string;
  readonly verdict: DetectionVerdict;
  readonly numScored: number;
  readonly numGreen: number | null;
  readonly greenFraction: number | null;
  readonly z: number;
  readonly log10P: number;
  readonly log10PAdjusted: number;
  readonly scheme?: string;
  readonly score?: number;
  /** Engines' keys: the engine's own p-value formula, log10. */
  readonly peerLog10P?: number | null;
  readonly dedup?: 'none' | 'context' | 'strict';
}

/** The most watermarked passage, when asked for with `window: true`. */
export interface DetectWindow {
  readonly startToken: number;
  readonly endToken: number;
  readonly tapeStart: number;
  readonly length: number;
  readonly numGreen: number;
  /** Keys without green lists: the best window's score sum. */
  readonly score?: number;
  readonly log10P: number;
  readonly windowsSearched: number;
  /** Corrected for the windows searched. */
  readonly log10PCorrected: number;
}

/** The answer of POST /v1/detect: the fields `tracemark detect --json` prints. */
export interface DetectResponse extends Omit<DetectKeyResult, 'keyId'> {
  readonly source: string;
  readonly keyId: string;
  readonly numTokens: number;
  readonly tokenizer: string;
  readonly keysTested: number;
  readonly fpr: number;
  /** Tokens of this kind of text needed to settle the verdict; null when no number would. */
  readonly tokensToSettle: number | null;
  readonly window: DetectWindow | null;
  readonly keys: readonly DetectKeyResult[];
}

/** A scan's verdict about a corpus. */
export type ScanVerdict = 'radioactive' | 'not_radioactive' | 'insufficient';

/** POST /v1/scan: at most 2,000 documents and 2 MiB of text. */
export interface ScanRequest {
  readonly documents: readonly {
    readonly text: string;
    /** The prompt it answered: the prompt's (window, token) pairs are never scored. */
    readonly prompt?: string;
    /** A name for it in the result (at most 256 characters). */
    readonly source?: string;
  }[];
  /** Fake keys for the calibration, 20 to 200 (default 100). */
  readonly fakeKeys?: number;
  /** Public label the fake keys derive from. */
  readonly fakeKeySeed?: string;
  /** Significance threshold (default 1e-6). */
  readonly alpha?: number;
}

/** Where a passage starts or ends: a document and a token in it. */
export interface ScanLocation {
  readonly document: number;
  readonly source: string;
  readonly token: number;
}

/** A corpus-wide result under one of tracemark's keys, calibrated with fake keys. */
export interface TracemarkKeyScan {
  readonly keyId: string;
  readonly scheme: string;
  readonly contextWidth: number;
  readonly gamma: number;
  /** How the corpus was read into one deduplicated tape. */
  readonly tape?: {
    readonly numDocuments: number;
    readonly numTokens: number;
    readonly numPromptTokens: number;
    readonly numEligible: number;
    readonly numDistinct: number;
    readonly numExcludedByPrompt: number;
  };
  /** Distinct (seed, token) pairs scored, corpus-wide. */
  readonly numScored: number;
  readonly numGreen: number;
  readonly greenFraction: number;
  /** Green fraction − γ, with a 95% interval. */
  readonly effect: number;
  readonly effectInterval: readonly number[];
  readonly z: number;
  readonly log10P: number;
  /** Holm-adjusted across the keys tested. */
  readonly log10PAdjusted: number;
  readonly calibration: {
    readonly fakeKeys: number;
    readonly seed: string;
    /** 1 + the number of fake keys whose p-value is at most the true key's. */
    readonly rank: number;
    readonly empiricalPValue: number;
    readonly ksStatistic: number;
    readonly ksPValue: number;
    /** False when the fake keys' p-values are not uniform (the verdict is withheld). */
    readonly uniform: boolean | null;
    readonly minFakeLog10P?: number;
  };
  /** Doses of watermarked training text at or above this are ruled out. */
  readonly doseUpperBound: number;
  readonly verdict: ScanVerdict;
  readonly reason: string;
  /** The documents with the most evidence (corrected for the documents searched). */
  readonly topDocuments: readonly {
    readonly document: number;
    readonly source: string;
    readonly numScored: number;
    readonly numGreen: number;
    readonly log10P: number;
    readonly log10PCorrected: number;
  }[];
  /** The passages with the most evidence, possibly spanning documents. */
  readonly passages: readonly {
    readonly start: ScanLocation;
    readonly end: ScanLocation;
    readonly numScored: number;
    readonly numGreen: number;
    readonly log10P: number;
    readonly log10PCorrected: number;
  }[];
  /** Each fake key's exact log10 p-value, in index order. */
  readonly fakeKeyLog10P: readonly number[];
  /** Each fake key's randomized p-value, exactly U(0, 1) under the null (for a calibration plot). */
  readonly fakeKeyRandomizedP: readonly number[];
}

/** A corpus-wide result under an engine's key (engine-native mode): an exact null, no fake keys. */
export interface EngineKeyScan {
  readonly keyId: string;
  /** The engine family (`vllm`, …). */
  readonly family: string;
  readonly label: string;
  readonly scheme: string;
  readonly parameters: Readonly<Record<string, string | number | boolean>>;
  /** The score's null distribution, in words. */
  readonly nullDistribution: string;
  /** Units over all documents, before the corpus-wide deduplication. */
  readonly numUnits: number;
  readonly numRepeated: number;
  readonly numExcludedByPrompt: number;
  /** Distinct units scored. */
  readonly numScored: number;
  /** The sum of the distinct units' values (a Gumbel sum, a green count…). */
  readonly score: number;
  readonly numGreen: number | null;
  readonly greenFraction: number | null;
  /** The binomial z for green-list schemes; null otherwise. */
  readonly z: number | null;
  readonly log10P: number;
  readonly log10PAdjusted: number;
  /** The null is exact: no fake keys are run. */
  readonly calibration: null;
  readonly doseUpperBound: number | null;
  readonly verdict: ScanVerdict;
  readonly reason: string;
  readonly topDocuments: readonly {
    readonly document: number;
    readonly source: string;
    readonly numScored: number;
    readonly score: number;
    readonly log10P: number;
    readonly log10PCorrected: number;
  }[];
}

/** The answer of POST /v1/scan. */
export interface ScanResponse {
  readonly object: 'tracemark.scan';
  readonly verdict: ScanVerdict;
  readonly reason: string;
  /** The radioactive key with the strongest evidence. */
  readonly matchedKeyId: string | null;
  readonly alpha: number;
  readonly missRate?: number;
  readonly minimumDose?: number;
  readonly numDocuments: number;
  readonly numTokens: number;
  readonly numPromptTokens: number;
  readonly fakeKeys: { readonly count: number; readonly seed: string };
  /** One entry per key: tracemark's, or in engine-native mode the engine's. */
  readonly keys: readonly (TracemarkKeyScan | EngineKeyScan)[];
}

/** GET /v1/whoami: the presented key's public view (never the key or its hash). */
export interface Identity {
  readonly object: 'tracemark.api_key';
  /** Public key id, `ak_…`. */
  readonly id: string;
  readonly name: string;
  readonly account: string;
  readonly scopes: readonly ApiKeyScope[];
  readonly expiresAt: string | null;
  /** Public id of the watermark key this gateway marks with. */
  readonly watermarkKeyId: string;
}

/** GET /.well-known/tracemark/keys.json: the public keys that check checkpoints and evidence reports. */
export interface ServiceKeys {
  /** The issuance log's origin (checkpoints name it). */
  readonly logOrigin: string;
  readonly keys: readonly {
    readonly keyId: string;
    /** Signed-note verifier key string: `<name>+<hash>+<base64>`. */
    readonly verifierKey: string;
    readonly algorithm: 'ed25519';
    readonly uses: readonly ('checkpoints' | 'evidence-reports')[];
  }[];
  /** Public ids of the watermark keys verification tests. */
  readonly watermarkKeyIds: readonly string[];
  readonly predicateType: string;
}

/** GET /v1/log/checkpoint: the issuance log's latest signed checkpoint. */
export interface LogCheckpoint {
  readonly origin: string;
  readonly treeSize: number;
  /** Lower-case hex. */
  readonly rootHash: string;
  /** C2SP signed checkpoint (signed note text). */
  readonly checkpoint: string;
}

/** GET /v1/log/inclusion: name the entry by its leaf index or by its record id. */
export type InclusionProofRequest = (
  | { readonly leafIndex: number; readonly recordId?: never }
  | { readonly recordId: string; readonly leafIndex?: never }
) & {
  /** The size of a signed checkpoint (default: the latest). */
  readonly treeSize?: number;
};

/** An inclusion proof of one issuance record in a signed tree. */
export interface InclusionProof {
  readonly recordId: string;
  readonly leafIndex: number;
  readonly leafHash: string;
  /** Audit path, leaf level first (RFC 9162 §2.1.3), lower-case hex. */
  readonly inclusionProof: readonly string[];
  readonly treeSize: number;
  readonly rootHash: string;
  readonly checkpoint: string;
}

/** GET /v1/log/consistency. */
export interface ConsistencyProofRequest {
  /** Any earlier size. */
  readonly from: number;
  /** The size of a signed checkpoint (default: the latest). */
  readonly to?: number;
}

/** A consistency proof from an earlier size to a signed checkpoint. */
export interface ConsistencyProof {
  readonly fromSize: number;
  /** The earlier tree's root, unsigned: compare it with the checkpoint you hold. */
  readonly fromRootHash: string;
  /** RFC 9162 §2.1.4, lower-case hex. */
  readonly consistencyProof: readonly string[];
  readonly treeSize: number;
  readonly rootHash: string;
  readonly checkpoint: string;
}

/** GET /healthz (answered with 200 or 503). */
export interface Health {
  readonly status: 'ok' | 'degraded';
  readonly storage?: string;
  readonly storageOk?: boolean;
  readonly backend?: string;
  readonly model?: string;
  readonly watermarkKeyId?: string;
  readonly uptimeSeconds?: number;
}

/** An API key's public view (never the key itself or its hash). */
export interface ApiKeyInfo {
  readonly id: string;
  readonly environment: string;
  readonly name: string;
  readonly account: string;
  readonly scopes: readonly ApiKeyScope[];
  readonly createdAt: string;
  readonly expiresAt: string | null;
  readonly revokedAt: string | null;
  readonly rateLimitPerMinute?: number | null;
  readonly dailyTokenQuota?: number | null;
  readonly state?: 'active' | 'revoked' | 'expired';
}

/** POST /v1/admin/keys. */
export interface CreateApiKeyRequest {
  readonly scopes: readonly ApiKeyScope[];
  readonly name?: string;
  /** Default: the admin key's own account. */
  readonly account?: string;
  /** RFC 3339 date-time. */
  readonly expiresAt?: string;
  readonly rateLimitPerMinute?: number;
  readonly dailyTokenQuota?: number;
}

/** The new key, in this response only: the gateway keeps only its HMAC. */
export interface CreatedApiKey {
  readonly id: string;
  readonly key: string;
  readonly info: ApiKeyInfo;
}

/** One record of the issuance log, as the admin API returns it. */
export interface IssuanceLogRecord {
  readonly seq?: number;
  readonly id?: string;
  readonly completionId?: string;
  readonly choiceIndex?: number;
  readonly createdAt?: string;
  readonly apiKeyId?: string;
  readonly account?: string;
  readonly endpoint?: string;
  readonly model?: string;
  readonly backend?: string;
  readonly watermarkKeyId?: string;
  readonly keyEpoch?: string | null;
  readonly promptSha256?: string;
  readonly outputSha256?: string;
  readonly numPromptTokens?: number;
  readonly numTokens?: number;
  readonly outputTokens?: readonly number[] | null;
  readonly finishReason?: string;
}

/** GET /v1/admin/issuance. */
export interface IssuanceListRequest {
  /** Records with a sequence number greater than this (default: from the start). */
  readonly after?: number;
  /** 1 to 1000 (default 100). */
  readonly limit?: number;
  /** Only the records issued to this API key id. */
  readonly apiKeyId?: string;
}

/** A page of the issuance log. */
export interface IssuanceList {
  readonly object: 'list';
  readonly data: readonly IssuanceLogRecord[];
  /** Records in the whole log. */
  readonly total?: number;
}
