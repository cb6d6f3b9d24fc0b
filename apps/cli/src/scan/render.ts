/** Human-readable output of `tracemark scan`. */
import {
  type AnyScanReport,
  type ForeignKeyScan,
  isForeignKeyScan,
  type KeyScan,
  type PoolScan,
  type ScanReport,
} from '@tracemark/extraction';
import { formatLog10 } from '../render.ts';
import type { Attribution } from './attribution.ts';

const VERDICT_TEXT: Record<string, string> = {
  radioactive: 'RADIOACTIVE',
  not_radioactive: 'not radioactive',
  insufficient: 'insufficient evidence',
};

/** Documents and passages are listed when the best one is significant after its search (p ≤ 0.01). */
const SHOWN = -2;

const count = (n: number): string => n.toLocaleString('en-US');
const percent = (x: number, digits = 2): string => `${(100 * x).toFixed(digits)}%`;
const points = (x: number): string => `${x >= 0 ? '+' : '−'}${Math.abs(100 * x).toFixed(2)}`;

function keyLines(scan: KeyScan, report: ScanReport): string[] {
  const c = scan.calibration;
  const t = scan.tape;
  const lines = [
    `key ${scan.keyId} (${scan.scheme} h=${scan.contextWidth}, γ=${scan.gamma}): ${VERDICT_TEXT[scan.verdict]}`,
    `  scored      ${count(scan.numScored)} distinct (seed, token) pairs of ${count(t.numTokens)} tokens` +
      ` (${count(t.numEligible)} eligible positions; ${count(t.numExcludedByPrompt)} pairs excluded as they occur in prompts` +
      `${report.supervised ? `; ${count(t.numFilteredOut)} positions outside issued windows` : ''})`,
    `  green       ${count(scan.numGreen)} (${percent(scan.greenFraction)}); effect ${points(scan.effect)} points, 95% CI [${points(scan.effectInterval[0])}, ${points(scan.effectInterval[1])}]`,
    `  log10 p     ${formatLog10(scan.log10P)} exact (Holm-adjusted ${formatLog10(scan.log10PAdjusted)}; α = ${report.alpha}); z = ${scan.z.toFixed(2)}`,
    c.fakeKeys > 0
      ? `  calibration rank ${c.rank} among ${c.fakeKeys} fake keys (empirical p = ${c.empiricalPValue.toPrecision(3)}); fake p-values ${c.uniform === false ? 'NOT uniform' : 'uniform'} (KS p = ${c.ksPValue.toPrecision(3)})`
      : '  calibration none (no fake keys)',
    scan.dose === null
      ? `  dose        unknown (no issued green fraction); doses above ${percent(scan.doseUpperBound, 1)} are ruled out`
      : `  dose        ρ ≈ ${percent(scan.dose.estimate, 1)} [${percent(scan.dose.interval[0], 1)}, ${percent(scan.dose.interval[1], 1)}] (issued green fraction ${percent(scan.dose.issuedGreenFraction, 1)}); doses above ${percent(scan.doseUpperBound, 1)} are ruled out`,
  ];
  if (scan.topDocuments.length > 0 && scan.topDocuments[0]!.log10PCorrected <= SHOWN) {
    lines.push('  documents with the strongest evidence (log10 p, corrected for the documents searched):');
    for (const d of scan.topDocuments) {
      lines.push(
        `    ${d.source}: ${d.numGreen}/${d.numScored} green, log10 p = ${formatLog10(d.log10P)} (${formatLog10(d.log10PCorrected)})`,
      );
    }
  }
  if (scan.passages.length > 0 && scan.passages[0]!.log10PCorrected <= SHOWN) {
    lines.push(`  passages (log10 p, corrected for the ${count(scan.windowsSearched)} windows searched):`);
    for (const p of scan.passages) {
      lines.push(
        `    ${p.start.source} token ${p.start.token} – ${p.end.source} token ${p.end.token}: ${p.numGreen}/${p.numScored} green, log10 p = ${formatLog10(p.log10P)} (${formatLog10(p.log10PCorrected)})`,
      );
    }
  }
  lines.push(`  reason      ${scan.reason}`);
  return lines;
}

/** An engine key's corpus-wide test: its scheme, distinct units, exact p-value, strongest documents. */
function foreignKeyLines(scan: ForeignKeyScan, report: AnyScanReport): string[] {
  const parameters = Object.entries(scan.parameters)
    .filter(([name]) => name !== 'scheme' && name !== 'tokenizer')
    .map(([name, value]) => `${name}=${value}`)
    .join(', ');
  const lines = [
    `key ${scan.keyId} (${scan.label} ${scan.scheme}${parameters === '' ? '' : `, ${parameters}`}): ${VERDICT_TEXT[scan.verdict]}`,
    `  scored      ${count(scan.numScored)} distinct units of ${count(scan.numUnits)} scored positions` +
      ` (${count(scan.numRepeated)} repeated across the corpus, ${count(scan.numExcludedByPrompt)} excluded as they occur in prompts)`,
    scan.numGreen === null
      ? `  score       ${scan.score.toFixed(3)} (mean ${scan.numScored === 0 ? '–' : (scan.score / scan.numScored).toFixed(4)} a unit)`
      : `  green       ${count(scan.numGreen)} (${percent(scan.greenFraction ?? 0)}); z = ${(scan.z ?? 0).toFixed(2)}`,
    `  log10 p     ${formatLog10(scan.log10P)} exact (Holm-adjusted ${formatLog10(scan.log10PAdjusted)}; α = ${report.alpha})`,
    `  null        ${scan.nullDistribution}; no fake keys`,
  ];
  if (scan.doseUpperBound !== null) {
    lines.push(`  dose        doses above ${percent(scan.doseUpperBound, 1)} are ruled out`);
  }
  if (scan.topDocuments.length > 0 && scan.topDocuments[0]!.log10PCorrected <= SHOWN) {
    lines.push('  documents with the strongest evidence (log10 p, corrected for the documents searched):');
    for (const d of scan.topDocuments) {
      lines.push(
        `    ${d.source}: ${count(d.numScored)} units, log10 p = ${formatLog10(d.log10P)} (${formatLog10(d.log10PCorrected)})`,
      );
    }
  }
  lines.push(`  reason      ${scan.reason}`);
  return lines;
}

/** The pooled test of the accounts' sub-keys, then one line per member. */
function poolLines(pool: PoolScan, members: readonly KeyScan[], report: AnyScanReport): string[] {
  const c = pool.calibration;
  const lines = [
    `pool of ${pool.keyIds.length} sub-keys (γ=${pool.gamma}, green counts summed over the keys): ${VERDICT_TEXT[pool.verdict]}`,
    `  scored      ${count(pool.numScored)} (seed, token) pairs over the keys`,
    `  green       ${count(pool.numGreen)} (${percent(pool.greenFraction)}); effect ${points(pool.effect)} points, 95% CI [${points(pool.effectInterval[0])}, ${points(pool.effectInterval[1])}]`,
    `  log10 p     ${formatLog10(pool.log10P)} exact, Bin(${count(pool.numScored)}, ${pool.gamma}) (Holm-adjusted ${formatLog10(pool.log10PAdjusted)}; α = ${report.alpha}); z = ${pool.z.toFixed(2)}`,
    c.fakeKeys > 0
      ? `  calibration rank ${c.rank} among ${c.fakeKeys} fake keys (empirical p = ${c.empiricalPValue.toPrecision(3)}); fake p-values ${c.uniform === false ? 'NOT uniform' : 'uniform'} (KS p = ${c.ksPValue.toPrecision(3)})`
      : '  calibration none (no fake keys)',
    `  reason      ${pool.reason}`,
    '  the sub-keys one by one (log10 p, Holm-adjusted):',
  ];
  for (const scan of members) {
    lines.push(
      `    ${scan.keyId}: ${count(scan.numGreen)}/${count(scan.numScored)} green, log10 p = ${formatLog10(scan.log10P)} (${formatLog10(scan.log10PAdjusted)}), ${VERDICT_TEXT[scan.verdict]}`,
    );
  }
  return lines;
}

export function renderScanReport(report: AnyScanReport): string {
  const lines = [
    `${count(report.numDocuments)} documents, ${count(report.numTokens)} tokens (${count(report.numPromptTokens)} prompt tokens)` +
      (report.issued === null
        ? ''
        : `; supervised by ${count(report.issued.numOutputs)} issued outputs (${count(report.issued.numTokens)} tokens)`),
  ];
  const pooled = new Set(report.pool?.keyIds ?? []);
  for (const scan of report.keys) {
    if (pooled.has(scan.keyId)) continue;
    lines.push(
      ...(isForeignKeyScan(scan) ? foreignKeyLines(scan, report) : keyLines(scan, report as ScanReport)),
    );
  }
  if (report.pool !== null) {
    const members = report.keys.filter(
      (scan): scan is KeyScan => !isForeignKeyScan(scan) && pooled.has(scan.keyId),
    );
    lines.push(...poolLines(report.pool, members, report));
  }
  lines.push(`verdict: ${VERDICT_TEXT[report.verdict]} (${report.verdict}): ${report.reason}`);
  return `${lines.join('\n')}\n`;
}

/** The attribution table: one row per account, strongest evidence first. */
export function renderAttribution(attribution: Attribution): string {
  const lines = [
    `attribution: ${attribution.accountsTested} accounts tested, each on the windows issued to it alone; log10 p Holm-adjusted across the accounts (α = ${attribution.alpha})`,
  ];
  for (const row of attribution.accounts) {
    lines.push(
      `  ${row.attributed ? '*' : ' '} ${row.account}: ${count(row.numScored)} scored (${count(row.numExclusiveWindows)} exclusive windows, ${count(row.numOutputs)} outputs), log10 p = ${formatLog10(row.log10P)}, adjusted ${formatLog10(row.log10PAdjusted)}`,
    );
  }
  lines.push(
    attribution.attributedTo.length === 0
      ? 'most likely learned from: no account (none significant after correction)'
      : `most likely learned from: ${attribution.attributedTo.join(', ')}`,
  );
  return `${lines.join('\n')}\n`;
}
