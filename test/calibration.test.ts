/**
 * False-positive calibration on human text: with many random keys, the share of human passages
 * called watermarked at nominal α must stay within the binomial confidence bound of α, for plain
 * and windowed detection. Keys and passages are fixed, so the test cannot flake.
 */
import { createHash } from 'node:crypto';
import { createWatermarker, createWatermarkKey, detect, log10BinomialCdf } from '@tracemark/core';
import { loadHumanCorpus } from '@tracemark/lm';
import { getTokenizer } from '@tracemark/tokenizers';
import { beforeAll, describe, expect, it } from 'vitest';

const PASSAGE = 200;
// Many keys with few passages each: under one fixed key, the corpus's common n-grams are green or red
// for every passage alike, so trials are independent only across keys.
const KEYS = 240;
const PASSAGES_PER_KEY = 100;
let passages: Uint32Array[] = [];

beforeAll(async () => {
  const tokenizer = getTokenizer('cl100k_base');
  const documents = await loadHumanCorpus({ source: 'brown', split: 'all' });
  for (const document of documents) {
    const ids = tokenizer.encode(document.text);
    for (let start = 0; start + PASSAGE <= ids.length && passages.length < 2000; start += PASSAGE) {
      passages.push(ids.slice(start, start + PASSAGE));
    }
    if (passages.length >= 2000) break;
  }
  passages = passages.slice(0, 2000);
}, 120_000);

/** Smallest count c with P[Bin(n, α) ≥ c] ≤ 1e-6: more false positives than that means miscalibration. */
function upperBound(n: number, alpha: number): number {
  let c = Math.ceil(n * alpha);
  while (log10BinomialCdf(c - 1, n, alpha) < Math.log10(1 - 1e-6)) c++;
  return c;
}

describe('FPR calibration on the Brown corpus (cl100k_base, LeftHash h=1, γ = 0.25), 240 keys × 100 passages', () => {
  const keys = Array.from({ length: KEYS }, (_, i) =>
    createWatermarker(
      createWatermarkKey({ secret: createHash('sha256').update(`calibration-key-${i}`).digest() }),
      { specialTokenIds: getTokenizer('cl100k_base').specialTokenIds },
    ),
  );

  for (const windowed of [false, true]) {
    it(`${windowed ? 'windowed' : 'plain'} detection: empirical FPR at 1e-2 and 1e-3 within the bound`, () => {
      const log10P: number[] = [];
      for (const [k, watermarker] of keys.entries()) {
        for (let j = 0; j < PASSAGES_PER_KEY; j++) {
          const passage = passages[(k * 37 + j * 19) % passages.length]!;
          const result = detect(passage, watermarker, { window: windowed, includeStatus: false }).results[0]!;
          log10P.push(windowed ? result.window!.log10PCorrected : result.log10P);
        }
      }
      const trials = log10P.length;
      expect(trials).toBe(KEYS * PASSAGES_PER_KEY);
      for (const alpha of [1e-2, 1e-3]) {
        const positives = log10P.filter((v) => v <= Math.log10(alpha)).length;
        expect(positives, `α = ${alpha}: ${positives} of ${trials}`).toBeLessThanOrEqual(
          upperBound(trials, alpha),
        );
      }
    }, 120_000);
  }
});
