import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  createDetection,
  createWatermarker,
  createWatermarkKey,
  DedupTape,
  detect,
  Scorer,
} from './index.ts';
import { TAPE_PROMPT, TAPE_SCORED } from './tape.ts';

const secretArb = fc.uint8Array({ minLength: 32, maxLength: 32 });
const schemeArb = fc.constantFrom(
  { name: 'lefthash' as const, contextWidth: 1, gamma: 0.25 },
  { name: 'selfhash' as const, contextWidth: 3, gamma: 0.5 },
  { name: 'gumbel' as const, contextWidth: 2 },
);
const tokensArb = fc.array(fc.integer({ min: 0, max: 40 }), { maxLength: 200 });
const documentArb = fc.record({
  tokens: tokensArb,
  prompt: fc.option(fc.array(fc.integer({ min: 0, max: 40 }), { maxLength: 30 }), { nil: undefined }),
  dedup: fc.boolean(),
  window: fc.boolean(),
  typed: fc.boolean(),
});

describe('scorers reused between documents', () => {
  it('detect on a run of documents equals a fresh session per document (prompts, dedup, windows, two keys)', () => {
    fc.assert(
      fc.property(
        secretArb,
        secretArb,
        schemeArb,
        fc.array(documentArb, { maxLength: 8 }),
        (a, b, scheme, documents) => {
          const keys = [a, b].map((secret) =>
            createWatermarker(createWatermarkKey({ secret, scheme }), { specialTokenIds: [7] }),
          );
          for (const document of documents) {
            const options = {
              dedup: document.dedup,
              window: document.window,
              ...(document.prompt === undefined ? {} : { prompt: document.prompt }),
            };
            const tokens = document.typed ? Uint32Array.from(document.tokens) : document.tokens;
            const session = createDetection(keys, options);
            session.push(document.tokens);
            expect(detect(tokens, keys, options)).toEqual(session.finish());
          }
        },
      ),
      { numRuns: 60, seed: 20261204 },
    );
  });

  it('a scorer reset equals a new scorer, also after a long document and a grown tape', () => {
    const watermarker = createWatermarker(
      createWatermarkKey({
        secret: new Uint8Array(32).fill(3),
        scheme: { name: 'lefthash', contextWidth: 1 },
      }),
    );
    const long = Uint32Array.from({ length: 100_000 }, (_, i) => (i * 7919) % 50_000);
    const short = [5, 9, 5, 9, 5, 9, 11, 12];
    const reused = new Scorer(watermarker, { expectedTokens: 4 });
    reused.push(long);
    reused.reset(short.length);
    reused.addPrompt([5, 9]);
    const fresh = new Scorer(watermarker);
    fresh.addPrompt([5, 9]);
    expect(reused.push(short)).toEqual(fresh.push(short));
    expect(reused.counts()).toEqual(fresh.counts());
    expect(reused.scoredBits()).toEqual(fresh.scoredBits());
    expect(reused.scoredPositions()).toEqual(fresh.scoredPositions());
  });

  it('a scorer that shares its tape refuses to reset', () => {
    const watermarker = createWatermarker(
      createWatermarkKey({
        secret: new Uint8Array(32).fill(4),
        scheme: { name: 'lefthash', contextWidth: 1 },
      }),
    );
    expect(() => new Scorer(watermarker, { tape: new DedupTape() }).reset()).toThrow(/shares its tape/);
  });
});

describe('DedupTape.clear', () => {
  it('empties the set without reallocating, over many generations and growths', () => {
    const tape = new DedupTape(4);
    for (let round = 0; round < 50; round++) {
      for (let key = 0; key < 3 * round; key++) {
        expect(tape.insert(key, round, key ^ 5, TAPE_SCORED)).toBe(0);
        expect(tape.insert(key, round, key ^ 5, TAPE_PROMPT)).toBe(TAPE_SCORED);
      }
      // Keys of the earlier generation are gone; the same key again is new after a clear.
      expect(tape.size).toBe(3 * round);
      tape.clear(round);
      expect(tape.size).toBe(0);
      if (round > 0) expect(tape.insert(0, round, 5, TAPE_PROMPT)).toBe(0);
      tape.clear();
    }
  });
});
