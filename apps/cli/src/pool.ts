/** A small worker pool; without workers, jobs run in the calling thread through the same engine. */
import { availableParallelism } from 'node:os';
import { createEngine, type Engine, type EngineOptions, type Job, type JobResult } from './detect-engine.ts';
import { compiledWorker, startWorkerThreads } from './worker-threads.ts';

export interface JobRunner {
  readonly engine: Engine;
  readonly workers: number;
  submit(job: Job): Promise<JobResult>;
  close(): Promise<void>;
}

export function defaultWorkerCount(): number {
  return Math.max(1, Math.min(availableParallelism(), 8));
}

export function createRunner(options: EngineOptions, workers: number): JobRunner {
  const engine = createEngine(options);
  const url = compiledWorker('detect-worker.js');
  if (workers <= 0 || url === null) {
    return {
      engine,
      workers: 0,
      submit: (job) => Promise.resolve(engine.run(job)),
      close: () => Promise.resolve(),
    };
  }
  const threads = startWorkerThreads<Job, JobResult>(url, options, workers);
  return { engine, workers, submit: threads.submit, close: threads.close };
}
