/**
 * POST /v1/verify, the work: exact and near-duplicate issuance matches, detection under every registered
 * key epoch (Holm-corrected; the shared detection path of `tracemark detect`), per-token and per-segment
 * localization, and the signed evidence report (DSSE envelope, in-toto Statement v1).
 */

import { createHash } from 'node:crypto';
import {
  type KeyDetection,
  log10BinomialSf,
  loneSurrogateIndex,
  type TokenStatusName,
  type WatermarkKey,
  zScore,
} from '@tracemark/core';
import {
  type AnyDocumentResult,
  type AnyKeyTextDetector,
  type AnyWatermarkKey,
  type DocumentResult,
  foreignKeyType,
  foreignLabel,
  foreignSchemeName,
  InputError,
  isForeignKey,
  type TextDetector,
} from '@tracemark/detection';
import {
  type DsseEnvelope,
  type EvidencePredicate,
  type EvidenceSegment,
  type EvidenceTokens,
  type EvidenceVerdict,
  estimateJaccard,
  type IssuanceMatch,
  lshBuckets,
  minhashSignature,
  NEAR_DUPLICATE_PARAMS,
  NEAR_DUPLICATE_SCHEME,
  NEAR_DUPLICATE_THRESHOLD,
  STANDARD_LIMITATIONS,
  toHex,
} from '@tracemark/provenance';
import { normalizeText, type Tokenizer } from '@tracemark/tokenizers';
import { keyForStoredEpoch } from '../account-keys.ts';
import type { ApiKeyRecord } from '../api-keys.ts';
import { GatewayError, onClientInput } from '../errors.ts';
import type { GatewayStorage, IssuanceRecord } from '../storage/types.ts';
import { calibrationFor } from './calibration.ts';
import type { IssuanceLog } from './issuance-log.ts';
import { leafHashOf, leafRecordOf } from './leaf.ts';
import { SPOOF_TEST_NAME, type SpoofingChecker, type SpoofingResult } from './spoofing.ts';

/** The tokenizer normalization (spec §6, @tracemark/tokenizers `normalizeText`), as reports name it. */
export const NORMALIZATION =
  'tracemark-v1: remove U+200B, U+200C, U+200D, U+2060, U+FEFF, U+FE00–U+FE0F and U+E0100–U+E01EF, then Unicode NFC';

/** Per-token statuses beyond this many tokens are left out of the report (it says so: `truncated`). */
export const MAX_REPORTED_TOKENS = 50_000;
/** Candidates confirmed per near-duplicate query, most shared LSH bands first. */
export const NEAR_DUPLICATE_CANDIDATES = 64;
/** Shortest window of the localization search (spec §5.3's default). */
const MIN_WINDOW = 16;

export interface VerifyInput {
  readonly text?: string;
  readonly tokens?: readonly number[];
  readonly prompt?: string | readonly number[];
  readonly fpr?: number;
}

export interface IssuanceSummary {
  readonly match: 'exact' | 'near-duplicate';
  readonly recordId: string;
  readonly similarity: number;
  readonly leafIndex: number;
  readonly treeSize: number;
  readonly disclosed: boolean;
}

export interface Verification {
  /** `numGreen` is null when an engine's key without green lists is reported. */
  readonly document: AnyDocumentResult;
  readonly predicate: EvidencePredicate;
  readonly envelope: DsseEnvelope;
  readonly issuance: IssuanceSummary | null;
  /** False when an engine's key was tested: the whole text only, no windowed search. */
  readonly windowSearched: boolean;
  /** What the report says, in one paragraph of plain words. */
  readonly summary: string;
  /** The spoofing-artefact test of a watermarked text (spoofing.ts); null where it does not apply. */
  readonly spoofing: SpoofingResult | null;
}

const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex');

const STATUS_LETTERS: Readonly<Record<TokenStatusName, string>> = {
  green: 'G',
  red: 'R',
  scored: 'N',
  skipped_context: 'C',
  skipped_special: 'S',
  skipped_prompt: 'P',
  skipped_duplicate: 'D',
};

function countCodePoints(text: string): number {
  let count = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (
      unit < 0xdc00 ||
      unit > 0xdfff ||
      i === 0 ||
      text.charCodeAt(i - 1) < 0xd800 ||
      text.charCodeAt(i - 1) > 0xdbff
    )
      count++;
  }
  return count;
}

/**
 * Where each token ends in `text`, in code points. Tokens are matched against the text in order; a run of
 * tokens that splits a character is matched as a whole, and its tokens all end where the character does.
 * Should a token not match (the text is not their decoding), it and every later token end at the end.
 */
export function tokenEnds(tokenizer: Tokenizer, ids: ArrayLike<number>, text: string): number[] {
  const pieces = tokenizer.decodeTokens(ids);
  const total = countCodePoints(text);
  const ends: number[] = [];
  let position = 0;
  let codePoints = 0;
  let i = 0;
  while (i < pieces.length) {
    let run = -1;
    let joint = pieces[i]!;
    for (let j = i; j < Math.min(pieces.length, i + 8); j++) {
      if (j > i) joint = tokenizer.decode(Array.prototype.slice.call(ids, i, j + 1) as number[]);
      if (text.startsWith(joint, position)) {
        run = j;
        break;
      }
      if (j === i && !joint.includes('\uFFFD')) break;
    }
    if (run < 0) {
      while (ends.length < pieces.length) ends.push(total);
      break;
    }
    codePoints += countCodePoints(joint);
    position += joint.length;
    for (let t = i; t <= run; t++) ends.push(codePoints);
    i = run + 1;
  }
  return ends;
}

function letterCounts(statuses: string, start: number, end: number): { scored: number; green: number } {
  let scored = 0;
  let green = 0;
  for (let i = start; i < end; i++) {
    const letter = statuses[i];
    if (letter === 'G') {
      green++;
      scored++;
    } else if (letter === 'R') scored++;
  }
  return { scored, green };
}

/** Consecutive segments of equal size (at least 64 tokens, at most 32 segments), with their own statistics. */
function fixedSegments(statuses: string, gamma: number): EvidenceSegment[] {
  const size = Math.max(64, Math.ceil(statuses.length / 32));
  const segments: EvidenceSegment[] = [];
  for (let start = 0; start < statuses.length; start += size) {
    const end = Math.min(statuses.length, start + size);
    const { scored, green } = letterCounts(statuses, start, end);
    segments.push({
      kind: 'fixed',
      startToken: start,
      endToken: end,
      numScored: scored,
      numGreen: green,
      z: zScore(green, scored, gamma),
      log10P: log10BinomialSf(green, scored, gamma),
    });
  }
  return segments;
}

const VERDICTS: Readonly<Record<DocumentResult['verdict'], EvidenceVerdict>> = {
  watermarked: 'detected',
  not_watermarked: 'not-detected',
  insufficient: 'inconclusive',
};

function formatP(log10P: number): string {
  if (log10P > -3) return (10 ** log10P).toPrecision(2);
  const exponent = Math.floor(log10P);
  return `${(10 ** (log10P - exponent)).toFixed(1)}e${exponent}`;
}

/**
 * The detectors of one verification: the keys tested, plain and windowed (same keys, same α). Windowed
 * search is tracemark's: with an engine's key among the keys, `windowed` is null and the whole text is
 * tested only (the report says so).
 */
export interface VerifyDetectors {
  readonly keys: readonly AnyWatermarkKey[];
  readonly plain: TextDetector | AnyKeyTextDetector;
  readonly windowed: TextDetector | null;
}

/**
 * The CPU-heavy half of a verification, everything computed from the text alone: tokens, detection under
 * every key, per-token localization, segments and the MinHash signature. It runs in a worker thread for
 * long texts (src/work/), so it returns data only.
 */
export interface VerifyAnalysis {
  readonly document: AnyDocumentResult;
  /** False when an engine's key was tested: no windowed search, no per-token statuses. */
  readonly windowSearched: boolean;
  readonly numTokens: number;
  /** The decoding of `tokens` input; null for text input (the text is the content). */
  readonly decoded: string | null;
  readonly sha256: string;
  readonly normalizedSha256: string;
  readonly reported: {
    readonly keyId: string;
    readonly scheme: string;
    /** Null for an engine's key (its parameters are in the report's algorithm). */
    readonly contextWidth: number | null;
    readonly gamma: number | null;
  };
  readonly tokens: EvidenceTokens;
  readonly segments: readonly EvidenceSegment[];
  /** MinHash signature of the content's canonical tokens (what issuance records store). */
  readonly minhash: Uint32Array;
}

export function analyzeVerification(detectors: VerifyDetectors, input: VerifyInput): VerifyAnalysis {
  const { plain, windowed } = detectors;
  const tokenizer = plain.tokenizer;
  if (tokenizer === null) throw new Error('verification needs a tokenizer tracemark ships');
  const fromTokens = input.tokens !== undefined;
  if (!fromTokens) {
    // The report is about the text's UTF-8 bytes, which a lone surrogate does not have (it would be signed as U+FFFD).
    const lone = loneSurrogateIndex(input.text!);
    if (lone >= 0) {
      throw new InputError(
        'TM_ERR_USAGE',
        `text holds a lone surrogate at index ${lone}: it has no UTF-8 bytes for the report to be about`,
        'text',
      );
    }
  }
  if (fromTokens) {
    // Before the ids become 32-bit words, where 2^32 would read as 0 and pass the check below.
    input.tokens!.forEach((id, i) => {
      if (!(Number.isInteger(id) && id >= 0 && id <= 0xffffffff)) {
        throw new InputError(
          'TM_ERR_INVALID_TOKENS',
          `tokens[${i}] is ${id}, not a token id of ${tokenizer.id}`,
          'tokens',
        );
      }
    });
  }
  const ids = fromTokens
    ? Uint32Array.from(input.tokens!)
    : onClientInput('text', () => tokenizer.encodeFast(input.text!));
  const detectInput = {
    source: 'request',
    ...(input.prompt === undefined ? {} : { prompt: input.prompt as string | number[] }),
  };
  // Validates token ids (InputError → 400) before anything else is computed from them.
  const document: AnyDocumentResult = onClientInput('prompt', () => plain.detectTokens(ids, detectInput));
  if (fromTokens) {
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (!tokenizer.isOrdinaryToken(id) && !tokenizer.specialTokenIds.has(id)) {
        throw new InputError(
          'TM_ERR_INVALID_TOKENS',
          `tokens[${i}] is ${id}, an id that ${tokenizer.id} leaves unused`,
          'tokens',
        );
      }
    }
  }
  const decoded = fromTokens ? onClientInput('tokens', () => tokenizer.decode(ids)) : null;
  const content = decoded ?? input.text!;
  const normalized = normalizeText(content);
  const canonical = fromTokens ? onClientInput('tokens', () => tokenizer.encodeFast(content)) : ids;
  const common = {
    document,
    numTokens: ids.length,
    decoded,
    sha256: sha256(content),
    normalizedSha256: sha256(normalized),
    minhash: minhashSignature(canonical),
  };
  if (windowed === null) {
    // An engine's key: the whole text's statistic only (no statuses, no segments).
    return {
      ...common,
      windowSearched: false,
      reported: {
        keyId: document.keyId,
        scheme: document.scheme ?? 'unknown',
        contextWidth: null,
        gamma: null,
      },
      tokens: {
        keyId: document.keyId,
        numTokens: ids.length,
        statuses: '',
        ends: [],
        truncated: ids.length > 0,
      },
      segments: [],
    };
  }
  const explained = onClientInput('prompt', () => windowed.explain(ids, detectInput));
  const reported: KeyDetection =
    explained.results.find((result) => result.keyId === document.keyId) ?? explained.results[0]!;
  const gamma = reported.gamma;
  const allStatuses = (reported.status ?? []).map((status) => STATUS_LETTERS[status]).join('');
  const statuses = allStatuses.slice(0, MAX_REPORTED_TOKENS);
  const ends = onClientInput('tokens', () =>
    tokenEnds(tokenizer, ids.subarray(0, statuses.length), normalized),
  );
  const segments: EvidenceSegment[] = [];
  const window = reported.window;
  // A Gumbel key has no green tokens: its window is described by its score (z of a sum of unit
  // exponentials), and fixed segments, which count green letters, do not apply.
  const gumbel = reported.score !== undefined;
  if (window !== null && window.length > 0) {
    segments.push({
      kind: 'window',
      startToken: window.startToken,
      endToken: window.endToken + 1,
      numScored: window.length,
      numGreen: window.numGreen,
      z: gumbel
        ? ((window.score ?? 0) - window.length) / Math.sqrt(window.length)
        : zScore(window.numGreen, window.length, gamma),
      log10P: window.log10P,
      log10PCorrected: window.log10PCorrected,
    });
  }
  if (!gumbel) segments.push(...fixedSegments(allStatuses, gamma));
  return {
    ...common,
    windowSearched: true,
    reported: {
      keyId: reported.keyId,
      scheme: reported.scheme,
      contextWidth: reported.contextWidth,
      gamma: gumbel ? null : gamma,
    },
    tokens: {
      keyId: reported.keyId,
      numTokens: ids.length,
      statuses,
      ends,
      truncated: statuses.length < ids.length,
    },
    segments,
  };
}

/**
 * A watermark key named without its secret: the serving key, the root key, or a sub-key of the root. It is
 * here, not in work/tasks.ts (which runs this module on a work thread), so the two never import each other.
 */
export type KeyRef =
  | { readonly kind: 'current' }
  | { readonly kind: 'root' }
  /** A registered sub-key: its stored `key_epoch` value (account-keys.ts: an epoch, an account's, …). */
  | { readonly kind: 'subkey'; readonly label: string };

/** A key a verification tests, with how a worker finds it again without its secret. */
export interface TestedKey {
  readonly key: AnyWatermarkKey;
  readonly ref: KeyRef;
}

export interface Verifier {
  verify(input: VerifyInput, requester: ApiKeyRecord): Promise<Verification>;
  /** The watermark keys a verification tests: every registered epoch of the gateway's key. */
  keys(): Promise<AnyWatermarkKey[]>;
  /**
   * Keys the issuance log has outputs under that this gateway cannot derive (it was started before with
   * another key file): their outputs match records, but their mark cannot be tested here.
   */
  unheldKeyIds(): Promise<string[]>;
}

/** Where the CPU-heavy parts run (inline or on a work thread): the analysis, and signing the report. */
export interface VerifyWork {
  analyze(input: VerifyInput, keys: readonly KeyRef[]): Promise<VerifyAnalysis>;
  /** `signEvidence` with the log's signing key; `text` is the exact text the predicate is about. */
  sign(predicate: EvidencePredicate, text: string): Promise<DsseEnvelope>;
}

/**
 * What a verifier reads of the gateway's context (GatewayContext has it). Not GatewayContext itself: that
 * names the work pool, whose tasks run this module, and the imports would go round in a circle.
 */
export interface VerifierContext {
  readonly storage: GatewayStorage;
  readonly issuanceLog: IssuanceLog;
  readonly watermarkKey: AnyWatermarkKey;
  readonly rootWatermarkKey: AnyWatermarkKey;
}

export function createVerifier(
  context: VerifierContext,
  softwareVersion: string,
  work: VerifyWork,
  spoofingChecker: SpoofingChecker | null = null,
): Verifier {
  const { storage, issuanceLog, rootWatermarkKey } = context;

  const testedKeys = async (): Promise<TestedKey[]> => (await epochKeys()).tested;
  const epochKeys = async (): Promise<{ tested: TestedKey[]; unheld: string[] }> => {
    const seen = new Map<string, TestedKey>();
    const unheld: string[] = [];
    for (const epoch of await storage.listWatermarkEpochs()) {
      // An engine's key has no epochs: only its own registration is tested.
      if (epoch.keyEpoch !== null && isForeignKey(rootWatermarkKey)) continue;
      const tested: TestedKey =
        epoch.keyEpoch === null
          ? { key: rootWatermarkKey, ref: { kind: 'root' } }
          : {
              key: keyForStoredEpoch(rootWatermarkKey as WatermarkKey, epoch.keyEpoch),
              ref: { kind: 'subkey', label: epoch.keyEpoch },
            };
      // Epochs of another key file (the database was shared with one) cannot be tested here.
      if (tested.key.keyId === epoch.watermarkKeyId) seen.set(tested.key.keyId, tested);
      else unheld.push(epoch.watermarkKeyId);
    }
    if (!seen.has(context.watermarkKey.keyId)) {
      seen.set(context.watermarkKey.keyId, { key: context.watermarkKey, ref: { kind: 'current' } });
    }
    return { tested: [...seen.values()], unheld: unheld.filter((keyId) => !seen.has(keyId)) };
  };

  const findMatch = async (
    contentSha256: string,
    normalizedSha256: string,
    signature: Uint32Array,
  ): Promise<{
    record: IssuanceRecord;
    match: 'exact' | 'near-duplicate';
    similarity: number;
  } | null> => {
    const exact = await storage.findIssuanceByOutputHash(contentSha256, normalizedSha256);
    if (exact !== null) return { record: exact, match: 'exact', similarity: 1 };
    let best: { seq: number; similarity: number } | null = null;
    for (const candidate of await storage.findNearDuplicateCandidates(
      lshBuckets(signature),
      NEAR_DUPLICATE_CANDIDATES,
    )) {
      const similarity = estimateJaccard(signature, candidate.signature);
      if (
        similarity >= NEAR_DUPLICATE_THRESHOLD &&
        (best === null ||
          similarity > best.similarity ||
          (similarity === best.similarity && candidate.seq < best.seq))
      ) {
        best = { seq: candidate.seq, similarity };
      }
    }
    if (best === null) return null;
    const record = await storage.getIssuanceBySeq(best.seq);
    return record === null ? null : { record, match: 'near-duplicate', similarity: best.similarity };
  };

  const issuanceMatchOf = async (
    found: { record: IssuanceRecord; match: 'exact' | 'near-duplicate'; similarity: number },
    disclose: boolean,
  ): Promise<IssuanceMatch> => {
    const { record } = found;
    const treeSize = await issuanceLog.size();
    const stored = toHex(await issuanceLog.leafHash(record.seq));
    const recomputed = toHex(leafHashOf(record));
    if (stored !== recomputed) {
      throw new GatewayError(500, 'TM_ERR_ISSUANCE_LOG', 'the issuance log disagrees with its record', {
        cause: new Error(`leaf ${record.seq}: stored ${stored}, recomputed ${recomputed}`),
      });
    }
    const checkpoint = await issuanceLog.checkpoint(treeSize);
    const proof = await issuanceLog.inclusionProof(record.seq, treeSize);
    return {
      match: found.match,
      ...(found.match === 'near-duplicate'
        ? {
            similarity: found.similarity,
            similarityMeasure: `Jaccard similarity of ${NEAR_DUPLICATE_PARAMS.shingleSize}-token shingles, estimated by MinHash with ${NEAR_DUPLICATE_PARAMS.numHashes} hashes (${NEAR_DUPLICATE_SCHEME}); threshold ${NEAR_DUPLICATE_THRESHOLD}`,
          }
        : {}),
      recordId: record.id,
      leafIndex: record.seq,
      treeSize,
      leafHash: stored,
      inclusionProof: proof.map(toHex),
      checkpoint: checkpoint.note,
      ...(disclose ? { record: leafRecordOf(record) } : {}),
    };
  };

  const verify = async (input: VerifyInput, requester: ApiKeyRecord): Promise<Verification> => {
    const tested = await testedKeys();
    const list = tested.map((entry) => entry.key);
    const analysis = await work.analyze(
      input,
      tested.map((entry) => entry.ref),
    );
    const { document, reported } = analysis;
    const fromTokens = input.tokens !== undefined;
    const content = analysis.decoded ?? input.text!;
    const found = await findMatch(analysis.sha256, analysis.normalizedSha256, analysis.minhash);
    const disclose =
      found !== null && (requester.scopes.includes('admin') || requester.account === found.record.account);
    const issuance = found === null ? null : await issuanceMatchOf(found, disclose);

    const scheme = reported.scheme;
    const reportedKey = list.find((key) => key.keyId === document.keyId) ?? list[0]!;
    const engineKey = isForeignKey(reportedKey) ? reportedKey : null;
    const limitations = [...STANDARD_LIMITATIONS];
    if (!analysis.windowSearched) {
      limitations.push(
        `Windowed search (finding a marked passage inside a longer text) is not supported for ${engineKey === null ? "engines'" : foreignLabel(engineKey)} keys: the whole text was tested as one, so a short marked passage in a long unmarked text may go undetected, and no per-token localization is given.`,
      );
    }
    if (document.numGreen === null) {
      limitations.push(
        `${scheme} has no green lists: the detection's numGreen is 0 by the report's format; the evidence is the scheme's score (algorithm.parameters.score) and its exact p-value, and the token statuses mark scored tokens (N) without green or red.`,
      );
    }
    if (issuance?.match === 'near-duplicate') {
      limitations.push(
        `The link to the issuance record rests on an estimated similarity of ${found!.similarity.toFixed(3)} (at least ${NEAR_DUPLICATE_THRESHOLD} required): the text shares much of its wording with an issued output, which does not show that every part of it was issued.`,
      );
    }
    if (found === null) {
      limitations.push(
        'No issued output matched, exactly or as a near-duplicate; heavily edited, translated or excerpted text may not be linked.',
      );
    }
    // A record marked under a key this gateway no longer holds (started since with another --key): the
    // watermark test below says nothing about that key, and the report must not read as if it did.
    if (found !== null && !list.some((key) => key.keyId === found.record.watermarkKeyId)) {
      limitations.push(
        `The matched issuance record was marked under key ${found.record.watermarkKeyId}, which this gateway does not hold now: the watermark verdict covers only the keys tested (${list.map((key) => key.keyId).join(', ')}), not the key the output was issued under.`,
      );
    }
    if (fromTokens) {
      limitations.push(
        'Detection ran on the token ids submitted; the text is their decoding, and encoding it again may give other ids.',
      );
    }
    // "Carries our mark" is not "issued by us": a watermarked text no issued output matches exactly is
    // tested for the artefacts of a forged mark (reported beside the verdict, never changing it).
    const spoofing =
      spoofingChecker === null ||
      document.verdict !== 'watermarked' ||
      engineKey !== null ||
      found?.match === 'exact'
        ? null
        : await spoofingChecker.check(reportedKey as WatermarkKey, input);
    if (spoofing?.flagged === true) {
      limitations.push(
        `The marked tokens of this text sit on word pairs common in ordinary text more often than a genuine mark's do (${SPOOF_TEST_NAME}, p = ${formatP(spoofing.log10P)} ≤ ${spoofing.alpha}): the mark may have been forged by someone who learned it from this service's outputs. Carrying the mark is not proof that this service issued the text.`,
      );
    }
    limitations.push(
      'The issuance log proves that a record was appended in the order shown and not changed since the signed checkpoint; it cannot prove that no output went unrecorded.',
    );

    const predicate: EvidencePredicate = {
      text: {
        sha256: analysis.sha256,
        normalization: NORMALIZATION,
        input: fromTokens ? 'tokens' : 'text',
        normalizedSha256: analysis.normalizedSha256,
        content,
        ...(fromTokens && analysis.numTokens <= MAX_REPORTED_TOKENS
          ? { tokenIds: Array.from(input.tokens!) }
          : {}),
      },
      tokenizer: { name: document.tokenizer },
      algorithm: {
        name: engineKey === null ? `tracemark-v1/${scheme}` : foreignSchemeName(engineKey),
        parameters: {
          ...(engineKey === null && reported.gamma === null
            ? {
                // A Gumbel key (docs/spec/watermark-gumbel.md): no γ or δ; the evidence is the score.
                contextWidth: reported.contextWidth!,
                ...((reportedKey as WatermarkKey).scheme.name === 'dual_gumbel'
                  ? { alpha: (reportedKey as WatermarkKey).scheme.alpha }
                  : {}),
                dedup: true,
                localizationMinWindow: MIN_WINDOW,
                score: document.score ?? 0,
              }
            : engineKey === null
              ? {
                  contextWidth: reported.contextWidth!,
                  gamma: (reportedKey as WatermarkKey).scheme.gamma,
                  gammaEffective: reported.gamma!,
                  delta: (reportedKey as WatermarkKey).scheme.delta,
                  dedup: true,
                  localizationMinWindow: MIN_WINDOW,
                }
              : {
                  ...foreignKeyType(engineKey).parameters(engineKey),
                  dedup: document.dedup ?? 'strict',
                  windowedSearch: false,
                  score: document.score ?? 0,
                }),
          ...(input.prompt === undefined
            ? {}
            : {
                promptExcludedSha256:
                  typeof input.prompt === 'string'
                    ? sha256(input.prompt)
                    : sha256(JSON.stringify(input.prompt)),
              }),
        },
        keyIds: list.map((key) => key.keyId),
      },
      software: { name: '@tracemark/gateway', version: softwareVersion },
      detection: {
        keyId: document.keyId,
        numScored: document.numScored,
        numGreen: document.numGreen ?? 0,
        z: document.z,
        log10P: document.log10P,
        log10PCorrected: document.log10PAdjusted,
        correction: list.length > 1 ? 'holm' : 'none',
        numTests: list.length,
        alpha: document.fpr,
        verdict: VERDICTS[document.verdict],
      },
      calibration: calibrationFor(
        {
          name: scheme,
          contextWidth: reported.contextWidth ?? 0,
          gamma:
            engineKey === null && reported.gamma !== null
              ? (reportedKey as WatermarkKey).scheme.gamma
              : Number.NaN,
        },
        document.fpr,
        document.numScored,
      ),
      segments: [...analysis.segments],
      issuance,
      limitations,
      verifiedAt: new Date().toISOString(),
      tokens: analysis.tokens,
    };
    const envelope = await work.sign(predicate, content);
    const summary = summarize(predicate, list.length, {
      greenLists: document.numGreen !== null,
      windowSearched: analysis.windowSearched,
    });
    return {
      document,
      predicate,
      envelope,
      summary,
      windowSearched: analysis.windowSearched,
      spoofing,
      issuance:
        issuance === null
          ? null
          : {
              match: found!.match,
              recordId: issuance.recordId,
              similarity: found!.similarity,
              leafIndex: issuance.leafIndex,
              treeSize: issuance.treeSize,
              disclosed: disclose,
            },
    };
  };

  return {
    verify,
    keys: async () => (await testedKeys()).map((entry) => entry.key),
    unheldKeyIds: async () => (await epochKeys()).unheld,
  };
}

const entries = (count: number) => `${count} ${count === 1 ? 'entry' : 'entries'}`;

/** The verdict in plain words: the issuance match first, then the watermark. */
export function summarize(
  predicate: EvidencePredicate,
  keysTested: number,
  options: { readonly greenLists?: boolean; readonly windowSearched?: boolean } = {},
): string {
  const d = predicate.detection;
  const issuance = predicate.issuance;
  const issued =
    issuance === null
      ? 'No issued output of this service matches this text.'
      : issuance.match === 'exact'
        ? `This exact text was issued by this service: issuance record ${issuance.recordId}, entry ${issuance.leafIndex} of the signed issuance log (${entries(issuance.treeSize)}).`
        : `This text is a near-duplicate of an output issued by this service: issuance record ${issuance.recordId}, entry ${issuance.leafIndex} of the signed issuance log (${entries(issuance.treeSize)}), similarity ${issuance.similarity?.toFixed(2)}.`;
  const keys =
    keysTested === 1 ? 'the watermark key' : `${keysTested} watermark keys (corrected for testing several)`;
  const greenLists = options.greenLists !== false;
  const score = `${d.numScored} scored tokens give ${predicate.algorithm.name}'s score ${Number(predicate.algorithm.parameters.score ?? 0).toFixed(2)}`;
  const scoreMark =
    d.verdict === 'detected'
      ? `The watermark is present: ${score}; the chance of this much evidence without the watermark is ${formatP(d.log10PCorrected)} (threshold ${d.alpha}, 1 in ${Math.round(1 / d.alpha).toLocaleString('en-US')}), under ${keys}.`
      : d.verdict === 'not-detected'
        ? `The watermark is not present: ${score}, which rules out this service's watermark at its usual strength (tested under ${keys}).`
        : `The test is inconclusive: ${score}; the chance of this much evidence without the watermark is ${formatP(d.log10PCorrected)}, which does not reach the threshold ${d.alpha} (tested under ${keys}).`;
  const windowNote =
    options.windowSearched === false
      ? " Windowed search is not supported for engines' keys: the whole text was tested as one."
      : '';
  const mark = !greenLists
    ? scoreMark
    : d.verdict === 'detected'
      ? `The watermark is present: ${d.numGreen} of ${d.numScored} scored tokens are green, where about ${Math.round(d.numScored * Number(predicate.algorithm.parameters.gammaEffective))} would be by chance; the chance of this much evidence without the watermark is ${formatP(d.log10PCorrected)} (threshold ${d.alpha}, 1 in ${Math.round(1 / d.alpha).toLocaleString('en-US')}), under ${keys}.`
      : d.verdict === 'not-detected'
        ? `The watermark is not present: ${d.numGreen} of ${d.numScored} scored tokens are green, which rules out this service's watermark at its usual strength (tested under ${keys}).`
        : `The test is inconclusive: ${d.numScored} scored tokens (${d.numGreen} green) are too few to decide either way (tested under ${keys}).`;
  return `${issued} ${mark}${windowNote}`;
}
