import { describe, expect, it } from 'vitest';
import { benjaminiHochberg } from './multiple-testing.ts';

describe('benjaminiHochberg (step-up, in log10)', () => {
  it('a hand-computed example: step-up rejects a p-value above its own threshold', () => {
    // α = 0.05, N = 5. Sorted: 0.004, 0.025, 0.028, 0.045, 0.2 against α·i/N = 0.01, 0.02, 0.03, 0.04,
    // 0.05. The largest i with p(i) ≤ α·i/N is 3 (0.028 ≤ 0.03), so the three smallest are rejected,
    // 0.025 too although it exceeds 0.02 (a step-down procedure would stop there); 0.045 ≤ α is not.
    // Adjusted: q(i) = min over j ≥ i of p(j)·N/j: 0.02, 0.14/3, 0.14/3, 0.05625, 0.2.
    const p = [0.028, 0.2, 0.004, 0.045, 0.025];
    const result = benjaminiHochberg(p.map(Math.log10), 0.05);
    expect(result.map((r) => r.rejected)).toEqual([true, false, true, false, true]);
    const adjusted = [0.14 / 3, 0.2, 0.02, 0.05625, 0.14 / 3];
    result.forEach((r, i) => {
      expect(r.log10PAdjusted).toBeCloseTo(Math.log10(adjusted[i]!), 12);
    });
  });

  it('nothing rejected when no p(i) ≤ α·i/N; adjusted p-values cap at 1', () => {
    const result = benjaminiHochberg([Math.log10(0.02), Math.log10(0.03), Math.log10(0.9)], 0.05);
    // Thresholds 0.0167, 0.0333, 0.05: 0.03 ≤ 0.0333 at i = 2, so two are rejected.
    expect(result.map((r) => r.rejected)).toEqual([true, true, false]);
    const none = benjaminiHochberg([Math.log10(0.02), Math.log10(0.04), Math.log10(0.9)], 0.05);
    expect(none.map((r) => r.rejected)).toEqual([false, false, false]);
    expect(benjaminiHochberg([Math.log10(0.5), Math.log10(0.6)], 0.05).map((r) => r.log10PAdjusted)).toEqual([
      Math.log10(0.6),
      Math.log10(0.6),
    ]);
    expect(benjaminiHochberg([0, -0.001], 0.05)[0]!.log10PAdjusted).toBe(0);
  });

  it('far into the tail, ties, one test and none', () => {
    const result = benjaminiHochberg([-400, -1, -350, -400], 1e-4);
    expect(result.map((r) => r.rejected)).toEqual([true, false, true, true]);
    // Ties share the adjusted value of the larger rank: -400 + log10(4/2).
    expect(result[0]!.log10PAdjusted).toBeCloseTo(-400 + Math.log10(2), 9);
    expect(result[3]!.log10PAdjusted).toBeCloseTo(-400 + Math.log10(2), 9);
    expect(result[2]!.log10PAdjusted).toBeCloseTo(-350 + Math.log10(4 / 3), 9);
    expect(benjaminiHochberg([-4], 1e-4)).toEqual([{ rejected: true, log10PAdjusted: -4 }]);
    expect(benjaminiHochberg([-3.9], 1e-4)).toEqual([{ rejected: false, log10PAdjusted: -3.9 }]);
    expect(benjaminiHochberg([], 0.05)).toEqual([]);
  });

  it('rejects only what the uncorrected test at α rejects', () => {
    const log10P = Array.from({ length: 200 }, (_, i) => -((i * 7919) % 97) / 10);
    const result = benjaminiHochberg(log10P, 1e-3);
    result.forEach((r, i) => {
      if (r.rejected) expect(log10P[i]).toBeLessThanOrEqual(-3);
      expect(r.log10PAdjusted).toBeGreaterThanOrEqual(log10P[i]!);
      expect(r.rejected).toBe(r.log10PAdjusted <= -3);
    });
  });

  it('validates its arguments', () => {
    expect(() => benjaminiHochberg([-1], 0)).toThrow(RangeError);
    expect(() => benjaminiHochberg([-1], 1)).toThrow(/alpha/);
    expect(() => benjaminiHochberg([0.5], 0.05)).toThrow(/log10PValues\[0\]/);
    expect(() => benjaminiHochberg([Number.NaN], 0.05)).toThrow(RangeError);
  });
});
