/**
 * The evidence tape cut into partitions, for a scan spread over machines: each shard of the corpus
 * (a run of consecutive documents) is read into per-partition fragments, each partition's fragments
 * are merged into its own evaluation tape and scored there, and the tallies add up to exactly those
 * of the one-pass {@link EvidenceTape} (docs/decisions/2026-12-04-distributed-scan.md).
 *
 * Why partition by token. A key deduplicates on (seed, token) pairs (spec §4.3): LeftHash seeds
 * from the window, SelfHash from an anchor that is a window token or the token itself, chosen by
 * the key. The token is the one part of the pair that no key can change, so every pair that any key
 * (true, fake or the fake keys' trial key) could merge with another lies in the same partition, and
 * so do the prompt pairs that exclude it. Seed collisions between windows (the one-pass tape's
 * fallback to exact seeds) matter only between pairs with the same token: within a partition too.
 * A partition by window hash would be exact for LeftHash alone.
 */
import type { SchemeName, WatermarkKey } from '@tracemark/core';
import { evaluateKey, type FakeKeyCounts, fakeKeyTrials, runFakeKeyJob } from './evaluate.ts';
import {
  type CandidateOrigins,
  type EvaluationTape,
  groupByWindow,
  type TapeCounts,
  type TapeLayout,
} from './evidence-tape.ts';
import { DEFAULT_FAKE_KEY_SEED } from './fake-keys.ts';
import { filterWindowWidth, type IssuedWindowSet } from './issued.ts';
import {
  assembleScanReport,
  DEFAULT_CALIBRATION_THRESHOLD,
  DEFAULT_MINIMUM_DOSE,
  DEFAULT_SCAN_ALPHA,
  DEFAULT_SCAN_MISS_RATE,
  type KeyTally,
  type ScanReport,
} from './scan.ts';
import { grown, PairSet, TupleTable } from './tables.ts';

/** The partition of a (window, token) pair: by its token alone (see the module comment). */
export function tokenPartition(token: number, numPartitions: number): number {
  return (Math.imul(token ^ (token >>> 16), 0x45d9f3b) >>> 0) % numPartitions;
}

/** The reading pass's counts of one shard that do not depend on other shards (they add up). */
export interface ShardCounts {
  readonly numDocuments: number;
  readonly numTokens: number;
  readonly numPromptTokens: number;
  readonly numEligible: number;
  readonly numFilteredOut: number;
}

/**
 * One shard's pairs of one partition: its distinct windows, its completion pairs kept by the filter
 * (each at its first occurrence in the shard, in shard order) and its distinct prompt pairs.
 * Documents are numbered within the shard.
 */
export interface ShardFragment {
  readonly windowWidth: number;
  readonly numWindows: number;
  readonly windows: Uint32Array;
  readonly completionWindow: Uint32Array;
  readonly completionToken: Uint32Array;
  readonly completionDocument: Uint32Array;
  readonly completionPosition: Uint32Array;
  readonly promptWindow: Uint32Array;
  readonly promptToken: Uint32Array;
}

class FragmentBuilder {
  readonly windows: TupleTable;
  readonly completionPairs = new PairSet(1024);
  readonly promptPairs = new PairSet(256);
  completionWindow = new Uint32Array(1024);
  completionToken = new Uint32Array(1024);
  completionDocument = new Uint32Array(1024);
  completionPosition = new Uint32Array(1024);
  completions = 0;
  promptWindow = new Uint32Array(256);
  promptToken = new Uint32Array(256);
  prompts = 0;

  constructor(windowWidth: number) {
    this.windows = new TupleTable(windowWidth, 1024);
  }

  completion(window: number, token: number, document: number, position: number): void {
    if (!this.completionPairs.add(window, token)) return;
    const at = this.completions++;
    if (at === this.completionWindow.length) {
      this.completionWindow = grown(this.completionWindow, at + 1);
      this.completionToken = grown(this.completionToken, at + 1);
      this.completionDocument = grown(this.completionDocument, at + 1);
      this.completionPosition = grown(this.completionPosition, at + 1);
    }
    this.completionWindow[at] = window;
    this.completionToken[at] = token;
    this.completionDocument[at] = document;
    this.completionPosition[at] = position;
  }

  prompt(window: number, token: number): void {
    if (!this.promptPairs.add(window, token)) return;
    const at = this.prompts++;
    if (at === this.promptWindow.length) {
      this.promptWindow = grown(this.promptWindow, at + 1);
      this.promptToken = grown(this.promptToken, at + 1);
    }
    this.promptWindow[at] = window;
    this.promptToken[at] = token;
  }

  fragment(): ShardFragment {
    return {
      windowWidth: this.windows.width,
      numWindows: this.windows.size,
      windows: this.windows.tuples(),
      completionWindow: this.completionWindow.slice(0, this.completions),
      completionToken: this.completionToken.slice(0, this.completions),
      completionDocument: this.completionDocument.slice(0, this.completions),
      completionPosition: this.completionPosition.slice(0, this.completions),
      promptWindow: this.promptWindow.slice(0, this.prompts),
      promptToken: this.promptToken.slice(0, this.prompts),
    };
  }
}

/**
 * Reads one shard's documents, in order, into per-partition fragments, with the same eligibility
 * rules and supervised filter as {@link EvidenceTape}.
 */
export class ShardTape {
  readonly layout: TapeLayout;
  readonly windowWidth: number;
  readonly numPartitions: number;
  private readonly special: ReadonlySet<number>;
  private readonly minSpecial: number;
  private readonly issued: IssuedWindowSet | null;
  private readonly partitions: FragmentBuilder[];
  private sequence = new Uint32Array(4096);
  private documents = 0;
  private tokens = 0;
  private promptTokens = 0;
  private eligible = 0;
  private filteredOut = 0;

  constructor(
    layout: TapeLayout,
    specialTokenIds: ReadonlySet<number>,
    issued: IssuedWindowSet | null,
    numPartitions: number,
  ) {
    if (!Number.isInteger(numPartitions) || numPartitions < 1 || numPartitions > 65_536) {
      throw new RangeError(
        `numPartitions: expected an integer from 1 to 65536, got ${String(numPartitions)}`,
      );
    }
    this.layout = layout;
    this.windowWidth = filterWindowWidth({ name: layout.scheme, contextWidth: layout.contextWidth });
    this.numPartitions = numPartitions;
    this.special = specialTokenIds;
    let minSpecial = Number.POSITIVE_INFINITY;
    for (const id of specialTokenIds) minSpecial = Math.min(minSpecial, id);
    this.minSpecial = minSpecial;
    this.issued = issued;
    if (issued !== null && !issued.widths.includes(this.windowWidth)) {
      throw new RangeError(
        `issuedWindows: no windows of width ${this.windowWidth} (needed by ${layout.scheme}(${layout.contextWidth})); build the set with this scheme`,
      );
    }
    this.partitions = Array.from({ length: numPartitions }, () => new FragmentBuilder(this.windowWidth));
  }

  /** Adds the shard's next document: its completion tokens and, optionally, its prompt. */
  add(tokens: ArrayLike<number>, prompt?: ArrayLike<number>): void {
    const document = this.documents++;
    const m = prompt?.length ?? 0;
    const n = tokens.length;
    this.tokens += n;
    this.promptTokens += m;
    this.sequence = grown(this.sequence, m + n);
    const c = this.sequence;
    for (let i = 0; i < m; i++) c[i] = prompt![i]!;
    for (let i = 0; i < n; i++) c[m + i] = tokens[i]!;
    const w = this.windowWidth;
    const special = this.special;
    const minSpecial = this.minSpecial;
    let lastSpecial = -1;
    for (let i = 0; i < m + n; i++) {
      const token = c[i]!;
      if (token >= minSpecial && special.has(token)) lastSpecial = i;
      // Eligible (spec §6): a full window, and no special token in it or at the position.
      if (lastSpecial >= i - w) continue;
      const partition = this.partitions[tokenPartition(token, this.numPartitions)]!;
      if (i < m) {
        partition.prompt(partition.windows.insert(c, i - w), token);
        continue;
      }
      this.eligible++;
      if (this.issued !== null && !this.kept(c, i)) {
        this.filteredOut++;
        continue;
      }
      partition.completion(partition.windows.insert(c, i - w), token, document, i - m);
    }
  }

  /** The supervised filter of {@link EvidenceTape}: an issued window, and a token not among its own. */
  private kept(c: Uint32Array, i: number): boolean {
    const w = this.windowWidth;
    if (!this.issued!.hasWindow(w, c, i - w)) return false;
    const token = c[i]!;
    for (let j = i - w; j < i; j++) if (c[j] === token) return false;
    return true;
  }

  counts(): ShardCounts {
    return {
      numDocuments: this.documents,
      numTokens: this.tokens,
      numPromptTokens: this.promptTokens,
      numEligible: this.eligible,
      numFilteredOut: this.filteredOut,
    };
  }

  /** The fragment of each partition, by partition index. */
  fragments(): ShardFragment[] {
    return this.partitions.map((partition) => partition.fragment());
  }
}

/** One partition's evaluation tape, merged from every shard's fragment in shard order. */
export interface PartitionTape {
  readonly tape: EvaluationTape;
  /** Where each candidate first occurred, in corpus-wide document numbers. */
  readonly origins: CandidateOrigins;
  /** Distinct completion pairs kept by the filter, and of those, pairs that occur in a prompt. */
  readonly numDistinct: number;
  readonly numExcludedByPrompt: number;
}

/**
 * Merges one partition's fragments. `fragments[s]` is shard s's, whose documents start at corpus
 * document `documentOffsets[s]`; shards are in corpus order, so the first occurrence of a pair is
 * the first one met.
 */
export function mergePartition(
  layout: TapeLayout,
  fragments: readonly ShardFragment[],
  documentOffsets: readonly number[],
): PartitionTape {
  const w = filterWindowWidth({ name: layout.scheme, contextWidth: layout.contextWidth });
  const windows = new TupleTable(w, 1024);
  const merged = new FragmentBuilder(w);
  fragments.forEach((fragment, shard) => {
    if (fragment.windowWidth !== w) {
      throw new RangeError(`fragments[${shard}]: window width ${fragment.windowWidth}, expected ${w}`);
    }
    const offset = documentOffsets[shard]!;
    const numWindows = fragment.numWindows;
    const ids = new Uint32Array(numWindows);
    for (let k = 0; k < numWindows; k++) ids[k] = windows.insert(fragment.windows, k * w);
    for (let k = 0; k < fragment.promptToken.length; k++)
      merged.prompt(ids[fragment.promptWindow[k]!]!, fragment.promptToken[k]!);
    for (let k = 0; k < fragment.completionToken.length; k++) {
      merged.completion(
        ids[fragment.completionWindow[k]!]!,
        fragment.completionToken[k]!,
        offset + fragment.completionDocument[k]!,
        fragment.completionPosition[k]!,
      );
    }
  });
  // Candidates: completion pairs that occur in no prompt pair of the corpus.
  const numDistinct = merged.completions;
  const candidateWindow = new Uint32Array(numDistinct);
  const candidateToken = new Uint32Array(numDistinct);
  const document = new Uint32Array(numDistinct);
  const position = new Uint32Array(numDistinct);
  let candidates = 0;
  for (let k = 0; k < numDistinct; k++) {
    const window = merged.completionWindow[k]!;
    const token = merged.completionToken[k]!;
    if (merged.prompts > 0 && merged.promptPairs.has(window, token)) continue;
    candidateWindow[candidates] = window;
    candidateToken[candidates] = token;
    document[candidates] = merged.completionDocument[k]!;
    position[candidates] = merged.completionPosition[k]!;
    candidates++;
  }
  const tupleData = windows.tuples();
  const numWindows = windows.size;
  const tape: EvaluationTape = {
    scheme: layout.scheme,
    contextWidth: layout.contextWidth,
    windowWidth: w,
    windows: tupleData,
    candidateWindow: candidateWindow.subarray(0, candidates),
    candidateToken: candidateToken.subarray(0, candidates),
    promptWindow: merged.promptWindow.slice(0, merged.prompts),
    promptToken: merged.promptToken.slice(0, merged.prompts),
    grouped:
      layout.scheme === 'lefthash'
        ? groupByWindow(
            tupleData,
            w,
            numWindows,
            candidateWindow.subarray(0, candidates),
            candidateToken.subarray(0, candidates),
            true,
          )
        : null,
  };
  return {
    tape,
    origins: { document: document.subarray(0, candidates), position: position.subarray(0, candidates) },
    numDistinct,
    numExcludedByPrompt: numDistinct - candidates,
  };
}

/** One true key's score on one partition: counts, and its scored candidates in tape order. */
export interface PartitionKeyScore {
  readonly numScored: number;
  readonly numGreen: number;
  readonly bits: Uint8Array;
  readonly document: Uint32Array;
  readonly position: Uint32Array;
  /** The fake keys calibrating this key, all of them in one batch (index 0 on). */
  readonly fakeKeys: FakeKeyCounts;
}

/** The scheme parameters that select a set of fake keys (as scanCorpus shares them). */
export interface PartitionScoreOptions {
  readonly fakeKeys: number;
  readonly seed: string;
  readonly accelerate?: boolean;
}

/**
 * Scores every true key, and its fake keys, on one partition's tape. Keys of another layout are
 * refused; fake-key sets are shared by keys with the same scheme, h and threshold.
 */
export function scorePartition(
  partition: PartitionTape,
  keys: readonly WatermarkKey[],
  options: PartitionScoreOptions,
): PartitionKeyScore[] {
  const accelerate = options.accelerate ?? true;
  const { tape, origins } = partition;
  const fakeSets = new Map<string, FakeKeyCounts>();
  const empty = tape.candidateToken.length === 0;
  return keys.map((key) => {
    // A partition without candidates scores nothing, under any key, true or fake.
    const evaluation = empty
      ? { numScored: 0, numGreen: 0, status: new Uint8Array(0) }
      : evaluateKey(tape, key, accelerate);
    const bits = new Uint8Array(evaluation.numScored);
    const document = new Uint32Array(evaluation.numScored);
    const position = new Uint32Array(evaluation.numScored);
    let at = 0;
    for (let i = 0; i < evaluation.status.length; i++) {
      if (evaluation.status[i] === 0) continue;
      bits[at] = evaluation.status[i] === 2 ? 1 : 0;
      document[at] = origins.document[i]!;
      position[at] = origins.position[i]!;
      at++;
    }
    const id = `${key.scheme.name}/${key.scheme.contextWidth}/${key.scheme.threshold}`;
    let fakeKeys = fakeSets.get(id);
    if (fakeKeys === undefined) {
      const scheme: { name: SchemeName; contextWidth: number; gamma: number; delta: number } = {
        name: key.scheme.name,
        contextWidth: key.scheme.contextWidth,
        gamma: key.scheme.gamma,
        delta: key.scheme.delta,
      };
      fakeKeys = empty
        ? {
            first: 0,
            numScored: new Array<number>(options.fakeKeys).fill(0),
            numGreen: new Array<number>(options.fakeKeys).fill(0),
          }
        : options.fakeKeys === 0
          ? { first: 0, numScored: [], numGreen: [] }
          : runFakeKeyJob({
              trials: fakeKeyTrials(tape, scheme, key.tokenizer, options.seed, accelerate),
              threshold: key.scheme.threshold,
              seed: options.seed,
              first: 0,
              count: options.fakeKeys,
              accelerate,
            });
      fakeSets.set(id, fakeKeys);
    }
    return {
      numScored: evaluation.numScored,
      numGreen: evaluation.numGreen,
      bits,
      document,
      position,
      fakeKeys,
    };
  });
}

/**
 * Merges the partitions' scores of one key into its scored tape in corpus order: candidates are
 * ordered by where they first occurred (document, then token), as the one-pass tape has them.
 */
export function mergeKeyScores(scores: readonly PartitionKeyScore[]): {
  numScored: number;
  numGreen: number;
  bits: Uint8Array;
  document: Uint32Array;
  position: Uint32Array;
  fakeKeys: FakeKeyCounts;
} {
  let numScored = 0;
  let numGreen = 0;
  for (const score of scores) {
    numScored += score.numScored;
    numGreen += score.numGreen;
  }
  // k-way merge of the partitions' sorted runs (each partition is in corpus order already).
  const bits = new Uint8Array(numScored);
  const document = new Uint32Array(numScored);
  const position = new Uint32Array(numScored);
  const next = new Uint32Array(scores.length);
  const heap: number[] = [];
  const less = (a: number, b: number): boolean => {
    const sa = scores[a]!;
    const sb = scores[b]!;
    const da = sa.document[next[a]!]!;
    const db = sb.document[next[b]!]!;
    return da < db || (da === db && sa.position[next[a]!]! < sb.position[next[b]!]!);
  };
  const siftDown = (at: number): void => {
    for (;;) {
      const left = 2 * at + 1;
      if (left >= heap.length) return;
      const right = left + 1;
      const child = right < heap.length && less(heap[right]!, heap[left]!) ? right : left;
      if (!less(heap[child]!, heap[at]!)) return;
      [heap[at], heap[child]] = [heap[child]!, heap[at]!];
      at = child;
    }
  };
  scores.forEach((score, index) => {
    if (score.numScored > 0) heap.push(index);
  });
  for (let at = Math.floor(heap.length / 2) - 1; at >= 0; at--) siftDown(at);
  for (let out = 0; out < numScored; out++) {
    const index = heap[0]!;
    const score = scores[index]!;
    const k = next[index]!++;
    bits[out] = score.bits[k]!;
    document[out] = score.document[k]!;
    position[out] = score.position[k]!;
    if (next[index]! === score.numScored) {
      heap[0] = heap[heap.length - 1]!;
      heap.pop();
    }
    siftDown(0);
  }
  // Fake keys: every partition scored the same fake keys, so their counts add up index by index.
  const count = scores[0]?.fakeKeys.numGreen.length ?? 0;
  const fakeScored = new Array<number>(count).fill(0);
  const fakeGreen = new Array<number>(count).fill(0);
  for (const score of scores) {
    if (score.fakeKeys.numGreen.length !== count) throw new RangeError('scores: fake key counts differ');
    for (let i = 0; i < count; i++) {
      fakeScored[i]! += score.fakeKeys.numScored[i]!;
      fakeGreen[i]! += score.fakeKeys.numGreen[i]!;
    }
  }
  return {
    numScored,
    numGreen,
    bits,
    document,
    position,
    fakeKeys: { first: 0, numScored: fakeScored, numGreen: fakeGreen },
  };
}

/** A layout's counts for the report: the shards' counts and the partitions' distinct pairs, added up. */
export function layoutCounts(
  shards: readonly ShardCounts[],
  partitions: readonly { readonly numDistinct: number; readonly numExcludedByPrompt: number }[],
): TapeCounts {
  const sum = (values: readonly number[]): number => values.reduce((total, value) => total + value, 0);
  return {
    numDocuments: sum(shards.map((shard) => shard.numDocuments)),
    numTokens: sum(shards.map((shard) => shard.numTokens)),
    numPromptTokens: sum(shards.map((shard) => shard.numPromptTokens)),
    numEligible: sum(shards.map((shard) => shard.numEligible)),
    numFilteredOut: sum(shards.map((shard) => shard.numFilteredOut)),
    numDistinct: sum(partitions.map((partition) => partition.numDistinct)),
    numExcludedByPrompt: sum(partitions.map((partition) => partition.numExcludedByPrompt)),
  };
}

/** What a partitioned scan hands to {@link partitionedScanReport}, with scanCorpus's settings. */
export interface PartitionedScanInput {
  readonly keys: readonly WatermarkKey[];
  /** Per key, in the keys' order: every partition's score of it. */
  readonly scores: readonly (readonly PartitionKeyScore[])[];
  /** Per key: its layout's counts ({@link layoutCounts}). */
  readonly counts: readonly TapeCounts[];
  /** Each document's source, by corpus document number. */
  readonly sources: readonly string[];
  readonly fakeKeys: number;
  readonly fakeKeySeed?: string;
  readonly alpha?: number;
  readonly minimumDose?: number;
  readonly issued: { readonly numOutputs: number; readonly numTokens: number } | null;
  readonly issuedGreenFractions?: ReadonlyMap<string, number>;
}

/** The report of a partitioned scan: the same assembly, and so the same report, as scanCorpus's. */
export function partitionedScanReport(input: PartitionedScanInput): ScanReport {
  if (input.keys.length === 0) throw new RangeError('keys: expected at least one key');
  const tallies = input.keys.map((_, index): KeyTally => {
    const merged = mergeKeyScores(input.scores[index]!);
    return { ...merged, counts: input.counts[index]!, fakeKeys: [merged.fakeKeys] };
  });
  return assembleScanReport({
    keys: input.keys,
    tallies,
    sources: input.sources,
    fakeKeyCount: input.fakeKeys,
    seed: input.fakeKeySeed ?? DEFAULT_FAKE_KEY_SEED,
    alpha: input.alpha ?? DEFAULT_SCAN_ALPHA,
    missRate: DEFAULT_SCAN_MISS_RATE,
    minimumDose: input.minimumDose ?? DEFAULT_MINIMUM_DOSE,
    calibrationThreshold: DEFAULT_CALIBRATION_THRESHOLD,
    // scanCorpus's defaults.
    topDocuments: 5,
    passages: 3,
    minPassage: 32,
    issued: input.issued,
    ...(input.issuedGreenFractions === undefined ? {} : { issuedGreenFractions: input.issuedGreenFractions }),
  });
}
