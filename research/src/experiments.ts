/** The experiment registry: name → runner, and running several in order. */
import { runDefaults } from './experiments/defaults.ts';
import { runForeign } from './experiments/foreign.ts';
import { runFpr } from './experiments/fpr.ts';
import { runMonitoring } from './experiments/monitoring.ts';
import { runPerformance } from './experiments/performance.ts';
import { runPower } from './experiments/power.ts';
import { runQuality } from './experiments/quality.ts';
import { runRobustness } from './experiments/robustness.ts';
import { runSampling } from './experiments/sampling.ts';
import { runStealing } from './experiments/stealing.ts';
import { updateReadme } from './readme.ts';
import { EXPERIMENT_NAMES, type ExperimentContext, type ExperimentName } from './report.ts';

export const RUNNERS: Readonly<Record<ExperimentName, (context: ExperimentContext) => Promise<unknown>>> =
  Object.freeze({
    fpr: runFpr,
    power: runPower,
    robustness: runRobustness,
    quality: runQuality,
    sampling: runSampling,
    performance: runPerformance,
    foreign: runForeign,
    stealing: runStealing,
    monitoring: runMonitoring,
    defaults: runDefaults,
  });

export interface RunOptions {
  readonly quick: boolean;
  readonly outDir: string;
  readonly workers: number;
  readonly log: (message: string) => void;
  /** Rewrite the numbers table of research/README.md from the summaries in outDir. */
  readonly updateReadme?: boolean;
}

/** Runs experiments in the order given ("all" is every one, defaults last) and returns their summaries. */
export async function runExperiments(
  names: readonly ExperimentName[],
  options: RunOptions,
): Promise<Map<ExperimentName, unknown>> {
  const summaries = new Map<ExperimentName, unknown>();
  const ordered = EXPERIMENT_NAMES.filter((name) => names.includes(name));
  for (const name of ordered) {
    const started = performance.now();
    options.log(`${name}: starting${options.quick ? ' (quick)' : ''}`);
    const context: ExperimentContext = {
      name,
      quick: options.quick,
      outDir: options.outDir,
      workers: options.workers,
      log: options.log,
    };
    summaries.set(name, await RUNNERS[name](context));
    options.log(`${name}: done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  }
  if (options.updateReadme) await updateReadme(options.outDir);
  return summaries;
}
