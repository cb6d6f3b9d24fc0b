/**
 * The session of engine-native mode: the engine samples and marks; the gateway forwards the prepared
 * request (upstream-mark/engine-upstream.ts builds its body from an allow-list) and passes each chunk's
 * text through as it arrives, one downstream chunk per upstream chunk that carries text. It keeps the
 * text, tokenizes it with the serving key's tokenizer for the issuance record (handle.ts writes the record
 * before the final chunk), and hands the tokens to the live check.
 */
import type { Tokenizer } from '@tracemark/tokenizers';
import type { ChoiceOutcome, FinishReason } from '../generation/run-choice.ts';
import type { EngineUpstream } from '../upstream-mark/engine-upstream.ts';
import type { CompletionSession } from './session.ts';
import type { ChoiceTask, PreparedCompletion } from './types.ts';

export interface EngineNativeSessionOptions {
  readonly upstream: EngineUpstream;
  /** The serving key's tokenizer. */
  readonly tokenizer: Tokenizer;
  /** Every issued choice's tokens (the live check samples from them). */
  readonly onIssued?: (tokens: Uint32Array) => void;
}

/** The engine's finish reason in the gateway's terms: anything but `length` ended the text (`stop`). */
function finishReasonOf(engine: string | null): FinishReason {
  return engine === 'length' ? 'length' : 'stop';
}

export function engineNativeSession(options: EngineNativeSessionOptions): CompletionSession {
  const { upstream, tokenizer } = options;
  const outcomeOf = (text: string, finishReason: FinishReason): ChoiceOutcome => ({
    text,
    tokens: Array.from(tokenizer.encodeFast(text)),
    steps: [],
    finishReason,
    // The engine's distributions are not seen here: no expected strength is reported.
    strength: { expectedGreen: 0, spikeEntropySum: 0 },
  });

  return {
    async run(prepared: PreparedCompletion, task: ChoiceTask, signal: AbortSignal, hooks) {
      let text = '';
      let outcome: ChoiceOutcome;
      try {
        const completion = await upstream.complete(
          {
            messages: task.prompt.messages,
            prompt: task.prompt.text,
            maxTokens: prepared.maxTokens,
            temperature: prepared.temperature,
            topP: prepared.topP,
            seed: prepared.seed === null ? null : (prepared.seed + task.index) % Number.MAX_SAFE_INTEGER,
            stops: prepared.stops,
          },
          signal,
          async (delta) => {
            text += delta;
            if (hooks.onDelta !== undefined && !signal.aborted) await hooks.onDelta(delta, []);
          },
        );
        outcome = outcomeOf(completion.text, finishReasonOf(completion.finishReason));
      } catch (error) {
        // Cut short by the client, the deadline or shutdown: what was passed on was issued.
        if (!signal.aborted) throw error;
        outcome = outcomeOf(text, 'cancelled');
      }
      for (let i = 0; i < outcome.tokens.length; i++) hooks.onToken();
      if (outcome.tokens.length > 0) options.onIssued?.(Uint32Array.from(outcome.tokens));
      return outcome;
    },
  };
}
