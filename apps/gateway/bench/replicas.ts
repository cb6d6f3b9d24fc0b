/**
 * Throughput through 1, 2 and 3 gateway replicas: `node --conditions=source --import tsx bench/replicas.ts`
 * in apps/gateway, after `pnpm build` (the replicas are the built CLI, `tracemark serve`, as real processes).
 *
 * Each replica count gets a fresh PostgreSQL schema and a fresh Redis key space (the replicas share both, and
 * one data directory for the secrets); a round-robin client keeps REPLICAS_CONCURRENCY non-streamed
 * completions of REPLICAS_TOKENS tokens in flight for REPLICAS_SECONDS after a warm-up, and counts the
 * completions answered 200 per second. REPLICAS_RUNS runs per count, in rotation (1, 2, 3, 1, 2, 3, …) so
 * drift in the machine's load spreads over all counts; each line reports the median with the range.
 *
 * Settings (environment): REPLICAS_COUNTS (1,2,3), REPLICAS_SECONDS (8), REPLICAS_RUNS (3),
 * REPLICAS_CONCURRENCY (16), REPLICAS_TOKENS (16), TRACEMARK_TEST_DATABASE_URL, TRACEMARK_TEST_REDIS_URL.
 * The client runs on the same cores as the replicas, PostgreSQL and Redis: on a machine with fewer cores than
 * replicas + 1, adding replicas adds processes, not CPU.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { arch, cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { TEST_DATABASE_URL, TEST_REDIS_URL } from '../src/test-support/harness.ts';
import { freshPostgresSchema } from '../src/test-support/services.ts';

const counts = (process.env.REPLICAS_COUNTS ?? '1,2,3').split(',').map(Number);
const seconds = Number(process.env.REPLICAS_SECONDS ?? 8);
const runs = Number(process.env.REPLICAS_RUNS ?? 3);
const concurrency = Number(process.env.REPLICAS_CONCURRENCY ?? 16);
const tokens = Number(process.env.REPLICAS_TOKENS ?? 16);
const cliPath = join(import.meta.dirname, '../../cli/dist/bin.js');
const cacheDir = process.env.TRACEMARK_CACHE_DIR || join(tmpdir(), 'tracemark-test-cache');

interface Replica {
  readonly url: string;
  readonly child: ChildProcess;
}

function startReplica(dataDir: string, env: Record<string, string>): Promise<Replica> {
  const child = spawn(
    process.execPath,
    [cliPath, 'serve', '--port', '0', '--data-dir', dataDir, '--log-level', 'warn'],
    { env: { ...process.env, TRACEMARK_CACHE_DIR: cacheDir, ...env }, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  return new Promise((resolve, reject) => {
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      const match = /listening on (http:\/\/\S+)/.exec(stderr);
      if (match !== null) resolve({ url: match[1]!, child });
    });
    child.once('exit', (code) => reject(new Error(`serve exited (${code}): ${stderr}`)));
  });
}

async function stop(replica: Replica): Promise<void> {
  if (replica.child.exitCode !== null) return;
  const exited = new Promise((resolve) => replica.child.once('exit', resolve));
  replica.child.kill('SIGTERM');
  await exited;
}

async function complete(url: string, key: string, seed: number): Promise<boolean> {
  const response = await fetch(`${url}/v1/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'tracemark-ngram', prompt: `Item ${seed}:`, max_tokens: tokens, seed }),
  });
  await response.arrayBuffer();
  return response.status === 200;
}

/** Completions per second through `count` replicas, and the failures. */
async function measure(count: number): Promise<{ perSecond: number; failures: number }> {
  const schema = await freshPostgresSchema(TEST_DATABASE_URL);
  const base = mkdtempSync(join(tmpdir(), 'tracemark-replicas-bench-'));
  const dataDir = join(base, 'data');
  const env = {
    DATABASE_URL: schema.url,
    REDIS_URL: TEST_REDIS_URL,
    TRACEMARK_RATE_LIMIT_PER_MINUTE: '10000000',
    TRACEMARK_DAILY_TOKEN_QUOTA: String(Number.MAX_SAFE_INTEGER),
  };
  const replicas: Replica[] = [];
  try {
    replicas.push(await startReplica(dataDir, env));
    for (let i = 1; i < count; i++) replicas.push(await startReplica(dataDir, env));
    const key = readFileSync(join(dataDir, 'dev-api-key'), 'utf8').trim();
    let next = 0;
    let seed = 0;
    let done = 0;
    let failures = 0;
    let counting = false;
    let running = true;
    const workers = Array.from({ length: concurrency }, async () => {
      while (running) {
        const ok = await complete(replicas[next++ % replicas.length]!.url, key, seed++).catch(() => false);
        if (!counting) continue;
        if (ok) done++;
        else failures++;
      }
    });
    await new Promise((resolve) => setTimeout(resolve, 2000));
    counting = true;
    const started = performance.now();
    await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
    counting = false;
    const elapsed = (performance.now() - started) / 1000;
    running = false;
    await Promise.all(workers);
    return { perSecond: done / elapsed, failures };
  } finally {
    await Promise.all(replicas.map(stop));
    await schema.drop();
    rmSync(base, { recursive: true, force: true });
  }
}

const median = (values: readonly number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
};

console.log(
  `replicas bench: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'} (${arch()}), Node ${process.version}; ` +
    `${concurrency} in flight, ${tokens} tokens each, ${seconds} s per run, ${runs} runs per count`,
);
const results = new Map<number, number[]>(counts.map((count) => [count, []]));
for (let run = 0; run < runs; run++) {
  for (const count of counts) {
    const { perSecond, failures } = await measure(count);
    results.get(count)!.push(perSecond);
    console.log(
      `  run ${run + 1}, ${count} replica${count === 1 ? '' : 's'}: ${perSecond.toFixed(1)} completions/s${failures > 0 ? ` (${failures} failed)` : ''}`,
    );
  }
}
const single = median(results.get(counts[0]!)!);
for (const count of counts) {
  const values = results.get(count)!;
  const value = median(values);
  console.log(
    `${count} replica${count === 1 ? ' ' : 's'}: ${value.toFixed(1)} completions/s (median; ${Math.min(...values).toFixed(1)}–${Math.max(...values).toFixed(1)}), ${(value / single).toFixed(2)}× ${counts[0]}`,
  );
}
