/** Worker thread for `tracemark scan`: tokenizes and scores fake keys with its own engine. */
import { workerData } from 'node:worker_threads';
import { createScanEngine, type ScanEngineOptions, type ScanJob, transferables } from './scan-engine.ts';
import { serveJobs } from './worker-threads.ts';

const engine = createScanEngine(workerData as ScanEngineOptions);
serveJobs((job: ScanJob) => engine.run(job), transferables);
