#!/usr/bin/env node
import { run } from './cli.ts';
import { EXIT } from './io.ts';

// A reader that stops early (`tracemark detect … | head`) closes the pipe, and the next write fails with
// EPIPE. That is no failure of ours: end at once, quietly, with exit 0 (documented in cli.ts).
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(EXIT.ok);
    throw error;
  });
}

const code = await run(process.argv.slice(2));
process.exitCode = code;
// Every command has finished its work when run resolves (files written and closed, servers closed,
// threads stopped): end once stdout and stderr have taken the last output, without the orderly
// teardown of the heap, which after a large scan takes tens of milliseconds longer than the output.
let unflushed = 2;
const flushed = (): void => {
  if (--unflushed === 0) process.exit(code);
};
process.stdout.write('', flushed);
process.stderr.write('', flushed);
