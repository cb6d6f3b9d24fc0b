/**
 * The supervised filter's input: the set of context windows that occur in outputs we issued.
 *
 * It holds windows only. A window is the part of a position's seed input that precedes the token:
 * the h preceding tokens for LeftHash(h), the h − 1 preceding tokens for SelfHash(h) (whose spec
 * window also holds the token itself, so using it would be a (window, token) filter in disguise).
 * Nothing here can hold or test a (window, token) pair: the set is built from whole issued outputs,
 * and its only query takes a window and no token. A filter on (window, token) pairs taken from
 * watermarked text keeps exactly the pairs the watermark made green, a positive by construction
 * (field notes §4); this type makes such a filter impossible to express.
 */
import type { Scheme, SchemeName } from '@tracemark/core';
import { TupleTable } from './tables.ts';

/** Width of the filter window of a scheme: h for LeftHash(h), h − 1 for SelfHash(h). */
export function filterWindowWidth(scheme: Pick<Scheme, 'name' | 'contextWidth'>): number {
  return scheme.name === 'selfhash' ? scheme.contextWidth - 1 : scheme.contextWidth;
}

export interface IssuedWindowSetOptions {
  /** Schemes of the keys the set will serve; one window width is kept per distinct width. */
  readonly schemes: readonly { readonly name: SchemeName; readonly contextWidth: number }[];
  /** The tokenizer's special token ids: a window holding one, or followed by one, is not kept. */
  readonly specialTokenIds: Iterable<number>;
}

/** Incremental construction from whole issued outputs. */
export interface IssuedWindowSetBuilder {
  /** Adds every window of one issued output (its token ids). */
  addOutput(tokens: ArrayLike<number>): void;
  build(): IssuedWindowSet;
}

const constructing = Symbol('IssuedWindowSet.construct');

/**
 * Windows that occur in issued outputs, for one or more window widths. Build it with
 * {@link IssuedWindowSet.fromOutputs} or {@link IssuedWindowSet.builder}; the constructor is private.
 */
export class IssuedWindowSet {
  readonly #tables: ReadonlyMap<number, TupleTable>;
  /** Number of issued outputs read. */
  readonly numOutputs: number;
  /** Number of issued tokens read. */
  readonly numTokens: number;

  private constructor(
    token: symbol,
    tables: ReadonlyMap<number, TupleTable>,
    outputs: number,
    tokens: number,
  ) {
    if (token !== constructing) {
      throw new TypeError(
        'IssuedWindowSet: build it with IssuedWindowSet.fromOutputs() or IssuedWindowSet.builder()',
      );
    }
    this.#tables = tables;
    this.numOutputs = outputs;
    this.numTokens = tokens;
    Object.freeze(this);
  }

  /** True for a set built by this module (a brand check that a look-alike object cannot pass). */
  static isIssuedWindowSet(value: unknown): value is IssuedWindowSet {
    return typeof value === 'object' && value !== null && #tables in value;
  }

  /** A builder that reads issued outputs one at a time (for a database cursor or a stream). */
  static builder(options: IssuedWindowSetOptions): IssuedWindowSetBuilder {
    const special = new Set<number>(options.specialTokenIds);
    const widths = [...new Set(options.schemes.map((scheme) => filterWindowWidth(scheme)))].sort(
      (a, b) => a - b,
    );
    if (widths.length === 0) throw new RangeError('schemes: expected at least one scheme');
    const tables = new Map<number, TupleTable>(widths.map((width) => [width, new TupleTable(width)]));
    let outputs = 0;
    let tokens = 0;
    let built = false;
    return {
      addOutput(output: ArrayLike<number>): void {
        if (built) throw new Error('addOutput: the set was already built');
        if (output === null || typeof output !== 'object' || typeof output.length !== 'number') {
          throw new TypeError('output: expected the token ids of one issued output');
        }
        outputs++;
        tokens += output.length;
        // lastSpecial: index of the last special token at or before j.
        let lastSpecial = -1;
        for (let j = 0; j < output.length; j++) {
          const token = output[j]!;
          if (special.has(token)) lastSpecial = j;
          for (const [width, table] of tables) {
            // Position j is eligible when its window [j − width, j) and the token hold no special token.
            if (lastSpecial < j - width) table.insert(output, j - width);
          }
        }
      },
      build(): IssuedWindowSet {
        built = true;
        return new IssuedWindowSet(constructing, tables, outputs, tokens);
      },
    };
  }

  /** Builds the set from issued outputs (token ids), e.g. one account's outputs from the issuance log. */
  static async fromOutputs(
    outputs: Iterable<ArrayLike<number>> | AsyncIterable<ArrayLike<number>>,
    options: IssuedWindowSetOptions,
  ): Promise<IssuedWindowSet> {
    const builder = IssuedWindowSet.builder(options);
    for await (const output of outputs) builder.addOutput(output);
    return builder.build();
  }

  /**
   * For each set, the windows it holds that no other set holds (same widths in every set). Attribution
   * scans one account on the windows issued to it alone: a window issued to two accounts cannot say
   * which of them the suspect learned from. Still windows only: no token is involved.
   */
  static exclusive(sets: readonly IssuedWindowSet[]): IssuedWindowSet[] {
    if (sets.length === 0) return [];
    for (const set of sets) {
      if (!IssuedWindowSet.isIssuedWindowSet(set)) throw new TypeError('sets: expected IssuedWindowSets');
    }
    const widths = sets[0]!.widths;
    for (const set of sets) {
      if (set.widths.join() !== widths.join())
        throw new RangeError('sets: every set must hold the same widths');
    }
    return sets.map((set, i) => {
      const tables = new Map<number, TupleTable>();
      for (const width of widths) {
        const own = set.#tables.get(width)!;
        const out = new TupleTable(width);
        const tuples = own.tuples();
        const windows = width === 0 ? own.size : tuples.length / width;
        for (let w = 0; w < windows; w++) {
          const start = w * width;
          let shared = false;
          for (let j = 0; j < sets.length && !shared; j++) {
            if (j !== i && sets[j]!.#tables.get(width)!.find(tuples, start) >= 0) shared = true;
          }
          if (!shared) out.insert(tuples, start);
        }
        tables.set(width, out);
      }
      return new IssuedWindowSet(constructing, tables, set.numOutputs, set.numTokens);
    });
  }

  /** Window widths held. */
  get widths(): readonly number[] {
    return [...this.#tables.keys()];
  }

  /** Number of distinct windows of a width. */
  numWindows(width: number): number {
    const table = this.#tables.get(width);
    if (table === undefined) throw new RangeError(`width: no windows of width ${width} were collected`);
    return table.size;
  }

  /** True when `tokens[start .. start + width)` occurs as a window in an issued output. No token is asked. */
  hasWindow(width: number, tokens: ArrayLike<number>, start: number): boolean {
    const table = this.#tables.get(width);
    if (table === undefined) throw new RangeError(`width: no windows of width ${width} were collected`);
    return table.find(tokens, start) >= 0;
  }
}
