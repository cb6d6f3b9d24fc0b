/**
 * Reading the watermark that Hugging Face transformers' `WatermarkLogitsProcessor` embeds (KGW,
 * Kirchenbauer et al. 2023, https://arxiv.org/abs/2301.10226), from token ids.
 *
 * Bit-exact with transformers run on the CPU (`device="cpu"`): the green list of a step is the first
 * ⌊V·γ⌋ entries of torch's CPU `randperm(V)` under a generator seeded from the hash key and the
 * context (docs/spec/foreign-transformers.md names the files, commits and every step). Detection
 * reports the exact binomial tail (`log10PValue`) beside transformers' own p-value as transformers
 * computes it in double (`peerLog10PValue`, −Infinity where it is 0) and its formula evaluated in log
 * space (`peerFormulaLog10PValue`).
 */

import { logBinomialSf } from '../statistics.ts';
import {
  createMt19937,
  type Mt19937,
  TORCH_RANDPERM_LARGE_N,
  torchRandpermPrefixInto,
  torchRandpermPrefixReusing,
  torchRandpermPrefixSetInto,
} from './mt19937.ts';

export type TransformersSeedingScheme = 'lefthash' | 'selfhash';

/**
 * Which repeated inputs are scored once: `none` (what transformers computes, with or without
 * `ignore_repeated_ngrams`, see the spec §6); `context`, each distinct n-gram once (what
 * `ignore_repeated_ngrams=True` is documented to do); `strict`, each distinct (generator seed, token)
 * pair once: the green bit depends on nothing else.
 */
export type TransformersDedup = 'none' | 'context' | 'strict';

/** transformers' `WatermarkingConfig` for KGW, and the model's vocabulary size. */
export interface TransformersKgwParams {
  /** `seeding_scheme`, default `lefthash`. */
  seedingScheme?: TransformersSeedingScheme;
  /** `hashing_key`, default 15485863; lefthash in [−2^63, 2^64), selfhash in [−2^63, 2^63). */
  hashKey?: bigint | number;
  /** `greenlist_ratio` γ, default 0.25. */
  gamma?: number;
  /** `bias` δ added to green logits, default 2. */
  delta?: number;
  /** `context_width`, default 1. */
  contextWidth?: number;
  /** The model config's `vocab_size`: randperm's length, so the green lists depend on it. */
  vocabSize: number;
}

export interface ResolvedTransformersKgwParams {
  readonly seedingScheme: TransformersSeedingScheme;
  readonly hashKey: bigint;
  readonly gamma: number;
  readonly delta: number;
  readonly contextWidth: number;
  readonly vocabSize: number;
  /** int(V·γ): the number of green tokens at every step. */
  readonly greenlistSize: number;
  /** greenlistSize / V: the probability that a token is green under the null. */
  readonly nullGreenProbability: number;
}

export interface TransformersKgwDetectOptions {
  /** Default `none`, as transformers. */
  dedup?: TransformersDedup;
  /** transformers drops the first id when it equals the model's BOS id. */
  bosTokenId?: number;
}

export interface TransformersKgwDetection {
  readonly numScored: number;
  /** Green count among the scored positions. */
  readonly score: number;
  /** transformers' z = (k − γn)/√(nγ(1 − γ)), with γ the configured ratio; 0 when nothing is scored. */
  readonly z: number;
  /** Exact log10 P[Bin(n, greenlistSize/V) ≥ k]; finite however small. */
  readonly log10PValue: number;
  /** log10 of the p-value transformers reports, computed as it does in double; −Infinity where that is 0. */
  readonly peerLog10PValue: number;
  /** log10 of transformers' p-value formula ½e^{−2z²/π} (z > 0) evaluated exactly. */
  readonly peerFormulaLog10PValue: number;
  /** Indices (into the ids after a dropped BOS) of the scored tokens, in order. */
  readonly positions: readonly number[];
  /** 1 where the token at `positions[i]` is green. */
  readonly greenFlags: readonly number[];
}

/** How a detector works; nothing here changes a result. */
export interface TransformersKgwDetectorOptions {
  /**
   * Bytes the cache of green lists may hold, default {@link TRANSFORMERS_GREEN_LIST_CACHE_BYTES}; 0
   * keeps none. Each is a bitset of V bits keyed by the 32-bit generator seed, least recently used
   * first out: lefthash seeds from one token, so a corpus meets the same seeds again and again.
   */
  greenListCacheBytes?: number;
}

export interface TransformersKgwDetector {
  readonly params: ResolvedTransformersKgwParams;
  /**
   * transformers' `_get_greenlist_ids(input)`: lefthash seeds from the last id of `input`, selfhash from
   * its last `contextWidth` ids (the candidate last). Ids in torch's order.
   */
  greenList(input: ArrayLike<number>): Int32Array;
  /** Whether `token` is green after `input` (selfhash: `input` ends with the token itself). */
  isGreen(input: ArrayLike<number>, token: number): boolean;
  /** The 32-bit seed the generator runs on for `input` (the low bits of transformers' seed). */
  generatorSeed(input: ArrayLike<number>): number;
  /** transformers' seed before the generator truncates it: a value in [0, 2^64 − 1). */
  fullSeed(input: ArrayLike<number>): bigint;
  /** The processor's biased logits for one row; `contextIds` is the whole row of input ids so far. */
  bias<T extends Float32Array | Float64Array>(contextIds: ArrayLike<number>, logits: T): T;
  detect(ids: ArrayLike<number>, options?: TransformersKgwDetectOptions): TransformersKgwDetection;
}

export const TRANSFORMERS_DEFAULT_HASH_KEY = 15_485_863n;
/** transformers' `table_size`: the selfhash lookup table is randperm(1 000 003). */
export const TRANSFORMERS_TABLE_SIZE = 1_000_003;
/** Selfhash generation checks this many top candidates (a constant in transformers). */
export const TRANSFORMERS_SELFHASH_CANDIDATES = 40;
/**
 * The default bound on one detector's cache of green lists: 256 MiB, about 20,000 lists at V = 100,277.
 * Lists are made as contexts are met, so short texts use a little of it; 4 MB of English documentation
 * meets 31,939 distinct lefthash contexts, and a cache of 64 MiB makes 123,429 lists there, one of 256 MiB
 * 39,314 (`pnpm --filter @tracemark/cli bench:kgw`).
 */
export const TRANSFORMERS_GREEN_LIST_CACHE_BYTES: number = 256 * 1024 * 1024;

const SEED_MODULUS = (1n << 64n) - 1n;
const INT64_MIN = -(1n << 63n);
const INT64_LIMIT = 1n << 63n;
const UINT64_LIMIT = 1n << 64n;
const MAX_CONTEXT_WIDTH = 4096;
const LN10 = Math.LN10;
// (seed, token) as one exact number for strict dedup while ids stay below 2^21: seed + token·2^32 < 2^53
const NUMERIC_PAIR_LIMIT = 1 << 21;

function resolveHashKey(value: unknown, scheme: TransformersSeedingScheme): bigint {
  let key: bigint;
  if (typeof value === 'bigint') key = value;
  else if (typeof value === 'number' && Number.isSafeInteger(value)) key = BigInt(value);
  else throw new TypeError('hashKey: expected a bigint or a safe integer');
  const limit = scheme === 'selfhash' ? INT64_LIMIT : UINT64_LIMIT;
  // The key is a secret: the message states the bound, never the value.
  if (key < INT64_MIN || key >= limit) {
    throw new RangeError(
      `hashKey: expected an integer in [−2^63, 2^${scheme === 'selfhash' ? 63 : 64}) (${scheme} seeds torch with it)`,
    );
  }
  return key;
}

/** Validates and fills in transformers' defaults. */
export function resolveTransformersKgwParams(params: TransformersKgwParams): ResolvedTransformersKgwParams {
  if (typeof params !== 'object' || params === null) throw new TypeError('params: expected an object');
  const seedingScheme = params.seedingScheme ?? 'lefthash';
  if (seedingScheme !== 'lefthash' && seedingScheme !== 'selfhash') {
    throw new RangeError('seedingScheme: expected lefthash or selfhash');
  }
  const hashKey = resolveHashKey(params.hashKey ?? TRANSFORMERS_DEFAULT_HASH_KEY, seedingScheme);
  const gamma = params.gamma ?? 0.25;
  if (typeof gamma !== 'number' || !(gamma > 0 && gamma < 1)) {
    throw new RangeError(`gamma: expected a number strictly between 0 and 1, got ${String(gamma)}`);
  }
  const delta = params.delta ?? 2;
  if (typeof delta !== 'number' || !Number.isFinite(delta)) {
    throw new RangeError(`delta: expected a finite number, got ${String(delta)}`);
  }
  const contextWidth = params.contextWidth ?? 1;
  if (!Number.isInteger(contextWidth) || contextWidth < 1 || contextWidth > MAX_CONTEXT_WIDTH) {
    throw new RangeError(
      `contextWidth: expected an integer in [1, ${MAX_CONTEXT_WIDTH}], got ${String(contextWidth)}`,
    );
  }
  const { vocabSize } = params;
  if (!Number.isInteger(vocabSize) || vocabSize < 2 || vocabSize >= TORCH_RANDPERM_LARGE_N) {
    throw new RangeError(
      `vocabSize: expected an integer in [2, ${TORCH_RANDPERM_LARGE_N}) (torch versions permute larger ones differently), got ${String(vocabSize)}`,
    );
  }
  // Python's int(vocab_size * greenlist_ratio): the double product, truncated.
  const greenlistSize = Math.trunc(vocabSize * gamma);
  if (greenlistSize < 1) throw new RangeError('gamma: vocabSize·gamma must be at least 1 (no green token)');
  return Object.freeze({
    seedingScheme,
    hashKey,
    gamma,
    delta,
    contextWidth,
    vocabSize,
    greenlistSize,
    nullGreenProbability: greenlistSize / vocabSize,
  });
}

/** Python's `x % (2**64 - 1)`: the non-negative remainder. */
function seedModulo(value: bigint): bigint {
  const remainder = value % SEED_MODULUS;
  return remainder < 0n ? remainder + SEED_MODULUS : remainder;
}

// The selfhash table is a pure function of the 32-bit seed the hash key gives; a few are kept.
const tableCache = new Map<number, Int32Array>();
const TABLE_CACHE_SIZE = 4;

function selfhashTable(tableSeed: number): Int32Array {
  const cached = tableCache.get(tableSeed);
  if (cached !== undefined) return cached;
  const table = torchRandpermPrefixInto(
    new Int32Array(TRANSFORMERS_TABLE_SIZE),
    TRANSFORMERS_TABLE_SIZE,
    tableSeed,
    TRANSFORMERS_TABLE_SIZE,
  );
  if (tableCache.size >= TABLE_CACHE_SIZE) tableCache.delete(tableCache.keys().next().value!);
  tableCache.set(tableSeed, table);
  return table;
}

function toIds(ids: ArrayLike<number>, vocabSize: number, name: string): number[] {
  if (ids === null || typeof ids !== 'object' || typeof ids.length !== 'number') {
    throw new TypeError(`${name}: expected an array of token ids`);
  }
  const out = Array.from(ids);
  for (let i = 0; i < out.length; i++) {
    const id = out[i]!;
    if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
      throw new RangeError(
        `${name}[${i}]: expected an integer token id in [0, ${vocabSize}), got ${String(id)}`,
      );
    }
  }
  return out;
}

/** transformers' p-value as numpy computes it: 1 − ½(1 + sign(z)(1 − e^{−2z²/π})), in double. */
function peerPValue(z: number): number {
  const e = Math.exp((-2 * (z * z)) / Math.PI);
  return 1 - 0.5 * (1 + Math.sign(z) * (1 - e));
}

/** log10 of ½e^{−2z²/π} (z > 0), ½ (z = 0), 1 − ½e^{−2z²/π} (z < 0), never underflowing. */
function peerFormulaLog10(z: number): number {
  const exponent = (-2 * z * z) / Math.PI;
  if (z > 0) return (exponent - Math.LN2) / LN10;
  if (z === 0) return -Math.LN2 / LN10;
  return Math.log1p(-0.5 * Math.exp(exponent)) / LN10;
}

/** Builds a reader (and, for experiments, a sampler bias) for transformers' KGW watermark. */
export function createTransformersKgwDetector(
  input: TransformersKgwParams,
  options: TransformersKgwDetectorOptions = {},
): TransformersKgwDetector {
  const params = resolveTransformersKgwParams(input);
  const cacheBytes = options.greenListCacheBytes ?? TRANSFORMERS_GREEN_LIST_CACHE_BYTES;
  if (typeof cacheBytes !== 'number' || !(cacheBytes >= 0)) {
    throw new RangeError(`greenListCacheBytes: expected a non-negative number, got ${String(cacheBytes)}`);
  }
  const { seedingScheme, hashKey, vocabSize, greenlistSize, contextWidth, gamma } = params;
  const selfhash = seedingScheme === 'selfhash';
  // manual_seed(hashing_key) takes a negative key as its two's complement.
  const table = selfhash ? selfhashTable(Number(BigInt.asUintN(32, hashKey))) : null;
  const generator: Mt19937 = createMt19937(0);
  // randperm's array, kept as the identity between calls; the green prefix goes to `greenBuffer`
  const identity = new Int32Array(vocabSize);
  for (let i = 0; i < vocabSize; i++) identity[i] = i;
  const greenBuffer = new Int32Array(greenlistSize);
  const touched = new Int32Array(greenlistSize);

  /** The seed of the window ids[0 … end): lefthash reads ids[end − 1], selfhash the last `contextWidth`. */
  const fullSeedAt = (ids: ArrayLike<number>, end: number): bigint => {
    const last = ids[end - 1]!;
    if (!selfhash) return seedModulo(hashKey * BigInt(last));
    // torch: hash_key * a * b in int64, wrapping, then the minimum over the window.
    const b = BigInt(table![last % TRANSFORMERS_TABLE_SIZE]! + 1);
    let minimum: bigint | null = null;
    for (let i = Math.max(0, end - contextWidth); i < end; i++) {
      const a = BigInt(table![ids[i]! % TRANSFORMERS_TABLE_SIZE]! + 1);
      const product = BigInt.asIntN(64, BigInt.asIntN(64, hashKey * a) * b);
      if (minimum === null || product < minimum) minimum = product;
    }
    return seedModulo(minimum!);
  };
  const fullSeedOf = (window: readonly number[]): bigint => fullSeedAt(window, window.length);

  // Lefthash, and selfhash one token wide, seed from the last id alone: its 32-bit seed is kept.
  const seedByLastId = !selfhash || contextWidth === 1 ? new Map<number, number>() : null;
  const seed32At = (ids: ArrayLike<number>, end: number): number => {
    if (seedByLastId === null) return Number(fullSeedAt(ids, end) & 0xffffffffn);
    const last = ids[end - 1]!;
    let seed32 = seedByLastId.get(last);
    if (seed32 === undefined) {
      seed32 = Number(fullSeedAt(ids, end) & 0xffffffffn);
      seedByLastId.set(last, seed32);
    }
    return seed32;
  };

  const greenPrefix = (seed32: number): Int32Array =>
    torchRandpermPrefixReusing(identity, greenBuffer, touched, vocabSize, seed32, greenlistSize, generator);

  // Green lists as bitsets by seed. Map order is recency; a hit moves its entry to the back only once
  // it has fallen into the older half, so most hits cost one lookup and no write.
  const setWords = (vocabSize + 31) >>> 5;
  const cacheCapacity = Math.floor(cacheBytes / (setWords * 4));
  const greenSets = new Map<number, { bits: Uint32Array; used: number }>();
  let clock = 0;
  let spareSet: Uint32Array | null = null;
  const draws = new Uint32Array(greenlistSize);
  const greenSet = (seed32: number): Uint32Array => {
    clock++;
    const entry = greenSets.get(seed32);
    if (entry !== undefined) {
      if (clock - entry.used > cacheCapacity / 2) {
        greenSets.delete(seed32);
        greenSets.set(seed32, entry);
        entry.used = clock;
      }
      return entry.bits;
    }
    let bits = spareSet;
    if (greenSets.size >= cacheCapacity && greenSets.size > 0) {
      const oldest = greenSets.keys().next().value!;
      bits = greenSets.get(oldest)!.bits;
      greenSets.delete(oldest);
    }
    bits ??= new Uint32Array(setWords);
    torchRandpermPrefixSetInto(bits, identity, draws, vocabSize, seed32, greenlistSize, generator);
    if (cacheCapacity > 0) greenSets.set(seed32, { bits, used: clock });
    else spareSet = bits;
    return bits;
  };

  const greenOf = (seed32: number, token: number): boolean =>
    ((greenSet(seed32)[token >>> 5]! >>> (token & 31)) & 1) === 1;

  const checkedWindow = (inputIds: ArrayLike<number>, name: string): number[] => {
    const ids = toIds(inputIds, vocabSize, name);
    if (ids.length === 0) throw new RangeError(`${name}: expected at least one token id`);
    return ids;
  };

  const scored = (ids: readonly number[], dedup: TransformersDedup) => {
    const size = contextWidth + 1 - (selfhash ? 1 : 0);
    const positions: number[] = [];
    const greenFlags: number[] = [];
    if (ids.length - contextWidth < 1) return { positions, greenFlags };
    const seen = new Set<string | number>();
    const numericPairs = vocabSize <= NUMERIC_PAIR_LIMIT;
    for (let end = size; end <= ids.length; end++) {
      const token = ids[end - 1]!;
      // selfhash's window ends with the token, lefthash's just before it
      const seed32 = seed32At(ids, selfhash ? end : end - 1);
      if (dedup !== 'none') {
        const key =
          dedup === 'context'
            ? ids.slice(end - size, end).join(',')
            : numericPairs
              ? seed32 + token * 0x100000000
              : `${seed32}:${token}`;
        if (seen.has(key)) continue;
        seen.add(key);
      }
      positions.push(end - 1);
      greenFlags.push(greenOf(seed32, token) ? 1 : 0);
    }
    return { positions, greenFlags };
  };

  return Object.freeze({
    params,
    greenList(inputIds: ArrayLike<number>): Int32Array {
      const window = checkedWindow(inputIds, 'input');
      return greenPrefix(Number(fullSeedOf(window) & 0xffffffffn)).slice();
    },
    isGreen(inputIds: ArrayLike<number>, token: number): boolean {
      const window = checkedWindow(inputIds, 'input');
      toIds([token], vocabSize, 'token');
      return greenOf(Number(fullSeedOf(window) & 0xffffffffn), token);
    },
    generatorSeed(inputIds: ArrayLike<number>): number {
      return Number(fullSeedOf(checkedWindow(inputIds, 'input')) & 0xffffffffn);
    },
    fullSeed(inputIds: ArrayLike<number>): bigint {
      return fullSeedOf(checkedWindow(inputIds, 'input'));
    },
    bias<T extends Float32Array | Float64Array>(contextIds: ArrayLike<number>, logits: T): T {
      const context = toIds(contextIds, vocabSize, 'contextIds');
      if (
        !(logits instanceof Float32Array || logits instanceof Float64Array) ||
        logits.length !== vocabSize
      ) {
        throw new RangeError(`logits: expected a Float32Array or Float64Array of length ${vocabSize}`);
      }
      const out = logits.slice() as T;
      // transformers skips the step (with a warning) while the row is shorter than the width.
      if (context.length < contextWidth) return out;
      const delta = logits instanceof Float32Array ? Math.fround(params.delta) : params.delta;
      if (!selfhash) {
        const green = greenPrefix(Number(fullSeedOf(context) & 0xffffffffn));
        for (let i = 0; i < greenlistSize; i++) out[green[i]!] = out[green[i]!]! + delta;
        return out;
      }
      if (vocabSize < TRANSFORMERS_SELFHASH_CANDIDATES) {
        throw new RangeError(
          `vocabSize: selfhash generation checks the top ${TRANSFORMERS_SELFHASH_CANDIDATES} candidates; transformers fails below that`,
        );
      }
      const window = context.slice(Math.max(0, context.length - contextWidth + 1));
      window.push(0);
      for (const candidate of topCandidates(logits, TRANSFORMERS_SELFHASH_CANDIDATES)) {
        window[window.length - 1] = candidate;
        if (greenOf(Number(fullSeedOf(window) & 0xffffffffn), candidate)) {
          out[candidate] = out[candidate]! + delta;
        }
      }
      return out;
    },
    detect(ids: ArrayLike<number>, options: TransformersKgwDetectOptions = {}): TransformersKgwDetection {
      let tokens = toIds(ids, vocabSize, 'ids');
      const dedup = options.dedup ?? 'none';
      if (dedup !== 'none' && dedup !== 'context' && dedup !== 'strict') {
        throw new RangeError('dedup: expected none, context or strict');
      }
      const { bosTokenId } = options;
      if (bosTokenId !== undefined && tokens.length > 0 && tokens[0] === bosTokenId) tokens = tokens.slice(1);
      const { positions, greenFlags } = scored(tokens, dedup);
      const n = positions.length;
      let green = 0;
      for (const flag of greenFlags) green += flag;
      if (n === 0) {
        return Object.freeze({
          numScored: 0,
          score: 0,
          z: 0,
          log10PValue: 0,
          peerLog10PValue: 0,
          peerFormulaLog10PValue: 0,
          positions: Object.freeze(positions),
          greenFlags: Object.freeze(greenFlags),
        });
      }
      // numpy's order of operations, so z is transformers' double.
      const z = (green - gamma * n) / Math.sqrt(n * gamma * (1 - gamma));
      const peer = peerPValue(z);
      return Object.freeze({
        numScored: n,
        score: green,
        z,
        log10PValue: Math.min(0, logBinomialSf(green, n, params.nullGreenProbability) / LN10),
        peerLog10PValue: peer > 0 ? Math.min(0, Math.log10(peer)) : Number.NEGATIVE_INFINITY,
        peerFormulaLog10PValue: Math.min(0, peerFormulaLog10(z)),
        positions: Object.freeze(positions),
        greenFlags: Object.freeze(greenFlags),
      });
    },
  });
}

/**
 * The indices of the `count` largest logits, largest first, as transformers' descending sort gives
 * them; ties go to the lower index (torch does not promise an order for ties).
 */
function topCandidates(logits: Float32Array | Float64Array, count: number): number[] {
  const top: number[] = [];
  for (let i = 0; i < logits.length; i++) {
    const value = logits[i]!;
    if (top.length === count && !(value > logits[top[count - 1]!]!)) continue;
    let at = top.length === count ? count - 1 : top.length;
    while (at > 0 && value > logits[top[at - 1]!]!) at--;
    if (top.length === count) top.pop();
    top.splice(at, 0, i);
  }
  return top;
}

/**
 * transformers' `WatermarkLogitsProcessor` on one row: `contextIds` is the row of input ids (prompt
 * and tokens so far), `logits` the scores; returns new biased scores of the same type (Float32Array:
 * float32 arithmetic as torch). For many steps, build {@link createTransformersKgwDetector} once.
 */
export function transformersKgwBias<T extends Float32Array | Float64Array>(
  params: TransformersKgwParams,
  contextIds: ArrayLike<number>,
  logits: T,
): T {
  return createTransformersKgwDetector(params).bias(contextIds, logits);
}
