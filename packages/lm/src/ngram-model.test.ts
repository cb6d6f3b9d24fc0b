import { getTokenizer } from '@tracemark/tokenizers';
import { describe, expect, it } from 'vitest';
import { NgramModel } from './ngram-model.js';
import { modifiedKneserNeyDiscounts, trainFromText, trainNgramModel } from './train.js';

const tokenizer = getTokenizer('cl100k_base');
const V = tokenizer.vocabSize;
const ORDINARY = tokenizer.ordinaryTokenCount;
const SPECIAL = [...tokenizer.specialTokenIds][0]!;
const [A, B, C] = [10, 11, 12];
const TOY = [Uint32Array.of(A, B, A, C), Uint32Array.of(B, A, B)];

function train(order: number, discount: 'modified' | number = 0.5, documents = TOY): Promise<NgramModel> {
  return trainNgramModel({ documents, vocabSize: V, tokenizerId: 'cl100k_base', order, discount });
}

function probabilitySum(logits: Float32Array): number {
  let sum = 0;
  for (const logit of logits) sum += Math.exp(logit);
  return sum;
}

describe('Kneser-Ney on a toy corpus, checked by hand (D = 0.5)', () => {
  // Documents "a b a c" and "b a b". Continuation counts of unigrams (distinct left neighbours, the
  // document start counting as one): a {start, b} = 2, b {a, start} = 2, c {a} = 1; total 5, 3 types.
  const rootLambda = (0.5 * 3) / 5;
  const floor = rootLambda / ORDINARY;
  const p1 = { a: 1.5 / 5 + floor, b: 1.5 / 5 + floor, c: 0.5 / 5 + floor, other: floor };

  it('unigram model (order 1 uses raw counts)', async () => {
    const model = await train(1);
    // Raw counts a 3, b 3, c 1; total 7, 3 types.
    const lambda = (0.5 * 3) / 7;
    expect(Math.exp(model.logProb([], A))).toBeCloseTo(2.5 / 7 + lambda / ORDINARY, 12);
    expect(Math.exp(model.logProb([], C))).toBeCloseTo(0.5 / 7 + lambda / ORDINARY, 12);
    expect(Math.exp(model.logProb([], 999))).toBeCloseTo(lambda / ORDINARY, 15);
  });

  it('bigram model: raw counts on top, continuation counts below', async () => {
    const model = await train(2);
    expect(model.ngramCounts).toEqual([3, 3]);
    expect(Math.exp(model.logProb([], A))).toBeCloseTo(p1.a, 12);
    expect(Math.exp(model.logProb([], C))).toBeCloseTo(p1.c, 12);
    // After a: (a b) 2, (a c) 1 → total 3, λ = 0.5·2/3.
    expect(Math.exp(model.logProb([A], B))).toBeCloseTo(1.5 / 3 + p1.b / 3, 12);
    expect(Math.exp(model.logProb([A], C))).toBeCloseTo(0.5 / 3 + p1.c / 3, 12);
    expect(Math.exp(model.logProb([A], A))).toBeCloseTo(p1.a / 3, 12);
    expect(Math.exp(model.logProb([A], 999))).toBeCloseTo(p1.other / 3, 15);
    // After b: (b a) 2 → λ = 0.5/2.
    expect(Math.exp(model.logProb([B], A))).toBeCloseTo(1.5 / 2 + 0.25 * p1.a, 12);
    // c ends a document, so nothing follows it: back off to the unigram level entirely.
    expect(Math.exp(model.logProb([C], B))).toBeCloseTo(p1.b, 12);
    // Only the last token counts in a bigram model.
    expect(model.logProb([C, C, A], B)).toBe(model.logProb([A], B));
  });

  it('trigram model', async () => {
    const model = await train(3);
    // Level 2 continuation counts: (a b) {start, b} = 2, (b a) {a, start} = 2, (a c) {b} = 1.
    // Level 3 raw counts: (a b a) 1, (b a c) 1, (b a b) 1.
    expect(model.ngramCounts).toEqual([3, 3, 3]);
    const bigramAfterA = (token: 'b' | 'c' | 'a', count: number) =>
      Math.max(count - 0.5, 0) / 3 + p1[token] / 3;
    // After (b a): c 1, b 1 → total 2, λ = 0.5·2/2.
    expect(Math.exp(model.logProb([B, A], C))).toBeCloseTo(0.5 / 2 + 0.5 * bigramAfterA('c', 1), 12);
    expect(Math.exp(model.logProb([B, A], B))).toBeCloseTo(0.5 / 2 + 0.5 * bigramAfterA('b', 2), 12);
    expect(Math.exp(model.logProb([B, A], A))).toBeCloseTo(0.5 * bigramAfterA('a', 0), 12);
    // A context never seen backs off to its longest seen suffix.
    expect(model.logProb([C, A], B)).toBeCloseTo(Math.log(bigramAfterA('b', 2)), 12);
    // The start of a document: a context shorter than order − 1 uses the lower levels.
    expect(model.logProb([A], C)).toBeCloseTo(Math.log(bigramAfterA('c', 1)), 12);
  });

  it('modified discounts follow Chen & Goodman', () => {
    const [d1, d2, d3] = modifiedKneserNeyDiscounts([10, 5, 3, 2]);
    expect(d1).toBeCloseTo(0.5, 12);
    expect(d2).toBeCloseTo(2 - 3 * 0.5 * (3 / 5), 12);
    expect(d3).toBeCloseTo(3 - 4 * 0.5 * (2 / 3), 12);
    // Too few counts for three discounts: one absolute discount n1 / (n1 + 2 n2), or 0.5.
    expect(modifiedKneserNeyDiscounts([4, 2, 0, 0])).toEqual([0.5, 0.5, 0.5]);
    expect(modifiedKneserNeyDiscounts([3, 0, 0, 0])).toEqual([0.5, 0.5, 0.5]);
  });

  it('uses three discounts by count with modified KN', async () => {
    const documents = [Uint32Array.of(A, B, A, B, A, B, A, C, A, C, B, C)];
    const model = await train(2, 'modified', documents);
    const [[u1, u2, u3], [d1, d2, d3]] = model.discounts as [number[], number[]];
    const unigramLevel = [
      { token: A, count: 3 }, // left of a: start, b, c
      { token: B, count: 2 }, // a, c
      { token: C, count: 2 }, // a, b
    ];
    const total = 7;
    const discountFor = (count: number) => [u1!, u2!, u3!][Math.min(count, 3) - 1]!;
    const rootLambda = unigramLevel.reduce((sum, entry) => sum + discountFor(entry.count), 0) / total;
    const p = (token: number) => {
      const entry = unigramLevel.find((e) => e.token === token);
      const discounted = entry ? (entry.count - discountFor(entry.count)) / total : 0;
      return discounted + rootLambda / ORDINARY;
    };
    expect(Math.exp(model.logProb([], B))).toBeCloseTo(p(B), 12);
    // After a: b 3, c 2 → total 5, λ = (D3 + D2) / 5.
    const lambda = (d3! + d2!) / 5;
    expect(Math.exp(model.logProb([A], B))).toBeCloseTo((3 - d3!) / 5 + lambda * p(B), 12);
    expect(Math.exp(model.logProb([A], C))).toBeCloseTo((2 - d2!) / 5 + lambda * p(C), 12);
    // After c: a 1, b 1 → λ = 2·D1 / 2.
    expect(Math.exp(model.logProb([C], A))).toBeCloseTo((1 - d1!) / 2 + d1! * p(A), 12);
  });
});

describe('distribution', () => {
  const contexts = [[], [A], [B, A], [A, B, A], [C], [999], [A, SPECIAL], [SPECIAL], [C, C, C, C, C]];

  it.each([1, 2, 3, 4])('sums to 1 over the vocabulary at order %i', async (order) => {
    const model = await trainFromText({
      texts: ['the cat sat on the mat.', 'the dog sat on the log.', 'a cat and a dog.'],
      tokenizer,
      order,
    });
    const out = new Float32Array(V);
    for (const text of ['', 'the', 'the cat', 'sat on the', 'zebra crossing', 'the dog sat on']) {
      expect(probabilitySum(model.logitsInto(tokenizer.encode(text), out))).toBeCloseTo(1, 5);
    }
    for (const context of contexts) expect(probabilitySum(model.logitsInto(context, out))).toBeCloseTo(1, 5);
  });

  it('dense logits agree with logProb, and special tokens and unused ids are −Infinity', async () => {
    const model = await train(3, 'modified');
    const out = new Float32Array(V);
    for (const context of contexts) {
      model.logitsInto(context, out);
      for (const token of [A, B, C, 0, 999, ORDINARY - 1]) {
        expect(out[token]).toBeCloseTo(model.logProb(context, token), 5);
      }
      for (let token = ORDINARY; token < V; token++) expect(out[token]).toBe(Number.NEGATIVE_INFINITY);
      expect(model.logProb(context, SPECIAL)).toBe(Number.NEGATIVE_INFINITY);
    }
  });

  it('a special token in the context starts a new document', async () => {
    const model = await train(3, 'modified');
    expect(model.logits([A, B, SPECIAL])).toEqual(model.logits([]));
    expect(model.logits([C, SPECIAL, B, A])).toEqual(model.logits([B, A]));
  });

  it('candidates are the most probable tokens, exactly, in descending order', async () => {
    const model = await trainFromText({
      texts: ['one two three four. one two three five. one two six.', 'two three four five six seven'],
      tokenizer,
      order: 3,
    });
    for (const text of ['', 'one', 'one two', 'two three', 'unseen words here']) {
      const context = tokenizer.encode(text);
      const dense = model.logits(context);
      const { ids, logits } = model.candidates(context, 20);
      expect(ids).toHaveLength(20);
      const chosen = new Set(ids);
      for (let i = 0; i < ids.length; i++) {
        expect(logits[i]).toBeCloseTo(dense[ids[i]!]!, 5);
        expect(tokenizer.isOrdinaryToken(ids[i]!)).toBe(true);
        if (i > 0) expect(logits[i]!).toBeLessThanOrEqual(logits[i - 1]!);
      }
      let bestLeftOut = Number.NEGATIVE_INFINITY;
      dense.forEach((logit, token) => {
        if (!chosen.has(token)) bestLeftOut = Math.max(bestLeftOut, logit);
      });
      expect(logits[logits.length - 1]!).toBeGreaterThanOrEqual(bestLeftOut - 1e-6);
    }
    expect(model.candidates([]).ids).toHaveLength(256);
  });

  it('perplexity is exp of the mean negative log-probability of positions ≥ 1', async () => {
    const model = await train(2);
    const ids = [A, B, A, C];
    const expected = Math.exp(-(model.logProb([A], B) + model.logProb([B], A) + model.logProb([A], C)) / 3);
    expect(model.perplexity(ids)).toBeCloseTo(expected, 10);
    expect(model.perplexity(Uint32Array.from(ids))).toBe(model.perplexity(ids));
    expect(model.perplexity([A, SPECIAL])).toBe(Number.POSITIVE_INFINITY);
    expect(() => model.perplexity([A])).toThrow(RangeError);
  });
});

describe('serialization', () => {
  it('round-trips to identical logits, candidates and bytes', async () => {
    const model = await trainFromText({
      texts: ['It was the best of times, it was the worst of times.', 'It was a dark and stormy night.'],
      tokenizer,
      order: 4,
      metadata: { corpus: 'toy' },
    });
    const bytes = model.serialize();
    const copy = NgramModel.deserialize(bytes);
    expect(copy.order).toBe(4);
    expect(copy.vocabSize).toBe(V);
    expect(copy.tokenizerId).toBe('cl100k_base');
    expect(copy.metadata).toEqual(model.metadata);
    expect(copy.metadata.corpus).toBe('toy');
    expect(copy.ngramCounts).toEqual(model.ngramCounts);
    expect(copy.serialize()).toEqual(bytes);
    for (const text of ['', 'It', 'It was', 'it was the', 'of times', 'stormy weather']) {
      const context = tokenizer.encode(text);
      expect(copy.logits(context)).toEqual(model.logits(context));
      expect(copy.candidates(context, 50)).toEqual(model.candidates(context, 50));
    }
  });

  it('rejects bytes that are not a model', async () => {
    const bytes = (await train(3, 'modified')).serialize();
    expect(() => NgramModel.deserialize(new Uint8Array(10))).toThrow(RangeError);
    expect(() => NgramModel.deserialize(bytes.subarray(0, bytes.length - 1))).toThrow(RangeError);
    const extended = new Uint8Array(bytes.length + 1);
    extended.set(bytes);
    expect(() => NgramModel.deserialize(extended)).toThrow(/trailing/);
    const wrongVersion = bytes.slice();
    wrongVersion[4] = 99;
    expect(() => NgramModel.deserialize(wrongVersion)).toThrow(/format version/);
    expect(() => NgramModel.deserialize('model' as unknown as Uint8Array)).toThrow(TypeError);
  });
});

describe('training', () => {
  it('accepts async iterables, and splits documents at special tokens', async () => {
    async function* documents() {
      yield Uint32Array.of(A, B);
      yield [C, A];
    }
    const fromAsync = await trainNgramModel({
      documents: documents(),
      vocabSize: V,
      tokenizerId: 'cl100k_base',
    });
    const fromSplit = await trainNgramModel({
      documents: [[A, B, SPECIAL, C, A]],
      vocabSize: V,
      tokenizerId: 'cl100k_base',
    });
    expect(fromAsync.order).toBe(4);
    expect(fromSplit.logits([B])).toEqual(fromAsync.logits([B]));
    expect(fromSplit.logits([])).toEqual(fromAsync.logits([]));
    expect(fromAsync.metadata.trainingTokens).toBe(4);
  });

  it('handles an empty corpus (uniform over ordinary tokens)', async () => {
    const model = await trainNgramModel({ documents: [], vocabSize: V, tokenizerId: 'cl100k_base' });
    expect(model.logProb([A], B)).toBeCloseTo(-Math.log(ORDINARY), 9);
    expect(probabilitySum(model.logits([A]))).toBeCloseTo(1, 5);
  });

  it('validates its options', async () => {
    const base = { documents: TOY, vocabSize: V, tokenizerId: 'cl100k_base' } as const;
    await expect(trainNgramModel({ ...base, vocabSize: 5 })).rejects.toThrow(/vocabSize/);
    await expect(trainNgramModel({ ...base, order: 7 })).rejects.toThrow(/order/);
    await expect(trainNgramModel({ ...base, order: 0 })).rejects.toThrow(RangeError);
    await expect(trainNgramModel({ ...base, discount: 1 })).rejects.toThrow(/discount/);
    await expect(trainNgramModel({ ...base, documents: [[A, V]] })).rejects.toThrow(/documents\[0\]\[1\]/);
    await expect(trainNgramModel({ ...base, tokenizerId: 'p50k' as 'gpt2' })).rejects.toThrow(/tokenizer/);
  });

  it('validates query arguments', async () => {
    const model = await train(2);
    expect(() => model.logitsInto([A], new Float32Array(10))).toThrow(RangeError);
    expect(() => model.logitsInto([A], new Float64Array(V) as unknown as Float32Array)).toThrow(TypeError);
    expect(() => model.logits([A, -1])).toThrow(/context\[1\]/);
    expect(() => model.logProb([A], V)).toThrow(/token/);
    expect(() => model.candidates([A], 0)).toThrow(/maxCandidates/);
    // Only the last order − 1 tokens are read.
    expect(() => model.logits([-1, A])).not.toThrow();
  });
});

/** Interpolated modified Kneser-Ney from the definition, with string keys: slow, obviously right. */
function referenceLogProb(documents: number[][], order: number) {
  const raw = new Map<string, number>();
  const leftNeighbours = new Map<string, Set<string>>();
  for (const document of documents) {
    for (let i = 0; i < document.length; i++) {
      for (let k = 1; k <= order && i + k <= document.length; k++) {
        const key = document.slice(i, i + k).join(',');
        if (k === order) raw.set(key, (raw.get(key) ?? 0) + 1);
        else {
          const left = leftNeighbours.get(key) ?? new Set<string>();
          left.add(i === 0 ? 'start' : String(document[i - 1]));
          leftNeighbours.set(key, left);
        }
      }
    }
  }
  const countsOfLength = (k: number) =>
    k === order
      ? [...raw].map(([key, count]) => [key.split(',').map(Number), count] as const)
      : [...leftNeighbours]
          .filter(([key]) => key.split(',').length === k)
          .map(([key, left]) => [key.split(',').map(Number), left.size] as const);
  const tables = Array.from({ length: order + 1 }, (_, k) => (k === 0 ? [] : countsOfLength(k)));
  const discounts = tables.map((entries) => {
    const countOfCounts: [number, number, number, number] = [0, 0, 0, 0];
    for (const [, count] of entries) if (count <= 4) countOfCounts[count - 1]!++;
    return modifiedKneserNeyDiscounts(countOfCounts);
  });
  const probability = (k: number, context: number[], token: number): number => {
    if (k === 0) return 1 / ORDINARY;
    const children = tables[k]!.filter(([key]) => context.every((t, i) => key[i] === t));
    const total = children.reduce((sum, [, count]) => sum + count, 0);
    if (total === 0) return probability(k - 1, context.slice(1), token);
    const discount = (count: number) => discounts[k]![Math.min(count, 3) - 1]!;
    const lambda = children.reduce((sum, [, count]) => sum + discount(count), 0) / total;
    const own = children.find(([key]) => key[k - 1] === token)?.[1] ?? 0;
    const discounted = own > 0 ? (own - discount(own)) / total : 0;
    return discounted + lambda * probability(k - 1, context.slice(1), token);
  };
  return (context: number[], token: number): number => {
    const used = context.slice(Math.max(0, context.length - (order - 1)));
    return Math.log(probability(used.length + 1, used, token));
  };
}

describe('against a from-the-definition reference on a random corpus', () => {
  let seed = 12345;
  const random = () => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed / 2 ** 32;
  };
  // Zipf-like choice among 12 tokens, so that counts 1, 2, 3 and 4+ all occur.
  const drawToken = () => 100 + Math.floor(12 * random() ** 2.5);
  const documents = Array.from({ length: 40 }, () =>
    Array.from({ length: 3 + Math.floor(random() * 40) }, drawToken),
  );

  it.each([2, 3, 4, 5])('matches at order %i', async (order) => {
    const model = await trainNgramModel({ documents, vocabSize: V, tokenizerId: 'cl100k_base', order });
    const reference = referenceLogProb(documents, order);
    // The corpus is large enough for three distinct discounts at the top of orders 2 … 4.
    if (order <= 4) expect(new Set(model.discounts[order - 1]).size).toBe(3);
    for (let trial = 0; trial < 150; trial++) {
      const context = Array.from({ length: Math.floor(random() * order) }, drawToken);
      const token = trial % 10 === 0 ? 5000 : drawToken();
      expect(model.logProb(context, token)).toBeCloseTo(reference(context, token), 10);
    }
    const out = new Float32Array(V);
    for (let trial = 0; trial < 10; trial++) {
      const context = Array.from({ length: Math.floor(random() * order) }, drawToken);
      model.logitsInto(context, out);
      expect(probabilitySum(out)).toBeCloseTo(1, 5);
      for (let token = 100; token < 112; token++)
        expect(out[token]).toBeCloseTo(reference(context, token), 5);
    }
  });
});
