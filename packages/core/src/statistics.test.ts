import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { log10BinomialCdf, log10BinomialSf, log10NormalSf, logBinomialPmf } from './statistics.ts';

const path = new URL('../test/vectors/stats.json', import.meta.url);
const vectors = existsSync(path) ? JSON.parse(readFileSync(path, 'utf8')) : null;

/** Relative error, with an absolute floor near zero (log10 p close to 0). */
function closeness(actual: number, expected: number): number {
  return Math.abs(actual - expected) / Math.max(Math.abs(expected), 1e-6);
}

describe('tail probabilities against mpmath references (test/vectors/stats.json)', () => {
  it('vectors are present', () => {
    expect(vectors).not.toBeNull();
  });

  it('binomial upper tail P[X ≥ k], relative error ≤ 1e-9, far below 1e-308', () => {
    let deep = 0;
    for (const c of vectors.binomialTail) {
      const actual = log10BinomialSf(c.k, c.n, c.p);
      if (c.log10Sf === 0) expect(actual).toBeCloseTo(0, 12);
      else expect(closeness(actual, c.log10Sf), JSON.stringify(c)).toBeLessThan(1e-9);
      if (c.log10Sf < -10_000) deep++;
      expect(Number.isNaN(actual)).toBe(false);
    }
    expect(deep).toBeGreaterThanOrEqual(10);
  });

  it('binomial lower tail P[X ≤ k], relative error ≤ 1e-9', () => {
    for (const c of vectors.binomialCdf) {
      const actual = log10BinomialCdf(c.k, c.n, c.p);
      if (c.log10Cdf === 0) expect(actual).toBeCloseTo(0, 12);
      else expect(closeness(actual, c.log10Cdf), JSON.stringify(c)).toBeLessThan(1e-9);
    }
  });

  it('normal upper tail Q(z), relative error ≤ 1e-12, up to z = 1e6', () => {
    for (const c of vectors.normalTail) {
      expect(closeness(log10NormalSf(c.z), c.log10Sf), JSON.stringify(c)).toBeLessThan(1e-12);
    }
  });
});

describe('identities', () => {
  it('P[X ≥ k] + P[X ≤ k − 1] = 1 and the pmf sums to 1', () => {
    for (const [n, p] of [
      [10, 0.25],
      [37, 0.5],
      [200, 0.1],
    ] as const) {
      let total = 0;
      for (let k = 0; k <= n; k++) {
        total += Math.exp(logBinomialPmf(k, n, p));
        const sum = 10 ** log10BinomialSf(k, n, p) + 10 ** log10BinomialCdf(k - 1, n, p);
        expect(sum).toBeCloseTo(1, 12);
      }
      expect(total).toBeCloseTo(1, 12);
    }
  });

  it('edges: k ≤ 0 gives p = 1, k > n gives p = 0, nothing is NaN', () => {
    expect(log10BinomialSf(0, 5, 0.25)).toBe(0);
    expect(log10BinomialSf(-3, 5, 0.25)).toBe(0);
    expect(log10BinomialSf(6, 5, 0.25)).toBe(Number.NEGATIVE_INFINITY);
    expect(log10BinomialSf(0, 0, 0.25)).toBe(0);
    expect(log10BinomialSf(2 ** 31 - 1, 2 ** 31 - 1, 0.25)).toBeCloseTo((2 ** 31 - 1) * Math.log10(0.25), 0);
    expect(log10NormalSf(Number.POSITIVE_INFINITY)).toBe(Number.NEGATIVE_INFINITY);
  });
});
