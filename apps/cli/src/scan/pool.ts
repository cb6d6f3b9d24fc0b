/** The threads of `tracemark scan`: this one and worker threads (none from sources: this thread alone). */
import { type FakeKeyCounts, type FakeKeyJob, sharedCopy } from '@tracemark/extraction';
import { compiledWorker, startWorkerThreads } from '../worker-threads.ts';
import { createScanEngine, type ScanEngineOptions, type ScanJob, type ScanJobResult } from './engine.ts';

export interface ScanPool {
  /** Worker threads, beside this thread (which runs jobs too). */
  readonly workers: number;
  submit(job: ScanJob): Promise<ScanJobResult>;
  /**
   * Runs fake-key jobs across the workers, sharing the trial values' memory instead of copying it. On this
   * thread alone, `check` is called between jobs: it throws to stop them (an interrupted scan).
   */
  runFakeKeyJobs(jobs: readonly FakeKeyJob[], check?: () => void): Promise<FakeKeyCounts[]>;
  close(): Promise<void>;
}

/** Runs jobs on `threads` threads: this one and `threads − 1` worker threads (0 and 1: this thread alone). */
export function createScanPool(options: ScanEngineOptions, threads: number): ScanPool {
  const url = compiledWorker('scan/worker.js');
  const engine = createScanEngine(options);
  if (threads <= 1 || url === null) {
    const submit = (job: ScanJob) => Promise.resolve(engine.run(job));
    return {
      workers: 0,
      submit,
      runFakeKeyJobs: async (jobs, check) => {
        const counts: FakeKeyCounts[] = [];
        for (const job of jobs) {
          check?.();
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
  const workers = threads - 1;
  const pool = startWorkerThreads<ScanJob, ScanJobResult>(url, options, workers, {
    local: (job) => engine.run(job),
  });
  const submit = pool.submit;
  return {
    workers,
    submit,
    runFakeKeyJobs: async (jobs) => {
      const sharedTrials = new Map<Uint32Array, Uint32Array>();
      const results = await Promise.all(
        jobs.map((job) => {
          let trials = sharedTrials.get(job.trials);
          if (trials === undefined) {
            // In shared memory, so that posting it to a worker copies nothing.
            trials = sharedCopy(job.trials);
            sharedTrials.set(job.trials, trials);
          }
          return submit({ kind: 'fake', job: { ...job, trials } });
        }),
      );
      return results.map((result) => {
        if (result.kind !== 'fake') throw new Error('scan worker: unexpected result');
        return result.counts;
      });
    },
    close: pool.close,
  };
}
