/**
 * Reads documents from files, directories, JSONL or stdin as a stream, with bounded memory. A bad
 * line or file becomes an error document naming the file and line; the rest is still read.
 */
import { createReadStream } from 'node:fs';
import { open, readdir, realpath, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { CliError, type CliIo, EXIT } from './io.ts';

export type InputFormat = 'text' | 'jsonl';

/** Read when --field is not given, the first a record has: `text`, else `output` (what `tracemark probe` writes). */
export const DEFAULT_TEXT_FIELDS: readonly string[] = Object.freeze(['text', 'output']);
/** The prompt when --prompt-field is not given, if a record has it as a string or token ids (as probe writes). */
export const DEFAULT_PROMPT_FIELD = 'prompt';

export const FIELD_HELP =
  'JSONL field holding the text or the token ids (default: "text", else "output", as `tracemark probe` writes)';
export const NO_PROMPT_FIELD_HELP = 'do not use a "prompt" field of the records as the prompt';

/** The rule in full, for the end of the help (commander wraps option descriptions). */
export const JSONL_HELP = `
JSONL records: the text comes from --field if given, else "text", else "output"; the prompt from
--prompt-field if given, else "prompt" when a record has it (a string or token ids), and from none
with --no-prompt-field. So the output of \`tracemark probe\` is read without flags.`;

/**
 * Reading stdin that is a terminal waits for the user to type: with no paths that is refused as a
 * usage error, and `-`, which asks for it, gets a one-line hint on stderr.
 */
export function checkTerminalStdin(
  paths: readonly string[],
  io: CliIo,
  command: string,
  quiet: boolean,
): void {
  if (io.stdinIsTTY !== true) return;
  if (paths.length === 0) {
    throw new CliError(
      'TM_ERR_USAGE',
      `no input: give a file or directory, or pipe text in (\`cat FILE | tracemark ${command} --key KEY\`); - reads what you type`,
      EXIT.usage,
    );
  }
  if (paths.includes('-') && !quiet) {
    io.stderr.write(
      'reading from the terminal: type or paste the text, then press Ctrl-D on a line of its own\n',
    );
  }
}

export interface DocumentError {
  readonly code: string;
  readonly message: string;
}

export interface InputDocument {
  readonly source: string;
  /** Text, or token ids given directly. */
  readonly text?: string;
  readonly tokens?: number[];
  readonly prompt?: string | number[];
  /** The JSONL fields the text and the prompt were read from. */
  readonly field?: string;
  readonly promptField?: string;
  readonly error?: DocumentError;
  /** Bytes of input this document covers (for throughput and progress). */
  readonly bytes: number;
}

export interface ReadOptions {
  readonly format?: InputFormat;
  readonly stdin: Readable;
}

/**
 * Expands directories (recursively, sorted) and keeps files and `-` in the given order. Each directory
 * is walked once, by its real path: a symlink back up the tree (`up -> ..`) or to a folder already
 * walked adds nothing, so no file is scored twice; a symlink to a file is read as the file.
 */
export async function expandPaths(
  paths: readonly string[],
): Promise<(string | { error: DocumentError; source: string })[]> {
  return expandPathsOnce(paths, new Set(), false);
}

/** What a path that is neither a file nor a directory is, for the error that skips it. */
function kindOf(info: Awaited<ReturnType<typeof stat>>): string {
  if (info.isFIFO()) return 'a FIFO';
  if (info.isSocket()) return 'a socket';
  if (info.isCharacterDevice() || info.isBlockDevice()) return 'a device';
  return 'something else';
}

/**
 * `inDirectory`: the paths were found in a directory walk, where only regular files are read: a FIFO there
 * would wait for a writer forever, and a device (a symlink to /dev/zero) never ends. A FIFO or device named
 * on the command line is read (`<(command)` is one).
 */
async function expandPathsOnce(
  paths: readonly string[],
  walked: Set<string>,
  inDirectory: boolean,
): Promise<(string | { error: DocumentError; source: string })[]> {
  const out: (string | { error: DocumentError; source: string })[] = [];
  for (const path of paths) {
    if (path === '-') {
      out.push(path);
      continue;
    }
    try {
      const info = await stat(path);
      if (info.isDirectory()) {
        const real = await realpath(path);
        if (walked.has(real)) continue;
        walked.add(real);
        const entries = (await readdir(path, { withFileTypes: true })).sort((a, b) =>
          a.name < b.name ? -1 : 1,
        );
        out.push(
          ...(await expandPathsOnce(
            entries.filter((e) => !e.name.startsWith('.')).map((e) => join(path, e.name)),
            walked,
            true,
          )),
        );
      } else if (inDirectory && !info.isFile()) {
        out.push({
          source: path,
          error: { code: 'TM_ERR_IO', message: `${path}: cannot read (${kindOf(info)}, not a regular file)` },
        });
      } else out.push(path);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'error';
      out.push({ source: path, error: { code: 'TM_ERR_IO', message: `${path}: cannot read (${code})` } });
    }
  }
  return out;
}

/** How much input there is, for sizing a worker pool; Infinity where it cannot be known ahead (stdin, directories). */
export interface InputSize {
  readonly bytes: number;
  /** Jobs the input makes at least: JSONL line batches and text pieces, one per file at the least. */
  readonly jobs: number;
  /** Documents, estimated: a JSONL file's lines from the density of its first {@link SAMPLE_BYTES}; 1 a text file. */
  readonly documents: number;
}

/** Bytes read from the start of a JSONL file to estimate its lines. */
const SAMPLE_BYTES = 64 * 1024;

/** A JSONL file's lines, estimated from its first SAMPLE_BYTES (all of them when it is that short). */
async function estimateLines(path: string, size: number): Promise<number> {
  let file: Awaited<ReturnType<typeof open>> | undefined;
  try {
    file = await open(path, 'r');
    const sample = Buffer.alloc(Math.min(size, SAMPLE_BYTES));
    const { bytesRead } = await file.read(sample, 0, sample.length, 0);
    let lines = 0;
    for (let at = sample.indexOf(10, 0); at >= 0 && at < bytesRead; at = sample.indexOf(10, at + 1)) lines++;
    return bytesRead === 0 ? 0 : Math.max(1, Math.round((lines * size) / bytesRead));
  } catch {
    return 1;
  } finally {
    await file?.close();
  }
}

/**
 * The size of the inputs, by `stat` and, for JSONL files, their first 64 KB (to estimate their
 * documents). Files that cannot be read count 0.
 */
export async function measureInputs(
  paths: readonly string[],
  format: InputFormat | undefined,
): Promise<InputSize> {
  let bytes = 0;
  let jobs = 0;
  let documents = 0;
  for (const path of paths.length === 0 ? ['-'] : paths) {
    const info = path === '-' ? null : await stat(path).catch(() => undefined);
    if (info === undefined) continue;
    if (info === null || info.isDirectory()) return { bytes: Infinity, jobs: Infinity, documents: Infinity };
    bytes += info.size;
    const jsonl = formatOf(path, format) === 'jsonl';
    jobs += Math.max(1, Math.ceil(info.size / (jsonl ? BATCH_BYTES : PIECE_BYTES)));
    documents += jsonl ? await estimateLines(path, info.size) : 1;
  }
  return { bytes, jobs, documents };
}

function formatOf(path: string, format: InputFormat | undefined): InputFormat {
  if (format !== undefined) return format;
  return /\.(jsonl|ndjson)$/i.test(path) ? 'jsonl' : 'text';
}

/** Yields every input as error documents, text pieces (text files) or line batches (JSONL). */
export async function* readInputs(
  paths: readonly string[],
  options: ReadOptions,
): AsyncGenerator<InputDocument | TextPiece | LineBatch> {
  for await (const unit of readRawInputs(paths, options)) {
    if (!('rawLines' in unit)) yield unit;
    else {
      const { source, firstLine, bytes } = unit;
      const texts = decodeLines(unit.data, firstLine);
      if (texts.length > 0) yield { lines: true, source, firstLine, texts, bytes };
    }
  }
}

/**
 * As {@link readInputs}, with JSONL as raw bytes cut after a newline: a worker decodes them (a buffer
 * moves to a worker thread without a copy; strings are copied twice on the way).
 */
export async function* readRawInputs(
  paths: readonly string[],
  options: ReadOptions,
): AsyncGenerator<InputDocument | TextPiece | RawLineBatch> {
  const expanded = await expandPaths(paths.length === 0 ? ['-'] : paths);
  for (const entry of expanded) {
    if (typeof entry !== 'string') {
      yield { source: entry.source, error: entry.error, bytes: 0 };
      continue;
    }
    const source = entry;
    const format = formatOf(source, options.format);
    try {
      if (format === 'jsonl') {
        yield* readJsonl(
          source === '-' ? (options.stdin as AsyncIterable<Uint8Array>) : fileChunks(source),
          source,
        );
      } else yield* readText(source === '-' ? options.stdin : createReadStream(source), source);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'error';
      yield { source, error: { code: 'TM_ERR_IO', message: `${source}: cannot read (${code})` }, bytes: 0 };
    }
  }
}

/** A piece of one long text document; `last` closes the document. */
export interface TextPiece {
  readonly piece: true;
  readonly source: string;
  readonly text: string;
  readonly first: boolean;
  readonly last: boolean;
  readonly bytes: number;
  readonly error?: DocumentError;
}

const PIECE_BYTES = 4 * 1024 * 1024;

/** Whether a newline followed by `next` is a place to cut text (see {@link readText}). */
const cutsBefore = (next: number): boolean => next > 32 && next < 127;

/**
 * Where `text` may be cut last: after a newline that is followed by a printable ASCII character; -1 for
 * nowhere. Only newlines at `from` or after are looked at.
 */
function safeCut(text: string, from: number): number {
  for (let i = text.length - 2; i >= from; i--) {
    if (text.charCodeAt(i) === 10 && cutsBefore(text.charCodeAt(i + 1))) return i + 1;
  }
  return -1;
}

/**
 * The longest line read (bytes of a JSONL line; characters of text with no place to cut it into pieces):
 * memory stays bounded on a file of one endless line (a string cannot be over 512 Mi characters anyway).
 */
export const MAX_LINE_BYTES: number = 64 * 1024 * 1024;

const MAX_LINE_TEXT = `${MAX_LINE_BYTES / 1024 / 1024} MiB`;

/** Invalid UTF-8 is an error of its document: replaced by U+FFFD, it would be scored as other text. */
function invalidUtf8(where: string): DocumentError {
  return {
    code: 'TM_ERR_INVALID_UTF8',
    message: `${where}: not valid UTF-8 (another encoding? convert it to UTF-8 first)`,
  };
}

/**
 * A text file in pieces of about {@link PIECE_BYTES}, each cut after a newline that is followed by a
 * printable ASCII character: tokenizers start a new token there and NFC cannot merge across it, so the
 * pieces tokenize exactly as the whole. Each chunk is searched for such a place once, as it comes (the
 * text so far is not searched, or joined, again for every chunk).
 */
async function* readText(stream: Readable, source: string): AsyncGenerator<TextPiece> {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const failed = (error: DocumentError, bytes: number): TextPiece => {
    stream.destroy();
    return { piece: true, source, text: '', first: true, last: true, bytes, error };
  };
  // the text not yet yielded, its length, and the last place to cut it (-1: none yet)
  let pending: string[] = [];
  let length = 0;
  let cut = -1;
  let first = true;
  let bytes = 0;
  let checked = false;
  for await (const chunk of stream) {
    const data = chunk as Buffer;
    if (!checked) {
      checked = true;
      if (data.subarray(0, 8192).includes(0)) {
        stream.destroy();
        yield {
          piece: true,
          source,
          text: '',
          first: true,
          last: true,
          bytes: data.length,
          error: { code: 'TM_ERR_BINARY_INPUT', message: `${source}: binary data (NUL bytes), not text` },
        };
        return;
      }
    }
    bytes += data.length;
    let text: string;
    try {
      text = decoder.decode(data, { stream: true });
    } catch {
      yield failed(invalidUtf8(source), bytes);
      return;
    }
    if (text === '') continue;
    // never at a newline that starts the text (as the whole text is never cut before its second character)
    const at = safeCut(text, Math.max(0, 1 - length));
    if (at > 0) cut = length + at;
    else if (length > 1 && pending.at(-1)!.endsWith('\n') && cutsBefore(text.charCodeAt(0))) cut = length;
    pending.push(text);
    length += text.length;
    if (length >= PIECE_BYTES) {
      if (cut > 0) {
        const whole = pending.join('');
        yield { piece: true, source, text: whole.slice(0, cut), first, last: false, bytes };
        first = false;
        bytes = 0;
        pending = [whole.slice(cut)];
        length -= cut;
        cut = -1;
      } else if (length > MAX_LINE_BYTES) {
        const error = {
          code: 'TM_ERR_LINE_TOO_LONG',
          message: `${source}: over ${MAX_LINE_TEXT} of text with no line break to split it at: not read`,
        };
        yield failed(error, bytes);
        return;
      }
    }
  }
  try {
    pending.push(decoder.decode());
  } catch {
    yield failed(invalidUtf8(source), bytes);
    return;
  }
  yield { piece: true, source, text: pending.join(''), first, last: true, bytes };
}

/** JSONL lines as read: UTF-8 that ends after a newline (but at the end of the file), never decoded yet. */
export interface RawLineBatch {
  readonly rawLines: true;
  readonly source: string;
  /** 1-based number of the first line; 1 only for the batch a byte-order mark may start. */
  readonly firstLine: number;
  /** The bytes, in an ArrayBuffer of their own (it may be transferred). */
  readonly data: Uint8Array;
  readonly bytes: number;
}

/**
 * What {@link decodeLines} gives for a line that is not valid UTF-8. It starts with a NUL, which no JSON
 * line holds: a line that decodes to it is an error either way.
 */
export const INVALID_UTF8_LINE = '\u0000\uFFFE not valid UTF-8';

/** UTF-8's byte-order mark. */
const BOM = [0xef, 0xbb, 0xbf] as const;

/**
 * The lines of a raw batch, as a streaming decoder reads the whole file: a byte-order mark is dropped
 * only at the file's start (`firstLine` 1); each line is decoded on its own (a newline ends no UTF-8
 * sequence, so invalid bytes decode alike), which keeps its string small: V8 puts a string over 128 KB
 * in memory of its own, which costs a page fault per 4 KB (a tenth of the time on some machines);
 * empty lines are kept as '' so numbering holds. A line that is not valid UTF-8 is {@link INVALID_UTF8_LINE}
 * (which {@link parseJsonlLine} reports), not its text with U+FFFD for the invalid bytes.
 */
export function decodeLines(data: Uint8Array, firstLine: number): string[] {
  const texts: string[] = [];
  const decoder = new TextDecoder('utf-8', { ignoreBOM: true, fatal: true });
  // Buffer's indexOf is memchr, a typed array's a loop.
  const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  let start = firstLine === 1 && BOM.every((byte, i) => bytes[i] === byte) ? BOM.length : 0;
  while (start < bytes.length) {
    let end = bytes.indexOf(10, start);
    if (end < 0) end = bytes.length;
    try {
      texts.push(decoder.decode(bytes.subarray(start, end)));
    } catch {
      texts.push(INVALID_UTF8_LINE);
    }
    start = end + 1;
  }
  return texts;
}

/** A batch of raw JSONL lines; parsing happens where the batch is scored (possibly a worker). */
export interface LineBatch {
  readonly lines: true;
  readonly source: string;
  /** 1-based number of the first line. */
  readonly firstLine: number;
  /** Lines in order; empty lines are kept as '' so numbering holds. */
  readonly texts: string[];
  readonly bytes: number;
}

const BATCH_LINES = 1024;
const BATCH_BYTES = 512 * 1024;

/**
 * The parts joined into one new array of `length` elements, made by `create` (for bytes: never a pooled
 * Buffer's memory, which a transfer would take away).
 */
export function joinArrays<T extends Uint8Array | Uint32Array>(
  parts: readonly T[],
  length: number,
  create: (length: number) => T,
): T {
  const out = create(length);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

const newBytes = (length: number): Uint8Array => new Uint8Array(length);

/** Bytes read from a file at a time, into one buffer reused for the whole file. */
const READ_BYTES = 1024 * 1024;

/**
 * A file's bytes in chunks that are views of one buffer, valid until the next chunk is asked for: a
 * stream's fresh buffer per chunk costs a page fault per 4 KB read.
 */
async function* fileChunks(path: string): AsyncGenerator<Uint8Array> {
  const file = await open(path, 'r');
  try {
    const buffer = new Uint8Array(READ_BYTES);
    for (;;) {
      const { bytesRead } = await file.read(buffer, 0, buffer.length, null);
      if (bytesRead === 0) return;
      yield buffer.subarray(0, bytesRead);
    }
  } finally {
    await file.close();
  }
}

/**
 * Cuts JSONL into batches of whole lines; a chunk is read only until the next one is asked for. A line
 * over {@link MAX_LINE_BYTES} is not held: its bytes are skipped to its newline, and it is an error
 * document of its own (the lines around it are read as usual).
 */
async function* readJsonl(
  chunks: AsyncIterable<Uint8Array>,
  source: string,
): AsyncGenerator<RawLineBatch | InputDocument> {
  // the bytes after the last cut: copies of earlier chunks' ends, then views of the current chunk
  let parts: Uint8Array[] = [];
  let held = 0;
  let lines = 0;
  let firstLine = 1;
  // bytes of the line being read that are held (those of earlier chunks), and of a line being skipped
  let partial = 0;
  let skipped = -1;
  const tooLong = (bytes: number): InputDocument => ({
    source: `${source}:${firstLine}`,
    bytes,
    error: {
      code: 'TM_ERR_LINE_TOO_LONG',
      message: `${source}:${firstLine}: line longer than ${MAX_LINE_TEXT}: not read`,
    },
  });
  for await (const data of chunks) {
    let start = 0;
    let at = 0;
    while (at < data.length) {
      const newline = data.indexOf(10, at);
      const end = newline < 0 ? data.length : newline;
      if (skipped >= 0) {
        skipped += end - at;
        at = start = newline < 0 ? data.length : newline + 1;
        if (newline >= 0) {
          yield tooLong(skipped + 1);
          firstLine++;
          skipped = -1;
        }
        continue;
      }
      if (partial + end - at > MAX_LINE_BYTES) {
        // The whole lines before it go out first; the held start of this one is dropped.
        if (lines > 0) {
          const before = joinArrays([...parts, data.subarray(start, at)], held + at - start, newBytes);
          const size = held + at - start - partial;
          yield { rawLines: true, source, firstLine, data: before.slice(0, size), bytes: size };
          firstLine += lines;
        }
        skipped = partial;
        parts = [];
        held = 0;
        lines = 0;
        partial = 0;
        start = at;
        continue;
      }
      if (newline < 0) {
        partial += data.length - at;
        break;
      }
      lines++;
      partial = 0;
      at = newline + 1;
      const size = held + at - start;
      if (lines >= BATCH_LINES || size >= BATCH_BYTES) {
        parts.push(data.subarray(start, at));
        yield { rawLines: true, source, firstLine, data: joinArrays(parts, size, newBytes), bytes: size };
        firstLine += lines;
        parts = [];
        held = 0;
        lines = 0;
        start = at;
      }
    }
    if (skipped < 0 && start < data.length) {
      // copied: the chunk's memory may be read into again
      parts.push(data.slice(start));
      held += data.length - start;
    }
  }
  if (skipped >= 0) yield tooLong(skipped);
  else if (held > 0)
    yield { rawLines: true, source, firstLine, data: joinArrays(parts, held, newBytes), bytes: held };
}

/**
 * Parses one JSONL line into a document, or an error document naming file and line. `field` undefined:
 * the first of DEFAULT_TEXT_FIELDS the record has. `promptField` undefined: DEFAULT_PROMPT_FIELD when the
 * record has it as a string or token ids; false: no prompt.
 */
export function parseJsonlLine(
  raw: string,
  where: string,
  field: string | undefined,
  promptField: string | false | undefined,
): InputDocument | null {
  const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
  if (line.trim() === '') return null;
  const bytes = line.length + 1;
  if (line === INVALID_UTF8_LINE) return { source: where, bytes, error: invalidUtf8(where) };
  if (line.includes('\u0000')) {
    return {
      source: where,
      bytes,
      error: { code: 'TM_ERR_BINARY_INPUT', message: `${where}: binary data (NUL bytes), not JSON` },
    };
  }
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return {
      source: where,
      bytes,
      error: { code: 'TM_ERR_INVALID_JSON', message: `${where}: not valid JSON` },
    };
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return {
      source: where,
      bytes,
      error: { code: 'TM_ERR_INVALID_JSON', message: `${where}: expected a JSON object` },
    };
  }
  const record = value as Record<string, unknown>;
  const content = (name: string): { text: string } | { tokens: number[] } | DocumentError => {
    const item = record[name];
    if (typeof item === 'string') return { text: item };
    if (Array.isArray(item) && item.every((t) => Number.isInteger(t))) return { tokens: item as number[] };
    if (item === undefined)
      return { code: 'TM_ERR_MISSING_FIELD', message: `${where}: missing field "${name}"` };
    return {
      code: 'TM_ERR_MISSING_FIELD',
      message: `${where}: field "${name}" must be a string or an array of token ids`,
    };
  };
  const textField =
    field ?? DEFAULT_TEXT_FIELDS.find((name) => record[name] !== undefined) ?? DEFAULT_TEXT_FIELDS[0]!;
  const body = content(textField);
  if ('code' in body) return { source: where, bytes, error: body };
  if (promptField === false) return { source: where, bytes, ...body, field: textField };
  const promptName = promptField ?? DEFAULT_PROMPT_FIELD;
  if (record[promptName] === undefined) return { source: where, bytes, ...body, field: textField };
  const prompt = content(promptName);
  if ('code' in prompt) {
    // Only a prompt field asked for by name must be well-formed; another "prompt" is not ours to judge.
    if (promptField === undefined) return { source: where, bytes, ...body, field: textField };
    return { source: where, bytes, error: prompt };
  }
  return {
    source: where,
    bytes,
    ...body,
    prompt: 'text' in prompt ? prompt.text : prompt.tokens,
    field: textField,
    promptField: promptName,
  };
}
