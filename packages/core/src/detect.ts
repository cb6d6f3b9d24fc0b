/**
 * Detection (spec §5): statistics, verdicts, windowed search and several keys. Gumbel keys
 * (watermark-gumbel §5) share it: their p-value is the exact tail of the summed scores, and they
 * are `watermarked` or `insufficient`, never `not_watermarked`.
 */
import { gumbelLog10PValue, gumbelWindowScan, gumbelZScore } from './gumbel.ts';
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
import { forEachWindow } from './windows.ts';

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
  /** Green count of the best window; 0 for a Gumbel key. */
  readonly numGreen: number;
  /** Gumbel keys: the best window's score sum. */
  readonly score?: number;
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
  /** γ_eff; NaN for a Gumbel key (no green list). */
  readonly gamma: number;
  /** k / T; NaN for a Gumbel key. */
  readonly greenFraction: number;
  /** For comparison only; for a Gumbel key (S − n·m)/(s·√n) with the null per-token mean and deviation. */
  readonly z: number;
  /** Gumbel keys: S, the sum of the scored tokens' scores (watermark-gumbel §5). */
  readonly score?: number;
  /** log10 of the exact tail for the whole text: binomial, or for a Gumbel key Gamma (dual: weighted). */
  readonly log10P: number;
  /** The p-value the verdict uses: windowed if asked, then Holm-adjusted across keys. */
  readonly log10PAdjusted: number;
  readonly verdict: Verdict;
  /**
   * Extra scored tokens (under this key) after which every outcome settles this key's verdict,
   * whatever the other keys show (spec §5.2): 0 unless insufficient; Infinity when no number up to
   * {@link MAX_TOKENS_TO_SETTLE} does (always with δ = 0 and no alternative given).
   */
  readonly tokensToSettle: number;
  readonly window: WindowResult | null;
  readonly status: readonly TokenStatusName[] | null;
}

export interface Detection {
  readonly verdict: Verdict;
  /** The key with the smallest adjusted p-value at or below α, when watermarked. */
  readonly matchedKeyId: string | null;
  /**
   * The key whose numbers stand for the document (spec §5.4): the matched key; else the strongest
   * evidence among the keys whose verdict is the document's.
   */
  readonly reportedKeyId: string;
  /** 0 unless insufficient; then the largest tokensToSettle of the insufficient keys (never 0). */
  readonly tokensToSettle: number;
  readonly fpr: number;
  readonly keysTested: number;
  readonly results: readonly KeyDetection[];
}

export interface ResolvedVerdictOptions {
  fpr: number;
  missRate: number;
  /** g₁; null when the scheme has δ = 0 and none was given: then nothing is `not_watermarked`. */
  alternative: number | null;
}

/** Beyond this many extra scored tokens, tokensToSettle is reported as Infinity (null in JSON). */
export const MAX_TOKENS_TO_SETTLE = 1_000_000;

export function resolveVerdictOptions(
  watermarker: Watermarker,
  options: VerdictOptions,
): ResolvedVerdictOptions {
  const fpr = options.fpr ?? DEFAULT_FPR;
  const missRate = options.missRate ?? DEFAULT_MISS_RATE;
  const gamma = watermarker.scheme.gammaEffective;
  if (typeof fpr !== 'number' || !(fpr > 0 && fpr < 1)) {
    throw new RangeError(`fpr: expected a number strictly between 0 and 1, got ${String(fpr)}`);
  }
  if (typeof missRate !== 'number' || !(missRate > 0 && missRate < 1)) {
    throw new RangeError(`missRate: expected a number strictly between 0 and 1, got ${String(missRate)}`);
  }
  const given = options.alternativeGreenFraction;
  if (watermarker.family === 'gumbel') {
    // What a marked text scores depends on the model's entropy, which no key parameter bounds
    // (watermark-gumbel §5.3): there is no alternative to rule out.
    if (given !== undefined) {
      throw new RangeError(
        `alternativeGreenFraction: key ${watermarker.keyId} uses the ${watermarker.scheme.name} scheme, which has no green fraction`,
      );
    }
    return { fpr, missRate, alternative: null };
  }
  if (given !== undefined) {
    if (typeof given !== 'number' || !(given > gamma && given < 1)) {
      throw new RangeError(
        `alternativeGreenFraction: expected a number between γ_eff (${gamma}) and 1, got ${String(given)}`,
      );
    }
    return { fpr, missRate, alternative: given };
  }
  // With δ = 0 the design strength is γ_eff itself: no watermark strength to rule out.
  const design = gamma + (biasedGreenFraction(watermarker.scheme) - gamma) / 2;
  return { fpr, missRate, alternative: design > gamma ? design : null };
}

/** How a verdict is corrected for the search: keys tested (Holm) and, when windowed, the windows. */
export interface SettleOptions {
  /** m, the number of keys tested together (default 1). */
  readonly keysTested?: number;
  /** The shortest window, when the verdict uses the windowed p-value of spec §5.3. */
  readonly minWindow?: number;
}

/** W(T): the number of windows the search of spec §5.3 visits on a tape of T scored tokens. */
export function windowCount(numScored: number, minWindow: number = DEFAULT_MIN_WINDOW): number {
  if (!Number.isInteger(minWindow) || minWindow < 1) {
    throw new RangeError(`minWindow: expected a positive integer, got ${String(minWindow)}`);
  }
  let count = 1;
  let previous = 0;
  for (let j = 0; ; j++) {
    const length = Math.round(minWindow * 2 ** (j / 2));
    if (length >= numScored) break;
    if (length === previous) continue;
    previous = length;
    // Starts 0, s, 2s, … plus the final window [T − ℓ, T) when it is not one of them.
    count += Math.ceil((numScored - length) / Math.max(1, Math.floor(length / 4))) + 1;
  }
  return count;
}

interface SettleRule {
  readonly gamma: number;
  readonly alternative: number;
  readonly log10Beta: number;
  /** log10 of the per-key level α/m. */
  readonly log10Level: number;
  readonly minWindow: number | null;
}

/**
 * k0(T): the smallest green count whose p-value settles `watermarked` whatever the other keys and
 * windows show, P0[X ≥ k] ≤ α/(m·W(T)); T + 1 when no count does. Searched from `from` up, which
 * is valid because k0 never decreases with T.
 */
function smallestWatermarkedCount(T: number, rule: SettleRule, from: number): number {
  const windows = rule.minWindow === null ? 1 : windowCount(T, rule.minWindow);
  const level = rule.log10Level - Math.log10(windows);
  let lo = from;
  let hi = T + 1;
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    if (log10BinomialSf(mid, T, rule.gamma) <= level) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** k1(T): the largest green count that rules out g₁, P1[X ≤ k] ≤ β, searched in [from, to]; −1 when none. */
function largestRuledOutCount(T: number, rule: SettleRule, from: number, to: number): number {
  let lo = from;
  let hi = Math.min(to, T);
  while (lo < hi) {
    const mid = Math.floor((lo + hi + 1) / 2);
    if (log10BinomialCdf(mid, T, rule.alternative) <= rule.log10Beta) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

const settleCache = new Map<string, number>();

/**
 * T* − T, where T* is the smallest T' > T at which every green count settles (k1 ≥ k0 − 1).
 * Exact, without visiting every T': k1 grows by at most 1 per token and k0 never falls, so with a
 * gap g = k0 − 1 − k1 > 0 nothing before T' + g can settle.
 */
function tokensToSettle(T: number, rule: SettleRule): number {
  const cacheKey = `${rule.gamma}|${rule.alternative}|${rule.log10Beta}|${rule.log10Level}|${rule.minWindow}|${T}`;
  const held = settleCache.get(cacheKey);
  if (held !== undefined) return held;
  let next = T + 1;
  let k0 = smallestWatermarkedCount(next, rule, 0);
  let k1 = largestRuledOutCount(next, rule, -1, next);
  let result = Number.POSITIVE_INFINITY;
  while (next - T <= MAX_TOKENS_TO_SETTLE) {
    const gap = k0 - 1 - k1;
    if (gap <= 0) {
      result = next - T;
      break;
    }
    next += gap;
    k0 = smallestWatermarkedCount(next, rule, k0);
    k1 = largestRuledOutCount(next, rule, k1, k1 + gap);
  }
  if (settleCache.size >= 4096) settleCache.clear();
  settleCache.set(cacheKey, result);
  return result;
}

/**
 * The verdict of spec §5.2 for T scored tokens with k green, given the p-value to use (windowed
 * and Holm-adjusted as the detection asks). `settle` says what that p-value was corrected for, so
 * that tokensToSettle holds whatever the other keys and windows show.
 */
export function decideVerdict(
  numScored: number,
  numGreen: number,
  log10PValue: number,
  gamma: number,
  options: ResolvedVerdictOptions,
  settle: SettleOptions = {},
): { verdict: Verdict; tokensToSettle: number } {
  const keysTested = settle.keysTested ?? 1;
  if (!Number.isInteger(keysTested) || keysTested < 1) {
    throw new RangeError(`keysTested: expected a positive integer, got ${String(keysTested)}`);
  }
  const minWindow = settle.minWindow ?? null;
  if (minWindow !== null && !(Number.isInteger(minWindow) && minWindow >= 1)) {
    throw new RangeError(`minWindow: expected a positive integer, got ${String(minWindow)}`);
  }
  if (numScored > 0 && log10PValue <= Math.log10(options.fpr))
    return { verdict: 'watermarked', tokensToSettle: 0 };
  const alternative = options.alternative;
  // δ = 0 and no g₁ given: nothing rules a watermark out, and no amount of text changes that.
  if (alternative === null) return { verdict: 'insufficient', tokensToSettle: Number.POSITIVE_INFINITY };
  const log10Beta = Math.log10(options.missRate);
  if (numScored > 0 && log10BinomialCdf(numGreen, numScored, alternative) <= log10Beta) {
    return { verdict: 'not_watermarked', tokensToSettle: 0 };
  }
  const rule: SettleRule = {
    gamma,
    alternative,
    log10Beta,
    log10Level: Math.log10(options.fpr) - Math.log10(keysTested),
    minWindow,
  };
  return { verdict: 'insufficient', tokensToSettle: tokensToSettle(numScored, rule) };
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
  const T = bits.length;
  const prefix = new Uint32Array(T + 1);
  for (let i = 0; i < T; i++) prefix[i + 1] = prefix[i]! + bits[i]!;
  let best = { start: 0, length: T, numGreen: prefix[T]!, log10P: Number.POSITIVE_INFINITY };
  const windows = forEachWindow(T, minWindow, (start, length) => {
    const k = prefix[start + length]! - prefix[start]!;
    const log10P = log10BinomialSf(k, length, gamma);
    if (log10P < best.log10P) best = { start, length, numGreen: k, log10P };
  });
  return { windowsSearched: windows, ...best, log10PCorrected: bonferroniLog10(best.log10P, windows) };
}

export interface DetectionSession {
  /** Scores the next chunk of the completion. */
  push(tokens: ArrayLike<number>): void;
  /** The detection over everything pushed; the session can keep going afterwards. */
  finish(): Detection;
}

/** The strongest evidence: smallest adjusted p-value, then smallest raw p-value, then the key given first. */
/**
 * The strongest evidence among key results (spec §5.4): the smallest Holm-adjusted p, then the smallest
 * raw p, then the key given first.
 */
export function strongest<T extends { readonly log10PAdjusted: number; readonly log10P: number }>(
  candidates: readonly T[],
): T {
  let best = candidates[0]!;
  for (const result of candidates) {
    if (
      result.log10PAdjusted < best.log10PAdjusted ||
      (result.log10PAdjusted === best.log10PAdjusted && result.log10P < best.log10P)
    ) {
      best = result;
    }
  }
  return best;
}

/**
 * The document verdict of spec §5.4: `watermarked` when some key is (the matched key is the
 * strongest of those), else `not_watermarked` when every key is, else `insufficient`. The reported
 * key is the strongest among the keys whose verdict is the document's; an insufficient document
 * settles once every insufficient key has, so its tokensToSettle is their largest.
 */
function documentVerdict(
  results: readonly KeyDetection[],
): Pick<Detection, 'verdict' | 'matchedKeyId' | 'reportedKeyId' | 'tokensToSettle'> {
  const watermarked = results.filter((r) => r.verdict === 'watermarked');
  if (watermarked.length > 0) {
    const matched = strongest(watermarked);
    return {
      verdict: 'watermarked',
      matchedKeyId: matched.keyId,
      reportedKeyId: matched.keyId,
      tokensToSettle: 0,
    };
  }
  const insufficient = results.filter((r) => r.verdict === 'insufficient');
  if (insufficient.length === 0) {
    return {
      verdict: 'not_watermarked',
      matchedKeyId: null,
      reportedKeyId: strongest(results).keyId,
      tokensToSettle: 0,
    };
  }
  return {
    verdict: 'insufficient',
    matchedKeyId: null,
    reportedKeyId: strongest(insufficient).keyId,
    tokensToSettle: Math.max(...insufficient.map((r) => r.tokensToSettle)),
  };
}

/** One key's part of a detection: its watermarker, verdict options, scorer and statuses. */
interface KeyState {
  readonly watermarker: Watermarker;
  readonly verdictOptions: ResolvedVerdictOptions;
  readonly scorer: Scorer;
  readonly status: Uint8Array[];
}

/** The options every detection checks first, in the order it checks them. */
interface PreparedOptions {
  readonly list: readonly Watermarker[];
  readonly windowOptions: WindowOptions | null;
  readonly includeStatus: boolean;
}

function prepare(
  watermarkers: Watermarker | readonly Watermarker[],
  options: DetectOptions,
): PreparedOptions {
  const list = Array.isArray(watermarkers) ? watermarkers : [watermarkers as Watermarker];
  if (list.length === 0) throw new RangeError('watermarkers: expected at least one key');
  const windowOptions = options.window === true ? {} : options.window || null;
  if (windowOptions?.minWindow !== undefined) windowScan(new Uint8Array(0), 0.5, windowOptions.minWindow);
  return { list, windowOptions, includeStatus: options.includeStatus ?? true };
}

/** The last verdict options resolved for each watermarker, reused while the options asked are the same. */
const resolvedVerdictOptions = new WeakMap<
  Watermarker,
  { fpr: unknown; missRate: unknown; given: unknown; resolved: ResolvedVerdictOptions }
>();

/** {@link resolveVerdictOptions}, remembered per watermarker (every document of a run asks the same). */
function verdictOptionsOf(watermarker: Watermarker, options: VerdictOptions): ResolvedVerdictOptions {
  const held = resolvedVerdictOptions.get(watermarker);
  if (
    held !== undefined &&
    held.fpr === options.fpr &&
    held.missRate === options.missRate &&
    held.given === options.alternativeGreenFraction
  ) {
    return held.resolved;
  }
  const resolved = resolveVerdictOptions(watermarker, options);
  resolvedVerdictOptions.set(watermarker, {
    fpr: options.fpr,
    missRate: options.missRate,
    given: options.alternativeGreenFraction,
    resolved,
  });
  return resolved;
}

/**
 * Streaming detection under one or more keys: give the prompt in the options, push the
 * completion in chunks of any size, then `finish()`. Equal to {@link detect} on the concatenation.
 */
export function createDetection(
  watermarkers: Watermarker | readonly Watermarker[],
  options: DetectOptions = {},
): DetectionSession {
  const prepared = prepare(watermarkers, options);
  const scorerOptions: ScorerOptions = {
    ...(options.dedup === undefined ? {} : { dedup: options.dedup }),
    ...(options.expectedTokens === undefined
      ? {}
      : { expectedTokens: options.expectedTokens + (options.prompt?.length ?? 0) }),
  };
  const states = prepared.list.map((watermarker): KeyState => {
    const verdictOptions = verdictOptionsOf(watermarker, options);
    const scorer = new Scorer(watermarker, scorerOptions);
    if (options.prompt !== undefined) scorer.addPrompt(options.prompt);
    return { watermarker, verdictOptions, scorer, status: [] };
  });
  const push = (tokens: ArrayLike<number>): void => pushAll(states, tokens, prepared.includeStatus);
  const finish = (): Detection => finishDetection(states, prepared);
  return { push, finish };
}

function pushAll(states: readonly KeyState[], tokens: ArrayLike<number>, includeStatus: boolean): void {
  for (const state of states) {
    if (includeStatus) state.status.push(state.scorer.push(tokens).status);
    else state.scorer.pushWithoutStatus(tokens);
  }
}

/** Statuses as names, chunk after chunk. */
function statusNames(chunks: readonly Uint8Array[]): TokenStatusName[] {
  return chunks.flatMap((chunk) => Array.from(chunk, (code) => TOKEN_STATUS_NAMES[code]!));
}

/** A key's numbers before Holm's correction. */
interface PartialKey {
  readonly state: KeyState;
  readonly counts: ScoreCounts;
  readonly score: number | null;
  readonly log10P: number;
  readonly window: WindowResult | null;
  readonly decisive: number;
}

function finishDetection(states: readonly KeyState[], prepared: PreparedOptions): Detection {
  const { list, windowOptions, includeStatus } = prepared;
  const partial: PartialKey[] = [];
  const decisive: number[] = [];
  for (const state of states) {
    const key = finishKey(state, windowOptions);
    partial.push(key);
    decisive.push(key.decisive);
  }
  const adjusted = holmAdjustLog10(decisive);
  const settle: SettleOptions =
    windowOptions === null
      ? { keysTested: list.length }
      : { keysTested: list.length, minWindow: windowOptions.minWindow ?? DEFAULT_MIN_WINDOW };
  const results: KeyDetection[] = [];
  for (let i = 0; i < partial.length; i++) {
    const p = partial[i]!;
    const { watermarker, verdictOptions } = p.state;
    const { numTokens, numScored, numGreen } = p.counts;
    const gamma = watermarker.scheme.gammaEffective;
    const decided = decideVerdict(numScored, numGreen, adjusted[i]!, gamma, verdictOptions, settle);
    const status = includeStatus ? statusNames(p.state.status) : null;
    // The key order is the JSON's: keep the two literals as they are.
    if (p.score !== null) {
      results.push({
        keyId: watermarker.keyId,
        scheme: watermarker.scheme.name,
        contextWidth: watermarker.scheme.contextWidth,
        gamma,
        numTokens,
        numScored,
        numGreen: 0,
        greenFraction: Number.NaN,
        z: gumbelZScore(watermarker.scheme, numScored, p.score),
        score: p.score,
        log10P: p.log10P,
        log10PAdjusted: adjusted[i]!,
        verdict: decided.verdict,
        tokensToSettle: decided.tokensToSettle,
        window: p.window,
        status,
      });
    } else {
      results.push({
        keyId: watermarker.keyId,
        scheme: watermarker.scheme.name,
        contextWidth: watermarker.scheme.contextWidth,
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
        status,
      });
    }
  }
  const verdict = documentVerdict(results);
  return {
    verdict: verdict.verdict,
    matchedKeyId: verdict.matchedKeyId,
    reportedKeyId: verdict.reportedKeyId,
    tokensToSettle: verdict.tokensToSettle,
    fpr: states[0]!.verdictOptions.fpr,
    keysTested: list.length,
    results,
  };
}

/** One key's p-value over everything pushed, and its window search when asked. */
function finishKey(state: KeyState, windowOptions: WindowOptions | null): PartialKey {
  const counts = state.scorer.counts();
  const scheme = state.watermarker.scheme;
  const gumbel = state.watermarker.family === 'gumbel';
  const gamma = scheme.gammaEffective;
  const score = gumbel ? state.scorer.totalScore() : null;
  const log10P =
    score !== null
      ? gumbelLog10PValue(scheme, counts.numScored, score)
      : log10BinomialSf(counts.numGreen, counts.numScored, gamma);
  let window: WindowResult | null = null;
  let decisive = log10P;
  if (windowOptions !== null && gumbel) {
    const scan = gumbelWindowScan(
      state.scorer.scoredScores(),
      scheme,
      windowOptions.minWindow ?? DEFAULT_MIN_WINDOW,
    );
    const positions = state.scorer.scoredPositions();
    window = {
      startToken: scan.length > 0 ? positions[scan.start]! : 0,
      endToken: scan.length > 0 ? positions[scan.start + scan.length - 1]! : 0,
      tapeStart: scan.start,
      length: scan.length,
      numGreen: 0,
      score: scan.score,
      log10P: scan.log10P,
      windowsSearched: scan.windowsSearched,
      log10PCorrected: scan.log10PCorrected,
    };
    decisive = scan.log10PCorrected;
  } else if (windowOptions !== null) {
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
  return { state, counts, score, log10P, window, decisive };
}

/**
 * Scorers kept between calls of {@link detect}, one per watermarker and dedup rule: a call scores a
 * whole text before it returns, so the next call can reset and reuse them instead of allocating a
 * tape and buffers per document. `busy` guards against a call made while another is running.
 */
const keptScorers = [new WeakMap<Watermarker, Scorer>(), new WeakMap<Watermarker, Scorer>()] as const;
let keptScorersBusy = false;

/** Texts longer than this get scorers of their own, so that no large tape stays held between calls. */
const KEPT_SCORER_TOKENS = 1 << 15;

function keptScorer(watermarker: Watermarker, dedup: boolean, expectedTokens: number): Scorer {
  if (expectedTokens > KEPT_SCORER_TOKENS) return new Scorer(watermarker, { dedup, expectedTokens });
  const kept = keptScorers[dedup ? 1 : 0];
  const scorer = kept.get(watermarker);
  if (scorer !== undefined) {
    scorer.reset(expectedTokens);
    return scorer;
  }
  const made = new Scorer(watermarker, { dedup, expectedTokens });
  kept.set(watermarker, made);
  return made;
}

/** Whether a watermarker occurs twice in the list (then each needs its own scorer). */
function hasRepeats(list: readonly Watermarker[]): boolean {
  for (let i = 1; i < list.length; i++) if (list.indexOf(list[i]!) < i) return true;
  return false;
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
  const length = tokens.length;
  const prepared = prepare(watermarkers, options);
  if (keptScorersBusy || hasRepeats(prepared.list)) {
    const session = createDetection(watermarkers, { ...options, expectedTokens: length });
    session.push(tokens);
    return session.finish();
  }
  keptScorersBusy = true;
  try {
    const dedup = options.dedup ?? true;
    const expectedTokens = length + (options.prompt?.length ?? 0);
    const states = prepared.list.map((watermarker): KeyState => {
      const verdictOptions = verdictOptionsOf(watermarker, options);
      const scorer = keptScorer(watermarker, dedup, expectedTokens);
      if (options.prompt !== undefined) scorer.addPrompt(options.prompt);
      return { watermarker, verdictOptions, scorer, status: [] };
    });
    pushAll(states, tokens, prepared.includeStatus);
    return finishDetection(states, prepared);
  } finally {
    keptScorersBusy = false;
  }
}
