/**
 * The tape thread of `tracemark scan` (tape-thread.ts): a worker builds the evidence tape from
 * documents sent as they come. Its report must be the library's on this thread,
 * its failures the library's errors, and closing it must stop it.
 */
import { createWatermarker, createWatermarkKey } from '@tracemark/core';
import { IssuedWindowSet, type ScanDocument, scanCorpusAnyKeys } from '@tracemark/extraction';
import { getTokenizer } from '@tracemark/tokenizers';
import { describe, expect, it } from 'vitest';

import { kernelBytesFor, scratchArraysFor, startTapeThread, type TapeThreadOptions } from './tape-thread.ts';

// The worker as compiled (pnpm build), without the test runner's Node options (they resolve the
// workspace packages to their TypeScript sources): this side runs from sources.
const worker = new URL('../../dist/scan/tape-worker.js', import.meta.url);
const start = (options: TapeThreadOptions) => startTapeThread(options, worker, []);

const tokenizer = getTokenizer('cl100k_base');
const key = createWatermarkKey({
  secret: new Uint8Array(32).fill(9),
  scheme: { name: 'lefthash', contextWidth: 2 },
});
const other = createWatermarkKey({ secret: new Uint8Array(32).fill(4) });
// SelfHash: its trial values need the whole tape (windows, candidates and prompts), sent in shared memory.
const selfHash = createWatermarkKey({
  secret: new Uint8Array(32).fill(8),
  scheme: { name: 'selfhash', contextWidth: 3 },
});

/** A document of `length` tokens that takes a green token (under `key`) wherever one of 8 candidates is. */
function marked(seed: number, length: number): Uint32Array {
  const watermarker = createWatermarker(key);
  const tokens: number[] = [1000 + (seed % 500), 2000 + (seed % 700)];
  for (let i = 0; tokens.length < length; i++) {
    const test = watermarker.candidateTester(tokens);
    let choice = 3000 + ((seed * 31 + i * 17) % 20_000);
    for (let c = 0; c < 8; c++) {
      const candidate = 3000 + ((seed * 31 + i * 17 + c * 977) % 20_000);
      if (test(candidate) === 1) {
        choice = candidate;
        break;
      }
    }
    tokens.push(choice);
  }
  return Uint32Array.from(tokens);
}

/**
 * Documents of every shape a batch packs: marked and not, with and without prompts, empty, and enough
 * of them for several batches.
 */
function corpus(): ScanDocument[] {
  const documents: ScanDocument[] = [];
  for (let i = 0; i < 1500; i++) {
    const words = Array.from({ length: 20 + (i % 37) }, (_, j) => `w${(i * 7919 + j * 104729) % 3001}`);
    const tokens = i % 5 === 0 ? marked(i, 60) : tokenizer.encode(words.join(' '));
    const prompt = i % 3 === 0 ? tokenizer.encode(`question ${i % 50}`) : undefined;
    documents.push({ source: `doc:${i}`, tokens, ...(prompt === undefined ? {} : { prompt }) });
  }
  documents.push({ source: 'empty', tokens: new Uint32Array(0) });
  documents.push({
    source: 'empty-prompt',
    tokens: tokenizer.encode('an answer'),
    prompt: new Uint32Array(0),
  });
  return documents;
}

async function* iterate(documents: readonly ScanDocument[]): AsyncGenerator<ScanDocument> {
  yield* documents;
}

const options = {
  keys: [other, key, selfHash],
  specialTokenIds: [...tokenizer.specialTokenIds],
  fakeKeys: 40,
  expectedTokens: 1000,
  alpha: 1e-6,
  minimumDose: 0.05,
};

it('prefaults kernel memory for LeftHash keys of h ≥ 2 only: 8 bytes a token', () => {
  const key = (name: 'lefthash' | 'selfhash' | 'gumbel', contextWidth: number) =>
    createWatermarkKey({ secret: new Uint8Array(32).fill(2), scheme: { name, contextWidth } });
  expect(kernelBytesFor([key('lefthash', 4)], 1000)).toBe(8000 + (1 << 20));
  expect(kernelBytesFor([key('lefthash', 1), key('lefthash', 2), key('selfhash', 4)], 10)).toBe(
    80 + (1 << 20),
  );
  expect(kernelBytesFor([key('lefthash', 1)], 1000)).toBe(0);
  expect(kernelBytesFor([key('selfhash', 4), key('gumbel', 2)], 1000)).toBe(0);
});

it("touches scratch for SelfHash keys' trial values only: four arrays a word a position", () => {
  const key = (name: 'lefthash' | 'selfhash' | 'gumbel', contextWidth: number) =>
    createWatermarkKey({ secret: new Uint8Array(32).fill(2), scheme: { name, contextWidth } });
  const scratch = scratchArraysFor([key('lefthash', 4), key('selfhash', 1)], 1000);
  expect(scratch.map((array) => array.length)).toEqual([1000, 1000, 1000, 1000]);
  expect(scratchArraysFor([key('lefthash', 4), key('gumbel', 2)], 1000)).toEqual([]);
});

describe('scan tape thread', () => {
  it('gives the report the library gives on this thread, and says when it calibrates', async () => {
    const documents = corpus();
    const thread = start(options);
    expect(thread).not.toBeNull();
    let calibrating = 0;
    const report = await thread!.scan(iterate(documents), () => calibrating++);
    await thread!.close();
    const here = await scanCorpusAnyKeys({ ...options, documents: iterate(documents) });
    expect(calibrating).toBe(1);
    expect(report.numDocuments).toBe(documents.length);
    expect(report.verdict).toBe('radioactive');
    expect(report.matchedKeyId).toBe(key.keyId);
    expect(JSON.stringify(report)).toBe(JSON.stringify(here));
  });

  it('with the tape in a kernel arena, trial values computed there by this thread: the same report', async () => {
    // Sized for more tokens than the corpus has: the LeftHash h = 2 tape makes its grouped arrays in
    // an arena, the worker scores the true key there and this thread the trial values.
    const arenaOptions = { ...options, expectedTokens: 200_000 };
    const documents = corpus();
    const thread = start(arenaOptions);
    const report = await thread!.scan(iterate(documents), () => undefined);
    await thread!.close();
    const here = await scanCorpusAnyKeys({ ...arenaOptions, documents: iterate(documents) });
    const alone = await scanCorpusAnyKeys({ ...options, documents: iterate(documents) });
    expect(report.matchedKeyId).toBe(key.keyId);
    expect(JSON.stringify(report)).toBe(JSON.stringify(here));
    expect(JSON.stringify(here)).toBe(JSON.stringify(alone));
  });

  it('a supervised scan (issued outputs, green fractions) of pooled sub-keys: the library report', async () => {
    const documents = corpus();
    const subKeys = [3, 5, 6].map((fill) =>
      createWatermarkKey({
        secret: new Uint8Array(32).fill(fill),
        scheme: { name: 'lefthash', contextWidth: 2 },
      }),
    );
    const keys = [key, ...subKeys];
    const issuedOutputs = [marked(5, 200), marked(10, 300), tokenizer.encode('w17 w23 w42 w1')];
    const issuedGreenFractions = new Map([[key.keyId, 0.6]]);
    const pooledKeyIds = subKeys.map((sub) => sub.keyId);
    const supervised = { ...options, keys, issuedOutputs, issuedGreenFractions, pooledKeyIds };
    const thread = start(supervised);
    const report = await thread!.scan(iterate(documents), () => undefined);
    await thread!.close();
    const issuedWindows = await IssuedWindowSet.fromOutputs(issuedOutputs, {
      schemes: keys.map((k) => k.scheme),
      specialTokenIds: options.specialTokenIds,
    });
    const here = await scanCorpusAnyKeys({
      ...options,
      keys,
      issuedWindows,
      issuedGreenFractions,
      pooledKeyIds,
      documents: iterate(documents),
    });
    expect(report.supervised).toBe(true);
    expect(report.keys[0]!.tape.numFilteredOut).toBeGreaterThan(0);
    expect(report.pool?.keyIds).toEqual(pooledKeyIds);
    expect(JSON.stringify(report)).toBe(JSON.stringify(here));
  });

  it('fails with the library error, and close stops the worker', async () => {
    const thread = start({ ...options, fakeKeys: 100_001 });
    await expect(thread!.scan(iterate(corpus().slice(0, 3)), () => undefined)).rejects.toThrow(
      new RangeError('fakeKeys: expected an integer from 0 to 100000, got 100001'),
    );
    await thread!.close();
    const idle = start(options);
    await idle!.close();
    await idle!.close();
    await expect(idle!.scan(iterate([]), () => undefined)).rejects.toThrow();
  });
});
