/**
 * Experiment 1, FPR calibration: human text scored under many random keys. Under the null hypothesis
 * every scored (seed, token) pair is green with probability γ, so the share of passages with p ≤ α must
 * not exceed α, beyond chance, at every α: with dedup, plain and windowed. Without dedup, repeated
 * n-grams of human text break that independence; the z-test's normal tail is shown for comparison.
 */
import { detect, log10NormalSf } from '@tracemark/core';
import { passagesFrom, tokenizedDocuments } from '../corpus.ts';
import { loadAverage } from '../environment.ts';
import { secretFor } from '../labels.ts';
import { saveChart } from '../plot.ts';
import {
  type ExperimentContext,
  fixed,
  integer,
  type Markdown,
  reportHeader,
  rounded,
  scientific,
  writeResult,
  writeSummary,
} from '../report.ts';
import {
  type AnyWatermarkConfig,
  anyConfigLabel,
  CODE_DEFAULT,
  GUMBEL_DEFAULT,
  GUMBEL_VARIANTS,
  isGumbelConfig,
  SCHEME_VARIANTS,
  sameConfig,
  watermarkerFor,
} from '../schemes.ts';
import { binomialQuantile, clopperPearson } from '../statistics.ts';

export const FPR_LEVELS: readonly number[] = [1e-2, 1e-3, 1e-4, 1e-5];

export type FprDetector = 'plain' | 'windowed' | 'z-test';

export interface FprLevel {
  readonly alpha: number;
  readonly count: number;
  readonly rate: number;
  /** Exact 95% interval of the rate. */
  readonly lower: number;
  readonly upper: number;
  /** Largest count accepted: max(1.5·α·n, the 97.5% quantile of Bin(n, α)). */
  readonly allowed: number;
  readonly pass: boolean;
}

export interface FprVariant {
  readonly config: string;
  readonly length: number;
  readonly keys: number;
  readonly passages: number;
  readonly trials: number;
  readonly dedup: boolean;
  readonly detector: FprDetector;
  readonly levels: readonly FprLevel[];
}

export interface FprSummary {
  readonly experiment: 'fpr';
  readonly quick: boolean;
  readonly variants: readonly FprVariant[];
  /** Every level of every plain and windowed variant with dedup passes (Gumbel variants included). */
  readonly dedupPasses: boolean;
  /** The fewest trials of a green-list variant with dedup. */
  readonly minTrialsWithDedup: number;
  /** The fewest trials of a Gumbel variant with dedup (null: none run). */
  readonly gumbelMinTrialsWithDedup?: number | null;
  /** One key over the whole corpus: how far a single key's FPR strays (not part of the calibration check). */
  readonly fixedKeys: readonly FixedKeyRow[];
}

export interface FixedKeyRow {
  readonly key: number;
  readonly trials: number;
  readonly meanZ: number;
  readonly rateAt1e2: number;
  readonly rateAt1e3: number;
}

const FIXED_KEYS = 8;

/** Each of a few keys scores every 200-token passage (LeftHash(1), dedup, plain). */
function fixedKeyDispersion(passages: readonly Uint32Array[], keys: number): FixedKeyRow[] {
  const rows: FixedKeyRow[] = [];
  for (let key = 0; key < keys; key++) {
    const watermarker = watermarkerFor(secretFor(`fpr/fixed-key/${key}`), CODE_DEFAULT);
    let zTotal = 0;
    let at1e2 = 0;
    let at1e3 = 0;
    for (const passage of passages) {
      const result = detect(passage, watermarker, { includeStatus: false }).results[0]!;
      zTotal += result.z;
      if (result.log10P <= -2) at1e2++;
      if (result.log10P <= -3) at1e3++;
    }
    rows.push({
      key,
      trials: passages.length,
      meanZ: zTotal / passages.length,
      rateAt1e2: at1e2 / passages.length,
      rateAt1e3: at1e3 / passages.length,
    });
  }
  return rows;
}

interface Plan {
  readonly config: AnyWatermarkConfig;
  readonly length: number;
  /** Each passage is scored this many times, each time under a different key. */
  readonly repeats: number;
}

/**
 * Trials scored under one key. Trials that share a key are not independent (a frequent pair such as
 * "of the" is green or red for every passage under that key), so keys are many and each scores few.
 */
const TRIALS_PER_KEY = 32;

function plans(quick: boolean): Plan[] {
  if (quick) {
    return [
      { config: CODE_DEFAULT, length: 50, repeats: 2 },
      { config: CODE_DEFAULT, length: 200, repeats: 2 },
      { config: { name: 'selfhash', contextWidth: 4, gamma: 0.25, delta: 2 }, length: 200, repeats: 1 },
      { config: GUMBEL_DEFAULT, length: 50, repeats: 1 },
    ];
  }
  // Repeats per length so that each variant has over 100,000 (passage, key) trials.
  const list: Plan[] = [
    { config: CODE_DEFAULT, length: 50, repeats: 2 },
    { config: CODE_DEFAULT, length: 200, repeats: 8 },
    { config: CODE_DEFAULT, length: 1000, repeats: 32 },
  ];
  for (const variant of SCHEME_VARIANTS) {
    const config = { ...variant, gamma: 0.25, delta: 2 };
    if (!sameConfig(config, CODE_DEFAULT)) list.push({ config, length: 200, repeats: 8 });
  }
  list.push({ config: { ...CODE_DEFAULT, gamma: 0.5 }, length: 200, repeats: 8 });
  // The Gumbel-max schemes, fewer trials (their windowed tails cost about 1.3 ms per 200-token
  // passage here): the default at every length, the other variants at 200 tokens.
  list.push({ config: GUMBEL_DEFAULT, length: 50, repeats: 1 });
  for (const config of GUMBEL_VARIANTS)
    list.push({ config, length: 200, repeats: config === GUMBEL_DEFAULT ? 4 : 1 });
  list.push({ config: GUMBEL_DEFAULT, length: 1000, repeats: 2 });
  return list;
}

function levelsOf(log10P: Float64Array): FprLevel[] {
  const n = log10P.length;
  return FPR_LEVELS.map((alpha) => {
    const threshold = Math.log10(alpha);
    let count = 0;
    for (let i = 0; i < n; i++) if (log10P[i]! <= threshold) count++;
    const [lower, upper] = clopperPearson(count, n);
    const allowed = Math.max(Math.floor(1.5 * alpha * n), binomialQuantile(n, alpha, 0.975));
    return { alpha, count, rate: count / n, lower, upper, allowed, pass: count <= allowed };
  });
}

interface Collected {
  readonly plan: Plan;
  readonly passages: number;
  readonly keys: number;
  /** log10 p per trial, by dedup then detector. */
  readonly values: Map<string, Float64Array>;
}

const variantKey = (dedup: boolean, detector: FprDetector) => `${dedup ? 'dedup' : 'nodedup'}/${detector}`;

export async function runFpr(context: ExperimentContext): Promise<FprSummary> {
  const started = performance.now();
  const loadAtStart = loadAverage();
  const documents = await tokenizedDocuments(context.quick ? 'test' : 'all');
  const passageLimit = context.quick ? 400 : Number.POSITIVE_INFINITY;
  const collected: Collected[] = [];
  const perKey = context.quick ? 8 : TRIALS_PER_KEY;
  for (const plan of plans(context.quick)) {
    const passages = passagesFrom(documents, plan.length, passageLimit);
    const trials = passages.length * plan.repeats;
    const values = new Map<string, Float64Array>();
    for (const dedup of [true, false]) {
      for (const detector of ['plain', 'windowed', 'z-test'] as const) {
        values.set(variantKey(dedup, detector), new Float64Array(trials));
      }
    }
    // Trial t is passage t mod P under key floor(t / perKey): each passage meets `repeats` keys.
    for (let first = 0; first < trials; first += perKey) {
      const watermarker = watermarkerFor(secretFor(`fpr/key/${first / perKey}`), plan.config);
      for (let trial = first; trial < Math.min(trials, first + perKey); trial++) {
        const passage = passages[trial % passages.length]!;
        for (const dedup of [true, false]) {
          const result = detect(passage, watermarker, { window: true, dedup, includeStatus: false })
            .results[0]!;
          values.get(variantKey(dedup, 'plain'))![trial] = result.log10P;
          values.get(variantKey(dedup, 'windowed'))![trial] = result.window!.log10PCorrected;
          values.get(variantKey(dedup, 'z-test'))![trial] = Math.min(0, log10NormalSf(result.z));
        }
      }
    }
    context.log(
      `fpr: ${anyConfigLabel(plan.config)}, ${plan.length} tokens: ${integer(trials)} trials, ${integer(Math.ceil(trials / perKey))} keys`,
    );
    collected.push({ plan, passages: passages.length, keys: Math.ceil(trials / perKey), values });
  }
  const fixedKeys = fixedKeyDispersion(
    passagesFrom(documents, 200, passageLimit),
    context.quick ? 2 : FIXED_KEYS,
  );

  const variants: FprVariant[] = [];
  for (const { plan, passages, keys, values } of collected) {
    for (const dedup of [true, false]) {
      for (const detector of ['plain', 'windowed', 'z-test'] as const) {
        const log10P = values.get(variantKey(dedup, detector))!;
        variants.push({
          config: anyConfigLabel(plan.config),
          length: plan.length,
          keys,
          passages,
          trials: log10P.length,
          dedup,
          detector,
          levels: levelsOf(log10P),
        });
      }
    }
  }
  const exactWithDedup = variants.filter((v) => v.dedup && v.detector !== 'z-test');
  const gumbelLabels = new Set(
    collected.filter((c) => isGumbelConfig(c.plan.config)).map((c) => anyConfigLabel(c.plan.config)),
  );
  const gumbelWithDedup = exactWithDedup.filter((v) => gumbelLabels.has(v.config));
  const greenListWithDedup = exactWithDedup.filter((v) => !gumbelLabels.has(v.config));
  const summary: FprSummary = {
    experiment: 'fpr',
    quick: context.quick,
    variants,
    dedupPasses: exactWithDedup.every((v) => v.levels.every((level) => level.pass)),
    minTrialsWithDedup: Math.min(...greenListWithDedup.map((v) => v.trials)),
    gumbelMinTrialsWithDedup:
      gumbelWithDedup.length === 0 ? null : Math.min(...gumbelWithDedup.map((v) => v.trials)),
    fixedKeys,
  };

  const main = collected.find(
    (c) => !isGumbelConfig(c.plan.config) && sameConfig(c.plan.config, CODE_DEFAULT) && c.plan.length === 200,
  )!;
  const charts = await fprCharts(context, main, variants);
  const report = reportHeader(
    context,
    'Experiment 1: false-positive rate on human text',
    'keys are SHA-256("tracemark-research/v1/secret/fpr/key/<k>"), k = 0, 1, …, and SHA-256("…/fpr/fixed-key/<k>") for the fixed-key table; no sampling',
    started,
    loadAtStart,
  );
  writeFprReport(report, summary, documents.length, charts);
  await writeResult(context.outDir, 'fpr.md', report.toString());
  await writeSummary(context.outDir, 'fpr', rounded(summary));
  return summary;
}

function writeFprReport(
  report: Markdown,
  summary: FprSummary,
  documentCount: number,
  charts: string[],
): void {
  const trials = summary.minTrialsWithDedup;
  report.paragraph(
    `**Result: ${summary.dedupPasses ? 'every' : 'NOT every'} level passes with dedup** (plain and windowed, every scheme and length; at least ${integer(trials)} (passage, key) trials per green-list variant${summary.gumbelMinTrialsWithDedup == null ? '' : `, ${integer(summary.gumbelMinTrialsWithDedup)} per Gumbel-max variant`}). A level passes when the number of false positives is at most max(1.5·α·n, the 97.5% quantile of Bin(n, α)): the empirical FPR is within 1.5× of nominal or inside the binomial confidence bound.`,
  );
  report
    .heading(2, 'Setup')
    .bullets([
      `Human text: ${summary.quick ? 'the test split' : 'all'} of the Brown corpus and nlp-corpus (${integer(documentCount)} documents), tokenized with cl100k_base. Each source's documents are joined end to end in file order and cut into non-overlapping passages of 50, 200 or 1,000 tokens (so that 1,000-token passages exist in nlp-corpus too).`,
      'A trial is a (passage, key) pair; each key scores only a few passages, because trials that share a key are correlated (see "One key, many passages" below); no prompt.',
      '`plain`: the exact binomial p-value of the whole passage (spec §5.1). `windowed`: the Bonferroni-corrected best window (spec §5.3, shortest window 16). `z-test`: the one-sided normal tail of the z-score of the plain count, which published detectors report; shown for comparison, never used by tracemark.',
      '`dedup`: each (seed, token) pair scored once (spec §6, the default); `no dedup`: every eligible position scored.',
      "Gumbel-max keys (`gumbel(h)`, `dual_gumbel(h) α=0.1`, docs/spec/watermark-gumbel.md): `plain` is the exact Gamma tail Q(n, S) of the score sum (the weighted-Gamma tail for dual_gumbel), `windowed` the same windows with each window's exact tail, `z-test` the normal tail of (S − n)/√n (dual: over its standard deviation).",
      'Interval: exact (Clopper-Pearson) 95% interval of the empirical FPR. Check: ✓ when the count is at most max(1.5·α·n, 97.5% quantile of Bin(n, α)).',
    ]);
  const groups = new Map<string, FprVariant[]>();
  for (const variant of summary.variants) {
    const key = `${variant.config}, ${variant.length} tokens`;
    groups.set(key, [...(groups.get(key) ?? []), variant]);
  }
  for (const [title, group] of groups) {
    const first = group[0]!;
    report.heading(2, title);
    report.paragraph(
      `${integer(first.passages)} passages, each scored under ${first.trials / first.passages} key${first.trials === first.passages ? '' : 's'}: ${integer(first.trials)} trials per row, ${integer(first.keys)} keys in all (${TRIALS_PER_KEY} trials per key${summary.quick ? '; 8 in the quick variant' : ''}).`,
    );
    const rows: string[][] = [];
    for (const variant of group) {
      for (const level of variant.levels) {
        rows.push([
          `${variant.detector}, ${variant.dedup ? 'dedup' : 'no dedup'}`,
          scientific(level.alpha, 1),
          integer(level.count),
          scientific(level.rate),
          fixed(level.rate / level.alpha, 2),
          `${scientific(level.lower)} – ${scientific(level.upper)}`,
          integer(level.allowed),
          level.pass ? '✓' : '✗',
        ]);
      }
    }
    report.table(
      [
        'detector',
        'nominal α',
        'false positives',
        'empirical FPR',
        'ratio',
        '95% interval',
        'allowed',
        'check',
      ],
      rows,
    );
  }
  report.heading(2, 'One key, many passages');
  report.paragraph(
    "Calibration holds over random keys. Under one fixed key, a corpus is a correlated sample: a frequent pair such as \"of the\" is green for every passage or for none, so one key's false-positive rate on one corpus strays from α by more than binomial noise. Each key below scored every 200-token passage (LeftHash(1) γ=0.25, dedup, plain). The mean z-score of human text under a key is not 0, and the FPR follows it; averaged over the many keys of the tables above, it is exact. This is why a detector's calibration must be checked over many keys, and why a provider should not read one key's FPR on one corpus as the FPR.",
  );
  report.table(
    ['key', 'passages', 'mean z', 'FPR at 1e-2', 'FPR at 1e-3'],
    summary.fixedKeys.map((row) => [
      String(row.key),
      integer(row.trials),
      fixed(row.meanZ, 3),
      scientific(row.rateAt1e2),
      scientific(row.rateAt1e3),
    ]),
  );
  report.heading(2, 'Plots');
  report.paragraph(
    'Empirical against nominal FPR (LeftHash(1) γ=0.25, 200 tokens; levels with no false positive are not drawn on the log scale):',
  );
  report.image('empirical vs nominal FPR', charts[1]!);
  report.paragraph('p-value histogram (plain detector, 200 tokens), with and without dedup:');
  report.image('p-value histogram', charts[3]!);
  report.paragraph(
    'QQ plot of −log10 p against the uniform distribution (200 tokens): on the diagonal is exact; above it is anti-conservative (too many small p-values); below it is conservative. The windowed detector is conservative by construction (Bonferroni).',
  );
  report.image('QQ plot', charts[5]!);
}

async function fprCharts(
  context: ExperimentContext,
  main: Collected,
  variants: FprVariant[],
): Promise<string[]> {
  const label = (dedup: boolean, detector: FprDetector) => `${detector}, ${dedup ? 'dedup' : 'no dedup'}`;
  const mainConfig = anyConfigLabel(main.plan.config);
  const calibration = variants
    .filter((v) => v.config === mainConfig && v.length === main.plan.length)
    .flatMap((v) =>
      v.levels
        .filter((level) => level.count > 0)
        .map((level) => ({
          nominal: level.alpha,
          empirical: level.rate,
          variant: label(v.dedup, v.detector),
        })),
    );
  const reference = FPR_LEVELS.flatMap((alpha) => [
    { nominal: alpha, empirical: alpha, variant: 'nominal' },
    { nominal: alpha, empirical: 1.5 * alpha, variant: '1.5 × nominal' },
  ]);
  const files: string[] = [];
  files.push(
    ...(await saveChart(context.outDir, 'fpr-calibration', {
      width: 420,
      height: 320,
      title: `Empirical vs nominal FPR, human text (${mainConfig}, ${main.plan.length} tokens)`,
      layer: [
        {
          data: { values: reference },
          mark: { type: 'line', strokeDash: [4, 4], color: '#888' },
          encoding: {
            x: { field: 'nominal', type: 'quantitative', scale: { type: 'log' } },
            y: { field: 'empirical', type: 'quantitative', scale: { type: 'log' } },
            detail: { field: 'variant' },
          },
        },
        {
          data: { values: calibration },
          mark: { type: 'line', point: true },
          encoding: {
            x: { field: 'nominal', type: 'quantitative', scale: { type: 'log' }, title: 'nominal α' },
            y: { field: 'empirical', type: 'quantitative', scale: { type: 'log' }, title: 'empirical FPR' },
            color: { field: 'variant', type: 'nominal', title: 'detector' },
          },
        },
      ],
    })),
  );
  const bins = 20;
  const histogram: { start: number; end: number; density: number; variant: string }[] = [];
  for (const dedup of [true, false]) {
    const values = main.values.get(variantKey(dedup, 'plain'))!;
    const counts = new Array<number>(bins).fill(0);
    for (const log10P of values) counts[Math.min(bins - 1, Math.floor(10 ** log10P * bins))]!++;
    counts.forEach((count, i) => {
      histogram.push({
        start: i / bins,
        end: (i + 1) / bins,
        density: (count / values.length) * bins,
        variant: label(dedup, 'plain'),
      });
    });
  }
  files.push(
    ...(await saveChart(context.outDir, 'fpr-histogram', {
      data: { values: histogram },
      title: 'p-value histogram, human text (density; uniform = 1)',
      mark: 'bar',
      width: 300,
      height: 200,
      encoding: {
        x: { field: 'start', type: 'quantitative', bin: { binned: true, step: 1 / bins }, title: 'p-value' },
        x2: { field: 'end' },
        y: { field: 'density', type: 'quantitative', title: 'density' },
        column: { field: 'variant', type: 'nominal', title: null },
      },
    })),
  );
  const qq: { expected: number; observed: number; variant: string }[] = [];
  for (const dedup of [true, false]) {
    for (const detector of ['plain', 'windowed', 'z-test'] as const) {
      const sorted = Float64Array.from(main.values.get(variantKey(dedup, detector))!).sort();
      const n = sorted.length;
      const ranks = new Set<number>();
      for (let t = 0; t <= 200; t++) ranks.add(Math.max(1, Math.round(n ** (t / 200))));
      for (const rank of [...ranks].sort((a, b) => a - b)) {
        qq.push({
          expected: -Math.log10(rank / (n + 1)),
          observed: -sorted[rank - 1]!,
          variant: label(dedup, detector),
        });
      }
    }
  }
  const top = Math.ceil(Math.max(...qq.map((point) => Math.max(point.expected, point.observed))));
  files.push(
    ...(await saveChart(context.outDir, 'fpr-qq', {
      width: 380,
      height: 380,
      title: 'QQ plot of p-values on human text',
      layer: [
        {
          data: {
            values: [
              { x: 0, y: 0 },
              { x: top, y: top },
            ],
          },
          mark: { type: 'line', strokeDash: [4, 4], color: '#888' },
          encoding: { x: { field: 'x', type: 'quantitative' }, y: { field: 'y', type: 'quantitative' } },
        },
        {
          data: { values: qq },
          mark: { type: 'line' },
          encoding: {
            x: { field: 'expected', type: 'quantitative', title: 'expected −log10 p (uniform)' },
            y: { field: 'observed', type: 'quantitative', title: 'observed −log10 p' },
            color: { field: 'variant', type: 'nominal', title: 'detector' },
          },
        },
      ],
    })),
  );
  return files;
}
