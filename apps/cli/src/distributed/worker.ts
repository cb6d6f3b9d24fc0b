/**
 * A worker of the distributed scan: a separate process that takes BullMQ jobs of any run. A map job
 * reads one shard into per-partition fragments; a reduce job merges one partition's fragments and
 * scores the true keys and the fake keys on it. Results go to Redis under the job's own keys, so a
 * job run twice (its worker died, BullMQ re-ran it) writes the same bytes twice.
 */
import { open } from 'node:fs/promises';
import { hostname } from 'node:os';
import { PassThrough } from 'node:stream';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import type { WatermarkKey } from '@tracemark/core';
import {
  IssuedWindowSet,
  mergePartition,
  type ShardFragment,
  ShardTape,
  scorePartition,
} from '@tracemark/extraction';
import { getTokenizer, isTokenizerId } from '@tracemark/tokenizers';
import { type Job, UnrecoverableError, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { readInputs } from '../inputs.ts';
import { createScanEngine, type ScanEngine } from '../scan/engine.ts';
import { packBlob, unpackBlob } from './codec.ts';
import {
  type MapJobData,
  type PartitionMeta,
  QUEUE_NAME,
  RESULT_TTL_SECONDS,
  type ReduceJobData,
  type RunConfig,
  runKeys,
  SHARD_SOURCE,
  type ShardMeta,
  unpackOutputs,
} from './protocol.ts';

export interface ScanWorkerOptions {
  readonly redisUrl: string;
  /** The keys this worker can score (reduce jobs of runs whose keys it lacks fail, naming the key id). */
  readonly keys: readonly WatermarkKey[];
  /** Jobs at once (default 1: a job uses one core). */
  readonly concurrency?: number;
  /** BullMQ's lock: a worker silent this long is presumed dead and its job re-run (ms, default 60 000). */
  readonly lockDuration?: number;
  /** One line per job started and finished. */
  readonly log?: (line: string) => void;
}

export interface RunningScanWorker {
  readonly id: string;
  close(): Promise<void>;
}

const LINE_BATCH = 1024;

type RedisClient = Redis;

interface RunState {
  readonly config: RunConfig;
  readonly engine: ScanEngine;
  readonly specialTokenIds: ReadonlySet<number>;
  readonly issued: IssuedWindowSet | null;
}

export async function startScanWorker(options: ScanWorkerOptions): Promise<RunningScanWorker> {
  const id = `${hostname()}:${process.pid}`;
  const log = options.log ?? (() => undefined);
  const keysById = new Map(options.keys.map((key) => [key.keyId, key]));
  const runs = new Map<string, Promise<RunState>>();
  const lockDuration = options.lockDuration ?? 60_000;
  const redis = new Redis(options.redisUrl, { maxRetriesPerRequest: null, lazyConnect: true });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
  } catch (error) {
    // A failed first connection still retries on timers, which would keep the process alive.
    redis.disconnect();
    throw error;
  }
  const runState = (runId: string): Promise<RunState> => {
    let state = runs.get(runId);
    if (state === undefined) {
      state = loadRun(redis, runId);
      runs.set(runId, state);
      state.catch(() => runs.delete(runId));
    }
    return state;
  };
  const worker = new Worker(
    QUEUE_NAME,
    async (job: Job) => {
      log(`job ${job.id} started (attempt ${job.attemptsStarted})`);
      const started = performance.now();
      if (job.name === 'map') await runMap(redis, await runState(job.data.runId), job.data as MapJobData, id);
      else if (job.name === 'reduce')
        await runReduce(redis, await runState(job.data.runId), job.data as ReduceJobData, keysById, id);
      else throw new UnrecoverableError(`unknown job ${job.name}`);
      log(`job ${job.id} done in ${((performance.now() - started) / 1000).toFixed(2)} s`);
    },
    {
      connection: { url: options.redisUrl, maxRetriesPerRequest: null },
      concurrency: options.concurrency ?? 1,
      lockDuration,
      stalledInterval: Math.max(1000, Math.floor(lockDuration / 2)),
      // Jobs are idempotent: a job whose workers keep dying may be re-run a few times.
      maxStalledCount: 5,
    },
  );
  worker.on('error', (error) => log(`worker error: ${error.message}`));
  try {
    await worker.waitUntilReady();
  } catch (error) {
    await worker.close(true).catch(() => undefined);
    redis.disconnect();
    throw error;
  }
  return {
    id,
    close: async () => {
      await worker.close();
      redis.disconnect();
    },
  };
}

async function loadRun(redis: RedisClient, runId: string): Promise<RunState> {
  const keys = runKeys(runId);
  const text = await redis.get(keys.config);
  if (text === null) throw new UnrecoverableError(`run ${runId}: no configuration in Redis (expired?)`);
  const config = JSON.parse(text) as RunConfig;
  const tokenizer = isTokenizerId(config.tokenizer) ? getTokenizer(config.tokenizer) : null;
  if (tokenizer === null)
    throw new UnrecoverableError(`run ${runId}: tokenizer "${config.tokenizer}" is not shipped`);
  const specialTokenIds = new Set<number>(tokenizer.specialTokenIds);
  let issued: IssuedWindowSet | null = null;
  if (config.supervised) {
    const blob = await redis.getBuffer(keys.issued);
    if (blob === null) throw new UnrecoverableError(`run ${runId}: issued outputs missing from Redis`);
    const { arrays } = unpackBlob<null>(blob);
    issued = await IssuedWindowSet.fromOutputs(
      unpackOutputs(arrays.lengths as Uint32Array, arrays.tokens as Uint32Array),
      {
        schemes: config.layouts.map((layout) => ({ name: layout.scheme, contextWidth: layout.contextWidth })),
        specialTokenIds,
      },
    );
  }
  return { config, engine: createScanEngine({ tokenizer: config.tokenizer }), specialTokenIds, issued };
}

/** Reads one shard: tokenizes its documents and cuts every layout's pairs into partitions. */
async function runMap(redis: RedisClient, run: RunState, data: MapJobData, worker: string): Promise<void> {
  const cpu = process.cpuUsage();
  const { config, engine } = run;
  const shard = config.shards[data.shard];
  if (shard === undefined) throw new UnrecoverableError(`run ${data.runId}: no shard ${data.shard}`);
  const tapes = config.layouts.map(
    (layout) => new ShardTape(layout, run.specialTokenIds, run.issued, config.numPartitions),
  );
  const sourceLines: number[] = [];
  const errors: { line: number | null; code: string; message: string }[] = [];
  let documents = 0;
  let bytes = 0;
  let lines = 0;
  const add = (tokens: Uint32Array, prompt: Uint32Array | undefined, line: number): void => {
    for (const tape of tapes) tape.add(tokens, prompt);
    sourceLines.push(line);
  };
  if (shard.kind === 'jsonl') {
    const file = await open(shard.file, 'r');
    const buffer = Buffer.alloc(shard.end - shard.start);
    try {
      await file.read(buffer, 0, buffer.length, shard.start);
    } finally {
      await file.close();
    }
    bytes = buffer.length;
    // A byte-order mark counts only at the start of the file, as a stream decoder reads it.
    const texts = new TextDecoder('utf-8', { ignoreBOM: shard.start > 0 }).decode(buffer).split('\n');
    if (texts[texts.length - 1] === '') texts.pop();
    lines = texts.length;
    for (let first = 0; first < texts.length; first += LINE_BATCH) {
      const result = engine.run({
        kind: 'lines',
        source: SHARD_SOURCE,
        firstLine: first + 1,
        texts: texts.slice(first, first + LINE_BATCH),
        ...(config.field === null ? {} : { field: config.field }),
        ...(config.promptField === null ? {} : { promptField: config.promptField }),
      });
      if (result.kind !== 'documents') throw new Error('scan engine: unexpected result');
      for (const document of result.documents) {
        documents++;
        const line = Number(document.source.slice(SHARD_SOURCE.length + 1));
        if ('error' in document) errors.push({ line, ...document.error });
        else add(document.tokens, document.prompt, line);
      }
      // Lets BullMQ renew the job's lock between batches.
      await yieldToLoop();
    }
  } else {
    let pieces: Uint32Array[] = [];
    // Messages name the file as the scan was given it, not as this worker opens it.
    const named = (message: string) =>
      message.startsWith(shard.file) ? `${shard.path}${message.slice(shard.file.length)}` : message;
    for await (const unit of readInputs([shard.file], { stdin: new PassThrough(), format: 'text' })) {
      if (!('piece' in unit)) {
        const error = 'error' in unit ? unit.error : undefined;
        documents++;
        errors.push({
          line: null,
          code: error?.code ?? 'TM_ERR_IO',
          message: named(error?.message ?? `${shard.path}: cannot read`),
        });
        continue;
      }
      if (unit.error !== undefined) {
        documents++;
        errors.push({ line: null, code: unit.error.code, message: named(unit.error.message) });
        continue;
      }
      bytes += unit.bytes;
      const result = engine.run({ kind: 'tokenize', text: unit.text });
      if (result.kind !== 'tokens') throw new Error('scan engine: unexpected result');
      pieces.push(result.tokens);
      if (unit.last) {
        documents++;
        add(concat(pieces), undefined, 0);
        pieces = [];
      }
      await yieldToLoop();
    }
  }
  const packed = tapes.map((tape) => tape.fragments().map(packFragment));
  const meta: ShardMeta = {
    documents,
    scanned: sourceLines.length,
    bytes,
    lines,
    errors,
    counts: tapes.map((tape) => tape.counts()),
    worker,
    cpuSeconds: cpuSecondsSince(cpu),
    fragmentBytes: packed.flat().reduce((sum, blob) => sum + blob.length, 0),
  };
  const key = runKeys(data.runId).map(data.shard);
  const transaction = redis.multi();
  packed.forEach((blobs, layout) => {
    blobs.forEach((blob, partition) => {
      transaction.hset(key, `${layout}:${partition}`, blob);
    });
  });
  // The meta last, in the same transaction: its presence means the shard is done.
  transaction.hset(key, 'meta', packBlob(meta, { sourceLines: Uint32Array.from(sourceLines) }));
  transaction.expire(key, RESULT_TTL_SECONDS);
  await transaction.exec();
}

/** Merges one partition's fragments from every shard and scores the layout's keys on it. */
async function runReduce(
  redis: RedisClient,
  run: RunState,
  data: ReduceJobData,
  keysById: ReadonlyMap<string, WatermarkKey>,
  worker: string,
): Promise<void> {
  const cpu = process.cpuUsage();
  const { config } = run;
  const layout = config.layouts[data.layout];
  if (layout === undefined) throw new UnrecoverableError(`run ${data.runId}: no layout ${data.layout}`);
  const keys = config.keys
    .filter((entry) => entry.layout === data.layout)
    .map((entry) => {
      const key = keysById.get(entry.keyId);
      if (key === undefined)
        throw new UnrecoverableError(
          `this worker holds no key ${entry.keyId}: start it with --key for that key`,
        );
      return key;
    });
  const keys_ = runKeys(data.runId);
  const pipeline = redis.pipeline();
  for (let shard = 0; shard < config.shards.length; shard++)
    pipeline.hgetBuffer(keys_.map(shard), `${data.layout}:${data.partition}`);
  const replies = (await pipeline.exec()) ?? [];
  const fragments = replies.map(([error, blob]: [Error | null, unknown], shard: number) => {
    if (error !== null || blob === null) throw new Error(`run ${data.runId}: shard ${shard} has no fragment`);
    return unpackFragment(blob as Buffer);
  });
  await yieldToLoop();
  const partition = mergePartition(layout, fragments, data.documentOffsets);
  await yieldToLoop();
  const scores = scorePartition(partition, keys, { fakeKeys: config.fakeKeys, seed: config.fakeKeySeed });
  const arrays: Record<string, Uint32Array | Uint8Array> = {};
  scores.forEach((score, k) => {
    arrays[`bits${k}`] = score.bits;
    arrays[`document${k}`] = score.document;
    arrays[`position${k}`] = score.position;
  });
  const meta: PartitionMeta = {
    numDistinct: partition.numDistinct,
    numExcludedByPrompt: partition.numExcludedByPrompt,
    keys: scores.map((score) => ({
      numScored: score.numScored,
      numGreen: score.numGreen,
      fakeScored: [...score.fakeKeys.numScored],
      fakeGreen: [...score.fakeKeys.numGreen],
    })),
    worker,
    cpuSeconds: cpuSecondsSince(cpu),
  };
  await redis.set(
    keys_.reduce(data.layout, data.partition),
    packBlob(meta, arrays),
    'EX',
    RESULT_TTL_SECONDS,
  );
}

function cpuSecondsSince(start: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1e6;
}

function packFragment(fragment: ShardFragment): Buffer {
  const { windowWidth, numWindows, ...arrays } = fragment;
  return packBlob({ windowWidth, numWindows }, arrays);
}

function unpackFragment(blob: Buffer): ShardFragment {
  const { header, arrays } = unpackBlob<{ windowWidth: number; numWindows: number }>(blob);
  return { ...header, ...(arrays as Record<string, Uint32Array>) } as unknown as ShardFragment;
}

function concat(pieces: readonly Uint32Array[]): Uint32Array {
  if (pieces.length === 1) return pieces[0]!;
  const out = new Uint32Array(pieces.reduce((sum, piece) => sum + piece.length, 0));
  let at = 0;
  for (const piece of pieces) {
    out.set(piece, at);
    at += piece.length;
  }
  return out;
}
