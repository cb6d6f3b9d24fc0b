/** The threads `detect` scores on: this one and worker threads, through the same engine. */
import { availableParallelism } from 'node:os';
import { createEngine, type Engine, type EngineOptions, type Job, type JobResult } from './detect-engine.ts';
import type { InputSize } from './inputs.ts';
import { compiledWorker, startWorkerThreads } from './worker-threads.ts';

export interface JobRunner {
  readonly engine: Engine;
  /** Worker threads, beside this thread (which runs jobs too). */
  readonly workers: number;
  submit(job: Job): Promise<JobResult>;
  close(): Promise<void>;
}

/**
 * The most threads `detect` and `scan` take by default: every core but one, 8 at most, 1 at least. A V8
 * thread keeps about a third of another core busy besides itself (its optimizing compiler and its
 * garbage collector run on threads of their own): on two cores, a second thread made detect 4% faster
 * for 36% more CPU and scan 8% slower (`pnpm --filter @tracemark/cli bench`, 16 MB).
 */
export function defaultWorkerCount(): number {
  return Math.max(1, Math.min(availableParallelism() - 1, 8));
}

/**
 * Bytes of input that repay a thread: a worker loads the modules, builds the tokenizer and derives the
 * keys (a few hundred ms of CPU) before its first document.
 */
export const BYTES_PER_WORKER: number = 4 * 1024 * 1024;

/**
 * What a document costs beyond its text, in bytes of text that take as long: its verdict (exact
 * statistics), its result and the result's JSON, about 15 µs, as long as tokenizing and scoring 300
 * bytes. 100,000 short documents are that much more work than their bytes say.
 */
export const DOCUMENT_COST_BYTES = 300;

/**
 * The threads `detect` scores on when --workers is not given (0: this thread alone): this thread
 * alone below {@link BYTES_PER_WORKER} of work (the input's bytes, and {@link DOCUMENT_COST_BYTES} for
 * each of its documents) or where `cores` is below 2 (one or two cores: see {@link defaultWorkerCount};
 * a worker there only adds its start-up, its compiler and the copying), else
 * one per started BYTES_PER_WORKER of work, no more than the jobs there are to share (line batches,
 * text pieces) nor than `cores`. Unknown sizes (stdin, directories) are Infinity.
 */
export function workersFor(input: InputSize, cores: number = defaultWorkerCount()): number {
  const work = input.bytes + DOCUMENT_COST_BYTES * input.documents;
  if (cores < 2 || work < BYTES_PER_WORKER) return 0;
  return Math.max(0, Math.min(cores, Math.ceil(work / BYTES_PER_WORKER), input.jobs));
}

/**
 * Runs jobs on `threads` threads: this one and `threads − 1` worker threads (0 and 1: this thread alone).
 * This thread scores too, from the start, while the workers load.
 */
export function createRunner(options: EngineOptions, threads: number): JobRunner {
  const engine = createEngine(options);
  const url = compiledWorker('detect-worker.js');
  if (threads <= 1 || url === null) {
    return {
      engine,
      workers: 0,
      submit: (job) => Promise.resolve(engine.run(job)),
      close: () => Promise.resolve(),
    };
  }
  const workers = threads - 1;
  const pool = startWorkerThreads<Job, JobResult>(url, options, workers, {
    // a batch's bytes move to the worker (inputs.ts gives each its own ArrayBuffer)
    transfer: (job) => (job.kind === 'line-bytes' ? [job.data.buffer as ArrayBuffer] : []),
    local: (job) => engine.run(job),
  });
  return { engine, workers, submit: pool.submit, close: pool.close };
}
