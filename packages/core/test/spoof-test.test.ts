/**
 * The spoofing-artefact test: its exact hypergeometric tail against mpmath (60 digits; the script is
 * in the comment below), its size under the exact null and on genuine watermarked text, and its power
 * on text whose marks follow learnability as a spoofer's do.
 *
 *   import mpmath as mp; mp.mp.dps = 60
 *   sf = lambda k, N, K, n: mp.log10(sum(mp.binomial(K, x) * mp.binomial(N - K, n - x)
 *          for x in range(k, min(n, K) + 1)) / mp.binomial(N, n))
 */
import { describe, expect, it } from 'vitest';
import {
  createNgramCounts,
  createRandom,
  createWatermarker,
  createWatermarkKey,
  generateAll,
  log10HypergeometricSf,
  ngramCountsFromTable,
  spoofTest,
} from '../src/index.ts';

const REFERENCE: readonly (readonly [number, number, number, number, number])[] = [
  [3, 10, 5, 4, -0.5818566052396754],
  [7, 20, 10, 10, -1.0484308027037017],
  [1, 10, 5, 4, -0.010465433678164968],
  [0, 10, 5, 4, 0],
  [60, 200, 80, 100, -8.274250614271331],
  [40, 200, 80, 100, -0.253868188606086],
  [100, 200, 100, 100, -58.956881330608674],
  [400, 2000, 700, 1000, -5.773181107417849],
  [700, 2000, 700, 1000, -296.9021883963315],
  [900, 5000, 1200, 2500, -90.22145112086993],
  [5000, 10000, 5000, 5000, -3008.201885843935],
  [2600, 10000, 5000, 5000, -4.463614274646761],
  [2, 3, 2, 2, -0.47712125471966244],
];

describe('log10HypergeometricSf', () => {
  it.each(REFERENCE)('P[H ≥ %i] (N %i, K %i, n %i) = 10^%d', (k, population, successes, draws, expected) => {
    const value = log10HypergeometricSf(k, population, successes, draws);
    expect(Math.abs(value - expected)).toBeLessThanOrEqual(1e-9 * Math.max(1, Math.abs(expected)));
  });

  it('is −∞ beyond the support and refuses impossible tables', () => {
    expect(log10HypergeometricSf(5, 10, 4, 6)).toBe(Number.NEGATIVE_INFINITY);
    expect(() => log10HypergeometricSf(1, 10, 11, 2)).toThrow(/^successes: /);
    expect(() => log10HypergeometricSf(1, 10, 2, 11)).toThrow(/^draws: /);
    expect(() => log10HypergeometricSf(-1, 10, 2, 2)).toThrow(/^k: /);
  });
});

const VOCAB = 64;
// Zipf-like, context-free: token i has weight 1 / (i + 1).
const zipfLogits = Float32Array.from({ length: VOCAB }, (_, i) => -Math.log(i + 1));
const ids = Uint32Array.from({ length: VOCAB }, (_, i) => i);
const source = { nextLogits: () => ({ ids, logits: zipfLogits }) };
/** Learnability as a spoofer's reference would see it: how common the token is (its Zipf rank). */
const commonness = (tokens: Uint32Array, index: number) => VOCAB - tokens[index]!;

function keyFor(label: string, scheme: { name: 'lefthash' | 'gumbel'; contextWidth: number }) {
  const secret = new Uint8Array(32);
  secret.set(new TextEncoder().encode(label).subarray(0, 32));
  return createWatermarkKey({ secret, scheme });
}

describe('spoofTest', () => {
  const key = keyFor('spoof-test/lefthash', { name: 'lefthash', contextWidth: 1 });
  const watermarker = createWatermarker(key);

  it('holds its size under the exact null (unmarked text, any learnability)', () => {
    const random = createRandom(11);
    let rejected = 0;
    const trials = 300;
    for (let t = 0; t < trials; t++) {
      const tokens = Uint32Array.from({ length: 150 }, () => Math.floor(random.nextFloat() * 5000));
      const result = spoofTest(tokens, watermarker, (text, i) => text[i]! % 7);
      if (result.log10P <= Math.log10(0.05)) rejected++;
    }
    // An exact conditional test: at most 5% in expectation; Binomial(300, 0.05) stays below 27 w.p. > 0.99.
    expect(rejected).toBeLessThan(27);
  });

  it('is conservative on genuine watermarked text (the mark shows more on rare tokens)', async () => {
    let rejected = 0;
    let meanDifference = 0;
    const trials = 60;
    for (let t = 0; t < trials; t++) {
      const tokens = await generateAll({ source, prompt: [t], maxTokens: 200, watermarker, seed: t });
      const result = spoofTest(tokens, watermarker, commonness, { prompt: [t] });
      if (result.log10P <= Math.log10(0.05)) rejected++;
      meanDifference += result.difference / trials;
    }
    expect(rejected).toBeLessThanOrEqual(3);
    expect(meanDifference).toBeLessThan(0);
  });

  it('finds text whose marks follow learnability (a spoofer that knows only common pairs)', () => {
    const random = createRandom(3);
    let detected = 0;
    for (let t = 0; t < 20; t++) {
      const tokens = new Uint32Array(200);
      tokens[0] = t;
      for (let i = 1; i < tokens.length; i++) {
        const green = watermarker.candidateTester(tokens.subarray(0, i));
        // Common tokens (ids < 32) are chosen green when possible; rare ones blindly.
        let token = Math.floor(random.nextFloat() * VOCAB);
        if (token < 32)
          for (let tries = 0; tries < 20 && green(token) !== 1; tries++)
            token = Math.floor(random.nextFloat() * 32);
        tokens[i] = token;
      }
      const result = spoofTest(tokens, watermarker, commonness);
      expect(result.common.numScored + result.rare.numScored).toBe(result.numScored);
      if (result.log10P <= -3) detected++;
    }
    expect(detected).toBeGreaterThanOrEqual(18);
  });

  it('reads a Gumbel key by u ≥ ½, and is conservative on its genuine text too', async () => {
    const gumbel = createWatermarker(keyFor('spoof-test/gumbel', { name: 'gumbel', contextWidth: 1 }));
    let rejected = 0;
    for (let t = 0; t < 30; t++) {
      const tokens = await generateAll({ source, prompt: [t], maxTokens: 200, watermarker: gumbel, seed: t });
      const result = spoofTest(tokens, gumbel, commonness, { prompt: [t] });
      expect(result.numScored).toBeGreaterThan(0);
      if (result.log10P <= Math.log10(0.05)) rejected++;
    }
    expect(rejected).toBeLessThanOrEqual(2);
  });

  it('gives p = 1 when a group is empty, and checks its inputs', () => {
    const tokens = Uint32Array.from({ length: 50 }, (_, i) => i);
    const flat = spoofTest(tokens, watermarker, () => 1);
    expect(flat.common.numScored).toBe(0);
    expect(flat.log10P).toBe(0);
    expect(Number.isNaN(flat.difference)).toBe(true);
    expect(() => spoofTest(tokens, watermarker, () => -1)).toThrow(/^learnability: /);
    expect(() => spoofTest(tokens, watermarker, () => 1, { threshold: Number.NaN })).toThrow(/^threshold: /);
    expect(() => spoofTest(tokens, watermarker, null as never)).toThrow(/^learnability: /);
  });
});

describe('createNgramCounts', () => {
  it('counts the n-gram that ends at a position', () => {
    const counts = createNgramCounts(
      [
        [1, 2, 3, 1, 2],
        [1, 2],
      ],
      2,
    );
    expect(counts.size).toBe(3);
    expect(counts.count(Uint32Array.of(5, 1, 2), 2)).toBe(3);
    expect(counts.count(Uint32Array.of(2, 3), 1)).toBe(1);
    expect(counts.count(Uint32Array.of(1, 2), 0)).toBe(0);
    expect(counts.count(Uint32Array.of(9, 9), 1)).toBe(0);
    expect(() => createNgramCounts([], 0)).toThrow(/^order: /);
  });

  it('round-trips through its table (for a cache file), and refuses a table out of order', () => {
    const documents = [
      [5, 1, 2, 3, 1, 2, 0],
      [1, 2, 7, 7, 7],
    ];
    for (const order of [1, 2]) {
      const counts = createNgramCounts(documents, order);
      const table = counts.toTable()!;
      const back = ngramCountsFromTable({
        order,
        keys: Float64Array.from(table.keys),
        counts: Uint32Array.from(table.counts),
      });
      expect(back.size).toBe(counts.size);
      for (const document of documents) {
        const tokens = Uint32Array.from(document);
        for (let i = 0; i < tokens.length; i++) expect(back.count(tokens, i)).toBe(counts.count(tokens, i));
      }
    }
    expect(() =>
      ngramCountsFromTable({ order: 2, keys: Float64Array.of(3, 2), counts: Uint32Array.of(1, 1) }),
    ).toThrow(/strictly increasing/);
    expect(() => createNgramCounts(documents, 3).toTable()).not.toThrow();
    expect(createNgramCounts(documents, 3).toTable()).toBeNull();
  });

  it('agrees with counting joined ids, for every order, with ids on both sides of 2^21', () => {
    const random = createRandom(3);
    // Small vocabularies so that n-grams repeat; some ids at or above 2^21 take the string keys.
    const id = () =>
      random.nextFloat() < 0.1
        ? 2 ** 21 + Math.floor(random.nextFloat() * 3)
        : Math.floor(random.nextFloat() * 6);
    const documents = Array.from({ length: 20 }, () =>
      Array.from({ length: Math.floor(random.nextFloat() * 30) }, id),
    );
    for (const order of [1, 2, 3]) {
      const reference = new Map<string, number>();
      for (const document of documents)
        for (let end = order - 1; end < document.length; end++) {
          const key = document.slice(end - order + 1, end + 1).join(',');
          reference.set(key, (reference.get(key) ?? 0) + 1);
        }
      const built = createNgramCounts(documents, order);
      expect(built.size, `order ${order}`).toBe(reference.size);
      // Unigrams are all numeric; a bigram after an id of 2^21 or more (and every trigram) is joined,
      // so only the unigram counts make a table.
      expect(built.toTable() === null, `order ${order}`).toBe(order !== 1);
      const counts = built;
      for (const document of documents) {
        const tokens = Uint32Array.from(document);
        for (let index = 0; index < tokens.length; index++) {
          const expected =
            index < order - 1
              ? 0
              : (reference.get(document.slice(index - order + 1, index + 1).join(',')) ?? 0);
          expect(counts.count(tokens, index)).toBe(expected);
        }
      }
    }
  });
});
