/**
 * Experiment 2, power: how much generated text the detector needs. Watermarked generations of the
 * embedded model after human prompts are the positives; what the human wrote after the same prompts
 * is the negatives. TPR at nominal FPR 1e-3 and 1e-6 (the p-values are exact, experiment 1), ROC-AUC,
 * and the spike entropy of the generations, over γ, δ, scheme, h and temperature.
 */
import { detect, gumbelLog10PValue, log10BinomialSf, Scorer, type Watermarker } from '@tracemark/core';
import { type PromptPair, promptPairs } from '../corpus.ts';
import { loadAverage } from '../environment.ts';
import { type GenerationJob, generateMany } from '../generation.ts';
import { secretFor, seedFor } from '../labels.ts';
import { saveChart } from '../plot.ts';
import {
  type ExperimentContext,
  fixed,
  integer,
  type Markdown,
  reportHeader,
  rounded,
  writeResult,
} from '../report.ts';
import {
  type AnyWatermarkConfig,
  CODE_DEFAULT,
  configLabel,
  GUMBEL_VARIANTS,
  type GumbelConfig,
  greenFractionBound,
  gumbelLabel,
  isGumbelConfig,
  SCHEME_VARIANTS,
  sameConfig,
  schemeLabel,
  spikeModulus,
  type WatermarkConfig,
  watermarkerFor,
} from '../schemes.ts';
import { mean, median, rocAuc } from '../statistics.ts';

export const PROMPT_TOKENS = 32;
export const TOP_P = 0.95;
/** The published KGW figures (field notes §2; γ = 0.25, δ = 2). */
export const PUBLISHED_TPR_1E3: Readonly<Record<number, number>> = {
  25: 0.32,
  50: 0.77,
  100: 0.93,
  200: 1.0,
};
export const PUBLISHED_AUC: Readonly<Record<number, number>> = { 50: 0.991, 100: 0.997 };

export interface PowerAtLength {
  readonly length: number;
  readonly tprAt1e3: number;
  readonly tprAt1e6: number;
  readonly auc: number;
  /** Mean scored tokens of the positives (after dedup and prompt exclusion). */
  readonly meanScored: number;
  /** Share of human negatives at p ≤ 1e-3 (a sanity check; experiment 1 measures FPR). */
  readonly negativeRateAt1e3: number;
}

export interface PowerConfigResult {
  readonly config: WatermarkConfig;
  readonly label: string;
  readonly temperature: number;
  readonly samples: number;
  readonly negatives: number;
  readonly meanSpikeEntropy: number;
  readonly meanEntropyBits: number;
  /** Observed green fraction of the positives at full length. */
  readonly greenFraction: number;
  /** KGW Theorem 4.2's lower bound on the expected green fraction, from the spike entropy. */
  readonly greenFractionBound: number;
  /** Median generated tokens until p ≤ 0.02 (MarkMyWords' "watermark size"); Infinity if not reached by half. */
  readonly medianTokensToP002: number;
  readonly lengths: readonly PowerAtLength[];
}

export interface PowerSummary {
  readonly experiment: 'power';
  readonly quick: boolean;
  readonly topP: number;
  readonly maxCandidates: number;
  readonly results: readonly PowerConfigResult[];
  /** The Gumbel-max configurations (absent in summaries before them). */
  readonly gumbel?: readonly PowerGumbelResult[];
  /** `gumbel` when only the Gumbel configurations and the code default ran (see {@link POWER_SUBSET_VARIABLE}). */
  readonly subset?: 'gumbel';
}

/** A Gumbel-max configuration's power: no green fraction; the mean score per scored token instead. */
export interface PowerGumbelResult {
  readonly config: GumbelConfig;
  readonly label: string;
  readonly temperature: number;
  readonly samples: number;
  readonly negatives: number;
  readonly meanEntropyBits: number;
  /** S/n of the positives at full length: 1 under the null, larger under the mark. */
  readonly meanScore: number;
  readonly medianTokensToP002: number;
  readonly lengths: readonly PowerAtLength[];
}

/**
 * `TRACEMARK_RESEARCH_SUBSET=gumbel pnpm research power`: the Gumbel configurations and the code
 * default only (100 generations each), written to power-gumbel.md and .json; the full grid takes
 * about a quarter of an hour on 2 idle cores.
 */
export const POWER_SUBSET_VARIABLE = 'TRACEMARK_RESEARCH_SUBSET';

interface Plan {
  readonly config: AnyWatermarkConfig;
  readonly temperature: number;
  readonly samples: number;
}

/** The Gumbel plans: every variant at both temperatures, 100 generations (quick: the default at T 1). */
function gumbelPlans(quick: boolean): Plan[] {
  if (quick) return [{ config: GUMBEL_VARIANTS[0]!, temperature: 1, samples: 6 }];
  return [0.7, 1].flatMap((temperature) =>
    GUMBEL_VARIANTS.map((config) => ({ config, temperature, samples: 100 })),
  );
}

function plans(quick: boolean): { plans: Plan[]; lengths: number[]; negatives: number } {
  if (quick) {
    return {
      plans: [
        { config: CODE_DEFAULT, temperature: 1, samples: 6 },
        {
          config: { name: 'selfhash', contextWidth: 4, gamma: 0.25, delta: 2 },
          temperature: 0.7,
          samples: 6,
        },
        { config: { name: 'lefthash', contextWidth: 2, gamma: 0.5, delta: 4 }, temperature: 0.7, samples: 6 },
      ],
      lengths: [25, 50, 100],
      negatives: 40,
    };
  }
  const list: Plan[] = [];
  for (const temperature of [0.7, 1]) {
    for (const gamma of [0.25, 0.5]) {
      for (const delta of [1, 2, 4]) {
        for (const variant of SCHEME_VARIANTS) {
          const config = { ...variant, gamma, delta };
          list.push({ config, temperature, samples: sameConfig(config, CODE_DEFAULT) ? 400 : 100 });
        }
      }
    }
  }
  return { plans: list, lengths: [25, 50, 100, 200, 400], negatives: 1000 };
}

export async function runPower(context: ExperimentContext): Promise<PowerSummary> {
  const started = performance.now();
  const loadAtStart = loadAverage();
  const subset = !context.quick && process.env[POWER_SUBSET_VARIABLE] === 'gumbel';
  const planned = plans(context.quick);
  const { lengths, negatives: negativeLimit } = planned;
  const greenListPlans = subset
    ? planned.plans
        .filter((plan) => !isGumbelConfig(plan.config) && sameConfig(plan.config, CODE_DEFAULT))
        .map((plan) => ({ ...plan, samples: 100 }))
    : planned.plans;
  const list: Plan[] = [...greenListPlans, ...gumbelPlans(context.quick)];
  const maxLength = lengths[lengths.length - 1]!;
  const pairs = await promptPairs(PROMPT_TOKENS, maxLength);
  const negatives = pairs.slice(0, negativeLimit);
  const jobs: GenerationJob[] = [];
  for (const plan of list) {
    for (let i = 0; i < plan.samples; i++) {
      jobs.push({
        secret: secretFor(`power/key/${i}`),
        scheme: plan.config,
        prompt: pairs[i % pairs.length]!.prompt,
        maxTokens: maxLength,
        temperature: plan.temperature,
        topP: TOP_P,
        seed: seedFor(`power/sample/${i}`),
        spikeModulus: isGumbelConfig(plan.config) ? 0 : spikeModulus(plan.config.gamma, plan.config.delta),
      });
    }
  }
  context.log(
    `power: ${integer(jobs.length)} generations of ${maxLength} tokens, ${list.length} configurations`,
  );
  let reported = 0;
  const generations = await generateMany(jobs, context.workers, (done, total) => {
    if (done * 20 >= (reported + 1) * total) {
      reported = Math.floor((done * 20) / total);
      context.log(`power: ${done}/${total} generations`);
    }
  });

  const results: PowerConfigResult[] = [];
  const gumbel: PowerGumbelResult[] = [];
  let offset = 0;
  for (const plan of list) {
    const batch = generations.slice(offset, offset + plan.samples);
    offset += plan.samples;
    if (isGumbelConfig(plan.config)) {
      gumbel.push(evaluateGumbel({ ...plan, config: plan.config }, batch, pairs, negatives, lengths));
    } else results.push(evaluate({ ...plan, config: plan.config }, batch, pairs, negatives, lengths));
  }
  const summary: PowerSummary = {
    experiment: 'power',
    quick: context.quick,
    topP: TOP_P,
    maxCandidates: 512,
    results,
    gumbel,
    ...(subset ? { subset: 'gumbel' as const } : {}),
  };
  const charts = await powerCharts(context, summary);
  const report = reportHeader(
    context,
    'Experiment 2: power (TPR and ROC-AUC against length)',
    'sample i of every configuration uses key SHA-256("tracemark-research/v1/secret/power/key/<i>"), sampler seed from "power/sample/<i>" and prompt i of the shuffled prompt list ("prompt-pairs/32/<length>"); common random numbers across configurations',
    started,
    loadAtStart,
  );
  if (subset) {
    report.bullets([
      `Subset run: \`${POWER_SUBSET_VARIABLE}=gumbel pnpm research power\`: the Gumbel configurations and the code default only, 100 generations each; the green-list grid is [power.md](power.md).`,
    ]);
  }
  writePowerReport(report, summary, lengths, negatives.length, charts);
  const name = subset ? 'power-gumbel' : 'power';
  await writeResult(context.outDir, `${name}.md`, report.toString());
  await writeResult(context.outDir, `${name}.json`, `${JSON.stringify(rounded(summary), null, 2)}\n`);
  return summary;
}

/** A Gumbel configuration: the same measures on the exact Gamma tail of the scores (watermark-gumbel §5). */
function evaluateGumbel(
  plan: Plan & { readonly config: GumbelConfig },
  batch: readonly { tokens: Uint32Array; meanEntropyBits: number }[],
  pairs: readonly PromptPair[],
  negatives: readonly PromptPair[],
  lengths: readonly number[],
): PowerGumbelResult {
  const watermarkers = batch.map((_, i) => watermarkerFor(secretFor(`power/key/${i}`), plan.config));
  const positiveScores = lengths.map(() => [] as number[]);
  const scored = lengths.map(() => [] as number[]);
  const tokensToP002: number[] = [];
  let scoreTotal = 0;
  let scoredTotal = 0;
  batch.forEach((generation, i) => {
    const prompt = pairs[i % pairs.length]!.prompt;
    lengths.forEach((length, l) => {
      const result = detect(generation.tokens.subarray(0, length), watermarkers[i]!, {
        prompt,
        includeStatus: false,
      }).results[0]!;
      positiveScores[l]!.push(-result.log10P);
      scored[l]!.push(result.numScored);
      if (l === lengths.length - 1) {
        scoreTotal += result.score ?? 0;
        scoredTotal += result.numScored;
      }
    });
    const scorer = new Scorer(watermarkers[i]!);
    scorer.addPrompt(prompt);
    let reached = Number.POSITIVE_INFINITY;
    for (let t = 0; t < generation.tokens.length; t++) {
      scorer.push(generation.tokens.subarray(t, t + 1));
      const { numScored } = scorer.counts();
      if (
        gumbelLog10PValue(watermarkers[i]!.scheme, numScored, Math.max(0, scorer.totalScore())) <=
        Math.log10(0.02)
      ) {
        reached = t + 1;
        break;
      }
    }
    tokensToP002.push(reached);
  });
  const negativeScores = lengths.map((length) =>
    negatives.map((pair, j) => {
      const result = detect(pair.continuation.subarray(0, length), watermarkers[j % watermarkers.length]!, {
        prompt: pair.prompt,
        includeStatus: false,
      }).results[0]!;
      return -result.log10P;
    }),
  );
  return {
    config: plan.config,
    label: `${gumbelLabel(plan.config)} T=${plan.temperature}`,
    temperature: plan.temperature,
    samples: batch.length,
    negatives: negatives.length,
    meanEntropyBits: mean(batch.map((g) => g.meanEntropyBits)),
    meanScore: scoredTotal === 0 ? 0 : scoreTotal / scoredTotal,
    medianTokensToP002: median(tokensToP002),
    lengths: lengths.map((length, l) => ({
      length,
      tprAt1e3: positiveScores[l]!.filter((v) => v >= 3).length / batch.length,
      tprAt1e6: positiveScores[l]!.filter((v) => v >= 6).length / batch.length,
      auc: rocAuc(positiveScores[l]!, negativeScores[l]!),
      meanScored: mean(scored[l]!),
      negativeRateAt1e3: negativeScores[l]!.filter((v) => v >= 3).length / negatives.length,
    })),
  };
}

function evaluate(
  plan: Plan & { readonly config: WatermarkConfig },
  batch: readonly { tokens: Uint32Array; meanSpikeEntropy: number; meanEntropyBits: number }[],
  pairs: readonly PromptPair[],
  negatives: readonly PromptPair[],
  lengths: readonly number[],
): PowerConfigResult {
  const watermarkers: Watermarker[] = batch.map((_, i) =>
    watermarkerFor(secretFor(`power/key/${i}`), plan.config),
  );
  const gamma = watermarkers[0]!.scheme.gammaEffective;
  const positiveScores = lengths.map(() => [] as number[]);
  const scored = lengths.map(() => [] as number[]);
  const tokensToP002: number[] = [];
  let green = 0;
  let scoredTotal = 0;
  batch.forEach((generation, i) => {
    const prompt = pairs[i % pairs.length]!.prompt;
    lengths.forEach((length, l) => {
      const result = detect(generation.tokens.subarray(0, length), watermarkers[i]!, {
        prompt,
        includeStatus: false,
      }).results[0]!;
      positiveScores[l]!.push(-result.log10P);
      scored[l]!.push(result.numScored);
      if (l === lengths.length - 1) {
        green += result.numGreen;
        scoredTotal += result.numScored;
      }
    });
    const scorer = new Scorer(watermarkers[i]!);
    scorer.addPrompt(prompt);
    let reached = Number.POSITIVE_INFINITY;
    for (let t = 0; t < generation.tokens.length; t++) {
      scorer.push(generation.tokens.subarray(t, t + 1));
      const counts = scorer.counts();
      if (log10BinomialSf(counts.numGreen, counts.numScored, gamma) <= Math.log10(0.02)) {
        reached = t + 1;
        break;
      }
    }
    tokensToP002.push(reached);
  });
  const negativeScores = lengths.map((length) =>
    negatives.map((pair, j) => {
      const result = detect(pair.continuation.subarray(0, length), watermarkers[j % watermarkers.length]!, {
        prompt: pair.prompt,
        includeStatus: false,
      }).results[0]!;
      return -result.log10P;
    }),
  );
  const spike = mean(batch.map((g) => g.meanSpikeEntropy));
  return {
    config: plan.config,
    label: `${configLabel(plan.config)} T=${plan.temperature}`,
    temperature: plan.temperature,
    samples: batch.length,
    negatives: negatives.length,
    meanSpikeEntropy: spike,
    meanEntropyBits: mean(batch.map((g) => g.meanEntropyBits)),
    greenFraction: scoredTotal === 0 ? 0 : green / scoredTotal,
    greenFractionBound: greenFractionBound(plan.config.gamma, plan.config.delta, spike),
    medianTokensToP002: median(tokensToP002),
    lengths: lengths.map((length, l) => ({
      length,
      tprAt1e3: positiveScores[l]!.filter((s) => s >= 3).length / batch.length,
      tprAt1e6: positiveScores[l]!.filter((s) => s >= 6).length / batch.length,
      auc: rocAuc(positiveScores[l]!, negativeScores[l]!),
      meanScored: mean(scored[l]!),
      negativeRateAt1e3: negativeScores[l]!.filter((s) => s >= 3).length / negatives.length,
    })),
  };
}

const rowLabel = (result: PowerConfigResult) => [
  schemeLabel(result.config),
  String(result.config.gamma),
  String(result.config.delta),
  String(result.temperature),
];

function writePowerReport(
  report: Markdown,
  summary: PowerSummary,
  lengths: readonly number[],
  negatives: number,
  charts: readonly string[],
): void {
  const defaults = summary.results.filter((r) => sameConfig(r.config, CODE_DEFAULT));
  report
    .heading(2, 'Setup')
    .bullets([
      'Generator: the embedded model (`loadDefaultModel()`: interpolated modified Kneser-Ney, order 4, trained on the train split of Brown and nlp-corpus), sampled as the CLI does: the 512 most probable next tokens, temperature T, top-p 0.95, then the core sampler with the watermark (spec §7).',
      `Prompts: ${PROMPT_TOKENS} tokens of human text from the test split (never seen by the model), cut into non-overlapping (prompt, continuation) blocks and shuffled; sample i uses prompt i. Detection is on the completion only, with the prompt given (its pairs excluded, spec §6), dedup on, no window.`,
      `Negatives: the human continuations of the first ${integer(negatives)} prompts, cut to the same lengths and scored the same way (negative j under the key of sample j mod n).`,
      `Samples: ${summary.quick ? 'quick variant' : '100 generations per configuration, 400 for the code default (LeftHash(1) γ=0.25 δ=2)'}; each generation is ${lengths[lengths.length - 1]} tokens, and shorter lengths are its prefixes. Each sample has its own key.`,
      'TPR at FPR α: the share of generations with exact p ≤ α (nominal α: experiment 1 shows the p-values are calibrated, and human negatives never reach 1e-6 here). ROC-AUC: Mann-Whitney on −log10 p, ties counted one half.',
      'Spike entropy (Kirchenbauer et al. 2023, https://arxiv.org/abs/2301.10226, Definition 4.1): S(p, z) = Σ_k p_k / (1 + z·p_k) with modulus z = (1 − γ)(e^δ − 1) / (1 + (e^δ − 1)γ), averaged over the generation steps, for the distribution the sampler draws from before the bias (temperature and top-p applied to the 512 candidates, renormalized). Theorem 4.2 bounds the expected green fraction below by γe^δ·S / (1 + (e^δ − 1)γ). It lies between 1/(1 + z) (one certain token) and 1 (a flat distribution), so it compares the entropy available to the watermark across models.',
    ]);
  report.heading(2, 'The code default beside the published figures');
  report.paragraph(
    'LeftHash(1), γ = 0.25, δ = 2. Published: KGW family at γ = 0.25, δ = 2 on OPT-class models (field notes §2); they count a detection at z > 4 or a fixed FPR, with the z-test, not the exact test, and multinomial sampling.',
  );
  const rows: string[][] = [];
  for (const result of defaults) {
    for (const at of result.lengths) {
      rows.push([
        String(result.temperature),
        String(at.length),
        fixed(at.meanScored, 1),
        fixed(at.tprAt1e3, 3),
        at.length in PUBLISHED_TPR_1E3 ? fixed(PUBLISHED_TPR_1E3[at.length]!, 2) : '—',
        fixed(at.tprAt1e6, 3),
        fixed(at.auc, 4),
        at.length in PUBLISHED_AUC ? fixed(PUBLISHED_AUC[at.length]!, 3) : '—',
      ]);
    }
  }
  report.table(
    ['T', 'tokens', 'scored (mean)', 'TPR @ 1e-3', 'published', 'TPR @ 1e-6', 'ROC-AUC', 'published'],
    rows,
  );
  report.image('default configuration vs published', charts[1]!);
  report.heading(2, 'Entropy and green fraction');
  report.paragraph(
    "Spike entropy with each configuration's modulus; Shannon entropy in bits; observed green fraction of the generations (full length, scored tokens) against Theorem 4.2's lower bound; median tokens until p ≤ 0.02 (MarkMyWords' \"watermark size\"; published: under 100 tokens on Llama-2-7B-chat). The bound is for all generated tokens, the observed fraction for the scored ones: dedup drops repeated (seed, token) pairs, which are more often green (the bias makes them likelier to recur), so a scheme whose seed barely depends on context (SelfHash(1), whose green list is the same at every position) can fall slightly below the bound.",
  );
  report.table(
    [
      'scheme',
      'γ',
      'δ',
      'T',
      'spike entropy',
      'entropy (bits)',
      'green fraction',
      'bound',
      'tokens to p ≤ 0.02',
    ],
    summary.results.map((r) => [
      ...rowLabel(r),
      fixed(r.meanSpikeEntropy, 3),
      fixed(r.meanEntropyBits, 2),
      fixed(r.greenFraction, 3),
      fixed(r.greenFractionBound, 3),
      Number.isFinite(r.medianTokensToP002)
        ? String(r.medianTokensToP002)
        : `> ${lengths[lengths.length - 1]}`,
    ]),
  );
  const byLength = (title: string, pick: (at: PowerAtLength) => string) => {
    report.heading(2, title);
    report.table(
      ['scheme', 'γ', 'δ', 'T', ...lengths.map((length) => `${length} tokens`)],
      summary.results.map((r) => [...rowLabel(r), ...r.lengths.map(pick)]),
    );
  };
  byLength('TPR at FPR 1e-3', (at) => fixed(at.tprAt1e3, 2));
  byLength('TPR at FPR 1e-6', (at) => fixed(at.tprAt1e6, 2));
  byLength('ROC-AUC', (at) => fixed(at.auc, 4));
  writeGumbelPower(report, summary, lengths);
  report.heading(2, 'Plots');
  for (const file of charts.slice(1).filter((name) => name.endsWith('.png'))) {
    report.image(file.replace('.png', ''), file);
  }
}

/** The Gumbel rows, beside the code default at the same temperatures. */
function writeGumbelPower(report: Markdown, summary: PowerSummary, lengths: readonly number[]): void {
  const gumbel = summary.gumbel ?? [];
  if (gumbel.length === 0) return;
  report.heading(2, 'Gumbel-max schemes');
  report.paragraph(
    'The distortion-free schemes of docs/spec/watermark-gumbel.md, generated with the same prompts, keys and sampler seeds (repeated context seeds sampled without the mark, the default), detected with the exact Gamma tail of their scores (weighted-Gamma for dual_gumbel), dedup on, prompt given. There is no γ or δ: what the mark shows per token is the mean score S/n (1 under the null), which grows with the entropy the model leaves. The code default LeftHash(1) γ=0.25 δ=2 is listed first at each temperature.',
  );
  const defaults = summary.results.filter((r) => sameConfig(r.config, CODE_DEFAULT));
  const rows = [...new Set(gumbel.map((r) => r.temperature))].flatMap((temperature) => [
    ...defaults
      .filter((r) => r.temperature === temperature)
      .map((r) => ({
        label: `${configLabel(r.config)} (default)`,
        temperature,
        samples: r.samples,
        entropy: r.meanEntropyBits,
        strength: `green ${fixed(r.greenFraction, 3)}`,
        tokens: r.medianTokensToP002,
        lengths: r.lengths,
      })),
    ...gumbel
      .filter((r) => r.temperature === temperature)
      .map((r) => ({
        label: gumbelLabel(r.config),
        temperature,
        samples: r.samples,
        entropy: r.meanEntropyBits,
        strength: `S/n ${fixed(r.meanScore, 3)}`,
        tokens: r.medianTokensToP002,
        lengths: r.lengths,
      })),
  ]);
  const tokens = (value: number) =>
    Number.isFinite(value) ? String(value) : `> ${lengths[lengths.length - 1]}`;
  report.table(
    ['configuration', 'T', 'samples', 'entropy (bits)', 'strength', 'tokens to p ≤ 0.02'],
    rows.map((r) => [
      r.label,
      String(r.temperature),
      String(r.samples),
      fixed(r.entropy, 2),
      r.strength,
      tokens(r.tokens),
    ]),
  );
  for (const [title, pick] of [
    ['TPR at FPR 1e-3', (at: PowerAtLength) => fixed(at.tprAt1e3, 2)],
    ['TPR at FPR 1e-6', (at: PowerAtLength) => fixed(at.tprAt1e6, 2)],
    ['ROC-AUC', (at: PowerAtLength) => fixed(at.auc, 4)],
  ] as const) {
    report.heading(3, `Gumbel-max: ${title}`);
    report.table(
      ['configuration', 'T', ...lengths.map((length) => `${length} tokens`)],
      rows.map((r) => [r.label, String(r.temperature), ...r.lengths.map(pick)]),
    );
  }
}

async function powerCharts(context: ExperimentContext, summary: PowerSummary): Promise<string[]> {
  const files: string[] = [];
  const defaults = summary.results.filter((r) => sameConfig(r.config, CODE_DEFAULT));
  const points = defaults.flatMap((r) =>
    r.lengths.flatMap((at) => [
      { length: at.length, value: at.tprAt1e3, series: `TPR @ 1e-3, T=${r.temperature}` },
      { length: at.length, value: at.tprAt1e6, series: `TPR @ 1e-6, T=${r.temperature}` },
      { length: at.length, value: at.auc, series: `ROC-AUC, T=${r.temperature}` },
    ]),
  );
  const published = [
    ...Object.entries(PUBLISHED_TPR_1E3).map(([length, value]) => ({
      length: Number(length),
      value,
      series: 'published TPR @ 1e-3',
    })),
    ...Object.entries(PUBLISHED_AUC).map(([length, value]) => ({
      length: Number(length),
      value,
      series: 'published ROC-AUC',
    })),
  ];
  files.push(
    ...(await saveChart(context.outDir, 'power-default', {
      width: 420,
      height: 280,
      title: 'LeftHash(1) γ=0.25 δ=2: ours (lines) and published (squares)',
      layer: [
        {
          data: { values: points },
          mark: { type: 'line', point: true },
          encoding: {
            x: {
              field: 'length',
              type: 'quantitative',
              scale: { type: 'log', base: 2 },
              title: 'generated tokens',
            },
            y: { field: 'value', type: 'quantitative', scale: { domain: [0, 1] }, title: 'TPR / ROC-AUC' },
            color: { field: 'series', type: 'nominal', title: null },
          },
        },
        {
          data: { values: published },
          mark: { type: 'square', size: 80, filled: true },
          encoding: {
            x: { field: 'length', type: 'quantitative' },
            y: { field: 'value', type: 'quantitative' },
            color: { field: 'series', type: 'nominal' },
          },
        },
      ],
    })),
  );
  for (const temperature of [...new Set(summary.results.map((r) => r.temperature))]) {
    const values = summary.results
      .filter((r) => r.temperature === temperature)
      .flatMap((r) =>
        r.lengths.map((at) => ({
          length: at.length,
          tpr: at.tprAt1e6,
          scheme: schemeLabel(r.config),
          gamma: `γ = ${r.config.gamma}`,
          delta: `δ = ${r.config.delta}`,
        })),
      );
    files.push(
      ...(await saveChart(context.outDir, `power-tpr-1e-6-t${temperature.toFixed(1)}`, {
        data: { values },
        title: `TPR at FPR 1e-6 against length, T = ${temperature}`,
        facet: {
          row: { field: 'gamma', type: 'nominal', title: null },
          column: { field: 'delta', type: 'nominal', title: null },
        },
        spec: {
          width: 200,
          height: 150,
          mark: { type: 'line', point: true },
          encoding: {
            x: {
              field: 'length',
              type: 'quantitative',
              scale: { type: 'log', base: 2 },
              title: 'generated tokens',
            },
            y: { field: 'tpr', type: 'quantitative', scale: { domain: [0, 1] }, title: 'TPR @ 1e-6' },
            color: { field: 'scheme', type: 'nominal', title: 'scheme (h)' },
          },
        },
      })),
    );
  }
  return files;
}
