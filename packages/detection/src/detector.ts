/**
 * Text-level detection: normalize, tokenize, score under every key (Holm-corrected), and return the
 * stable result shape that `tracemark detect --json` prints and `POST /v1/detect` returns.
 */
import {
  createDetection,
  createWatermarker,
  DEFAULT_FPR,
  DEFAULT_MIN_WINDOW,
  type Detection,
  type DetectOptions,
  decideVerdict,
  detect,
  holmAdjustLog10,
  type KeyDetection,
  resolveVerdictOptions,
  strongest,
  type Verdict,
  type VllmDedup,
  type Watermarker,
  type WatermarkKey,
  type WindowResult,
} from '@tracemark/core';
import {
  assertTokenIds,
  getTokenizer,
  isTokenizerId,
  PieceTooLongError,
  type Tokenizer,
} from '@tracemark/tokenizers';
import { InputError } from './errors.ts';
import type { ForeignDedup, ForeignKeyScore, ForeignKeyScorer } from './foreign.ts';
import { type ForeignWatermarkKey, foreignKeyType, foreignLabel, isForeignKey } from './foreign-registry.ts';
import { foreignWindowScan } from './foreign-windows.ts';
import type { AnyWatermarkKey } from './key-files.ts';
import { tokenizerUnavailableMessage } from './vllm-keys.ts';

/** `tokenizer.encodeFast(text)`, a text it cannot split being the user's input error. */
function encodeText(tokenizer: Tokenizer, text: string): Uint32Array {
  try {
    return tokenizer.encodeFast(text);
  } catch (error) {
    if (error instanceof PieceTooLongError) throw new InputError(error.code, error.message);
    throw error;
  }
}

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
  /** null for a Gumbel key, which has no green tokens. */
  readonly numGreen: number | null;
  /** null for a Gumbel key. */
  readonly greenFraction: number | null;
  /** Gumbel keys: the scheme (`gumbel`, `dual_gumbel`) and S, the sum of the scored tokens' scores. */
  readonly scheme?: string;
  readonly score?: number;
  readonly z: number;
  readonly log10P: number;
  readonly log10PAdjusted: number;
}

export interface DocumentResult {
  readonly source: string;
  readonly verdict: Verdict;
  readonly numTokens: number;
  readonly numScored: number;
  /** null when the reported key is a Gumbel key; `score` is given instead. */
  readonly numGreen: number | null;
  readonly greenFraction: number | null;
  /** Gumbel keys: the scheme and S, the sum of the scored tokens' scores (watermark-gumbel §5.1). */
  readonly scheme?: string;
  readonly score?: number;
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

/** Options for keys of every kind (tracemark's and serving engines'). */
export interface AnyKeyDetectorOptions extends Omit<DetectorOptions, 'keys'> {
  readonly keys: readonly AnyWatermarkKey[];
  /**
   * Engines' keys: which repeated inputs are scored once. Default `strict`: the engine's `context`
   * rule, and each (context, token) pair once, without which some schemes' p-values are not valid on
   * natural text (foreign-vllm §10); for schemes where the context alone decides the two are the same.
   */
  readonly foreignDedup?: ForeignDedup;
  /** @deprecated the same as {@link foreignDedup}. */
  readonly vllmDedup?: VllmDedup;
}

/** An engine's key's result among the keys of a document. */
export interface ForeignKeyResult {
  readonly keyId: string;
  readonly verdict: Verdict;
  readonly numScored: number;
  /** Green count for schemes with green lists (vllm:red_green, vllm:sbw, transformers:kgw); null otherwise. */
  readonly numGreen: number | null;
  readonly greenFraction: number | null;
  readonly z: number;
  readonly log10P: number;
  readonly log10PAdjusted: number;
  /** `${kind}:${scheme}`, e.g. `vllm:gumbel`. */
  readonly scheme: string;
  /** The scheme's score (vLLM's S, a green count, a g-value sum). */
  readonly score: number;
  /** The engine's own p-value formula, log10 (null where it has none); the verdict uses the exact `log10P`. */
  readonly peerLog10P: number | null;
  readonly dedup: ForeignDedup;
}

/** @deprecated the same as {@link ForeignKeyResult}. */
export type VllmKeyResult = ForeignKeyResult;

/**
 * The result for keys of every kind: {@link DocumentResult}, with `numGreen` and `greenFraction`
 * null when an engine's key without green lists is reported, and its fields when an engine's key is.
 */
export interface AnyDocumentResult extends Omit<DocumentResult, 'numGreen' | 'greenFraction' | 'keys'> {
  readonly numGreen: number | null;
  readonly greenFraction: number | null;
  readonly keys: readonly (KeyResult | ForeignKeyResult)[];
  readonly scheme?: string;
  readonly score?: number;
  readonly peerLog10P?: number | null;
  readonly dedup?: ForeignDedup;
}

export interface AnyDocumentSession {
  pushText(text: string): void;
  pushTokens(ids: ArrayLike<number>): void;
  finish(): AnyDocumentResult;
}

/** A detector for keys of every kind. */
export interface AnyKeyTextDetector {
  /** Null when the keys are bound to a tokenizer tracemark does not ship: then only token ids are read. */
  readonly tokenizer: Tokenizer | null;
  /** The tracemark keys' watermarkers. */
  readonly watermarkers: readonly Watermarker[];
  detectText(text: string, input?: DetectInput): AnyDocumentResult;
  detectTokens(ids: ArrayLike<number>, input?: DetectInput): AnyDocumentResult;
  /** Per-token detail under the tracemark keys; null when there are none. */
  explain(ids: ArrayLike<number>, input?: DetectInput): Detection | null;
  session(input?: DetectInput): AnyDocumentSession;
}

/**
 * Builds the detector for a set of keys, which must share one tokenizer. Tracemark keys alone give a
 * {@link TextDetector}; with engines' keys among them, an {@link AnyKeyTextDetector} (Holm across all).
 */
export function createTextDetector(options: DetectorOptions): TextDetector;
export function createTextDetector(options: AnyKeyDetectorOptions): AnyKeyTextDetector;
export function createTextDetector(options: AnyKeyDetectorOptions): AnyKeyTextDetector {
  // One key given twice (`--key k.json --key k.json`) is one test: counted twice, it would weaken the
  // multiple-testing correction for nothing.
  const seen = new Set<string>();
  const keys = options.keys.filter((key) => {
    // an engine's key id does not name the tokenizer it is bound to: two bindings are two keys
    const identity = `${key.keyId}\u0000${key.tokenizer}`;
    if (seen.has(identity)) return false;
    seen.add(identity);
    return true;
  });
  const unique = keys.length === options.keys.length ? options : { ...options, keys };
  if (unique.keys.some(isForeignKey)) return createMixedDetector(unique);
  return createTracemarkDetector(unique as DetectorOptions);
}

function createTracemarkDetector(options: DetectorOptions): TextDetector {
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
        : { prompt: typeof prompt === 'string' ? encodeText(tokenizer, prompt) : prompt }),
    };
  };
  const checkIds = (ids: ArrayLike<number>, name: string) => {
    try {
      assertTokenIds(ids, tokenizer, name);
    } catch (error) {
      throw new InputError('TM_ERR_INVALID_TOKENS', (error as Error).message, name);
    }
  };
  const explain = (ids: ArrayLike<number>, input?: DetectInput): Detection => {
    checkIds(ids, 'tokens');
    if (input?.prompt !== undefined && typeof input.prompt !== 'string') checkIds(input.prompt, 'prompt');
    return detect(ids, watermarkers, detectOptions(input, true));
  };
  // Without a prompt every document is scored with the same options: build them once.
  const promptlessOptions = detectOptions(undefined, false);
  /** Scores ids known to be valid token ids (checked, or the tokenizer's own). */
  const scoreIds = (ids: ArrayLike<number>, input?: DetectInput): DocumentResult => {
    if (input?.prompt !== undefined && typeof input.prompt !== 'string') checkIds(input.prompt, 'prompt');
    const detection = detect(
      ids,
      watermarkers,
      input?.prompt === undefined ? promptlessOptions : detectOptions(input, false),
    );
    return toDocumentResult(detection, input?.source ?? '-', tokenizerId);
  };
  const detectTokens = (ids: ArrayLike<number>, input?: DetectInput): DocumentResult => {
    checkIds(ids, 'tokens');
    return scoreIds(ids, input);
  };
  const session = (input?: DetectInput): DocumentSession => {
    if (input?.prompt !== undefined && typeof input.prompt !== 'string') checkIds(input.prompt, 'prompt');
    const detection = createDetection(watermarkers, detectOptions(input, false));
    return {
      pushText: (text) => detection.push(encodeText(tokenizer, text)),
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
    detectText: (text: string, input?: DetectInput) => scoreIds(encodeText(tokenizer, text), input),
  });
}

/**
 * The key result a document reports (spec §5.4): the matched key when watermarked, else the
 * strongest evidence among the keys whose verdict is the document's.
 */
export function reportedKey(detection: Detection): KeyDetection {
  return detection.results.find((r) => r.keyId === detection.reportedKeyId) ?? detection.results[0]!;
}

/** A Gumbel key has no green tokens: its count and share are null, and its score is given instead. */
function greenCount(key: KeyDetection): number | null {
  return key.score === undefined ? key.numGreen : null;
}

function greenShare(key: KeyDetection): number | null {
  return key.score === undefined ? key.greenFraction : null;
}

function toDocumentResult(detection: Detection, source: string, tokenizer: string): DocumentResult {
  const key = reportedKey(detection);
  return {
    source,
    verdict: detection.verdict,
    numTokens: key.numTokens,
    numScored: key.numScored,
    numGreen: greenCount(key),
    greenFraction: greenShare(key),
    ...(key.score === undefined ? {} : { scheme: key.scheme, score: key.score }),
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
      numGreen: greenCount(r),
      greenFraction: greenShare(r),
      ...(r.score === undefined ? {} : { scheme: r.scheme, score: r.score }),
      z: r.z,
      log10P: r.log10P,
      log10PAdjusted: r.log10PAdjusted,
    })),
  };
}

/** A key of a mixed detector: a tracemark key (its index among the watermarkers) or an engine's key. */
type KeyEntry =
  | {
      readonly kind: 'tracemark';
      readonly index: number;
      readonly verdictOptions: ReturnType<typeof resolveVerdictOptions>;
    }
  | { readonly kind: 'foreign'; readonly scorer: ForeignKeyScorer };

const ANY_TOKEN_ID = { vocabSize: 2 ** 31 };

/** Keys with at least one engine's key among them (docs/spec/foreign-vllm.md §10 and its siblings). */
function createMixedDetector(options: AnyKeyDetectorOptions): AnyKeyTextDetector {
  const keys = options.keys;
  const tokenizerIds = new Set(keys.map((key) => key.tokenizer));
  if (options.tokenizer !== undefined) tokenizerIds.add(options.tokenizer);
  if (tokenizerIds.size > 1) {
    throw new InputError(
      'TM_ERR_TOKENIZER_MISMATCH',
      `keys and input are bound to different tokenizers (${[...tokenizerIds].join(', ')}); detect with one tokenizer at a time`,
    );
  }
  const tokenizerId = [...tokenizerIds][0]!;
  const tracemarkKeys = keys.filter((key): key is WatermarkKey => !isForeignKey(key));
  const foreignKeys = keys.filter(isForeignKey);
  const tokenizer = isTokenizerId(tokenizerId) ? getTokenizer(tokenizerId) : null;
  if (tokenizer === null && tracemarkKeys.length > 0) {
    throw new InputError(
      'TM_ERR_TOKENIZER_MISMATCH',
      `key is bound to an unknown tokenizer "${tokenizerId}"`,
    );
  }
  const fpr = options.fpr ?? DEFAULT_FPR;
  if (typeof fpr !== 'number' || !(fpr > 0 && fpr < 1)) {
    throw new InputError(
      'TM_ERR_USAGE',
      `fpr: expected a number strictly between 0 and 1, got ${String(fpr)}`,
    );
  }
  const foreignDedup = options.foreignDedup ?? options.vllmDedup ?? 'strict';
  if (foreignDedup !== 'none' && foreignDedup !== 'context' && foreignDedup !== 'strict') {
    throw new InputError('TM_ERR_USAGE', 'foreignDedup: expected none, context or strict');
  }
  const vocabSizes = new Set(foreignKeys.flatMap((key) => (key.vocabSize === null ? [] : [key.vocabSize])));
  if (vocabSizes.size > 1) {
    throw new InputError(
      'TM_ERR_TOKENIZER_MISMATCH',
      `keys bound to "${tokenizerId}" give different vocabulary sizes (${[...vocabSizes].join(', ')})`,
    );
  }
  const vocabulary = tokenizer ?? (vocabSizes.size === 1 ? { vocabSize: [...vocabSizes][0]! } : ANY_TOKEN_ID);
  const watermarkers = tracemarkKeys.map((key) =>
    createWatermarker(key, { specialTokenIds: tokenizer!.specialTokenIds }),
  );
  let tracemarkIndex = 0;
  const entries = keys.map((key): KeyEntry => {
    if (isForeignKey(key)) return { kind: 'foreign', scorer: foreignKeyType(key).createScorer(key, fpr) };
    const index = tracemarkIndex++;
    return { kind: 'tracemark', index, verdictOptions: resolveVerdictOptions(watermarkers[index]!, { fpr }) };
  });
  const windowed = options.window === true;
  if (windowed) {
    const unscannable = entries.find(
      (entry) =>
        entry.kind === 'foreign' && (entry.scorer.units === undefined || entry.scorer.tail === undefined),
    );
    if (unscannable !== undefined && unscannable.kind === 'foreign') {
      const key = unscannable.scorer.key;
      throw new InputError(
        'TM_ERR_USAGE',
        `windowed search does not support ${foreignLabel(key)} keys yet (key ${key.keyId})`,
      );
    }
  }

  // Engines' contexts are the output tokens only (their configs), so a prompt serves the tracemark keys alone.
  const tracemarkOptions = (input: DetectInput | undefined, includeStatus: boolean): DetectOptions => {
    const prompt = input?.prompt;
    return {
      includeStatus,
      fpr,
      ...(windowed ? { window: true } : {}),
      ...(options.dedup === undefined ? {} : { dedup: options.dedup }),
      ...(prompt === undefined || tokenizer === null
        ? {}
        : { prompt: typeof prompt === 'string' ? encodeText(tokenizer, prompt) : prompt }),
    };
  };
  const checkIds = (ids: ArrayLike<number>, name: string) => {
    try {
      assertTokenIds(ids, vocabulary, name);
    } catch (error) {
      throw new InputError('TM_ERR_INVALID_TOKENS', (error as Error).message, name);
    }
  };
  const checkPrompt = (input: DetectInput | undefined) => {
    if (watermarkers.length > 0 && input?.prompt !== undefined && typeof input.prompt !== 'string') {
      checkIds(input.prompt, 'prompt');
    }
  };
  const encode = (text: string): Uint32Array => {
    if (tokenizer === null) {
      throw new InputError('TM_ERR_TOKENIZER_UNAVAILABLE', tokenizerUnavailableMessage(foreignKeys[0]!));
    }
    return encodeText(tokenizer, text);
  };
  const combine = (tracemark: Detection | null, ids: ArrayLike<number>, input?: DetectInput) =>
    combineResults({
      entries,
      tracemark,
      ids,
      dedup: foreignDedup,
      fpr,
      windowed,
      source: input?.source ?? '-',
      tokenizer: tokenizerId,
    });
  const promptlessOptions = tracemarkOptions(undefined, false);
  /** Scores ids known to be valid token ids (checked, or the tokenizer's own). */
  const scoreIds = (ids: ArrayLike<number>, input?: DetectInput): AnyDocumentResult => {
    checkPrompt(input);
    const tracemark =
      watermarkers.length === 0
        ? null
        : detect(
            ids,
            watermarkers,
            input?.prompt === undefined ? promptlessOptions : tracemarkOptions(input, false),
          );
    return combine(tracemark, ids, input);
  };
  const detectTokens = (ids: ArrayLike<number>, input?: DetectInput): AnyDocumentResult => {
    checkIds(ids, 'tokens');
    return scoreIds(ids, input);
  };
  const explain = (ids: ArrayLike<number>, input?: DetectInput): Detection | null => {
    if (watermarkers.length === 0) return null;
    checkIds(ids, 'tokens');
    checkPrompt(input);
    return detect(ids, watermarkers, tracemarkOptions(input, true));
  };
  const session = (input?: DetectInput): AnyDocumentSession => {
    checkPrompt(input);
    const tracemark =
      watermarkers.length === 0 ? null : createDetection(watermarkers, tracemarkOptions(input, false));
    const chunks: Uint32Array[] = [];
    let length = 0;
    const push = (ids: ArrayLike<number>): void => {
      const copy = Uint32Array.from(ids);
      chunks.push(copy);
      length += copy.length;
      tracemark?.push(copy);
    };
    return {
      pushText: (text) => push(encode(text)),
      pushTokens: (ids) => {
        checkIds(ids, 'tokens');
        push(ids);
      },
      finish: () => {
        const all = new Uint32Array(length);
        let at = 0;
        for (const chunk of chunks) {
          all.set(chunk, at);
          at += chunk.length;
        }
        return combine(tracemark?.finish() ?? null, all, input);
      },
    };
  };
  return Object.freeze({
    tokenizer,
    watermarkers,
    detectTokens,
    explain,
    session,
    detectText: (text: string, input?: DetectInput) => scoreIds(encode(text), input),
  });
}

/** One key's numbers before the document verdict, whichever kind of key. */
interface PartialKeyResult {
  readonly keyId: string;
  readonly numTokens: number;
  readonly numScored: number;
  readonly numGreen: number | null;
  readonly greenFraction: number | null;
  readonly z: number;
  readonly log10P: number;
  /** The null green probability the verdict rule uses (unused when no alternative is defined). */
  readonly gamma: number;
  readonly verdictOptions: ReturnType<typeof resolveVerdictOptions>;
  /** The windowed search's best window, when windowed detection is asked. */
  readonly window: WindowResult | null;
  /** The p-value the verdict corrects: the window search's when windowed, else `log10P`. */
  readonly decisive: number;
  /** A tracemark Gumbel key's scheme and score. */
  readonly gumbel: { readonly scheme: string; readonly score: number } | null;
  readonly foreign: { readonly scorer: ForeignKeyScorer; readonly score: ForeignKeyScore } | null;
}

interface DecidedKeyResult extends PartialKeyResult {
  readonly log10PAdjusted: number;
  readonly verdict: Verdict;
  readonly tokensToSettle: number;
}

/** The strongest evidence: smallest adjusted p-value, then smallest raw p-value, then the key given first. */

/**
 * Holm across every key, tracemark's and the engines', then each key's verdict (spec §5.2, foreign-vllm
 * §10) and the document's (spec §5.4), as the core does for tracemark keys alone.
 */
function combineResults(args: {
  readonly entries: readonly KeyEntry[];
  readonly tracemark: Detection | null;
  readonly ids: ArrayLike<number>;
  readonly dedup: ForeignDedup;
  readonly fpr: number;
  readonly windowed: boolean;
  readonly source: string;
  readonly tokenizer: string;
}): AnyDocumentResult {
  const { entries, tracemark, ids, dedup, fpr, windowed } = args;
  const partial = entries.map((entry): PartialKeyResult => {
    if (entry.kind === 'tracemark') {
      const result = tracemark!.results[entry.index]!;
      return {
        keyId: result.keyId,
        numTokens: result.numTokens,
        numScored: result.numScored,
        // A Gumbel key has no green tokens: null here, its score below.
        numGreen: result.score === undefined ? result.numGreen : null,
        greenFraction: result.score === undefined ? result.greenFraction : null,
        z: result.z,
        log10P: result.log10P,
        gamma: result.gamma,
        verdictOptions: entry.verdictOptions,
        window: result.window,
        decisive: result.window?.log10PCorrected ?? result.log10P,
        gumbel: result.score === undefined ? null : { scheme: result.scheme, score: result.score },
        foreign: null,
      };
    }
    const score = entry.scorer.score(ids, dedup);
    const window = windowed
      ? foreignWindowScan(
          entry.scorer.units!(ids),
          entry.scorer.tail!,
          entry.scorer.nullGreenProbability !== null,
        )
      : null;
    return {
      keyId: entry.scorer.key.keyId,
      numTokens: score.numTokens,
      numScored: score.numScored,
      numGreen: score.numGreen,
      greenFraction: score.greenFraction,
      z: score.z,
      log10P: score.log10P,
      gamma: entry.scorer.nullGreenProbability ?? 0.5,
      verdictOptions: entry.scorer.verdictOptions,
      window,
      decisive: window?.log10PCorrected ?? score.log10P,
      gumbel: null,
      foreign: { scorer: entry.scorer, score },
    };
  });
  const adjusted = holmAdjustLog10(partial.map((p) => p.decisive));
  const settle = {
    keysTested: partial.length,
    ...(windowed ? { minWindow: DEFAULT_MIN_WINDOW } : {}),
  };
  const results = partial.map((p, i): DecidedKeyResult => {
    const decided = decideVerdict(
      p.numScored,
      p.numGreen ?? 0,
      adjusted[i]!,
      p.gamma,
      p.verdictOptions,
      settle,
    );
    return { ...p, log10PAdjusted: adjusted[i]!, ...decided };
  });

  const watermarked = results.filter((r) => r.verdict === 'watermarked');
  const insufficient = results.filter((r) => r.verdict === 'insufficient');
  let verdict: Verdict;
  let reported: DecidedKeyResult;
  let tokensToSettle = 0;
  if (watermarked.length > 0) {
    verdict = 'watermarked';
    reported = strongest(watermarked);
  } else if (insufficient.length === 0) {
    verdict = 'not_watermarked';
    reported = strongest(results);
  } else {
    verdict = 'insufficient';
    reported = strongest(insufficient);
    tokensToSettle = Math.max(...insufficient.map((r) => r.tokensToSettle));
  }
  return {
    source: args.source,
    verdict,
    numTokens: reported.numTokens,
    numScored: reported.numScored,
    numGreen: reported.numGreen,
    greenFraction: reported.greenFraction,
    z: reported.z,
    log10P: reported.log10P,
    log10PAdjusted: reported.log10PAdjusted,
    keyId: reported.keyId,
    ...(reported.foreign === null
      ? (reported.gumbel ?? {})
      : foreignFields(reported.foreign.scorer, reported.foreign.score, dedup)),
    tokenizer: args.tokenizer,
    keysTested: results.length,
    fpr,
    tokensToSettle,
    window: reported.window,
    keys: results.map((r): KeyResult | ForeignKeyResult => {
      const common = {
        keyId: r.keyId,
        verdict: r.verdict,
        numScored: r.numScored,
        numGreen: r.numGreen,
        greenFraction: r.greenFraction,
        z: r.z,
        log10P: r.log10P,
        log10PAdjusted: r.log10PAdjusted,
      };
      if (r.foreign === null) {
        return {
          ...common,
          numGreen: r.numGreen,
          greenFraction: r.greenFraction,
          ...(r.gumbel ?? {}),
        };
      }
      return { ...common, ...foreignFields(r.foreign.scorer, r.foreign.score, dedup) };
    }),
  };
}

function foreignFields(
  scorer: ForeignKeyScorer,
  score: ForeignKeyScore,
  dedup: ForeignDedup,
): { scheme: string; score: number; peerLog10P: number | null; dedup: ForeignDedup } {
  return { scheme: scorer.schemeName, score: score.score, peerLog10P: score.peerLog10P, dedup };
}

/** The engines' keys among `keys` whose tokenizer tracemark does not ship (they read token ids only). */
export function keysWithoutTokenizer(keys: readonly AnyWatermarkKey[]): ForeignWatermarkKey[] {
  return keys.filter((key): key is ForeignWatermarkKey => isForeignKey(key) && !isTokenizerId(key.tokenizer));
}
