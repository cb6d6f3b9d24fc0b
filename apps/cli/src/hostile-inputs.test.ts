/**
 * Files an adversary hands over (a suspect's corpus, someone else's evidence report), read by `detect`,
 * `scan` and `evidence verify` in-process: each bad file or line is a clear error naming it, memory stays
 * bounded, nothing waits forever, and nothing from a file reaches the terminal as a control sequence.
 */
import { execFileSync } from 'node:child_process';
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  rmSync,
  symlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { capture } from './capture.test-helper.ts';
import { run } from './cli.ts';
import { MAX_LINE_BYTES } from './inputs.ts';
import { MAX_FILE_BYTES } from './io.ts';

let directory = '';
let key = '';

beforeAll(async () => {
  directory = mkdtempSync(join(tmpdir(), 'tracemark-hostile-inputs-'));
  key = join(directory, 'key.json');
  expect(await run(['keygen', '--out', key, '--json'], capture().io)).toBe(0);
});

afterAll(() => rmSync(directory, { recursive: true, force: true }));

/** Writes `head`, `count` bytes of `fill`, then `tail`, without holding them in memory at once. */
function writeLong(path: string, head: string, fill: string, count: number, tail: string): void {
  const file = openSync(path, 'w');
  writeSync(file, head);
  const block = Buffer.alloc(1 << 20, fill);
  for (let left = count; left > 0; left -= block.length)
    writeSync(file, block, 0, Math.min(left, block.length));
  writeSync(file, tail);
  closeSync(file);
}

async function detectJson(...args: string[]) {
  const out = capture();
  const code = await run(['detect', '--key', key, '--json', '--workers', '0', ...args], out.io);
  const report = JSON.parse(out.out()) as {
    results: { source: string; error?: { code: string; message: string }; numTokens?: number }[];
    summary: { documents: number; errors: number };
  };
  return { code, report };
}

describe('one endless line', () => {
  it('a JSONL line over the limit is an error of its own, and the lines after it are read', async () => {
    const path = join(directory, 'long-line.jsonl');
    writeLong(
      path,
      '{"text":"before"}\n{"text":"',
      'a',
      MAX_LINE_BYTES + 10,
      '"}\n{"text":"after it"}\n{"text":"',
    );
    const { code, report } = await detectJson(path);
    expect(code).toBe(3);
    expect(report.results.map((result) => [result.source, result.error?.code])).toEqual([
      [`${path}:1`, undefined],
      [`${path}:2`, 'TM_ERR_LINE_TOO_LONG'],
      [`${path}:3`, undefined],
      [`${path}:4`, 'TM_ERR_INVALID_JSON'],
    ]);
    expect(report.results[1]!.error!.message).toBe(`${path}:2: line longer than 64 MiB: not read`);
    const scanned = capture();
    expect(await run(['scan', '--key', key, path, '--fake-keys', '20', '--json'], scanned.io)).toBe(3);
    expect(JSON.parse(scanned.out()).errors.map((error: { code: string }) => error.code)).toEqual([
      'TM_ERR_LINE_TOO_LONG',
      'TM_ERR_INVALID_JSON',
    ]);
  }, 60_000);

  it('a text file over the limit with no line break to cut it at is an error; the next file is read', async () => {
    const path = join(directory, 'one-line.txt');
    // Searching the whole text for a place to cut at each chunk took minutes before it gave up.
    writeLong(path, '', 'a', MAX_LINE_BYTES + 10, '');
    const other = join(directory, 'other.txt');
    writeFileSync(other, 'An ordinary sentence after the long one.\n');
    const { code, report } = await detectJson(path, other);
    expect(code).toBe(3);
    expect(report.results[0]).toMatchObject({
      source: path,
      error: {
        code: 'TM_ERR_LINE_TOO_LONG',
        message: `${path}: over 64 MiB of text with no line break to split it at: not read`,
      },
    });
    expect(report.results[1]!.source).toBe(other);
    expect(report.results[1]!.numTokens).toBeGreaterThan(0);
  }, 60_000);
});

describe('invalid UTF-8', () => {
  it('is an error of the line or file, not text scored with U+FFFD; a U+FFFD written in UTF-8 is text', async () => {
    const jsonl = join(directory, 'latin1.jsonl');
    writeFileSync(
      jsonl,
      Buffer.concat([
        Buffer.from('{"text":"caf'),
        Buffer.from([0xe9]),
        Buffer.from('"}\n{"text":"a real \uFFFD replacement character"}\n'),
      ]),
    );
    const text = join(directory, 'latin1.txt');
    writeFileSync(text, Buffer.concat([Buffer.from('caf'), Buffer.from([0xe9]), Buffer.from(' au lait\n')]));
    const { code, report } = await detectJson(jsonl, text);
    expect(code).toBe(3);
    expect(report.results.map((result) => result.error)).toEqual([
      {
        code: 'TM_ERR_INVALID_UTF8',
        message: `${jsonl}:1: not valid UTF-8 (another encoding? convert it to UTF-8 first)`,
      },
      undefined,
      {
        code: 'TM_ERR_INVALID_UTF8',
        message: `${text}: not valid UTF-8 (another encoding? convert it to UTF-8 first)`,
      },
    ]);
    const workers = capture();
    expect(await run(['detect', '--key', key, '--json', '--workers', '2', jsonl], workers.io)).toBe(3);
    expect(JSON.parse(workers.out()).results[0].error.code).toBe('TM_ERR_INVALID_UTF8');
    const scanned = capture();
    expect(await run(['scan', '--key', key, jsonl, text, '--fake-keys', '20', '--json'], scanned.io)).toBe(3);
    expect(JSON.parse(scanned.out()).summary).toMatchObject({ documents: 3, errors: 2 });
  });
});

describe('what is not a regular file', () => {
  it('a FIFO or a device in a directory is an error, not a wait forever or an endless read', async () => {
    const corpus = join(directory, 'corpus-with-fifo');
    mkdirSync(corpus);
    writeFileSync(join(corpus, 'a.txt'), 'An ordinary document.\n');
    execFileSync('mkfifo', [join(corpus, 'b-pipe.txt')]);
    symlinkSync('/dev/zero', join(corpus, 'c-zero.jsonl'));
    const { code, report } = await detectJson(corpus);
    expect(code).toBe(3);
    expect(report.results.map((result) => result.error?.message)).toEqual([
      undefined,
      `${join(corpus, 'b-pipe.txt')}: cannot read (a FIFO, not a regular file)`,
      `${join(corpus, 'c-zero.jsonl')}: cannot read (a device, not a regular file)`,
    ]);
  });

  it('evidence verify: a report that is a device or a directory is an I/O error naming it', async () => {
    const zero = join(directory, 'zero-report.json');
    symlinkSync('/dev/zero', zero);
    const out = capture();
    expect(await run(['evidence', 'verify', zero], out.io)).toBe(3);
    expect(out.err()).toBe(
      `error: ${zero}: cannot read the report (over ${MAX_FILE_BYTES / 1024 / 1024} MiB)\n`,
    );
    const text = capture();
    expect(await run(['evidence', 'verify', join(directory, 'x.json'), '--text', zero], text.io)).toBe(3);
    const folder = capture();
    expect(await run(['evidence', 'verify', directory, '--json'], folder.io)).toBe(3);
    expect(JSON.parse(folder.out()).error).toEqual({
      code: 'TM_ERR_IO',
      message: `${directory}: cannot read the report (EISDIR)`,
    });
  });

  it('evidence verify: a report whose own verifier key is malformed is an error naming the report', async () => {
    const path = join(directory, 'bad-key-report.json');
    writeFileSync(
      path,
      JSON.stringify({
        format: 'tracemark-evidence',
        version: 1,
        keyId: 'k',
        verifierKey: 'not-a-key',
        envelope: {
          payloadType: 'application/vnd.in-toto+json',
          payload: 'e30=',
          signatures: [{ keyid: 'x', sig: 'AA==' }],
        },
      }),
    );
    const out = capture();
    expect(await run(['evidence', 'verify', path, '--json'], out.io)).toBe(3);
    const { error } = JSON.parse(out.out());
    expect(error.code).toBe('TM_ERR_REPORT');
    expect(error.message.startsWith(`${path}: the report's verifier key is malformed (`)).toBe(true);
  });
});

describe('controls from file names and contents in human output', () => {
  // an OSC that retitles the terminal, a colour, and a right-to-left override
  const hostile = 'a\u001b]0;pwned\u0007\u001b[31m\u202eb';
  const shown = 'a\\x1b]0;pwned\\x07\\x1b[31m\\u202eb';
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the controls are what it finds
  const raw = /[\u001b\u0007\u202e]/;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the controls are what it finds
  const rawButColour = /[\u0007\u202e]|\u001b\]/;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the controls are what it finds
  const colours = /\u001b\[[0-9;]*m/g;

  it('detect: the verdict line and an error show a file name with its controls escaped; --json keeps it', async () => {
    const path = join(directory, `${hostile}.txt`);
    writeFileSync(path, 'An ordinary document.\n');
    const missing = join(directory, `${hostile}-missing.txt`);
    const out = capture();
    expect(await run(['detect', '--key', key, path, missing], out.io)).toBe(3);
    expect(out.out() + out.err()).not.toMatch(raw);
    expect(out.out()).toContain(`${join(directory, shown)}.txt: `);
    expect(out.err()).toContain(`error: ${join(directory, shown)}-missing.txt: cannot read (ENOENT)`);
    const { report } = await detectJson(path);
    expect(report.results[0]!.source).toBe(path);
    const scanned = capture();
    expect(await run(['scan', '--key', key, path, missing, '--fake-keys', '20'], scanned.io)).toBe(3);
    expect(scanned.out() + scanned.err()).not.toMatch(rawButColour);
    const verified = capture();
    expect(await run(['evidence', 'verify', missing], verified.io)).toBe(3);
    expect(verified.err()).toBe(
      `error: ${join(directory, shown)}-missing.txt: cannot read the report (ENOENT)\n`,
    );
  });

  it('detect on a terminal: the coloured text of a document shows its controls escaped', async () => {
    const path = join(directory, 'escapes.txt');
    writeFileSync(path, `Some text ${hostile} and more,\r\nover two lines.\n`);
    const out = capture();
    const io = { ...out.io, stdoutIsTTY: true, env: { FORCE_COLOR: '1' } };
    expect(await run(['detect', '--key', key, path], io)).toBe(0);
    // the colours are the only escape sequences: ESC [ … m
    expect(out.out().replace(colours, '')).not.toMatch(raw);
    // (the override's bytes fall in two tokens here, each shown as U+FFFD)
    expect(out.out().replace(colours, '')).toContain('Some text a\\x1b]0;pwned\\x07\\x1b[31m');
  });
});
