import { hkdfSync } from 'node:crypto';
import {
  bonferroniLog10,
  createWatermarker,
  createWatermarkKey,
  DedupTape,
  holmAdjustLog10,
  log10BinomialSf,
  type SchemeName,
  Scorer,
  type WatermarkKey,
  windowScan,
} from '@tracemark/core';
import { getTokenizer } from '@tracemark/tokenizers';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CandidateStatus, evaluateKey, evaluateKeyBySeed, fakeKeyTrials, runFakeKeyJob } from './evaluate.ts';
import { EvidenceTape, groupByWindow, lendScratch, scratchOf } from './evidence-tape.ts';
import { DEFAULT_FAKE_KEY_SEED, fakeKeyMasks, fakeKeyUniform, fakeTrialSecret } from './fake-keys.ts';
import { filterWindowWidth, IssuedWindowSet } from './issued.ts';
import { bestWindows } from './passages.ts';
import {
  type CalibrationRequest,
  type ScanDocument,
  type ScanOptions,
  scanCorpus,
  splitFakeKeyJobs,
} from './scan.ts';

const SPECIAL = 7;

interface Doc {
  tokens: number[];
  prompt?: number[];
}

/**
 * The reference: @tracemark/core's Scorer with one DedupTape shared by the whole corpus in document
 * order (spec §6.3), every prompt's pairs put on the tape before any completion (global exclusion).
 * Returns the scored (document, position, green) triples.
 */
function reference(
  docs: readonly Doc[],
  key: WatermarkKey,
): { triples: string[]; scored: number; green: number } {
  const watermarker = createWatermarker(key, { specialTokenIds: [SPECIAL] });
  const tape = new DedupTape();
  for (const doc of docs)
    if (doc.prompt !== undefined) new Scorer(watermarker, { tape }).addPrompt(doc.prompt);
  const triples: string[] = [];
  let scored = 0;
  let green = 0;
  docs.forEach((doc, d) => {
    const scorer = new Scorer(watermarker, { tape });
    if (doc.prompt !== undefined) scorer.addPrompt(doc.prompt);
    const chunk = scorer.push(doc.tokens);
    scored += chunk.numScored;
    green += chunk.numGreen;
    chunk.status.forEach((code, i) => {
      if (code === 4 || code === 5) triples.push(`${d}:${i}:${code === 5 ? 1 : 0}`);
    });
  });
  return { triples, scored, green };
}

function tapeOf(
  docs: readonly Doc[],
  key: WatermarkKey,
  issued: IssuedWindowSet | null = null,
  expectedTokens = 0,
) {
  const tape = new EvidenceTape(
    { scheme: key.scheme.name, contextWidth: key.scheme.contextWidth },
    new Set([SPECIAL]),
    issued,
    expectedTokens,
  );
  for (const doc of docs) tape.add(doc.tokens, doc.prompt);
  return tape.finish();
}

/** The evaluation scores the reference's positions (by document and position) with its green bits. */
function expectReference(
  evaluation: ReturnType<typeof evaluateKey>,
  origins: ReturnType<typeof tapeOf>['origins'],
  expected: ReturnType<typeof reference>,
): void {
  expect(evaluation.numScored).toBe(expected.scored);
  expect(evaluation.numGreen).toBe(expected.green);
  const triples: string[] = [];
  evaluation.status.forEach((status, i) => {
    if (status !== CandidateStatus.notScored) {
      triples.push(
        `${origins.document[i]}:${origins.position[i]}:${status === CandidateStatus.green ? 1 : 0}`,
      );
    }
  });
  expect(triples).toEqual(expected.triples);
}

/**
 * Documents from a linear congruential generator: `documents` of `length` tokens below `ids`, each a
 * special token where the generator's draw is a multiple of `specialEvery`, and every `promptEvery`-th
 * document with a prompt of `prompt` tokens.
 */
function lcgDocs(corpus: {
  seed: number;
  documents: number;
  length: number;
  ids: number;
  specialEvery: number;
  promptEvery: number;
  prompt: number;
}): Doc[] {
  let state = corpus.seed;
  const next = (): number => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return state >>> 8;
  };
  return Array.from({ length: corpus.documents }, (_, d) => ({
    tokens: Array.from({ length: corpus.length }, () =>
      next() % corpus.specialEvery === 0 ? SPECIAL : next() % corpus.ids,
    ),
    ...(d % corpus.promptEvery === 0
      ? { prompt: Array.from({ length: corpus.prompt }, () => next() % corpus.ids) }
      : {}),
  }));
}

const tokenArb = fc.integer({ min: 0, max: 12 });
const docArb = fc.record(
  { tokens: fc.array(tokenArb, { maxLength: 60 }), prompt: fc.array(tokenArb, { maxLength: 12 }) },
  { requiredKeys: ['tokens'] },
);
const schemeArb = fc.record({
  name: fc.constantFrom<SchemeName>('lefthash', 'selfhash'),
  contextWidth: fc.integer({ min: 1, max: 4 }),
  gamma: fc.constantFrom(0.25, 0.5),
});

/**
 * The passages written plainly, as a reference: for each passage, every window of the spec §5.3
 * family in its order (lengths round(L·2^(j/2)) without repeats, starts 0, s, 2s, … with s = ⌊len/4⌋,
 * then the final window), skipping those that overlap a passage already chosen; per length the first
 * with the most green, across lengths the smallest p-value (the earlier length on ties), and the whole
 * tape as a candidate for the first passage only.
 */
function passagesByRescan(bits: Uint8Array, gamma: number, minWindow: number, count: number) {
  const total = bits.length;
  const green = (start: number, length: number) =>
    bits.subarray(start, start + length).reduce((a, b) => a + b, 0);
  const lengths: number[] = [];
  for (let j = 0; ; j++) {
    const length = Math.round(minWindow * 2 ** (j / 2));
    if (length >= total) break;
    if (lengths.at(-1) !== length) lengths.push(length);
  }
  let searched = 1;
  for (const length of lengths) {
    const stride = Math.max(1, Math.floor(length / 4));
    const starts = new Set<number>();
    for (let start = 0; start + length <= total; start += stride) starts.add(start);
    starts.add(total - length);
    searched += starts.size;
  }
  const chosen: {
    tapeStart: number;
    length: number;
    numGreen: number;
    log10P: number;
    log10PCorrected: number;
  }[] = [];
  while (chosen.length < count) {
    let best: { start: number; length: number; green: number; log10P: number } | null = null;
    for (const length of lengths) {
      const stride = Math.max(1, Math.floor(length / 4));
      const starts: number[] = [];
      for (let start = 0; start + length <= total; start += stride) starts.push(start);
      if (starts.at(-1) !== total - length) starts.push(total - length);
      let top: { start: number; green: number } | null = null;
      for (const start of starts) {
        if (chosen.some((c) => start < c.tapeStart + c.length && c.tapeStart < start + length)) continue;
        const g = green(start, length);
        if (top === null || g > top.green) top = { start, green: g };
      }
      if (top === null) continue;
      const log10P = log10BinomialSf(top.green, length, gamma);
      if (best === null || log10P < best.log10P)
        best = { start: top.start, length, green: top.green, log10P };
    }
    if (chosen.length === 0 && total > 0) {
      const log10P = log10BinomialSf(green(0, total), total, gamma);
      if (best === null || log10P < best.log10P)
        best = { start: 0, length: total, green: green(0, total), log10P };
    }
    if (best === null || best.length === 0) break;
    chosen.push({
      tapeStart: best.start,
      length: best.length,
      numGreen: best.green,
      log10P: best.log10P,
      log10PCorrected: bonferroniLog10(best.log10P, searched),
    });
    if (best.start === 0 && best.length === total) break;
  }
  return chosen;
}

describe('the evidence tape scores exactly what one shared dedup tape scores', () => {
  it('every scheme: same scored positions and green bits as @tracemark/core (prompts excluded globally)', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        schemeArb,
        fc.array(docArb, { maxLength: 12 }),
        (secret, scheme, docs) => {
          const key = createWatermarkKey({ secret, scheme });
          const expected = reference(docs, key);
          const { tape, origins } = tapeOf(docs, key);
          for (const evaluation of [
            evaluateKey(tape, key),
            evaluateKeyBySeed(tape, key),
            evaluateKey(tape, key, false),
          ]) {
            expectReference(evaluation, origins, expected);
          }
        },
      ),
      { numRuns: 300, seed: 42 },
    );
  });

  it('a corpus whose pairs settle in several batches: the same positions and bits as the reference', () => {
    // 240,000 tokens over 500 ids: a few hundred thousand pairs that follow a window after its first
    // token, so the tape settles several batches of them (each batch repeats pairs of earlier ones).
    const docs = lcgDocs({
      seed: 7,
      documents: 48,
      length: 5000,
      ids: 500,
      specialEvery: 97,
      promptEvery: 5,
      prompt: 300,
    });
    for (const scheme of [
      { name: 'lefthash' as const, contextWidth: 1, gamma: 0.25 },
      { name: 'lefthash' as const, contextWidth: 2, gamma: 0.5 },
    ]) {
      const key = createWatermarkKey({ secret: new Uint8Array(32).fill(3), scheme });
      const expected = reference(docs, key);
      const { tape, origins, counts } = tapeOf(docs, key);
      expectReference(evaluateKey(tape, key), origins, expected);
      expect(counts.numDistinct).toBeGreaterThan(100_000);
    }
  });

  it('a LeftHash tape sized for a large corpus is scored in its arena, in place: the reference bits, the scalar trials', () => {
    const docs = lcgDocs({
      seed: 11,
      documents: 40,
      length: 2500,
      ids: 300,
      specialEvery: 89,
      promptEvery: 7,
      prompt: 200,
    });
    for (const contextWidth of [2, 4]) {
      const key = createWatermarkKey({
        secret: new Uint8Array(32).fill(5),
        scheme: { name: 'lefthash', contextWidth, gamma: 0.25 },
      });
      const expected = reference(docs, key);
      // Sized for the corpus (as the CLI sizes it), not shared: only the arena puts arrays in shared memory.
      const { tape, origins } = tapeOf(docs, key, null, 100_000);
      for (const array of [tape.grouped!.windows, tape.grouped!.offsets, tape.grouped!.tokens])
        expect(array.buffer).toBeInstanceOf(SharedArrayBuffer);
      expectReference(evaluateKey(tape, key), origins, expected);
      expectReference(evaluateKey(tape, key, false), origins, expected);
      const trials = fakeKeyTrials(tape, key.scheme, key.tokenizer, 'test-seed');
      expect(Array.from(trials)).toEqual(
        Array.from(fakeKeyTrials(tape, key.scheme, key.tokenizer, 'test-seed', false)),
      );
      // Nothing of the tape was overwritten by the kernel's work: scored again, the same bits.
      expectReference(evaluateKey(tape, key), origins, expected);
    }
  });

  it('a SelfHash tape lends its spent arrays to its evaluations: the reference bits, whatever the scratch holds', () => {
    const docs = lcgDocs({
      seed: 23,
      documents: 20,
      length: 2000,
      ids: 200,
      specialEvery: 97,
      promptEvery: 5,
      prompt: 150,
    });
    for (const contextWidth of [3, 4]) {
      const key = createWatermarkKey({
        secret: new Uint8Array(32).fill(9),
        scheme: { name: 'selfhash', contextWidth, gamma: 0.25 },
      });
      const expected = reference(docs, key);
      const { tape, origins } = tapeOf(docs, key, null, 50_000);
      // The documents, where their positions are and hash to, and the numbering's two scratch arrays.
      const lent = scratchOf(tape);
      expect(lent.length).toBe(5);
      expect(
        lent.every((array) => array.length >= tape.candidateToken.length + tape.promptToken.length),
      ).toBe(true);
      expectReference(evaluateKey(tape, key), origins, expected);
      // Whatever the lent arrays hold, and again on them as the first evaluation left them.
      for (const array of lent) array.fill(0xdeadbeef);
      expectReference(evaluateKey(tape, key), origins, expected);
      expectReference(evaluateKey(tape, key, false), origins, expected);
      const trials = Array.from(fakeKeyTrials(tape, key.scheme, key.tokenizer, 'test-seed'));
      // Arrays too short for the tape are not used; the same trials without any.
      lendScratch(tape, [new Uint32Array(5), new Uint32Array(5), new Uint32Array(5), new Uint32Array(5)]);
      expectReference(evaluateKey(tape, key), origins, expected);
      expect(Array.from(fakeKeyTrials(tape, key.scheme, key.tokenizer, 'test-seed'))).toEqual(trials);
    }
    // LeftHash tapes lend nothing: in an arena their spent arrays are the kernels' working space, and
    // without one no evaluation of theirs would use them.
    const lefthash = createWatermarkKey({
      secret: new Uint8Array(32).fill(9),
      scheme: { name: 'lefthash', contextWidth: 4, gamma: 0.25 },
    });
    const { tape } = tapeOf(
      lcgDocs({
        seed: 5,
        documents: 30,
        length: 2500,
        ids: 300,
        specialEvery: 89,
        promptEvery: 7,
        prompt: 100,
      }),
      lefthash,
      null,
      100_000,
    );
    expect(scratchOf(tape)).toEqual([]);
    expect(scratchOf(tapeOf(docs.slice(0, 3), lefthash, null, 0).tape)).toEqual([]);
  });

  it("fake keys score the trial key's deduplicated trials: WebAssembly, scalar and reference paths agree", () => {
    fc.assert(
      fc.property(schemeArb, fc.array(docArb, { maxLength: 10 }), (scheme, docs) => {
        const trueKey = createWatermarkKey({ secret: new Uint8Array(32).fill(1), scheme });
        const { tape } = tapeOf(docs, trueKey);
        const fakeScheme = { ...scheme, delta: 2 };
        const trials = fakeKeyTrials(tape, fakeScheme, trueKey.tokenizer, 'test-seed');
        const scalarTrials = fakeKeyTrials(tape, fakeScheme, trueKey.tokenizer, 'test-seed', false);
        // The trial key is an ordinary key derived from the seed: its own scored and green counts.
        const trialKey = createWatermarkKey({
          secret: fakeTrialSecret('test-seed'),
          scheme: fakeScheme,
          tokenizer: trueKey.tokenizer,
        });
        const expected = reference(docs, trialKey);
        expect(trials.length / 2).toBe(expected.scored);
        let green = 0;
        for (let i = 1; i < trials.length; i += 2) if (trials[i]! < trialKey.scheme.threshold) green++;
        expect(green).toBe(expected.green);
        // The same values (LeftHash: grouped by window in the kernel, in tape order on the scalar path).
        const sorted = (values: Uint32Array) =>
          Array.from(
            { length: values.length / 2 },
            (_, i) => values[2 * i + 1]! * 2 ** 32 + values[2 * i]!,
          ).sort((a, b) => a - b);
        expect(sorted(trials)).toEqual(sorted(scalarTrials));
        const job = { trials, threshold: trueKey.scheme.threshold, seed: 'test-seed', first: 3, count: 6 };
        const counts = runFakeKeyJob({ ...job, accelerate: true });
        const scalar = runFakeKeyJob({ ...job, accelerate: false });
        expect(counts).toEqual(scalar);
        expect(counts.numScored).toEqual(Array(6).fill(expected.scored));
        // Fake key i reads its half of SplitMix64's finalizer of (value + mask ⌊i/2⌋).
        const masks = fakeKeyMasks(3, 6, 'test-seed');
        for (let i = 3; i < 9; i++) {
          const pair = Math.floor(i / 2) - 1;
          const mask = (BigInt(masks[2 * pair + 1]!) << 32n) | BigInt(masks[2 * pair]!);
          let count = 0;
          for (let e = 0; e < trials.length; e += 2) {
            let z = (((BigInt(trials[e + 1]!) << 32n) | BigInt(trials[e]!)) + mask) & 0xffffffffffffffffn;
            z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & 0xffffffffffffffffn;
            z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & 0xffffffffffffffffn;
            z ^= z >> 31n;
            const half = i % 2 === 0 ? z >> 32n : z & 0xffffffffn;
            if (half < BigInt(trueKey.scheme.threshold)) count++;
          }
          expect(counts.numGreen[i - 3]).toBe(count);
        }
      }),
      { numRuns: 60, seed: 43 },
    );
  });

  it('a prompt later in the corpus excludes a completion pair that came earlier (global, unlike the streaming rule)', () => {
    const key = createWatermarkKey({ secret: new Uint8Array(32).fill(3) });
    const docs: Doc[] = [{ tokens: [1, 2, 3, 4] }, { prompt: [2, 3], tokens: [9, 10] }];
    const { tape, counts } = tapeOf(docs, key);
    // Pairs (1,2) (2,3) (3,4) (9,10) are in completions; (2,3) also in the second prompt.
    expect(counts.numDistinct).toBe(5); // (1,2) (2,3) (3,4) (3,9) across the boundary, (9,10)
    expect(counts.numExcludedByPrompt).toBe(1);
    expect(evaluateKey(tape, key).numScored).toBe(4);
  });
});

describe('groupByWindow', () => {
  it('groups candidates by window, stably, every window or only those with candidates', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 30 }),
        fc.integer({ min: 1, max: 3 }),
        fc.array(fc.tuple(fc.nat(), fc.nat({ max: 1000 })), { maxLength: 200 }),
        (numWindows, width, pairs) => {
          const windows = Uint32Array.from({ length: numWindows * width }, (_, i) => 7 * i + 1);
          const candidates = numWindows === 0 ? [] : pairs.map(([w, t]) => [w % numWindows, t] as const);
          const candidateWindow = Uint32Array.from(candidates, ([w]) => w);
          const candidateToken = Uint32Array.from(candidates, ([, t]) => t);
          for (const includeEmpty of [true, false]) {
            const grouped = groupByWindow(
              windows,
              width,
              numWindows,
              candidateWindow,
              candidateToken,
              includeEmpty,
            );
            const groupWindows = Array.from({ length: numWindows }, (_, w) => w).filter(
              (w) => includeEmpty || candidates.some(([c]) => c === w),
            );
            expect(grouped.offsets.length).toBe(groupWindows.length + 1);
            if (includeEmpty) expect(grouped.groupWindow).toBeNull();
            else expect(Array.from(grouped.groupWindow!)).toEqual(groupWindows);
            groupWindows.forEach((w, g) => {
              expect(Array.from(grouped.windows.subarray(g * width, (g + 1) * width))).toEqual(
                Array.from(windows.subarray(w * width, (w + 1) * width)),
              );
              // The candidates of window w in their order, with their tokens.
              const members = candidates.flatMap(([c], i) => (c === w ? [i] : []));
              const from = grouped.offsets[g]!;
              expect(Array.from(grouped.order.subarray(from, grouped.offsets[g + 1]))).toEqual(members);
              members.forEach((i, k) => {
                expect(grouped.tokens[from + k]).toBe(candidates[i]![1]);
              });
            });
          }
        },
      ),
      { numRuns: 200, seed: 9 },
    );
  });
});

describe('fake keys', () => {
  it('derive from the public seed by HKDF-SHA-256, never from a true key, reproducibly', () => {
    const trial = new Uint8Array(
      hkdfSync('sha256', DEFAULT_FAKE_KEY_SEED, 'tracemark/v1/fake-key', 'trials', 32),
    );
    expect(fakeTrialSecret()).toEqual(trial);
    expect(fakeTrialSecret('other')).not.toEqual(trial);
    expect(fakeTrialSecret.length).toBeLessThanOrEqual(1);
    // Fake keys 6 and 7 share mask 3; 7 and 8 fall in masks 3 and 4.
    const mask3 = Buffer.from(
      hkdfSync('sha256', DEFAULT_FAKE_KEY_SEED, 'tracemark/v1/fake-key-mixer', '3', 8),
    );
    const mask4 = Buffer.from(
      hkdfSync('sha256', DEFAULT_FAKE_KEY_SEED, 'tracemark/v1/fake-key-mixer', '4', 8),
    );
    const words = (b: Buffer) => [b.readUInt32LE(0), b.readUInt32LE(4)];
    expect(Array.from(fakeKeyMasks(6, 2))).toEqual(words(mask3));
    expect(Array.from(fakeKeyMasks(7, 2))).toEqual([...words(mask3), ...words(mask4)]);
    expect(Array.from(fakeKeyMasks(7, 2, 'other'))).not.toEqual([...words(mask3), ...words(mask4)]);
    expect(fakeKeyMasks(0, 0).length).toBe(0);
    const u = Array.from({ length: 1000 }, (_, i) => fakeKeyUniform(i));
    expect(Math.min(...u)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...u)).toBeLessThan(1);
    expect(u.reduce((a, b) => a + b, 0) / u.length).toBeCloseTo(0.5, 1);
  });
});

describe('the supervised filter holds windows only', () => {
  const lefthash = { name: 'lefthash' as const, contextWidth: 2 };
  const selfhash = { name: 'selfhash' as const, contextWidth: 3 };

  it('the filter window is the part of the seed input before the token (SelfHash: without the token)', () => {
    expect(filterWindowWidth(lefthash)).toBe(2);
    expect(filterWindowWidth(selfhash)).toBe(2);
    expect(filterWindowWidth({ name: 'selfhash', contextWidth: 1 })).toBe(0);
  });

  it('cannot be constructed directly, built from pairs, or asked about a token', async () => {
    const Constructor = IssuedWindowSet as unknown as new (...args: unknown[]) => unknown;
    expect(() => new Constructor(Symbol('x'), new Map(), 0, 0)).toThrow(TypeError);
    const builder = IssuedWindowSet.builder({ schemes: [lefthash], specialTokenIds: [SPECIAL] });
    expect(Object.keys(builder).sort()).toEqual(['addOutput', 'build']);
    builder.addOutput([1, 2, 3, 4]);
    const set = builder.build();
    expect(() => builder.addOutput([5])).toThrow();
    // The only query takes a width, a token array and a start: a window, no token.
    expect(set.hasWindow.length).toBe(3);
    expect(set.hasWindow(2, [1, 2], 0)).toBe(true);
    expect(set.hasWindow(2, [2, 3], 0)).toBe(true);
    // [3, 4] ends the output: no token followed it, so it is no issued window.
    expect(set.hasWindow(2, [3, 4], 0)).toBe(false);
    expect(Object.isFrozen(set)).toBe(true);
    const methods = Object.getOwnPropertyNames(IssuedWindowSet.prototype).sort();
    expect(methods).toEqual(['constructor', 'hasWindow', 'numWindows', 'widths']);
  });

  it('scanCorpus refuses anything but an IssuedWindowSet (no (window, token) predicate or set)', async () => {
    const key = createWatermarkKey({ secret: new Uint8Array(32).fill(5) });
    const base: Omit<ScanOptions, 'issuedWindows'> = {
      documents: [],
      keys: [key],
      specialTokenIds: [],
      fakeKeys: 0,
    };
    const pairFilter = (window: readonly number[], token: number) => window.length > 0 && token > 0;
    // @ts-expect-error a (window, token) predicate is not an IssuedWindowSet
    await expect(scanCorpus({ ...base, issuedWindows: pairFilter })).rejects.toThrow(TypeError);
    // @ts-expect-error nor is a set of (window, token) pairs
    await expect(scanCorpus({ ...base, issuedWindows: new Set(['1,2|3']) })).rejects.toThrow(TypeError);
    const lookAlike = {
      numOutputs: 1,
      numTokens: 1,
      widths: [1],
      numWindows: () => 1,
      hasWindow: () => true,
    };
    // @ts-expect-error a structural look-alike fails the type check (private brand) …
    await expect(scanCorpus({ ...base, issuedWindows: lookAlike })).rejects.toThrow(/window, token/);
    // … and the runtime brand check.
    expect(IssuedWindowSet.isIssuedWindowSet(lookAlike)).toBe(false);
  });

  it('keeps exactly the positions whose window was issued and whose token is not in its own window', async () => {
    const key = createWatermarkKey({ secret: new Uint8Array(32).fill(6), scheme: { contextWidth: 1 } });
    const issued = await IssuedWindowSet.fromOutputs(
      [
        [1, 2, 3],
        [4, 5],
      ],
      {
        schemes: [key.scheme],
        specialTokenIds: [SPECIAL],
      },
    );
    // Issued windows (width 1): 1, 2, 4. Suspect pairs: (1,2) kept; (2,9) kept; (9,1) removed (9 not
    // issued); (1,1) removed (the token repeats its window); (4,8) kept; (5,6) removed.
    const docs: Doc[] = [{ tokens: [1, 2, 9, 1, 1] }, { tokens: [4, 8] }, { tokens: [5, 6] }];
    const { tape, counts } = tapeOf(docs, key, issued);
    expect(counts.numEligible).toBe(6);
    expect(counts.numFilteredOut).toBe(3);
    expect(Array.from(tape.candidateToken)).toEqual([2, 9, 8]);
    const report = await scanCorpus({
      documents: docs.map((d, i) => ({ tokens: d.tokens, source: `d${i}` })),
      keys: [key],
      specialTokenIds: [SPECIAL],
      issuedWindows: issued,
      fakeKeys: 0,
    });
    expect(report.supervised).toBe(true);
    expect(report.keys[0]!.numScored).toBe(3);
    expect(report.issued).toEqual({ numOutputs: 2, numTokens: 5 });
  });

  it('a set built for another window width is refused', async () => {
    const key = createWatermarkKey({ secret: new Uint8Array(32).fill(6), scheme: { contextWidth: 2 } });
    const issued = await IssuedWindowSet.fromOutputs([[1, 2, 3]], {
      schemes: [{ name: 'lefthash', contextWidth: 1 }],
      specialTokenIds: [],
    });
    await expect(
      scanCorpus({ documents: [], keys: [key], specialTokenIds: [], issuedWindows: issued }),
    ).rejects.toThrow(/width 2/);
  });
});

describe('scanCorpus report and verdicts', () => {
  const key = createWatermarkKey({ secret: new Uint8Array(32).fill(8) });
  const random = (seed: number, n: number): Uint32Array => {
    const out = new Uint32Array(n);
    let state = seed;
    for (let i = 0; i < n; i++) {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0;
      out[i] = (state >>> 8) % 50_000;
    }
    return out;
  };

  it('an empty corpus is insufficient, not an error', async () => {
    const report = await scanCorpus({ documents: [], keys: [key], specialTokenIds: [] });
    expect(report.verdict).toBe('insufficient');
    expect(report.keys[0]!.reason).toMatch(/no position/);
    expect(report.numDocuments).toBe(0);
  });

  it('an empty corpus measures nothing: no effect, no dose, no dose bound, the rank of no evidence', async () => {
    // `tracemark scan` of an empty file reported an effect of −25 points, rank 101 "among 100 fake
    // keys" and doses above 162.6% ruled out.
    const report = await scanCorpus({
      documents: [],
      keys: [key],
      specialTokenIds: [],
      issuedGreenFractions: new Map([[key.keyId, 0.5]]),
    });
    const scan = report.keys[0]!;
    expect(scan.numScored).toBe(0);
    expect(scan.reason).toBe('no evidence: 0 scored tokens (no position could be scored)');
    expect(scan.effect).toBe(0);
    expect(scan.effectInterval).toEqual([]);
    expect(scan.z).toBe(0);
    expect(scan.log10P).toBe(0);
    expect(scan.dose).toBeNull();
    expect(scan.doseUpperBound).toBe(1);
    expect(scan.calibration.rank).toBe(scan.calibration.fakeKeys + 1);
    expect(scan.calibration.empiricalPValue).toBe(1);
    expect(scan.passages).toEqual([]);
    expect(scan.topDocuments).toEqual([]);
  });

  it('ten documents of one word repeated 30,000 times: no dose within 0–100% is ruled out, never one above 100%', async () => {
    // POST /v1/scan of this corpus said "only doses above 150% are ruled out": corpus-wide
    // deduplication leaves a couple of scored pairs, whose bound on ĝ lies past a full dose.
    const tokenizer = getTokenizer(key.tokenizer);
    const text = Array.from({ length: 30_000 }, () => 'word').join(' ');
    const documents: ScanDocument[] = Array.from({ length: 10 }, (_, i) => ({
      tokens: tokenizer.encode(text),
      source: `word-${i}`,
    }));
    for (const minimumDose of [0.05, 1]) {
      const report = await scanCorpus({ documents, keys: [key], specialTokenIds: [], minimumDose });
      const scan = report.keys[0]!;
      expect(report.numTokens).toBe(300_000);
      expect(scan.numScored).toBeGreaterThan(0);
      expect(scan.numScored).toBeLessThan(5);
      expect(scan.doseUpperBound).toBe(1);
      // Not even a minimum dose of 100% is ruled out: the uncapped bound lies past it.
      expect(scan.verdict).toBe('insufficient');
      expect(scan.reason).toContain('(no dose within 0–100% is ruled out)');
      expect(scan.reason).not.toMatch(/above \d{3,}(\.\d+)?%/);
      expect(scan.calibration.rank).toBeGreaterThanOrEqual(1);
      expect(scan.calibration.rank).toBeLessThanOrEqual(scan.calibration.fakeKeys + 1);
      // Two pairs are still a measurement: an effect with its (wide) interval.
      expect(scan.effectInterval).toHaveLength(2);
      const [low, high] = scan.effectInterval;
      expect(low).toBeLessThanOrEqual(scan.effect);
      expect(high! - low!).toBeGreaterThan(0.5);
    }
  });

  it('a dose estimate lies in [0, 1]: a corpus with fewer greens than γ has dose 0, not −0 or below', async () => {
    // The radioactivity-scan example printed "dose -0%" and "dose -1%" for human text.
    const documents: ScanDocument[] = Array.from({ length: 4 }, (_, i) => ({
      tokens: random(i + 101, 2000),
      source: `doc${i}`,
    }));
    const report = await scanCorpus({
      documents,
      keys: [key],
      specialTokenIds: [],
      fakeKeys: 20,
      issuedGreenFractions: new Map([[key.keyId, 0.45]]),
    });
    const scan = report.keys[0]!;
    expect(scan.effect).toBeLessThan(0);
    expect(Object.is(scan.dose!.estimate, 0)).toBe(true);
    const [low, high] = scan.dose!.interval;
    expect(Object.is(low, 0)).toBe(true);
    expect(high).toBeGreaterThan(0);
    expect(high).toBeCloseTo((scan.effectInterval[1] as number) / (0.45 - scan.gamma), 12);
  });

  it('without enough fake keys there is no verdict', async () => {
    const documents: ScanDocument[] = [{ tokens: random(1, 5000), source: 'a' }];
    const report = await scanCorpus({ documents, keys: [key], specialTokenIds: [], fakeKeys: 5 });
    expect(report.verdict).toBe('insufficient');
    expect(report.keys[0]!.calibration.uniform).toBeNull();
    expect(report.reason).toMatch(/at least 20 fake keys/);
  });

  it('random text: not radioactive; fields are consistent; Holm across keys', async () => {
    const keys = [key, createWatermarkKey({ secret: new Uint8Array(32).fill(9) })];
    const documents: ScanDocument[] = Array.from({ length: 20 }, (_, i) => ({
      tokens: random(i + 1, 2000),
      source: `doc${i}`,
    }));
    const report = await scanCorpus({ documents, keys, specialTokenIds: [], fakeKeys: 40 });
    expect(report.verdict).toBe('not_radioactive');
    expect(report.numDocuments).toBe(20);
    expect(report.numTokens).toBe(40_000);
    expect(report.fakeKeys).toEqual({ count: 40, seed: DEFAULT_FAKE_KEY_SEED });
    const adjusted = holmAdjustLog10(report.keys.map((k) => k.log10P));
    report.keys.forEach((scan, i) => {
      expect(scan.log10PAdjusted).toBe(adjusted[i]);
      expect(scan.effect).toBeCloseTo(scan.greenFraction - scan.gamma, 12);
      expect(scan.effectInterval[0]).toBeLessThan(scan.effect);
      expect(scan.effectInterval[1]).toBeGreaterThan(scan.effect);
      expect(scan.calibration.fakeKeys).toBe(40);
      expect(scan.calibration.rank).toBeGreaterThanOrEqual(1);
      expect(scan.calibration.empiricalPValue).toBe(scan.calibration.rank / 41);
      expect(scan.dose).toBeNull();
      expect(scan.tape.numTokens).toBe(40_000);
    });
  });

  it('a calibrator (trial values and fake keys elsewhere) gives the report the default path gives', async () => {
    const keys = [
      key,
      createWatermarkKey({
        secret: new Uint8Array(32).fill(9),
        scheme: { name: 'selfhash', contextWidth: 3 },
      }),
      createWatermarkKey({
        secret: new Uint8Array(32).fill(5),
        scheme: { name: 'lefthash', contextWidth: 2 },
      }),
    ];
    const documents: ScanDocument[] = Array.from({ length: 12 }, (_, i) => ({
      tokens: random(i + 1, 1500),
      ...(i % 4 === 0 ? { prompt: random(i + 100, 40) } : {}),
      source: `doc${i}`,
    }));
    const requests: CalibrationRequest[] = [];
    const calibrated = await scanCorpus({
      documents,
      keys,
      specialTokenIds: [SPECIAL],
      fakeKeys: 30,
      sharedMemory: true,
      calibrate: async (request) => {
        requests.push(request);
        const trials = fakeKeyTrials(
          request.tape,
          request.scheme,
          request.tokenizer,
          request.seed,
          request.accelerate,
          true,
        );
        expect(trials.buffer).toBeInstanceOf(SharedArrayBuffer);
        expect(trials).toEqual(
          fakeKeyTrials(request.tape, request.scheme, request.tokenizer, request.seed, request.accelerate),
        );
        const job = {
          trials,
          threshold: request.threshold,
          seed: request.seed,
          accelerate: request.accelerate,
        };
        // Another grouping than the default's, last batch first: the counts go by fake key index.
        return splitFakeKeyJobs(job, request.count, 3).reverse().map(runFakeKeyJob);
      },
    });
    const here = await scanCorpus({ documents, keys, specialTokenIds: [SPECIAL], fakeKeys: 30 });
    expect(requests.map((r) => `${r.scheme.name}/${r.scheme.contextWidth}`)).toEqual([
      'lefthash/1',
      'selfhash/3',
      'lefthash/2',
    ]);
    expect(requests.every((r) => r.count === 30 && r.seed === DEFAULT_FAKE_KEY_SEED)).toBe(true);
    // sharedMemory: the arrays a LeftHash kernel reads are shared (a window table of width 2 too).
    for (const request of requests.filter((r) => r.scheme.name === 'lefthash')) {
      const grouped = request.tape.grouped!;
      expect(grouped.offsets.buffer).toBeInstanceOf(SharedArrayBuffer);
      expect(grouped.tokens.buffer).toBeInstanceOf(SharedArrayBuffer);
      if (request.tape.windowWidth > 1) expect(grouped.windows.buffer).toBeInstanceOf(SharedArrayBuffer);
    }
    expect(JSON.stringify(calibrated)).toBe(JSON.stringify(here));
    const failing = scanCorpus({
      documents,
      keys,
      specialTokenIds: [SPECIAL],
      fakeKeys: 30,
      calibrate: () => Promise.reject(new Error('calibration thread lost')),
    });
    await expect(failing).rejects.toThrow('calibration thread lost');
  });

  it('the first passage is exactly the spec §5.3 best window of @tracemark/core', () => {
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom(0, 0, 0, 1), { maxLength: 700 }),
        fc.integer({ min: 0, max: 650 }),
        fc.integer({ min: 0, max: 80 }),
        fc.integer({ min: 4, max: 40 }),
        (bits, at, run, minWindow) => {
          const tape = Uint8Array.from(bits);
          for (let i = at; i < Math.min(tape.length, at + run); i++) tape[i] = 1;
          const expected = windowScan(tape, 0.25, minWindow);
          const { windowsSearched, windows } = bestWindows(tape, 0.25, minWindow, 3);
          expect(windowsSearched).toBe(expected.windowsSearched);
          if (tape.length === 0) {
            expect(windows).toEqual([]);
            return;
          }
          expect(windows[0]!.tapeStart).toBe(expected.start);
          expect(windows[0]!.length).toBe(expected.length);
          expect(windows[0]!.log10P).toBe(expected.log10P);
          expect(windows[0]!.log10PCorrected).toBe(expected.log10PCorrected);
          expect(windows).toEqual(passagesByRescan(tape, 0.25, minWindow, 3));
          for (let i = 1; i < windows.length; i++) {
            for (let j = 0; j < i; j++) {
              const a = windows[i]!;
              const b = windows[j]!;
              expect(a.tapeStart + a.length <= b.tapeStart || b.tapeStart + b.length <= a.tapeStart).toBe(
                true,
              );
            }
          }
        },
      ),
      { numRuns: 200, seed: 44 },
    );
  });

  it('validates options, naming them', async () => {
    const base = { documents: [], keys: [key], specialTokenIds: [] };
    await expect(scanCorpus({ ...base, keys: [] })).rejects.toThrow(/keys/);
    await expect(scanCorpus({ ...base, alpha: 0 })).rejects.toThrow(/alpha/);
    await expect(scanCorpus({ ...base, fakeKeys: -1 })).rejects.toThrow(/fakeKeys/);
    await expect(scanCorpus({ ...base, minimumDose: 2 })).rejects.toThrow(/minimumDose/);
    const other = createWatermarkKey({ tokenizer: 'o200k_base' });
    await expect(scanCorpus({ ...base, keys: [key, other] })).rejects.toThrow(/tokenizers/);
    await expect(scanCorpus({ ...base, documents: [{ tokens: [1, -2], source: 'x' }] })).rejects.toThrow(
      /documents\[0\]\.tokens\[1\]/,
    );
  });
});
