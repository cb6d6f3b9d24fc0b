/** Streams tokens from any logits source through the watermark. */
import { createRandom, type RandomSource } from './random.ts';
import { type Logits, type SampleOptions, sampleToken } from './sampling.ts';
import type { Watermarker } from './watermarker.ts';

/** Anything that gives next-token logits for a context: an n-gram model, a remote model, a test stub. */
export interface LogitsSource {
  nextLogits(context: Uint32Array): Logits | Promise<Logits>;
}

export interface GenerateOptions {
  readonly source: LogitsSource;
  readonly prompt: ArrayLike<number>;
  readonly maxTokens: number;
  /** null generates without a watermark (control mode). */
  readonly watermarker: Watermarker | null;
  readonly temperature?: number;
  readonly topK?: number;
  readonly topP?: number;
  /** Seeds the sampler (not the watermark). */
  readonly seed?: number;
  readonly random?: RandomSource;
  /** Generation stops after emitting one of these. */
  readonly stopTokens?: ReadonlySet<number>;
  /** Never sampled. */
  readonly bannedTokens?: ReadonlySet<number>;
  /** Aborts generation between tokens. */
  readonly signal?: AbortSignal;
  /**
   * Gumbel keys: a step whose context seed already occurred (in the prompt's windows or earlier in
   * this generation) is sampled without the mark (`skip`, the default), because a keyed choice
   * repeats whenever its context and distribution do; `mark` marks every step (watermark-gumbel §6).
   * Green-list keys ignore it.
   */
  readonly repeatedContexts?: 'skip' | 'mark';
  /** `dual_gumbel`: the key of every step, 0 (A) or 1 (B), instead of the α-weighted draw. */
  readonly gumbelKey?: 0 | 1;
}

export interface GeneratedToken {
  readonly token: number;
  readonly index: number;
}

/** Yields generated tokens one by one. */
export async function* generateTokens(
  options: GenerateOptions,
): AsyncGenerator<GeneratedToken, void, undefined> {
  const { source, maxTokens } = options;
  if (!Number.isInteger(maxTokens) || maxTokens < 0) {
    throw new RangeError(`maxTokens: expected an integer ≥ 0, got ${String(maxTokens)}`);
  }
  const random = options.random ?? createRandom(options.seed);
  const sampleOptions: SampleOptions = {
    watermarker: options.watermarker,
    ...(options.temperature === undefined ? {} : { temperature: options.temperature }),
    ...(options.topK === undefined ? {} : { topK: options.topK }),
    ...(options.topP === undefined ? {} : { topP: options.topP }),
    ...(options.bannedTokens === undefined ? {} : { bannedTokens: options.bannedTokens }),
    ...(options.gumbelKey === undefined ? {} : { gumbelKey: options.gumbelKey }),
  };
  const repeated = options.repeatedContexts ?? 'skip';
  if (repeated !== 'skip' && repeated !== 'mark') {
    throw new RangeError(`repeatedContexts: expected skip or mark, got ${String(repeated)}`);
  }
  const watermarker = options.watermarker;
  const skipRepeated = watermarker !== null && watermarker.family === 'gumbel' && repeated === 'skip';
  const unmarkedOptions: SampleOptions = { ...sampleOptions, watermarker: null };
  const seenSeeds = new Set<string>();
  const seed = new Uint32Array(2);
  const seedOf = (view: Uint32Array): string | null =>
    watermarker?.contextSeed(view, seed) ? `${seed[0]}:${seed[1]}` : null;
  let context = new Uint32Array(Math.max(16, options.prompt.length + maxTokens));
  for (let i = 0; i < options.prompt.length; i++) context[i] = options.prompt[i]!;
  let length = options.prompt.length;
  if (skipRepeated) {
    // The contexts of the prompt's own positions count as seen.
    for (let end = 1; end < length; end++) {
      const held = seedOf(context.subarray(0, end));
      if (held !== null) seenSeeds.add(held);
    }
  }
  for (let index = 0; index < maxTokens; index++) {
    if (options.signal?.aborted) return;
    const view = context.subarray(0, length);
    const logits = await source.nextLogits(view);
    let stepOptions = sampleOptions;
    if (skipRepeated) {
      const held = seedOf(view);
      if (held !== null && seenSeeds.has(held)) stepOptions = unmarkedOptions;
      else if (held !== null) seenSeeds.add(held);
    }
    const { token } = sampleToken(logits, view, random, stepOptions);
    if (length === context.length) {
      const grown = new Uint32Array(context.length * 2);
      grown.set(context);
      context = grown;
    }
    context[length++] = token;
    yield { token, index };
    if (options.stopTokens?.has(token)) return;
  }
}

/** Collects a whole generation. */
export async function generateAll(options: GenerateOptions): Promise<Uint32Array> {
  const out: number[] = [];
  for await (const { token } of generateTokens(options)) out.push(token);
  return Uint32Array.from(out);
}
