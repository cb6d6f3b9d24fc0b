/** The text report of `tracemark scan` on degenerate corpora: nothing measured is shown as measured. */
import { createWatermarkKey } from '@tracemark/core';
import { type KeyScan, type ScanDocument, type ScanReport, scanCorpus } from '@tracemark/extraction';
import { getTokenizer } from '@tracemark/tokenizers';
import { describe, expect, it } from 'vitest';
import { renderScanReport } from './render.ts';

const key = createWatermarkKey({ secret: new Uint8Array(32).fill(8) });

/** Every percentage the text shows, as numbers. */
const percentages = (text: string): number[] =>
  [...text.matchAll(/(-?\d+(?:\.\d+)?)%/g)].map((match) => Number(match[1]));

describe('renderScanReport on degenerate corpora', () => {
  it('an empty corpus: no effect, no rank, no dose bound, each saying why', async () => {
    const text = renderScanReport(await scanCorpus({ documents: [], keys: [key], specialTokenIds: [] }));
    expect(text).toContain('  green       0 of 0: no effect estimate (no evidence: 0 scored tokens)\n');
    expect(text).toContain('  calibration no rank among the 100 fake keys (no evidence: 0 scored tokens)\n');
    expect(text).toContain(
      '  dose        no estimate (no evidence: 0 scored tokens); no dose within 0–100% is ruled out\n',
    );
    expect(text).toContain('verdict: insufficient evidence (insufficient): no evidence: 0 scored tokens');
    // What it used to say: "rank 101 among 100 fake keys", "effect −25.00 points", "doses above 162.6%".
    expect(text).not.toMatch(/rank \d+|effect \S+ points|CI \[/);
    expect(percentages(text).every((p) => p >= 0 && p <= 100)).toBe(true);
  });

  it('ten documents of one word repeated 30,000 times: the rank says what it means, no dose above 100%', async () => {
    const tokenizer = getTokenizer(key.tokenizer);
    const text = Array.from({ length: 30_000 }, () => 'word').join(' ');
    const documents: ScanDocument[] = Array.from({ length: 10 }, (_, i) => ({
      tokens: tokenizer.encode(text),
      source: `word-${i}`,
    }));
    const report = await scanCorpus({ documents, keys: [key], specialTokenIds: [] });
    const rendered = renderScanReport(report);
    const rank = report.keys[0]!.calibration.rank;
    expect(rendered).toContain(
      `  calibration rank ${rank} among 100 fake keys (1 + those with a p-value at most the key's, so 1 to 101; empirical p = `,
    );
    expect(rendered).toContain(
      '  dose        unknown (no issued green fraction); no dose within 0–100% is ruled out\n',
    );
    expect(rendered).toContain(
      'not significant, and too few scored tokens to rule out a dose of 5% (no dose within 0–100% is ruled out)',
    );
    expect(percentages(rendered).every((p) => p >= 0 && p <= 100)).toBe(true);
  });

  it('a value that rounds to zero prints as 0, never −0', async () => {
    const documents: ScanDocument[] = [{ tokens: Array.from({ length: 400 }, (_, i) => i), source: 'a' }];
    const report = await scanCorpus({ documents, keys: [key], specialTokenIds: [], fakeKeys: 0 });
    const scan = report.keys[0]!;
    const tiny: KeyScan = {
      ...scan,
      greenFraction: -0,
      effect: -1e-7,
      effectInterval: [-0.00001, 0.00001],
      z: -0.001,
      dose: { estimate: -0, interval: [-0, 0.00001], issuedGreenFraction: 0.5 },
      doseUpperBound: -0,
    };
    const text = renderScanReport({ ...report, keys: [tiny] } satisfies ScanReport);
    expect(text).toContain('(0.00%); effect 0.00 points, 95% CI [0.00, 0.00]');
    expect(text).toContain('; z = 0.00\n');
    expect(text).toContain(
      '  dose        ρ ≈ 0.0% [0.0%, 0.0%] (issued green fraction 50.0%); doses above 0.0% are ruled out',
    );
    expect(text).not.toMatch(/[-−]0(\.0+)?(?![.\d])/);
  });
});
