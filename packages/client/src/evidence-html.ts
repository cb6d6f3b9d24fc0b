/**
 * A signed evidence report as one self-contained HTML page (no scripts, fonts, images or links to fetch)
 * that a reader without technical background can read and print. Two templates: a report about one text
 * (the verdict in plain words, the proof status, the text with its green and red tokens, a plot of the
 * evidence accumulating along it, the issuance record, the numbers, the limitations), and a radioactivity
 * scan of a corpus (what was tested, its counts and p-values per key, the fake-key calibration, the
 * attribution to accounts, the limitations). Pure string building: it runs in a browser as in Node.
 */
import { type EvidencePredicate, parseCheckpoint, toHex } from '@tracemark/provenance';
import { claimedPredicate, evidenceCurve, gammaOf, STATUS_WORDS, tokenPieces } from './evidence-predicate.ts';
import { checkTitle, type EvidenceReportFile, type EvidenceReportVerification } from './evidence-report.ts';
import {
  type CorpusDescription,
  corpusDescriptionOf,
  type ScanEvidence,
  scanEvidenceOf,
} from './scan-evidence.ts';

/** log10 of a p-value for the numbers table: "-47.92", "-1234", "0". */
export function formatLog10(value: number): string {
  if (value === 0) return '0';
  if (value > -0.01) return value.toFixed(4);
  return value > -100 ? value.toFixed(2) : value.toFixed(0);
}

/** α in words: "0.0001 (1 in 10,000)". */
export function formatAlpha(alpha: number): string {
  const oneIn = Math.round(1 / alpha);
  return `${Number(alpha.toPrecision(3))} (1 in ${oneIn.toLocaleString('en-US')})`;
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** 10^x as "a × 10^b" (HTML), or a plain decimal near 1. */
export function powerOfTen(log10Value: number): string {
  if (log10Value > -3) return (10 ** log10Value).toPrecision(2);
  const exponent = Math.floor(log10Value);
  const mantissa = 10 ** (log10Value - exponent);
  return `${mantissa.toFixed(1)} × 10<sup>${exponent}</sup>`;
}

/** A verdict for the page's head: a title, a tone, and words (HTML, escaped). */
export interface Headline {
  readonly title: string;
  readonly tone: 'strong' | 'neutral' | 'none';
  readonly words: string;
}

/** The verdict in plain words: was the text issued, and does it carry the watermark. */
export function plainVerdict(predicate: EvidencePredicate, service: string): Headline {
  const d = predicate.detection;
  const issuance = predicate.issuance;
  const detected = d.verdict === 'detected';
  const keys = d.numTests === 1 ? 'the one watermark key tested' : `the ${d.numTests} watermark keys tested`;
  const issued =
    issuance === null
      ? `No output recorded in the issuance log of ${service} matches this text.`
      : issuance.match === 'near-duplicate'
        ? `This text closely resembles an output that ${service} issued and recorded (record ${issuance.recordId}, entry ${issuance.leafIndex} of its tamper-evident log): they share about ${Math.round((issuance.similarity ?? 0) * 100)}% of their two-token phrases, so it is very likely an edited copy.`
        : `This exact text was issued by ${service} and recorded in its tamper-evident log (record ${issuance.recordId}, entry ${issuance.leafIndex}).`;
  const chance = powerOfTen(d.log10PCorrected);
  const mark = detected
    ? `The text carries the watermark: ${d.numGreen} of its ${d.numScored} scored words and word-pieces are “green”, where about ${Math.round(d.numScored * gammaOf(predicate))} would be by chance. The probability of this much evidence in text written without the watermark is ${chance} (the report's threshold is 1 in ${Math.round(1 / d.alpha).toLocaleString('en-US')}), taking into account ${keys}.`
    : d.verdict === 'not-detected'
      ? `The watermark was not found: ${d.numGreen} of ${d.numScored} scored tokens are green, which is what text without the watermark shows (${keys}). This does not prove that a person wrote the text.`
      : `The watermark test is inconclusive: with ${d.numScored} scored tokens (${d.numGreen} green) there is too little text to decide either way (${keys}).`;
  const title =
    issuance !== null && detected
      ? issuance.match === 'exact'
        ? 'Issued by this service, and watermarked'
        : 'An edited copy of an issued output, and watermarked'
      : issuance !== null
        ? issuance.match === 'exact'
          ? 'Issued by this service'
          : 'An edited copy of an issued output'
        : detected
          ? 'Watermarked, but not found in the issuance log'
          : d.verdict === 'not-detected'
            ? 'No watermark, no issuance record'
            : 'Inconclusive';
  return {
    title,
    tone: detected || issuance !== null ? 'strong' : d.verdict === 'not-detected' ? 'none' : 'neutral',
    words: `${escapeHtml(issued)} ${mark}`,
  };
}

const STATUS_CLASS: Readonly<Record<string, string>> = { G: 'g', R: 'r', N: 'n' };

function textSection(predicate: EvidencePredicate): string {
  const cut = tokenPieces(predicate);
  if (cut === null) {
    return '<p class="muted">The report does not include the text, so it cannot be shown here.</p>';
  }
  const spans = cut.pieces
    .map((piece) => {
      const cls = STATUS_CLASS[piece.status] ?? 's';
      return `<span class="${cls}" title="${escapeHtml(STATUS_WORDS[piece.status] ?? '')}">${escapeHtml(piece.text)}</span>`;
    })
    .join('');
  const tail = cut.rest === '' ? '' : `<span class="s">${escapeHtml(cut.rest)}</span>`;
  const truncated = predicate.tokens?.truncated
    ? `<p class="muted">Token colours are shown for the first ${cut.pieces.length} of ${predicate.tokens.numTokens} tokens.</p>`
    : '';
  return `<div class="legend"><span class="g">green</span> counts toward the watermark · <span class="r">red</span> does not · <span class="s">grey</span> not scored</div>
<div class="text">${spans}${tail}</div>${truncated}`;
}

function plotSection(predicate: EvidencePredicate): string {
  const tokens = predicate.tokens;
  if (tokens === undefined || tokens.statuses.length === 0)
    return '<p class="muted">No per-token data to plot.</p>';
  const points = evidenceCurve(tokens.statuses, gammaOf(predicate), 600);
  const threshold = -Math.log10(predicate.detection.alpha);
  const width = 760;
  const height = 280;
  const left = 56;
  const right = 16;
  const top = 16;
  const bottom = 44;
  const n = tokens.statuses.length;
  const maxValue = Math.max(threshold * 1.25, ...points.map((p) => p.value), 1);
  const x = (token: number) => left + ((width - left - right) * token) / Math.max(n, 1);
  const y = (value: number) => top + (height - top - bottom) * (1 - value / maxValue);
  const path = [
    `M${x(0).toFixed(1)},${y(0).toFixed(1)}`,
    ...points.map((p) => `L${x(p.token).toFixed(1)},${y(p.value).toFixed(1)}`),
  ].join(' ');
  const yTicks = niceTicks(maxValue, 5);
  const xTicks = niceTicks(n, 6);
  const found = predicate.segments.find((segment) => segment.kind === 'window');
  // A best passage that is (nearly) the whole text is not worth shading.
  const window = found !== undefined && found.endToken - found.startToken < 0.9 * n ? found : undefined;
  const band =
    window === undefined
      ? ''
      : `<rect x="${x(window.startToken).toFixed(1)}" y="${top}" width="${Math.max(1, x(window.endToken) - x(window.startToken)).toFixed(1)}" height="${height - top - bottom}" class="band"><title>strongest passage: tokens ${window.startToken}–${window.endToken - 1}</title></rect>`;
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" width="100%" role="img" aria-label="Evidence accumulating along the text">
${band}
${yTicks.map((t) => `<line x1="${left}" x2="${width - right}" y1="${y(t).toFixed(1)}" y2="${y(t).toFixed(1)}" class="grid"/><text x="${left - 6}" y="${(y(t) + 4).toFixed(1)}" text-anchor="end">${t}</text>`).join('\n')}
${xTicks.map((t) => `<text x="${x(t).toFixed(1)}" y="${height - bottom + 16}" text-anchor="middle">${t}</text>`).join('\n')}
<line x1="${left}" x2="${width - right}" y1="${y(threshold).toFixed(1)}" y2="${y(threshold).toFixed(1)}" class="threshold"/>
<text x="${width - right - 4}" y="${(y(threshold) - 6).toFixed(1)}" text-anchor="end" class="threshold-label">threshold: p = ${formatAlpha(predicate.detection.alpha)}</text>
<path d="${path}" class="curve"/>
<line x1="${left}" x2="${left}" y1="${top}" y2="${height - bottom}" class="axis"/>
<line x1="${left}" x2="${width - right}" y1="${height - bottom}" y2="${height - bottom}" class="axis"/>
<text x="${(left + width - right) / 2}" y="${height - 6}" text-anchor="middle">position in the text (tokens)</text>
<text transform="translate(14 ${(top + height - bottom) / 2}) rotate(-90)" text-anchor="middle">strength of evidence (−log₁₀ p)</text>
</svg>
<p class="caption">The line shows how strong the evidence is after reading the text up to each point: the higher, the less likely the green tokens came about by chance. It crosses the dashed threshold when the text so far alone would be called watermarked (before the correction for testing ${predicate.detection.numTests} key${predicate.detection.numTests === 1 ? '' : 's'}).${window === undefined ? '' : ' The shaded band is the strongest passage found.'}</p>`;
}

function niceTicks(max: number, count: number): number[] {
  if (max <= 0) return [0];
  const raw = max / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= raw) ?? raw;
  const ticks: number[] = [];
  for (let t = 0; t <= max + 1e-9; t += step) ticks.push(Number(t.toPrecision(6)));
  return ticks;
}

function proofSection(verification: EvidenceReportVerification): string {
  const rows = verification.checks
    .map((check) => {
      // An unpinned signer is a warning: the report is intact, but who signed it is not established.
      const unpinned = check.name === 'signer-key' && !check.ok && verification.status === 'not-pinned';
      const mark = check.skipped ? '–' : check.ok ? '✓' : unpinned ? '!' : '✗';
      const cls = check.skipped ? 'skip' : check.ok ? 'ok' : unpinned ? 'warn' : 'bad';
      return `<tr class="${cls}"><td class="mark">${mark}</td><td>${escapeHtml(checkTitle(check.name))}</td><td>${escapeHtml(check.detail)}</td></tr>`;
    })
    .join('\n');
  return `<table class="checks"><tbody>${rows}</tbody></table>`;
}

function row(label: string, value: string): string {
  return `<tr><th>${escapeHtml(label)}</th><td>${value}</td></tr>`;
}

function detailsSection(predicate: EvidencePredicate): string {
  const d = predicate.detection;
  const parameters = Object.entries(predicate.algorithm.parameters)
    .map(([name, value]) => `${escapeHtml(name)} = ${escapeHtml(JSON.stringify(value))}`)
    .join(', ');
  const calibration = predicate.calibration;
  return `<table class="details"><tbody>
${row('Text (SHA-256 of the exact bytes)', `<code>${escapeHtml(predicate.text.sha256)}</code>`)}
${row('Normalization before tokenizing', escapeHtml(predicate.text.normalization))}
${predicate.text.input === 'tokens' ? row('Submitted as', 'token ids (the text shown is their decoding)') : ''}
${row('Tokenizer', escapeHtml(predicate.tokenizer.name + (predicate.tokenizer.version === undefined ? '' : ` ${predicate.tokenizer.version}`)))}
${row('Watermark scheme', `${escapeHtml(predicate.algorithm.name)} (${parameters})`)}
${row('Watermark keys tested (public ids)', predicate.algorithm.keyIds.map((id) => `<code>${escapeHtml(id)}</code>`).join(', '))}
${row('Scored tokens (T) / green (k)', `${d.numScored} / ${d.numGreen}`)}
${row('z-score (for comparison only)', d.z.toFixed(2))}
${row('p-value, exact binomial', `${powerOfTen(d.log10P)} (log₁₀ p = ${formatLog10(d.log10P)})`)}
${row(`p-value corrected (${d.correction}, ${d.numTests} test${d.numTests === 1 ? '' : 's'})`, `${powerOfTen(d.log10PCorrected)} (log₁₀ p = ${formatLog10(d.log10PCorrected)})`)}
${row('Threshold α', formatAlpha(d.alpha))}
${row('Calibration on human text', `${escapeHtml(calibration.reference)}${calibration.observedFalsePositiveRate === undefined ? '' : `; observed false-positive rate ${calibration.observedFalsePositiveRate.toExponential(1)}`}${calibration.numTexts === undefined ? '' : ` over ${calibration.numTexts.toLocaleString('en-US')} human passages`}`)}
${row('Software', escapeHtml(`${predicate.software.name} ${predicate.software.version}`))}
${row('Verified at', escapeHtml(predicate.verifiedAt))}
</tbody></table>`;
}

function segmentsSection(predicate: EvidencePredicate): string {
  if (predicate.segments.length === 0) return '';
  const rows = predicate.segments
    .map(
      (segment) =>
        `<tr><td>${segment.kind === 'window' ? 'strongest passage' : 'segment'}</td><td>${segment.startToken}–${segment.endToken - 1}</td><td>${segment.numGreen} / ${segment.numScored}</td><td>${segment.z.toFixed(2)}</td><td>${powerOfTen(segment.log10P)}${segment.log10PCorrected === undefined ? '' : ` (corrected for the passages searched: ${powerOfTen(segment.log10PCorrected)})`}</td></tr>`,
    )
    .join('\n');
  return `<table class="segments"><thead><tr><th></th><th>tokens</th><th>green / scored</th><th>z</th><th>p-value of the segment alone</th></tr></thead><tbody>${rows}</tbody></table>`;
}

function issuanceSection(predicate: EvidencePredicate): string {
  const issuance = predicate.issuance;
  if (issuance === null) return '<p>No issued output matched this text, exactly or as a near-duplicate.</p>';
  let checkpoint = '';
  try {
    const parsed = parseCheckpoint(issuance.checkpoint);
    checkpoint = `log <code>${escapeHtml(parsed.origin)}</code>, ${parsed.size} ${parsed.size === 1 ? 'entry' : 'entries'}, root <code>${escapeHtml(toHex(parsed.rootHash))}</code>`;
  } catch {
    checkpoint = 'the checkpoint cannot be read';
  }
  const record = issuance.record;
  return `<table class="details"><tbody>
${row('Match', issuance.match === 'near-duplicate' ? `near-duplicate: ${escapeHtml(issuance.similarityMeasure ?? 'similar')}; measured ${issuance.similarity?.toFixed(3)}` : 'exact (the same text, after normalization)')}
${row('Issuance record', `<code>${escapeHtml(issuance.recordId)}</code>, entry ${issuance.leafIndex} of ${issuance.treeSize}`)}
${row('Signed checkpoint', checkpoint)}
${row('Inclusion proof', issuance.inclusionProof.length === 0 ? "none needed: the entry is the whole log, its hash is the checkpoint's root" : `${issuance.inclusionProof.length} hash${issuance.inclusionProof.length === 1 ? '' : 'es'} leading from the entry to the checkpoint's root`)}
${
  record === undefined
    ? row('Record', 'not disclosed to the requester')
    : [
        row('Issued at', escapeHtml(record.time)),
        row(
          'Account / API key id',
          `${escapeHtml(record.account)} / <code>${escapeHtml(record.apiKeyId)}</code>`,
        ),
        row('Model', escapeHtml(record.model)),
        row(
          'Watermark key (epoch)',
          `<code>${escapeHtml(record.watermarkKeyId)}</code>${record.keyEpoch === null ? '' : ` (epoch ${escapeHtml(record.keyEpoch)})`}`,
        ),
        row('Output tokens', String(record.tokenCount)),
      ].join('\n')
}
</tbody></table>`;
}

/** Percent with up to three significant digits: "0.5%", "12.3%". */
function percent(fraction: number): string {
  return `${Number((100 * fraction).toPrecision(3))}%`;
}

function signed(value: number, digits = 3): string {
  const text = value.toFixed(digits);
  return value > 0 ? `+${text}` : text;
}

const SCAN_TITLES: Readonly<Record<ScanEvidence['verdict'], string>> = {
  radioactive: 'Radioactive: the corpus carries the watermark',
  not_radioactive: 'Not radioactive: no trace of the watermark',
  insufficient: 'Inconclusive',
};

/** A scan's verdict in plain words: what was tested, what it showed, and how sure one can be. */
export function plainScanVerdict(
  predicate: EvidencePredicate,
  scan: ScanEvidence,
  corpus: CorpusDescription | null,
): Headline {
  const d = predicate.detection;
  const key = scan.keys.find((k) => k.keyId === d.keyId) ?? scan.keys[0];
  const files =
    corpus === null ? '' : ` read from ${corpus.inputs.length} file${corpus.inputs.length === 1 ? '' : 's'}`;
  const what = `The corpus tested (${scan.numDocuments.toLocaleString('en-US')} documents${files}, ${scan.numTokens.toLocaleString('en-US')} tokens${scan.numPromptTokens > 0 ? `; ${scan.numPromptTokens.toLocaleString('en-US')} prompt tokens were not scored` : ''}) was scored with ${d.numTests === 1 ? 'one watermark key' : `${d.numTests} watermark keys`}${scan.supervised ? `, restricted to the word windows of ${(scan.issued?.numOutputs ?? 0).toLocaleString('en-US')} outputs this service issued` : ''}.`;
  const keys = d.numTests === 1 ? 'the one watermark key tested' : `the ${d.numTests} watermark keys tested`;
  const counts =
    key === undefined
      ? ''
      : ` Of its ${key.numScored.toLocaleString('en-US')} distinct scored tokens, ${key.numGreen.toLocaleString('en-US')} are “green” (${percent(key.numScored === 0 ? 0 : key.numGreen / key.numScored)}), where ${percent(key.gamma)} would be by chance.`;
  const chance = ` The probability of this much evidence in a corpus without the watermark is ${powerOfTen(d.log10PCorrected)}, taking into account ${keys} (threshold ${formatAlpha(d.alpha)}).`;
  const calibration =
    key === undefined || key.calibration.fakeKeys === 0
      ? ''
      : ` Scored the same way, ${key.calibration.fakeKeys} fake keys that nobody ever used rank the true key ${key.calibration.rank} of ${key.calibration.fakeKeys + 1}.`;
  const meaning =
    scan.verdict === 'radioactive'
      ? ' Radioactive means that the corpus contains text generated with this watermark, or was produced by a model trained on such text.'
      : scan.verdict === 'not_radioactive'
        ? ` No trace of the watermark was found${key === undefined ? '' : `: a dose of watermarked training text of ${percent(key.doseUpperBound)} or more is ruled out`}. This does not prove that none was used.`
        : ' The test cannot decide either way.';
  return {
    title: SCAN_TITLES[scan.verdict] ?? 'Inconclusive',
    tone: scan.verdict === 'radioactive' ? 'strong' : scan.verdict === 'not_radioactive' ? 'none' : 'neutral',
    words: `${escapeHtml(what + counts)}${chance}${escapeHtml(calibration + meaning)}`,
  };
}

function corpusSection(predicate: EvidencePredicate, corpus: CorpusDescription | null): string {
  const subject = row(
    'Corpus description (SHA-256, the report’s subject)',
    `<code>${escapeHtml(predicate.text.sha256)}</code>`,
  );
  if (corpus === null) {
    return `<table class="details"><tbody>${subject}</tbody></table><p class="muted">The report does not carry a readable corpus description.</p>`;
  }
  const files = corpus.inputs
    .map(
      (input) =>
        `<tr><td><code>${escapeHtml(input.path)}</code></td><td>${input.bytes.toLocaleString('en-US')}</td><td><code>${escapeHtml(input.sha256)}</code></td></tr>`,
    )
    .join('\n');
  const supervision = corpus.supervision;
  return `<table class="files"><thead><tr><th>file, in the order read</th><th>bytes</th><th>SHA-256</th></tr></thead><tbody>${files}</tbody></table>
<table class="details"><tbody>
${subject}
${row('Text read from', escapeHtml(corpus.field))}
${row('Prompts read from', corpus.promptField === null ? 'not read' : escapeHtml(corpus.promptField))}
${row(
  'Issued outputs used',
  supervision === null
    ? 'none: every scored window counts'
    : `${supervision.numOutputs.toLocaleString('en-US')} outputs from ${escapeHtml(supervision.source)}${supervision.account === null ? '' : `, account ${escapeHtml(supervision.account)}`}`,
)}
</tbody></table>`;
}

function scanKeysSection(scan: ScanEvidence): string {
  const rows = scan.keys
    .map((key) => {
      const c = key.calibration;
      const [low, high] = key.effectInterval;
      return `<tr><td><code>${escapeHtml(key.keyId)}</code><br><span class="muted">${escapeHtml(key.scheme)}, context ${key.contextWidth}, γ = ${key.gamma}</span></td><td>${key.numGreen.toLocaleString('en-US')} / ${key.numScored.toLocaleString('en-US')}</td><td>${signed(key.effect)}${low === undefined || high === undefined ? '' : ` [${signed(low)}, ${signed(high)}]`}</td><td>${key.z.toFixed(2)}</td><td>${powerOfTen(key.log10P)}</td><td>${powerOfTen(key.log10PAdjusted)}</td><td>${c.fakeKeys === 0 ? '–' : `${c.rank} of ${c.fakeKeys + 1}; KS p = ${c.ksPValue.toPrecision(3)}`}</td><td>${key.dose === null ? (key.doseUpperBound >= 1 ? 'none ruled out' : `below ${percent(key.doseUpperBound)}`) : `${percent(key.dose.estimate)}${key.dose.interval.length === 2 ? ` [${percent(key.dose.interval[0]!)}, ${percent(key.dose.interval[1]!)}]` : ''}`}</td><td>${escapeHtml(key.verdict.replace('_', ' '))}</td></tr>`;
    })
    .join('\n');
  return `<table class="segments"><thead><tr><th>key</th><th>green / scored</th><th>effect (green fraction − γ) [95%]</th><th>z</th><th>p-value</th><th>p corrected (Holm)</th><th>rank among fake keys</th><th>dose</th><th>verdict</th></tr></thead><tbody>${rows}</tbody></table>
<p class="caption">Each distinct (context, token) pair of the corpus is scored once, in document order. The p-values are exact binomial tails; the correction accounts for every key tested. The dose is the share of watermarked text in the training data that the effect corresponds to (an upper bound when nothing was found).</p>`;
}

function attributionSection(scan: ScanEvidence): string {
  const attribution = scan.attribution;
  if (attribution === null) return '';
  const rows = attribution.accounts
    .map(
      (account) =>
        `<tr${account.attributed ? ' class="ok"' : ''}><td>${escapeHtml(account.account)}</td><td>${account.numOutputs.toLocaleString('en-US')}</td><td>${account.numExclusiveWindows.toLocaleString('en-US')}</td><td>${account.numGreen.toLocaleString('en-US')} / ${account.numScored.toLocaleString('en-US')}</td><td>${powerOfTen(account.log10PAdjusted)}</td><td>${account.attributed ? 'attributed' : 'not attributed'}</td></tr>`,
    )
    .join('\n');
  return `<h2>Attribution to accounts</h2>
<p>${attribution.attributedTo.length === 0 ? `None of the ${attribution.accountsTested} accounts tested is named` : `Named: ${attribution.attributedTo.map(escapeHtml).join(', ')}`} (corrected across the accounts tested, threshold ${formatAlpha(attribution.alpha)}), from the word windows issued to each account alone.</p>
<table class="segments"><thead><tr><th>account</th><th>outputs issued</th><th>windows of its own</th><th>green / scored</th><th>p corrected</th><th></th></tr></thead><tbody>${rows}</tbody></table>`;
}

function scanDetailsSection(predicate: EvidencePredicate, scan: ScanEvidence): string {
  const parameters = Object.entries(predicate.algorithm.parameters)
    .map(([name, value]) => `${escapeHtml(name)} = ${escapeHtml(JSON.stringify(value))}`)
    .join(', ');
  return `<table class="details"><tbody>
${row('Watermark keys tested (public ids)', predicate.algorithm.keyIds.map((id) => `<code>${escapeHtml(id)}</code>`).join(', '))}
${row('Watermark scheme', `${escapeHtml(predicate.algorithm.name)} (${parameters})`)}
${row('Tokenizer', escapeHtml(predicate.tokenizer.name + (predicate.tokenizer.version === undefined ? '' : ` ${predicate.tokenizer.version}`)))}
${row('Threshold α', formatAlpha(predicate.detection.alpha))}
${row('Fake keys (calibration)', `${scan.fakeKeys.count}, derived from the public label <code>${escapeHtml(scan.fakeKeys.seed)}</code>`)}
${row('Calibration', escapeHtml(predicate.calibration.reference))}
${row('Smallest dose the test is sized for', `${percent(scan.minimumDose)} (miss rate ${percent(scan.missRate)})`)}
${row('Why this verdict', escapeHtml(scan.reason))}
${row('Software', escapeHtml(`${predicate.software.name} ${predicate.software.version}`))}
${row('Scanned at', escapeHtml(predicate.verifiedAt))}
</tbody></table>`;
}

function scanBody(
  predicate: EvidencePredicate,
  scan: ScanEvidence,
  banner: string,
  verification: EvidenceReportVerification,
): string {
  const corpus = corpusDescriptionOf(predicate);
  const headline = plainScanVerdict(predicate, scan, corpus);
  return `${banner}
<section class="verdict ${headline.tone}"><h2>${escapeHtml(headline.title)}</h2><p>${headline.words}</p></section>
${proofSectionWithHeading(verification)}
<h2>The corpus tested</h2>
${corpusSection(predicate, corpus)}
<h2>Keys tested</h2>
${scanKeysSection(scan)}
${attributionSection(scan)}
<h2>Scan details</h2>
${scanDetailsSection(predicate, scan)}
<h2>Limitations</h2>
<ul class="limits">${predicate.limitations.map((line) => `<li>${escapeHtml(line)}</li>`).join('')}</ul>
<footer>Signed evidence report (DSSE envelope, in-toto Statement, Ed25519), signed by <code>${escapeHtml(verification.signer ?? 'unknown')}</code>. The report carries the corpus description it is about; compare each file's SHA-256 with the files you hold. Anyone can check the report offline: <code>tracemark evidence verify REPORT --public-key keys.json</code>. This page is a rendering of the report; the report file is the evidence.</footer>`;
}

const STYLE = `
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { font: 15px/1.5 Georgia, 'Times New Roman', serif; color: #1a1a1a; max-width: 900px; margin: 24px auto; padding: 0 24px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 28px 0 8px; border-bottom: 1px solid #bbb; padding-bottom: 2px; }
.sub { color: #555; margin: 0 0 16px; }
.verdict { border: 2px solid #333; padding: 12px 16px; border-radius: 4px; }
.verdict.strong { border-color: #1d6b2f; background: #eef8f0; }
.verdict.none { border-color: #555; background: #f4f4f4; }
.verdict.neutral { border-color: #8a6d00; background: #fdf8e6; }
.verdict h2 { border: 0; margin: 0 0 6px; font-size: 21px; }
.alert { border: 3px solid #a31515; background: #fdeaea; padding: 12px 16px; margin: 0 0 16px; font-weight: bold; }
.notice { border: 2px solid #8a6d00; background: #fdf8e6; padding: 8px 16px; margin: 0 0 16px; }
table { border-collapse: collapse; width: 100%; font-size: 14px; }
th, td { text-align: left; vertical-align: top; padding: 4px 8px; border-bottom: 1px solid #ddd; }
table.details th { width: 34%; font-weight: normal; color: #444; }
table.checks td.mark { width: 2em; font-size: 17px; text-align: center; }
tr.ok td.mark { color: #1d6b2f; } tr.bad td { color: #a31515; font-weight: bold; } tr.skip td { color: #666; }
tr.warn td { color: #8a6d00; } tr.warn td.mark { font-weight: bold; }
code { font: 12px/1.4 'DejaVu Sans Mono', Menlo, Consolas, monospace; word-break: break-all; }
.text { white-space: pre-wrap; word-wrap: break-word; border: 1px solid #ccc; padding: 12px; font: 14px/1.9 Georgia, serif; }
.g { background: #b9e8c1; border-bottom: 2px solid #1d6b2f; box-shadow: inset -1px 0 0 #fff; }
.r { background: #f6c9c9; border-bottom: 2px dotted #a31515; box-shadow: inset -1px 0 0 #fff; }
.n { border-bottom: 2px solid #555; }
.s { color: #777; }
.legend { font-size: 13px; margin-bottom: 6px; }
.legend span { padding: 0 4px; }
.muted { color: #666; font-size: 13px; }
.caption { font-size: 13px; color: #444; }
svg { font: 12px Georgia, serif; fill: #333; border: 1px solid #ddd; }
svg .curve { fill: none; stroke: #1d4f91; stroke-width: 2; }
svg .grid { stroke: #e6e6e6; }
svg .axis { stroke: #555; }
svg .threshold { stroke: #a31515; stroke-dasharray: 6 4; stroke-width: 1.5; }
svg .threshold-label { fill: #a31515; }
svg .band { fill: #1d6b2f; opacity: 0.12; }
ul.limits li { margin: 4px 0; }
footer { margin-top: 32px; font-size: 12px; color: #555; border-top: 1px solid #bbb; padding-top: 8px; }
@media print {
  body { margin: 0; max-width: none; font-size: 12pt; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  h2 { break-after: avoid; } tr, svg, .verdict { break-inside: avoid; }
}
`;

/**
 * The whole page: the scan template for a radioactivity scan report, else the template for one text. A
 * report that failed a check is still drawn (from what its payload claims), under a banner saying so.
 */
export function renderEvidenceHtml(
  report: EvidenceReportFile,
  verification: EvidenceReportVerification,
): string {
  const predicate = verification.predicate ?? claimedPredicate(report.envelope);
  const signatureOk = verification.signatureOk;
  const failed = verification.checks.filter((check) => !check.ok && check.name !== 'signer-key');
  const service = verification.signer?.split('+')[0] ?? 'the service';
  const banner =
    failed.length > 0
      ? `<div class="alert">This report did NOT verify: ${escapeHtml(verification.reason ?? 'a check failed')}.${signatureOk ? ' The parts below that depend on the failed check cannot be relied on.' : ' Its signature does not hold, so nothing below can be relied on: it may have been altered.'}</div>`
      : verification.pinned
        ? ''
        : `<div class="notice">Every check holds, but the signing key was taken from the report itself. To confirm who signed it, check again with the service's published key (<code>tracemark evidence verify REPORT --public-key keys.json</code>).</div>`;
  const unreadable = (why: string) =>
    page(
      `${banner}<p>The report's contents cannot be read${why}.</p>${proofSectionWithHeading(verification)}`,
      TEXT_PAGE,
    );
  if (predicate === null) return unreadable('');
  // A report that failed its checks is drawn from what its payload claims, and one whose signer is not pinned
  // may be signed by anyone: a field missing or of another type must not end the rendering with an error.
  try {
    return predicatePage(predicate, verification, banner, service);
  } catch (error) {
    if (error instanceof TypeError || error instanceof RangeError) {
      return unreadable(': its payload is malformed (a field is missing or of the wrong type)');
    }
    throw error;
  }
}

function predicatePage(
  predicate: EvidencePredicate,
  verification: EvidenceReportVerification,
  banner: string,
  service: string,
): string {
  const scan = scanEvidenceOf(predicate);
  if (scan !== null) {
    return page(scanBody(predicate, scan, banner, verification), SCAN_PAGE);
  }
  const headline = plainVerdict(predicate, service);
  const body = `${banner}
<section class="verdict ${headline.tone}"><h2>${escapeHtml(headline.title)}</h2><p>${headline.words}</p></section>
${proofSectionWithHeading(verification)}
<h2>The text</h2>
${textSection(predicate)}
<h2>Evidence along the text</h2>
${plotSection(predicate)}
${segmentsSection(predicate)}
<h2>Issuance record</h2>
${issuanceSection(predicate)}
<h2>Detection details</h2>
${detailsSection(predicate)}
<h2>Limitations</h2>
<ul class="limits">${predicate.limitations.map((line) => `<li>${escapeHtml(line)}</li>`).join('')}</ul>
<footer>Signed evidence report (DSSE envelope, in-toto Statement, Ed25519), signed by <code>${escapeHtml(verification.signer ?? 'unknown')}</code>. Anyone can check it offline: <code>tracemark evidence verify REPORT --text TEXT --public-key keys.json</code>. This page is a rendering of the report; the report file is the evidence.</footer>`;
  return page(body, TEXT_PAGE);
}

function proofSectionWithHeading(verification: EvidenceReportVerification): string {
  return `<h2>Proof status</h2>${proofSection(verification)}`;
}

const TEXT_PAGE = {
  title: 'Watermark and provenance report',
  question: 'Did this service produce this text, and how sure can one be?',
} as const;
const SCAN_PAGE = {
  title: 'Radioactivity scan report',
  question:
    'Does this corpus (a data set, or text sampled from a model) carry this service’s watermark, and how sure can one be?',
} as const;

function page(body: string, kind: { readonly title: string; readonly question: string }): string {
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(kind.title)}</title><style>${STYLE}</style></head>
<body><h1>${escapeHtml(kind.title)}</h1><p class="sub">${escapeHtml(kind.question)}</p>
${body}
</body></html>
`;
}
