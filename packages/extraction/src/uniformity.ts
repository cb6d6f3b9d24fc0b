/**
 * Uniformity test of p-values: the two-sided one-sample Kolmogorov–Smirnov test against U(0, 1).
 *
 * D_n = sup_x |F_n(x) − x|. The p-value P[D_n ≥ d] is exact for n ≤ 1000, by the method of
 * Marsaglia, Tsang and Wang (2003), "Evaluating Kolmogorov's distribution", J. Stat. Softw. 8(18),
 * https://doi.org/10.18637/jss.v008.i18 (a power of a (2k−1)-square matrix, with exponent tracking);
 * in the far right tail (n·d² > 7.24, or > 3.76 with n > 99) it uses their closed-form
 * approximation, accurate to about 7 digits of the CDF, which is far below any threshold used here.
 * For n > 1000 it uses Kolmogorov's limiting distribution at Vrbik's (2018) corrected argument
 * u = √n·d + 1/(6√n) + (√n·d − 1)/(4n), within 1.1% (relative) of the exact tail for n > 1000
 * (checked against SciPy's `kstwo` in the tests).
 */

export interface UniformityTest {
  /** Number of values tested. */
  readonly n: number;
  /** The Kolmogorov–Smirnov statistic D_n. */
  readonly statistic: number;
  /** P[D_n ≥ statistic] under uniformity. */
  readonly pValue: number;
}

/** D_n for values in [0, 1]. */
export function kolmogorovSmirnovStatistic(values: readonly number[]): number {
  const n = values.length;
  if (n === 0) return 0;
  const sorted = Float64Array.from(values).sort();
  let d = 0;
  for (let i = 0; i < n; i++) {
    const x = sorted[i]!;
    d = Math.max(d, (i + 1) / n - x, x - i / n);
  }
  return d;
}

/** The two-sided KS test of `values` (each in [0, 1]) against U(0, 1). */
export function kolmogorovSmirnovUniform(values: readonly number[]): UniformityTest {
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (typeof v !== 'number' || !(v >= 0 && v <= 1))
      throw new RangeError(`values[${i}]: expected a number in [0, 1]`);
  }
  const n = values.length;
  const statistic = kolmogorovSmirnovStatistic(values);
  return { n, statistic, pValue: n === 0 ? 1 : kolmogorovSurvival(n, statistic) };
}

/** P[D_n ≥ d]. */
export function kolmogorovSurvival(n: number, d: number): number {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`n: expected a positive integer, got ${n}`);
  if (d <= 0) return 1;
  if (d >= 1) return 0;
  if (n > 1000) {
    const x = Math.sqrt(n) * d;
    return limitingSurvival(x + 1 / (6 * Math.sqrt(n)) + (x - 1) / (4 * n));
  }
  return Math.min(1, Math.max(0, 1 - kolmogorovCdf(n, d)));
}

/** Kolmogorov's limiting survival function Q(x) = 2 Σ_{j≥1} (−1)^{j−1} e^{−2j²x²}. */
function limitingSurvival(x: number): number {
  if (x <= 0) return 1;
  if (x < 1) {
    // For small x the series above converges slowly; use 1 − (√(2π)/x) Σ e^{−(2j−1)²π²/(8x²)}.
    let sum = 0;
    for (let j = 1; j < 100; j++) {
      const term = Math.exp((-((2 * j - 1) ** 2) * Math.PI ** 2) / (8 * x * x));
      sum += term;
      if (term < 1e-17 * sum) break;
    }
    return Math.min(1, Math.max(0, 1 - (Math.sqrt(2 * Math.PI) / x) * sum));
  }
  let sum = 0;
  for (let j = 1; j < 100; j++) {
    const term = Math.exp(-2 * j * j * x * x);
    sum += j % 2 === 1 ? term : -term;
    if (term < 1e-17) break;
  }
  return Math.min(1, Math.max(0, 2 * sum));
}

/** P[D_n < d] by Marsaglia, Tsang and Wang (2003). */
function kolmogorovCdf(n: number, d: number): number {
  const s = d * d * n;
  if (s > 7.24 || (s > 3.76 && n > 99)) {
    return 1 - 2 * Math.exp(-(2.000071 + 0.331 / Math.sqrt(n) + 1.409 / n) * s);
  }
  const k = Math.floor(n * d) + 1;
  const m = 2 * k - 1;
  const h = k - n * d;
  const H = new Float64Array(m * m);
  for (let i = 0; i < m; i++) for (let j = 0; j < m; j++) H[i * m + j] = i - j + 1 < 0 ? 0 : 1;
  for (let i = 0; i < m; i++) {
    H[i * m] = H[i * m]! - h ** (i + 1);
    H[(m - 1) * m + i] = H[(m - 1) * m + i]! - h ** (m - i);
  }
  H[(m - 1) * m] = H[(m - 1) * m]! + (2 * h - 1 > 0 ? (2 * h - 1) ** m : 0);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < m; j++) {
      if (i - j + 1 > 0) for (let g = 1; g <= i - j + 1; g++) H[i * m + j] = H[i * m + j]! / g;
    }
  }
  const { matrix: Q, exponent } = matrixPower(H, 0, m, n);
  let value = Q[(k - 1) * m + k - 1]!;
  let e = exponent;
  for (let i = 1; i <= n; i++) {
    value = (value * i) / n;
    if (value < 1e-140) {
      value *= 1e140;
      e -= 140;
    }
  }
  return value * 10 ** e;
}

function multiply(a: Float64Array, b: Float64Array, m: number): Float64Array {
  const c = new Float64Array(m * m);
  for (let i = 0; i < m; i++) {
    for (let l = 0; l < m; l++) {
      const x = a[i * m + l]!;
      if (x === 0) continue;
      for (let j = 0; j < m; j++) c[i * m + j] = c[i * m + j]! + x * b[l * m + j]!;
    }
  }
  return c;
}

/** A^n with a decimal exponent kept beside the matrix so that nothing overflows. */
function matrixPower(
  a: Float64Array,
  exponentA: number,
  m: number,
  n: number,
): { matrix: Float64Array; exponent: number } {
  if (n === 1) return { matrix: a.slice(), exponent: exponentA };
  const half = matrixPower(a, exponentA, m, Math.floor(n / 2));
  let matrix = multiply(half.matrix, half.matrix, m);
  let exponent = 2 * half.exponent;
  if (n % 2 === 1) {
    matrix = multiply(a, matrix, m);
    exponent += exponentA;
  }
  if (matrix[Math.floor(m / 2) * m + Math.floor(m / 2)]! > 1e140) {
    for (let i = 0; i < m * m; i++) matrix[i] = matrix[i]! * 1e-140;
    exponent += 140;
  }
  return { matrix, exponent };
}
