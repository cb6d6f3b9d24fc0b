import { getTokenizer, isTokenizerId, type Tokenizer, type TokenizerId } from '@tracemark/tokenizers';
import { DEFAULT_ORDER, MAX_ORDER, MIN_ORDER, type NgramLevel, NgramModel } from './ngram-model.js';

/** `modified`: Chen & Goodman's three discounts per level from count-of-counts; a number: one discount D in (0, 1). */
export type Discount = 'modified' | number;

export interface TrainNgramModelOptions {
  /** Token sequences, one per document; a special token (or unused id) inside one also ends a document. */
  readonly documents: Iterable<ArrayLike<number>> | AsyncIterable<ArrayLike<number>>;
  /** Must equal the tokenizer's vocabulary size. */
  readonly vocabSize: number;
  readonly tokenizerId: TokenizerId;
  /** 1 … 6, default 4. */
  readonly order?: number;
  /** Default `modified`. */
  readonly discount?: Discount;
  /** Stored with the model (corpus name, split, …). */
  readonly metadata?: Readonly<Record<string, string | number>>;
}

export interface TrainFromTextOptions {
  readonly texts: Iterable<string> | AsyncIterable<string>;
  readonly tokenizer: Tokenizer | TokenizerId;
  readonly order?: number;
  readonly discount?: Discount;
  readonly metadata?: Readonly<Record<string, string | number>>;
}

/** Chen & Goodman's estimates from the numbers of n-grams seen once … four times, when they are usable. */
export function modifiedKneserNeyDiscounts(
  countOfCounts: readonly [number, number, number, number],
): [number, number, number] {
  const [n1, n2, n3, n4] = countOfCounts;
  const y = n1 > 0 && n2 > 0 ? n1 / (n1 + 2 * n2) : 0.5;
  if (n1 > 0 && n2 > 0 && n3 > 0 && n4 > 0) {
    const d1 = 1 - (2 * y * n2) / n1;
    const d2 = 2 - (3 * y * n3) / n2;
    const d3 = 3 - (4 * y * n4) / n3;
    if (d1 > 0 && d1 < 1 && d2 > 0 && d2 < 2 && d3 > 0 && d3 < 3) return [d1, d2, d3];
  }
  // Too little data for three estimates: one absolute discount, Ney's n1 / (n1 + 2 n2).
  return [y, y, y];
}

/** A growable token stream: each token stored as id + 1, 0 between documents. */
class TokenStream {
  data = new Uint32Array(1 << 16);
  length = 1; // data[0] = 0 opens the first document
  tokens = 0;

  push(value: number): void {
    if (this.length === this.data.length) {
      const grown = new Uint32Array(this.data.length * 2);
      grown.set(this.data);
      this.data = grown;
    }
    this.data[this.length++] = value;
    if (value !== 0) this.tokens++;
  }

  endDocument(): void {
    if (this.data[this.length - 1] !== 0) this.push(0);
  }
}

/**
 * Counts every n-gram of length 1 … order inside the documents and builds an interpolated Kneser-Ney model.
 * Positions are sorted by the n-gram that starts there (LSD radix sort, one pass per token), which lays out
 * the whole trie in depth-first order; memory is about 20·order bytes per training token.
 */
export async function trainNgramModel(options: TrainNgramModelOptions): Promise<NgramModel> {
  const {
    documents,
    vocabSize,
    tokenizerId,
    order = DEFAULT_ORDER,
    discount = 'modified',
    metadata = {},
  } = options;
  if (!isTokenizerId(tokenizerId))
    throw new RangeError(`options.tokenizerId is not a tokenizer id: ${String(tokenizerId)}`);
  const tokenizer = getTokenizer(tokenizerId);
  if (vocabSize !== tokenizer.vocabSize) {
    throw new RangeError(
      `options.vocabSize must be ${tokenizer.vocabSize} for ${tokenizerId}, got ${String(vocabSize)}`,
    );
  }
  if (!Number.isInteger(order) || order < MIN_ORDER || order > MAX_ORDER) {
    throw new RangeError(
      `options.order must be an integer in [${MIN_ORDER}, ${MAX_ORDER}], got ${String(order)}`,
    );
  }
  if (discount !== 'modified' && !(typeof discount === 'number' && discount > 0 && discount < 1)) {
    throw new RangeError(
      `options.discount must be 'modified' or a number in (0, 1), got ${String(discount)}`,
    );
  }
  if (documents === null || typeof documents !== 'object') {
    throw new TypeError('options.documents must be an iterable of token sequences');
  }

  const stream = new TokenStream();
  let documentIndex = 0;
  for await (const document of documents) {
    if (document === null || typeof document !== 'object' || typeof document.length !== 'number') {
      throw new TypeError(`options.documents[${documentIndex}] must be an array of token ids`);
    }
    for (let i = 0; i < document.length; i++) {
      const token = document[i]!;
      if (!Number.isInteger(token) || token < 0 || token >= vocabSize) {
        throw new RangeError(
          `options.documents[${documentIndex}][${i}] must be an integer token id in [0, ${vocabSize}), got ${String(token)}`,
        );
      }
      if (tokenizer.isOrdinaryToken(token)) stream.push(token + 1);
      else stream.endDocument();
    }
    stream.endDocument();
    documentIndex++;
  }
  // Padding, so that the sort can read order tokens past any position.
  for (let i = 0; i < order; i++) stream.push(0);

  const levels = countNgrams(stream.data.subarray(0, stream.length), stream.tokens, order, vocabSize);
  const discounts = new Float64Array(3 * order);
  for (let k = 1; k <= order; k++) {
    const counts = levels[k - 1]!.counts;
    const countOfCounts: [number, number, number, number] = [0, 0, 0, 0];
    for (let i = 0; i < counts.length; i++) if (counts[i]! <= 4) countOfCounts[counts[i]! - 1]!++;
    const [d1, d2, d3] =
      discount === 'modified' ? modifiedKneserNeyDiscounts(countOfCounts) : [discount, discount, discount];
    discounts.set([d1, d2, d3], 3 * (k - 1));
  }
  return NgramModel.fromTables({
    order,
    vocabSize,
    tokenizerId,
    discounts,
    levels,
    metadata: { ...metadata, trainingTokens: stream.tokens, trainingDocuments: documentIndex },
  });
}

/** Stable LSD radix sort of the token positions by the `order` tokens that start at each. */
function sortPositions(
  stream: Uint32Array,
  tokenCount: number,
  order: number,
  vocabSize: number,
): Uint32Array {
  let positions = new Uint32Array(tokenCount);
  let filled = 0;
  for (let p = 0; p < stream.length; p++) if (stream[p] !== 0) positions[filled++] = p;
  let scratch = new Uint32Array(tokenCount);
  const buckets = new Uint32Array(vocabSize + 2);
  for (let digit = order - 1; digit >= 0; digit--) {
    buckets.fill(0);
    for (let i = 0; i < tokenCount; i++) buckets[stream[positions[i]! + digit]! + 1]!++;
    for (let b = 1; b < buckets.length; b++) buckets[b]! += buckets[b - 1]!;
    for (let i = 0; i < tokenCount; i++) {
      const p = positions[i]!;
      scratch[buckets[stream[p + digit]!]!++] = p;
    }
    [positions, scratch] = [scratch, positions];
  }
  return positions;
}

function countNgrams(
  stream: Uint32Array,
  tokenCount: number,
  order: number,
  vocabSize: number,
): NgramLevel[] {
  const sorted = sortPositions(stream, tokenCount, order, vocabSize);
  // Per level k (index k − 1): n-gram last tokens, raw counts, child counts, a position where it starts.
  const tokens: Uint32Array[] = [];
  const rawCounts: Uint32Array[] = [];
  const childCounts: Uint32Array[] = [];
  const firstPosition: Uint32Array[] = [];
  // nodeAt[k − 1][p]: the level-k n-gram starting at p, for k < order (to find suffixes).
  const nodeAt: Uint32Array[] = [];
  for (let k = 1; k <= order; k++) {
    tokens.push(new Uint32Array(tokenCount));
    rawCounts.push(new Uint32Array(tokenCount));
    firstPosition.push(new Uint32Array(tokenCount));
    if (k < order) {
      childCounts.push(new Uint32Array(tokenCount));
      nodeAt.push(new Uint32Array(stream.length));
    }
  }
  const sizes = new Array<number>(order).fill(0);
  const current = new Int32Array(order);
  let previous = -1;
  let previousLength = 0;
  for (let i = 0; i < tokenCount; i++) {
    const p = sorted[i]!;
    let length = 0;
    while (length < order && stream[p + length] !== 0) length++;
    let common = 0;
    if (previous >= 0) {
      const limit = Math.min(length, previousLength);
      while (common < limit && stream[p + common] === stream[previous + common]) common++;
    }
    for (let k = common + 1; k <= length; k++) {
      const node = sizes[k - 1]!++;
      tokens[k - 1]![node] = stream[p + k - 1]! - 1;
      firstPosition[k - 1]![node] = p;
      if (k > 1) childCounts[k - 2]![current[k - 2]!]!++;
      current[k - 1] = node;
    }
    for (let k = 1; k <= length; k++) {
      rawCounts[k - 1]![current[k - 1]!]!++;
      if (k < order) nodeAt[k - 1]![p] = current[k - 1]!;
    }
    previous = p;
    previousLength = length;
  }

  const levels: NgramLevel[] = [];
  for (let k = 1; k <= order; k++) {
    const size = sizes[k - 1]!;
    let counts: Uint32Array;
    if (k === order) {
      counts = rawCounts[k - 1]!.slice(0, size);
    } else {
      // Continuation count: distinct left neighbours, the document start counting as one.
      counts = new Uint32Array(size);
      const suffixOf = nodeAt[k - 1]!;
      const longer = firstPosition[k]!;
      for (let node = 0; node < sizes[k]!; node++) counts[suffixOf[longer[node]! + 1]!]!++;
      const startsDocument = new Uint8Array(size);
      for (let p = 1; p < stream.length; p++) {
        if (stream[p] === 0 || stream[p - 1] !== 0) continue;
        let length = 0;
        while (length < k && stream[p + length] !== 0) length++;
        if (length < k) continue;
        const node = suffixOf[p]!;
        if (!startsDocument[node]) {
          startsDocument[node] = 1;
          counts[node]!++;
        }
      }
    }
    let childStart: Uint32Array | undefined;
    if (k < order) {
      childStart = new Uint32Array(size + 1);
      const children = childCounts[k - 1]!;
      for (let node = 0; node < size; node++) childStart[node + 1] = childStart[node]! + children[node]!;
    }
    levels.push({ tokens: tokens[k - 1]!.slice(0, size), counts, childStart });
  }
  return levels;
}

/** Tokenizes each text (with the tokenizer's fast encoder, proven identical to `encode`) and trains a model. */
export async function trainFromText(options: TrainFromTextOptions): Promise<NgramModel> {
  const { texts, order, discount, metadata } = options;
  const tokenizer =
    typeof options.tokenizer === 'string' ? getTokenizer(options.tokenizer) : options.tokenizer;
  async function* documents(): AsyncGenerator<Uint32Array> {
    let index = 0;
    for await (const text of texts) {
      if (typeof text !== 'string') throw new TypeError(`options.texts[${index}] must be a string`);
      yield tokenizer.encodeFast(text);
      index++;
    }
  }
  return trainNgramModel({
    documents: documents(),
    vocabSize: tokenizer.vocabSize,
    tokenizerId: tokenizer.id,
    ...(order === undefined ? {} : { order }),
    ...(discount === undefined ? {} : { discount }),
    ...(metadata === undefined ? {} : { metadata }),
  });
}
