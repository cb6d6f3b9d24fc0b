/** Seeds (spec §4), green membership (spec §3) and Gumbel uniforms (watermark-gumbel §3) for one key. */
import { gumbelScore, gumbelUniform } from './gumbel.ts';
import { deriveGumbelPrfKeys, derivePrfKeys, type WatermarkKey } from './keys.ts';
import { type BatchResult, computeBatch, computePrfs, PRF_UNITS } from './prf-batch.ts';
import type { Scheme, SchemeFamily } from './scheme.ts';
import { createSipHasher, type SipHasher } from './siphash.ts';

const MAX_TOKEN_ID = 0xffffffff;

export interface WatermarkerOptions {
  /** Token ids that are never scored nor biased and break windows (spec §6). */
  readonly specialTokenIds?: Iterable<number>;
  /** Compute batches in WebAssembly when available (default true); false forces the scalar path. */
  readonly accelerate?: boolean;
}

/**
 * A key bound to its scheme: computes seeds and green bits. Seeds are 64-bit values carried as
 * two 32-bit halves in an output array, so the hot path allocates nothing.
 */
export interface Watermarker {
  readonly keyId: string;
  readonly key: WatermarkKey;
  readonly scheme: Scheme;
  /** `scheme.family`: `green-list` (LeftHash, SelfHash) or `gumbel`. */
  readonly family: SchemeFamily;
  readonly specialTokenIds: ReadonlySet<number>;
  /** True when `token` is a special token. */
  isSpecial(token: number): boolean;
  /**
   * Computes the seed of position `index` of `tokens` into `out[0]` (high) and `out[1]` (low).
   * Returns false when the position is not eligible (no full window, or a special token).
   */
  seedAt(tokens: ArrayLike<number>, index: number, out: Uint32Array): boolean;
  /** green(s, t) of spec §3.2. Throws TypeError for a Gumbel key (it has no green list). */
  isGreen(seedHigh: number, seedLow: number, token: number): boolean;
  /**
   * Green test for a candidate next token after `context` (generation). Returns a function that
   * answers 1 (green), 0 (red) or -1 (no bias: the position would not be eligible).
   * Throws TypeError for a Gumbel key: it is sampled by {@link sampleToken}'s keyed choice, not biased.
   */
  candidateTester(context: ArrayLike<number>): (candidate: number) => number;
  /**
   * The seed of the position after `context` into `out` (high, low), when it does not depend on the
   * candidate (LeftHash and the Gumbel schemes). False when that position is not eligible (short
   * context, a special token in the window) and always for SelfHash.
   */
  contextSeed(context: ArrayLike<number>, out: Uint32Array): boolean;
  /**
   * Gumbel schemes: the uniform u of (seed, token) under key A (`key` 0, the only key of `gumbel`) or
   * key B (1, `dual_gumbel`), watermark-gumbel §3.1. Throws TypeError for a green-list key.
   */
  uniform(seedHigh: number, seedLow: number, token: number, key?: 0 | 1): number;
  /**
   * Gumbel schemes: the token's score, −ln(1 − u_A), or (1 − α)·(−ln(1 − u_A)) + α·(−ln(1 − u_B))
   * for `dual_gumbel` (watermark-gumbel §5). Throws TypeError for a green-list key.
   */
  tokenScore(seedHigh: number, seedLow: number, token: number): number;
  /**
   * Gumbel schemes: {@link tokenScore} of `count` units at once into `out[0 … count)`, each unit three
   * words of `units` (seed low, seed high, token); in WebAssembly when available, with the same
   * values. Throws TypeError for a green-list key.
   */
  tokenScores(units: Uint32Array, count: number, out: Float64Array): void;
  /**
   * Seeds and green bits of positions [from, to) of `tokens` in one call (at most BATCH_POSITIONS),
   * ignoring special tokens; null when no accelerated path is available. Views are valid until the
   * next call of any watermarker. For a Gumbel key only the seeds are meaningful.
   */
  batch(tokens: Uint32Array, from: number, to: number): BatchResult | null;
}

/** Builds the watermarker of a key. */
export function createWatermarker(key: WatermarkKey, options: WatermarkerOptions = {}): Watermarker {
  const prf = derivePrfKeys(key.secret);
  const contextHasher = createSipHasher(prf.context);
  const greenHasher = createSipHasher(prf.green);
  const rankHasher = createSipHasher(prf.rank);
  const scheme = key.scheme;
  const width = scheme.contextWidth;
  const threshold = scheme.threshold;
  const special = new Set<number>();
  for (const id of options.specialTokenIds ?? []) {
    if (!Number.isInteger(id) || id < 0 || id > MAX_TOKEN_ID) {
      throw new RangeError(`specialTokenIds: ${String(id)} is not a token id`);
    }
    special.add(id);
  }
  let minSpecial = Number.POSITIVE_INFINITY;
  for (const id of special) minSpecial = Math.min(minSpecial, id);
  const isSpecial = (token: number): boolean => token >= minSpecial && special.has(token);

  const gumbel = scheme.family === 'gumbel';
  const notGreenList = (what: string) => (): never => {
    throw new TypeError(
      `${what}: key ${key.keyId} uses the ${scheme.name} scheme, which has no green list (sample with sampleToken, score with detect)`,
    );
  };
  const notGumbel = (what: string) => (): never => {
    throw new TypeError(
      `${what}: key ${key.keyId} uses the green-list scheme ${scheme.name}, which has no uniforms`,
    );
  };

  const isGreen = gumbel
    ? notGreenList('isGreen')
    : (seedHigh: number, seedLow: number, token: number): boolean =>
        // LE64(seed) || LE32(token): one full block, then the token and the length 12.
        greenHasher.twoBlocks(seedHigh, seedLow, 0, token, 12) >>> 0 < threshold;

  let uniform: Watermarker['uniform'] = notGumbel('uniform');
  let tokenScore: Watermarker['tokenScore'] = notGumbel('tokenScore');
  let tokenScores: Watermarker['tokenScores'] = notGumbel('tokenScores');
  if (gumbel) {
    const gumbelKeys = deriveGumbelPrfKeys(key.secret);
    const hasherA = createSipHasher(gumbelKeys.a);
    const hasherB = createSipHasher(gumbelKeys.b);
    // LE64(seed) || LE32(token), as the green test, under K_gumbel or K_gumbel_b.
    const uniformOf = (hasher: SipHasher, seedHigh: number, seedLow: number, token: number): number => {
      const high = hasher.twoBlocks(seedHigh, seedLow, 0, token, 12);
      return gumbelUniform(high, hasher.out[1]!);
    };
    uniform = (seedHigh, seedLow, token, which = 0) =>
      uniformOf(which === 1 ? hasherB : hasherA, seedHigh, seedLow, token);
    const alpha = scheme.alpha;
    tokenScore =
      scheme.name === 'dual_gumbel'
        ? (seedHigh, seedLow, token) =>
            (1 - alpha) * gumbelScore(uniformOf(hasherA, seedHigh, seedLow, token)) +
            alpha * gumbelScore(uniformOf(hasherB, seedHigh, seedLow, token))
        : (seedHigh, seedLow, token) => gumbelScore(uniformOf(hasherA, seedHigh, seedLow, token));
    const dual = scheme.name === 'dual_gumbel';
    const accelerated = options.accelerate ?? true;
    tokenScores = (units, count, out) => {
      if (3 * count > units.length || count > out.length) {
        throw new RangeError(
          `tokenScores: ${count} units do not fit ${units.length} words or ${out.length} scores`,
        );
      }
      for (let start = 0; start < count; start += PRF_UNITS) {
        const n = Math.min(PRF_UNITS, count - start);
        const block = units.subarray(3 * start, 3 * (start + n));
        const a = accelerated ? computePrfs(gumbelKeys.a, block, n) : null;
        if (a === null) {
          for (let i = 0; i < n; i++)
            out[start + i] = tokenScore(block[3 * i + 1]!, block[3 * i]!, block[3 * i + 2]!);
          continue;
        }
        // The same expressions as tokenScore, on the same 64-bit outputs.
        for (let i = 0; i < n; i++) out[start + i] = gumbelScore(gumbelUniform(a[2 * i + 1]!, a[2 * i]!));
        if (!dual) continue;
        for (let i = 0; i < n; i++) out[start + i] = (1 - alpha) * out[start + i]!;
        const b = computePrfs(gumbelKeys.b, block, n)!;
        for (let i = 0; i < n; i++)
          out[start + i] = out[start + i]! + alpha * gumbelScore(gumbelUniform(b[2 * i + 1]!, b[2 * i]!));
      }
    };
  }

  const rankCache = new RankCache(rankHasher);
  const leftSeeds = width === 1 ? new LeftSeedCache(contextHasher) : null;
  const message = new Uint8Array(1 + 4 * width);
  message[0] = 0x01;
  const messageView = new DataView(message.buffer);

  const leftSeed = (tokens: ArrayLike<number>, end: number, out: Uint32Array): void => {
    if (leftSeeds !== null) {
      leftSeeds.seed(tokens[end - 1]!, out);
      return;
    }
    for (let j = 0; j < width; j++) messageView.setUint32(1 + 4 * j, tokens[end - width + j]!, true);
    contextHasher.bytes(message);
    out[0] = contextHasher.out[0]!;
    out[1] = contextHasher.out[1]!;
  };

  const selfSeed = (anchor: number, token: number, out: Uint32Array): void => {
    // 0x02 || LE32(anchor) || LE32(token): bytes 0..7 form a block, byte 8 the tail.
    contextHasher.twoBlocks((anchor >>> 24) | (token << 8), 0x02 | (anchor << 8), 0, token >>> 24, 9);
    out[0] = contextHasher.out[0]!;
    out[1] = contextHasher.out[1]!;
  };

  let seedAt: Watermarker['seedAt'];
  let candidateTester: Watermarker['candidateTester'];
  let contextSeed: Watermarker['contextSeed'] = () => false;
  const scratch = new Uint32Array(2);

  if (scheme.name === 'lefthash' || gumbel) {
    // The Gumbel schemes seed with the LeftHash window of spec §4.1 (the h preceding tokens).
    seedAt = (tokens, index, out) => {
      if (index < width || isSpecial(tokens[index]!)) return false;
      for (let j = index - width; j < index; j++) if (isSpecial(tokens[j]!)) return false;
      leftSeed(tokens, index, out);
      return true;
    };
    contextSeed = (context, out) => {
      const end = context.length;
      if (end < width) return false;
      for (let j = end - width; j < end; j++) if (isSpecial(context[j]!)) return false;
      leftSeed(context, end, out);
      return true;
    };
    candidateTester = gumbel
      ? notGreenList('candidateTester')
      : (context) => {
          const seed = new Uint32Array(2);
          if (!contextSeed(context, seed)) return () => -1;
          const high = seed[0]!;
          const low = seed[1]!;
          return (candidate) => (isSpecial(candidate) ? -1 : isGreen(high, low, candidate) ? 1 : 0);
        };
  } else {
    seedAt = (tokens, index, out) => {
      if (index < width - 1) return false;
      let anchor = -1;
      for (let j = index - width + 1; j <= index; j++) {
        const token = tokens[j]!;
        if (isSpecial(token)) return false;
        if (anchor < 0 || rankCache.less(token, anchor)) anchor = token;
      }
      selfSeed(anchor, tokens[index]!, out);
      return true;
    };
    candidateTester = (context) => {
      const end = context.length;
      if (end < width - 1) return () => -1;
      let anchor = -1;
      for (let j = end - width + 1; j < end; j++) {
        const token = context[j]!;
        if (isSpecial(token)) return () => -1;
        if (anchor < 0 || rankCache.less(token, anchor)) anchor = token;
      }
      return (candidate) => {
        if (isSpecial(candidate)) return -1;
        const own = anchor < 0 || rankCache.less(candidate, anchor) ? candidate : anchor;
        selfSeed(own, candidate, scratch);
        return isGreen(scratch[0]!, scratch[1]!, candidate) ? 1 : 0;
      };
    };
  }

  const keyBlock = new Uint8Array(48);
  keyBlock.set(prf.context, 0);
  keyBlock.set(prf.green, 16);
  keyBlock.set(prf.rank, 32);
  const accelerate = options.accelerate ?? true;
  // The Gumbel schemes share LeftHash's seeds: the batch gives seeds (its green bits mean nothing there).
  const batchScheme = scheme.name === 'selfhash' ? 'selfhash' : 'lefthash';
  const batchThreshold = gumbel ? 1 : threshold;
  const batch = (tokens: Uint32Array, from: number, to: number): BatchResult | null =>
    accelerate ? computeBatch(keyBlock, batchScheme, width, batchThreshold, tokens, from, to) : null;

  return Object.freeze({
    keyId: key.keyId,
    family: scheme.family,
    batch,
    key,
    scheme,
    specialTokenIds: special,
    isSpecial,
    seedAt,
    isGreen,
    candidateTester,
    contextSeed,
    uniform,
    tokenScore,
    tokenScores,
  });
}

const CACHE_BITS = 16;
const CACHE_MASK = (1 << CACHE_BITS) - 1;

/** Direct-mapped cache of LeftHash(1) seeds, which depend on one token only. */
class LeftSeedCache {
  private readonly tags = new Float64Array(1 << CACHE_BITS).fill(-1);
  private readonly high = new Uint32Array(1 << CACHE_BITS);
  private readonly low = new Uint32Array(1 << CACHE_BITS);
  constructor(private readonly hasher: SipHasher) {}
  seed(token: number, out: Uint32Array): void {
    const slot = (token ^ (token >>> CACHE_BITS)) & CACHE_MASK;
    if (this.tags[slot] !== token) {
      // 0x01 || LE32(token): five bytes, a single final block.
      this.hasher.oneBlock(token >>> 24, 0x01 | (token << 8), 5);
      this.tags[slot] = token;
      this.high[slot] = this.hasher.out[0]!;
      this.low[slot] = this.hasher.out[1]!;
    }
    out[0] = this.high[slot]!;
    out[1] = this.low[slot]!;
  }
}

/** Direct-mapped cache of SelfHash token ranks. */
class RankCache {
  private readonly tags = new Float64Array(1 << CACHE_BITS).fill(-1);
  private readonly high = new Uint32Array(1 << CACHE_BITS);
  private readonly low = new Uint32Array(1 << CACHE_BITS);
  private h = 0;
  private l = 0;
  constructor(private readonly hasher: SipHasher) {}
  private load(token: number): void {
    const slot = (token ^ (token >>> CACHE_BITS)) & CACHE_MASK;
    if (this.tags[slot] !== token) {
      this.hasher.oneBlock(0, token, 4);
      this.tags[slot] = token;
      this.high[slot] = this.hasher.out[0]!;
      this.low[slot] = this.hasher.out[1]!;
    }
    this.h = this.high[slot]!;
    this.l = this.low[slot]!;
  }
  /** rank(a) < rank(b), ties broken by the smaller token id (spec §4.2). */
  less(a: number, b: number): boolean {
    if (a === b) return false;
    this.load(a);
    const ah = this.h;
    const al = this.l;
    this.load(b);
    if (ah !== this.h) return ah < this.h;
    if (al !== this.l) return al < this.l;
    return a < b;
  }
  rank(token: number, out: Uint32Array): void {
    this.load(token);
    out[0] = this.h;
    out[1] = this.l;
  }
}
