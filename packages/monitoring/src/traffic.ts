/**
 * Traffic of one principal (an account, or a cluster of accounts pooled): time buckets of counters and
 * a bounded list of recent prompt fingerprints; the window features computed from them and the
 * detector scores (PRADA, SEAT-style, calibrated MMD, elicitation, timing, volume).
 */
import { mean, sampleStandardDeviation } from 'simple-statistics';
import { type MmdCalibration, mmdStatistic } from './mmd.ts';
import {
  cosineSimilarity,
  estimatedJaccard,
  type PromptFingerprint,
  sharesLshBand,
} from './prompt-features.ts';
import { shapiroWilk } from './shapiro-wilk.ts';

/** One observed prompt, as kept (no text). */
export interface PromptEntry extends PromptFingerprint {
  readonly at: number;
  readonly promptTokens: number;
  readonly completionTokens: number;
  /** Cosine distance to the nearest earlier prompt in the reservoir; NaN for the first. */
  readonly minDistance: number;
  /** Whether an earlier reservoir prompt is a near-duplicate (LSH candidate with estimated J ≥ similarity). */
  readonly nearDuplicate: boolean;
}

/** Counters of one time bucket [index × bucketMs, (index + 1) × bucketMs). */
export interface TrafficBucket {
  readonly index: number;
  requests: number;
  promptTokens: number;
  completionTokens: number;
  reasoning: number;
  enumeration: number;
  nearDuplicates: number;
}

/**
 * Compares a new prompt with the reservoir (O(reservoir × sketch size)): the PRADA distance and the
 * SEAT-style near-duplicate flag.
 */
export function compareWithReservoir(
  fingerprint: PromptFingerprint,
  reservoir: readonly PromptFingerprint[],
  nearDuplicateSimilarity: number,
): { minDistance: number; nearDuplicate: boolean } {
  let minDistance = Number.NaN;
  let nearDuplicate = false;
  for (const earlier of reservoir) {
    const distance = 1 - cosineSimilarity(fingerprint.features, earlier.features);
    if (!(distance >= minDistance)) minDistance = distance;
    if (
      !nearDuplicate &&
      sharesLshBand(fingerprint.signature, earlier.signature) &&
      estimatedJaccard(fingerprint.signature, earlier.signature) >= nearDuplicateSimilarity
    ) {
      nearDuplicate = true;
    }
  }
  return { minDistance, nearDuplicate };
}

/** Features of one principal over one window. Shares are null where there is no traffic. */
export interface WindowFeatures {
  readonly window: string;
  readonly from: number;
  readonly to: number;
  readonly requests: number;
  readonly requestsPerHour: number;
  readonly promptTokens: number;
  readonly completionTokens: number;
  /** completion tokens / prompt tokens. */
  readonly outputPromptRatio: number | null;
  readonly reasoningShare: number | null;
  readonly enumerationShare: number | null;
  /** Prompts of the window whose fingerprints are kept (the most recent ones). */
  readonly sampledPrompts: number;
  readonly distinctFeatures: number;
  /** distinct hashed n-gram features / all feature occurrences: 1 when no prompt repeats another's n-grams. */
  readonly featureCoverage: number | null;
  /** Shannon entropy (bits) of the hashed features folded into 1024 bins (at most 10). */
  readonly featureEntropyBits: number | null;
  /** 1 − mean pairwise MinHash Jaccard of the sampled prompts. */
  readonly promptDiversity: number | null;
  /** 1 − distinct skeletons / prompts. */
  readonly templateReuse: number | null;
  /** Share of the most used skeleton. */
  readonly topSkeletonShare: number | null;
  readonly nearDuplicateShare: number | null;
  /** Coefficient of variation of inter-arrival times (low: machine-regular). */
  readonly interArrivalCv: number | null;
  /** Shapiro–Wilk W of the PRADA minimum distances, with its sample size. */
  readonly pradaW: number | null;
  readonly pradaSamples: number;
  /** MMD test statistic of the last windowSize prompts (null without calibration or enough prompts). */
  readonly mmd: number | null;
}

function share(count: number, total: number): number | null {
  return total > 0 ? count / total : null;
}

/** Bucket counters summed over [from, to]. */
export function sumBuckets(
  buckets: readonly TrafficBucket[],
  bucketMs: number,
  from: number,
  to: number,
): Omit<TrafficBucket, 'index'> {
  const sum = {
    requests: 0,
    promptTokens: 0,
    completionTokens: 0,
    reasoning: 0,
    enumeration: 0,
    nearDuplicates: 0,
  };
  for (const bucket of buckets) {
    const start = bucket.index * bucketMs;
    if (start + bucketMs <= from || start > to) continue;
    sum.requests += bucket.requests;
    sum.promptTokens += bucket.promptTokens;
    sum.completionTokens += bucket.completionTokens;
    sum.reasoning += bucket.reasoning;
    sum.enumeration += bucket.enumeration;
    sum.nearDuplicates += bucket.nearDuplicates;
  }
  return sum;
}

export interface FeatureSettings {
  readonly bucketMs: number;
  readonly pradaMinSamples: number;
  readonly mmd: MmdCalibration | undefined;
}

/** The features of a principal over [at − windowMs, at]. */
export function windowFeatures(
  name: string,
  windowMs: number,
  at: number,
  buckets: readonly TrafficBucket[],
  entries: readonly PromptEntry[],
  settings: FeatureSettings,
): WindowFeatures {
  const from = at - windowMs;
  const counts = sumBuckets(buckets, settings.bucketMs, from, at);
  const inWindow = entries.filter((entry) => entry.at > from && entry.at <= at);
  const n = inWindow.length;

  const distinct = new Set<number>();
  const bins = new Float64Array(1024);
  let occurrences = 0;
  const skeletons = new Map<number, number>();
  let nearDuplicates = 0;
  for (const entry of inWindow) {
    for (const feature of entry.features) {
      distinct.add(feature);
      bins[feature & 1023]!++;
    }
    occurrences += entry.features.length;
    skeletons.set(entry.skeleton, (skeletons.get(entry.skeleton) ?? 0) + 1);
    if (entry.nearDuplicate) nearDuplicates++;
  }
  let entropy = 0;
  for (const count of bins) if (count > 0) entropy -= (count / occurrences) * Math.log2(count / occurrences);

  let jaccardSum = 0;
  let pairs = 0;
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      jaccardSum += estimatedJaccard(inWindow[i]!.signature, inWindow[j]!.signature);
      pairs++;
    }
  }

  const times = inWindow.map((entry) => entry.at).sort((a, b) => a - b);
  const gaps: number[] = [];
  for (let i = 1; i < times.length; i++) gaps.push(times[i]! - times[i - 1]!);
  let interArrivalCv: number | null = null;
  if (gaps.length >= 2) {
    const average = mean(gaps);
    if (average > 0) interArrivalCv = sampleStandardDeviation(gaps) / average;
  }

  const distances = inWindow.map((entry) => entry.minDistance).filter((value) => Number.isFinite(value));
  const prada = distances.length >= Math.max(3, settings.pradaMinSamples) ? shapiroWilk(distances).w : null;

  let mmd: number | null = null;
  if (settings.mmd !== undefined && n >= settings.mmd.windowSize) {
    mmd = mmdStatistic(
      inWindow.slice(n - settings.mmd.windowSize).map((entry) => entry.features),
      settings.mmd,
    );
  }

  let topSkeleton = 0;
  for (const count of skeletons.values()) topSkeleton = Math.max(topSkeleton, count);
  return {
    window: name,
    from,
    to: at,
    requests: counts.requests,
    requestsPerHour: counts.requests / (windowMs / 3_600_000),
    promptTokens: counts.promptTokens,
    completionTokens: counts.completionTokens,
    outputPromptRatio: counts.promptTokens > 0 ? counts.completionTokens / counts.promptTokens : null,
    reasoningShare: share(counts.reasoning, counts.requests),
    enumerationShare: share(counts.enumeration, counts.requests),
    sampledPrompts: n,
    distinctFeatures: distinct.size,
    featureCoverage: share(distinct.size, occurrences),
    featureEntropyBits: occurrences > 0 ? entropy : null,
    promptDiversity: pairs > 0 ? 1 - jaccardSum / pairs : null,
    templateReuse: n > 0 ? 1 - skeletons.size / n : null,
    topSkeletonShare: share(topSkeleton, n),
    nearDuplicateShare: share(nearDuplicates, n),
    interArrivalCv,
    pradaW: prada,
    pradaSamples: distances.length,
    mmd,
  };
}

/** Thresholds of the per-principal detectors. */
export interface DetectorSettings {
  /** PRADA: flag when W falls below this (Juuti et al. 2019 used δ ≈ 0.9). */
  readonly pradaThreshold: number;
  /** SEAT-style: flag when this share of prompts has a near-duplicate earlier prompt. */
  readonly nearDuplicateShare: number;
  /** Chain-of-thought or enumeration elicitation share. */
  readonly elicitationShare: number;
  /** Machine-regular timing: inter-arrival CV at or below this. */
  readonly maxInterArrivalCv: number;
  /** Output amplification: completion/prompt token ratio at or above this. */
  readonly outputPromptRatio: number;
  /** Requests in the window before the share-based detectors speak. */
  readonly minRequests: number;
  /** Per-principal limits over the scoring window (OWASP AISVS C11.5); absent: no volume detector. */
  readonly requestLimit: number | undefined;
  readonly completionTokenLimit: number | undefined;
}

export type DetectorCode =
  | 'mmd-shift'
  | 'volume-limit'
  | 'completion-token-limit'
  | 'prada-non-normal'
  | 'seat-near-duplicates'
  | 'reasoning-elicitation'
  | 'machine-timing'
  | 'output-amplification';

/** One detector's verdict: strength 0.5 at its threshold, toward 1 beyond. */
export interface DetectorResult {
  readonly code: DetectorCode;
  /** Primary detectors flag alone; supporting ones flag only three together. */
  readonly primary: boolean;
  readonly value: number;
  readonly threshold: number;
  readonly strength: number;
  readonly message: string;
}

/** r / (1 + r): 0 at r = 0, 0.5 at the threshold (r = 1), toward 1 beyond. */
function strengthOf(ratio: number): number {
  return ratio > 0 && Number.isFinite(ratio)
    ? ratio / (1 + ratio)
    : ratio === Number.POSITIVE_INFINITY
      ? 1
      : 0;
}

function round(value: number, digits = 4): number {
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
}

/** Runs the detectors on a principal's scoring-window features. */
export function runDetectors(
  features: WindowFeatures,
  settings: DetectorSettings,
  mmd: MmdCalibration | undefined,
): DetectorResult[] {
  const results: DetectorResult[] = [];
  const enough = features.requests >= settings.minRequests;
  if (mmd !== undefined && features.mmd !== null) {
    // Strength 0 at the benign median, 0.5 at the threshold, toward 1 beyond.
    const spread = mmd.threshold - mmd.calibrationMedian;
    const ratio =
      spread > 0
        ? Math.max(0, features.mmd - mmd.calibrationMedian) / spread
        : features.mmd > mmd.threshold
          ? Number.POSITIVE_INFINITY
          : 0;
    results.push({
      code: 'mmd-shift',
      primary: true,
      value: features.mmd,
      threshold: mmd.threshold,
      strength: strengthOf(ratio),
      message: `prompt distribution unlike benign traffic: MMD² ${round(features.mmd)} vs threshold ${round(mmd.threshold)} (held-out benign false-flag rate ${round(mmd.achievedFalseFlagRate)})`,
    });
  }
  if (settings.requestLimit !== undefined) {
    results.push({
      code: 'volume-limit',
      primary: true,
      value: features.requests,
      threshold: settings.requestLimit,
      strength: strengthOf(features.requests / settings.requestLimit),
      message: `${features.requests} requests in ${features.window} (limit ${settings.requestLimit})`,
    });
  }
  if (settings.completionTokenLimit !== undefined) {
    results.push({
      code: 'completion-token-limit',
      primary: true,
      value: features.completionTokens,
      threshold: settings.completionTokenLimit,
      strength: strengthOf(features.completionTokens / settings.completionTokenLimit),
      message: `${features.completionTokens} completion tokens in ${features.window} (limit ${settings.completionTokenLimit})`,
    });
  }
  if (features.pradaW !== null) {
    results.push({
      code: 'prada-non-normal',
      primary: false,
      value: features.pradaW,
      threshold: settings.pradaThreshold,
      strength: strengthOf((1 - features.pradaW) / (1 - settings.pradaThreshold)),
      message: `distances between successive prompts are not normal: Shapiro–Wilk W ${round(features.pradaW)} (n = ${features.pradaSamples}) vs ${settings.pradaThreshold}`,
    });
  }
  if (enough && features.nearDuplicateShare !== null) {
    results.push({
      code: 'seat-near-duplicates',
      primary: false,
      value: features.nearDuplicateShare,
      threshold: settings.nearDuplicateShare,
      strength: strengthOf(features.nearDuplicateShare / settings.nearDuplicateShare),
      message: `${round(features.nearDuplicateShare * 100, 1)}% of prompts near-duplicate an earlier one`,
    });
  }
  const elicitation = Math.max(features.reasoningShare ?? 0, features.enumerationShare ?? 0);
  if (enough) {
    results.push({
      code: 'reasoning-elicitation',
      primary: false,
      value: elicitation,
      threshold: settings.elicitationShare,
      strength: strengthOf(elicitation / settings.elicitationShare),
      message: `chain-of-thought ${round((features.reasoningShare ?? 0) * 100, 1)}%, exhaustive enumeration ${round((features.enumerationShare ?? 0) * 100, 1)}% of requests`,
    });
  }
  if (enough && features.interArrivalCv !== null) {
    results.push({
      code: 'machine-timing',
      primary: false,
      value: features.interArrivalCv,
      threshold: settings.maxInterArrivalCv,
      strength: strengthOf(settings.maxInterArrivalCv / Math.max(features.interArrivalCv, 1e-9)),
      message: `inter-arrival coefficient of variation ${round(features.interArrivalCv)} (≤ ${settings.maxInterArrivalCv}: scheduled)`,
    });
  }
  if (enough && features.outputPromptRatio !== null) {
    results.push({
      code: 'output-amplification',
      primary: false,
      value: features.outputPromptRatio,
      threshold: settings.outputPromptRatio,
      strength: strengthOf(features.outputPromptRatio / settings.outputPromptRatio),
      message: `${round(features.outputPromptRatio, 2)} completion tokens per prompt token`,
    });
  }
  return results;
}

/**
 * The combined score in [0, 1]: the strongest primary detector, or the third-strongest supporting one
 * (three supporting detectors past their thresholds together count as one primary). Flag at 0.5.
 */
export function combineScore(results: readonly DetectorResult[]): number {
  let primary = 0;
  const supporting: number[] = [];
  for (const result of results) {
    if (result.primary) primary = Math.max(primary, result.strength);
    else supporting.push(result.strength);
  }
  supporting.sort((a, b) => b - a);
  return Math.max(primary, supporting[2] ?? 0);
}
