/**
 * Gumbel-max quality and diversity: perplexity (under the research oracle and the generator) and
 * distinct-n of `gumbel` and `dual_gumbel` generations against unwatermarked sampling and the default
 * green-list key, with the same prompts and sampler seeds; plus the share detected at p ≤ 1e−4.
 * Repeated-context handling is measured both ways (`skip`, the default, and `mark`).
 *
 * node --conditions=source --import tsx research/src/gumbel-quality.ts [--samples N] [--tokens N] [--quick] [--json FILE]
 *
 * Sequential, in-process (no worker pool): about a second per 200-token generation on one core.
 * See docs/decisions/2026-12-04-gumbel-scheme.md. The committed measurement at 100 prompts, with a
 * paired test against the unwatermarked control and a second control for the noise, is the quality
 * experiment (`pnpm research quality`, research/results/quality.md); this script stays as the quick
 * side-by-side of repeated-context handling (`mark` at h = 1) and detection rates.
 */
import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import {
  createWatermarker,
  createWatermarkKey,
  detect,
  generateAll,
  type SchemeParams,
  type Watermarker,
} from '@tracemark/core';
import { loadDefaultModel, logitsSource, type NgramModel } from '@tracemark/lm';
import { promptPairs, tokenizer } from './corpus.ts';
import { loadOracle, QUALITY_TEMPERATURE, QUALITY_TOP_P } from './experiments/quality.ts';
import { secretFor, seedFor } from './labels.ts';
import { mean, meanWithInterval } from './statistics.ts';

interface Config {
  readonly label: string;
  readonly scheme: SchemeParams | null;
  readonly repeatedContexts: 'skip' | 'mark';
}

const CONFIGS: readonly Config[] = [
  { label: 'no watermark', scheme: null, repeatedContexts: 'skip' },
  { label: 'LeftHash(1) γ=0.25 δ=2 (default)', scheme: { name: 'lefthash' }, repeatedContexts: 'skip' },
  {
    label: 'gumbel h=4, skip repeats',
    scheme: { name: 'gumbel', contextWidth: 4 },
    repeatedContexts: 'skip',
  },
  {
    label: 'gumbel h=4, mark repeats',
    scheme: { name: 'gumbel', contextWidth: 4 },
    repeatedContexts: 'mark',
  },
  {
    label: 'gumbel h=2, skip repeats',
    scheme: { name: 'gumbel', contextWidth: 2 },
    repeatedContexts: 'skip',
  },
  {
    label: 'gumbel h=1, skip repeats',
    scheme: { name: 'gumbel', contextWidth: 1 },
    repeatedContexts: 'skip',
  },
  {
    label: 'gumbel h=1, mark repeats',
    scheme: { name: 'gumbel', contextWidth: 1 },
    repeatedContexts: 'mark',
  },
  {
    label: 'dual_gumbel h=4 α=0.1, skip repeats',
    scheme: { name: 'dual_gumbel', contextWidth: 4, alpha: 0.1 },
    repeatedContexts: 'skip',
  },
];

const PROMPT_TOKENS = 32;

function completionNll(model: NgramModel, prompt: Uint32Array, completion: Uint32Array): number {
  const all = new Uint32Array(prompt.length + completion.length);
  all.set(prompt);
  all.set(completion, prompt.length);
  let total = 0;
  for (let i = 0; i < completion.length; i++)
    total -= model.logProb(all.subarray(0, prompt.length + i), completion[i]!);
  return total / Math.max(1, completion.length);
}

function distinct(tokens: Uint32Array, n: number): number {
  const count = tokens.length - n + 1;
  if (count <= 0) return Number.NaN;
  const seen = new Set<string>();
  for (let i = 0; i < count; i++) seen.add(tokens.subarray(i, i + n).join(','));
  return seen.size / count;
}

const { values } = parseArgs({
  options: {
    samples: { type: 'string' },
    tokens: { type: 'string' },
    quick: { type: 'boolean', default: false },
    json: { type: 'string' },
  },
});
const samples = Number(values.samples ?? (values.quick ? 4 : 60));
const tokens = Number(values.tokens ?? (values.quick ? 60 : 200));
const log = (message: string) => process.stderr.write(`${message}\n`);
const started = performance.now();
const pairs = await promptPairs(PROMPT_TOKENS, tokens);
const generator = await loadDefaultModel({ tokenizerId: tokenizer().id });
const oracle = await loadOracle(values.quick);
const source = logitsSource(generator);
const special = tokenizer().specialTokenIds;
const rows = [];
for (const config of CONFIGS) {
  const texts: { prompt: Uint32Array; tokens: Uint32Array; log10P: number | null }[] = [];
  for (let i = 0; i < samples; i++) {
    const prompt = pairs[i % pairs.length]!.prompt;
    const watermarker: Watermarker | null =
      config.scheme === null
        ? null
        : createWatermarker(
            createWatermarkKey({
              secret: secretFor(`gumbel-quality/key/${i}`),
              scheme: config.scheme,
              tokenizer: tokenizer().id,
            }),
            { specialTokenIds: special },
          );
    const completion = await generateAll({
      source,
      prompt,
      maxTokens: tokens,
      watermarker,
      temperature: QUALITY_TEMPERATURE,
      topP: QUALITY_TOP_P,
      seed: seedFor(`gumbel-quality/sample/${i}`),
      bannedTokens: special,
      repeatedContexts: config.repeatedContexts,
    });
    const log10P =
      watermarker === null ? null : detect(completion, watermarker, { prompt }).results[0]!.log10P;
    texts.push({ prompt, tokens: completion, log10P });
  }
  const nll = meanWithInterval(texts.map((t) => completionNll(oracle.model, t.prompt, t.tokens)));
  const detected = texts.filter((t) => t.log10P !== null && t.log10P <= -4).length;
  const row = {
    label: config.label,
    samples,
    oraclePerplexity: Math.exp(nll.mean),
    oraclePerplexityInterval: [Math.exp(nll.mean - nll.halfWidth), Math.exp(nll.mean + nll.halfWidth)],
    generatorPerplexity: Math.exp(mean(texts.map((t) => completionNll(generator, t.prompt, t.tokens)))),
    distinct1: mean(texts.map((t) => distinct(t.tokens, 1))),
    distinct2: mean(texts.map((t) => distinct(t.tokens, 2))),
    distinct3: mean(texts.map((t) => distinct(t.tokens, 3))),
    detectedAt1e4: config.scheme === null ? null : detected / samples,
    medianLog10P:
      config.scheme === null
        ? null
        : texts.map((t) => t.log10P!).sort((a, b) => a - b)[Math.floor(samples / 2)]!,
  };
  rows.push(row);
  log(`${config.label}: done (${((performance.now() - started) / 1000).toFixed(0)} s)`);
}
const f = (x: number | null, digits = 3) => (x === null ? '—' : x.toFixed(digits));
const lines = [
  `Gumbel quality: ${samples} prompts × ${tokens} tokens, T ${QUALITY_TEMPERATURE}, top-p ${QUALITY_TOP_P}, oracle ${oracle.description}, Node ${process.version}, ${((performance.now() - started) / 1000).toFixed(0)} s`,
  '',
  '| configuration | oracle ppl (95% CI) | generator ppl | distinct-1 | distinct-2 | distinct-3 | detected at p ≤ 1e-4 | median log10 p |',
  '| --- | --- | --- | --- | --- | --- | --- | --- |',
  ...rows.map(
    (r) =>
      `| ${r.label} | ${f(r.oraclePerplexity, 1)} (${f(r.oraclePerplexityInterval[0]!, 1)}–${f(r.oraclePerplexityInterval[1]!, 1)}) | ${f(r.generatorPerplexity, 2)} | ${f(r.distinct1)} | ${f(r.distinct2)} | ${f(r.distinct3)} | ${f(r.detectedAt1e4, 2)} | ${f(r.medianLog10P, 1)} |`,
  ),
];
process.stdout.write(`${lines.join('\n')}\n`);
if (values.json !== undefined)
  await writeFile(values.json, `${JSON.stringify({ samples, tokens, rows }, null, 2)}\n`);
