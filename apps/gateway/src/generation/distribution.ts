/**
 * The watermarked next-token distribution over a candidate set, and speculative acceptance of an upstream's
 * own samples as drafts (Leviathan et al. 2023, https://arxiv.org/abs/2211.17192; Chen et al. 2023,
 * https://arxiv.org/abs/2302.01318): accept the draft x with probability min(1, q(x)/p(x)), else draw from
 * the residual max(0, q − p) normalized. The result is distributed exactly as q whenever x was drawn from p.
 * With several independent drafts from p at one position, the rejection repeats against each residual in
 * turn (recursive rejection sampling, as SpecInfer's multi-step speculative sampling, Miao et al. 2024,
 * https://arxiv.org/abs/2305.09781): every step is an exact speculative step toward the previous residual,
 * so the result is still distributed exactly as q, and it is a draft far more often.
 *
 * Here p is the distribution the upstream samples from (temperature T, top-k = the candidates it reports,
 * plus any of them whose token has no id here), and q is what core's sampler would sample (spec §7): top-p
 * of p, widened to every candidate within δ of the best logit, chooses the kept candidates, then
 * q(x) ∝ exp((ℓ_x + δ·green(x)) / T) over them. So the output follows q exactly within the upstream's top-k
 * truncation.
 */
import type { RandomSource, SparseLogits, Watermarker } from '@tracemark/core';

export interface TargetOptions {
  readonly watermarker: Watermarker | null;
  readonly temperature: number;
  readonly topP: number;
}

/**
 * p and q over the same candidates (indices into `candidates.ids`). p is a sub-distribution when some of the
 * upstream's top-k have no id here: its missing mass is the chance that the upstream drew one of those.
 */
export interface DraftDistributions {
  readonly ids: Uint32Array;
  readonly p: Float64Array;
  readonly q: Float64Array;
}

/** Softmax of logits / T over the candidates (T = 0: all mass on the largest, lowest index on ties). */
function softmax(values: ArrayLike<number>, temperature: number, bias: Float64Array | null): Float64Array {
  const out = new Float64Array(values.length);
  if (values.length === 0) return out;
  let best = 0;
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]! + (bias === null ? 0 : bias[i]!);
    if (v > max) {
      max = v;
      best = i;
    }
  }
  if (temperature === 0 || max === Number.NEGATIVE_INFINITY) {
    out[best] = 1;
    return out;
  }
  let total = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]! + (bias === null ? 0 : bias[i]!);
    total += out[i] = v === Number.NEGATIVE_INFINITY ? 0 : Math.exp((v - max) / temperature);
  }
  for (let i = 0; i < out.length; i++) out[i]! /= total;
  return out;
}

/** The δ-bias of each candidate after `context` (0 for red, ineligible or no watermark). */
export function greenBias(
  candidates: SparseLogits,
  context: ArrayLike<number>,
  watermarker: Watermarker | null,
): Float64Array {
  const bias = new Float64Array(candidates.ids.length);
  if (watermarker === null || watermarker.scheme.delta === 0) return bias;
  const test = watermarker.candidateTester(context);
  const delta = watermarker.scheme.delta;
  for (let i = 0; i < bias.length; i++) if (test(candidates.ids[i]!) === 1) bias[i] = delta;
  return bias;
}

/**
 * p (what the upstream samples from) and q (the watermarked target) over the candidates. `unmappedLogits`:
 * the logprobs of the upstream's other top-k entries, tokens that have no id here (q gives them nothing).
 */
export function draftDistributions(
  candidates: SparseLogits,
  context: ArrayLike<number>,
  options: TargetOptions,
  unmappedLogits: ArrayLike<number> = [],
): DraftDistributions {
  const { temperature, topP } = options;
  const count = candidates.ids.length;
  const within = softmax(candidates.logits, temperature, null);
  let p = within;
  if (unmappedLogits.length > 0) {
    const all = softmax([...candidates.logits, ...Array.from(unmappedLogits)], temperature, null);
    p = all.slice(0, count);
  }
  const bias = greenBias(candidates, context, options.watermarker);
  const masked = Float64Array.from(bias);
  if (topP < 1 && temperature > 0 && count > 0) {
    // As core's sampler keeps (spec §7): the smallest set of most likely candidates whose mass reaches
    // topP, widened to every candidate within δ of the best logit (the bias's reach).
    const order = Array.from({ length: count }, (_, i) => i).sort(
      (a, b) => candidates.logits[b]! - candidates.logits[a]! || a - b,
    );
    const delta = options.watermarker === null ? 0 : options.watermarker.scheme.delta;
    const reach = delta === 0 ? Number.POSITIVE_INFINITY : candidates.logits[order[0]!]! - delta;
    let running = 0;
    let keep = count;
    for (let j = 0; j < count; j++) {
      running += within[order[j]!]!;
      if (running >= topP) {
        keep = j + 1;
        break;
      }
    }
    while (keep < count && candidates.logits[order[keep]!]! >= reach) keep++;
    for (let j = keep; j < count; j++) masked[order[j]!] = Number.NEGATIVE_INFINITY;
  }
  const q = softmax(candidates.logits, temperature, masked);
  return { ids: candidates.ids, p, q };
}

export interface DraftOutcome {
  readonly token: number;
  readonly accepted: boolean;
}

export interface DraftsOutcome {
  readonly token: number;
  /** Index into `drafts` of the accepted draft; −1 when every draft was rejected and the token resampled. */
  readonly draftIndex: number;
}

function drawIndex(weights: Float64Array, random: RandomSource): number {
  let total = 0;
  for (let i = 0; i < weights.length; i++) total += weights[i]!;
  let target = random.nextFloat() * total;
  let last = -1;
  for (let i = 0; i < weights.length; i++) {
    if (weights[i]! <= 0) continue;
    last = i;
    target -= weights[i]!;
    if (target < 0) return i;
  }
  return last;
}

/**
 * Recursive rejection over drafts drawn independently from p at one position: draft k is accepted with
 * probability min(1, r_k(x)/p(x)) where r_0 = q and r_(k+1) = max(0, r_k − p) normalized; when every draft
 * is rejected the token is drawn from the last residual. Exactly q-distributed when the drafts are
 * independent draws from p (null: a draw of a token without an id here, which q never takes).
 */
export function acceptAmongDrafts(
  distributions: DraftDistributions,
  drafts: readonly (number | null)[],
  random: RandomSource,
): DraftsOutcome {
  const { ids, p, q } = distributions;
  let residual = q;
  for (let k = 0; k < drafts.length; k++) {
    const draft = drafts[k]!;
    const index = draft === null ? -1 : ids.indexOf(draft);
    if (index >= 0 && p[index]! > 0) {
      const ratio = residual[index]! / p[index]!;
      if (ratio >= 1 || random.nextFloat() < ratio) return { token: draft!, draftIndex: k };
    }
    const next = new Float64Array(q.length);
    let mass = 0;
    for (let i = 0; i < q.length; i++) mass += next[i] = Math.max(0, residual[i]! - p[i]!);
    // No residual left means residual = p on the candidates: only a draw p could not make (the upstream
    // sampled outside what it reported) is rejected then; keep the residual as it is.
    if (mass > 0) {
      for (let i = 0; i < next.length; i++) next[i]! /= mass;
      residual = next;
    }
  }
  return { token: ids[drawIndex(residual, random)]!, draftIndex: -1 };
}

/** Accepts `draft` with probability min(1, q/p), else samples the residual max(0, q − p). */
export function acceptDraft(
  distributions: DraftDistributions,
  draft: number | null,
  random: RandomSource,
): DraftOutcome {
  const outcome = acceptAmongDrafts(distributions, [draft], random);
  return { token: outcome.token, accepted: outcome.draftIndex === 0 };
}

/** Samples from q directly (no draft): the path without drafting, one upstream round trip per token. */
export function sampleTarget(distributions: DraftDistributions, random: RandomSource): number {
  return distributions.ids[drawIndex(distributions.q, random)]!;
}

export interface TokenLogprob {
  readonly token: number;
  readonly logprob: number;
}

/**
 * Log-probabilities reported to clients whose key has the `logprobs` scope: the watermarked distribution at
 * temperature 1 over the candidates (what the client's text was drawn from before temperature and top-p).
 */
export function reportedLogprobs(
  candidates: SparseLogits,
  context: ArrayLike<number>,
  watermarker: Watermarker | null,
  chosen: number,
  top: number,
): { logprob: number; top: TokenLogprob[] } {
  const bias = greenBias(candidates, context, watermarker);
  const count = candidates.ids.length;
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < count; i++) max = Math.max(max, candidates.logits[i]! + bias[i]!);
  let total = 0;
  for (let i = 0; i < count; i++) total += Math.exp(candidates.logits[i]! + bias[i]! - max);
  const logZ = max + Math.log(total);
  const logprobOf = (i: number) => candidates.logits[i]! + bias[i]! - logZ;
  const index = candidates.ids.indexOf(chosen);
  const logprob = index < 0 ? -9999 : logprobOf(index);
  const order = Array.from({ length: count }, (_, i) => i)
    .sort((a, b) => logprobOf(b) - logprobOf(a) || a - b)
    .slice(0, top);
  return { logprob, top: order.map((i) => ({ token: candidates.ids[i]!, logprob: logprobOf(i) })) };
}
