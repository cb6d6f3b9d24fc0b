/** A small worker pool; without workers, jobs run in the calling thread through the same engine. */
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { createEngine, type Engine, type EngineOptions, type Job, type JobResult } from './detect-engine.ts';

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
  const url = new URL('./detect-worker.js', import.meta.url);
  // Running from TypeScript sources (tests) there is no compiled worker: work in this thread.
  if (workers <= 0 || !existsSync(fileURLToPath(url))) {
    return {
      engine,
      workers: 0,
      submit: (job) => Promise.resolve(engine.run(job)),
      close: () => Promise.resolve(),
    };
  }
  const threads = Array.from({ length: workers }, () => new Worker(url, { workerData: options }));
  const waiting = new Map<number, { resolve: (r: JobResult) => void; reject: (e: Error) => void }>();
  const load = new Array<number>(workers).fill(0);
  let nextId = 0;
  threads.forEach((thread, index) => {
    thread.on('message', (message: { id: number; result?: JobResult; failure?: string }) => {
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
    engine,
    workers,
    submit: (job) =>
      new Promise<JobResult>((resolve, reject) => {
        const id = nextId++;
        waiting.set(id, { resolve, reject });
        let target = 0;
        for (let i = 1; i < workers; i++) if (load[i]! < load[target]!) target = i;
        load[target]!++;
        threads[target]!.postMessage({ id, job });
      }),
    close: async () => {
      await Promise.all(threads.map((thread) => thread.terminate()));
    },
  };
}
