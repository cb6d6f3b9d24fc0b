// Tokenizer throughput on about 5 MB of Brown corpus text: js-tiktoken (encode) against gpt-tokenizer
// (encodeFast), per tokenizer. Run `pnpm bench` in packages/lm (builds first).
import { getTokenizer, TOKENIZER_IDS } from '@tracemark/tokenizers';
import { loadHumanCorpus } from '../dist/index.js';

const TARGET_BYTES = 5_000_000;
const texts = [];
let bytes = 0;
for (const document of await loadHumanCorpus({ source: 'brown' })) {
  if (bytes >= TARGET_BYTES) break;
  texts.push(document.text);
  bytes += Buffer.byteLength(document.text);
}

function measure(encode) {
  encode(texts[0]); // load rank files and warm up
  const start = performance.now();
  let tokens = 0;
  for (const text of texts) tokens += encode(text).length;
  const seconds = (performance.now() - start) / 1000;
  return { seconds, tokens };
}

console.log(`Node ${process.version}, ${(bytes / 1e6).toFixed(2)} MB in ${texts.length} Brown documents`);
console.log('| tokenizer | encode (js-tiktoken) | encodeFast (gpt-tokenizer) | tokens |');
console.log('| --- | --- | --- | --- |');
for (const id of TOKENIZER_IDS) {
  const tokenizer = getTokenizer(id);
  const reference = measure((text) => tokenizer.encode(text));
  const fast = measure((text) => tokenizer.encodeFast(text));
  const rate = (result) =>
    `${(bytes / 1e6 / result.seconds).toFixed(2)} MB/s (${(result.tokens / result.seconds / 1e6).toFixed(2)} M tokens/s)`;
  console.log(`| ${id} | ${rate(reference)} | ${rate(fast)} | ${reference.tokens} |`);
}
