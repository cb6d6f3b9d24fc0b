/**
 * The stealing experiment's quick variant (research/src/experiments/stealing.ts): a real gateway is
 * harvested, its key estimated, spoofed and scrubbed; per-account keys and attribution are measured.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runStealing } from './src/experiments/stealing.ts';

describe('stealing, quick variant', () => {
  it('harvests through the gateway, spoofs, scrubs, and attributes per-account keys', async () => {
    const outDir = await mkdtemp(join(tmpdir(), 'tracemark-stealing-'));
    try {
      const summary = await runStealing({ name: 'stealing', quick: true, outDir, workers: 1, log: () => {} });
      const markdown = await readFile(join(outDir, 'stealing.md'), 'utf8');
      expect(markdown).toContain('pnpm research stealing --quick');
      expect(markdown).toContain('Node v');
      expect(summary.schemes.map((s) => s.scheme)).toEqual(['LeftHash(1)', 'gumbel(4)']);
      for (const scheme of summary.schemes) {
        expect(scheme.harvest.tokens).toBeGreaterThanOrEqual(summary.config.budgets[0]!);
        for (const row of scheme.budgets) {
          expect(row.spoofSuccess).toBeGreaterThanOrEqual(0);
          expect(row.spoofSuccess).toBeLessThanOrEqual(1);
        }
        // Genuine held-out answers carry the mark before any rewrite.
        const none = scheme.scrub.find((row) => row.kind === 'none')!;
        expect(none.tpr).toBeGreaterThanOrEqual(0.75);
        expect(none.medianLog10P).toBeLessThan(-4);
        // A student trained on raw answers is radioactive.
        expect(scheme.student.raw.numScored).toBeGreaterThan(0);
      }
      const lefthash = summary.schemes[0]!;
      // LeftHash(1) from a few thousand harvested tokens: the estimate already finds green tokens.
      expect(lefthash.budgets.at(-1)!.spoofMedianLog10P).toBeLessThan(
        lefthash.budgets[0]!.spoofMedianLog10P + 1,
      );
      expect(lefthash.scrub.find((row) => row.kind === 'estimate')!.replacedShare).toBeGreaterThan(0);
      expect(summary.accounts.map((row) => [row.scheme, row.keys, row.accounts])).toEqual([
        ['LeftHash(1)', 'shared', 1],
        ['LeftHash(1)', 'per-account', 10],
        ['gumbel(4)', 'shared', 1],
        ['gumbel(4)', 'per-account', 10],
      ]);
      // The pool sums green counts: none for the Gumbel scheme.
      expect(summary.accounts[3]!.studentPooledLog10P).toBeNull();
      const perAccount = summary.accounts[1]!;
      expect(perAccount.studentKeysTested).toBe(11);
      expect(perAccount.studentPooledLog10P).not.toBeNull();
      // Mixed corpora of 1 and 3 accounts' answers among human text, scanned under 11 keys.
      expect(summary.mixedAttribution.map((row) => [row.accountsInCorpus, row.keys])).toEqual([
        [1, 11],
        [3, 11],
      ]);
      for (const row of summary.mixedAttribution) expect(row.recall).toBeGreaterThan(0);
      // Each 100-token answer of a random account is named by its own key among the service key and 200 sub-keys.
      expect(summary.attribution.keys).toBe(201);
      expect(summary.attribution.correct).toBe(summary.attribution.documents);
    } finally {
      await rm(outDir, { recursive: true, force: true });
    }
  }, 180_000);
});
