/** Worker thread for `tracemark scan`: tokenizes and scores fake keys with its own engine. */
import { workerData } from 'node:worker_threads';
import { serveJobs } from '../worker-threads.ts';
import { createScanEngine, type ScanEngineOptions, type ScanJob, transferables } from './engine.ts';

const engine = createScanEngine(workerData as ScanEngineOptions);
serveJobs((job: ScanJob) => engine.run(job), transferables);
