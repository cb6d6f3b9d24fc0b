/** The embedded backend: the n-gram model of @tracemark/lm, so the gateway runs on a fresh machine. */
import { sampleToken, stepStrength } from '@tracemark/core';
import { loadDefaultModel, type NgramModel } from '@tracemark/lm';
import { getTokenizer, isTokenizerId } from '@tracemark/tokenizers';
import { reportedLogprobs } from '../generation/distribution.ts';
import type { Backend, ChoiceRequest, GeneratedStep, ModelInfo } from './types.ts';
import { createYielder, NO_GREEN_STRENGTH } from './types.ts';

/** Candidates the model proposes per step, as the CLI's generate uses. */
export const EMBEDDED_MAX_CANDIDATES = 512;

/** What the embedded backend is, wherever it generates (here or on generation threads). */
export function embeddedParts(
  tokenizerId: string,
  modelId: string,
): Pick<Backend, 'kind' | 'tokenizer' | 'stats' | 'models'> {
  if (!isTokenizerId(tokenizerId)) {
    throw new RangeError(
      `the watermark key is bound to tokenizer "${tokenizerId}", which the embedded model does not support`,
    );
  }
  const info: ModelInfo = { id: modelId, ownedBy: 'tracemark', created: Math.floor(Date.now() / 1000) };
  return {
    kind: 'embedded',
    tokenizer: getTokenizer(tokenizerId),
    stats: { roundTrips: 0, draftsAccepted: 0, draftsRejected: 0 },
    models: () => [info],
  };
}

/** /healthz's facts of the embedded backend; 0 generation threads: it generates on the event loop's thread. */
export function describeEmbedded(
  modelId: string,
  order: number,
  tokenizerId: string,
  generationThreads: number,
): Record<string, string | number> {
  return { backend: 'embedded', model: modelId, order, tokenizer: tokenizerId, generationThreads };
}

export async function createEmbeddedBackend(options: {
  readonly tokenizerId: string;
  readonly modelId: string;
  readonly model?: NgramModel;
}): Promise<Backend> {
  const parts = embeddedParts(options.tokenizerId, options.modelId);
  const { tokenizer } = parts;
  const model = options.model ?? (await loadDefaultModel({ tokenizerId: tokenizer.id }));

  async function* generate(request: ChoiceRequest): AsyncGenerator<GeneratedStep, void, undefined> {
    const context: number[] = Array.from(request.promptTokens);
    const yieldNow = createYielder();
    const watermarker = request.watermarker;
    const gumbel = watermarker.family === 'gumbel';
    const sampleOptions = { watermarker, temperature: request.temperature, topP: request.topP };
    const unmarked = { ...sampleOptions, watermarker: null };
    // A Gumbel key marks a context once: a repeated context is sampled without the mark, so the text
    // does not loop on its own keyed choices (watermark-gumbel §6, as `generateTokens` does).
    const seen = new Set<string>();
    const seed = new Uint32Array(2);
    const firstTime = (): boolean => {
      if (!watermarker.contextSeed(context, seed)) return true;
      const held = `${seed[0]}:${seed[1]}`;
      if (seen.has(held)) return false;
      seen.add(held);
      return true;
    };
    if (gumbel) {
      const prompt = context.slice();
      for (let end = 1; end < prompt.length; end++) {
        if (watermarker.contextSeed(prompt.slice(0, end), seed)) seen.add(`${seed[0]}:${seed[1]}`);
      }
    }
    for (let index = 0; index < request.maxTokens; index++) {
      if (request.signal.aborted) return;
      const candidates = model.candidates(context, EMBEDDED_MAX_CANDIDATES);
      // The green mass is a green-list measure; a Gumbel step reports none (its expected score is entropy's).
      const strength = gumbel ? NO_GREEN_STRENGTH : stepStrength(candidates, context, sampleOptions);
      const options = gumbel && !firstTime() ? unmarked : sampleOptions;
      const { token } = sampleToken(candidates, context, request.random, options);
      let step: GeneratedStep = { token, strength, logprob: null, top: null };
      if (request.topLogprobs !== null) {
        const reported = reportedLogprobs(
          candidates,
          context,
          request.watermarker,
          token,
          request.topLogprobs,
        );
        step = { token, strength, logprob: reported.logprob, top: reported.top };
      }
      context.push(token);
      yield step;
      await yieldNow();
    }
  }

  return {
    ...parts,
    generate,
    describe: () => describeEmbedded(options.modelId, model.order, tokenizer.id, 0),
    close: async () => undefined,
  };
}
