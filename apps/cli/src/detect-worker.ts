/** Worker thread for `tracemark detect`: runs jobs with its own engine. */
import { workerData } from 'node:worker_threads';
import { createEngine, type EngineOptions, type Job, type JobResult } from './detect-engine.ts';
import { serveJobs } from './worker-threads.ts';

const engine = createEngine(workerData as EngineOptions);
serveJobs(
  (job: Job) => engine.run(job),
  (result: JobResult) => (result.kind === 'tokens' ? [result.tokens.buffer as ArrayBuffer] : []),
);
