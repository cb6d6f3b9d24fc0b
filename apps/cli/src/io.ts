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
  };
}

/** Documented exit codes. */
export const EXIT = Object.freeze({ ok: 0, detected: 1, usage: 2, io: 3 } as const) as {
  readonly ok: 0;
  readonly detected: 1;
  readonly usage: 2;
  readonly io: 3;
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

/** A file's text; a TM_ERR_IO error naming the file and `what` it should have been when it cannot be read. */
export async function readTextFile(path: string, what: string): Promise<string> {
  return readFile(path, 'utf8').catch((error: NodeJS.ErrnoException) => {
    throw new CliError('TM_ERR_IO', `${path}: cannot read the ${what} (${error.code ?? 'error'})`, EXIT.io);
  });
}
