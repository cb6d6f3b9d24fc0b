/**
 * `tracemark scan` against `tracemark detect` on the same corpus, whole processes, fake keys included.
 * Runs alternate (detect, scan, detect, scan, …) so that both see the same machine load; reports the
 * fastest and the median of each, and their ratio (scan throughput / detect throughput).
 * Needs the built CLI (pnpm exec tsc -b). Run: pnpm --filter @tracemark/extraction bench [-- --runs N]
 *   [--fake-keys N] [--repeat R] [--scheme lefthash|selfhash] [--context-width H]
 * (R > 1 repeats the corpus R times: a corpus full of duplicates).
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
const schemeAt = process.argv.indexOf('--scheme');
const scheme = schemeAt > 0 ? (process.argv[schemeAt + 1] as 'lefthash' | 'selfhash') : 'lefthash';

// A folder of its own (two runs at once must not share files), removed when the bench ends.
const directory = mkdtempSync(join(os.tmpdir(), 'tracemark-scan-bench-'));
process.on('exit', () => rmSync(directory, { recursive: true, force: true }));
const keyPath = join(directory, `key-${scheme}-${contextWidth}.json`);
const key = createWatermarkKey({
  secret: new Uint8Array(32).fill(1),
  scheme: { name: scheme, contextWidth },
});
writeFileSync(keyPath, serializeKeyFile(key), { mode: 0o600 });
const corpusPath = join(directory, `corpus-x${repeat}.jsonl`);
const documents = await loadHumanCorpus({ split: 'all' });
const lines: string[] = [];
for (let round = 0; round < repeat; round++) {
  for (const document of documents)
    lines.push(JSON.stringify({ id: `${round}-${document.id}`, text: document.text }));
}
writeFileSync(corpusPath, `${lines.join('\n')}\n`);
const megabytes = statSync(corpusPath).size / 1e6;

const cli = new URL('../../../apps/cli/dist/bin.js', import.meta.url).pathname;
function seconds(args: readonly string[]): { seconds: number; output: string } {
  const begin = performance.now();
  const result = spawnSync(process.execPath, [cli, ...args], { maxBuffer: 1 << 30, encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`${args[0]} failed (${result.status}): ${result.stderr}`);
  return { seconds: (performance.now() - begin) / 1000, output: result.stdout };
}

const detect: number[] = [];
const scan: number[] = [];
let report = '';
for (let run = 0; run < runs; run++) {
  detect.push(seconds(['detect', '--key', keyPath, corpusPath, '--json', '--quiet']).seconds);
  const scanned = seconds([
    'scan',
    '--key',
    keyPath,
    corpusPath,
    '--json',
    '--quiet',
    '--fake-keys',
    String(fakeKeys),
  ]);
  scan.push(scanned.seconds);
  report = scanned.output;
}
const parsed = JSON.parse(report);
const median = (values: number[]): number =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const fastest = (values: number[]): number => Math.min(...values);
const load = os.loadavg()[0]!.toFixed(2);
console.log(`# scan vs detect throughput\n`);
console.log(
  `Node ${process.version}, ${os.cpus()[0]?.model ?? 'CPU'}, ${os.availableParallelism()} cores, load average ${load}.`,
);
console.log(
  `Key: ${scheme}, h = ${contextWidth}. Corpus: ${megabytes.toFixed(1)} MB JSONL (${parsed.numDocuments} documents, ${parsed.numTokens} tokens; ${parsed.keys[0].tape.numDistinct} distinct (window, token) pairs, ${parsed.keys[0].numScored} scored); ${fakeKeys} fake keys; ${runs} runs each, alternating.\n`,
);
console.log('| command | fastest s | median s | MB/s (fastest) |');
console.log('| --- | --- | --- | --- |');
console.log(
  `| tracemark detect | ${fastest(detect).toFixed(2)} | ${median(detect).toFixed(2)} | ${(megabytes / fastest(detect)).toFixed(2)} |`,
);
console.log(
  `| tracemark scan | ${fastest(scan).toFixed(2)} | ${median(scan).toFixed(2)} | ${(megabytes / fastest(scan)).toFixed(2)} |`,
);
console.log(
  `\nscan throughput / detect throughput: ${(fastest(detect) / fastest(scan)).toFixed(2)} (fastest runs), ${(median(detect) / median(scan)).toFixed(2)} (medians)`,
);
