/**
 * "Carries our mark" is not "issued by us": a spoofer who learned the green lists from harvested outputs
 * (Jovanović et al. 2024) writes text the detector calls watermarked. Such text leaves an artefact: its
 * marked tokens sit on (previous token, token) pairs that are common in ordinary text, the pairs an
 * attacker can learn, more than a genuine mark's do (core `spoofTest`: an exact one-sided Fisher test;
 * research `stealing`: it rejects 0 of 40 genuine texts at 1% under every scheme and 68–93% of accepted
 * LeftHash(1) spoofs, 41–43% of LeftHash(2)'s, none of SelfHash's). It is reported beside the verdict, for
 * green-list keys with a context of one or two tokens (where it has power), and never changes the verdict.
 *
 * One test for the gateway's `/v1/verify` and `tracemark detect`: the same text and key get the same
 * numbers. The learnability table (bigram counts of unwatermarked reference text in the keys' tokenizer)
 * is the caller's: this package reads no corpus. Both callers give lm's `brownBigramCounts`.
 */
import {
  createWatermarker,
  type NgramCounts,
  spoofTest,
  type Watermarker,
  type WatermarkKey,
} from '@tracemark/core';
import type { Tokenizer } from '@tracemark/tokenizers';
import type { AnyWatermarkKey } from './key-files.ts';

/** The test's level: a p-value at or below it flags the text. */
export const SPOOF_TEST_ALPHA = 0.01;
/** Longer texts are not tested (the gateway's request path; detect alike). */
export const SPOOF_TEST_MAX_TOKENS = 20_000;
export const SPOOF_TEST_NAME = 'tracemark-spoof-fisher-v1';

export interface SpoofingResult {
  readonly test: string;
  /** What "common" is measured against. */
  readonly learnability: string;
  readonly keyId: string;
  readonly numScored: number;
  /** Marked shares among common and rare positions. */
  readonly commonMarkedShare: number | null;
  readonly rareMarkedShare: number | null;
  readonly log10P: number;
  readonly alpha: number;
  /** p ≤ α: the mark sits where an attacker could have learned it; the text may be forged. */
  readonly flagged: boolean;
}

export interface SpoofingInput {
  /** The text, encoded with the checker's tokenizer; `tokens`, when given, are used instead. */
  readonly text?: string;
  readonly tokens?: readonly number[] | Uint32Array;
  /** Context for the first tokens; its pairs are not scored. */
  readonly prompt?: string | readonly number[] | Uint32Array;
}

export interface SpoofingCheckerOptions {
  /**
   * Bigram counts (order 2) of unwatermarked reference text in the tokenizer's ids. Called on the first
   * text tested, and again only if it failed.
   */
  readonly bigrams: () => Promise<NgramCounts>;
  /** What the counts are of, reported as the result's `learnability`. */
  readonly learnability: string;
}

export interface SpoofingChecker {
  /** null when the key or the text is not one the test applies to ({@link spoofTestApplies}). */
  check(key: AnyWatermarkKey, input: SpoofingInput): Promise<SpoofingResult | null>;
}

/**
 * Whether the test applies to a key (a tracemark green-list key whose context is one or two tokens; an
 * engine's key is not tested) and, when `numTokens` is given, to a text of that many tokens (1 to
 * {@link SPOOF_TEST_MAX_TOKENS}).
 */
export function spoofTestApplies(key: AnyWatermarkKey, numTokens?: number): key is WatermarkKey {
  if (key.kind !== undefined && key.kind !== 'tracemark') return false;
  const { scheme } = key as WatermarkKey;
  if (scheme.family !== 'green-list' || scheme.contextWidth > 2) return false;
  return numTokens === undefined || (numTokens > 0 && numTokens <= SPOOF_TEST_MAX_TOKENS);
}

export function createSpoofingChecker(
  tokenizer: Tokenizer,
  options: SpoofingCheckerOptions,
): SpoofingChecker {
  if (typeof options?.bigrams !== 'function') throw new TypeError('options.bigrams: expected a function');
  if (typeof options.learnability !== 'string' || options.learnability === '') {
    throw new TypeError('options.learnability: expected a non-empty string');
  }
  const { learnability } = options;
  let counts: Promise<NgramCounts> | null = null;
  const bigrams = (): Promise<NgramCounts> => {
    if (counts === null) {
      const loading = options.bigrams().then((table) => {
        if (table?.order !== 2) throw new TypeError('options.bigrams: expected counts of order 2');
        return table;
      });
      // A failed build is not kept: the next text tested tries again.
      loading.catch(() => {
        if (counts === loading) counts = null;
      });
      counts = loading;
    }
    return counts;
  };
  // Deriving a watermarker costs more than testing a short text with it: one per key object.
  const watermarkers = new WeakMap<WatermarkKey, Watermarker>();
  const watermarkerOf = (key: WatermarkKey): Watermarker => {
    let watermarker = watermarkers.get(key);
    if (watermarker === undefined) {
      watermarker = createWatermarker(key);
      watermarkers.set(key, watermarker);
    }
    return watermarker;
  };
  const encode = (value: string | readonly number[] | Uint32Array): Uint32Array =>
    typeof value === 'string' ? tokenizer.encodeFast(value) : Uint32Array.from(value);
  return Object.freeze({
    async check(key: AnyWatermarkKey, input: SpoofingInput): Promise<SpoofingResult | null> {
      if (!spoofTestApplies(key)) return null;
      const tokens = encode(input.tokens ?? input.text ?? '');
      if (!spoofTestApplies(key, tokens.length)) return null;
      const prompt = input.prompt === undefined ? null : encode(input.prompt);
      const table = await bigrams();
      const result = spoofTest(tokens, watermarkerOf(key), (ids, index) => table.count(ids, index), {
        ...(prompt === null ? {} : { prompt }),
      });
      const share = (group: { numScored: number; numMarked: number }) =>
        group.numScored === 0 ? null : group.numMarked / group.numScored;
      return {
        test: SPOOF_TEST_NAME,
        learnability,
        keyId: key.keyId,
        numScored: result.numScored,
        commonMarkedShare: share(result.common),
        rareMarkedShare: share(result.rare),
        log10P: result.log10P,
        alpha: SPOOF_TEST_ALPHA,
        flagged: result.log10P <= Math.log10(SPOOF_TEST_ALPHA),
      };
    },
  });
}
