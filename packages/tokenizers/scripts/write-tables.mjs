// Writes the default tokenizer's token tables to dist/tables/ (run by `pnpm build` after tsc): each process
// then reads them in a few ms instead of building them from the rank file (table-file.ts).
import { fileURLToPath } from 'node:url';
import { writeTableFiles } from '../dist/tokenizer.js';

for (const path of writeTableFiles(fileURLToPath(new URL('../dist/tables/', import.meta.url)))) {
  process.stdout.write(`wrote ${path}\n`);
}
