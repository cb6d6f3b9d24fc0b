import type { Candidates, NgramModel } from './ngram-model.js';

/** The shape @tracemark/core's generator takes: next-token logits for a context. */
export interface ModelLogitsSource {
  nextLogits(context: Uint32Array): Candidates;
}

/**
 * A model as a logits source for watermarked generation: the `maxCandidates` most likely next
 * tokens with their log-probabilities (a sparse list; sampling from it is top-k with k = maxCandidates).
 */
export function logitsSource(model: NgramModel, maxCandidates = 512): ModelLogitsSource {
  return { nextLogits: (context) => model.candidates(context, maxCandidates) };
}
