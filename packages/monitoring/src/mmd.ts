/**
 * A two-sample kernel test of an account's recent prompts against benign traffic: the unbiased
 * squared maximum mean discrepancy (Gretton et al. 2012, "A Kernel Two-Sample Test",
 * https://jmlr.org/papers/v13/gretton12a.html)
 *
 *   MMD²_u(X, Y) = Σ_{i≠j} k(x_i, x_j)/(n(n−1)) + Σ_{i≠j} k(y_i, y_j)/(m(m−1)) − 2 Σ_{i,j} k(x_i, y_j)/(nm)
 *
 * with a Gaussian kernel on L2-normalised binary hashed word uni/bigram vectors,
 * k(x, y) = exp(−‖x − y‖²/(2σ²)) = exp(−(1 − cos(x, y))/σ²), σ² by the median heuristic on benign
 * prompts. Benign traffic has several modes (a templated bot, a writing assistant, …); a window is
 * compared with each benign reference window and the statistic is the smallest MMD²_u: traffic
 * unlike every benign mode scores high, a second support bot does not.
 *
 * The threshold is a split-conformal quantile of the statistic on benign calibration windows only
 * (Vovk et al. 2005; Angelopoulos and Bates 2021, https://arxiv.org/abs/2107.07511): for a new benign
 * window exchangeable with them, P(statistic > threshold) ≤ α. The achieved rate on held-out benign
 * windows is measured and returned.
 */
import { createRandom } from '@tracemark/core';
import { median } from 'simple-statistics';
import { cosineSimilarity, hashedFeatures } from './prompt-features.ts';

export const MMD_SCHEME = 'tracemark-mmd-nearest-v1';

export interface MmdOptions {
  /** Prompts per window (the last ones of each window); default 32. */
  readonly windowSize?: number;
  /** Reference windows kept (bounds test cost: windowSize² kernel evaluations per window); default 32. */
  readonly maxReferenceWindows?: number;
  /** Seed of the shuffle that splits the windows into reference, calibration and held-out; default 0. */
  readonly seed?: number;
}

/** A calibrated test; plain data (JSON-serialisable). */
export interface MmdCalibration {
  readonly scheme: typeof MMD_SCHEME;
  readonly windowSize: number;
  /** Kernel bandwidth σ² (median of 1 − cos over benign prompt pairs). */
  readonly bandwidth: number;
  /** Benign reference windows: per prompt, its sorted hashed features. */
  readonly referenceWindows: readonly (readonly (readonly number[])[])[];
  /** Per reference window, its within-window term Σ_{i≠j} k/(m(m−1)). */
  readonly referenceSelfTerms: readonly number[];
  /** Flag when the statistic exceeds this. */
  readonly threshold: number;
  /** Median statistic of the benign calibration windows (the scale of "how far past the threshold"). */
  readonly calibrationMedian: number;
  readonly targetFalseFlagRate: number;
  /** Share of held-out benign windows above the threshold. */
  readonly achievedFalseFlagRate: number;
  readonly calibrationWindows: number;
  readonly heldOutWindows: number;
}

/** A window of prompts, as the monitor stores them (sorted hashed feature sets). */
export type FeatureWindow = readonly Uint32Array[];

function kernel(a: Uint32Array, b: Uint32Array, bandwidth: number): number {
  return Math.exp(-(1 - cosineSimilarity(a, b)) / bandwidth);
}

function selfTerm(window: FeatureWindow, bandwidth: number): number {
  const n = window.length;
  let sum = 0;
  for (let i = 0; i < n; i++)
    for (let j = i + 1; j < n; j++) sum += kernel(window[i]!, window[j]!, bandwidth);
  return (2 * sum) / (n * (n - 1));
}

function crossTerm(x: FeatureWindow, y: FeatureWindow, bandwidth: number): number {
  let sum = 0;
  for (const a of x) for (const b of y) sum += kernel(a, b, bandwidth);
  return sum / (x.length * y.length);
}

/** MMD²_u of two windows (each ≥ 2 prompts). */
export function mmdSquared(x: FeatureWindow, y: FeatureWindow, bandwidth: number): number {
  if (x.length < 2 || y.length < 2) throw new RangeError('mmdSquared: each window needs at least 2 prompts');
  if (!(bandwidth > 0))
    throw new RangeError(`bandwidth: expected a positive number, got ${String(bandwidth)}`);
  return selfTerm(x, bandwidth) + selfTerm(y, bandwidth) - 2 * crossTerm(x, y, bandwidth);
}

interface PreparedReference {
  readonly windows: readonly FeatureWindow[];
  readonly selfTerms: readonly number[];
  readonly bandwidth: number;
}

const prepared = new WeakMap<MmdCalibration, PreparedReference>();

function prepare(calibration: MmdCalibration): PreparedReference {
  let reference = prepared.get(calibration);
  if (reference === undefined) {
    reference = {
      windows: calibration.referenceWindows.map((window) =>
        window.map((features) => Uint32Array.from(features)),
      ),
      selfTerms: calibration.referenceSelfTerms,
      bandwidth: calibration.bandwidth,
    };
    prepared.set(calibration, reference);
  }
  return reference;
}

function nearestStatistic(window: FeatureWindow, reference: PreparedReference): number {
  const own = selfTerm(window, reference.bandwidth);
  let best = Number.POSITIVE_INFINITY;
  reference.windows.forEach((y, r) => {
    const value = own + reference.selfTerms[r]! - 2 * crossTerm(window, y, reference.bandwidth);
    if (value < best) best = value;
  });
  return best;
}

/** The test statistic of a window: min over benign reference windows of MMD²_u. */
export function mmdStatistic(window: FeatureWindow, calibration: MmdCalibration): number {
  if (window.length < 2) throw new RangeError('window: expected at least 2 prompts');
  return nearestStatistic(window, prepare(calibration));
}

/** A prompt's text, or its sorted hashed features as the monitor stores them (its fingerprint's `features`). */
export type MmdPrompt = string | Uint32Array;

function toFeatureWindow(prompts: readonly MmdPrompt[], windowSize: number, index: number): FeatureWindow {
  if (!Array.isArray(prompts) || prompts.length < windowSize) {
    throw new RangeError(`benignWindows[${index}]: expected at least ${windowSize} prompts`);
  }
  return prompts
    .slice(prompts.length - windowSize)
    .map((prompt) => (typeof prompt === 'string' ? hashedFeatures(prompt) : prompt));
}

/**
 * Calibrates the test on benign traffic only. The windows are shuffled (seeded); the first
 * min(maxReferenceWindows, ⌊windows/3⌋) are the reference, the rest are dealt alternately to the
 * calibration and held-out sets. The threshold is the ⌈(c + 1)(1 − α)⌉-th
 * smallest calibration statistic (c calibration windows), so c must be at least 1/α − 1. Windows
 * should come from distinct accounts or time ranges: a held-out window that overlaps a reference
 * window understates the false-flag rate.
 */
export function calibrateMmd(
  benignWindows: readonly (readonly MmdPrompt[])[],
  targetFalseFlagRate: number,
  options: MmdOptions = {},
): MmdCalibration {
  const { windowSize = 32, maxReferenceWindows = 32, seed = 0 } = options;
  if (!Number.isSafeInteger(windowSize) || windowSize < 4 || windowSize > 1024) {
    throw new RangeError(`options.windowSize: expected an integer in [4, 1024], got ${String(windowSize)}`);
  }
  if (!Number.isSafeInteger(maxReferenceWindows) || maxReferenceWindows < 1) {
    throw new RangeError(
      `options.maxReferenceWindows: expected a positive integer, got ${String(maxReferenceWindows)}`,
    );
  }
  if (!(targetFalseFlagRate > 0 && targetFalseFlagRate < 1)) {
    throw new RangeError(
      `targetFalseFlagRate: expected a number in (0, 1), got ${String(targetFalseFlagRate)}`,
    );
  }
  const windows = benignWindows.map((prompts, index) => toFeatureWindow(prompts, windowSize, index));
  const order = windows.map((_, i) => i);
  const random = createRandom(seed);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(random.nextFloat() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const pool = order.map((index) => windows[index]!);
  const distances: number[] = [];
  const sample = pool.slice(0, 16).flat();
  for (let i = 0; i < sample.length; i++) {
    for (let j = i + 1; j < sample.length; j += 7)
      distances.push(1 - cosineSimilarity(sample[i]!, sample[j]!));
  }
  const bandwidth = Math.max(distances.length > 0 ? median(distances) : 1, 1e-3);
  // A random (seeded) reference keeps calibration and held-out windows exchangeable with new benign
  // windows; a benign mode missing from the reference raises the threshold (conservative), never
  // the false-flag rate.
  const referenceCount = Math.min(maxReferenceWindows, Math.floor(pool.length / 3));
  const reference = pool.slice(0, referenceCount);
  const remaining = pool.slice(referenceCount);
  const calibration = remaining.filter((_, i) => i % 2 === 0);
  const heldOut = remaining.filter((_, i) => i % 2 === 1);
  const rank = Math.ceil((calibration.length + 1) * (1 - targetFalseFlagRate));
  if (reference.length < 1 || rank > calibration.length || heldOut.length < 1) {
    throw new RangeError(
      `benignWindows: ${windows.length} windows are too few for targetFalseFlagRate ${targetFalseFlagRate} ` +
        `(need ${Math.ceil(1 / targetFalseFlagRate) - 1} calibration windows, as many held out, and references)`,
    );
  }
  const selfTerms = reference.map((window) => selfTerm(window, bandwidth));
  const preparedReference: PreparedReference = { windows: reference, selfTerms, bandwidth };
  const calibrationStatistics = calibration
    .map((w) => nearestStatistic(w, preparedReference))
    .sort((a, b) => a - b);
  const threshold = calibrationStatistics[rank - 1]!;
  const heldOutStatistics = heldOut.map((w) => nearestStatistic(w, preparedReference));
  const exceed = heldOutStatistics.filter((value) => value > threshold).length;
  const result: MmdCalibration = {
    scheme: MMD_SCHEME,
    windowSize,
    bandwidth,
    referenceWindows: reference.map((window) => window.map((features) => Array.from(features))),
    referenceSelfTerms: selfTerms,
    threshold,
    calibrationMedian: median(calibrationStatistics),
    targetFalseFlagRate,
    achievedFalseFlagRate: exceed / heldOut.length,
    calibrationWindows: calibration.length,
    heldOutWindows: heldOut.length,
  };
  prepared.set(result, preparedReference);
  return result;
}

const isFiniteNumber = (value: unknown): value is number =>
  typeof value === 'number' && Number.isFinite(value);

/**
 * A calibration read back from JSON (a file `calibrateMmd`'s result was written to), checked field by
 * field; a RangeError names the first field that is missing or out of range.
 */
export function parseMmdCalibration(value: unknown): MmdCalibration {
  const fail = (field: string, expected: string): never => {
    throw new RangeError(`MMD calibration: ${field}: expected ${expected}`);
  };
  if (value === null || typeof value !== 'object' || Array.isArray(value)) fail('(top level)', 'an object');
  const c = value as Record<string, unknown>;
  if (c.scheme !== MMD_SCHEME) fail('scheme', `"${MMD_SCHEME}"`);
  const windowSize = c.windowSize;
  if (!Number.isSafeInteger(windowSize) || (windowSize as number) < 4 || (windowSize as number) > 1024)
    fail('windowSize', 'an integer in [4, 1024]');
  if (!isFiniteNumber(c.bandwidth) || c.bandwidth <= 0) fail('bandwidth', 'a positive number');
  const windows = c.referenceWindows;
  if (!Array.isArray(windows) || windows.length === 0) fail('referenceWindows', 'a non-empty array');
  (windows as unknown[]).forEach((window, w) => {
    if (!Array.isArray(window) || window.length < 2)
      fail(`referenceWindows[${w}]`, 'an array of at least 2 prompts');
    (window as unknown[]).forEach((features, i) => {
      const ok =
        Array.isArray(features) &&
        features.every(
          (x, j) => Number.isInteger(x) && x >= 0 && x <= 0xffffffff && (j === 0 || x > features[j - 1]),
        );
      if (!ok) fail(`referenceWindows[${w}][${i}]`, 'sorted distinct 32-bit feature hashes');
    });
  });
  const selfTerms = c.referenceSelfTerms;
  if (
    !Array.isArray(selfTerms) ||
    selfTerms.length !== (windows as unknown[]).length ||
    !selfTerms.every(isFiniteNumber)
  )
    fail('referenceSelfTerms', 'one finite number per reference window');
  for (const field of ['threshold', 'calibrationMedian'] as const)
    if (!isFiniteNumber(c[field])) fail(field, 'a finite number');
  for (const field of ['targetFalseFlagRate', 'achievedFalseFlagRate'] as const) {
    const rate = c[field];
    if (!isFiniteNumber(rate) || rate < 0 || rate > 1) fail(field, 'a number in [0, 1]');
  }
  for (const field of ['calibrationWindows', 'heldOutWindows'] as const)
    if (!Number.isSafeInteger(c[field]) || (c[field] as number) < 1) fail(field, 'a positive integer');
  return {
    scheme: MMD_SCHEME,
    windowSize: windowSize as number,
    bandwidth: c.bandwidth as number,
    referenceWindows: windows as number[][][],
    referenceSelfTerms: selfTerms as number[],
    threshold: c.threshold as number,
    calibrationMedian: c.calibrationMedian as number,
    targetFalseFlagRate: c.targetFalseFlagRate as number,
    achievedFalseFlagRate: c.achievedFalseFlagRate as number,
    calibrationWindows: c.calibrationWindows as number,
    heldOutWindows: c.heldOutWindows as number,
  };
}
