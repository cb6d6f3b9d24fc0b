/**
 * The distributed scan on this machine: tokens per second of `tracemark scan` on one machine (the
 * main thread alone, and its worker threads) against `tracemark scan --distributed` with 1 and 2
 * `scan-worker` processes on the local Redis, the phases of a distributed run (map: read and
 * partition; reduce: merge and score, fake keys included; merge: the coordinator's k-way merge and
 * report), and the per-job cost of the queue: BullMQ against a bare Redis list (LPUSH/BRPOP) with
 * the same no-op jobs. The numbers feed docs/decisions/2026-12-04-distributed-scan.md.
 *
 * Run: node --conditions=source --import tsx bench/distributed.ts [--megabytes 24 --workers 1,2
 *      --partitions 16 --shard-mb 4 --fake-keys 100 --jobs 2000 --redis redis://127.0.0.1:6379]
 * (from apps/cli; the reports of the single and the distributed scans are checked equal on the way).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { parseArgs } from 'node:util';
import { createWatermarkKey, serializeKeyFile } from '@tracemark/core';
import { ShardTape } from '@tracemark/extraction';
import { loadHumanCorpus } from '@tracemark/lm';
import { getTokenizer } from '@tracemark/tokenizers';
import { Queue, Worker } from 'bullmq';
import { Command } from 'commander';
import { Redis } from 'ioredis';
import { registerScan } from '../src/commands/scan.ts';
import { forgetRun } from '../src/distributed/coordinator.ts';
import type { CliIo } from '../src/io.ts';
import { benchArguments } from './arguments.ts';

const { values } = parseArgs({
  args: benchArguments(),
  options: {
    megabytes: { type: 'string', default: '24' },
    workers: { type: 'string', default: '1,2' },
    partitions: { type: 'string', default: '16' },
    'shard-mb': { type: 'string', default: '4' },
    'fake-keys': { type: 'string', default: '100' },
    jobs: { type: 'string', default: '2000' },
    redis: { type: 'string', default: process.env.TRACEMARK_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379' },
  },
});
const redisUrl = values.redis;
const directory = mkdtempSync(join(os.tmpdir(), 'tracemark-bench-distributed-'));
process.on('exit', () => rmSync(directory, { recursive: true, force: true }));

// A corpus of records that each join five random human paragraphs (new windows at every join).
const human = (await loadHumanCorpus({ source: 'nlp-corpus' })).map((d) => d.text);
let state = 12345;
const random = () => {
  state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
  return state;
};
const corpusPath = join(directory, 'corpus.jsonl');
const records: string[] = [];
let bytes = 0;
while (bytes < Number(values.megabytes) * 1e6) {
  const parts = Array.from({ length: 5 }, () => human[random() % human.length]!);
  const line = JSON.stringify({ text: parts.join('\n\n') });
  records.push(line);
  bytes += line.length + 1;
}
writeFileSync(corpusPath, `${records.join('\n')}\n`);
const key = createWatermarkKey({ secret: createHash('sha256').update('bench/distributed').digest() });
const keyPath = join(directory, 'key.json');
writeFileSync(keyPath, serializeKeyFile(key), { mode: 0o600 });
const scanArgs = [corpusPath, '--key', keyPath, '--fake-keys', values['fake-keys'], '--json', '--quiet'];

async function scan(argv: string[]): Promise<{ out: string; seconds: number; cpuSeconds: number }> {
  let out = '';
  const io: CliIo = {
    stdout: { write: (t: string) => (out += t) },
    stderr: { write: () => undefined },
    stdin: new PassThrough(),
    stdoutIsTTY: false,
    stderrIsTTY: false,
    env: process.env,
  };
  const program = new Command('tracemark').exitOverride();
  registerScan(program, io, () => undefined);
  const started = performance.now();
  const cpu = process.cpuUsage();
  await program.parseAsync(['scan', ...argv], { from: 'user' });
  const used = process.cpuUsage(cpu);
  return { out, seconds: (performance.now() - started) / 1000, cpuSeconds: (used.user + used.system) / 1e6 };
}

function startWorker(): Promise<ChildProcess> {
  const child = spawn(
    process.execPath,
    [
      '--conditions=source',
      '--import',
      'tsx',
      'src/distributed/worker-process.ts',
      redisUrl,
      '--key',
      keyPath,
    ],
    { cwd: new URL('..', import.meta.url).pathname, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  return new Promise((resolve, reject) => {
    let log = '';
    child.stderr!.on('data', (chunk: Buffer) => {
      log += chunk.toString();
      if (log.includes('ready on')) resolve(child);
    });
    child.once('exit', () => reject(new Error(`worker exited: ${log}`)));
  });
}

const stopWorker = (child: ChildProcess) =>
  new Promise<void>((resolve) => {
    child.removeAllListeners('exit');
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });

const withoutTiming = (out: string) => {
  const { summary: _summary, ...report } = JSON.parse(out);
  return JSON.stringify(report);
};

const rows: Record<string, unknown>[] = [];
const machine = `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, Node ${process.version}`;
console.log(`corpus ${(bytes / 1e6).toFixed(1)} MB JSONL (${records.length} records); ${machine}`);

// One machine: the main thread alone, then its worker threads.
let reference = '';
for (const threads of [0, 2]) {
  const { out, seconds, cpuSeconds } = await scan([...scanArgs, '--workers', String(threads)]);
  const report = JSON.parse(out);
  reference = withoutTiming(out);
  rows.push({
    case: `scan, one process, ${threads} worker threads`,
    tokens: report.numTokens,
    seconds: seconds.toFixed(2),
    tokensPerSecond: Math.round(report.numTokens / seconds),
    tokensPerCpuSecond: Math.round(report.numTokens / cpuSeconds),
  });
}

// Distributed: the same corpus through 1 and 2 worker processes.
for (const count of values.workers.split(',').map(Number)) {
  const children = await Promise.all(Array.from({ length: count }, startWorker));
  const runId = `bench-${process.pid}-${count}`;
  const { out, seconds, cpuSeconds } = await scan([
    ...scanArgs,
    '--distributed',
    redisUrl,
    '--run-id',
    runId,
    '--partitions',
    values.partitions,
    '--shard-size',
    values['shard-mb'],
  ]);
  await Promise.all(children.map(stopWorker));
  await forgetRun(redisUrl, runId);
  const report = JSON.parse(out);
  if (withoutTiming(out) !== reference)
    throw new Error('the distributed report differs from the single scan');
  const run = report.summary.distributed;
  rows.push({
    case: `scan --distributed, ${count} scan-worker processes`,
    tokens: report.numTokens,
    seconds: seconds.toFixed(2),
    tokensPerSecond: Math.round(report.numTokens / seconds),
    shards: run.shards,
    partitions: run.partitions,
    mapSeconds: run.mapSeconds,
    reduceSeconds: run.reduceSeconds,
    mergeSeconds: run.mergeSeconds,
    mapTokensPerCpuSecond: Math.round(report.numTokens / run.mapCpuSeconds),
    reduceTokensPerCpuSecond: Math.round(report.numTokens / run.reduceCpuSeconds),
    fragmentBytesPerToken: Number((run.fragmentBytes / report.numTokens).toFixed(2)),
    coordinatorCpuSeconds: Number(cpuSeconds.toFixed(2)),
    tokensPerCpuSecond: Math.round(
      report.numTokens / (run.mapCpuSeconds + run.reduceCpuSeconds + cpuSeconds),
    ),
    partitionSkew: run.partitionSkew,
    scored: report.keys[0].numScored,
  });
}

// Token partitions are uneven (a frequent token's pairs share one): the largest over the mean.
{
  const tokenizer = getTokenizer('cl100k_base');
  const special = new Set<number>(tokenizer.specialTokenIds);
  const tapes = [16, 256].map(
    (count) => new ShardTape({ scheme: 'lefthash', contextWidth: 1 }, special, null, count),
  );
  for (const line of records) {
    const tokens = tokenizer.encodeFast((JSON.parse(line) as { text: string }).text);
    for (const tape of tapes) tape.add(tokens);
  }
  for (const tape of tapes) {
    const sizes = tape.fragments().map((fragment) => fragment.completionToken.length);
    const total = sizes.reduce((sum, size) => sum + size, 0);
    rows.push({
      case: `token partitions of LeftHash(1) pairs, ${tape.numPartitions} partitions`,
      distinctPairs: total,
      largestOverMean: Number(((Math.max(...sizes) * sizes.length) / total).toFixed(2)),
    });
  }
}

// The queue's own cost per job: no-op jobs through BullMQ and through a bare Redis list.
const jobs = Number(values.jobs);
{
  const name = `tracemark-bench-${process.pid}`;
  const queue = new Queue(name, { connection: { url: redisUrl } });
  const started = performance.now();
  let done = 0;
  const finished = new Promise<void>((resolve) => {
    const worker = new Worker(
      name,
      async () => {
        if (++done === jobs) setImmediate(() => void worker.close().then(() => resolve()));
      },
      { connection: { url: redisUrl, maxRetriesPerRequest: null }, concurrency: 1 },
    );
  });
  for (let first = 0; first < jobs; first += 500) {
    await queue.addBulk(
      Array.from({ length: Math.min(500, jobs - first) }, (_, i) => ({
        name: 'noop',
        data: { i: first + i },
        opts: { removeOnComplete: true },
      })),
    );
  }
  await finished;
  const seconds = (performance.now() - started) / 1000;
  await queue.obliterate({ force: true });
  await queue.close();
  rows.push({
    case: `BullMQ, ${jobs} no-op jobs`,
    seconds: seconds.toFixed(2),
    msPerJob: ((1000 * seconds) / jobs).toFixed(3),
  });
}
{
  const list = `tracemark-bench-list-${process.pid}`;
  const producer = new Redis(redisUrl);
  const consumer = new Redis(redisUrl);
  const started = performance.now();
  for (let first = 0; first < jobs; first += 500) {
    await producer.lpush(
      list,
      ...Array.from({ length: Math.min(500, jobs - first) }, (_, i) => JSON.stringify({ i: first + i })),
    );
  }
  for (let i = 0; i < jobs; i++) {
    const reply = await consumer.brpop(list, 1);
    if (reply === null) throw new Error('list: job missing');
    await consumer.set(`${list}:done:${i}`, '1', 'EX', 60);
  }
  const seconds = (performance.now() - started) / 1000;
  producer.disconnect();
  consumer.disconnect();
  rows.push({
    case: `Redis list (LPUSH/BRPOP + a result SET), ${jobs} no-op jobs`,
    seconds: seconds.toFixed(2),
    msPerJob: ((1000 * seconds) / jobs).toFixed(3),
  });
}

for (const row of rows) console.log(JSON.stringify(row));
