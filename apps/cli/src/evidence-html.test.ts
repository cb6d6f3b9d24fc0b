import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type EvidencePredicate,
  generateSigningKey,
  MemoryLogStore,
  MerkleLog,
  STANDARD_LIMITATIONS,
  sha256Hex,
  signCheckpoint,
  signEvidence,
  toHex,
} from '@tracemark/provenance';
import { normalizeText } from '@tracemark/tokenizers';
import { describe, expect, it } from 'vitest';
import {
  escapeHtml,
  evidenceCurve,
  plainVerdict,
  powerOfTen,
  renderEvidenceHtml,
  tokenPieces,
} from './evidence-html.ts';
import {
  parseReport,
  REPORT_FORMAT,
  type ReportFile,
  readPublicKeys,
  verifyReport,
} from './evidence-report.ts';

const signer = generateSigningKey('test.tracemark/log', new Uint8Array(32).fill(9));
const TEXT = 'Café <script>alert(1)</script> 🧑‍🔬 done';

async function predicate(overrides: Partial<EvidencePredicate> = {}): Promise<EvidencePredicate> {
  const log = new MerkleLog(new MemoryLogStore());
  await log.appendLeaves([new Uint8Array([1]), new Uint8Array([2]), new Uint8Array([3])]);
  const leaf = toHex(await log.leafHash(1));
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
      leafHash: leaf,
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

async function reportOf(p: EvidencePredicate): Promise<ReportFile> {
  return {
    format: REPORT_FORMAT,
    version: 1,
    keyId: signer.keyId,
    verifierKey: signer.verifierKey,
    envelope: signEvidence(p, signer),
  };
}

describe('evidence report files', () => {
  it('accept exactly the report fields, or a bare DSSE envelope', async () => {
    const report = await reportOf(await predicate());
    expect(parseReport(JSON.stringify(report))).toEqual(report);
    expect(parseReport(JSON.stringify(report.envelope)).envelope).toEqual(report.envelope);
    expect(() => parseReport(JSON.stringify({ ...report, server: 'x' }))).toThrow(/exactly the fields/);
    expect(() => parseReport(JSON.stringify({ ...report, version: 2 }))).toThrow(/version 2/);
    expect(() => parseReport('{')).toThrow(/not valid JSON/);
  });

  it('read public keys from a key string or keys.json, and refuse anything else', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tracemark-keys-'));
    writeFileSync(join(dir, 'key.txt'), `# the log\n${signer.verifierKey}\n`);
    writeFileSync(
      join(dir, 'keys.json'),
      JSON.stringify({ logOrigin: signer.name, keys: [{ verifierKey: signer.verifierKey }] }),
    );
    writeFileSync(join(dir, 'bad.txt'), 'not a key');
    expect(await readPublicKeys(join(dir, 'key.txt'))).toEqual({ keys: [signer.verifierKey] });
    expect(await readPublicKeys(join(dir, 'keys.json'))).toEqual({
      keys: [signer.verifierKey],
      origin: signer.name,
    });
    await expect(readPublicKeys(join(dir, 'bad.txt'))).rejects.toThrow(/not a verifier key/);
    await expect(readPublicKeys(join(dir, 'missing.txt'))).rejects.toThrow(/cannot read/);
  });

  it('verify: pinned 0, unpinned 4, another pinned key or a keyId that did not sign 1', async () => {
    const report = await reportOf(await predicate());
    expect(verifyReport(report, { publicKeys: { keys: [signer.verifierKey] } }).exitCode).toBe(0);
    expect(verifyReport(report, {}).exitCode).toBe(4);
    const other = generateSigningKey('other.example/log');
    const wrong = verifyReport(report, { publicKeys: { keys: [other.verifierKey] } });
    expect(wrong.exitCode).toBe(1);
    expect(wrong.reason).toMatch(/^signer's key: the report names the signing key test.tracemark\/log\+/);
    const renamed = verifyReport({ ...report, keyId: other.keyId, verifierKey: other.verifierKey }, {});
    expect(renamed.exitCode).toBe(1);
    expect(renamed.reason).toMatch(/did not sign its envelope/);
  });
});

describe('the HTML page', () => {
  it('cuts the normalized text into the tokens the statuses describe', async () => {
    const cut = tokenPieces(await predicate())!;
    expect(cut.pieces.join('') + cut.rest).toBe(normalizeText(TEXT));
    expect(cut.pieces[0]).toBe('Café ');
  });

  it('plots −log10 p after each token, and formats small probabilities', () => {
    const curve = evidenceCurve('CGGRG', 0.25);
    expect(curve.map((p) => p.token)).toEqual([1, 2, 3, 4, 5]);
    expect(curve[0]!.value).toBe(0);
    expect(curve[2]!.value).toBeCloseTo(-Math.log10(0.0625), 10);
    expect(evidenceCurve('G'.repeat(5000), 0.25, 100)).toHaveLength(100);
    expect(powerOfTen(-47.92)).toBe('1.2 × 10<sup>-48</sup>');
    expect(powerOfTen(-1)).toBe('0.10');
    expect(escapeHtml(`<a href="x">'&`)).toBe('&#60;a href=&#34;x&#34;&#62;&#39;&#38;');
  });

  it('states the verdict in plain words for each outcome', async () => {
    const base = await predicate();
    const detected = { ...base.detection, verdict: 'detected' as const, log10P: -20, log10PCorrected: -20 };
    expect(plainVerdict({ ...base, detection: detected }, 'acme').title).toBe(
      'Issued by this service, and watermarked',
    );
    expect(plainVerdict({ ...base, issuance: null, detection: detected }, 'acme').title).toBe(
      'Watermarked, but not found in the issuance log',
    );
    const none = { ...base.detection, verdict: 'not-detected' as const, log10P: 0, log10PCorrected: 0 };
    const page = plainVerdict({ ...base, issuance: null, detection: none }, 'acme');
    expect(page.title).toBe('No watermark, no issuance record');
    expect(page.words).toMatch(/does not prove that a person wrote the text/);
  });

  it('is self-contained, escapes the text, and shows a failed check prominently', async () => {
    const report = await reportOf(await predicate());
    const html = renderEvidenceHtml(
      report,
      verifyReport(report, { publicKeys: { keys: [signer.verifierKey] } }),
    );
    expect(html).not.toMatch(/<script|<link|<img|src=|url\(/i);
    expect(html).toContain('&#60;script');
    expect(html).toContain('script&#62;');
    expect(html).toContain('<svg');
    expect(html).not.toContain('did NOT verify');
    const altered = {
      ...report,
      envelope: { ...report.envelope, payload: `A${report.envelope.payload.slice(1)}` },
    };
    const failed = renderEvidenceHtml(
      altered,
      verifyReport(altered, { publicKeys: { keys: [signer.verifierKey] } }),
    );
    expect(failed).toMatch(
      /class="alert">This report did NOT verify: signature of the report: TM_ERR_BAD_SIGNATURE/,
    );
  });
});
