/**
 * Tail probabilities in log space, accurate far beyond the range of a double.
 *
 * Binomial probabilities use Loader's saddle-point form of the mass function (C. Loader, "Fast and
 * accurate computation of binomial probabilities", 2000), as R's dbinom does, and the continued
 * fraction of the regularized incomplete beta function (Numerical Recipes §6.4, modified Lentz)
 * for the tail: P[X ≥ k] = I_p(k, n − k + 1).
 */

const LN10 = Math.LN10;
const LN_SQRT_2PI = 0.9189385332046728;
const LN_2PI = 1.8378770664093456;

// stirlerr(n) = ln n! − (n + ½) ln n + n − ln √(2π), for n = 0..15, from mpmath at 40 digits.
const STIRLERR_TABLE: readonly number[] = [
  0, 0.08106146679532726, 0.0413406959554093, 0.02767792568499834, 0.020790672103765093, 0.016644691189821193,
  0.013876128823070748, 0.01189670994589177, 0.010411265261972096, 0.009255462182712733, 0.00833056343336287,
  0.007573675487951841, 0.00694284010720953, 0.006408994188004207, 0.0059513701127588475,
  0.005554733551962801,
];

function stirlingError(n: number): number {
  if (n <= 15) return STIRLERR_TABLE[n]!;
  const S0 = 1 / 12;
  const S1 = 1 / 360;
  const S2 = 1 / 1260;
  const S3 = 1 / 1680;
  const S4 = 1 / 1188;
  const nn = n * n;
  if (n > 500) return (S0 - S1 / nn) / n;
  if (n > 80) return (S0 - (S1 - S2 / nn) / nn) / n;
  if (n > 35) return (S0 - (S1 - (S2 - S3 / nn) / nn) / nn) / n;
  return (S0 - (S1 - (S2 - (S3 - S4 / nn) / nn) / nn) / nn) / n;
}

/** Deviance term x·ln(x/μ) + μ − x, computed without cancellation when x ≈ μ. */
function deviance(x: number, mu: number): number {
  if (Math.abs(x - mu) < 0.1 * (x + mu)) {
    let v = (x - mu) / (x + mu);
    let sum = (x - mu) * v;
    let term = 2 * x * v;
    v *= v;
    for (let j = 1; j < 1000; j++) {
      term *= v;
      const next = sum + term / (2 * j + 1);
      if (next === sum) return next;
      sum = next;
    }
    return sum;
  }
  return x * Math.log(x / mu) + mu - x;
}

function assertCount(value: number, name: string): void {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
    throw new RangeError(`${name}: expected a non-negative integer, got ${String(value)}`);
  }
}

function assertProbability(value: number, name: string): void {
  if (typeof value !== 'number' || !(value > 0 && value < 1)) {
    throw new RangeError(`${name}: expected a probability strictly between 0 and 1, got ${String(value)}`);
  }
}

/** ln P[X = k] for X ~ Bin(n, p), 0 < p < 1. */
export function logBinomialPmf(k: number, n: number, p: number): number {
  assertCount(n, 'n');
  assertCount(k, 'k');
  assertProbability(p, 'p');
  return logPmf(k, n, p, 1 - p);
}

function logPmf(k: number, n: number, p: number, q: number): number {
  if (k > n) return Number.NEGATIVE_INFINITY;
  if (k === 0) return n * (p < 0.5 ? Math.log1p(-p) : Math.log(q));
  if (k === n) return n * Math.log(p);
  const lc =
    stirlingError(n) - stirlingError(k) - stirlingError(n - k) - deviance(k, n * p) - deviance(n - k, n * q);
  const lf = LN_2PI + Math.log(k) + Math.log1p(-k / n);
  return lc - 0.5 * lf;
}

const TINY = 1e-300;

/** Continued fraction of the incomplete beta function (Numerical Recipes betacf), modified Lentz. */
function betaContinuedFraction(a: number, b: number, x: number): number {
  const qab = a + b;
  const qap = a + 1;
  const qam = a - 1;
  let c = 1;
  let d = 1 - (qab * x) / qap;
  if (Math.abs(d) < TINY) d = TINY;
  d = 1 / d;
  let h = d;
  for (let m = 1; m <= 10_000_000; m++) {
    const m2 = 2 * m;
    let aa = (m * (b - m) * x) / ((qam + m2) * (a + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < TINY) d = TINY;
    c = 1 + aa / c;
    if (Math.abs(c) < TINY) c = TINY;
    d = 1 / d;
    h *= d * c;
    aa = (-(a + m) * (qab + m) * x) / ((a + m2) * (qap + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < TINY) d = TINY;
    c = 1 + aa / c;
    if (Math.abs(c) < TINY) c = TINY;
    d = 1 / d;
    const step = d * c;
    h *= step;
    if (Math.abs(step - 1) < 2e-16) return h;
  }
  return h;
}

/**
 * ln P[X ≥ k] for X ~ Bin(n, p): the exact one-sided binomial tail, I_p(k, n − k + 1).
 * Returns 0 for k ≤ 0 and −Infinity for k > n; never underflows.
 */
export function logBinomialSf(k: number, n: number, p: number): number {
  assertCount(n, 'n');
  if (typeof k !== 'number' || !Number.isInteger(k)) {
    throw new RangeError(`k: expected an integer, got ${String(k)}`);
  }
  assertProbability(p, 'p');
  return logSf(k, n, p, 1 - p);
}

function logSf(k: number, n: number, p: number, q: number): number {
  if (k <= 0) return 0;
  if (k > n) return Number.NEGATIVE_INFINITY;
  const a = k;
  const b = n - k + 1;
  if (p < (a + 1) / (a + b + 2)) {
    // I_p(a, b) = pmf(k)·(1 − p)·cf(a, b, p) / … (the prefactor x^a (1−x)^b / (a·B(a, b)) is pmf(k)·(1 − p)).
    return logPmf(k, n, p, q) + Math.log(q) + Math.log(betaContinuedFraction(a, b, p));
  }
  // 1 − I_{1−p}(b, a), where I_{1−p}(b, a) = P[X ≤ k − 1] = pmf(k − 1)·p·cf(b, a, 1 − p).
  const lower = Math.exp(logPmf(k - 1, n, p, q) + Math.log(p) + Math.log(betaContinuedFraction(b, a, q)));
  return Math.log1p(-Math.min(lower, 1));
}

/** log10 P[X ≥ k] for X ~ Bin(n, p). */
export function log10BinomialSf(k: number, n: number, p: number): number {
  return logBinomialSf(k, n, p) / LN10;
}

/** ln P[X ≤ k] for X ~ Bin(n, p), as the upper tail of n − X ~ Bin(n, 1 − p). */
export function logBinomialCdf(k: number, n: number, p: number): number {
  assertCount(n, 'n');
  if (typeof k !== 'number' || !Number.isInteger(k)) {
    throw new RangeError(`k: expected an integer, got ${String(k)}`);
  }
  assertProbability(p, 'p');
  if (k < 0) return Number.NEGATIVE_INFINITY;
  if (k >= n) return 0;
  return logSf(n - k, n, 1 - p, p);
}

/** log10 P[X ≤ k] for X ~ Bin(n, p). */
export function log10BinomialCdf(k: number, n: number, p: number): number {
  return logBinomialCdf(k, n, p) / LN10;
}

/**
 * ln Q(z) = ln P[N(0, 1) ≥ z]. Marsaglia's all-positive series for |z| < 2 (Marsaglia 2004,
 * "Evaluating the Normal Distribution"), the Laplace continued fraction of Mills' ratio above.
 */
export function logNormalSf(z: number): number {
  if (typeof z !== 'number' || Number.isNaN(z))
    throw new RangeError(`z: expected a number, got ${String(z)}`);
  if (z === Number.POSITIVE_INFINITY) return Number.NEGATIVE_INFINITY;
  if (z === Number.NEGATIVE_INFINITY) return 0;
  if (z < 0) return Math.log1p(-Math.exp(logNormalSf(-z)));
  if (z < 2) {
    let term = z;
    let sum = z;
    const zz = z * z;
    for (let i = 3; i < 500; i += 2) {
      term *= zz / i;
      const next = sum + term;
      if (next === sum) break;
      sum = next;
    }
    const density = Math.exp(-0.5 * zz - LN_SQRT_2PI);
    return Math.log(0.5 - density * sum);
  }
  // Mills' ratio R(z) = 1/(z + 1/(z + 2/(z + 3/(z + …)))), by modified Lentz.
  let f = z;
  let c = z;
  let d = 0;
  for (let j = 1; j < 100_000; j++) {
    d = z + j * d;
    if (Math.abs(d) < TINY) d = TINY;
    c = z + j / c;
    if (Math.abs(c) < TINY) c = TINY;
    d = 1 / d;
    const step = c * d;
    f *= step;
    if (Math.abs(step - 1) < 1e-16) break;
  }
  return -0.5 * z * z - LN_SQRT_2PI - Math.log(f);
}

/** log10 Q(z). */
export function log10NormalSf(z: number): number {
  return logNormalSf(z) / LN10;
}

/** z = (k − γT) / sqrt(Tγ(1 − γ)); 0 when T = 0. */
export function zScore(numGreen: number, numScored: number, gamma: number): number {
  if (numScored === 0) return 0;
  return (numGreen - gamma * numScored) / Math.sqrt(numScored * gamma * (1 - gamma));
}

/**
 * Holm's step-down adjustment (Holm 1979) of log10 p-values: with p_(1) ≤ … ≤ p_(m),
 * p̃_(i) = min(1, max_{j ≤ i} (m − j + 1)·p_(j)). Returns the adjusted values in input order.
 */
export function holmAdjustLog10(log10PValues: readonly number[]): number[] {
  const m = log10PValues.length;
  const order = log10PValues.map((_, i) => i).sort((a, b) => log10PValues[a]! - log10PValues[b]! || a - b);
  const adjusted = new Array<number>(m);
  let running = Number.NEGATIVE_INFINITY;
  order.forEach((index, rank) => {
    const value = log10PValues[index]!;
    if (Number.isNaN(value) || value > 0)
      throw new RangeError(`log10PValues[${index}]: expected a value ≤ 0`);
    running = Math.max(running, value + Math.log10(m - rank));
    adjusted[index] = Math.min(0, running);
  });
  return adjusted;
}

/** Bonferroni bound min(1, count·p) in log10. */
export function bonferroniLog10(log10P: number, count: number): number {
  return Math.min(0, log10P + Math.log10(Math.max(1, count)));
}

/**
 * Wilson score interval for a binomial proportion (Wilson 1927); used for effect sizes.
 * `z` is the two-sided normal quantile (1.959963984540054 for 95%).
 */
export function wilsonInterval(successes: number, trials: number, z = 1.959963984540054): [number, number] {
  if (trials === 0) return [0, 1];
  const phat = successes / trials;
  const z2 = z * z;
  const denominator = 1 + z2 / trials;
  const center = (phat + z2 / (2 * trials)) / denominator;
  const half = (z * Math.sqrt((phat * (1 - phat)) / trials + z2 / (4 * trials * trials))) / denominator;
  return [Math.max(0, center - half), Math.min(1, center + half)];
}
