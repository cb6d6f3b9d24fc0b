/** A backend proposes next-token candidates; the gateway applies the watermark and samples. */
import type { RandomSource, StepStrength, Watermarker } from '@tracemark/core';
import type { Tokenizer } from '@tracemark/tokenizers';
import type { TokenLogprob } from '../generation/distribution.ts';
import type { BackendKind } from '../storage/types.ts';

export interface ModelInfo {
  readonly id: string;
  readonly ownedBy: string;
  readonly created: number;
}

export interface ChatMessage {
  readonly role: string;
  readonly content: string;
}

export interface ChoiceRequest {
  readonly model: string;
  /** The prompt as the gateway tokenized it (the watermark's context starts here). */
  readonly promptTokens: Uint32Array;
  /** Chat requests: the messages, so an upstream can apply its own chat template. */
  readonly messages: readonly ChatMessage[] | null;
  readonly maxTokens: number;
  readonly temperature: number;
  readonly topP: number;
  readonly random: RandomSource;
  /** The seed `random` was made from (`createRandom(seed)`): a backend on another thread makes its own. */
  readonly seed: number;
  readonly watermarker: Watermarker;
  /** Aborted when the client goes away, the deadline passes or the gateway shuts down. */
  readonly signal: AbortSignal;
  /** Top log-probabilities to report per token; null reports none. */
  readonly topLogprobs: number | null;
}

export interface GeneratedStep {
  readonly token: number;
  /** What the step contributes to the mark (core `stepStrength` over the distribution it sampled from). */
  readonly strength: StepStrength;
  readonly logprob: number | null;
  readonly top: readonly TokenLogprob[] | null;
}

export interface BackendStats {
  /** Upstream HTTP round trips made for generation (0 for the embedded backend). */
  roundTrips: number;
  draftsAccepted: number;
  draftsRejected: number;
  /** Sample positions (tokens with their top-k) read from the upstream's answers; absent for the embedded backend. */
  positionsReceived?: number;
}

export interface Backend {
  readonly kind: BackendKind;
  readonly tokenizer: Tokenizer;
  readonly stats: BackendStats;
  models(): readonly ModelInfo[];
  /** Generates one choice, token by token; stops early when the caller returns or the signal aborts. */
  generate(request: ChoiceRequest): AsyncGenerator<GeneratedStep, void, undefined>;
  /** Facts for /healthz (never a secret or a URL's credentials). */
  describe(): Record<string, string | number | boolean>;
  close(): Promise<void>;
}

/** Lets other requests (and a client's disconnect) run between tokens of a long CPU-bound generation. */
export function createYielder(budgetMs = 2): () => Promise<void> {
  let last = performance.now();
  return async () => {
    const now = performance.now();
    if (now - last < budgetMs) return;
    await new Promise<void>((resolve) => setImmediate(resolve));
    last = performance.now();
  };
}

/** A Gumbel key's step has no green list to report a strength for. */
export const NO_GREEN_STRENGTH: Readonly<{ greenProbability: number; spikeEntropy: number }> = Object.freeze({
  greenProbability: 0,
  spikeEntropy: 0,
});
