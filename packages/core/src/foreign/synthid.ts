/**
 * Reading the SynthID-Text watermark (Dathathri et al., "Scalable watermarking for identifying large
 * language model outputs", Nature 634, 2024, https://doi.org/10.1038/s41586-024-08025-4) as
 * transformers' `SynthIDTextWatermarkLogitsProcessor` embeds it: tournament sampling over `depth`
 * layers of Bernoulli g-values read from a seeded table at keyed int64 hashes of the n-gram.
 *
 * Bit-exact with transformers' CPU path (the table comes from torch's CPU mt19937); the spec
 * docs/spec/foreign-synthid.md describes every step and names the peer files and commits. Detection
 * reports the peer's mean and weighted-mean scores and two exact tests of its own (the peer has no
 * p-value): the g-value count against a binomial tail, and the weighted count against a Chernoff
 * bound. `log10PValue` is the binomial test, chosen by measured power (spec §7).
 */

import type { RandomSource } from '../random.ts';
import { logBinomialSf } from '../statistics.ts';
import { mulHigh32 } from './philox.ts';
import { Int32TupleSet, type StrictUnits } from './tuple-set.ts';

/** transformers' `SynthIDTextWatermarkingConfig` defaults. */
export const SYNTHID_DEFAULT_SAMPLING_TABLE_SIZE: number = 65536;
export const SYNTHID_DEFAULT_SAMPLING_TABLE_SEED: number = 0;
export const SYNTHID_DEFAULT_CONTEXT_HISTORY_SIZE: number = 1024;
/** transformers refuses a larger table (`SynthIDTextWatermarkingConfig.validate`). */
export const SYNTHID_MAX_SAMPLING_TABLE_SIZE: number = 2 ** 24;
export const SYNTHID_MAX_NGRAM_LEN: number = 1024;
export const SYNTHID_MAX_DEPTH: number = 1024;
const MAX_CONTEXT_HISTORY_SIZE = 2 ** 24;
const MAX_TOKEN = 2 ** 31;

/**
 * Which repeated inputs are scored once: `none`; `context` as transformers' detector masks (a context
 * whose hash is among the last `contextHistorySize` context hashes, the history starting as zeros);
 * `strict`: a context seen anywhere earlier in the text, or an n-gram whose table seed (what decides
 * every layer's g-value) was scored before.
 */
export type SynthidDedup = 'none' | 'context' | 'strict';

/** A SynthID-Text configuration, as `SynthIDTextWatermarkingConfig` holds it. The keys are the secret. */
export interface SynthidParams {
  /** One int64 key per tournament layer (depth = keys.length). */
  keys: readonly (bigint | number)[];
  /** n-gram length: the context is the previous ngramLen − 1 tokens. */
  ngramLen: number;
  /** Default 65536; at most 2^24. */
  samplingTableSize?: number;
  /** Seed of torch's CPU mt19937 that draws the table; default 0. */
  samplingTableSeed?: bigint | number;
  /** Default 1024. */
  contextHistorySize?: number;
  /** Generation only: the first ngramLen − 1 calls are not watermarked. Default false. */
  skipFirstNgramCalls?: boolean;
  /** Detection: the first occurrence of this id and everything after it are not scored. */
  eosTokenId?: number | null;
  /** Token ids must be below it; default 2^31. */
  vocabSize?: number;
}

export interface ResolvedSynthidParams {
  readonly keys: readonly bigint[];
  readonly depth: number;
  readonly ngramLen: number;
  readonly samplingTableSize: number;
  readonly samplingTableSeed: bigint;
  readonly contextHistorySize: number;
  readonly skipFirstNgramCalls: boolean;
  readonly eosTokenId: number | null;
  readonly vocabSize: number | null;
}

const MULTIPLIER_HI = 0x5851f42d;
const MULTIPLIER_LO = 0x4c957f2d;
const INT64_MIN = -(1n << 63n);
const INT64_LIMIT = 1n << 63n;
const LN10 = Math.LN10;

/** High 32 bits of the 64-bit product of two unsigned 32-bit integers. */

/** An int64 hash as two unsigned 32-bit halves (two's complement). */
interface Hash64 {
  hi: number;
  lo: number;
}

/** transformers' accumulate_hash step over int64 with wraparound: h ← (h + d)·6364136223846793005 + 1. */
function accumulateInto(hash: Hash64, dataHi: number, dataLo: number): void {
  const sum = hash.lo + dataLo;
  const lo = sum >>> 0;
  const hi = (hash.hi + dataHi + (sum > 0xffffffff ? 1 : 0)) >>> 0;
  const productLo = Math.imul(lo, MULTIPLIER_LO) >>> 0;
  const productHi =
    (mulHigh32(lo, MULTIPLIER_LO) + Math.imul(lo, MULTIPLIER_HI) + Math.imul(hi, MULTIPLIER_LO)) >>> 0;
  const nextLo = (productLo + 1) >>> 0;
  hash.lo = nextLo;
  hash.hi = nextLo === 0 ? (productHi + 1) >>> 0 : productHi;
}

function splitInt64(value: bigint): Hash64 {
  const unsigned = BigInt.asUintN(64, value);
  return { hi: Number(unsigned >> 32n), lo: Number(unsigned & 0xffffffffn) };
}

function joinInt64(hash: Hash64): bigint {
  return BigInt.asIntN(64, (BigInt(hash.hi) << 32n) | BigInt(hash.lo));
}

/**
 * transformers' `accumulate_hash`: for each d in `data`, h ← (h + d)·6364136223846793005 + 1,
 * in int64 with wraparound. Returns the signed int64 result.
 */
export function synthidAccumulateHash(hash: bigint, data: readonly (bigint | number)[]): bigint {
  const state = splitInt64(toInt64(hash, 'hash'));
  data.forEach((value, index) => {
    const part = splitInt64(toInt64(value, `data[${index}]`));
    accumulateInto(state, part.hi, part.lo);
  });
  return joinInt64(state);
}

function toInt64(value: bigint | number, name: string): bigint {
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) throw new RangeError(`${name}: expected an integer`);
    return BigInt(value);
  }
  if (typeof value !== 'bigint') throw new TypeError(`${name}: expected an integer`);
  if (value < INT64_MIN || value >= INT64_LIMIT)
    throw new RangeError(`${name}: expected a signed 64-bit integer`);
  return value;
}

/** MT19937 (Matsumoto and Nishimura 1998) as torch's CPU generator: seeded with the seed's low 32 bits. */
function mt19937(seed: number): () => number {
  const state = new Uint32Array(624);
  state[0] = seed >>> 0;
  for (let i = 1; i < 624; i++) {
    const previous = state[i - 1]! ^ (state[i - 1]! >>> 30);
    state[i] = (Math.imul(previous, 1812433253) + i) >>> 0;
  }
  let index = 624;
  return () => {
    if (index >= 624) {
      for (let i = 0; i < 624; i++) {
        const y = (state[i]! & 0x80000000) | (state[(i + 1) % 624]! & 0x7fffffff);
        state[i] = state[(i + 397) % 624]! ^ (y >>> 1) ^ (y & 1 ? 0x9908b0df : 0);
      }
      index = 0;
    }
    let y = state[index++]!;
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  };
}

const tableCache = new Map<string, Uint8Array>();

/**
 * The sampling table: `torch.randint(0, 2, (size,), generator=torch.Generator('cpu').manual_seed(seed))`,
 * i.e. the low bit of each successive MT19937 output. (On CUDA torch draws another table; spec §4.)
 */
export function synthidSamplingTable(size: number, seed: bigint | number): Uint8Array {
  assertTableSize(size);
  return cachedTable(size, toSeed(seed)).slice();
}

const onesCache = new WeakMap<Uint8Array, number>();

function onesOf(table: Uint8Array): number {
  let ones = onesCache.get(table);
  if (ones === undefined) {
    ones = 0;
    for (const bit of table) ones += bit;
    onesCache.set(table, ones);
  }
  return ones;
}

/** The shared, never mutated table of a size and seed. */
function cachedTable(size: number, seed: bigint): Uint8Array {
  const seedLow = Number(BigInt.asUintN(32, seed));
  const cacheKey = `${size}:${seedLow}`;
  let table = tableCache.get(cacheKey);
  if (table === undefined) {
    table = new Uint8Array(size);
    const next = mt19937(seedLow);
    for (let i = 0; i < size; i++) table[i] = next() & 1;
    if (tableCache.size >= 16) tableCache.delete(tableCache.keys().next().value!);
    tableCache.set(cacheKey, table);
  }
  return table;
}

function toSeed(seed: bigint | number): bigint {
  const value = typeof seed === 'number' && Number.isSafeInteger(seed) ? BigInt(seed) : seed;
  // torch's manual_seed accepts [−2^63, 2^64); a negative seed is taken modulo 2^64.
  if (typeof value !== 'bigint' || value < INT64_MIN || value >= 1n << 64n) {
    throw new RangeError('samplingTableSeed: expected an integer in [−2^63, 2^64)');
  }
  return value;
}

function assertTableSize(size: number): void {
  if (!Number.isInteger(size) || size < 2 || size > SYNTHID_MAX_SAMPLING_TABLE_SIZE) {
    throw new RangeError(`samplingTableSize: expected an integer in [2, 2^24], got ${String(size)}`);
  }
}

function assertInteger(value: unknown, name: string, low: number, high: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < low || value > high) {
    throw new RangeError(`${name}: expected an integer in [${low}, ${high}], got ${String(value)}`);
  }
  return value;
}

/** Validates and completes a configuration. Messages name the parameter, never a key's value. */
export function resolveSynthidParams(params: SynthidParams): ResolvedSynthidParams {
  if (typeof params !== 'object' || params === null) throw new TypeError('params: expected an object');
  if (!Array.isArray(params.keys) || params.keys.length === 0 || params.keys.length > SYNTHID_MAX_DEPTH) {
    throw new RangeError(`keys: expected 1 to ${SYNTHID_MAX_DEPTH} integer keys`);
  }
  const keys = params.keys.map((key, index) => toInt64(key, `keys[${index}]`));
  const ngramLen = assertInteger(params.ngramLen, 'ngramLen', 2, SYNTHID_MAX_NGRAM_LEN);
  const samplingTableSize = params.samplingTableSize ?? SYNTHID_DEFAULT_SAMPLING_TABLE_SIZE;
  assertTableSize(samplingTableSize);
  const samplingTableSeed = toSeed(params.samplingTableSeed ?? SYNTHID_DEFAULT_SAMPLING_TABLE_SEED);
  const contextHistorySize = assertInteger(
    params.contextHistorySize ?? SYNTHID_DEFAULT_CONTEXT_HISTORY_SIZE,
    'contextHistorySize',
    1,
    MAX_CONTEXT_HISTORY_SIZE,
  );
  const skipFirstNgramCalls = params.skipFirstNgramCalls ?? false;
  if (typeof skipFirstNgramCalls !== 'boolean')
    throw new TypeError('skipFirstNgramCalls: expected a boolean');
  const vocabSize =
    params.vocabSize === undefined ? null : assertInteger(params.vocabSize, 'vocabSize', 1, MAX_TOKEN);
  const eosTokenId =
    params.eosTokenId === undefined || params.eosTokenId === null
      ? null
      : assertInteger(params.eosTokenId, 'eosTokenId', 0, (vocabSize ?? MAX_TOKEN) - 1);
  return Object.freeze({
    keys: Object.freeze(keys),
    depth: keys.length,
    ngramLen,
    samplingTableSize,
    samplingTableSeed,
    contextHistorySize,
    skipFirstNgramCalls,
    eosTokenId,
    vocabSize,
  });
}

/** Everything a configuration needs at run time: the table and the keys in halves. */
interface Prepared {
  readonly params: ResolvedSynthidParams;
  readonly table: Uint8Array;
  readonly keyHalves: readonly Hash64[];
  readonly tableIndex: (hash: Hash64) => number;
  /** Table entries equal to 1, over the size: P[g = 1] for a uniform table index. */
  readonly nullProbability: number;
  readonly tokenLimit: number;
}

function prepare(params: SynthidParams): Prepared {
  const resolved = resolveSynthidParams(params);
  const size = resolved.samplingTableSize;
  const table = cachedTable(size, resolved.samplingTableSeed);
  const ones = onesOf(table);
  const powerOfTwo = (size & (size - 1)) === 0;
  const sizeMask = size - 1;
  const highFactor = 2 ** 32 % size;
  const wrap = (highFactor * highFactor) % size;
  // torch's `%` is a floor modulo of the signed int64: non-negative for a positive table size.
  const tableIndex = powerOfTwo
    ? (hash: Hash64) => hash.lo & sizeMask
    : (hash: Hash64) => {
        let index = ((hash.hi % size) * highFactor + hash.lo) % size;
        if (hash.hi >= 0x80000000) index = (index - wrap + size) % size;
        return index;
      };
  return {
    params: resolved,
    table,
    keyHalves: resolved.keys.map(splitInt64),
    tableIndex,
    nullProbability: ones / size,
    tokenLimit: resolved.vocabSize ?? MAX_TOKEN,
  };
}

function assertTokenId(value: unknown, name: string, limit: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value >= limit) {
    throw new RangeError(`${name}: expected an integer token id in [0, ${limit}), got ${String(value)}`);
  }
  return value;
}

function contextHashOf(context: ArrayLike<number>, from: number, length: number): Hash64 {
  const hash = { hi: 0, lo: 1 };
  for (let i = 0; i < length; i++) accumulateInto(hash, 0, context[from + i]!);
  return hash;
}

/** Writes the g-values of `token` after a context hash into out[offset … offset + depth). */
function gValuesInto(
  prepared: Prepared,
  contextHash: Hash64,
  token: number,
  out: Uint8Array,
  offset: number,
): Hash64 {
  const ngram = { hi: contextHash.hi, lo: contextHash.lo };
  accumulateInto(ngram, 0, token);
  const layer = { hi: 0, lo: 0 };
  const { keyHalves, table, tableIndex } = prepared;
  for (let l = 0; l < keyHalves.length; l++) {
    const key = keyHalves[l]!;
    layer.hi = ngram.hi;
    layer.lo = ngram.lo;
    accumulateInto(layer, key.hi, key.lo);
    out[offset + l] = table[tableIndex(layer)]!;
  }
  return ngram;
}

function checkContext(prepared: Prepared, contextIds: ArrayLike<number>): void {
  const width = prepared.params.ngramLen - 1;
  if (contextIds === null || typeof contextIds !== 'object' || contextIds.length !== width) {
    throw new RangeError(`contextIds: expected ${width} token ids (ngramLen − 1)`);
  }
  for (let i = 0; i < width; i++) assertTokenId(contextIds[i], `contextIds[${i}]`, prepared.tokenLimit);
}

/**
 * The g-values transformers assigns to each candidate token after a context of ngramLen − 1 ids:
 * a Uint8Array of tokenIds.length × depth bits, row t holding token t's layers in key order.
 * g = table[((hash(1; context, token) + key)·M + 1) mod size] (spec §3).
 */
export function synthidGValues(
  params: SynthidParams,
  contextIds: ArrayLike<number>,
  tokenIds: ArrayLike<number>,
): Uint8Array {
  const prepared = prepare(params);
  checkContext(prepared, contextIds);
  if (tokenIds === null || typeof tokenIds !== 'object' || typeof tokenIds.length !== 'number') {
    throw new TypeError('tokenIds: expected an array of token ids');
  }
  const depth = prepared.params.depth;
  const out = new Uint8Array(tokenIds.length * depth);
  const contextHash = contextHashOf(contextIds, 0, contextIds.length);
  for (let t = 0; t < tokenIds.length; t++) {
    gValuesInto(
      prepared,
      contextHash,
      assertTokenId(tokenIds[t], `tokenIds[${t}]`, prepared.tokenLimit),
      out,
      t * depth,
    );
  }
  return out;
}

function normalizedProbabilities(probs: Float64Array, limit: number): Float64Array {
  if (!(probs instanceof Float64Array) || probs.length === 0) {
    throw new TypeError('probs: expected a non-empty Float64Array');
  }
  if (probs.length > limit) throw new RangeError(`probs: expected at most ${limit} entries (the vocabulary)`);
  let total = 0;
  for (let i = 0; i < probs.length; i++) {
    const p = probs[i]!;
    if (!(p >= 0) || !Number.isFinite(p)) throw new RangeError(`probs[${i}]: expected a finite number ≥ 0`);
    total += p;
  }
  if (!(total > 0)) throw new RangeError('probs: expected a positive total');
  const out = new Float64Array(probs.length);
  for (let i = 0; i < probs.length; i++) out[i] = probs[i]! / total;
  return out;
}

function tournament(prepared: Prepared, context: ArrayLike<number>, probs: Float64Array): Float64Array {
  const { depth } = prepared.params;
  const vocab = probs.length;
  const g = new Uint8Array(vocab * depth);
  const contextHash = contextHashOf(context, 0, context.length);
  for (let v = 0; v < vocab; v++) gValuesInto(prepared, contextHash, v, g, v * depth);
  const p = normalizedProbabilities(probs, prepared.tokenLimit);
  for (let l = 0; l < depth; l++) {
    let mass = 0;
    for (let v = 0; v < vocab; v++) if (g[v * depth + l]) mass += p[v]!;
    // transformers: p ← p·(1 + g − mass), the two-leaf tournament layer in closed form
    for (let v = 0; v < vocab; v++) p[v] = p[v]! * (1 + g[v * depth + l]! - mass);
  }
  return p;
}

/**
 * The distribution transformers' processor samples from after a context of ngramLen − 1 ids (the
 * token ids are the indices of `probs`): per layer l, p ← p·(1 + g_l − Σ_v g_l(v)·p(v)). It equals
 * softmax of the processor's output for these probabilities. The processor does not watermark a
 * repeated context; {@link createSynthidGenerator} keeps that state.
 */
export function synthidTournamentDistribution(
  params: SynthidParams,
  contextIds: ArrayLike<number>,
  probs: Float64Array,
): Float64Array {
  const prepared = prepare(params);
  checkContext(prepared, contextIds);
  return tournament(prepared, contextIds, probs);
}

function draw(distribution: Float64Array, rng: RandomSource): number {
  const u = rng.nextFloat();
  let cumulative = 0;
  let last = 0;
  for (let v = 0; v < distribution.length; v++) {
    const p = distribution[v]!;
    if (p <= 0) continue;
    cumulative += p;
    last = v;
    if (u < cumulative) return v;
  }
  return last;
}

/** One tournament-sampled token after a context of ngramLen − 1 ids (always watermarked; stateless). */
export function synthidSample(
  params: SynthidParams,
  contextIds: ArrayLike<number>,
  probs: Float64Array,
  rng: RandomSource,
): number {
  return draw(synthidTournamentDistribution(params, contextIds, probs), rng);
}

/** A step of generation: the distribution to sample and whether the processor watermarked it. */
export interface SynthidStep {
  readonly distribution: Float64Array;
  readonly watermarked: boolean;
}

/**
 * transformers' processor as a state machine, for generation experiments: the context starts as
 * ngramLen − 1 zeros (not the prompt), each call watermarks unless it is one of the first
 * ngramLen − 1 calls with skipFirstNgramCalls, or its context hash is among the last
 * contextHistorySize ones (the history starting as zeros).
 */
export interface SynthidGenerator {
  readonly params: ResolvedSynthidParams;
  /** One call of the processor on the next-token probabilities; call accept() with the chosen token. */
  step(probs: Float64Array): SynthidStep;
  accept(token: number): void;
  /** step, draw with rng, accept. */
  sample(probs: Float64Array, rng: RandomSource): number;
}

export function createSynthidGenerator(params: SynthidParams): SynthidGenerator {
  const prepared = prepare(params);
  const { ngramLen, contextHistorySize, skipFirstNgramCalls } = prepared.params;
  const context = new Array<number>(ngramLen - 1).fill(0);
  const history = new ContextHistory(contextHistorySize);
  let calls = 0;
  let awaitingToken = false;
  const step = (probs: Float64Array): SynthidStep => {
    if (awaitingToken) throw new Error('step: accept() the previous token first');
    const p = normalizedProbabilities(probs, prepared.tokenLimit);
    calls++;
    awaitingToken = true;
    if (skipFirstNgramCalls && calls < ngramLen) return { distribution: p, watermarked: false };
    const repeated = history.seenThenPush(contextHashOf(context, 0, context.length));
    return repeated
      ? { distribution: p, watermarked: false }
      : { distribution: tournament(prepared, context, p), watermarked: true };
  };
  const accept = (token: number): void => {
    if (!awaitingToken) throw new Error('accept: call step() first');
    assertTokenId(token, 'token', prepared.tokenLimit);
    context.shift();
    context.push(token);
    awaitingToken = false;
  };
  return Object.freeze({
    params: prepared.params,
    step,
    accept,
    sample(probs: Float64Array, rng: RandomSource): number {
      const token = draw(step(probs).distribution, rng);
      accept(token);
      return token;
    },
  });
}

/**
 * transformers' context history: the last `size` context hashes, initially `size` zeros; a hash is
 * repeated if it is among them (so a context hashing to 0 counts as repeated until the zeros are gone).
 * The window is a ring of (hi, lo) halves; a map from the low half to its latest push finds a repeat in
 * one lookup, and where two hashes in the window share a low half the ring is searched.
 */
export class ContextHistory {
  private his = new Int32Array(64);
  private los = new Int32Array(64);
  private readonly latest = new Map<number, number>();
  private pushed = 0;

  constructor(private readonly size: number) {}

  seenThenPush(hash: Hash64): boolean {
    return this.seenThenPushHalves(hash.hi, hash.lo);
  }

  seenThenPushHalves(hi: number, lo: number): boolean {
    const { size, his, los, latest } = this;
    const hi32 = hi | 0;
    const lo32 = lo | 0;
    const pushed = this.pushed;
    // pushes before `oldest` have left the window
    const oldest = pushed - size;
    let seen = oldest < 0 && hi32 === 0 && lo32 === 0;
    if (!seen) {
      const last = latest.get(lo32);
      if (last !== undefined && last >= oldest) {
        const slot = last % his.length;
        seen = his[slot] === hi32;
        // another hash in the window may share this low half: search the ring
        for (let k = Math.max(0, oldest); !seen && k < last; k++) {
          const at = k % his.length;
          seen = los[at] === lo32 && his[at] === hi32;
        }
      }
    }
    // the ring grows until it holds the window, so it wraps only at `size` slots
    if (pushed === his.length && his.length < size) this.grow();
    const slot = pushed % this.his.length;
    this.his[slot] = hi32;
    this.los[slot] = lo32;
    latest.set(lo32, pushed);
    this.pushed = pushed + 1;
    return seen;
  }

  private grow(): void {
    const length = Math.min(this.size, this.his.length * 2);
    const his = new Int32Array(length);
    const los = new Int32Array(length);
    his.set(this.his);
    los.set(this.los);
    this.his = his;
    this.los = los;
  }
}

export interface SynthidPositionScore {
  /** Index of the token in the sequence (≥ ngramLen − 1). */
  readonly position: number;
  readonly token: number;
  /** The ngramLen − 1 ids before it. */
  readonly context: readonly number[];
  /** One bit per layer, in key order. */
  readonly gValues: readonly number[];
  /** transformers' context-repetition mask says repeated (0 in its mask). */
  readonly repeatedContext: boolean;
  /** At or after the first eosTokenId (0 in transformers' EOS mask). */
  readonly afterEos: boolean;
  /** The n-gram's table seed: the int64 n-gram hash modulo the table size when that divides 2^64, else the hash. */
  readonly seed: bigint;
}

export interface SynthidDetection {
  readonly numTokens: number;
  /** Positions scored after deduplication and the EOS mask. */
  readonly numScored: number;
  readonly positions: readonly number[];
  /** Layers counted by the tests: keys that select the same table entries count once (spec §6). */
  readonly effectiveDepth: number;
  /** Σ of the g-values over scored positions × effective layers (the binomial test's statistic). */
  readonly score: number;
  /** numScored × effectiveDepth. */
  readonly numGValues: number;
  /** transformers' detector family's mean score over the scored positions and all layers; null if none. */
  readonly meanScore: number | null;
  /** The weighted mean score (weights linspace(10, 1, depth), normalised to sum depth); null if none. */
  readonly weightedMeanScore: number | null;
  /** Σ over scored positions of Σ_l w_l·g_l with the same weights. */
  readonly weightedScore: number;
  /** P[g = 1] under the null: the share of ones in the table. */
  readonly nullProbability: number;
  /** Exact log10 P[Bin(numGValues, nullProbability) ≥ score]. The default test. */
  readonly binomialLog10PValue: number;
  /** log10 of a Chernoff upper bound on P[weighted score ≥ observed] (conservative). */
  readonly weightedLog10PValue: number;
  /** The default test's value: binomialLog10PValue. */
  readonly log10PValue: number;
  /** SynthID's own detectors give scores, not p-values. */
  readonly peerLog10PValue: null;
}

export interface SynthidDetectOptions {
  /** Default `context`, as transformers' detector. */
  dedup?: SynthidDedup;
}

export interface SynthidDetector {
  readonly params: ResolvedSynthidParams;
  readonly nullProbability: number;
  /** Layer weights of the weighted mean (sum depth). */
  readonly weights: readonly number[];
  /**
   * The layers the tests count, in key order: the first of each group of keys that select the same
   * table entries (spec §6.4). A position's binomial score is the sum of its g-values at these layers.
   */
  readonly effectiveLayers: readonly number[];
  /** Every scorable position (ngramLen − 1 onwards) with its g-values and transformers' masks. */
  scoreTokens(tokenIds: ArrayLike<number>): SynthidPositionScore[];
  detect(tokenIds: ArrayLike<number>, options?: SynthidDetectOptions): SynthidDetection;
  /**
   * What `detect(tokenIds, { dedup: 'strict' })` scores, as packed units, from detect's own loop:
   * its positions in order (before the first `eosTokenId`), each with the g-values' sum at the
   * {@link effectiveLayers} (its part of `score`) and the words of its table seed, the unit: for a
   * table size that is a power of two the seed (the n-gram hash's low bits), one word; otherwise the
   * signed int64 n-gram hash's two's-complement high and low halves, two words.
   */
  strictUnits(tokenIds: ArrayLike<number>): StrictUnits;
}

/** transformers' weighted-mean weights: linspace(10, 1, depth) scaled to sum to depth; depth 1: [1]. */
export function synthidWeights(depth: number): number[] {
  assertInteger(depth, 'depth', 1, SYNTHID_MAX_DEPTH);
  const raw = Array.from({ length: depth }, (_, l) => (depth === 1 ? 10 : 10 - (9 * l) / (depth - 1)));
  const total = raw.reduce((a, b) => a + b, 0);
  return raw.map((w) => (w * depth) / total);
}

/**
 * ln of the Chernoff bound on P[Σ_j a_j B_j ≥ s] for independent B_j ~ Bernoulli(q) with a_j > 0
 * (the weights repeated n times): min over θ ≥ 0 of −θs + Σ_j ln(1 − q + q·e^{θ a_j}). It is ≥ the
 * exact log tail, so it is a valid (conservative) p-value. `weights` with multiplicities `counts`.
 */
export function logChernoffBernoulliTail(
  weights: readonly number[],
  counts: readonly number[],
  q: number,
  s: number,
): number {
  let mean = 0;
  let max = 0;
  weights.forEach((w, j) => {
    mean += counts[j]! * w * q;
    max += counts[j]! * w;
  });
  if (!(s > mean)) return 0;
  if (s > max * (1 + 1e-12)) return Number.NEGATIVE_INFINITY;
  const logQ = Math.log(q);
  const log1mQ = Math.log1p(-q);
  // ln(1 − q + q e^{x}) without overflow, and its derivative in x: the tilted probability.
  const logMgf = (x: number) =>
    x > 0
      ? x + logQ + Math.log1p(Math.exp(log1mQ - logQ - x))
      : log1mQ + Math.log1p(Math.exp(logQ - log1mQ + x));
  const tilted = (x: number) => 1 / (1 + Math.exp(log1mQ - logQ - x));
  const objective = (theta: number) => {
    let value = -theta * s;
    weights.forEach((w, j) => {
      value += counts[j]! * logMgf(theta * w);
    });
    return value;
  };
  const slope = (theta: number) => {
    let value = -s;
    weights.forEach((w, j) => {
      value += counts[j]! * w * tilted(theta * w);
    });
    return value;
  };
  if (s >= max) {
    // The bound's infimum as θ → ∞: Σ_j n_j ln q, which is the exact P[all ones].
    let all = 0;
    for (const c of counts) all += c * logQ;
    return all;
  }
  let low = 0;
  let high = 1;
  while (slope(high) < 0) high *= 2;
  for (let i = 0; i < 200 && high - low > 1e-15 * high; i++) {
    const middle = (low + high) / 2;
    if (slope(middle) < 0) low = middle;
    else high = middle;
  }
  return Math.min(0, objective((low + high) / 2));
}

function toTokenArray(tokenIds: ArrayLike<number>, limit: number): number[] {
  if (tokenIds === null || typeof tokenIds !== 'object' || typeof tokenIds.length !== 'number') {
    throw new TypeError('tokenIds: expected an array of token ids');
  }
  const tokens = Array.from(tokenIds);
  for (let index = 0; index < tokens.length; index++) {
    const value = tokens[index]!;
    if (!(Number.isInteger(value) && value >= 0 && value < limit)) {
      assertTokenId(value, `tokenIds[${index}]`, limit);
    }
  }
  return tokens;
}

/** Builds a detector for a SynthID-Text configuration. */
export function createSynthidDetector(params: SynthidParams): SynthidDetector {
  const prepared = prepare(params);
  const { depth, ngramLen, contextHistorySize, eosTokenId, samplingTableSize } = prepared.params;
  const width = ngramLen - 1;
  const weights = Object.freeze(synthidWeights(depth));
  const powerOfTwo = (samplingTableSize & (samplingTableSize - 1)) === 0;
  // Layers whose keys agree modulo the table size (a power of two) or as int64 read the same entries.
  const layerGroup = new Map<string, number>();
  const firstLayerOf: number[] = [];
  const groupWeights: number[] = [];
  prepared.params.keys.forEach((key, l) => {
    const id = powerOfTwo ? String(BigInt.asUintN(64, key) % BigInt(samplingTableSize)) : String(key);
    const group = layerGroup.get(id);
    if (group === undefined) {
      layerGroup.set(id, firstLayerOf.length);
      firstLayerOf.push(l);
      groupWeights.push(weights[l]!);
    } else {
      groupWeights[group]! += weights[l]!;
    }
  });
  const effectiveDepth = firstLayerOf.length;
  const nullProbability = prepared.nullProbability;
  const seedOf = (ngram: Hash64): bigint =>
    powerOfTwo ? BigInt(ngram.lo & (samplingTableSize - 1)) : joinInt64(ngram);

  const scoreAll = (tokens: readonly number[]) => {
    const positions: SynthidPositionScore[] = [];
    const history = new ContextHistory(contextHistorySize);
    const firstEos = eosTokenId === null ? -1 : tokens.indexOf(eosTokenId);
    const g = new Uint8Array(depth);
    for (let t = width; t < tokens.length; t++) {
      const contextHash = contextHashOf(tokens, t - width, width);
      const repeatedContext = history.seenThenPush(contextHash);
      const ngram = gValuesInto(prepared, contextHash, tokens[t]!, g, 0);
      positions.push({
        position: t,
        token: tokens[t]!,
        context: tokens.slice(t - width, t),
        gValues: Array.from(g),
        repeatedContext,
        afterEos: firstEos >= 0 && t >= firstEos,
        seed: seedOf(ngram),
      });
    }
    return positions;
  };

  const effective = new Uint8Array(depth);
  for (const l of firstLayerOf) effective[l] = 1;
  // strictUnits' words: the table seed, one word for a power-of-two table (its low bits), else two
  const unitWidth = powerOfTwo ? 1 : 2;
  const seedMask = samplingTableSize - 1;
  /**
   * detect's sums, with no record per position, and strictUnits' units: strict dedup's sets hold
   * contexts and seeds exactly. Each kept position's value is its g-values' sum at the effective
   * layers (what it adds to `score`); with `pack`, its seed's words. Arrays of n, `count` used.
   */
  const tally = (tokens: readonly number[], dedup: SynthidDedup, pack: boolean) => {
    const n = tokens.length;
    const history = dedup === 'context' ? new ContextHistory(contextHistorySize) : null;
    const contexts = dedup === 'strict' ? new Int32TupleSet(width, n, tokens) : null;
    const seeds = dedup === 'strict' ? new Int32TupleSet(unitWidth, n) : null;
    const seed = new Int32Array(unitWidth);
    const firstEos = eosTokenId === null ? -1 : tokens.indexOf(eosTokenId);
    const stop = firstEos >= 0 ? firstEos : n;
    const positions = new Uint32Array(n);
    const values = new Float64Array(n);
    const words = pack ? new Uint32Array(unitWidth * n) : null;
    const g = new Uint8Array(depth);
    let count = 0;
    let score = 0;
    let allLayers = 0;
    let weightedScore = 0;
    for (let t = width; t < stop; t++) {
      const contextHash = contextHashOf(tokens, t - width, width);
      if (history?.seenThenPushHalves(contextHash.hi, contextHash.lo)) continue;
      if (contexts?.addAt(t - width)) continue;
      const ngram = gValuesInto(prepared, contextHash, tokens[t]!, g, 0);
      if (seeds !== null) {
        if (powerOfTwo) seed[0] = ngram.lo & seedMask;
        else {
          seed[0] = ngram.hi;
          seed[1] = ngram.lo;
        }
        if (seeds.addFrom(seed, 0)) continue;
        if (words !== null) words.set(seed, unitWidth * count);
      }
      let value = 0;
      for (let l = 0; l < depth; l++) {
        if (g[l] === 0) continue;
        allLayers++;
        weightedScore += weights[l]!;
        value += effective[l]!;
      }
      score += value;
      positions[count] = t;
      values[count++] = value;
    }
    return { count, positions, values, words, score, allLayers, weightedScore };
  };

  return Object.freeze({
    params: prepared.params,
    nullProbability,
    weights,
    effectiveLayers: Object.freeze([...firstLayerOf]),
    scoreTokens(tokenIds: ArrayLike<number>): SynthidPositionScore[] {
      return scoreAll(toTokenArray(tokenIds, prepared.tokenLimit)).map((s) =>
        Object.freeze({ ...s, context: Object.freeze(s.context), gValues: Object.freeze(s.gValues) }),
      );
    },
    detect(tokenIds: ArrayLike<number>, options: SynthidDetectOptions = {}): SynthidDetection {
      const tokens = toTokenArray(tokenIds, prepared.tokenLimit);
      const dedup = options.dedup ?? 'context';
      if (dedup !== 'none' && dedup !== 'context' && dedup !== 'strict') {
        throw new RangeError('dedup: expected none, context or strict');
      }
      const { count, positions, score, allLayers, weightedScore } = tally(tokens, dedup, false);
      const n = count;
      const numGValues = n * effectiveDepth;
      const binomial = n === 0 ? 0 : logBinomialSf(score, numGValues, nullProbability);
      const weighted =
        n === 0
          ? 0
          : logChernoffBernoulliTail(
              groupWeights,
              groupWeights.map(() => n),
              nullProbability,
              weightedScore,
            );
      return Object.freeze({
        numTokens: tokens.length,
        numScored: n,
        positions: Object.freeze(Array.from(positions.subarray(0, n))),
        effectiveDepth,
        score,
        numGValues,
        meanScore: n === 0 ? null : allLayers / (n * depth),
        weightedMeanScore: n === 0 ? null : weightedScore / (n * depth),
        weightedScore,
        nullProbability,
        binomialLog10PValue: Math.min(0, binomial) / LN10,
        weightedLog10PValue: Math.min(0, weighted) / LN10,
        log10PValue: Math.min(0, binomial) / LN10,
        peerLog10PValue: null,
      });
    },
    strictUnits(tokenIds: ArrayLike<number>): StrictUnits {
      const tokens = toTokenArray(tokenIds, prepared.tokenLimit);
      const { count, positions, values, words } = tally(tokens, 'strict', true);
      return {
        unitWidth,
        words: words!.subarray(0, unitWidth * count),
        values: values.subarray(0, count),
        positions: positions.subarray(0, count),
      };
    },
  });
}
