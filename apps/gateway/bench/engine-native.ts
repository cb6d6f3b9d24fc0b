/**
 * Engine-native overhead on loopback: `node --conditions=source --import tsx bench/engine-native.ts`.
 *
 * An engine-like server (src/test-support/engine-server.ts: the n-gram model, tracemark's mark in its
 * sampler, one SSE chunk per token with a pause per token as an engine's decoding takes) runs in one
 * process, the gateway in engine-native mode in another, and this process is the client. Two loads, each
 * sent straight to the engine and through the gateway (the order alternates between rounds), with the same
 * requests (same seeds, so the same text):
 * - steady: C streams kept in flight, as a serving load is: C clients, started evenly over one stream's
 *   length, each opening its next stream when the last one ends (ENGINE_BENCH_STEADY_STREAMS per client);
 * - burst: C streams opened at the same instant (the worst case for time to first token: the gateway
 *   takes the C requests one after another, on a core it shares with the engine and the client).
 * Per stream: the time to the first text chunk (TTFT), the time to `data: [DONE]`, and the text chunks
 * received. Each line reports the median over the rounds of the per-round medians (p95 of the end-to-end
 * times as well), and whether every stream through the gateway had exactly the chunks of its direct twin.
 *
 * Settings (environment): ENGINE_BENCH_STREAMS (50), ENGINE_BENCH_TOKENS (64), ENGINE_BENCH_TOKEN_MS
 * (20: the engine's time per token), ENGINE_BENCH_ROUNDS (5), ENGINE_BENCH_STEADY_STREAMS (4),
 * ENGINE_BENCH_SAMPLE_RATE (0.1: the live check's share), ENGINE_BENCH_PROFILE (a folder: the gateway
 * process writes a CPU profile there). Everything targets 127.0.0.1 and stops by itself.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { arch, cpus, tmpdir } from 'node:os';
import { join } from 'node:path';

const role = process.argv[2] ?? 'client';
const streams = Number(process.env.ENGINE_BENCH_STREAMS ?? 50);
const tokens = Number(process.env.ENGINE_BENCH_TOKENS ?? 64);
const tokenMs = Number(process.env.ENGINE_BENCH_TOKEN_MS ?? 20);
const rounds = Number(process.env.ENGINE_BENCH_ROUNDS ?? 5);
const steadyPerClient = Number(process.env.ENGINE_BENCH_STEADY_STREAMS ?? 4);
const sampleRate = Number(process.env.ENGINE_BENCH_SAMPLE_RATE ?? 0.1);
process.env.TRACEMARK_CACHE_DIR ||= join(tmpdir(), 'tracemark-test-cache');

/** The secret of the bench's key: fixed, so that the engine and the gateway share it without a file race. */
const BENCH_SECRET = new Uint8Array(32).fill(11);

if (role === 'engine') {
  const { createWatermarkKey } = await import('@tracemark/core');
  const { loadDefaultModel } = await import('@tracemark/lm');
  const { getTokenizer } = await import('@tracemark/tokenizers');
  const { startEngineServer } = await import('../src/test-support/engine-server.ts');
  const server = await startEngineServer({
    model: await loadDefaultModel({ tokenizerId: 'cl100k_base' }),
    tokenizer: getTokenizer('cl100k_base'),
    mark: { kind: 'tracemark', key: createWatermarkKey({ secret: BENCH_SECRET }) },
    chunkDelayMs: tokenMs,
  });
  process.stdout.write(`${JSON.stringify({ url: server.url })}\n`);
} else if (role === 'gateway') {
  const { mkdtempSync, rmSync } = await import('node:fs');
  const { createWatermarkKey } = await import('@tracemark/core');
  const { writeKeyFile } = await import('@tracemark/detection');
  const { buildApp, loggerOptions } = await import('../src/app.ts');
  const { prepareGateway } = await import('../src/bootstrap.ts');
  const { resolveConfig } = await import('../src/config.ts');
  const dataDir = mkdtempSync(join(tmpdir(), 'tracemark-engine-bench-'));
  const keyFile = join(dataDir, 'engine-key.json');
  await writeKeyFile(keyFile, createWatermarkKey({ secret: BENCH_SECRET }));
  const config = resolveConfig(
    {
      port: 0,
      dataDir,
      upstreamUrl: process.argv[3]!,
      upstreamWatermarkFile: keyFile,
      upstreamMarkSampleRate: sampleRate,
      rateLimitPerMinute: 10_000_000,
      dailyTokenQuota: Number.MAX_SAFE_INTEGER,
      completionTimeoutMs: 600_000,
      logLevel: 'warn',
    },
    {},
  );
  const prepared = await prepareGateway(config);
  const app = await buildApp(prepared.services, { logger: loggerOptions('warn') });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as { port: number };
  process.once('SIGINT', async () => {
    await app.close();
    await prepared.close();
    rmSync(dataDir, { recursive: true, force: true });
    process.exit(0); // an exit that writes the CPU profile
  });
  process.stdout.write(
    `${JSON.stringify({ url: `http://127.0.0.1:${port}`, key: prepared.firstStart.devApiKey })}\n`,
  );
} else {
  const here = import.meta.filename;
  const start = (args: string[]): { child: ChildProcess; ready: Promise<Record<string, string>> } => {
    // ENGINE_BENCH_PROFILE=DIR writes a CPU profile of the gateway process there.
    const profile =
      args[0] === 'gateway' && process.env.ENGINE_BENCH_PROFILE
        ? ['--cpu-prof', `--cpu-prof-dir=${process.env.ENGINE_BENCH_PROFILE}`]
        : [];
    const child = spawn(
      process.execPath,
      [...profile, '--conditions=source', '--import', 'tsx', here, ...args],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    const ready = new Promise<Record<string, string>>((resolve, reject) => {
      let buffer = '';
      child.stdout!.on('data', (chunk: Buffer) => {
        buffer += chunk.toString();
        if (buffer.includes('\n')) resolve(JSON.parse(buffer.split('\n')[0]!));
      });
      child.once('exit', (code) => reject(new Error(`${args[0]} exited (${code})`)));
    });
    return { child, ready };
  };
  const engine = start(['engine']);
  const engineUrl = (await engine.ready).url!;
  const gatewayProcess = start(['gateway', engineUrl]);
  const gateway = await gatewayProcess.ready;

  interface StreamResult {
    readonly ttftMs: number;
    readonly totalMs: number;
    readonly chunks: string[];
  }

  const stream = async (
    url: string,
    headers: Record<string, string>,
    seed: number,
  ): Promise<StreamResult> => {
    const started = performance.now();
    const response = await fetch(url, {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'engine-model',
        messages: [{ role: 'user', content: `Tell me story number ${seed}.` }],
        max_tokens: tokens,
        temperature: 0.9,
        top_p: 0.95,
        seed,
        stream: true,
      }),
    });
    if (!response.ok || response.body === null)
      throw new Error(`HTTP ${response.status}: ${await response.text()}`);
    const decoder = new TextDecoder();
    const chunks: string[] = [];
    let ttftMs = Number.NaN;
    let buffer = '';
    for await (const bytes of response.body) {
      buffer += decoder.decode(bytes, { stream: true });
      let end = buffer.indexOf('\n\n');
      while (end >= 0) {
        const event = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        end = buffer.indexOf('\n\n');
        if (!event.startsWith('data: ') || event === 'data: [DONE]') continue;
        const chunk = JSON.parse(event.slice(6));
        const text = chunk.choices?.[0]?.delta?.content;
        if (typeof text === 'string' && text !== '') {
          if (chunks.length === 0) ttftMs = performance.now() - started;
          chunks.push(text);
        }
      }
    }
    return { ttftMs, totalMs: performance.now() - started, chunks };
  };

  const median = (values: number[]) => {
    const sorted = [...values].sort((a, b) => a - b);
    const middle = Math.floor(sorted.length / 2);
    return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
  };
  const quantile = (values: number[], q: number) => {
    const sorted = [...values].sort((a, b) => a - b);
    return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
  };
  const open = (direct: boolean, seed: number) =>
    direct
      ? stream(`${engineUrl}/chat/completions`, {}, seed)
      : stream(`${gateway.url}/v1/chat/completions`, { authorization: `Bearer ${gateway.key}` }, seed);
  const burst = (direct: boolean, round: number) =>
    Promise.all(Array.from({ length: streams }, (_, i) => open(direct, round * 1000 + i + 1)));
  /** C clients started evenly over `spreadMs`, each opening its next stream when the last one ends. */
  const steady = async (direct: boolean, round: number, spreadMs: number) => {
    const results: StreamResult[] = [];
    await Promise.all(
      Array.from({ length: streams }, async (_, client) => {
        await new Promise((resolve) => setTimeout(resolve, (client * spreadMs) / streams));
        for (let j = 0; j < steadyPerClient; j++) {
          const index = client * steadyPerClient + j;
          results[index] = await open(direct, 500_000 + round * 10_000 + index);
        }
      }),
    );
    return results;
  };

  await burst(true, 99);
  await burst(false, 99); // warm-up: connections, JIT, the work pool
  const spreadMs = median((await burst(true, 98)).map((r) => r.totalMs));

  interface Measures {
    readonly directTtft: number[];
    readonly gatewayTtft: number[];
    readonly ttftAdded: number[];
    readonly directTotal: number[];
    readonly gatewayTotal: number[];
    readonly ratio: number[];
    readonly directP95: number[];
    readonly gatewayP95: number[];
    sameChunks: number;
    compared: number;
  }
  const measures = (): Measures => ({
    directTtft: [],
    gatewayTtft: [],
    ttftAdded: [],
    directTotal: [],
    gatewayTotal: [],
    ratio: [],
    directP95: [],
    gatewayP95: [],
    sameChunks: 0,
    compared: 0,
  });
  const add = (into: Measures, direct: StreamResult[], through: StreamResult[]) => {
    into.directTtft.push(median(direct.map((r) => r.ttftMs)));
    into.gatewayTtft.push(median(through.map((r) => r.ttftMs)));
    into.ttftAdded.push(median(through.map((r, i) => r.ttftMs - direct[i]!.ttftMs)));
    into.directTotal.push(median(direct.map((r) => r.totalMs)));
    into.gatewayTotal.push(median(through.map((r) => r.totalMs)));
    into.ratio.push(median(through.map((r, i) => r.totalMs / direct[i]!.totalMs)));
    into.directP95.push(
      quantile(
        direct.map((r) => r.totalMs),
        0.95,
      ),
    );
    into.gatewayP95.push(
      quantile(
        through.map((r) => r.totalMs),
        0.95,
      ),
    );
    through.forEach((r, i) => {
      into.compared++;
      if (JSON.stringify(r.chunks) === JSON.stringify(direct[i]!.chunks)) into.sameChunks++;
    });
  };
  const steadyMeasures = measures();
  const burstMeasures = measures();
  for (let round = 0; round < rounds; round++) {
    const first = round % 2 === 0;
    for (const [into, load] of [
      [steadyMeasures, (direct: boolean) => steady(direct, round, spreadMs)],
      [burstMeasures, (direct: boolean) => burst(direct, round)],
    ] as const) {
      const a = await load(first);
      const b = await load(!first);
      add(into, first ? a : b, first ? b : a);
    }
  }
  const ms = (values: number[]) =>
    `${median(values).toFixed(1)} ms (rounds ${Math.min(...values).toFixed(1)}–${Math.max(...values).toFixed(1)})`;
  const report = (title: string, m: Measures) => [
    title,
    `  TTFT median      direct ${ms(m.directTtft)}, through the gateway ${ms(m.gatewayTtft)}; added per stream ${ms(m.ttftAdded)}`,
    `  end-to-end median direct ${ms(m.directTotal)}, through the gateway ${ms(m.gatewayTotal)}`,
    `  end-to-end p95   direct ${ms(m.directP95)}, through the gateway ${ms(m.gatewayP95)}`,
    `  latency ratio (gateway / direct, per stream, median): ${median(m.ratio).toFixed(3)} (rounds ${Math.min(...m.ratio).toFixed(3)}–${Math.max(...m.ratio).toFixed(3)})`,
    `  chunks: ${m.sameChunks} of ${m.compared} streams had exactly the direct stream's text chunks`,
  ];
  const lines = [
    `engine-native overhead: ${streams} concurrent streams × ${tokens} tokens, engine ${tokenMs} ms/token, ${rounds} rounds, live check ${sampleRate * 100}%`,
    `  machine: ${cpus().length} × ${cpus()[0]?.model ?? arch()}, Node ${process.version}`,
    ...report(
      `steady: ${streams} streams in flight (${streams} clients started over ${spreadMs.toFixed(0)} ms, ${steadyPerClient} streams each, back to back)`,
      steadyMeasures,
    ),
    ...report(`burst: ${streams} streams opened at the same instant`, burstMeasures),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  gatewayProcess.child.kill('SIGINT');
  engine.child.kill();
  for (const m of [steadyMeasures, burstMeasures]) if (m.sameChunks !== m.compared) process.exitCode = 1;
}
