/**
 * Scoring keys on the evidence tape: the true keys exactly (spec §4.3 and §6, with every prompt's
 * pairs excluded), the fake keys by counts only.
 */
import {
  createScheme,
  createSipHasher,
  createWatermarker,
  createWatermarkKey,
  DedupTape,
  derivePrfKeys,
  isGumbelScheme,
  type SchemeName,
  type WatermarkKey,
} from '@tracemark/core';
import { type EvaluationTape, groupByWindow, scratchOf } from './evidence-tape.ts';
import { fakeKeyMasks, fakeTrialSecret } from './fake-keys.ts';
import {
  countMixed,
  kernelKeyBytes,
  leftHashBits,
  leftHashGreenValues,
  selfHashSeeds,
  sharedCopy,
} from './kernel.ts';
import { allDistinct64, firstOccurrences, grown } from './tables.ts';

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
  refuseGumbel(key.scheme, `key ${key.keyId}`);
  if (key.scheme.name !== tape.scheme || key.scheme.contextWidth !== tape.contextWidth) {
    throw new RangeError(`key ${key.keyId}: its scheme does not match the tape's`);
  }
  const fast =
    tape.scheme === 'lefthash'
      ? evaluateLeftHash(tape, key, accelerate)
      : evaluateSelfHash(tape, key, accelerate);
  return fast ?? evaluateBySeed(tape, key);
}

/**
 * Green counts need a green list: a Gumbel key (γ and threshold NaN) would count nothing green and
 * give a silent p = 1. Its scan is scanCorpusAnyKeys (gumbel-scan.ts).
 */
function refuseGumbel(scheme: { readonly name: SchemeName }, what: string): void {
  if (isGumbelScheme(scheme)) {
    throw new TypeError(
      `${what}: the ${scheme.name} scheme has no green list to count; scan Gumbel keys with scanCorpusAnyKeys (exact Gamma tail of their scores)`,
    );
  }
}

/** A SelfHash key's trials: its distinct (anchor, token) pairs, with their seeds and green PRF outputs. */
interface SelfHashTrials {
  /** The candidate index of each scored pair, in tape order. */
  readonly candidates: Uint32Array;
  /**
   * Green PRF output of each scored pair, [low, high] word pairs: the kernel's memory where it ran,
   * valid until it runs again on this thread.
   */
  readonly values: Uint32Array;
}

/**
 * Ranks SipHash(K_rank, LE32(t)) of every token id the tape holds, as [high, low] words at 2·index,
 * and index(t): dense by id below 2^22 (vocabularies are far smaller), through a map beyond.
 */
function tapeRanks(
  tape: EvaluationTape,
  rankKey: Uint8Array,
): { ranks: Uint32Array; indexOf: (token: number) => number } {
  const { denseTokens, dense, far } = tapeTokens(tape);
  const hasher = createSipHasher(rankKey);
  const message = new Uint8Array(4);
  const view = new DataView(message.buffer);
  const ranks = new Uint32Array(2 * (dense + far.size));
  const rank = (token: number, at: number): void => {
    view.setUint32(0, token, true);
    hasher.bytes(message);
    ranks[2 * at] = hasher.out[0]!;
    ranks[2 * at + 1] = hasher.out[1]!;
  };
  for (let i = 0; i < denseTokens.length; i++) rank(denseTokens[i]!, denseTokens[i]!);
  for (const [token, at] of far) rank(token, at);
  const indexOf = (token: number): number => (token < DENSE_TOKENS ? token : far.get(token)!);
  return { ranks, indexOf };
}

/** The token ids a tape holds (the same for every key, so found once per tape). */
interface TapeTokens {
  /** Distinct ids below DENSE_TOKENS. */
  readonly denseTokens: Uint32Array;
  /** 1 + the largest of them (1 when none). */
  readonly dense: number;
  /** Ids from DENSE_TOKENS on, each with its index: dense, dense + 1, … in order of first occurrence. */
  readonly far: ReadonlyMap<number, number>;
}

const tapeTokenCache = new WeakMap<EvaluationTape, TapeTokens>();

function tapeTokens(tape: EvaluationTape): TapeTokens {
  const cached = tapeTokenCache.get(tape);
  if (cached !== undefined) return cached;
  let seen = new Uint8Array(1 << 16);
  let maxToken = 0;
  let distinct = 0;
  const far = new Map<number, number>();
  for (const array of [tape.windows, tape.candidateToken, tape.promptToken]) {
    for (let i = 0; i < array.length; i++) {
      const token = array[i]!;
      if (token >= DENSE_TOKENS) {
        if (!far.has(token)) far.set(token, -1);
        continue;
      }
      if (token >= seen.length) seen = grown(seen, token + 1);
      if (seen[token] === 0) {
        seen[token] = 1;
        distinct++;
        if (token > maxToken) maxToken = token;
      }
    }
  }
  const denseTokens = new Uint32Array(distinct);
  let at = 0;
  for (let token = 0; token <= maxToken; token++) if (seen[token] === 1) denseTokens[at++] = token;
  const dense = maxToken + 1;
  let index = dense;
  for (const token of far.keys()) far.set(token, index++);
  const tokens: TapeTokens = { denseTokens, dense, far };
  tapeTokenCache.set(tape, tokens);
  return tokens;
}

const DENSE_TOKENS = 1 << 22;

/**
 * SelfHash(h) trials of one key (spec §4.2): each entry's anchor is the token of least rank among
 * its window and its token (ties to the smaller id); the prompt entries' (anchor, token) pairs are
 * never scored, and each other pair is scored at its first candidate. Null when two distinct pairs'
 * seeds collide (or a token id is 2^32 − 1): the caller then deduplicates on seeds exactly.
 */
function selfHashTrials(tape: EvaluationTape, key: WatermarkKey, accelerate: boolean): SelfHashTrials | null {
  const prf = derivePrfKeys(key.secret);
  const { ranks, indexOf } = tapeRanks(tape, prf.rank);
  const w = tape.windowWidth;
  const windows = tape.windows;
  // The anchor of an entry: the token of least rank among its window's and its own (ties to the
  // smaller id), found for each entry (with wide windows nearly every window has one entry only).
  const anchorOf = (window: number, token: number): number => {
    let at = 2 * indexOf(token);
    let bestHigh = ranks[at]!;
    let bestLow = ranks[at + 1]!;
    let best = token;
    for (let j = 0; j < w; j++) {
      const other = windows[window * w + j]!;
      at = 2 * indexOf(other);
      const high = ranks[at]!;
      const low = ranks[at + 1]!;
      if (high < bestHigh || (high === bestHigh && (low < bestLow || (low === bestLow && other < best)))) {
        bestHigh = high;
        bestLow = low;
        best = other;
      }
    }
    return best;
  };
  // Prompt pairs first, then candidates: a candidate is scored when its pair is not a prompt pair
  // and occurs at no earlier candidate.
  const numPrompt = tape.promptToken.length;
  const numCandidates = tape.candidateToken.length;
  // Memory lent to the tape, where there is enough: three arrays for the pairs' first occurrences and
  // one for the anchors (a page first touched costs a fault; these are touched already).
  const lent = scratchOf(tape).filter((array) => array.length >= numPrompt + numCandidates);
  const pairAnchor =
    lent.length >= 4
      ? lent[3]!.subarray(0, numPrompt + numCandidates)
      : new Uint32Array(numPrompt + numCandidates);
  // The tape's own tokens where no prompt comes first (read only).
  let pairToken = tape.candidateToken;
  if (numPrompt > 0) {
    pairToken = new Uint32Array(numPrompt + numCandidates);
    pairToken.set(tape.promptToken);
    pairToken.set(tape.candidateToken, numPrompt);
  }
  for (let i = 0; i < numPrompt; i++) {
    const anchor = anchorOf(tape.promptWindow[i]!, tape.promptToken[i]!);
    if (anchor === 0xffffffff) return null;
    pairAnchor[i] = anchor;
  }
  for (let i = 0; i < numCandidates; i++) {
    const anchor = anchorOf(tape.candidateWindow[i]!, tape.candidateToken[i]!);
    if (anchor === 0xffffffff) return null;
    pairAnchor[numPrompt + i] = anchor;
  }
  const first = firstOccurrences(
    pairAnchor,
    pairToken,
    numPrompt + numCandidates,
    lent.length >= 3 ? lent : null,
  );
  const keyBytes = kernelKeyBytes([key]);
  // Before the anchors are compacted over them (no kernel call without prompts).
  const promptSeeds =
    numPrompt === 0
      ? new Uint32Array(0)
      : selfHashSeeds(keyBytes, pairAnchor.subarray(0, numPrompt), tape.promptToken, accelerate).seeds;
  let scored = 0;
  for (let i = 0; i < numCandidates; i++) scored += first[numPrompt + i]!;
  const candidates = new Uint32Array(scored);
  // The scored pairs' anchors and tokens, moved down in place (never past where they are read) in
  // arrays of this function's own; the tape's tokens as they are when every candidate is scored.
  const anchors = pairAnchor;
  const tokens =
    numPrompt > 0 ? pairToken : scored === numCandidates ? tape.candidateToken : new Uint32Array(scored);
  scored = 0;
  for (let i = 0; i < numCandidates; i++) {
    if (first[numPrompt + i] === 0) continue;
    candidates[scored] = i;
    anchors[scored] = pairAnchor[numPrompt + i]!;
    if (tokens !== tape.candidateToken) tokens[scored] = pairToken[numPrompt + i]!;
    scored++;
  }
  // Where the kernel wrote them, until it next runs.
  const { seeds, values } = selfHashSeeds(
    keyBytes,
    anchors.subarray(0, scored),
    tokens.subarray(0, scored),
    accelerate,
    true,
  );
  // Distinct pairs share a seed only by a 64-bit collision; then they would be one trial. Seeds are
  // [low, high] word pairs.
  if (numPrompt === 0) return allDistinct64(seeds, 1) ? { candidates, values } : null;
  const allSeeds = new Uint32Array(seeds.length + promptSeeds.length);
  allSeeds.set(seeds);
  allSeeds.set(promptSeeds, seeds.length);
  return allDistinct64(allSeeds, 1) ? { candidates, values } : null;
}

/** SelfHash through {@link selfHashTrials}; null when the caller must deduplicate on seeds. */
function evaluateSelfHash(
  tape: EvaluationTape,
  key: WatermarkKey,
  accelerate: boolean,
): KeyEvaluation | null {
  const trials = selfHashTrials(tape, key, accelerate);
  if (trials === null) return null;
  const status = new Uint8Array(tape.candidateToken.length);
  const threshold = key.scheme.threshold;
  let green = 0;
  for (let t = 0; t < trials.candidates.length; t++) {
    const isGreen = trials.values[2 * t + 1]! < threshold;
    if (isGreen) green++;
    status[trials.candidates[t]!] = isGreen ? CandidateStatus.green : CandidateStatus.red;
  }
  return { numScored: trials.candidates.length, numGreen: green, status };
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
  // The tape's own grouping has every window (a seed each) unless it was built by hand.
  const grouped =
    tape.grouped !== null && (tape.grouped.groupWindow?.length ?? numWindows) === numWindows
      ? tape.grouped
      : groupByWindow(
          tape.windows,
          tape.windowWidth,
          numWindows,
          tape.candidateWindow,
          tape.candidateToken,
          true,
        );
  const { numGreen, bits, distinctSeeds } = leftHashBits(
    {
      windowWidth: tape.windowWidth,
      windows: grouped.windows,
      offsets: grouped.offsets,
      tokens: grouped.tokens,
    },
    kernelKeyBytes([key]),
    key.scheme.threshold,
    accelerate,
  );
  // Two windows whose seeds collide (a 2^-64 event per pair) would be one trial: then go exact.
  if (!distinctSeeds) return null;
  const status = new Uint8Array(tape.candidateToken.length);
  for (let i = 0; i < bits.length; i++) {
    status[grouped.order[i]!] = bits[i] === 1 ? CandidateStatus.green : CandidateStatus.red;
  }
  return { numScored: status.length, numGreen, status };
}

/** The reference path: seeds through @tracemark/core and a dedup tape keyed on (seed, token). */
function evaluateBySeed(tape: EvaluationTape, key: WatermarkKey): KeyEvaluation {
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
  const status = new Uint8Array(tape.candidateToken.length);
  let scored = 0;
  let green = 0;
  for (let i = 0; i < tape.candidateToken.length; i++) {
    const token = tape.candidateToken[i]!;
    seedOf(tape.candidateWindow[i]!, token);
    if (dedup.insert(seed[0]!, seed[1]!, token, TAPE_SCORED) !== 0) continue;
    scored++;
    const isGreen = watermarker.isGreen(seed[0]!, seed[1]!, token);
    if (isGreen) green++;
    status[i] = isGreen ? CandidateStatus.green : CandidateStatus.red;
  }
  return { numScored: scored, numGreen: green, status };
}

/**
 * The trial values of a tape: one 64-bit value per trial the fake keys score, shared by all of them.
 * They are the green PRF outputs of the trial key ({@link fakeTrialSecret}, a key of the true key's
 * scheme derived from the public seed) on the tape, deduplicated as for any key: for LeftHash every
 * candidate, for SelfHash every (anchor, token) pair of the trial key's anchors that no earlier
 * candidate or prompt entry has. [low, high] word pairs; structured-cloneable. With `shared`, in a
 * SharedArrayBuffer (threads then read them without a copy each).
 */
export function fakeKeyTrials(
  tape: EvaluationTape,
  scheme: FakeKeyScheme,
  tokenizer: string,
  seed: string,
  accelerate = true,
  shared = false,
): Uint32Array {
  refuseGumbel(scheme, 'fake keys');
  const key = createWatermarkKey({ secret: fakeTrialSecret(seed), scheme: createScheme(scheme), tokenizer });
  if (tape.scheme === 'lefthash' && tape.grouped !== null) {
    const grouped = tape.grouped;
    return leftHashGreenValues(
      {
        windowWidth: tape.windowWidth,
        windows: grouped.windows,
        offsets: grouped.offsets,
        tokens: grouped.tokens,
      },
      kernelKeyBytes([key]),
      accelerate,
      shared,
    );
  }
  let values: Uint32Array | null = null;
  if (tape.scheme === 'selfhash') {
    // The kernel's memory: copied out before it runs again.
    const trials = selfHashTrials(tape, key, accelerate)?.values;
    if (trials !== undefined) return shared ? sharedCopy(trials) : trials.slice();
  }
  values = greenValuesBySeed(tape, key);
  return shared ? sharedCopy(values) : values;
}

/** The reference path of {@link fakeKeyTrials}: the green PRF output of every trial a key scores. */
function greenValuesBySeed(tape: EvaluationTape, key: WatermarkKey): Uint32Array {
  const watermarker = createWatermarker(key);
  const green = createSipHasher(derivePrfKeys(key.secret).green);
  const w = tape.windowWidth;
  const span = new Uint32Array(w + 1);
  const seed = new Uint32Array(2);
  const dedup = new DedupTape(Math.max(1024, tape.candidateToken.length + tape.promptToken.length));
  const seedOf = (window: number, token: number): void => {
    for (let j = 0; j < w; j++) span[j] = tape.windows[window * w + j]!;
    span[w] = token;
    if (!watermarker.seedAt(span, w, seed)) throw new Error('evidence tape: a candidate has no seed');
  };
  for (let i = 0; i < tape.promptToken.length; i++) {
    seedOf(tape.promptWindow[i]!, tape.promptToken[i]!);
    dedup.insert(seed[0]!, seed[1]!, tape.promptToken[i]!, TAPE_PROMPT);
  }
  const values: number[] = [];
  for (let i = 0; i < tape.candidateToken.length; i++) {
    const token = tape.candidateToken[i]!;
    seedOf(tape.candidateWindow[i]!, token);
    if (dedup.insert(seed[0]!, seed[1]!, token, TAPE_SCORED) !== 0) continue;
    green.twoBlocks(seed[0]!, seed[1]!, 0, token, 12);
    values.push(green.out[1]! >>> 0, green.out[0]! >>> 0);
  }
  return Uint32Array.from(values);
}

/** The scheme parameters a fake-key set takes from the key it calibrates. */
export interface FakeKeyScheme {
  readonly name: SchemeName;
  readonly contextWidth: number;
  readonly gamma: number;
  readonly delta: number;
}

/**
 * A batch of fake keys to score on a tape's trial values; structured-cloneable, for worker threads.
 * Fake key i is green on a trial when its half (the high 32 bits for even i, the low for odd i) of
 * z = SplitMix64-finalizer((value + mask_⌊i/2⌋) mod 2^64) is below τ: the true key's threshold, so
 * that its green probability is the true key's γ_eff = τ / 2^32 exactly.
 */
export interface FakeKeyJob {
  /** From {@link fakeKeyTrials}: two words per trial. */
  readonly trials: Uint32Array;
  /** τ, the green threshold of the key calibrated. */
  readonly threshold: number;
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

/** Scores a batch of fake keys: every fake key scores every trial, with its own green bit. */
export function runFakeKeyJob(job: FakeKeyJob): FakeKeyCounts {
  const masks = fakeKeyMasks(job.first, job.count, job.seed);
  const counts = countMixed(job.trials, masks, job.threshold, job.accelerate);
  const trials = job.trials.length >>> 1;
  const numScored: number[] = [];
  const numGreen: number[] = [];
  // counts[2j + b] is fake key 2(⌊first / 2⌋ + j) + b.
  const offset = job.first - 2 * Math.floor(job.first / 2);
  for (let i = 0; i < job.count; i++) {
    numScored.push(trials);
    numGreen.push(counts[offset + i]!);
  }
  return { first: job.first, numScored, numGreen };
}
/** Exposed for tests: the reference path for any scheme. */
export function evaluateKeyBySeed(tape: EvaluationTape, key: WatermarkKey): KeyEvaluation {
  refuseGumbel(key.scheme, `key ${key.keyId}`);
  return evaluateBySeed(tape, key);
}
