/**
 * Where small inputs should run, measured: `pnpm --filter @tracemark/gateway work-pool-bench`.
 *
 * For texts of several sizes and shapes (prose, and the worst runs of the defect report: one letter, one
 * emoji, NUL, combining marks), the median time to tokenize them inline, on the event loop, and through a
 * work thread (a round trip: structured clone there, tokens transferred back). Inline work is time the
 * event loop cannot answer anyone else; the round trip is latency the request alone pays. The inline
 * threshold (`INLINE_WORK_LIMIT`) is the size below which the worst inline case costs about as much as a
 * round trip. Settings: WORK_BENCH_ROUNDS (25).
 */
import { cpus } from 'node:os';
import { createWatermarkKey } from '@tracemark/core';
import { generateSigningKey } from '@tracemark/provenance';
import { createWorkPool, INLINE_WORK_LIMIT } from '../src/work/pool.ts';

const rounds = Number(process.env.WORK_BENCH_ROUNDS ?? 25);
const key = createWatermarkKey();
const pool = createWorkPool({
  keys: { watermarkKey: key, rootWatermarkKey: key, logSigningKey: generateSigningKey('bench.example/log') },
  threads: 1,
  budgetMs: 60_000,
  queueLimit: 4,
  inlineLimit: -1,
});
const PROSE =
  'The committee met on Tuesday to discuss the budget for the coming year, and after a long debate it agreed to postpone the vote. ';
const SHAPES: Readonly<Record<string, (length: number) => string>> = {
  prose: (length) => PROSE.repeat(Math.ceil(length / PROSE.length)).slice(0, length),
  '"a" run': (length) => 'a'.repeat(length),
  'emoji run': (length) => '😀'.repeat(length / 2),
  'NUL run': (length) => '\u0000'.repeat(length),
  'combining marks': (length) => `e${'\u0301'.repeat(length - 1)}`,
};
const SIZES = [256, 512, 1024, 2048, 4096];

const median = (values: number[]) => values.sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

async function time(run: () => unknown): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const started = performance.now();
    await run();
    samples.push(performance.now() - started);
  }
  return median(samples);
}

// Warm both paths (thread start, JIT) before measuring.
for (let i = 0; i < 20; i++) {
  await pool.run({ kind: 'encode', text: PROSE, param: 'text' });
  pool.context.tokenizer.encodeFast(PROSE);
}

console.log(`Node ${process.version}, ${cpus()[0]?.model ?? 'unknown CPU'} × ${cpus().length}`);
console.log(`median of ${rounds}, milliseconds; inline threshold now ${INLINE_WORK_LIMIT} code units\n`);
console.log(`| text | ${SIZES.map((size) => `${size} inline / thread`).join(' | ')} |`);
console.log(`| --- | ${SIZES.map(() => '---').join(' | ')} |`);
for (const [shape, make] of Object.entries(SHAPES)) {
  const cells: string[] = [];
  for (const size of SIZES) {
    const text = make(size);
    const inline = await time(() => pool.context.tokenizer.encodeFast(text));
    const threaded = await time(() => pool.run({ kind: 'encode', text, param: 'text' }));
    cells.push(`${inline.toFixed(2)} / ${threaded.toFixed(2)}`);
  }
  console.log(`| ${shape} | ${cells.join(' | ')} |`);
}
await pool.close();
