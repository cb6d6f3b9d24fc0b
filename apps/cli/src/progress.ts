/** Progress on stderr, redrawn in place on a terminal only; `--quiet` silences it. */
import type { CliIo } from './io.ts';

export interface Progress {
  /** Erases the progress line before other output; returns '' so it can stand in a template. */
  clear(): string;
  update(summary: { readonly documents: number; readonly bytes: number }, started: number): void;
  message(text: string): void;
  done(): void;
}

export function createProgress(io: CliIo, quiet: boolean): Progress {
  const enabled = io.stderrIsTTY && !quiet;
  let last = 0;
  let shown = false;
  const erase = (): void => {
    if (shown) io.stderr.write('\r\u001b[2K');
    shown = false;
  };
  return {
    clear: () => {
      erase();
      return '';
    },
    update: (summary, started) => {
      if (!enabled) return;
      const now = performance.now();
      if (now - last < 250) return;
      last = now;
      const seconds = (now - started) / 1000;
      io.stderr.write(
        `\r\u001b[2K${summary.documents} documents, ${(summary.bytes / 1e6).toFixed(1)} MB, ${(summary.bytes / 1e6 / seconds).toFixed(1)} MB/s`,
      );
      shown = true;
    },
    message: (text) => {
      if (!enabled) return;
      io.stderr.write(`\r\u001b[2K${text}`);
      shown = true;
    },
    done: erase,
  };
}
