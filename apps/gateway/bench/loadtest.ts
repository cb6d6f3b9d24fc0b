/**
 * Bounded load test on loopback: `pnpm --filter @tracemark/gateway loadtest`.
 *
 * 1. Overhead at concurrency 1: N sequential non-streamed completions through the gateway (HTTP, auth, rate
 *    limit, quota, issuance log) versus the same generations run on the embedded backend directly in-process,
 *    one of each in turn.
 * 2. Overhead at concurrency C: C concurrent streams, each making K streamed completions one after another,
 *    through the gateway; versus C concurrent streamed generations (`runChoice` with `onDelta`) in-process.
 *    Per completion: the time to the end of the stream (`data: [DONE]`); per run: the wall time.
 * Both are repeated R times, direct and gateway interleaved (the order alternates between runs); each line
 * reports the median of the R runs' ratios with their range.
 * 3. Load: C concurrent streaming clients for D seconds (autocannon); errors, non-2xx, p50/p99 latency, and the
 *    resident memory sampled every second.
 *
 * Settings (environment): LOADTEST_SECONDS (60; 0 skips the load phase), LOADTEST_CONNECTIONS (50),
 * LOADTEST_TOKENS (32), LOADTEST_SEQUENTIAL (200), LOADTEST_PER_STREAM (4), LOADTEST_RUNS (5),
 * LOADTEST_DATABASE_URL (PostgreSQL instead of SQLite: a fresh schema, dropped at the end),
 * LOADTEST_GENERATION_THREADS (the gateway's, default 1; 0: the model on its event loop's thread), LOADTEST_PROFILE (a
 * folder: the gateway process writes a CPU profile there). Everything targets
 * 127.0.0.1 and stops by itself.
 */
import { spawn } from 'node:child_process';
import { arch, cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRandom, createWatermarker, createWatermarkKey } from '@tracemark/core';
import autocannon from 'autocannon';
import { createEmbeddedBackend } from '../src/backends/embedded.ts';
import { runChoice } from '../src/generation/run-choice.ts';

const seconds = Number(process.env.LOADTEST_SECONDS ?? 60);
const connections = Number(process.env.LOADTEST_CONNECTIONS ?? 50);
const tokens = Number(process.env.LOADTEST_TOKENS ?? 32);
const sequential = Number(process.env.LOADTEST_SEQUENTIAL ?? 200);
const perStream = Number(process.env.LOADTEST_PER_STREAM ?? 4);
const runs = Number(process.env.LOADTEST_RUNS ?? 5);
process.env.TRACEMARK_CACHE_DIR ||= join(tmpdir(), 'tracemark-test-cache');

// The gateway runs in its own process, so the load generator does not share its event loop.
const server = spawn(
  process.execPath,
  [
    // LOADTEST_PROFILE=DIR: the gateway process writes a CPU profile there when it exits.
    ...(process.env.LOADTEST_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.LOADTEST_PROFILE}`] : []),
    '--conditions=source',
    '--import',
    'tsx',
    join(import.meta.dirname, 'loadtest-server.ts'),
  ],
  {
    stdio: ['ignore', 'pipe', 'inherit'],
  },
);
const ready = await new Promise<{ url: string; key: string; generationThreads: number }>(
  (resolve, reject) => {
    let buffer = '';
    server.stdout.on('data', (chunk: Buffer) => {
      buffer += chunk.toString();
      if (buffer.includes('\n')) resolve(JSON.parse(buffer.split('\n')[0]!));
    });
    server.once('exit', (code) => reject(new Error(`the gateway exited (${code})`)));
  },
);
const url = `${ready.url}/v1/chat/completions`;
const headers = { authorization: `Bearer ${ready.key}`, 'content-type': 'application/json' };
const model = 'tracemark-ngram';
const backend = await createEmbeddedBackend({ tokenizerId: 'cl100k_base', modelId: model });
const watermarker = createWatermarker(createWatermarkKey(), {
  specialTokenIds: backend.tokenizer.specialTokenIds,
});
const residentMemory = async (): Promise<number> => {
  const text = await (await fetch(`${ready.url}/metrics`)).text();
  return Number(/^tracemark_process_resident_memory_bytes (\S+)$/m.exec(text)?.[1] ?? 0);
};
const issuedRecords = async (): Promise<number> => {
  const text = await (await fetch(`${ready.url}/metrics`)).text();
  return Number(/^tracemark_issuance_records_total (\S+)$/m.exec(text)?.[1] ?? 0);
};
/** The monitor's main-thread seconds by stage, the process's CPU seconds and the records, from /metrics. */
const monitorCost = async () => {
  const text = await (await fetch(`${ready.url}/metrics`)).text();
  const value = (pattern: RegExp) => Number(pattern.exec(text)?.[1] ?? 0);
  const stages = Object.fromEntries(
    ['screen', 'audit', 'observe'].map((stage) => [
      stage,
      value(new RegExp(`^tracemark_monitor_work_seconds_sum\\{stage="${stage}"\\} (\\S+)$`, 'm')),
    ]),
  ) as Record<'screen' | 'audit' | 'observe', number>;
  return {
    stages,
    cpu: value(/^tracemark_process_cpu_seconds_total (\S+)$/m),
    records: value(/^tracemark_issuance_records_total (\S+)$/m),
  };
};
const costAtStart = await monitorCost();
const messages = [{ role: 'user', content: 'Tell me about the weather in the mountains.' }];
const mb = (bytes: number) => (bytes / 1024 / 1024).toFixed(0);
const mean = (values: readonly number[]) => values.reduce((a, b) => a + b, 0) / values.length;
const median = (values: readonly number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
};
/** `median (min–max)` of per-run values. */
const spread = (values: readonly number[], digits = 2) =>
  `${median(values).toFixed(digits)} (${Math.min(...values).toFixed(digits)}–${Math.max(...values).toFixed(digits)})`;

const prompt = backend.tokenizer.encodeFast('Tell me about the weather in the mountains.\n\n');
/** One generation on the embedded backend in this process; streamed: through `onDelta`, as the route does. */
const direct = async (stream: boolean) => {
  const seed = Math.floor(Math.random() * 2 ** 32);
  const started = performance.now();
  await runChoice({
    backend,
    stops: [],
    ...(stream ? { onDelta: async () => undefined } : {}),
    request: {
      model,
      promptTokens: prompt,
      messages: null,
      maxTokens: tokens,
      temperature: 0.8,
      topP: 0.95,
      random: createRandom(seed),
      seed,
      watermarker,
      signal: new AbortController().signal,
      topLogprobs: null,
    },
  });
  return performance.now() - started;
};
/** One completion through the gateway, to its last byte (`data: [DONE]` when streamed). */
const viaGateway = async (stream: boolean) => {
  const started = performance.now();
  const response = await fetch(url, {
    method: 'POST',
    headers,
    body: JSON.stringify({ model, messages, max_tokens: tokens, ...(stream ? { stream: true } : {}) }),
  });
  if (response.status !== 200) throw new Error(`HTTP ${response.status}`);
  const body = await response.text();
  if (stream && !body.endsWith('data: [DONE]\n\n')) throw new Error('a stream ended without [DONE]');
  return performance.now() - started;
};

interface Sample {
  readonly latencies: number[];
  /** Completions that failed (non-200, or a stream without [DONE]). */
  readonly failures: number;
  /** Wall time of the whole run, ms. */
  readonly wall: number;
}
/** `streams` concurrent loops of `each` completions; every completion's latency and the run's wall time. */
const concurrently = async (
  complete: (stream: boolean) => Promise<number>,
  streams: number,
  each: number,
): Promise<Sample> => {
  const latencies: number[] = [];
  let failures = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: streams }, async () => {
      for (let i = 0; i < each; i++) {
        try {
          latencies.push(await complete(true));
        } catch {
          failures++;
        }
      }
    }),
  );
  return { latencies, failures, wall: performance.now() - started };
};

const machine = `machine: ${cpus()[0]?.model ?? 'unknown CPU'} × ${cpus().length} (${arch()}), Node ${process.version}, storage ${process.env.LOADTEST_DATABASE_URL === undefined ? 'SQLite' : 'PostgreSQL'}, the gateway's generation threads ${ready.generationThreads} (0: its event loop's thread)`;
console.log(machine);

// 1. Overhead at concurrency 1.
for (let i = 0; i < 20; i++) {
  await direct(false);
  await viaGateway(false);
}
const sequentialRuns: { direct: number[]; gateway: number[] }[] = [];
for (let run = 0; run < runs; run++) {
  const times = { direct: [] as number[], gateway: [] as number[] };
  for (let i = 0; i < sequential; i++) {
    const gatewayFirst = (run + i) % 2 === 1;
    if (gatewayFirst) times.gateway.push(await viaGateway(false));
    times.direct.push(await direct(false));
    if (!gatewayFirst) times.gateway.push(await viaGateway(false));
  }
  sequentialRuns.push(times);
}
const perRun = <T>(samples: readonly T[], value: (sample: T) => number) => samples.map(value);
console.log(
  `overhead, ${sequential} sequential completions of ${tokens} tokens, median of ${runs} runs (range): direct ${spread(perRun(sequentialRuns, (r) => mean(r.direct)))} ms mean, ${spread(perRun(sequentialRuns, (r) => median(r.direct)))} ms median; via the gateway ${spread(perRun(sequentialRuns, (r) => mean(r.gateway)))} ms mean, ${spread(perRun(sequentialRuns, (r) => median(r.gateway)))} ms median; ratio ${spread(perRun(sequentialRuns, (r) => mean(r.gateway) / mean(r.direct)))} (mean), ${spread(perRun(sequentialRuns, (r) => median(r.gateway) / median(r.direct)))} (median)`,
);

// 2. Overhead at concurrency C.
await concurrently(direct, connections, 1);
await concurrently(viaGateway, connections, 1);
const concurrentRuns: { direct: Sample; gateway: Sample }[] = [];
for (let run = 0; run < runs; run++) {
  let directSample: Sample;
  let gatewaySample: Sample;
  if (run % 2 === 0) {
    directSample = await concurrently(direct, connections, perStream);
    gatewaySample = await concurrently(viaGateway, connections, perStream);
  } else {
    gatewaySample = await concurrently(viaGateway, connections, perStream);
    directSample = await concurrently(direct, connections, perStream);
  }
  concurrentRuns.push({ direct: directSample, gateway: gatewaySample });
}
const completionsPerRun = connections * perStream;
console.log(
  `overhead, ${connections} concurrent streams × ${perStream} streamed completions of ${tokens} tokens, median of ${runs} runs (range): latency to [DONE] direct ${spread(
    perRun(concurrentRuns, (r) => mean(r.direct.latencies)),
    1,
  )} ms mean, ${spread(
    perRun(concurrentRuns, (r) => median(r.direct.latencies)),
    1,
  )} ms median; via the gateway ${spread(
    perRun(concurrentRuns, (r) => mean(r.gateway.latencies)),
    1,
  )} ms mean, ${spread(
    perRun(concurrentRuns, (r) => median(r.gateway.latencies)),
    1,
  )} ms median; ratio ${spread(perRun(concurrentRuns, (r) => mean(r.gateway.latencies) / mean(r.direct.latencies)))} (mean), ${spread(perRun(concurrentRuns, (r) => median(r.gateway.latencies) / median(r.direct.latencies)))} (median); throughput direct ${spread(
    perRun(concurrentRuns, (r) => (completionsPerRun / r.direct.wall) * 1000),
    1,
  )}/s, via the gateway ${spread(
    perRun(concurrentRuns, (r) => (completionsPerRun / r.gateway.wall) * 1000),
    1,
  )}/s, wall-time ratio ${spread(perRun(concurrentRuns, (r) => r.gateway.wall / r.direct.wall))}; failed completions via the gateway ${concurrentRuns.reduce((sum, r) => sum + r.gateway.failures, 0)}`,
);

// 3. Load: concurrent streams for a fixed time.
let failed = concurrentRuns.some((r) => r.gateway.failures > 0);
if (seconds > 0) {
  const memory: number[] = [];
  const sampler = setInterval(() => {
    residentMemory().then(
      (rss) => memory.push(rss),
      () => undefined,
    );
  }, 1000);
  const result = await autocannon({
    url,
    method: 'POST',
    headers,
    body: JSON.stringify({ model, messages, max_tokens: tokens, stream: true }),
    connections,
    duration: seconds,
    timeout: 30,
  });
  clearInterval(sampler);
  const quarter = Math.max(1, Math.floor(memory.length / 4));
  console.log(
    `load, ${connections} concurrent streams for ${seconds} s, ${tokens} tokens each: ${result.requests.total} completions (${result.requests.average.toFixed(1)}/s, ${(result.requests.average * tokens).toFixed(0)} tokens/s), ${result.errors} errors, ${result.timeouts} timeouts, ${result.non2xx} non-2xx; latency p50 ${result.latency.p50} ms, p99 ${result.latency.p99} ms, max ${result.latency.max} ms`,
  );
  console.log(
    `memory (RSS): ${mb(memory[0] ?? 0)} MB at 1 s, ${mb(memory[quarter] ?? 0)} MB at ${quarter + 1} s, ${mb(memory[memory.length - 1] ?? 0)} MB at the end; min ${mb(Math.min(...memory))} MB, max ${mb(Math.max(...memory))} MB after warm-up ${mb(Math.max(...memory.slice(quarter)))} MB`,
  );
  failed ||= result.errors > 0 || result.non2xx > 0 || result.timeouts > 0;
}
console.log(`issuance records ${await issuedRecords()}`);
{
  // Extraction monitoring's own work over the whole run (LOADTEST_MONITOR=0: none).
  const end = await monitorCost();
  const completions = Math.max(1, end.records - costAtStart.records);
  const spent = (stage: 'screen' | 'audit' | 'observe') => end.stages[stage] - costAtStart.stages[stage];
  const total = spent('screen') + spent('audit') + spent('observe');
  const cpu = end.cpu - costAtStart.cpu;
  const perCompletion = (seconds: number) => `${((seconds / completions) * 1000).toFixed(3)} ms`;
  console.log(
    `monitoring work over the run: ${perCompletion(total)} of main-thread time per completion (screening ${perCompletion(spent('screen'))} and audit ${perCompletion(spent('audit'))} on the request path, observing ${perCompletion(spent('observe'))} off it), ${((100 * total) / Math.max(cpu, 1e-9)).toFixed(2)}% of the gateway process's CPU time (${cpu.toFixed(1)} s for ${completions} completions)`,
  );
}

server.kill('SIGTERM');
if (failed) process.exitCode = 1;
