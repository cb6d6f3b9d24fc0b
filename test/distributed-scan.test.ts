/**
 * `tracemark scan --distributed REDIS_URL` with `tracemark scan-worker` processes on the real Redis:
 * the report equals the single-machine scan's (a corpus of several files with prompts, the supervised
 * filter, fake keys, a bad line and a text file), a worker killed with SIGKILL in the middle of a
 * job has that job re-run by another, and a run resumed by its id runs nothing again.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { PassThrough } from 'node:stream';
import {
  createWatermarker,
  createWatermarkKey,
  generateTokens,
  serializeKeyFile,
  type WatermarkKey,
} from '@tracemark/core';
import { loadHumanCorpus } from '@tracemark/lm';
import { getTokenizer } from '@tracemark/tokenizers';
import { Command, CommanderError } from 'commander';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerScan } from '../apps/cli/src/commands/scan.ts';
import { forgetRun } from '../apps/cli/src/distributed/coordinator.ts';
import { CliError, type CliIo } from '../apps/cli/src/io.ts';
import { redisReachable } from '../apps/gateway/src/test-support/services.ts';
import { cacheDir, removeTemporaryDirectories, repositoryRoot, temporaryDirectory } from './helpers.ts';

const REDIS_URL = process.env.TRACEMARK_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const haveRedis = await redisReachable(REDIS_URL);
if (!haveRedis && process.env.CI)
  throw new Error(`Redis (${REDIS_URL}) is not reachable; CI=true requires it`);

const directory = temporaryDirectory('tracemark-distributed-');
const tokenizer = getTokenizer('cl100k_base');
const key = createWatermarkKey({ secret: createHash('sha256').update('distributed/key').digest() });
const selfHashKey = createWatermarkKey({
  secret: createHash('sha256').update('distributed/selfhash').digest(),
  scheme: { name: 'selfhash', contextWidth: 3, gamma: 0.25 },
});
const keyPath = join(directory, 'key.json');
const selfHashKeyPath = join(directory, 'selfhash.json');
const corpus = join(directory, 'corpus');
const bigText = join(directory, 'big.txt');
const issuedPath = join(directory, 'issued.jsonl');
const workers: ChildProcess[] = [];

afterAll(async () => {
  for (const child of workers) if (child.exitCode === null) child.kill('SIGKILL');
  removeTemporaryDirectories();
});

/** Watermarked token ids from a cheap random source (64 candidates a step), to keep the test fast. */
async function markedTokens(watermarkKey: WatermarkKey, prompt: number[], seed: number): Promise<number[]> {
  const watermarker = createWatermarker(watermarkKey, { specialTokenIds: tokenizer.specialTokenIds });
  const logits = new Float32Array(tokenizer.vocabSize).fill(Number.NEGATIVE_INFINITY);
  let state = seed;
  const next = () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state;
  };
  const source = {
    nextLogits: () => {
      logits.fill(Number.NEGATIVE_INFINITY);
      for (let i = 0; i < 64; i++) logits[1000 + (next() % 20_000)] = (next() % 1000) / 300;
      return logits;
    },
  };
  const ids: number[] = [];
  for await (const { token } of generateTokens({
    source,
    prompt,
    maxTokens: 150,
    watermarker,
    temperature: 1,
    seed,
  })) {
    ids.push(token);
  }
  return ids;
}

beforeAll(async () => {
  if (!haveRedis) return;
  writeFileSync(keyPath, serializeKeyFile(key), { mode: 0o600 });
  writeFileSync(selfHashKeyPath, serializeKeyFile(selfHashKey), { mode: 0o600 });
  mkdirSync(corpus);
  const human = (await loadHumanCorpus({ source: 'nlp-corpus', split: 'test' })).map((d) => d.text);
  const prompts = ['The committee said on Tuesday that', 'In the early years of the century,'];
  const marked: number[][] = [];
  const markedPrompts: number[][] = [];
  for (let i = 0; i < 24; i++) {
    const prompt = tokenizer.encode(prompts[i % 2]!);
    markedPrompts.push(Array.from(prompt));
    marked.push(await markedTokens(i % 3 === 0 ? selfHashKey : key, Array.from(prompt), 7 + i));
  }
  const lines = (records: readonly object[]) => records.map((record) => JSON.stringify(record));
  // a.jsonl: watermarked ids with their prompts, human text with prompts, a repeated document, a bad line.
  writeFileSync(
    join(corpus, 'a.jsonl'),
    `${[
      ...lines(marked.slice(0, 12).map((tokens, i) => ({ text: tokens, prompt: markedPrompts[i] }))),
      ...lines(human.slice(0, 30).map((text, i) => ({ prompt: prompts[i % 2], text }))),
      '{not json',
      '',
      ...lines(marked.slice(0, 3).map((tokens) => ({ text: tokens }))),
    ].join('\n')}\n`,
  );
  writeFileSync(
    join(corpus, 'b.jsonl'),
    `${[
      ...lines(human.slice(30, 60).map((text) => ({ text }))),
      ...lines(marked.slice(12).map((tokens, i) => ({ text: tokens, prompt: markedPrompts[12 + i] }))),
      // A prompt holding an issued output: its pairs are excluded everywhere, in every file.
      JSON.stringify({ prompt: marked[1], text: marked[1]!.slice(0, 40) }),
    ].join('\n')}`,
  );
  writeFileSync(join(corpus, 'c.txt'), human.slice(60, 70).join('\n\n'));
  writeFileSync(join(corpus, 'd.txt'), Buffer.from([0x68, 0x69, 0x00, 0x01]));
  // A text file large enough that reading it takes a while: the job a worker is killed in.
  let text = '';
  for (let i = 0; text.length < 1_500_000; i++) text += `${human[i % human.length]}\n\n`;
  writeFileSync(bigText, text);
  // Issued outputs: half of the watermarked ones (the supervised filter keeps their windows).
  writeFileSync(issuedPath, `${lines(marked.slice(0, 12).map((tokens) => ({ tokens }))).join('\n')}\n`);
}, 120_000);

type Result = { code: number; out: string; err: string };

async function scan(argv: string[]): Promise<Result> {
  let out = '';
  let err = '';
  const io: CliIo = {
    stdout: { write: (t: string) => (out += t) },
    stderr: { write: (t: string) => (err += t) },
    stdin: new PassThrough(),
    stdoutIsTTY: false,
    stderrIsTTY: false,
    env: { PATH: process.env.PATH, TRACEMARK_CACHE_DIR: cacheDir },
  };
  let code = 0;
  const program = new Command('tracemark').exitOverride().configureOutput({
    writeOut: (t) => (out += t),
    writeErr: (t) => (err += t),
  });
  registerScan(program, io, (c) => {
    code = c;
  });
  try {
    await program.parseAsync(['scan', ...argv], { from: 'user' });
  } catch (error) {
    if (error instanceof CommanderError) code = error.exitCode === 0 ? 0 : 2;
    else if (error instanceof CliError) {
      err += `error: ${error.message}\n`;
      code = error.exitCode;
    } else throw error;
  }
  return { code, out, err };
}

interface Worker {
  readonly child: ChildProcess;
  /** stderr so far. */
  readonly log: () => string;
  readonly ready: Promise<void>;
  /** Resolves with the first job id of a line matching `pattern`. */
  readonly waitFor: (pattern: RegExp) => Promise<string>;
}

function startWorker(): Worker {
  const child = spawn(
    process.execPath,
    [
      '--conditions=source',
      '--import',
      'tsx',
      'src/distributed/worker-process.ts',
      REDIS_URL,
      '--key',
      keyPath,
      '--key',
      selfHashKeyPath,
      '--lock-duration',
      '3000',
    ],
    {
      cwd: join(repositoryRoot, 'apps/cli'),
      env: { ...process.env, TRACEMARK_CACHE_DIR: cacheDir },
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  workers.push(child);
  let log = '';
  const waiters: { pattern: RegExp; resolve: (match: string) => void }[] = [];
  child.stderr!.on('data', (chunk: Buffer) => {
    log += chunk.toString();
    for (const waiter of [...waiters]) {
      const match = waiter.pattern.exec(log);
      if (match !== null) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(match[1] ?? match[0]);
      }
    }
  });
  const waitFor = (pattern: RegExp) =>
    new Promise<string>((resolve, reject) => {
      const match = pattern.exec(log);
      if (match !== null) return resolve(match[1] ?? match[0]);
      const timer = setTimeout(() => reject(new Error(`worker: no ${pattern} in\n${log}`)), 60_000);
      waiters.push({
        pattern,
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m);
        },
      });
    });
  return { child, log: () => log, ready: waitFor(/ready on/).then(() => undefined), waitFor };
}

function stop(worker: Worker, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  return new Promise((resolve) => {
    if (worker.child.exitCode !== null || worker.child.signalCode !== null) return resolve();
    worker.child.once('exit', () => resolve());
    worker.child.kill(signal);
  });
}

/** The report and the errors: everything but the summary (time, machine) and the run's bookkeeping. */
function comparable(stdout: string): Record<string, unknown> {
  const { summary, ...rest } = JSON.parse(stdout) as Record<string, unknown> & {
    summary: Record<string, unknown>;
  };
  return { ...rest, summary: { documents: summary.documents, errors: summary.errors, bytes: summary.bytes } };
}

// Relative, as a user types it: workers run elsewhere and open it by its absolute path.
const common = () => [
  relative(process.cwd(), corpus),
  '--key',
  keyPath,
  '--key',
  selfHashKeyPath,
  '--issued-file',
  issuedPath,
  '--issued-field',
  'tokens',
  '--fake-keys',
  '40',
  '--json',
];

describe.skipIf(!haveRedis)('tracemark scan --distributed', () => {
  const runId = `test-${process.pid}-${Date.now()}`;
  let single: Result;

  it('two worker processes give the single-machine report, bit for bit', async () => {
    single = await scan(common());
    expect(single.code, single.err).toBe(3); // the bad line
    const report = JSON.parse(single.out);
    expect(report.supervised).toBe(true);
    expect(report.keys[0].tape.numExcludedByPrompt).toBeGreaterThan(0);
    expect(report.keys[0].tape.numFilteredOut).toBeGreaterThan(0);
    expect(report.errors[0].message).toMatch(/a\.jsonl:43: not valid JSON/);
    expect(report.errors[1].message).toMatch(/^(?!\/).*d\.txt: binary data/);
    expect(report.verdict).toBe('radioactive');
    const pair = [startWorker(), startWorker()];
    await Promise.all(pair.map((worker) => worker.ready));
    const distributed = await scan([
      ...common(),
      '--distributed',
      REDIS_URL,
      '--run-id',
      runId,
      '--partitions',
      '7',
      '--shard-size',
      '0.03',
    ]);
    await Promise.all(pair.map((worker) => stop(worker)));
    expect(distributed.code, distributed.err).toBe(3);
    expect(comparable(distributed.out)).toEqual(comparable(single.out));
    const run = JSON.parse(distributed.out).summary.distributed;
    expect(run.shards).toBeGreaterThan(4);
    expect(run.partitions).toBe(7);
    expect(run.resumedJobs).toBe(0);
    // Both processes took jobs.
    expect(pair.every((worker) => /job \S+ done/.test(worker.log()))).toBe(true);
  }, 120_000);

  it('usage: files and green-list keys only; the run options need --distributed', async () => {
    const stdin = await scan(['-', '--key', keyPath, '--distributed', REDIS_URL]);
    expect(stdin.code).toBe(2);
    expect(stdin.err).toMatch(/--distributed needs the corpus as files/);
    const orphan = await scan([corpus, '--key', keyPath, '--partitions', '4']);
    expect(orphan.code).toBe(2);
    expect(orphan.err).toMatch(/need --distributed/);
    const badUrl = await scan([corpus, '--key', keyPath, '--distributed', 'http://localhost:6379']);
    expect(badUrl.code).toBe(2);
    const unreachable = await scan([
      corpus,
      '--key',
      keyPath,
      '--distributed',
      'redis://user:hunter2@127.0.0.1:1',
    ]);
    expect(unreachable.code).toBe(3);
    expect(unreachable.err).toMatch(/cannot reach redis:\/\/127\.0\.0\.1:1/);
    expect(unreachable.err).not.toContain('hunter2');
  });

  it('resumed by its run id, a finished run runs no job again (no worker is running)', async () => {
    const resumed = await scan([
      ...common(),
      '--distributed',
      REDIS_URL,
      '--run-id',
      runId,
      '--partitions',
      '7',
      '--shard-size',
      '0.03',
    ]);
    expect(resumed.code, resumed.err).toBe(3);
    expect(comparable(resumed.out)).toEqual(comparable(single.out));
    const run = JSON.parse(resumed.out).summary.distributed;
    expect(run.resumedJobs).toBe(run.jobs);
    // The same run id with other settings is refused.
    const other = await scan([
      ...common(),
      '--distributed',
      REDIS_URL,
      '--run-id',
      runId,
      '--partitions',
      '8',
    ]);
    expect(other.code).toBe(2);
    expect(other.err).toMatch(/other inputs or settings/);
  }, 60_000);

  it('a worker killed (SIGKILL) in the middle of a job: another worker re-runs it, same report', async () => {
    const singleArgs = [bigText, ...common()];
    const singleWithText = await scan(singleArgs);
    expect(singleWithText.code, singleWithText.err).toBe(3);
    const doomed = startWorker();
    await doomed.ready;
    const running = scan([
      ...singleArgs,
      '--distributed',
      REDIS_URL,
      '--run-id',
      `${runId}-kill`,
      '--partitions',
      '4',
    ]);
    // The first job is the large text file: kill its worker while it reads it.
    const jobId = await doomed.waitFor(/job (\S+\.map\.0) started/);
    doomed.child.kill('SIGKILL');
    await stop(doomed);
    expect(doomed.log()).not.toMatch(/map\.0 done/);
    const rescuer = startWorker();
    const distributed = await running;
    await stop(rescuer);
    expect(distributed.code, distributed.err).toBe(3);
    expect(comparable(distributed.out)).toEqual(comparable(singleWithText.out));
    expect(rescuer.log()).toContain(`job ${jobId} started`);
    expect(await forgetRun(REDIS_URL, runId)).toBeGreaterThan(0);
    expect(await forgetRun(REDIS_URL, `${runId}-kill`)).toBeGreaterThan(0);
  }, 120_000);
});
