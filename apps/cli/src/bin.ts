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

process.exitCode = await run(process.argv.slice(2));
