import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  firstTerm,
  integratedLogSf,
  kronrodPanel,
  log10GammaSf,
  log10WeightedGammaSf,
  log10WeightedGammaSfLowerBound,
  logGamma,
  logGammaSf,
  logWeightedGammaSf,
  mixtureLogSf,
  peakStart,
} from './gamma-tail.ts';

const path = new URL('../../test/vectors/foreign/vllm.json', import.meta.url);
const vectors = existsSync(path) ? JSON.parse(readFileSync(path, 'utf8')) : null;

/**
 * Relative error of log10 p, with an absolute floor near p = 1: there ln p is a sum of terms close
 * to 1 and only its absolute error (about 1e−15, i.e. the relative error of p) is meaningful.
 */
function closeness(actual: number, expected: number): number {
  return Math.abs(actual - expected) / Math.max(Math.abs(expected), 1e-3);
}

describe('Gamma(a, 1) upper tail against mpmath (test/vectors/foreign/vllm.json gammaTail)', () => {
  it('relative error of log10 Q(a, x) ≤ 1e-11, down to log10 Q ≈ −4e5', () => {
    let deep = 0;
    for (const c of vectors.gammaTail) {
      const actual = log10GammaSf(c.a, c.x);
      expect(closeness(actual, c.log10Sf), JSON.stringify({ ...c, actual })).toBeLessThan(1e-11);
      if (c.log10Sf < -308) deep++;
    }
    expect(deep).toBeGreaterThanOrEqual(8);
  });
});

describe('weighted sum of two Gamma(n, 1) against mpmath (dualTail, partial fractions)', () => {
  it('relative error of log10 P[(1 − α)X + αY > s] ≤ 1e-10 (tens of thousands of mixture terms at α = 0.01)', () => {
    let deep = 0;
    for (const c of vectors.dualTail) {
      const actual = log10WeightedGammaSf(c.n, 1 - c.alpha, c.alpha, c.s);
      expect(closeness(actual, c.log10Sf), JSON.stringify({ ...c, actual })).toBeLessThan(1e-10);
      if (c.log10Sf < -308) deep++;
    }
    expect(deep).toBeGreaterThanOrEqual(3);
  });
});

const dualTail = JSON.parse(
  readFileSync(new URL('../../test/vectors/dual-tail.json', import.meta.url), 'utf8'),
) as { cases: { n: number; alpha: number; s: number; lnSf: number }[] };

describe('long mixture sums and small weights against mpmath (test/vectors/dual-tail.json)', () => {
  // n from 500 to 100,000: hundreds of thousands of terms, tails near 1 (only ln p's absolute error
  // means anything there), and deep ones whose Gamma tail grows by thousands of orders along the sum;
  // then α from 1e−4 to 1e−9, n = 1 to 100,000, which the integral over Y computes.
  it('ln P[(1 − α)X + αY > s] within 1e-13 + 1e-12·|ln p| of the reference', () => {
    for (const c of dualTail.cases) {
      const actual = logWeightedGammaSf(c.n, 1 - c.alpha, c.alpha, c.s);
      expect(Math.abs(actual - c.lnSf), JSON.stringify({ ...c, actual })).toBeLessThanOrEqual(
        1e-13 + 1e-12 * Math.abs(c.lnSf),
      );
    }
    expect(dualTail.cases.filter((c) => c.lnSf > -1e-3).length).toBeGreaterThanOrEqual(3);
    expect(dualTail.cases.filter((c) => c.lnSf < -1000).length).toBeGreaterThanOrEqual(3);
  });
});

describe('the mixture sum started past its negligible terms (large n)', () => {
  // Within the whole sum's own rounding, which grows with its steps (up to ~1e−9 of ln p at n = 4·10^5,
  // where the skipped start, with far fewer steps, is nearer the true value: ln p of a tail of ≈ 1).
  it('equals the whole sum within 5e-8 (closeness) of log p, from n = 3,000 to 200,000, and skips most terms', () => {
    for (const n of [3000, 20_000, 200_000]) {
      for (const alpha of [0.05, 0.1, 0.3]) {
        const [small, large] = [alpha, 1 - alpha];
        const first = firstTerm(n, small / large);
        // K's mean is n·q/p; the start lies 40 standard deviations below it, most of the way at large n.
        const mean = (n * (1 - small / large)) / (small / large);
        if (alpha <= 0.1) expect(first).toBeGreaterThan(n >= 20_000 ? 0.5 * mean : 0);
        for (const f of [0.95, 1, 1.02, 1.1, 1.5]) {
          const s = n * f;
          const skipped = logWeightedGammaSf(n, large, small, s);
          const whole = mixtureLogSf(n, small, large, s, 0);
          expect(closeness(skipped, whole), `n ${n}, α ${alpha}, s ${s}`).toBeLessThan(5e-8);
        }
      }
    }
    expect(firstTerm(200, 0.1 / 0.9)).toBe(0);
  });
});

describe('the mixture sum started near the peak of its terms (long, strongly marked texts)', () => {
  it("equals the sum from the weights' start, and skips most of it", () => {
    for (const [n, alpha, meanScore] of [
      [20_000, 0.1, 4],
      [5_000, 0.05, 3],
      [100_000, 0.3, 2],
      [50_000, 0.01, 1.5],
    ] as const) {
      const [small, large] = [alpha, 1 - alpha];
      const s = n * meanScore;
      const x = s / small;
      const from = firstTerm(n, small / large);
      const start = peakStart(n, small / large, x, from);
      expect(start, `n ${n}, α ${alpha}`).toBeGreaterThan(
        from + 0.5 * ((1 - small / large) * x - 2 * n - from),
      );
      const skipped = logWeightedGammaSf(n, large, small, s);
      const whole = mixtureLogSf(n, small, large, s, from);
      expect(closeness(skipped, whole), `n ${n}, α ${alpha}`).toBeLessThan(1e-12);
    }
    // Not far enough to search: the weights' start.
    expect(peakStart(580, 0.1 / 0.9, 11_600, 0)).toBe(0);
  });

  it('a corpus of 3 M strongly marked units has a finite tail between two Gamma bounds', () => {
    // The sum from the weights' start would take more than 10^8 terms here (it gave up).
    const [n, small, large] = [3_000_000, 0.1, 0.9];
    for (const meanScore of [2, 4, 20]) {
      const s = n * meanScore;
      const value = log10WeightedGammaSf(n, large, small, s);
      expect(value).toBeGreaterThanOrEqual(log10WeightedGammaSfLowerBound(n, large, small, s) - 1e-9);
      // P[L·X + l·Y > s] ≤ P[L·(X + Y) > s] = Q(2n, s/L).
      expect(value).toBeLessThanOrEqual(log10GammaSf(2 * n, s / large) * (1 - 1e-12));
    }
  });
});

describe('the tail integrated over Y (a smaller weight far below the larger)', () => {
  it('integrates with rules exact for polynomials: Kronrod to degree 22, Gauss to 13', () => {
    for (let k = 0; k <= 24; k++) {
      const exact = k % 2 === 0 ? 2 / (k + 1) : 0;
      const [kronrod, gauss] = kronrodPanel((x) => x ** k, -1, 1);
      if (k <= 22) expect(Math.abs(kronrod - exact), `x^${k}`).toBeLessThan(1e-15);
      if (k <= 13) expect(Math.abs(gauss - exact), `x^${k}`).toBeLessThan(1e-15);
    }
    // Past its degree the Gauss rule is off (so the panels' difference means something).
    expect(Math.abs(kronrodPanel((x) => x ** 14, -1, 1)[1] - 2 / 15)).toBeGreaterThan(1e-5);
  });

  it('equals the mixture sum where both are quick, tails near 1 to e^−6347, n = 1 to 20,000', () => {
    for (const [n, small, s] of [
      [500, 0.01, 520],
      [500, 0.01, 700],
      [2000, 0.05, 1900],
      [2000, 0.05, 2500],
      [50, 0.02, 49],
      [1, 0.01, 3],
      [3, 0.01, 0.5],
      [20_000, 0.02, 40_000],
      [300, 0.3, 900],
    ] as const) {
      const integrated = integratedLogSf(n, small, 1 - small, s);
      const summed = mixtureLogSf(n, small, 1 - small, s, 0);
      expect(Math.abs(integrated - summed), `n ${n}, α ${small}, s ${s}`).toBeLessThanOrEqual(
        1e-13 + 1e-13 * Math.abs(summed),
      );
    }
  });

  it('takes over from the mixture for small weights, and tends to the one-Gamma tail as the weight vanishes', () => {
    // α = 1e−6 at n = 500: the mixture would have needed more than 10^8 terms (it was refused).
    const tiny = logWeightedGammaSf(500, 1 - 1e-6, 1e-6, 520);
    expect(Number.isFinite(tiny)).toBe(true);
    // n = 1 has a closed form: P[aX + bY > s] = (a·e^(−s/a) − b·e^(−s/b)) / (a − b).
    for (const [alpha, s] of [
      [1e-5, 3],
      [1e-7, 0.5],
      [1e-4, 40],
    ] as const) {
      const [a, b] = [1 - alpha, alpha];
      const exact = Math.log((a * Math.exp(-s / a) - b * Math.exp(-s / b)) / (a - b));
      expect(Math.abs(logWeightedGammaSf(1, a, b, s) - exact), `α ${alpha}, s ${s}`).toBeLessThan(
        1e-13 * Math.max(1, Math.abs(exact)),
      );
    }
    // P[(1 − α)X + αY > s] ≥ Q(n, s/(1 − α)) (Y ≥ 0), and ≤ Q(n, (s − α·y)/(1 − α)) + Q(n, y) for every
    // y (X must pass (s − α·y)/(1 − α) unless Y passes y); as α → 0 it reaches Q(n, s).
    for (const [n, s] of [
      [500, 520],
      [20_000, 30_000],
      [100_000, 99_000],
    ] as const) {
      for (const alpha of [1e-4, 1e-6, 1e-9, 1e-15]) {
        const value = logWeightedGammaSf(n, 1 - alpha, alpha, s);
        const y = n + 40 * Math.sqrt(n);
        const upper = Math.exp(logGammaSf(n, (s - alpha * y) / (1 - alpha))) + Math.exp(logGammaSf(n, y));
        // (Within the absolute error of ln p near p = 1: the relative error of p, about 1e−14.)
        expect(value, `n ${n}, α ${alpha}`).toBeGreaterThanOrEqual(logGammaSf(n, s / (1 - alpha)) - 1e-13);
        if (upper > 0) expect(value, `n ${n}, α ${alpha}`).toBeLessThanOrEqual(Math.log(upper) + 1e-13);
        if (alpha === 1e-15) {
          expect(Math.abs(value - logGammaSf(n, s))).toBeLessThanOrEqual(1e-12 * Math.abs(value) + 1e-14);
        }
      }
    }
  });
});

describe('log10WeightedGammaSfLowerBound', () => {
  it('is never above the exact tail, and within a factor of 10 of it at α = 0.1 from n = 20 to 2,000', () => {
    let seed = 7;
    const next = (): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed / 2 ** 32;
    };
    for (let i = 0; i < 400; i++) {
      const n = 1 + Math.floor(next() * 3000);
      const alpha = 0.02 + 0.96 * next();
      const s = n * 2 * next();
      const exact = log10WeightedGammaSf(n, 1 - alpha, alpha, s);
      expect(
        log10WeightedGammaSfLowerBound(n, 1 - alpha, alpha, s),
        `n ${n}, α ${alpha}, s ${s}`,
        // Within the exact sum's rounding: near p = 1 it is off by up to a few 1e−11 in log10 (p's
        // relative error), over the tens of thousands of terms of a small weight.
      ).toBeLessThanOrEqual(exact + 1e-8 * Math.max(1e-2, Math.abs(exact)));
    }
    for (const n of [20, 500, 2000]) {
      for (const ratio of [1, 1.1, 1.2]) {
        const exact = log10WeightedGammaSf(n, 0.9, 0.1, n * ratio);
        expect(log10WeightedGammaSfLowerBound(n, 0.9, 0.1, n * ratio)).toBeGreaterThan(exact - 1);
      }
    }
    expect(log10WeightedGammaSfLowerBound(5, 0.7, 0.3, 0)).toBe(0);
    expect(() => log10WeightedGammaSfLowerBound(0, 0.7, 0.3, 1)).toThrow(/n:/);
    expect(() => log10WeightedGammaSfLowerBound(2, 0.7, 0.3, -1)).toThrow(/s:/);
  });
});

describe('identities', () => {
  it('ln Γ at integers and half-integers', () => {
    let factorial = 1;
    for (let n = 1; n <= 30; n++) {
      expect(Math.abs(logGamma(n) - Math.log(factorial))).toBeLessThan(
        1e-13 * Math.max(1, Math.log(factorial)),
      );
      factorial *= n;
    }
    expect(logGamma(0.5)).toBeCloseTo(0.5 * Math.log(Math.PI), 14);
  });

  it('Q(1, x) = e^−x and Q(2, x) = (1 + x) e^−x, far into the tail', () => {
    for (const x of [1e-9, 0.3, 1, 7, 100, 1e4, 1e7]) {
      expect(closeness(logGammaSf(1, x), -x)).toBeLessThan(1e-14);
      expect(closeness(logGammaSf(2, x), Math.log1p(x) - x)).toBeLessThan(1e-14);
    }
  });

  it('the mixture reduces to Q(2n, 2s) at α = ½, to Q(n, s) at α ∈ {0, 1}, and to the closed form at n = 1', () => {
    for (const [n, s] of [
      [1, 3],
      [10, 25],
      [500, 2000],
    ] as const) {
      expect(logWeightedGammaSf(n, 0.5, 0.5, s)).toBe(logGammaSf(2 * n, 2 * s));
      expect(logWeightedGammaSf(n, 1, 0, s)).toBe(logGammaSf(n, s));
      expect(logWeightedGammaSf(n, 0, 1, s)).toBe(logGammaSf(n, s));
    }
    // n = 1: P[aE + bF > s] = (a e^{−s/a} − b e^{−s/b}) / (a − b)
    for (const [a, s] of [
      [0.9, 0.5],
      [0.7, 4],
      [0.55, 30],
    ] as const) {
      const b = 1 - a;
      const closed = Math.log((a * Math.exp(-s / a) - b * Math.exp(-s / b)) / (a - b));
      expect(closeness(logWeightedGammaSf(1, a, b, s), closed)).toBeLessThan(1e-12);
    }
  });

  it('is monotone in s and symmetric in the weights', () => {
    let previous = 0;
    for (let s = 1; s < 400; s *= 1.7) {
      const value = logWeightedGammaSf(40, 0.8, 0.2, s);
      expect(value).toBeLessThanOrEqual(previous);
      expect(logWeightedGammaSf(40, 0.2, 0.8, s)).toBe(value);
      previous = value;
    }
  });

  it('rejects invalid arguments with RangeError naming the parameter', () => {
    expect(() => logGammaSf(0, 1)).toThrow(/a:/);
    expect(() => logGammaSf(1, -1)).toThrow(/x:/);
    expect(() => logGammaSf(Number.NaN, 1)).toThrow(RangeError);
    expect(() => logWeightedGammaSf(0, 0.5, 0.5, 1)).toThrow(/n:/);
    expect(() => logWeightedGammaSf(2.5, 0.5, 0.5, 1)).toThrow(/n:/);
    expect(() => logWeightedGammaSf(2, 0, 0, 1)).toThrow(RangeError);
    expect(() => logWeightedGammaSf(2, 0.5, 0.5, -1)).toThrow(/s:/);
    expect(logGammaSf(3, 0)).toBe(0);
    expect(logGammaSf(3, Number.POSITIVE_INFINITY)).toBe(Number.NEGATIVE_INFINITY);
  });
});
