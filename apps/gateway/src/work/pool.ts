/**
 * The work pool: tokenizing and scoring client text (detect, verify, scan, long prompts) runs on worker
 * threads (piscina), so no request holds the event loop that answers health checks and streams tokens.
 *
 * - Small inputs (at most `INLINE_WORK_LIMIT` code units and token ids) run inline: a round trip to a
 *   worker costs more than their work (bench/work-pool.ts measures both).
 * - Each task may work `budgetMs` on its thread; past that the thread is terminated (piscina replaces it)
 *   and the client gets 422 TM_ERR_WORK_BUDGET, which names the limit.
 * - At most one task per thread runs; up to `queueLimit` more wait, each at most `budgetMs`; beyond that
 *   the answer is 503 TM_ERR_OVERLOADED with Retry-After.
 */
import { availableParallelism } from 'node:os';
import { MessageChannel } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { GatewayError } from '../errors.ts';
import { compileWorkersInline } from '../worker-compile.ts';
import {
  createWorkContext,
  keyMaterialOf,
  signingKeyMaterialOf,
  type WorkContext,
  type WorkKeys,
  type WorkOutcome,
  type WorkTask,
  type WorkValues,
  workSize,
} from './tasks.ts';
import type { WorkerMessage, WorkerStart } from './worker.ts';

/**
 * Inputs up to this many UTF-16 code units plus token ids run inline: at worst about 0.4 ms of tokenizing (2 ms
 * with the earlier quadratic encoder), no more than a round trip to a thread (bench/work-pool.ts).
 */
export const INLINE_WORK_LIMIT = 1024;
/** A thread that has not started a task this long after it was handed one is treated as stuck. */
const THREAD_START_LIMIT_MS = 60_000;
/** Work threads run this much nicer than the event loop (Linux and macOS; ignored where unsupported). */
const WORKER_NICE_INCREMENT = 10;
/** Heap a worker thread may use; more ends its task with TM_ERR_WORK_BUDGET. */
const WORKER_HEAP_MB = 1536;

export interface WorkPoolOptions {
  readonly keys: WorkKeys;
  /** Worker threads; 0: one fewer than the cores, at least 2, at most 8. */
  readonly threads: number;
  readonly budgetMs: number;
  readonly queueLimit: number;
  /** Default `INLINE_WORK_LIMIT`; -1 sends every task to a thread. */
  readonly inlineLimit?: number;
  /** A thread failed outside any task (its replacement is started): for the log. */
  readonly onThreadError?: (error: unknown) => void;
}

export interface WorkPoolStats {
  readonly threads: number;
  readonly running: number;
  readonly queued: number;
}

type TaskOf<K extends WorkTask['kind']> = Extract<WorkTask, { kind: K }>;

export interface WorkPool {
  readonly threads: number;
  readonly budgetMs: number;
  /** The main thread's context: inline work, and the app's detector. */
  readonly context: WorkContext;
  run<K extends WorkTask['kind']>(task: TaskOf<K>): Promise<WorkValues[K]>;
  stats(): WorkPoolStats;
  /** Stops the threads; tasks in progress or waiting end with 503 TM_ERR_SHUTTING_DOWN. */
  close(): Promise<void>;
}

export function defaultWorkerThreads(): number {
  return Math.min(8, Math.max(2, availableParallelism() - 1));
}

/** From TypeScript sources the worker needs tsx (worker-source.cjs, which imports worker-source.mjs); built, it is plain worker.js. */
function workerEntry(): { filename: string; execArgv: string[] } {
  const fromSource = import.meta.url.endsWith('.ts');
  return fromSource
    ? { filename: new URL('./worker-source.cjs', import.meta.url).href, execArgv: ['--conditions=source'] }
    : { filename: new URL('./worker.js', import.meta.url).href, execArgv: [] };
}

function paramOf(task: WorkTask): string {
  switch (task.kind) {
    case 'encode':
      return task.param;
    case 'detect':
      return task.text !== undefined ? 'text' : 'tokens';
    case 'verify':
      return task.input.text !== undefined ? 'text' : 'tokens';
    case 'sign':
      return 'text';
    case 'scan':
      return 'documents';
  }
}

interface Waiting {
  readonly admit: () => void;
  readonly refuse: (error: GatewayError) => void;
  timer: NodeJS.Timeout | undefined;
}

export function createWorkPool(options: WorkPoolOptions): WorkPool {
  const threads = options.threads === 0 ? defaultWorkerThreads() : options.threads;
  const { budgetMs, queueLimit } = options;
  const inlineLimit = options.inlineLimit ?? INLINE_WORK_LIMIT;
  const context = createWorkContext(options.keys);
  const start: WorkerStart = {
    watermarkKey: keyMaterialOf(options.keys.watermarkKey),
    rootWatermarkKey: keyMaterialOf(options.keys.rootWatermarkKey),
    logSigningKey: signingKeyMaterialOf(options.keys.logSigningKey),
  };
  compileWorkersInline();
  const piscina = new Piscina({
    ...workerEntry(),
    minThreads: threads,
    maxThreads: threads,
    idleTimeout: Number.POSITIVE_INFINITY,
    // The pool below admits one task per thread, so piscina's own queue only holds tasks whose thread is
    // starting (after one was terminated).
    maxQueue: threads,
    concurrentTasksPerWorker: 1,
    workerData: start,
    // Below the event loop's thread: a busy machine still schedules health checks and tokens first.
    niceIncrement: WORKER_NICE_INCREMENT,
    resourceLimits: { maxOldGenerationSizeMb: WORKER_HEAP_MB },
  });
  // A thread that fails outside a task reports here; piscina starts another.
  piscina.on('error', (error: unknown) => options.onThreadError?.(error));
  const retryAfterSeconds = Math.max(1, Math.ceil(budgetMs / 1000));
  let running = 0;
  let closed = false;
  const waiting: Waiting[] = [];

  const shuttingDown = () =>
    new GatewayError(503, 'TM_ERR_SHUTTING_DOWN', 'the gateway is shutting down', { retryAfterSeconds });
  const overloaded = (reason: string) =>
    new GatewayError(503, 'TM_ERR_OVERLOADED', reason, { retryAfterSeconds });

  const admit = (): Promise<void> => {
    if (closed) return Promise.reject(shuttingDown());
    if (running < threads) {
      running++;
      return Promise.resolve();
    }
    if (waiting.length >= queueLimit) {
      return Promise.reject(
        overloaded(`all ${threads} work threads are busy and ${queueLimit} requests wait`),
      );
    }
    return new Promise<void>((resolve, reject) => {
      const entry: Waiting = { admit: resolve, refuse: reject, timer: undefined };
      entry.timer = setTimeout(() => {
        const index = waiting.indexOf(entry);
        if (index >= 0) waiting.splice(index, 1);
        reject(overloaded(`no work thread became free within ${budgetMs} ms`));
      }, budgetMs);
      waiting.push(entry);
    });
  };

  const release = () => {
    const next = waiting.shift();
    if (next === undefined) {
      running--;
      return;
    }
    clearTimeout(next.timer);
    next.admit();
  };

  const execute = async (task: WorkTask): Promise<WorkOutcome> => {
    const controller = new AbortController();
    const { port1, port2 } = new MessageChannel();
    let stopped: 'budget' | 'start' | null = null;
    let budgetTimer: NodeJS.Timeout | undefined;
    const startTimer = setTimeout(() => {
      stopped = 'start';
      controller.abort();
    }, THREAD_START_LIMIT_MS);
    port1.once('message', () => {
      clearTimeout(startTimer);
      budgetTimer = setTimeout(() => {
        stopped = 'budget';
        controller.abort();
      }, budgetMs);
    });
    try {
      const message: WorkerMessage = { task, started: port2 };
      return (await piscina.run(message, {
        transferList: [port2],
        signal: controller.signal,
      })) as WorkOutcome;
    } catch (error) {
      if (stopped === 'budget') {
        throw new GatewayError(
          422,
          'TM_ERR_WORK_BUDGET',
          `processing this request needs more than the ${budgetMs} ms of work the gateway allows one request (TRACEMARK_WORK_BUDGET_MS); send a shorter text or split it`,
          { param: paramOf(task), cause: error },
        );
      }
      if (stopped === 'start') throw overloaded('no work thread started the task in time');
      if ((error as { code?: unknown }).code === 'ERR_WORKER_OUT_OF_MEMORY') {
        throw new GatewayError(
          422,
          'TM_ERR_WORK_BUDGET',
          `processing this request needs more than the ${WORKER_HEAP_MB} MiB of memory the gateway allows one request; send a shorter text or split it`,
          { param: paramOf(task), cause: error },
        );
      }
      if (closed) throw shuttingDown();
      // Whatever failed in the thread is the gateway's fault (a 500), whatever its class: a SyntaxError or
      // RangeError from a thread must not read as the client's.
      throw new Error('a work thread failed', { cause: error });
    } finally {
      clearTimeout(startTimer);
      clearTimeout(budgetTimer);
      port1.close();
    }
  };

  const run = async <K extends WorkTask['kind']>(task: TaskOf<K>): Promise<WorkValues[K]> => {
    let outcome: WorkOutcome;
    if (task.kind !== 'scan' && workSize(task) <= inlineLimit) {
      outcome = await context.run(task);
    } else {
      await admit();
      try {
        outcome = await execute(task);
      } finally {
        release();
      }
    }
    if (!outcome.ok) {
      const { failure } = outcome;
      throw new GatewayError(failure.status, failure.code, failure.message, { param: failure.param });
    }
    return outcome.value as WorkValues[K];
  };

  return {
    threads,
    budgetMs,
    context,
    run,
    stats: () => ({ threads, running, queued: waiting.length }),
    async close() {
      if (closed) return;
      closed = true;
      for (const entry of waiting.splice(0)) {
        clearTimeout(entry.timer);
        entry.refuse(shuttingDown());
      }
      await piscina.destroy();
    },
  };
}
