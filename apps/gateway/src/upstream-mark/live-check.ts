/**
 * The live check of engine-native mode: a fraction of the completions served is kept in a sliding window
 * (the most recent ones, up to a number of tokens) and the window is tested for the serving key's mark
 * in the background, on the work pool, never on a request's path. When the pooled evidence holds enough
 * scored tokens and is no longer `watermarked`, the gateway raises an alert: a log line at error level
 * and the Prometheus gauge `tracemark_upstream_mark_missing` at 1 (back to 0, with an info line, when the
 * mark returns). The engine may have been restarted without its watermark or with another key.
 *
 * "Enough" is twice the scored tokens the start-up check needed to reach `watermarked` (at least 64, at
 * most 80% of the window): the window then holds the evidence that settled the start-up check twice over.
 */
import type { AnyDocumentResult } from '@tracemark/detection';

export interface LiveMarkState {
  readonly checks: number;
  readonly verdict: AnyDocumentResult['verdict'] | null;
  readonly numTokens: number;
  readonly numScored: number;
  readonly log10P: number | null;
  /** Scored tokens the window needs before a missing mark raises the alert. */
  readonly minScored: number;
  readonly missing: boolean;
}

export interface LiveMarkCheckOptions {
  /** Fraction of completions kept (0: the check is off). */
  readonly sampleRate: number;
  readonly windowTokens: number;
  /** Scored tokens the start-up check needed to reach `watermarked`. */
  readonly startupScored: number;
  /** Pooled detection of the window's token ids (on the work pool). */
  readonly detect: (ids: number[]) => Promise<AnyDocumentResult>;
  /** Each result, and whether the alert is raised. */
  readonly onResult: (state: LiveMarkState, result: AnyDocumentResult) => void;
  readonly onAlert: (state: LiveMarkState) => void;
  readonly onRecover: (state: LiveMarkState) => void;
  readonly onError: (error: unknown) => void;
  /** Uniform in [0, 1); default Math.random. */
  readonly random?: () => number;
}

export interface LiveMarkCheck {
  /** A completion was issued: sampled into the window at the configured rate. */
  observe(tokens: ArrayLike<number>): void;
  state(): LiveMarkState;
  /** Resolves once no test is running or due (for tests and shutdown). */
  idle(): Promise<void>;
}

export function liveMarkMinScored(startupScored: number, windowTokens: number): number {
  return Math.max(64, Math.min(2 * startupScored, Math.floor(0.8 * windowTokens)));
}

export function createLiveMarkCheck(options: LiveMarkCheckOptions): LiveMarkCheck {
  const random = options.random ?? Math.random;
  const minScored = liveMarkMinScored(options.startupScored, options.windowTokens);
  const window: number[][] = [];
  let windowTokens = 0;
  let running: Promise<void> | null = null;
  let due = false;
  let state: LiveMarkState = {
    checks: 0,
    verdict: null,
    numTokens: 0,
    numScored: 0,
    log10P: null,
    minScored,
    missing: false,
  };

  const test = async (): Promise<void> => {
    while (due) {
      due = false;
      const ids = window.flat();
      try {
        const result = await options.detect(ids);
        const missing = result.verdict !== 'watermarked' && result.numScored >= minScored;
        const was = state.missing;
        state = {
          checks: state.checks + 1,
          verdict: result.verdict,
          numTokens: ids.length,
          numScored: result.numScored,
          log10P: result.log10PAdjusted,
          minScored,
          missing,
        };
        options.onResult(state, result);
        if (missing && !was) options.onAlert(state);
        if (!missing && was) options.onRecover(state);
      } catch (error) {
        options.onError(error);
      }
    }
  };

  return {
    observe(tokens) {
      if (options.sampleRate <= 0 || tokens.length === 0 || random() >= options.sampleRate) return;
      window.push(Array.from(tokens));
      windowTokens += tokens.length;
      // The newest completion always stays, even when it alone is longer than the window.
      while (window.length > 1 && windowTokens > options.windowTokens) windowTokens -= window.shift()!.length;
      due = true;
      running ??= test().finally(() => {
        running = null;
      });
    },
    state: () => state,
    async idle() {
      while (running !== null) await running;
    },
  };
}
