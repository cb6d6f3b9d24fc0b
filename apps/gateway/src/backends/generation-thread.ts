/**
 * A generation thread: the embedded model and the gateway's sampler on a thread of their own, so the event
 * loop that answers HTTP, authenticates, records issuance and monitors accounts runs beside generation
 * rather than between its tokens (threaded-embedded.ts is the other side). Each choice is the embedded
 * backend's `generate` (embedded.ts) with the request rebuilt here: the same seed, key and settings give the
 * same tokens as on the event loop's thread.
 *
 * Messages in: `key` (a watermark key's material, once per key and thread; wiped once read), `forget` (a
 * key not used for a while), `generate`, `cancel`. Out: `ready` or `failed` once, then `steps`: batches of the steps of one or more choices, each
 * flushed at most `FLUSH_MS` after its first step, and the end or error of a choice.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { createRandom, createWatermarker, type Watermarker, type WatermarkKey } from '@tracemark/core';
import type { TokenLogprob } from '../generation/distribution.ts';
import { type KeyMaterial, keyFromMaterial } from '../work/tasks.ts';
import { createEmbeddedBackend } from './embedded.ts';
import type { GeneratedStep } from './types.ts';

export interface GenerationThreadStart {
  readonly tokenizerId: string;
  readonly modelId: string;
}

export type ToGenerationThread =
  | {
      readonly type: 'key';
      /** The main side's number for this watermarker (threaded-embedded.ts `refOf`). */
      readonly ref: number;
      readonly material: KeyMaterial;
      readonly specialTokenIds: readonly number[];
    }
  | {
      readonly type: 'generate';
      readonly id: number;
      readonly ref: number;
      readonly promptTokens: Uint32Array;
      readonly maxTokens: number;
      readonly temperature: number;
      readonly topP: number;
      readonly topLogprobs: number | null;
      readonly seed: number;
    }
  | { readonly type: 'cancel'; readonly id: number }
  /** The main side keeps at most KEYS_PER_THREAD keys here (threaded-embedded.ts). */
  | { readonly type: 'forget'; readonly ref: number };

/** The steps of one choice since the last batch, as parallel arrays (cheaper to copy than objects). */
export interface StepBatch {
  readonly id: number;
  readonly tokens: number[];
  readonly greenProbability: number[];
  readonly spikeEntropy: number[];
  /** Only when the choice asked for logprobs. */
  readonly logprobs: (number | null)[] | null;
  readonly tops: (readonly TokenLogprob[] | null)[] | null;
  /** The choice ended (the model stopped or max tokens): no more steps. */
  done: boolean;
  /** The choice failed here: the message of the error. */
  error: string | null;
}

export type FromGenerationThread =
  | { readonly type: 'ready'; readonly order: number }
  | { readonly type: 'failed'; readonly message: string }
  | { readonly type: 'steps'; readonly batches: readonly StepBatch[] };

/** A batch waits at most this long (milliseconds) for more steps before it is posted. */
const FLUSH_MS = 1;

const port = parentPort;
if (port === null) throw new Error('generation-thread: expected to run on a worker thread');
const start = workerData as GenerationThreadStart;

const watermarkers = new Map<number, Watermarker>();
const running = new Map<number, AbortController>();
let outbox = new Map<number, StepBatch>();
let outboxSince = -1;
let flushScheduled = false;

function flush(): void {
  flushScheduled = false;
  outboxSince = -1;
  if (outbox.size === 0) return;
  const batches = [...outbox.values()];
  outbox = new Map();
  port!.postMessage({ type: 'steps', batches } satisfies FromGenerationThread);
}

function batchOf(id: number, withLogprobs: boolean): StepBatch {
  let batch = outbox.get(id);
  if (batch === undefined) {
    batch = {
      id,
      tokens: [],
      greenProbability: [],
      spikeEntropy: [],
      logprobs: withLogprobs ? [] : null,
      tops: withLogprobs ? [] : null,
      done: false,
      error: null,
    };
    outbox.set(id, batch);
    if (outboxSince < 0) outboxSince = performance.now();
    if (!flushScheduled) {
      flushScheduled = true;
      setImmediate(flush);
    }
  }
  return batch;
}

function push(id: number, step: GeneratedStep, withLogprobs: boolean): void {
  const batch = batchOf(id, withLogprobs);
  batch.tokens.push(step.token);
  batch.greenProbability.push(step.strength.greenProbability);
  batch.spikeEntropy.push(step.strength.spikeEntropy);
  batch.logprobs?.push(step.logprob);
  batch.tops?.push(step.top);
  // Many choices share this thread: a batch is posted once it is FLUSH_MS old, not only when the thread
  // next yields to its event loop (which, with every choice taking its turn, can be tens of milliseconds).
  if (performance.now() - outboxSince >= FLUSH_MS) flush();
}

try {
  const backend = await createEmbeddedBackend({ tokenizerId: start.tokenizerId, modelId: start.modelId });

  const run = async (message: Extract<ToGenerationThread, { type: 'generate' }>): Promise<void> => {
    const controller = new AbortController();
    running.set(message.id, controller);
    const withLogprobs = message.topLogprobs !== null;
    try {
      const watermarker = watermarkers.get(message.ref);
      if (watermarker === undefined) throw new Error(`no key material for watermarker ${message.ref}`);
      for await (const step of backend.generate({
        model: start.modelId,
        promptTokens: message.promptTokens,
        messages: null,
        maxTokens: message.maxTokens,
        temperature: message.temperature,
        topP: message.topP,
        random: createRandom(message.seed),
        seed: message.seed,
        watermarker,
        signal: controller.signal,
        topLogprobs: message.topLogprobs,
      })) {
        if (controller.signal.aborted) return;
        push(message.id, step, withLogprobs);
      }
      if (!controller.signal.aborted) batchOf(message.id, withLogprobs).done = true;
    } catch (error) {
      batchOf(message.id, withLogprobs).error = error instanceof Error ? error.message : String(error);
    } finally {
      running.delete(message.id);
    }
  };

  port.on('message', (message: ToGenerationThread) => {
    switch (message.type) {
      case 'key': {
        const key = keyFromMaterial(message.material) as WatermarkKey;
        message.material.secret.fill(0);
        watermarkers.set(message.ref, createWatermarker(key, { specialTokenIds: message.specialTokenIds }));
        return;
      }
      case 'generate':
        void run(message);
        return;
      case 'forget':
        watermarkers.delete(message.ref);
        return;
      case 'cancel': {
        running.get(message.id)?.abort();
        // what it made after the choice was cancelled is not wanted
        outbox.delete(message.id);
        return;
      }
    }
  });
  port.postMessage({ type: 'ready', order: Number(backend.describe().order) } satisfies FromGenerationThread);
} catch (error) {
  port.postMessage({
    type: 'failed',
    message: error instanceof Error ? error.message : String(error),
  } satisfies FromGenerationThread);
}
