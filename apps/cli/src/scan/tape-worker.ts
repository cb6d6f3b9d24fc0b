/**
 * The worker thread of tape-thread.ts: builds the evidence tape from the documents the main thread
 * sends, as they come, and scans them with `scanCorpusAnyKeys`. The fake keys are shared with the main
 * thread, idle once the corpus is read: it computes a set's trial values while this thread scores the
 * true keys, then both threads take the set's batches of fake keys from one atomic counter.
 */
import { parentPort, workerData } from 'node:worker_threads';
import {
  type CalibrationRequest,
  FAKE_KEY_JOB_PARTS,
  type FakeKeyCounts,
  IssuedWindowSet,
  kernelArenaOf,
  runFakeKeyJob,
  type ScanDocument,
  scanCorpusAnyKeys,
  splitFakeKeyJobs,
  TapeMemoryToucher,
} from '@tracemark/extraction';
import {
  type DocumentBatch,
  type FromTapeWorker,
  type TapeThreadOptions,
  type ToTapeWorker,
  trialTape,
  unpackBatch,
} from './tape-thread.ts';

const port = parentPort!;
const options = workerData as TapeThreadOptions;
const post = (message: FromTapeWorker): void => port.postMessage(message);

const batches: DocumentBatch[] = [];
let ended = false;
let wake: (() => void) | null = null;

/** A set of fake keys being scored: what the main thread's messages about it go to. */
interface Calibration {
  trials(trials: Uint32Array, inArena: boolean): void;
  result(job: number, counts: FakeKeyCounts): void;
  failure(error: Error): void;
}
const calibrations = new Map<number, Calibration>();

port.on('message', (message: ToTapeWorker) => {
  if (message.kind === 'documents') batches.push(message);
  else if (message.kind === 'end') ended = true;
  else if (message.kind === 'trials') calibrations.get(message.id)?.trials(message.trials, message.inArena);
  else if (message.kind === 'fake-result') calibrations.get(message.id)?.result(message.job, message.counts);
  else if (message.kind === 'fake-failure') calibrations.get(message.id)?.failure(new Error(message.message));
  wake?.();
  wake = null;
});

/**
 * The memory the tape's numbering and the kernels write once the documents end (EvidenceTape
 * `handOff`): while this thread waits for documents, it takes those pages' faults itself, as far as the
 * documents so far reach; the main thread touches what is left once it has sent them all.
 */
const idleToucher = new TapeMemoryToucher();
/** Pages touched between looks at the message queue (a few milliseconds). */
const IDLE_PAGES = 256;
/** Corpus positions (tokens and prompt tokens) of the documents handed to the scan so far. */
let received = 0;

async function* documents(): AsyncGenerator<ScanDocument> {
  for (;;) {
    const batch = batches.shift();
    if (batch !== undefined) {
      for (const document of unpackBatch(batch)) {
        received += document.tokens.length + (document.prompt?.length ?? 0);
        yield document;
      }
      continue;
    }
    if (ended) return;
    await new Promise<void>((resolve) => {
      wake = resolve;
      const touch = (): void => {
        if (wake === resolve && !idleToucher.step(IDLE_PAGES, received)) setImmediate(touch);
      };
      setImmediate(touch);
    });
  }
}

let calibrationIds = 0;

/**
 * Scores one set of fake keys on both threads. The main thread computes the trial values (it gets the
 * tape, in shared memory) while this one scores the true keys; then each thread claims the next
 * unclaimed batch whenever it is free (this one once the true keys are scored): a claim is an atomic
 * add, so neither waits on the other's messages.
 */
function calibrate(request: CalibrationRequest): Promise<FakeKeyCounts[]> {
  const id = calibrationIds++;
  if (id === 0) post({ kind: 'calibrating' });
  const claims = new Int32Array(new SharedArrayBuffer(4));
  const { threshold, seed, accelerate, count } = request;
  const total = splitFakeKeyJobs(
    { trials: new Uint32Array(0), threshold, seed, accelerate },
    count,
    FAKE_KEY_JOB_PARTS,
  ).length;
  return new Promise((resolve, reject) => {
    const results: FakeKeyCounts[] = [];
    let done = 0;
    let failed = false;
    const finished = (job: number, counts: FakeKeyCounts): void => {
      results[job] = counts;
      if (++done === total) {
        calibrations.delete(id);
        resolve(results);
      }
    };
    const failure = (error: Error): void => {
      failed = true;
      calibrations.delete(id);
      reject(error);
    };
    const runHere = (received: Uint32Array, inArena: boolean): void => {
      // In the tape's arena: viewed through this thread's buffer of it, so that the fake keys' kernel
      // here reads them where they are (the message's buffer is another object for the same memory).
      const arena =
        inArena && request.tape.grouped !== null ? kernelArenaOf(request.tape.grouped.tokens) : null;
      const trials = arena?.view(received) ?? received;
      const jobs = splitFakeKeyJobs({ trials, threshold, seed, accelerate }, count, FAKE_KEY_JOB_PARTS);
      const runOne = (): void => {
        if (failed) return;
        const job = Atomics.add(claims, 0, 1);
        if (job >= jobs.length) return;
        try {
          finished(job, runFakeKeyJob(jobs[job]!));
        } catch (error) {
          failure(error as Error);
          return;
        }
        // The main thread's results get their turn between batches.
        setImmediate(runOne);
      };
      setImmediate(runOne);
    };
    calibrations.set(id, { trials: runHere, result: finished, failure });
    post({
      kind: 'calibrate',
      id,
      claims,
      count,
      threshold,
      seed,
      accelerate,
      request: { ...request, tape: trialTape(request.tape) },
      // The tape's kernel arena, where the main thread's kernel computes the trial values in place.
      arena:
        request.tape.grouped === null ? null : (kernelArenaOf(request.tape.grouped.tokens)?.share() ?? null),
    });
  });
}

// The supervised filter's window set, built from the issued outputs as the main thread would.
const issued =
  options.issuedOutputs === undefined
    ? Promise.resolve(undefined)
    : IssuedWindowSet.fromOutputs(options.issuedOutputs, {
        schemes: options.keys.map((key) => key.scheme),
        specialTokenIds: options.specialTokenIds,
      });

issued
  .then((issuedWindows) =>
    scanCorpusAnyKeys({
      documents: documents(),
      keys: options.keys,
      specialTokenIds: options.specialTokenIds,
      fakeKeys: options.fakeKeys,
      expectedTokens: options.expectedTokens,
      sharedMemory: true,
      // The main thread, idle once it has sent the documents, takes the page faults of the tape's memory.
      onTapeMemory: (memory) => {
        idleToucher.add(memory);
        post({ kind: 'memory', memory });
      },
      alpha: options.alpha,
      minimumDose: options.minimumDose,
      calibrate,
      ...(options.fakeKeySeed === undefined ? {} : { fakeKeySeed: options.fakeKeySeed }),
      ...(issuedWindows === undefined ? {} : { issuedWindows }),
      ...(options.issuedGreenFractions === undefined
        ? {}
        : { issuedGreenFractions: options.issuedGreenFractions }),
      ...(options.pooledKeyIds === undefined ? {} : { pooledKeyIds: options.pooledKeyIds }),
    }),
  )
  .then(
    (report) => post({ kind: 'report', report }),
    (error: Error) =>
      post({ kind: 'failure', name: error?.name ?? 'Error', message: String(error?.message) }),
  );
