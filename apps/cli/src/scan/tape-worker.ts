/**
 * The worker thread of tape-thread.ts: builds the evidence tape from the documents the main thread
 * sends, as they come, and scans them with `scanCorpusAnyKeys`. Fake keys are shared with the main
 * thread: it takes one batch at a time, and this thread takes the others once its own keys are scored.
 */
import { parentPort, workerData } from 'node:worker_threads';
import {
  type FakeKeyCounts,
  type FakeKeyJob,
  runFakeKeyJob,
  type ScanDocument,
  scanCorpusAnyKeys,
} from '@tracemark/extraction';
import {
  type DocumentBatch,
  type FromTapeWorker,
  type TapeThreadOptions,
  type ToTapeWorker,
  unpackBatch,
} from './tape-thread.ts';

const port = parentPort!;
const options = workerData as TapeThreadOptions;
const post = (message: FromTapeWorker): void => port.postMessage(message);

const batches: DocumentBatch[] = [];
let ended = false;
let wake: (() => void) | null = null;
/** Where the main thread's fake-key results go. */
let remoteResults: {
  resolve: (counts: FakeKeyCounts, id: number) => void;
  reject: (error: Error) => void;
} | null = null;

port.on('message', (message: ToTapeWorker) => {
  if (message.kind === 'documents') batches.push(message);
  else if (message.kind === 'end') ended = true;
  else if (message.kind === 'fake-result') remoteResults?.resolve(message.counts, message.id);
  else if (message.kind === 'fake-failure') remoteResults?.reject(new Error(message.message));
  wake?.();
  wake = null;
});

async function* documents(): AsyncGenerator<ScanDocument> {
  for (;;) {
    const batch = batches.shift();
    if (batch !== undefined) {
      yield* unpackBatch(batch);
      continue;
    }
    if (ended) return;
    await new Promise<void>((resolve) => {
      wake = resolve;
    });
  }
}

/** A copy in shared memory: the main thread reads it without a copy of its own. */
function shared(array: Uint32Array): Uint32Array {
  const copy = new Uint32Array(new SharedArrayBuffer(Math.max(4, array.byteLength)), 0, array.length);
  copy.set(array);
  return copy;
}

/**
 * Runs the fake-key batches on both threads: the main thread, idle now that the corpus is read, gets
 * them all at once, and each thread claims the next unclaimed batch from a shared counter whenever it
 * is free (this thread first after the true keys, which the scan scores right after handing the
 * batches over). A claim is an atomic add, so neither thread waits on the other's messages.
 */
function runFakeKeyJobs(jobs: readonly FakeKeyJob[]): Promise<FakeKeyCounts[]> {
  post({ kind: 'calibrating' });
  const sharedTrials = new Map<Uint32Array, Uint32Array>();
  const remote = jobs.map((job): FakeKeyJob => {
    let trials = sharedTrials.get(job.trials);
    if (trials === undefined) {
      trials = shared(job.trials);
      sharedTrials.set(job.trials, trials);
    }
    return { ...job, trials };
  });
  const claims = new Int32Array(new SharedArrayBuffer(4));
  return new Promise((resolve, reject) => {
    const results: FakeKeyCounts[] = new Array(jobs.length);
    let done = 0;
    let failed = false;
    const finished = (counts: FakeKeyCounts, id: number): void => {
      results[id] = counts;
      if (++done === jobs.length) resolve(results);
    };
    const failedWith = (error: Error): void => {
      failed = true;
      reject(error);
    };
    remoteResults = { resolve: finished, reject: failedWith };
    post({ kind: 'fake-jobs', jobs: remote, claims });
    const runOne = (): void => {
      if (failed) return;
      const id = Atomics.add(claims, 0, 1);
      if (id >= jobs.length) return;
      try {
        finished(runFakeKeyJob(jobs[id]!), id);
      } catch (error) {
        failedWith(error as Error);
        return;
      }
      // The main thread's results get their turn between batches.
      setImmediate(runOne);
    };
    setImmediate(runOne);
  });
}

scanCorpusAnyKeys({
  documents: documents(),
  keys: options.keys,
  specialTokenIds: options.specialTokenIds,
  fakeKeys: options.fakeKeys,
  expectedTokens: options.expectedTokens,
  alpha: options.alpha,
  minimumDose: options.minimumDose,
  runFakeKeyJobs,
  ...(options.fakeKeySeed === undefined ? {} : { fakeKeySeed: options.fakeKeySeed }),
}).then(
  (report) => post({ kind: 'report', report }),
  (error: Error) => post({ kind: 'failure', name: error?.name ?? 'Error', message: String(error?.message) }),
);
