/**
 * Jobs over threads, for `detect` and `scan`: this thread and worker threads take jobs from one queue.
 * A worker gets jobs once it has started (it says so), at most {@link WORKER_PREFETCH} at a time, so that
 * one which starts late or runs slow takes fewer; this thread runs a job whenever the queue holds one
 * that no worker has room for, and lets its event loop run between jobs. While the workers load their
 * modules and tables (a few hundred ms), this thread already scores. `serveJobs` is the worker's side.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import v8 from 'node:v8';
import { parentPort, type TransferListItem, Worker } from 'node:worker_threads';

export interface WorkerThreads<Job, Result> {
  submit(job: Job): Promise<Result>;
  close(): Promise<void>;
}

/** Jobs a worker holds at once: one it runs and one waiting, so that it never waits for this thread. */
export const WORKER_PREFETCH = 2;

/**
 * Makes the worker threads started from now on optimize their code on their own thread instead of on
 * V8's background threads (this thread, whose isolate exists already, keeps compiling in the
 * background). Node 20 unregisters a worker's isolate from its platform before disposing of it, and a
 * background compile job of that isolate still running then asks the platform for the isolate's task
 * runner and aborts the whole process (`Assertion failed: (data.first) != nullptr` in
 * `NodePlatform::ForIsolate`): seen once in about 60 scans, when the scan's workers were stopped at
 * the end. Without background compile jobs there is nothing to race.
 */
export function compileWorkersInline(): void {
  v8.setFlagsFromString('--no-concurrent-recompilation');
}

/** The compiled worker script next to this module, or null when running from TypeScript sources (tests). */
export function compiledWorker(fileName: string): URL | null {
  const url = new URL(`./${fileName}`, import.meta.url);
  return existsSync(fileURLToPath(url)) ? url : null;
}

export interface ThreadOptions<Job, Result> {
  /** The buffers of a job that move to a worker instead of being copied (then unusable here). */
  readonly transfer?: (job: Job) => TransferListItem[];
  /** Runs a job on this thread; without it, only the workers run jobs. */
  readonly local?: (job: Job) => Result;
}

/** What a worker posts: that it has started, or a job's result or failure. */
type WorkerMessage<Result> =
  | { readonly ready: true }
  | { readonly id: number; readonly result?: Result; readonly failure?: string };

interface Pending<Job, Result> {
  readonly id: number;
  readonly job: Job;
  readonly resolve: (result: Result) => void;
  readonly reject: (error: Error) => void;
}

/** Starts `count` workers running `url` (each given `workerData`) and shares jobs between them and this thread. */
export function startWorkerThreads<Job, Result>(
  url: URL,
  workerData: unknown,
  count: number,
  options: ThreadOptions<Job, Result> = {},
): WorkerThreads<Job, Result> {
  compileWorkersInline();
  const transfer = options.transfer ?? (() => []);
  const local = options.local;
  const queue: Pending<Job, Result>[] = [];
  const running = new Map<number, Pending<Job, Result>>();
  const workers = Array.from({ length: count }, () => ({
    thread: new Worker(url, { workerData }),
    ready: false,
    held: 0,
  }));
  /** A worker's crash: every job after it fails with it. */
  let failure: Error | null = null;
  let nextId = 0;
  let localScheduled = false;
  let closed = false;

  const runLocal = (): void => {
    localScheduled = false;
    if (closed) return;
    const pending = queue.shift();
    if (pending === undefined) return;
    try {
      pending.resolve(local!(pending.job));
    } catch (error) {
      pending.reject(error as Error);
    }
    dispatch();
  };

  const dispatch = (): void => {
    for (const worker of workers) {
      while (worker.ready && worker.held < WORKER_PREFETCH && queue.length > 0) {
        const pending = queue.shift()!;
        worker.held++;
        running.set(pending.id, pending);
        worker.thread.postMessage({ id: pending.id, job: pending.job }, transfer(pending.job));
      }
    }
    // setImmediate: messages from the workers, the input and the output get their turn between jobs here.
    if (local !== undefined && queue.length > 0 && !localScheduled) {
      localScheduled = true;
      setImmediate(runLocal);
    }
  };

  for (const worker of workers) {
    worker.thread.on('message', (message: WorkerMessage<Result>) => {
      if ('ready' in message) worker.ready = true;
      else {
        worker.held--;
        const pending = running.get(message.id);
        running.delete(message.id);
        if (message.failure !== undefined) pending?.reject(new Error(message.failure));
        else pending?.resolve(message.result!);
      }
      dispatch();
    });
    worker.thread.on('error', (error) => {
      // Its jobs are lost with it, and the others fail too (a failing engine fails alike everywhere).
      worker.ready = false;
      failure = error;
      for (const pending of [...running.values(), ...queue]) pending.reject(error);
      running.clear();
      queue.length = 0;
    });
  }
  return {
    submit: (job) =>
      new Promise<Result>((resolve, reject) => {
        if (failure !== null) {
          reject(failure);
          return;
        }
        queue.push({ id: nextId++, job, resolve, reject });
        dispatch();
      }),
    close: async () => {
      closed = true;
      await Promise.all(workers.map((worker) => worker.thread.terminate()));
    },
  };
}

/** In a worker: says it has started, then answers each job with `run`, moving the buffers `transfer` names. */
export function serveJobs<Job, Result>(
  run: (job: Job) => Result,
  transfer: (result: Result) => TransferListItem[] = () => [],
): void {
  parentPort?.on('message', (message: { id: number; job: Job }) => {
    try {
      const result = run(message.job);
      parentPort?.postMessage({ id: message.id, result }, transfer(result));
    } catch (error) {
      parentPort?.postMessage({ id: message.id, failure: (error as Error).message });
    }
  });
  parentPort?.postMessage({ ready: true });
}
