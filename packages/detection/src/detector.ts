/**
 * Text-level detection: normalize, tokenize, score under every key (Holm-corrected), and return the
 * stable result shape that `tracemark detect --json` prints and `POST /v1/detect` returns.
 */
import {
  createDetection,
  createWatermarker,
  type Detection,
  type DetectOptions,
  detect,
  type KeyDetection,
  type Verdict,
  type Watermarker,
  type WatermarkKey,
  type WindowResult,
} from '@tracemark/core';
import { assertTokenIds, getTokenizer, isTokenizerId, type Tokenizer } from '@tracemark/tokenizers';
import { InputError } from './errors.ts';

export interface DetectorOptions {
  readonly keys: readonly WatermarkKey[];
  /** Target false-positive rate α. */
  readonly fpr?: number;
  /** Windowed search for a watermarked passage inside a longer text. */
  readonly window?: boolean;
  readonly dedup?: boolean;
  /** Tokenizer the caller expects; must match every key's. */
  readonly tokenizer?: string;
}

export interface KeyResult {
  readonly keyId: string;
  readonly verdict: Verdict;
  readonly numScored: number;
  readonly numGreen: number;
  readonly greenFraction: number;
  readonly z: number;
  readonly log10P: number;
  readonly log10PAdjusted: number;
}

export interface DocumentResult {
  readonly source: string;
  readonly verdict: Verdict;
  readonly numTokens: number;
  readonly numScored: number;
  readonly numGreen: number;
  readonly greenFraction: number;
  readonly z: number;
  /** Exact log10 p of the whole text under the reported key. */
  readonly log10P: number;
  /** The p-value the verdict used: windowed if asked, Holm-adjusted across keys. */
  readonly log10PAdjusted: number;
  /** The matched key when watermarked, else the strongest evidence among keys with the document's verdict. */
  readonly keyId: string;
  readonly tokenizer: string;
  readonly keysTested: number;
  readonly fpr: number;
  /**
   * 0 unless insufficient; then the extra scored tokens after which every key's verdict is settled
   * whatever they show (the largest over the insufficient keys), and Infinity (null in JSON) when no
   * number up to a million does, always so for a key with δ = 0.
   */
  readonly tokensToSettle: number;
  readonly window: WindowResult | null;
  readonly keys: readonly KeyResult[];
}

export interface DetectInput {
  readonly source?: string;
  readonly prompt?: string | ArrayLike<number>;
}

export interface TextDetector {
  readonly tokenizer: Tokenizer;
  readonly watermarkers: readonly Watermarker[];
  detectText(text: string, input?: DetectInput): DocumentResult;
  detectTokens(ids: ArrayLike<number>, input?: DetectInput): DocumentResult;
  /** Full per-token detail for display (status per token under the reported key). */
  explain(ids: ArrayLike<number>, input?: DetectInput): Detection;
  /** Streaming detection of one long document, pushed as text chunks cut at token boundaries. */
  session(input?: DetectInput): DocumentSession;
}

export interface DocumentSession {
  pushText(text: string): void;
  pushTokens(ids: ArrayLike<number>): void;
  finish(): DocumentResult;
}

/** Builds the detector for a set of keys, which must share one tokenizer. */
export function createTextDetector(options: DetectorOptions): TextDetector {
  if (options.keys.length === 0) throw new InputError('TM_ERR_USAGE', 'at least one key is required');
  const tokenizerIds = new Set(options.keys.map((key) => key.tokenizer));
  if (options.tokenizer !== undefined) tokenizerIds.add(options.tokenizer);
  if (tokenizerIds.size > 1) {
    throw new InputError(
      'TM_ERR_TOKENIZER_MISMATCH',
      `keys and input are bound to different tokenizers (${[...tokenizerIds].join(', ')}); detect with one tokenizer at a time`,
    );
  }
  const tokenizerId = [...tokenizerIds][0]!;
  if (!isTokenizerId(tokenizerId)) {
    throw new InputError(
      'TM_ERR_TOKENIZER_MISMATCH',
      `key is bound to an unknown tokenizer "${tokenizerId}"`,
    );
  }
  const tokenizer = getTokenizer(tokenizerId);
  const watermarkers = options.keys.map((key) =>
    createWatermarker(key, { specialTokenIds: tokenizer.specialTokenIds }),
  );
  const detectOptions = (input: DetectInput | undefined, includeStatus: boolean): DetectOptions => {
    const prompt = input?.prompt;
    return {
      includeStatus,
      ...(options.fpr === undefined ? {} : { fpr: options.fpr }),
      ...(options.window ? { window: true } : {}),
      ...(options.dedup === undefined ? {} : { dedup: options.dedup }),
      ...(prompt === undefined
        ? {}
        : { prompt: typeof prompt === 'string' ? tokenizer.encodeFast(prompt) : prompt }),
    };
  };
  const checkIds = (ids: ArrayLike<number>, name: string) => {
    try {
      assertTokenIds(ids, tokenizer, name);
    } catch (error) {
      throw new InputError('TM_ERR_INVALID_TOKENS', (error as Error).message);
    }
  };
  const explain = (ids: ArrayLike<number>, input?: DetectInput): Detection => {
    checkIds(ids, 'tokens');
    if (input?.prompt !== undefined && typeof input.prompt !== 'string') checkIds(input.prompt, 'prompt');
    return detect(ids, watermarkers, detectOptions(input, true));
  };
  const detectTokens = (ids: ArrayLike<number>, input?: DetectInput): DocumentResult => {
    checkIds(ids, 'tokens');
    if (input?.prompt !== undefined && typeof input.prompt !== 'string') checkIds(input.prompt, 'prompt');
    const detection = detect(ids, watermarkers, detectOptions(input, false));
    return toDocumentResult(detection, input?.source ?? '-', tokenizerId);
  };
  const session = (input?: DetectInput): DocumentSession => {
    if (input?.prompt !== undefined && typeof input.prompt !== 'string') checkIds(input.prompt, 'prompt');
    const detection = createDetection(watermarkers, detectOptions(input, false));
    return {
      pushText: (text) => detection.push(tokenizer.encodeFast(text)),
      pushTokens: (ids) => {
        checkIds(ids, 'tokens');
        detection.push(ids);
      },
      finish: () => toDocumentResult(detection.finish(), input?.source ?? '-', tokenizerId),
    };
  };
  return Object.freeze({
    tokenizer,
    watermarkers,
    detectTokens,
    explain,
    session,
    detectText: (text: string, input?: DetectInput) => detectTokens(tokenizer.encodeFast(text), input),
  });
}

/**
 * The key result a document reports (spec §5.4): the matched key when watermarked, else the
 * strongest evidence among the keys whose verdict is the document's.
 */
export function reportedKey(detection: Detection): KeyDetection {
  return detection.results.find((r) => r.keyId === detection.reportedKeyId) ?? detection.results[0]!;
}

function toDocumentResult(detection: Detection, source: string, tokenizer: string): DocumentResult {
  const key = reportedKey(detection);
  return {
    source,
    verdict: detection.verdict,
    numTokens: key.numTokens,
    numScored: key.numScored,
    numGreen: key.numGreen,
    greenFraction: key.greenFraction,
    z: key.z,
    log10P: key.log10P,
    log10PAdjusted: key.log10PAdjusted,
    keyId: key.keyId,
    tokenizer,
    keysTested: detection.keysTested,
    fpr: detection.fpr,
    tokensToSettle: detection.tokensToSettle,
    window: key.window,
    keys: detection.results.map((r) => ({
      keyId: r.keyId,
      verdict: r.verdict,
      numScored: r.numScored,
      numGreen: r.numGreen,
      greenFraction: r.greenFraction,
      z: r.z,
      log10P: r.log10P,
      log10PAdjusted: r.log10PAdjusted,
    })),
  };
}
