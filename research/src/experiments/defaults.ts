/**
 * Experiment 6, defaults: gathers the evidence of experiments 2 (power), 3 (robustness) and 4 (quality)
 * for each candidate (γ, scheme, h) at δ = 2, and for δ at the chosen scheme, and ranks the candidates.
 * and 5 (extraction: radioactivity, measured for LeftHash h = 1, 2, 4 and SelfHash(4) at γ = 0.25) for each candidate
 * (γ, scheme, h) at δ = 2, and for δ at the chosen scheme, and ranks the candidates. It reads the other
 * experiments' summaries from the same output directory, so run them first (`pnpm research all` does;
 * without extraction.json radioactivity is reported as pending). The decision itself is argued in
 * docs/decisions/2026-11-22-defaults.md.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadAverage } from '../environment.ts';
import {
  type ExperimentContext,
  fixed,
  reportHeader,
  rounded,
  writeResult,
  writeSummary,
} from '../report.ts';
import {
  CODE_DEFAULT,
  configLabel,
  type GumbelConfig,
  gumbelLabel,
  sameConfig,
  sameGumbelConfig,
  schemeLabel,
  type WatermarkConfig,
} from '../schemes.ts';
import { mean } from '../statistics.ts';
import type { ExtractionSummary } from './extraction.ts';
import type { FprSummary } from './fpr.ts';
import type { PowerConfigResult, PowerSummary } from './power.ts';
import type { QualitySummary } from './quality.ts';
import type { RobustnessSummary } from './robustness.ts';

export interface Candidate {
  readonly config: WatermarkConfig;
  readonly label: string;
  /** TPR at FPR 1e-6, mean over the temperatures measured. */
  readonly tprAt1e6Tokens50: number;
  readonly tprAt1e6Tokens100: number;
  readonly aucTokens25: number;
  /** Mean ROC-AUC over the substitution rates, and over the deletion and insertion rates. */
  readonly substitutionAuc: number;
  readonly insertionDeletionAuc: number;
  /** Windowed ROC-AUC at 10% watermarked text, mean over the document lengths. */
  readonly copyPasteAuc: number;
  /** Every FPR level passes with dedup in experiment 1 (null: not measured for this scheme). */
  readonly fprCalibrated: boolean | null;
  /**
   * Radioactivity: supervised and unsupervised log10 p of the scan of a student trained with a share
   * `radioactivityRho` of this configuration's outputs (NaN: not measured for this configuration).
   */
  readonly radioactivitySupervised: number;
  readonly radioactivityUnsupervised: number;
  readonly meanRank: number;
}

export interface DeltaRow {
  readonly delta: number;
  readonly tprAt1e6Tokens50: number;
  readonly tprAt1e6Tokens100: number;
  readonly greenFraction: number;
  /** Oracle perplexity relative to the unwatermarked generations (1.05 = 5% higher); NaN if not measured. */
  readonly perplexityRatio: number;
  readonly distinct2: number;
}

export interface DefaultsSummary {
  readonly experiment: 'defaults';
  readonly quick: boolean;
  readonly candidates: readonly Candidate[];
  /** The candidate with the best mean rank. */
  readonly bestByRank: string;
  readonly deltaFor: string;
  readonly deltas: readonly DeltaRow[];
  readonly codeDefault: string;
  /** The share ρ of watermarked training text whose scans rank radioactivity (null: not measured). */
  readonly radioactivityRho: number | null;
  readonly pending: readonly string[];
  /** The Gumbel-max schemes against the green-list default and the best green-list candidate. */
  readonly gumbel?: GumbelDefaults;
}

/** One row of the comparison across families: the same criteria, plus the quality cost. */
export interface FamilyCandidate {
  readonly family: 'green-list' | 'gumbel';
  readonly label: string;
  readonly tprAt1e6Tokens50: number;
  readonly tprAt1e6Tokens100: number;
  readonly aucTokens25: number;
  readonly substitutionAuc: number;
  readonly insertionDeletionAuc: number;
  readonly copyPasteAuc: number;
  readonly fprCalibrated: boolean | null;
  /** Oracle perplexity relative to unwatermarked generations (experiment 4). */
  readonly perplexityRatio: number;
  /** Experiment 4's paired test: every interval contains 0 (null: not measured). */
  readonly qualityWithinNoise: boolean | null;
  readonly meanRank: number;
}

export interface GumbelDefaults {
  /** Where the Gumbel power numbers came from: power.json, or the subset run power-gumbel.json. */
  readonly powerSource: string;
  readonly candidates: readonly FamilyCandidate[];
  readonly bestByRank: string;
}

/** The share ρ at which radioactivity is compared (the goal of issue 6), else the lowest measured ρ > 0. */
export const RADIOACTIVITY_RHO = 0.05;

export const PENDING_DEFAULTS_INPUTS: readonly string[] = [
  'extraction (radioactivity): how strongly a student model trained on the watermarked outputs of each configuration carries the watermark; run `pnpm research extraction` first',
];

async function readOptionalSummary<T>(outDir: string, name: string): Promise<T | null> {
  try {
    return JSON.parse(await readFile(join(outDir, `${name}.json`), 'utf8')) as T;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}

async function readSummary<T>(outDir: string, name: string): Promise<T> {
  try {
    return JSON.parse(await readFile(join(outDir, `${name}.json`), 'utf8')) as T;
  } catch {
    throw new Error(
      `defaults: ${join(outDir, `${name}.json`)} is missing; run \`pnpm research ${name}\` first (or \`pnpm research all\`)`,
    );
  }
}

/** Average ranks (1 = best, higher value better), ties sharing their mean rank; NaN values get no rank. */
function ranks(values: readonly number[]): number[] {
  const order = values.map((value, index) => ({ value, index })).filter((x) => Number.isFinite(x.value));
  order.sort((a, b) => b.value - a.value);
  const result = values.map(() => Number.NaN);
  for (let start = 0; start < order.length; ) {
    let end = start;
    while (end + 1 < order.length && order[end + 1]!.value === order[start]!.value) end++;
    for (let i = start; i <= end; i++) result[order[i]!.index] = (start + end) / 2 + 1;
    start = end + 1;
  }
  return result;
}

/**
 * The comparison across families, or null when the summaries predate the Gumbel schemes. Power comes
 * from power.json, or from the subset run power-gumbel.json when power.json has no Gumbel rows.
 */
async function gumbelDefaults(
  outDir: string,
  power: PowerSummary,
  robustness: RobustnessSummary,
  quality: QualitySummary,
  fpr: FprSummary,
  best: Candidate,
): Promise<GumbelDefaults | null> {
  const subset = await readOptionalSummary<PowerSummary>(outDir, 'power-gumbel');
  const gumbelPower =
    (power.gumbel ?? []).length > 0
      ? power
      : subset !== null && (subset.gumbel ?? []).length > 0
        ? subset
        : null;
  const gumbelRobustness = robustness.gumbel ?? [];
  if (gumbelPower === null || gumbelRobustness.length === 0 || quality.gumbel === undefined) return null;
  const at = (lengths: readonly PowerAtLengthLike[], length: number, pick: 'tprAt1e6' | 'auc') =>
    lengths.find((l) => l.length === length)?.[pick] ?? Number.NaN;
  const plain = quality.rows.find((row) => row.label === 'no watermark')!;
  const fprOf = (label: string) => {
    const variants = fpr.variants.filter((v) => v.config === label && v.dedup && v.detector !== 'z-test');
    return variants.length === 0 ? null : variants.every((v) => v.levels.every((level) => level.pass));
  };
  const rows: Omit<FamilyCandidate, 'meanRank'>[] = [];
  for (const config of [CODE_DEFAULT, best.config]) {
    if (rows.some((row) => row.label === configLabel(config))) continue;
    const measured = power.results.filter((r) => sameConfig(r.config, config));
    const robust = robustness.results.find((r) => sameConfig(r.config, config));
    const qualityRow = quality.rows.find((row) => row.config !== null && sameConfig(row.config, config));
    const comparison = quality.gumbel.comparisons.find((c) => c.label.startsWith(`${configLabel(config)} (`));
    rows.push({
      family: 'green-list',
      label: configLabel(config),
      tprAt1e6Tokens50: mean(measured.map((r) => at(r.lengths, 50, 'tprAt1e6'))),
      tprAt1e6Tokens100: mean(measured.map((r) => at(r.lengths, 100, 'tprAt1e6'))),
      aucTokens25: mean(measured.map((r) => at(r.lengths, 25, 'auc'))),
      substitutionAuc: robust === undefined ? Number.NaN : editAuc(robust.edits, ['substitution']),
      insertionDeletionAuc:
        robust === undefined ? Number.NaN : editAuc(robust.edits, ['insertion', 'deletion']),
      copyPasteAuc: robust === undefined ? Number.NaN : copyPasteAuc(robust.copyPaste),
      fprCalibrated: fprOf(configLabel(config)),
      perplexityRatio:
        qualityRow === undefined ? Number.NaN : qualityRow.oraclePerplexity / plain.oraclePerplexity,
      qualityWithinNoise: comparison?.withinNoise ?? null,
    });
  }
  for (const robust of gumbelRobustness) {
    const config: GumbelConfig = robust.config;
    const measured = (gumbelPower.gumbel ?? []).filter((r) => sameGumbelConfig(r.config, config));
    const qualityRow = quality.gumbel.rows.find(
      (row) => row.config !== null && sameGumbelConfig(row.config, config),
    );
    const comparison = quality.gumbel.comparisons.find((c) => c.label === gumbelLabel(config));
    rows.push({
      family: 'gumbel',
      label: gumbelLabel(config),
      tprAt1e6Tokens50: mean(measured.map((r) => at(r.lengths, 50, 'tprAt1e6'))),
      tprAt1e6Tokens100: mean(measured.map((r) => at(r.lengths, 100, 'tprAt1e6'))),
      aucTokens25: mean(measured.map((r) => at(r.lengths, 25, 'auc'))),
      substitutionAuc: editAuc(robust.edits, ['substitution']),
      insertionDeletionAuc: editAuc(robust.edits, ['insertion', 'deletion']),
      copyPasteAuc: copyPasteAuc(robust.copyPaste),
      fprCalibrated: fprOf(gumbelLabel(config)),
      perplexityRatio:
        qualityRow === undefined ? Number.NaN : qualityRow.oraclePerplexity / plain.oraclePerplexity,
      qualityWithinNoise: comparison?.withinNoise ?? null,
    });
  }
  const criteria = [
    rows.map((r) => r.tprAt1e6Tokens50),
    rows.map((r) => r.tprAt1e6Tokens100),
    rows.map((r) => r.aucTokens25),
    rows.map((r) => r.substitutionAuc),
    rows.map((r) => r.insertionDeletionAuc),
    rows.map((r) => r.copyPasteAuc),
    // The quality cost: a lower perplexity ranks higher, but a row whose paired test finds no
    // difference costs nothing, and a perplexity below the control's is no benefit (it ties at 1).
    rows.map((r) => -(r.qualityWithinNoise === true ? 1 : Math.max(1, r.perplexityRatio))),
  ].map(ranks);
  const candidates = rows.map((row, i) => ({
    ...row,
    meanRank: mean(criteria.map((ranked) => ranked[i]!).filter(Number.isFinite)),
  }));
  const winner = candidates.reduce((a, b) => (b.meanRank < a.meanRank ? b : a));
  return {
    powerSource: gumbelPower === power ? 'power.json' : 'power-gumbel.json (subset run)',
    candidates,
    bestByRank: winner.label,
  };
}

interface PowerAtLengthLike {
  readonly length: number;
  readonly tprAt1e6: number;
  readonly auc: number;
}

const editAuc = (edits: readonly { kind: string; auc: number }[], kinds: readonly string[]): number =>
  mean(edits.filter((e) => kinds.includes(e.kind)).map((e) => e.auc));

const copyPasteAuc = (copyPaste: readonly { fraction: number; windowedAuc: number }[]): number =>
  mean(copyPaste.filter((c) => c.fraction === 0.1).map((c) => c.windowedAuc));

export async function runDefaults(context: ExperimentContext): Promise<DefaultsSummary> {
  const started = performance.now();
  const loadAtStart = loadAverage();
  const power = await readSummary<PowerSummary>(context.outDir, 'power');
  const robustness = await readSummary<RobustnessSummary>(context.outDir, 'robustness');
  const quality = await readSummary<QualitySummary>(context.outDir, 'quality');
  const fpr = await readSummary<FprSummary>(context.outDir, 'fpr');
  const extraction = await readOptionalSummary<ExtractionSummary>(context.outDir, 'extraction');
  const extractionCells = (extraction?.cells ?? []).filter((cell) => cell.kind === 'grid' && cell.seed === 0);
  const measuredRhos = [...new Set(extractionCells.map((cell) => cell.rho))].filter(
    (rho) => rho > 0 && rho < 1,
  );
  const radioactivityRho = measuredRhos.includes(RADIOACTIVITY_RHO)
    ? RADIOACTIVITY_RHO
    : measuredRhos.length > 0
      ? Math.min(...measuredRhos)
      : null;
  /** The extraction experiment watermarks at the core defaults γ = 0.25, δ = 2. */
  const radioactivityOf = (config: WatermarkConfig) =>
    extractionCells.find(
      (cell) =>
        cell.rho === radioactivityRho &&
        cell.scheme === config.name &&
        cell.h === config.contextWidth &&
        config.gamma === CODE_DEFAULT.gamma &&
        config.delta === CODE_DEFAULT.delta,
    );

  const powerOf = (config: WatermarkConfig) => power.results.filter((r) => sameConfig(r.config, config));
  const tprAt = (results: readonly PowerConfigResult[], length: number, pick: 'tprAt1e6' | 'auc') =>
    mean(results.map((r) => r.lengths.find((at) => at.length === length)?.[pick] ?? Number.NaN));

  const candidateConfigs = robustness.results.map((r) => r.config);
  const rows = candidateConfigs.map((config) => {
    const measured = powerOf(config);
    const robust = robustness.results.find((r) => sameConfig(r.config, config))!;
    const edits = (kinds: readonly string[]) =>
      mean(robust.edits.filter((e) => kinds.includes(e.kind)).map((e) => e.auc));
    const fprVariants = fpr.variants.filter(
      (v) => v.config === configLabel(config) && v.dedup && v.detector !== 'z-test',
    );
    return {
      config,
      label: `${schemeLabel(config)} γ=${config.gamma}`,
      tprAt1e6Tokens50: tprAt(measured, 50, 'tprAt1e6'),
      tprAt1e6Tokens100: tprAt(measured, 100, 'tprAt1e6'),
      aucTokens25: tprAt(measured, 25, 'auc'),
      substitutionAuc: edits(['substitution']),
      insertionDeletionAuc: edits(['insertion', 'deletion']),
      copyPasteAuc: mean(robust.copyPaste.filter((c) => c.fraction === 0.1).map((c) => c.windowedAuc)),
      fprCalibrated:
        fprVariants.length === 0 ? null : fprVariants.every((v) => v.levels.every((level) => level.pass)),
      radioactivitySupervised: radioactivityOf(config)?.supervised.log10P ?? Number.NaN,
      radioactivityUnsupervised: radioactivityOf(config)?.unsupervised.log10P ?? Number.NaN,
    };
  });
  const criteria = [
    rows.map((r) => r.tprAt1e6Tokens50),
    rows.map((r) => r.tprAt1e6Tokens100),
    rows.map((r) => r.substitutionAuc),
    rows.map((r) => r.insertionDeletionAuc),
    rows.map((r) => r.copyPasteAuc),
    // Stronger evidence (a lower log10 p) ranks higher; unmeasured candidates get no rank here.
    rows.map((r) => -r.radioactivitySupervised),
  ].map(ranks);
  const candidates: Candidate[] = rows.map((row, i) => ({
    ...row,
    meanRank: mean(criteria.map((ranked) => ranked[i]!).filter(Number.isFinite)),
  }));
  const best = candidates.reduce((a, b) => (b.meanRank < a.meanRank ? b : a));

  // δ for the scheme and γ of the best candidate (or the closest measured in quality).
  const plain = quality.rows.find((row) => row.label === 'no watermark')!;
  const deltas: DeltaRow[] = [...new Set(power.results.map((r) => r.config.delta))]
    .sort((a, b) => a - b)
    .map((delta) => {
      const config = { ...best.config, delta };
      const measured = powerOf(config);
      const qualityRow = quality.rows.find((row) => row.config !== null && sameConfig(row.config, config));
      return {
        delta,
        tprAt1e6Tokens50: tprAt(measured, 50, 'tprAt1e6'),
        tprAt1e6Tokens100: tprAt(measured, 100, 'tprAt1e6'),
        greenFraction: mean(measured.map((r) => r.greenFraction)),
        perplexityRatio:
          qualityRow === undefined ? Number.NaN : qualityRow.oraclePerplexity / plain.oraclePerplexity,
        distinct2: qualityRow?.distinct2 ?? Number.NaN,
      };
    });

  const gumbel = await gumbelDefaults(context.outDir, power, robustness, quality, fpr, best);

  const summary: DefaultsSummary = {
    experiment: 'defaults',
    quick: context.quick,
    candidates,
    bestByRank: best.label,
    deltaFor: best.label,
    deltas,
    codeDefault: configLabel(CODE_DEFAULT),
    radioactivityRho,
    pending: radioactivityRho === null ? PENDING_DEFAULTS_INPUTS : [],
    ...(gumbel === null ? {} : { gumbel }),
  };
  const report = reportHeader(
    context,
    'Experiment 6: choosing the defaults',
    'none of its own: it reads power.json, robustness.json, quality.json, fpr.json and extraction.json from the same directory',
    started,
    loadAtStart,
  );
  report.paragraph(
    `Best mean rank at δ = 2: **${best.label}**. The code default is ${summary.codeDefault}. The decision, with the trade-offs that no table captures (security against stealing, radioactivity), is in [docs/decisions/2026-11-22-defaults.md](../../docs/decisions/2026-11-22-defaults.md).`,
  );
  report.heading(2, 'Candidates at δ = 2');
  report.bullets([
    'TPR at FPR 1e-6 (exact p-values) at 50 and 100 generated tokens and ROC-AUC at 25 tokens, mean over temperatures 0.7 and 1.0 (experiment 2).',
    'Edits: mean ROC-AUC over 10–50% model-sampled substitutions, and over 10–50% deletions and insertions (experiment 3, temperature 0.8).',
    'Copy-paste: windowed ROC-AUC with the watermarked passage at 10% of a human document, mean over 200- and 1,000-token documents (experiment 3).',
    'FPR: every level 1e-2 … 1e-5 passes with dedup, plain and windowed (experiment 1, 200 tokens).',
    summary.radioactivityRho === null
      ? 'Radioactivity: not measured (pending).'
      : `Radioactivity: log10 p of the supervised scan (unsupervised in brackets) of a student n-gram model trained with ρ = ${Number((summary.radioactivityRho * 100).toFixed(2))}% of its text from that configuration's outputs (experiment 5, [extraction.md](extraction.md)); measured for the schemes of the extraction grid at γ = 0.25 only, — elsewhere.`,
    "Mean rank: the mean of the candidate's ranks on the criteria measured for it (1 = best; radioactivity ranks only the candidates it measured). Security against key stealing is not measured here.",
  ]);
  report.table(
    [
      'candidate',
      'TPR@1e-6, 50 tok.',
      'TPR@1e-6, 100 tok.',
      'AUC, 25 tok.',
      'AUC, substitution',
      'AUC, ins./del.',
      'AUC, copy-paste 10%',
      'FPR calibrated',
      'radioactivity log10 p',
      'mean rank',
    ],
    [...candidates]
      .sort((a, b) => a.meanRank - b.meanRank)
      .map((c) => [
        c.label,
        fixed(c.tprAt1e6Tokens50, 3),
        fixed(c.tprAt1e6Tokens100, 3),
        fixed(c.aucTokens25, 3),
        fixed(c.substitutionAuc, 3),
        fixed(c.insertionDeletionAuc, 3),
        fixed(c.copyPasteAuc, 3),
        c.fprCalibrated === null ? '—' : c.fprCalibrated ? 'yes' : 'NO',
        Number.isFinite(c.radioactivitySupervised)
          ? `${fixed(c.radioactivitySupervised, 1)} (${fixed(c.radioactivityUnsupervised, 1)})`
          : '—',
        fixed(c.meanRank, 2),
      ]),
  );
  report.heading(2, `δ for ${best.label}`);
  report.paragraph(
    'Power from experiment 2 (mean over temperatures), quality from experiment 4 (oracle perplexity relative to unwatermarked generations from the same prompts and seeds; — where experiment 4 did not measure that configuration).',
  );
  report.table(
    [
      'δ',
      'TPR@1e-6, 50 tok.',
      'TPR@1e-6, 100 tok.',
      'green fraction',
      'oracle perplexity vs none',
      'distinct-2',
    ],
    deltas.map((d) => [
      String(d.delta),
      fixed(d.tprAt1e6Tokens50, 3),
      fixed(d.tprAt1e6Tokens100, 3),
      fixed(d.greenFraction, 3),
      Number.isFinite(d.perplexityRatio)
        ? `${d.perplexityRatio >= 1 ? '+' : ''}${fixed((d.perplexityRatio - 1) * 100, 1)}%`
        : '—',
      fixed(d.distinct2, 3),
    ]),
  );
  if (gumbel !== null) {
    report.heading(2, 'Across families: green-list against Gumbel-max');
    report.paragraph(
      `The criteria above, at the temperatures and rates of experiments 2 and 3, for the code default, the best green-list candidate and the Gumbel-max schemes (docs/spec/watermark-gumbel.md; power from ${gumbel.powerSource}), plus the quality cost: oracle perplexity against unwatermarked generations (experiment 4), and whether experiment 4's paired test finds any difference (perplexity, distinct-1/2/3); the quality criterion ranks the cost max(1, ratio), and 1 when the paired test finds no difference (noise is no cost and no benefit). Radioactivity is not ranked here: the extraction grid measured green-list keys, and its Gumbel subset (extraction-gumbel.md) gumbel(4) only. Best mean rank: **${gumbel.bestByRank}**; the decision is docs/decisions/2026-12-04-defaults-gumbel.md.`,
    );
    report.table(
      [
        'candidate',
        'TPR@1e-6, 50 tok.',
        'TPR@1e-6, 100 tok.',
        'AUC, 25 tok.',
        'AUC, substitution',
        'AUC, ins./del.',
        'AUC, copy-paste 10%',
        'FPR calibrated',
        'perplexity vs none',
        'quality within noise',
        'mean rank',
      ],
      [...gumbel.candidates]
        .sort((a, b) => a.meanRank - b.meanRank)
        .map((c) => [
          c.label,
          fixed(c.tprAt1e6Tokens50, 3),
          fixed(c.tprAt1e6Tokens100, 3),
          fixed(c.aucTokens25, 3),
          fixed(c.substitutionAuc, 3),
          fixed(c.insertionDeletionAuc, 3),
          fixed(c.copyPasteAuc, 3),
          c.fprCalibrated === null ? '—' : c.fprCalibrated ? 'yes' : 'NO',
          Number.isFinite(c.perplexityRatio)
            ? `${c.perplexityRatio >= 1 ? '+' : ''}${fixed((c.perplexityRatio - 1) * 100, 1)}%`
            : '—',
          c.qualityWithinNoise === null ? '—' : c.qualityWithinNoise ? 'yes' : 'no',
          fixed(c.meanRank, 2),
        ]),
    );
  }
  if (summary.pending.length > 0) {
    report.heading(2, 'Pending');
    report.bullets(summary.pending);
  }
  await writeResult(context.outDir, 'defaults.md', report.toString());
  await writeSummary(context.outDir, 'defaults', rounded(summary));
  return summary;
}
