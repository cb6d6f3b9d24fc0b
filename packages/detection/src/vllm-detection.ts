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
  philox4x32Into,
  type ResolvedVerdictOptions,
  type ResolvedVllmKey,
  sbwHashInt,
  type VllmDedup,
  type VllmDetector,
  vllmUniform,
  zScore,
} from '@tracemark/core';
import { InputError } from './errors.ts';
import type { ForeignUnits, PackedForeignDocument, PackedForeignUnits } from './foreign.ts';
import { checkedIds, mulHigh32, packedUnitsOf, TupleOffsetSet } from './packed-units.ts';
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
   * {@link units} packed in words (`ForeignKeyScorer.packedUnits`): the context's ids (−1 as
   * 0xFFFFFFFF) then the token; for sbw the seed's high and low halves then the token.
   */
  packedUnits?(ids: ArrayLike<number>, prompt?: ArrayLike<number>): PackedForeignDocument;
  /**
   * Exact log10 P(S ≥ `score`) under the null for `count` distinct units (spec §6): Gamma(n, 1) for
   * gumbel, the weighted-Gamma tail for dual_key_gumbel, Bin(n, γ₀) for red_green and sbw.
   */
  tail(score: number, count: number): number;
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
  const pack = vllmPacking(detector, units);
  return Object.freeze({
    key,
    schemeName: `vllm:${key.scheme}` as VllmSchemeName,
    nullGreenProbability,
    verdictOptions,
    score,
    units,
    tail,
    ...(pack === null ? {} : { unitWidth: pack.unitWidth, packedUnits: packedUnitsOf(pack.units) }),
  });
}

/** Words of the widest unit a packing may have (CorpusScorer's limit). */
const MAX_UNIT_WIDTH = 16;
/** vLLM's token ids are below 2^31 (its PRFs read them as int64; the core refuses larger ones). */
const TOKEN_LIMIT = 2 ** 31;
const INT31_MAX = 0x7fffffff;
/** The domain words of vLLM's `philox` PRF (docs/spec/foreign-vllm.md §5.1). */
const CONTEXT_DOMAIN = 0x574d4358;
const TOKEN_DOMAIN = 0x574d544b;

/**
 * The packed units of a key ({@link VllmKeyScorer.packedUnits}): `units` with the same `strict`
 * deduplication, each position's value computed without a record per position (the core's
 * `scoreToken` only for the HMAC PRF, where the HMAC is the cost). Null for a context wider than 15
 * tokens outside sbw, whose key does not fit in 16 words.
 *
 * Packing. gumbel, dual_key_gumbel, red_green: the key `${context}|${token}` is the context's w ids
 * (−1 before the sequence starts) and the token; as words, each id as itself and −1 as 0xFFFFFFFF,
 * which no id (< 2^31) is, then the token: w + 1 words, the same w for every sequence of a key, so
 * equal words are equal ids and equal keys. sbw: the key `${seed}:${token}`, the signed 64-bit seed
 * as its two's-complement high and low words, then the token.
 */
function vllmPacking(
  detector: VllmDetector,
  units: (ids: ArrayLike<number>) => ForeignUnits,
): { readonly unitWidth: number; readonly units: (ids: ArrayLike<number>) => PackedForeignUnits } | null {
  const key = detector.key;
  const width = key.contextWidth;
  if (key.scheme === 'sbw') {
    const seedOf = sbwSeeds(key);
    const threshold = Math.floor(key.gamma! * INT31_MAX);
    const block = new Uint32Array(4);
    return {
      unitWidth: 3,
      units(given: ArrayLike<number>): PackedForeignUnits {
        const ids = checkedIds(given, TOKEN_LIMIT, units);
        const n = ids.length;
        const padded = paddedIds(ids, width);
        const contexts = new TupleOffsetSet(padded, width, n);
        const words = new Uint32Array(3 * n);
        const values = new Float64Array(n);
        // (seed high, seed low, token) of the units so far: strict dedup's second set
        const seeds = new TupleOffsetSet(words, 3, n);
        let count = 0;
        for (let position = 0; position < n; position++) {
          if (contexts.add(position)) continue;
          const token = padded[width + position]!;
          seedOf(padded, position, token);
          const at = 3 * count;
          words[at] = seedHi;
          words[at + 1] = seedLo;
          words[at + 2] = token;
          if (seeds.add(at)) continue;
          // sbwWord: counter (token ≫ 2, 0, 0, 0), key (seed low, seed high); green below the threshold
          philox4x32Into(block, token >>> 2, 0, 0, 0, seedLo >>> 0, seedHi >>> 0);
          values[count++] = (block[token & 3]! & INT31_MAX) < threshold ? 1 : 0;
        }
        return { words: words.subarray(0, 3 * count), values: values.subarray(0, count) };
      },
    };
  }
  if (width + 1 > MAX_UNIT_WIDTH) return null;
  const valueOfPair = pairValue(detector);
  const unitWidth = width + 1;
  return {
    unitWidth,
    units(given: ArrayLike<number>): PackedForeignUnits {
      const ids = checkedIds(given, TOKEN_LIMIT, units);
      const n = ids.length;
      const padded = paddedIds(ids, width);
      const contexts = new TupleOffsetSet(padded, width, n);
      const words = new Uint32Array(unitWidth * n);
      const values = new Float64Array(n);
      let count = 0;
      for (let position = 0; position < n; position++) {
        // A context seen before is skipped; the first is its (context, token) unit, which is thus new.
        if (contexts.add(position)) continue;
        const at = unitWidth * count;
        for (let i = 0; i <= width; i++) words[at + i] = padded[position + i]!;
        values[count++] = valueOfPair(padded, position, padded[width + position]!);
      }
      return { words: words.subarray(0, unitWidth * count), values: values.subarray(0, count) };
    },
  };
}

/** The ids after `width` −1s: the context of position p is `padded[p … p + width)`, its token `padded[p + width]`. */
function paddedIds(ids: ArrayLike<number>, width: number): Int32Array {
  const padded = new Int32Array(width + ids.length).fill(-1, 0, width);
  padded.set(ids, width);
  return padded;
}

/** A pair's value (the core's `score`) from its context `padded[at … at + w)` and its token. */
type PairValue = (padded: Int32Array, at: number, token: number) => number;

/** The value of a (context, token) pair for gumbel, dual_key_gumbel and red_green, as the core scores it. */
function pairValue(detector: VllmDetector): PairValue {
  const key = detector.key;
  const width = key.contextWidth;
  if (key.prf !== 'philox') {
    // HMAC: the core's keyed hash, one call per pair.
    const context = new Array<number>(width);
    return (padded, at, token) => {
      for (let i = 0; i < width; i++) context[i] = padded[at + i]!;
      return detector.scoreToken(context, token).score;
    };
  }
  if (key.scheme === 'dual_key_gumbel') {
    const wordA = philoxWord(key.keyA!, width);
    const wordB = philoxWord(key.keyB!, width);
    const alpha = key.alpha!;
    return (padded, at, token) => {
      const uniformA = vllmUniform(wordA(padded, at, token));
      const uniformB = vllmUniform(wordB(padded, at, token));
      // the core's float64 dot product with [1 − α, α], in its order
      return -Math.log1p(-uniformA) * (1 - alpha) + -Math.log1p(-uniformB) * alpha;
    };
  }
  const word = philoxWord(key.engineKey, width);
  if (key.scheme === 'red_green') {
    const threshold = Math.fround(key.gamma!);
    return (padded, at, token) => (vllmUniform(word(padded, at, token)) < threshold ? 1 : 0);
  }
  return (padded, at, token) => -Math.log1p(-vllmUniform(word(padded, at, token)));
}

/**
 * vLLM's `philox` PRF word of a pair (the core's `vllmPhiloxWord`, stream 0): the context folded
 * four ids at a time, then the token's block, word token & 3 (docs/spec/foreign-vllm.md §5.1).
 */
function philoxWord(engineKey: bigint, width: number): PairValue {
  const k0 = Number(engineKey & 0xffffffffn);
  const k1 = Number(engineKey >> 32n);
  const state = new Uint32Array(4);
  return (padded, at, token) => {
    state[0] = CONTEXT_DOMAIN;
    state[1] = width;
    state[2] = 0;
    state[3] = 0;
    for (let offset = 0; offset < width; offset += 4) {
      const w0 = padded[at + offset]! >>> 0;
      const w1 = offset + 1 < width ? padded[at + offset + 1]! >>> 0 : 0xffffffff - 1;
      const w2 = offset + 2 < width ? padded[at + offset + 2]! >>> 0 : 0xffffffff - 2;
      const w3 = offset + 3 < width ? padded[at + offset + 3]! >>> 0 : 0xffffffff - 3;
      philox4x32Into(state, state[0]! ^ w0, state[1]! ^ w1, state[2]! ^ w2, state[3]! ^ w3, k0 ^ offset, k1);
    }
    const word = token >>> 0;
    const s3 = state[3]!;
    philox4x32Into(state, word >>> 2, state[0]!, state[1]!, state[2]!, k0 ^ s3, k1 ^ TOKEN_DOMAIN);
    return state[word & 3]!;
  };
}

// The last 64-bit product and sbw seed, as int32 halves: numbers, no allocation per position.
let productHi = 0;
let productLo = 0;
let seedHi = 0;
let seedLo = 0;

/** (a · b) mod 2^64 of two 64-bit values given as int32 halves, into productHi / productLo. */
function mulInt64(aHi: number, aLo: number, bHi: number, bLo: number): void {
  productLo = Math.imul(aLo, bLo);
  productHi = (mulHigh32(aLo >>> 0, bLo >>> 0) + Math.imul(aLo, bHi) + Math.imul(aHi, bLo)) | 0;
}

/**
 * The sbw seed of a pair (the core's `sbwSeed`) into seedHi / seedLo: selfhash min over the context
 * (its first id aside) and the token of K·h(id)·h(token), signed; lefthash K·Σ h(id) (`detector`
 * seeds) or K·Σ id (`generator`), products wrapped to 64 bits.
 */
function sbwSeeds(key: ResolvedVllmKey): (padded: Int32Array, at: number, token: number) => void {
  const width = key.contextWidth;
  const unsigned = BigInt.asUintN(64, key.engineKey);
  const keyHi = Number(unsigned >> 32n) | 0;
  const keyLo = Number(unsigned & 0xffffffffn) | 0;
  if (key.sbwScheme === 'selfhash') {
    return (padded, at, token) => {
      const hv = sbwHashInt(token);
      mulInt64(keyHi, keyLo, hv >> 31, hv);
      const kvHi = productHi;
      const kvLo = productLo;
      mulInt64(kvHi, kvLo, hv >> 31, hv);
      seedHi = productHi;
      seedLo = productLo;
      for (let i = 1; i < width; i++) {
        const h = sbwHashInt(padded[at + i]!);
        mulInt64(kvHi, kvLo, h >> 31, h);
        if (productHi < seedHi || (productHi === seedHi && productLo >>> 0 < seedLo >>> 0)) {
          seedHi = productHi;
          seedLo = productLo;
        }
      }
    };
  }
  const hashed = key.sbwLefthashSeeds !== 'generator';
  return (padded, at) => {
    // |Σ| < 2^31 · 4096: exact in a double, and its own 64-bit value
    let sum = 0;
    for (let i = 0; i < width; i++) sum += hashed ? sbwHashInt(padded[at + i]!) : padded[at + i]!;
    const sumHi = Math.floor(sum / 0x100000000);
    mulInt64(keyHi, keyLo, sumHi | 0, (sum - sumHi * 0x100000000) | 0);
    seedHi = productHi;
    seedLo = productLo;
  };
}
