/**
 * Bounded load test on loopback: `pnpm --filter @tracemark/gateway loadtest`.
 *
 * 1. Overhead: N sequential non-streamed completions through the gateway (HTTP, auth, rate limit, quota,
 *    issuance log) versus the same generations run on the embedded backend directly in-process.
 * 2. Load: C concurrent streaming clients for D seconds (autocannon); errors, non-2xx, p50/p99 latency, and the
 *    resident memory sampled every second.
 *
 * Settings (environment): LOADTEST_SECONDS (60), LOADTEST_CONNECTIONS (50), LOADTEST_TOKENS (32),
 * LOADTEST_SEQUENTIAL (200). Everything targets 127.0.0.1 and stops by itself.
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
process.env.TRACEMARK_CACHE_DIR ||= join(tmpdir(), 'tracemark-test-cache');

// The gateway runs in its own process, so the load generator does not share its event loop.
const server = spawn(
  process.execPath,
  ['--conditions=source', '--import', 'tsx', join(import.meta.dirname, 'loadtest-server.ts')],
  {
    stdio: ['ignore', 'pipe', 'inherit'],
  },
);
const ready = await new Promise<{ url: string; key: string }>((resolve, reject) => {
  let buffer = '';
  server.stdout.on('data', (chunk: Buffer) => {
    buffer += chunk.toString();
    if (buffer.includes('\n')) resolve(JSON.parse(buffer.split('\n')[0]!));
  });
  server.once('exit', (code) => reject(new Error(`the gateway exited (${code})`)));
});
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
const messages = [{ role: 'user', content: 'Tell me about the weather in the mountains.' }];
const mb = (bytes: number) => (bytes / 1024 / 1024).toFixed(0);

// 1. Overhead at concurrency 1.
const prompt = backend.tokenizer.encodeFast('Tell me about the weather in the mountains.\n\n');
const direct = async () => {
  const started = performance.now();
  await runChoice({
    backend,
    stops: [],
    request: {
      model,
      promptTokens: prompt,
      messages: null,
      maxTokens: tokens,
      temperature: 0.8,
      topP: 0.95,
      random: createRandom(),
      watermarker,
      signal: new AbortController().signal,
      topLogprobs: null,
    },
  });
  return performance.now() - started;
};
const viaGateway = async () => {
  const started = performance.now();
  const response = await fetch(url, {
    method: 'POST',
    headers,
    body: JSON.stringify({ model, messages, max_tokens: tokens }),
  });
  if (response.status !== 200) throw new Error(`HTTP ${response.status}`);
  await response.json();
  return performance.now() - started;
};
for (let i = 0; i < 20; i++) {
  await direct();
  await viaGateway();
}
const directTimes: number[] = [];
const gatewayTimes: number[] = [];
for (let i = 0; i < sequential; i++) {
  directTimes.push(await direct());
  gatewayTimes.push(await viaGateway());
}
const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
console.log(
  `overhead, ${sequential} sequential completions of ${tokens} tokens: direct ${mean(directTimes).toFixed(2)} ms mean (${median(directTimes).toFixed(2)} median), via the gateway ${mean(gatewayTimes).toFixed(2)} ms mean (${median(gatewayTimes).toFixed(2)} median); ratio ${(mean(gatewayTimes) / mean(directTimes)).toFixed(2)} (mean), ${(median(gatewayTimes) / median(directTimes)).toFixed(2)} (median)`,
);

// 2. Load: concurrent streams.
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
const metrics = await (await fetch(`${ready.url}/metrics`)).text();
const issued = Number(/^tracemark_issuance_records_total (\S+)$/m.exec(metrics)?.[1] ?? 0);
const quarter = Math.max(1, Math.floor(memory.length / 4));
console.log(
  `load, ${connections} concurrent streams for ${seconds} s, ${tokens} tokens each: ${result.requests.total} completions (${result.requests.average.toFixed(1)}/s, ${(result.requests.average * tokens).toFixed(0)} tokens/s), ${result.errors} errors, ${result.timeouts} timeouts, ${result.non2xx} non-2xx; latency p50 ${result.latency.p50} ms, p99 ${result.latency.p99} ms, max ${result.latency.max} ms; issuance records ${issued}`,
);
console.log(
  `memory (RSS): ${mb(memory[0] ?? 0)} MB at 1 s, ${mb(memory[quarter] ?? 0)} MB at ${quarter + 1} s, ${mb(memory[memory.length - 1] ?? 0)} MB at the end; min ${mb(Math.min(...memory))} MB, max ${mb(Math.max(...memory))} MB after warm-up ${mb(Math.max(...memory.slice(quarter)))} MB`,
);
console.log(
  `machine: ${cpus()[0]?.model ?? 'unknown CPU'} × ${cpus().length} (${arch()}), Node ${process.version}`,
);

server.kill('SIGTERM');
if (result.errors > 0 || result.non2xx > 0 || result.timeouts > 0) process.exitCode = 1;
