/**
 * What `detect()` and `createDetection()` report, against the Python reference's detection vectors
 * (detect.json: counts, statuses, exact log10 p) and mpmath's binomial values (stats.json). The
 * Scorer alone is pinned in vectors.test.ts; this pins the numbers the detection API hands out, so
 * that an off-by-one green or a wrong tail in detect.ts fails here.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  createDetection,
  createWatermarker,
  createWatermarkKey,
  DEFAULT_FPR,
  decideVerdict,
  detect,
  resolveVerdictOptions,
} from '../src/index.ts';

interface DetectVector {
  readonly name: string;
  readonly secret: string;
  readonly scheme: { name: 'lefthash' | 'selfhash'; contextWidth: number; gamma: number };
  readonly tokens: number[];
  readonly prompt: number[] | null;
  readonly special: number[];
  readonly numTokens: number;
  readonly numScored: number;
  readonly numGreen: number;
  readonly status: string[];
  readonly z: number;
  readonly log10P: number;
  readonly gammaEff: number;
}

const load = (name: string) =>
  JSON.parse(readFileSync(new URL(`./vectors/${name}`, import.meta.url), 'utf8'));
const cases: DetectVector[] = load('detect.json').cases;
const hex = (text: string) => Uint8Array.from(Buffer.from(text, 'hex'));

const watermarkerOf = (c: DetectVector) =>
  createWatermarker(createWatermarkKey({ secret: hex(c.secret), scheme: c.scheme }), {
    specialTokenIds: c.special,
  });

/** log10 p to the spec's accuracy: 1e−9 relative, exact 0 where the reference is 0. */
function expectLog10P(actual: number, expected: number): void {
  if (expected === 0) expect(actual).toBe(0);
  else expect(Math.abs(actual - expected) / Math.abs(expected)).toBeLessThan(1e-9);
}

describe('detect() reports the reference numbers (detect.json)', () => {
  it('has the cases this file relies on', () => {
    expect(cases.length).toBeGreaterThan(40);
    expect(cases.some((c) => c.log10P < -100)).toBe(true);
  });

  it.each(cases.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const detection = detect(c.tokens, watermarkerOf(c), c.prompt === null ? {} : { prompt: c.prompt });
    expect(detection.keysTested).toBe(1);
    const result = detection.results[0]!;
    expect(result.gamma).toBe(c.gammaEff);
    expect(result.numTokens).toBe(c.numTokens);
    expect(result.numScored).toBe(c.numScored);
    expect(result.numGreen).toBe(c.numGreen);
    expect(result.status).toEqual(c.status);
    expectLog10P(result.log10P, c.log10P);
    // One key and no window: the verdict uses the unadjusted value.
    expectLog10P(result.log10PAdjusted, c.log10P);
    expect(result.z).toBeCloseTo(c.z, 9);
    expect(result.greenFraction).toBe(c.numScored === 0 ? 0 : c.numGreen / c.numScored);
    // The verdict follows from the reference p-value at the default α.
    expect(result.verdict === 'watermarked').toBe(c.log10P <= Math.log10(DEFAULT_FPR) && c.numScored > 0);
    expect(detection.verdict).toBe(result.verdict);
    expect(detection.reportedKeyId).toBe(result.keyId);
  });

  it.each(cases.filter((c) => c.tokens.length > 1).map((c) => [c.name, c] as const))(
    'streaming in uneven chunks gives the same numbers: %s',
    (_name, c) => {
      const session = createDetection(watermarkerOf(c), c.prompt === null ? {} : { prompt: c.prompt });
      for (let start = 0, size = 1; start < c.tokens.length; start += size, size = size * 2 + 1) {
        session.push(c.tokens.slice(start, start + size));
      }
      const result = session.finish().results[0]!;
      expect(result.numScored).toBe(c.numScored);
      expect(result.numGreen).toBe(c.numGreen);
      expect(result.status).toEqual(c.status);
      expectLog10P(result.log10P, c.log10P);
    },
  );

  it('a key tested among others keeps its raw numbers; Holm adjusts only log10PAdjusted', () => {
    for (const c of cases.filter((v) => v.log10P < -10)) {
      const other = createWatermarker(createWatermarkKey({ secret: new Uint8Array(32).fill(7) }));
      const detection = detect(
        c.tokens,
        [other, watermarkerOf(c)],
        c.prompt === null ? {} : { prompt: c.prompt },
      );
      const result = detection.results[1]!;
      expect(result.numGreen).toBe(c.numGreen);
      expectLog10P(result.log10P, c.log10P);
      // The smallest of two p-values is doubled by Holm.
      expect(result.log10PAdjusted).toBeCloseTo(c.log10P + Math.log10(2), 9);
      expect(detection.matchedKeyId).toBe(result.keyId);
    }
  });
});

describe('the default alternative g₁ (spec §5.2) is the one stats.json pins', () => {
  it('γ = 0.25, δ = 2 gives g₁ = 0.4806172971137969', () => {
    const cdf: { p: number }[] = load('stats.json').binomialCdf;
    const pinned = cdf.map((entry) => entry.p).find((p) => p > 0.48 && p < 0.49);
    const watermarker = createWatermarker(createWatermarkKey({ secret: new Uint8Array(32) }));
    expect(resolveVerdictOptions(watermarker, {}).alternative).toBe(pinned);
  });

  it('the miss test reads P1[X ≤ k] at g₁ as mpmath does', () => {
    const cdf: { n: number; k: number; p: number; log10Cdf: number }[] = load('stats.json').binomialCdf;
    const watermarker = createWatermarker(createWatermarkKey({ secret: new Uint8Array(32) }));
    const options = resolveVerdictOptions(watermarker, {});
    const g1 = options.alternative!;
    const entries = cdf.filter((entry) => entry.p === g1 && entry.n > 0 && entry.n <= 100_000);
    expect(entries.length).toBeGreaterThan(10);
    for (const entry of entries) {
      // p = 1 is passed, so the verdict is the miss test alone: P1[X ≤ k] ≤ β = 0.01.
      const expected = entry.log10Cdf <= Math.log10(0.01) ? 'not_watermarked' : 'insufficient';
      const decided = decideVerdict(entry.n, entry.k, 0, 0.25, options);
      expect(decided.verdict, `n = ${entry.n}, k = ${entry.k}`).toBe(expected);
    }
  });
});
