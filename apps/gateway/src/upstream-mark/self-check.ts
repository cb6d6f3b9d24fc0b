/**
 * The start-up check of engine-native mode: before the gateway listens, it samples the engine with a few
 * prompts and tests the pooled completions for the configured key's mark at α = 1e-6. It stops as soon as
 * the verdict is `watermarked`; if the verdict is `not_watermarked`, or the token budget is spent first,
 * the gateway refuses to start (ConfigError: the engine runs without its mark, or with another key).
 *
 * Pooling: the completions' token ids are tested as one sequence, with the detector's deduplication over
 * all of it. Under the null (no mark, or another key) every scored (context, token) pair is still an
 * independent draw, so the pooled p-value is exact; under the mark only the few positions whose context
 * reaches into the previous completion lose their signal.
 */
import type { Verdict } from '@tracemark/core';
import type { AnyDocumentResult } from '@tracemark/detection';
import { ConfigError } from '../config.ts';
import type { EngineUpstream } from './engine-upstream.ts';

/** The false-positive rate of the start-up and live checks. */
export const MARK_CHECK_FPR = 1e-6;

/** Varied prompts (instructions, stories, facts), so that the check does not rest on one topic. */
export const MARK_CHECK_PROMPTS: readonly string[] = [
  'Write a short story about a lighthouse keeper who finds a message in a bottle.',
  'Explain how a bill becomes a law, step by step, for a school class.',
  'Describe the city you would most like to visit and why.',
  'Write a letter to a friend about a long walk in the mountains.',
  'What should a beginner know before planting a vegetable garden?',
  'Tell me about the history of the printing press.',
  'Write a product review of a pair of old hiking boots.',
  'Summarize the arguments for and against working from home.',
];

/** Tokens asked for per completion; several completions pool the evidence. */
const TOKENS_PER_COMPLETION = 256;

export interface MarkCheckResult {
  readonly verdict: Verdict;
  readonly completions: number;
  readonly numTokens: number;
  readonly numScored: number;
  readonly log10P: number;
  readonly keyId: string;
  readonly fpr: number;
}

export interface MarkCheckOptions {
  readonly upstream: EngineUpstream;
  /** Pooled detection under the serving key at {@link MARK_CHECK_FPR} (token ids in, result out). */
  readonly detect: (ids: Uint32Array) => AnyDocumentResult | Promise<AnyDocumentResult>;
  /** The most completion tokens to sample. */
  readonly maxTokens: number;
  /** The serving key's id and scheme, for the message. */
  readonly mark: { readonly keyId: string; readonly scheme: string };
  readonly signal?: AbortSignal;
}

/** Samples until the pooled verdict is settled or the budget is spent; the result, whatever it is. */
export async function sampleUpstreamMark(options: MarkCheckOptions): Promise<MarkCheckResult> {
  const { upstream } = options;
  const tokenizer = upstream.tokenizer;
  const pooled: number[] = [];
  let completions = 0;
  let result: AnyDocumentResult | null = null;
  // Engines may stop early (an end-of-text token); an engine that answers nothing at all ends the loop.
  const attempts = Math.max(
    2 * MARK_CHECK_PROMPTS.length,
    Math.ceil((2 * options.maxTokens) / TOKENS_PER_COMPLETION),
  );
  for (let attempt = 0; attempt < attempts && pooled.length < options.maxTokens; attempt++) {
    const prompt = MARK_CHECK_PROMPTS[attempt % MARK_CHECK_PROMPTS.length]!;
    const messages = [{ role: 'user', content: prompt }];
    const completion = await upstream.complete(
      {
        messages: upstream.shapeFor(messages) === 'chat' ? messages : null,
        prompt,
        maxTokens: Math.min(TOKENS_PER_COMPLETION, options.maxTokens - pooled.length),
        temperature: 1,
        topP: 1,
        seed: attempt + 1,
        stops: [],
      },
      options.signal,
    );
    completions++;
    const ids = tokenizer.encodeFast(completion.text);
    for (const id of ids) pooled.push(id);
    if (ids.length === 0) continue;
    result = await options.detect(Uint32Array.from(pooled));
    if (result.verdict !== 'insufficient') break;
  }
  return {
    verdict: result?.verdict ?? 'insufficient',
    completions,
    numTokens: pooled.length,
    numScored: result?.numScored ?? 0,
    log10P: result?.log10PAdjusted ?? 0,
    keyId: options.mark.keyId,
    fpr: MARK_CHECK_FPR,
  };
}

/** {@link sampleUpstreamMark}, and a ConfigError unless the pooled completions are `watermarked`. */
export async function checkUpstreamMark(options: MarkCheckOptions): Promise<MarkCheckResult> {
  const result = await sampleUpstreamMark(options);
  if (result.verdict === 'watermarked') return result;
  const { upstream, mark } = options;
  const evidence = `${result.completions} completions, ${result.numTokens} tokens, ${result.numScored} scored, log10 p = ${result.log10P.toFixed(2)}`;
  const why =
    result.verdict === 'not_watermarked'
      ? 'they do not carry it'
      : `the evidence did not reach α = ${MARK_CHECK_FPR} within ${options.maxTokens} tokens (TRACEMARK_UPSTREAM_MARK_CHECK_TOKENS)`;
  throw new ConfigError(
    `the upstream at ${upstream.origin} (model "${upstream.model}") does not mark its completions with the key of --upstream-watermark (${mark.keyId}, ${mark.scheme}): ${why} (${evidence}). Start the engine with its watermark enabled and this key, or give the key it marks with; refusing to serve unmarked output`,
  );
}
