/**
 * Reading the watermarks that vLLM's native watermarking (vllm/v1/watermarking) embeds.
 *
 * Bit-exact with vLLM's CPU reference path for the schemes `gumbel`, `dual_key_gumbel`,
 * `red_green` and `sbw` and the PRFs `philox` and `hmac-sha256-v1`; docs/spec/foreign-vllm.md
 * describes every byte and names the vLLM files and commits. Detection reports two p-values:
 * `peerLog10PValue`, vLLM's own formula evaluated in log space (equal to vLLM's number wherever
 * vLLM's double does not underflow), and `log10PValue`, the exact tail under the scheme's null.
 */

import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { logBinomialSf, logNormalSf } from '../statistics.ts';
import { logGammaSf, logWeightedGammaSf } from './gamma-tail.ts';
import { mulHigh32, philox4x32Into } from './philox.ts';
import { Int32TupleSet, type StrictUnits } from './tuple-set.ts';

export const VLLM_SCHEMES: readonly ['gumbel', 'dual_key_gumbel', 'red_green', 'sbw'] = Object.freeze([
  'gumbel',
  'dual_key_gumbel',
  'red_green',
  'sbw',
] as const);
export type VllmScheme = (typeof VLLM_SCHEMES)[number];

export const VLLM_PRFS: readonly ['philox', 'hmac-sha256-v1'] = Object.freeze([
  'philox',
  'hmac-sha256-v1',
] as const);
/** PRF of the Gumbel and red-green schemes; `sbw` has its own Philox convention and no choice. */
export type VllmPrf = (typeof VLLM_PRFS)[number];

export type VllmSbwScheme = 'selfhash' | 'lefthash';

/**
 * Which repeated inputs are scored once: `none`; `context` as vLLM's detector does (a context
 * window seen before is skipped, whatever token follows it); `strict` also skips an SBW token
 * whose (seed, token) pair was scored before under another context (min-hash and additive seeds
 * collide across windows). For the Gumbel and red-green PRFs the window is the whole PRF input,
 * so `strict` equals `context`.
 */
export type VllmDedup = 'none' | 'context' | 'strict';

/** A vLLM watermark configuration, as `--watermark-config` sets it (the key is the engine's). */
export interface VllmKey {
  scheme: VllmScheme;
  /** The engine's `key`: < 2^64 for philox and the dual key, < 2^256 for HMAC, < 2^63 for sbw. */
  engineKey: bigint;
  /** Default `philox`. Ignored by `sbw`. */
  prf?: VllmPrf;
  /** Default 4; `sbw` lefthash 1. */
  contextWidth?: number;
  /** `dual_key_gumbel`: the weight of key B, default 0.1. */
  alpha?: number;
  /** `red_green` green fraction, default 0.25; `sbw` default 0.5. */
  gamma?: number;
  /** `sbw` seeding, default `selfhash`. */
  sbwScheme?: VllmSbwScheme;
  /**
   * `sbw` lefthash seed: vLLM's detector uses key·Σ h(context) (`detector`, the default), its
   * generator key·Σ context (`generator`). They differ, so vLLM's own detector does not find
   * lefthash marks; `generator` reads what the engine embeds. See the spec.
   */
  sbwLefthashSeeds?: 'detector' | 'generator';
}

export interface ResolvedVllmKey {
  readonly scheme: VllmScheme;
  readonly engineKey: bigint;
  /** `sbw-philox` for sbw. */
  readonly prf: VllmPrf | 'sbw-philox';
  readonly contextWidth: number;
  readonly alpha: number | null;
  readonly gamma: number | null;
  readonly sbwScheme: VllmSbwScheme | null;
  readonly sbwLefthashSeeds: 'detector' | 'generator' | null;
  /** `dual_key_gumbel`: the derived keys A (weight 1 − α) and B (weight α). */
  readonly keyA: bigint | null;
  readonly keyB: bigint | null;
  /** Probability that a token is green under the null (red_green, sbw); null otherwise. */
  readonly nullGreenProbability: number | null;
}

export interface VllmTokenScore {
  /** Index of the token in the scored sequence. */
  readonly position: number;
  readonly token: number;
  /** The `contextWidth` tokens before it, −1 where the sequence had not started. */
  readonly context: readonly number[];
  /** PRF words: one; two for dual_key_gumbel (key A, key B). */
  readonly words: readonly number[];
  /** float32 uniforms of the words (empty for sbw). */
  readonly uniforms: readonly number[];
  /** sbw: the signed 64-bit Philox seed. */
  readonly seed: bigint | null;
  /** gumbel: −ln(1 − u); dual: (1 − α)·sA + α·sB; red_green and sbw: 1 if green, else 0. */
  readonly score: number;
}

export interface VllmDetection {
  readonly numScored: number;
  /** Sum of the scored tokens' scores (green count for red_green and sbw). */
  readonly score: number;
  /** Positions scored after deduplication, in order. */
  readonly positions: readonly number[];
  /** Exact log10 p-value under the null stated in the spec. */
  readonly log10PValue: number;
  /** vLLM's p-value formula in log10, never underflowing. */
  readonly peerLog10PValue: number;
}

export interface VllmDetectOptions {
  /** Default `context`, as vLLM. */
  dedup?: VllmDedup;
}

export interface VllmDetector {
  readonly key: ResolvedVllmKey;
  /** Scores one token after a context of exactly `contextWidth` ids (−1 allowed as padding). */
  scoreToken(context: readonly number[], token: number): VllmTokenScore;
  /** Scores every position of a token sequence, without deduplication. */
  scoreTokens(tokenIds: ArrayLike<number>): VllmTokenScore[];
  detect(tokenIds: ArrayLike<number>, options?: VllmDetectOptions): VllmDetection;
  /**
   * What `detect(tokenIds, { dedup: 'strict' })` scores, as packed units, from detect's own loop:
   * its positions in order, each with the score detect adds (bit for bit) and the words of its PRF
   * input. gumbel, dual_key_gumbel and red_green: the `contextWidth` context ids (−1 before the
   * sequence as 0xFFFFFFFF, which no id is) then the token, `contextWidth + 1` words; sbw: the signed
   * 64-bit seed's two's-complement high and low halves then the token, 3 words. Equal words are equal
   * units, so a corpus can deduplicate them across sequences.
   */
  strictUnits(tokenIds: ArrayLike<number>): StrictUnits;
}

const MASK32 = 0xffffffff;
const CONTEXT_DOMAIN = 0x574d4358;
const TOKEN_DOMAIN = 0x574d544b;
const HMAC_DOMAIN = new TextEncoder().encode('vllm-watermark-hmac-sha256-v1\0');
const UINT64_LIMIT = 1n << 64n;
const INT31_MAX = 0x7fffffff;
const MAX_TOKEN = 2 ** 31 - 1;
const MAX_CONTEXT_WIDTH = 4096;
const LN10 = Math.LN10;

function assertKey(value: bigint, limit: bigint, name: string): void {
  if (typeof value !== 'bigint') throw new TypeError(`${name}: expected a bigint, got ${typeof value}`);
  if (value < 0n || value >= limit) {
    // The value is a secret: the message names the bound it breaks, never the key.
    throw new RangeError(
      `${name}: expected 0 ≤ key < 2^${limit.toString(2).length - 1}, got ${value < 0n ? 'a negative value' : 'a larger value'}`,
    );
  }
}

function assertTokenId(value: number, name: string, allowPadding: boolean): void {
  const ok = Number.isInteger(value) && value <= MAX_TOKEN && (value >= 0 || (allowPadding && value === -1));
  if (!ok) throw new RangeError(`${name}: expected an integer token id in [0, 2^31), got ${String(value)}`);
}

/** vLLM's mapping of a 32-bit word to a float32 uniform: ((word >> 8) + 1) / (2^24 + 1), rounded to float32. */
export function vllmUniform(word: number): number {
  return Math.fround(((word >>> 8) + 1) / 16777217);
}

/**
 * vLLM's dual-key derivation: the first 8 bytes, big-endian, of SHA-256(domain ‖ key as 8 bytes
 * big-endian), for domain `key_a` or `key_b`.
 */
export function deriveVllmKey(engineKey: bigint, domain: 'key_a' | 'key_b'): bigint {
  assertKey(engineKey, UINT64_LIMIT, 'engineKey');
  if (domain !== 'key_a' && domain !== 'key_b') throw new RangeError(`domain: expected key_a or key_b`);
  const message = new Uint8Array(13);
  message.set(new TextEncoder().encode(domain), 0);
  new DataView(message.buffer).setBigUint64(5, engineKey, false);
  return new DataView(sha256(message).buffer).getBigUint64(0, false);
}

/**
 * Word-level PRF: (context, token) → 32-bit word, the context the `width` ids `ids[from … from + width)`
 * (read in place: detect's contexts are windows of one array).
 */
type WordPrf = (ids: ArrayLike<number>, from: number, width: number, token: number) => number;

/**
 * vLLM's `philox` PRF word (PhiloxPRF.uint32): the context is folded four words at a time
 * (Philox of state ⊕ block under key (k0 ⊕ offset, k1), state starting at (0x574D4358, width, 0, 0),
 * missing words 0xFFFFFFFF − i), then Philox of (token ≫ 2, s0, s1, s2) under
 * (k0 ⊕ s3 ⊕ stream_high, k1 ⊕ 0x574D544B ⊕ stream_low), and word token & 3 is returned.
 */
export function vllmPhiloxWord(key: bigint, context: readonly number[], token: number, stream = 0n): number {
  assertKey(key, UINT64_LIMIT, 'key');
  assertKey(stream, UINT64_LIMIT, 'stream');
  return philoxWordPrf(key, stream)(context, 0, context.length, token);
}

function philoxWordPrf(key: bigint, stream: bigint): WordPrf {
  const k0 = Number(key & 0xffffffffn);
  const k1 = Number(key >> 32n);
  const streamLow = Number(stream & 0xffffffffn);
  const streamHigh = Number(stream >> 32n);
  const state = new Uint32Array(4);
  return (ids, from, width, token) => {
    state[0] = CONTEXT_DOMAIN;
    state[1] = width;
    state[2] = 0;
    state[3] = 0;
    for (let offset = 0; offset < width; offset += 4) {
      const at = from + offset;
      const w0 = ids[at]! >>> 0;
      const w1 = offset + 1 < width ? ids[at + 1]! >>> 0 : MASK32 - 1;
      const w2 = offset + 2 < width ? ids[at + 2]! >>> 0 : MASK32 - 2;
      const w3 = offset + 3 < width ? ids[at + 3]! >>> 0 : MASK32 - 3;
      philox4x32Into(state, state[0]! ^ w0, state[1]! ^ w1, state[2]! ^ w2, state[3]! ^ w3, k0 ^ offset, k1);
    }
    const word = token >>> 0;
    const s3 = state[3]!;
    philox4x32Into(
      state,
      word >>> 2,
      state[0]!,
      state[1]!,
      state[2]!,
      k0 ^ s3 ^ streamHigh,
      k1 ^ TOKEN_DOMAIN ^ streamLow,
    );
    return state[word & 3]!;
  };
}

/**
 * vLLM's `hmac-sha256-v1` PRF word: HMAC-SHA-256 under the key as 32 bytes little-endian, of
 * "vllm-watermark-hmac-sha256-v1\0" ‖ width as u32 LE ‖ each context id as i64 LE ‖ token as
 * i64 LE; the first 4 bytes of the tag, little-endian.
 */
export function vllmHmacWord(key: bigint, context: readonly number[], token: number): number {
  assertKey(key, 1n << 256n, 'key');
  return hmacWordPrf(key)(context, 0, context.length, token);
}

function hmacWordPrf(key: bigint): WordPrf {
  const keyBytes = new Uint8Array(32);
  let rest = key;
  for (let i = 0; i < 32; i++) {
    keyBytes[i] = Number(rest & 0xffn);
    rest >>= 8n;
  }
  const keyed = hmac.create(sha256, keyBytes);
  return (ids, from, width, token) => {
    const message = new Uint8Array(HMAC_DOMAIN.length + 4 + 8 * (width + 1));
    message.set(HMAC_DOMAIN, 0);
    const view = new DataView(message.buffer);
    let at = HMAC_DOMAIN.length;
    view.setUint32(at, width, true);
    at += 4;
    for (let i = 0; i <= width; i++) {
      const value = i < width ? ids[from + i]! : token;
      view.setUint32(at, value >>> 0, true);
      view.setUint32(at + 4, value < 0 ? MASK32 : 0, true);
      at += 8;
    }
    const tag = keyed.clone().update(message).digest();
    return (tag[0]! | (tag[1]! << 8) | (tag[2]! << 16) | (tag[3]! << 24)) >>> 0;
  };
}

function wordPrf(prf: VllmPrf, key: bigint): WordPrf {
  return prf === 'philox' ? philoxWordPrf(key, 0n) : hmacWordPrf(key);
}

/** SBW's Bob Jenkins integer hash of x + 1, in signed 32-bit arithmetic (as vLLM's `_sbw_hashint`). */
export function sbwHashInt(x: number): number {
  if (!Number.isInteger(x)) throw new RangeError(`x: expected an integer, got ${String(x)}`);
  let i = (x + 1) | 0;
  i = (i - (i << 6)) | 0;
  i ^= i >> 17;
  i = (i - (i << 9)) | 0;
  i ^= i << 4;
  i = (i - (i << 3)) | 0;
  i ^= i << 10;
  i ^= i >> 15;
  return i;
}

function int64(value: bigint): bigint {
  return BigInt.asIntN(64, value);
}

/**
 * SBW seed (signed 64-bit) for a candidate token after a context.
 * selfhash: min(min_{i ≥ 1} K·h(context[i])·h(v), K·h(v)·h(v)), products wrapped to int64;
 * lefthash: K·Σ h(context[i]) (`detector`) or K·Σ context[i] (`generator`).
 */
export function sbwSeed(
  key: bigint,
  scheme: VllmSbwScheme,
  context: readonly number[],
  token: number,
  lefthashSeeds: 'detector' | 'generator' = 'detector',
): bigint {
  assertKey(key, 1n << 63n, 'key');
  if (scheme === 'selfhash') {
    const hv = BigInt(sbwHashInt(token));
    let seed = int64(key * hv * hv);
    for (let i = 1; i < context.length; i++) {
      const term = int64(key * BigInt(sbwHashInt(context[i]!)) * hv);
      if (term < seed) seed = term;
    }
    return seed;
  }
  let sum = 0n;
  for (const value of context) sum += BigInt(lefthashSeeds === 'detector' ? sbwHashInt(value) : value);
  return int64(key * int64(sum));
}

// The halves of the last 64-bit product: two numbers, no allocation.
let productHi = 0;
let productLo = 0;

/** (a · b) mod 2^64 of two signed 64-bit values given as int32 halves, into productHi/productLo. */
function mulInt64(aHi: number, aLo: number, bHi: number, bLo: number): void {
  productLo = Math.imul(aLo, bLo);
  productHi = (mulHigh32(aLo >>> 0, bLo >>> 0) + Math.imul(aLo, bHi) + Math.imul(aHi, bLo)) | 0;
}

/**
 * {@link sbwSeed} as int32 halves (`out[0]` high, `out[1]` low), in 32-bit arithmetic: the detector's
 * path, one call per token. `keyHi`/`keyLo` are the key's halves.
 */
export function sbwSeedHalvesInto(
  out: Int32Array,
  keyHi: number,
  keyLo: number,
  scheme: VllmSbwScheme,
  context: ArrayLike<number>,
  token: number,
  lefthashSeeds: 'detector' | 'generator' = 'detector',
): Int32Array {
  return sbwSeedHalvesAt(out, keyHi, keyLo, scheme, context, 0, context.length, token, lefthashSeeds);
}

/** {@link sbwSeedHalvesInto} of the context `ids[from … from + width)`, read in place. */
function sbwSeedHalvesAt(
  out: Int32Array,
  keyHi: number,
  keyLo: number,
  scheme: VllmSbwScheme,
  ids: ArrayLike<number>,
  from: number,
  width: number,
  token: number,
  lefthashSeeds: 'detector' | 'generator',
): Int32Array {
  if (scheme === 'selfhash') {
    const hv = sbwHashInt(token);
    mulInt64(keyHi, keyLo, hv >> 31, hv);
    const kvHi = productHi;
    const kvLo = productLo;
    mulInt64(kvHi, kvLo, hv >> 31, hv);
    let seedHi = productHi;
    let seedLo = productLo;
    for (let i = 1; i < width; i++) {
      const h = sbwHashInt(ids[from + i]!);
      mulInt64(kvHi, kvLo, h >> 31, h);
      if (productHi < seedHi || (productHi === seedHi && productLo >>> 0 < seedLo >>> 0)) {
        seedHi = productHi;
        seedLo = productLo;
      }
    }
    out[0] = seedHi;
    out[1] = seedLo;
    return out;
  }
  // |Σ| < 2^31 · 4096: exact in a double, and its own int64
  let sum = 0;
  for (let i = from; i < from + width; i++) {
    sum += lefthashSeeds === 'detector' ? sbwHashInt(ids[i]!) : ids[i]!;
  }
  const sumHi = Math.floor(sum / 0x100000000);
  mulInt64(keyHi, keyLo, sumHi | 0, (sum - sumHi * 0x100000000) | 0);
  out[0] = productHi;
  out[1] = productLo;
  return out;
}

/** SBW's Philox word for a token under a seed: counter (token ≫ 2, 0, 0, 0), key (seed low, seed high), word token & 3. */
export function sbwWord(seed: bigint, token: number): number {
  const unsigned = BigInt.asUintN(64, seed);
  const out = philox4x32Into(
    new Uint32Array(4),
    token >>> 2,
    0,
    0,
    0,
    Number(unsigned & 0xffffffffn),
    Number(unsigned >> 32n),
  );
  return out[token & 3]!;
}

/**
 * Number of the 2^24 uniforms vLLM's PRFs produce that are green for red_green's γ: vLLM compares
 * the float32 uniform with γ in float32 (u < fround(γ)); the count over 2^24 is the exact null
 * probability of green.
 */
export function vllmRedGreenCount(gamma: number): number {
  assertOpenUnit(gamma, 'gamma');
  const threshold = Math.fround(gamma);
  let low = 0;
  let high = 2 ** 24;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (vllmUniform(middle << 8) < threshold) low = middle + 1;
    else high = middle;
  }
  return low;
}

function assertOpenUnit(value: number, name: string): void {
  if (typeof value !== 'number' || !(value > 0 && value < 1)) {
    throw new RangeError(`${name}: expected a number strictly between 0 and 1, got ${String(value)}`);
  }
}

function resolve(params: VllmKey): ResolvedVllmKey {
  if (typeof params !== 'object' || params === null) throw new TypeError('key: expected an object');
  const { scheme } = params;
  if (!VLLM_SCHEMES.includes(scheme))
    throw new RangeError(`scheme: expected one of ${VLLM_SCHEMES.join(', ')}`);
  const prf = params.prf ?? 'philox';
  if (!VLLM_PRFS.includes(prf)) throw new RangeError(`prf: expected one of ${VLLM_PRFS.join(', ')}`);
  const sbwScheme = scheme === 'sbw' ? (params.sbwScheme ?? 'selfhash') : null;
  if (sbwScheme !== null && sbwScheme !== 'selfhash' && sbwScheme !== 'lefthash') {
    throw new RangeError('sbwScheme: expected selfhash or lefthash');
  }
  const contextWidth = params.contextWidth ?? (sbwScheme === 'lefthash' ? 1 : 4);
  if (!Number.isInteger(contextWidth) || contextWidth < 1 || contextWidth > MAX_CONTEXT_WIDTH) {
    throw new RangeError(
      `contextWidth: expected an integer in [1, ${MAX_CONTEXT_WIDTH}], got ${String(contextWidth)}`,
    );
  }
  const limit =
    scheme === 'sbw'
      ? 1n << 63n
      : prf === 'hmac-sha256-v1' && scheme !== 'dual_key_gumbel'
        ? 1n << 256n
        : UINT64_LIMIT;
  assertKey(params.engineKey, limit, 'engineKey');
  let alpha: number | null = null;
  let keyA: bigint | null = null;
  let keyB: bigint | null = null;
  if (scheme === 'dual_key_gumbel') {
    alpha = params.alpha ?? 0.1;
    if (typeof alpha !== 'number' || !(alpha >= 0 && alpha <= 1)) {
      throw new RangeError(`alpha: expected a number in [0, 1], got ${String(alpha)}`);
    }
    keyA = deriveVllmKey(params.engineKey, 'key_a');
    keyB = deriveVllmKey(params.engineKey, 'key_b');
  }
  let gamma: number | null = null;
  let nullGreenProbability: number | null = null;
  if (scheme === 'red_green') {
    gamma = params.gamma ?? 0.25;
    assertOpenUnit(gamma, 'gamma');
    nullGreenProbability = vllmRedGreenCount(gamma) / 2 ** 24;
  } else if (scheme === 'sbw') {
    gamma = params.gamma ?? 0.5;
    assertOpenUnit(gamma, 'gamma');
    nullGreenProbability = Math.floor(gamma * INT31_MAX) / 2 ** 31;
  }
  const sbwLefthashSeeds = sbwScheme === 'lefthash' ? (params.sbwLefthashSeeds ?? 'detector') : null;
  if (sbwLefthashSeeds !== null && sbwLefthashSeeds !== 'detector' && sbwLefthashSeeds !== 'generator') {
    throw new RangeError('sbwLefthashSeeds: expected detector or generator');
  }
  return Object.freeze({
    scheme,
    engineKey: params.engineKey,
    prf: scheme === 'sbw' ? 'sbw-philox' : prf,
    contextWidth,
    alpha,
    gamma,
    sbwScheme,
    sbwLefthashSeeds,
    keyA,
    keyB,
    nullGreenProbability,
  });
}

/** A scorer of one (context, token) pair: words, uniforms, seed and score. */
type PairScorer = (
  context: readonly number[],
  token: number,
) => { words: number[]; uniforms: number[]; seed: bigint | null; score: number };

/**
 * The PRFs of gumbel, dual_key_gumbel and red_green (one; key A then key B for the dual key) and the
 * score of a pair from their uniforms (the second 0 with one PRF), as vLLM computes it.
 */
function uniformScoring(key: ResolvedVllmKey): {
  readonly prfs: readonly WordPrf[];
  readonly score: (uniformA: number, uniformB: number) => number;
} {
  const prf = key.prf as VllmPrf;
  switch (key.scheme) {
    case 'dual_key_gumbel': {
      const alpha = key.alpha!;
      return {
        prfs: [wordPrf(prf, key.keyA!), wordPrf(prf, key.keyB!)],
        // vLLM: stack([sA, sB]) @ [1 − α, α], a two-term dot product in float64
        score: (uniformA, uniformB) => -Math.log1p(-uniformA) * (1 - alpha) + -Math.log1p(-uniformB) * alpha,
      };
    }
    case 'red_green': {
      const threshold = Math.fround(key.gamma!);
      return { prfs: [wordPrf(prf, key.engineKey)], score: (uniform) => (uniform < threshold ? 1 : 0) };
    }
    default:
      return { prfs: [wordPrf(prf, key.engineKey)], score: (uniform) => -Math.log1p(-uniform) };
  }
}

function pairScorer(key: ResolvedVllmKey): PairScorer {
  if (key.scheme === 'sbw') {
    const { threshold, word: wordOf } = sbwScoring(key);
    const halves = new Int32Array(2);
    return (context, token) => {
      const word = wordOf(context, 0, token, halves);
      const seed = BigInt.asIntN(64, (BigInt(halves[0]! >>> 0) << 32n) | BigInt(halves[1]! >>> 0));
      return { words: [word], uniforms: [], seed, score: (word & INT31_MAX) < threshold ? 1 : 0 };
    };
  }
  const { prfs, score } = uniformScoring(key);
  return (context, token) => {
    const words = prfs.map((prf) => prf(context, 0, context.length, token));
    const uniforms = words.map(vllmUniform);
    return { words, uniforms, seed: null, score: score(uniforms[0]!, uniforms[1] ?? 0) };
  };
}

/**
 * A pair's score for detect, {@link pairScorer}'s without its record, the context the `contextWidth`
 * ids `ids[from …]`; sbw also writes its seed's halves into seed[0], seed[1].
 */
type DetectScorer = (ids: ArrayLike<number>, from: number, token: number, seed: Int32Array) => number;

function detectScorer(key: ResolvedVllmKey): DetectScorer {
  if (key.scheme === 'sbw') {
    const { threshold, word } = sbwScoring(key);
    return (ids, from, token, seed) => ((word(ids, from, token, seed) & INT31_MAX) < threshold ? 1 : 0);
  }
  const width = key.contextWidth;
  const { prfs, score } = uniformScoring(key);
  const [prfA, prfB] = prfs as [WordPrf, WordPrf | undefined];
  if (prfB === undefined) return (ids, from, token) => score(vllmUniform(prfA(ids, from, width, token)), 0);
  return (ids, from, token) =>
    score(vllmUniform(prfA(ids, from, width, token)), vllmUniform(prfB(ids, from, width, token)));
}

/**
 * SBW in 32-bit arithmetic: the green threshold, and the Philox word of a pair ({@link sbwWord} of
 * {@link sbwSeed}), which also writes the seed's halves into seed[0] (high) and seed[1] (low).
 */
function sbwScoring(key: ResolvedVllmKey): {
  readonly threshold: number;
  /** The word of the token after the context `ids[from … from + contextWidth)`. */
  readonly word: (ids: ArrayLike<number>, from: number, token: number, seed: Int32Array) => number;
} {
  const width = key.contextWidth;
  const scheme = key.sbwScheme!;
  const seeds = key.sbwLefthashSeeds ?? 'detector';
  const unsigned = BigInt.asUintN(64, key.engineKey);
  const keyHi = Number(unsigned >> 32n) | 0;
  const keyLo = Number(unsigned & 0xffffffffn) | 0;
  const words = new Uint32Array(4);
  return {
    threshold: Math.floor(key.gamma! * INT31_MAX),
    word: (ids, from, token, seed) => {
      sbwSeedHalvesAt(seed, keyHi, keyLo, scheme, ids, from, width, token, seeds);
      // sbwWord: counter (token ≫ 2, 0, 0, 0), key (seed low, seed high)
      philox4x32Into(words, token >>> 2, 0, 0, 0, seed[1]! >>> 0, seed[0]! >>> 0);
      return words[token & 3]!;
    },
  };
}

function toTokenArray(tokenIds: ArrayLike<number>): number[] {
  if (tokenIds === null || typeof tokenIds !== 'object' || typeof tokenIds.length !== 'number') {
    throw new TypeError('tokenIds: expected an array of token ids');
  }
  const tokens = Array.from(tokenIds);
  for (let index = 0; index < tokens.length; index++) {
    const value = tokens[index]!;
    if (!(Number.isInteger(value) && value >= 0 && value <= MAX_TOKEN)) {
      assertTokenId(value, `tokenIds[${index}]`, false);
    }
  }
  return tokens;
}

function contextAt(tokens: readonly number[], position: number, width: number): number[] {
  const context = new Array<number>(width);
  for (let i = 0; i < width; i++) {
    const at = position - width + i;
    context[i] = at >= 0 ? tokens[at]! : -1;
  }
  return context;
}

function peerLogPValue(key: ResolvedVllmKey, score: number, n: number): number {
  switch (key.scheme) {
    case 'gumbel':
      return score <= 0 ? 0 : logGammaSf(n, score);
    case 'dual_key_gumbel': {
      const alpha = key.alpha!;
      const variance = (1 - alpha) ** 2 + alpha ** 2;
      // vLLM rounds the shape for α ∈ {0, ½, 1}, where the moment match is exact
      const shape = alpha === 0 || alpha === 0.5 || alpha === 1 ? Math.round(n / variance) : n / variance;
      return score <= 0 ? 0 : logGammaSf(shape, score / variance);
    }
    case 'red_green':
      return logBinomialSf(Math.round(score), n, key.gamma!);
    case 'sbw': {
      const gamma = key.gamma!;
      return logNormalSf((score - n * gamma) / Math.sqrt(n * gamma * (1 - gamma)));
    }
  }
}

function exactLogPValue(key: ResolvedVllmKey, score: number, n: number): number {
  switch (key.scheme) {
    case 'gumbel':
      return score <= 0 ? 0 : logGammaSf(n, score);
    case 'dual_key_gumbel':
      return score <= 0 ? 0 : logWeightedGammaSf(n, 1 - key.alpha!, key.alpha!, score);
    case 'red_green':
    case 'sbw':
      return logBinomialSf(Math.round(score), n, key.nullGreenProbability!);
  }
}

/** Builds a detector for a vLLM watermark configuration. */
export function createVllmDetector(params: VllmKey): VllmDetector {
  const key = resolve(params);
  const scorePair = pairScorer(key);
  const scoreOf = detectScorer(key);
  const width = key.contextWidth;
  const sbw = key.scheme === 'sbw';
  const unitWidth = sbw ? 3 : width + 1;

  /**
   * detect's walk over a sequence, and strictUnits': the positions `dedup` keeps and their scores,
   * in order, and with `pack` each kept unit's words (strictUnits' packing). Arrays of n, `count` used.
   */
  const walk = (tokens: readonly number[], dedup: VllmDedup, pack: boolean) => {
    const n = tokens.length;
    // Padded with −1 before the first token: the context of `position` is padded[position …].
    const padded = new Int32Array(width + n).fill(-1, 0, width);
    padded.set(tokens, width);
    const contexts = dedup === 'none' ? null : new Int32TupleSet(width, n, padded);
    const seeds = dedup === 'strict' && sbw ? new Int32TupleSet(3, n) : null;
    // sbw's seed halves, then the token: strict dedup's tuple and the unit's words
    const seed = new Int32Array(3);
    const positions = new Uint32Array(n);
    const values = new Float64Array(n);
    const words = pack ? new Uint32Array(unitWidth * n) : null;
    let count = 0;
    for (let position = 0; position < n; position++) {
      if (contexts?.addAt(position)) continue;
      const token = tokens[position]!;
      const score = scoreOf(padded, position, token, seed);
      seed[2] = token;
      if (seeds?.addFrom(seed, 0)) continue;
      if (words !== null) {
        // sbw: (seed high, seed low, token); else the context and the token, padded[position … + width]
        const unit = sbw ? seed : padded;
        const from = sbw ? 0 : position;
        const at = unitWidth * count;
        for (let i = 0; i < unitWidth; i++) words[at + i] = unit[from + i]!;
      }
      positions[count] = position;
      values[count++] = score;
    }
    return { count, positions, values, words };
  };

  const score = (context: readonly number[], token: number, position: number): VllmTokenScore => {
    const result = scorePair(context, token);
    return Object.freeze({ position, token, context: Object.freeze([...context]), ...result });
  };

  return Object.freeze({
    key,
    scoreToken(context: readonly number[], token: number): VllmTokenScore {
      if (!Array.isArray(context) || context.length !== width) {
        throw new RangeError(`context: expected ${width} token ids`);
      }
      context.forEach((value, index) => {
        assertTokenId(value, `context[${index}]`, true);
      });
      assertTokenId(token, 'token', false);
      return score(context, token, 0);
    },
    scoreTokens(tokenIds: ArrayLike<number>): VllmTokenScore[] {
      const tokens = toTokenArray(tokenIds);
      return tokens.map((token, position) => score(contextAt(tokens, position, width), token, position));
    },
    detect(tokenIds: ArrayLike<number>, options: VllmDetectOptions = {}): VllmDetection {
      const tokens = toTokenArray(tokenIds);
      const dedup = options.dedup ?? 'context';
      if (dedup !== 'none' && dedup !== 'context' && dedup !== 'strict') {
        throw new RangeError('dedup: expected none, context or strict');
      }
      const walked = walk(tokens, dedup, false);
      const positions = Array.from(walked.positions.subarray(0, walked.count));
      let total = 0;
      for (let i = 0; i < walked.count; i++) total += walked.values[i]!;
      const n = positions.length;
      const peer = n === 0 ? 0 : peerLogPValue(key, total, n);
      const exact = n === 0 ? 0 : exactLogPValue(key, total, n);
      return Object.freeze({
        numScored: n,
        score: total,
        positions: Object.freeze(positions),
        log10PValue: Math.min(0, exact) / LN10,
        peerLog10PValue: Math.min(0, peer) / LN10,
      });
    },
    strictUnits(tokenIds: ArrayLike<number>): StrictUnits {
      const { count, positions, values, words } = walk(toTokenArray(tokenIds), 'strict', true);
      return {
        unitWidth,
        words: words!.subarray(0, unitWidth * count),
        values: values.subarray(0, count),
        positions: positions.subarray(0, count),
      };
    },
  });
}
