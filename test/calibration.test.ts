/**
 * Calibration of the p-values `detect()` reports, in both directions.
 *
 * 1. Exact null, two-sided. On text whose (seed, token) pairs do not repeat across passages (random
 *    ordinary token ids), each passage's green count is exactly Bin(T, γ_eff) under the key, and the
 *    passages are independent. The exact binomial p-value is discrete, so it is conservative by
 *    construction and is not uniform itself; the randomized p-value u = p − V·P0[X = k]
 *    (V ~ U(0, 1)) is exactly uniform when p is right. The test checks
 *    - the Kolmogorov–Smirnov distance of the u's from U(0, 1), against the DKW bound
 *      P[D > ε] ≤ 2·exp(−2nε²) (Massart 1990) at 1e−6, which fails a detector that is too
 *      conservative as well as one that is too liberal;
 *    - at α = 1e−1, 1e−2, 1e−3, the number of p ≤ α against its exact expectation under the
 *      discrete null, μ = Σ P0[p_i ≤ α] (a sum over the passages' own T), both ways, with the
 *      Chernoff bounds for a sum of independent Bernoulli variables at 1e−6:
 *      P[S ≥ (1+d)μ] ≤ exp(−d²μ/(2+d)) and P[S ≤ (1−d)μ] ≤ exp(−d²μ/2).
 * 2. Human text (Brown corpus), one-sided: under one fixed key a corpus's common n-grams are green
 *    or red for every passage alike, so passages are dependent and only many keys make trials
 *    independent; the share called watermarked at α must stay below the binomial bound. Windowed
 *    detection is Bonferroni-corrected (spec §5.3) and so conservative by design: only the upper
 *    bound applies to it.
 *
 * Keys, passages and V are fixed, so the test cannot flake.
 */
import { createHash } from 'node:crypto';
import {
  createRandom,
  createWatermarker,
  createWatermarkKey,
  detect,
  log10BinomialCdf,
  log10BinomialSf,
  logBinomialPmf,
  type SchemeParams,
  type Watermarker,
} from '@tracemark/core';
import { loadHumanCorpus } from '@tracemark/lm';
import { getTokenizer } from '@tracemark/tokenizers';
import { beforeAll, describe, expect, it } from 'vitest';

const tokenizer = getTokenizer('cl100k_base');
const LOG10_BOUND = -6;
const LN_BOUND = LOG10_BOUND * Math.LN10;

const watermarkerFor = (label: string, scheme: SchemeParams = {}): Watermarker =>
  createWatermarker(createWatermarkKey({ secret: createHash('sha256').update(label).digest(), scheme }), {
    specialTokenIds: tokenizer.specialTokenIds,
  });

/** The smallest green count whose exact p-value is ≤ α with T scored tokens (T + 1 when none is). */
function smallestSignificantCount(T: number, gamma: number, alpha: number): number {
  let lo = 0;
  let hi = T + 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (log10BinomialSf(mid, T, gamma) <= Math.log10(alpha)) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** Two-sided Chernoff acceptance interval at 1e−6 for a sum of independent Bernoullis with mean μ. */
function chernoffInterval(mu: number): [number, number] {
  const L = -LN_BOUND;
  const up = (L + Math.sqrt(L * L + 8 * mu * L)) / (2 * mu);
  const down = Math.sqrt((2 * L) / mu);
  return [(1 - down) * mu, (1 + up) * mu];
}

interface Trial {
  readonly numScored: number;
  readonly numGreen: number;
  readonly gamma: number;
  readonly log10P: number;
}

describe('exact null: detect() p-values are neither liberal nor conservative', () => {
  // Random ordinary token ids: with 10^5 ids, a (seed, token) pair practically never repeats across
  // passages, so trials are independent even under one key. SelfHash with h = 1 is left out: its
  // seed is the token alone, and tokens do repeat.
  const schemes: SchemeParams[] = [
    { name: 'lefthash', contextWidth: 1, gamma: 0.25 },
    { name: 'lefthash', contextWidth: 4, gamma: 0.5 },
    { name: 'selfhash', contextWidth: 2, gamma: 0.25 },
    { name: 'selfhash', contextWidth: 4, gamma: 0.3 },
  ];
  const PASSAGES_PER_KEY = 5000;
  const trials: Trial[] = [];
  const random = createRandom(20_261_122);

  beforeAll(() => {
    for (const [s, scheme] of schemes.entries()) {
      const watermarker = watermarkerFor(`calibration-null-${s}`, scheme);
      for (let j = 0; j < PASSAGES_PER_KEY; j++) {
        // Lengths from 8 to 407 tokens: short texts are where discreteness matters most.
        const length = 8 + (random.nextUint32() % 400);
        const passage = new Uint32Array(length);
        for (let i = 0; i < length; i++) passage[i] = random.nextUint32() % tokenizer.ordinaryTokenCount;
        const result = detect(passage, watermarker, { includeStatus: false }).results[0]!;
        trials.push({
          numScored: result.numScored,
          numGreen: result.numGreen,
          gamma: result.gamma,
          log10P: result.log10P,
        });
      }
    }
  }, 120_000);

  it('randomized p-values are uniform (Kolmogorov–Smirnov within the DKW bound)', () => {
    const uniform = createRandom(7);
    const u = trials
      .map(
        (t) =>
          10 ** t.log10P - uniform.nextFloat() * Math.exp(logBinomialPmf(t.numGreen, t.numScored, t.gamma)),
      )
      .sort((a, b) => a - b);
    const n = u.length;
    let distance = 0;
    u.forEach((value, i) => {
      distance = Math.max(distance, (i + 1) / n - value, value - i / n);
    });
    const bound = Math.sqrt(Math.log(2 / 10 ** LOG10_BOUND) / (2 * n));
    expect(distance, `KS distance ${distance.toFixed(4)} over ${n} passages`).toBeLessThanOrEqual(bound);
  });

  it.each([1e-1, 1e-2, 1e-3])('p ≤ %s as often as the exact discrete null says, both ways', (alpha) => {
    let expected = 0;
    let positives = 0;
    const thresholds = new Map<string, number>();
    for (const t of trials) {
      const cacheKey = `${t.numScored}|${t.gamma}`;
      let probability = thresholds.get(cacheKey);
      if (probability === undefined) {
        const k = smallestSignificantCount(t.numScored, t.gamma, alpha);
        probability = k > t.numScored ? 0 : 10 ** log10BinomialSf(k, t.numScored, t.gamma);
        thresholds.set(cacheKey, probability);
      }
      expected += probability;
      if (t.log10P <= Math.log10(alpha)) positives++;
    }
    const [low, high] = chernoffInterval(expected);
    const message = `α = ${alpha}: ${positives} of ${trials.length}, exact null expects ${expected.toFixed(1)} (accept ${low.toFixed(1)}–${high.toFixed(1)})`;
    expect(positives, message).toBeGreaterThanOrEqual(low);
    expect(positives, message).toBeLessThanOrEqual(high);
  });
});

describe('FPR on the Brown corpus (cl100k_base, LeftHash h=1, γ = 0.25), 240 keys × 100 passages', () => {
  const PASSAGE = 200;
  // Many keys with few passages each: under one fixed key, the corpus's common n-grams are green or red
  // for every passage alike, so trials are independent only across keys.
  const KEYS = 240;
  const PASSAGES_PER_KEY = 100;
  let passages: Uint32Array[] = [];

  beforeAll(async () => {
    const documents = await loadHumanCorpus({ source: 'brown', split: 'all' });
    for (const document of documents) {
      const ids = tokenizer.encodeFast(document.text);
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
    while (log10BinomialCdf(c - 1, n, alpha) < Math.log10(1 - 10 ** LOG10_BOUND)) c++;
    return c;
  }

  const keys = Array.from({ length: KEYS }, (_, i) => watermarkerFor(`calibration-key-${i}`));

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
