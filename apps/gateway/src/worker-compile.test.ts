/**
 * The gateway's threads optimize their code on their own thread (worker-compile.ts): each scenario runs
 * in a process of its own under `--trace-opt`, which names every optimizing compile and its mode. The
 * main thread compiles in the background (kConcurrent) either way; a synchronous compile (kSynchronous)
 * comes only from a worker started after `compileWorkersInline`, as the control shows.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/** The optimizing compiles of a script (run from the package's sources), by mode. */
function compileModes(script: string): { synchronous: number; concurrent: number } {
  const run = spawnSync(
    process.execPath,
    ['--conditions=source', '--import', 'tsx', '--trace-opt', '--input-type=module', '-e', script],
    { cwd: fileURLToPath(new URL('..', import.meta.url)), encoding: 'utf8', timeout: 90_000 },
  );
  expect(run.status, run.stderr).toBe(0);
  const modes = [...run.stdout.matchAll(/compiling method .*mode: ConcurrencyMode::(\w+)/g)].map((m) => m[1]);
  return {
    synchronous: modes.filter((mode) => mode === 'kSynchronous').length,
    concurrent: modes.filter((mode) => mode === 'kConcurrent').length,
  };
}

describe("the gateway's worker threads compile inline", () => {
  it('control: a worker started without it compiles in the background only', () => {
    const modes = compileModes(`
      import { Worker } from 'node:worker_threads';
      const worker = new Worker('function hot(n) { let s = 0; for (let i = 0; i < n; i++) s += (i * 7) % 13; return s; }' +
        'let t = 0; for (let k = 0; k < 3000; k++) t += hot(1000);', { eval: true });
      await new Promise((resolve) => worker.once('exit', resolve));`);
    expect(modes.concurrent).toBeGreaterThan(0);
    expect(modes.synchronous).toBe(0);
  }, 90_000);

  it("the work pool's threads (a task past its budget ends its thread)", () => {
    const modes = compileModes(`
      import { createWatermarkKey, deriveSubkey } from '@tracemark/core';
      import { generateSigningKey } from '@tracemark/provenance';
      import { createWorkPool } from './src/work/pool.ts';
      const root = createWatermarkKey();
      const keys = { watermarkKey: deriveSubkey(root, 'epoch/2026'), rootWatermarkKey: root,
        logSigningKey: generateSigningKey('tracemark.test/compile') };
      const pool = createWorkPool({ keys, threads: 1, budgetMs: 30_000, queueLimit: 8, inlineLimit: -1 });
      const text = 'The committee met on Tuesday to discuss the budget for the coming year. '.repeat(600);
      for (let i = 0; i < 5; i++) await pool.run({ kind: 'detect', text, window: true });
      await pool.close();`);
    expect(modes.synchronous).toBeGreaterThan(0);
  }, 90_000);

  it('the generation threads', () => {
    const modes = compileModes(`
      import { createWatermarker, createWatermarkKey, createRandom } from '@tracemark/core';
      import { createThreadedEmbeddedBackend } from './src/backends/threaded-embedded.ts';
      const backend = await createThreadedEmbeddedBackend({ tokenizerId: 'cl100k_base', modelId: 'm', threads: 1 });
      const watermarker = createWatermarker(createWatermarkKey({ secret: new Uint8Array(32).fill(1) }));
      for await (const step of backend.generate({ model: 'm', promptTokens: new Uint32Array([791]), messages: null,
        maxTokens: 400, temperature: 0.8, topP: 1, random: createRandom(1), seed: 1, watermarker,
        signal: new AbortController().signal, topLogprobs: null }));
      await backend.close();`);
    expect(modes.synchronous).toBeGreaterThan(0);
  }, 90_000);
});
