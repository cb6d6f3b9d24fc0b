/**
 * Turns generated tokens into text deltas: holds back a token that ends inside a UTF-8 character, and text
 * that could be the start of a stop sequence, so a stream never shows what the final text will not contain.
 */
import type { Tokenizer } from '@tracemark/tokenizers';

const REPLACEMENT = '\uFFFD';
/** A UTF-8 character spans at most 4 tokens; past that the bytes are invalid and shown as U+FFFD. */
const MAX_PENDING_TOKENS = 4;

export interface AssemblerStep {
  /** Text that can be shown now. */
  readonly delta: string;
  /** True when a stop sequence was completed: the text ends before it and generation must stop. */
  readonly stopped: boolean;
}

export class TextAssembler {
  private readonly tokenizer: Tokenizer;
  private readonly stops: readonly string[];
  private readonly longestStop: number;
  private pending: number[] = [];
  private full = '';
  private emittedLength = 0;
  private stoppedAt = -1;

  constructor(tokenizer: Tokenizer, stops: readonly string[]) {
    this.tokenizer = tokenizer;
    this.stops = stops.filter((stop) => stop.length > 0);
    this.longestStop = this.stops.reduce((max, stop) => Math.max(max, stop.length), 0);
  }

  /** The text shown so far (up to, not including, a stop sequence once stopped). */
  get text(): string {
    return this.full.slice(0, this.emittedLength);
  }

  get stopped(): boolean {
    return this.stoppedAt >= 0;
  }

  push(token: number): AssemblerStep {
    if (this.stopped) return { delta: '', stopped: true };
    this.pending.push(token);
    const decoded = this.tokenizer.decode(this.pending);
    if (decoded.endsWith(REPLACEMENT) && this.pending.length < MAX_PENDING_TOKENS)
      return { delta: '', stopped: false };
    this.pending = [];
    this.full += decoded;
    return this.release(false);
  }

  /** Flushes everything held back (generation ended for another reason than a stop sequence). */
  finish(): AssemblerStep {
    if (this.stopped) return { delta: '', stopped: true };
    if (this.pending.length > 0) {
      this.full += this.tokenizer.decode(this.pending);
      this.pending = [];
    }
    return this.release(true);
  }

  private release(final: boolean): AssemblerStep {
    if (this.stops.length > 0) {
      const from = Math.max(0, this.emittedLength - this.longestStop + 1);
      let earliest = -1;
      for (const stop of this.stops) {
        const at = this.full.indexOf(stop, from);
        if (at >= 0 && (earliest < 0 || at < earliest)) earliest = at;
      }
      if (earliest >= 0) {
        const delta = this.full.slice(this.emittedLength, earliest);
        this.emittedLength = earliest;
        this.stoppedAt = earliest;
        return { delta, stopped: true };
      }
    }
    let safe = this.full.length;
    if (!final) {
      // Hold back the longest suffix that is a proper prefix of a stop sequence.
      for (let length = Math.min(this.longestStop - 1, this.full.length); length > 0; length--) {
        const suffix = this.full.slice(this.full.length - length);
        if (this.stops.some((stop) => stop.startsWith(suffix))) {
          safe = this.full.length - length;
          break;
        }
      }
    }
    safe = Math.max(safe, this.emittedLength);
    const delta = this.full.slice(this.emittedLength, safe);
    this.emittedLength = safe;
    return { delta, stopped: false };
  }
}
