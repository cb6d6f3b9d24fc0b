import { log10BinomialSf } from '@tracemark/core';
import {
  canonicalJson,
  type EvidencePredicate,
  fromBase64,
  generateSigningKey,
  MemoryLogStore,
  MerkleLog,
  STANDARD_LIMITATIONS,
  sha256Hex,
  signCheckpoint,
  signEvidence,
  toBase64,
  toHex,
} from '@tracemark/provenance';
import { normalizeText } from '@tracemark/tokenizers';
import { describe, expect, it } from 'vitest';
import {
  CORPUS_FORMAT,
  type CorpusDescription,
  claimedPredicate,
  detectedPassage,
  type EvidenceReportFile,
  escapeHtml,
  evidenceCurve,
  plainVerdict,
  powerOfTen,
  REPORT_FORMAT,
  renderEvidenceHtml,
  SCAN_EVIDENCE_KIND,
  type ScanEvidence,
  scanEvidenceOf,
  tokenPieces,
  verifyEvidenceReport,
} from './evidence.ts';

const signer = generateSigningKey('test.tracemark/log', new Uint8Array(32).fill(9));
const trustedKeys = { keys: [signer.verifierKey] };
const TEXT = 'Café <script>alert(1)</script> 🧑‍🔬 done';

async function textPredicate(overrides: Partial<EvidencePredicate> = {}): Promise<EvidencePredicate> {
  const log = new MerkleLog(new MemoryLogStore());
  await log.appendLeaves([new Uint8Array([1]), new Uint8Array([2]), new Uint8Array([3])]);
  return {
    text: { sha256: sha256Hex(TEXT), normalization: 'NFC', content: TEXT },
    tokenizer: { name: 'cl100k_base' },
    algorithm: {
      name: 'tracemark-v1/lefthash',
      parameters: { gamma: 0.25, gammaEffective: 0.25 },
      keyIds: ['tmk1_a'],
    },
    software: { name: '@tracemark/gateway', version: '0.1.0' },
    detection: {
      keyId: 'tmk1_a',
      numScored: 3,
      numGreen: 2,
      z: 2,
      log10P: -1,
      log10PCorrected: -1,
      correction: 'none',
      numTests: 1,
      alpha: 1e-4,
      verdict: 'inconclusive',
    },
    calibration: { reference: 'research/results/fpr.md' },
    segments: [{ kind: 'fixed', startToken: 0, endToken: 5, numScored: 3, numGreen: 2, z: 2, log10P: -1 }],
    issuance: {
      match: 'exact',
      recordId: 'iss_1',
      leafIndex: 1,
      treeSize: 3,
      leafHash: toHex(await log.leafHash(1)),
      inclusionProof: (await log.inclusionProof(1, 3)).map(toHex),
      checkpoint: signCheckpoint({ origin: signer.name, size: 3, rootHash: await log.root(3) }, signer),
    },
    limitations: [...STANDARD_LIMITATIONS],
    verifiedAt: '2026-11-22T00:00:00.000Z',
    tokens: {
      keyId: 'tmk1_a',
      numTokens: 6,
      statuses: 'CGRGSC',
      ends: [5, 14, 22, 31, 31, 40],
      truncated: false,
    },
    ...overrides,
  };
}

function reportOf(predicate: EvidencePredicate, subjectName?: string): EvidenceReportFile {
  return {
    format: REPORT_FORMAT,
    version: 1,
    keyId: signer.keyId,
    verifierKey: signer.verifierKey,
    envelope: signEvidence(predicate, signer, subjectName === undefined ? {} : { subjectName }),
  };
}

describe('the page of a report about one text', () => {
  it('cuts the normalized text into the tokens the statuses describe', async () => {
    const cut = tokenPieces(await textPredicate())!;
    expect(cut.pieces.map((piece) => piece.text).join('') + cut.rest).toBe(normalizeText(TEXT));
    expect(cut.pieces[0]).toEqual({ text: 'Café ', status: 'C' });
    expect(cut.pieces.map((piece) => piece.status).join('')).toBe('CGRGSC');
    expect(tokenPieces(await textPredicate({ tokens: undefined as never }))).toBeNull();
  });

  it('plots −log10 p after each token with the core binomial tail, and formats small probabilities', () => {
    const curve = evidenceCurve('CGGRGDG', 0.25);
    expect(curve.map((p) => p.token)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(curve[0]!.value).toBe(0);
    expect(curve[2]!.value).toBeCloseTo(-Math.log10(0.0625), 10);
    expect(curve[4]!.value).toBeCloseTo(-log10BinomialSf(3, 4, 0.25), 12);
    expect(curve[6]!.value).toBeCloseTo(-log10BinomialSf(4, 5, 0.25), 12);
    expect(evidenceCurve('G'.repeat(5000), 0.25, 100)).toHaveLength(100);
    expect(powerOfTen(-47.92)).toBe('1.2 × 10<sup>-48</sup>');
    expect(powerOfTen(-1)).toBe('0.10');
    expect(escapeHtml(`<a href="x">'&`)).toBe('&#60;a href=&#34;x&#34;&#62;&#39;&#38;');
  });

  it('finds the detected passage only when its corrected p-value reaches α', async () => {
    const window = {
      kind: 'window' as const,
      startToken: 3,
      endToken: 40,
      numScored: 30,
      numGreen: 25,
      z: 8,
      log10P: -12,
      log10PCorrected: -9,
    };
    expect(detectedPassage(await textPredicate({ segments: [window] }))).toEqual(window);
    expect(
      detectedPassage(await textPredicate({ segments: [{ ...window, log10PCorrected: -3 }] })),
    ).toBeNull();
  });

  it('states the verdict in plain words for each outcome', async () => {
    const base = await textPredicate();
    const detected = { ...base.detection, verdict: 'detected' as const, log10P: -20, log10PCorrected: -20 };
    expect(plainVerdict({ ...base, detection: detected }, 'acme').title).toBe(
      'Issued by this service, and watermarked',
    );
    expect(plainVerdict({ ...base, issuance: null, detection: detected }, 'acme').title).toBe(
      'Watermarked, but not found in the issuance log',
    );
    const none = { ...base.detection, verdict: 'not-detected' as const, log10P: 0, log10PCorrected: 0 };
    const words = plainVerdict({ ...base, issuance: null, detection: none }, 'acme');
    expect(words.title).toBe('No watermark, no issuance record');
    expect(words.words).toMatch(/does not prove that a person wrote the text/);
  });

  it('is self-contained, escapes the text, and shows a failed check prominently', async () => {
    const report = reportOf(await textPredicate());
    const html = renderEvidenceHtml(report, verifyEvidenceReport(report, { trustedKeys }));
    expect(html).not.toMatch(/<script|<link|<img|src=|url\(/i);
    expect(html).toContain('&#60;script');
    expect(html).toContain('<svg');
    expect(html).toContain('<h1>Watermark and provenance report</h1>');
    expect(html).not.toContain('Radioactivity');
    expect(html).not.toContain('did NOT verify');
    expect(html.match(/<span class="g" title=/g)).toHaveLength(2);
    expect(html.match(/<span class="r" title=/g)).toHaveLength(1);
    const unpinned = renderEvidenceHtml(report, verifyEvidenceReport(report));
    expect(unpinned).toContain(
      'class="notice">Every check holds, but the signing key was taken from the report',
    );
    const altered = {
      ...report,
      envelope: { ...report.envelope, payload: `A${report.envelope.payload.slice(1)}` },
    };
    const failed = renderEvidenceHtml(altered, verifyEvidenceReport(altered, { trustedKeys }));
    expect(failed).toMatch(
      /class="alert">This report did NOT verify: signature of the report: TM_ERR_BAD_SIGNATURE/,
    );
  });
});

/** A scan's predicate as `tracemark scan --evidence` builds it (apps/cli/src/scan-evidence.ts). */
function scanPredicate(verdict: ScanEvidence['verdict']): EvidencePredicate & { scan: ScanEvidence } {
  const corpus: CorpusDescription = {
    format: CORPUS_FORMAT,
    version: 1,
    inputs: [
      { path: 'suspect/part-1.jsonl', bytes: 81_920, sha256: 'a'.repeat(64) },
      { path: 'suspect/<part-2>.jsonl', bytes: 40_960, sha256: 'b'.repeat(64) },
    ],
    field: 'text, else output',
    promptField: 'prompt, when a record has it',
    supervision: null,
  };
  const content = canonicalJson(corpus as never);
  const radioactive = verdict === 'radioactive';
  const numScored = 48_213;
  const numGreen = radioactive ? 13_102 : 12_019;
  const log10P = log10BinomialSf(numGreen, numScored, 0.25);
  const log10PAdjusted = Math.min(0, log10P + Math.log10(2));
  const key = (keyId: string, green: number) => {
    const p = log10BinomialSf(green, numScored, 0.25);
    return {
      keyId,
      scheme: 'lefthash',
      contextWidth: 1,
      gamma: 0.25,
      numScored,
      numGreen: green,
      effect: green / numScored - 0.25,
      effectInterval: [green / numScored - 0.254, green / numScored - 0.246],
      z: (green - 0.25 * numScored) / Math.sqrt(numScored * 0.25 * 0.75),
      log10P: p,
      log10PAdjusted: Math.min(0, p + Math.log10(2)),
      calibration: {
        fakeKeys: 100,
        seed: 'tracemark-fake-keys-v1',
        rank: keyId === 'tmk1_strong' && radioactive ? 1 : 37,
        empiricalPValue: keyId === 'tmk1_strong' && radioactive ? 1 / 101 : 37 / 101,
        ksStatistic: 0.07,
        ksPValue: 0.68,
        uniform: true,
      },
      dose: null,
      doseUpperBound: radioactive ? 1 : 0.031,
      verdict: keyId === 'tmk1_strong' ? verdict : ('not_radioactive' as const),
      reason: 'the reason',
    };
  };
  const scan: ScanEvidence = {
    kind: SCAN_EVIDENCE_KIND,
    verdict,
    reason: radioactive
      ? 'key tmk1_strong: corrected p below α, and it ranks first among 100 fake keys'
      : 'no key reaches α',
    supervised: false,
    issued: null,
    numDocuments: 1_200,
    numTokens: 190_442,
    numPromptTokens: 20_311,
    minimumDose: 0.05,
    missRate: 0.05,
    fakeKeys: { count: 100, seed: 'tracemark-fake-keys-v1' },
    keys: [key('tmk1_strong', numGreen), key('tmk1_other', 12_050)],
    attribution: radioactive
      ? {
          method: 'exclusive-windows',
          accountsTested: 2,
          alpha: 1e-6,
          accounts: [
            {
              account: 'alpha',
              numOutputs: 40,
              numIssuedTokens: 8_000,
              numExclusiveWindows: 5_000,
              numScored: 2_000,
              numGreen: 900,
              keyId: 'tmk1_strong',
              log10P: -60,
              log10PAdjusted: -59.7,
              attributed: true,
            },
          ],
          attributedTo: ['alpha'],
        }
      : null,
  };
  return {
    text: { sha256: sha256Hex(content), normalization: 'none', content },
    tokenizer: { name: 'cl100k_base' },
    algorithm: {
      name: 'tracemark-v1/lefthash',
      parameters: { contextWidth: 1, gamma: 0.25, delta: 2 },
      keyIds: ['tmk1_strong', 'tmk1_other'],
    },
    software: { name: '@tracemark/cli', version: '0.1.0' },
    detection: {
      keyId: 'tmk1_strong',
      numScored,
      numGreen,
      z: (numGreen - 0.25 * numScored) / Math.sqrt(numScored * 0.25 * 0.75),
      log10P,
      log10PCorrected: log10PAdjusted,
      correction: 'holm',
      numTests: 2,
      alpha: 1e-6,
      verdict: radioactive ? 'detected' : 'not-detected',
    },
    calibration: { reference: '100 fake keys derived from the public label "tracemark-fake-keys-v1"' },
    segments: [],
    issuance: null,
    limitations: [
      'The test is of the corpus as described: its files, read in this order, with these fields.',
    ],
    verifiedAt: '2026-11-22T00:00:00.000Z',
    scan,
  };
}

describe('the page of a radioactivity scan report', () => {
  it('has its own template: the corpus tested, its counts, p-values and keys, not the single-text questions', () => {
    const predicate = scanPredicate('radioactive');
    const report = reportOf(predicate, 'corpus');
    const verification = verifyEvidenceReport(report, { trustedKeys });
    expect(verification.status, verification.reason ?? '').toBe('verified');
    expect(scanEvidenceOf(verification.predicate!)).toEqual(predicate.scan);
    const html = renderEvidenceHtml(report, verification);

    expect(html).toContain('<h1>Radioactivity scan report</h1>');
    expect(html).toContain('Does this corpus (a data set, or text sampled from a model) carry');
    expect(html).toContain('<h2>Radioactive: the corpus carries the watermark</h2>');
    for (const phrase of [
      'Did this service produce this text',
      'The text</h2>',
      'Evidence along the text',
      'Issuance record',
      'the text carries',
    ]) {
      expect(html, phrase).not.toContain(phrase);
    }
    // What was tested: 1,200 documents from two files, each named with its digest, escaped.
    expect(html).toContain('The corpus tested (1,200 documents read from 2 files, 190,442 tokens');
    expect(html).toContain('20,311 prompt tokens were not scored');
    expect(html).toContain('<code>suspect/&#60;part-2&#62;.jsonl</code>');
    expect(html).toContain(`<code>${'a'.repeat(64)}</code>`);
    expect(html).toContain(`<code>${predicate.text.sha256}</code>`);
    // Its counts and p-value, and every key tested with its own numbers.
    expect(html).toContain(
      'Of its 48,213 distinct scored tokens, 13,102 are “green” (27.2%), where 25% would be by chance.',
    );
    expect(html).toContain(
      `The probability of this much evidence in a corpus without the watermark is ${powerOfTen(predicate.detection.log10PCorrected)}, taking into account the 2 watermark keys tested`,
    );
    expect(html).toContain('<td>13,102 / 48,213</td>');
    expect(html).toContain('<td>12,050 / 48,213</td>');
    expect(html).toContain('<code>tmk1_strong</code>, <code>tmk1_other</code>');
    expect(html).toContain('rank the true key 1 of 101');
    expect(html).toContain('<td>1 of 101; KS p = 0.680</td>');
    // Attribution, limitations, the proof status, and nothing to fetch.
    expect(html).toContain('Named: alpha');
    expect(html).toContain('The test is of the corpus as described');
    expect(html).toContain('<h2>Proof status</h2>');
    expect(html).not.toMatch(/<script|<link|<img|src=|url\(/i);
    expect(html.match(/https?:\/\/[^\s"<]+/g) ?? []).toEqual([]);
  });

  it('says what a scan that found nothing rules out, and flags a tampered scan report', () => {
    const report = reportOf(scanPredicate('not_radioactive'), 'corpus');
    const html = renderEvidenceHtml(report, verifyEvidenceReport(report, { trustedKeys }));
    expect(html).toContain('<h2>Not radioactive: no trace of the watermark</h2>');
    expect(html).toContain('a dose of watermarked training text of 3.1% or more is ruled out');
    expect(html).toContain('This does not prove that none was used.');
    expect(html).not.toContain('Attribution to accounts');

    // The scan's numbers changed after signing: still drawn with the scan template, under the alert.
    const statement = JSON.parse(new TextDecoder().decode(fromBase64(report.envelope.payload, 'payload')));
    statement.predicate.scan.keys[0].numGreen = 20_000;
    const payload = toBase64(new TextEncoder().encode(JSON.stringify(statement)));
    const altered = { ...report, envelope: { ...report.envelope, payload } };
    expect(claimedPredicate(altered.envelope)?.text.sha256).toBe(statement.predicate.text.sha256);
    const failed = renderEvidenceHtml(altered, verifyEvidenceReport(altered, { trustedKeys }));
    expect(failed).toContain(
      'class="alert">This report did NOT verify: signature of the report: TM_ERR_BAD_SIGNATURE',
    );
    expect(failed).toContain('nothing below can be relied on');
    expect(failed).toContain('<h1>Radioactivity scan report</h1>');
    expect(failed).toContain('<td>20,000 / 48,213</td>');
  });

  it('draws a tampered report whose fields are missing or of the wrong type as unreadable, not with an error', () => {
    const report = reportOf(scanPredicate('not_radioactive'), 'corpus');
    const statement = JSON.parse(new TextDecoder().decode(fromBase64(report.envelope.payload, 'payload')));
    for (const change of [
      (predicate: Record<string, unknown>) => {
        predicate.detection = null;
        predicate.scan = undefined;
      },
      (predicate: Record<string, unknown>) => {
        predicate.algorithm = {};
        predicate.scan = undefined;
      },
      (predicate: Record<string, unknown>) => {
        predicate.limitations = 7;
        predicate.scan = undefined;
      },
    ]) {
      const copy = structuredClone(statement);
      change(copy.predicate);
      const payload = toBase64(new TextEncoder().encode(JSON.stringify(copy)));
      const altered = { ...report, envelope: { ...report.envelope, payload } };
      const html = renderEvidenceHtml(altered, verifyEvidenceReport(altered, { trustedKeys }));
      expect(html).toContain('This report did NOT verify');
      expect(html).toContain("The report's contents cannot be read: its payload is malformed");
    }
  });
});
