/**
 * The extraction experiment, small: an attacker harvests answers from the real gateway, a student n-gram
 * model is trained on them (ρ = 100%) or on human text only (ρ = 0), served on an OpenAI-compatible
 * endpoint, probed with `tracemark probe` and scanned with `tracemark scan` (supervised on the gateway's
 * database, and unsupervised). The full grid is `pnpm research extraction`.
 */
import { describe, expect, it } from 'vitest';
import { QUICK_CONFIG, runExtractionGrid } from '../research/src/experiments/extraction.ts';
import { cacheDir } from './helpers.ts';

process.env.TRACEMARK_CACHE_DIR = cacheDir;

describe('extraction experiment (fast variant)', () => {
  it('a student trained on harvested answers is radioactive; one trained on human text is not', async () => {
    const result = await runExtractionGrid({
      ...QUICK_CONFIG,
      schemes: [{ name: 'lefthash', contextWidth: 1, rhos: [0, 1] }],
      trainTokens: 16_000,
      harvestRequests: 80,
      harvestMaxTokens: 200,
      probePrompts: 40,
      probeMaxTokens: 120,
      nullSeeds: 1,
      fakeKeys: 20,
      budgetSeconds: 600,
    });
    expect(result.skipped).toEqual([]);
    const clean = result.cells.find((cell) => cell.rho === 0)!;
    const marked = result.cells.find((cell) => cell.rho === 1)!;
    for (const scan of [clean.supervised, clean.unsupervised]) {
      expect(scan.verdict).not.toBe('radioactive');
      expect(scan.log10P).toBeGreaterThan(-3);
    }
    for (const scan of [marked.supervised, marked.unsupervised]) {
      expect(scan.verdict).toBe('radioactive');
      expect(scan.log10P).toBeLessThan(-10);
      expect(scan.rank).toBe(1);
    }
    // Supervised scans read only positions whose window was issued.
    expect(marked.supervised.numScored).toBeLessThanOrEqual(marked.unsupervised.numScored + 1000);
  }, 120_000);
});
