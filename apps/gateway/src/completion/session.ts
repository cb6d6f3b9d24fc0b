/**
 * Backend sessions: how one choice is produced. The gateway's own sampler drives the embedded model or an
 * upstream token by token and marks what it samples; an engine that marks natively streams its
 * completion through (engine-native.ts).
 */
import { randomBytes } from 'node:crypto';
import { createRandom, type Watermarker } from '@tracemark/core';
import type { AccountKeys } from '../account-keys.ts';
import type { Backend, ChoiceRequest, GeneratedStep } from '../backends/types.ts';
import { type ChoiceOutcome, runChoice } from '../generation/run-choice.ts';
import type { ChoiceTask, PreparedCompletion } from './types.ts';

export interface ChoiceHooks {
  /** Called for every token, as it is produced. */
  readonly onToken: () => void;
  /** Streaming: text that can be shown now, with the steps of the tokens it completes (none from an engine). */
  readonly onDelta?: (delta: string, steps: readonly GeneratedStep[]) => Promise<void>;
}

export interface CompletionSession {
  run(
    prepared: PreparedCompletion,
    task: ChoiceTask,
    signal: AbortSignal,
    hooks: ChoiceHooks,
  ): Promise<ChoiceOutcome>;
}

/** The gateway samples every token itself, with its watermark (embedded model, or an upstream's logprobs). */
export function samplingSession(
  backend: Backend,
  watermarker: Watermarker,
  accountKeys: AccountKeys | null = null,
): CompletionSession {
  const choiceRequest = (
    prepared: PreparedCompletion,
    task: ChoiceTask,
    signal: AbortSignal,
    watermarker: Watermarker,
  ): ChoiceRequest => {
    // the request's seed, one per choice; else a fresh one (createRandom draws the same way)
    const seed =
      prepared.seed === null
        ? randomBytes(4).readUInt32LE(0)
        : (prepared.seed + task.index) % Number.MAX_SAFE_INTEGER;
    return {
      model: prepared.model,
      promptTokens: task.prompt.tokens,
      messages: task.prompt.messages,
      maxTokens: prepared.maxTokens,
      temperature: prepared.temperature,
      topP: prepared.topP,
      random: createRandom(seed),
      seed,
      watermarker,
      signal,
      topLogprobs: prepared.topLogprobs,
    };
  };
  return {
    run: async (prepared, task, signal, hooks) =>
      runChoice({
        backend,
        request: choiceRequest(
          prepared,
          task,
          signal,
          accountKeys === null ? watermarker : (await accountKeys.forAccount(prepared.account)).watermarker,
        ),
        stops: prepared.stops,
        onToken: hooks.onToken,
        ...(hooks.onDelta === undefined ? {} : { onDelta: hooks.onDelta }),
      }),
  };
}
