import { describe, expect, it } from 'vitest';
import { formatPower, oneIn, superscript } from './format.ts';

describe('formatPower', () => {
  it('writes p-values as decimals near 1 and powers of ten far from it', () => {
    expect(formatPower(Math.log10(0.79))).toBe('0.79');
    expect(formatPower(Math.log10(0.0012))).toBe('0.0012');
    expect(formatPower(Math.log10(3.2e-12))).toBe('3.2 × 10⁻¹²');
    expect(formatPower(-38.08)).toBe('8.3 × 10⁻³⁹');
    expect(formatPower(38.08)).toBe('1.2 × 10³⁸');
    expect(formatPower(Math.log10(9.99e-5))).toBe('1.0 × 10⁻⁴');
    expect(formatPower(Number.NEGATIVE_INFINITY)).toBe('0');
  });

  it('says how rare in "1 in N" words', () => {
    expect(oneIn(-1)).toBeNull();
    expect(oneIn(-4)).toBe('about 1 in 10,000');
    expect(oneIn(-38.08)).toBe('about 1 in 1.2 × 10³⁸');
    expect(superscript(-120)).toBe('⁻¹²⁰');
  });
});
