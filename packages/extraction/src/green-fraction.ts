/**
 * The green fraction of our own issued outputs under a key, for the dose estimate
 * ρ ≈ (ĝ − γ)/(ĝ_issued − γ): one dedup tape across all outputs, as for the suspect corpus.
 */
import { createWatermarker, DedupTape, isGumbelScheme, Scorer, type WatermarkKey } from '@tracemark/core';

export interface GreenFraction {
  readonly numScored: number;
  readonly numGreen: number;
  readonly greenFraction: number;
}

/** Scores issued outputs (token ids) under `key` with one shared dedup tape. */
export async function measureGreenFraction(
  outputs: Iterable<ArrayLike<number>> | AsyncIterable<ArrayLike<number>>,
  key: WatermarkKey,
  specialTokenIds: Iterable<number>,
): Promise<GreenFraction> {
  if (isGumbelScheme(key.scheme)) {
    throw new TypeError(
      `key ${key.keyId}: the ${key.scheme.name} scheme has no green list, so issued outputs have no green fraction (its scans take no dose estimate)`,
    );
  }
  const watermarker = createWatermarker(key, { specialTokenIds });
  const tape = new DedupTape();
  let numScored = 0;
  let numGreen = 0;
  for await (const output of outputs) {
    const scorer = new Scorer(watermarker, { tape });
    const counts = scorer.push(output);
    numScored += counts.numScored;
    numGreen += counts.numGreen;
  }
  return { numScored, numGreen, greenFraction: numScored === 0 ? 0 : numGreen / numScored };
}
