import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it, onTestFinished } from 'vitest';
import { capture } from './capture.test-helper.ts';
import { run } from './cli.ts';
import {
  decodeLines,
  expandPaths,
  INVALID_UTF8_LINE,
  type LineBatch,
  type RawLineBatch,
  readInputs,
  readRawInputs,
} from './inputs.ts';

const encoder = new TextEncoder();

/** A JSONL file with what decoding can trip on, long enough for several batches. */
function awkwardFile(): Uint8Array {
  const parts: Uint8Array[] = [encoder.encode('\uFEFF{"text":"after a byte-order mark"}\n')];
  for (let line = 2; line <= 2600; line++) {
    if (line === 1025) parts.push(encoder.encode('\uFEFF{"text":"a mark inside the file is kept"}\n'));
    // longer than the pieces decodeLines decodes at a time
    else if (line === 1500) parts.push(encoder.encode(`{"text":"${'é'.repeat(70_000)}"}\n`));
    else if (line % 97 === 0) parts.push(encoder.encode('\n'));
    else if (line % 89 === 0)
      parts.push(Uint8Array.from([0x7b, 0xff, 0xe2, 0x82, 0x0a])); // invalid UTF-8
    else if (line % 7 === 0) parts.push(encoder.encode(`{"text":"crlf ${line} é 日本 😀"}\r\n`));
    else parts.push(encoder.encode(`{"text":"line ${line} ${'x'.repeat(line % 300)}"}\n`));
  }
  parts.push(encoder.encode('{"text":"no newline at the end"}'));
  const size = parts.reduce((sum, part) => sum + part.length, 0);
  const file = new Uint8Array(size);
  let at = 0;
  for (const part of parts) {
    file.set(part, at);
    at += part.length;
  }
  return file;
}

/**
 * The lines of `file` as one streaming decoder reads the whole (a byte-order mark dropped at the start
 * only), each line that is not valid UTF-8 given as INVALID_UTF8_LINE, not with U+FFFD.
 */
function linesOf(file: Uint8Array): string[] {
  const fatal = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  const bytes = Buffer.from(file);
  return new TextDecoder()
    .decode(file)
    .split('\n')
    .map((line, i, lines) => {
      if (!line.includes('\uFFFD')) return line;
      // the bytes of line i
      let start = 0;
      for (let at = 0; at < i; at++) start = bytes.indexOf(10, start) + 1;
      const end = i === lines.length - 1 ? bytes.length : bytes.indexOf(10, start);
      try {
        fatal.decode(bytes.subarray(start, end));
        return line;
      } catch {
        return INVALID_UTF8_LINE;
      }
    });
}

/** The file as stdin in chunks of `size` bytes: multi-byte characters split across chunks. */
function chunked(file: Uint8Array, size: number): Readable {
  const chunks: Buffer[] = [];
  for (let at = 0; at < file.length; at += size) chunks.push(Buffer.from(file.subarray(at, at + size)));
  return Readable.from(chunks);
}

async function collect<T>(units: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const unit of units) out.push(unit);
  return out;
}

describe('raw JSONL batches', () => {
  const file = awkwardFile();
  // What one streaming decoder over the whole file reads: the mark dropped at the start only.
  const expected = linesOf(file);

  it.each([7, 1000, 65_536])(
    'cut after newlines, own their buffers, and decode to the lines of the whole file (chunks of %i bytes)',
    async (chunkSize) => {
      const batches = (await collect(
        readRawInputs(['-'], { stdin: chunked(file, chunkSize), format: 'jsonl' }),
      )) as RawLineBatch[];
      expect(batches.length).toBeGreaterThan(2);
      const joined = Buffer.concat(batches.map((batch) => batch.data));
      expect(joined.equals(Buffer.from(file))).toBe(true);
      let nextLine = 1;
      const lines: string[] = [];
      for (const [i, batch] of batches.entries()) {
        expect(batch).toMatchObject({ rawLines: true, source: '-', firstLine: nextLine });
        expect(batch.bytes).toBe(batch.data.length);
        // the whole ArrayBuffer is the batch's, so transferring it takes nothing else along
        expect(batch.data.byteOffset).toBe(0);
        expect(batch.data.buffer.byteLength).toBe(batch.data.length);
        if (i < batches.length - 1) expect(batch.data.at(-1)).toBe(10);
        const texts = decodeLines(batch.data, batch.firstLine);
        lines.push(...texts);
        nextLine += texts.length;
      }
      expect(lines).toEqual(expected);
      expect(lines[1024]!.startsWith('\uFEFF')).toBe(true);
      expect(lines[0]!.startsWith('{')).toBe(true);
    },
  );

  it('a file is read alike: chunks of one reused buffer, lines longer than a chunk, the same batches as stdin', async () => {
    const directory = mkdtempSync(join(tmpdir(), 'tracemark-inputs-'));
    onTestFinished(() => rmSync(directory, { recursive: true, force: true }));
    // 2.5 MB lines span the reader's 1 MB chunks
    const long = encoder.encode(`{"text":"${'é'.repeat(1_250_000)}"}\n`);
    const whole = Buffer.concat([file, encoder.encode('\n'), long, Buffer.from(file)]);
    const path = join(directory, 'awkward.jsonl');
    writeFileSync(path, whole);
    const fromFile = (await collect(readRawInputs([path], {} as never))) as RawLineBatch[];
    const fromStdin = (await collect(
      readRawInputs(['-'], { stdin: chunked(whole, 65_536), format: 'jsonl' }),
    )) as RawLineBatch[];
    expect(fromFile.map((batch) => [batch.firstLine, batch.bytes])).toEqual(
      fromStdin.map((batch) => [batch.firstLine, batch.bytes]),
    );
    expect(Buffer.concat(fromFile.map((batch) => batch.data)).equals(whole)).toBe(true);
    const lines = fromFile.flatMap((batch) => decodeLines(batch.data, batch.firstLine));
    expect(lines).toEqual(linesOf(whole));
  });

  it('readInputs gives the same lines as strings, numbered alike', async () => {
    const batches = (await collect(
      readInputs(['-'], { stdin: chunked(file, 4096), format: 'jsonl' }),
    )) as LineBatch[];
    let nextLine = 1;
    for (const batch of batches) {
      expect(batch.firstLine).toBe(nextLine);
      nextLine += batch.texts.length;
    }
    expect(batches.flatMap((batch) => batch.texts)).toEqual(expected);
  });

  it('a file that ends with a newline has no empty last line; an empty file has no batch', async () => {
    const lines = async (text: string) =>
      (
        (await collect(
          readRawInputs(['-'], { stdin: chunked(encoder.encode(text), 3), format: 'jsonl' }),
        )) as RawLineBatch[]
      ).flatMap((batch) => decodeLines(batch.data, batch.firstLine));
    expect(await lines('{"a":1}\n\n{"b":2}\n')).toEqual(['{"a":1}', '', '{"b":2}']);
    expect(await lines('')).toEqual([]);
  });
});

describe('directories with symlinks', () => {
  /** root/corpus/{marked.txt, up -> .., again -> ../corpus, notes/b.txt, b-link.txt -> notes/b.txt, same-notes -> notes}. */
  function corpusWithCycles(): { corpus: string } {
    const root = mkdtempSync(join(tmpdir(), 'tracemark-symlinks-'));
    onTestFinished(() => rmSync(root, { recursive: true, force: true }));
    const corpus = join(root, 'corpus');
    mkdirSync(join(corpus, 'notes'), { recursive: true });
    writeFileSync(join(corpus, 'marked.txt'), 'The committee said on Tuesday that the weather was fine.');
    writeFileSync(join(corpus, 'notes', 'b.txt'), 'Another short document, written by a person.');
    symlinkSync('..', join(corpus, 'up'));
    symlinkSync('../corpus', join(corpus, 'again'));
    symlinkSync('notes', join(corpus, 'same-notes'));
    symlinkSync('notes/b.txt', join(corpus, 'b-link.txt'));
    return { corpus };
  }

  it('walks each directory once, by its real path; a symlink to a file is read as the file', async () => {
    const { corpus } = corpusWithCycles();
    expect(await expandPaths([corpus])).toEqual([
      join(corpus, 'b-link.txt'),
      join(corpus, 'marked.txt'),
      join(corpus, 'notes', 'b.txt'),
    ]);
  });

  it('detect and scan count each file once, with no ELOOP error', async () => {
    const { corpus } = corpusWithCycles();
    // Beside the root, not in it: `up` walks the root (once), and would read a key there as a document.
    const keyDirectory = mkdtempSync(join(tmpdir(), 'tracemark-symlinks-key-'));
    onTestFinished(() => rmSync(keyDirectory, { recursive: true, force: true }));
    const key = join(keyDirectory, 'key.json');
    expect(await run(['keygen', '--out', key, '--json'], capture().io)).toBe(0);
    const detected = capture();
    expect(await run(['detect', '--key', key, corpus, '--json'], detected.io)).toBe(0);
    const report = JSON.parse(detected.out());
    expect(report.results.map((result: { source: string }) => result.source)).toEqual([
      join(corpus, 'b-link.txt'),
      join(corpus, 'marked.txt'),
      join(corpus, 'notes', 'b.txt'),
    ]);
    expect(report.summary).toMatchObject({ documents: 3, errors: 0 });
    const scanned = capture();
    expect(await run(['scan', '--key', key, corpus, '--json', '--fake-keys', '10'], scanned.io)).toBe(0);
    expect(JSON.parse(scanned.out()).summary).toMatchObject({ documents: 3, errors: 0 });
  });
});
