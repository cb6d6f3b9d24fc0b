// Shared by the tests (excluded from the build): the reference encoders, this package's encoder in its
// three merge configurations, the project's corpora and the adversarial inputs.
import { createRequire } from 'node:module';
import { Tiktoken, type TiktokenBPE } from 'js-tiktoken/lite';
// The corpora belong to @tracemark/lm, which depends on this package; its loader is reached by path so that
// the tests see exactly the documents of the project's corpora without a dependency cycle.
import { type HumanDocument, loadHumanCorpus } from '../../lm/src/human-corpus.js';
import { type BytePairEncoder, createBytePairEncoder } from './byte-pair-encoder.js';
import { buildByteTable } from './byte-table.js';
import { ENCODING_FACTS, type TokenizerId } from './encodings.js';
import { TokenTable } from './token-table.js';

const require = createRequire(import.meta.url);

export function loadRankFile(id: TokenizerId): TiktokenBPE {
  const loaded = require(`js-tiktoken/ranks/${id}`) as TiktokenBPE | { default: TiktokenBPE };
  return 'default' in loaded ? loaded.default : loaded;
}

const references = new Map<TokenizerId, Tiktoken>();

/** js-tiktoken's ids for `text` (not normalized), special-token text encoded as ordinary text. */
export function referenceEncode(id: TokenizerId, text: string): number[] {
  let reference = references.get(id);
  if (reference === undefined) {
    reference = new Tiktoken(loadRankFile(id));
    references.set(id, reference);
  }
  return reference.encode(text, [], []);
}

/**
 * The encoder with its default merge, with every piece merged on the heap or on arrays only, and with
 * no piece in WebAssembly (cl100k_base's `standard` takes its ASCII pieces there).
 */
export interface EncoderVariants {
  readonly standard: BytePairEncoder;
  readonly heapOnly: BytePairEncoder;
  readonly arraysOnly: BytePairEncoder;
  readonly javascript: BytePairEncoder;
}

const variants = new Map<TokenizerId, EncoderVariants>();

export function encoderVariants(id: TokenizerId): EncoderVariants {
  let result = variants.get(id);
  if (result === undefined) {
    const ranks = loadRankFile(id);
    const { ordinaryTokenCount } = ENCODING_FACTS[id];
    const table = new TokenTable(buildByteTable(ranks, ordinaryTokenCount, {}), ordinaryTokenCount);
    const create = (arrayMergeLimit?: number, wasm?: boolean): BytePairEncoder =>
      createBytePairEncoder({
        pattern: ranks.pat_str,
        table,
        ...(arrayMergeLimit === undefined ? {} : { arrayMergeLimit }),
        ...(wasm === undefined ? {} : { wasm }),
      });
    result = {
      standard: create(),
      heapOnly: create(0),
      arraysOnly: create(Number.POSITIVE_INFINITY),
      javascript: create(undefined, false),
    };
    variants.set(id, result);
  }
  return result;
}

/** The Brown corpus and nlp-corpus documents: every 20th of each (`sample`) or all 5,500. */
export function loadCorpus(which: 'sample' | 'all'): Promise<HumanDocument[]> {
  return loadHumanCorpus({ split: which === 'sample' ? 'test' : 'all' });
}

/**
 * Units whose repetition makes one long pre-tokenized piece (or long runs of short ones): the inputs on which
 * a quadratic merge or a backtracking pattern would show.
 */
export const REPEATED_UNITS: readonly string[] = [
  'a',
  'A',
  ' ',
  '\n',
  '\r\n',
  '\t',
  '0',
  '\u0000',
  '\u{1f600}',
  'e\u0301',
  '\u0301',
  '\u65e5\u672c',
  '\u0645\u0631\u062d\u0628\u0627',
  '\u0928\u092e\u0938\u094d\u0924\u0947',
  'ab',
  'a ',
  ' a',
  '\u{1f600}a',
  'aA',
  "'s",
  '!',
  '\u00a0',
  '\ud800',
  'A\u02b0',
  ' \n',
  'x\u65e5',
];

/** `unit` repeated to exactly `length` UTF-16 units (the last repetition may be cut). */
export function repeatTo(unit: string, length: number): string {
  return unit.repeat(Math.ceil(length / unit.length)).slice(0, length);
}

/**
 * Calls `check` on every string of 1 to `maxLength` members of `members` (each member a string) and returns
 * how many there were: the exhaustive tests of the pre-tokenizers.
 */
export function forEveryString(
  members: readonly string[],
  maxLength: number,
  check: (text: string) => void,
): number {
  let strings = [''];
  let checked = 0;
  for (let length = 1; length <= maxLength; length++) {
    strings = strings.flatMap((prefix) => members.map((member) => prefix + member));
    for (const text of strings) {
      check(text);
      checked++;
    }
  }
  return checked;
}

/** One or two members of every class cl100k_base's pattern tells apart, ASCII and not, and the contractions. */
export const CLASS_MEMBERS: readonly string[] = [
  'a',
  'Z',
  's',
  'T',
  'r',
  'E',
  'v',
  'l',
  'L',
  'd',
  'M',
  '0',
  '9',
  ' ',
  '\t',
  '\u000b',
  '\u000c',
  '\n',
  '\r',
  "'",
  '.',
  '!',
  '_',
  '\u0000',
  '\u001f',
  '\u007f',
  '\u00e9',
  '\u017f',
  '\u212a',
  '\u00a0',
  '\u2028',
  '\u0661',
  '\u{1f600}',
  '\ud800',
  '\u0301',
];
