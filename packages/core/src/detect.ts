/** Detection (spec §5): statistics, verdicts, windowed search and several keys. */
import { biasedGreenFraction } from './scheme.ts';
import {
  type ScoreCounts,
  Scorer,
  type ScorerOptions,
  TOKEN_STATUS_NAMES,
  type TokenStatusName,
} from './scoring.ts';
import { bonferroniLog10, holmAdjustLog10, log10BinomialCdf, log10BinomialSf, zScore } from './statistics.ts';
import type { Watermarker } from './watermarker.ts';

export type Verdict = 'watermarked' | 'not_watermarked' | 'insufficient';

/** Default target false-positive rate α. */
export const DEFAULT_FPR = 1e-4;
/** Default miss rate β for the `not_watermarked` test. */
export const DEFAULT_MISS_RATE = 1e-2;
/** Default shortest window of the windowed search. */
export const DEFAULT_MIN_WINDOW = 16;

export interface VerdictOptions {
  /** α: target false-positive rate (default 1e-4). */
  readonly fpr?: number;
  /** β: a text is `not_watermarked` once a watermark of strength g₁ would be missed with probability ≤ β. */
  readonly missRate?: number;
  /** g₁, the alternative green fraction (default halfway between γ_eff and the high-entropy biased rate). */
  readonly alternativeGreenFraction?: number;
}

export interface WindowOptions {
  readonly minWindow?: number;
}

export interface DetectOptions extends VerdictOptions {
  /** Prompt token ids: context for the first tokens, and their (seed, token) pairs are not scored. */
  readonly prompt?: ArrayLike<number>;
  /** Score each (seed, token) pair once (default true). */
  readonly dedup?: boolean;
  /** Search windows for a watermarked passage inside a longer text (spec §5.3). */
  readonly window?: boolean | WindowOptions;
  /** Include the per-token status array (default true). */
  readonly includeStatus?: boolean;
  /** Expected completion length, to size buffers once. */
  readonly expectedTokens?: number;
}

export interface WindowResult {
  /** Token index (in the input) of the first and last token of the best window. */
  readonly startToken: number;
  readonly endToken: number;
  /** Offset of the best window in the scored tape, and its length in scored tokens. */
  readonly tapeStart: number;
  readonly length: number;
  readonly numGreen: number;
  /** The best window's own p-value, before correction. */
  readonly log10P: number;
  readonly windowsSearched: number;
  /** min(1, W·p_min): valid after the search. */
  readonly log10PCorrected: number;
}

export interface KeyDetection extends ScoreCounts {
  readonly keyId: string;
  readonly scheme: string;
  readonly contextWidth: number;
  readonly gamma: number;
  readonly greenFraction: number;
  readonly z: number;
  /** log10 of the exact binomial tail for the whole text. */
  readonly log10P: number;
  /** The p-value the verdict uses: windowed if asked, then Holm-adjusted across keys. */
  readonly log10PAdjusted: number;
  readonly verdict: Verdict;
  /** Extra scored tokens after which any outcome settles the verdict (0 unless insufficient). */
  readonly tokensToSettle: number;
  readonly window: WindowResult | null;
  readonly status: readonly TokenStatusName[] | null;
}

export interface Detection {
  readonly verdict: Verdict;
  /** The key with the smallest adjusted p-value at or below α, when watermarked. */
  readonly matchedKeyId: string | null;
  readonly fpr: number;
  readonly keysTested: number;
  readonly results: readonly KeyDetection[];
}

export interface ResolvedVerdictOptions {
  fpr: number;
  missRate: number;
  alternative: number;
}

export function resolveVerdictOptions(
  watermarker: Watermarker,
  options: VerdictOptions,
): ResolvedVerdictOptions {
  const fpr = options.fpr ?? DEFAULT_FPR;
  const missRate = options.missRate ?? DEFAULT_MISS_RATE;
  const gamma = watermarker.scheme.gammaEffective;
  const alternative =
    options.alternativeGreenFraction ?? gamma + (biasedGreenFraction(watermarker.scheme) - gamma) / 2;
  if (typeof fpr !== 'number' || !(fpr > 0 && fpr < 1)) {
    throw new RangeError(`fpr: expected a number strictly between 0 and 1, got ${String(fpr)}`);
  }
  if (typeof missRate !== 'number' || !(missRate > 0 && missRate < 1)) {
    throw new RangeError(`missRate: expected a number strictly between 0 and 1, got ${String(missRate)}`);
  }
  if (typeof alternative !== 'number' || !(alternative > gamma && alternative < 1)) {
    throw new RangeError(
      `alternativeGreenFraction: expected a number between γ_eff (${gamma}) and 1, got ${String(alternative)}`,
    );
  }
  return { fpr, missRate, alternative };
}

const settleCache = new Map<string, Map<number, boolean>>();

/** True when, with T scored tokens, every green count gives `watermarked` or `not_watermarked`. */
function settles(T: number, gamma: number, v: ResolvedVerdictOptions): boolean {
  const cacheKey = `${gamma}|${v.fpr}|${v.missRate}|${v.alternative}`;
  let cache = settleCache.get(cacheKey);
  if (cache === undefined) {
    cache = new Map();
    settleCache.set(cacheKey, cache);
  }
  const held = cache.get(T);
  if (held !== undefined) return held;
  const log10Alpha = Math.log10(v.fpr);
  const log10Beta = Math.log10(v.missRate);
  // k0: the smallest k with P0[X ≥ k] ≤ α; k1: the largest k with P1[X ≤ k] ≤ β.
  let lo = 0;
  let hi = T + 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (log10BinomialSf(mid, T, gamma) <= log10Alpha) hi = mid;
    else lo = mid + 1;
  }
  const k0 = lo;
  lo = -1;
  hi = T;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (log10BinomialCdf(mid, T, v.alternative) <= log10Beta) lo = mid;
    else hi = mid - 1;
  }
  const k1 = lo;
  const result = k0 <= T && k1 >= k0 - 1;
  cache.set(T, result);
  return result;
}

function tokensToSettle(T: number, gamma: number, v: ResolvedVerdictOptions): number {
  for (let next = T + 1; next < T + 1_000_000; next++) if (settles(next, gamma, v)) return next - T;
  return Number.POSITIVE_INFINITY;
}

/** The verdict of spec §5.2 for T scored tokens with k green, given the p-value to use. */
export function decideVerdict(
  numScored: number,
  numGreen: number,
  log10PValue: number,
  gamma: number,
  options: ResolvedVerdictOptions,
): { verdict: Verdict; tokensToSettle: number } {
  if (numScored > 0 && log10PValue <= Math.log10(options.fpr))
    return { verdict: 'watermarked', tokensToSettle: 0 };
  if (
    numScored > 0 &&
    log10BinomialCdf(numGreen, numScored, options.alternative) <= Math.log10(options.missRate)
  ) {
    return { verdict: 'not_watermarked', tokensToSettle: 0 };
  }
  return { verdict: 'insufficient', tokensToSettle: tokensToSettle(numScored, gamma, options) };
}

/** Windowed search over the scored tape (spec §5.3). */
export function windowScan(
  bits: Uint8Array,
  gamma: number,
  minWindow: number = DEFAULT_MIN_WINDOW,
): {
  windowsSearched: number;
  start: number;
  length: number;
  numGreen: number;
  log10P: number;
  log10PCorrected: number;
} {
  if (!Number.isInteger(minWindow) || minWindow < 1) {
    throw new RangeError(`minWindow: expected a positive integer, got ${String(minWindow)}`);
  }
  const T = bits.length;
  const prefix = new Uint32Array(T + 1);
  for (let i = 0; i < T; i++) prefix[i + 1] = prefix[i]! + bits[i]!;
  let windows = 0;
  let best = { start: 0, length: T, numGreen: prefix[T]!, log10P: Number.POSITIVE_INFINITY };
  const consider = (start: number, length: number): void => {
    windows++;
    const k = prefix[start + length]! - prefix[start]!;
    const log10P = log10BinomialSf(k, length, gamma);
    if (log10P < best.log10P) best = { start, length, numGreen: k, log10P };
  };
  let previous = 0;
  for (let j = 0; ; j++) {
    const length = Math.round(minWindow * 2 ** (j / 2));
    if (length >= T) break;
    if (length === previous) continue;
    previous = length;
    const stride = Math.max(1, Math.floor(length / 4));
    let start = 0;
    let last = -1;
    for (; start + length <= T; start += stride) {
      consider(start, length);
      last = start;
    }
    if (last !== T - length) consider(T - length, length);
  }
  consider(0, T);
  return { windowsSearched: windows, ...best, log10PCorrected: bonferroniLog10(best.log10P, windows) };
}

export interface DetectionSession {
  /** Scores the next chunk of the completion. */
  push(tokens: ArrayLike<number>): void;
  /** The detection over everything pushed; the session can keep going afterwards. */
  finish(): Detection;
}

/**
 * Streaming detection under one or more keys: give the prompt in the options, push the
 * completion in chunks of any size, then `finish()`. Equal to {@link detect} on the concatenation.
 */
export function createDetection(
  watermarkers: Watermarker | readonly Watermarker[],
  options: DetectOptions = {},
): DetectionSession {
  const list = Array.isArray(watermarkers) ? watermarkers : [watermarkers as Watermarker];
  if (list.length === 0) throw new RangeError('watermarkers: expected at least one key');
  const scorerOptions: ScorerOptions = {
    ...(options.dedup === undefined ? {} : { dedup: options.dedup }),
    ...(options.expectedTokens === undefined
      ? {}
      : { expectedTokens: options.expectedTokens + (options.prompt?.length ?? 0) }),
  };
  const windowOptions = options.window === true ? {} : options.window || null;
  if (windowOptions?.minWindow !== undefined) windowScan(new Uint8Array(0), 0.5, windowOptions.minWindow);
  const includeStatus = options.includeStatus ?? true;
  const states = list.map((watermarker) => {
    const verdictOptions = resolveVerdictOptions(watermarker, options);
    const scorer = new Scorer(watermarker, scorerOptions);
    if (options.prompt !== undefined) scorer.addPrompt(options.prompt);
    return { watermarker, verdictOptions, scorer, status: [] as Uint8Array[] };
  });
  const push = (tokens: ArrayLike<number>): void => {
    for (const state of states) {
      const chunk = state.scorer.push(tokens);
      if (includeStatus) state.status.push(chunk.status);
    }
  };
  const finish = (): Detection => {
    const partial = states.map((state) => {
      const counts = state.scorer.counts();
      const gamma = state.watermarker.scheme.gammaEffective;
      const log10P = log10BinomialSf(counts.numGreen, counts.numScored, gamma);
      let window: WindowResult | null = null;
      let decisive = log10P;
      if (windowOptions !== null) {
        const scan = windowScan(state.scorer.scoredBits(), gamma, windowOptions.minWindow);
        const positions = state.scorer.scoredPositions();
        window = {
          startToken: scan.length > 0 ? positions[scan.start]! : 0,
          endToken: scan.length > 0 ? positions[scan.start + scan.length - 1]! : 0,
          tapeStart: scan.start,
          length: scan.length,
          numGreen: scan.numGreen,
          log10P: scan.log10P,
          windowsSearched: scan.windowsSearched,
          log10PCorrected: scan.log10PCorrected,
        };
        decisive = scan.log10PCorrected;
      }
      return { ...state, counts, log10P, window, decisive };
    });
    const adjusted = holmAdjustLog10(partial.map((p) => p.decisive));
    const results = partial.map((p, i): KeyDetection => {
      const { numTokens, numScored, numGreen } = p.counts;
      const gamma = p.watermarker.scheme.gammaEffective;
      const decided = decideVerdict(numScored, numGreen, adjusted[i]!, gamma, p.verdictOptions);
      return {
        keyId: p.watermarker.keyId,
        scheme: p.watermarker.scheme.name,
        contextWidth: p.watermarker.scheme.contextWidth,
        gamma,
        numTokens,
        numScored,
        numGreen,
        greenFraction: numScored === 0 ? 0 : numGreen / numScored,
        z: zScore(numGreen, numScored, gamma),
        log10P: p.log10P,
        log10PAdjusted: adjusted[i]!,
        verdict: decided.verdict,
        tokensToSettle: decided.tokensToSettle,
        window: p.window,
        status: includeStatus
          ? p.status.flatMap((chunk) => Array.from(chunk, (code) => TOKEN_STATUS_NAMES[code]!))
          : null,
      };
    });
    let matched: KeyDetection | null = null;
    for (const result of results) {
      if (result.verdict !== 'watermarked') continue;
      if (
        matched === null ||
        result.log10PAdjusted < matched.log10PAdjusted ||
        (result.log10PAdjusted === matched.log10PAdjusted && result.log10P < matched.log10P)
      ) {
        matched = result;
      }
    }
    const verdict: Verdict =
      matched !== null
        ? 'watermarked'
        : results.every((r) => r.verdict === 'not_watermarked')
          ? 'not_watermarked'
          : 'insufficient';
    return {
      verdict,
      matchedKeyId: matched?.keyId ?? null,
      fpr: partial[0]!.verdictOptions.fpr,
      keysTested: list.length,
      results,
    };
  };
  return { push, finish };
}

/**
 * Detects the watermark of one or more keys in a token sequence. Several keys are corrected for
 * by Holm's procedure (spec §5.4). Empty input gives `insufficient`, not an error.
 */
export function detect(
  tokens: ArrayLike<number>,
  watermarkers: Watermarker | readonly Watermarker[],
  options: DetectOptions = {},
): Detection {
  const session = createDetection(watermarkers, { ...options, expectedTokens: tokens.length });
  session.push(tokens);
  return session.finish();
}
