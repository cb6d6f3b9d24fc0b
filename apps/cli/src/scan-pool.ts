/** Worker pool of `tracemark scan`; without workers (or from sources), jobs run in this thread. */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { EvaluationTape, FakeKeyCounts, FakeKeyJob } from '@tracemark/extraction';
import { createScanEngine, type ScanEngineOptions, type ScanJob, type ScanJobResult } from './scan-engine.ts';

export interface ScanPool {
  readonly workers: number;
  submit(job: ScanJob): Promise<ScanJobResult>;
  /** Runs fake-key jobs across the workers, sharing each tape's memory instead of copying it. */
  runFakeKeyJobs(jobs: readonly FakeKeyJob[]): Promise<FakeKeyCounts[]>;
  close(): Promise<void>;
}

/** Copies a typed array into shared memory, so that posting it to a worker copies nothing. */
function shared<T extends Uint32Array>(array: T): T {
  const copy = new Uint32Array(new SharedArrayBuffer(Math.max(4, array.byteLength)), 0, array.length);
  copy.set(array);
  return copy as T;
}

function shareTape(tape: EvaluationTape): EvaluationTape {
  return {
    ...tape,
    windows: shared(tape.windows),
    candidateWindow: shared(tape.candidateWindow),
    candidateToken: shared(tape.candidateToken),
    promptWindow: shared(tape.promptWindow),
    promptToken: shared(tape.promptToken),
    grouped:
      tape.grouped === null
        ? null
        : {
            windows: shared(tape.grouped.windows),
            offsets: shared(tape.grouped.offsets),
            tokens: shared(tape.grouped.tokens),
            order: shared(tape.grouped.order),
            groupWindow: shared(tape.grouped.groupWindow),
          },
    selfHash:
      tape.selfHash === null
        ? null
        : {
            ...tape.selfHash,
            tokens: shared(tape.selfHash.tokens),
            spans: shared(tape.selfHash.spans),
            pairs: shared(tape.selfHash.pairs),
          },
  };
}

export function createScanPool(options: ScanEngineOptions, workers: number): ScanPool {
  const url = new URL('./scan-worker.js', import.meta.url);
  if (workers <= 0 || !existsSync(fileURLToPath(url))) {
    const engine = createScanEngine(options);
    const submit = (job: ScanJob) => Promise.resolve(engine.run(job));
    return {
      workers: 0,
      submit,
      runFakeKeyJobs: async (jobs) => {
        const counts: FakeKeyCounts[] = [];
        for (const job of jobs) {
          const result = engine.run({ kind: 'fake', job });
          if (result.kind === 'fake') counts.push(result.counts);
          // Let progress and signals through between batches.
          await new Promise((resolve) => setImmediate(resolve));
        }
        return counts;
      },
      close: () => Promise.resolve(),
    };
  }
  const threads = Array.from({ length: workers }, () => new Worker(url, { workerData: options }));
  const waiting = new Map<number, { resolve: (r: ScanJobResult) => void; reject: (e: Error) => void }>();
  const load = new Array<number>(workers).fill(0);
  let nextId = 0;
  threads.forEach((thread, index) => {
    thread.on('message', (message: { id: number; result?: ScanJobResult; failure?: string }) => {
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
  const submit = (job: ScanJob): Promise<ScanJobResult> =>
    new Promise<ScanJobResult>((resolve, reject) => {
      const id = nextId++;
      waiting.set(id, { resolve, reject });
      let target = 0;
      for (let i = 1; i < workers; i++) if (load[i]! < load[target]!) target = i;
      load[target]!++;
      threads[target]!.postMessage({ id, job });
    });
  return {
    workers,
    submit,
    runFakeKeyJobs: async (jobs) => {
      const sharedTapes = new Map<EvaluationTape, EvaluationTape>();
      const results = await Promise.all(
        jobs.map((job) => {
          let tape = sharedTapes.get(job.tape);
          if (tape === undefined) {
            tape = shareTape(job.tape);
            sharedTapes.set(job.tape, tape);
          }
          return submit({ kind: 'fake', job: { ...job, tape } });
        }),
      );
      return results.map((result) => {
        if (result.kind !== 'fake') throw new Error('scan worker: unexpected result');
        return result.counts;
      });
    },
    close: async () => {
      await Promise.all(threads.map((thread) => thread.terminate()));
    },
  };
}
