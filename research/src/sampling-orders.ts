/**
 * The sampling order of spec §7 before the `sampling` experiment: top-k / top-p chose the kept candidates
 * from the unbiased distribution at temperature T, and the bias applied within them. Kept here only to
 * measure what that order cost (a small top-p or a low temperature left one candidate and no mark); the
 * core sampler truncates the watermarked distribution instead.
 */
import {
  type RandomSource,
  type SampleOptions,
  type SampleResult,
  type SparseLogits,
  sampleToken,
} from '@tracemark/core';

export function sampleTokenTruncatingFirst(
  logits: SparseLogits,
  context: ArrayLike<number>,
  random: RandomSource,
  options: SampleOptions,
): SampleResult {
  const temperature = options.temperature ?? 1;
  const topP = options.topP ?? 1;
  if (temperature === 0 || topP >= 1) return sampleToken(logits, context, random, options);
  const order = Array.from(logits.ids.keys()).sort((a, b) => logits.logits[b]! - logits.logits[a]! || a - b);
  const max = logits.logits[order[0]!]!;
  const weights = order.map((i) => Math.exp((logits.logits[i]! - max) / temperature));
  const total = weights.reduce((sum, w) => sum + w, 0);
  let keep = order.length;
  let running = 0;
  for (let j = 0; j < order.length; j++) {
    running += weights[j]!;
    if (running >= topP * total) {
      keep = j + 1;
      break;
    }
  }
  const kept = order.slice(0, keep);
  const watermarker = options.watermarker ?? null;
  const test = watermarker === null ? null : watermarker.candidateTester(context);
  const delta = watermarker === null ? 0 : watermarker.scheme.delta;
  const biased = kept.map(
    (i) => logits.logits[i]! + (test !== null && test(logits.ids[i]!) === 1 ? delta : 0),
  );
  const top = Math.max(...biased);
  const keptWeights = biased.map((v) => Math.exp((v - top) / temperature));
  let target = random.nextFloat() * keptWeights.reduce((sum, w) => sum + w, 0);
  for (let j = 0; j < kept.length; j++) {
    target -= keptWeights[j]!;
    if (target < 0) return { token: logits.ids[kept[j]!]!, membershipTests: kept.length };
  }
  return { token: logits.ids[kept[kept.length - 1]!]!, membershipTests: kept.length };
}
