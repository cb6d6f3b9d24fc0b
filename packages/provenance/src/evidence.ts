/**
 * Signed watermark evidence reports: the predicate of an in-toto Statement
 * (predicateType https://tracemark.dev/evidence/v1) whose subject is the SHA-256 of the exact text
 * examined, carried in a DSSE envelope so anyone can verify it offline. The fields follow what a
 * report must state to be relied on (docs: field notes §5): text digest and normalization,
 * tokenizer, algorithm with parameters and key ids (never keys), software version, the test
 * statistics with exact and multiple-testing-corrected p-values, calibration, localization,
 * issuance-log match with inclusion proof and signed checkpoint, and limitations.
 */
import { fromHex, sha256Hex, toHex } from './bytes.js';
import type { JsonValue } from './canonical-json.js';
import { parseCheckpoint, verifyCheckpoint } from './checkpoint.js';
import {
  type DsseEnvelope,
  IN_TOTO_STATEMENT_TYPE,
  type InTotoStatement,
  signEnvelope,
  verifyEnvelope,
} from './dsse.js';
import { ProvenanceError } from './errors.js';
import { type IssuanceRecord, issuanceLeafHash, issuanceRecordProblem } from './issuance.js';
import { HASH_SIZE, verifyInclusion } from './merkle.js';
import { type NoteSigner, toVerifiers, type VerifierKeyInput } from './note.js';

export const EVIDENCE_PREDICATE_TYPE = 'https://tracemark.dev/evidence/v1';

/** Limitations every report should carry unless a stronger statement is justified. */
export const STANDARD_LIMITATIONS: readonly string[] = Object.freeze([
  'Paraphrasing, translation or heavy editing can weaken or remove the watermark.',
  'Short or low-entropy text carries little signal; the test may not reach significance.',
  'The absence of a watermark does not prove that a person wrote the text.',
  'Only the watermark keys and settings listed were tested.',
]);

/** `detected`: corrected p ≤ α; `not-detected`: corrected p > α; `inconclusive`: too little signal to test. */
export type EvidenceVerdict = 'detected' | 'not-detected' | 'inconclusive';

export interface EvidenceText {
  /** Lower-case hex SHA-256 of the exact bytes examined (UTF-8), before normalization. */
  readonly sha256: string;
  /** Normalization applied before tokenizing, e.g. `NFC` or `none`. */
  readonly normalization: string;
  /** What was submitted: the text itself (default), or token ids (then `content` is their decoding). */
  readonly input?: 'text' | 'tokens';
  /** Lower-case hex SHA-256 of the text after `normalization` (what exact issuance matches compare). */
  readonly normalizedSha256?: string;
  /** The exact text examined, so that the report can be read and checked on its own. */
  readonly content?: string;
  /** The token ids examined, when they were submitted as ids. */
  readonly tokenIds?: readonly number[];
}

/**
 * Per-token localization under one key: `statuses` has one letter per token, `G` green, `R` red (both
 * scored), `N` scored under a scheme without green lists (Gumbel), `C` no context window, `S` special token, `P` the prompt's window, `D` a repeated
 * (seed, token) pair; `ends[i]` is where token i ends, in Unicode code points of the normalized text
 * (of `content` for token input). A token that ends inside a character ends with it, so a later token
 * can be empty.
 */
export interface EvidenceTokens {
  readonly keyId: string;
  /** Tokens in the text; `statuses` may stop earlier (then `truncated` is true). */
  readonly numTokens: number;
  readonly statuses: string;
  readonly ends: readonly number[];
  readonly truncated: boolean;
}

/** How an issuance record was matched. */
export type IssuanceMatchKind = 'exact' | 'near-duplicate';

export interface EvidenceTokenizer {
  readonly name: string;
  readonly version?: string;
}

export interface EvidenceAlgorithm {
  /** Scheme name, e.g. `kgw-lefthash`. */
  readonly name: string;
  /** Public parameters (γ, δ, context width, …); no secret may appear here. */
  readonly parameters: { readonly [name: string]: JsonValue };
  /** Ids of every watermark key tested, including those that did not match. */
  readonly keyIds: readonly string[];
}

export interface EvidenceSoftware {
  readonly name: string;
  readonly version: string;
}

export interface EvidenceDetection {
  /** The key these numbers are for: the matched key, else the one with the strongest evidence. */
  readonly keyId?: string;
  /** T: tokens scored after deduplication and exclusions. */
  readonly numScored: number;
  /** Green tokens among them. */
  readonly numGreen: number;
  /** z = (numGreen − γT) / sqrt(T γ (1 − γ)). */
  readonly z: number;
  /** log10 of the exact one-sided p-value (binomial tail). */
  readonly log10P: number;
  /** log10 of the p-value corrected for every key, setting and window searched. */
  readonly log10PCorrected: number;
  /** Correction method, e.g. `holm`, `bonferroni`, `none`. */
  readonly correction: string;
  /** Number of hypotheses the correction accounts for. */
  readonly numTests: number;
  /** Significance threshold α the corrected p-value is compared with. */
  readonly alpha: number;
  readonly verdict: EvidenceVerdict;
}

export interface EvidenceCalibration {
  /** Where the calibration on human text is documented (report id or URL). */
  readonly reference: string;
  /** Human texts in the calibration set. */
  readonly numTexts?: number;
  /** False-positive rate observed there at α. */
  readonly observedFalsePositiveRate?: number;
}

/** One localized segment; token offsets are half-open [startToken, endToken). */
export interface EvidenceSegment {
  /** `window`: the best passage of the windowed search (spec §5.3); `fixed`: consecutive fixed-size segments. */
  readonly kind?: 'window' | 'fixed';
  readonly startToken: number;
  readonly endToken: number;
  /** Byte offsets into the text (UTF-8), half-open, when known. */
  readonly startByte?: number;
  readonly endByte?: number;
  readonly numScored: number;
  readonly numGreen: number;
  readonly z: number;
  /** Uncorrected log10 p-value of this segment alone. */
  readonly log10P: number;
  /** For the best window: its p-value corrected for the windows searched. */
  readonly log10PCorrected?: number;
}

/** The issuance-log entry matched, with what is needed to check it against a signed checkpoint. */
export interface IssuanceMatch {
  /** `exact`: the normalized text hashes to the issued output's; `near-duplicate`: similar shingles. */
  readonly match?: IssuanceMatchKind;
  /** For a near-duplicate: the estimated similarity, and how it is measured. */
  readonly similarity?: number;
  readonly similarityMeasure?: string;
  readonly recordId: string;
  readonly leafIndex: number;
  readonly treeSize: number;
  /** Lower-case hex RFC 6962 leaf hash of the record (see `issuanceLeafHash`). */
  readonly leafHash: string;
  /** Lower-case hex hashes of the audit path, leaf level first. */
  readonly inclusionProof: readonly string[];
  /** Signed checkpoint (C2SP tlog-checkpoint text) for a tree of size `treeSize`. */
  readonly checkpoint: string;
  /** The record itself, when it may be disclosed; its leaf hash must then equal `leafHash`. */
  readonly record?: IssuanceRecord;
}

export interface EvidencePredicate {
  readonly text: EvidenceText;
  readonly tokenizer: EvidenceTokenizer;
  readonly algorithm: EvidenceAlgorithm;
  readonly software: EvidenceSoftware;
  readonly detection: EvidenceDetection;
  readonly calibration: EvidenceCalibration;
  readonly segments: readonly EvidenceSegment[];
  readonly issuance: IssuanceMatch | null;
  readonly limitations: readonly string[];
  /** When the detection ran, RFC 3339. */
  readonly verifiedAt: string;
  /** Per-token statuses, for display. */
  readonly tokens?: EvidenceTokens;
}

export type EvidenceStatement = InTotoStatement<EvidencePredicate>;

export interface BuildEvidenceOptions {
  /** Subject name; default `text`. */
  readonly subjectName?: string;
  /** When given, its SHA-256 must equal `predicate.text.sha256`. */
  readonly text?: string | Uint8Array;
}

type Problem = string | undefined;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function stringProblem(value: unknown, path: string): Problem {
  return typeof value === 'string' && value.length > 0 ? undefined : `${path} must be a non-empty string`;
}

function countProblem(value: unknown, path: string): Problem {
  return Number.isSafeInteger(value) && (value as number) >= 0
    ? undefined
    : `${path} must be a non-negative integer`;
}

function numberProblem(value: unknown, path: string): Problem {
  return typeof value === 'number' && Number.isFinite(value) ? undefined : `${path} must be a finite number`;
}

function sha256Problem(value: unknown, path: string): Problem {
  return typeof value === 'string' && /^[0-9a-f]{64}$/.test(value)
    ? undefined
    : `${path} must be 64 lower-case hex digits`;
}

function firstProblem(...problems: readonly Problem[]): Problem {
  return problems.find((problem) => problem !== undefined);
}

const SECRET_NAME = /^(?:key|secret|secretkey|privatekey|watermarkkey|seed|password|token)$/i;

function secretProblem(value: unknown, path: string): Problem {
  if (Array.isArray(value))
    return firstProblem(...value.map((item, i) => secretProblem(item, `${path}[${i}]`)));
  if (!isRecord(value)) return undefined;
  for (const [name, item] of Object.entries(value)) {
    if (SECRET_NAME.test(name)) return `${path}.${name} looks like a secret; reports name key ids only`;
    const problem = secretProblem(item, `${path}.${name}`);
    if (problem !== undefined) return problem;
  }
  return undefined;
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})$/;
const VERDICTS: readonly string[] = ['detected', 'not-detected', 'inconclusive'];

function segmentProblem(segment: unknown, path: string): Problem {
  if (!isRecord(segment)) return `${path} must be an object`;
  return firstProblem(
    segment.kind === undefined || segment.kind === 'window' || segment.kind === 'fixed'
      ? undefined
      : `${path}.kind must be window or fixed`,
    segment.log10PCorrected === undefined
      ? undefined
      : numberProblem(segment.log10PCorrected, `${path}.log10PCorrected`),
    countProblem(segment.startToken, `${path}.startToken`),
    countProblem(segment.endToken, `${path}.endToken`),
    segment.startByte === undefined ? undefined : countProblem(segment.startByte, `${path}.startByte`),
    segment.endByte === undefined ? undefined : countProblem(segment.endByte, `${path}.endByte`),
    countProblem(segment.numScored, `${path}.numScored`),
    countProblem(segment.numGreen, `${path}.numGreen`),
    numberProblem(segment.z, `${path}.z`),
    numberProblem(segment.log10P, `${path}.log10P`),
  );
}

function issuanceProblem(issuance: unknown, path: string): Problem {
  if (issuance === null) return undefined;
  if (!isRecord(issuance)) return `${path} must be an object or null`;
  const proof = issuance.inclusionProof;
  return firstProblem(
    issuance.match === undefined || issuance.match === 'exact' || issuance.match === 'near-duplicate'
      ? undefined
      : `${path}.match must be exact or near-duplicate`,
    issuance.similarity === undefined
      ? undefined
      : typeof issuance.similarity === 'number' && issuance.similarity >= 0 && issuance.similarity <= 1
        ? undefined
        : `${path}.similarity must be a number in [0, 1]`,
    issuance.similarityMeasure === undefined
      ? undefined
      : stringProblem(issuance.similarityMeasure, `${path}.similarityMeasure`),
    stringProblem(issuance.recordId, `${path}.recordId`),
    countProblem(issuance.leafIndex, `${path}.leafIndex`),
    countProblem(issuance.treeSize, `${path}.treeSize`),
    sha256Problem(issuance.leafHash, `${path}.leafHash`),
    Array.isArray(proof) ? undefined : `${path}.inclusionProof must be an array`,
    ...(Array.isArray(proof)
      ? proof.map((hash, i) => sha256Problem(hash, `${path}.inclusionProof[${i}]`))
      : []),
    stringProblem(issuance.checkpoint, `${path}.checkpoint`),
    issuance.record === undefined
      ? undefined
      : ((problem) => (problem === undefined ? undefined : `${path}.record ${problem}`))(
          issuanceRecordProblem(issuance.record),
        ),
  );
}

function textProblem(text: Record<string, unknown>): Problem {
  const ids = text.tokenIds;
  return firstProblem(
    sha256Problem(text.sha256, 'predicate.text.sha256'),
    stringProblem(text.normalization, 'predicate.text.normalization'),
    text.input === undefined || text.input === 'text' || text.input === 'tokens'
      ? undefined
      : 'predicate.text.input must be text or tokens',
    text.normalizedSha256 === undefined
      ? undefined
      : sha256Problem(text.normalizedSha256, 'predicate.text.normalizedSha256'),
    text.content === undefined || typeof text.content === 'string'
      ? undefined
      : 'predicate.text.content must be a string',
    ids === undefined ||
      (Array.isArray(ids) && ids.every((id) => Number.isInteger(id) && id >= 0 && id <= 0xffffffff))
      ? undefined
      : 'predicate.text.tokenIds must be an array of unsigned 32-bit integers',
  );
}

const STATUS_LETTERS = /^[GRNCSPD]*$/;

function tokensProblem(tokens: unknown): Problem {
  if (tokens === undefined) return undefined;
  if (!isRecord(tokens)) return 'predicate.tokens must be an object';
  const { statuses, ends } = tokens;
  if (typeof statuses !== 'string' || !STATUS_LETTERS.test(statuses)) {
    return 'predicate.tokens.statuses must be a string of the letters G, R, N, C, S, P, D';
  }
  if (!Array.isArray(ends) || ends.length !== statuses.length) {
    return 'predicate.tokens.ends must be an array with one entry per status';
  }
  for (let i = 0; i < ends.length; i++) {
    if (!Number.isSafeInteger(ends[i]) || ends[i] < (i === 0 ? 0 : ends[i - 1])) {
      return `predicate.tokens.ends[${i}] must be a non-decreasing non-negative integer`;
    }
  }
  return firstProblem(
    stringProblem(tokens.keyId, 'predicate.tokens.keyId'),
    countProblem(tokens.numTokens, 'predicate.tokens.numTokens'),
    typeof tokens.truncated === 'boolean' ? undefined : 'predicate.tokens.truncated must be a boolean',
  );
}

/** Why `value` is not a well-formed evidence predicate (structure and types only), or undefined. */
export function evidencePredicateProblem(value: unknown): Problem {
  if (!isRecord(value)) return 'predicate must be an object';
  const { text, tokenizer, algorithm, software, detection, calibration, segments, issuance, limitations } =
    value;
  if (!isRecord(text)) return 'predicate.text must be an object';
  if (!isRecord(tokenizer)) return 'predicate.tokenizer must be an object';
  if (!isRecord(algorithm)) return 'predicate.algorithm must be an object';
  if (!isRecord(software)) return 'predicate.software must be an object';
  if (!isRecord(detection)) return 'predicate.detection must be an object';
  if (!isRecord(calibration)) return 'predicate.calibration must be an object';
  if (!Array.isArray(segments)) return 'predicate.segments must be an array';
  if (!Array.isArray(limitations)) return 'predicate.limitations must be an array';
  if (!Array.isArray(algorithm.keyIds) || algorithm.keyIds.length === 0) {
    return 'predicate.algorithm.keyIds must be a non-empty array';
  }
  return firstProblem(
    textProblem(text),
    stringProblem(tokenizer.name, 'predicate.tokenizer.name'),
    tokenizer.version === undefined
      ? undefined
      : stringProblem(tokenizer.version, 'predicate.tokenizer.version'),
    stringProblem(algorithm.name, 'predicate.algorithm.name'),
    isRecord(algorithm.parameters) ? undefined : 'predicate.algorithm.parameters must be an object',
    secretProblem(algorithm.parameters, 'predicate.algorithm.parameters'),
    ...algorithm.keyIds.map((id, i) => stringProblem(id, `predicate.algorithm.keyIds[${i}]`)),
    stringProblem(software.name, 'predicate.software.name'),
    stringProblem(software.version, 'predicate.software.version'),
    detection.keyId === undefined ? undefined : stringProblem(detection.keyId, 'predicate.detection.keyId'),
    countProblem(detection.numScored, 'predicate.detection.numScored'),
    countProblem(detection.numGreen, 'predicate.detection.numGreen'),
    numberProblem(detection.z, 'predicate.detection.z'),
    numberProblem(detection.log10P, 'predicate.detection.log10P'),
    numberProblem(detection.log10PCorrected, 'predicate.detection.log10PCorrected'),
    stringProblem(detection.correction, 'predicate.detection.correction'),
    countProblem(detection.numTests, 'predicate.detection.numTests'),
    numberProblem(detection.alpha, 'predicate.detection.alpha'),
    VERDICTS.includes(detection.verdict as string)
      ? undefined
      : `predicate.detection.verdict must be one of ${VERDICTS.join(', ')}`,
    stringProblem(calibration.reference, 'predicate.calibration.reference'),
    calibration.numTexts === undefined
      ? undefined
      : countProblem(calibration.numTexts, 'predicate.calibration.numTexts'),
    calibration.observedFalsePositiveRate === undefined
      ? undefined
      : numberProblem(
          calibration.observedFalsePositiveRate,
          'predicate.calibration.observedFalsePositiveRate',
        ),
    ...segments.map((segment, i) => segmentProblem(segment, `predicate.segments[${i}]`)),
    issuanceProblem(issuance, 'predicate.issuance'),
    ...limitations.map((line, i) => stringProblem(line, `predicate.limitations[${i}]`)),
    typeof value.verifiedAt === 'string' &&
      RFC3339.test(value.verifiedAt) &&
      !Number.isNaN(Date.parse(value.verifiedAt))
      ? undefined
      : 'predicate.verifiedAt must be an RFC 3339 timestamp',
    tokensProblem(value.tokens),
  );
}

function countLetters(text: string, letter: string): number {
  let count = 0;
  for (const character of text) if (character === letter) count++;
  return count;
}

/** Why the numbers of a well-formed predicate contradict each other, or undefined. */
export function evidenceConsistencyProblem(predicate: EvidencePredicate): Problem {
  const d = predicate.detection;
  const tolerance = 1e-9;
  if (d.numGreen > d.numScored) return 'detection.numGreen exceeds detection.numScored';
  if (!(d.alpha > 0 && d.alpha < 1)) return 'detection.alpha must lie in (0, 1)';
  if (d.log10P > tolerance) return 'detection.log10P is above 0 (p > 1)';
  if (d.log10PCorrected > tolerance) return 'detection.log10PCorrected is above 0 (p > 1)';
  if (d.log10PCorrected < d.log10P - tolerance)
    return 'detection.log10PCorrected is smaller than the uncorrected log10P';
  if (d.numTests < 1) return 'detection.numTests must be at least 1';
  const threshold = Math.log10(d.alpha);
  if (d.verdict === 'detected' && d.log10PCorrected > threshold) {
    return `verdict is detected but corrected log10 p ${d.log10PCorrected} is above log10 α ${threshold}`;
  }
  if (d.verdict === 'not-detected' && d.log10PCorrected <= threshold) {
    return `verdict is not-detected but corrected log10 p ${d.log10PCorrected} is at or below log10 α ${threshold}`;
  }
  for (const [i, segment] of predicate.segments.entries()) {
    if (segment.endToken <= segment.startToken) return `segments[${i}] is empty or reversed`;
    if (segment.numGreen > segment.numScored) return `segments[${i}].numGreen exceeds numScored`;
    if (segment.log10P > tolerance) return `segments[${i}].log10P is above 0 (p > 1)`;
  }
  const tokens = predicate.tokens;
  if (tokens !== undefined) {
    if (tokens.statuses.length > tokens.numTokens) return 'tokens.statuses is longer than tokens.numTokens';
    if (tokens.truncated !== tokens.statuses.length < tokens.numTokens) {
      return 'tokens.truncated disagrees with the number of statuses';
    }
    const green = countLetters(tokens.statuses, 'G');
    const scored = green + countLetters(tokens.statuses, 'R') + countLetters(tokens.statuses, 'N');
    if (!tokens.truncated && tokens.keyId === predicate.detection.keyId) {
      if (green !== d.numGreen || scored !== d.numScored) {
        return `tokens: ${green} green of ${scored} scored, but detection says ${d.numGreen} of ${d.numScored}`;
      }
    }
  }
  const content = predicate.text.content;
  if (content !== undefined && sha256Hex(content) !== predicate.text.sha256) {
    return 'text.content does not hash to text.sha256';
  }
  const issuance = predicate.issuance;
  if (issuance !== null && issuance.leafIndex >= issuance.treeSize)
    return 'issuance.leafIndex is not below treeSize';
  if (issuance?.record !== undefined && issuance.record.id !== issuance.recordId) {
    return 'issuance.record.id differs from issuance.recordId';
  }
  return undefined;
}

/**
 * The in-toto Statement for an evidence report. Throws a `TypeError` naming the first problem when
 * the predicate is malformed or inconsistent, or contains something that looks like a secret.
 */
export function buildEvidenceStatement(
  predicate: EvidencePredicate,
  options: BuildEvidenceOptions = {},
): EvidenceStatement {
  const problem = evidencePredicateProblem(predicate) ?? evidenceConsistencyProblem(predicate);
  if (problem !== undefined) throw new TypeError(problem);
  if (options.text !== undefined && sha256Hex(options.text) !== predicate.text.sha256) {
    throw new TypeError('options.text: its SHA-256 differs from predicate.text.sha256');
  }
  return {
    _type: IN_TOTO_STATEMENT_TYPE,
    subject: [{ name: options.subjectName ?? 'text', digest: { sha256: predicate.text.sha256 } }],
    predicateType: EVIDENCE_PREDICATE_TYPE,
    predicate,
  };
}

/** Builds the statement and signs it into a DSSE envelope. */
export function signEvidence(
  predicate: EvidencePredicate,
  signer: NoteSigner | readonly NoteSigner[],
  options: BuildEvidenceOptions = {},
): DsseEnvelope {
  return signEnvelope(buildEvidenceStatement(predicate, options), signer);
}

export type EvidenceCheckName =
  | 'envelope'
  | 'statement'
  | 'consistency'
  | 'text-digest'
  | 'checkpoint-signature'
  | 'issuance-inclusion'
  | 'issuance-record'
  | 'issuance-text';

export interface EvidenceCheck {
  readonly name: EvidenceCheckName;
  readonly ok: boolean;
  /** True when the check did not apply (no text given, no issuance match, no checkpoint key). */
  readonly skipped?: boolean;
  /** Why it failed or was skipped. */
  readonly reason?: string;
}

export interface EvidenceVerification {
  /** True when every check passed or did not apply. */
  readonly ok: boolean;
  /** Every check, in a fixed order, whether it passed, failed or was skipped. */
  readonly checks: readonly EvidenceCheck[];
  /** The signed statement, once the envelope verified and the statement is well formed. */
  readonly statement?: EvidenceStatement;
}

export interface VerifyEvidenceInput {
  readonly envelope: DsseEnvelope | string;
  /** The text the report is about; its SHA-256 must be the subject digest. */
  readonly text?: string | Uint8Array;
  /** Trusted keys of report signers. */
  readonly publicKeys: VerifierKeyInput | readonly VerifierKeyInput[];
  /** Trusted keys of the issuance log; without them the checkpoint signature is not checked. */
  readonly checkpointVerifierKey?: VerifierKeyInput | readonly VerifierKeyInput[];
  /** Expected origin of the issuance log's checkpoints. */
  readonly checkpointOrigin?: string;
  /**
   * The normalization named in the report (for tracemark, `normalizeText` of @tracemark/tokenizers).
   * When given, the normalized text's SHA-256 must equal `predicate.text.normalizedSha256`.
   */
  readonly normalize?: (text: string) => string;
}

const CHECK_ORDER: readonly EvidenceCheckName[] = [
  'envelope',
  'statement',
  'consistency',
  'text-digest',
  'checkpoint-signature',
  'issuance-inclusion',
  'issuance-record',
  'issuance-text',
];

function reasonOf(error: unknown): string {
  if (error instanceof ProvenanceError) return `${error.code}: ${error.message}`;
  return error instanceof Error ? error.message : String(error);
}

/**
 * Verifies a signed evidence report and returns every check with its outcome: the DSSE signature,
 * the Statement's shape, the consistency of its numbers, the text digest, and for an issuance match
 * the checkpoint signature, the inclusion proof against the checkpoint root and the disclosed record.
 * Never throws on untrusted input; bad verifier keys (configuration) throw.
 */
export function verifyEvidence(input: VerifyEvidenceInput): EvidenceVerification {
  const checks = new Map<EvidenceCheckName, EvidenceCheck>();
  const pass = (name: EvidenceCheckName): void => void checks.set(name, { name, ok: true });
  const failed = (name: EvidenceCheckName, reason: string): void =>
    void checks.set(name, { name, ok: false, reason });
  const skip = (name: EvidenceCheckName, reason: string): void =>
    void checks.set(name, { name, ok: true, skipped: true, reason });
  const result = (statement?: EvidenceStatement): EvidenceVerification => {
    const list = CHECK_ORDER.map((name) => checks.get(name)!);
    return {
      ok: list.every((check) => check.ok),
      checks: list,
      ...(statement === undefined ? {} : { statement }),
    };
  };
  const notChecked = (reason: string): void => {
    for (const name of CHECK_ORDER) if (!checks.has(name)) failed(name, `not checked: ${reason}`);
  };

  // Keys are configuration, not evidence: a malformed one throws rather than failing a check.
  const publicKeys = toVerifiers(input.publicKeys);
  const checkpointKeys =
    input.checkpointVerifierKey === undefined ? undefined : toVerifiers(input.checkpointVerifierKey);

  let statement: InTotoStatement;
  try {
    statement = verifyEnvelope(input.envelope, publicKeys);
    pass('envelope');
  } catch (error) {
    if (!(error instanceof ProvenanceError)) throw error;
    failed('envelope', reasonOf(error));
    notChecked('the envelope did not verify');
    return result();
  }

  const subjectDigest = statement.subject[0]?.digest.sha256;
  const shapeProblem =
    statement.predicateType !== EVIDENCE_PREDICATE_TYPE
      ? `predicateType is ${JSON.stringify(statement.predicateType)}, expected ${JSON.stringify(EVIDENCE_PREDICATE_TYPE)}`
      : statement.subject.length !== 1
        ? 'expected exactly one subject'
        : firstProblem(
            sha256Problem(subjectDigest, 'subject[0].digest.sha256'),
            evidencePredicateProblem(statement.predicate),
          );
  if (shapeProblem !== undefined) {
    failed('statement', shapeProblem);
    notChecked('the statement is not an evidence report');
    return result();
  }
  pass('statement');
  const evidence = statement as unknown as EvidenceStatement;
  const predicate = evidence.predicate;

  const consistency =
    subjectDigest !== predicate.text.sha256
      ? 'predicate.text.sha256 differs from the subject digest'
      : evidenceConsistencyProblem(predicate);
  if (consistency === undefined) {
    pass('consistency');
  } else {
    failed('consistency', consistency);
  }

  const textProblem = textDigestProblem(input, predicate, subjectDigest!);
  if (textProblem === null) {
    skip('text-digest', 'no text supplied, and the report does not carry it');
  } else if (textProblem === undefined) {
    pass('text-digest');
  } else {
    failed('text-digest', textProblem);
  }

  const issuance = predicate.issuance;
  if (issuance === null) {
    for (const name of [
      'checkpoint-signature',
      'issuance-inclusion',
      'issuance-record',
      'issuance-text',
    ] as const) {
      skip(name, 'the report has no issuance match');
    }
    return result(evidence);
  }

  if (checkpointKeys === undefined) {
    skip('checkpoint-signature', 'no checkpoint verifier key supplied');
  } else {
    try {
      verifyCheckpoint(
        issuance.checkpoint,
        checkpointKeys,
        input.checkpointOrigin === undefined ? {} : { origin: input.checkpointOrigin },
      );
      pass('checkpoint-signature');
    } catch (error) {
      if (!(error instanceof ProvenanceError)) throw error;
      failed('checkpoint-signature', reasonOf(error));
    }
  }

  const inclusion = inclusionProblem(issuance);
  if (inclusion === undefined) {
    pass('issuance-inclusion');
  } else {
    failed('issuance-inclusion', inclusion);
  }

  if (issuance.record === undefined) {
    skip('issuance-record', 'the record is not disclosed');
  } else {
    const recomputed = toHex(issuanceLeafHash(issuance.record));
    if (recomputed !== issuance.leafHash) {
      failed(
        'issuance-record',
        `the record's leaf hash is ${recomputed}, the match names ${issuance.leafHash}`,
      );
    } else if (issuance.record.id !== issuance.recordId) {
      failed('issuance-record', 'the record id differs from recordId');
    } else {
      pass('issuance-record');
    }
  }

  if (issuance.record === undefined) {
    skip('issuance-text', 'the record is not disclosed');
  } else if (issuance.match !== 'exact') {
    skip(
      'issuance-text',
      issuance.match === 'near-duplicate'
        ? `near-duplicate match${issuance.similarity === undefined ? '' : ` (similarity ${Number(issuance.similarity.toFixed(3))})`}: the text differs from the issued output`
        : 'the match kind is not stated',
    );
  } else if (
    issuance.record.outputSha256 === subjectDigest ||
    (predicate.text.normalizedSha256 !== undefined &&
      issuance.record.normalizedOutputSha256 === predicate.text.normalizedSha256)
  ) {
    pass('issuance-text');
  } else {
    failed('issuance-text', "an exact match, but the record's output hash differs from the text's");
  }
  return result(evidence);
}

/** null: nothing to compare; undefined: the text (given, or carried in the report) matches. */
function textDigestProblem(
  input: VerifyEvidenceInput,
  predicate: EvidencePredicate,
  subjectDigest: string,
): Problem | null {
  const content = predicate.text.content;
  if (input.text === undefined && content === undefined) return null;
  if (input.text !== undefined) {
    const digest = sha256Hex(input.text);
    if (digest !== subjectDigest) {
      return `the text's SHA-256 is ${digest}, the report is about ${subjectDigest}`;
    }
  }
  if (content !== undefined && sha256Hex(content) !== subjectDigest) {
    return `the text carried in the report hashes to ${sha256Hex(content)}, the report is about ${subjectDigest}`;
  }
  const expected = predicate.text.normalizedSha256;
  if (input.normalize !== undefined && expected !== undefined) {
    const raw = input.text ?? content!;
    const decoded = typeof raw === 'string' ? raw : new TextDecoder().decode(raw);
    const normalized = sha256Hex(input.normalize(decoded));
    if (normalized !== expected) {
      return `the normalized text hashes to ${normalized}, the report says ${expected}`;
    }
  }
  return undefined;
}

function inclusionProblem(issuance: IssuanceMatch): Problem {
  let checkpoint: ReturnType<typeof parseCheckpoint>;
  try {
    checkpoint = parseCheckpoint(issuance.checkpoint);
  } catch (error) {
    return reasonOf(error);
  }
  if (checkpoint.size !== issuance.treeSize) {
    return `the proof is for tree size ${issuance.treeSize} but the checkpoint is for size ${checkpoint.size}`;
  }
  const leaf = fromHex(issuance.leafHash, 'leafHash');
  const proof = issuance.inclusionProof.map((hash) => fromHex(hash, 'inclusionProof'));
  if (leaf.length !== HASH_SIZE) return 'leafHash must be 32 bytes';
  if (!verifyInclusion(leaf, issuance.leafIndex, issuance.treeSize, proof, checkpoint.rootHash)) {
    return `the inclusion proof for leaf ${issuance.leafIndex} does not lead to the checkpoint root`;
  }
  return undefined;
}
