import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { normalQuantile, shapiroWilk, shapiroWilkCoefficients } from './shapiro-wilk.ts';

interface Case {
  readonly name: string;
  readonly sample: number[];
  readonly w: number;
  readonly wDecimals: number;
  readonly p: number;
  readonly pDecimals: number;
}

const vectors = JSON.parse(
  readFileSync(new URL('../test/vectors/shapiro-wilk.json', import.meta.url), 'utf8'),
) as { cases: Case[] };

/** numpy's assert_almost_equal(actual, desired, decimal): |actual − desired| < 1.5 × 10^−decimal. */
function almostEqual(actual: number, desired: number, decimals: number): void {
  expect(Math.abs(actual - desired), `${actual} vs ${desired}`).toBeLessThan(1.5 * 10 ** -decimals);
}

describe('shapiroWilk', () => {
  it.each(vectors.cases.map((c) => [c.name, c] as const))('%s matches the published W and p', (_name, c) => {
    const result = shapiroWilk(c.sample);
    almostEqual(result.w, c.w, c.wDecimals);
    almostEqual(result.pValue, c.p, c.pDecimals);
    expect(result.logPValue).toBeCloseTo(Math.log(result.pValue), 12);
  });

  it('n = 3 is exact: W = 27/28 for (1, 2, 4), p = 6/π (asin √W − π/3)', () => {
    const result = shapiroWilk([1, 2, 4]);
    // a = (−√½, 0, √½): (a·x)² = 4.5, Σ(x − x̄)² = 14/3, W = 27/28.
    expect(result.w).toBeCloseTo(27 / 28, 14);
    expect(result.pValue).toBeCloseTo((6 / Math.PI) * (Math.asin(Math.sqrt(27 / 28)) - Math.PI / 3), 14);
  });

  it('is invariant to order, location and scale; zero range gives W = 1', () => {
    const sample = vectors.cases[0]!.sample;
    const moved = [...sample].reverse().map((x) => 3 * x - 7);
    expect(shapiroWilk(moved).w).toBeCloseTo(shapiroWilk(sample).w, 12);
    expect(shapiroWilk([2, 2, 2, 2])).toEqual({ w: 1, pValue: 1, logPValue: 0, n: 4 });
  });

  it('gives log p in the tail (exponential growth, n = 2000)', () => {
    const skewed = Array.from({ length: 2000 }, (_, i) => Math.exp(i / 100));
    const result = shapiroWilk(skewed);
    expect(result.w).toBeLessThan(0.5);
    expect(result.logPValue).toBeLessThan(-140);
    expect(result.logPValue).toBeCloseTo(Math.log(result.pValue), 10);
  });

  it('coefficients are antisymmetric with unit norm', () => {
    for (const n of [4, 5, 6, 11, 12, 50, 500]) {
      const a = shapiroWilkCoefficients(n);
      let norm = 0;
      for (let i = 0; i < n; i++) {
        expect(a[i]).toBeCloseTo(-a[n - 1 - i]!, 12);
        norm += a[i]! ** 2;
      }
      expect(norm).toBeCloseTo(1, 6);
    }
  });

  it('normalQuantile inverts Φ to full precision', () => {
    expect(normalQuantile(0.975)).toBeCloseTo(1.959963984540054, 13);
    expect(normalQuantile(1e-10)).toBeCloseTo(-6.361340902404056, 11);
    expect(normalQuantile(0.5)).toBeCloseTo(0, 14);
  });

  it('rejects bad input', () => {
    expect(() => shapiroWilk([1, 2])).toThrow(RangeError);
    expect(() => shapiroWilk([1, 2, Number.NaN])).toThrow(/finite/);
    expect(() => normalQuantile(1)).toThrow(RangeError);
  });
});
