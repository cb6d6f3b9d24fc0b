/** Worker pool of `tracemark scan`; without workers (or from sources), jobs run in this thread. */
import type { EvaluationTape, FakeKeyCounts, FakeKeyJob } from '@tracemark/extraction';
import { createScanEngine, type ScanEngineOptions, type ScanJob, type ScanJobResult } from './scan-engine.ts';
import { compiledWorker, startWorkerThreads } from './worker-threads.ts';

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
  const url = compiledWorker('scan-worker.js');
  if (workers <= 0 || url === null) {
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
  const threads = startWorkerThreads<ScanJob, ScanJobResult>(url, options, workers);
  const submit = threads.submit;
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
    close: threads.close,
  };
}
