/**
 * Experiment `sampling`: does every sampling setting the gateway accepts carry the mark? Detection at
 * 200 tokens over temperature × top-p, for the sampling order before (top-p of the unbiased distribution,
 * then the bias) and after (the bias, then top-p of the watermarked distribution; spec §7), with the
 * quality cost of each against unwatermarked text of the same setting, and the expected green fraction the
 * gateway reports in each completion's metadata against the observed one.
 */
import { detect, type Watermarker } from '@tracemark/core';
import type { NgramModel } from '@tracemark/lm';
import { promptPairs } from '../corpus.ts';
import { loadAverage } from '../environment.ts';
import { type GenerationJob, generateMany } from '../generation.ts';
import { secretFor, seedFor } from '../labels.ts';
import {
  type ExperimentContext,
  fixed,
  integer,
  reportHeader,
  rounded,
  writeResult,
  writeSummary,
} from '../report.ts';
import { CODE_DEFAULT, spikeModulus, watermarkerFor } from '../schemes.ts';
import { mean, median } from '../statistics.ts';
import { loadOracle } from './quality.ts';

const PROMPT_TOKENS = 32;
/** The detector's default α: `watermarked` means p ≤ 1e-4. */
const ALPHA = 1e-4;

export type SamplingOrder = 'truncate-first' | 'bias-first' | 'widened';

export interface SamplingCell {
  readonly temperature: number;
  readonly topP: number;
  readonly order: SamplingOrder;
  readonly samples: number;
  /** Share of generations with p ≤ α (α = 1e-4). */
  readonly detected: number;
  readonly medianLog10P: number;
  readonly meanScored: number;
  readonly observedGreenFraction: number;
  /** Σ over steps of P(green) / tokens, as the gateway reports it (widened, the core sampler, only). */
  readonly expectedGreenFraction: number | null;
  /** Oracle perplexity of the watermarked text over that of unwatermarked text of the same setting. */
  readonly perplexityRatio: number;
  readonly distinct2: number;
}

export interface SamplingSummary {
  readonly experiment: 'sampling';
  readonly quick: boolean;
  readonly completionTokens: number;
  readonly temperatures: readonly number[];
  readonly topPs: readonly number[];
  readonly oracle: string;
  readonly cells: readonly SamplingCell[];
  /** Unwatermarked text: oracle perplexity per setting ("T/top-p" → perplexity). */
  readonly plainPerplexity: Readonly<Record<string, number>>;
}

function grid(quick: boolean): { temperatures: number[]; topPs: number[] } {
  return quick
    ? { temperatures: [0, 0.1, 1], topPs: [0.1, 1] }
    : { temperatures: [0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1, 1.5], topPs: [0.05, 0.1, 0.3, 0.5, 0.9, 1] };
}

function completionNll(model: NgramModel, prompt: Uint32Array, completion: Uint32Array): number {
  const all = new Uint32Array(prompt.length + completion.length);
  all.set(prompt);
  all.set(completion, prompt.length);
  let total = 0;
  for (let i = 0; i < completion.length; i++)
    total -= model.logProb(all.subarray(0, prompt.length + i), completion[i]!);
  return total / Math.max(1, completion.length);
}

function distinct2(tokens: Uint32Array): number {
  const seen = new Set<number>();
  for (let i = 0; i + 1 < tokens.length; i++) seen.add(tokens[i]! * 262_144 + tokens[i + 1]!);
  return tokens.length < 2 ? Number.NaN : seen.size / (tokens.length - 1);
}

const settingLabel = (temperature: number, topP: number): string => `${temperature}/${topP}`;

export async function runSampling(context: ExperimentContext): Promise<SamplingSummary> {
  const started = performance.now();
  const loadAtStart = loadAverage();
  const samples = context.quick ? 3 : 30;
  const completionTokens = context.quick ? 60 : 200;
  const { temperatures, topPs } = grid(context.quick);
  const pairs = await promptPairs(PROMPT_TOKENS, completionTokens);
  const variants: (SamplingOrder | null)[] = [null, 'truncate-first', 'bias-first', 'widened'];
  const settings = temperatures.flatMap((temperature) => topPs.map((topP) => ({ temperature, topP })));
  const jobs: GenerationJob[] = settings.flatMap(({ temperature, topP }) =>
    variants.flatMap((order) =>
      Array.from({ length: samples }, (_, i) => ({
        secret: order === null ? null : secretFor(`sampling/key/${i}`),
        scheme: order === null ? { ...CODE_DEFAULT, delta: 0 } : CODE_DEFAULT,
        prompt: pairs[i]!.prompt,
        maxTokens: completionTokens,
        temperature,
        topP,
        seed: seedFor(`sampling/sample/${i}`),
        spikeModulus: spikeModulus(CODE_DEFAULT.gamma, CODE_DEFAULT.delta),
        order: order ?? 'widened',
        measureStrength: order === 'widened',
      })),
    ),
  );
  context.log(`sampling: ${integer(jobs.length)} generations of ${completionTokens} tokens`);
  const generations = await generateMany(jobs, context.workers, (done, total) => {
    if (done % 500 === 0) context.log(`sampling: ${done}/${total}`);
  });
  const oracle = await loadOracle(context.quick);
  const watermarkers: Watermarker[] = Array.from({ length: samples }, (_, i) =>
    watermarkerFor(secretFor(`sampling/key/${i}`), CODE_DEFAULT),
  );

  const cells: SamplingCell[] = [];
  const plainPerplexity: Record<string, number> = {};
  let offset = 0;
  for (const { temperature, topP } of settings) {
    const plain = generations.slice(offset, offset + samples);
    const plainNll = mean(plain.map((g, i) => completionNll(oracle.model, pairs[i]!.prompt, g.tokens)));
    plainPerplexity[settingLabel(temperature, topP)] = Math.exp(plainNll);
    offset += samples;
    for (const order of ['truncate-first', 'bias-first', 'widened'] as const) {
      const marked = generations.slice(offset, offset + samples);
      offset += samples;
      const detections = marked.map(
        (g, i) =>
          detect(g.tokens, watermarkers[i]!, { prompt: pairs[i]!.prompt, includeStatus: false }).results[0]!,
      );
      const scored = detections.reduce((sum, d) => sum + d.numScored, 0);
      const green = detections.reduce((sum, d) => sum + d.numGreen, 0);
      const nll = mean(marked.map((g, i) => completionNll(oracle.model, pairs[i]!.prompt, g.tokens)));
      cells.push({
        temperature,
        topP,
        order,
        samples,
        detected: detections.filter((d) => d.log10P <= Math.log10(ALPHA)).length / samples,
        medianLog10P: median(detections.map((d) => d.log10P)),
        meanScored: scored / samples,
        observedGreenFraction: scored === 0 ? 0 : green / scored,
        expectedGreenFraction:
          order === 'widened'
            ? mean(marked.map((g) => g.expectedGreen / Math.max(1, g.tokens.length)))
            : null,
        perplexityRatio: Math.exp(nll - plainNll),
        distinct2: mean(marked.map((g) => distinct2(g.tokens))),
      });
    }
  }
  const summary: SamplingSummary = {
    experiment: 'sampling',
    quick: context.quick,
    completionTokens,
    temperatures,
    topPs,
    oracle: oracle.description,
    cells,
    plainPerplexity,
  };
  const report = reportHeader(
    context,
    'Experiment: sampling settings and the mark',
    'generation i of every setting uses prompt i, key "sampling/key/<i>" and sampler seed "sampling/sample/<i>"; the two orders and the unwatermarked control share them',
    started,
    loadAtStart,
  );
  writeSamplingReport(report, summary);
  await writeResult(context.outDir, 'sampling.md', report.toString());
  await writeSummary(context.outDir, 'sampling', rounded(summary));
  return summary;
}

function matrix(
  summary: SamplingSummary,
  order: SamplingOrder,
  value: (cell: SamplingCell) => string,
): { header: string[]; rows: string[][] } {
  const header = ['temperature \\ top-p', ...summary.topPs.map(String)];
  const rows = summary.temperatures.map((temperature) => [
    String(temperature),
    ...summary.topPs.map((topP) => {
      const cell = summary.cells.find(
        (c) => c.temperature === temperature && c.topP === topP && c.order === order,
      );
      return cell === undefined ? '—' : value(cell);
    }),
  ]);
  return { header, rows };
}

function writeSamplingReport(report: ReturnType<typeof reportHeader>, summary: SamplingSummary): void {
  const samples = summary.cells[0]?.samples ?? 0;
  report
    .heading(2, 'Setup')
    .bullets([
      `Default scheme (LeftHash(1), γ = 0.25, δ = 2), the embedded 4-gram model's 512 most probable candidates, ${samples} generations of ${summary.completionTokens} tokens per setting after ${PROMPT_TOKENS}-token human prompts (test split). Detection with the prompt excluded and dedup on; "detected" is the share with p ≤ 1e-4 (the default verdict threshold).`,
      "**Before** (truncate-first): top-p chose the kept candidates from the unbiased distribution at temperature T, then the bias was applied within them. **After** (widened, the core sampler now): the same top-p set widened to every candidate whose logit is within δ of the best (those the bias could lift to the top), then the bias. **Bias-first** (the order of Hugging Face's logits processors, measured as the other fix): the bias δ is added to the logits, then temperature, then top-p of the watermarked distribution. Temperature 0 is greedy on the biased logits in all three.",
      `Quality: oracle perplexity (${summary.oracle}) of the watermarked text over that of unwatermarked text of the same setting, prompts and seeds (1.00 = no cost); distinct-2 of the watermarked text.`,
      'Expected green fraction: the mean over generations of Σ_steps P(green) / tokens, computed by core `stepStrength` from the distribution each step sampled from, which the gateway reports per completion; observed: green / scored over all generations of the setting (repeated (seed, token) pairs are scored once, so the two differ where the text repeats).',
    ]);
  for (const [order, title] of [
    ['truncate-first', 'Before: share detected at p ≤ 1e-4'],
    ['widened', 'After (widened): share detected at p ≤ 1e-4'],
    ['bias-first', 'Bias-first: share detected at p ≤ 1e-4'],
  ] as const) {
    const { header, rows } = matrix(summary, order, (c) => fixed(c.detected, 2));
    report.heading(2, title).table(header, rows);
  }
  for (const [order, title] of [
    ['truncate-first', 'Before: median log10 p'],
    ['widened', 'After (widened): median log10 p'],
    ['bias-first', 'Bias-first: median log10 p'],
  ] as const) {
    const { header, rows } = matrix(summary, order, (c) => fixed(c.medianLog10P, 1));
    report.heading(2, title).table(header, rows);
  }
  for (const [order, title] of [
    ['truncate-first', 'Before: oracle perplexity / unwatermarked'],
    ['widened', 'After (widened): oracle perplexity / unwatermarked'],
    ['bias-first', 'Bias-first: oracle perplexity / unwatermarked'],
  ] as const) {
    const { header, rows } = matrix(summary, order, (c) => fixed(c.perplexityRatio, 2));
    report.heading(2, title).table(header, rows);
  }
  const { header, rows } = matrix(
    summary,
    'widened',
    (c) => `${fixed(c.expectedGreenFraction ?? Number.NaN, 2)} / ${fixed(c.observedGreenFraction, 2)}`,
  );
  report.heading(2, 'After: expected / observed green fraction').table(header, rows);
  const { header: h2, rows: r2 } = matrix(summary, 'widened', (c) => fixed(c.meanScored, 0));
  report.heading(2, 'After: mean scored tokens (of the completion)').table(h2, r2);
}
