/**
 * Sampling orders the core sampler does not use, kept to measure them against it in the `sampling`
 * experiment: "truncate-first", the order before (top-p of the unbiased distribution, then the bias, so a
 * small top-p or a low temperature left one candidate and no mark), and "bias-first" (the bias, then
 * temperature, then top-p of the watermarked distribution, the order of Hugging Face's logits processors,
 * which promotes tokens the model's own top-p would cut). Both are exact samplers over sparse candidates.
 */
import {
  type RandomSource,
  type SampleOptions,
  type SampleResult,
  type SparseLogits,
  sampleToken,
} from '@tracemark/core';

function draw(
  ids: Uint32Array,
  kept: readonly number[],
  weights: readonly number[],
  random: RandomSource,
): SampleResult {
  let target = random.nextFloat() * weights.reduce((sum, w) => sum + w, 0);
  for (let j = 0; j < kept.length; j++) {
    target -= weights[j]!;
    if (target < 0) return { token: ids[kept[j]!]!, membershipTests: kept.length };
  }
  return { token: ids[kept[kept.length - 1]!]!, membershipTests: kept.length };
}

function biasOf(
  logits: SparseLogits,
  context: ArrayLike<number>,
  options: SampleOptions,
): (i: number) => number {
  const watermarker = options.watermarker ?? null;
  const test = watermarker === null ? null : watermarker.candidateTester(context);
  const delta = watermarker === null ? 0 : watermarker.scheme.delta;
  return (i) => (test !== null && test(logits.ids[i]!) === 1 ? delta : 0);
}

/** The smallest prefix of `order` whose weights reach topP of their total. */
function nucleus(order: readonly number[], weights: readonly number[], topP: number): number[] {
  const total = weights.reduce((sum, w) => sum + w, 0);
  let running = 0;
  for (let j = 0; j < order.length; j++) {
    running += weights[j]!;
    if (running >= topP * total) return order.slice(0, j + 1);
  }
  return order.slice();
}

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
  const kept = nucleus(
    order,
    order.map((i) => Math.exp((logits.logits[i]! - max) / temperature)),
    topP,
  );
  const bias = biasOf(logits, context, options);
  const biased = kept.map((i) => logits.logits[i]! + bias(i));
  const top = Math.max(...biased);
  return draw(
    logits.ids,
    kept,
    biased.map((v) => Math.exp((v - top) / temperature)),
    random,
  );
}

export function sampleTokenBiasFirst(
  logits: SparseLogits,
  context: ArrayLike<number>,
  random: RandomSource,
  options: SampleOptions,
): SampleResult {
  const temperature = options.temperature ?? 1;
  const topP = options.topP ?? 1;
  if (temperature === 0 || topP >= 1) return sampleToken(logits, context, random, options);
  const bias = biasOf(logits, context, options);
  const biased = Array.from(logits.logits, (v, i) => v + bias(i));
  const order = Array.from(logits.ids.keys()).sort((a, b) => biased[b]! - biased[a]! || a - b);
  const top = biased[order[0]!]!;
  const weights = order.map((i) => Math.exp((biased[i]! - top) / temperature));
  const kept = nucleus(order, weights, topP);
  return draw(
    logits.ids,
    kept,
    kept.map((_, j) => weights[j]!),
    random,
  );
}
