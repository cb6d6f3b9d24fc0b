/**
 * `scanCorpus`: is a suspect corpus (or text sampled from a suspect model) radioactive, i.e. does it
 * carry the statistical trace of our watermark? Design: packages/extraction/README.md.
 */
import {
  biasedGreenFraction,
  holmAdjustLog10,
  isGumbelScheme,
  log10BinomialCdf,
  log10BinomialSf,
  type WatermarkKey,
  wilsonInterval,
  zScore,
} from '@tracemark/core';
import {
  evaluateKey,
  type FakeKeyCounts,
  type FakeKeyJob,
  type FakeKeyScheme,
  fakeKeyTrials,
  runFakeKeyJob,
} from './evaluate.ts';
import {
  type CandidateOrigins,
  type EvaluationTape,
  EvidenceTape,
  type TapeCounts,
  type TapeMemory,
} from './evidence-tape.ts';
import { DEFAULT_FAKE_KEY_SEED, fakeKeyUniform } from './fake-keys.ts';
import { IssuedWindowSet } from './issued.ts';
import { bestWindows, topDocuments } from './passages.ts';
import { kolmogorovSmirnovUniform } from './uniformity.ts';

export type ScanVerdict = 'radioactive' | 'not_radioactive' | 'insufficient';

/** One document of the suspect corpus: completion token ids and, optionally, the prompt's. */
export interface ScanDocument {
  readonly tokens: ArrayLike<number>;
  readonly prompt?: ArrayLike<number> | undefined;
  /** Where it came from (file and line), for the report. */
  readonly source: string;
}

/** Runs fake-key jobs, e.g. on worker threads; the default runs them one after another here. */
export type FakeKeyRunner = (jobs: readonly FakeKeyJob[]) => Promise<readonly FakeKeyCounts[]>;

/**
 * One set of fake keys to score: the trial values of the tape ({@link fakeKeyTrials}) and then the
 * `count` fake keys on them ({@link splitFakeKeyJobs}, {@link runFakeKeyJob}). Structured-cloneable.
 */
export interface CalibrationRequest {
  readonly tape: EvaluationTape;
  readonly scheme: FakeKeyScheme;
  readonly tokenizer: string;
  /** τ, the green threshold of the key calibrated. */
  readonly threshold: number;
  readonly seed: string;
  readonly count: number;
  readonly accelerate: boolean;
}

/**
 * Scores a set of fake keys, trial values included, e.g. on another thread while this one scores the
 * true keys; the counts by fake key index, in any grouping.
 */
export type Calibrator = (request: CalibrationRequest) => Promise<readonly FakeKeyCounts[]>;

export const DEFAULT_FAKE_KEYS = 100;
/** Batches a set of fake keys is split into ({@link splitFakeKeyJobs}): enough for a runner to balance threads. */
export const FAKE_KEY_JOB_PARTS = 8;
/** Fewer fake keys than this give no verdict: the uniformity test would have no power. */
export const MIN_FAKE_KEYS_FOR_VERDICT = 20;
export const DEFAULT_SCAN_ALPHA = 1e-6;
export const DEFAULT_SCAN_MISS_RATE = 1e-2;
export const DEFAULT_MINIMUM_DOSE = 0.05;
export const DEFAULT_CALIBRATION_THRESHOLD = 1e-3;
/** `not_radioactive` also needs no evidence at all: a Holm-adjusted p-value above this. */
export const NO_EVIDENCE_LEVEL = 0.01;

export interface ScanOptions {
  readonly documents: Iterable<ScanDocument> | AsyncIterable<ScanDocument>;
  /** True keys (several keys or epochs are corrected for by Holm's procedure). One tokenizer. */
  readonly keys: readonly WatermarkKey[];
  /** The tokenizer's special token ids (never scored, and they break windows). */
  readonly specialTokenIds: Iterable<number>;
  /** Fake keys for calibration (default 100). */
  readonly fakeKeys?: number;
  /** Public label the fake keys derive from (default {@link DEFAULT_FAKE_KEY_SEED}). */
  readonly fakeKeySeed?: string;
  /** Supervised filter: score only positions whose window occurs in issued outputs. */
  readonly issuedWindows?: IssuedWindowSet;
  /** Green fraction of our issued outputs per key id, for the dose estimate. */
  readonly issuedGreenFractions?: ReadonlyMap<string, number>;
  /** α: the Holm-adjusted p-value at or below which the corpus is `radioactive` (default 1e-6). */
  readonly alpha?: number;
  /** β: miss rate of the `not_radioactive` test (default 1e-2). */
  readonly missRate?: number;
  /** ρ_min: `not_radioactive` rules out this dose or more (default 0.05). */
  readonly minimumDose?: number;
  /** The fake keys' p-values fail the uniformity test below this KS p-value (default 1e-3). */
  readonly calibrationThreshold?: number;
  /** Documents reported with the strongest evidence (default 5). */
  readonly topDocuments?: number;
  /** Passages reported (default 3) and their shortest length in scored tokens (default 32). */
  readonly passages?: number;
  readonly minPassage?: number;
  readonly runFakeKeyJobs?: FakeKeyRunner;
  /**
   * Scores each set of fake keys, trial values included (instead of computing them here and handing
   * the fake keys to `runFakeKeyJobs`): what another thread can do while this one scores the true keys.
   */
  readonly calibrate?: Calibrator;
  /**
   * A guess at the number of completion tokens (e.g. from the input's size), to size the reading
   * pass's tables up front; only speed depends on it.
   */
  readonly expectedTokens?: number;
  /**
   * Build the tapes' arrays that trial values are computed from in SharedArrayBuffers (see
   * EvidenceTape), for a `calibrate` that hands them to another thread without a copy. Only speed
   * depends on it.
   */
  readonly sharedMemory?: boolean;
  /**
   * With `sharedMemory`: given, for each tape that numbers its windows at the end (h ≥ 2), the memory
   * that numbering and the kernels will write, before the first document; the tape then leaves its page
   * faults to whoever receives it (another thread, idle when the documents end: EvidenceTape `handOff`,
   * {@link TapeMemory}). Only speed depends on it.
   */
  readonly onTapeMemory?: (memory: readonly TapeMemory[]) => void;
  /** Use the WebAssembly kernel (default true); false runs the scalar reference path. */
  readonly accelerate?: boolean;
  /**
   * Ids of keys (two or more, among `keys`, with one γ) to test also as one pool: the accounts' sub-keys
   * of per-account keys (core `deriveAccountKey`). See {@link PoolScan}.
   */
  readonly pooledKeyIds?: readonly string[];
}

export interface Calibration {
  readonly fakeKeys: number;
  readonly seed: string;
  /**
   * The true key's place among its own p-value and the fake keys': 1 + the number of fake keys whose
   * p-value is at most the true key's, from 1 (smaller than every fake key's) to fakeKeys + 1 (smaller
   * than none). Ties count against the true key, so with nothing scored (every p-value 1) it is
   * fakeKeys + 1: no evidence, not a ranking.
   */
  readonly rank: number;
  /** rank / (fakeKeys + 1); 1 with nothing scored. */
  readonly empiricalPValue: number;
  /** Kolmogorov–Smirnov test of the fake keys' (randomized) p-values against U(0, 1). */
  readonly ksStatistic: number;
  readonly ksPValue: number;
  /** False when the test fails (the verdict is withheld); null without enough fake keys. */
  readonly uniform: boolean | null;
  /** The smallest fake-key log10 p-value. */
  readonly minFakeLog10P: number;
}

export interface Dose {
  /** ρ ≈ (ĝ − γ)/(ĝ_issued − γ), within [0, 1]: a dose is a share of the scanned text. */
  readonly estimate: number;
  /** From the 95% Wilson interval of ĝ, within [0, 1]. */
  readonly interval: readonly [number, number];
  readonly issuedGreenFraction: number;
}

export interface Location {
  readonly document: number;
  readonly source: string;
  /** Token index in the document's completion. */
  readonly token: number;
}

export interface PassageReport {
  readonly start: Location;
  readonly end: Location;
  readonly numScored: number;
  readonly numGreen: number;
  readonly log10P: number;
  readonly log10PCorrected: number;
}

export interface DocumentReport {
  readonly document: number;
  readonly source: string;
  readonly numScored: number;
  readonly numGreen: number;
  readonly log10P: number;
  readonly log10PCorrected: number;
}

export interface KeyScan {
  readonly keyId: string;
  readonly scheme: string;
  readonly contextWidth: number;
  readonly gamma: number;
  readonly tape: TapeCounts;
  readonly numScored: number;
  readonly numGreen: number;
  /** k / T; 0 when nothing was scored. */
  readonly greenFraction: number;
  /**
   * ĝ − γ, with a 95% Wilson interval. With nothing scored there is no estimate: the effect is 0 (as z
   * is, and p is 1) and the interval is empty.
   */
  readonly effect: number;
  readonly effectInterval: readonly [number, number] | readonly [];
  readonly z: number;
  /** Exact log10 P[Bin(T, γ) ≥ k]. */
  readonly log10P: number;
  /** Holm-adjusted across the true keys. */
  readonly log10PAdjusted: number;
  readonly calibration: Calibration;
  /** Null unless the issued green fraction is known and above γ, and something was scored. */
  readonly dose: Dose | null;
  /**
   * The excess green fraction a dose of 1 means: ĝ_issued − γ when known, else the scheme's design
   * excess γ_δ − γ (spec §5.2).
   */
  readonly fullDoseEffect: number;
  /**
   * Doses above this are ruled out at miss rate β: P[Bin(T, γ + ρ·e) ≤ k] ≤ β. Within [0, 1]; 1 rules
   * out no dose (nothing scored, or too little).
   */
  readonly doseUpperBound: number;
  readonly verdict: ScanVerdict;
  readonly reason: string;
  readonly topDocuments: readonly DocumentReport[];
  readonly passages: readonly PassageReport[];
  readonly windowsSearched: number;
}

/**
 * One test over a pool of keys: the accounts' sub-keys, when each account's outputs carry a key of its
 * own. A model trained on many accounts' outputs carries each sub-key's mark diluted by the number of
 * accounts, too weakly for any one key's test, but the excess greens add up over the keys. Statistic: the
 * green counts summed over the pool's keys, K = Σ k_j of T = Σ T_j scored pairs. Null: under each key,
 * a text independent of that key has each deduplicated pair green with probability γ independently
 * (spec §6), and the keys are independent PRF instances, so K ~ Bin(T, γ) exactly: log10 P[Bin(T, γ) ≥ K].
 * The pool is one more test in the Holm family (the keys and the pool). Calibration: the pool's p-value
 * is ranked among the fake keys' (single keys of the pool's layout, p-values on the same scale), and the
 * fake keys' uniformity must hold for every layout in the pool.
 */
export interface PoolScan
  extends Pick<
    KeyScan,
    'gamma' | 'numScored' | 'numGreen' | 'greenFraction' | 'effect' | 'effectInterval' | 'z' | 'reason'
  > {
  readonly keyIds: readonly string[];
  /** Exact log10 P[Bin(T, γ) ≥ K] over the pooled counts. */
  readonly log10P: number;
  /** Holm-adjusted across the keys and the pool. */
  readonly log10PAdjusted: number;
  readonly calibration: Pick<Calibration, 'fakeKeys' | 'rank' | 'empiricalPValue' | 'uniform' | 'ksPValue'>;
  /** `not_radioactive` here only says there is no evidence: no dose is ruled out for a pool. */
  readonly verdict: ScanVerdict;
}

export interface ScanReport {
  readonly verdict: ScanVerdict;
  readonly reason: string;
  /** The radioactive key with the strongest evidence. */
  readonly matchedKeyId: string | null;
  readonly alpha: number;
  readonly missRate: number;
  readonly minimumDose: number;
  readonly calibrationThreshold: number;
  readonly supervised: boolean;
  readonly issued: { readonly numOutputs: number; readonly numTokens: number } | null;
  readonly numDocuments: number;
  readonly numTokens: number;
  readonly numPromptTokens: number;
  readonly fakeKeys: { readonly count: number; readonly seed: string };
  readonly keys: readonly KeyScan[];
  /** The pooled test of `pooledKeyIds`; null without a pool. */
  readonly pool: PoolScan | null;
}

function checkUnit(name: string, value: number, open = true): number {
  if (typeof value !== 'number' || !(open ? value > 0 && value < 1 : value > 0 && value <= 1)) {
    throw new RangeError(
      `${name}: expected a number ${open ? 'strictly between 0 and 1' : 'in (0, 1]'}, got ${String(value)}`,
    );
  }
  return value;
}

function checkCount(name: string, value: number, max: number): number {
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw new RangeError(`${name}: expected an integer from 0 to ${max}, got ${String(value)}`);
  }
  return value;
}

function checkTokens(tokens: ArrayLike<number>, name: string): void {
  if (tokens === null || typeof tokens !== 'object' || typeof tokens.length !== 'number') {
    throw new TypeError(`${name}: expected an array of token ids`);
  }
  if (tokens instanceof Uint32Array) return;
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    if (typeof t !== 'number' || !Number.isInteger(t) || t < 0 || t > 0xffffffff) {
      throw new RangeError(`${name}[${i}]: ${String(t)} is not a token id`);
    }
  }
}

/**
 * The fake keys' p-values, in index order: exact log10 P[Bin(T, γ) ≥ k] (for the rank), and the
 * randomized p-value P[X > k] + u·P[X = k] with u from {@link fakeKeyUniform}, which is exactly
 * U(0, 1) under the null even though T is finite and the binomial discrete (for the uniformity test).
 */
export function fakeKeyPValues(
  results: readonly FakeKeyCounts[],
  gamma: number,
  seed: string,
): { log10P: number[]; randomized: number[] } {
  const log10P: number[] = [];
  const randomized: number[] = [];
  for (const result of [...results].sort((a, b) => a.first - b.first)) {
    result.numGreen.forEach((green, j) => {
      const scored = result.numScored[j]!;
      const upper = log10BinomialSf(green, scored, gamma);
      const lower = green + 1 > scored ? Number.NEGATIVE_INFINITY : log10BinomialSf(green + 1, scored, gamma);
      log10P.push(upper);
      const u = fakeKeyUniform(result.first + j, seed);
      randomized.push(Math.min(1, 10 ** lower + u * (10 ** upper - 10 ** lower)));
    });
  }
  return { log10P, randomized };
}

/** The default runner: every job here, one after another. */
export const runFakeKeyJobsHere: FakeKeyRunner = (jobs) => Promise.resolve(jobs.map(runFakeKeyJob));

/**
 * Splits `count` fake keys into about `parts` jobs of consecutive indices, an even number each (two
 * fake keys share a mask).
 */
export function splitFakeKeyJobs(
  job: Omit<FakeKeyJob, 'first' | 'count'>,
  count: number,
  parts: number,
): FakeKeyJob[] {
  const jobs: FakeKeyJob[] = [];
  const size = 2 * Math.max(1, Math.ceil(count / Math.max(1, 2 * parts)));
  for (let first = 0; first < count; first += size)
    jobs.push({ ...job, first, count: Math.min(size, count - first) });
  return jobs;
}

/**
 * The one-sided upper confidence bound on the green fraction at miss rate β: the smallest g with
 * P[Bin(T, g) ≤ k] ≤ β (Clopper–Pearson), found by bisection.
 */
function greenUpperBound(numGreen: number, numScored: number, log10Beta: number): number {
  if (numScored === 0 || numGreen >= numScored) return 1;
  let lo = 0;
  let hi = 1;
  for (let i = 0; i < 80; i++) {
    const mid = (lo + hi) / 2;
    if (log10BinomialCdf(numGreen, numScored, mid) <= log10Beta) hi = mid;
    else lo = mid;
  }
  return hi;
}

/**
 * The smallest dose the data rule out at miss rate β: (the upper bound on ĝ, minus γ) / e, where e is
 * the excess green fraction a dose of 1 means. A dose is a share of the scanned text, so the bound is
 * kept within [0, 1]: a bound past 1 (nothing scored, or a few pairs, as a corpus of one repeated word
 * gives) rules out no possible dose and is reported as 1, never as a dose above 100%.
 */
export function doseUpperBoundOf(
  numGreen: number,
  numScored: number,
  gamma: number,
  fullDoseEffect: number,
  log10Beta: number,
): number {
  const bound = (greenUpperBound(numGreen, numScored, log10Beta) - gamma) / fullDoseEffect;
  return Math.min(1, Math.max(0, bound));
}

/**
 * Whether a dose bound rules out `minimumDose` or more. A bound of 1 may stand for any bound past 1, so
 * it rules out nothing, not even a minimum dose of 100%.
 */
export function rulesOutDose(doseUpperBound: number, minimumDose: number): boolean {
  return doseUpperBound < 1 && doseUpperBound <= minimumDose;
}

/** A dose bound in words, for reasons: which doses the data rule out. */
export function ruledOutDoses(doseUpperBound: number): string {
  return doseUpperBound >= 1
    ? 'no dose within 0–100% is ruled out'
    : `only doses above ${scanPercent(doseUpperBound)} are ruled out`;
}

/** A share as a percentage with 3 significant digits, for reasons (+ 0 turns −0 into 0: never "-0%"). */
export function scanPercent(x: number): string {
  return `${Number((100 * x).toPrecision(3)) + 0}%`;
}

/**
 * Throws a TypeError for a tracemark Gumbel key (`gumbel`, `dual_gumbel`): it has no green list and
 * its γ and threshold are NaN, so a green count would be a silent p = 1. Its scan is
 * `scanCorpusAnyKeys`, which tests its scores with their exact Gamma tail (gumbel-scan.ts).
 */
export function refuseGumbelKey(key: WatermarkKey, where: string): void {
  if (key !== null && typeof key === 'object' && isGumbelScheme(key.scheme)) {
    throw new TypeError(
      `${where}: key ${key.keyId} uses the ${key.scheme.name} scheme, which has no green list; scan it with scanCorpusAnyKeys (exact Gamma tail of its scores)`,
    );
  }
}

interface Layout {
  readonly id: string;
  readonly tape: EvidenceTape;
}

/** Scans a corpus for radioactivity under one or more keys. */
export async function scanCorpus(options: ScanOptions): Promise<ScanReport> {
  const keys = options.keys;
  if (!Array.isArray(keys) || keys.length === 0) throw new RangeError('keys: expected at least one key');
  for (const key of keys) refuseGumbelKey(key, 'scanCorpus');
  const tokenizers = new Set(keys.map((key) => key.tokenizer));
  if (tokenizers.size > 1) {
    throw new RangeError(
      `keys: bound to different tokenizers (${[...tokenizers].join(', ')}); scan one tokenizer at a time`,
    );
  }
  const fakeKeyCount = checkCount('fakeKeys', options.fakeKeys ?? DEFAULT_FAKE_KEYS, 100_000);
  const seed = options.fakeKeySeed ?? DEFAULT_FAKE_KEY_SEED;
  if (typeof seed !== 'string' || seed.length === 0)
    throw new TypeError('fakeKeySeed: expected a non-empty string');
  const alpha = checkUnit('alpha', options.alpha ?? DEFAULT_SCAN_ALPHA);
  const missRate = checkUnit('missRate', options.missRate ?? DEFAULT_SCAN_MISS_RATE);
  const minimumDose = checkUnit('minimumDose', options.minimumDose ?? DEFAULT_MINIMUM_DOSE, false);
  const calibrationThreshold = checkUnit(
    'calibrationThreshold',
    options.calibrationThreshold ?? DEFAULT_CALIBRATION_THRESHOLD,
  );
  const topDocumentCount = checkCount('topDocuments', options.topDocuments ?? 5, 1000);
  const passageCount = checkCount('passages', options.passages ?? 3, 100);
  const minPassage = options.minPassage ?? 32;
  if (!Number.isInteger(minPassage) || minPassage < 1) {
    throw new RangeError(`minPassage: expected a positive integer, got ${String(minPassage)}`);
  }
  const issued = options.issuedWindows;
  if (issued !== undefined && !IssuedWindowSet.isIssuedWindowSet(issued)) {
    throw new TypeError(
      'issuedWindows: expected an IssuedWindowSet built from issued outputs (the supervised filter selects windows only; a filter on (window, token) pairs cannot be expressed)',
    );
  }
  const accelerate = options.accelerate ?? true;
  const expectedTokens = options.expectedTokens ?? 0;
  if (typeof expectedTokens !== 'number' || !(expectedTokens >= 0)) {
    throw new RangeError(`expectedTokens: expected a non-negative number, got ${String(expectedTokens)}`);
  }
  const special = new Set<number>(options.specialTokenIds);
  const runner = options.runFakeKeyJobs ?? runFakeKeyJobsHere;

  // One tape per seeding layout: keys with the same scheme name and h share it.
  const layouts = new Map<string, Layout>();
  const layoutOf = (key: WatermarkKey): Layout => {
    const id = `${key.scheme.name}/${key.scheme.contextWidth}`;
    let layout = layouts.get(id);
    if (layout === undefined) {
      layout = {
        id,
        tape: new EvidenceTape(
          { scheme: key.scheme.name, contextWidth: key.scheme.contextWidth },
          special,
          issued ?? null,
          expectedTokens,
          options.sharedMemory === true,
        ),
      };
      layouts.set(id, layout);
      if (options.onTapeMemory !== undefined && options.sharedMemory === true) {
        const memory = layout.tape.handOff();
        if (memory.length > 0) options.onTapeMemory(memory);
      }
    }
    return layout;
  };
  keys.forEach(layoutOf);

  const sources: string[] = [];
  for await (const document of options.documents) {
    if (document === null || typeof document !== 'object') throw new TypeError('documents: expected objects');
    checkTokens(document.tokens, `documents[${sources.length}].tokens`);
    if (document.prompt !== undefined) checkTokens(document.prompt, `documents[${sources.length}].prompt`);
    sources.push(String(document.source));
    for (const layout of layouts.values()) layout.tape.add(document.tokens, document.prompt);
  }

  const finished = new Map<string, { tape: EvaluationTape; origins: CandidateOrigins; counts: TapeCounts }>();
  for (const layout of layouts.values()) finished.set(layout.id, layout.tape.finish());
  const finishedOf = (key: WatermarkKey) => finished.get(layoutOf(key).id)!;

  // Fake keys: one set per (layout, τ), shared by the true keys that have them. The trial values are
  // computed here once; the runner then scores the fake keys on them while the true keys are scored.
  const calibrations = new Map<string, { results?: FakeKeyCounts[] }>();
  const calibrationId = (key: WatermarkKey): string =>
    `${key.scheme.name}/${key.scheme.contextWidth}/${key.scheme.threshold}`;
  const allJobs: FakeKeyJob[] = [];
  const jobOwner: string[] = [];
  const calibrated: Promise<{ id: string; results: readonly FakeKeyCounts[] }>[] = [];
  for (const key of keys) {
    const id = calibrationId(key);
    if (calibrations.has(id)) continue;
    calibrations.set(id, {});
    if (fakeKeyCount === 0) continue;
    const request: CalibrationRequest = {
      tape: finishedOf(key).tape,
      scheme: {
        name: key.scheme.name,
        contextWidth: key.scheme.contextWidth,
        gamma: key.scheme.gamma,
        delta: key.scheme.delta,
      },
      tokenizer: key.tokenizer,
      threshold: key.scheme.threshold,
      seed,
      count: fakeKeyCount,
      accelerate,
    };
    if (options.calibrate !== undefined) {
      calibrated.push(options.calibrate(request).then((results) => ({ id, results })));
      continue;
    }
    const trials = fakeKeyTrials(request.tape, request.scheme, request.tokenizer, seed, accelerate);
    const job = { trials, threshold: key.scheme.threshold, seed, accelerate };
    for (const part of splitFakeKeyJobs(job, fakeKeyCount, FAKE_KEY_JOB_PARTS)) {
      allJobs.push(part);
      jobOwner.push(id);
    }
  }
  const pending = allJobs.length > 0 ? runner(allJobs) : Promise.resolve([]);
  const calibratedSets = Promise.all(calibrated);
  // Awaited below, after the true keys: a failure meanwhile is not unhandled.
  calibratedSets.catch(() => undefined);
  // The true keys meanwhile (the runner may use other threads).
  const evaluations = keys.map((key) => evaluateKey(finishedOf(key).tape, key, accelerate));
  // The true keys' tapes and evidence too, while the fake keys are scored.
  const unconfirmed = keys.map((key, index) => {
    const { origins, counts } = finishedOf(key);
    const { numScored, numGreen, status } = evaluations[index]!;
    // The scored tape of this key, in order: where the signal is. Where every candidate is scored (as
    // LeftHash's are), the places are the tape's own (read only), not a copy of 8 bytes a candidate.
    const everyOne = numScored === status.length;
    const bits = new Uint8Array(numScored);
    const document = everyOne ? origins.document : new Uint32Array(numScored);
    const position = everyOne ? origins.position : new Uint32Array(numScored);
    let at = 0;
    for (let i = 0; i < status.length; i++) {
      if (status[i] === 0) continue;
      bits[at] = status[i] === 2 ? 1 : 0;
      if (!everyOne) {
        document[at] = origins.document[i]!;
        position[at] = origins.position[i]!;
      }
      at++;
    }
    const tally = { counts, numScored, numGreen, bits, document, position };
    const evidence = keyEvidence(tally, key.scheme.gammaEffective, sources, {
      topDocuments: topDocumentCount,
      passages: passageCount,
      minPassage,
    });
    return { ...tally, evidence };
  });
  const results = await pending;
  if (results.length !== allJobs.length) throw new Error('runFakeKeyJobs: expected one result per job');
  results.forEach((result, i) => {
    const calibration = calibrations.get(jobOwner[i]!)!;
    (calibration.results ??= []).push(result);
  });
  for (const { id, results } of await calibratedSets) calibrations.get(id)!.results = [...results];
  const tallies = keys.map(
    (key, index): KeyTally => ({
      ...unconfirmed[index]!,
      fakeKeys: calibrations.get(calibrationId(key))!.results ?? [],
    }),
  );
  return assembleScanReport({
    keys,
    tallies,
    sources,
    fakeKeyCount,
    seed,
    alpha,
    missRate,
    minimumDose,
    calibrationThreshold,
    topDocuments: topDocumentCount,
    passages: passageCount,
    minPassage,
    issued: issued === undefined ? null : { numOutputs: issued.numOutputs, numTokens: issued.numTokens },
    ...(options.issuedGreenFractions === undefined
      ? {}
      : { issuedGreenFractions: options.issuedGreenFractions }),
    ...(options.pooledKeyIds === undefined ? {} : { pooledKeyIds: options.pooledKeyIds }),
  });
}

/** One true key's counts and scored tape, however they were computed (one pass, or merged partitions). */
export interface KeyTally {
  /** The reading pass's counts of the key's layout. */
  readonly counts: TapeCounts;
  readonly numScored: number;
  readonly numGreen: number;
  /** The scored candidates in tape order: green (1) or red (0), and where each first occurred. */
  readonly bits: Uint8Array;
  readonly document: Uint32Array;
  readonly position: Uint32Array;
  /** The counts of the fake keys calibrating this key (by fake key index, in any grouping). */
  readonly fakeKeys: readonly FakeKeyCounts[];
  /** {@link keyEvidence} of this tally, when it was found already (while the fake keys were scored). */
  readonly evidence?: KeyEvidence;
}

/** Where a key's signal is: the documents and passages with the strongest evidence. */
export interface KeyEvidence {
  readonly topDocuments: readonly DocumentReport[];
  readonly passages: readonly PassageReport[];
  readonly windowsSearched: number;
}

/** A key's {@link KeyEvidence} from its scored tape; it does not depend on the fake keys. */
export function keyEvidence(
  tally: Pick<KeyTally, 'bits' | 'document' | 'position'>,
  gamma: number,
  sources: readonly string[],
  settings: { readonly topDocuments: number; readonly passages: number; readonly minPassage: number },
): KeyEvidence {
  const { bits, document: documentOf, position: positionOf } = tally;
  const located = (tapeIndex: number): Location => ({
    document: documentOf[tapeIndex]!,
    source: sources[documentOf[tapeIndex]!]!,
    token: positionOf[tapeIndex]!,
  });
  const windows = bestWindows(bits, gamma, settings.minPassage, settings.passages);
  return {
    topDocuments: topDocuments(documentOf, bits, sources.length, gamma, settings.topDocuments).map((d) => ({
      ...d,
      source: sources[d.document]!,
    })),
    passages: windows.windows.map((w) => ({
      start: located(w.tapeStart),
      end: located(w.tapeStart + w.length - 1),
      numScored: w.length,
      numGreen: w.numGreen,
      log10P: w.log10P,
      log10PCorrected: w.log10PCorrected,
    })),
    windowsSearched: windows.windowsSearched,
  };
}

/** What {@link assembleScanReport} needs: the tallies, in the keys' order, and the validated settings. */
export interface ScanTally {
  readonly keys: readonly WatermarkKey[];
  readonly tallies: readonly KeyTally[];
  /** Each document's source, by document index. */
  readonly sources: readonly string[];
  readonly fakeKeyCount: number;
  readonly seed: string;
  readonly alpha: number;
  readonly missRate: number;
  readonly minimumDose: number;
  readonly calibrationThreshold: number;
  readonly topDocuments: number;
  readonly passages: number;
  readonly minPassage: number;
  readonly issued: { readonly numOutputs: number; readonly numTokens: number } | null;
  readonly issuedGreenFractions?: ReadonlyMap<string, number>;
  /** Keys also tested as one pool ({@link PoolScan}). */
  readonly pooledKeyIds?: readonly string[];
}

/**
 * The verdict of one test (a key, or the pool) where the counts decide it: nothing scored, calibration
 * missing or failed, significant (radioactive when it beats every fake key), or some evidence short of α.
 * Null when there is no evidence: what follows depends on the test (a key rules doses out).
 */
function calibratedEvidence(t: {
  readonly numScored: number;
  readonly uniform: boolean | null;
  readonly fakeKeys: number;
  readonly ksPValue: number;
  readonly calibrationThreshold: number;
  readonly log10PAdjusted: number;
  readonly alpha: number;
  readonly rank: number;
  /** How the reasons name the test: when it beats the fake keys, and when fake keys match it. */
  readonly subject: readonly [string, string];
}): { verdict: ScanVerdict; reason: string } | null {
  const p = `p = 10^${t.log10PAdjusted.toFixed(2)}`;
  if (t.numScored === 0) {
    return { verdict: 'insufficient', reason: 'no evidence: 0 scored tokens (no position could be scored)' };
  }
  if (t.uniform === null) {
    return {
      verdict: 'insufficient',
      reason: `calibration needs at least ${MIN_FAKE_KEYS_FOR_VERDICT} fake keys (got ${t.fakeKeys})`,
    };
  }
  if (!t.uniform) {
    return {
      verdict: 'insufficient',
      reason: `the fake keys' p-values are not uniform (KS p = ${t.ksPValue.toPrecision(3)} < ${t.calibrationThreshold}): the test is not calibrated on this corpus, or it carries a watermark under a fake key; verdict withheld`,
    };
  }
  if (t.log10PAdjusted <= Math.log10(t.alpha)) {
    return t.rank === 1
      ? {
          verdict: 'radioactive',
          reason: `${p} (Holm-adjusted) ≤ α = ${t.alpha}, and ${t.subject[0]} beats all ${t.fakeKeys} fake keys`,
        }
      : {
          verdict: 'insufficient',
          reason: `p ≤ α, but ${t.rank - 1} fake key(s) score as strongly as ${t.subject[1]}; verdict withheld`,
        };
  }
  if (t.log10PAdjusted <= Math.log10(NO_EVIDENCE_LEVEL)) {
    return {
      verdict: 'insufficient',
      reason: `some evidence (${p}, Holm-adjusted) that does not reach α = ${t.alpha}; more scored tokens are needed`,
    };
  }
  return null;
}

/**
 * The green counts of a test and what follows from them: fraction, effect with its interval, z. With
 * nothing scored nothing is estimated: effect 0 and z 0 (p is 1), no interval, rather than ĝ = 0/0
 * read as 0, an effect of −γ.
 */
function greenSummary(numGreen: number, numScored: number, gamma: number) {
  if (numScored === 0) {
    return {
      numScored,
      numGreen,
      greenFraction: 0,
      effect: 0,
      effectInterval: [] as const,
      z: 0,
    };
  }
  const greenFraction = numGreen / numScored;
  const [low, high] = wilsonInterval(numGreen, numScored);
  return {
    numScored,
    numGreen,
    greenFraction,
    effect: greenFraction - gamma,
    effectInterval: [low - gamma, high - gamma] as const,
    z: zScore(numGreen, numScored, gamma),
  };
}

/** The pool's members, in the keys' order, after checking that they can be pooled. */
function poolMembers(keys: readonly WatermarkKey[], ids: readonly string[] | undefined): number[] | null {
  if (ids === undefined) return null;
  const wanted = new Set(ids);
  if (wanted.size < 2 || wanted.size !== ids.length) {
    throw new RangeError('pooledKeyIds: expected two or more distinct key ids');
  }
  const members = keys.flatMap((key, index) => (wanted.has(key.keyId) ? [index] : []));
  if (members.length !== wanted.size) {
    throw new RangeError('pooledKeyIds: every pooled key must be one of the keys scanned');
  }
  const gammas = new Set(members.map((index) => keys[index]!.scheme.gammaEffective));
  if (gammas.size > 1) {
    throw new RangeError('pooledKeyIds: the pooled keys must share one γ (their green counts are summed)');
  }
  return members;
}

/**
 * The report from the keys' tallies: p-values, calibration, dose, verdicts, top documents and
 * passages. {@link scanCorpus} calls it, and so does a scan whose tallies were merged from
 * partitions, so that both give the same report.
 */
export function assembleScanReport(input: ScanTally): ScanReport {
  const { keys, sources, seed, alpha, missRate, minimumDose, calibrationThreshold, minPassage } = input;
  const topDocumentCount = input.topDocuments;
  const passageCount = input.passages;
  const fakeKeyCount = input.fakeKeyCount;
  const issued = input.issued;
  const options = { issuedGreenFractions: input.issuedGreenFractions };
  const log10Beta = Math.log10(missRate);
  const partial = keys.map((key, index) => {
    const tally = input.tallies[index]!;
    const gamma = key.scheme.gammaEffective;
    const { numScored, numGreen } = tally;
    const log10P = log10BinomialSf(numGreen, numScored, gamma);
    // Fake keys: p-values for the rank, randomized p-values for the uniformity test.
    const { log10P: fakeLog10P, randomized } = fakeKeyPValues(tally.fakeKeys, gamma, seed);
    const rank = 1 + fakeLog10P.filter((value) => value <= log10P).length;
    const ks = kolmogorovSmirnovUniform(randomized);
    return {
      key,
      tally,
      counts: tally.counts,
      gamma,
      numScored,
      numGreen,
      log10P,
      fakeLog10P,
      rank,
      ks,
    };
  });
  const members = poolMembers(keys, input.pooledKeyIds);
  const pooled =
    members === null
      ? null
      : (() => {
          const gamma = partial[members[0]!]!.gamma;
          let numScored = 0;
          let numGreen = 0;
          for (const index of members) {
            numScored += partial[index]!.numScored;
            numGreen += partial[index]!.numGreen;
          }
          return { gamma, numScored, numGreen, log10P: log10BinomialSf(numGreen, numScored, gamma) };
        })();
  const adjusted = holmAdjustLog10([
    ...partial.map((p) => p.log10P),
    ...(pooled === null ? [] : [pooled.log10P]),
  ]);

  const keyScans = partial.map((p, index): KeyScan => {
    const { key, gamma, numScored, numGreen, log10P, fakeLog10P, rank, ks } = p;
    const log10PAdjusted = adjusted[index]!;
    const green = greenSummary(numGreen, numScored, gamma);
    const issuedGreen = options.issuedGreenFractions?.get(key.keyId);
    const issuedExcess = issuedGreen === undefined ? Number.NaN : issuedGreen - gamma;
    const fullDoseEffect = issuedExcess > 0 ? issuedExcess : biasedGreenFraction(key.scheme) - gamma;
    // A dose is a share of the scanned text: the estimate and its interval are kept within [0, 1] (the
    // estimate restricted to the possible doses; the interval still holds the true dose as often).
    const share = (x: number): number => Math.min(1, Math.max(0, x));
    let dose: Dose | null = null;
    if (issuedExcess > 0 && green.effectInterval.length === 2) {
      const [low, high] = green.effectInterval;
      dose = {
        estimate: share(green.effect / issuedExcess),
        interval: [share(low / issuedExcess), share(high / issuedExcess)],
        issuedGreenFraction: issuedGreen!,
      };
    }
    const doseUpperBound = doseUpperBoundOf(numGreen, numScored, gamma, fullDoseEffect, log10Beta);
    const uniform = fakeLog10P.length >= MIN_FAKE_KEYS_FOR_VERDICT ? ks.pValue >= calibrationThreshold : null;
    const calibration: Calibration = {
      fakeKeys: fakeLog10P.length,
      seed,
      rank,
      empiricalPValue: rank / (fakeLog10P.length + 1),
      ksStatistic: ks.statistic,
      ksPValue: ks.pValue,
      uniform,
      minFakeLog10P: fakeLog10P.reduce((min, value) => Math.min(min, value), 0),
    };
    const evidence = calibratedEvidence({
      numScored,
      uniform,
      fakeKeys: fakeLog10P.length,
      ksPValue: ks.pValue,
      calibrationThreshold,
      log10PAdjusted,
      alpha,
      rank,
      subject: ['the key', 'the true key'],
    });
    let { verdict, reason } = evidence ?? { verdict: 'insufficient' as ScanVerdict, reason: '' };
    if (evidence === null) {
      if (rulesOutDose(doseUpperBound, minimumDose)) {
        verdict = 'not_radioactive';
        reason = `no evidence (p = 10^${log10PAdjusted.toFixed(2)}), and the data rule out a dose of ${scanPercent(minimumDose)} or more (they rule out doses above ${scanPercent(doseUpperBound)} at miss rate ${missRate}); a dose is the share of the scanned text that carries our watermark's full bias, so samples of a model trained on a smaller share of our outputs can pass (a smaller minimum dose, with more scored tokens, rules out less)`;
      } else {
        reason = `not significant, and too few scored tokens to rule out a dose of ${scanPercent(minimumDose)} (${ruledOutDoses(doseUpperBound)})`;
      }
    }

    const found =
      p.tally.evidence ??
      keyEvidence(p.tally, gamma, sources, {
        topDocuments: topDocumentCount,
        passages: passageCount,
        minPassage,
      });
    return {
      keyId: key.keyId,
      scheme: key.scheme.name,
      contextWidth: key.scheme.contextWidth,
      gamma,
      tape: p.counts,
      ...green,
      log10P,
      log10PAdjusted,
      calibration,
      dose,
      fullDoseEffect,
      doseUpperBound,
      verdict,
      reason,
      topDocuments: found.topDocuments,
      passages: found.passages,
      windowsSearched: found.windowsSearched,
    };
  });

  let pool: PoolScan | null = null;
  if (pooled !== null && members !== null) {
    const { gamma, numScored, numGreen, log10P } = pooled;
    const log10PAdjusted = adjusted[partial.length]!;
    // One fake-key set per layout: the pool ranks against the fake keys of its members' layouts.
    const fakeSets = new Map<string, (typeof partial)[number]>();
    for (const index of members) {
      const p = partial[index]!;
      fakeSets.set(`${p.key.scheme.name}/${p.key.scheme.contextWidth}/${p.key.scheme.threshold}`, p);
    }
    const fakeLog10P = [...fakeSets.values()].flatMap((p) => p.fakeLog10P);
    const rank = 1 + fakeLog10P.filter((value) => value <= log10P).length;
    const uniform = [...fakeSets.values()].every((p) => p.fakeLog10P.length >= MIN_FAKE_KEYS_FOR_VERDICT)
      ? [...fakeSets.values()].every((p) => p.ks.pValue >= calibrationThreshold)
      : null;
    const ksPValue = Math.min(...[...fakeSets.values()].map((p) => p.ks.pValue));
    const evidence = calibratedEvidence({
      numScored,
      uniform,
      fakeKeys: fakeLog10P.length,
      ksPValue,
      calibrationThreshold,
      log10PAdjusted,
      alpha,
      rank,
      subject: ['the pool', 'the pool'],
    });
    const { verdict, reason } = evidence ?? {
      verdict: 'not_radioactive' as ScanVerdict,
      reason: `no evidence (p = 10^${log10PAdjusted.toFixed(2)}, Holm-adjusted)`,
    };
    pool = {
      keyIds: members.map((index) => keys[index]!.keyId),
      gamma,
      ...greenSummary(numGreen, numScored, gamma),
      log10P,
      log10PAdjusted,
      calibration: {
        fakeKeys: fakeLog10P.length,
        rank,
        empiricalPValue: rank / (fakeLog10P.length + 1),
        uniform,
        ksPValue,
      },
      verdict,
      reason: `${members.length} pooled keys: ${reason}`,
    };
  }

  let matched: KeyScan | null = null;
  for (const scan of keyScans) {
    if (scan.verdict !== 'radioactive') continue;
    if (
      matched === null ||
      scan.log10PAdjusted < matched.log10PAdjusted ||
      (scan.log10PAdjusted === matched.log10PAdjusted && scan.log10P < matched.log10P)
    ) {
      matched = scan;
    }
  }
  let verdict: ScanVerdict;
  let reason: string;
  const poolFirst =
    pool?.verdict === 'radioactive' && (matched === null || pool.log10PAdjusted < matched.log10PAdjusted);
  if (poolFirst) {
    verdict = 'radioactive';
    reason = pool!.reason;
    matched = null;
  } else if (matched !== null) {
    verdict = 'radioactive';
    reason = `key ${matched.keyId}: ${matched.reason}`;
  } else if (
    keyScans.every((scan) => scan.verdict === 'not_radioactive') &&
    (pool === null || pool.verdict === 'not_radioactive')
  ) {
    verdict = 'not_radioactive';
    reason =
      keyScans.length === 1 ? keyScans[0]!.reason : `every key: ${keyScans.map((s) => s.reason).join('; ')}`;
  } else {
    verdict = 'insufficient';
    const first = keyScans.find((scan) => scan.verdict === 'insufficient');
    reason =
      first === undefined
        ? pool!.reason
        : keyScans.length === 1
          ? first.reason
          : `key ${first.keyId}: ${first.reason}`;
  }
  const anyCounts = input.tallies[0]!.counts;
  return {
    verdict,
    reason,
    matchedKeyId: matched?.keyId ?? null,
    alpha,
    missRate,
    minimumDose,
    calibrationThreshold,
    supervised: issued !== null,
    issued,
    numDocuments: sources.length,
    numTokens: anyCounts.numTokens,
    numPromptTokens: anyCounts.numPromptTokens,
    fakeKeys: { count: fakeKeyCount, seed },
    keys: keyScans,
    pool,
  };
}
