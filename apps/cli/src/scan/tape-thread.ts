/**
 * `tracemark scan` on two threads at once. This thread reads and tokenizes the corpus and sends the
 * documents on; a worker thread (tape-worker.ts) builds the evidence tape from them as they come,
 * scores the true keys and assembles the report. Once the corpus is read this thread, idle otherwise,
 * computes the fake keys' trial values (from the tape, in shared memory) while the worker scores the
 * true keys, and both take the fake keys' batches. Tokenizing and building the tape, the two largest parts of a scan, then
 * overlap instead of following one another. The worker runs the library's `scanCorpusAnyKeys`
 * unchanged (its `calibrate` hook hands the fake keys out) on the same documents in the same order, so
 * the report is the one this thread alone gives (tape-thread.test.ts, test/scan.test.ts).
 *
 * Only tracemark keys go there (an engine's key carries its scorer, which cannot be sent to a thread);
 * a supervised scan sends its issued outputs, and the worker builds the window set from them.
 */
import { Worker } from 'node:worker_threads';
import type { WatermarkKey } from '@tracemark/core';
import {
  type AnyScanReport,
  type CalibrationRequest,
  type EvaluationTape,
  FAKE_KEY_JOB_PARTS,
  type FakeKeyCounts,
  fakeKeyTrials,
  filterWindowWidth,
  KernelArena,
  type KernelArenaShare,
  kernelArenaOf,
  lendScratch,
  prefaultKernel,
  runFakeKeyJob,
  type ScanDocument,
  splitFakeKeyJobs,
  type TapeMemory,
  TapeMemoryToucher,
  warmKernel,
} from '@tracemark/extraction';
import { compiledWorker, compileWorkersInline } from '../worker-threads.ts';

/** What the worker needs to scan (structured-cloneable). */
export interface TapeThreadOptions {
  readonly keys: readonly WatermarkKey[];
  readonly specialTokenIds: readonly number[];
  readonly fakeKeys: number;
  readonly fakeKeySeed?: string;
  readonly expectedTokens: number;
  readonly alpha: number;
  readonly minimumDose: number;
  /** The supervised filter's issued outputs (the worker builds the window set from them, for `keys`). */
  readonly issuedOutputs?: Uint32Array[];
  readonly issuedGreenFractions?: ReadonlyMap<string, number>;
  readonly pooledKeyIds?: readonly string[];
}

/**
 * A batch of documents: their tokens one after another, then their prompts', with two lengths a
 * document (its tokens, and its prompt's + 1, 0 for none). One buffer a batch moves to the worker.
 */
export interface DocumentBatch {
  readonly kind: 'documents';
  readonly tokens: Uint32Array;
  readonly lengths: Uint32Array;
  readonly sources: string[];
}

export type ToTapeWorker =
  | DocumentBatch
  | { readonly kind: 'end' }
  /**
   * A set's trial values, computed here (shared memory); `inArena`: they lie in the request's kernel
   * arena (the worker's fake keys read them there too).
   */
  | { readonly kind: 'trials'; readonly id: number; readonly trials: Uint32Array; readonly inArena: boolean }
  | {
      readonly kind: 'fake-result';
      readonly id: number;
      readonly job: number;
      readonly counts: FakeKeyCounts;
    }
  | { readonly kind: 'fake-failure'; readonly id: number; readonly message: string };

export type FromTapeWorker =
  /**
   * A set of fake keys to score with the worker: its trial values are computed here first (from the
   * request's tape) and sent back. `claims[0]` is the next batch to run, claimed by an atomic add on
   * either thread; the batches are `splitFakeKeyJobs(…, count, FAKE_KEY_JOB_PARTS)` on both.
   */
  | {
      readonly kind: 'calibrate';
      readonly id: number;
      readonly claims: Int32Array;
      readonly count: number;
      readonly threshold: number;
      readonly seed: string;
      readonly accelerate: boolean;
      readonly request: CalibrationRequest;
      /** Where the request's tape lies, for this thread's kernel to score it there (null: copied). */
      readonly arena: KernelArenaShare | null;
    }
  | { readonly kind: 'calibrating' }
  /** A tape's memory for this thread to take the page faults of once the corpus is sent (see below). */
  | { readonly kind: 'memory'; readonly memory: readonly TapeMemory[] }
  | { readonly kind: 'report'; readonly report: AnyScanReport }
  | { readonly kind: 'failure'; readonly name: string; readonly message: string };

/**
 * What a set's trial values are computed from on the main thread. The worker's tapes keep their
 * arrays in shared memory (`sharedMemory`), so that sending them copies little: at h = 1 the windows'
 * table (a few thousand windows), and the prompts' pairs. A LeftHash set's trials read the grouped
 * windows, offsets and tokens and nothing else: the rest is left out.
 */
export function trialTape(tape: EvaluationTape): EvaluationTape {
  if (tape.scheme !== 'lefthash' || tape.grouped === null) return tape;
  const none = new Uint32Array(0);
  const { windows, offsets, tokens } = tape.grouped;
  return {
    ...tape,
    windows: none,
    candidateWindow: none,
    candidateToken: none,
    promptWindow: none,
    promptToken: none,
    grouped: { windows, offsets, tokens, order: none, groupWindow: null },
  };
}

/** Pages of the tape's memory touched between messages (about 20 ms of page faults). */
const TOUCH_PAGES = 2048;

/** A batch is sent once it holds this many tokens or documents. */
const BATCH_TOKENS = 1 << 16;
const BATCH_DOCUMENTS = 512;

export interface TapeThread {
  /** Sends the documents to the worker as they come; the report once it has them all. */
  scan(documents: AsyncIterable<ScanDocument>, onCalibrating: () => void): Promise<AnyScanReport>;
  /** Stops the worker (an interrupted or failed scan); safe to call more than once. */
  close(): Promise<void>;
}

/** The failure as the same kind of error (RangeError, TypeError, Error) with the same message. */
function rebuilt(name: string, message: string): Error {
  if (name === 'RangeError') return new RangeError(message);
  if (name === 'TypeError') return new TypeError(message);
  return new Error(message);
}

/** Packs documents into batches (their token ids are valid already: the scan engine checked them). */
class Batcher {
  private documents: ScanDocument[] = [];
  private tokens = 0;

  /** Adds a document; a batch to send when this one filled it. */
  push(document: ScanDocument): DocumentBatch | null {
    this.documents.push(document);
    this.tokens += document.tokens.length + (document.prompt?.length ?? 0);
    return this.tokens >= BATCH_TOKENS || this.documents.length >= BATCH_DOCUMENTS ? this.take() : null;
  }

  /** The documents held, as one batch (null when none). */
  take(): DocumentBatch | null {
    const documents = this.documents;
    if (documents.length === 0) return null;
    const tokens = new Uint32Array(this.tokens);
    const lengths = new Uint32Array(2 * documents.length);
    let at = 0;
    documents.forEach((document, i) => {
      tokens.set(document.tokens, at);
      at += document.tokens.length;
      lengths[2 * i] = document.tokens.length;
    });
    documents.forEach((document, i) => {
      if (document.prompt === undefined) return;
      tokens.set(document.prompt, at);
      at += document.prompt.length;
      lengths[2 * i + 1] = document.prompt.length + 1;
    });
    this.documents = [];
    this.tokens = 0;
    return { kind: 'documents', tokens, lengths, sources: documents.map((document) => document.source) };
  }
}

/** The documents of a batch (views of its buffer), in order. */
export function* unpackBatch(batch: DocumentBatch): Generator<ScanDocument> {
  const count = batch.sources.length;
  let tokenAt = 0;
  let promptAt = 0;
  for (let i = 0; i < count; i++) promptAt += batch.lengths[2 * i]!;
  for (let i = 0; i < count; i++) {
    const length = batch.lengths[2 * i]!;
    const promptLength = batch.lengths[2 * i + 1]!;
    const tokens = batch.tokens.subarray(tokenAt, tokenAt + length);
    tokenAt += length;
    if (promptLength === 0) {
      yield { source: batch.sources[i]!, tokens };
      continue;
    }
    const prompt = batch.tokens.subarray(promptAt, promptAt + promptLength - 1);
    promptAt += promptLength - 1;
    yield { source: batch.sources[i]!, tokens, prompt };
  }
}

/**
 * What this thread's kernel holds to score a LeftHash set's fake keys, at most, when the worker's tape
 * has no kernel arena (a corpus too small for one, or no WebAssembly; with an arena the trial values are
 * made and counted there): the trial values it copies in (8 bytes a candidate), for as many candidates
 * as there are completion tokens, with the LeftHash keys of h ≥ 2; 0 without one. (At h = 1 the
 * candidates are far fewer than the tokens, and SelfHash's trials copy less, later: measured,
 * prefaulting for them changed nothing but the memory.)
 */
export function kernelBytesFor(keys: readonly WatermarkKey[], tokens: number): number {
  const wide = keys.some((key) => key.scheme.name === 'lefthash' && filterWindowWidth(key.scheme) >= 2);
  return wide ? 8 * tokens + (1 << 20) : 0;
}

/**
 * The scratch a SelfHash set's trial values take on this thread (see `lendScratch`): four arrays of a
 * word per corpus position (the pairs' first occurrences and their anchors), with SelfHash keys; none
 * without.
 */
export function scratchArraysFor(keys: readonly WatermarkKey[], positions: number): Uint32Array[] {
  if (!keys.some((key) => key.scheme.name === 'selfhash')) return [];
  return Array.from({ length: 4 }, () => new Uint32Array(positions));
}

/** The compiled worker; null when running from TypeScript sources. */
export function tapeWorkerUrl(): URL | null {
  return compiledWorker('scan/tape-worker.js');
}

/**
 * Starts the worker now (it loads its modules while this thread reads the first documents); null
 * when running from TypeScript sources, where there is no compiled worker to start (`url`, the
 * compiled tape-worker.js, and `execArgv`, the worker's Node options instead of this thread's, are for
 * tests that run from sources).
 */
export function startTapeThread(
  options: TapeThreadOptions,
  url: URL | null = tapeWorkerUrl(),
  execArgv?: string[],
): TapeThread | null {
  if (url === null) return null;
  compileWorkersInline();
  const worker = new Worker(url, { workerData: options, ...(execArgv === undefined ? {} : { execArgv }) });
  let failure: Error | null = null;
  let settle: { resolve: (report: AnyScanReport) => void; reject: (error: Error) => void } | null = null;
  let onCalibrating = (): void => undefined;
  let closed = false;
  /** While this thread waits for the worker's request: the tape's memory, then see {@link kernelBytesFor}. */
  let prefaulting = false;
  const toucher = new TapeMemoryToucher();
  let trialsInArena = false;
  /** Scratch for a SelfHash set's trial values, touched while this thread waits (see {@link scratchArraysFor}). */
  let scratch: Uint32Array[] = [];
  const fail = (error: Error): void => {
    failure ??= error;
    settle?.reject(failure);
  };
  worker.on('message', (message: FromTapeWorker) => {
    if (message.kind === 'report') settle?.resolve(message.report);
    else if (message.kind === 'failure') fail(rebuilt(message.name, message.message));
    else if (message.kind === 'calibrating') onCalibrating();
    else if (message.kind === 'memory') {
      toucher.add(message.memory);
      // Trial values made in the tape's arena are counted there: this thread's kernel memory stays unused.
      if (message.memory.some((entry) => entry.trials === true)) trialsInArena = true;
    } else if (message.kind === 'calibrate') setImmediate(() => calibrateHere(message));
  });
  /** This thread's part of a set of fake keys (see tape-worker.ts). */
  const calibrateHere = (message: Extract<FromTapeWorker, { kind: 'calibrate' }>): void => {
    prefaulting = false;
    if (closed) return;
    const { id, claims, count, threshold, seed, accelerate } = message;
    let trials: Uint32Array;
    try {
      const { tape, scheme, tokenizer } = message.request;
      // The trial values are then made in the arena's shared memory and sent on as they are.
      if (message.arena !== null && tape.grouped !== null) {
        const { windows, offsets, tokens } = tape.grouped;
        KernelArena.adopt(message.arena, [windows, offsets, tokens]);
      }
      // For the first SelfHash set (the trial tape holds them while its values are made; then they go).
      if (scratch.length > 0 && tape.scheme === 'selfhash') {
        lendScratch(tape, scratch);
        scratch = [];
      }
      trials = fakeKeyTrials(tape, scheme, tokenizer, seed, accelerate, true);
      const inArena = kernelArenaOf(trials) !== null;
      worker.postMessage({ kind: 'trials', id, trials, inArena } satisfies ToTapeWorker);
    } catch (error) {
      worker.postMessage({
        kind: 'fake-failure',
        id,
        message: (error as Error).message,
      } satisfies ToTapeWorker);
      return;
    }
    const jobs = splitFakeKeyJobs({ trials, threshold, seed, accelerate }, count, FAKE_KEY_JOB_PARTS);
    // One batch at a time, letting messages and signals through between them.
    const runOne = (): void => {
      if (closed) return;
      const job = Atomics.add(claims, 0, 1);
      if (job >= jobs.length) return;
      let reply: ToTapeWorker;
      try {
        reply = { kind: 'fake-result', id, job, counts: runFakeKeyJob(jobs[job]!) };
      } catch (error) {
        reply = { kind: 'fake-failure', id, message: (error as Error).message };
      }
      worker.postMessage(reply);
      setImmediate(runOne);
    };
    runOne();
  };
  worker.on('error', fail);
  worker.on('exit', (code) => {
    fail(
      new Error(
        closed ? "the scan's tape thread was closed" : `the scan's tape thread stopped (exit code ${code})`,
      ),
    );
  });
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    scratch = [];
    await worker.terminate();
  };
  return {
    close,
    scan: async (documents, calibrating) => {
      if (closed) throw new Error("the scan's tape thread was closed");
      onCalibrating = calibrating;
      const report = new Promise<AnyScanReport>((resolve, reject) => {
        settle = { resolve, reject };
        if (failure !== null) reject(failure);
      });
      // Seen by the caller; until then the documents are still being sent.
      report.catch(() => undefined);
      const batcher = new Batcher();
      const send = (batch: DocumentBatch | null): void => {
        if (failure !== null) throw failure;
        if (batch !== null)
          worker.postMessage(batch, [
            batch.tokens.buffer as ArrayBuffer,
            batch.lengths.buffer as ArrayBuffer,
          ]);
      };
      let tokens = 0;
      let positions = 0;
      for await (const document of documents) {
        tokens += document.tokens.length;
        positions += document.tokens.length + (document.prompt?.length ?? 0);
        send(batcher.push(document));
      }
      send(batcher.take());
      worker.postMessage({ kind: 'end' } satisfies ToTapeWorker);
      // Idle until the worker has its tape: the kernel this thread will score fake keys with loads now.
      // Then, a slice at a time until the worker's request comes, this thread takes the page faults of
      // the memory the worker's tape will write as it numbers its windows and scores its keys (handed
      // off: the worker touches it between batches as far as the documents reach, this thread the rest),
      // then, without a kernel arena, those of the memory it will copy the trial values to.
      warmKernel();
      const bytes = trialsInArena ? 0 : kernelBytesFor(options.keys, tokens);
      // Last, the scratch of a SelfHash set's trial values here, lent to its tape when it comes.
      scratch = options.fakeKeys > 0 ? scratchArraysFor(options.keys, positions) : [];
      const scratchToucher = new TapeMemoryToucher();
      scratchToucher.add(scratch.map((array) => ({ array, wordsPerPosition: 1, group: 0 })));
      prefaulting = true;
      let tapeTouched = false;
      let kernelTouched = bytes === 0;
      const prefault = (): void => {
        if (!prefaulting || closed) return;
        if (!tapeTouched) tapeTouched = toucher.step(TOUCH_PAGES, positions);
        else if (!kernelTouched) kernelTouched = prefaultKernel(bytes);
        else if (scratchToucher.step(TOUCH_PAGES, positions)) return;
        setImmediate(prefault);
      };
      setImmediate(prefault);
      return report;
    },
  };
}
