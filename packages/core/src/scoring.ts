/**
 * What is scored (spec §6): eligibility, the dedup tape, prompt exclusion, per-token status. Gumbel
 * keys are scored on the same tape (dedup on (seed, token)), with a score per position instead of a
 * green bit (watermark-gumbel §5).
 */
import { BATCH_POSITIONS } from './prf-batch.ts';
import { DedupTape, TAPE_PROMPT, TAPE_SCORED } from './tape.ts';
import type { Watermarker } from './watermarker.ts';

/** Per-token status codes, stored in a Uint8Array. */
export const TokenStatus: {
  readonly skippedContext: 0;
  readonly skippedSpecial: 1;
  readonly skippedDuplicate: 2;
  readonly skippedPrompt: 3;
  readonly red: 4;
  readonly green: 5;
  /** Gumbel keys: scored (a score, not a green bit). */
  readonly scored: 6;
} = Object.freeze({
  skippedContext: 0,
  skippedSpecial: 1,
  skippedDuplicate: 2,
  skippedPrompt: 3,
  red: 4,
  green: 5,
  scored: 6,
} as const);

export type TokenStatusName =
  | 'skipped_context'
  | 'skipped_special'
  | 'skipped_duplicate'
  | 'skipped_prompt'
  | 'red'
  | 'green'
  | 'scored';

export const TOKEN_STATUS_NAMES: readonly TokenStatusName[] = Object.freeze([
  'skipped_context',
  'skipped_special',
  'skipped_duplicate',
  'skipped_prompt',
  'red',
  'green',
  'scored',
] as const);

export interface ScorerOptions {
  /** Score each (seed, token) pair once (default true). Without it, prompt pairs are still excluded. */
  readonly dedup?: boolean;
  /** Share one tape between scorers, e.g. across the documents of a corpus. */
  readonly tape?: DedupTape;
  /** Expected number of tokens, to size the tape once. */
  readonly expectedTokens?: number;
}

export interface ScoreCounts {
  readonly numTokens: number;
  readonly numScored: number;
  readonly numGreen: number;
}

export interface ChunkScore extends ScoreCounts {
  /** One status code per input token. */
  readonly status: Uint8Array;
}

function assertTokenIds(tokens: ArrayLike<number>, name: string): void {
  if (tokens === null || typeof tokens !== 'object' || typeof tokens.length !== 'number') {
    throw new TypeError(`${name}: expected an array of token ids`);
  }
  if (tokens instanceof Uint32Array) return;
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    if (typeof t !== 'number' || !Number.isInteger(t) || t < 0 || t > 0xffffffff) {
      throw new RangeError(`${name}[${i}]: ${String(t)} is not a token id (an integer from 0 to 2^32 − 1)`);
    }
  }
}

const EMPTY_HISTORY = new Uint32Array(0);
/** Scored positions a fresh scorer has room for, and the most that {@link Scorer.reset} keeps. */
const INITIAL_SCORED = 256;
const EMPTY_UNITS = new Uint32Array(0);
/**
 * Gumbel keys: a block's scored units, three words each, for one tokenScores call. One array for every
 * scorer of the thread (a block is scored within one synchronous call), grown to the largest block.
 */
let units = EMPTY_UNITS;
function blockUnits(positions: number): Uint32Array {
  if (units.length < 3 * positions) units = new Uint32Array(3 * positions);
  return units;
}
const KEPT_SCORED = 1 << 16;

/**
 * Streaming scorer for one key: feed the prompt, then the completion in any number of chunks; the
 * result equals scoring the whole completion at once.
 */
export class Scorer {
  readonly watermarker: Watermarker;
  private readonly dedup: boolean;
  private readonly tape: DedupTape;
  /** Whether the tape is this scorer's own (not shared through options.tape), so that reset may clear it. */
  private readonly ownTape: boolean;
  private readonly width: number;
  /** The last `width` tokens seen, the context of the next chunk. */
  private history: Uint32Array = EMPTY_HISTORY;
  private started = false;
  private tokens = 0;
  private scored = 0;
  private green = 0;
  private readonly seed = new Uint32Array(2);
  /** Green bits of the scored positions, in order, and their token indices. */
  private bits: Uint8Array = new Uint8Array(INITIAL_SCORED);
  private positions: Uint32Array = new Uint32Array(INITIAL_SCORED);
  /** Gumbel keys: the scores of the scored positions, in order, and their sum. */
  private scores: Float64Array = new Float64Array(0);
  private total = 0;
  private readonly gumbel: boolean;

  constructor(watermarker: Watermarker, options: ScorerOptions = {}) {
    this.watermarker = watermarker;
    this.dedup = options.dedup ?? true;
    this.ownTape = options.tape === undefined;
    this.tape = options.tape ?? new DedupTape(options.expectedTokens);
    this.width = watermarker.scheme.contextWidth;
    this.gumbel = watermarker.family === 'gumbel';
    if (this.gumbel) this.scores = new Float64Array(INITIAL_SCORED);
  }

  /** Adds prompt tokens: their (seed, token) pairs are excluded, and they give context. */
  addPrompt(prompt: ArrayLike<number>): void {
    assertTokenIds(prompt, 'prompt');
    if (this.started) throw new Error('addPrompt: the prompt must be given before the completion');
    const context = this.withHistory(prompt);
    this.scan(context, context.length - prompt.length, true, null);
    this.keepHistory(context);
  }

  /** Scores a chunk of the completion. */
  push(tokens: ArrayLike<number>): ChunkScore {
    assertTokenIds(tokens, 'tokens');
    const status = new Uint8Array(tokens.length);
    const before = this.scored;
    const greenBefore = this.green;
    this.scoreChunk(tokens, status);
    return {
      numTokens: tokens.length,
      numScored: this.scored - before,
      numGreen: this.green - greenBefore,
      status,
    };
  }

  /** Scores a chunk of the completion as {@link push} does, without the per-token status (bulk detection). */
  pushWithoutStatus(tokens: ArrayLike<number>): void {
    assertTokenIds(tokens, 'tokens');
    this.scoreChunk(tokens, null);
  }

  /**
   * Starts over as a new scorer of the same key and options: no prompt, nothing scored, an empty tape
   * sized for about `expectedTokens` tokens. The buffers are kept, which spares allocating a scorer per
   * document. A scorer that shares a tape (options.tape) cannot reset: the other scorers use the tape.
   */
  reset(expectedTokens?: number): void {
    if (!this.ownTape) throw new Error('reset: this scorer shares its tape (options.tape)');
    this.tape.clear(expectedTokens);
    this.history = EMPTY_HISTORY;
    this.started = false;
    this.tokens = 0;
    this.scored = 0;
    this.green = 0;
    this.total = 0;
    if (this.bits.length > KEPT_SCORED) {
      this.bits = new Uint8Array(INITIAL_SCORED);
      this.positions = new Uint32Array(INITIAL_SCORED);
      if (this.gumbel) this.scores = new Float64Array(INITIAL_SCORED);
    }
  }

  /** Scores checked token ids. */
  private scoreChunk(tokens: ArrayLike<number>, status: Uint8Array | null): void {
    this.started = true;
    const context = this.withHistory(tokens);
    this.reserve(tokens.length);
    this.scan(context, context.length - tokens.length, false, status);
    this.keepHistory(context);
    this.tokens += tokens.length;
  }

  /**
   * Walks positions [offset, length) of `context`. For the prompt, puts each eligible pair on the tape
   * as a prompt pair; otherwise scores the completion, writing each token's status to `status` when
   * given. Seeds and green bits come from the accelerated batch path when available, else from the
   * scalar path.
   */
  private scan(context: Uint32Array, offset: number, prompt: boolean, status: Uint8Array | null): void {
    const watermarker = this.watermarker;
    const tape = this.tape;
    const seed = this.seed;
    const selfHash = watermarker.scheme.name === 'selfhash';
    // Positions before `reach` have no full window; a window spans [i − reach, i] with the token.
    const reach = selfHash ? this.width - 1 : this.width;
    const specials = this.specialPrefix(context);
    const firstIndex = this.tokens - offset;
    for (let blockStart = offset; blockStart < context.length; blockStart += BATCH_POSITIONS) {
      const blockEnd = Math.min(context.length, blockStart + BATCH_POSITIONS);
      const batch = watermarker.batch(context, blockStart, blockEnd);
      // Gumbel keys: the block's scored units, scored together after it (tokenScores).
      const firstScored = this.scored;
      const units = this.gumbel ? blockUnits(blockEnd - blockStart) : EMPTY_UNITS;
      for (let i = blockStart; i < blockEnd; i++) {
        const token = context[i]!;
        let code: number;
        if (i < reach) code = TokenStatus.skippedContext;
        else if (specials !== null && specials[i + 1]! - specials[i - reach]! > 0)
          code = TokenStatus.skippedSpecial;
        else {
          let seedHigh: number;
          let seedLow: number;
          if (batch !== null) {
            seedLow = batch.seeds[2 * (i - blockStart)]!;
            seedHigh = batch.seeds[2 * (i - blockStart) + 1]!;
          } else {
            watermarker.seedAt(context, i, seed);
            seedHigh = seed[0]!;
            seedLow = seed[1]!;
          }
          const held = tape.insert(seedHigh, seedLow, token, prompt ? TAPE_PROMPT : TAPE_SCORED);
          if (prompt) continue;
          if (held === TAPE_PROMPT) code = TokenStatus.skippedPrompt;
          else if (held === TAPE_SCORED && this.dedup) code = TokenStatus.skippedDuplicate;
          else if (this.gumbel) {
            code = TokenStatus.scored;
            const at = 3 * (this.scored - firstScored);
            units[at] = seedLow;
            units[at + 1] = seedHigh;
            units[at + 2] = token;
            this.positions[this.scored] = firstIndex + i;
            this.scored++;
          } else {
            const isGreen =
              batch !== null
                ? batch.greens[i - blockStart] === 1
                : watermarker.isGreen(seedHigh, seedLow, token);
            code = isGreen ? TokenStatus.green : TokenStatus.red;
            this.bits[this.scored] = isGreen ? 1 : 0;
            this.positions[this.scored] = firstIndex + i;
            this.scored++;
            if (isGreen) this.green++;
          }
        }
        if (status !== null) status[i - offset] = code;
      }
      const count = this.scored - firstScored;
      if (!this.gumbel || count === 0) continue;
      const scores = this.scores.subarray(firstScored, this.scored);
      watermarker.tokenScores(units, count, scores);
      // Summed in position order, as one at a time.
      for (let j = 0; j < count; j++) this.total += scores[j]!;
    }
  }

  /** Totals over everything pushed so far. */
  counts(): ScoreCounts {
    return { numTokens: this.tokens, numScored: this.scored, numGreen: this.green };
  }

  /** Green bits of the scored positions in order (the scored tape). */
  scoredBits(): Uint8Array {
    return this.bits.slice(0, this.scored);
  }

  /** Gumbel keys: the score of each scored position, in order (empty for green-list keys). */
  scoredScores(): Float64Array {
    return this.scores.slice(0, this.gumbel ? this.scored : 0);
  }

  /** Gumbel keys: S, the sum of the scored positions' scores, added in order (0 for green-list keys). */
  totalScore(): number {
    return this.total;
  }

  /** Token index of each scored position. */
  scoredPositions(): Uint32Array {
    return this.positions.slice(0, this.scored);
  }

  /** specials[i] = number of special tokens in context[0, i); null when the chunk has none. */
  private specialPrefix(context: Uint32Array): Uint32Array | null {
    const watermarker = this.watermarker;
    if (watermarker.specialTokenIds.size === 0) return null;
    // Most text holds no special token: find the first before allocating anything.
    let first = 0;
    while (first < context.length && !watermarker.isSpecial(context[first]!)) first++;
    if (first === context.length) return null;
    const prefix = new Uint32Array(context.length + 1);
    for (let i = first; i < context.length; i++) {
      prefix[i + 1] = prefix[i]! + (watermarker.isSpecial(context[i]!) ? 1 : 0);
    }
    return prefix;
  }

  private withHistory(tokens: ArrayLike<number>): Uint32Array {
    // The first chunk of a completion with no prompt is its own context: scanning only reads it.
    if (this.history.length === 0 && tokens instanceof Uint32Array) return tokens;
    const context = new Uint32Array(this.history.length + tokens.length);
    context.set(this.history);
    if (tokens instanceof Uint32Array || Array.isArray(tokens))
      context.set(tokens as ArrayLike<number>, this.history.length);
    else for (let i = 0; i < tokens.length; i++) context[this.history.length + i] = tokens[i]!;
    return context;
  }

  private keepHistory(context: Uint32Array): void {
    this.history = context.slice(Math.max(0, context.length - this.width));
  }

  private reserve(extra: number): void {
    const needed = this.scored + extra;
    if (needed <= this.bits.length) return;
    let capacity = this.bits.length;
    while (capacity < needed) capacity *= 2;
    const bits = new Uint8Array(capacity);
    bits.set(this.bits);
    const positions = new Uint32Array(capacity);
    positions.set(this.positions);
    this.bits = bits;
    this.positions = positions;
    if (this.gumbel) {
      const scores = new Float64Array(capacity);
      scores.set(this.scores);
      this.scores = scores;
    }
  }
}

export { DedupTape };
