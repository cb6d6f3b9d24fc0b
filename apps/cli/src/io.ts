/** The terminal a command talks to; tests pass their own. */
import { readFile } from 'node:fs/promises';
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

/** A file's text; a TM_ERR_IO error naming the file and `what` it should have been when it cannot be read. */
export async function readTextFile(path: string, what: string): Promise<string> {
  return readFile(path, 'utf8').catch((error: NodeJS.ErrnoException) => {
    throw new CliError('TM_ERR_IO', `${path}: cannot read the ${what} (${error.code ?? 'error'})`, EXIT.io);
  });
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
