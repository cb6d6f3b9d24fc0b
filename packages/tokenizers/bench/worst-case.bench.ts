// Time to encode the worst inputs (one very long pre-tokenized piece, or very many short ones) with this
// package's encoder and, before it, with js-tiktoken and gpt-tokenizer, whose merges are quadratic in a
// piece's length. Ours runs first, alone; then each reference runs in its own worker (as many at once as
// the machine has cores to spare), stopped after --cap seconds.
// Run: node --conditions=source --import tsx bench/worst-case.bench.ts [--cap 60] [--sizes 65536,1048576]
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import { ENCODING_FACTS, getTokenizer, normalizeText } from '../src/index.js';
import { WORST_INPUTS } from '../src/worst-case-inputs.test-helper.js';

const { values } = parseArgs({
  options: {
    cap: { type: 'string', default: '60' },
    sizes: { type: 'string', default: `${1 << 16},${1 << 20}` },
    id: { type: 'string', default: 'cl100k_base' },
  },
});
const capSeconds = Number(values.cap);
const sizes = values.sizes.split(',').map(Number);
const id = values.id as keyof typeof ENCODING_FACTS;

// The worker loads the reference, then times one encoding of the text it is sent.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { createRequire } = require('node:module');
const load = createRequire(workerData.requireFrom);
let encode;
if (workerData.reference === 'js-tiktoken') {
  const { Tiktoken } = load('js-tiktoken/lite');
  const ranks = load('js-tiktoken/ranks/' + workerData.id);
  const tiktoken = new Tiktoken(ranks.default ?? ranks);
  encode = (text) => tiktoken.encode(text, [], []);
} else {
  const encoding = load('gpt-tokenizer/cjs/encoding/' + workerData.fastEncodingName);
  const options = { disallowedSpecial: new Set() };
  encode = (text) => encoding.encode(text, options);
}
encode('warm up');
parentPort.postMessage('ready');
parentPort.on('message', (text) => {
  const start = performance.now();
  try {
    encode(text);
    parentPort.postMessage({ milliseconds: performance.now() - start });
  } catch (error) {
    parentPort.postMessage({ milliseconds: performance.now() - start, error: String(error).slice(0, 60) });
  }
});
`;

function timeReference(reference: string, text: string): Promise<string> {
  return new Promise((resolve) => {
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: {
        reference,
        id,
        fastEncodingName: ENCODING_FACTS[id].fastEncodingName,
        requireFrom: import.meta.url,
      },
    });
    let timer: NodeJS.Timeout | undefined;
    worker.on('message', (message: 'ready' | { milliseconds: number; error?: string }) => {
      if (message === 'ready') {
        // The cap counts from here: loading the rank file is not the encoding's time.
        worker.postMessage(text);
        timer = setTimeout(() => {
          void worker.terminate();
          resolve(`> ${capSeconds} s`);
        }, capSeconds * 1000);
        return;
      }
      clearTimeout(timer);
      void worker.terminate();
      const time = formatMilliseconds(message.milliseconds);
      resolve(message.error === undefined ? time : `${message.error} after ${time}`);
    });
    worker.once('error', (error) => {
      clearTimeout(timer);
      resolve(String(error).slice(0, 60));
    });
  });
}

function formatMilliseconds(milliseconds: number): string {
  return milliseconds < 1000 ? `${milliseconds.toFixed(0)} ms` : `${(milliseconds / 1000).toFixed(1)} s`;
}

const tokenizer = getTokenizer(id);
for (const make of Object.values(WORST_INPUTS)) tokenizer.encode(make(1 << 14)); // warm up both merges

interface Row {
  readonly name: string;
  readonly bytes: number;
  readonly text: string;
  readonly ours: string;
  readonly references: Map<string, string>;
}
const rows: Row[] = [];
for (const [name, make] of Object.entries(WORST_INPUTS)) {
  for (const bytes of sizes) {
    const text = make(bytes);
    const start = performance.now();
    tokenizer.encode(text);
    const ours = formatMilliseconds(performance.now() - start);
    // The references get the normalized text that encode tokenizes.
    rows.push({ name, bytes, text: normalizeText(text), ours, references: new Map() });
  }
}

const jobs = rows.flatMap((row) =>
  ['js-tiktoken', 'gpt-tokenizer'].map((reference) => async () => {
    row.references.set(reference, await timeReference(reference, row.text));
  }),
);
const concurrency = Math.max(1, availableParallelism() - 2);
await Promise.all(
  Array.from({ length: concurrency }, async () => {
    for (let job = jobs.shift(); job !== undefined; job = jobs.shift()) await job();
  }),
);

console.log(
  `Node ${process.version}, ${id}; references stopped after ${capSeconds} s, ${concurrency} at a time`,
);
console.log('| input | bytes | tracemark | js-tiktoken | gpt-tokenizer |');
console.log('| --- | --- | --- | --- | --- |');
for (const row of rows) {
  const [tiktoken, gptTokenizer] = ['js-tiktoken', 'gpt-tokenizer'].map((name) => row.references.get(name));
  console.log(`| ${row.name} | ${row.bytes} | ${row.ours} | ${tiktoken} | ${gptTokenizer} |`);
}
