// The default model's numbers: training time, cache load time, ms per logitsInto and per candidates, and
// held-out perplexity by order. Run `pnpm bench` in packages/lm (builds first). Trains into a temporary
// cache directory, so the user's cache is left alone.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getTokenizer } from '@tracemark/tokenizers';
import {
  defaultModelFileName,
  loadDefaultModel,
  loadHumanCorpus,
  NgramModel,
  trainNgramModel,
} from '../dist/index.js';

const tokenizer = getTokenizer('cl100k_base');
const cacheDir = await mkdtemp(join(tmpdir(), 'tracemark-bench-'));
const megabytes = (n) => `${(n / 1e6).toFixed(0)} MB`;

try {
  console.log(`Node ${process.version}, ${process.platform}/${process.arch}`);
  let start = performance.now();
  const model = await loadDefaultModel({ cacheDir });
  const trainSeconds = (performance.now() - start) / 1000;
  const path = join(cacheDir, await defaultModelFileName('cl100k_base', 4));
  const bytes = await readFile(path);
  console.log(
    `default model: first use (load corpus, tokenize, count, build, write cache) ${trainSeconds.toFixed(1)} s`,
  );
  console.log(`  n-grams by length: ${model.ngramCounts.join(', ')}; cache file ${megabytes(bytes.length)}`);
  console.log(`  rss after training ${megabytes(process.memoryUsage().rss)}`);

  const loads = [];
  for (let i = 0; i < 3; i++) {
    start = performance.now();
    NgramModel.deserialize(await readFile(path));
    loads.push(performance.now() - start);
  }
  console.log(`  cache load (read + deserialize): ${loads.map((ms) => `${ms.toFixed(0)} ms`).join(', ')}`);

  const heldOut = (await loadHumanCorpus({ split: 'test' })).map((document) =>
    tokenizer.encode(document.text),
  );
  const out = new Float32Array(model.vocabSize);
  const contexts = [];
  for (const ids of heldOut) {
    for (let i = 1; i < ids.length && contexts.length < 5000; i += 7)
      contexts.push(ids.subarray(Math.max(0, i - 3), i));
  }
  for (const context of contexts.slice(0, 500)) model.logitsInto(context, out);
  start = performance.now();
  for (const context of contexts) model.logitsInto(context, out);
  const logitsMs = (performance.now() - start) / contexts.length;
  start = performance.now();
  for (const context of contexts) model.candidates(context);
  const candidatesMs = (performance.now() - start) / contexts.length;
  start = performance.now();
  model.logitsInto([], out);
  let worst = 0;
  for (const context of contexts) {
    const t = performance.now();
    model.logitsInto(context, out);
    worst = Math.max(worst, performance.now() - t);
  }
  console.log(
    `  logitsInto: ${logitsMs.toFixed(3)} ms mean, ${worst.toFixed(2)} ms worst over ${contexts.length} held-out contexts; candidates(256): ${candidatesMs.toFixed(3)} ms mean`,
  );

  const trainDocuments = (await loadHumanCorpus({ split: 'train' })).map((document) =>
    tokenizer.encodeFast(document.text),
  );
  const heldOutTokens = heldOut.reduce((sum, ids) => sum + ids.length - 1, 0);
  console.log(
    `\nheld-out perplexity (${heldOut.length} documents, ${heldOutTokens} predicted tokens; uniform = ${model.ordinaryTokenCount})`,
  );
  console.log('| order | perplexity | count + build time | n-grams |');
  console.log('| --- | --- | --- | --- |');
  for (let order = 1; order <= 6; order++) {
    start = performance.now();
    const ngramModel = await trainNgramModel({
      documents: trainDocuments,
      vocabSize: tokenizer.vocabSize,
      tokenizerId: 'cl100k_base',
      order,
    });
    const seconds = (performance.now() - start) / 1000;
    let logSum = 0;
    for (const ids of heldOut) logSum += Math.log(ngramModel.perplexity(ids)) * (ids.length - 1);
    const perplexity = Math.exp(logSum / heldOutTokens);
    const total = ngramModel.ngramCounts.reduce((a, b) => a + b, 0);
    console.log(`| ${order} | ${perplexity.toFixed(1)} | ${seconds.toFixed(1)} s | ${total} |`);
  }
} finally {
  await rm(cacheDir, { recursive: true, force: true });
}
