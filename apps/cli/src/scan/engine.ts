/**
 * The work of `tracemark scan` that can run on worker threads: JSONL lines to token ids, text to
 * token ids, and batches of fake keys. The same engine runs in the main thread without workers.
 */
import { type FakeKeyCounts, type FakeKeyJob, runFakeKeyJob } from '@tracemark/extraction';
import { assertTokenIds, getTokenizer, isTokenizerId, PieceTooLongError } from '@tracemark/tokenizers';
import { parseJsonlLine } from '../inputs.ts';

export interface ScanEngineOptions {
  /** The keys' tokenizer id; an engine's key may name one tracemark does not ship (token ids only). */
  readonly tokenizer: string;
  /** Token ids must be below this when the tokenizer is not shipped (2^31 when the keys do not say). */
  readonly vocabSize?: number;
  /** The error message for text when the tokenizer is not shipped (names the key, never its secret). */
  readonly textUnavailable?: string;
}

const TEXT_UNAVAILABLE = 'TM_ERR_TOKENIZER_UNAVAILABLE';

/** A tokenized document, or an error naming its file and line. */
export type TokenizedDocument =
  | {
      readonly source: string;
      readonly tokens: Uint32Array;
      readonly prompt?: Uint32Array;
      readonly bytes: number;
    }
  | {
      readonly source: string;
      readonly error: { readonly code: string; readonly message: string };
      readonly bytes: number;
    };

export type ScanJob =
  | {
      readonly kind: 'lines';
      readonly source: string;
      readonly firstLine: number;
      readonly texts: string[];
      /** Field names for this batch (the issued file has its own); absent for the default rule (inputs.ts). */
      readonly field?: string;
      readonly promptField?: string | false;
    }
  | { readonly kind: 'tokenize'; readonly text: string }
  | { readonly kind: 'fake'; readonly job: FakeKeyJob };

export type ScanJobResult =
  | { readonly kind: 'documents'; readonly documents: TokenizedDocument[] }
  | { readonly kind: 'tokens'; readonly tokens: Uint32Array }
  | { readonly kind: 'fake'; readonly counts: FakeKeyCounts }
  /** A text the engine cannot tokenize (a key bound to a tokenizer tracemark does not ship). */
  | { readonly kind: 'error'; readonly error: { readonly code: string; readonly message: string } };

export interface ScanEngine {
  run(job: ScanJob): ScanJobResult;
}

/** Buffers to transfer (not copy) back from a worker. */
export function transferables(result: ScanJobResult): ArrayBuffer[] {
  if (result.kind === 'tokens') return [result.tokens.buffer as ArrayBuffer];
  if (result.kind === 'documents') {
    const buffers: ArrayBuffer[] = [];
    for (const document of result.documents) {
      if ('tokens' in document) {
        buffers.push(document.tokens.buffer as ArrayBuffer);
        if (document.prompt !== undefined) buffers.push(document.prompt.buffer as ArrayBuffer);
      }
    }
    return buffers;
  }
  return [];
}

class TextUnavailableError extends Error {
  readonly code = TEXT_UNAVAILABLE;
}

export function createScanEngine(options: ScanEngineOptions): ScanEngine {
  const tokenizer = isTokenizerId(options.tokenizer) ? getTokenizer(options.tokenizer) : null;
  const vocabulary = tokenizer ?? { vocabSize: options.vocabSize ?? 2 ** 31 };
  const unavailable =
    options.textUnavailable ?? `tokenizer "${options.tokenizer}" is not shipped; give token ids`;
  const toIds = (content: string | number[], name: string): Uint32Array => {
    if (typeof content === 'string') {
      if (tokenizer === null) throw new TextUnavailableError(`${name}: ${unavailable}`);
      return tokenizer.encodeFast(content);
    }
    assertTokenIds(content, vocabulary, name);
    return Uint32Array.from(content);
  };
  const run = (job: ScanJob): ScanJobResult => {
    if (job.kind === 'tokenize') {
      if (tokenizer === null)
        return { kind: 'error', error: { code: TEXT_UNAVAILABLE, message: unavailable } };
      return { kind: 'tokens', tokens: tokenizer.encodeFast(job.text) };
    }
    if (job.kind === 'fake') return { kind: 'fake', counts: runFakeKeyJob(job.job) };
    const documents: TokenizedDocument[] = [];
    job.texts.forEach((text, i) => {
      const where = `${job.source}:${job.firstLine + i}`;
      const parsed = parseJsonlLine(text, where, job.field, job.promptField);
      if (parsed === null) return;
      if (parsed.error !== undefined) {
        documents.push({ source: where, error: parsed.error, bytes: parsed.bytes });
        return;
      }
      try {
        const tokens = toIds(parsed.text ?? parsed.tokens ?? '', `${where}: "${parsed.field}"`);
        const prompt =
          parsed.prompt === undefined ? undefined : toIds(parsed.prompt, `${where}: "${parsed.promptField}"`);
        documents.push({
          source: where,
          tokens,
          ...(prompt === undefined ? {} : { prompt }),
          bytes: parsed.bytes,
        });
      } catch (error) {
        documents.push({
          source: where,
          error: {
            code:
              error instanceof TextUnavailableError || error instanceof PieceTooLongError
                ? error.code
                : 'TM_ERR_INVALID_TOKENS',
            // The tokenizer's message does not name the document.
            message:
              error instanceof PieceTooLongError ? `${where}: ${error.message}` : (error as Error).message,
          },
          bytes: parsed.bytes,
        });
      }
    });
    return { kind: 'documents', documents };
  };
  return { run };
}
