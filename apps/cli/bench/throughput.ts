/**
 * Detection throughput (MB/s of text) against the tokenizer alone (tracemark's byte-pair encoder,
 * in-process), on the same JSONL corpus: one core (`detect --workers 0`) and all cores (one worker per
 * core). One run per invocation; run it several times and take medians (the README gives three).
 * Run: pnpm --filter @tracemark/cli bench [-- --megabytes N]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { createWatermarkKey, serializeKeyFile } from '@tracemark/core';
import { loadHumanCorpus } from '@tracemark/lm';
import { getTokenizer } from '@tracemark/tokenizers';

const megabytesArg = process.argv.indexOf('--megabytes');
const targetMegabytes = megabytesArg > 0 ? Number(process.argv[megabytesArg + 1]) : 48;
const directory = mkdtempSync(join(os.tmpdir(), 'tracemark-bench-'));
const corpusPath = join(directory, `corpus-${targetMegabytes}mb.jsonl`);
const keyPath = join(directory, 'key.json');
writeFileSync(keyPath, serializeKeyFile(createWatermarkKey({ secret: new Uint8Array(32).fill(1) })), {
  mode: 0o600,
});

const documents = await loadHumanCorpus({ split: 'all' });
const lines: string[] = [];
let bytes = 0;
for (let round = 0; bytes < targetMegabytes * 1e6; round++) {
  for (const document of documents) {
    const line = JSON.stringify({ id: `${round}-${document.id}`, text: document.text });
    lines.push(line);
    bytes += Buffer.byteLength(line) + 1;
    if (bytes >= targetMegabytes * 1e6) break;
  }
}
writeFileSync(corpusPath, `${lines.join('\n')}\n`);
const fileBytes = statSync(corpusPath).size;
const textBytes = lines.reduce((sum, line) => sum + Buffer.byteLength(JSON.parse(line).text), 0);

const tokenizer = getTokenizer('cl100k_base');
const texts = lines.map((line) => JSON.parse(line).text as string);
function tokenizeSeconds(encode: (text: string) => Uint32Array): [number, number] {
  encode('warm up');
  const begin = performance.now();
  let count = 0;
  for (const text of texts) count += encode(text).length;
  return [(performance.now() - begin) / 1000, count];
}
const [tokenizerSeconds, tokens] = tokenizeSeconds((text) => tokenizer.encode(text));

const cli = new URL('../dist/bin.js', import.meta.url).pathname;
function detectSeconds(workers: number): number {
  const begin = performance.now();
  const result = spawnSync(
    process.execPath,
    [cli, 'detect', '--key', keyPath, corpusPath, '--json', '--quiet', '--workers', String(workers)],
    {
      maxBuffer: 1 << 30,
      encoding: 'utf8',
    },
  );
  if (result.status !== 0) throw new Error(`detect failed: ${result.stderr}`);
  return (performance.now() - begin) / 1000;
}
const oneCore = detectSeconds(0);
const cores = os.availableParallelism();
const allCores = detectSeconds(cores);

const rate = (seconds: number) => textBytes / 1e6 / seconds;
console.log(
  `# detect throughput\n\nNode ${process.version}, ${os.cpus()[0]?.model ?? 'CPU'}, ${cores} cores.`,
);
console.log(
  `Corpus: ${(fileBytes / 1e6).toFixed(1)} MB JSONL, ${(textBytes / 1e6).toFixed(1)} MB of text, ${lines.length} documents, ${tokens} tokens.\n`,
);
console.log('| run | seconds | MB/s of text | throughput vs the tokenizer alone |');
console.log('| --- | --- | --- | --- |');
const row = (name: string, seconds: number) =>
  console.log(
    `| ${name} | ${seconds.toFixed(2)} | ${rate(seconds).toFixed(2)} | ${(tokenizerSeconds / seconds).toFixed(2)} |`,
  );
row('tokenizer alone (tracemark encode, in-process, one core)', tokenizerSeconds);
row('tracemark detect --workers 0 (one core, whole process)', oneCore);
row(`tracemark detect --workers ${cores} (all cores, whole process)`, allCores);
rmSync(directory, { recursive: true, force: true });
