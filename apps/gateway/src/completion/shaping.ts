/** Response shaping: the OpenAI bodies and chunks (chat and legacy), usage, logprobs and tracemark's field. */
import { log10BinomialSf, type Watermarker, zScore } from '@tracemark/core';
import type { Tokenizer } from '@tracemark/tokenizers';
import type { GeneratedStep } from '../backends/types.ts';
import type { ChoiceResult, PreparedCompletion } from './types.ts';

/**
 * The mark's expected strength in one choice, from the distributions its tokens were sampled from:
 * E[green] = Σ P(green) (core `stepStrength`), the z and log10 p that a detector would report for
 * that many greens among all the choice's tokens (an upper estimate: repeated (seed, token) pairs and a
 * prompt's pairs are scored once or not at all), and the spike-entropy sum of KGW (Definition 4.1).
 */
export interface WatermarkStrength {
  readonly index: number;
  readonly tokens: number;
  readonly expected_green_fraction: number;
  readonly expected_z: number;
  readonly expected_log10_p: number;
  readonly spike_entropy_sum: number;
}

export function watermarkStrength(
  result: Pick<ChoiceResult, 'index' | 'tokens' | 'strength'>,
  watermarker: Watermarker,
): WatermarkStrength {
  const tokens = result.tokens.length;
  const gamma = watermarker.scheme.gammaEffective;
  const expectedGreen = result.strength.expectedGreen;
  const rounded = Math.min(tokens, Math.round(expectedGreen));
  return {
    index: result.index,
    tokens,
    expected_green_fraction: tokens === 0 ? 0 : expectedGreen / tokens,
    expected_z: tokens === 0 ? 0 : zScore(expectedGreen, tokens, gamma),
    expected_log10_p: tokens === 0 ? 0 : log10BinomialSf(rounded, tokens, gamma),
    spike_entropy_sum: result.strength.spikeEntropySum,
  };
}

export interface ShapingContext {
  readonly tokenizer: Tokenizer;
  readonly watermarkKeyId: string;
  readonly keyEpoch: string | null;
  /** The gateway's own sampler's watermarker; null when the engine marks the output (no strength to report). */
  readonly watermarker: Watermarker | null;
}

export function fingerprint(keyId: string): string {
  return `fp_${keyId.slice(5, 17)}`;
}

export interface Usage {
  readonly prompt_tokens: number;
  readonly completion_tokens: number;
  readonly total_tokens: number;
}

export function usageOf(prepared: PreparedCompletion, results: readonly ChoiceResult[]): Usage {
  const promptTokens = prepared.prompts.reduce((sum, prompt) => sum + prompt.tokens.length, 0);
  const completionTokens = results.reduce((sum, result) => sum + result.tokens.length, 0);
  return {
    prompt_tokens: promptTokens,
    completion_tokens: completionTokens,
    total_tokens: promptTokens + completionTokens,
  };
}

/** A token as logprobs show it: its text (U+FFFD for part of a character) and its own bytes. */
interface TokenShown {
  readonly text: string;
  readonly bytes: readonly number[];
}

/** Tokens a shaper keeps shown (then it starts again): a vocabulary's worth at most. */
const SHOWN_TOKENS = 1 << 17;

type JsonObject = Record<string, unknown>;

/** Builds the response bodies and their parts for one serving key. */
export interface Shaper {
  chatLogprobs(steps: readonly GeneratedStep[]): JsonObject;
  legacyLogprobs(steps: readonly GeneratedStep[], startOffset: number): JsonObject;
  /** The `tracemark` field of a response: key id, epoch, issuance ids and (own sampler) the mark's strength. */
  tracemarkInfo(ids: readonly string[], results: readonly ChoiceResult[]): JsonObject;
  /** The fields every body and chunk of a completion shares. */
  common(prepared: PreparedCompletion, completionId: string, created: number): JsonObject;
  /** The Responses API body (`in_progress` for the stream's first event). */
  responseBody(
    prepared: PreparedCompletion,
    completionId: string,
    created: number,
    results: readonly ChoiceResult[],
    ids: readonly string[],
    status?: 'completed' | 'incomplete' | 'in_progress',
  ): JsonObject;
  /** The whole (non-streamed) response body. */
  body(
    prepared: PreparedCompletion,
    completionId: string,
    created: number,
    results: readonly ChoiceResult[],
    ids: readonly string[],
  ): JsonObject;
}

export function createShaper(context: ShapingContext): Shaper {
  const { tokenizer, watermarker } = context;
  // A response's 65,536 log-probabilities name a few thousand distinct tokens: each token is decoded once for
  // this shaper's life (its text and bytes shared by every entry that shows it), not once an entry.
  const shown = new Map<number, TokenShown>();
  const show = (token: number): TokenShown => {
    let entry = shown.get(token);
    if (entry === undefined) {
      if (shown.size >= SHOWN_TOKENS) shown.clear();
      entry = { text: tokenizer.decodeTokens([token])[0]!, bytes: Array.from(tokenizer.tokenBytes(token)) };
      shown.set(token, entry);
    }
    return entry;
  };

  const chatLogprobs = (steps: readonly GeneratedStep[]) => ({
    content: steps.map((step) => {
      const own = show(step.token);
      return {
        token: own.text,
        logprob: step.logprob ?? 0,
        bytes: own.bytes,
        top_logprobs: (step.top ?? []).map((entry) => {
          const top = show(entry.token);
          return { token: top.text, logprob: entry.logprob, bytes: top.bytes };
        }),
      };
    }),
    refusal: null,
  });

  const legacyLogprobs = (steps: readonly GeneratedStep[], startOffset: number) => {
    const own = steps.map((step) => show(step.token).text);
    let offset = startOffset;
    const textOffset = own.map((piece) => {
      const at = offset;
      offset += piece.length;
      return at;
    });
    return {
      tokens: own,
      token_logprobs: steps.map((step) => step.logprob ?? 0),
      top_logprobs: steps.map((step) => {
        const entries: Record<string, number> = {};
        for (const entry of step.top ?? []) entries[show(entry.token).text] ??= entry.logprob;
        return entries;
      }),
      text_offset: textOffset,
    };
  };

  const tracemarkInfo = (ids: readonly string[], results: readonly ChoiceResult[]) => ({
    watermark_key_id: context.watermarkKeyId,
    key_epoch: context.keyEpoch,
    issuance_ids: ids,
    // The expected green mass is a green-list measure: none for an engine's mark or a Gumbel key.
    ...(watermarker === null || watermarker.family === 'gumbel'
      ? {}
      : { watermark_strength: results.map((result) => watermarkStrength(result, watermarker)) }),
  });

  const common = (prepared: PreparedCompletion, completionId: string, created: number) => ({
    id: completionId,
    created,
    model: prepared.model,
    system_fingerprint: fingerprint(context.watermarkKeyId),
  });

  const body = (
    prepared: PreparedCompletion,
    completionId: string,
    created: number,
    results: readonly ChoiceResult[],
    ids: readonly string[],
  ) => {
    const usage = usageOf(prepared, results);
    if (prepared.endpoint === 'responses') return responseBody(prepared, completionId, created, results, ids);
    if (prepared.endpoint === 'chat.completions') {
      return {
        ...common(prepared, completionId, created),
        object: 'chat.completion',
        choices: results.map((result) => ({
          index: result.index,
          message: { role: 'assistant', content: result.text, refusal: null },
          logprobs: prepared.topLogprobs === null ? null : chatLogprobs(result.steps),
          finish_reason: result.finishReason,
        })),
        usage,
        tracemark: tracemarkInfo(ids, results),
      };
    }
    return {
      ...common(prepared, completionId, created),
      object: 'text_completion',
      choices: results.map((result) => ({
        index: result.index,
        text: result.text,
        logprobs: prepared.topLogprobs === null ? null : legacyLogprobs(result.steps, 0),
        finish_reason: result.finishReason,
      })),
      usage,
      tracemark: tracemarkInfo(ids, results),
    };
  };

  /** The Responses API body: one assistant message with one output_text part; `status` follows the finish. */
  const responseBody = (
    prepared: PreparedCompletion,
    completionId: string,
    created: number,
    results: readonly ChoiceResult[],
    ids: readonly string[],
    status: 'completed' | 'incomplete' | 'in_progress' = 'completed',
  ): JsonObject => {
    const usage = usageOf(prepared, results);
    const result = results[0];
    const finished = result === undefined ? status : result.finishReason === 'length' ? 'incomplete' : status;
    return {
      id: completionId,
      object: 'response',
      created_at: created,
      status: finished,
      ...(finished === 'incomplete' ? { incomplete_details: { reason: 'max_output_tokens' } } : {}),
      model: prepared.model,
      output:
        result === undefined
          ? []
          : [
              {
                type: 'message',
                id: `msg_${completionId.slice(5)}`,
                status: finished,
                role: 'assistant',
                content: [{ type: 'output_text', text: result.text, annotations: [] }],
              },
            ],
      output_text: result?.text ?? '',
      usage: {
        input_tokens: usage.prompt_tokens,
        output_tokens: usage.completion_tokens,
        total_tokens: usage.total_tokens,
      },
      tracemark: tracemarkInfo(ids, results),
    };
  };

  return { chatLogprobs, legacyLogprobs, tracemarkInfo, common, body, responseBody };
}
