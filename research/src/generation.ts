/**
 * Generation with the embedded model exactly as the CLI does it (the model's 512 most probable next
 * tokens, then the core sampler), recording the entropy of every step's sampling distribution. Large
 * batches run on worker threads; each job's result depends on the job alone, never on the scheduling.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { createRandom, sampleToken, stepStrength } from '@tracemark/core';
import { loadDefaultModel, type NgramModel } from '@tracemark/lm';
import { tokenizer } from './corpus.ts';
import { sampleTokenBiasFirst, sampleTokenTruncatingFirst } from './sampling-orders.ts';
import { type AnyWatermarkConfig, watermarkerFor } from './schemes.ts';

/** As in the CLI's `generate`: the model proposes its 512 most probable next tokens. */
export const MAX_CANDIDATES = 512;

export interface GenerationJob {
  /** Watermark key secret; null generates without a watermark. */
  readonly secret: Uint8Array | null;
  /** Green-list or Gumbel; a Gumbel job skips or marks repeated contexts as its config says. */
  readonly scheme: AnyWatermarkConfig;
  readonly prompt: Uint32Array;
  readonly maxTokens: number;
  readonly temperature: number;
  readonly topP: number;
  /** The sampler's seed (not the watermark's). */
  readonly seed: number;
  /** Modulus z of the spike entropy to record (see schemes.ts). */
  readonly spikeModulus: number;
  /**
   * The sampling order: "widened" is the core sampler (top-k/top-p of the unbiased distribution widened
   * to the bias's reach, spec §7); "truncate-first" (the order before) and "bias-first" (top-p of the
   * watermarked distribution) are research/src/sampling-orders.ts, for the `sampling` experiment.
   */
  readonly order?: 'widened' | 'truncate-first' | 'bias-first';
  /** Record core's stepStrength (expected green fraction) for every step. */
  readonly measureStrength?: boolean;
}

export interface GenerationResult {
  readonly tokens: Uint32Array;
  /** Mean over steps of S(p, z) for the distribution the sampler drew from, before the watermark bias. */
  readonly meanSpikeEntropy: number;
  /** Mean over steps of the Shannon entropy (bits) of that distribution. */
  readonly meanEntropyBits: number;
  /** With measureStrength: the sum over steps of the probability that the step's token is green. */
  readonly expectedGreen: number;
}

/**
 * One generation, step for step what `generateTokens` of @tracemark/core does with the CLI's source
 * (the same sampler calls on the same random stream; for a Gumbel key the same unmarked steps at
 * repeated context seeds, watermark-gumbel §6), plus the entropy of each step's kept distribution:
 * temperature and top-p applied to the model's candidates, renormalized.
 */
export function generateOne(model: NgramModel, job: GenerationJob): GenerationResult {
  const watermarker = job.secret === null ? null : watermarkerFor(job.secret, job.scheme);
  const random = createRandom(job.seed);
  const context = new Uint32Array(job.prompt.length + job.maxTokens);
  context.set(job.prompt);
  let length = job.prompt.length;
  let spikeTotal = 0;
  let entropyTotal = 0;
  const options = { watermarker, temperature: job.temperature, topP: job.topP };
  const unmarked = { ...options, watermarker: null };
  // Gumbel keys: a step whose context seed already occurred (prompt windows included) is unmarked.
  const skipRepeated =
    watermarker !== null &&
    watermarker.family === 'gumbel' &&
    !('gamma' in job.scheme) &&
    job.scheme.repeatedContexts !== 'mark';
  const seen = new Set<string>();
  const seed = new Uint32Array(2);
  const seedOf = (view: Uint32Array): string | null =>
    watermarker?.contextSeed(view, seed) ? `${seed[0]}:${seed[1]}` : null;
  if (skipRepeated) {
    for (let end = 1; end < length; end++) {
      const held = seedOf(context.subarray(0, end));
      if (held !== null) seen.add(held);
    }
  }
  const sample =
    job.order === 'truncate-first'
      ? sampleTokenTruncatingFirst
      : job.order === 'bias-first'
        ? sampleTokenBiasFirst
        : sampleToken;
  let expectedGreen = 0;
  for (let step = 0; step < job.maxTokens; step++) {
    const view = context.subarray(0, length);
    const logits = model.candidates(view, MAX_CANDIDATES);
    const entropies = keptEntropies(logits.logits, job.temperature, job.topP, job.spikeModulus);
    spikeTotal += entropies.spike;
    entropyTotal += entropies.shannonBits;
    if (job.measureStrength === true) expectedGreen += stepStrength(logits, view, options).greenProbability;
    let stepOptions = options;
    if (skipRepeated) {
      const held = seedOf(view);
      if (held !== null && seen.has(held)) stepOptions = unmarked;
      else if (held !== null) seen.add(held);
    }
    context[length++] = sample(logits, view, random, stepOptions).token;
  }
  return {
    tokens: context.slice(job.prompt.length, length),
    meanSpikeEntropy: job.maxTokens === 0 ? 0 : spikeTotal / job.maxTokens,
    meanEntropyBits: job.maxTokens === 0 ? 0 : entropyTotal / job.maxTokens,
    expectedGreen,
  };
}

/**
 * Spike and Shannon entropy of the distribution the core sampler draws from: candidates sorted by logit
 * (the model returns them so), temperature applied, the smallest prefix whose mass reaches top-p kept.
 */
export function keptEntropies(
  sortedLogits: Float32Array,
  temperature: number,
  topP: number,
  modulus: number,
): { spike: number; shannonBits: number } {
  const max = sortedLogits[0]!;
  const weights = new Float64Array(sortedLogits.length);
  let total = 0;
  for (let i = 0; i < sortedLogits.length; i++)
    total += weights[i] = Math.exp((sortedLogits[i]! - max) / temperature);
  let keep = sortedLogits.length;
  if (topP < 1) {
    let running = 0;
    for (let i = 0; i < sortedLogits.length; i++) {
      running += weights[i]!;
      if (running >= topP * total) {
        keep = i + 1;
        break;
      }
    }
  }
  let kept = 0;
  for (let i = 0; i < keep; i++) kept += weights[i]!;
  let spike = 0;
  let shannon = 0;
  for (let i = 0; i < keep; i++) {
    const p = weights[i]! / kept;
    spike += p / (1 + modulus * p);
    if (p > 0) shannon -= p * Math.log2(p);
  }
  return { spike, shannonBits: shannon };
}

/** Default worker count: two, or fewer on a smaller machine. */
export function defaultWorkers(): number {
  return Math.max(1, Math.min(2, availableParallelism()));
}

/** Runs jobs on `workers` threads (inline when 1), results in job order. */
export async function generateMany(
  jobs: readonly GenerationJob[],
  workers: number,
  onProgress?: (done: number, total: number) => void,
): Promise<GenerationResult[]> {
  const results: GenerationResult[] = new Array(jobs.length);
  if (workers <= 1 || jobs.length < 2) {
    const model = await loadDefaultModel({ tokenizerId: tokenizer().id });
    for (let i = 0; i < jobs.length; i++) {
      results[i] = generateOne(model, jobs[i]!);
      onProgress?.(i + 1, jobs.length);
    }
    return results;
  }
  let next = 0;
  let done = 0;
  const pool = Array.from({ length: Math.min(workers, jobs.length) }, () => {
    const worker = new Worker(new URL('./worker-bootstrap.mjs', import.meta.url), {
      workerData: { entry: new URL('./generation-worker.ts', import.meta.url).href },
    });
    return new Promise<void>((resolve, reject) => {
      const feed = (): void => {
        if (next >= jobs.length) {
          void worker.terminate().then(() => resolve());
          return;
        }
        const index = next++;
        worker.postMessage({ index, job: jobs[index] });
      };
      worker.on('message', (message: { index: number; result: GenerationResult }) => {
        results[message.index] = message.result;
        onProgress?.(++done, jobs.length);
        feed();
      });
      worker.on('error', reject);
      worker.on('exit', (code) => {
        if (code !== 0 && next < jobs.length) reject(new Error(`generation worker exited with code ${code}`));
      });
      feed();
    });
  });
  await Promise.all(pool);
  return results;
}
