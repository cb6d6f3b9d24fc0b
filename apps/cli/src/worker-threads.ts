/**
 * Jobs over worker threads, for `detect` and `scan`: each job goes to the least-loaded thread and
 * its reply is matched by id. `serveJobs` is the worker's side.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parentPort, type TransferListItem, Worker } from 'node:worker_threads';

export interface WorkerThreads<Job, Result> {
  submit(job: Job): Promise<Result>;
  close(): Promise<void>;
}

/** The compiled worker script next to this module, or null when running from TypeScript sources (tests). */
export function compiledWorker(fileName: string): URL | null {
  const url = new URL(`./${fileName}`, import.meta.url);
  return existsSync(fileURLToPath(url)) ? url : null;
}

/** `transfer` names the buffers of a job that move to the worker instead of being copied (then unusable here). */
export function startWorkerThreads<Job, Result>(
  url: URL,
  workerData: unknown,
  count: number,
  transfer: (job: Job) => TransferListItem[] = () => [],
): WorkerThreads<Job, Result> {
  const threads = Array.from({ length: count }, () => new Worker(url, { workerData }));
  const waiting = new Map<number, { resolve: (result: Result) => void; reject: (error: Error) => void }>();
  const load = new Array<number>(count).fill(0);
  let nextId = 0;
  threads.forEach((thread, index) => {
    thread.on('message', (message: { id: number; result?: Result; failure?: string }) => {
      load[index]!--;
      const entry = waiting.get(message.id);
      waiting.delete(message.id);
      if (message.failure !== undefined) entry?.reject(new Error(message.failure));
      else entry?.resolve(message.result!);
    });
    thread.on('error', (error) => {
      for (const entry of waiting.values()) entry.reject(error);
      waiting.clear();
    });
  });
  return {
    submit: (job) =>
      new Promise<Result>((resolve, reject) => {
        const id = nextId++;
        waiting.set(id, { resolve, reject });
        let target = 0;
        for (let i = 1; i < count; i++) if (load[i]! < load[target]!) target = i;
        load[target]!++;
        threads[target]!.postMessage({ id, job }, transfer(job));
      }),
    close: async () => {
      await Promise.all(threads.map((thread) => thread.terminate()));
    },
  };
}

/** In a worker: answers each job with `run`, moving the buffers `transfer` names instead of copying them. */
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
}
