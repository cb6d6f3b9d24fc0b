/**
 * Radioactivity scans with tracemark's Gumbel-max keys (`gumbel`, `dual_gumbel`,
 * docs/spec/watermark-gumbel.md). These keys have no green list, so the green-count scan of scan.ts
 * cannot score them; they take the corpus-wide test of foreign-scan.ts instead, with this scorer.
 *
 * Units. A unit is a scored position's (context seed, token) pair, the spec's dedup key (§2, §5.1):
 * the seed is the LeftHash seed of the h preceding tokens under the key's K_context, the value the
 * token's score −ln(1 − u_A), or (1 − α)(−ln(1 − u_A)) + α(−ln(1 − u_B)) for `dual_gumbel`. A
 * completion continues its prompt, as in `detect` (spec §6): the prompt's last tokens seed the
 * completion's first positions, and the prompt positions' own pairs are excluded corpus-wide (a pair
 * copied from a prompt is not evidence of training). The corpus test counts each distinct pair once,
 * where it first occurs, so S is the sum of n independent per-unit scores under the null.
 *
 * Tail. Under the null (a corpus made without the key) distinct (seed, token) pairs have independent
 * uniforms (random-oracle model), each score is Exp(1) (rounded down, which only lowers it,
 * watermark-gumbel §3.1), and P[S ≥ s] is the Gamma(n, 1) tail Q(n, s), or the exact weighted-Gamma
 * tail for `dual_gumbel` (core `gumbelLog10PValue`, finite far below 1e−308). The null is exact, so
 * the scan runs no fake keys for these keys (as for engines' keys): the report says so
 * (`calibration: null`, `nullDistribution`). A windowed passage search and the supervised filter
 * (issued windows) are green-list features: scans with Gumbel keys refuse the filter and report
 * documents, not passages.
 */
import {
  createWatermarker,
  gumbelLog10PValue,
  isGumbelScheme,
  log10WeightedGammaSfLowerBound,
  type Watermarker,
  type WatermarkKey,
} from '@tracemark/core';
import type { CorpusScorer, ForeignScanKey, PackedUnits } from './foreign-scan.ts';

/** The `kind` a tracemark Gumbel key's corpus scorer reports (reports name the family by it). */
export const TRACEMARK_KEY_KIND = 'tracemark';

/** True for a tracemark key of the Gumbel family (`gumbel`, `dual_gumbel`). */
export function isGumbelKey(key: WatermarkKey): boolean {
  return isGumbelScheme(key.scheme);
}

interface Units {
  readonly keys: readonly string[];
  readonly values: Float64Array;
}

/** Positions a seed batch covers (the core's batch takes at most 16,384). */
const SEED_BLOCK = 8192;

/**
 * {@link unitsOf} as word triples (seed low, seed high, token): the same units in the same order, the
 * seeds and scores a batch at a time (in WebAssembly where there is) rather than one by one;
 * `withValues` false for a prompt's units, which are never scored.
 */
function packedUnitsOf(
  watermarker: Watermarker,
  sequence: Uint32Array,
  from: number,
  to: number,
  withValues: boolean,
): PackedUnits {
  const width = watermarker.scheme.contextWidth;
  const words = new Uint32Array(3 * (to - from));
  const values = new Float64Array(withValues ? to - from : 0);
  let count = 0;
  // Eligible (spec §6): a full window, and no special token in it or at the position.
  let lastSpecial = -1;
  for (let j = Math.max(0, from - width); j < from; j++)
    if (watermarker.isSpecial(sequence[j]!)) lastSpecial = j;
  const seed = new Uint32Array(2);
  for (let blockStart = from; blockStart < to; blockStart += SEED_BLOCK) {
    const blockEnd = Math.min(to, blockStart + SEED_BLOCK);
    const batch = watermarker.batch(sequence, blockStart, blockEnd);
    for (let i = blockStart; i < blockEnd; i++) {
      const token = sequence[i]!;
      if (watermarker.isSpecial(token)) lastSpecial = i;
      if (i < width || lastSpecial >= i - width) continue;
      let high: number;
      let low: number;
      if (batch !== null) {
        low = batch.seeds[2 * (i - blockStart)]!;
        high = batch.seeds[2 * (i - blockStart) + 1]!;
      } else {
        watermarker.seedAt(sequence, i, seed);
        high = seed[0]!;
        low = seed[1]!;
      }
      words[3 * count] = low;
      words[3 * count + 1] = high;
      words[3 * count + 2] = token;
      count++;
    }
  }
  if (withValues) watermarker.tokenScores(words, count, values);
  return { words: words.subarray(0, 3 * count), values: values.subarray(0, count) };
}

/**
 * The units of positions [from, to) of `sequence` (all eligible positions, in order), keyed by
 * (seed, token), the spec's dedup key: {@link packedUnitsOf}'s words spelled out.
 */
function unitsOf(
  watermarker: Watermarker,
  sequence: Uint32Array,
  from: number,
  to: number,
  withValues: boolean,
): Units {
  const { words, values } = packedUnitsOf(watermarker, sequence, from, to, withValues);
  const keys = new Array<string>(words.length / 3);
  for (let i = 0; i < keys.length; i++) {
    const [low, high, token] = [words[3 * i]!, words[3 * i + 1]!, words[3 * i + 2]!];
    keys[i] = `${high.toString(36)}.${low.toString(36)}.${token.toString(36)}`;
  }
  return { keys, values };
}

/** The prompt's tokens, then the completion's, in one array. */
function joined(prompt: ArrayLike<number>, ids: ArrayLike<number>): Uint32Array {
  const sequence = new Uint32Array(prompt.length + ids.length);
  for (let i = 0; i < prompt.length; i++) sequence[i] = prompt[i]!;
  for (let i = 0; i < ids.length; i++) sequence[prompt.length + i] = ids[i]!;
  return sequence;
}

function checkIds(ids: ArrayLike<number>, name: string): void {
  if (ids === null || typeof ids !== 'object' || typeof ids.length !== 'number') {
    throw new TypeError(`${name}: expected an array of token ids`);
  }
  if (ids instanceof Uint32Array) return;
  for (let i = 0; i < ids.length; i++) {
    const t = ids[i];
    if (typeof t !== 'number' || !Number.isInteger(t) || t < 0 || t > 0xffffffff) {
      throw new RangeError(`${name}[${i}]: ${String(t)} is not a token id`);
    }
  }
}

/**
 * The corpus scorer of a tracemark Gumbel key: units keyed by (context seed, token), valued by the
 * token's score, and the exact tail. `specialTokenIds` are the tokenizer's (never scored, they break
 * windows, spec §6). Throws TypeError for a green-list key.
 */
export function createGumbelCorpusScorer(key: WatermarkKey, specialTokenIds: Iterable<number>): CorpusScorer {
  if (!isGumbelKey(key)) {
    throw new TypeError(
      `key ${key.keyId}: ${key.scheme.name} is a green-list scheme; its scan is scanCorpus (green counts, fake keys)`,
    );
  }
  const watermarker = createWatermarker(key, { specialTokenIds });
  const scheme = key.scheme;
  const nullDistribution =
    scheme.name === 'dual_gumbel'
      ? `exact: the score of n distinct (seed, token) pairs is (1 − α)X + αY with X, Y ~ Gamma(n, 1) independent, α = ${scheme.alpha} (each unit (1 − α)E_A + αE_B, E ~ Exp(1)); its tail is a negative-binomial mixture of Gamma tails (watermark-gumbel §5.2)`
      : 'exact: the score of n distinct (seed, token) pairs is Gamma(n, 1) (each unit −ln(1 − u) ~ Exp(1)), p = Q(n, S) (watermark-gumbel §5.2)';
  return Object.freeze({
    key: Object.freeze({ keyId: key.keyId, kind: TRACEMARK_KEY_KIND, tokenizer: key.tokenizer }),
    schemeName: scheme.name,
    nullGreenProbability: null,
    // Under the mark the score depends on the model's entropy, which no key parameter bounds.
    verdictOptions: Object.freeze({ alternative: null }),
    nullDistribution,
    units(ids: ArrayLike<number>): Units {
      checkIds(ids, 'tokens');
      const sequence = ids instanceof Uint32Array ? ids : joined([], ids);
      return unitsOf(watermarker, sequence, 0, sequence.length, true);
    },
    unitsInContext(ids: ArrayLike<number>, prompt: ArrayLike<number>) {
      checkIds(ids, 'tokens');
      checkIds(prompt, 'prompt');
      const sequence = joined(prompt, ids);
      return {
        completion: unitsOf(watermarker, sequence, prompt.length, sequence.length, true),
        prompt: unitsOf(watermarker, sequence, 0, prompt.length, false).keys,
      };
    },
    // (seed low, seed high, token): the words the units' keys above spell out.
    unitWidth: 3,
    packedUnits(ids: ArrayLike<number>, prompt?: ArrayLike<number>) {
      checkIds(ids, 'tokens');
      if (prompt === undefined || prompt.length === 0) {
        const sequence = ids instanceof Uint32Array ? ids : joined([], ids);
        return { completion: packedUnitsOf(watermarker, sequence, 0, sequence.length, true), prompt: null };
      }
      checkIds(prompt, 'prompt');
      const sequence = joined(prompt, ids);
      const m = prompt.length;
      return {
        completion: packedUnitsOf(watermarker, sequence, m, sequence.length, true),
        prompt: packedUnitsOf(watermarker, sequence, 0, m, false).words,
      };
    },
    tail(score: number, count: number): number {
      return gumbelLog10PValue(scheme, count, Math.max(0, score));
    },
    // dual_gumbel's exact tail sums a mixture of thousands of Gamma tails; a few bound it from below.
    ...(scheme.name === 'dual_gumbel'
      ? {
          tailLowerBound: (score: number, count: number): number =>
            count === 0 || !(score > 0)
              ? 0
              : log10WeightedGammaSfLowerBound(count, 1 - scheme.alpha, scheme.alpha, score),
        }
      : {}),
  });
}

/** A tracemark Gumbel key as the corpus-wide test takes it (scanCorpusAnyKeys routes them here). */
export function gumbelScanKey(key: WatermarkKey, specialTokenIds: Iterable<number>): ForeignScanKey {
  const scheme = key.scheme;
  return {
    scorer: createGumbelCorpusScorer(key, specialTokenIds),
    label: 'tracemark',
    parameters: {
      scheme: scheme.name,
      contextWidth: scheme.contextWidth,
      ...(scheme.name === 'dual_gumbel' ? { alpha: scheme.alpha } : {}),
    },
  };
}
