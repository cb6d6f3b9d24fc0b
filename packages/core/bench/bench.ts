/**
 * Core benchmarks: scoring throughput on pre-tokenized ids, and the cost of one watermarked
 * sampling step relative to a plain softmax-and-sample over the same logits. Single-threaded.
 * Run: pnpm --filter @tracemark/core bench   (or `pnpm bench` at the root)
 */
import os from 'node:os';
import {
  createRandom,
  createWatermarker,
  createWatermarkKey,
  type SchemeParams,
  Scorer,
  sampleToken,
} from '../src/index.ts';

const quick = process.argv.includes('--quick');
const VOCAB = 100_000;

function zipfIds(count: number, exponent: number, seed: number): Uint32Array {
  const random = createRandom(seed);
  const cumulative = new Float64Array(VOCAB);
  let total = 0;
  for (let r = 0; r < VOCAB; r++) cumulative[r] = total += 1 / (r + 1) ** exponent;
  const ids = new Uint32Array(count);
  for (let i = 0; i < count; i++) {
    const target = random.nextFloat() * total;
    let lo = 0;
    let hi = VOCAB - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cumulative[mid]! > target) hi = mid;
      else lo = mid + 1;
    }
    ids[i] = (lo * 2654435761) % VOCAB;
  }
  return ids;
}

function uniformIds(count: number, seed: number): Uint32Array {
  const random = createRandom(seed);
  return Uint32Array.from({ length: count }, () => random.nextUint32() % VOCAB);
}

function best(runs: number, body: () => void): number {
  let fastest = Number.POSITIVE_INFINITY;
  for (let r = 0; r < runs; r++) {
    const start = performance.now();
    body();
    fastest = Math.min(fastest, performance.now() - start);
  }
  return fastest;
}

const schemes: SchemeParams[] = [
  { name: 'lefthash', contextWidth: 1 },
  { name: 'lefthash', contextWidth: 4 },
  { name: 'selfhash', contextWidth: 4 },
];
const label = (s: SchemeParams) => `${s.name}(h=${s.contextWidth})`;

console.log(
  `# tracemark core benchmark\n\nNode ${process.version}, ${os.cpus()[0]?.model ?? 'unknown CPU'}, one thread.\n`,
);
console.log('## Scoring pre-tokenized ids (dedup on), million tokens/s\n');
console.log('| scheme | Zipf(1.1) ids, 2M | uniform ids, 2M |');
console.log('| --- | --- | --- |');
const size = quick ? 200_000 : 2_000_000;
const zipf = zipfIds(size, 1.1, 1);
const uniform = uniformIds(size, 2);
for (const scheme of schemes) {
  const watermarker = createWatermarker(createWatermarkKey({ secret: new Uint8Array(32).fill(5), scheme }));
  const rate = (ids: Uint32Array) => {
    const ms = best(quick ? 1 : 3, () => new Scorer(watermarker).push(ids));
    return (ids.length / ms / 1000).toFixed(2);
  };
  console.log(`| ${label(scheme)} | ${rate(zipf)} | ${rate(uniform)} |`);
}

console.log('\n## One sampling step over a 100k-token vocabulary (temperature 1, no truncation)\n');
console.log('| scheme | plain softmax+sample (µs) | watermarked (µs) | ratio |');
console.log('| --- | --- | --- | --- |');
const steps = quick ? 50 : 400;
const random = createRandom(3);
const logits = new Float32Array(VOCAB);
for (let i = 0; i < VOCAB; i++) logits[i] = 4 * Math.log(random.nextFloat() + 1e-12);
for (const scheme of schemes) {
  const watermarker = createWatermarker(createWatermarkKey({ secret: new Uint8Array(32).fill(6), scheme }));
  const plain = best(3, () => {
    for (let s = 0; s < steps; s++) sampleToken(logits, [s, s + 1, s + 2, s + 3], random);
  });
  const marked = best(3, () => {
    for (let s = 0; s < steps; s++) sampleToken(logits, [s, s + 1, s + 2, s + 3], random, { watermarker });
  });
  console.log(
    `| ${label(scheme)} | ${((plain / steps) * 1000).toFixed(0)} | ${((marked / steps) * 1000).toFixed(0)} | ${(marked / plain).toFixed(3)} |`,
  );
}

console.log('\n## One sampling step over a 100k-token vocabulary with top-p 0.95 (median of 5 runs)\n');
console.log(
  '| scheme | plain, top-p 0.95 (µs) | watermarked, top-p of the watermarked distribution (µs) | ratio |',
);
console.log('| --- | --- | --- | --- |');
const medianOf = (runs: number, body: () => void): number => {
  const times: number[] = [];
  for (let r = 0; r < runs; r++) {
    const started = performance.now();
    body();
    times.push(performance.now() - started);
  }
  return times.sort((a, b) => a - b)[runs >> 1]!;
};
const truncatedSteps = quick ? 5 : 20;
for (const scheme of schemes) {
  const watermarker = createWatermarker(createWatermarkKey({ secret: new Uint8Array(32).fill(6), scheme }));
  const plain = medianOf(5, () => {
    for (let s = 0; s < truncatedSteps; s++)
      sampleToken(logits, [s, s + 1, s + 2, s + 3], random, { topP: 0.95 });
  });
  const marked = medianOf(5, () => {
    for (let s = 0; s < truncatedSteps; s++)
      sampleToken(logits, [s, s + 1, s + 2, s + 3], random, { watermarker, topP: 0.95 });
  });
  console.log(
    `| ${label(scheme)} | ${((plain / truncatedSteps) * 1000).toFixed(0)} | ${((marked / truncatedSteps) * 1000).toFixed(0)} | ${(marked / plain).toFixed(3)} |`,
  );
}
