import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getTokenizer } from '@tracemark/tokenizers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultCacheDirectory, defaultModelFileName, loadDefaultModel } from './default-model.js';
import { loadHumanCorpus } from './human-corpus.js';
import { type NgramModel, NgramModel as NgramModelClass } from './ngram-model.js';

const tokenizer = getTokenizer('cl100k_base');
let model: NgramModel;
let heldOut: Uint32Array[];
let scratchDirectory: string;

beforeAll(async () => {
  // Trains once (seconds) into the default cache directory, or reads it from there.
  model = await loadDefaultModel();
  heldOut = (await loadHumanCorpus({ split: 'test' })).map((document) => tokenizer.encode(document.text));
  scratchDirectory = await mkdtemp(join(tmpdir(), 'tracemark-lm-cache-'));
});

afterAll(async () => {
  await rm(scratchDirectory, { recursive: true, force: true });
});

function corpusPerplexity(ngramModel: NgramModel, documents: readonly Uint32Array[]): number {
  let logSum = 0;
  let positions = 0;
  for (const ids of documents) {
    if (ids.length < 2) continue;
    logSum += Math.log(ngramModel.perplexity(ids)) * (ids.length - 1);
    positions += ids.length - 1;
  }
  return Math.exp(logSum / positions);
}

describe('the default model', () => {
  it('is an order-4 cl100k_base model trained on the train split', () => {
    expect(model.order).toBe(4);
    expect(model.tokenizerId).toBe('cl100k_base');
    expect(model.vocabSize).toBe(tokenizer.vocabSize);
    expect(model.metadata.split).toBe('train');
    expect(model.metadata.trainingTokens).toBeGreaterThan(2_500_000);
  });

  it('gives distributions that sum to 1, with special tokens at −Infinity', () => {
    const out = new Float32Array(model.vocabSize);
    const special = [...tokenizer.specialTokenIds][0]!;
    for (const text of [
      '',
      'The',
      'The jury said',
      ' of the',
      'in the United',
      'zxqv wug blick',
      'I think that it',
    ]) {
      model.logitsInto(tokenizer.encode(text), out);
      let sum = 0;
      for (const logit of out) sum += Math.exp(logit);
      expect(sum).toBeCloseTo(1, 4);
      for (const id of tokenizer.specialTokenIds) expect(out[id]).toBe(Number.NEGATIVE_INFINITY);
    }
    expect(model.logProb([special], 0)).toBe(model.logProb([], 0));
  });

  it('predicts sensibly', () => {
    const { ids } = model.candidates(tokenizer.encode('the United'), 5);
    expect(tokenizer.decode([ids[0]!])).toBe(' States');
  });

  it('finds held-out human text far more likely than a uniform model, and order 4 beats order 1', async () => {
    const perplexity = corpusPerplexity(model, heldOut);
    expect(perplexity).toBeLessThan(model.ordinaryTokenCount / 100);

    // Training order 1 also exercises the cache: a corrupt file is replaced atomically.
    const name = await defaultModelFileName('cl100k_base', 1);
    await writeFile(join(scratchDirectory, name), 'not a model');
    const unigram = await loadDefaultModel({ cacheDir: scratchDirectory, order: 1 });
    expect(unigram.order).toBe(1);
    expect(await readdir(scratchDirectory)).toEqual([name]);
    const reread = NgramModelClass.deserialize(await readFile(join(scratchDirectory, name)));
    expect(reread.logits([])).toEqual(unigram.logits([]));
    expect(await loadDefaultModel({ cacheDir: scratchDirectory, order: 1 })).toBe(unigram);

    const unigramPerplexity = corpusPerplexity(unigram, heldOut);
    expect(perplexity).toBeLessThan(unigramPerplexity * 0.6);
  });

  it('reads back from its cache file with identical logits', async () => {
    const path = join(defaultCacheDirectory(), await defaultModelFileName('cl100k_base', 4));
    const cached = NgramModelClass.deserialize(await readFile(path));
    for (const text of ['', 'The jury', 'It was the best of']) {
      const context = tokenizer.encode(text);
      expect(cached.logits(context)).toEqual(model.logits(context));
    }
  });

  it('computes dense logits quickly', () => {
    const out = new Float32Array(model.vocabSize);
    const ids = heldOut[0]!;
    const calls = Math.min(ids.length - 1, 500);
    const start = performance.now();
    for (let i = 1; i <= calls; i++) model.logitsInto(ids.subarray(Math.max(0, i - 3), i), out);
    // The target is ≤ 2 ms per call; the bound here leaves room for a loaded test machine.
    expect((performance.now() - start) / calls).toBeLessThan(10);
  });

  it('rejects bad options', async () => {
    await expect(loadDefaultModel({ order: 9 })).rejects.toThrow(/order/);
    await expect(loadDefaultModel({ tokenizerId: 'bert' as 'gpt2' })).rejects.toThrow(/one of cl100k_base/);
  });
});
