/**
 * The watermarked next-token distribution over a candidate set, and speculative acceptance of an upstream's
 * own samples as drafts (Leviathan et al. 2023, https://arxiv.org/abs/2211.17192; Chen et al. 2023,
 * https://arxiv.org/abs/2302.01318): accept the draft x with probability min(1, q(x)/p(x)), else draw from
 * the residual max(0, q − p) normalized. The result is distributed exactly as q whenever x was drawn from p.
 * With several independent drafts from p at one position, one of them is selected and that step is taken
 * against the selected draft's own distribution (see {@link acceptAmongDrafts}): the candidates form groups of
 * equal q/p (green and red under a KGW key), and the selection takes a draft of the group q wants whenever
 * the drafts hold one, which accepts more often than rejecting the drafts in turn (recursive rejection).
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

/**
 * The weights max(0, w·q − d), unnormalized (drawIndex normalizes); q itself where nothing is left, which
 * happens only with probability 0 or when d = w·q up to rounding, and keeps the draw defined.
 */
function residualOf(q: Float64Array, w: number, d: Float64Array): Float64Array {
  const residual = new Float64Array(q.length);
  let mass = 0;
  for (let i = 0; i < q.length; i++) mass += residual[i] = Math.max(0, w * q[i]! - d[i]!);
  return mass > 0 ? residual : q;
}

export function drawIndex(weights: Float64Array, random: RandomSource): number {
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
 * How drafts are selected at one position (see {@link acceptAmongDrafts}): the candidates fall into groups
 * of equal q/p; `descending` lists the groups by decreasing q/p, `ascending` lists those q takes in
 * increasing order (groups q never takes stay last in both); with probability `lambda` the descending
 * order is used. `selected[i]` is the exact probability that the selected draft is candidate i.
 */
export interface DraftSelection {
  readonly group: Int32Array;
  readonly groupMass: readonly number[];
  readonly descending: readonly number[];
  readonly ascending: readonly number[];
  readonly lambda: number;
  readonly selected: Float64Array;
}

/** Relative tolerance within which two ratios q/p count as one group (they differ by rounding only). */
const SAME_RATIO = 1e-9;

/**
 * The selection rule for `count` drafts drawn independently from p: of the groups present among the
 * drafts, the first in a random order (descending with probability λ), and a uniformly chosen draft of
 * that group. Within a group the selected candidate is ∝ p, as q is, so only the groups' chances matter;
 * λ maximizes the overlap Σ min(q, selected) (concave and piecewise linear in λ: a breakpoint or an end
 * is its maximum). With two groups (green and red) this overlap is the most any exact method can accept
 * from these drafts: green is selected whenever a green draft is there and q wants green, red likewise.
 */
export function draftSelection(distributions: DraftDistributions, count: number): DraftSelection {
  const { p, q } = distributions;
  const size = p.length;
  // Candidates p never draws (p = 0) form a group of their own, after every other.
  const ratio = Array.from({ length: size }, (_, i) => (p[i]! > 0 ? q[i]! / p[i]! : -1));
  const order = Array.from({ length: size }, (_, i) => i).sort((a, b) => ratio[b]! - ratio[a]! || a - b);
  const group = new Int32Array(size);
  const groupMass: number[] = [];
  const groupTarget: number[] = [];
  let taken = 0;
  for (let j = 0; j < size; j++) {
    const i = order[j]!;
    const previous = j === 0 ? Number.NaN : ratio[order[j - 1]!]!;
    const same =
      ratio[i] === previous ||
      (Number.isFinite(previous) && previous >= 0 && Math.abs(ratio[i]! - previous) <= SAME_RATIO * previous);
    if (!same) {
      groupMass.push(0);
      groupTarget.push(0);
      if (ratio[i]! > 0) taken++;
    }
    group[i] = groupMass.length - 1;
    groupMass[groupMass.length - 1]! += p[i]!;
    groupTarget[groupTarget.length - 1]! += q[i]!;
  }
  const descending = groupMass.map((_, g) => g);
  const ascending = [...descending.slice(0, taken).reverse(), ...descending.slice(taken)];
  // The chance that group g is the first present among `count` drafts, in a given order; draws of
  // tokens without an id here (p's missing mass) come after every group.
  const chances = (sequence: readonly number[]): number[] => {
    const out = new Array<number>(groupMass.length).fill(0);
    let before = 0;
    for (const g of sequence) {
      out[g] = (1 - before) ** count - Math.max(0, 1 - before - groupMass[g]!) ** count;
      before += groupMass[g]!;
    }
    return out;
  };
  const first = chances(descending);
  const second = chances(ascending);
  const overlap = (lambda: number) =>
    groupTarget.reduce(
      (sum, mass, g) => sum + Math.min(mass, lambda * first[g]! + (1 - lambda) * second[g]!),
      0,
    );
  let lambda = 1;
  let best = overlap(1);
  for (const candidate of [
    0,
    ...groupTarget.map((mass, g) => (mass - second[g]!) / (first[g]! - second[g]!)),
  ]) {
    if (!(candidate >= 0 && candidate <= 1)) continue;
    const value = overlap(candidate);
    if (value > best) {
      best = value;
      lambda = candidate;
    }
  }
  const selected = new Float64Array(size);
  for (let i = 0; i < size; i++) {
    const g = group[i]!;
    const chance = lambda * first[g]! + (1 - lambda) * second[g]!;
    selected[i] = groupMass[g]! > 0 ? (p[i]! / groupMass[g]!) * chance : 0;
  }
  return { group, groupMass, descending, ascending, lambda, selected };
}

/**
 * Acceptance among drafts drawn independently from p at one position (multi-draft speculative sampling,
 * in the canonical form of Khisti et al. 2025, https://arxiv.org/abs/2410.18234: select one draft, then
 * one speculative step against the selected draft's own distribution). The draft is selected by
 * {@link draftSelection}; it is accepted with probability min(1, q(x)/s(x)), s being the exact chance of
 * selecting x, else the token is drawn from the residual max(0, q − s) normalized. The result is
 * distributed exactly as q: P[x] = min(q(x), s(x)) + (1 − Σ min(q, s))·max(0, q(x) − s(x))/Σ max(0, q − s).
 * A null draft is a draw of a token without an id here, which q never takes.
 */
export function acceptAmongDrafts(
  distributions: DraftDistributions,
  drafts: readonly (number | null)[],
  random: RandomSource,
): DraftsOutcome {
  const { ids, q } = distributions;
  const { index: k, selected } = selectDraft(distributions, drafts, random);
  if (k >= 0) {
    const index = ids.indexOf(drafts[k]!);
    if (random.nextFloat() * selected[index]! < q[index]!) return { token: drafts[k]!, draftIndex: k };
  }
  return { token: ids[drawIndex(residualOf(q, 1, selected), random)]!, draftIndex: -1 };
}

/**
 * The first step of {@link acceptAmongDrafts}: the index of the selected draft (−1 when no draft has an id
 * here), and `selected`, the exact chance of selecting each candidate (see {@link draftSelection}).
 */
export function selectDraft(
  distributions: DraftDistributions,
  drafts: readonly (number | null)[],
  random: RandomSource,
): { readonly index: number; readonly selected: Float64Array } {
  const { ids } = distributions;
  const selection = draftSelection(distributions, drafts.length);
  const { group, selected } = selection;
  const sequence = random.nextFloat() < selection.lambda ? selection.descending : selection.ascending;
  const rank = new Int32Array(sequence.length);
  sequence.forEach((g, r) => {
    rank[g] = r;
  });
  // the drafts of the first group present, in the chosen order
  let firstRank = -1;
  const present: number[] = [];
  for (let k = 0; k < drafts.length; k++) {
    const draft = drafts[k]!;
    const index = draft === null ? -1 : ids.indexOf(draft);
    // a draw p could not make (no id here, or p = 0) is never selected
    if (index < 0 || !(distributions.p[index]! > 0)) continue;
    const r = rank[group[index]!]!;
    if (firstRank < 0 || r < firstRank) {
      firstRank = r;
      present.length = 0;
    }
    if (r === firstRank) present.push(k);
  }
  if (present.length === 0) return { index: -1, selected };
  return {
    index: present[Math.min(present.length - 1, Math.floor(random.nextFloat() * present.length))]!,
    selected,
  };
}

/**
 * Block verification of one chain of drafts (Sun et al. 2025, https://arxiv.org/abs/2403.10444): the
 * chain's drafts X_1 … X_γ were drawn one after another from p, `steps[k]` holds p and q at chain position
 * k (k = 0 … γ; position γ comes after the last draft, and its q gives the token when every draft is
 * kept). With w_0 = 1 and w_i = min(1, w_(i−1)·q_i(X_i)/p_i(X_i)), the chain keeps its first τ drafts, τ
 * the last i with η_i ≤ h_i/(h_i + 1 − w_i) (h_i = Σ_x max(0, w_i·q_(i+1)(x) − p_(i+1)(x)); at i = γ the
 * threshold is w_γ), and the next token is drawn from max(0, w_τ·q_(τ+1) − p_(τ+1)) normalized (q at γ).
 * The tokens returned follow q exactly, and the chain keeps at least as many drafts as token by token on
 * average. A null draft (a token without an id here) has q = 0: the chain keeps nothing from it on.
 */
export function verifyChain(
  steps: readonly DraftDistributions[],
  drafts: readonly (number | null)[],
  random: RandomSource,
): { readonly tokens: number[]; readonly kept: number } {
  const outcomes = chainOutcomes(steps, drafts);
  const kept = drawIndex(outcomes.kept, random);
  const tokens: number[] = [];
  for (let i = 0; i < kept; i++) tokens.push(drafts[i]!);
  tokens.push(steps[kept]!.ids[drawIndex(outcomes.next[kept]!, random)]!);
  return { tokens, kept };
}

/**
 * What {@link verifyChain} does with a chain, as probabilities: `kept[τ]`, the chance that it keeps the
 * first τ drafts (τ = 0 … γ), and `next[τ]`, the distribution of the token it draws then (over
 * `steps[τ].ids`).
 */
export function chainOutcomes(
  steps: readonly DraftDistributions[],
  drafts: readonly (number | null)[],
): { readonly kept: Float64Array; readonly next: readonly Float64Array[] } {
  const length = drafts.length;
  if (steps.length !== length + 1) throw new RangeError('verifyChain: expected one step more than drafts');
  const weight = new Float64Array(length + 1);
  weight[0] = 1;
  for (let i = 1; i <= length; i++) {
    const { ids, p, q } = steps[i - 1]!;
    const draft = drafts[i - 1]!;
    const index = draft === null ? -1 : ids.indexOf(draft);
    const ratio = index >= 0 && p[index]! > 0 ? q[index]! / p[index]! : 0;
    weight[i] = Math.min(1, weight[i - 1]! * ratio);
  }
  // τ is the last i whose draw passes its threshold: P[τ = i] = t_i · Π_(j>i) (1 − t_j), t_0 = 1
  const threshold = new Float64Array(length + 1);
  threshold[0] = 1;
  for (let i = 1; i <= length; i++) {
    if (i === length) {
      threshold[i] = weight[length]!;
      continue;
    }
    const { p, q } = steps[i]!;
    let h = 0;
    for (let x = 0; x < q.length; x++) h += Math.max(0, weight[i]! * q[x]! - p[x]!);
    const denominator = h + 1 - weight[i]!;
    // 0/0: w_i = 1 and q = p at the next position, where nothing could be rejected
    threshold[i] = denominator > 0 ? h / denominator : 1;
  }
  const kept = new Float64Array(length + 1);
  let later = 1;
  for (let i = length; i >= 0; i--) {
    kept[i] = threshold[i]! * later;
    later *= 1 - threshold[i]!;
  }
  const next = steps.map(({ p, q }, tau) => {
    if (tau === length) return q;
    // no residual: this τ has probability 0 (see the 0/0 case above)
    return residualOf(q, weight[tau]!, p);
  });
  return { kept, next };
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
