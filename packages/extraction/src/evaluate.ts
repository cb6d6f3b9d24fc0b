/**
 * Scoring keys on the evidence tape: the true keys exactly (spec §4.3 and §6, with every prompt's
 * pairs excluded), the fake keys by counts only.
 */
import {
  createScheme,
  createWatermarker,
  DedupTape,
  type SchemeName,
  type WatermarkKey,
} from '@tracemark/core';
import { type EvaluationTape, groupByWindow } from './evidence-tape.ts';
import { deriveFakeKeys } from './fake-keys.ts';
import { countLeftHash, countSelfHash, kernelKeyBytes, selfHashKeyBytes } from './kernel.ts';
import { PairSet } from './tables.ts';

/** Per candidate of a true key: not scored (same trial as an earlier pair, or as a prompt's), red, green. */
export const CandidateStatus: { readonly notScored: 0; readonly red: 1; readonly green: 2 } = Object.freeze({
  notScored: 0,
  red: 1,
  green: 2,
} as const);

export interface KeyEvaluation {
  readonly numScored: number;
  readonly numGreen: number;
  /** One {@link CandidateStatus} per candidate, in tape order. */
  readonly status: Uint8Array;
}

const TAPE_PROMPT = 1;
const TAPE_SCORED = 2;

/**
 * Scores one key on the tape exactly: per candidate in tape order, its (seed, token) pair is scored
 * unless a prompt pair or an earlier candidate has the same one.
 */
export function evaluateKey(tape: EvaluationTape, key: WatermarkKey, accelerate = true): KeyEvaluation {
  if (key.scheme.name !== tape.scheme || key.scheme.contextWidth !== tape.contextWidth) {
    throw new RangeError(`key ${key.keyId}: its scheme does not match the tape's`);
  }
  if (tape.scheme === 'lefthash') {
    const fast = evaluateLeftHash(tape, key, accelerate);
    if (fast !== null) return fast;
  }
  return evaluateBySeed(tape, key);
}

/**
 * LeftHash through the kernel: every window's seed, then one green bit per candidate. Exact when
 * the window seeds are distinct; returns null (the caller deduplicates on seeds) if two collide.
 */
function evaluateLeftHash(
  tape: EvaluationTape,
  key: WatermarkKey,
  accelerate: boolean,
): KeyEvaluation | null {
  const numWindows = tape.windowWidth === 0 ? 0 : tape.windows.length / tape.windowWidth;
  const grouped = groupByWindow(
    tape.windows,
    tape.windowWidth,
    numWindows,
    tape.candidateWindow,
    tape.candidateToken,
    true,
  );
  const output = countLeftHash(
    {
      windowWidth: tape.windowWidth,
      windows: grouped.windows,
      offsets: grouped.offsets,
      tokens: grouped.tokens,
    },
    kernelKeyBytes([key]),
    key.scheme.threshold,
    true,
    accelerate,
  );
  const seeds = output.seeds!;
  // Two windows whose seeds collide (a 2^-64 event per pair) would be one trial: then go exact.
  const distinct = new PairSet(Math.max(16, numWindows));
  for (let window = 0; window < numWindows; window++) {
    const high = seeds[2 * window]!;
    // The set takes first words below 2^32 − 1; that one high word also goes the exact way.
    if (high === 0xffffffff || !distinct.add(high, seeds[2 * window + 1]!)) return null;
  }
  const status = new Uint8Array(tape.candidateToken.length);
  const bits = output.bits!;
  for (let i = 0; i < bits.length; i++) {
    status[grouped.order[i]!] = bits[i] === 1 ? CandidateStatus.green : CandidateStatus.red;
  }
  return { numScored: status.length, numGreen: output.counts[0]!, status };
}

/** The reference path: seeds through @tracemark/core and a dedup tape keyed on (seed, token). */
function evaluateBySeed(tape: EvaluationTape, key: WatermarkKey, statusWanted = true): KeyEvaluation {
  const watermarker = createWatermarker(key);
  const w = tape.windowWidth;
  // The position sits at index w of [window…, token] for both schemes (spec §4.1, §4.2).
  const span = new Uint32Array(w + 1);
  const seed = new Uint32Array(2);
  const dedup = new DedupTape(Math.max(1024, tape.candidateToken.length + tape.promptToken.length));
  const windows = tape.windows;
  const seedOf = (window: number, token: number): void => {
    for (let j = 0; j < w; j++) span[j] = windows[window * w + j]!;
    span[w] = token;
    if (!watermarker.seedAt(span, w, seed)) throw new Error('evidence tape: a candidate has no seed');
  };
  for (let i = 0; i < tape.promptToken.length; i++) {
    seedOf(tape.promptWindow[i]!, tape.promptToken[i]!);
    dedup.insert(seed[0]!, seed[1]!, tape.promptToken[i]!, TAPE_PROMPT);
  }
  const status = new Uint8Array(statusWanted ? tape.candidateToken.length : 0);
  let scored = 0;
  let green = 0;
  for (let i = 0; i < tape.candidateToken.length; i++) {
    const token = tape.candidateToken[i]!;
    seedOf(tape.candidateWindow[i]!, token);
    if (dedup.insert(seed[0]!, seed[1]!, token, TAPE_SCORED) !== 0) continue;
    scored++;
    const isGreen = watermarker.isGreen(seed[0]!, seed[1]!, token);
    if (isGreen) green++;
    if (statusWanted) status[i] = isGreen ? CandidateStatus.green : CandidateStatus.red;
  }
  return { numScored: scored, numGreen: green, status };
}

/** A batch of fake keys to score on a tape; structured-cloneable, for worker threads. */
export interface FakeKeyJob {
  readonly tape: EvaluationTape;
  readonly scheme: {
    readonly name: SchemeName;
    readonly contextWidth: number;
    readonly gamma: number;
    readonly delta: number;
  };
  readonly tokenizer: string;
  readonly seed: string;
  /** Fake key indices first … first + count − 1. */
  readonly first: number;
  readonly count: number;
  readonly accelerate: boolean;
}

export interface FakeKeyCounts {
  readonly first: number;
  readonly numScored: readonly number[];
  readonly numGreen: readonly number[];
}

/** Keys a kernel call takes at once: small enough that the kernel is optimized after the first calls. */
const KEYS_PER_CALL = 4;

/**
 * Scores a batch of fake keys. LeftHash counts green candidates with the kernel (one seed per window,
 * then one PRF call per candidate and key); SelfHash deduplicates per key on seeds, as for true keys.
 */
export function runFakeKeyJob(job: FakeKeyJob): FakeKeyCounts {
  const scheme = createScheme(job.scheme);
  const keys = deriveFakeKeys(scheme, job.tokenizer, job.first, job.count, job.seed);
  const tape = job.tape;
  const numScored: number[] = [];
  const numGreen: number[] = [];
  if (tape.scheme === 'lefthash' && tape.grouped !== null) {
    const grouped = tape.grouped;
    const kernelTape = {
      windowWidth: tape.windowWidth,
      windows: grouped.windows,
      offsets: grouped.offsets,
      tokens: grouped.tokens,
    };
    for (let at = 0; at < keys.length; at += KEYS_PER_CALL) {
      const batch = keys.slice(at, at + KEYS_PER_CALL);
      const { counts } = countLeftHash(
        kernelTape,
        kernelKeyBytes(batch),
        scheme.threshold,
        false,
        job.accelerate,
      );
      for (const count of counts) {
        numScored.push(grouped.tokens.length);
        numGreen.push(count);
      }
    }
  } else {
    const counted =
      job.accelerate && tape.selfHash !== null
        ? countSelfHash(tape.selfHash, selfHashKeyBytes(keys), scheme.threshold)
        : null;
    keys.forEach((key, i) => {
      if (counted !== null) {
        numScored.push(counted.numScored[i]!);
        numGreen.push(counted.numGreen[i]!);
      } else {
        const result = evaluateBySeed(tape, key, false);
        numScored.push(result.numScored);
        numGreen.push(result.numGreen);
      }
    });
  }
  return { first: job.first, numScored, numGreen };
}
/** Exposed for tests: the reference path for any scheme. */
export function evaluateKeyBySeed(tape: EvaluationTape, key: WatermarkKey): KeyEvaluation {
  return evaluateBySeed(tape, key);
}
