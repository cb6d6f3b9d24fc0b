import { createHash } from 'node:crypto';
import {
  createRandom,
  createVllmDetector,
  createWatermarkKey,
  holmAdjustLog10,
  log10GammaSf,
  type RandomSource,
} from '@tracemark/core';
import { describe, expect, it } from 'vitest';
// @tracemark/extraction does not depend on @tracemark/detection (scans take any scorer with units and
// tail); the tests use the real vLLM scorer from its sources.
import { createVllmKeyScorer } from '../../detection/src/vllm-detection.ts';
import { createVllmWatermarkKey, type VllmKeyOptions } from '../../detection/src/vllm-keys.ts';
import {
  type ForeignKeyScan,
  type ForeignScanKey,
  isForeignKeyScan,
  scanCorpusAnyKeys,
} from './foreign-scan.ts';
import type { ScanDocument } from './scan.ts';
import { scanCorpus } from './scan.ts';

const VOCAB = 50_000;

function foreignKey(options: Omit<VllmKeyOptions, 'tokenizer'>): ForeignScanKey {
  const key = createVllmWatermarkKey({ ...options, tokenizer: 'cl100k_base' });
  return { scorer: createVllmKeyScorer(key, 1e-6), label: 'vLLM', parameters: { scheme: key.scheme } };
}

/**
 * Token ids a vLLM gumbel engine would emit when the model spreads its probability evenly over `k`
 * random candidates at each step: Gumbel-max with equal p picks the candidate with the largest PRF
 * uniform u(context, v).
 */
function markedIds(engineKey: bigint, length: number, random: RandomSource, k = 8): number[] {
  const detector = createVllmDetector({ scheme: 'gumbel', engineKey });
  const width = detector.key.contextWidth;
  const ids: number[] = [];
  for (let t = 0; t < length; t++) {
    const context = Array.from({ length: width }, (_, i) => (t - width + i >= 0 ? ids[t - width + i]! : -1));
    let best = -1;
    let bestUniform = -1;
    for (let j = 0; j < k; j++) {
      const candidate = Math.floor(random.nextFloat() * VOCAB);
      const uniform = detector.scoreToken(context, candidate).uniforms[0]!;
      if (uniform > bestUniform) {
        best = candidate;
        bestUniform = uniform;
      }
    }
    ids.push(best);
  }
  return ids;
}

const randomIds = (length: number, random: RandomSource): number[] =>
  Array.from({ length }, () => Math.floor(random.nextFloat() * VOCAB));

const only = (scan: { keys: readonly unknown[] }): ForeignKeyScan => {
  const key = scan.keys[0] as ForeignKeyScan;
  expect(isForeignKeyScan(key)).toBe(true);
  return key;
};

describe('scanCorpusAnyKeys with vLLM keys', () => {
  const engineKey = 0x1234_5678_9abc_def0n;
  const gumbel = foreignKey({ scheme: 'gumbel', engineKey });
  const random = createRandom(7);
  const marked = [0, 1, 2, 3].map(() => markedIds(engineKey, 60, random));
  const documents = (texts: readonly number[][]): ScanDocument[] =>
    texts.map((tokens, i) => ({ tokens, source: `doc:${i}` }));

  it('one document: the corpus test equals the per-document scorer (strict)', async () => {
    const report = await scanCorpusAnyKeys({
      documents: documents([marked[0]!]),
      keys: [gumbel],
      specialTokenIds: [],
    });
    const expected = gumbel.scorer.score(marked[0]!, 'strict');
    const scan = only(report);
    expect(scan.scheme).toBe('vllm:gumbel');
    expect(scan.numScored).toBe(expected.numScored);
    expect(scan.score).toBeCloseTo(expected.score, 10);
    expect(scan.log10P).toBeCloseTo(expected.log10P, 10);
  });

  it('a marked corpus is radioactive with the Gamma(n, 1) tail of its distinct units', async () => {
    const report = await scanCorpusAnyKeys({
      documents: documents(marked),
      keys: [gumbel],
      specialTokenIds: [],
    });
    const scan = only(report);
    // Four documents of distinct units: the sums of the per-document scorer's numbers.
    const perDocument = marked.map((ids) => gumbel.scorer.score(ids, 'strict'));
    const n = perDocument.reduce((sum, r) => sum + r.numScored, 0);
    const s = perDocument.reduce((sum, r) => sum + r.score, 0);
    expect(scan.numRepeated).toBe(0);
    expect(scan.numScored).toBe(n);
    expect(scan.score).toBeCloseTo(s, 9);
    expect(scan.log10P).toBeCloseTo(log10GammaSf(n, s), 9);
    expect(scan.log10P).toBeLessThan(-10);
    expect(scan.verdict).toBe('radioactive');
    expect(report.verdict).toBe('radioactive');
    expect(report.matchedKeyId).toBe(gumbel.scorer.key.keyId);
    expect(scan.calibration).toBeNull();
    expect(scan.nullDistribution).toMatch(/^exact/);
    expect(scan.topDocuments[0]!.log10P).toBeLessThan(-2);
  });

  it('repeated documents do not inflate the score', async () => {
    const once = only(
      await scanCorpusAnyKeys({ documents: documents([marked[0]!]), keys: [gumbel], specialTokenIds: [] }),
    );
    const thrice = only(
      await scanCorpusAnyKeys({
        documents: documents([marked[0]!, marked[0]!, marked[0]!]),
        keys: [gumbel],
        specialTokenIds: [],
      }),
    );
    expect(thrice.numScored).toBe(once.numScored);
    expect(thrice.log10P).toBe(once.log10P);
    expect(thrice.numRepeated).toBe(2 * once.numUnits);
  });

  it('units that occur in a prompt are not scored; prompts are no part of contexts', async () => {
    const ids = marked[1]!;
    const report = await scanCorpusAnyKeys({
      documents: [{ tokens: ids, prompt: ids, source: 'copy' }],
      keys: [gumbel],
      specialTokenIds: [],
    });
    const scan = only(report);
    expect(scan.numScored).toBe(0);
    expect(scan.numExcludedByPrompt).toBe(scan.numUnits);
    expect(scan.verdict).toBe('insufficient');
    // An unrelated prompt changes nothing: the output's contexts start at the output.
    const unrelated = only(
      await scanCorpusAnyKeys({
        documents: [{ tokens: ids, prompt: randomIds(30, random), source: 'p' }],
        keys: [gumbel],
        specialTokenIds: [],
      }),
    );
    expect(unrelated.log10P).toBe(gumbel.scorer.score(ids, 'strict').log10P);
  });

  it('an unmarked corpus and a wrong engine key are not radioactive', async () => {
    const clean = only(
      await scanCorpusAnyKeys({
        documents: documents([0, 1, 2].map(() => randomIds(200, random))),
        keys: [gumbel],
        specialTokenIds: [],
      }),
    );
    expect(clean.verdict).not.toBe('radioactive');
    expect(clean.log10P).toBeGreaterThan(-3);
    const wrong = foreignKey({ scheme: 'gumbel', engineKey: engineKey + 1n });
    const report = await scanCorpusAnyKeys({
      documents: documents(marked),
      keys: [wrong],
      specialTokenIds: [],
    });
    expect(only(report).log10P).toBeGreaterThan(-3);
    expect(report.verdict).not.toBe('radioactive');
  });

  it('red_green: an unmarked corpus with enough units is not_radioactive (a dose is ruled out)', async () => {
    const redGreen = foreignKey({ scheme: 'red_green', engineKey, delta: 2 });
    const report = await scanCorpusAnyKeys({
      documents: documents([0, 1, 2, 3, 4].map(() => randomIds(600, random))),
      keys: [redGreen],
      specialTokenIds: [],
      minimumDose: 0.5,
    });
    const scan = only(report);
    expect(scan.numGreen).not.toBeNull();
    expect(scan.doseUpperBound).not.toBeNull();
    expect(scan.doseUpperBound!).toBeLessThan(0.5);
    expect(report.verdict).toBe('not_radioactive');
  });

  it('red_green: with nothing or a few units scored the dose bound is 1, none within 0–100% ruled out', async () => {
    const redGreen = foreignKey({ scheme: 'red_green', engineKey, delta: 2 });
    const empty = only(await scanCorpusAnyKeys({ documents: [], keys: [redGreen], specialTokenIds: [] }));
    expect(empty.numScored).toBe(0);
    expect(empty.doseUpperBound).toBe(1);
    expect(empty.reason).toBe('no evidence: 0 scored units (no unit could be scored)');
    const few = only(
      await scanCorpusAnyKeys({
        documents: documents([randomIds(2, createRandom(11))]),
        keys: [redGreen],
        specialTokenIds: [],
        minimumDose: 1,
      }),
    );
    expect(few.numScored).toBeGreaterThan(0);
    expect(few.doseUpperBound).toBe(1);
    expect(few.verdict).toBe('insufficient');
    expect(few.reason).toContain('(no dose within 0–100% is ruled out)');
  });

  it('tracemark and vLLM keys together: Holm over both, each verdict at its adjusted p-value', async () => {
    const tracemarkKey = createWatermarkKey({
      secret: createHash('sha256').update('foreign-scan/tracemark').digest(),
    });
    const options = { documents: documents(marked), specialTokenIds: [], fakeKeys: 20 };
    const alone = await scanCorpus({ ...options, keys: [tracemarkKey] });
    const mixed = await scanCorpusAnyKeys({
      ...options,
      documents: documents(marked),
      keys: [tracemarkKey, gumbel],
    });
    expect(mixed.keys).toHaveLength(2);
    const [tracemarkScan, vllmScan] = mixed.keys;
    expect(isForeignKeyScan(tracemarkScan!)).toBe(false);
    expect(tracemarkScan!.log10P).toBe(alone.keys[0]!.log10P);
    expect(mixed.keys.map((k) => k.log10PAdjusted)).toEqual(
      holmAdjustLog10([alone.keys[0]!.log10P, vllmScan!.log10P]),
    );
    expect(vllmScan!.verdict).toBe('radioactive');
    expect(tracemarkScan!.verdict).not.toBe('radioactive');
    expect(mixed.verdict).toBe('radioactive');
    expect(mixed.matchedKeyId).toBe(gumbel.scorer.key.keyId);
  });

  it('refuses keys of different tokenizers, a scorer without units, and the supervised filter', async () => {
    const other = createVllmWatermarkKey({ scheme: 'gumbel', engineKey, tokenizer: 'gpt2' });
    await expect(
      scanCorpusAnyKeys({
        documents: [],
        keys: [gumbel, { ...gumbel, scorer: createVllmKeyScorer(other, 1e-6) }],
        specialTokenIds: [],
      }),
    ).rejects.toThrow(/different tokenizers/);
    const { units: _units, ...withoutUnits } = gumbel.scorer;
    await expect(
      scanCorpusAnyKeys({
        documents: [],
        keys: [{ ...gumbel, scorer: withoutUnits as unknown as ForeignScanKey['scorer'] }],
        specialTokenIds: [],
      }),
    ).rejects.toThrow(/cannot be scanned yet/);
  });

  it('ids outside [0, 2^31) are an input error naming the position', async () => {
    await expect(
      scanCorpusAnyKeys({
        documents: [{ tokens: [1, 2, -5], source: 'bad' }],
        keys: [gumbel],
        specialTokenIds: [],
      }),
    ).rejects.toMatchObject({ code: 'TM_ERR_INVALID_TOKENS', message: expect.stringContaining('[2]') });
  });
});

describe('top documents with a tail lower bound', () => {
  it('are those of every tail, whatever the bounds (random documents, bounds and counts)', async () => {
    const random = createRandom(47);
    for (let round = 0; round < 60; round++) {
      // One unit a document, unit i worth values[i]; the tail is −score / count, the bound below it by a
      // random slack, so that the bounds' order is not the tails'.
      const documents = 5 + Math.floor(random.nextFloat() * 40);
      const values = Array.from({ length: documents }, () => Math.floor(random.nextFloat() * 50) / 4);
      const slack = Array.from({ length: documents }, () => random.nextFloat() * 8);
      let calls = 0;
      const base = {
        key: { keyId: 'synthetic', kind: 'synthetic', tokenizer: 'cl100k_base' },
        schemeName: 'synthetic:units',
        nullGreenProbability: null,
        verdictOptions: { alternative: null },
        units: (ids: ArrayLike<number>) => ({
          keys: Array.from(ids, (id) => String(id)),
          values: Float64Array.from(Array.from(ids, (id) => values[id]!)),
        }),
        tail: (score: number, count: number): number => {
          calls++;
          return count === 0 ? 0 : -score / count;
        },
      };
      const bounded = {
        ...base,
        // Document d's only unit is d, its score values[d]: the bound is its tail less its slack.
        tailLowerBound: (score: number, count: number): number =>
          -score / count - slack[values.indexOf(score)]!,
      };
      const corpus = Array.from({ length: documents }, (_, d) => ({ tokens: [d], source: `d${d}` }));
      const top = Math.floor(random.nextFloat() * (documents + 2));
      const scan = async (scorer: typeof base) =>
        (
          await scanCorpusAnyKeys({
            documents: corpus,
            keys: [{ scorer, label: 'synthetic', parameters: {} }],
            specialTokenIds: [],
            topDocuments: top,
          })
        ).keys[0] as ForeignKeyScan;
      const everyTail = await scan(base);
      calls = 0;
      const pruned = await scan(bounded);
      expect(pruned.topDocuments).toEqual(everyTail.topDocuments);
      expect(calls).toBeLessThanOrEqual(1 + documents);
    }
  });
});
