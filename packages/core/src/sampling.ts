/**
 * Watermarked generation (spec §7): the logits processor and an exact sampler that evaluates green
 * membership lazily.
 */
import type { RandomSource } from './random.ts';
import type { Watermarker } from './watermarker.ts';

/** A sparse set of candidates: token ids and their logits. */
export interface SparseLogits {
  readonly ids: Uint32Array;
  readonly logits: Float32Array;
}

export type Logits = Float32Array | SparseLogits;

function isSparse(logits: Logits): logits is SparseLogits {
  return !(logits instanceof Float32Array);
}

function assertLogits(logits: Logits): void {
  if (logits instanceof Float32Array) return;
  if (
    logits === null ||
    typeof logits !== 'object' ||
    !(logits.ids instanceof Uint32Array) ||
    !(logits.logits instanceof Float32Array)
  ) {
    throw new TypeError('logits: expected a Float32Array or { ids: Uint32Array, logits: Float32Array }');
  }
  if (logits.ids.length !== logits.logits.length) {
    throw new RangeError('logits: ids and logits must have the same length');
  }
}

/**
 * Writes ℓ'_x = ℓ_x + δ·green(x) into `out` (which may be `logits.logits` or the dense array itself
 * for in-place use). O(V) membership tests for LeftHash and SelfHash alike: SelfHash ranks are
 * cached per token, so each candidate costs a constant number of PRF calls.
 */
export function watermarkLogitsInto<T extends Float32Array>(
  watermarker: Watermarker,
  context: ArrayLike<number>,
  logits: Logits,
  out: T,
): T {
  assertLogits(logits);
  const values = isSparse(logits) ? logits.logits : logits;
  if (out.length !== values.length) throw new RangeError('out: expected the same length as the logits');
  const test = watermarker.candidateTester(context);
  const delta = watermarker.scheme.delta;
  if (out !== values) out.set(values);
  if (isSparse(logits)) {
    const ids = logits.ids;
    for (let i = 0; i < ids.length; i++) if (test(ids[i]!) === 1) out[i] = out[i]! + delta;
  } else {
    for (let x = 0; x < values.length; x++) if (test(x) === 1) out[x] = out[x]! + delta;
  }
  return out;
}

/** Returns watermarked logits without touching the input. */
export function watermarkLogits(
  watermarker: Watermarker,
  context: ArrayLike<number>,
  logits: Float32Array,
): Float32Array;
export function watermarkLogits(
  watermarker: Watermarker,
  context: ArrayLike<number>,
  logits: SparseLogits,
): SparseLogits;
export function watermarkLogits(
  watermarker: Watermarker,
  context: ArrayLike<number>,
  logits: Logits,
): Logits {
  assertLogits(logits);
  if (isSparse(logits)) {
    const out = new Float32Array(logits.logits.length);
    watermarkLogitsInto(watermarker, context, logits, out);
    return { ids: logits.ids.slice(), logits: out };
  }
  return watermarkLogitsInto(watermarker, context, logits, new Float32Array(logits.length));
}

export interface SampleOptions {
  /** 0 is greedy; default 1. */
  readonly temperature?: number;
  /** Keep the k most likely candidates (0: all). */
  readonly topK?: number;
  /** Keep the smallest set of candidates whose probability reaches p (1: all). */
  readonly topP?: number;
  /** Watermark to apply; null samples without one. */
  readonly watermarker?: Watermarker | null;
  /** Token ids never to sample (e.g. special tokens). */
  readonly bannedTokens?: ReadonlySet<number>;
}

export interface SampleResult {
  readonly token: number;
  /** Membership tests spent on this step (lazy evaluation). */
  readonly membershipTests: number;
}

/** Largest e^{δ/T} for which rejection sampling is used; above it, Gumbel-max. */
const REJECTION_LIMIT = 64;

/**
 * Samples one token from q(x) ∝ exp(ℓ'_x / T) over the candidates kept by top-k / top-p of the
 * unbiased distribution, exactly, testing green membership lazily (spec §7).
 */
export function sampleToken(
  logits: Logits,
  context: ArrayLike<number>,
  random: RandomSource,
  options: SampleOptions = {},
): SampleResult {
  assertLogits(logits);
  const temperature = options.temperature ?? 1;
  const topK = options.topK ?? 0;
  const topP = options.topP ?? 1;
  if (typeof temperature !== 'number' || !(temperature >= 0) || !Number.isFinite(temperature)) {
    throw new RangeError(`temperature: expected a finite number ≥ 0, got ${String(temperature)}`);
  }
  if (!Number.isInteger(topK) || topK < 0)
    throw new RangeError(`topK: expected an integer ≥ 0, got ${String(topK)}`);
  if (typeof topP !== 'number' || !(topP > 0 && topP <= 1)) {
    throw new RangeError(`topP: expected a number in (0, 1], got ${String(topP)}`);
  }
  const values = isSparse(logits) ? logits.logits : logits;
  const ids = isSparse(logits) ? logits.ids : null;
  const tokenAt = (i: number): number => (ids === null ? i : ids[i]!);
  const banned = options.bannedTokens;

  // Candidate indices kept by top-k / top-p, over finite logits.
  let kept: Int32Array | null = null;
  let maxLogit = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (v > maxLogit && !(banned?.has(tokenAt(i)) ?? false)) maxLogit = v;
  }
  if (maxLogit === Number.NEGATIVE_INFINITY) throw new RangeError('logits: no candidate has a finite logit');
  if (topK > 0 || topP < 1 || banned !== undefined)
    kept = keptCandidates(values, tokenAt, temperature, topK, topP, banned);
  const count = kept === null ? values.length : kept.length;
  const indexAt = (j: number): number => (kept === null ? j : kept[j]!);

  const watermarker = options.watermarker ?? null;
  const test = watermarker === null ? null : watermarker.candidateTester(context);
  const delta = watermarker === null ? 0 : watermarker.scheme.delta;
  let tests = 0;
  const greenOf = (index: number): number => {
    if (test === null) return 0;
    tests++;
    return test(tokenAt(index)) === 1 ? 1 : 0;
  };

  if (temperature === 0) {
    // Greedy: only candidates within δ of the best can win.
    let best = -1;
    let bestScore = Number.NEGATIVE_INFINITY;
    for (let j = 0; j < count; j++) {
      const index = indexAt(j);
      const v = values[index]!;
      if (v + delta < maxLogit || v + delta <= bestScore) continue;
      const score = v + delta * greenOf(index);
      if (score > bestScore) {
        bestScore = score;
        best = index;
      }
    }
    return { token: tokenAt(best), membershipTests: tests };
  }

  const cumulative = new Float64Array(count);
  let total = 0;
  for (let j = 0; j < count; j++) {
    total += Math.exp((values[indexAt(j)]! - maxLogit) / temperature);
    cumulative[j] = total;
  }
  const draw = (): number => {
    const target = random.nextFloat() * total;
    let lo = 0;
    let hi = count - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cumulative[mid]! > target) hi = mid;
      else lo = mid + 1;
    }
    return indexAt(lo);
  };
  const boost = delta / temperature;
  if (test === null || delta === 0) return { token: tokenAt(draw()), membershipTests: tests };

  if (Math.exp(boost) <= REJECTION_LIMIT) {
    const acceptRed = Math.exp(-boost);
    for (let trial = 0; trial < 100_000; trial++) {
      const index = draw();
      if (greenOf(index) === 1 || random.nextFloat() < acceptRed) {
        return { token: tokenAt(index), membershipTests: tests };
      }
    }
  }
  // Gumbel-max: argmax of ℓ/T + δ·g/T + G over kept candidates; only those within δ/T of the top can win.
  const perturbed = new Float64Array(count);
  let top = Number.NEGATIVE_INFINITY;
  for (let j = 0; j < count; j++) {
    const gumbel = -Math.log(-Math.log(random.nextFloat() || Number.MIN_VALUE));
    const key = (values[indexAt(j)]! - maxLogit) / temperature + gumbel;
    perturbed[j] = key;
    if (key > top) top = key;
  }
  let best = -1;
  let bestScore = Number.NEGATIVE_INFINITY;
  for (let j = 0; j < count; j++) {
    const key = perturbed[j]!;
    if (key + boost < top || key + boost <= bestScore) continue;
    const score = key + boost * greenOf(indexAt(j));
    if (score > bestScore) {
      bestScore = score;
      best = indexAt(j);
    }
  }
  return { token: tokenAt(best), membershipTests: tests };
}

function keptCandidates(
  values: Float32Array,
  tokenAt: (i: number) => number,
  temperature: number,
  topK: number,
  topP: number,
  banned: ReadonlySet<number> | undefined,
): Int32Array {
  const candidates: number[] = [];
  for (let i = 0; i < values.length; i++) {
    if (values[i]! > Number.NEGATIVE_INFINITY && !(banned?.has(tokenAt(i)) ?? false)) candidates.push(i);
  }
  if (topK === 0 && topP >= 1) return Int32Array.from(candidates);
  candidates.sort((a, b) => values[b]! - values[a]! || a - b);
  let keep = topK > 0 ? Math.min(topK, candidates.length) : candidates.length;
  if (topP < 1 && temperature > 0) {
    const max = values[candidates[0]!]!;
    let total = 0;
    const weights = new Float64Array(keep);
    for (let j = 0; j < keep; j++)
      total += weights[j] = Math.exp((values[candidates[j]!]! - max) / temperature);
    let running = 0;
    for (let j = 0; j < keep; j++) {
      running += weights[j]!;
      if (running >= topP * total) {
        keep = j + 1;
        break;
      }
    }
  }
  return Int32Array.from(candidates.slice(0, keep));
}
