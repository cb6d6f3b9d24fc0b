/**
 * The embedded backend on generation threads: the n-gram model and the sampler run on threads of their own
 * (generation-thread.ts), and this side turns their steps back into the `Backend` interface. The event loop
 * then does only the gateway's own work per token (text assembly, SSE, issuance, monitoring) beside
 * generation instead of between its tokens, and health checks and other requests are answered while every
 * thread generates.
 *
 * A choice goes to the thread with the fewest choices running; a thread interleaves its choices as the
 * event loop's embedded backend does (a turn of about 2 ms each). The seed travels with the choice and the
 * key's material once per key and thread, so a choice's tokens, strengths and logprobs are those the
 * embedded backend gives on the event loop's thread. A thread that stops (it crashed or ran out of memory)
 * fails its running choices with TM_ERR_INTERNAL and is started again.
 */
import { Worker } from 'node:worker_threads';
import type { Watermarker } from '@tracemark/core';
import { GatewayError } from '../errors.ts';
import { keyMaterialOf } from '../work/tasks.ts';
import { compileWorkersInline } from '../worker-compile.ts';
import { describeEmbedded, embeddedParts } from './embedded.ts';
import type { FromGenerationThread, GenerationThreadStart, ToGenerationThread } from './generation-thread.ts';
import type { Backend, ChoiceRequest, GeneratedStep } from './types.ts';

export interface ThreadedEmbeddedOptions {
  readonly tokenizerId: string;
  readonly modelId: string;
  /** Generation threads (at least 1). */
  readonly threads: number;
  /** A thread stopped outside a choice, or could not start again: for the log. */
  readonly onThreadError?: (error: Error) => void;
  /**
   * The thread's script (default: generation-thread.js, or generation-thread-source.mjs from sources). The
   * fault tests start one that runs it and stops the thread on cue.
   */
  readonly threadEntry?: ThreadEntry;
}

export interface ThreadEntry {
  readonly url: URL;
  readonly execArgv: readonly string[];
}

interface Choice {
  readonly steps: GeneratedStep[];
  head: number;
  done: boolean;
  error: Error | null;
  wake: (() => void) | null;
}

interface GenerationThread {
  readonly worker: Worker;
  /** Resolves with the model's order once the thread has loaded it. */
  readonly ready: Promise<number>;
  /** Watermarkers (by {@link refOf}) this thread has, least recently used first (at most KEYS_PER_THREAD). */
  readonly keys: Set<number>;
  readonly choices: Map<number, Choice>;
  /** It loaded the model (a thread that never did is started again by the next choice, not at once). */
  started: boolean;
  stopped: boolean;
}

/** From TypeScript sources the thread needs tsx (generation-thread-source.mjs); built, it is plain JavaScript. */
function defaultThreadEntry(): ThreadEntry {
  return import.meta.url.endsWith('.ts')
    ? { url: new URL('./generation-thread-source.mjs', import.meta.url), execArgv: ['--conditions=source'] }
    : { url: new URL('./generation-thread.js', import.meta.url), execArgv: [] };
}

/**
 * Keys a thread keeps (each about 1 MiB there): with per-account keys a thread would otherwise keep one
 * per account it ever served. The least recently used is forgotten, and sent again when needed.
 */
export const KEYS_PER_THREAD = 64;
/** A thread that could not load the model is tried again at most this often (ms), by a choice. */
const RESTART_INTERVAL_MS = 1000;

const stoppedError = () =>
  new GatewayError(500, 'TM_ERR_INTERNAL', 'the generation thread stopped while generating this completion');

/**
 * A number for each watermarker a choice uses, by object: a key id names the secret only, and two
 * watermarkers of one secret may differ in scheme or special tokens.
 */
const refs = new WeakMap<Watermarker, number>();
let nextRef = 1;
function refOf(watermarker: Watermarker): number {
  let ref = refs.get(watermarker);
  if (ref === undefined) {
    ref = nextRef++;
    refs.set(watermarker, ref);
  }
  return ref;
}

const couldNotStart = (cause: unknown) =>
  new GatewayError(500, 'TM_ERR_INTERNAL', 'the generation thread could not start', { cause });

const shuttingDown = () => new GatewayError(503, 'TM_ERR_SHUTTING_DOWN', 'the gateway is shutting down');

export async function createThreadedEmbeddedBackend(options: ThreadedEmbeddedOptions): Promise<Backend> {
  const parts = embeddedParts(options.tokenizerId, options.modelId);
  if (!Number.isInteger(options.threads) || options.threads < 1) {
    throw new RangeError(`threads: expected a positive integer, got ${String(options.threads)}`);
  }
  const start: GenerationThreadStart = { tokenizerId: options.tokenizerId, modelId: options.modelId };
  let closed = false;
  let nextId = 1;

  const startThread = (): GenerationThread => {
    const entry = options.threadEntry ?? defaultThreadEntry();
    compileWorkersInline();
    const worker = new Worker(entry.url, { workerData: start, execArgv: [...entry.execArgv] });
    const thread: GenerationThread = {
      worker,
      ready: new Promise<number>((resolve, reject) => {
        worker.once('error', reject);
        worker.once('exit', (code) =>
          reject(new Error(`the generation thread exited (${code}) while starting`)),
        );
        worker.on('message', (message: FromGenerationThread) => {
          if (message.type === 'ready') resolve(message.order);
          else if (message.type === 'failed') reject(new Error(message.message));
        });
      }),
      keys: new Set(),
      choices: new Map(),
      started: false,
      stopped: false,
    };
    thread.ready.then(
      () => {
        thread.started = true;
        holdProcess(thread);
      },
      // whoever awaits `ready` sees the error
      () => undefined,
    );
    worker.on('message', (message: FromGenerationThread) => {
      if (message.type !== 'steps') return;
      for (const batch of message.batches) {
        const choice = thread.choices.get(batch.id);
        if (choice === undefined) continue;
        for (let i = 0; i < batch.tokens.length; i++) {
          choice.steps.push({
            token: batch.tokens[i]!,
            strength: { greenProbability: batch.greenProbability[i]!, spikeEntropy: batch.spikeEntropy[i]! },
            logprob: batch.logprobs === null ? null : batch.logprobs[i]!,
            top: batch.tops === null ? null : batch.tops[i]!,
          });
        }
        if (batch.done) choice.done = true;
        if (batch.error !== null) choice.error = new Error(batch.error);
        choice.wake?.();
      }
    });
    // Before it started, `ready` carries the error (to whoever started it).
    worker.on('error', (error) => {
      if (thread.started) options.onThreadError?.(error);
    });
    worker.on('exit', () => {
      thread.stopped = true;
      for (const choice of thread.choices.values()) {
        choice.error ??= stoppedError();
        choice.wake?.();
      }
      if (closed || !thread.started) return;
      options.onThreadError?.(new Error('a generation thread stopped; starting another'));
      replace(thread);
    });
    return thread;
  };

  // An idle thread does not keep the process alive (the server does, and close() ends the threads); one
  // with choices running does, so that a caller awaiting steps is not left behind by an exiting process.
  const holdProcess = (thread: GenerationThread) => {
    if (thread.started && thread.choices.size === 0) thread.worker.unref();
    else thread.worker.ref();
  };
  const threads: GenerationThread[] = [];
  let lastRestart = 0;
  const replace = (thread: GenerationThread): GenerationThread => {
    lastRestart = performance.now();
    const replacement = startThread();
    const index = threads.indexOf(thread);
    if (index >= 0) threads[index] = replacement;
    replacement.ready.catch((error: Error) => options.onThreadError?.(error));
    return replacement;
  };
  for (let i = 0; i < options.threads; i++) threads.push(startThread());
  let order: number;
  try {
    [order] = await Promise.all(threads.map((thread) => thread.ready));
  } catch (error) {
    closed = true;
    await Promise.all(threads.map((thread) => thread.worker.terminate()));
    throw error;
  }

  const post = (thread: GenerationThread, message: ToGenerationThread, transfer: ArrayBuffer[] = []) => {
    if (!thread.stopped) thread.worker.postMessage(message, transfer);
  };

  /**
   * The running thread with the fewest choices; else one still starting; else (none could load the model)
   * a new try, at most every RESTART_INTERVAL_MS.
   */
  const pick = (): GenerationThread | null => {
    let best: GenerationThread | null = null;
    for (const thread of threads) {
      if (thread.started && !thread.stopped && (best === null || thread.choices.size < best.choices.size))
        best = thread;
    }
    if (best !== null) return best;
    const starting = threads.find((thread) => !thread.stopped);
    if (starting !== undefined) return starting;
    return performance.now() - lastRestart >= RESTART_INTERVAL_MS ? replace(threads[0]!) : null;
  };

  async function* generate(request: ChoiceRequest): AsyncGenerator<GeneratedStep, void, undefined> {
    if (closed) throw shuttingDown();
    const thread = pick();
    if (thread === null) throw couldNotStart(new Error('the last start failed less than a second ago'));
    // Counted on its thread at once, so that choices arriving together spread over the threads.
    const id = nextId++;
    const choice: Choice = { steps: [], head: 0, done: false, error: null, wake: null };
    thread.choices.set(id, choice);
    holdProcess(thread);
    const wake = () => choice.wake?.();
    request.signal.addEventListener('abort', wake, { once: true });
    let posted = false;
    try {
      try {
        await thread.ready;
      } catch (error) {
        throw couldNotStart(error);
      }
      if (closed) throw shuttingDown();
      if (request.signal.aborted) return;
      sendKey(thread, request.watermarker);
      // A copy of its own, moved (a view's whole buffer would be cloned)
      const promptTokens = Uint32Array.from(request.promptTokens);
      post(
        thread,
        {
          type: 'generate',
          id,
          ref: refOf(request.watermarker),
          promptTokens,
          maxTokens: request.maxTokens,
          temperature: request.temperature,
          topP: request.topP,
          topLogprobs: request.topLogprobs,
          seed: request.seed,
        },
        [promptTokens.buffer],
      );
      posted = true;
      for (;;) {
        if (request.signal.aborted) return;
        if (choice.head < choice.steps.length) {
          const step = choice.steps[choice.head]!;
          choice.head++;
          if (choice.head === choice.steps.length) {
            choice.steps.length = 0;
            choice.head = 0;
          }
          yield step;
          continue;
        }
        if (choice.error !== null) throw choice.error;
        if (choice.done) return;
        await new Promise<void>((resolve) => {
          choice.wake = resolve;
        });
        choice.wake = null;
      }
    } finally {
      request.signal.removeEventListener('abort', wake);
      thread.choices.delete(id);
      if (!thread.stopped) holdProcess(thread);
      // Cancelled (the client left, a stop sequence, the deadline): the thread stops making its tokens.
      if (posted && !choice.done && choice.error === null) post(thread, { type: 'cancel', id });
    }
  }

  /** The watermarker's key material, unless the thread has it (a thread keeps KEYS_PER_THREAD). */
  const sendKey = (thread: GenerationThread, watermarker: Watermarker): void => {
    const ref = refOf(watermarker);
    if (thread.keys.delete(ref)) {
      thread.keys.add(ref);
      return;
    }
    thread.keys.add(ref);
    const material = keyMaterialOf(watermarker.key);
    post(thread, { type: 'key', ref, material, specialTokenIds: [...watermarker.specialTokenIds] });
    // the thread has its copy
    material.secret.fill(0);
    if (thread.keys.size > KEYS_PER_THREAD) {
      // A choice that runs with it keeps its own reference there.
      const oldest = thread.keys.values().next().value!;
      thread.keys.delete(oldest);
      post(thread, { type: 'forget', ref: oldest });
    }
  };

  return {
    ...parts,
    generate,
    describe: () => describeEmbedded(options.modelId, order, parts.tokenizer.id, threads.length),
    close: async () => {
      closed = true;
      for (const thread of threads) {
        for (const choice of thread.choices.values()) {
          choice.error ??= shuttingDown();
          choice.wake?.();
        }
      }
      await Promise.all(threads.map((thread) => thread.worker.terminate()));
    },
  };
}
