import { getTokenizer, isTokenizerId, type TokenizerId } from '@tracemark/tokenizers';
import { ByteReader, ByteWriter } from './varint.js';

/** Orders that a model may have: 1 (unigram) to 6. */
export const MIN_ORDER = 1;
export const MAX_ORDER = 6;
export const DEFAULT_ORDER = 4;
/** How many tokens {@link NgramModel.candidates} returns unless told. */
export const DEFAULT_MAX_CANDIDATES = 256;
/** Version of the binary layout written by {@link NgramModel.serialize}. */
export const MODEL_FORMAT_VERSION = 1;

const MAGIC = [0x54, 0x4d, 0x4e, 0x47]; // "TMNG"

/** The n-grams of one length k, in trie order: sorted by their first k − 1 tokens, then by the last. */
export interface NgramLevel {
  /** The last token of each n-gram. */
  readonly tokens: Uint32Array;
  /** The raw count at the highest order, the continuation count (distinct left neighbours) below it. */
  readonly counts: Uint32Array;
  /**
   * For every level but the highest: n-gram i's extensions by one token are entries
   * childStart[i] … childStart[i + 1] − 1 of the next level (length = entries + 1).
   */
  readonly childStart: Uint32Array | undefined;
}

/** Everything that defines a model; the rest is derived when it is built. */
export interface NgramTables {
  readonly order: number;
  readonly vocabSize: number;
  readonly tokenizerId: TokenizerId;
  /** D1, D2 and D3+ for each level k = 1 … order, at index 3·(k − 1). */
  readonly discounts: Float64Array;
  /** levels[k − 1] holds the n-grams of length k. */
  readonly levels: readonly NgramLevel[];
  readonly metadata: Readonly<Record<string, string | number>>;
}

/** The tokens with the largest probability, sorted by probability descending (then by id). */
export interface Candidates {
  readonly ids: Uint32Array;
  /** Natural-log probabilities under the full distribution (they do not sum to 1 over the candidates). */
  readonly logits: Float32Array;
}

function searchTokens(tokens: Uint32Array, start: number, end: number, token: number): number {
  let low = start;
  let high = end - 1;
  while (low <= high) {
    const middle = (low + high) >>> 1;
    const value = tokens[middle]!;
    if (value < token) low = middle + 1;
    else if (value > token) high = middle - 1;
    else return middle;
  }
  return -1;
}

function invalid(reason: string): never {
  throw new RangeError(`not a valid n-gram model: ${reason}`);
}

function validateTables(tables: NgramTables): void {
  const { order, vocabSize, tokenizerId, discounts, levels } = tables;
  if (!Number.isInteger(order) || order < MIN_ORDER || order > MAX_ORDER) {
    invalid(`order must be an integer in [${MIN_ORDER}, ${MAX_ORDER}], got ${order}`);
  }
  if (!isTokenizerId(tokenizerId)) invalid(`unknown tokenizer id ${String(tokenizerId)}`);
  const tokenizer = getTokenizer(tokenizerId);
  if (vocabSize !== tokenizer.vocabSize) {
    invalid(`vocabSize ${vocabSize} differs from ${tokenizerId}'s ${tokenizer.vocabSize}`);
  }
  if (discounts.length !== 3 * order) invalid(`expected ${3 * order} discounts, got ${discounts.length}`);
  for (let i = 0; i < discounts.length; i++) {
    const limit = (i % 3) + 1;
    if (!(discounts[i]! > 0 && discounts[i]! < limit)) {
      invalid(
        `discount D${limit} of level ${Math.floor(i / 3) + 1} must be in (0, ${limit}), got ${discounts[i]}`,
      );
    }
  }
  if (levels.length !== order) invalid(`expected ${order} levels, got ${levels.length}`);
  let parentCount = 1;
  let parentStart: Uint32Array = Uint32Array.of(0, levels[0]!.tokens.length);
  for (let k = 1; k <= order; k++) {
    const { tokens, counts, childStart } = levels[k - 1]!;
    if (counts.length !== tokens.length)
      invalid(`level ${k} has ${tokens.length} tokens but ${counts.length} counts`);
    if (parentStart[parentCount] !== tokens.length)
      invalid(`level ${k} does not match its parents' child ranges`);
    for (let parent = 0; parent < parentCount; parent++) {
      const start = parentStart[parent]!;
      const end = parentStart[parent + 1]!;
      if (end < start) invalid(`level ${k - 1} child ranges decrease`);
      for (let i = start; i < end; i++) {
        const token = tokens[i]!;
        if (!tokenizer.isOrdinaryToken(token)) invalid(`level ${k} holds ${token}, not an ordinary token`);
        if (i > start && token <= tokens[i - 1]!) invalid(`level ${k} siblings are not strictly increasing`);
        if (counts[i]! < 1) invalid(`level ${k} holds a zero count`);
      }
    }
    if (k < order) {
      if (childStart === undefined || childStart.length !== tokens.length + 1 || childStart[0] !== 0) {
        invalid(`level ${k} child ranges are missing or of the wrong length`);
      }
      parentStart = childStart;
      parentCount = tokens.length;
    } else if (childStart !== undefined) {
      invalid(`the highest level has child ranges`);
    }
  }
}

/**
 * An interpolated Kneser-Ney n-gram language model over a tokenizer's ids (modified KN discounts of
 * Chen & Goodman 1998 by default, https://dash.harvard.edu/handle/1/25104739):
 *
 *   p_k(w | h) = max(c_k(h, w) − D_k(c_k(h, w)), 0) / c_k(h) + λ_k(h) · p_{k−1}(w | h′)
 *   λ_k(h) = (D_k1·N1(h) + D_k2·N2(h) + D_k3·N3+(h)) / c_k(h),   p_0(w) = 1 / (ordinary tokens)
 *
 * where h′ drops h's first token, c_k is the raw count at the highest order and the continuation count (the
 * number of distinct tokens, or the document start, seen before the n-gram) below it, and N_i(h) counts the
 * tokens that follow h with count i (3 or more for N3+). A context that was never followed by anything
 * leaves p_k = p_{k−1}.
 *
 * Begin-of-document convention: there is no begin token. The context is whatever precedes the position
 * (empty at the start of a document), and only its last order − 1 tokens count; a context shorter than that
 * simply uses fewer levels. Training counts no n-gram across a document boundary. A special token (or unused
 * id) ends a document: in training it splits the sequence, and in a context only the tokens after the last
 * one count. Special tokens and unused ids have probability 0 (log-probability −Infinity).
 */
export class NgramModel {
  readonly order: number;
  readonly vocabSize: number;
  readonly tokenizerId: TokenizerId;
  /** Free-form facts about how the model was trained (corpus, token count, …). */
  readonly metadata: Readonly<Record<string, string | number>>;
  /** Number of tokens that can have non-zero probability (the tokenizer's ordinary tokens). */
  readonly ordinaryTokenCount: number;

  private readonly tables: NgramTables;
  private readonly excluded: Uint8Array;
  /** Per context node (an entry of levels 1 … order − 1): 1 / c(h) (0 without followers) and λ(h). */
  private readonly contextInverseTotal: Float64Array[];
  private readonly contextLambda: Float64Array[];
  private readonly rootInverseTotal: number;
  private readonly rootLambda: number;
  /** Unigram-level probabilities p_1(w), and their logs as the dense base vector. */
  private readonly unigram: Float64Array;
  private readonly baseLogits: Float32Array;
  /** Ordinary tokens by descending p_1. */
  private readonly unigramOrder: Uint32Array;

  // Scratch space: a model serves one call at a time (JavaScript is single-threaded).
  private readonly contextTokens: Uint32Array;
  private readonly contextNodes: Int32Array;
  private readonly multipliers: Float64Array;
  private readonly extra: Float64Array;
  private readonly touched: Uint32Array;
  private readonly marked: Uint8Array;
  private touchedCount = 0;

  private constructor(tables: NgramTables) {
    validateTables(tables);
    this.tables = tables;
    this.order = tables.order;
    this.vocabSize = tables.vocabSize;
    this.tokenizerId = tables.tokenizerId;
    this.metadata = Object.freeze({ ...tables.metadata });
    const tokenizer = getTokenizer(tables.tokenizerId);
    const vocabSize = this.vocabSize;

    this.excluded = new Uint8Array(vocabSize);
    let ordinary = 0;
    for (let token = 0; token < vocabSize; token++) {
      if (tokenizer.isOrdinaryToken(token)) ordinary++;
      else this.excluded[token] = 1;
    }
    this.ordinaryTokenCount = ordinary;

    const { levels, discounts } = tables;
    this.contextInverseTotal = [];
    this.contextLambda = [];
    for (let k = 1; k < this.order; k++) {
      const parent = levels[k - 1]!;
      const child = levels[k]!;
      const inverseTotal = new Float64Array(parent.tokens.length);
      const lambda = new Float64Array(parent.tokens.length);
      fillContextStatistics(child.counts, parent.childStart!, discounts, k + 1, inverseTotal, lambda);
      this.contextInverseTotal.push(inverseTotal);
      this.contextLambda.push(lambda);
    }
    const level1 = levels[0]!;
    const rootInverseTotal = new Float64Array(1);
    const rootLambda = new Float64Array(1);
    fillContextStatistics(
      level1.counts,
      Uint32Array.of(0, level1.tokens.length),
      discounts,
      1,
      rootInverseTotal,
      rootLambda,
    );
    this.rootInverseTotal = rootInverseTotal[0]!;
    this.rootLambda = rootLambda[0]!;

    this.unigram = new Float64Array(vocabSize);
    const floor = this.rootLambda / ordinary;
    for (let token = 0; token < vocabSize; token++) if (!this.excluded[token]) this.unigram[token] = floor;
    for (let i = 0; i < level1.tokens.length; i++) {
      const count = level1.counts[i]!;
      const discount = discounts[Math.min(count, 3) - 1]!;
      this.unigram[level1.tokens[i]!]! += (count - discount) * this.rootInverseTotal;
    }
    this.baseLogits = new Float32Array(vocabSize);
    for (let token = 0; token < vocabSize; token++) this.baseLogits[token] = Math.log(this.unigram[token]!);
    const order = Array.from({ length: vocabSize }, (_, token) => token).filter(
      (token) => !this.excluded[token],
    );
    const unigram = this.unigram;
    order.sort((a, b) => unigram[b]! - unigram[a]! || a - b);
    this.unigramOrder = Uint32Array.from(order);

    this.contextTokens = new Uint32Array(Math.max(this.order - 1, 1));
    this.contextNodes = new Int32Array(this.order + 1);
    this.multipliers = new Float64Array(this.order + 1);
    this.extra = new Float64Array(vocabSize);
    this.touched = new Uint32Array(vocabSize);
    this.marked = new Uint8Array(vocabSize);
  }

  /** Checks and builds a model from its tables (they are used as they are, not copied). */
  static fromTables(tables: NgramTables): NgramModel {
    return new NgramModel(tables);
  }

  /** Copies the context's usable tail into contextTokens; returns its length. */
  private prepareContext(source: ArrayLike<number>, end: number, parameterName: string): number {
    const vocabSize = this.vocabSize;
    const limit = Math.max(0, end - (this.order - 1));
    let start = end;
    while (start > limit) {
      const token = source[start - 1]!;
      if (!Number.isInteger(token) || token < 0 || token >= vocabSize) {
        throw new RangeError(
          `${parameterName}[${start - 1}] must be an integer token id in [0, ${vocabSize}), got ${String(token)}`,
        );
      }
      if (this.excluded[token]) break;
      start--;
    }
    const length = end - start;
    for (let i = 0; i < length; i++) this.contextTokens[i] = source[start + i]!;
    return length;
  }

  /**
   * Finds the context node of each level k = 2 … m for the prepared context (stored in contextNodes[k]);
   * returns m, the highest level whose context was followed by something in training (1 if none).
   */
  private findContexts(length: number): number {
    const { levels } = this.tables;
    const tokens = this.contextTokens;
    let highest = 1;
    for (let k = 2; k <= length + 1; k++) {
      const first = length - (k - 1);
      let node = searchTokens(levels[0]!.tokens, 0, levels[0]!.tokens.length, tokens[first]!);
      for (let j = 2; j <= k - 1 && node >= 0; j++) {
        const childStart = levels[j - 2]!.childStart!;
        node = searchTokens(
          levels[j - 1]!.tokens,
          childStart[node]!,
          childStart[node + 1]!,
          tokens[first + j - 1]!,
        );
      }
      if (node < 0) break;
      const childStart = levels[k - 2]!.childStart!;
      if (childStart[node + 1]! <= childStart[node]!) break;
      this.contextNodes[k] = node;
      highest = k;
    }
    return highest;
  }

  /** multipliers[k] = λ_{k+1} ⋯ λ_m: the weight of level k's discounted term in the mixture. */
  private computeMultipliers(highest: number): void {
    const multipliers = this.multipliers;
    multipliers[highest] = 1;
    for (let k = highest; k >= 2; k--) {
      multipliers[k - 1] = multipliers[k]! * this.contextLambda[k - 2]![this.contextNodes[k]!]!;
    }
  }

  /** Adds each level's discounted term, weighted, into extra[] for every token seen after the context. */
  private accumulateSeen(highest: number): void {
    const { levels, discounts } = this.tables;
    const extra = this.extra;
    const marked = this.marked;
    const touched = this.touched;
    let touchedCount = 0;
    for (let k = 2; k <= highest; k++) {
      const node = this.contextNodes[k]!;
      const childStart = levels[k - 2]!.childStart!;
      const { tokens, counts } = levels[k - 1]!;
      const scale = this.multipliers[k]! * this.contextInverseTotal[k - 2]![node]!;
      const offset = 3 * (k - 1);
      const d1 = discounts[offset]!;
      const d2 = discounts[offset + 1]!;
      const d3 = discounts[offset + 2]!;
      const end = childStart[node + 1]!;
      for (let i = childStart[node]!; i < end; i++) {
        const token = tokens[i]!;
        const count = counts[i]!;
        const term = (count - (count === 1 ? d1 : count === 2 ? d2 : d3)) * scale;
        if (marked[token]) {
          extra[token]! += term;
        } else {
          marked[token] = 1;
          extra[token] = term;
          touched[touchedCount++] = token;
        }
      }
    }
    this.touchedCount = touchedCount;
  }

  private clearTouched(): void {
    const marked = this.marked;
    const touched = this.touched;
    for (let i = 0; i < this.touchedCount; i++) marked[touched[i]!] = 0;
    this.touchedCount = 0;
  }

  /**
   * Writes the natural-log probability of every token after `context` into `out` (length vocabSize) and
   * returns it. Exact: unseen tokens get log(λ-product) + log p_1, tokens seen after the context are patched.
   */
  logitsInto(context: ArrayLike<number>, out: Float32Array): Float32Array {
    if (!(out instanceof Float32Array)) throw new TypeError('out must be a Float32Array');
    if (out.length !== this.vocabSize) {
      throw new RangeError(`out must have length vocabSize (${this.vocabSize}), got ${out.length}`);
    }
    const highest = this.findContexts(this.prepareContext(context, checkedLength(context), 'context'));
    if (highest === 1) {
      out.set(this.baseLogits);
      return out;
    }
    this.computeMultipliers(highest);
    const scale = this.multipliers[1]!;
    const logScale = Math.log(scale);
    const base = this.baseLogits;
    for (let token = 0; token < out.length; token++) out[token] = base[token]! + logScale;
    this.accumulateSeen(highest);
    const unigram = this.unigram;
    const extra = this.extra;
    const touched = this.touched;
    for (let i = 0; i < this.touchedCount; i++) {
      const token = touched[i]!;
      out[token] = Math.log(scale * unigram[token]! + extra[token]!);
    }
    this.clearTouched();
    return out;
  }

  /** {@link NgramModel.logitsInto} into a new array. */
  logits(context: ArrayLike<number>): Float32Array {
    return this.logitsInto(context, new Float32Array(this.vocabSize));
  }

  /** The `maxCandidates` most probable next tokens (default {@link DEFAULT_MAX_CANDIDATES}), exactly. */
  candidates(context: ArrayLike<number>, maxCandidates: number = DEFAULT_MAX_CANDIDATES): Candidates {
    if (!Number.isInteger(maxCandidates) || maxCandidates < 1) {
      throw new RangeError(`maxCandidates must be a positive integer, got ${String(maxCandidates)}`);
    }
    const highest = this.findContexts(this.prepareContext(context, checkedLength(context), 'context'));
    this.computeMultipliers(highest);
    this.touchedCount = 0;
    if (highest > 1) this.accumulateSeen(highest);
    const scale = this.multipliers[1]!;
    const unigram = this.unigram;
    const capacity = Math.min(maxCandidates, this.ordinaryTokenCount);
    const heap = new TopCandidates(capacity);
    for (let i = 0; i < this.touchedCount; i++) {
      const token = this.touched[i]!;
      heap.offer(token, scale * unigram[token]! + this.extra[token]!);
    }
    // Among tokens unseen after the context, probability follows p_1, so the first few in that order suffice.
    let unseen = 0;
    for (let i = 0; i < this.unigramOrder.length && unseen < capacity; i++) {
      const token = this.unigramOrder[i]!;
      if (this.marked[token]) continue;
      heap.offer(token, scale * unigram[token]!);
      unseen++;
    }
    this.clearTouched();
    return heap.sorted();
  }

  /** Natural-log probability of `token` after `context` (−Infinity for special tokens and unused ids). */
  logProb(context: ArrayLike<number>, token: number): number {
    if (!Number.isInteger(token) || token < 0 || token >= this.vocabSize) {
      throw new RangeError(
        `token must be an integer token id in [0, ${this.vocabSize}), got ${String(token)}`,
      );
    }
    return this.logProbAt(context, checkedLength(context), token, 'context');
  }

  private logProbAt(source: ArrayLike<number>, end: number, token: number, parameterName: string): number {
    const highest = this.findContexts(this.prepareContext(source, end, parameterName));
    if (this.excluded[token]) return Number.NEGATIVE_INFINITY;
    const { levels, discounts } = this.tables;
    let probability = this.unigram[token]!;
    for (let k = 2; k <= highest; k++) {
      const node = this.contextNodes[k]!;
      const childStart = levels[k - 2]!.childStart!;
      const { tokens, counts } = levels[k - 1]!;
      const index = searchTokens(tokens, childStart[node]!, childStart[node + 1]!, token);
      let discounted = 0;
      if (index >= 0) {
        const count = counts[index]!;
        discounted =
          (count - discounts[3 * (k - 1) + Math.min(count, 3) - 1]!) *
          this.contextInverseTotal[k - 2]![node]!;
      }
      probability = discounted + this.contextLambda[k - 2]![node]! * probability;
    }
    return Math.log(probability);
  }

  /**
   * exp of the mean negative log-probability of ids[1 …] (each token after up to order − 1 preceding ones).
   * Infinity if the sequence holds a special token.
   */
  perplexity(ids: ArrayLike<number>): number {
    const length = checkedLength(ids, 'ids');
    if (length < 2) throw new RangeError(`ids must hold at least 2 tokens, got ${length}`);
    let total = 0;
    for (let i = 1; i < length; i++) {
      const token = ids[i]!;
      if (!Number.isInteger(token) || token < 0 || token >= this.vocabSize) {
        throw new RangeError(
          `ids[${i}] must be an integer token id in [0, ${this.vocabSize}), got ${String(token)}`,
        );
      }
      total += this.logProbAt(ids, i, token, 'ids');
    }
    return Math.exp(-total / (length - 1));
  }

  /** The model in a compact binary form (varint-coded trie); see {@link NgramModel.deserialize}. */
  serialize(): Uint8Array {
    const { order, vocabSize, tokenizerId, discounts, levels, metadata } = this.tables;
    const writer = new ByteWriter(1 << 20);
    writer.bytes(Uint8Array.from(MAGIC));
    writer.uint32(MODEL_FORMAT_VERSION);
    writer.uint32(order);
    writer.uint32(vocabSize);
    const encoder = new TextEncoder();
    const tokenizerBytes = encoder.encode(tokenizerId);
    writer.uint32(tokenizerBytes.length);
    writer.bytes(tokenizerBytes);
    const metadataBytes = encoder.encode(JSON.stringify(metadata));
    writer.uint32(metadataBytes.length);
    writer.bytes(metadataBytes);
    for (const discount of discounts) writer.float64(discount);
    for (const level of levels) writer.uint32(level.tokens.length);
    let parentStart: Uint32Array = Uint32Array.of(0, levels[0]!.tokens.length);
    for (let k = 1; k <= order; k++) {
      const { tokens, counts, childStart } = levels[k - 1]!;
      if (k > 1)
        for (let i = 0; i + 1 < parentStart.length; i++) writer.varint(parentStart[i + 1]! - parentStart[i]!);
      for (let parent = 0; parent + 1 < parentStart.length; parent++) {
        let previous = 0;
        for (let i = parentStart[parent]!; i < parentStart[parent + 1]!; i++) {
          writer.varint(tokens[i]! - previous);
          previous = tokens[i]!;
        }
      }
      for (let i = 0; i < counts.length; i++) writer.varint(counts[i]!);
      if (childStart !== undefined) parentStart = childStart;
    }
    return writer.finish();
  }

  /** Reads a model written by {@link NgramModel.serialize}; throws a RangeError if the bytes are not one. */
  static deserialize(bytes: Uint8Array): NgramModel {
    if (!(bytes instanceof Uint8Array)) throw new TypeError('bytes must be a Uint8Array');
    const reader: ByteReader = new ByteReader(bytes, 'bytes is not a serialized n-gram model');
    const magic = reader.bytes(4);
    if (MAGIC.some((byte, i) => magic[i] !== byte)) reader.fail('bad magic number');
    const version = reader.uint32();
    if (version !== MODEL_FORMAT_VERSION)
      reader.fail(`format version ${version}, expected ${MODEL_FORMAT_VERSION}`);
    const order = reader.uint32();
    if (order < MIN_ORDER || order > MAX_ORDER) reader.fail(`order ${order}`);
    const vocabSize = reader.uint32();
    const decoder = new TextDecoder('utf-8', { fatal: true });
    const tokenizerId = decoder.decode(reader.bytes(reader.uint32()));
    if (!isTokenizerId(tokenizerId)) reader.fail(`unknown tokenizer ${JSON.stringify(tokenizerId)}`);
    let metadata: Record<string, string | number>;
    try {
      metadata = JSON.parse(decoder.decode(reader.bytes(reader.uint32()))) as Record<string, string | number>;
    } catch {
      reader.fail('unreadable metadata');
    }
    const discounts = new Float64Array(3 * order);
    for (let i = 0; i < discounts.length; i++) discounts[i] = reader.float64();
    const sizes: number[] = [];
    for (let k = 1; k <= order; k++) sizes.push(reader.uint32());
    // Every entry takes at least two bytes (token and count), so larger sizes cannot be genuine.
    if (sizes.reduce((sum, size) => sum + size, 0) * 2 > reader.remaining)
      reader.fail('entry counts exceed the data');
    const levels: NgramLevel[] = [];
    let parentStart: Uint32Array = Uint32Array.of(0, sizes[0]!);
    for (let k = 1; k <= order; k++) {
      const size = sizes[k - 1]!;
      if (k > 1) {
        const childCounts = new Uint32Array(sizes[k - 2]!);
        reader.varints(childCounts);
        const childStart = new Uint32Array(childCounts.length + 1);
        for (let i = 0; i < childCounts.length; i++) childStart[i + 1] = childStart[i]! + childCounts[i]!;
        if (childStart[childCounts.length]! !== size)
          reader.fail(`level ${k - 1} child ranges do not cover level ${k}`);
        const previousLevel = levels[k - 2]!;
        levels[k - 2] = { tokens: previousLevel.tokens, counts: previousLevel.counts, childStart };
        parentStart = childStart;
      }
      // Tokens are stored as differences from the previous sibling (the first one as it is).
      const tokens = new Uint32Array(size);
      reader.varints(tokens);
      for (let parent = 0; parent + 1 < parentStart.length; parent++) {
        const end = parentStart[parent + 1]!;
        for (let i = parentStart[parent]! + 1; i < end; i++) tokens[i] = tokens[i]! + tokens[i - 1]!;
      }
      const counts = new Uint32Array(size);
      reader.varints(counts);
      levels.push({ tokens, counts, childStart: undefined });
    }
    if (reader.remaining !== 0) reader.fail(`${reader.remaining} trailing bytes`);
    return new NgramModel({ order, vocabSize, tokenizerId, discounts, levels, metadata });
  }

  /** Number of stored n-grams of each length 1 … order. */
  get ngramCounts(): readonly number[] {
    return this.tables.levels.map((level) => level.tokens.length);
  }

  /** The discounts D1, D2, D3+ of each level 1 … order. */
  get discounts(): readonly (readonly [number, number, number])[] {
    const d = this.tables.discounts;
    return this.tables.levels.map((_, k) => [d[3 * k]!, d[3 * k + 1]!, d[3 * k + 2]!] as const);
  }
}

/** 1 / c(h) (0 for a context never followed) and λ(h) (1 then) for each context of a level's parents. */
function fillContextStatistics(
  counts: Uint32Array,
  childStart: Uint32Array,
  discounts: Float64Array,
  level: number,
  inverseTotal: Float64Array,
  lambda: Float64Array,
): void {
  const offset = 3 * (level - 1);
  const d1 = discounts[offset]!;
  const d2 = discounts[offset + 1]!;
  const d3 = discounts[offset + 2]!;
  for (let node = 0; node + 1 < childStart.length; node++) {
    const start = childStart[node]!;
    const end = childStart[node + 1]!;
    if (end <= start) {
      lambda[node] = 1;
      continue;
    }
    let total = 0;
    let discounted = 0;
    for (let i = start; i < end; i++) {
      const count = counts[i]!;
      total += count;
      discounted += count === 1 ? d1 : count === 2 ? d2 : d3;
    }
    inverseTotal[node] = 1 / total;
    lambda[node] = discounted / total;
  }
}

function checkedLength(values: ArrayLike<number>, parameterName = 'context'): number {
  if (values === null || typeof values !== 'object' || typeof values.length !== 'number') {
    throw new TypeError(`${parameterName} must be an array of token ids`);
  }
  return values.length;
}

/** A bounded min-heap on (probability, then lower id first) that keeps the best entries offered. */
class TopCandidates {
  private readonly ids: Uint32Array;
  private readonly probabilities: Float64Array;
  private size = 0;

  constructor(private readonly capacity: number) {
    this.ids = new Uint32Array(capacity);
    this.probabilities = new Float64Array(capacity);
  }

  /** Whether entry a ranks below entry b. */
  private worse(probabilityA: number, idA: number, probabilityB: number, idB: number): boolean {
    return probabilityA < probabilityB || (probabilityA === probabilityB && idA > idB);
  }

  offer(id: number, probability: number): void {
    const { ids, probabilities } = this;
    if (this.size < this.capacity) {
      let i = this.size++;
      while (i > 0) {
        const parent = (i - 1) >> 1;
        if (!this.worse(probability, id, probabilities[parent]!, ids[parent]!)) break;
        ids[i] = ids[parent]!;
        probabilities[i] = probabilities[parent]!;
        i = parent;
      }
      ids[i] = id;
      probabilities[i] = probability;
      return;
    }
    if (!this.worse(probabilities[0]!, ids[0]!, probability, id)) return;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= this.size) break;
      const right = left + 1;
      let child = left;
      if (
        right < this.size &&
        this.worse(probabilities[right]!, ids[right]!, probabilities[left]!, ids[left]!)
      ) {
        child = right;
      }
      if (!this.worse(probabilities[child]!, ids[child]!, probability, id)) break;
      ids[i] = ids[child]!;
      probabilities[i] = probabilities[child]!;
      i = child;
    }
    ids[i] = id;
    probabilities[i] = probability;
  }

  sorted(): Candidates {
    const order = Array.from({ length: this.size }, (_, i) => i);
    const { ids, probabilities } = this;
    order.sort((a, b) => probabilities[b]! - probabilities[a]! || ids[a]! - ids[b]!);
    const outIds = new Uint32Array(this.size);
    const logits = new Float32Array(this.size);
    order.forEach((index, rank) => {
      outIds[rank] = ids[index]!;
      logits[rank] = Math.log(probabilities[index]!);
    });
    return { ids: outIds, logits };
  }
}
