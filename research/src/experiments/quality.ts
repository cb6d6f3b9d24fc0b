/**
 * Experiment 4, quality: does the watermark make the text worse? Watermarked and plain generations from
 * the same prompts and sampler seeds, scored by a larger oracle n-gram model, with distinct-n and length.
 * The Gumbel-max schemes claim to be distortion-free: their rows are compared with the unwatermarked
 * control by paired differences (same prompts) with 95% intervals, beside a second unwatermarked control
 * (other sampler seeds) whose difference from the first is the noise of the measurement itself.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { humanCorpusFingerprint, loadDefaultModel, NgramModel, trainNgramModel } from '@tracemark/lm';
import { promptPairs, tokenizedDocuments, tokenizer } from '../corpus.ts';
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
  writeSummary,
} from '../report.ts';
import {
  CODE_DEFAULT,
  GUMBEL_DEFAULT,
  GUMBEL_VARIANTS,
  type GumbelConfig,
  gumbelLabel,
  schemeLabel,
  spikeModulus,
  type WatermarkConfig,
} from '../schemes.ts';
import { mean, meanWithInterval } from '../statistics.ts';

export const QUALITY_TEMPERATURE = 0.8;
export const QUALITY_TOP_P = 0.95;
export const ORACLE_ORDER = 5;
const PROMPT_TOKENS = 32;

export interface QualityRow {
  /** null for the unwatermarked generations and for the human text. */
  readonly config: WatermarkConfig | null;
  readonly label: string;
  readonly samples: number;
  /** exp(mean negative log-likelihood per completion token) under the oracle, and its 95% interval. */
  readonly oraclePerplexity: number;
  readonly oraclePerplexityLow: number;
  readonly oraclePerplexityHigh: number;
  /** The same under the generator (the default model). */
  readonly generatorPerplexity: number;
  /** Mean over texts of distinct n-grams / n-grams (tokens). */
  readonly distinct1: number;
  readonly distinct2: number;
  readonly distinct3: number;
  readonly meanCharacters: number;
  readonly meanWords: number;
}

export interface QualitySummary {
  readonly experiment: 'quality';
  readonly quick: boolean;
  readonly oracle: string;
  readonly completionTokens: number;
  readonly rows: readonly QualityRow[];
  /** The Gumbel-max schemes against the unwatermarked control (absent in summaries before them). */
  readonly gumbel?: GumbelQuality;
}

/** One text set against the unwatermarked control, prompt by prompt (text i of both has prompt i). */
export interface PairedComparison {
  readonly label: string;
  readonly samples: number;
  /** Mean over prompts of (oracle NLL per token of this text − that of the control), with its 95% half-width. */
  readonly nllDifference: number;
  readonly nllDifferenceHalfWidth: number;
  /** exp of the above: oracle perplexity relative to the control, with its 95% interval. */
  readonly perplexityRatio: number;
  readonly perplexityRatioLow: number;
  readonly perplexityRatioHigh: number;
  /** Mean paired differences of distinct-n, with their 95% half-widths. */
  readonly distinct1Difference: number;
  readonly distinct1HalfWidth: number;
  readonly distinct2Difference: number;
  readonly distinct2HalfWidth: number;
  readonly distinct3Difference: number;
  readonly distinct3HalfWidth: number;
  /** Every interval (perplexity and distinct-1, -2, -3) contains 0: no difference the data can show. */
  readonly withinNoise: boolean;
}

export interface GumbelQualityRow extends Omit<QualityRow, 'config'> {
  readonly config: GumbelConfig | null;
}

export interface GumbelQuality {
  /** The second unwatermarked control (sampler seeds "quality/sample-b/<i>") and the Gumbel rows. */
  readonly rows: readonly GumbelQualityRow[];
  /** Against the unwatermarked control: the second control (the noise), the green-list default, each Gumbel row. */
  readonly comparisons: readonly PairedComparison[];
}

function configs(quick: boolean): WatermarkConfig[] {
  const variants = quick
    ? [{ name: 'lefthash' as const, contextWidth: 1 }]
    : [
        { name: 'lefthash' as const, contextWidth: 1 },
        { name: 'lefthash' as const, contextWidth: 4 },
        { name: 'selfhash' as const, contextWidth: 4 },
      ];
  const deltas = quick ? [2, 4] : [1, 2, 4];
  const gammas = quick ? [0.25] : [0.25, 0.5];
  return variants.flatMap((variant) =>
    gammas.flatMap((gamma) => deltas.map((delta) => ({ ...variant, gamma, delta }))),
  );
}

/**
 * The oracle: interpolated modified Kneser-Ney of order 5 trained on all of Brown and nlp-corpus (train
 * and test splits), larger than the generator (order 4, train split) in both order and data. Cached in
 * research/.cache. The quick variant trains an order-5 model on the test split only (a smoke test).
 */
export async function loadOracle(quick: boolean): Promise<{ model: NgramModel; description: string }> {
  const split = quick ? 'test' : 'all';
  const description = `order ${ORACLE_ORDER}, ${quick ? 'test split only (quick variant)' : 'all of Brown and nlp-corpus (train and test splits)'}`;
  const path = join(
    dirname(fileURLToPath(import.meta.url)),
    '..',
    '..',
    '.cache',
    `oracle-${await humanCorpusFingerprint()}-${tokenizer().id}-order${ORACLE_ORDER}-${split}.tmng`,
  );
  if (!quick) {
    try {
      return { model: NgramModel.deserialize(await readFile(path)), description };
    } catch {
      // Not cached yet.
    }
  }
  const documents = await tokenizedDocuments(split);
  const model = await trainNgramModel({
    documents: documents.map((document) => document.ids),
    vocabSize: tokenizer().vocabSize,
    tokenizerId: tokenizer().id,
    order: ORACLE_ORDER,
    metadata: { purpose: 'research oracle', split },
  });
  if (!quick) {
    await mkdir(dirname(path), { recursive: true });
    await writeFile(`${path}.tmp`, model.serialize());
    await rename(`${path}.tmp`, path);
  }
  return { model, description };
}

/** Mean negative log-likelihood per completion token, each token given the prompt and what precedes it. */
function completionNll(model: NgramModel, prompt: Uint32Array, completion: Uint32Array): number {
  const all = new Uint32Array(prompt.length + completion.length);
  all.set(prompt);
  all.set(completion, prompt.length);
  let total = 0;
  for (let i = 0; i < completion.length; i++) {
    total -= model.logProb(all.subarray(0, prompt.length + i), completion[i]!);
  }
  return total / completion.length;
}

/** The Gumbel rows: the variants every experiment measures, and the default with repeated contexts marked. */
function gumbelConfigs(quick: boolean): GumbelConfig[] {
  return quick ? [GUMBEL_DEFAULT] : [...GUMBEL_VARIANTS, { ...GUMBEL_DEFAULT, repeatedContexts: 'mark' }];
}

function pairedComparison(
  label: string,
  texts: readonly { nll: number; distinct: readonly number[] }[],
  control: readonly { nll: number; distinct: readonly number[] }[],
): PairedComparison {
  const nll = meanWithInterval(texts.map((t, i) => t.nll - control[i]!.nll));
  const distinctN = [0, 1, 2].map((n) =>
    meanWithInterval(texts.map((t, i) => t.distinct[n]! - control[i]!.distinct[n]!)),
  );
  const contains0 = (interval: { mean: number; halfWidth: number }) =>
    Math.abs(interval.mean) <= interval.halfWidth;
  return {
    label,
    samples: texts.length,
    nllDifference: nll.mean,
    nllDifferenceHalfWidth: nll.halfWidth,
    perplexityRatio: Math.exp(nll.mean),
    perplexityRatioLow: Math.exp(nll.mean - nll.halfWidth),
    perplexityRatioHigh: Math.exp(nll.mean + nll.halfWidth),
    distinct1Difference: distinctN[0]!.mean,
    distinct1HalfWidth: distinctN[0]!.halfWidth,
    distinct2Difference: distinctN[1]!.mean,
    distinct2HalfWidth: distinctN[1]!.halfWidth,
    distinct3Difference: distinctN[2]!.mean,
    distinct3HalfWidth: distinctN[2]!.halfWidth,
    withinNoise: contains0(nll) && distinctN.every(contains0),
  };
}

function distinct(tokens: Uint32Array, n: number): number {
  const seen = new Set<string>();
  const count = tokens.length - n + 1;
  if (count <= 0) return Number.NaN;
  for (let i = 0; i < count; i++) seen.add(tokens.subarray(i, i + n).join(','));
  return seen.size / count;
}

export async function runQuality(context: ExperimentContext): Promise<QualitySummary> {
  const started = performance.now();
  const loadAtStart = loadAverage();
  const samples = context.quick ? 4 : 100;
  const completionTokens = context.quick ? 60 : 200;
  const pairs = await promptPairs(PROMPT_TOKENS, completionTokens);
  const list: (WatermarkConfig | null)[] = [null, ...configs(context.quick)];
  const jobs: GenerationJob[] = list.flatMap((config) =>
    Array.from({ length: samples }, (_, i) => ({
      secret: config === null ? null : secretFor(`quality/key/${i}`),
      scheme: config ?? { name: 'lefthash', contextWidth: 1, gamma: 0.25, delta: 0 },
      prompt: pairs[i % pairs.length]!.prompt,
      maxTokens: completionTokens,
      temperature: QUALITY_TEMPERATURE,
      topP: QUALITY_TOP_P,
      seed: seedFor(`quality/sample/${i}`),
      spikeModulus: config === null ? 0 : spikeModulus(config.gamma, config.delta),
    })),
  );
  // The Gumbel rows, then a second unwatermarked control from other sampler seeds (the noise floor).
  const gumbelList = gumbelConfigs(context.quick);
  const gumbelJobs: GenerationJob[] = [...gumbelList, null].flatMap((config) =>
    Array.from({ length: samples }, (_, i) => ({
      secret: config === null ? null : secretFor(`quality/key/${i}`),
      scheme: config ?? { name: 'lefthash', contextWidth: 1, gamma: 0.25, delta: 0 },
      prompt: pairs[i % pairs.length]!.prompt,
      maxTokens: completionTokens,
      temperature: QUALITY_TEMPERATURE,
      topP: QUALITY_TOP_P,
      seed: seedFor(config === null ? `quality/sample-b/${i}` : `quality/sample/${i}`),
      spikeModulus: 0,
    })),
  );
  context.log(
    `quality: ${integer(jobs.length + gumbelJobs.length)} generations of ${completionTokens} tokens`,
  );
  const allGenerations = await generateMany([...jobs, ...gumbelJobs], context.workers);
  const generations = allGenerations.slice(0, jobs.length);
  const gumbelGenerations = allGenerations.slice(jobs.length);
  const oracle = await loadOracle(context.quick);
  const generator = await loadDefaultModel({ tokenizerId: tokenizer().id });

  const measure = (
    config: WatermarkConfig | null,
    label: string,
    texts: { prompt: Uint32Array; tokens: Uint32Array }[],
  ): QualityRow => {
    const oracleNll = texts.map((t) => completionNll(oracle.model, t.prompt, t.tokens));
    const interval = meanWithInterval(oracleNll);
    const decoded = texts.map((t) => tokenizer().decode(t.tokens));
    return {
      config,
      label,
      samples: texts.length,
      oraclePerplexity: Math.exp(interval.mean),
      oraclePerplexityLow: Math.exp(interval.mean - interval.halfWidth),
      oraclePerplexityHigh: Math.exp(interval.mean + interval.halfWidth),
      generatorPerplexity: Math.exp(mean(texts.map((t) => completionNll(generator, t.prompt, t.tokens)))),
      distinct1: mean(texts.map((t) => distinct(t.tokens, 1))),
      distinct2: mean(texts.map((t) => distinct(t.tokens, 2))),
      distinct3: mean(texts.map((t) => distinct(t.tokens, 3))),
      meanCharacters: mean(decoded.map((text) => text.length)),
      meanWords: mean(decoded.map((text) => text.split(/\s+/).filter((word) => word.length > 0).length)),
    };
  };
  const rows: QualityRow[] = list.map((config, c) =>
    measure(
      config,
      config === null ? 'no watermark' : `${schemeLabel(config)} γ=${config.gamma} δ=${config.delta}`,
      generations
        .slice(c * samples, (c + 1) * samples)
        .map((g, i) => ({ prompt: pairs[i % pairs.length]!.prompt, tokens: g.tokens })),
    ),
  );
  rows.push(
    measure(
      null,
      'human continuation',
      pairs.slice(0, samples).map((pair) => ({ prompt: pair.prompt, tokens: pair.continuation })),
    ),
  );
  const textsOf = (batch: readonly { tokens: Uint32Array }[]) =>
    batch.map((g, i) => ({ prompt: pairs[i % pairs.length]!.prompt, tokens: g.tokens }));
  const perText = (texts: readonly { prompt: Uint32Array; tokens: Uint32Array }[]) =>
    texts.map((t) => ({
      nll: completionNll(oracle.model, t.prompt, t.tokens),
      distinct: [1, 2, 3].map((n) => distinct(t.tokens, n)),
    }));
  const controlTexts = textsOf(generations.slice(0, samples));
  const control = perText(controlTexts);
  const gumbelRows: GumbelQualityRow[] = [];
  const comparisons: PairedComparison[] = [];
  const secondControl = textsOf(gumbelGenerations.slice(gumbelList.length * samples));
  gumbelRows.push({
    ...measure(null, 'no watermark, second control (other sampler seeds)', secondControl),
    config: null,
  });
  comparisons.push(
    pairedComparison('no watermark, second control (the noise)', perText(secondControl), control),
  );
  const defaultIndex = list.findIndex(
    (config) =>
      config !== null &&
      config.name === CODE_DEFAULT.name &&
      config.contextWidth === CODE_DEFAULT.contextWidth &&
      config.gamma === CODE_DEFAULT.gamma &&
      config.delta === CODE_DEFAULT.delta,
  );
  if (defaultIndex > 0) {
    const texts = textsOf(generations.slice(defaultIndex * samples, (defaultIndex + 1) * samples));
    comparisons.push(
      pairedComparison(`${rows[defaultIndex]!.label} (green-list default)`, perText(texts), control),
    );
  }
  gumbelList.forEach((config, c) => {
    const texts = textsOf(gumbelGenerations.slice(c * samples, (c + 1) * samples));
    gumbelRows.push({ ...measure(null, gumbelLabel(config), texts), config });
    comparisons.push(pairedComparison(gumbelLabel(config), perText(texts), control));
  });
  const summary: QualitySummary = {
    experiment: 'quality',
    quick: context.quick,
    oracle: oracle.description,
    completionTokens,
    rows,
    gumbel: { rows: gumbelRows, comparisons },
  };
  const charts = await qualityCharts(context, summary);
  const report = reportHeader(
    context,
    'Experiment 4: text quality',
    'sample i of every configuration (and of the unwatermarked control) uses sampler seed "quality/sample/<i>", prompt i and key "quality/key/<i>": the same prompts and random streams everywhere',
    started,
    loadAtStart,
  );
  writeQualityReport(report, summary, samples, charts);
  await writeResult(context.outDir, 'quality.md', report.toString());
  await writeSummary(context.outDir, 'quality', rounded(summary));
  return summary;
}

function writeQualityReport(
  report: Markdown,
  summary: QualitySummary,
  samples: number,
  charts: readonly string[],
): void {
  report
    .heading(2, 'Setup')
    .bullets([
      `Generations: ${samples} per configuration, ${summary.completionTokens} tokens each, after ${PROMPT_TOKENS}-token human prompts from the test split, with the CLI's sampling (512 candidates, temperature ${QUALITY_TEMPERATURE}, top-p ${QUALITY_TOP_P}). Every configuration and the unwatermarked control share prompts and sampler seeds, so differences come from the watermark.`,
      `Oracle: an interpolated modified Kneser-Ney model of ${summary.oracle}; the generator is order 4 on the train split. Perplexity is exp of the mean negative log-likelihood per completion token (each token given the prompt and the text before it), with a 95% interval from the per-text means. The oracle is larger than the generator in order and data, but its data include the generator's, so the two largely agree (the perplexity columns move together); an independent judge such as a neural model is out of reach without downloading one.`,
      'Generator perplexity: the same under the generating model itself. distinct-n: distinct token n-grams over all n-grams of a text, averaged over texts (Li et al. 2016, https://arxiv.org/abs/1510.03055). Length: every generation has the same number of tokens, so length is shown as characters and whitespace-separated words.',
      'The human continuations of the same prompts are a reference for distinct-n and length. Their oracle perplexity is low because the oracle was trained on them (it includes the test split); their generator perplexity is fair (the generator never saw them).',
    ]);
  report.table(
    [
      'text',
      'oracle perplexity',
      '95% interval',
      'generator perplexity',
      'distinct-1',
      'distinct-2',
      'distinct-3',
      'characters',
      'words',
    ],
    summary.rows.map((row) => [
      row.label,
      fixed(row.oraclePerplexity, 1),
      `${fixed(row.oraclePerplexityLow, 1)} – ${fixed(row.oraclePerplexityHigh, 1)}`,
      fixed(row.generatorPerplexity, 1),
      fixed(row.distinct1, 3),
      fixed(row.distinct2, 3),
      fixed(row.distinct3, 3),
      fixed(row.meanCharacters, 0),
      fixed(row.meanWords, 1),
    ]),
  );
  if (summary.gumbel !== undefined) writeGumbelQuality(report, summary, summary.gumbel);
  report.heading(2, 'Plot');
  for (const file of charts.filter((name) => name.endsWith('.png')))
    report.image(file.replace('.png', ''), file);
}

const signed = (value: number, digits: number) =>
  `${value >= 0 ? '+' : '−'}${Math.abs(value).toFixed(digits)}`;
const withHalfWidth = (value: number, halfWidth: number, digits: number) =>
  `${signed(value, digits)} ± ${halfWidth.toFixed(digits)}`;

function writeGumbelQuality(report: Markdown, summary: QualitySummary, gumbel: GumbelQuality): void {
  report.heading(2, 'Gumbel-max: distortion-free within noise?');
  report.paragraph(
    'The Gumbel-max schemes (docs/spec/watermark-gumbel.md) pick each marked token with exactly the model\'s probability, so their text should match unwatermarked text in every statistic. Same prompts, keys and sampler settings as above; `skip` repeats (the default) samples a step whose context seed already occurred without the mark. The test is paired: text i of a row and text i of the unwatermarked control share prompt i, and the differences are averaged over prompts with a 95% interval (mean ± 1.96·s/√n). The second control is the unwatermarked generator again with other sampler seeds: its difference from the first control is the noise of the measurement itself, the size a difference must exceed to mean anything. "within noise" means every interval (perplexity, distinct-1, -2, -3) contains 0.',
  );
  report.table(
    [
      'text',
      'oracle perplexity',
      '95% interval',
      'generator perplexity',
      'distinct-1',
      'distinct-2',
      'distinct-3',
    ],
    [...summary.rows.filter((row) => row.label === 'no watermark'), ...gumbel.rows].map((row) => [
      row.label,
      fixed(row.oraclePerplexity, 1),
      `${fixed(row.oraclePerplexityLow, 1)} – ${fixed(row.oraclePerplexityHigh, 1)}`,
      fixed(row.generatorPerplexity, 1),
      fixed(row.distinct1, 3),
      fixed(row.distinct2, 3),
      fixed(row.distinct3, 3),
    ]),
  );
  report.paragraph('Paired against the unwatermarked control (this row − control, mean ± 95% half-width):');
  report.table(
    [
      'text',
      'oracle perplexity ratio (95% interval)',
      'Δ NLL per token (nats)',
      'Δ distinct-1',
      'Δ distinct-2',
      'Δ distinct-3',
      'within noise',
    ],
    gumbel.comparisons.map((c) => [
      c.label,
      `${fixed(c.perplexityRatio, 3)} (${fixed(c.perplexityRatioLow, 3)} – ${fixed(c.perplexityRatioHigh, 3)})`,
      withHalfWidth(c.nllDifference, c.nllDifferenceHalfWidth, 4),
      withHalfWidth(c.distinct1Difference, c.distinct1HalfWidth, 4),
      withHalfWidth(c.distinct2Difference, c.distinct2HalfWidth, 4),
      withHalfWidth(c.distinct3Difference, c.distinct3HalfWidth, 4),
      c.withinNoise ? 'yes' : 'NO',
    ]),
  );
}

async function qualityCharts(context: ExperimentContext, summary: QualitySummary): Promise<string[]> {
  const plain = summary.rows.find((row) => row.label === 'no watermark')!;
  const values = summary.rows
    .filter((row) => row.config !== null)
    .flatMap((row) => [
      {
        delta: row.config!.delta,
        perplexity: row.oraclePerplexity,
        low: row.oraclePerplexityLow,
        high: row.oraclePerplexityHigh,
        series: `${schemeLabel(row.config!)} γ=${row.config!.gamma}`,
      },
    ]);
  const series = [...new Set(values.map((v) => v.series))];
  const withPlain = [
    ...values,
    ...series.map((name) => ({
      delta: 0,
      perplexity: plain.oraclePerplexity,
      low: plain.oraclePerplexityLow,
      high: plain.oraclePerplexityHigh,
      series: name,
    })),
  ];
  return saveChart(context.outDir, 'quality-perplexity', {
    data: { values: withPlain },
    title: 'Oracle perplexity against δ (δ = 0: no watermark), 95% intervals',
    width: 420,
    height: 280,
    layer: [
      {
        mark: { type: 'errorbar' },
        encoding: {
          x: { field: 'delta', type: 'quantitative', title: 'δ' },
          y: { field: 'low', type: 'quantitative', scale: { zero: false }, title: 'oracle perplexity' },
          y2: { field: 'high' },
          color: { field: 'series', type: 'nominal', title: 'configuration' },
        },
      },
      {
        mark: { type: 'line', point: true },
        encoding: {
          x: { field: 'delta', type: 'quantitative' },
          y: { field: 'perplexity', type: 'quantitative' },
          color: { field: 'series', type: 'nominal' },
        },
      },
    ],
  });
}
