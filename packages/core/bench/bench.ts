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

const rounds = (() => {
  const at = process.argv.indexOf('--rounds');
  return at > 0 ? Number(process.argv[at + 1]) : quick ? 3 : 11;
})();

/** Milliseconds of one call of `body`. */
function time(body: () => void): number {
  const start = performance.now();
  body();
  return performance.now() - start;
}

/**
 * Runs the bodies in turn, `rounds` times (a, b, a, b, …, so that both see the same load; one call each first,
 * to warm up) and gives each one's times sorted.
 */
function interleaved(...bodies: (() => void)[]): number[][] {
  for (const body of bodies) body();
  const times = bodies.map(() => [] as number[]);
  for (let r = 0; r < rounds; r++) {
    for (const [i, body] of bodies.entries()) times[i]!.push(time(body));
  }
  return times.map((list) => list.sort((a, b) => a - b));
}
const median = (sorted: readonly number[]): number => sorted[sorted.length >> 1]!;
/** `median (min–max)` of `sorted`, each through `show`. */
const spread = (sorted: readonly number[], show: (ms: number) => string): string =>
  `${show(median(sorted))} (${show(sorted[0]!)}–${show(sorted.at(-1)!)})`;

const schemes: SchemeParams[] = [
  { name: 'lefthash', contextWidth: 1 },
  { name: 'lefthash', contextWidth: 4 },
  { name: 'selfhash', contextWidth: 4 },
];
const label = (s: SchemeParams) => `${s.name}(h=${s.contextWidth})`;

console.log(
  `# tracemark core benchmark\n\nNode ${process.version}, ${os.cpus()[0]?.model ?? 'unknown CPU'}, one thread; each cell is the median of ${rounds} interleaved rounds (fastest–slowest round: for a rate, the slowest round's rate first).\n`,
);
console.log('## Scoring pre-tokenized ids (dedup on), million tokens/s\n');
console.log('| scheme | Zipf(1.1) ids, 2M | uniform ids, 2M |');
console.log('| --- | --- | --- |');
const size = quick ? 200_000 : 2_000_000;
const zipf = zipfIds(size, 1.1, 1);
const uniform = uniformIds(size, 2);
for (const scheme of schemes) {
  const watermarker = createWatermarker(createWatermarkKey({ secret: new Uint8Array(32).fill(5), scheme }));
  const [zipfTimes, uniformTimes] = interleaved(
    () => new Scorer(watermarker).push(zipf),
    () => new Scorer(watermarker).push(uniform),
  );
  const rate = (ms: number) => (size / ms / 1000).toFixed(2);
  // slower rounds give lower rates: the range is written low–high
  const rates = (sorted: number[]) => spread([...sorted].reverse(), rate);
  console.log(`| ${label(scheme)} | ${rates(zipfTimes!)} | ${rates(uniformTimes!)} |`);
}

const random = createRandom(3);
const logits = new Float32Array(VOCAB);
for (let i = 0; i < VOCAB; i++) logits[i] = 4 * Math.log(random.nextFloat() + 1e-12);

/** One table: plain and watermarked sampling steps over the 100k-token logits, interleaved. */
function samplingTable(title: string, steps: number, topP: number | undefined): void {
  console.log(`\n## ${title}\n`);
  console.log('| scheme | plain (µs a step) | watermarked (µs a step) | ratio of the medians |');
  console.log('| --- | --- | --- | --- |');
  for (const scheme of schemes) {
    const watermarker = createWatermarker(createWatermarkKey({ secret: new Uint8Array(32).fill(6), scheme }));
    const truncation = topP === undefined ? {} : { topP };
    const [plain, marked] = interleaved(
      () => {
        for (let s = 0; s < steps; s++) sampleToken(logits, [s, s + 1, s + 2, s + 3], random, truncation);
      },
      () => {
        for (let s = 0; s < steps; s++)
          sampleToken(logits, [s, s + 1, s + 2, s + 3], random, { watermarker, ...truncation });
      },
    );
    const perStep = (ms: number) => ((ms / steps) * 1000).toFixed(0);
    console.log(
      `| ${label(scheme)} | ${spread(plain!, perStep)} | ${spread(marked!, perStep)} | ${(median(marked!) / median(plain!)).toFixed(3)} |`,
    );
  }
}
samplingTable(
  'One sampling step over a 100k-token vocabulary (temperature 1, no truncation)',
  quick ? 50 : 400,
  undefined,
);
samplingTable(
  'One sampling step over a 100k-token vocabulary with top-p 0.95 (watermarked: top-p of the watermarked distribution)',
  quick ? 5 : 20,
  0.95,
);
