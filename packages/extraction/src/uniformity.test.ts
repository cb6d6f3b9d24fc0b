import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { kolmogorovSmirnovStatistic, kolmogorovSmirnovUniform, kolmogorovSurvival } from './uniformity.ts';

interface Case {
  readonly n: number;
  readonly d: number;
  readonly sf: number;
}
const vectors = JSON.parse(readFileSync(new URL('../test/vectors/ks.json', import.meta.url), 'utf8')) as {
  exact: Case[];
  large: Case[];
};

describe('Kolmogorov–Smirnov against SciPy (kstwo, the exact distribution)', () => {
  it('n ≤ 1000: within 4e-7 absolute (exact method; closed form in the far tail)', () => {
    for (const c of vectors.exact) {
      expect(Math.abs(kolmogorovSurvival(c.n, c.d) - c.sf), `n=${c.n} d=${c.d}`).toBeLessThan(4e-7);
    }
  });

  it('n > 1000: within 1.1% relative (limiting distribution, corrected argument)', () => {
    for (const c of vectors.large) {
      expect(Math.abs(kolmogorovSurvival(c.n, c.d) - c.sf) / c.sf, `n=${c.n} d=${c.d}`).toBeLessThan(0.011);
    }
  });

  it('the statistic is the largest gap between the empirical CDF and the diagonal', () => {
    expect(kolmogorovSmirnovStatistic([0.5])).toBe(0.5);
    expect(kolmogorovSmirnovStatistic([0.25, 0.75])).toBe(0.25);
    expect(kolmogorovSmirnovStatistic([0.9, 0.95])).toBeCloseTo(0.9, 12);
    expect(kolmogorovSmirnovUniform([]).pValue).toBe(1);
    expect(() => kolmogorovSmirnovUniform([0.5, 1.5])).toThrow(RangeError);
  });

  it('accepts evenly spread values and rejects values piled near 0 or 1', () => {
    const even = Array.from({ length: 200 }, (_, i) => (i + 0.5) / 200);
    expect(kolmogorovSmirnovUniform(even).pValue).toBeGreaterThan(0.99);
    const low = Array.from({ length: 200 }, (_, i) => ((i + 0.5) / 200) ** 2);
    expect(kolmogorovSmirnovUniform(low).pValue).toBeLessThan(1e-6);
    const ends = Array.from({ length: 200 }, (_, i) =>
      i % 2 === 0 ? 0.01 * Math.random() : 1 - 0.01 * Math.random(),
    );
    expect(kolmogorovSmirnovUniform(ends).pValue).toBeLessThan(1e-6);
  });
});
