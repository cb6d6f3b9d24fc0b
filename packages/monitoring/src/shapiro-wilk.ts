/**
 * The Shapiro–Wilk W test of normality with Royston's approximations (Royston 1992, "Approximating the
 * Shapiro-Wilk W-test for non-normality", https://doi.org/10.1007/BF01891203; algorithm AS R94,
 * Royston 1995, https://doi.org/10.2307/2986146), for 3 ≤ n ≤ 5000.
 *
 * W = (Σ a_i x_(i))² / Σ (x_i − x̄)², with coefficients a from m_i = Φ⁻¹((i − 3/8)/(n + 1/4)): the two
 * extreme coefficients from Royston's polynomials in u = 1/√n, the others m_i/√φ. The p-value: exact
 * for n = 3 (6/π (asin √W − asin √¾)); for 4 ≤ n ≤ 11, −ln(γ − ln(1 − W)) is normal with γ, mean and
 * log-sd polynomial in n; for n ≥ 12, ln(1 − W) is normal with mean and log-sd polynomial in ln n.
 * The tail is log Q(z) (core's logNormalSf), so log p is finite far below 1e-308.
 */
import { logNormalSf } from '@tracemark/core';
import { probit } from 'simple-statistics';

export interface ShapiroWilkResult {
  /** The W statistic in (0, 1]. */
  readonly w: number;
  /** Upper-tail p-value of H0 "the sample is normal" (small W ⇒ small p). */
  readonly pValue: number;
  /** ln p. */
  readonly logPValue: number;
  readonly n: number;
}

function polynomial(coefficients: readonly number[], x: number): number {
  let value = 0;
  for (let i = coefficients.length - 1; i >= 0; i--) value = value * x + coefficients[i]!;
  return value;
}

/** Φ(x) for x < 0 and 1 − Q(x) above, both accurate in the tails. */
function normalCdf(x: number): number {
  return x < 0 ? Math.exp(logNormalSf(-x)) : -Math.expm1(logNormalSf(x));
}

/** Φ⁻¹(p): simple-statistics' probit refined by Newton steps on an accurate Φ (full double precision). */
export function normalQuantile(p: number): number {
  if (!(p > 0 && p < 1)) throw new RangeError(`p: expected a number in (0, 1), got ${String(p)}`);
  let x = probit(p);
  for (let i = 0; i < 6; i++) {
    const density = Math.exp(-0.5 * x * x) / Math.sqrt(2 * Math.PI);
    const step = (normalCdf(x) - p) / density;
    x -= step;
    if (Math.abs(step) <= 1e-15 * Math.max(1, Math.abs(x))) break;
  }
  return x;
}

const C1 = [0, 0.221157, -0.147981, -2.07119, 4.434685, -2.706056];
const C2 = [0, 0.042981, -0.293762, -1.752461, 5.682633, -3.582633];
const C3 = [0.544, -0.39978, 0.025054, -6.714e-4];
const C4 = [1.3822, -0.77857, 0.062767, -0.0020322];
const C5 = [-1.5861, -0.31082, -0.083751, 0.0038915];
const C6 = [-0.4803, -0.082676, 0.0030302];
const G = [-2.273, 0.459];

/** The Shapiro–Wilk coefficients a_1..a_n (antisymmetric) for a sample of size n. */
export function shapiroWilkCoefficients(n: number): Float64Array {
  if (!Number.isSafeInteger(n) || n < 3 || n > 5000) {
    throw new RangeError(`n: expected an integer in [3, 5000], got ${String(n)}`);
  }
  const a = new Float64Array(n);
  if (n === 3) {
    a[0] = -Math.SQRT1_2;
    a[2] = Math.SQRT1_2;
    return a;
  }
  const m = new Float64Array(n);
  let sumSquares = 0;
  for (let i = 0; i < n; i++) {
    m[i] = normalQuantile((i + 1 - 0.375) / (n + 0.25));
    sumSquares += m[i]! * m[i]!;
  }
  const norm = Math.sqrt(sumSquares);
  const u = 1 / Math.sqrt(n);
  const last = m[n - 1]!;
  const an = polynomial(C1, u) + last / norm;
  let phi: number;
  let firstInner: number;
  a[n - 1] = an;
  a[0] = -an;
  if (n > 5) {
    const penultimate = m[n - 2]!;
    const an1 = polynomial(C2, u) + penultimate / norm;
    phi = (sumSquares - 2 * last * last - 2 * penultimate * penultimate) / (1 - 2 * an * an - 2 * an1 * an1);
    a[n - 2] = an1;
    a[1] = -an1;
    firstInner = 2;
  } else {
    phi = (sumSquares - 2 * last * last) / (1 - 2 * an * an);
    firstInner = 1;
  }
  const scale = Math.sqrt(phi);
  for (let i = firstInner; i < n - firstInner; i++) a[i] = m[i]! / scale;
  return a;
}

/**
 * Shapiro–Wilk test of a sample (3 ≤ n ≤ 5000). A sample of zero range has W = 1 and p = 1 (as
 * scipy and R return, with a warning there): it carries no evidence against normality.
 */
export function shapiroWilk(sample: ArrayLike<number>): ShapiroWilkResult {
  const n = sample.length;
  if (n < 3 || n > 5000) throw new RangeError(`sample: expected 3 to 5000 values, got ${n}`);
  const x = Float64Array.from(sample as ArrayLike<number>);
  for (const value of x) {
    if (!Number.isFinite(value)) throw new RangeError('sample: expected finite numbers');
  }
  x.sort();
  if (x[n - 1]! - x[0]! === 0) return { w: 1, pValue: 1, logPValue: 0, n };
  const a = shapiroWilkCoefficients(n);
  let mean = 0;
  for (const value of x) mean += value;
  mean /= n;
  let numerator = 0;
  let denominator = 0;
  for (let i = 0; i < n; i++) {
    numerator += a[i]! * x[i]!;
    denominator += (x[i]! - mean) ** 2;
  }
  const w = Math.min(1, (numerator * numerator) / denominator);
  let logPValue: number;
  if (n === 3) {
    const p = (6 / Math.PI) * (Math.asin(Math.sqrt(w)) - Math.PI / 3);
    logPValue = Math.log(Math.max(p, 0));
  } else if (w === 1) {
    logPValue = 0;
  } else if (n <= 11) {
    const gamma = polynomial(G, n);
    const y = Math.log1p(-w);
    // Beyond γ the transform is undefined: W is smaller than any tabulated value, p underflows.
    if (y >= gamma) logPValue = Number.NEGATIVE_INFINITY;
    else {
      const z = (-Math.log(gamma - y) - polynomial(C3, n)) / Math.exp(polynomial(C4, n));
      logPValue = logNormalSf(z);
    }
  } else {
    const lnN = Math.log(n);
    const z = (Math.log1p(-w) - polynomial(C5, lnN)) / Math.exp(polynomial(C6, lnN));
    logPValue = logNormalSf(z);
  }
  return { w, pValue: Math.exp(logPValue), logPValue, n };
}
