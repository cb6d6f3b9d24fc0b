/** The shapes a completion passes through: request → prepared completion → choices → response. */
import type { ChatMessage } from '../backends/types.ts';
import type { ChoiceOutcome } from '../generation/run-choice.ts';
import type { Endpoint } from '../storage/types.ts';

export type Body = Record<string, unknown>;

export interface PreparedPrompt {
  readonly text: string;
  readonly tokens: Uint32Array;
  readonly messages: readonly ChatMessage[] | null;
}

/** A validated request: what to generate, how, and how to answer. */
export interface PreparedCompletion {
  readonly endpoint: Endpoint;
  readonly model: string;
  readonly prompts: readonly PreparedPrompt[];
  readonly n: number;
  readonly maxTokens: number;
  readonly temperature: number;
  readonly topP: number;
  readonly seed: number | null;
  readonly stops: readonly string[];
  readonly stream: boolean;
  readonly includeUsage: boolean;
  readonly topLogprobs: number | null;
  /** The requesting API key's account (per-account keys mark its output with its own sub-key). */
  readonly account: string;
}

/** One choice to generate: its prompt and its index among the response's choices. */
export interface ChoiceTask {
  readonly prompt: PreparedPrompt;
  readonly index: number;
}

export interface ChoiceResult extends ChoiceOutcome {
  readonly index: number;
  readonly prompt: PreparedPrompt;
}

/** The choices of a prepared completion, prompt by prompt, n each. */
export function choiceTasks(prepared: PreparedCompletion): ChoiceTask[] {
  const tasks: ChoiceTask[] = [];
  prepared.prompts.forEach((prompt, promptIndex) => {
    for (let i = 0; i < prepared.n; i++) tasks.push({ prompt, index: promptIndex * prepared.n + i });
  });
  return tasks;
}
