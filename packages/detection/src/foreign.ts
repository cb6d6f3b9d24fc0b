/**
 * What every foreign key type provides: the watermarks serving engines embed natively (vLLM,
 * transformers, SynthID-Text, SGLang), read by tracemark from token ids. One value of
 * {@link ForeignKeyType} per engine family; `foreign-registry.ts` lists them, and key files,
 * `tracemark keygen`, the detector, scans and the gateway reach every family through it.
 */
import type { ResolvedVerdictOptions, VllmDedup } from '@tracemark/core';

/**
 * Which repeated inputs are scored once (docs/spec/foreign-vllm.md §3 and §10): `none`, `context`
 * (the engine's rule: a repeated context window), `strict` (a repeated context-and-token pair, and
 * for schemes where the context alone decides, a repeated context). Every family accepts all three.
 */
export type ForeignDedup = VllmDedup;

/** The fields every foreign key has; a family's key type extends this. Holds the engine's secret. */
export interface ForeignKeyBase {
  /** The family: `vllm`, `transformers`, `synthid`, `sglang`; never `tracemark`. */
  readonly kind: string;
  /** A one-way hash of the key material with the family's prefix (`vllm1_…`): safe to print. */
  readonly keyId: string;
  /** The scheme within the family (`gumbel`, `kgw`, …); `${kind}:${scheme}` is its scheme name. */
  readonly scheme: string;
  /** The served model's tokenizer id; text needs one tracemark ships, token ids need none. */
  readonly tokenizer: string;
  /** For a tokenizer tracemark does not ship: token ids must be below it; null otherwise. */
  readonly vocabSize: number | null;
}

/** One key's numbers on one token sequence. */
export interface ForeignKeyScore {
  readonly numTokens: number;
  /** Positions scored after deduplication. */
  readonly numScored: number;
  /** The scheme's test statistic (a Gumbel sum, a green count, a g-value sum…). */
  readonly score: number;
  /** The green count for schemes with green lists; null otherwise. */
  readonly numGreen: number | null;
  readonly greenFraction: number | null;
  /** The score standardised under the null; for comparison only. */
  readonly z: number;
  /** Exact log10 p-value of `score` under the null; finite however small. */
  readonly log10P: number;
  /** The engine's own p-value formula in log10 (−Infinity where it underflows); null where it has none. */
  readonly peerLog10P: number | null;
}

/**
 * A document's scored units for corpus-wide tests (radioactivity scans): after the document's own
 * deduplication, one entry per scored position. `keys[i]` names what the engine's PRF saw there
 * (the family's strict deduplication key: context and token, or the seed and token), so a scan can
 * score each unit once across a whole corpus; `values[i]` is its contribution to the score.
 */
export interface ForeignUnits {
  readonly keys: readonly string[];
  readonly values: Float64Array;
  /** Index in the token ids of each unit's token, ascending (windowed detection reports passages with it). */
  readonly positions: Uint32Array;
}

/**
 * A document's units as {@link ForeignKeyScorer.packedUnits} gives them: unit i's key packed into the
 * scorer's `unitWidth` words `words[unitWidth·i … unitWidth·(i + 1))`, its value `values[i]`.
 */
export interface PackedForeignUnits {
  readonly words: Uint32Array;
  readonly values: Float64Array;
}

/** What {@link ForeignKeyScorer.packedUnits} gives: a completion's packed units and its prompt's keys. */
export interface PackedForeignDocument {
  readonly completion: PackedForeignUnits;
  /** `units(prompt).keys` packed the same way; null without a prompt (absent or empty). */
  readonly prompt: Uint32Array | null;
}

/** Scores one foreign key; built once per key and target false-positive rate. */
export interface ForeignKeyScorer<K extends ForeignKeyBase = ForeignKeyBase> {
  readonly key: K;
  /** `${kind}:${scheme}`, as `keygen --scheme` and `detect --json` name it. */
  readonly schemeName: string;
  /** Probability that a token is green under the null; null for schemes without green lists. */
  readonly nullGreenProbability: number | null;
  /**
   * α, β and the alternative of the verdict rule (spec §5.2): `alternative` null when no key
   * parameter bounds the score under the mark, and then the verdict is never `not_watermarked`.
   */
  readonly verdictOptions: ResolvedVerdictOptions;
  /** Scores token ids; throws InputError `TM_ERR_INVALID_TOKENS` for an id outside the vocabulary. */
  score(ids: ArrayLike<number>, dedup: ForeignDedup): ForeignKeyScore;
  /**
   * The units of {@link ForeignUnits} for corpus-wide tests; absent for a family that cannot be
   * scanned yet. Summing `values` over distinct keys gives a score whose null tail is {@link tail}.
   */
  units?(ids: ArrayLike<number>): ForeignUnits;
  /** Exact log10 P(score ≥ `score`) under the null for `count` distinct units; with {@link units}. */
  tail?(score: number, count: number): number;
  /**
   * Optional, with {@link tail}: a lower bound on it (log10) that costs much less, for tails that are
   * slow to compute exactly; a corpus scan then computes exact tails only for the documents that can
   * rank among its top ones.
   */
  tailLowerBound?(score: number, count: number): number;
  /** Words per unit of {@link packedUnits}, 1 to the core's `MAX_PACKED_UNIT_WIDTH` (16), the same for every sequence; with it. */
  readonly unitWidth?: number;
  /**
   * Optional, for speed (corpus scans): {@link units} without strings. The same units in the same
   * order with the same values, each key packed into {@link unitWidth} 32-bit words, so that two
   * units' words are equal exactly when their keys are, in one sequence or in two; `prompt` packs
   * `units(prompt).keys`. Throws the InputError `units` throws, the completion's before the prompt's.
   */
  packedUnits?(ids: ArrayLike<number>, prompt?: ArrayLike<number>): PackedForeignDocument;
}

/** A `tracemark keygen` flag a family reads, in commander's syntax (`--ngram-len <n>`). */
export interface ForeignKeygenFlag {
  readonly flag: string;
  readonly description: string;
}

/**
 * A parameter the engine would not accept. `parameter` is the keygen flag's long name without
 * dashes (`context-width`) or `secret`; the message never holds the secret.
 */
export class ForeignKeyError extends RangeError {
  override readonly name = 'ForeignKeyError';
  readonly parameter: string;
  /** What is wrong, without the parameter's name. */
  readonly detail: string;
  constructor(parameter: string, detail: string) {
    super(`${parameter}: ${detail}`);
    this.parameter = parameter;
    this.detail = detail;
  }
}

/** A key file of a family that cannot be used; the message names the field, never the secret. */
export class ForeignKeyFileError extends Error {
  override readonly name = 'ForeignKeyFileError';
}

/** One engine family's keys: making, storing and scoring them. */
export interface ForeignKeyType<K extends ForeignKeyBase = ForeignKeyBase> {
  readonly kind: K['kind'];
  /** How people name the engine: `vLLM`, `transformers`, `SynthID-Text`, `SGLang`. */
  readonly label: string;
  /** The key file's `format` field (`tracemark-vllm-key`). */
  readonly fileFormat: string;
  /** Every scheme name the family accepts in `keygen --scheme`, each `${kind}:${scheme}`. */
  readonly schemeNames: readonly string[];
  /** Flags of `tracemark keygen` beyond --scheme, --out, --tokenizer, --vocab-size and the secret's. */
  readonly keygenFlags: readonly ForeignKeygenFlag[];
  /** What the secret is, for `--engine-key` help and errors ("a 64-bit integer"). */
  readonly secretDescription: string;
  /**
   * Builds a key from `keygen`'s flags: `flags` maps each flag's long name without dashes
   * (`context-width`, and `tokenizer`, `vocab-size`) to its text as given; `secret` is the engine
   * key's text (from --engine-key, its file or its variable), null when none was given. Throws
   * {@link ForeignKeyError} naming the flag for a value the engine would not accept or a flag that
   * does not apply to the scheme.
   */
  fromKeygen(schemeName: string, flags: Readonly<Record<string, string>>, secret: string | null): K;
  /** Parses a key file's object (its `format` is {@link fileFormat}); throws {@link ForeignKeyFileError}. */
  parse(record: Readonly<Record<string, unknown>>): K;
  /** The key file as JSON text (it holds the secret: write it 0600). */
  serialize(key: K, createdAt?: Date): string;
  /** The public parameters (everything but the secret), as summaries and reports show them. */
  parameters(key: K): Record<string, string | number | boolean>;
  createScorer(key: K, fpr: number): ForeignKeyScorer<K>;
}
