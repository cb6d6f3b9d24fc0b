/**
 * Reading the watermarks that SGLang's native text watermarking embeds
 * (python/sglang/srt/sampling/watermarking/, pull request #37577: keyed Aaronson-Gumbel sampling,
 * one key or two).
 *
 * Bit-exact with SGLang's hashes (MurmurHash3 x86-32 mixing of the context, then of key, context
 * hash and token), its detector's uniforms and scores, and its float32 selection rule
 * argmax log(u)/p; docs/spec/foreign-sglang.md describes every step and names the SGLang files and
 * commits. SGLang's Gumbel is not vLLM's: another hash, another uniform, another sampling rule.
 * Detection reports `log10PValue`, the exact Gamma(n, 1) tail of Σ −ln(1 − u), and
 * `peerLog10PValue`, SGLang's own formula (the same tail, which SGLang also keeps in log space).
 */

import { logGammaSf } from './gamma-tail.ts';
import { Int32TupleSet, type StrictUnits } from './tuple-set.ts';

export const SGLANG_SCHEMES: readonly ['gumbel', 'dual_key_gumbel'] = Object.freeze([
  'gumbel',
  'dual_key_gumbel',
] as const);
/** `gumbel`: one key (SGLang's `key`); `dual_key_gumbel`: `key` and `key_b` with a per-context coin. */
export type SglangScheme = (typeof SGLANG_SCHEMES)[number];

/**
 * Which repeated positions are scored once: `none`; `context` as SGLang's detector does (an exact
 * context tuple seen before is skipped); `strict` as SGLang's generator does (a 32-bit context hash
 * seen before is skipped, so each PRF input (key, context hash, token) is scored at most once).
 */
export type SglangDedup = 'none' | 'context' | 'strict';

/** SGLang's limits (config.py): context window 1–64, at most 4096 watermarked contexts a request. */
export const SGLANG_MAX_CONTEXT_WINDOW = 64;
export const SGLANG_MAX_CONTEXTS = 4096;

/** An SGLang watermark configuration (its `--watermark-config` fields); the keys are secrets. */
export interface SglangKey {
  /** Default `dual_key_gumbel` when `keyB` is given, else `gumbel`. */
  scheme?: SglangScheme;
  /** SGLang's `key` (key A) as an unsigned 64-bit integer; see {@link parseSglangKey}. */
  engineKey: bigint;
  /** SGLang's `key_b`: dual-key mode only. */
  keyB?: bigint;
  /** SGLang's `mixing_probability` (dual-key only, default 0.5): the probability of key A. */
  mixingProbability?: number;
  /** SGLang's `context_window` (the request's effective window), 1–64, default 4. */
  contextWindow?: number;
  /** The detector's prefix budget (SGLang's `max_contexts`), default 4096. */
  maxContexts?: number;
  /** Token ids must be below it; default 2^32 (SGLang accepts any unsigned 32-bit id). */
  vocabSize?: number;
}

export interface ResolvedSglangKey {
  readonly scheme: SglangScheme;
  readonly engineKey: bigint;
  readonly keyB: bigint | null;
  readonly mixingProbability: number | null;
  /** ⌊mixingProbability · 2^32⌋, as SGLang computes it; null for one key. */
  readonly mixingThreshold: number | null;
  readonly contextWindow: number;
  readonly maxContexts: number;
  readonly vocabSize: number;
}

export interface SglangTokenScore {
  /** Index in the completion. */
  readonly position: number;
  readonly token: number;
  /** The tokens the score depends on (the last `contextWindow`, fewer only at the very start). */
  readonly context: readonly number[];
  readonly contextHash: number;
  /** Which key scored it: `a`, or for dual-key the coin's choice. */
  readonly key: 'a' | 'b';
  /** The 32-bit token hash. */
  readonly hash: number;
  /** (hash + ½) / 2^32, in double, as SGLang's detector. */
  readonly uniform: number;
  /** −ln(1 − uniform). */
  readonly score: number;
}

export interface SglangDetection {
  readonly numScored: number;
  /** S = Σ −ln(1 − u) over the scored positions. */
  readonly score: number;
  /** Completion positions scored, in order. */
  readonly positions: readonly number[];
  /** Exact log10 P[Gamma(n, 1) ≥ S]; finite however small. */
  readonly log10PValue: number;
  /** SGLang's p-value formula (`_gamma_log_survival`: the same Gamma tail), in log10. */
  readonly peerLog10PValue: number;
  /** Completion tokens covered, including repeated and skipped ones (SGLang's `tokens_examined`). */
  readonly tokensExamined: number;
  /** Positions skipped because their context was scored before (SGLang's `repeated_contexts`). */
  readonly repeatedContexts: number;
  /** Leading completion tokens skipped for want of prompt ids (SGLang's `skipped_initial_tokens`). */
  readonly skippedInitialTokens: number;
  /** True when scoring stopped at `maxContexts` (SGLang's `prefix_limit_reached`). */
  readonly prefixLimitReached: boolean;
  /** Per-token detail of the scored positions, when asked for. */
  readonly tokens?: readonly SglangTokenScore[];
}

export interface SglangDetectOptions {
  /** Default `context`, as SGLang's detector. */
  dedup?: SglangDedup;
  /**
   * The prompt's token ids: the first completion token's context is the prompt's last
   * `contextWindow` ids. Without them the first `contextWindow` completion tokens are skipped.
   */
  promptIds?: ArrayLike<number>;
  /** Return per-token detail. */
  tokens?: boolean;
}

export interface SglangDetector {
  readonly key: ResolvedSglangKey;
  /** Scores one token after a context of 1 to `contextWindow` ids. */
  scoreToken(context: readonly number[], token: number): SglangTokenScore;
  detect(tokenIds: ArrayLike<number>, options?: SglangDetectOptions): SglangDetection;
  /**
   * What `detect(tokenIds, { dedup: 'strict', promptIds })` scores, as packed units, from detect's
   * own loop: its completion positions in order (at most `maxContexts`), each with its score
   * −ln(1 − u) (the terms of detect's compensated sum) and the words (context hash, token) of its
   * PRF input, 2 words. The hash picks the key, so equal words are equal units.
   */
  strictUnits(tokenIds: ArrayLike<number>, options?: { readonly promptIds?: ArrayLike<number> }): StrictUnits;
}

const MASK32 = 0xffffffff;
const TWO_32 = 4294967296;
const UINT64_LIMIT = 1n << 64n;
const LN10 = Math.LN10;
const F32_HALF_SCALE = Math.fround(0.5);

function assertKey(value: unknown, name: string): asserts value is bigint {
  if (typeof value !== 'bigint') throw new TypeError(`${name}: expected a bigint, got ${typeof value}`);
  if (value < 0n || value >= UINT64_LIMIT) {
    // The value is a secret: the message names the bound it breaks, never the key.
    throw new RangeError(
      `${name}: expected 0 ≤ key < 2^64, got ${value < 0n ? 'a negative value' : 'a larger value'}`,
    );
  }
}

function assertWord(value: number, name: string): void {
  if (!Number.isInteger(value) || value < 0 || value > MASK32) {
    throw new RangeError(`${name}: expected an unsigned 32-bit integer, got ${String(value)}`);
  }
}

/**
 * SGLang's key text (`parse_watermark_key`): 1 to 16 hex digits, optionally after `0x`/`0X`, read as
 * an unsigned 64-bit integer (SGLang stores it two's-complement signed; the words it hashes are the
 * same). The message of a refusal never repeats the text.
 */
export function parseSglangKey(text: string): bigint {
  if (typeof text !== 'string') throw new TypeError('key: expected a hex string');
  const digits = text.toLowerCase().startsWith('0x') ? text.slice(2) : text;
  if (digits.length < 1 || digits.length > 16) throw new RangeError('key: must contain 1 to 16 hex digits');
  if (!/^[0-9a-fA-F]+$/.test(digits)) throw new RangeError('key: must contain only hex digits');
  return BigInt(`0x${digits}`);
}

/** The key as SGLang's config would hold it: 16 lowercase hex digits. */
export function formatSglangKey(key: bigint): string {
  assertKey(key, 'key');
  return key.toString(16).padStart(16, '0');
}

function rotl32(value: number, shift: number): number {
  return ((value << shift) | (value >>> (32 - shift))) >>> 0;
}

/** MurmurHash3 x86-32 body step. */
function mix(state: number, word: number): number {
  let value = Math.imul(word, 0xcc9e2d51);
  value = Math.imul(rotl32(value, 15), 0x1b873593);
  return (Math.imul(rotl32((state ^ value) >>> 0, 13), 5) + 0xe6546b64) >>> 0;
}

/** MurmurHash3 finalizer. */
function fmix32(value: number): number {
  let h = value >>> 0;
  h = (h ^ (h >>> 16)) >>> 0;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h = (h ^ (h >>> 13)) >>> 0;
  h = Math.imul(h, 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

/** MurmurHash3's last step after the body's `state` over `length` words: fmix32(state ⊕ 4·length). */
function murmurFinish(state: number, length: number): number {
  return fmix32((state ^ ((4 * length) >>> 0)) >>> 0);
}

/** MurmurHash3 x86-32 with seed 0 of the words `words[from … to)`. */
function murmurRange(words: ArrayLike<number>, from: number, to: number): number {
  let state = 0;
  for (let i = from; i < to; i++) state = mix(state, words[i]! >>> 0);
  return murmurFinish(state, to - from);
}

/** MurmurHash3 x86-32 of 32-bit words with seed 0: fmix32(mix(…mix(0, w_1)…, w_L) ⊕ 4L). */
export function sglangMurmurWords(words: readonly number[]): number {
  return murmurRange(words, 0, words.length);
}

/** SGLang's context hash: MurmurHash3 of the context's token ids (each mod 2^32). */
export function sglangContextHash(context: readonly number[]): number {
  context.forEach((value, index) => {
    assertWord(value, `context[${index}]`);
  });
  return sglangMurmurWords(context);
}

function keyWords(key: bigint): [number, number] {
  return [Number(key & 0xffffffffn), Number(key >> 32n)];
}

/** SGLang's token hash: MurmurHash3 of (key low word, key high word, context hash, token). */
export function sglangTokenHash(key: bigint, contextHash: number, token: number): number {
  assertKey(key, 'key');
  assertWord(contextHash, 'contextHash');
  assertWord(token, 'token');
  const [low, high] = keyWords(key);
  return sglangMurmurWords([low, high, contextHash, token]);
}

/** SGLang's dual-key coin: MurmurHash3 of (A low, A high, B low, B high, context hash); key A iff coin < threshold. */
export function sglangKeyCoin(keyA: bigint, keyB: bigint, contextHash: number): number {
  assertKey(keyA, 'keyA');
  assertKey(keyB, 'keyB');
  assertWord(contextHash, 'contextHash');
  const [aLow, aHigh] = keyWords(keyA);
  const [bLow, bHigh] = keyWords(keyB);
  return sglangMurmurWords([aLow, aHigh, bLow, bHigh, contextHash]);
}

/** ⌊p · 2^32⌋ as SGLang computes it (`int(mixing_probability * 2**32)`). */
export function sglangMixingThreshold(mixingProbability: number): number {
  assertOpenUnit(mixingProbability, 'mixingProbability');
  return Math.trunc(mixingProbability * TWO_32);
}

/** The detector's uniform: (hash + ½) / 2^32, exact in double, in (0, 1). */
export function sglangUniform(hash: number): number {
  assertWord(hash, 'hash');
  return (hash + 0.5) / TWO_32;
}

/**
 * The generator's float32 ln u: below 2^31, fround(ln(fround(fround(h) + ½) / 2^32)); from 2^31 on,
 * fround(ln1p(−fround(fround(2^32 − 1 − h) + ½) / 2^32)), which keeps the top 128 hashes below 0
 * (in float32 their (h + ½)/2^32 rounds to 1). SGLang evaluates ln in float32 with torch's kernels;
 * this is the correctly rounded value, which the vectors check against SGLang's bit for bit.
 */
export function sglangLogUniformFloat32(hash: number): number {
  assertWord(hash, 'hash');
  return logUniformFloat32(hash);
}

function logUniformFloat32(hash: number): number {
  if (hash < 0x80000000) {
    const shifted = Math.fround(Math.fround(hash) + F32_HALF_SCALE);
    return Math.fround(Math.log(shifted / TWO_32));
  }
  const complement = Math.fround(Math.fround(MASK32 - hash) + F32_HALF_SCALE);
  return Math.fround(Math.log1p(-complement / TWO_32));
}

function assertOpenUnit(value: number, name: string): void {
  if (typeof value !== 'number' || !(value > 0 && value < 1)) {
    throw new RangeError(`${name}: expected a number strictly between 0 and 1, got ${String(value)}`);
  }
}

function resolve(params: SglangKey): ResolvedSglangKey {
  if (typeof params !== 'object' || params === null) throw new TypeError('key: expected an object');
  const scheme = params.scheme ?? (params.keyB === undefined ? 'gumbel' : 'dual_key_gumbel');
  if (!SGLANG_SCHEMES.includes(scheme)) {
    throw new RangeError(`scheme: expected one of ${SGLANG_SCHEMES.join(', ')}`);
  }
  assertKey(params.engineKey, 'engineKey');
  let keyB: bigint | null = null;
  let mixingProbability: number | null = null;
  let mixingThreshold: number | null = null;
  if (scheme === 'dual_key_gumbel') {
    if (params.keyB === undefined) throw new RangeError('keyB: dual_key_gumbel needs key B');
    assertKey(params.keyB, 'keyB');
    keyB = params.keyB;
    mixingProbability = params.mixingProbability ?? 0.5;
    mixingThreshold = sglangMixingThreshold(mixingProbability);
  } else {
    if (params.keyB !== undefined) throw new RangeError('keyB: applies only to dual_key_gumbel');
    if (params.mixingProbability !== undefined) {
      throw new RangeError('mixingProbability: applies only to dual_key_gumbel');
    }
  }
  const contextWindow = params.contextWindow ?? 4;
  if (!Number.isInteger(contextWindow) || contextWindow < 1 || contextWindow > SGLANG_MAX_CONTEXT_WINDOW) {
    throw new RangeError(
      `contextWindow: expected an integer in [1, ${SGLANG_MAX_CONTEXT_WINDOW}], got ${String(contextWindow)}`,
    );
  }
  const maxContexts = params.maxContexts ?? SGLANG_MAX_CONTEXTS;
  if (!Number.isInteger(maxContexts) || maxContexts < 1 || maxContexts > SGLANG_MAX_CONTEXTS) {
    throw new RangeError(
      `maxContexts: expected an integer in [1, ${SGLANG_MAX_CONTEXTS}], got ${String(maxContexts)}`,
    );
  }
  const vocabSize = params.vocabSize ?? TWO_32;
  if (!Number.isInteger(vocabSize) || vocabSize < 1 || vocabSize > TWO_32) {
    throw new RangeError(`vocabSize: expected an integer in [1, 2^32], got ${String(vocabSize)}`);
  }
  return Object.freeze({
    scheme,
    engineKey: params.engineKey,
    keyB,
    mixingProbability,
    mixingThreshold,
    contextWindow,
    maxContexts,
    vocabSize,
  });
}

function toTokenArray(tokenIds: ArrayLike<number>, vocabSize: number, name: string): number[] {
  if (tokenIds === null || typeof tokenIds !== 'object' || typeof tokenIds.length !== 'number') {
    throw new TypeError(`${name}: expected an array of token ids`);
  }
  const tokens = Array.from(tokenIds);
  tokens.forEach((value, index) => {
    if (!Number.isInteger(value) || value < 0 || value >= vocabSize) {
      throw new RangeError(
        `${name}[${index}]: expected an integer token id in [0, ${vocabSize}), got ${String(value)}`,
      );
    }
  });
  return tokens;
}

/**
 * A key's hashes with its words mixed in once: which key hashes a context (A for one key; for two,
 * A when the coin {@link sglangKeyCoin} is below the threshold) and the mixing state of the token
 * hash {@link sglangTokenHash} after the chosen key's words and the context hash, which
 * {@link tokenHashAfter} completes with the token.
 */
function keyHashes(key: ResolvedSglangKey): {
  readonly usesKeyA: (contextHash: number) => boolean;
  readonly tokenPrefix: (keyA: boolean, contextHash: number) => number;
} {
  const [aLow, aHigh] = keyWords(key.engineKey);
  const [bLow, bHigh] = key.keyB === null ? [0, 0] : keyWords(key.keyB);
  const prefixA = mix(mix(0, aLow), aHigh);
  const prefixB = mix(mix(0, bLow), bHigh);
  // the coin hashes (A low, A high, B low, B high, context hash)
  const coinPrefix = mix(mix(prefixA, bLow), bHigh);
  const threshold = key.mixingThreshold;
  return {
    usesKeyA: (contextHash) =>
      threshold === null || murmurFinish(mix(coinPrefix, contextHash), 5) < threshold,
    tokenPrefix: (keyA, contextHash) => mix(keyA ? prefixA : prefixB, contextHash),
  };
}

/** The token hash from {@link keyHashes}' `tokenPrefix` and the token. */
function tokenHashAfter(prefix: number, token: number): number {
  return murmurFinish(mix(prefix, token >>> 0), 4);
}

/** SGLang's detector score of a token hash: −ln(1 − u), u = (hash + ½) / 2^32. */
function hashScore(hash: number): number {
  return -Math.log1p(-((hash + 0.5) / TWO_32));
}

/**
 * One Aaronson-Gumbel step of SGLang's generator, for research experiments: the token
 * argmax_{v : p_v > 0} ln u_v / p_v in float32 (ties to the lowest id), with u_v from the key chosen
 * for the context. `contextIds` are the tokens before the position; the last `contextWindow` of them
 * are the context. `probs` are the final (truncated, renormalized) probabilities, read as float32.
 * SGLang does not watermark a position with an empty context: that is a RangeError here.
 */
export function sglangGumbelSample(
  params: SglangKey,
  contextIds: ArrayLike<number>,
  probs: Float64Array,
): number {
  const key = resolve(params);
  const history = toTokenArray(contextIds, key.vocabSize, 'contextIds');
  if (history.length === 0) throw new RangeError('contextIds: SGLang does not watermark an empty context');
  if (!(probs instanceof Float64Array)) throw new TypeError('probs: expected a Float64Array');
  if (probs.length > key.vocabSize) throw new RangeError('probs: longer than the vocabulary');
  const contextHash = murmurRange(history, Math.max(0, history.length - key.contextWindow), history.length);
  const hashes = keyHashes(key);
  // The first three mixing steps do not depend on the token.
  const prefix = hashes.tokenPrefix(hashes.usesKeyA(contextHash), contextHash);
  let best = -1;
  let bestScore = Number.NEGATIVE_INFINITY;
  for (let token = 0; token < probs.length; token++) {
    const p = Math.fround(probs[token]!);
    if (!(p > 0)) continue;
    const hash = tokenHashAfter(prefix, token);
    const score = Math.fround(logUniformFloat32(hash) / p);
    if (best < 0 || score > bestScore) {
      best = token;
      bestScore = score;
    }
  }
  if (best < 0) throw new RangeError('probs: no token has a positive probability');
  return best;
}

/** Exactly rounded running sum is not needed; Neumaier's compensation keeps S within an ulp or two of fsum. */
function compensatedSum(values: ArrayLike<number>): number {
  let sum = 0;
  let compensation = 0;
  for (let i = 0; i < values.length; i++) {
    const value = values[i]!;
    const next = sum + value;
    compensation += Math.abs(sum) >= Math.abs(value) ? sum - next + value : value - next + sum;
    sum = next;
  }
  return sum + compensation;
}

/** ln P[Gamma(n, 1) ≥ S]: SGLang's null (each −ln(1 − u) an Exp(1) variable) and its formula. */
function logTail(n: number, score: number): number {
  if (n === 0 || score <= 0) return 0;
  return Math.min(0, logGammaSf(n, score));
}

/** Builds a detector for an SGLang watermark configuration. */
export function createSglangDetector(params: SglangKey): SglangDetector {
  const key = resolve(params);
  const width = key.contextWindow;
  const { usesKeyA, tokenPrefix } = keyHashes(key);

  const scored = (
    context: readonly number[],
    contextHash: number,
    token: number,
    position: number,
  ): SglangTokenScore => {
    const keyA = usesKeyA(contextHash);
    const hash = tokenHashAfter(tokenPrefix(keyA, contextHash), token);
    return Object.freeze({
      position,
      token,
      context: Object.freeze([...context]),
      contextHash,
      key: keyA ? 'a' : 'b',
      hash,
      uniform: (hash + 0.5) / TWO_32,
      score: hashScore(hash),
    });
  };

  /**
   * detect's walk over a completion after its prompt, and strictUnits': the positions `dedup` keeps
   * (at most `maxContexts`) with their scores, in order, with `detail` their records, with `pack`
   * their units' words (context hash, token); arrays of the most positions, `count` used.
   */
  const walk = (
    completion: readonly number[],
    prompt: readonly number[],
    dedup: SglangDedup,
    detail: boolean,
    pack: boolean,
  ) => {
    const tokens = [...prompt.slice(Math.max(0, prompt.length - width)), ...completion];
    const start = Math.min(prompt.length, width);
    // Without prompt ids the first `width` completion tokens have unknown contexts.
    const first = prompt.length > 0 ? start : Math.min(width, completion.length);
    const capacity = Math.min(tokens.length - first, key.maxContexts);
    // `strict`: the context hashes scored; `context`: the context tuples, as text
    const hashes = dedup === 'strict' ? new Int32TupleSet(1, capacity) : null;
    const contexts = dedup === 'context' ? new Set<string>() : null;
    const hashWord = new Uint32Array(1);
    const positions = new Uint32Array(capacity);
    const values = new Float64Array(capacity);
    const words = pack ? new Uint32Array(2 * capacity) : null;
    const records: SglangTokenScore[] = [];
    let count = 0;
    let repeated = 0;
    let examined = first - start;
    for (let position = first; position < tokens.length; position++) {
      examined = position - start + 1;
      const from = Math.max(0, position - width);
      const contextHash = murmurRange(tokens, from, position);
      hashWord[0] = contextHash;
      if (hashes?.addFrom(hashWord, 0)) {
        repeated++;
        continue;
      }
      if (contexts !== null) {
        const seenKey = tokens.slice(from, position).join(',');
        if (contexts.has(seenKey)) {
          repeated++;
          continue;
        }
        contexts.add(seenKey);
      }
      const token = tokens[position]!;
      const hash = tokenHashAfter(tokenPrefix(usesKeyA(contextHash), contextHash), token);
      if (words !== null) {
        words[2 * count] = contextHash;
        words[2 * count + 1] = token;
      }
      if (detail) records.push(scored(tokens.slice(from, position), contextHash, token, position - start));
      positions[count] = position - start;
      values[count++] = hashScore(hash);
      if (count === key.maxContexts) break;
    }
    return { count, positions, values, words, records, repeated, examined, skipped: first - start };
  };

  const tokensOf = (tokenIds: ArrayLike<number>, promptIds: ArrayLike<number> | undefined) => ({
    completion: toTokenArray(tokenIds, key.vocabSize, 'tokenIds'),
    prompt: promptIds === undefined ? [] : toTokenArray(promptIds, key.vocabSize, 'promptIds'),
  });

  return Object.freeze({
    key,
    scoreToken(context: readonly number[], token: number): SglangTokenScore {
      if (!Array.isArray(context) || context.length < 1 || context.length > width) {
        throw new RangeError(`context: expected 1 to ${width} token ids`);
      }
      const checked = toTokenArray(context, key.vocabSize, 'context');
      const [checkedToken] = toTokenArray([token], key.vocabSize, 'token');
      return scored(checked, sglangMurmurWords(checked), checkedToken!, 0);
    },
    detect(tokenIds: ArrayLike<number>, options: SglangDetectOptions = {}): SglangDetection {
      const { completion, prompt } = tokensOf(tokenIds, options.promptIds);
      const dedup = options.dedup ?? 'context';
      if (dedup !== 'none' && dedup !== 'context' && dedup !== 'strict') {
        throw new RangeError('dedup: expected none, context or strict');
      }
      const walked = walk(completion, prompt, dedup, options.tokens === true, false);
      const n = walked.count;
      const score = compensatedSum(walked.values.subarray(0, n));
      const logP = logTail(n, score);
      const detection: SglangDetection = {
        numScored: n,
        score,
        positions: Object.freeze(Array.from(walked.positions.subarray(0, n))),
        log10PValue: logP / LN10,
        peerLog10PValue: logP / LN10,
        tokensExamined: walked.examined,
        repeatedContexts: walked.repeated,
        skippedInitialTokens: walked.skipped,
        prefixLimitReached: n === key.maxContexts,
        ...(options.tokens === true ? { tokens: Object.freeze(walked.records) } : {}),
      };
      return Object.freeze(detection);
    },
    strictUnits(
      tokenIds: ArrayLike<number>,
      options: { readonly promptIds?: ArrayLike<number> } = {},
    ): StrictUnits {
      const { completion, prompt } = tokensOf(tokenIds, options.promptIds);
      const { count, positions, values, words } = walk(completion, prompt, 'strict', false, true);
      return {
        unitWidth: 2,
        words: words!.subarray(0, 2 * count),
        values: values.subarray(0, count),
        positions: positions.subarray(0, count),
      };
    },
  });
}
