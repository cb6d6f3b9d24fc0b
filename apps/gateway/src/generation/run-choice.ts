/** Runs one choice: backend steps → text deltas (stop sequences, whole characters) → the choice's outcome. */
import type { Backend, ChoiceRequest, GeneratedStep } from '../backends/types.ts';
import { TextAssembler } from './text-assembler.ts';

export type FinishReason = 'stop' | 'length' | 'cancelled';

export interface ChoiceOutcome {
  readonly text: string;
  readonly tokens: readonly number[];
  /** Per-token steps, kept only when logprobs were asked for. */
  readonly steps: readonly GeneratedStep[];
  readonly finishReason: FinishReason;
  /** The mark's expected strength over the choice's tokens. */
  readonly strength: ChoiceStrength;
}

/** Sums of core `stepStrength` over a choice's tokens. */
export interface ChoiceStrength {
  /** Σ P(green): the expected number of green tokens. */
  readonly expectedGreen: number;
  /** Σ spike entropy (Kirchenbauer et al. 2023, Definition 4.1). */
  readonly spikeEntropySum: number;
}

export interface RunChoiceOptions {
  readonly backend: Backend;
  readonly request: ChoiceRequest;
  readonly stops: readonly string[];
  /** Called for every sampled token, as it is sampled. */
  readonly onToken?: () => void;
  /** Streaming: text that can be shown now, with the steps of the tokens it completes. */
  readonly onDelta?: (delta: string, steps: readonly GeneratedStep[]) => Promise<void>;
}

export async function runChoice(options: RunChoiceOptions): Promise<ChoiceOutcome> {
  const { backend, request, onDelta } = options;
  const assembler = new TextAssembler(backend.tokenizer, options.stops);
  const keepSteps = request.topLogprobs !== null;
  const tokens: number[] = [];
  const steps: GeneratedStep[] = [];
  let unsent: GeneratedStep[] = [];
  let stopped = false;
  let expectedGreen = 0;
  let spikeEntropySum = 0;
  for await (const step of backend.generate(request)) {
    options.onToken?.();
    tokens.push(step.token);
    expectedGreen += step.strength.greenProbability;
    spikeEntropySum += step.strength.spikeEntropy;
    if (keepSteps) {
      steps.push(step);
      unsent.push(step);
    }
    const { delta, stopped: hitStop } = assembler.push(step.token);
    if (onDelta !== undefined && (delta !== '' || hitStop) && !request.signal.aborted) {
      await onDelta(delta, unsent);
      unsent = [];
    }
    if (hitStop) {
      stopped = true;
      break;
    }
  }
  if (!stopped && request.signal.aborted) {
    return {
      text: assembler.text,
      tokens,
      steps,
      finishReason: 'cancelled',
      strength: { expectedGreen, spikeEntropySum },
    };
  }
  if (!stopped) {
    const { delta } = assembler.finish();
    if (onDelta !== undefined && (delta !== '' || unsent.length > 0)) await onDelta(delta, unsent);
  }
  // Fewer tokens than allowed without a stop sequence: the backend's model ended the text itself.
  const finishReason: FinishReason = stopped || tokens.length < request.maxTokens ? 'stop' : 'length';
  return { text: assembler.text, tokens, steps, finishReason, strength: { expectedGreen, spikeEntropySum } };
}
