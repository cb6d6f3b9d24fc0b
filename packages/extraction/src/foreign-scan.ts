/**
 * Radioactivity scans with engines' keys (vLLM now; the other families of @tracemark/detection's
 * foreign-key registry as they gain `units` and `tail`), alone or mixed with tracemark keys.
 *
 * The corpus-wide test of one engine key. Each document's scored units (the scorer's `units`: after
 * the document's own deduplication, one per scored position, keyed by the PRF input that decides
 * the score) are pooled over the corpus; a unit is counted once, where it first occurs, and units
 * that also occur in a prompt are dropped (copying a prompt is not evidence of training), as the
 * tracemark scan's tape does with (window, token) pairs. The score S is the sum of the distinct
 * units' values and the p-value the scorer's exact tail `tail(S, n)`. Contexts are what the engine
 * defines: for vLLM the output tokens only (docs/spec/foreign-vllm.md §3, §10.1), so prompts take no
 * part in any context.
 *
 * The null is exact, and no fake keys are run for engines' keys. Under the null (a corpus made without
 * the engine key) distinct PRF inputs give independent values with exactly the scheme's per-unit
 * distribution (Exp(1) truncated to the 2^24-point uniform for gumbel, which makes Gamma(n, 1) very
 * slightly conservative; the weighted sum for dual_key_gumbel; Bernoulli(γ₀) for red_green and sbw),
 * so the sum's tail is the p-value, with no estimate to calibrate. This is the same argument as the
 * tracemark scan's binomial test; its fake keys are an empirical check of it on the corpus. For
 * engines' keys that check would multiply the scan's time by the number of fake keys (the scorers
 * evaluate one PRF input per unit), so the report states the null instead (`nullDistribution`,
 * `calibration: null`).
 *
 * Several keys: Holm's procedure over every key, tracemark's and the engines', at the scan's α. A
 * tracemark key's verdict is decided again at its adjusted p-value with the tracemark scan's rule.
 *
 * tracemark's own Gumbel-max keys (`gumbel`, `dual_gumbel`) have no green list either: they take this
 * corpus-wide test too, with the scorer of gumbel-scan.ts (units keyed by (context seed, token), the
 * exact Gamma / weighted-Gamma tail), and their reports are {@link ForeignKeyScan}s with family
 * `tracemark`.
 */
import {
  bonferroniLog10,
  holmAdjustLog10,
  MAX_PACKED_UNIT_WIDTH,
  type WatermarkKey,
  zScore,
} from '@tracemark/core';
import { DEFAULT_FAKE_KEY_SEED } from './fake-keys.ts';
import { gumbelScanKey, isGumbelKey } from './gumbel-scan.ts';
import { PackedUnitStore, UnitTally } from './packed-units.ts';
import {
  DEFAULT_CALIBRATION_THRESHOLD,
  DEFAULT_MINIMUM_DOSE,
  DEFAULT_SCAN_ALPHA,
  DEFAULT_SCAN_MISS_RATE,
  doseUpperBoundOf,
  type KeyScan,
  NO_EVIDENCE_LEVEL,
  ruledOutDoses,
  rulesOutDose,
  type ScanDocument,
  type ScanOptions,
  type ScanReport,
  type ScanVerdict,
  scanCorpus,
  scanPercent,
} from './scan.ts';

/**
 * What a corpus-wide test needs of an engine's key: structurally, @tracemark/detection's
 * `ForeignKeyScorer` with its optional `units` and `tail` present.
 */
export interface CorpusScorer {
  readonly key: { readonly keyId: string; readonly kind: string; readonly tokenizer: string };
  /** `${kind}:${scheme}` (`vllm:gumbel`). */
  readonly schemeName: string;
  /** Null for schemes without green lists (the score is not a green count). */
  readonly nullGreenProbability: number | null;
  /** `alternative`: the green share the `not_radioactive` test rules out at dose 1 is 2·(g₁ − γ₀) above γ₀; null: none. */
  readonly verdictOptions: { readonly alternative: number | null };
  units(ids: ArrayLike<number>): { readonly keys: readonly string[]; readonly values: Float64Array };
  tail(score: number, count: number): number;
  /**
   * Optional: the units of a completion that continues its prompt (tracemark's keys: the prompt's
   * last tokens seed the completion's first positions, spec §6), and the prompt positions' own unit
   * keys, which are excluded. Without it, `units` reads the completion and the prompt apart.
   */
  unitsInContext?(
    ids: ArrayLike<number>,
    prompt: ArrayLike<number>,
  ): {
    readonly completion: { readonly keys: readonly string[]; readonly values: Float64Array };
    readonly prompt: readonly string[];
  };
  /**
   * Optional: a lower bound on `tail(score, count)` (log10), much cheaper than it; a scan then computes
   * exact tails only for the documents that can rank among its top documents (the same report).
   */
  tailLowerBound?(score: number, count: number): number;
  /** Optional: the null distribution of the score in words, for reports (default: a generic sentence). */
  readonly nullDistribution?: string;
  /** Words a unit of {@link packedUnits} (1 to the core's `MAX_PACKED_UNIT_WIDTH`, 16); needed with it. */
  readonly unitWidth?: number;
  /**
   * Optional, for speed: the units a {@link ForeignCorpusTest} reads, each as `unitWidth` 32-bit words
   * instead of a string, in the same order with the same values; two units are the same unit exactly
   * when their words are equal, as when their strings are. `completion`: `unitsInContext(ids,
   * prompt).completion` where the scorer has it and there is a prompt, else `units(ids)`; `prompt`:
   * the prompt's units the test excludes (`unitsInContext(ids, prompt).prompt`, else
   * `units(prompt).keys`), null without a prompt. The test then finds the distinct units in typed
   * arrays instead of a map of strings, with the same result.
   */
  packedUnits?(
    ids: ArrayLike<number>,
    prompt?: ArrayLike<number>,
  ): { readonly completion: PackedUnits; readonly prompt: Uint32Array | null };
}

/** A sequence's units as word tuples ({@link CorpusScorer.packedUnits}): unit i is `words[w·i … w·(i + 1))`. */
export interface PackedUnits {
  readonly words: Uint32Array;
  readonly values: Float64Array;
}

/** An engine's key in a scan: its scorer, and how reports name it. */
export interface ForeignScanKey {
  readonly scorer: CorpusScorer;
  /** How people name the engine (`vLLM`). */
  readonly label: string;
  /** The key's public parameters (never the secret), as reports show them. */
  readonly parameters: Readonly<Record<string, string | number | boolean>>;
}

export interface ForeignDocumentReport {
  readonly document: number;
  readonly source: string;
  /** Units first seen in this document (and in no prompt). */
  readonly numScored: number;
  readonly score: number;
  readonly log10P: number;
  /** Bonferroni over the documents with scored units. */
  readonly log10PCorrected: number;
}

/** One engine key's corpus-wide test. */
export interface ForeignKeyScan {
  readonly keyId: string;
  /** The engine family (`vllm`). */
  readonly family: string;
  readonly label: string;
  /** `vllm:gumbel`, … */
  readonly scheme: string;
  readonly parameters: Readonly<Record<string, string | number | boolean>>;
  /** The null distribution of the score, in words (exact; no fake keys, see the module comment). */
  readonly nullDistribution: string;
  /** Units over all documents, before the corpus-wide deduplication. */
  readonly numUnits: number;
  /** Units seen earlier in the corpus, not counted again. */
  readonly numRepeated: number;
  /** Units that occur in a prompt, not counted. */
  readonly numExcludedByPrompt: number;
  /** Distinct units scored. */
  readonly numScored: number;
  /** The sum of the distinct units' values (a Gumbel sum, a green count…). */
  readonly score: number;
  readonly numGreen: number | null;
  readonly greenFraction: number | null;
  /** The binomial z for green-list schemes; null otherwise. */
  readonly z: number | null;
  /** Exact log10 P[S ≥ score] under the null for `numScored` units. */
  readonly log10P: number;
  readonly log10PAdjusted: number;
  readonly calibration: null;
  /**
   * Green-list schemes with a logit bias: doses above this are ruled out at miss rate β, within [0, 1]
   * (1 rules out none); null otherwise.
   */
  readonly doseUpperBound: number | null;
  readonly verdict: ScanVerdict;
  readonly reason: string;
  readonly topDocuments: readonly ForeignDocumentReport[];
}

/** A scan report whose keys may be tracemark's ({@link KeyScan}) or engines' ({@link ForeignKeyScan}). */
export interface AnyScanReport extends Omit<ScanReport, 'keys'> {
  readonly keys: readonly (KeyScan | ForeignKeyScan)[];
}

export function isForeignKeyScan(scan: KeyScan | ForeignKeyScan): scan is ForeignKeyScan {
  return 'family' in scan;
}

export function isForeignScanKey(key: WatermarkKey | ForeignScanKey): key is ForeignScanKey {
  return typeof (key as ForeignScanKey).scorer === 'object' && (key as ForeignScanKey).scorer !== null;
}

/** The null distribution of a scheme's score, for reports. */
function nullDistribution(scorer: CorpusScorer): string {
  if (typeof scorer.nullDistribution === 'string') return scorer.nullDistribution;
  if (scorer.nullGreenProbability !== null) {
    return `exact: the green count of n distinct units is Bin(n, ${scorer.nullGreenProbability}) (one PRF input each)`;
  }
  return `exact: the score of n distinct units is a sum of n independent per-unit PRF scores (${scorer.schemeName}: Gamma-type tail, the scorer's exact formula)`;
}

/**
 * Pools one engine key's units over a corpus. `add` each document (and its prompt) in order, then
 * `finish` for the totals; memory grows with the number of distinct units.
 */
export class ForeignCorpusTest {
  readonly scorer: CorpusScorer;
  private readonly index = new Map<string, number>();
  private readonly values: number[] = [];
  private readonly documentOf: number[] = [];
  private readonly promptUnits = new Set<string>();
  /** Units given (the string path's; the packed store counts its own). */
  private numUnits = 0;
  /** Scorers with `packedUnits`: their units as word tuples (packed-units.ts). */
  private readonly packed: PackedUnitStore | null;

  /**
   * `expectedUnits` (optional): about how many units the corpus has (its completion tokens), so that
   * a scorer's packed units are stored in arrays of that size from the start.
   */
  constructor(scorer: CorpusScorer, expectedUnits = 0) {
    if (typeof scorer?.units !== 'function' || typeof scorer.tail !== 'function') {
      throw new TypeError('scorer: this key family cannot be scanned yet (its scorer has no units and tail)');
    }
    this.scorer = scorer;
    const width = scorer.unitWidth;
    if (typeof scorer.packedUnits !== 'function') this.packed = null;
    else if (
      typeof width !== 'number' ||
      !Number.isInteger(width) ||
      width < 1 ||
      width > MAX_PACKED_UNIT_WIDTH
    ) {
      throw new TypeError(
        `scorer: packedUnits needs a unitWidth from 1 to ${MAX_PACKED_UNIT_WIDTH}, got ${String(width)}`,
      );
    } else {
      this.packed = new PackedUnitStore(width, expectedUnits);
    }
  }

  /** Adds document number `document` (its completion's ids, and its prompt's, which only exclude units). */
  add(document: number, tokens: ArrayLike<number>, prompt?: ArrayLike<number>): void {
    const hasPrompt = prompt !== undefined && prompt.length > 0;
    if (this.packed !== null) {
      const given = this.scorer.packedUnits!(tokens, hasPrompt ? prompt : undefined);
      this.packed.add(document, given.completion.words, given.completion.values, given.prompt);
      return;
    }
    const inContext =
      hasPrompt && typeof this.scorer.unitsInContext === 'function'
        ? this.scorer.unitsInContext(tokens, prompt)
        : null;
    const units = inContext?.completion ?? this.scorer.units(tokens);
    this.numUnits += units.keys.length;
    units.keys.forEach((unit, i) => {
      if (this.index.has(unit)) return;
      this.index.set(unit, this.values.length);
      this.values.push(units.values[i]!);
      this.documentOf.push(document);
    });
    if (hasPrompt) {
      for (const unit of inContext?.prompt ?? this.scorer.units(prompt).keys) this.promptUnits.add(unit);
    }
  }

  /** The totals over the distinct units seen in no prompt, and each document's share. */
  finish(numDocuments: number): CorpusTotals {
    const tally = new UnitTally(numDocuments);
    if (this.packed !== null) return totalsOf(tally, this.packed.size, this.packed.tally(tally));
    for (const [unit, at] of this.index) {
      if (this.promptUnits.has(unit)) tally.excluded++;
      else tally.add(this.values[at]!, this.documentOf[at]!);
    }
    return totalsOf(tally, this.numUnits, this.index.size);
  }
}

/** What {@link ForeignCorpusTest.finish} gives. */
interface CorpusTotals {
  readonly numUnits: number;
  readonly numRepeated: number;
  readonly numExcludedByPrompt: number;
  readonly numScored: number;
  readonly score: number;
  readonly perDocument: { readonly numScored: Uint32Array; readonly score: Float64Array };
}

function totalsOf(tally: UnitTally, numUnits: number, distinct: number): CorpusTotals {
  return {
    numUnits,
    numRepeated: numUnits - distinct,
    numExcludedByPrompt: tally.excluded,
    numScored: tally.numScored,
    score: tally.score,
    perDocument: tally.perDocument,
  };
}

interface ScanRule {
  readonly alpha: number;
  readonly missRate: number;
  readonly minimumDose: number;
  readonly calibrationThreshold: number;
}

/** Below a bound by at least this much (log10), a tail is taken to be below it whatever the rounding. */
const BOUND_MARGIN = 1e-6;

/**
 * The `count` documents of lowest p-value (then lowest number), each with its exact tail, and how many
 * documents have scored units (the Bonferroni count). With the scorer's `tailLowerBound`, exact tails
 * are computed in order of their bounds and only until the next bound exceeds the `count`-th smallest
 * tail found: every document left has a tail at least its bound, so it could not rank among them (the
 * same documents, with the same values, as computing every tail and sorting them).
 */
function topForeignDocuments(
  scorer: CorpusScorer,
  perDocument: { readonly numScored: Uint32Array; readonly score: Float64Array },
  sources: readonly string[],
  count: number,
): { documents: ForeignDocumentReport[]; numDocuments: number } {
  const scored: number[] = [];
  for (let document = 0; document < sources.length; document++) {
    if (perDocument.numScored[document]! > 0) scored.push(document);
  }
  const bound = scorer.tailLowerBound;
  const bounds =
    typeof bound === 'function'
      ? Float64Array.from(scored, (d) => bound(perDocument.score[d]!, perDocument.numScored[d]!))
      : null;
  // In order of their bounds (stable: by number among equal bounds); every document without bounds.
  const order = scored.map((_, at) => at);
  if (bounds !== null) order.sort((a, b) => bounds[a]! - bounds[b]! || a - b);
  const byRank = (a: ForeignDocumentReport, b: ForeignDocumentReport): number =>
    a.log10P - b.log10P || a.document - b.document;
  const found: ForeignDocumentReport[] = [];
  // The `count` lowest tails found so far, in rank order (the last one is the count-th).
  const kept: ForeignDocumentReport[] = [];
  for (const at of order) {
    if (
      bounds !== null &&
      (count === 0 || (kept.length === count && bounds[at]! > kept[count - 1]!.log10P + BOUND_MARGIN))
    )
      break;
    const document = scored[at]!;
    const n = perDocument.numScored[document]!;
    const score = perDocument.score[document]!;
    const report = {
      document,
      source: sources[document]!,
      numScored: n,
      score,
      log10P: scorer.tail(score, n),
      log10PCorrected: 0,
    };
    found.push(report);
    if (bounds !== null && count > 0) {
      // Into its place (binary search), dropping what falls past the count-th.
      let low = 0;
      let high = kept.length;
      while (low < high) {
        const middle = (low + high) >>> 1;
        if (byRank(kept[middle]!, report) < 0) low = middle + 1;
        else high = middle;
      }
      kept.splice(low, 0, report);
      if (kept.length > count) kept.pop();
    }
  }
  found.sort(byRank);
  return { documents: found.slice(0, count), numDocuments: scored.length };
}

/** An engine key's verdict at its Holm-adjusted p-value. */
function foreignVerdict(
  scorer: CorpusScorer,
  numScored: number,
  log10PAdjusted: number,
  doseUpperBound: number | null,
  rule: ScanRule,
): { verdict: ScanVerdict; reason: string } {
  const p = `p = 10^${log10PAdjusted.toFixed(2)}`;
  if (numScored === 0) {
    return { verdict: 'insufficient', reason: 'no evidence: 0 scored units (no unit could be scored)' };
  }
  if (log10PAdjusted <= Math.log10(rule.alpha)) {
    return {
      verdict: 'radioactive',
      reason: `${p} (Holm-adjusted) ≤ α = ${rule.alpha} for ${scorer.schemeName} over ${numScored} distinct units; the null distribution is exact, so no fake keys are needed`,
    };
  }
  if (log10PAdjusted <= Math.log10(NO_EVIDENCE_LEVEL)) {
    return {
      verdict: 'insufficient',
      reason: `some evidence (${p}, Holm-adjusted) that does not reach α = ${rule.alpha}; more scored tokens are needed`,
    };
  }
  if (doseUpperBound === null) {
    return {
      verdict: 'insufficient',
      reason: `no evidence (${p}); ${scorer.schemeName} gives no not_radioactive verdict: ${scorer.nullGreenProbability === null ? "under the mark its score depends on the model's entropy, which no key parameter bounds" : 'the key has no logit bias (δ = 0) to bound a dose with'}`,
    };
  }
  if (rulesOutDose(doseUpperBound, rule.minimumDose)) {
    return {
      verdict: 'not_radioactive',
      reason: `no evidence (${p}), and the data rule out a dose of ${scanPercent(rule.minimumDose)} or more (they rule out doses above ${scanPercent(doseUpperBound)} at miss rate ${rule.missRate}); a dose is the share of the scanned text that carries the engine's full bias`,
    };
  }
  return {
    verdict: 'insufficient',
    reason: `not significant, and too few scored units to rule out a dose of ${scanPercent(rule.minimumDose)} (${ruledOutDoses(doseUpperBound)})`,
  };
}

/** A tracemark key's verdict at a new Holm-adjusted p-value, by the tracemark scan's rule (scan.ts). */
function tracemarkVerdict(
  scan: KeyScan,
  log10PAdjusted: number,
  rule: ScanRule,
): { verdict: ScanVerdict; reason: string } {
  const c = scan.calibration;
  const p = `p = 10^${log10PAdjusted.toFixed(2)}`;
  if (scan.numScored === 0 || c.uniform !== true) return { verdict: scan.verdict, reason: scan.reason };
  if (log10PAdjusted <= Math.log10(rule.alpha)) {
    return c.rank === 1
      ? {
          verdict: 'radioactive',
          reason: `${p} (Holm-adjusted) ≤ α = ${rule.alpha}, and the key beats all ${c.fakeKeys} fake keys`,
        }
      : {
          verdict: 'insufficient',
          reason: `p ≤ α, but ${c.rank - 1} fake key(s) score as strongly as the true key; verdict withheld`,
        };
  }
  if (log10PAdjusted <= Math.log10(NO_EVIDENCE_LEVEL)) {
    return {
      verdict: 'insufficient',
      reason: `some evidence (${p}, Holm-adjusted) that does not reach α = ${rule.alpha}; more scored tokens are needed`,
    };
  }
  if (rulesOutDose(scan.doseUpperBound, rule.minimumDose)) {
    return {
      verdict: 'not_radioactive',
      reason: `no evidence (${p}), and the data rule out a dose of ${scanPercent(rule.minimumDose)} or more (they rule out doses above ${scanPercent(scan.doseUpperBound)} at miss rate ${rule.missRate}); a dose is the share of the scanned text that carries our watermark's full bias, so samples of a model trained on a smaller share of our outputs can pass (a smaller minimum dose, with more scored tokens, rules out less)`,
    };
  }
  return {
    verdict: 'insufficient',
    reason: `not significant, and too few scored tokens to rule out a dose of ${scanPercent(rule.minimumDose)} (${ruledOutDoses(scan.doseUpperBound)})`,
  };
}

export interface AnyScanOptions extends Omit<ScanOptions, 'keys'> {
  /** Tracemark keys and engines' keys, in the order reports list them; one tokenizer. */
  readonly keys: readonly (WatermarkKey | ForeignScanKey)[];
}

/**
 * Scans a corpus under tracemark keys, engines' keys, or both. Tracemark green-list keys alone take
 * {@link scanCorpus} unchanged; tracemark Gumbel keys take the corpus-wide test with their exact tail
 * (gumbel-scan.ts). Engines' keys and Gumbel keys do not take the supervised filter
 * (`issuedWindows`), which selects green-list windows.
 */
export async function scanCorpusAnyKeys(options: AnyScanOptions): Promise<AnyScanReport> {
  const given = options.keys;
  if (!Array.isArray(given) || given.length === 0) throw new RangeError('keys: expected at least one key');
  const gumbelKeys = given.filter((key): key is WatermarkKey => !isForeignScanKey(key) && isGumbelKey(key));
  if (gumbelKeys.length > 0 && options.issuedWindows !== undefined) {
    throw new RangeError(
      `issuedWindows: the supervised filter selects green-list windows; it does not apply to key ${gumbelKeys[0]!.keyId} (${gumbelKeys[0]!.scheme.name}); scan Gumbel keys without it`,
    );
  }
  // The special tokens are read by every scorer and by scanCorpus: an iterable may be read once only.
  const specialTokenIds = [...options.specialTokenIds];
  // Gumbel keys become corpus-wide tests with their exact tail; the same object stays in its place.
  const keys = given.map((key) =>
    !isForeignScanKey(key) && isGumbelKey(key) ? gumbelScanKey(key, specialTokenIds) : key,
  );
  const foreign = keys.filter(isForeignScanKey);
  const tracemark = keys.filter((key): key is WatermarkKey => !isForeignScanKey(key));
  if (foreign.length === 0) return scanCorpus({ ...options, keys: tracemark, specialTokenIds });
  const tokenizers = new Set(
    keys.map((key) => (isForeignScanKey(key) ? key.scorer.key.tokenizer : key.tokenizer)),
  );
  if (tokenizers.size > 1) {
    throw new RangeError(
      `keys: bound to different tokenizers (${[...tokenizers].join(', ')}); scan one tokenizer at a time`,
    );
  }
  if (options.issuedWindows !== undefined) {
    throw new RangeError(
      `issuedWindows: the supervised filter selects tracemark windows; it does not apply to ${foreign[0]!.label} keys`,
    );
  }
  if (options.pooledKeyIds !== undefined) {
    throw new RangeError(
      `pooledKeyIds: a pool is scanned with tracemark green-list keys alone, not beside ${foreign[0]!.label} keys`,
    );
  }
  const rule: ScanRule = {
    alpha: checkUnit('alpha', options.alpha ?? DEFAULT_SCAN_ALPHA),
    missRate: checkUnit('missRate', options.missRate ?? DEFAULT_SCAN_MISS_RATE),
    minimumDose: checkUnit('minimumDose', options.minimumDose ?? DEFAULT_MINIMUM_DOSE, false),
    calibrationThreshold: checkUnit(
      'calibrationThreshold',
      options.calibrationThreshold ?? DEFAULT_CALIBRATION_THRESHOLD,
    ),
  };
  const topDocumentCount = options.topDocuments ?? 5;
  if (!Number.isInteger(topDocumentCount) || topDocumentCount < 0 || topDocumentCount > 1000) {
    throw new RangeError(`topDocuments: expected an integer from 0 to 1000, got ${String(topDocumentCount)}`);
  }
  const tests = foreign.map((key) => new ForeignCorpusTest(key.scorer, options.expectedTokens ?? 0));

  // The documents pass through the engines' tests on their way to the tracemark scan (if any).
  const sources: string[] = [];
  let numTokens = 0;
  let numPromptTokens = 0;
  async function* feed(): AsyncGenerator<ScanDocument> {
    for await (const document of options.documents) {
      if (document === null || typeof document !== 'object')
        throw new TypeError('documents: expected objects');
      const index = sources.length;
      sources.push(String(document.source));
      numTokens += document.tokens.length;
      numPromptTokens += document.prompt?.length ?? 0;
      for (const test of tests) test.add(index, document.tokens, document.prompt);
      yield document;
    }
  }
  let tracemarkReport: ScanReport | null = null;
  if (tracemark.length > 0) {
    tracemarkReport = await scanCorpus({ ...options, keys: tracemark, specialTokenIds, documents: feed() });
  } else {
    for await (const _ of feed());
  }

  const log10Beta = Math.log10(rule.missRate);
  const foreignPartial = tests.map((test, i) => {
    const scorer = test.scorer;
    const totals = test.finish(sources.length);
    const log10P = scorer.tail(totals.score, totals.numScored);
    const gamma = scorer.nullGreenProbability;
    const numGreen = gamma === null ? null : Math.round(totals.score);
    const alternative = scorer.verdictOptions.alternative;
    const doseUpperBound =
      gamma === null || alternative === null
        ? null
        : doseUpperBoundOf(numGreen!, totals.numScored, gamma, 2 * (alternative - gamma), log10Beta);
    const { documents, numDocuments } = topForeignDocuments(
      scorer,
      totals.perDocument,
      sources,
      topDocumentCount,
    );
    return { key: foreign[i]!, totals, log10P, numGreen, doseUpperBound, documents, numDocuments };
  });

  // Holm over every key, in the order given.
  const order = keys.map((key) =>
    isForeignScanKey(key)
      ? { kind: 'foreign' as const, at: foreign.indexOf(key) }
      : { kind: 'tracemark' as const, at: tracemark.indexOf(key) },
  );
  const log10Ps = order.map((entry) =>
    entry.kind === 'foreign' ? foreignPartial[entry.at]!.log10P : tracemarkReport!.keys[entry.at]!.log10P,
  );
  const adjusted = holmAdjustLog10(log10Ps);
  const scans = order.map((entry, i): KeyScan | ForeignKeyScan => {
    const log10PAdjusted = adjusted[i]!;
    if (entry.kind === 'tracemark') {
      const scan = tracemarkReport!.keys[entry.at]!;
      return { ...scan, log10PAdjusted, ...tracemarkVerdict(scan, log10PAdjusted, rule) };
    }
    const p = foreignPartial[entry.at]!;
    const scorer = p.key.scorer;
    const { totals } = p;
    const gamma = scorer.nullGreenProbability;
    return {
      keyId: scorer.key.keyId,
      family: scorer.key.kind,
      label: p.key.label,
      scheme: scorer.schemeName,
      parameters: p.key.parameters,
      nullDistribution: nullDistribution(scorer),
      numUnits: totals.numUnits,
      numRepeated: totals.numRepeated,
      numExcludedByPrompt: totals.numExcludedByPrompt,
      numScored: totals.numScored,
      score: totals.score,
      numGreen: p.numGreen,
      greenFraction: p.numGreen === null || totals.numScored === 0 ? null : p.numGreen / totals.numScored,
      z: gamma === null ? null : zScore(p.numGreen!, totals.numScored, gamma),
      log10P: p.log10P,
      log10PAdjusted,
      calibration: null,
      doseUpperBound: p.doseUpperBound,
      ...foreignVerdict(scorer, totals.numScored, log10PAdjusted, p.doseUpperBound, rule),
      topDocuments: p.documents.map((d) => ({
        ...d,
        log10PCorrected: bonferroniLog10(d.log10P, p.numDocuments),
      })),
    };
  });

  // The corpus verdict, as scanCorpus decides it.
  let matched: KeyScan | ForeignKeyScan | null = null;
  for (const scan of scans) {
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
  if (matched !== null) {
    verdict = 'radioactive';
    reason = `key ${matched.keyId}: ${matched.reason}`;
  } else if (scans.every((scan) => scan.verdict === 'not_radioactive')) {
    verdict = 'not_radioactive';
    reason = scans.length === 1 ? scans[0]!.reason : `every key: ${scans.map((s) => s.reason).join('; ')}`;
  } else {
    verdict = 'insufficient';
    const first = scans.find((scan) => scan.verdict === 'insufficient')!;
    reason = scans.length === 1 ? first.reason : `key ${first.keyId}: ${first.reason}`;
  }
  return {
    verdict,
    reason,
    matchedKeyId: matched?.keyId ?? null,
    alpha: rule.alpha,
    missRate: rule.missRate,
    minimumDose: rule.minimumDose,
    calibrationThreshold: rule.calibrationThreshold,
    supervised: false,
    issued: null,
    numDocuments: sources.length,
    numTokens,
    numPromptTokens,
    fakeKeys: tracemarkReport?.fakeKeys ?? {
      count: 0,
      seed: options.fakeKeySeed ?? DEFAULT_FAKE_KEY_SEED,
    },
    keys: scans,
    pool: null,
  };
}

function checkUnit(name: string, value: number, open = true): number {
  if (typeof value !== 'number' || !(open ? value > 0 && value < 1 : value > 0 && value <= 1)) {
    throw new RangeError(
      `${name}: expected a number ${open ? 'strictly between 0 and 1' : 'in (0, 1]'}, got ${String(value)}`,
    );
  }
  return value;
}
