/**
 * Sampling as vLLM's native watermarking does it (vllm/v1/watermarking), from a probability vector:
 * the generation side of what `vllm.ts` reads, for experiments and tests. docs/spec/foreign-vllm.md
 * §6 describes each scheme; the PRFs, uniforms, green lists and SBW seeds are those of `vllm.ts`.
 *
 * - `gumbel`: the token is argmax_v ln p_v − ln(−ln u_v), u_v = max(u(PRF(c, v)), 2^−126)
 *   (`gumbel.py` GumbelWatermarker._sample_watermarked); no randomness.
 * - `dual_key_gumbel`: the Gumbel-max choices under keys A and B; a draw from the random sampler
 *   with probabilities (1 − α, α) picks which is emitted; α = 0 and α = 1 draw nothing
 *   (DualKeyGumbelWatermarker.sample).
 * - `red_green`: δ added to the green logits (u < fround(γ)), then the random sampler
 *   (RedGreenWatermarker.watermark_logits and sample).
 * - `sbw`: δ added to the green logits (Philox word & 0x7FFFFFFF < ⌊γ(2^31 − 1)⌋ under the seed of
 *   `sbwSeed`; lefthash seeds from the raw ids, as vLLM's generator does), then the random sampler
 *   (SBWWatermarker.bias and sample).
 *
 * The random sampler draws one uniform u_i per candidate, in order, and returns
 * argmax_i p_i / (−ln(1 − u_i)): the exponential race, which samples i with probability p_i / Σ p.
 * It is what torch.multinomial does for one sample (the sampler that vLLM's CPU path and the test
 * vectors use), so a uniform stream reproducing torch's reproduces its draws; vLLM's CUDA sampler
 * (`gumbel_sample`) draws from the same distribution with its own random stream.
 *
 * vLLM computes the Gumbel noise and the biased logits in float32; this module works in float64 from
 * probabilities, so a near-tie (keys within about 1e−7 of each other) may break the other way.
 */

import type { RandomSource } from '../random.ts';
import { philox4x32Into } from './philox.ts';
import {
  createVllmDetector,
  type ResolvedVllmKey,
  sbwSeed,
  sbwWord,
  type VllmKey,
  vllmHmacWord,
  vllmUniform,
} from './vllm.ts';

/** A vLLM watermark configuration for generation: the detector's key plus the logit bias. */
export interface VllmSamplingKey extends VllmKey {
  /** red_green (default 2, must be > 0) and sbw (default 2, ≥ 0): added to green logits. */
  delta?: number;
}

/** A distribution over token ids: dense (index = token id) or sparse with `tokenIds`. */
export interface VllmCandidates {
  /** Non-negative weights (need not sum to 1); with `tokenIds`, the weight of `tokenIds[i]`. */
  readonly probabilities: ArrayLike<number>;
  /** Distinct token ids in [0, 2^31); absent: index i is token id i. */
  readonly tokenIds?: ArrayLike<number>;
}

export interface VllmSampleOptions {
  /**
   * Nucleus mass in (0, 1], default 1. Applied where vLLM applies it: before the watermark for
   * gumbel, dual_key_gumbel and red_green (the engine samples after temperature, min-p, top-k and
   * top-p), after the bias for sbw (its serving path biases upstream of top-k and top-p). As vLLM's
   * top-p: the least probable candidates are dropped while their cumulative mass is ≤ 1 − topP;
   * at least one is kept.
   */
  readonly topP?: number;
  /**
   * The engine's generation-side context deduplication: `none` (default; the Watermarker classes)
   * or `single_turn` (the engine's default): a step whose context occurred at an earlier position
   * of `history` is sampled by the random sampler without the watermark.
   */
  readonly deduplicateContexts?: 'none' | 'single_turn';
}

export interface VllmSample {
  readonly token: number;
  /** False where generation-side deduplication sampled without the watermark. */
  readonly watermarked: boolean;
  /** dual_key_gumbel: the key whose choice was emitted (`a`, weight 1 − α; `b`, weight α); else null. */
  readonly routedKey: 'a' | 'b' | null;
}

export interface VllmSampler {
  readonly key: ResolvedVllmKey;
  /** The logit bias of red_green and sbw; null for the Gumbel schemes. */
  readonly delta: number | null;
  /** The context vLLM uses after `history`: its last `contextWidth` ids, −1 before the start. */
  contextOf(history: ArrayLike<number>): number[];
  /** red_green and sbw: 1 for each candidate in the green list after `history`, else 0. */
  greenMask(history: ArrayLike<number>, candidates: VllmCandidates): Uint8Array;
  /**
   * The distribution the scheme draws from, normalised: red_green and sbw p_v·e^{δ·green} / Z;
   * the Gumbel schemes leave it unchanged (their mark is in the choice, not the distribution).
   */
  watermarkedProbabilities(history: ArrayLike<number>, candidates: VllmCandidates): Float64Array;
  /** Samples the next token after `history` (the tokens the detector will see before it). */
  sample(
    history: ArrayLike<number>,
    candidates: VllmCandidates,
    random: RandomSource,
    options?: VllmSampleOptions,
  ): VllmSample;
}

const MASK32 = 0xffffffff;
const CONTEXT_DOMAIN = 0x574d4358;
const TOKEN_DOMAIN = 0x574d544b;
const INT31_MAX = 0x7fffffff;
const MAX_TOKEN = 2 ** 31 - 1;
/** torch.finfo(torch.float32).tiny: vLLM clamps the uniforms to it before −ln(−ln u). */
const FLOAT32_TINY = 2 ** -126;

interface Checked {
  readonly ids: Int32Array;
  readonly weights: Float64Array;
}

function checkCandidates(candidates: VllmCandidates): Checked {
  if (typeof candidates !== 'object' || candidates === null) {
    throw new TypeError('candidates: expected { probabilities, tokenIds? }');
  }
  const { probabilities, tokenIds } = candidates;
  if (
    probabilities === null ||
    typeof probabilities !== 'object' ||
    typeof probabilities.length !== 'number'
  ) {
    throw new TypeError('probabilities: expected an array of numbers');
  }
  const n = probabilities.length;
  if (n === 0) throw new RangeError('probabilities: expected at least one candidate');
  if (tokenIds !== undefined && (tokenIds === null || tokenIds.length !== n)) {
    throw new RangeError(`tokenIds: expected ${n} token ids, as many as probabilities`);
  }
  const ids = new Int32Array(n);
  const weights = new Float64Array(n);
  let total = 0;
  for (let i = 0; i < n; i++) {
    const p = probabilities[i]!;
    if (typeof p !== 'number' || !(p >= 0) || p === Number.POSITIVE_INFINITY) {
      throw new RangeError(`probabilities[${i}]: expected a finite number ≥ 0, got ${String(p)}`);
    }
    weights[i] = p;
    total += p;
    const id = tokenIds === undefined ? i : tokenIds[i]!;
    if (!Number.isInteger(id) || id < 0 || id > MAX_TOKEN) {
      throw new RangeError(`tokenIds[${i}]: expected an integer token id in [0, 2^31), got ${String(id)}`);
    }
    ids[i] = id;
  }
  if (!(total > 0)) throw new RangeError('probabilities: expected a positive total');
  if (tokenIds !== undefined && new Set(ids).size !== n)
    throw new RangeError('tokenIds: expected distinct ids');
  return { ids, weights };
}

function checkHistory(history: ArrayLike<number>): void {
  if (history === null || typeof history !== 'object' || typeof history.length !== 'number') {
    throw new TypeError('history: expected an array of token ids');
  }
  for (let i = 0; i < history.length; i++) {
    const id = history[i]!;
    if (!Number.isInteger(id) || id < 0 || id > MAX_TOKEN) {
      throw new RangeError(`history[${i}]: expected an integer token id in [0, 2^31), got ${String(id)}`);
    }
  }
}

/**
 * vLLM's `philox` PRF with the context folded once for all candidates (vllm.ts `vllmPhiloxWord`
 * folds it per call; the words are the same): (context) → (token) → word.
 */
function philoxContextPrf(key: bigint): (context: readonly number[]) => (token: number) => number {
  const k0 = Number(key & 0xffffffffn);
  const k1 = Number(key >> 32n);
  return (context) => {
    const width = context.length;
    const state = new Uint32Array([CONTEXT_DOMAIN, width, 0, 0]);
    for (let offset = 0; offset < width; offset += 4) {
      const w0 = context[offset]! >>> 0;
      const w1 = offset + 1 < width ? context[offset + 1]! >>> 0 : MASK32 - 1;
      const w2 = offset + 2 < width ? context[offset + 2]! >>> 0 : MASK32 - 2;
      const w3 = offset + 3 < width ? context[offset + 3]! >>> 0 : MASK32 - 3;
      philox4x32Into(state, state[0]! ^ w0, state[1]! ^ w1, state[2]! ^ w2, state[3]! ^ w3, k0 ^ offset, k1);
    }
    const [s0, s1, s2, s3] = state;
    const out = new Uint32Array(4);
    let block = -1;
    return (token) => {
      // Tokens 4j … 4j + 3 share one Philox call (as vLLM's kernel exploits).
      if (token >>> 2 !== block) {
        block = token >>> 2;
        philox4x32Into(out, block, s0!, s1!, s2!, k0 ^ s3!, k1 ^ TOKEN_DOMAIN);
      }
      return out[token & 3]!;
    };
  };
}

/** The Gumbel-scheme uniform source of one key: (context) → (token) → u. */
function uniformSource(
  prf: ResolvedVllmKey['prf'],
  key: bigint,
): (context: readonly number[]) => (token: number) => number {
  if (prf === 'philox') {
    const words = philoxContextPrf(key);
    return (context) => {
      const word = words(context);
      return (token) => vllmUniform(word(token));
    };
  }
  return (context) => (token) => vllmUniform(vllmHmacWord(key, context, token));
}

/** Index of the Gumbel-max choice: argmax ln p − ln(−ln u); the smaller token id on a tie. */
function gumbelChoice(checked: Checked, uniformOf: (token: number) => number, keep: Uint8Array): number {
  let best = -1;
  let bestKey = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < checked.ids.length; i++) {
    if (keep[i] === 0 || checked.weights[i] === 0) continue;
    const token = checked.ids[i]!;
    const u = Math.max(uniformOf(token), FLOAT32_TINY);
    const key = Math.log(checked.weights[i]!) - Math.log(-Math.log(u));
    if (best < 0 || key > bestKey || (key === bestKey && token < checked.ids[best]!)) {
      best = i;
      bestKey = key;
    }
  }
  return best;
}

/** The exponential race over the kept candidates: one uniform per candidate, first maximum wins. */
function raceChoice(weights: Float64Array, keep: Uint8Array, random: RandomSource): number {
  let best = -1;
  let bestRatio = -1;
  for (let i = 0; i < weights.length; i++) {
    const exponential = -Math.log1p(-random.nextFloat());
    const ratio = keep[i] === 0 ? 0 : weights[i]! / exponential;
    if (ratio > bestRatio) {
      best = i;
      bestRatio = ratio;
    }
  }
  return best;
}

/** vLLM's top-p: drop the least probable while their cumulative share is ≤ 1 − p; keep at least one. */
function topPMask(weights: Float64Array, topP: number): Uint8Array {
  const keep = new Uint8Array(weights.length).fill(1);
  if (topP >= 1) return keep;
  let total = 0;
  for (const w of weights) total += w;
  const order = Array.from(weights.keys()).sort((a, b) => weights[a]! - weights[b]! || b - a);
  let cumulative = 0;
  for (let j = 0; j < order.length - 1; j++) {
    cumulative += weights[order[j]!]! / total;
    if (cumulative > 1 - topP) break;
    keep[order[j]!] = 0;
  }
  return keep;
}

function contextSeenBefore(history: ArrayLike<number>, width: number): boolean {
  const t = history.length;
  const at = (position: number, i: number) => {
    const index = position - width + i;
    return index >= 0 ? history[index]! : -1;
  };
  for (let earlier = 0; earlier < t; earlier++) {
    let same = true;
    for (let i = 0; i < width && same; i++) same = at(earlier, i) === at(t, i);
    if (same) return true;
  }
  return false;
}

function checkDelta(scheme: ResolvedVllmKey['scheme'], delta: number | undefined): number | null {
  if (scheme === 'gumbel' || scheme === 'dual_key_gumbel') {
    if (delta !== undefined) throw new RangeError(`delta: applies to red_green and sbw, not ${scheme}`);
    return null;
  }
  const value = delta ?? 2;
  const ok =
    typeof value === 'number' && Number.isFinite(value) && (scheme === 'sbw' ? value >= 0 : value > 0);
  if (!ok) {
    throw new RangeError(
      `delta: expected a finite number ${scheme === 'sbw' ? '≥ 0' : '> 0'}, got ${String(value)}`,
    );
  }
  return value;
}

/** Builds vLLM's sampler for a watermark configuration (validated as the detector validates it). */
export function createVllmSampler(params: VllmSamplingKey): VllmSampler {
  if (typeof params !== 'object' || params === null) throw new TypeError('key: expected an object');
  const { delta: deltaParam, ...keyParams } = params;
  const key = createVllmDetector(keyParams).key;
  const delta = checkDelta(key.scheme, deltaParam);
  const width = key.contextWidth;

  const contextOf = (history: ArrayLike<number>): number[] => {
    const context = new Array<number>(width);
    for (let i = 0; i < width; i++) {
      const index = history.length - width + i;
      context[i] = index >= 0 ? history[index]! : -1;
    }
    return context;
  };

  const uniformsA =
    key.scheme === 'gumbel' || key.scheme === 'red_green'
      ? uniformSource(key.prf, key.engineKey)
      : key.scheme === 'dual_key_gumbel'
        ? uniformSource(key.prf, key.keyA!)
        : null;
  const uniformsB = key.scheme === 'dual_key_gumbel' ? uniformSource(key.prf, key.keyB!) : null;

  const greenOf = (context: readonly number[], checked: Checked): Uint8Array => {
    const green = new Uint8Array(checked.ids.length);
    if (key.scheme === 'red_green') {
      const threshold = Math.fround(key.gamma!);
      const uniformOf = uniformsA!(context);
      for (let i = 0; i < green.length; i++) green[i] = uniformOf(checked.ids[i]!) < threshold ? 1 : 0;
    } else if (key.scheme === 'sbw') {
      const threshold = Math.floor(key.gamma! * INT31_MAX);
      for (let i = 0; i < green.length; i++) {
        const token = checked.ids[i]!;
        // The generator seeds lefthash with the raw ids (sbw.py line 191), whatever the detector does.
        const seed = sbwSeed(key.engineKey, key.sbwScheme!, context, token, 'generator');
        green[i] = (sbwWord(seed, token) & INT31_MAX) < threshold ? 1 : 0;
      }
    } else {
      throw new RangeError(`greenMask: ${key.scheme} has no green list`);
    }
    return green;
  };

  /** p·e^{δ·green}, as exp(logit + δ·green) up to the normalising constant. */
  const biased = (checked: Checked, green: Uint8Array): Float64Array => {
    const factor = Math.exp(delta!);
    return checked.weights.map((w, i) => (green[i] === 1 ? w * factor : w));
  };

  return Object.freeze({
    key,
    delta,
    contextOf(history: ArrayLike<number>): number[] {
      checkHistory(history);
      return contextOf(history);
    },
    greenMask(history: ArrayLike<number>, candidates: VllmCandidates): Uint8Array {
      checkHistory(history);
      return greenOf(contextOf(history), checkCandidates(candidates));
    },
    watermarkedProbabilities(history: ArrayLike<number>, candidates: VllmCandidates): Float64Array {
      checkHistory(history);
      const checked = checkCandidates(candidates);
      const weights =
        key.scheme === 'red_green' || key.scheme === 'sbw'
          ? biased(checked, greenOf(contextOf(history), checked))
          : checked.weights;
      let total = 0;
      for (const w of weights) total += w;
      return weights.map((w) => w / total);
    },
    sample(
      history: ArrayLike<number>,
      candidates: VllmCandidates,
      random: RandomSource,
      options: VllmSampleOptions = {},
    ): VllmSample {
      checkHistory(history);
      const checked = checkCandidates(candidates);
      if (random === null || typeof random !== 'object' || typeof random.nextFloat !== 'function') {
        throw new TypeError('random: expected a RandomSource');
      }
      const topP = options.topP ?? 1;
      if (typeof topP !== 'number' || !(topP > 0 && topP <= 1)) {
        throw new RangeError(`topP: expected a number in (0, 1], got ${String(topP)}`);
      }
      const dedup = options.deduplicateContexts ?? 'none';
      if (dedup !== 'none' && dedup !== 'single_turn') {
        throw new RangeError('deduplicateContexts: expected none or single_turn');
      }
      const context = contextOf(history);
      const plain = dedup === 'single_turn' && contextSeenBefore(history, width);
      if (key.scheme === 'sbw') {
        // Serving path: bias, then top-p, then the random sampler.
        const weights = plain ? checked.weights : biased(checked, greenOf(context, checked));
        const chosen = raceChoice(weights, topPMask(weights, topP), random);
        return Object.freeze({ token: checked.ids[chosen]!, watermarked: !plain, routedKey: null });
      }
      const keep = topPMask(checked.weights, topP);
      if (plain) {
        const chosen = raceChoice(checked.weights, keep, random);
        return Object.freeze({ token: checked.ids[chosen]!, watermarked: false, routedKey: null });
      }
      if (key.scheme === 'red_green') {
        const chosen = raceChoice(biased(checked, greenOf(context, checked)), keep, random);
        return Object.freeze({ token: checked.ids[chosen]!, watermarked: true, routedKey: null });
      }
      if (key.scheme === 'gumbel') {
        const chosen = gumbelChoice(checked, uniformsA!(context), keep);
        return Object.freeze({ token: checked.ids[chosen]!, watermarked: true, routedKey: null });
      }
      const alpha = key.alpha!;
      let routedKey: 'a' | 'b';
      if (alpha === 0) routedKey = 'a';
      else if (alpha === 1) routedKey = 'b';
      else {
        // vLLM's random sampler over the routing logits log(1 − α), log(α): index 0 is key A.
        const routing = raceChoice(Float64Array.of(1 - alpha, alpha), Uint8Array.of(1, 1), random);
        routedKey = routing === 0 ? 'a' : 'b';
      }
      const chosen = gumbelChoice(checked, (routedKey === 'a' ? uniformsA! : uniformsB!)(context), keep);
      return Object.freeze({ token: checked.ids[chosen]!, watermarked: true, routedKey });
    },
  });
}
