/** In-process CLI runs for tests: an io whose stdout and stderr are kept, stdin `input`, nothing a terminal. */
import { Readable } from 'node:stream';
import type { CliIo } from './io.ts';

export function capture(input = ''): { io: CliIo; out: () => string; err: () => string } {
  let stdout = '';
  let stderr = '';
  return {
    io: {
      stdout: { write: (text: string) => (stdout += text) },
      stderr: { write: (text: string) => (stderr += text) },
      stdin: Readable.from(input === '' ? [] : [Buffer.from(input)]),
      stdoutIsTTY: false,
      stderrIsTTY: false,
      env: {},
    },
    out: () => stdout,
    err: () => stderr,
  };
}
