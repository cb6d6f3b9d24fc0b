import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';

export interface LoadTextCorpusOptions {
  /** `jsonl` (one JSON object a line) or `text` (documents separated by blank lines); default from the
   * extension: `.jsonl`, `.ndjson` and `.json` read as JSONL, anything else as text. */
  readonly format?: 'text' | 'jsonl';
  /** The JSONL field that holds a document's text; default `text`. */
  readonly field?: string;
}

/**
 * Reads the documents of a text corpus file, streaming, so files larger than one JavaScript string work.
 * Text files: documents are separated by one or more blank lines; each is trimmed, empty ones dropped.
 * JSONL files: blank lines are skipped; every other line must be a JSON object whose `field` is a string.
 */
export async function loadTextCorpus(path: string, options: LoadTextCorpusOptions = {}): Promise<string[]> {
  if (typeof path !== 'string' || path === '') throw new TypeError('path must be a non-empty string');
  const { field = 'text' } = options;
  const format = options.format ?? (/\.(jsonl|ndjson|json)$/i.test(path) ? 'jsonl' : 'text');
  if (format !== 'text' && format !== 'jsonl') {
    throw new RangeError(`options.format must be 'text' or 'jsonl', got ${String(format)}`);
  }
  const lines = createInterface({ input: createReadStream(path, { encoding: 'utf8' }), crlfDelay: Infinity });
  const documents: string[] = [];
  let lineNumber = 0;
  if (format === 'jsonl') {
    for await (const line of lines) {
      lineNumber++;
      if (line.trim() === '') continue;
      let record: unknown;
      try {
        record = JSON.parse(line);
      } catch (error) {
        throw new SyntaxError(`${path}:${lineNumber}: not valid JSON (${(error as Error).message})`);
      }
      const text =
        record !== null && typeof record === 'object'
          ? (record as Record<string, unknown>)[field]
          : undefined;
      if (typeof text !== 'string')
        throw new TypeError(`${path}:${lineNumber}: field "${field}" is not a string`);
      documents.push(text);
    }
    return documents;
  }
  let current: string[] = [];
  const flush = (): void => {
    const text = current.join('\n').trim();
    if (text !== '') documents.push(text);
    current = [];
  };
  for await (const line of lines) {
    if (line.trim() === '') flush();
    else current.push(line);
  }
  flush();
  return documents;
}
