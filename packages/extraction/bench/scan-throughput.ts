/**
 * `tracemark scan` against `tracemark detect` on the same corpus, whole processes, fake keys included.
 * Runs alternate (detect, scan, detect, scan, …) so that both see the same machine load; reports the
 * median of each with its range, and the ratio of the medians (scan throughput / detect throughput).
 * Needs the built CLI (pnpm build). Run: pnpm --filter @tracemark/extraction bench [-- --runs N]
 *   [--fake-keys N] [--repeat R] [--scheme S] [--context-width H] [--threads LIST]
 * (R > 1 repeats the corpus R times: a corpus full of duplicates; LIST, e.g. `default,1`, runs scan once
 * a round per setting: `default` as a user runs it, a number as `--workers N`. S: lefthash, selfhash,
 * gumbel or dual_gumbel (α 0.3), or an engine's scheme as keygen names it, vllm:gumbel,
 * synthid:tournament, …, with a fixed engine key, SynthID with an n-gram length of 5; keys without a
 * green list run no fake keys.)
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { createWatermarkKey, serializeKeyFile } from '@tracemark/core';
import { loadHumanCorpus } from '@tracemark/lm';

const argument = (name: string, fallback: number): number => {
  const at = process.argv.indexOf(name);
  return at > 0 ? Number(process.argv[at + 1]) : fallback;
};
const runs = argument('--runs', 3);
const fakeKeys = argument('--fake-keys', 100);
const repeat = argument('--repeat', 1);
const contextWidth = argument('--context-width', 1);
const threadsAt = process.argv.indexOf('--threads');
const threadSettings = threadsAt > 0 ? process.argv[threadsAt + 1]!.split(',') : ['default'];
const schemeAt = process.argv.indexOf('--scheme');
const scheme = schemeAt > 0 ? process.argv[schemeAt + 1]! : 'lefthash';
// Keys without a green list have an exact null: scan refuses --fake-keys for them.
const greenList = scheme === 'lefthash' || scheme === 'selfhash';
const cli = new URL('../../../apps/cli/dist/bin.js', import.meta.url).pathname;

// A folder of its own (two runs at once must not share files), removed when the bench ends.
const directory = mkdtempSync(join(os.tmpdir(), 'tracemark-scan-bench-'));
process.on('exit', () => rmSync(directory, { recursive: true, force: true }));
const keyPath = join(directory, `key-${scheme.replace(':', '-')}-${contextWidth}.json`);
if (scheme.includes(':')) {
  const ngram = scheme.startsWith('synthid:') ? ['--ngram-len', '5'] : [];
  const made = spawnSync(
    process.execPath,
    [cli, 'keygen', '--out', keyPath, '--scheme', scheme, '--engine-key', '12345', ...ngram, '--json'],
    { encoding: 'utf8' },
  );
  if (made.status !== 0) throw new Error(`keygen --scheme ${scheme} failed: ${made.stderr}`);
} else {
  const params =
    scheme === 'dual_gumbel'
      ? { name: scheme, contextWidth, alpha: 0.3 }
      : { name: scheme as 'lefthash' | 'selfhash' | 'gumbel', contextWidth };
  const key = createWatermarkKey({ secret: new Uint8Array(32).fill(1), scheme: params });
  writeFileSync(keyPath, serializeKeyFile(key), { mode: 0o600 });
}
const corpusPath = join(directory, `corpus-x${repeat}.jsonl`);
const documents = await loadHumanCorpus({ split: 'all' });
const lines: string[] = [];
for (let round = 0; round < repeat; round++) {
  for (const document of documents)
    lines.push(JSON.stringify({ id: `${round}-${document.id}`, text: document.text }));
}
writeFileSync(corpusPath, `${lines.join('\n')}\n`);
const megabytes = statSync(corpusPath).size / 1e6;

function seconds(args: readonly string[]): { seconds: number; output: string } {
  const begin = performance.now();
  const result = spawnSync(process.execPath, [cli, ...args], { maxBuffer: 1 << 30, encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`${args[0]} failed (${result.status}): ${result.stderr}`);
  return { seconds: (performance.now() - begin) / 1000, output: result.stdout };
}

const detect: number[] = [];
const scans = threadSettings.map(() => [] as number[]);
let report = '';
for (let run = 0; run < runs; run++) {
  detect.push(seconds(['detect', '--key', keyPath, corpusPath, '--json', '--quiet']).seconds);
  threadSettings.forEach((setting, i) => {
    const scanned = seconds([
      'scan',
      '--key',
      keyPath,
      corpusPath,
      '--json',
      '--quiet',
      ...(greenList ? ['--fake-keys', String(fakeKeys)] : []),
      ...(setting === 'default' ? [] : ['--workers', setting]),
    ]);
    scans[i]!.push(scanned.seconds);
    report = scanned.output;
  });
}
const parsed = JSON.parse(report);
const median = (values: number[]): number =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const range = (values: number[]): string =>
  `${Math.min(...values).toFixed(2)}–${Math.max(...values).toFixed(2)}`;
const load = os.loadavg()[0]!.toFixed(2);
console.log(`# scan vs detect throughput\n`);
console.log(
  `Node ${process.version}, ${os.cpus()[0]?.model ?? 'CPU'}, ${os.availableParallelism()} cores, load average ${load}.`,
);
const scanned = parsed.keys[0];
// A green-list key's tape counts (window, token) pairs; the corpus-wide test of the others, units.
const distinct =
  scanned.tape === undefined
    ? `${scanned.numUnits - scanned.numRepeated} distinct units`
    : `${scanned.tape.numDistinct} distinct (window, token) pairs`;
const calibrated = scanned.calibration === null ? 'no fake keys (exact null)' : `${fakeKeys} fake keys`;
const width = scheme.includes(':') ? 'its engine key' : `h = ${contextWidth}`;
console.log(
  `Key: ${scheme}, ${width}. Corpus: ${megabytes.toFixed(1)} MB JSONL (${parsed.numDocuments} documents, ${parsed.numTokens} tokens; ${distinct}, ${scanned.numScored} scored); ${calibrated}; ${runs} runs each, alternating.\n`,
);
console.log('| command | median s | range s | MB/s (median) | throughput ÷ detect (medians) |');
console.log('| --- | --- | --- | --- | --- |');
const row = (name: string, values: number[]): void =>
  console.log(
    `| ${name} | ${median(values).toFixed(2)} | ${range(values)} | ${(megabytes / median(values)).toFixed(2)} | ${(median(detect) / median(values)).toFixed(2)} |`,
  );
row('tracemark detect', detect);
threadSettings.forEach((setting, i) => {
  row(`tracemark scan${setting === 'default' ? '' : ` --workers ${setting}`}`, scans[i]!);
});
