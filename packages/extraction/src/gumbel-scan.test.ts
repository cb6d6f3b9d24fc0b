import { createHash } from 'node:crypto';
import {
  createRandom,
  createWatermarker,
  createWatermarkKey,
  detect,
  generateAll,
  gumbelLog10PValue,
  holmAdjustLog10,
  type RandomSource,
  type SchemeParams,
  type WatermarkKey,
} from '@tracemark/core';
import { describe, expect, it } from 'vitest';
import { evaluateKey, fakeKeyTrials } from './evaluate.ts';
import { EvidenceTape } from './evidence-tape.ts';
import {
  ForeignCorpusTest,
  type ForeignKeyScan,
  isForeignKeyScan,
  scanCorpusAnyKeys,
} from './foreign-scan.ts';
import { measureGreenFraction } from './green-fraction.ts';
import { createGumbelCorpusScorer } from './gumbel-scan.ts';
import { IssuedWindowSet } from './issued.ts';
import { type ScanDocument, scanCorpus } from './scan.ts';

const VOCAB = 50_000;
const SPECIAL = [VOCAB - 1];

const keyOf = (label: string, scheme: SchemeParams): WatermarkKey =>
  createWatermarkKey({ secret: createHash('sha256').update(label).digest(), scheme });

/** A model that spreads its mass over 12 random candidates with logits ~ 1.5·N(0, 1) at each step. */
function randomSource(random: RandomSource) {
  const normal = () =>
    Math.sqrt(-2 * Math.log(1 - random.nextFloat())) * Math.cos(2 * Math.PI * random.nextFloat());
  return {
    nextLogits: () => {
      const ids = new Uint32Array(12);
      const logits = new Float32Array(12);
      for (let j = 0; j < 12; j++) {
        ids[j] = Math.floor(random.nextFloat() * (VOCAB - 1));
        logits[j] = 1.5 * normal();
      }
      return { ids, logits };
    },
  };
}

const randomIds = (length: number, random: RandomSource): number[] =>
  Array.from({ length }, () => Math.floor(random.nextFloat() * (VOCAB - 1)));

async function marked(key: WatermarkKey, prompt: number[], length: number, seed: number): Promise<number[]> {
  const ids = await generateAll({
    source: randomSource(createRandom(1000 + seed)),
    prompt,
    maxTokens: length,
    watermarker: createWatermarker(key, { specialTokenIds: SPECIAL }),
    temperature: 1,
    seed,
  });
  return Array.from(ids);
}

const only = (report: { keys: readonly unknown[] }, at = 0): ForeignKeyScan => {
  const scan = report.keys[at] as ForeignKeyScan;
  expect(isForeignKeyScan(scan)).toBe(true);
  return scan;
};

/**
 * The reference: every completion position's (seed, token) pair after its prompt, the first
 * occurrence of each counted once, pairs of any prompt position dropped, scores summed in order.
 */
function reference(key: WatermarkKey, documents: readonly ScanDocument[]): { n: number; s: number } {
  const watermarker = createWatermarker(key, { specialTokenIds: SPECIAL });
  const seed = new Uint32Array(2);
  const promptPairs = new Set<string>();
  const seen = new Map<string, number>();
  for (const document of documents) {
    const prompt = Array.from(document.prompt ?? []);
    const all = [...prompt, ...Array.from(document.tokens)];
    for (let i = 0; i < all.length; i++) {
      if (!watermarker.seedAt(all, i, seed)) continue;
      const pair = `${seed[0]}/${seed[1]}/${all[i]}`;
      if (i < prompt.length) promptPairs.add(pair);
      else if (!seen.has(pair)) seen.set(pair, watermarker.tokenScore(seed[0]!, seed[1]!, all[i]!));
    }
  }
  let n = 0;
  let s = 0;
  for (const [pair, value] of seen) {
    if (promptPairs.has(pair)) continue;
    n++;
    s += value;
  }
  return { n, s };
}

describe('scanCorpusAnyKeys with tracemark Gumbel keys', () => {
  const gumbel = keyOf('gumbel-scan/gumbel', { name: 'gumbel', contextWidth: 4 });
  const dual = keyOf('gumbel-scan/dual', { name: 'dual_gumbel', contextWidth: 2, alpha: 0.3 });
  const greenList = keyOf('gumbel-scan/lefthash', { name: 'lefthash', contextWidth: 1 });
  const random = createRandom(11);
  const prompts = [0, 1, 2, 3].map(() => randomIds(12, random));

  it('one document: the scan equals detect (n, S and the exact Gamma tail)', async () => {
    const tokens = await marked(gumbel, prompts[0]!, 80, 1);
    const report = await scanCorpusAnyKeys({
      documents: [{ tokens, prompt: prompts[0]!, source: 'doc:0' }],
      keys: [gumbel],
      specialTokenIds: SPECIAL,
    });
    const scan = only(report);
    const expected = detect(tokens, createWatermarker(gumbel, { specialTokenIds: SPECIAL }), {
      prompt: prompts[0]!,
    }).results[0]!;
    expect(scan.family).toBe('tracemark');
    expect(scan.scheme).toBe('gumbel');
    expect(scan.numScored).toBe(expected.numScored);
    expect(scan.score).toBe(expected.score);
    expect(scan.log10P).toBe(expected.log10P);
    expect(scan.log10P).toBe(gumbelLog10PValue(gumbel.scheme, scan.numScored, scan.score));
  });

  it('a marked corpus is radioactive with the exact tail of its distinct (seed, token) pairs', async () => {
    const documents: ScanDocument[] = [];
    for (let i = 0; i < 4; i++) {
      documents.push({
        tokens: await marked(gumbel, prompts[i]!, 60, i),
        prompt: prompts[i]!,
        source: `d${i}`,
      });
    }
    const report = await scanCorpusAnyKeys({ documents, keys: [gumbel], specialTokenIds: SPECIAL });
    const scan = only(report);
    const { n, s } = reference(gumbel, documents);
    expect(scan.numScored).toBe(n);
    expect(scan.score).toBeCloseTo(s, 9);
    expect(scan.log10P).toBeCloseTo(gumbelLog10PValue(gumbel.scheme, n, s), 9);
    expect(scan.log10P).toBeLessThan(-20);
    expect(scan.verdict).toBe('radioactive');
    expect(report.verdict).toBe('radioactive');
    expect(report.matchedKeyId).toBe(gumbel.keyId);
    expect(scan.calibration).toBeNull();
    expect(scan.nullDistribution).toMatch(/^exact: .*Gamma\(n, 1\)/);
    expect(scan.doseUpperBound).toBeNull();
    expect(scan.topDocuments[0]!.log10P).toBeLessThan(-5);
  });

  it('dual_gumbel: the weighted-Gamma tail; the wrong key and unmarked text find nothing', async () => {
    const documents: ScanDocument[] = [];
    for (let i = 0; i < 3; i++) {
      documents.push({
        tokens: await marked(dual, prompts[i]!, 60, 10 + i),
        prompt: prompts[i]!,
        source: `d${i}`,
      });
    }
    const scan = only(await scanCorpusAnyKeys({ documents, keys: [dual], specialTokenIds: SPECIAL }));
    const { n, s } = reference(dual, documents);
    expect(scan.scheme).toBe('dual_gumbel');
    expect(scan.parameters).toEqual({ scheme: 'dual_gumbel', contextWidth: 2, alpha: 0.3 });
    expect(scan.numScored).toBe(n);
    expect(scan.log10P).toBeCloseTo(gumbelLog10PValue(dual.scheme, n, s), 9);
    expect(scan.verdict).toBe('radioactive');
    const wrong = keyOf('gumbel-scan/other', { name: 'dual_gumbel', contextWidth: 2, alpha: 0.3 });
    const other = only(await scanCorpusAnyKeys({ documents, keys: [wrong], specialTokenIds: SPECIAL }));
    expect(other.log10P).toBeGreaterThan(-3);
    expect(other.verdict).toBe('insufficient');
  });

  it('an unmarked corpus is not radioactive, and never not_radioactive (no alternative bounds the mark)', async () => {
    const documents = [0, 1, 2].map((i) => ({ tokens: randomIds(300, random), source: `h${i}` }));
    const report = await scanCorpusAnyKeys({ documents, keys: [gumbel], specialTokenIds: SPECIAL });
    const scan = only(report);
    expect(scan.numScored).toBeGreaterThan(850);
    expect(scan.log10P).toBeGreaterThan(-3);
    expect(scan.verdict).toBe('insufficient');
    expect(scan.reason).toMatch(/no not_radioactive verdict/);
    expect(report.verdict).toBe('insufficient');
  });

  it('repeated documents and repeated prompts change nothing', async () => {
    const tokens = await marked(gumbel, prompts[1]!, 60, 5);
    const document = { tokens, prompt: prompts[1]!, source: 'd' };
    const once = only(
      await scanCorpusAnyKeys({ documents: [document], keys: [gumbel], specialTokenIds: SPECIAL }),
    );
    const thrice = only(
      await scanCorpusAnyKeys({
        documents: [document, document, document],
        keys: [gumbel],
        specialTokenIds: SPECIAL,
      }),
    );
    expect(thrice.numScored).toBe(once.numScored);
    expect(thrice.score).toBe(once.score);
    expect(thrice.log10P).toBe(once.log10P);
    expect(thrice.numRepeated).toBe(2 * once.numUnits);
  });

  it('pairs that occur in a prompt are not scored; the prompt seeds the first positions', async () => {
    const tokens = await marked(gumbel, prompts[2]!, 60, 6);
    const copied = only(
      await scanCorpusAnyKeys({
        // The completion again as a later document's prompt: excluded everywhere, before or after.
        documents: [
          { tokens, prompt: prompts[2]!, source: 'completion' },
          { tokens: [], prompt: [...prompts[2]!, ...tokens], source: 'copy' },
        ],
        keys: [gumbel],
        specialTokenIds: SPECIAL,
      }),
    );
    expect(copied.numScored).toBe(0);
    expect(copied.numExcludedByPrompt).toBe(copied.numUnits);
    expect(copied.verdict).toBe('insufficient');
    // Without its prompt the first h tokens have no window: four fewer units.
    const withPrompt = only(
      await scanCorpusAnyKeys({
        documents: [{ tokens, prompt: prompts[2]!, source: 'p' }],
        keys: [gumbel],
        specialTokenIds: SPECIAL,
      }),
    );
    const without = only(
      await scanCorpusAnyKeys({
        documents: [{ tokens, source: 'p' }],
        keys: [gumbel],
        specialTokenIds: SPECIAL,
      }),
    );
    expect(withPrompt.numUnits - without.numUnits).toBe(4);
  });

  it('green-list and Gumbel keys together: Holm over both, each verdict at its adjusted p-value', async () => {
    const documents: ScanDocument[] = [];
    for (let i = 0; i < 3; i++) {
      documents.push({
        tokens: await marked(gumbel, prompts[i]!, 60, 20 + i),
        prompt: prompts[i]!,
        source: `d${i}`,
      });
    }
    const options = { specialTokenIds: SPECIAL, fakeKeys: 20 };
    const alone = await scanCorpus({ ...options, documents, keys: [greenList] });
    const gumbelAlone = only(await scanCorpusAnyKeys({ ...options, documents, keys: [gumbel] }));
    const mixed = await scanCorpusAnyKeys({ ...options, documents, keys: [greenList, gumbel] });
    const [greenScan, gumbelScan] = mixed.keys;
    expect(isForeignKeyScan(greenScan!)).toBe(false);
    expect(greenScan!.log10P).toBe(alone.keys[0]!.log10P);
    expect(gumbelScan!.log10P).toBe(gumbelAlone.log10P);
    expect(mixed.keys.map((k) => k.log10PAdjusted)).toEqual(
      holmAdjustLog10([alone.keys[0]!.log10P, gumbelAlone.log10P]),
    );
    expect(gumbelScan!.verdict).toBe('radioactive');
    expect(greenScan!.verdict).not.toBe('radioactive');
    expect(mixed.verdict).toBe('radioactive');
    expect(mixed.matchedKeyId).toBe(gumbel.keyId);
    expect(mixed.fakeKeys.count).toBe(20);
  });

  it('the green-list paths refuse a Gumbel key with a clear error, never a silent p = 1', async () => {
    const documents = [{ tokens: randomIds(50, random), source: 'x' }];
    await expect(scanCorpus({ documents, keys: [gumbel], specialTokenIds: [] })).rejects.toThrow(
      /gumbel scheme, which has no green list; scan it with scanCorpusAnyKeys/,
    );
    const tape = new EvidenceTape({ scheme: 'lefthash', contextWidth: 4 }, new Set(), null, 0);
    tape.add(documents[0]!.tokens);
    const { tape: finished } = tape.finish();
    expect(() => evaluateKey(finished, gumbel)).toThrow(TypeError);
    expect(() =>
      fakeKeyTrials(finished, { name: 'gumbel', contextWidth: 4 } as never, 'cl100k_base', 's'),
    ).toThrow(/no green list/);
    await expect(measureGreenFraction([documents[0]!.tokens], gumbel, [])).rejects.toThrow(/no green list/);
    const issuedWindows = await IssuedWindowSet.fromOutputs([documents[0]!.tokens], {
      schemes: [greenList.scheme],
      specialTokenIds: [],
    });
    await expect(
      scanCorpusAnyKeys({ documents, keys: [greenList, gumbel], specialTokenIds: [], issuedWindows }),
    ).rejects.toThrow(/does not apply to key .* \(gumbel\)/);
    expect(() => createGumbelCorpusScorer(greenList, [])).toThrow(/green-list scheme/);
  });

  it('token ids outside [0, 2^32) are an error naming the position', async () => {
    await expect(
      scanCorpusAnyKeys({
        documents: [{ tokens: [1, 2, -5], source: 'bad' }],
        keys: [gumbel],
        specialTokenIds: [],
      }),
    ).rejects.toThrow(/tokens\[2\]/);
  });
});

describe('packed units: the same units as the strings, and the same corpus test', () => {
  const keys = [
    keyOf('gumbel-scan/packed', { name: 'gumbel', contextWidth: 2 }),
    keyOf('gumbel-scan/packed-dual', { name: 'dual_gumbel', contextWidth: 3, alpha: 0.25 }),
  ];
  // A small vocabulary, so that units repeat within and across documents and prompts; special tokens
  // now and then, in completions and at the ends of prompts.
  const random = createRandom(29);
  const draw = (length: number): number[] =>
    Array.from({ length }, () =>
      random.nextFloat() < 0.05 ? SPECIAL[0]! : Math.floor(random.nextFloat() * 12),
    );
  const documents: { tokens: number[]; prompt?: number[] }[] = [];
  for (let i = 0; i < 60; i++) {
    const length = [0, 1, 2, 5, 40, 90][i % 6]!;
    const prompt = i % 3 === 0 ? undefined : i % 3 === 1 ? draw(1 + (i % 7)) : [];
    documents.push(prompt === undefined ? { tokens: draw(length) } : { tokens: draw(length), prompt });
  }

  /** A string unit key (seed high, seed low, token in base 36) as its three words (low, high, token). */
  const wordsOf = (keys: readonly string[]): number[] =>
    keys.flatMap((unit) => {
      const [high, low, token] = unit.split('.').map((part) => Number.parseInt(part, 36));
      return [low!, high!, token!];
    });

  it('packedUnits gives units()/unitsInContext() as words, in order, with the same values', () => {
    for (const key of keys) {
      const scorer = createGumbelCorpusScorer(key, SPECIAL);
      let units = 0;
      for (const { tokens, prompt } of documents) {
        for (const ids of [tokens, Uint32Array.from(tokens)]) {
          const packed = scorer.packedUnits!(ids, prompt);
          if (prompt === undefined || prompt.length === 0) {
            const expected = scorer.units(tokens);
            expect(Array.from(packed.completion.words)).toEqual(wordsOf(expected.keys));
            expect(Array.from(packed.completion.values)).toEqual(Array.from(expected.values));
            expect(packed.prompt).toBeNull();
            continue;
          }
          const expected = scorer.unitsInContext!(tokens, prompt);
          expect(Array.from(packed.completion.words)).toEqual(wordsOf(expected.completion.keys));
          expect(Array.from(packed.completion.values)).toEqual(Array.from(expected.completion.values));
          expect(Array.from(packed.prompt!)).toEqual(wordsOf(expected.prompt));
        }
        units += scorer.units(tokens).keys.length;
      }
      expect(units).toBeGreaterThan(1000);
    }
  });

  it('ForeignCorpusTest: the totals of the map of strings, whatever the size hint', () => {
    for (const key of keys) {
      const scorer = createGumbelCorpusScorer(key, SPECIAL);
      const { packedUnits: _, unitWidth: __, ...strings } = scorer;
      const reference = new ForeignCorpusTest(strings);
      // No size hint; one the corpus outgrows; one it fits in (the numbering then buckets in arrays made ahead).
      const tests = [0, 2000, 100_000].map((hint) => new ForeignCorpusTest(scorer, hint));
      // Every document twice over (the second pass all repeats), under every other number (none in between).
      const order = [...documents, ...documents];
      order.forEach(({ tokens, prompt }, document) => {
        for (const test of [reference, ...tests]) test.add(2 * document, tokens, prompt);
      });
      const expected = reference.finish(2 * order.length);
      expect(expected.numExcludedByPrompt).toBeGreaterThan(0);
      expect(expected.numRepeated).toBeGreaterThan(expected.numScored);
      expect(expected.numUnits).toBeGreaterThan(2000);
      // Twice: finishing again gives the same totals.
      for (const test of tests) {
        expect(test.finish(2 * order.length)).toEqual(expected);
        expect(test.finish(2 * order.length)).toEqual(expected);
      }
    }
  });

  it('a packed scorer with no unit width, or words that do not match its values, is an error', () => {
    const scorer = createGumbelCorpusScorer(keys[0]!, SPECIAL);
    const { unitWidth: _, ...widthless } = scorer;
    expect(() => new ForeignCorpusTest(widthless)).toThrow(/unitWidth from 1 to 16/);
    const short = {
      ...scorer,
      packedUnits: () => ({
        completion: { words: new Uint32Array(5), values: new Float64Array(2) },
        prompt: null,
      }),
    };
    expect(() => new ForeignCorpusTest(short).add(0, [1, 2, 3])).toThrow(/5 words for 2 units of 3 words/);
    const test = new ForeignCorpusTest(scorer);
    test.add(3, [1, 2, 3, 4]);
    expect(() => test.add(1, [5, 6, 7])).toThrow(/document numbers in order \(3 or more\), got 1/);
    expect(test.finish(4).numUnits).toBe(2);
  });
});

describe('top documents with a tail lower bound (dual_gumbel)', () => {
  it('the exact tails of the documents that can rank, and the same top documents as every tail', async () => {
    const dual = keyOf('gumbel-scan/top-dual', { name: 'dual_gumbel', contextWidth: 2, alpha: 0.2 });
    const random = createRandom(43);
    const documents: ScanDocument[] = [];
    for (let i = 0; i < 80; i++) {
      // A few marked documents among unmarked ones of every length.
      const tokens =
        i % 9 === 4 ? await marked(dual, [], 30 + i, 100 + i) : randomIds(5 + ((7 * i) % 300), random);
      documents.push({ tokens, source: `doc:${i}` });
    }
    const scorer = createGumbelCorpusScorer(dual, SPECIAL);
    expect(typeof scorer.tailLowerBound).toBe('function');
    const { tailLowerBound: _, ...boundless } = scorer;
    let calls = 0;
    const counted = {
      ...scorer,
      tail: (score: number, count: number): number => {
        calls++;
        return scorer.tail(score, count);
      },
    };
    const scan = async (corpusScorer: typeof scorer, topDocuments: number) =>
      only(
        await scanCorpusAnyKeys({
          documents,
          keys: [{ scorer: corpusScorer, label: 'tracemark', parameters: {} }],
          specialTokenIds: SPECIAL,
          topDocuments,
        }),
      );
    for (const top of [0, 1, 2, 3, 5, 10, 20, 80]) {
      calls = 0;
      const pruned = await scan(counted, top);
      const everyTail = await scan(boundless, top);
      expect(pruned).toEqual(everyTail);
      expect(pruned.topDocuments.length).toBe(Math.min(top, 80));
      // The corpus's tail, and those of the documents that could rank: fewer than every document's.
      if (top <= 10) expect(calls).toBeLessThan(1 + 80);
      if (top === 0) expect(calls).toBe(1);
    }
    for (let i = 0; i < 200; i++) {
      const count = 1 + Math.floor(random.nextFloat() * 600);
      const score = count * 2.5 * random.nextFloat();
      expect(scorer.tailLowerBound!(score, count)).toBeLessThanOrEqual(scorer.tail(score, count) + 1e-9);
    }
  });
});
