/**
 * The Gumbel-max watermark (docs/spec/watermark-gumbel.md): keyed uniforms, the keyed choice
 * among the model's candidates, per-token scores and their exact tails.
 *
 * Sampling: with u_x a keyed uniform per (context seed, candidate x) and p_x the model's
 * probability after temperature and truncation, the token is argmax_x u_x^(1/p_x) (Aaronson 2022,
 * "Watermarking of large language models", https://www.scottaaronson.com/talks/watermark.ppt;
 * Kuditipudi et al. 2023, https://arxiv.org/abs/2307.15593, §2): for uniform u the choice has
 * probability exactly p_x, so the mark changes no output distribution. In log form it is
 * argmax_x ℓ_x/T − ln(−ln u_x), the Gumbel-max trick with keyed noise.
 *
 * Detection: s = −ln(1 − u) of the chosen token is Exp(1) under the null (text independent of the
 * key) and larger under the mark; S = Σ s over n distinct (seed, token) pairs is Gamma(n, 1), whose
 * upper tail Q(n, S) is the exact p-value (Fernandez et al. 2023, "Three Bricks to Consolidate
 * Watermarks for Large Language Models", https://arxiv.org/abs/2308.00113, §III.B).
 */
import { logGammaSf, logWeightedGammaSf } from './foreign/gamma-tail.ts';
import type { Scheme } from './scheme.ts';
import { bonferroniLog10 } from './statistics.ts';
import { forEachWindow } from './windows.ts';

const TWO_POW_MINUS_32 = 2 ** -32;
const TWO_POW_MINUS_52 = 2 ** -52;
const LN10 = Math.LN10;

/**
 * The uniform of a 64-bit PRF output x (given as its high and low 32-bit halves):
 * u = floor(x / 2^12) / 2^52, one of the 2^52 values 0, 2^−52, …, 1 − 2^−52 (exact in a double).
 * Rounding down makes every score −ln(1 − u) at most that of a continuous uniform on the same cell,
 * so the Gamma tail stays a valid p-value for the discrete uniform (watermark-gumbel §3.1).
 */
export function gumbelUniform(high: number, low: number): number {
  return (high >>> 0) * TWO_POW_MINUS_32 + (low >>> 12) * TWO_POW_MINUS_52;
}

/** s = −ln(1 − u): Exp(1) for a continuous uniform u. */
export function gumbelScore(uniform: number): number {
  return -Math.log1p(-uniform);
}

/**
 * The largest value −ln(−ln u) can take on the 52-bit grid (u = 1 − 2^−52), about 36.04. A
 * candidate whose (ℓ − ℓ_max)/T is below the best key found minus this cannot be chosen, whatever
 * its uniform; the choice skips its PRF call without changing the result.
 */
export const GUMBEL_NOISE_MAX: number = -Math.log(-Math.log1p(-TWO_POW_MINUS_52));

/** Margin that keeps the skip above exact despite rounding in the bound (far above any rounding). */
const SKIP_MARGIN = 1e-9;

/**
 * The keyed Gumbel-max choice among candidates, exactly as watermark-gumbel §4 defines it: the
 * candidate with the largest key (ℓ_x − ℓ_max)/T − ln(−ln u_x), the smaller token id on equal keys.
 * `uniformOf(token)` is called lazily: never for a candidate that cannot be chosen. Returns the
 * chosen index into `tokens` and the number of uniforms evaluated. `temperature` must be > 0.
 */
export function gumbelChoice(
  tokens: ArrayLike<number>,
  logits: ArrayLike<number>,
  temperature: number,
  uniformOf: (token: number) => number,
): { index: number; uniformsEvaluated: number } {
  const count = tokens.length;
  if (logits.length !== count) throw new RangeError('logits: expected one logit per candidate token');
  if (!(temperature > 0) || !Number.isFinite(temperature)) {
    throw new RangeError(`temperature: expected a finite number > 0, got ${String(temperature)}`);
  }
  let top = -1;
  let maxLogit = Number.NEGATIVE_INFINITY;
  for (let j = 0; j < count; j++) {
    const v = logits[j]!;
    if (v > maxLogit || (v === maxLogit && top >= 0 && tokens[j]! < tokens[top]!)) {
      maxLogit = v;
      top = j;
    }
  }
  if (top < 0) throw new RangeError('logits: no candidate has a finite logit');
  let evaluated = 0;
  const keyOf = (j: number): number => {
    evaluated++;
    return (logits[j]! - maxLogit) / temperature - Math.log(-Math.log(uniformOf(tokens[j]!)));
  };
  // The most likely candidate first: its key bounds the rest, so the improbable tail is skipped.
  let best = top;
  let bestKey = keyOf(top);
  for (let j = 0; j < count; j++) {
    if (j === top) continue;
    const scaled = (logits[j]! - maxLogit) / temperature;
    if (!(scaled + GUMBEL_NOISE_MAX >= bestKey - SKIP_MARGIN)) continue;
    const key = keyOf(j);
    if (key > bestKey || (key === bestKey && tokens[j]! < tokens[best]!)) {
      bestKey = key;
      best = j;
    }
  }
  return { index: best, uniformsEvaluated: evaluated };
}

/** Null mean and standard deviation of one token's score under a Gumbel scheme. */
function nullMoments(scheme: Scheme): { mean: number; sd: number } {
  const alpha = scheme.alpha;
  return { mean: 1, sd: scheme.name === 'dual_gumbel' ? Math.sqrt((1 - alpha) ** 2 + alpha ** 2) : 1 };
}

function assertGumbel(scheme: Scheme): void {
  if (scheme.family !== 'gumbel') {
    throw new TypeError(
      `scheme: ${scheme.name} is a green-list scheme; Gumbel statistics need gumbel or dual_gumbel`,
    );
  }
}

/**
 * ln P[S ≥ score] for the sum S of n null token scores: Q(n, score) (Gamma(n, 1) upper tail) for
 * `gumbel`; for `dual_gumbel` the exact tail of (1 − α)·X + α·Y, X, Y ~ Gamma(n, 1) independent
 * (a negative-binomial mixture of Gamma tails, Moschopoulos 1985; see gamma-tail.ts). 0 when n = 0.
 */
export function gumbelLogPValue(scheme: Scheme, numScored: number, score: number): number {
  assertGumbel(scheme);
  if (!Number.isInteger(numScored) || numScored < 0) {
    throw new RangeError(`numScored: expected a non-negative integer, got ${String(numScored)}`);
  }
  if (typeof score !== 'number' || !(score >= 0)) {
    throw new RangeError(`score: expected a number ≥ 0, got ${String(score)}`);
  }
  if (numScored === 0 || score === 0) return 0;
  const log =
    scheme.name === 'dual_gumbel'
      ? logWeightedGammaSf(numScored, 1 - scheme.alpha, scheme.alpha, score)
      : logGammaSf(numScored, score);
  return Math.min(0, log);
}

/** log10 of {@link gumbelLogPValue}. */
export function gumbelLog10PValue(scheme: Scheme, numScored: number, score: number): number {
  const log = gumbelLogPValue(scheme, numScored, score);
  return log === 0 ? 0 : log / LN10;
}

/** (S − n·m) / (s·√n) with the per-token null mean m and deviation s: for comparison only. */
export function gumbelZScore(scheme: Scheme, numScored: number, score: number): number {
  assertGumbel(scheme);
  if (numScored === 0) return 0;
  const { mean, sd } = nullMoments(scheme);
  return (score - numScored * mean) / (sd * Math.sqrt(numScored));
}

/**
 * The windowed search of spec §5.3 over a tape of token scores: the same windows in the same
 * order, each with its exact tail; the best is the smallest p (the first on ties), corrected by
 * Bonferroni over the W windows searched.
 */
export function gumbelWindowScan(
  scores: Float64Array,
  scheme: Scheme,
  minWindow: number,
): {
  windowsSearched: number;
  start: number;
  length: number;
  score: number;
  log10P: number;
  log10PCorrected: number;
} {
  assertGumbel(scheme);
  const T = scores.length;
  const prefix = new Float64Array(T + 1);
  for (let i = 0; i < T; i++) prefix[i + 1] = prefix[i]! + scores[i]!;
  let best = { start: 0, length: T, score: prefix[T]!, log10P: Number.POSITIVE_INFINITY };
  const windows = forEachWindow(T, minWindow, (start, length) => {
    const score = Math.max(0, prefix[start + length]! - prefix[start]!);
    const log10P = gumbelLog10PValue(scheme, length, score);
    if (log10P < best.log10P) best = { start, length, score, log10P };
  });
  return { windowsSearched: windows, ...best, log10PCorrected: bonferroniLog10(best.log10P, windows) };
}
