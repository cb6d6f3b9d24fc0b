/**
 * What a transformers KGW key (lefthash, V = 100,277, γ = 0.25) costs `tracemark detect` on the bench's
 * corpus: how many distinct contexts the text has (each needs torch's permutation once, 25,069 MT19937 draws
 * and swaps), how many green lists a least-recently-used cache of a given size makes (the detector's is
 * one, refreshing an entry only once it is in the older half), and what one list costs here (median of
 * rounds, cache off).
 *
 * Run: pnpm --filter @tracemark/cli bench:kgw [-- --megabytes 4 --rounds 5 --lists 2000]
 */
import { parseArgs } from 'node:util';
import { createTransformersKgwDetector, TRANSFORMERS_GREEN_LIST_CACHE_BYTES } from '@tracemark/core';
import { loadHumanCorpus } from '@tracemark/lm';
import { getTokenizer } from '@tracemark/tokenizers';
import { benchArguments } from './arguments.ts';

const { values } = parseArgs({
  args: benchArguments(),
  options: {
    megabytes: { type: 'string', default: '4' },
    rounds: { type: 'string', default: '5' },
    lists: { type: 'string', default: '2000' },
  },
});
const megabytes = Number(values.megabytes);
const rounds = Number(values.rounds);
const lists = Number(values.lists);
const VOCAB = 100_277;
const LIST_BYTES = Math.ceil(VOCAB / 32) * 4;

// The bench's corpus: the human documents in order, repeated, up to `megabytes` of text.
const tokenizer = getTokenizer('cl100k_base');
const documents = await loadHumanCorpus({ split: 'all' });
const contexts: number[] = [];
let bytes = 0;
let tokens = 0;
while (bytes < megabytes * 1e6) {
  for (const document of documents) {
    const ids = tokenizer.encode(document.text);
    tokens += ids.length;
    // lefthash seeds from the token before each scored one
    for (let i = 0; i + 1 < ids.length; i++) contexts.push(ids[i]!);
    bytes += Buffer.byteLength(document.text);
    if (bytes >= megabytes * 1e6) break;
  }
}
const distinct = new Set(contexts).size;

/** Lists made with room for `capacity` (least recently used first out). */
function listsMade(capacity: number): number {
  const kept = new Map<number, true>();
  let made = 0;
  for (const context of contexts) {
    if (kept.delete(context)) {
      kept.set(context, true);
      continue;
    }
    made++;
    if (kept.size >= capacity) kept.delete(kept.keys().next().value!);
    kept.set(context, true);
  }
  return made;
}

// One list's cost: isGreen with the cache off makes the list every time.
const detector = createTransformersKgwDetector(
  { vocabSize: VOCAB, hashKey: 15_485_863n },
  { greenListCacheBytes: 0 },
);
const perList: number[] = [];
for (let round = 0; round < rounds; round++) {
  const start = performance.now();
  for (let i = 0; i < lists; i++) detector.isGreen([(i * 7919 + round) % VOCAB], i % VOCAB);
  perList.push((performance.now() - start) / lists);
}
perList.sort((a, b) => a - b);
const median = perList[Math.floor(perList.length / 2)]!;

console.log(
  `# transformers KGW green lists on ${(bytes / 1e6).toFixed(1)} MB of the bench's text (${tokens} cl100k tokens)\n`,
);
console.log(`distinct lefthash contexts: ${distinct}`);
console.log(
  `one list: ${median.toFixed(3)} ms (median of ${rounds} rounds of ${lists} lists, ${perList[0]!.toFixed(3)}–${perList[perList.length - 1]!.toFixed(3)})\n`,
);
console.log('| lists kept | memory | lists made | their time at the median |');
console.log('| --- | --- | --- | --- |');
for (const mebibytes of [64, TRANSFORMERS_GREEN_LIST_CACHE_BYTES / 2 ** 20, 1024]) {
  const capacity = Math.floor((mebibytes * 2 ** 20) / LIST_BYTES);
  const made = listsMade(capacity);
  console.log(`| ${capacity} | ${mebibytes} MiB | ${made} | ${((made * median) / 1000).toFixed(1)} s |`);
}
console.log(`| all | – | ${distinct} | ${((distinct * median) / 1000).toFixed(1)} s |`);
