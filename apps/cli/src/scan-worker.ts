/** Worker thread for `tracemark scan`: tokenizes and scores fake keys with its own engine. */
import { parentPort, workerData } from 'node:worker_threads';
import { createScanEngine, type ScanEngineOptions, type ScanJob, transferables } from './scan-engine.ts';

const engine = createScanEngine(workerData as ScanEngineOptions);
parentPort?.on('message', (message: { id: number; job: ScanJob }) => {
  try {
    const result = engine.run(message.job);
    parentPort?.postMessage({ id: message.id, result }, transferables(result));
  } catch (error) {
    parentPort?.postMessage({ id: message.id, failure: (error as Error).message });
  }
});
