/** The terminal a command talks to; tests pass their own. */
import { open } from 'node:fs/promises';
import type { Readable } from 'node:stream';

export interface CliIo {
  readonly stdout: { write(text: string): unknown };
  readonly stderr: { write(text: string): unknown };
  readonly stdin: Readable;
  readonly stdoutIsTTY: boolean;
  readonly stderrIsTTY: boolean;
  /** stdin is a terminal, where reading it waits for the user to type (absent: it is not). */
  readonly stdinIsTTY?: boolean;
  readonly env: NodeJS.ProcessEnv;
  /**
   * Calls `listener` at the first SIGINT or SIGTERM instead of ending the process, until the returned
   * function is called; a second signal ends the process as usual. Absent: runs are not interrupted.
   */
  readonly onInterrupt?: (listener: (signal: string) => void) => () => void;
}

export function processIo(): CliIo {
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
    stdoutIsTTY: process.stdout.isTTY === true,
    stderrIsTTY: process.stderr.isTTY === true,
    stdinIsTTY: process.stdin.isTTY === true,
    env: process.env,
    onInterrupt: (listener) => {
      const signals = ['SIGINT', 'SIGTERM'] as const;
      const release = () => {
        for (const signal of signals) process.off(signal, handle);
      };
      // Released at the first signal, so that a second one (Ctrl-C again) ends the process at once.
      const handle = (signal: NodeJS.Signals) => {
        release();
        listener(signal);
      };
      for (const signal of signals) process.on(signal, handle);
      return release;
    },
  };
}

/** Documented exit codes; 130 is what a shell reports for a process ended by Ctrl-C (128 + SIGINT). */
export const EXIT = Object.freeze({ ok: 0, detected: 1, usage: 2, io: 3, interrupted: 130 } as const) as {
  readonly ok: 0;
  readonly detected: 1;
  readonly usage: 2;
  readonly io: 3;
  readonly interrupted: 130;
};

/** An error that ends a command with an exit code and a stable error code. */
export class CliError extends Error {
  override readonly name = 'CliError';
  constructor(
    readonly code: string,
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

/**
 * Whether stdout gets colour: never with a non-empty NO_COLOR (https://no-color.org); with a non-empty
 * FORCE_COLOR, unless it is 0 or false (https://force-color.org, as Node reads it); else on a terminal.
 */
export function stdoutHasColour(io: CliIo): boolean {
  if ((io.env.NO_COLOR ?? '') !== '') return false;
  const force = io.env.FORCE_COLOR ?? '';
  if (force !== '') return force !== '0' && force !== 'false';
  return io.stdoutIsTTY;
}

/** What the help of commands that print colour says about it. */
export const COLOUR_HELP =
  'Colour: on a terminal; never with NO_COLOR set, always with FORCE_COLOR (FORCE_COLOR=0: never).';

/** `word` as a shell reads it back in a command to paste: quoted only where it needs to be. */
export function shellWord(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", "'\\''")}'`;
}

/**
 * `text` with the password of `url` (a DATABASE_URL) replaced by `***`: a database client's message may
 * quote the URL it was given, and a password must not reach the terminal or a CI log.
 */
export function withoutPassword(text: string, url: string | null): string {
  if (url === null) return text;
  let password: string;
  try {
    password = new URL(url).password;
  } catch {
    return text;
  }
  if (password === '') return text;
  let decoded = password;
  try {
    decoded = decodeURIComponent(password);
  } catch {
    // a password with a stray % is matched as written
  }
  return text.replaceAll(password, '***').replaceAll(decoded, '***');
}

/**
 * The most read of a file that is read whole (a report, a key list, a text to verify, prompts): a path
 * that is a device (a symlink to /dev/zero) or a file of gigabytes is an error, not all of memory.
 */
export const MAX_FILE_BYTES: number = 64 * 1024 * 1024;

/**
 * A file's bytes; a TM_ERR_IO error naming the file and `what` it should have been when it cannot be read,
 * or holds more than {@link MAX_FILE_BYTES}.
 */
export async function readFileBytes(path: string, what: string): Promise<Buffer> {
  const failed = (reason: string): CliError =>
    new CliError('TM_ERR_IO', `${path}: cannot read the ${what} (${reason})`, EXIT.io);
  let file: Awaited<ReturnType<typeof open>>;
  try {
    file = await open(path, 'r');
  } catch (error) {
    throw failed((error as NodeJS.ErrnoException).code ?? 'error');
  }
  try {
    const chunks: Buffer[] = [];
    let size = 0;
    for (;;) {
      const chunk = Buffer.allocUnsafe(Math.min(1024 * 1024, MAX_FILE_BYTES + 1 - size));
      let bytesRead: number;
      try {
        ({ bytesRead } = await file.read(chunk, 0, chunk.length, null));
      } catch (error) {
        throw failed((error as NodeJS.ErrnoException).code ?? 'error');
      }
      if (bytesRead === 0) return Buffer.concat(chunks, size);
      chunks.push(chunk.subarray(0, bytesRead));
      size += bytesRead;
      if (size > MAX_FILE_BYTES) throw failed(`over ${MAX_FILE_BYTES / 1024 / 1024} MiB`);
    }
  } finally {
    await file.close();
  }
}

/** A file's text (UTF-8), read as {@link readFileBytes} reads it. */
export async function readTextFile(path: string, what: string): Promise<string> {
  return (await readFileBytes(path, what)).toString('utf8');
}

/** A run stopped by SIGINT or SIGTERM; the command says what it had done in its TM_ERR_INTERRUPTED error. */
export class Interrupted extends Error {
  override readonly name = 'Interrupted';
  constructor(readonly signal: string) {
    super(`interrupted by ${signal}`);
  }
}

/** SIGINT and SIGTERM watched while a command streams its inputs, so that it can end its output cleanly. */
export interface InterruptWatch {
  /** Rejects with {@link Interrupted} when a signal comes (never resolves): race the run's waits with it. */
  readonly stopped: Promise<never>;
  /** Throws {@link Interrupted} if a signal has come. */
  check(): void;
  /** Stops watching: a signal after this ends the process as usual. */
  release(): void;
}

export function watchInterrupts(io: CliIo): InterruptWatch {
  let received: Interrupted | null = null;
  let reject: (error: Interrupted) => void = () => undefined;
  const stopped = new Promise<never>((_resolve, rejectStopped) => {
    reject = rejectStopped;
  });
  // A run that finishes without a signal never awaits it.
  stopped.catch(() => undefined);
  const release =
    io.onInterrupt?.((signal) => {
      received = new Interrupted(signal);
      reject(received);
    }) ?? (() => undefined);
  return {
    stopped,
    check: () => {
      if (received !== null) throw received;
    },
    release,
  };
}

/**
 * Controls a terminal acts on (C0 but tab and newline, DEL, C1: escape sequences, a carriage return that
 * redraws the line) and the bidirectional overrides and isolates that reorder what is shown (a file named
 * `txt.exe` shown as `exe.txt`): from a file's name or contents they could rewrite what the terminal shows.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: the controls are what it finds
const UNPRINTABLE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
// biome-ignore lint/suspicious/noControlCharactersInRegex: the controls are what it finds
const UNPRINTABLE_LINE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/**
 * `text` for human output on a terminal: each control or bidirectional-override character as a visible
 * escape (`\x1b`, `\u202e`). `layout` keeps tab, newline and the carriage return of a CRLF (a document's
 * text); without it they are escaped too (a file name, a message on one line).
 */
export function printable(text: string, layout = false): string {
  const escaped = (character: string): string => {
    const code = character.charCodeAt(0);
    return code < 0x100
      ? `\\x${code.toString(16).padStart(2, '0')}`
      : `\\u${code.toString(16).padStart(4, '0')}`;
  };
  return text.replace(layout ? UNPRINTABLE : UNPRINTABLE_LINE, (character, at: number) =>
    layout && character === '\r' && text[at + 1] === '\n' ? character : escaped(character),
  );
}
