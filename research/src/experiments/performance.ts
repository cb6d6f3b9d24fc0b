/**
 * Experiment 5, performance, as ratios measured in one run so that machine speed and load cancel:
 * text detection against tokenization alone, scoring throughput, and a watermarked sampling step (and
 * a whole generation step) against a plain one. Pairs are timed alternately, several rounds; medians.
 * Pending (other packages are being built): gateway overhead and scan throughput.
 */

import { createRandom, createWatermarkKey, detect, type SparseLogits, sampleToken } from '@tracemark/core';
import { createTextDetector } from '@tracemark/detection';
import { scanCorpus } from '@tracemark/extraction';
import { loadDefaultModel, loadHumanCorpus } from '@tracemark/lm';
import { tokenizedDocuments, tokenizer } from '../corpus.ts';
import { loadAverage } from '../environment.ts';
import { MAX_CANDIDATES } from '../generation.ts';
import { secretFor, seedFor } from '../labels.ts';
import {
  type ExperimentContext,
  fixed,
  integer,
  reportHeader,
  rounded,
  writeResult,
  writeSummary,
} from '../report.ts';
import {
  CODE_DEFAULT,
  SCHEME_VARIANTS,
  schemeLabel,
  type WatermarkConfig,
  watermarkerFor,
} from '../schemes.ts';
import { median } from '../statistics.ts';

export interface PerformanceRow {
  readonly measure: string;
  /** What the ratio compares: "A / B". */
  readonly comparison: string;
  readonly value: string;
  readonly ratio: number;
}

export interface PerformanceSummary {
  readonly experiment: 'performance';
  readonly quick: boolean;
  readonly rounds: number;
  readonly loadAverageStart: number;
  readonly loadAverageEnd: number;
  readonly rows: readonly PerformanceRow[];
  readonly pending: readonly string[];
}

export const PENDING_MEASURES: readonly string[] = [
  'gateway overhead is measured by the gateway load test, which runs the gateway and the load generator in separate processes: `pnpm --filter @tracemark/gateway loadtest` (apps/gateway/README.md: 1.55× the embedded backend called directly, +10 ms per request)',
];

/**
 * Times the bodies round-robin for `rounds` rounds after `warmup` untimed rounds (the JIT settles only
 * once every body has run a few times), rotating the order every round so that no body always runs
 * first; returns each body's median time in ms.
 */
function timeRoundRobin(rounds: number, warmup: number, bodies: readonly (() => void)[]): number[] {
  for (let round = 0; round < warmup; round++) for (const body of bodies) body();
  const times = bodies.map(() => [] as number[]);
  for (let round = 0; round < rounds; round++) {
    for (let k = 0; k < bodies.length; k++) {
      const index = (k + round) % bodies.length;
      const start = performance.now();
      bodies[index]!();
      times[index]!.push(performance.now() - start);
    }
  }
  return times.map((list) => median(list));
}

export async function runPerformance(context: ExperimentContext): Promise<PerformanceSummary> {
  const started = performance.now();
  const loadAtStart = loadAverage();
  const quick = context.quick;
  const rounds = quick ? 2 : 21;
  const warmup = quick ? 1 : 3;
  const rows: PerformanceRow[] = [];
  const tok = tokenizer();

  // Text: Brown documents up to 1 MB (100 kB quick).
  const budget = quick ? 100_000 : 1_000_000;
  const texts: string[] = [];
  let bytes = 0;
  for (const document of await loadHumanCorpus({ source: 'brown' })) {
    if (bytes >= budget) break;
    texts.push(document.text);
    bytes += Buffer.byteLength(document.text);
  }
  const ids = texts.map((text) => tok.encodeFast(text));
  const tokenCount = ids.reduce((sum, x) => sum + x.length, 0);
  const key = createWatermarkKey({ secret: secretFor('performance/key'), tokenizer: tok.id });
  const detector = createTextDetector({ keys: [key] });
  const windowedDetector = createTextDetector({ keys: [key], window: true });
  const tokenizeAll = () => {
    for (const text of texts) tok.encodeFast(text);
  };
  const [plainDetection, windowedDetection, tokenizing] = timeRoundRobin(rounds, warmup, [
    () => {
      for (const text of texts) detector.detectText(text);
    },
    () => {
      for (const text of texts) windowedDetector.detectText(text);
    },
    tokenizeAll,
  ]) as [number, number, number];
  const megabytesPerSecond = (ms: number) => `${fixed(bytes / 1e6 / (ms / 1000), 2)} MB/s`;
  rows.push({
    measure: 'tokenizer alone (encodeFast)',
    comparison: 'baseline',
    value: megabytesPerSecond(tokenizing),
    ratio: 1,
  });
  for (const [name, ms] of [
    ['text detection (tokenize + score + verdict)', plainDetection],
    ['text detection, windowed', windowedDetection],
  ] as const) {
    rows.push({
      measure: name,
      comparison: 'time / tokenizer alone',
      value: megabytesPerSecond(ms),
      ratio: ms / tokenizing,
    });
  }
  context.log('performance: text detection done');

  // Scoring pre-tokenized ids, per scheme, against LeftHash(1).
  const scoreAll = (config: WatermarkConfig, window: boolean) => {
    const watermarker = watermarkerFor(secretFor('performance/key'), config);
    return () => {
      for (const x of ids) detect(x, watermarker, { includeStatus: false, window });
    };
  };
  const scoringCases: { label: string; config: WatermarkConfig; window: boolean }[] = [
    ...SCHEME_VARIANTS.map((variant) => ({
      label: schemeLabel(variant),
      config: { ...CODE_DEFAULT, ...variant },
      window: false,
    })),
    { label: 'LeftHash(1), windowed', config: CODE_DEFAULT, window: true },
  ];
  const scoringTimes = timeRoundRobin(
    rounds,
    warmup,
    scoringCases.map((scoring) => scoreAll(scoring.config, scoring.window)),
  );
  scoringCases.forEach((scoring, i) => {
    rows.push({
      measure: `scoring token ids, ${scoring.label}, dedup`,
      comparison: i === 0 ? 'baseline' : 'time / LeftHash(1)',
      value: `${fixed(tokenCount / 1e6 / (scoringTimes[i]! / 1000), 2)} M tokens/s`,
      ratio: scoringTimes[i]! / scoringTimes[0]!,
    });
  });
  context.log('performance: scoring done');

  // The radioactivity scan end to end (tokenize, then scan with 100 fake keys on one global dedup
  // tape) against text detection of the same documents: the "scan vs detect throughput".
  const scanKey = createWatermarkKey({ secret: secretFor('performance/key'), tokenizer: tok.id });
  const scanOnce = async () => {
    const start = performance.now();
    const documents = texts.map((text, i) => ({ tokens: tok.encodeFast(text), source: `brown:${i}` }));
    await scanCorpus({ documents, keys: [scanKey], specialTokenIds: tok.specialTokenIds, fakeKeys: 100 });
    return performance.now() - start;
  };
  await scanOnce();
  const scanTimes: number[] = [];
  for (let round = 0; round < (quick ? 1 : 7); round++) scanTimes.push(await scanOnce());
  const scanMs = median(scanTimes);
  rows.push({
    measure: 'radioactivity scan end to end (tokenize + scan, LeftHash(1), 100 fake keys)',
    comparison: 'time / text detection',
    value: megabytesPerSecond(scanMs),
    ratio: scanMs / plainDetection,
  });
  context.log('performance: scan done');

  // One sampling step over the model's real candidates, watermarked vs plain.
  const model = await loadDefaultModel({ tokenizerId: tok.id });
  const test = await tokenizedDocuments('test');
  const contexts: Uint32Array[] = [];
  for (const document of test) {
    for (let end = 8; end < document.ids.length && contexts.length < (quick ? 200 : 1000); end += 97) {
      contexts.push(document.ids.slice(0, end));
    }
  }
  const candidates: SparseLogits[] = contexts.map((c) => {
    const { ids: candidateIds, logits } = model.candidates(c, MAX_CANDIDATES);
    return { ids: candidateIds.slice(), logits: logits.slice() };
  });
  const sampleAll = (config: WatermarkConfig | null) => {
    const watermarker = config === null ? null : watermarkerFor(secretFor('performance/key'), config);
    return () => {
      const random = createRandom(seedFor('performance/sample'));
      for (let i = 0; i < contexts.length; i++) {
        sampleToken(candidates[i]!, contexts[i]!, random, { watermarker, temperature: 0.8, topP: 0.95 });
      }
    };
  };
  const selfHash4: WatermarkConfig = { ...CODE_DEFAULT, name: 'selfhash', contextWidth: 4 };
  const samplingTimes = timeRoundRobin(rounds, warmup, [
    sampleAll(null),
    sampleAll(CODE_DEFAULT),
    sampleAll(selfHash4),
  ]);
  const perStep = (ms: number) => `${fixed((ms / contexts.length) * 1000, 1)} µs per step`;
  rows.push({
    measure: 'sampling step (512 candidates, T 0.8, top-p 0.95), no watermark',
    comparison: 'baseline',
    value: perStep(samplingTimes[0]!),
    ratio: 1,
  });
  [CODE_DEFAULT, selfHash4].forEach((config, i) => {
    rows.push({
      measure: `sampling step, ${schemeLabel(config)}`,
      comparison: 'watermarked / plain sampleToken',
      value: perStep(samplingTimes[i + 1]!),
      ratio: samplingTimes[i + 1]! / samplingTimes[0]!,
    });
  });
  // A whole generation step on the same contexts: the model's candidates, then the sampler.
  const generationStep = (config: WatermarkConfig | null) => {
    const watermarker = config === null ? null : watermarkerFor(secretFor('performance/key'), config);
    return () => {
      const random = createRandom(seedFor('performance/sample'));
      for (const c of contexts) {
        sampleToken(model.candidates(c, MAX_CANDIDATES), c, random, {
          watermarker,
          temperature: 0.8,
          topP: 0.95,
        });
      }
    };
  };
  const stepTimes = timeRoundRobin(rounds, warmup, [
    generationStep(null),
    generationStep(CODE_DEFAULT),
    generationStep(selfHash4),
  ]);
  rows.push({
    measure: 'generation step with the embedded model (candidates + sampling), no watermark',
    comparison: 'baseline',
    value: perStep(stepTimes[0]!),
    ratio: 1,
  });
  [CODE_DEFAULT, selfHash4].forEach((config, i) => {
    rows.push({
      measure: `generation step, ${schemeLabel(config)}`,
      comparison: 'watermarked / plain step',
      value: perStep(stepTimes[i + 1]!),
      ratio: stepTimes[i + 1]! / stepTimes[0]!,
    });
  });
  context.log('performance: sampling done');

  const summary: PerformanceSummary = {
    experiment: 'performance',
    quick,
    rounds,
    loadAverageStart: loadAtStart,
    loadAverageEnd: loadAverage(),
    rows,
    pending: PENDING_MEASURES,
  };
  const report = reportHeader(
    context,
    'Experiment 5: performance',
    'key "performance/key", sampler seeds "performance/sample" and "performance/generate"; timings vary between runs',
    started,
    loadAtStart,
  );
  report.bullets([
    `Text: ${texts.length} Brown documents, ${fixed(bytes / 1e6, 2)} MB, ${integer(tokenCount)} tokens (cl100k_base). Sampling: ${integer(contexts.length)} contexts from the test split, the model's 512 most probable next tokens precomputed. The generation step runs the model's candidate search and the sampler on the same contexts, so the watermark's share of a real step is measured on identical work.`,
    `The cases of each group are timed round-robin (the order rotates every round) for ${rounds} rounds after ${warmup} warm-up rounds; a ratio is of medians against the group's baseline, so machine speed and background load largely cancel. One thread. Load average: ${fixed(loadAtStart, 2)} at the start, ${fixed(loadAverage(), 2)} at the end (2 cores; other builds and tests were running on the machine).`,
  ]);
  report.table(
    ['measure', 'ratio', 'comparison', 'absolute'],
    rows.map((row) => [row.measure, fixed(row.ratio, 3), row.comparison, row.value]),
  );
  report.heading(2, 'Pending');
  report.paragraph(
    'Not measured yet; they need components that are being built. They will be added to this experiment:',
  );
  report.bullets(PENDING_MEASURES);
  await writeResult(context.outDir, 'performance.md', report.toString());
  await writeSummary(context.outDir, 'performance', rounded(summary));
  return summary;
}
