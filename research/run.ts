/**
 * `pnpm research NAME … | all [--quick] [--workers N] [--out DIR]`
 *
 * Runs the experiments and writes research/results/NAME.md, NAME.json and plots (SVG and PNG). The
 * quick variant writes to research/results-quick/ unless --out says otherwise.
 * `pnpm research extraction --render` rewrites extraction.md and its plot from extraction.json
 * (the grid takes about 40 minutes; its report text can change without rerunning it).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { type ExtractionSummary, renderExtraction, runExtraction } from './src/experiments/extraction.ts';
import { runExperiments } from './src/experiments.ts';
import { defaultWorkers } from './src/generation.ts';
import { EXPERIMENT_NAMES, type ExperimentName } from './src/report.ts';

const usage = `usage: pnpm research NAME… | all [--quick] [--workers N] [--out DIR]
       pnpm research extraction --render [--quick] [--out DIR]
experiments: ${[...EXPERIMENT_NAMES, 'extraction'].join(', ')}`;

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    quick: { type: 'boolean', default: false },
    workers: { type: 'string' },
    out: { type: 'string' },
    render: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});

if (values.help || positionals.length === 0) {
  process.stdout.write(`${usage}\n`);
  process.exit(values.help ? 0 : 2);
}
const names: ExperimentName[] = [];
let extraction = false;
for (const name of positionals) {
  if (name === 'all') {
    names.push(...EXPERIMENT_NAMES);
    extraction = true;
  } else if (name === 'extraction') extraction = true;
  else if ((EXPERIMENT_NAMES as readonly string[]).includes(name)) names.push(name as ExperimentName);
  else {
    process.stderr.write(`unknown experiment "${name}"\n${usage}\n`);
    process.exit(2);
  }
}
const workers = values.workers === undefined ? defaultWorkers() : Number(values.workers);
if (!Number.isInteger(workers) || workers < 1) {
  process.stderr.write(`--workers: expected a positive integer, got ${values.workers}\n`);
  process.exit(2);
}
const quick = values.quick;
const outDir =
  values.out ?? fileURLToPath(new URL(quick ? './results-quick/' : './results/', import.meta.url));
const log = (message: string) => process.stderr.write(`${message}\n`);
if (values.render) {
  if (!extraction || names.length > 0) {
    process.stderr.write(`--render applies to extraction alone\n${usage}\n`);
    process.exit(2);
  }
  const path = join(outDir, 'extraction.json');
  let summary: ExtractionSummary;
  try {
    summary = JSON.parse(await readFile(path, 'utf8')) as ExtractionSummary;
  } catch (error) {
    process.stderr.write(`--render: cannot read ${path}: ${(error as Error).message}\n`);
    process.exit(3);
  }
  await renderExtraction(summary, { quick, outDir, workers, log });
  log(`extraction: rendered ${join(outDir, 'extraction.md')} from ${path}`);
} else if (extraction) {
  const started = performance.now();
  log(`extraction: starting${quick ? ' (quick)' : ''}`);
  await runExtraction({ quick, outDir, workers, log });
  log(`extraction: done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
}
if (names.length > 0)
  await runExperiments(names, {
    quick,
    outDir,
    workers,
    log: (message) => process.stderr.write(`${message}\n`),
    updateReadme: !quick && values.out === undefined,
  });
