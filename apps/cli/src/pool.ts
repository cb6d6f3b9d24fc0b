/** A small worker pool; without workers, jobs run in the calling thread through the same engine. */
import { availableParallelism } from 'node:os';
import { createEngine, type Engine, type EngineOptions, type Job, type JobResult } from './detect-engine.ts';
import type { InputSize } from './inputs.ts';
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

/**
 * Bytes of input that repay a worker: each loads the modules, builds the tokenizer and derives the keys
 * (a few hundred ms of CPU) before its first document.
 */
export const BYTES_PER_WORKER: number = 4 * 1024 * 1024;

/**
 * What a document costs beyond its text, in bytes of text that take as long: its verdict (exact
 * statistics), its result and the result's JSON, about 15 µs, as long as tokenizing and scoring 300
 * bytes. 100,000 short documents are that much more work than their bytes say.
 */
export const DOCUMENT_COST_BYTES = 300;

/**
 * The workers `detect` starts when --workers is not given: none below {@link BYTES_PER_WORKER} of work
 * (the input's bytes, and {@link DOCUMENT_COST_BYTES} for each of its documents) or on one core (a
 * worker there only adds its start-up and the copying), else one per started BYTES_PER_WORKER of
 * work, no more than the jobs there are to share (line batches, text pieces) nor than `cores`.
 * Unknown sizes (stdin, directories) are Infinity.
 */
export function workersFor(input: InputSize, cores: number = defaultWorkerCount()): number {
  const work = input.bytes + DOCUMENT_COST_BYTES * input.documents;
  if (cores < 2 || work < BYTES_PER_WORKER) return 0;
  return Math.max(0, Math.min(cores, Math.ceil(work / BYTES_PER_WORKER), input.jobs));
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
  // a batch's bytes move to the worker (inputs.ts gives each its own ArrayBuffer)
  const threads = startWorkerThreads<Job, JobResult>(url, options, workers, (job) =>
    job.kind === 'line-bytes' ? [job.data.buffer as ArrayBuffer] : [],
  );
  return { engine, workers, submit: threads.submit, close: threads.close };
}
