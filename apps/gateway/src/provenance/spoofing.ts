/**
 * "Carries our mark" is not "issued by us": a spoofer who learned the green lists from harvested outputs
 * (Jovanović et al. 2024) writes text the detector calls watermarked. Such text leaves an artefact: its
 * marked tokens sit on (previous token, token) pairs that are common in ordinary text, the pairs an
 * attacker can learn, more than a genuine mark's do (core `spoofTest`: an exact one-sided Fisher test;
 * research `stealing`: it rejects 0 of 40 genuine texts at 1% under every scheme and 68–93% of accepted
 * LeftHash(1) spoofs, 41–43% of LeftHash(2)'s, none of SelfHash's). It is reported beside the verdict, for
 * green-list keys with a context of one or two tokens (where it has power), and never changes the verdict.
 *
 * Learnability: bigram counts of the Brown corpus's training split in the serving tokenizer, built once,
 * on the first verification that needs them.
 */
import {
  createNgramCounts,
  createWatermarker,
  type NgramCounts,
  spoofTest,
  type WatermarkKey,
} from '@tracemark/core';
import { loadHumanCorpus } from '@tracemark/lm';
import type { Tokenizer } from '@tracemark/tokenizers';

/** The test's level: a p-value at or below it flags the text. */
export const SPOOF_TEST_ALPHA = 0.01;
/** Longer texts are not tested on the request path. */
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
  readonly text?: string;
  readonly tokens?: readonly number[];
  readonly prompt?: string | readonly number[];
}

export interface SpoofingChecker {
  /** null when the key or the text is not one the test applies to. */
  check(key: WatermarkKey, input: SpoofingInput): Promise<SpoofingResult | null>;
}

export function createSpoofingChecker(tokenizer: Tokenizer): SpoofingChecker {
  let counts: Promise<NgramCounts> | null = null;
  const bigrams = () => {
    counts ??= loadHumanCorpus({ split: 'train', source: 'brown' }).then((documents) =>
      createNgramCounts(
        documents.map((document) => tokenizer.encodeFast(document.text)),
        2,
      ),
    );
    return counts;
  };
  return {
    async check(key, input) {
      const { scheme } = key;
      if (scheme.family !== 'green-list' || scheme.contextWidth > 2) return null;
      const encode = (value: string | readonly number[]) =>
        typeof value === 'string' ? tokenizer.encodeFast(value) : Uint32Array.from(value);
      const tokens = encode(input.tokens ?? input.text ?? '');
      if (tokens.length === 0 || tokens.length > SPOOF_TEST_MAX_TOKENS) return null;
      const prompt = input.prompt === undefined ? null : encode(input.prompt);
      const table = await bigrams();
      const result = spoofTest(tokens, createWatermarker(key), (ids, index) => table.count(ids, index), {
        ...(prompt === null ? {} : { prompt }),
      });
      const share = (group: { numScored: number; numMarked: number }) =>
        group.numScored === 0 ? null : group.numMarked / group.numScored;
      return {
        test: SPOOF_TEST_NAME,
        learnability: 'bigram counts of the Brown corpus (training split)',
        keyId: key.keyId,
        numScored: result.numScored,
        commonMarkedShare: share(result.common),
        rareMarkedShare: share(result.rare),
        log10P: result.log10P,
        alpha: SPOOF_TEST_ALPHA,
        flagged: result.log10P <= Math.log10(SPOOF_TEST_ALPHA),
      };
    },
  };
}
