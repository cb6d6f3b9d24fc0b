import { log10BinomialSf } from '@tracemark/core';
import {
  type EvidencePredicate,
  generateSigningKey,
  STANDARD_LIMITATIONS,
  sha256Hex,
  signEvidence,
} from '@tracemark/provenance';
import { describe, expect, it } from 'vitest';
import type { ServiceKeys, VerifyResponse } from './api.ts';
import {
  checkReport,
  claimedPredicate,
  detectedPassage,
  evidenceCurve,
  reportFile,
  reportPage,
  tokenPieces,
} from './evidence.ts';

const predicate = (overrides: Partial<EvidencePredicate>): EvidencePredicate =>
  ({
    text: { sha256: '0'.repeat(64), normalization: 'tracemark-v1', content: 'Hi\u200B there, café' },
    detection: {
      alpha: 1e-4,
      numScored: 3,
      numGreen: 2,
      z: 1,
      log10P: -1,
      log10PCorrected: -1,
      correction: 'none',
      numTests: 1,
      verdict: 'not-detected',
    },
    segments: [],
    ...overrides,
  }) as EvidencePredicate;

describe('tokenPieces', () => {
  it('cuts the normalized text at the token ends (code points) and keeps the statuses', () => {
    const cut = tokenPieces(
      predicate({
        tokens: { keyId: 'k', numTokens: 4, statuses: 'CGRG', ends: [2, 8, 9, 14], truncated: false },
      }),
    );
    expect(cut).toEqual({
      pieces: [
        { text: 'Hi', status: 'C' },
        { text: ' there', status: 'G' },
        { text: ',', status: 'R' },
        { text: ' café', status: 'G' },
      ],
      rest: '',
    });
  });

  it('shows what follows the last token plainly, and nothing when the report has no text', () => {
    const cut = tokenPieces(
      predicate({ tokens: { keyId: 'k', numTokens: 4, statuses: 'CG', ends: [2, 8], truncated: true } }),
    );
    expect(cut?.rest).toBe(', café');
    expect(tokenPieces(predicate({}))).toBeNull();
  });
});

describe('evidenceCurve', () => {
  it('is −log10 p of the text read so far, with the core binomial tail', () => {
    const points = evidenceCurve('CGGRGDG', 0.25);
    expect(points.map((p) => p.token)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(points[0]!.value).toBe(0);
    expect(points[4]!.value).toBeCloseTo(-log10BinomialSf(3, 4, 0.25), 12);
    expect(points[6]!.value).toBeCloseTo(-log10BinomialSf(4, 5, 0.25), 12);
    expect(evidenceCurve('G'.repeat(1000), 0.25, 100)).toHaveLength(100);
  });
});

describe('detectedPassage', () => {
  it('is the window segment when its corrected p-value reaches α', () => {
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
    expect(detectedPassage(predicate({ segments: [window] }))).toEqual(window);
    expect(detectedPassage(predicate({ segments: [{ ...window, log10PCorrected: -3 }] }))).toBeNull();
    expect(detectedPassage(predicate({ segments: [] }))).toBeNull();
  });
});

describe('claimedPredicate', () => {
  it('reads the payload of an envelope without trusting it, and gives null for garbage', () => {
    const statement = { predicate: { hello: 'world' } };
    const payload = Buffer.from(JSON.stringify(statement)).toString('base64');
    expect(claimedPredicate({ payloadType: 'x', payload, signatures: [] })).toEqual({ hello: 'world' });
    expect(claimedPredicate({ payloadType: 'x', payload: '!!!', signatures: [] })).toBeNull();
  });
});

describe('checkReport', () => {
  const signer = generateSigningKey('console.test/log', new Uint8Array(32).fill(3));
  const text = 'A text the gateway verified.';
  const signed: EvidencePredicate = {
    text: { sha256: sha256Hex(text), normalization: 'tracemark-v1', content: text },
    tokenizer: { name: 'cl100k_base' },
    algorithm: { name: 'tracemark-v1/lefthash', parameters: { gamma: 0.25 }, keyIds: ['tmk1_a'] },
    software: { name: '@tracemark/gateway', version: '0.1.0' },
    detection: {
      keyId: 'tmk1_a',
      numScored: 5,
      numGreen: 2,
      z: 0.5,
      log10P: -0.4,
      log10PCorrected: -0.4,
      correction: 'holm',
      numTests: 1,
      alpha: 1e-4,
      verdict: 'not-detected',
    },
    calibration: { reference: 'docs' },
    segments: [],
    issuance: null,
    limitations: [...STANDARD_LIMITATIONS],
    verifiedAt: '2026-11-22T00:00:00.000Z',
  };
  const response = {
    report: signEvidence(signed, signer),
    keyId: signer.keyId,
    verifierKey: signer.verifierKey,
  } as VerifyResponse;
  const published = (verifierKey: string): ServiceKeys => ({
    logOrigin: signer.name,
    keys: [{ keyId: signer.keyId, verifierKey, algorithm: 'ed25519', uses: ['evidence-reports'] }],
    watermarkKeyIds: ['tmk1_a'],
    predicateType: 'https://tracemark.dev/evidence/v1',
  });

  it('pins the signer to the published keys: every check holds, and the page is the shared rendering', () => {
    const checked = checkReport(response, published(signer.verifierKey));
    expect(checked.allOk).toBe(true);
    expect(checked.pinned).toBe(true);
    expect(checked.checks[0]).toMatchObject({ name: 'signer-key', state: 'ok', detail: signer.keyId });
    expect(checked.checks.find((check) => check.name === 'envelope')).toMatchObject({
      title: 'Signature of the report',
      state: 'ok',
    });
    expect(checked.predicate?.detection.numGreen).toBe(2);
    expect(reportPage(response, checked)).toContain('<h1>Watermark and provenance report</h1>');
    expect(JSON.parse(reportFile(response))).toMatchObject({ format: 'tracemark-evidence', version: 1 });
  });

  it('without the published keys the signer is not established; another published key fails', () => {
    const unpinned = checkReport(response, null);
    expect(unpinned.allOk).toBe(false);
    expect(unpinned.signatureOk).toBe(true);
    expect(unpinned.checks[0]).toMatchObject({ name: 'signer-key', state: 'skipped' });
    expect(unpinned.checks.filter((check) => check.state === 'failed')).toEqual([]);
    const other = generateSigningKey('console.test/log');
    const wrong = checkReport(response, published(other.verifierKey));
    expect(wrong.allOk).toBe(false);
    expect(wrong.signatureOk).toBe(false);
    expect(wrong.checks[0]).toMatchObject({ state: 'failed' });
    // Still drawn, from what the payload claims.
    expect(wrong.predicate?.detection.numScored).toBe(5);
  });

  it('a malformed published key fails the report instead of breaking the page', () => {
    const broken = checkReport(response, published('not-a-key'));
    expect(broken).toMatchObject({ allOk: false, predicate: null, verification: null });
    expect(broken.checks[0]!.state).toBe('failed');
    expect(reportPage(response, broken)).toBeNull();
  });
});
