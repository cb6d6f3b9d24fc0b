/** Worker thread for `tracemark detect`: runs jobs with its own engine. */
import { parentPort, workerData } from 'node:worker_threads';
import { createEngine, type EngineOptions, type Job } from './detect-engine.ts';

const engine = createEngine(workerData as EngineOptions);
parentPort?.on('message', (message: { id: number; job: Job }) => {
  try {
    const result = engine.run(message.job);
    const transfer = result.kind === 'tokens' ? [result.tokens.buffer as ArrayBuffer] : [];
    parentPort?.postMessage({ id: message.id, result }, transfer);
  } catch (error) {
    parentPort?.postMessage({ id: message.id, failure: (error as Error).message });
  }
});
