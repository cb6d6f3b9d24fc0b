/**
 * Where `tracemark detect`'s time goes, phase by phase, in this process: the same work as detect's
 * engine (read, split lines, JSON.parse, normalize, encode, score, JSON of the results), each phase
 * timed over the whole corpus, a few interleaved rounds, medians. Start-up and worker threads are not
 * here (see throughput.ts); this says which phase a change should target.
 *
 * Run: pnpm --filter @tracemark/cli exec node --conditions=source --import tsx bench/phases.ts
 *      --key KEY.json CORPUS.jsonl [--rounds 3]
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { createTextDetector, parseAnyKeyFile } from '@tracemark/detection';
import { normalizeText } from '@tracemark/tokenizers';
import { outcomeJson } from '../src/detect-engine.ts';
import { benchArguments } from './arguments.ts';

const { values, positionals } = parseArgs({
  args: benchArguments(),
  allowPositionals: true,
  options: { key: { type: 'string', multiple: true }, rounds: { type: 'string', default: '3' } },
});
if (positionals.length !== 1 || values.key === undefined) {
  throw new Error('usage: phases.ts --key KEY.json [--key …] CORPUS.jsonl [--rounds 3]');
}
const corpusPath = positionals[0]!;

const phases = new Map<string, number[]>();
function timed<T>(name: string, work: () => T): T {
  const begin = process.cpuUsage();
  const result = work();
  const used = process.cpuUsage(begin);
  const list = phases.get(name) ?? [];
  list.push((used.user + used.system) / 1000);
  phases.set(name, list);
  return result;
}

const detector = timed('detector start-up (keys, tokenizer tables)', () => {
  const made = createTextDetector({
    keys: values.key!.map((path) => parseAnyKeyFile(readFileSync(path, 'utf8'), path)),
  });
  made.detectText('warm up');
  return made;
});
const tokenizer = detector.tokenizer!;
let tokens = 0;
for (let round = 0; round < Number(values.rounds); round++) {
  const text = timed('read and decode the file', () => readFileSync(corpusPath, 'utf8'));
  const lines = timed('split lines', () => text.split('\n').filter((line) => line !== ''));
  const records = timed('JSON.parse', () => lines.map((line) => JSON.parse(line) as { text: string }));
  const normalized = timed('normalize', () => records.map((record) => normalizeText(record.text)));
  const ids = timed('encode (normalize included)', () =>
    records.map((record) => tokenizer.encode(record.text)),
  );
  tokens = ids.reduce((sum, list) => sum + list.length, 0);
  const results = timed('score (detectTokens)', () => ids.map((list) => detector.detectTokens(list)));
  timed('JSON of the results', () =>
    results.map((result) => JSON.stringify(outcomeJson(result))).join(',\n'),
  );
  if (normalized.length !== records.length) throw new Error('unreachable');
}

function median(numbers: readonly number[]): number {
  const sorted = [...numbers].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}
console.log(`${corpusPath}: ${tokens} tokens; CPU ms, median (min–max) of ${values.rounds} rounds\n`);
console.log('| phase | CPU ms | min–max |');
console.log('| --- | --- | --- |');
for (const [name, list] of phases) {
  console.log(
    `| ${name} | ${median(list).toFixed(0)} | ${Math.min(...list).toFixed(0)}–${Math.max(...list).toFixed(0)} |`,
  );
}
