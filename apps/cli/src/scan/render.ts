/** Human-readable output of `tracemark scan`. */
import {
  type AnyScanReport,
  type ForeignKeyScan,
  isForeignKeyScan,
  type KeyScan,
  type PoolScan,
  type ScanReport,
} from '@tracemark/extraction';
import { printable } from '../io.ts';
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
/** A value that rounds to zero prints as 0, never as "-0.00". */
const fixed = (x: number, digits: number): string => {
  const text = x.toFixed(digits);
  return Number(text) === 0 ? (0).toFixed(digits) : text;
};
const percent = (x: number, digits = 2): string => `${fixed(100 * x, digits)}%`;
const points = (x: number): string => {
  const text = fixed(Math.abs(100 * x), 2);
  return Number(text) === 0 ? text : `${x > 0 ? '+' : '−'}${text}`;
};
/** Why a test with nothing scored shows no effect, rank or dose (its report's numbers then measure nothing). */
const NO_EVIDENCE = '(no evidence: 0 scored tokens)';

/** The green count with the effect and its interval; no estimate when nothing was scored. */
function greenLine(
  scan: Pick<KeyScan, 'numScored' | 'numGreen' | 'greenFraction' | 'effect' | 'effectInterval'>,
): string {
  const interval = scan.effectInterval;
  if (scan.numScored === 0 || interval.length !== 2)
    return `  green       0 of 0: no effect estimate ${NO_EVIDENCE}`;
  return `  green       ${count(scan.numGreen)} (${percent(scan.greenFraction)}); effect ${points(scan.effect)} points, 95% CI [${points(interval[0])}, ${points(interval[1])}]`;
}

/** The rank among the fake keys, with what it means; none when nothing was scored (every p-value is 1). */
function calibrationLine(
  c: Pick<KeyScan['calibration'], 'fakeKeys' | 'rank' | 'empiricalPValue' | 'uniform' | 'ksPValue'>,
  numScored: number,
  subject: 'key' | 'pool',
): string {
  if (c.fakeKeys === 0) return '  calibration none (no fake keys)';
  if (numScored === 0) return `  calibration no rank among the ${c.fakeKeys} fake keys ${NO_EVIDENCE}`;
  return `  calibration rank ${c.rank} among ${c.fakeKeys} fake keys (1 + those with a p-value at most the ${subject}'s, so 1 to ${c.fakeKeys + 1}; empirical p = ${c.empiricalPValue.toPrecision(3)}); fake p-values ${c.uniform === false ? 'NOT uniform' : 'uniform'} (KS p = ${c.ksPValue.toPrecision(3)})`;
}

/** Which doses the data rule out: a bound is a share of the text, and 1 (100%) rules out none. */
const ruledOut = (bound: number): string =>
  bound >= 1 ? 'no dose within 0–100% is ruled out' : `doses above ${percent(bound, 1)} are ruled out`;

function keyLines(scan: KeyScan, report: ScanReport): string[] {
  const c = scan.calibration;
  const t = scan.tape;
  const lines = [
    `key ${scan.keyId} (${scan.scheme} h=${scan.contextWidth}, γ=${scan.gamma}): ${VERDICT_TEXT[scan.verdict]}`,
    `  scored      ${count(scan.numScored)} distinct (seed, token) pairs of ${count(t.numTokens)} tokens` +
      ` (${count(t.numEligible)} eligible positions; ${count(t.numExcludedByPrompt)} pairs excluded as they occur in prompts` +
      `${report.supervised ? `; ${count(t.numFilteredOut)} positions outside issued windows` : ''})`,
    greenLine(scan),
    `  log10 p     ${formatLog10(scan.log10P)} exact (Holm-adjusted ${formatLog10(scan.log10PAdjusted)}; α = ${report.alpha}); z = ${fixed(scan.z, 2)}`,
    calibrationLine(c, scan.numScored, 'key'),
    scan.numScored === 0
      ? `  dose        no estimate ${NO_EVIDENCE}; ${ruledOut(scan.doseUpperBound)}`
      : scan.dose === null
        ? `  dose        unknown (no issued green fraction); ${ruledOut(scan.doseUpperBound)}`
        : `  dose        ρ ≈ ${percent(scan.dose.estimate, 1)} [${percent(scan.dose.interval[0], 1)}, ${percent(scan.dose.interval[1], 1)}] (issued green fraction ${percent(scan.dose.issuedGreenFraction, 1)}); ${ruledOut(scan.doseUpperBound)}`,
  ];
  if (scan.topDocuments.length > 0 && scan.topDocuments[0]!.log10PCorrected <= SHOWN) {
    lines.push('  documents with the strongest evidence (log10 p, corrected for the documents searched):');
    for (const d of scan.topDocuments) {
      lines.push(
        `    ${printable(d.source)}: ${d.numGreen}/${d.numScored} green, log10 p = ${formatLog10(d.log10P)} (${formatLog10(d.log10PCorrected)})`,
      );
    }
  }
  if (scan.passages.length > 0 && scan.passages[0]!.log10PCorrected <= SHOWN) {
    lines.push(`  passages (log10 p, corrected for the ${count(scan.windowsSearched)} windows searched):`);
    for (const p of scan.passages) {
      lines.push(
        `    ${printable(p.start.source)} token ${p.start.token} – ${printable(p.end.source)} token ${p.end.token}: ${p.numGreen}/${p.numScored} green, log10 p = ${formatLog10(p.log10P)} (${formatLog10(p.log10PCorrected)})`,
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
      : scan.numScored === 0
        ? '  green       0 of 0 (no evidence: 0 scored units)'
        : `  green       ${count(scan.numGreen)} (${percent(scan.greenFraction ?? 0)}); z = ${fixed(scan.z ?? 0, 2)}`,
    `  log10 p     ${formatLog10(scan.log10P)} exact (Holm-adjusted ${formatLog10(scan.log10PAdjusted)}; α = ${report.alpha})`,
    `  null        ${scan.nullDistribution}; no fake keys`,
  ];
  if (scan.doseUpperBound !== null) {
    lines.push(`  dose        ${ruledOut(scan.doseUpperBound)}`);
  }
  if (scan.topDocuments.length > 0 && scan.topDocuments[0]!.log10PCorrected <= SHOWN) {
    lines.push('  documents with the strongest evidence (log10 p, corrected for the documents searched):');
    for (const d of scan.topDocuments) {
      lines.push(
        `    ${printable(d.source)}: ${count(d.numScored)} units, log10 p = ${formatLog10(d.log10P)} (${formatLog10(d.log10PCorrected)})`,
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
    greenLine(pool),
    `  log10 p     ${formatLog10(pool.log10P)} exact, Bin(${count(pool.numScored)}, ${pool.gamma}) (Holm-adjusted ${formatLog10(pool.log10PAdjusted)}; α = ${report.alpha}); z = ${fixed(pool.z, 2)}`,
    calibrationLine(c, pool.numScored, 'pool'),
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
