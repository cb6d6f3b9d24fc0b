/**
 * Human text for the experiments, tokenized with cl100k_base (`encodeFast`, which gives the same ids as
 * `encode`). Anything scored against the default model's own generations uses the test split, which the
 * model never saw.
 */
import { createRandom } from '@tracemark/core';
import { type HumanCorpusSource, type HumanCorpusSplit, loadHumanCorpus } from '@tracemark/lm';
import { getTokenizer, type Tokenizer } from '@tracemark/tokenizers';
import { seedFor } from './labels.ts';

export const TOKENIZER_ID = 'cl100k_base';

export function tokenizer(): Tokenizer {
  return getTokenizer(TOKENIZER_ID);
}

export interface TokenizedDocument {
  readonly id: string;
  readonly source: HumanCorpusSource;
  readonly ids: Uint32Array;
}

const documentCache = new Map<string, Promise<TokenizedDocument[]>>();

/** The documents of one split, both sources (Brown first), tokenized once per process. */
export function tokenizedDocuments(split: HumanCorpusSplit): Promise<TokenizedDocument[]> {
  let documents = documentCache.get(split);
  if (documents === undefined) {
    documents = loadHumanCorpus({ split }).then((loaded) =>
      loaded.map((document) => ({
        id: document.id,
        source: document.id.startsWith('brown/') ? 'brown' : 'nlp-corpus',
        ids: tokenizer().encodeFast(document.text),
      })),
    );
    documentCache.set(split, documents);
  }
  return documents;
}

/**
 * Non-overlapping passages of `length` tokens cut from each source's documents joined end to end in
 * file order (so that long passages exist in nlp-corpus too, whose documents are about 580 tokens).
 */
export function passagesFrom(
  documents: readonly TokenizedDocument[],
  length: number,
  limit: number = Number.POSITIVE_INFINITY,
): Uint32Array[] {
  const passages: Uint32Array[] = [];
  for (const source of ['brown', 'nlp-corpus'] as const) {
    const parts = documents.filter((document) => document.source === source);
    const total = parts.reduce((sum, document) => sum + document.ids.length, 0);
    const stream = new Uint32Array(total);
    let offset = 0;
    for (const document of parts) {
      stream.set(document.ids, offset);
      offset += document.ids.length;
    }
    for (let start = 0; start + length <= total && passages.length < limit; start += length) {
      passages.push(stream.slice(start, start + length));
    }
  }
  return passages;
}

/** Deterministic Fisher-Yates shuffle (a copy). */
export function shuffled<T>(items: readonly T[], label: string): T[] {
  const copy = items.slice();
  const random = createRandom(seedFor(label));
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(random.nextFloat() * (i + 1));
    [copy[i], copy[j]] = [copy[j]!, copy[i]!];
  }
  return copy;
}

export interface PromptPair {
  /** Where it comes from: document id and token offset. */
  readonly origin: string;
  readonly prompt: Uint32Array;
  /** What the human wrote next: the negative sample for the same prompt. */
  readonly continuation: Uint32Array;
}

/**
 * (prompt, human continuation) pairs from the test split: each document is cut into non-overlapping
 * blocks of promptLength + continuationLength tokens; the list is shuffled so that Brown and
 * nlp-corpus mix.
 */
export async function promptPairs(promptLength: number, continuationLength: number): Promise<PromptPair[]> {
  const documents = await tokenizedDocuments('test');
  const pairs: PromptPair[] = [];
  const block = promptLength + continuationLength;
  for (const document of documents) {
    for (let start = 0; start + block <= document.ids.length; start += block) {
      pairs.push({
        origin: `${document.id}@${start}`,
        prompt: document.ids.slice(start, start + promptLength),
        continuation: document.ids.slice(start + promptLength, start + block),
      });
    }
  }
  return shuffled(pairs, `prompt-pairs/${promptLength}/${continuationLength}`);
}
