/**
 * Experiment 4, quality: does the watermark make the text worse? Watermarked and plain generations from
 * the same prompts and sampler seeds, scored by a larger oracle n-gram model, with distinct-n and length.
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
import { schemeLabel, spikeModulus, type WatermarkConfig } from '../schemes.ts';
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
  context.log(`quality: ${integer(jobs.length)} generations of ${completionTokens} tokens`);
  const generations = await generateMany(jobs, context.workers);
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
  const summary: QualitySummary = {
    experiment: 'quality',
    quick: context.quick,
    oracle: oracle.description,
    completionTokens,
    rows,
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
  report.heading(2, 'Plot');
  for (const file of charts.filter((name) => name.endsWith('.png')))
    report.image(file.replace('.png', ''), file);
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
