/**
 * A test for the artefact that learned spoofing leaves (Gloaguen et al. 2024, "Discovering Clues of
 * Spoofed LM Watermarks", https://arxiv.org/abs/2410.02693): a spoofer knows the colour of a
 * (context, token) pair only when that pair was frequent in the text it harvested, so in spoofed text
 * the mark concentrates on common pairs and fades on rare ones. A genuine generator applies the mark
 * at every position alike, and where it shows at all it shows more on rare pairs: a green token of
 * low model probability is chosen mostly because the bias lifted it, a near-certain one whatever its
 * colour.
 *
 * The test. Score the text with the key exactly as detection does (spec §6: dedup on (seed, token),
 * prompt pairs excluded). Each scored position i gets a mark bit m_i (green, or for a Gumbel key a
 * score ≥ ln 2, i.e. u ≥ ½) and a learnability x_i ≥ 0 from a caller-given function of the text
 * alone, e.g. the count of the position's n-gram in an unwatermarked reference corpus
 * ({@link createNgramCounts}). Positions with x_i > θ are "common", the rest "rare"; θ defaults to
 * the median of the x_i, a choice that sees the x_i only. The 2 × 2 table (common/rare × marked/not)
 * is tested one-sided with Fisher's exact test: p = P[H ≥ k] for H hypergeometric (N scored, K
 * marked, n common), k the marked common positions.
 *
 * Gumbel keys: a position whose context seed occurred earlier in the text was sampled unmarked
 * (watermark-gumbel §6) and a pair first scored there lost the keyed race at that context; these
 * positions are left out, since the unmarked steps' new pairs are mostly rare tokens and would make
 * the marked ones look common.
 *
 * Null and calibration. Conditional on the x_i, p is exact under "mark bits independent of
 * learnability" (the hypergeometric is the permutation distribution). Genuine watermarked text
 * departs from that null in the other direction (fewer marked among common pairs, when x tracks the
 * model's probability), which makes the one-sided test conservative there; human text carries no
 * mark and is near the exact null. Both are measured (research experiment `stealing`). The
 * reference corpus must be unwatermarked: counts from issued (watermarked) text would make common
 * pairs greener in genuine text by construction (field notes §4).
 */
import { logGamma } from './foreign/gamma-tail.ts';
import { Scorer } from './scoring.ts';
import type { Watermarker } from './watermarker.ts';

/** The learnability of position `index` of `tokens` (the prompt, then the completion): a number ≥ 0. */
export type Learnability = (tokens: Uint32Array, index: number) => number;

export interface SpoofTestOptions {
  /** Prompt token ids: context for the first tokens; their (seed, token) pairs are not scored. */
  readonly prompt?: ArrayLike<number>;
  /** Score each (seed, token) pair once (default true). */
  readonly dedup?: boolean;
  /** Positions with learnability above θ are common. Default: the median over the scored positions. */
  readonly threshold?: number;
}

export interface SpoofTestGroup {
  readonly numScored: number;
  /** Green (green-list keys) or with u ≥ ½ (Gumbel keys). */
  readonly numMarked: number;
}

export interface SpoofTestResult {
  readonly keyId: string;
  /** Positions tested: scored positions (Gumbel keys: those at a first occurrence of their context seed). */
  readonly numScored: number;
  readonly threshold: number;
  /** Positions with learnability > threshold. */
  readonly common: SpoofTestGroup;
  readonly rare: SpoofTestGroup;
  /** Marked share among common minus among rare (NaN when a group is empty). */
  readonly difference: number;
  /** log10 of the one-sided Fisher exact p-value P[H ≥ common.numMarked]; 0 when a group is empty. */
  readonly log10P: number;
}

const LN10 = Math.LN10;
const GUMBEL_MARK = Math.LN2;

function logChoose(n: number, k: number): number {
  if (k === 0 || k === n) return 0;
  return logGamma(n + 1) - logGamma(k + 1) - logGamma(n - k + 1);
}

function assertCount(value: number, name: string): void {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > Number.MAX_SAFE_INTEGER) {
    throw new RangeError(`${name}: expected a non-negative integer, got ${String(value)}`);
  }
}

/**
 * log10 P[H ≥ k] for H ~ Hypergeometric(population N, successes K, draws n): the exact tail, summed
 * in log space from its largest term, finite far below 1e-308.
 * P[H = x] = C(K, x)·C(N − K, n − x) / C(N, n), max(0, n + K − N) ≤ x ≤ min(n, K).
 */
export function log10HypergeometricSf(
  k: number,
  population: number,
  successes: number,
  draws: number,
): number {
  assertCount(k, 'k');
  assertCount(population, 'population');
  assertCount(successes, 'successes');
  assertCount(draws, 'draws');
  if (successes > population) throw new RangeError('successes: exceeds population');
  if (draws > population) throw new RangeError('draws: exceeds population');
  const low = Math.max(0, draws + successes - population);
  const high = Math.min(draws, successes);
  if (k <= low) return 0;
  if (k > high) return Number.NEGATIVE_INFINITY;
  const total = logChoose(population, draws);
  const logTerm = (x: number) =>
    logChoose(successes, x) + logChoose(population - successes, draws - x) - total;
  // The pmf is unimodal with mode ⌊(n + 1)(K + 1)/(N + 2)⌋: from k upward the terms fall once past it.
  const mode = Math.floor(((draws + 1) * (successes + 1)) / (population + 2));
  if (k <= mode) {
    // The upper tail holds the mode: 1 − P[H < k] is better summed as the lower tail's complement.
    let lowerLog = Number.NEGATIVE_INFINITY;
    for (let x = k - 1; x >= low; x--) {
      const term = logTerm(x);
      lowerLog = logAdd(lowerLog, term);
      if (term < lowerLog - 40) break;
    }
    return Math.log1p(-Math.min(1, Math.exp(lowerLog))) / LN10;
  }
  let sum = Number.NEGATIVE_INFINITY;
  for (let x = k; x <= high; x++) {
    const term = logTerm(x);
    sum = logAdd(sum, term);
    if (term < sum - 40) break;
  }
  return Math.min(0, sum / LN10);
}

function logAdd(a: number, b: number): number {
  if (a === Number.NEGATIVE_INFINITY) return b;
  if (b === Number.NEGATIVE_INFINITY) return a;
  return a > b ? a + Math.log1p(Math.exp(b - a)) : b + Math.log1p(Math.exp(a - b));
}

/** 1 for each completion token whose context seed occurred earlier (prompt windows included). */
function repeatedContexts(watermarker: Watermarker, full: Uint32Array, promptLength: number): Uint8Array {
  const repeated = new Uint8Array(full.length - promptLength);
  const seen = new Set<string>();
  const seed = new Uint32Array(2);
  for (let end = 1; end < full.length; end++) {
    if (!watermarker.contextSeed(full.subarray(0, end), seed)) continue;
    const key = `${seed[0]}:${seed[1]}`;
    if (end >= promptLength && seen.has(key)) repeated[end - promptLength] = 1;
    seen.add(key);
  }
  return repeated;
}

function median(values: Float64Array): number {
  if (values.length === 0) return 0;
  const sorted = Float64Array.from(values).sort();
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** Tests a text for the spoofing artefact under one key (see the module comment). */
export function spoofTest(
  tokens: ArrayLike<number>,
  watermarker: Watermarker,
  learnability: Learnability,
  options: SpoofTestOptions = {},
): SpoofTestResult {
  if (typeof learnability !== 'function') throw new TypeError('learnability: expected a function');
  const prompt = options.prompt ?? [];
  const scorer = new Scorer(watermarker, { dedup: options.dedup ?? true });
  if (prompt.length > 0) scorer.addPrompt(prompt);
  scorer.pushWithoutStatus(tokens);
  const positions = scorer.scoredPositions();
  const gumbel = watermarker.family === 'gumbel';
  const bits = gumbel ? null : scorer.scoredBits();
  const scores = gumbel ? scorer.scoredScores() : null;
  const full = new Uint32Array(prompt.length + tokens.length);
  for (let i = 0; i < prompt.length; i++) full[i] = prompt[i]!;
  for (let i = 0; i < tokens.length; i++) full[prompt.length + i] = tokens[i]!;
  // Gumbel keys: a step whose context seed occurred before is sampled unmarked (watermark-gumbel §6),
  // and a pair scored there is one that lost the keyed race: such positions are left out.
  const repeated = gumbel ? repeatedContexts(watermarker, full, prompt.length) : null;
  const values = new Float64Array(positions.length);
  for (let j = 0; j < positions.length; j++) {
    const value = learnability(full, prompt.length + positions[j]!);
    if (typeof value !== 'number' || !(value >= 0)) {
      throw new RangeError(
        `learnability: expected a number ≥ 0 at token ${positions[j]}, got ${String(value)}`,
      );
    }
    values[j] = value;
  }
  const threshold =
    options.threshold ??
    median(repeated === null ? values : values.filter((_, j) => repeated[positions[j]!] === 0));
  if (typeof threshold !== 'number' || Number.isNaN(threshold)) {
    throw new RangeError(`threshold: expected a number, got ${String(threshold)}`);
  }
  let common = 0;
  let commonMarked = 0;
  let marked = 0;
  let numScored = 0;
  for (let j = 0; j < positions.length; j++) {
    if (repeated !== null && repeated[positions[j]!] === 1) continue;
    numScored++;
    const isMarked = gumbel ? scores![j]! >= GUMBEL_MARK : bits![j] === 1;
    if (isMarked) marked++;
    if (values[j]! > threshold) {
      common++;
      if (isMarked) commonMarked++;
    }
  }
  const rare = numScored - common;
  const rareMarked = marked - commonMarked;
  const empty = common === 0 || rare === 0;
  return {
    keyId: watermarker.keyId,
    numScored,
    threshold,
    common: { numScored: common, numMarked: commonMarked },
    rare: { numScored: rare, numMarked: rareMarked },
    difference: empty ? Number.NaN : commonMarked / common - rareMarked / rare,
    log10P: empty ? 0 : log10HypergeometricSf(commonMarked, numScored, marked, common),
  };
}

export interface NgramCounts {
  /** Tokens per n-gram: the token and its order − 1 predecessors. */
  readonly order: number;
  /** Distinct n-grams counted. */
  readonly size: number;
  /** Occurrences of the n-gram ending at `index` (0 when index < order − 1): a {@link Learnability}. */
  count(tokens: Uint32Array, index: number): number;
  /**
   * The counts as two parallel arrays (for a cache file; {@link ngramCountsFromTable} reads them back), or
   * null when some n-gram has no numeric key (order above 2, or an id of 2^21 or more before the last).
   */
  toTable(): NgramTable | null;
}

/** Unigram or bigram counts as sorted numeric keys (first · 2^32 + second) and their counts. */
export interface NgramTable {
  readonly order: number;
  readonly keys: Float64Array;
  readonly counts: Uint32Array;
}

/** Token ids below this make an exact numeric key for a bigram: first · 2^32 + second < 2^53. */
const NUMERIC_KEY_LIMIT = 2 ** 21;

function numericKeyAt(order: number, tokens: ArrayLike<number>, end: number): number {
  if (order === 1) return tokens[end]!;
  const first = tokens[end - 1]!;
  return first < NUMERIC_KEY_LIMIT ? first * 4294967296 + tokens[end]! : -1;
}

function joinedKeyAt(order: number, tokens: ArrayLike<number>, end: number): string {
  let key = String(tokens[end - order + 1]);
  for (let i = end - order + 2; i <= end; i++) key += `,${tokens[i]}`;
  return key;
}

/** The index of `key` in the sorted `keys`, or −1. */
function findKey(keys: Float64Array, key: number): number {
  let low = 0;
  let high = keys.length - 1;
  while (low <= high) {
    const middle = (low + high) >>> 1;
    const value = keys[middle]!;
    if (value === key) return middle;
    if (value < key) low = middle + 1;
    else high = middle - 1;
  }
  return -1;
}

function countsOf(table: NgramTable, joined: ReadonlyMap<string, number>): NgramCounts {
  const { order, keys, counts } = table;
  return Object.freeze({
    order,
    size: keys.length + joined.size,
    count: (tokens: Uint32Array, index: number): number => {
      if (index < order - 1 || index >= tokens.length) return 0;
      const key = order <= 2 ? numericKeyAt(order, tokens, index) : -1;
      if (key < 0) return joined.get(joinedKeyAt(order, tokens, index)) ?? 0;
      const at = findKey(keys, key);
      return at < 0 ? 0 : counts[at]!;
    },
    toTable: () => (joined.size === 0 ? table : null),
  });
}

/**
 * Counts the n-grams of a reference corpus (unwatermarked text: human, or a model's unmarked output).
 * Unigrams and bigrams of ids below 2^21 are kept as sorted numeric keys with their counts (exact; a
 * fraction of a string-keyed table's time and memory), other n-grams by their ids joined with commas.
 */
export function createNgramCounts(documents: Iterable<ArrayLike<number>>, order = 2): NgramCounts {
  if (!Number.isInteger(order) || order < 1 || order > 16) {
    throw new RangeError(`order: expected an integer from 1 to 16, got ${String(order)}`);
  }
  let all = new Float64Array(1 << 16);
  let length = 0;
  const joined = new Map<string, number>();
  for (const document of documents) {
    for (let end = order - 1; end < document.length; end++) {
      const key = order <= 2 ? numericKeyAt(order, document, end) : -1;
      if (key < 0) {
        const text = joinedKeyAt(order, document, end);
        joined.set(text, (joined.get(text) ?? 0) + 1);
        continue;
      }
      if (length === all.length) {
        const grown = new Float64Array(all.length * 2);
        grown.set(all);
        all = grown;
      }
      all[length++] = key;
    }
  }
  const sorted = all.subarray(0, length).sort();
  let distinct = 0;
  for (let i = 0; i < length; i++) if (i === 0 || sorted[i] !== sorted[i - 1]) distinct++;
  const keys = new Float64Array(distinct);
  const counts = new Uint32Array(distinct);
  let at = -1;
  for (let i = 0; i < length; i++) {
    if (i === 0 || sorted[i] !== sorted[i - 1]) keys[++at] = sorted[i]!;
    counts[at]!++;
  }
  return countsOf({ order, keys, counts }, joined);
}

/** Counts read back from {@link NgramCounts.toTable}'s arrays (keys strictly increasing). */
export function ngramCountsFromTable(table: NgramTable): NgramCounts {
  const { order, keys, counts } = table;
  if (order !== 1 && order !== 2) throw new RangeError(`order: expected 1 or 2, got ${String(order)}`);
  if (!(keys instanceof Float64Array) || !(counts instanceof Uint32Array) || keys.length !== counts.length) {
    throw new TypeError('table: expected a Float64Array of keys and a Uint32Array of counts of one length');
  }
  for (let i = 1; i < keys.length; i++) {
    if (!(keys[i]! > keys[i - 1]!)) throw new RangeError('table: keys must be strictly increasing');
  }
  return countsOf({ order, keys, counts }, new Map());
}
