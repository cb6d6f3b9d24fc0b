/**
 * The monitoring experiment's quick variant (research/src/experiments/monitoring.ts): benign days and
 * attacks package-level with injected time, and a scenario through a real gateway whose risk report must
 * equal the package monitor's on the same events.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_CONFIGURATION,
  EARLIER_CONFIGURATION,
  MMD_CONFIGURATION,
  MMD64_CONFIGURATION,
  QUICK_CONFIG,
  rate,
  runMonitoring,
} from './src/experiments/monitoring.ts';
import type { ExperimentContext } from './src/report.ts';

describe('Clopper–Pearson intervals of the monitoring rates', () => {
  it('match closed forms at k = 0 and k = n and R binom.test in between', () => {
    // k = 0: upper = 1 − (α/2)^(1/n); k = n: lower = (α/2)^(1/n).
    const none = rate(0, 1000);
    expect(none.lower).toBe(0);
    expect(none.upper).toBeCloseTo(1 - 0.025 ** (1 / 1000), 9);
    const all = rate(60, 60);
    expect(all.upper).toBe(1);
    expect(all.lower).toBeCloseTo(0.025 ** (1 / 60), 9);
    // binom.test(5, 100)$conf.int in R: 0.01643188 0.11283491.
    const five = rate(5, 100);
    expect(five.lower).toBeCloseTo(0.01643188, 7);
    expect(five.upper).toBeCloseTo(0.11283491, 7);
  });
});

describe('monitoring, quick variant', () => {
  it('detects the sweep, links the splits, and the gateway reports what the package computes', async () => {
    const outDir = await mkdtemp(join(tmpdir(), 'tracemark-monitoring-'));
    try {
      const context = {
        name: 'monitoring',
        quick: true,
        outDir,
        workers: 1,
        log: () => {},
      } as unknown as ExperimentContext;
      const summary = await runMonitoring(context);
      const markdown = await readFile(join(outDir, 'monitoring.md'), 'utf8');
      const json = JSON.parse(await readFile(join(outDir, 'monitoring.json'), 'utf8'));
      expect(markdown).toContain('pnpm research monitoring --quick');
      expect(markdown).toContain('Node v');
      for (const heading of [
        '## Goals',
        '## Benign tenants',
        '## Attacks',
        '## Split campaigns',
        '## Through the real gateway',
        '## Known bypasses',
      ])
        expect(markdown).toContain(heading);
      expect(json.experiment).toBe('monitoring');
      expect(json.attacks.map((a: { attack: string }) => a.attack)).toEqual([
        'sweep',
        'split-5',
        'split-20',
        'slow',
        'reasoning',
        'mixed-10',
        'mixed-50',
      ]);
      const configurations = [
        DEFAULT_CONFIGURATION,
        MMD_CONFIGURATION,
        MMD64_CONFIGURATION,
        EARLIER_CONFIGURATION,
      ];
      expect(summary.configurations.map((c) => c.name)).toEqual(configurations);
      expect(summary.calibration.seedsDisjoint).toBe(true);

      // Denominators: every benign account of every day, every attack seed.
      const accountsPerDay = 3 + QUICK_CONFIG.classroomSize;
      for (const name of configurations) {
        const benign = summary.benign.byConfig[name]!;
        expect(benign.all.n).toBe(QUICK_CONFIG.benignDays * accountsPerDay);
        expect(benign.all.lower).toBeLessThanOrEqual(benign.all.rate);
        expect(benign.all.upper).toBeGreaterThanOrEqual(benign.all.rate);
      }
      const attack = (name: string) => summary.attacks.find((a) => a.attack === name)!;
      // The pure single-account sweep is flagged under every configuration, within a few dozen queries.
      for (const name of configurations) {
        const sweep = attack('sweep').byConfig[name]!;
        expect(sweep.detection.k).toBe(sweep.detection.n);
        expect(sweep.queriesToDetect!.max).toBeLessThanOrEqual(50);
      }
      // Every split campaign is one cluster, and its cluster is flagged.
      for (const split of ['split-5', 'split-20']) {
        const outcome = attack(split).byConfig[DEFAULT_CONFIGURATION]!;
        expect(outcome.linked!.k).toBe(outcome.linked!.n);
        expect(outcome.clusterFlagged!.k).toBe(outcome.clusterFlagged!.n);
      }
      // No benign tenant flagged in the quick run under the default thresholds. (The earlier thresholds
      // flagged the support bot on some days: see the report.)
      expect(summary.benign.byConfig[DEFAULT_CONFIGURATION]!.all.k).toBe(0);

      // Through the real gateway: every request served and observed; the risk report equals the
      // package-level monitor's on the same events.
      const gateway = summary.gateway;
      expect(gateway.completed).toBe(gateway.requests);
      expect(gateway.storedEvents).toBe(gateway.requests);
      expect(gateway.fingerprintsEqual).toBe(true);
      expect(gateway.accountsCompared).toBeGreaterThan(QUICK_CONFIG.gateway.classroomSize);
      expect(gateway.accountMismatches).toEqual([]);
      expect(gateway.clusterMismatches).toEqual([]);
      const sweep = gateway.groups.find((group) => group.group === 'sweep')!;
      expect(sweep.gatewayFlagged).toBe(1);
      for (const group of gateway.groups.filter((g) => g.kind === 'benign'))
        expect(group.gatewayFlagged).toBe(0);
    } finally {
      await rm(outDir, { recursive: true, force: true });
    }
  }, 120_000);
});
