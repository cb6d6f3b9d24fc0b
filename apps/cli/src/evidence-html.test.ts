/**
 * Evidence report files as the CLI reads them, and `tracemark evidence render`, in process. The page itself
 * is `renderEvidenceHtml` of @tracemark/client/evidence (tested there); here: that the command writes it,
 * with the template that fits the report, from a report made by `tracemark scan --evidence`.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type EvidencePredicate,
  formatSignerKey,
  generateSigningKey,
  STANDARD_LIMITATIONS,
  sha256Hex,
  signEvidence,
} from '@tracemark/provenance';
import { afterAll, describe, expect, it } from 'vitest';
import { capture } from './capture.test-helper.ts';
import { run } from './cli.ts';
import {
  parseReport,
  REPORT_FORMAT,
  type ReportFile,
  readPublicKeys,
  verifyReport,
} from './evidence-report.ts';

const signer = generateSigningKey('test.tracemark/log', new Uint8Array(32).fill(9));
const directory = mkdtempSync(join(tmpdir(), 'tracemark-evidence-'));
afterAll(() => rmSync(directory, { recursive: true, force: true }));

const TEXT = 'Hello there, a short text.';

function textPredicate(): EvidencePredicate {
  return {
    text: { sha256: sha256Hex(TEXT), normalization: 'NFC', content: TEXT },
    tokenizer: { name: 'cl100k_base' },
    algorithm: { name: 'tracemark-v1/lefthash', parameters: { gamma: 0.25 }, keyIds: ['tmk1_a'] },
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
    segments: [],
    issuance: null,
    limitations: [...STANDARD_LIMITATIONS],
    verifiedAt: '2026-11-22T00:00:00.000Z',
  };
}

function reportOf(predicate: EvidencePredicate): ReportFile {
  return {
    format: REPORT_FORMAT,
    version: 1,
    keyId: signer.keyId,
    verifierKey: signer.verifierKey,
    envelope: signEvidence(predicate, signer),
  };
}

describe('evidence report files', () => {
  it('accept exactly the report fields, or a bare DSSE envelope; errors name the file', () => {
    const report = reportOf(textPredicate());
    expect(parseReport(JSON.stringify(report))).toEqual(report);
    expect(parseReport(JSON.stringify(report.envelope)).envelope).toEqual(report.envelope);
    expect(() => parseReport(JSON.stringify({ ...report, server: 'x' }), 'r.json')).toThrow(
      /^r\.json: a report has exactly the fields/,
    );
    expect(() => parseReport(JSON.stringify({ ...report, version: 2 }))).toThrow(/version 2/);
    expect(() => parseReport('{')).toThrow(/not valid JSON/);
  });

  it('read public keys from a key string or keys.json, and refuse anything else', async () => {
    writeFileSync(join(directory, 'key.txt'), `# the log\n${signer.verifierKey}\n`);
    writeFileSync(
      join(directory, 'keys.json'),
      JSON.stringify({ logOrigin: signer.name, keys: [{ verifierKey: signer.verifierKey }] }),
    );
    writeFileSync(join(directory, 'bad.txt'), 'not a key');
    expect(await readPublicKeys(join(directory, 'key.txt'))).toEqual({ keys: [signer.verifierKey] });
    expect(await readPublicKeys(join(directory, 'keys.json'))).toEqual({
      keys: [signer.verifierKey],
      origin: signer.name,
    });
    await expect(readPublicKeys(join(directory, 'bad.txt'))).rejects.toThrow(/not a verifier key/);
    await expect(readPublicKeys(join(directory, 'missing.txt'))).rejects.toThrow(/cannot read/);
  });

  it('verify: pinned 0, unpinned 4, another pinned key or a keyId that did not sign 1', () => {
    const report = reportOf(textPredicate());
    expect(verifyReport(report, { publicKeys: { keys: [signer.verifierKey] } }).exitCode).toBe(0);
    expect(verifyReport(report, {}).exitCode).toBe(4);
    const other = generateSigningKey('other.example/log');
    const wrong = verifyReport(report, { publicKeys: { keys: [other.verifierKey] } });
    expect(wrong.exitCode).toBe(1);
    expect(wrong.reason).toMatch(/^signer's key: the report names the signing key test.tracemark\/log\+/);
    const renamed = verifyReport({ ...report, keyId: other.keyId, verifierKey: other.verifierKey }, {});
    expect(renamed.exitCode).toBe(1);
    expect(renamed.reason).toMatch(/did not sign its envelope/);
    const bare = parseReport(JSON.stringify(report.envelope));
    expect(() => verifyReport(bare, {})).toThrow(/names no signing key: pass --public-key FILE/);
  });
});

describe('tracemark evidence render', () => {
  it('writes the single-text page for a report about one text', async () => {
    const reportPath = join(directory, 'text-report.json');
    writeFileSync(reportPath, JSON.stringify(reportOf(textPredicate())));
    const page = join(directory, 'text.html');
    const rendered = capture();
    expect(await run(['evidence', 'render', reportPath, '--html', page], rendered.io)).toBe(0);
    expect(rendered.err()).toMatch(/the report is intact; signer not pinned/);
    const html = readFileSync(page, 'utf8');
    expect(html).toContain('<h1>Watermark and provenance report</h1>');
    expect(html).toContain('Did this service produce this text');
  });

  it('writes the scan page for a report of `tracemark scan --evidence`', async () => {
    const keyFile = join(directory, 'key.json');
    expect(await run(['keygen', '--out', keyFile], capture().io)).toBe(0);
    const signingKey = join(directory, 'log-signing-key');
    writeFileSync(signingKey, `${formatSignerKey(signer)}\n`);
    const corpus = join(directory, 'corpus.jsonl');
    writeFileSync(
      corpus,
      [
        'The harbour was quiet in the early morning, and the fishing boats had not yet returned.',
        'A committee of residents asked the council to repair the old bridge before the winter storms.',
        'She kept her grandmother’s recipes in a tin box, written in pencil on the backs of envelopes.',
      ]
        .map((text, i) => JSON.stringify({ id: i, text }))
        .join('\n'),
    );
    const reportPath = join(directory, 'scan-report.json');
    const scanned = capture();
    const code = await run(
      [
        'scan',
        '--key',
        keyFile,
        '--fake-keys',
        '20',
        '--evidence',
        reportPath,
        '--signing-key',
        signingKey,
        '--quiet',
        corpus,
      ],
      scanned.io,
    );
    expect(code, scanned.err()).toBe(0);
    const report = JSON.parse(readFileSync(reportPath, 'utf8')) as ReportFile;
    const verification = verifyReport(report, { publicKeys: { keys: [signer.verifierKey] } });
    expect(verification.exitCode, verification.reason ?? '').toBe(0);
    const predicate = verification.statement!.predicate;

    const page = join(directory, 'scan.html');
    const keys = join(directory, 'signer.txt');
    writeFileSync(keys, `${signer.verifierKey}\n`);
    const rendered = capture();
    expect(
      await run(['evidence', 'render', reportPath, '--html', page, '--public-key', keys], rendered.io),
    ).toBe(0);
    expect(rendered.err()).toMatch(/the report verifies/);
    const html = readFileSync(page, 'utf8');
    expect(html).toContain('<h1>Radioactivity scan report</h1>');
    expect(html).not.toContain('Did this service produce this text');
    expect(html).toContain('The corpus tested (3 documents read from 1 file');
    expect(html).toContain(`<code>${corpus}</code>`);
    const d = predicate.detection;
    expect(html).toContain(
      `<td>${d.numGreen.toLocaleString('en-US')} / ${d.numScored.toLocaleString('en-US')}</td>`,
    );
    expect(html).toContain(`<code>${predicate.algorithm.keyIds[0]}</code>`);
    expect(html).toContain('20 fake keys that nobody ever used rank the true key');
    expect(html).toMatch(/<h2>(Not radioactive|Inconclusive)/);
  });
});
