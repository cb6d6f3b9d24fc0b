/**
 * Gamma tails in log space, accurate far below the smallest double (1e-308).
 *
 * - `logGammaSf(a, x)` = ln Q(a, x), the regularized upper incomplete gamma function, which is the
 *   survival function P[G > x] of G ~ Gamma(a, 1). A sum of n independent Exp(1) scores (the
 *   Gumbel-max / Aaronson detector statistic Σ −ln(1 − u)) is Gamma(n, 1).
 *   Series for P(a, x) below x = a + 1 and the Legendre continued fraction for Q above it
 *   (Numerical Recipes §6.2, modified Lentz), with the prefactor x^a e^−x / Γ(a) written through the
 *   Stirling error and the deviance a·ln(a/x) + x − a (Loader 2000, "Fast and accurate computation
 *   of binomial probabilities"), so that nothing cancels when a and x are large.
 * - `logWeightedGammaSf(n, wa, wb, s)` = ln P[wa·X + wb·Y > s] for independent X, Y ~ Gamma(n, 1):
 *   the exact tail of vLLM's dual-key score (weights 1 − α and α). With b = min(wa, wb) and
 *   a = max(wa, wb), the moment generating function factorizes so that
 *     (wa·X + wb·Y) / b ~ Gamma(2n + K, 1) with K ~ NegativeBinomial(n, b/a)
 *   (Moschopoulos 1985, "The distribution of the sum of independent gamma random variables",
 *   Ann. Inst. Stat. Math. 37: a mixture with positive weights), hence
 *     P[S > s] = Σ_k NB(k; n, b/a) · Q(2n + k, s/b).
 *   Every term is positive, so nothing cancels: the sum is kept as a double times a scale (far below
 *   1e−308 as well), each term following from the one before by a few products. The terms
 *   are summed until the ratio of successive terms, which decreases in k (both NB(k + 1)/NB(k) and
 *   Q(m + 1, x)/Q(m, x) do: the Poisson CDF is log-concave), is below 1 and the geometric bound on
 *   everything left is below 2^−60 of the sum: the truncation error is bounded by that, relative.
 *   For large n the sum starts at k₀ > 0 (about n·q/(1 − q) terms in, q = 1 − b/a), where the terms
 *   before it are below 2^−70 of the sum: since Q(2n + k, x) increases in k, they add at most
 *   P[K < k₀] / P[K ≥ k₀] of it, and P[K < k₀] = P[Bin(n + k₀ − 1, b/a) ≥ n] is computed exactly. The
 *   sum then takes a few hundred terms per standard deviation of K, not n·q/(1 − q) of them. For a long,
 *   strongly marked text the terms peak far beyond that (near 2n + k = (1 − b/a)·s/b): the sum starts
 *   where the terms before it are provably below 2^−70 of the peak's ({@link peakStart}), not tens of
 *   millions of terms before it.
 *   The terms that count span about 16·√(n(1 − b/a))/(b/a) values of k: past 2^16 (b below about 5e−3
 *   of a at n = 500; vLLM accepts any α) the tail is integrated over Y instead
 *   ({@link integratedLogSf}), whose integrand then is nearly the Gamma density itself.
 */

import { logBinomialPmf, logBinomialSf } from '../statistics.ts';

const LN10 = Math.LN10;
const LN_SQRT_2PI = 0.9189385332046728;

function assertPositive(value: number, name: string): void {
  if (typeof value !== 'number' || !(value > 0) || !Number.isFinite(value)) {
    throw new RangeError(`${name}: expected a finite number > 0, got ${String(value)}`);
  }
}

function assertNonNegative(value: number, name: string): void {
  if (typeof value !== 'number' || !(value >= 0) || Number.isNaN(value)) {
    throw new RangeError(`${name}: expected a number ≥ 0, got ${String(value)}`);
  }
}

/**
 * Stirling error ln Γ(a + 1) − (a + ½)·ln a + a − ln √(2π), for a > 0. The asymptotic series
 * (Bernoulli numbers) is below 2e−16 absolute from a = 15 on; smaller a shift up first.
 */
function stirlingError(a: number): number {
  if (a >= 15) {
    const aa = a * a;
    return (1 / 12 - (1 / 360 - (1 / 1260 - (1 / 1680 - 1 / (1188 * aa)) / aa) / aa) / aa) / a;
  }
  return logGamma(a + 1) - (a + 0.5) * Math.log(a) + a - LN_SQRT_2PI;
}

/** ln Γ(x) for x > 0: Stirling's series from 15 up, the recurrence Γ(x) = Γ(x + m)/(x⋯(x + m − 1)) below. */
export function logGamma(x: number): number {
  assertPositive(x, 'x');
  if (x >= 15) return (x - 0.5) * Math.log(x) - x + LN_SQRT_2PI + stirlingError(x);
  let product = 1;
  let shifted = x;
  while (shifted < 15) {
    product *= shifted;
    shifted += 1;
  }
  return (
    (shifted - 0.5) * Math.log(shifted) - shifted + LN_SQRT_2PI + stirlingError(shifted) - Math.log(product)
  );
}

/** Deviance a·ln(a/x) + x − a ≥ 0, by a series when a ≈ x so that it does not cancel. */
function deviance(a: number, x: number): number {
  if (Math.abs(a - x) < 0.1 * (a + x)) {
    let v = (a - x) / (a + x);
    let sum = (a - x) * v;
    let term = 2 * a * v;
    v *= v;
    for (let j = 1; j < 10_000; j++) {
      term *= v;
      const next = sum + term / (2 * j + 1);
      if (next === sum) return next;
      sum = next;
    }
    return sum;
  }
  return a * Math.log(a / x) + x - a;
}

/** ln(x^a e^−x / Γ(a + 1)), the Poisson-like prefactor, for a > 0, x > 0. */
function logPrefactorPlusOne(a: number, x: number): number {
  return -deviance(a, x) - LN_SQRT_2PI - 0.5 * Math.log(a) - stirlingError(a);
}

const TINY = 1e-300;
const MAX_ITERATIONS = 100_000_000;

/** ln P(a, x) by the series Σ x^k / ((a + 1)⋯(a + k)), for x < a + 1. */
function logLowerBySeries(a: number, x: number): number {
  let term = 1;
  let sum = 1;
  for (let k = 1; k < MAX_ITERATIONS; k++) {
    term *= x / (a + k);
    const next = sum + term;
    if (next === sum) break;
    sum = next;
  }
  return logPrefactorPlusOne(a, x) + Math.log(sum);
}

/** ln Q(a, x) by the continued fraction 1/(x + 1 − a − 1·(1 − a)/(x + 3 − a − …)), for x ≥ a + 1. */
function logUpperByFraction(a: number, x: number): number {
  let b = x + 1 - a;
  let c = 1 / TINY;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i < MAX_ITERATIONS; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < TINY) d = TINY;
    c = b + an / c;
    if (Math.abs(c) < TINY) c = TINY;
    d = 1 / d;
    const step = d * c;
    h *= step;
    if (Math.abs(step - 1) < 1e-16) break;
  }
  // x^a e^−x / Γ(a) = a · x^a e^−x / Γ(a + 1)
  return Math.log(a) + logPrefactorPlusOne(a, x) + Math.log(h);
}

/**
 * ln Q(a, x) = ln P[Gamma(a, 1) > x] for a > 0, x ≥ 0. Returns 0 for x = 0, −Infinity for x = ∞.
 * Relative accuracy of Q about 1e−13 or better over a ≤ 1e7, including far below 1e−308.
 */
export function logGammaSf(a: number, x: number): number {
  assertPositive(a, 'a');
  assertNonNegative(x, 'x');
  if (x === 0) return 0;
  if (x === Number.POSITIVE_INFINITY) return Number.NEGATIVE_INFINITY;
  if (x < a + 1) {
    const lower = Math.exp(logLowerBySeries(a, x));
    return Math.log1p(-Math.min(lower, 1));
  }
  return logUpperByFraction(a, x);
}

/** log10 Q(a, x) = log10 P[Gamma(a, 1) > x]. */
export function log10GammaSf(a: number, x: number): number {
  return logGammaSf(a, x) / LN10;
}

/** 2^−60: the bound, relative to the sum, on the terms left out of the mixture. */
const TRUNCATION = 2 ** -60;

/** The arguments of the weighted tail: an integer n ≥ 1, finite weights ≥ 0 not both 0, s ≥ 0. */
function assertWeightedArguments(n: number, wa: number, wb: number, s: number): void {
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1) {
    throw new RangeError(`n: expected an integer ≥ 1, got ${String(n)}`);
  }
  assertNonNegative(wa, 'wa');
  assertNonNegative(wb, 'wb');
  if (!Number.isFinite(wa) || !Number.isFinite(wb) || wa + wb === 0) {
    throw new RangeError(`wa, wb: expected finite weights, not both 0, got ${wa}, ${wb}`);
  }
  assertNonNegative(s, 's');
}

/**
 * ln P[wa·X + wb·Y > s] for independent X, Y ~ Gamma(n, 1), integer n ≥ 1, weights ≥ 0 not both 0.
 * Exact up to rounding: the mixture is truncated only when the rest is provably below 2^−60 of it. With
 * a smaller weight far below the larger (the mixture would span more than 2^16 terms), an integral
 * whose quadrature error is estimated below 1e−14 of it instead (checked against mpmath,
 * test/vectors/dual-tail.json).
 */
export function logWeightedGammaSf(n: number, wa: number, wb: number, s: number): number {
  assertWeightedArguments(n, wa, wb, s);
  if (s === 0) return 0;
  const large = Math.max(wa, wb);
  const small = Math.min(wa, wb);
  if (small === 0) return logGammaSf(n, s / large);
  if (small === large) return logGammaSf(2 * n, s / small);
  const p = small / large;
  // The terms that count span 16 standard deviations of K at the least (8 each side for 2^−60).
  if (16 * (Math.sqrt(n * (1 - p)) / p) > MAX_MIXTURE_SPAN) return integratedLogSf(n, small, large, s);
  return mixtureLogSf(n, small, large, s, peakStart(n, p, s / small, firstTerm(n, p)));
}

/**
 * Mixture terms (16 standard deviations of K) past which {@link logWeightedGammaSf} integrates
 * instead of summing: a smaller weight below about 5e−3 of the larger at n = 500, 1e−3 at n = 15,000.
 * The integral takes 0.15–0.5 ms wherever it is used; the sum takes longer past about 2^15 terms
 * (0.6–3 ms at α = 0.003, n = 500 to 15,000; 14–34 ms at α = 1e−4, and more than 10^8 terms at 1e−6).
 */
const MAX_MIXTURE_SPAN = 2 ** 16;

/**
 * Gauss–Kronrod 15-point abscissae on [−1, 1] (the positive half; the last is the centre), the doubles
 * nearest QUADPACK's 33-digit values (Piessens et al. 1983); with the weights below, the Kronrod rule
 * integrates x^k exactly to k = 22 and the Gauss rule to k = 13 (gamma-tail.test.ts).
 */
const KRONROD_NODES = [
  0.9914553711208126, 0.9491079123427585, 0.8648644233597691, 0.7415311855993945, 0.5860872354676911,
  0.4058451513773972, 0.20778495500789848, 0,
];
/** Their Kronrod weights. */
const KRONROD_WEIGHTS = [
  0.022935322010529224, 0.06309209262997856, 0.10479001032225019, 0.14065325971552592, 0.1690047266392679,
  0.19035057806478542, 0.20443294007529889, 0.20948214108472782,
];
/** The 7-point Gauss weights of the odd-numbered nodes above (1, 3, 5, 7). */
const GAUSS_WEIGHTS = [0.1294849661688697, 0.27970539148927664, 0.3818300505051189, 0.4179591836734694];
/** The integrand is followed down to e^−60 of its largest value on each side. */
const LOG_NEGLIGIBLE = -60;
/** Panels are halved until Kronrod and Gauss differ, in all, by at most this share of the integral. */
const QUADRATURE_TOLERANCE = 1e-14;
/** Panels at most (a log-concave integrand needs tens). */
const MAX_PANELS = 1024;

/**
 * ln P[large·X + small·Y > s] for 0 < small < large as an integral over Y (used by
 * {@link logWeightedGammaSf} where the mixture would be too long: the smaller weight far below the
 * larger). With y_end = s/small,
 *   P = Q(n, y_end) + ∫₀^y_end f(y) · Q(n, (s − small·y)/large) dy,
 * f the Gamma(n, 1) density: Y beyond y_end passes s alone, and below it X must make up the rest.
 * The integrand is log-concave (f is, and so is Q(n, ·) composed with a linear map), so it has one
 * peak, between y = n − 1 and (n − 1)/(1 − small/large) + 1 (the Gamma hazard is below 1), found by
 * bisection on the sign of its derivative; the range is followed out from there by doubling steps
 * until it falls below e^−60 of the peak's value (or ends),
 * and integrated by adaptive Gauss–Kronrod (7/15 points) until the two rules agree to 1e−14 of the
 * integral. Both parts are positive, so nothing cancels; the integrand is scaled by its value at
 * the peak, so a tail far below 1e−308 is integrated as well. Exported for tests, which compare it
 * with the mixture where both apply.
 */
export function integratedLogSf(n: number, small: number, large: number, s: number): number {
  const end = s / small;
  const logDensity = (y: number): number =>
    n === 1 ? -y : y > 0 ? logPrefactorPlusOne(n - 1, y) : Number.NEGATIVE_INFINITY;
  const logIntegrand = (y: number): number =>
    logDensity(y) + logGammaSf(n, Math.max(0, (s - small * y) / large));
  const step = Math.sqrt(n) + 1;
  // The peak: where the derivative (n − 1)/y − 1 + (small/large)·h(t) changes sign, h the Gamma(n)
  // hazard at t = (s − small·y)/large (increasing, below 1). The derivative decreases (the integrand is
  // log-concave): it is ≥ 0 up to n − 1, < 0 past (n − 1)/(1 − small/large), and < 0 everywhere at n = 1.
  const rising = (y: number): boolean => {
    const t = (s - small * y) / large;
    const hazard = t > 0 ? Math.exp(logDensity(t) - logGammaSf(n, t)) : 0;
    return (n - 1) / y - 1 + (small / large) * hazard > 0;
  };
  let below = n === 1 ? 0 : Math.min(n - 1, end);
  let above = n === 1 ? 0 : Math.min((n - 1) / (1 - small / large) + 1, end);
  if (above > below && rising(above)) below = above;
  // To a hundredth of the integrand's width (its peak value then within e^−0.0001 of the largest).
  while (above - below > 0.01 * step) {
    const middle = (below + above) / 2;
    if (rising(middle)) below = middle;
    else above = middle;
  }
  const peak = (below + above) / 2;
  const logPeak = logIntegrand(peak);
  // The range: out from the peak by doubling steps until the integrand is negligible or the range ends.
  let low = peak;
  for (let d = step; low > 0; d *= 2) {
    low = Math.max(0, peak - d);
    if (logIntegrand(low) < logPeak + LOG_NEGLIGIBLE) break;
  }
  let high = peak;
  for (let d = step; high < end; d *= 2) {
    high = Math.min(end, peak + d);
    if (logIntegrand(high) < logPeak + LOG_NEGLIGIBLE) break;
  }
  const scaled = (y: number): number => Math.exp(logIntegrand(y) - logPeak);
  const integral = adaptiveKronrod(scaled, low, high);
  const logTail = logGammaSf(n, end);
  const logBody = logPeak + Math.log(integral);
  const top = Math.max(logTail, logBody);
  return Math.min(0, top + Math.log1p(Math.exp(Math.min(logTail, logBody) - top)));
}

/** One 15-point Kronrod panel of f on [a, b], and its 7-point Gauss estimate (exported for tests). */
export function kronrodPanel(f: (x: number) => number, a: number, b: number): [number, number] {
  const centre = (a + b) / 2;
  const half = (b - a) / 2;
  const middle = f(centre);
  let kronrod = KRONROD_WEIGHTS[7]! * middle;
  let gauss = GAUSS_WEIGHTS[3]! * middle;
  for (let i = 0; i < 7; i++) {
    const offset = half * KRONROD_NODES[i]!;
    const pair = f(centre - offset) + f(centre + offset);
    kronrod += KRONROD_WEIGHTS[i]! * pair;
    if (i % 2 === 1) gauss += GAUSS_WEIGHTS[(i - 1) / 2]! * pair;
  }
  return [kronrod * half, gauss * half];
}

/**
 * ∫ f over [a, b] for f ≥ 0: the panel whose two rules differ most is halved until the differences add
 * up to at most 1e−14 of the integral (Kronrod's own error is far smaller than that difference).
 */
function adaptiveKronrod(f: (x: number) => number, a: number, b: number): number {
  if (!(b > a)) return 0;
  const panels: { left: number; right: number; value: number; error: number }[] = [];
  const add = (left: number, right: number): void => {
    const [kronrod, gauss] = kronrodPanel(f, left, right);
    panels.push({ left, right, value: kronrod, error: Math.abs(kronrod - gauss) });
  };
  add(a, b);
  for (;;) {
    let value = 0;
    let error = 0;
    let worst = 0;
    for (let i = 0; i < panels.length; i++) {
      value += panels[i]!.value;
      error += panels[i]!.error;
      if (panels[i]!.error > panels[worst]!.error) worst = i;
    }
    if (error <= QUADRATURE_TOLERANCE * value || panels.length >= MAX_PANELS) return value;
    const { left, right } = panels[worst]!;
    const middle = (left + right) / 2;
    panels.splice(worst, 1);
    add(left, middle);
    add(middle, right);
  }
}

/** Terms between exact recomputations of the weight and the Poisson term (see {@link mixtureLogSf}). */
const ANCHOR_EVERY = 256;
/** The weight and the tail are brought back to 1 before they leave 2^±400 (see {@link mixtureLogSf}). */
const RESCALE = 2 ** 400;

/** ln NB(k; n, p) = ln[n / (n + k) · P[Bin(n + k, p) = n]]: k failures before the n-th success. */
function logNegativeBinomialPmf(k: number, n: number, p: number): number {
  return k === 0 ? n * Math.log(p) : Math.log(n / (n + k)) + logBinomialPmf(n, n + k, p);
}

/**
 * {@link logWeightedGammaSf}'s mixture sum for weights 0 < small < large, from term `first` on (0: the
 * whole sum); exported for tests, which compare a skipped start with the whole sum.
 *
 * The terms are summed as doubles times a scale, not as logarithms: the weight NB(k), the tail
 * Q(2n + k, x) and the Poisson term e^−x x^m / m! each follow from the one before by a product or a
 * sum (a few nanoseconds a term, where a logarithmic sum takes an exponential and two logarithms).
 * NB(k) = weight · e^wScale, Q = tail · e^tScale, the Poisson term shares the tail's scale (they add),
 * and the sum has the product's. Every {@link ANCHOR_EVERY} terms, and before the weight or the tail
 * leaves 2^±400, the scales are set afresh: wScale to ln NB(k) from its closed form (so the rounding of
 * the products does not accumulate over thousands of terms), tScale to the tail's logarithm, the weight
 * and the tail to 1, the Poisson term from its closed form, and the sum converted to the new scale.
 * The sum stays finite: while the terms grow it is at most their number times the last, and once they
 * fall it returns before it could pass 2^1024 times the term. The scales stay near the logarithms of
 * the terms that count, so the result carries no rounding of a large logarithm that cancels (a tail of
 * ≈ 1 after weights of e^−500,000). The tail adds only positive numbers, and it and the sum are
 * compensated (Neumaier).
 */
export function mixtureLogSf(n: number, small: number, large: number, s: number, first: number): number {
  const x = s / small;
  const p = small / large;
  const q = 1 - p; // failure probability of the negative binomial
  let m = 2 * n + first;
  let wScale = logNegativeBinomialPmf(first, n, p);
  let tScale = logGammaSf(m, x);
  let weight = 1;
  let tail = 1;
  let tailCorrection = 0;
  let poisson = Math.exp(logPrefactorPlusOne(m, x) - tScale);
  let sum = 0;
  let correction = 0;
  let anchor = ANCHOR_EVERY;
  for (let k = first; k < first + MAX_ITERATIONS; k++) {
    const tailValue = tail + tailCorrection;
    const term = weight * tailValue;
    const next = sum + term;
    correction += sum >= term ? sum - next + term : term - next + sum;
    sum = next;
    // Q(m + 1, x) = Q(m, x) + e^−x x^m / m!
    const nextTail = tail + poisson;
    tailCorrection += tail >= poisson ? tail - nextTail + poisson : poisson - nextTail + tail;
    const nextValue = nextTail + tailCorrection;
    const step = (q * (n + k)) / (k + 1); // NB(k + 1) / NB(k)
    // The ratio of successive terms decreases in k: once below 1, everything after term k is at most
    // term · r / (1 − r).
    if (step * nextValue < tailValue) {
      const ratio = (step * nextValue) / tailValue;
      if ((term * ratio) / (1 - ratio) < TRUNCATION * (sum + correction)) {
        return Math.min(0, Math.log(sum + correction) + wScale + tScale);
      }
    }
    weight *= step;
    tail = nextTail;
    m += 1;
    poisson *= x / m;
    if (--anchor === 0 || !(weight < RESCALE && weight > 1 / RESCALE && tail < RESCALE)) {
      anchor = ANCHOR_EVERY;
      const nextWScale = logNegativeBinomialPmf(k + 1, n, p);
      const nextTScale = tScale + Math.log(tail + tailCorrection);
      const factor = Math.exp(wScale - nextWScale + (tScale - nextTScale));
      sum *= factor;
      correction *= factor;
      wScale = nextWScale;
      tScale = nextTScale;
      weight = 1;
      tail = 1;
      tailCorrection = 0;
      poisson = Math.exp(logPrefactorPlusOne(m, x) - tScale);
    }
  }
  throw new RangeError(`logWeightedGammaSf: no convergence for n = ${n}, s = ${s}`);
}

/** Mixture terms below which a sum always starts at k = 0 (too few to be worth skipping). */
const SKIP_FROM = 4096;
/** ln 2^−70: the share of the sum the terms skipped may hold at most. */
const LOG_SKIPPED = -70 * Math.LN2;

/**
 * Where {@link logWeightedGammaSf}'s mixture sum over K ~ NegativeBinomial(n, p) (failures before
 * the n-th success, success probability p) may start: 40 standard deviations below K's mean when
 * P[K < k₀] there is below 2^−70 (computed exactly), else 0. Exported for tests.
 */
export function firstTerm(n: number, p: number): number {
  const q = 1 - p;
  const start = Math.floor((n * q) / p - (40 * Math.sqrt(n * q)) / p);
  if (!(start >= SKIP_FROM)) return 0;
  // P[K ≤ k₀ − 1] = P[Bin(n + k₀ − 1, p) ≥ n]: the n-th success within the first n + k₀ − 1 trials.
  return logBinomialSf(n, n + start - 1, p) < LOG_SKIPPED ? start : 0;
}

/** Terms from {@link firstTerm} to the terms' peak beyond which {@link peakStart} searches for it. */
const PEAK_SEARCH_FROM = 1 << 16;

/**
 * Where {@link logWeightedGammaSf}'s mixture sum may start when its terms NB(k)·Q(2n + k, x) peak far
 * beyond `from` (a long, strongly marked text: the Gamma tail grows by about x/m a term until m nears
 * x, the weights shrink by at most q, so the terms rise until m ≈ q·x, tens of millions of terms in at a
 * corpus's n): the peak k* is found by bisection on the sign of ln T(k + 1) − ln T(k) (the terms are
 * log-concave: their ratio decreases in k), and the start is the first of k* − 1024, k* − 2048, … whose
 * terms before it are provably below 2^−70 of the peak's term: Σ_{j<k} T(j) ≤ T(k)/(r − 1), r = T(k)/T(k −
 * 1), since every ratio before k is at least r. Else, and when the peak is not that far, `from`.
 * Exported for tests.
 */
export function peakStart(n: number, p: number, x: number, from: number): number {
  if (!((1 - p) * x - 2 * n - from > PEAK_SEARCH_FROM)) return from;
  const logTerm = (k: number): number => logNegativeBinomialPmf(k, n, p) + logGammaSf(2 * n + k, x);
  const rising = (k: number): boolean => logTerm(k + 1) > logTerm(k);
  // Past m = 2x and k = 4n/p both ratios are below 1 (the weights' q(n + k)/(k + 1) ≤ q(1 + p/4)).
  let low = from;
  let high = Math.ceil(2 * x + (4 * n) / p);
  // (Past 2^52 the bisection's midpoints are no longer integers: such a sum is out of reach anyway.)
  if (!(high < 2 ** 52) || !rising(low) || rising(high)) return from;
  while (high - low > 1) {
    const middle = Math.floor((low + high) / 2);
    if (rising(middle)) low = middle;
    else high = middle;
  }
  const logPeak = logTerm(high);
  for (let back = 1024; high - back > from; back *= 2) {
    const k = high - back;
    const logK = logTerm(k);
    const logRatio = logK - logTerm(k - 1);
    if (logRatio > 0 && logK - Math.log(Math.expm1(logRatio)) < logPeak + LOG_SKIPPED) return k;
  }
  return from;
}

/** log10 P[wa·X + wb·Y > s], X, Y ~ Gamma(n, 1) independent. */
export function log10WeightedGammaSf(n: number, wa: number, wb: number, s: number): number {
  return logWeightedGammaSf(n, wa, wb, s) / LN10;
}

/**
 * A lower bound on {@link log10WeightedGammaSf}(n, wa, wb, s) that costs a few Gamma tails instead of
 * thousands: with L the larger weight on X and l the smaller on Y, for every c ≥ 0 the event
 * {X > (s − l·c) / L and Y ≥ c} implies wa·X + wb·Y > s, so P ≥ Q(n, (s − l·c)/L) · Q(n, c) (X and Y
 * independent); the best of c = 0 and c = n − k·√n, k = 1 … 4, is returned (c = 0: Q(n, s/L)). Within a
 * small factor of the tail where it matters (a document ranked among a scan's strongest).
 */
export function log10WeightedGammaSfLowerBound(n: number, wa: number, wb: number, s: number): number {
  assertWeightedArguments(n, wa, wb, s);
  if (s === 0) return 0;
  const large = Math.max(wa, wb);
  const small = Math.min(wa, wb);
  let best = logGammaSf(n, s / large);
  for (let k = 1; k <= 4; k++) {
    const c = n - k * Math.sqrt(n);
    if (!(c > 0)) break;
    const rest = s - small * c;
    const first = rest > 0 ? logGammaSf(n, rest / large) : 0;
    best = Math.max(best, first + logGammaSf(n, c));
  }
  return Math.min(0, best) / LN10;
}
