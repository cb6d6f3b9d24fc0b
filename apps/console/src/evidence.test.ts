import { log10BinomialSf } from '@tracemark/core';
import type { EvidencePredicate } from '@tracemark/provenance';
import { describe, expect, it } from 'vitest';
import { claimedPredicate, detectedPassage, evidenceCurve, tokenPieces } from './evidence.ts';

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
