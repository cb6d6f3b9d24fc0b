// Encoding throughput on English text: this package's encoder against js-tiktoken and gpt-tokenizer, on
// whole Brown corpus documents (about 5 MB) and on the same text cut into 200-character snippets (per-call
// cost). Each figure is the median of 5 interleaved runs; the ids of the three are checked equal.
// Run `pnpm bench` in packages/tokenizers, or
// node --conditions=source --import tsx bench/encode.bench.ts [--corpus-json documents.json] [--id cl100k_base]
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';
import { Tiktoken, type TiktokenBPE } from 'js-tiktoken/lite';
import {
  ENCODING_FACTS,
  getTokenizer,
  normalizeText,
  TOKENIZER_IDS,
  type TokenizerId,
} from '../src/index.js';

const { values } = parseArgs({ options: { 'corpus-json': { type: 'string' }, id: { type: 'string' } } });
const require = createRequire(import.meta.url);
const TARGET_BYTES = 5_000_000;
const SNIPPET_LENGTH = 200;
const RUNS = 5;

// The Brown corpus as @tracemark/lm reads it (lm depends on this package, so its loader is reached by path),
// or the same documents saved as a JSON array of strings (to run where the corpora are not installed).
async function loadBrownTexts(): Promise<string[]> {
  const saved = values['corpus-json'];
  if (saved !== undefined) return JSON.parse(readFileSync(saved, 'utf8')) as string[];
  const { loadHumanCorpus } = await import('../../lm/src/human-corpus.js');
  return (await loadHumanCorpus({ source: 'brown' })).map((document) => document.text);
}

interface Encoder {
  readonly name: string;
  encode(text: string): ArrayLike<number>;
}

const documents: string[] = [];
let bytes = 0;
for (const text of await loadBrownTexts()) {
  if (bytes >= TARGET_BYTES) break;
  documents.push(text);
  bytes += Buffer.byteLength(text);
}
const snippets = documents.flatMap((text) => {
  const pieces: string[] = [];
  for (let start = 0; start < text.length; start += SNIPPET_LENGTH)
    pieces.push(text.slice(start, start + SNIPPET_LENGTH));
  return pieces;
});

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[sorted.length >> 1]!;
}

function time(encoder: Encoder, texts: readonly string[]): { seconds: number; tokens: number } {
  const start = performance.now();
  let tokens = 0;
  for (const text of texts) tokens += encoder.encode(text).length;
  return { seconds: (performance.now() - start) / 1000, tokens };
}

console.log(
  `Node ${process.version}, ${(bytes / 1e6).toFixed(2)} MB in ${documents.length} Brown documents ` +
    `(${snippets.length} snippets of ${SNIPPET_LENGTH} characters), median of ${RUNS} interleaved runs`,
);
console.log('| tokenizer | texts | encoder | MB/s | M tokens/s |');
console.log('| --- | --- | --- | --- | --- |');
const tokenizerIds = values.id === undefined ? TOKENIZER_IDS : [values.id as TokenizerId];
for (const id of tokenizerIds) {
  const loaded = require(`js-tiktoken/ranks/${id}`) as TiktokenBPE | { default: TiktokenBPE };
  const ranks = 'default' in loaded ? loaded.default : loaded;
  const reference = new Tiktoken(ranks);
  const fast = require(`gpt-tokenizer/cjs/encoding/${ENCODING_FACTS[id].fastEncodingName}`) as {
    encode(text: string, options: { disallowedSpecial: Set<string> }): number[];
  };
  const allowSpecialText = { disallowedSpecial: new Set<string>() };
  const tokenizer = getTokenizer(id);
  const encoders: Encoder[] = [
    { name: 'tracemark', encode: (text) => tokenizer.encode(text) },
    { name: 'js-tiktoken', encode: (text) => reference.encode(normalizeText(text), [], []) },
    { name: 'gpt-tokenizer', encode: (text) => fast.encode(normalizeText(text), allowSpecialText) },
  ];
  for (const encoder of encoders) encoder.encode(documents[0]!); // load and warm up
  for (const [label, texts] of [
    ['documents', documents],
    ['snippets', snippets],
  ] as const) {
    const seconds = new Map<string, number[]>(encoders.map((encoder) => [encoder.name, []]));
    const tokens = new Map<string, number>();
    for (let run = 0; run < RUNS; run++) {
      for (const encoder of encoders) {
        const result = time(encoder, texts);
        seconds.get(encoder.name)!.push(result.seconds);
        tokens.set(encoder.name, result.tokens);
      }
    }
    for (const encoder of encoders) {
      const s = median(seconds.get(encoder.name)!);
      const count = tokens.get(encoder.name)!;
      console.log(
        `| ${id} | ${label} | ${encoder.name} | ${(bytes / 1e6 / s).toFixed(2)} | ${(count / s / 1e6).toFixed(2)} |`,
      );
    }
    if (new Set(tokens.values()).size !== 1) throw new Error(`token counts differ: ${[...tokens.entries()]}`);
  }
  for (const text of documents) {
    const [ours, ...references] = encoders.map((encoder) => Array.from(encoder.encode(text)).join(','));
    if (references.some((ids) => ids !== ours)) throw new Error(`${id}: the encoders disagree on a document`);
  }
}
