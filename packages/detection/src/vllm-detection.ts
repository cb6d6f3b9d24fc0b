/**
 * Scoring one vLLM key on a token sequence, with the numbers `tracemark detect` reports and the
 * verdict rule of docs/spec/foreign-vllm.md §10.
 */
import {
  createVllmDetector,
  DEFAULT_MISS_RATE,
  log10BinomialSf,
  log10GammaSf,
  log10WeightedGammaSf,
  log10WeightedGammaSfLowerBound,
  MAX_PACKED_UNIT_WIDTH,
  type ResolvedVerdictOptions,
  type VllmDedup,
  type VllmDetector,
  zScore,
} from '@tracemark/core';
import { InputError } from './errors.ts';
import type { ForeignUnits, PackedForeignDocument } from './foreign.ts';
import { strictPacking } from './packed-units.ts';
import { type VllmSchemeName, type VllmWatermarkKey, vllmDetectorParams } from './vllm-keys.ts';

export interface VllmKeyScore {
  readonly numTokens: number;
  readonly numScored: number;
  /** vLLM's score S: Σ −ln(1 − u) (gumbel), the weighted sum (dual key), the green count (red_green, sbw). */
  readonly score: number;
  /** The green count for red_green and sbw; null for the Gumbel schemes, which have no green tokens. */
  readonly numGreen: number | null;
  readonly greenFraction: number | null;
  /** (S − n·mean) / (sd·√n) under the null; for comparison only. */
  readonly z: number;
  /** Exact log10 p-value (spec §6). */
  readonly log10P: number;
  /** vLLM's own p-value formula, in log10. */
  readonly peerLog10P: number;
}

export interface VllmKeyScorer {
  readonly key: VllmWatermarkKey;
  readonly schemeName: VllmSchemeName;
  /** Probability that a token is green under the null (red_green, sbw); null for the Gumbel schemes. */
  readonly nullGreenProbability: number | null;
  /** α, β and the alternative g₁ (null for Gumbel schemes and δ = 0: never `not_watermarked`). */
  readonly verdictOptions: ResolvedVerdictOptions;
  score(ids: ArrayLike<number>, dedup: VllmDedup): VllmKeyScore;
  /**
   * The scored units of a token sequence for corpus-wide tests, after its `strict` deduplication (the
   * positions `score(ids, 'strict')` scores, in order): keyed by the PRF input that decides the score,
   * the (context, token) pair for gumbel, dual_key_gumbel and red_green, the (seed, token) pair for sbw.
   */
  units(ids: ArrayLike<number>): ForeignUnits;
  /**
   * Words per unit of {@link packedUnits}: the context width + 1 (gumbel, dual_key_gumbel, red_green),
   * 3 (sbw). Absent with {@link packedUnits} where a context of more than 15 tokens does not fit.
   */
  readonly unitWidth?: number;
  /**
   * {@link units} packed in words (`ForeignKeyScorer.packedUnits`), the core's `strictUnits`: the
   * context's ids (−1 as 0xFFFFFFFF) then the token; for sbw the seed's high and low halves then the token.
   */
  packedUnits?(ids: ArrayLike<number>, prompt?: ArrayLike<number>): PackedForeignDocument;
  /**
   * Exact log10 P(S ≥ `score`) under the null for `count` distinct units (spec §6): Gamma(n, 1) for
   * gumbel, the weighted-Gamma tail for dual_key_gumbel, Bin(n, γ₀) for red_green and sbw.
   */
  tail(score: number, count: number): number;
  /**
   * dual_key_gumbel only, whose exact tail sums a mixture of thousands of Gamma tails: a lower bound on
   * {@link tail} from a few Gamma tails (the core's `log10WeightedGammaSfLowerBound`).
   */
  readonly tailLowerBound?: (score: number, count: number) => number;
}

/**
 * g₁ of spec §10: for red_green and sbw halfway between the null green probability γ₀ and the
 * green fraction that δ gives at high entropy, γ₀e^δ / (1 + γ₀(e^δ − 1)), as tracemark's own keys;
 * null for δ = 0 and for the Gumbel schemes, whose score under the mark depends on the model's
 * entropy, which no key parameter bounds.
 */
export function vllmAlternative(nullGreenProbability: number | null, delta: number | null): number | null {
  if (nullGreenProbability === null || delta === null) return null;
  const e = Math.exp(delta);
  const biased = (nullGreenProbability * e) / (1 + nullGreenProbability * (e - 1));
  const alternative = nullGreenProbability + (biased - nullGreenProbability) / 2;
  return alternative > nullGreenProbability && alternative < 1 ? alternative : null;
}

/** Builds the scorer of a vLLM key at target false-positive rate `fpr`. */
export function createVllmKeyScorer(key: VllmWatermarkKey, fpr: number): VllmKeyScorer {
  let detector: VllmDetector;
  try {
    detector = createVllmDetector(vllmDetectorParams(key));
  } catch {
    // The core's message can hold the engine key; the key was validated when it was made.
    throw new InputError('TM_ERR_KEY_FILE', `key ${key.keyId}: parameters vLLM does not accept`);
  }
  const nullGreenProbability = detector.key.nullGreenProbability;
  const variance = key.alpha === null ? 1 : (1 - key.alpha) ** 2 + key.alpha ** 2;
  const verdictOptions: ResolvedVerdictOptions = {
    fpr,
    missRate: DEFAULT_MISS_RATE,
    alternative: vllmAlternative(nullGreenProbability, key.delta),
  };
  const score = (ids: ArrayLike<number>, dedup: VllmDedup): VllmKeyScore => {
    const detection = detector.detect(ids, { dedup });
    const n = detection.numScored;
    const binary = nullGreenProbability !== null;
    const numGreen = binary ? Math.round(detection.score) : null;
    return {
      numTokens: ids.length,
      numScored: n,
      score: detection.score,
      numGreen,
      greenFraction: numGreen === null ? null : n === 0 ? 0 : numGreen / n,
      z:
        n === 0
          ? 0
          : binary
            ? zScore(numGreen!, n, nullGreenProbability)
            : (detection.score - n) / Math.sqrt(n * variance),
      log10P: detection.log10PValue,
      peerLog10P: detection.peerLog10PValue,
    };
  };
  const units = (ids: ArrayLike<number>): ForeignUnits => {
    let scored: ReturnType<VllmDetector['scoreTokens']>;
    try {
      scored = detector.scoreTokens(ids);
    } catch (error) {
      // The core names the position and the id; it never sees the key here.
      if (error instanceof RangeError || error instanceof TypeError) {
        throw new InputError('TM_ERR_INVALID_TOKENS', error.message);
      }
      throw error;
    }
    // The `strict` rule of detect (spec §3): a context seen before is skipped; for sbw also a (seed, token) pair.
    const seenContexts = new Set<string>();
    const seenSeeds = new Set<string>();
    const keys: string[] = [];
    const values: number[] = [];
    const positions: number[] = [];
    for (const position of scored) {
      const context = position.context.join(',');
      if (seenContexts.has(context)) continue;
      seenContexts.add(context);
      let unit: string;
      if (position.seed === null) unit = `${context}|${position.token}`;
      else {
        unit = `${position.seed}:${position.token}`;
        if (seenSeeds.has(unit)) continue;
        seenSeeds.add(unit);
      }
      keys.push(unit);
      values.push(position.score);
      positions.push(position.position);
    }
    return { keys, values: Float64Array.from(values), positions: Uint32Array.from(positions) };
  };
  const tail = (total: number, count: number): number => {
    if (!Number.isInteger(count) || count < 0) {
      throw new RangeError(`count: expected a non-negative integer, got ${String(count)}`);
    }
    if (count === 0 || !(total > 0)) return 0;
    if (nullGreenProbability !== null) {
      return Math.min(0, log10BinomialSf(Math.round(total), count, nullGreenProbability));
    }
    if (key.alpha === null) return Math.min(0, log10GammaSf(count, total));
    return Math.min(0, log10WeightedGammaSf(count, 1 - key.alpha, key.alpha, total));
  };
  const dualAlpha = key.alpha;
  const bounds =
    dualAlpha === null
      ? {}
      : {
          tailLowerBound: (total: number, count: number): number =>
            count === 0 || !(total > 0)
              ? 0
              : log10WeightedGammaSfLowerBound(count, 1 - dualAlpha, dualAlpha, total),
        };
  // The core's strictUnits, the loop of detect(…, 'strict'); a context over 15 ids does not fit 16 words.
  const packing = strictPacking(units, (ids) => detector.strictUnits(ids));
  return Object.freeze({
    key,
    schemeName: `vllm:${key.scheme}` as VllmSchemeName,
    nullGreenProbability,
    verdictOptions,
    score,
    units,
    tail,
    ...bounds,
    ...(packing.unitWidth <= MAX_PACKED_UNIT_WIDTH ? packing : {}),
  });
}
