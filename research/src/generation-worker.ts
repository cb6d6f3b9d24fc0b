/** Worker thread: loads the default model once, then answers generation jobs (see generation.ts). */
import { parentPort } from 'node:worker_threads';
import { loadDefaultModel } from '@tracemark/lm';
import { tokenizer } from './corpus.ts';
import { type GenerationJob, generateOne } from './generation.ts';

const port = parentPort;
if (port === null) throw new Error('generation-worker.ts runs as a worker thread');
const model = loadDefaultModel({ tokenizerId: tokenizer().id });
port.on('message', (message: { index: number; job: GenerationJob }) => {
  void model.then((loaded) => {
    const result = generateOne(loaded, message.job);
    port.postMessage({ index: message.index, result }, [result.tokens.buffer as ArrayBuffer]);
  });
});
