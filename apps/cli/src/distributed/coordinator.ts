/**
 * The coordinator of a distributed scan (`tracemark scan --distributed REDIS_URL`): plans shards,
 * queues a map job per shard and, once every shard is read, a reduce job per (layout, partition) on
 * BullMQ; then merges the partitions' tallies into the report, which is the single-machine scan's
 * report (docs/decisions/2026-12-04-distributed-scan.md). Rerun with the same run id, it skips the
 * jobs whose results are in Redis.
 */
import { randomBytes } from 'node:crypto';
import { stat } from 'node:fs/promises';
import type { WatermarkKey } from '@tracemark/core';
import {
  DEFAULT_FAKE_KEY_SEED,
  layoutCounts,
  type PartitionKeyScore,
  partitionedScanReport,
  type ScanReport,
} from '@tracemark/extraction';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import type { InputFormat } from '../inputs.ts';
import { CliError, EXIT } from '../io.ts';
import { packBlob, unpackBlob } from './codec.ts';
import { type PlanEntry, planShards, type Shard } from './plan.ts';
import {
  mapJobId,
  type PartitionMeta,
  packOutputs,
  QUEUE_NAME,
  RESULT_TTL_SECONDS,
  RUN_ID_PATTERN,
  type RunConfig,
  redactRedisUrl,
  reduceJobId,
  runKeys,
  SHARD_WHERE,
  type ShardMeta,
} from './protocol.ts';

export const DEFAULT_PARTITIONS: number = 16;
export const DEFAULT_SHARD_BYTES: number = 16 * 1024 * 1024;
/** Attempts per job before the run fails (a worker's death is a stall, re-run apart from these). */
const JOB_ATTEMPTS = 3;

export interface DistributedScanInput {
  readonly redisUrl: string;
  /** Resume this run (default: a new random id). */
  readonly runId?: string;
  readonly paths: readonly string[];
  /** Green-list keys, all bound to `tokenizer`. */
  readonly keys: readonly WatermarkKey[];
  readonly tokenizer: string;
  readonly format?: InputFormat;
  readonly field?: string;
  readonly promptField?: string | false;
  readonly fakeKeys: number;
  readonly fakeKeySeed?: string;
  readonly alpha: number;
  readonly minimumDose: number;
  readonly issuedOutputs?: readonly Uint32Array[];
  readonly issuedGreenFractions?: ReadonlyMap<string, number>;
  readonly partitions?: number;
  readonly shardBytes?: number;
  readonly onProgress?: (text: string) => void;
  readonly onError: (source: string, error: { code: string; message: string }) => void;
}

export interface DistributedRun {
  readonly runId: string;
  readonly shards: number;
  readonly partitions: number;
  readonly jobs: number;
  /** Jobs whose results were in Redis already (a resumed run). */
  readonly resumedJobs: number;
  /** Workers that did the jobs of this run (host:pid). */
  readonly workers: readonly string[];
  readonly mapSeconds: number;
  readonly reduceSeconds: number;
  readonly mergeSeconds: number;
  /** The workers' CPU time in map and reduce jobs (the last attempt of each). */
  readonly mapCpuSeconds: number;
  readonly reduceCpuSeconds: number;
  /** Bytes of the shards' fragments in Redis. */
  readonly fragmentBytes: number;
  /** The largest partition's distinct pairs over the mean (token partitions are uneven). */
  readonly partitionSkew: number;
}

export interface DistributedScanResult {
  readonly report: ScanReport;
  readonly summary: { readonly documents: number; readonly errors: number; readonly bytes: number };
  readonly run: DistributedRun;
}

export async function distributedScan(input: DistributedScanInput): Promise<DistributedScanResult> {
  const runId = input.runId ?? randomBytes(8).toString('hex');
  if (!RUN_ID_PATTERN.test(runId)) {
    throw new CliError('TM_ERR_USAGE', '--run-id: expected 1 to 64 letters, digits, - or _', EXIT.usage);
  }
  if (input.paths.length === 0 || input.paths.includes('-')) {
    throw new CliError(
      'TM_ERR_USAGE',
      '--distributed needs the corpus as files (workers cannot read this stdin)',
      EXIT.usage,
    );
  }
  const numPartitions = input.partitions ?? DEFAULT_PARTITIONS;
  const plan = await planShards(input.paths, input.format, input.shardBytes ?? DEFAULT_SHARD_BYTES);
  const shards = plan.filter((entry): entry is Shard => entry.kind !== 'error');
  const layoutIds: string[] = [];
  const keyEntries = input.keys.map((key) => {
    const id = `${key.scheme.name}/${key.scheme.contextWidth}`;
    if (!layoutIds.includes(id)) layoutIds.push(id);
    return { keyId: key.keyId, layout: layoutIds.indexOf(id) };
  });
  const layouts = layoutIds.map((id) => {
    const key = input.keys.find((k) => `${k.scheme.name}/${k.scheme.contextWidth}` === id)!;
    return { scheme: key.scheme.name, contextWidth: key.scheme.contextWidth };
  });
  const files = [...new Set(shards.map((shard) => shard.path))];
  const config: RunConfig = {
    version: 1,
    tokenizer: input.tokenizer,
    layouts,
    keys: keyEntries,
    fakeKeys: input.fakeKeys,
    fakeKeySeed: input.fakeKeySeed ?? DEFAULT_FAKE_KEY_SEED,
    numPartitions,
    field: input.field ?? null,
    promptField: input.promptField ?? null,
    supervised: input.issuedOutputs !== undefined,
    shards,
    files: await Promise.all(
      files.map(async (path) => {
        const info = await stat(path);
        return { path, size: info.size, mtimeMs: info.mtimeMs };
      }),
    ),
  };
  const keys = runKeys(runId);
  // Reached once, without retries, before anything waits on it.
  const probe = new Redis(input.redisUrl, {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  probe.on('error', () => undefined);
  try {
    await probe.connect();
    await probe.ping();
  } catch (error) {
    throw new CliError(
      'TM_ERR_REDIS',
      `--distributed: cannot reach ${redactRedisUrl(input.redisUrl)} (${(error as Error).message})`,
      EXIT.io,
    );
  } finally {
    probe.disconnect();
  }
  const redis = new Redis(input.redisUrl, { maxRetriesPerRequest: 3 });
  redis.on('error', () => undefined);
  const queue = new Queue(QUEUE_NAME, { connection: { url: input.redisUrl, maxRetriesPerRequest: null } });
  queue.on('error', () => undefined);
  try {
    // A run id names one scan: resuming it with other inputs or settings would mix two corpora.
    const configText = JSON.stringify(config);
    const stored = await redis.set(keys.config, configText, 'EX', RESULT_TTL_SECONDS, 'NX');
    if (stored === null) {
      const existing = await redis.get(keys.config);
      if (existing !== configText) {
        throw new CliError(
          'TM_ERR_USAGE',
          `--run-id ${runId}: that run scanned other inputs or settings (or its files changed); use a new run id`,
          EXIT.usage,
        );
      }
      await redis.expire(keys.config, RESULT_TTL_SECONDS);
    }
    if (input.issuedOutputs !== undefined) {
      const { lengths, tokens } = packOutputs(input.issuedOutputs);
      await redis.set(keys.issued, packBlob(null, { lengths, tokens }), 'EX', RESULT_TTL_SECONDS);
    }
    const progress = input.onProgress ?? (() => undefined);
    let resumedJobs = 0;
    const started = performance.now();

    // Map: one job per shard.
    const mapDone = async (shard: number) => (await redis.hexists(keys.map(shard), 'meta')) === 1;
    resumedJobs += await runPhase(
      queue,
      shards.map((_, shard) => ({
        id: mapJobId(runId, shard),
        name: 'map',
        data: { runId, shard },
        done: () => mapDone(shard),
      })),
      (done, total) => progress(`run ${runId}: read ${done}/${total} shards`),
    );
    const metas: { header: ShardMeta; sourceLines: Uint32Array }[] = [];
    for (let shard = 0; shard < shards.length; shard++) {
      const blob = await redis.hgetBuffer(keys.map(shard), 'meta');
      if (blob === null)
        throw new CliError('TM_ERR_REDIS', `run ${runId}: shard ${shard} lost its results`, EXIT.io);
      const { header, arrays } = unpackBlob<ShardMeta>(blob);
      metas.push({ header, sourceLines: arrays.sourceLines as Uint32Array });
    }
    const documentOffsets: number[] = [];
    let scanned = 0;
    for (const meta of metas) {
      documentOffsets.push(scanned);
      scanned += meta.header.scanned;
    }
    const mapSeconds = (performance.now() - started) / 1000;

    // Reduce: one job per (layout, partition).
    const reduceJobs = layouts.flatMap((_, layout) =>
      Array.from({ length: numPartitions }, (_, partition) => ({
        id: reduceJobId(runId, layout, partition),
        name: 'reduce',
        data: { runId, layout, partition, documentOffsets },
        done: async () => (await redis.exists(keys.reduce(layout, partition))) === 1,
      })),
    );
    resumedJobs += await runPhase(queue, reduceJobs, (done, total) =>
      progress(`run ${runId}: scored ${done}/${total} partitions`),
    );
    const reduceSeconds = (performance.now() - started) / 1000 - mapSeconds;

    // Merge: the partitions' tallies, in partition order, then the report.
    const mergeStarted = performance.now();
    const workers = new Set(metas.map((meta) => meta.header.worker));
    let reduceCpuSeconds = 0;
    const scores = input.keys.map((): PartitionKeyScore[] => []);
    const partitionCounts = layouts.map((): { numDistinct: number; numExcludedByPrompt: number }[] => []);
    for (let layout = 0; layout < layouts.length; layout++) {
      const layoutKeys = keyEntries.flatMap((entry, index) => (entry.layout === layout ? [index] : []));
      for (let partition = 0; partition < numPartitions; partition++) {
        const blob = await redis.getBuffer(keys.reduce(layout, partition));
        if (blob === null)
          throw new CliError(
            'TM_ERR_REDIS',
            `run ${runId}: partition ${partition} lost its results`,
            EXIT.io,
          );
        const { header, arrays } = unpackBlob<PartitionMeta>(blob);
        workers.add(header.worker);
        reduceCpuSeconds += header.cpuSeconds;
        partitionCounts[layout]!.push(header);
        header.keys.forEach((key, k) => {
          scores[layoutKeys[k]!]!.push({
            numScored: key.numScored,
            numGreen: key.numGreen,
            bits: arrays[`bits${k}`] as Uint8Array,
            document: arrays[`document${k}`] as Uint32Array,
            position: arrays[`position${k}`] as Uint32Array,
            fakeKeys: { first: 0, numScored: key.fakeScored, numGreen: key.fakeGreen },
          });
        });
      }
    }
    const sources = resolveSources(plan, metas, input.onError);
    const report = partitionedScanReport({
      keys: input.keys,
      scores,
      counts: keyEntries.map((entry) =>
        layoutCounts(
          metas.map((meta) => meta.header.counts[entry.layout]!),
          partitionCounts[entry.layout]!,
        ),
      ),
      sources: sources.sources,
      fakeKeys: input.fakeKeys,
      fakeKeySeed: config.fakeKeySeed,
      alpha: input.alpha,
      minimumDose: input.minimumDose,
      issued:
        input.issuedOutputs === undefined
          ? null
          : {
              numOutputs: input.issuedOutputs.length,
              numTokens: input.issuedOutputs.reduce((sum, output) => sum + output.length, 0),
            },
      ...(input.issuedGreenFractions === undefined
        ? {}
        : { issuedGreenFractions: input.issuedGreenFractions }),
    });
    return {
      report,
      summary: sources.summary,
      run: {
        runId,
        shards: shards.length,
        partitions: numPartitions,
        jobs: shards.length + reduceJobs.length,
        resumedJobs,
        workers: [...workers].sort(),
        mapSeconds: round(mapSeconds),
        reduceSeconds: round(reduceSeconds),
        mergeSeconds: round((performance.now() - mergeStarted) / 1000),
        mapCpuSeconds: round(metas.reduce((sum, meta) => sum + meta.header.cpuSeconds, 0)),
        reduceCpuSeconds: round(reduceCpuSeconds),
        fragmentBytes: metas.reduce((sum, meta) => sum + meta.header.fragmentBytes, 0),
        partitionSkew: skew(partitionCounts.flat().map((counts) => counts.numDistinct)),
      },
    };
  } finally {
    await queue.close();
    redis.disconnect();
  }
}

function skew(sizes: readonly number[]): number {
  const total = sizes.reduce((sum, size) => sum + size, 0);
  return total === 0 ? 1 : Number(((Math.max(...sizes) * sizes.length) / total).toFixed(2));
}

function round(seconds: number): number {
  return Number(seconds.toFixed(3));
}

interface PhaseJob {
  readonly id: string;
  readonly name: string;
  readonly data: unknown;
  readonly done: () => Promise<boolean>;
}

/**
 * Queues the jobs that have no results yet (a job that failed before is retried) and waits for all
 * to have results. Returns how many had them already.
 */
async function runPhase(
  queue: Queue,
  jobs: readonly PhaseJob[],
  progress: (done: number, total: number) => void,
): Promise<number> {
  let pending: PhaseJob[] = [];
  for (const job of jobs) if (!(await job.done())) pending.push(job);
  const resumed = jobs.length - pending.length;
  for (const job of pending) {
    const existing = await queue.getJob(job.id);
    if (existing !== undefined) {
      const state = await existing.getState();
      if (state === 'failed') {
        await existing.retry('failed');
        continue;
      }
      // Waiting, delayed or active: it will run. Completed without results: run it again.
      if (state !== 'completed' && state !== 'unknown') continue;
      await existing.remove();
    }
    await queue.add(job.name, job.data, {
      jobId: job.id,
      attempts: JOB_ATTEMPTS,
      backoff: { type: 'fixed', delay: 500 },
      removeOnComplete: true,
      removeOnFail: false,
    });
  }
  let lastCheck = performance.now();
  while (pending.length > 0) {
    progress(jobs.length - pending.length, jobs.length);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const still: PhaseJob[] = [];
    for (const job of pending) if (!(await job.done())) still.push(job);
    pending = still;
    // A job out of attempts fails the run, with its reason (a worker's message: no secrets).
    if (pending.length > 0 && performance.now() - lastCheck > 1000) {
      lastCheck = performance.now();
      for (const job of pending) {
        const existing = await queue.getJob(job.id);
        if (existing === undefined) continue;
        if ((await existing.getState()) === 'failed' && !(await job.done())) {
          throw new CliError(
            'TM_ERR_DISTRIBUTED_JOB',
            `job ${job.id} failed after ${existing.attemptsMade} attempts: ${existing.failedReason}`,
            EXIT.io,
          );
        }
      }
    }
  }
  progress(jobs.length, jobs.length);
  return resumed;
}

/**
 * Documents' sources and the errors in input order, with JSONL line numbers counted across the
 * shards of each file; reports each error through `onError`.
 */
function resolveSources(
  plan: readonly PlanEntry[],
  metas: readonly { header: ShardMeta; sourceLines: Uint32Array }[],
  onError: DistributedScanInput['onError'],
): { sources: string[]; summary: { documents: number; errors: number; bytes: number } } {
  const sources: string[] = [];
  const summary = { documents: 0, errors: 0, bytes: 0 };
  const lineOffsets = new Map<string, number>();
  let shard = 0;
  for (const entry of plan) {
    if (entry.kind === 'error') {
      summary.documents++;
      summary.errors++;
      onError(entry.source, { code: entry.code, message: entry.message });
      continue;
    }
    const { header, sourceLines } = metas[shard++]!;
    const offset = lineOffsets.get(entry.path) ?? 0;
    lineOffsets.set(entry.path, offset + header.lines);
    const where = (line: number | null) => (line === null ? entry.path : `${entry.path}:${offset + line}`);
    summary.documents += header.documents;
    summary.bytes += header.bytes;
    summary.errors += header.errors.length;
    // Errors and documents interleave in the single scan's output; errors keep their own order.
    for (const error of header.errors) {
      onError(where(error.line), {
        code: error.code,
        message: error.message.replace(
          SHARD_WHERE,
          (_, line: string) => `${entry.path}:${offset + Number(line)}`,
        ),
      });
    }
    for (const line of sourceLines) sources.push(entry.kind === 'text' ? entry.path : where(line));
  }
  return { sources, summary };
}

/** Deletes a run's configuration and results from Redis; returns the number of keys deleted. */
export async function forgetRun(redisUrl: string, runId: string): Promise<number> {
  if (!RUN_ID_PATTERN.test(runId)) throw new RangeError('runId: expected 1 to 64 letters, digits, - or _');
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1 });
  redis.on('error', () => undefined);
  try {
    let deleted = 0;
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `tracemark:scan:${runId}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) deleted += await redis.del(...keys);
    } while (cursor !== '0');
    return deleted;
  } finally {
    redis.disconnect();
  }
}
