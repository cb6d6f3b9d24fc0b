/**
 * `tracemark scan-worker` as a process of its own, for tests and benches that run the sources (the
 * installed CLI reaches the same command through cli.ts).
 */
import { Command, CommanderError } from 'commander';
import { registerScanWorker } from '../commands/scan-worker.ts';
import { CliError, processIo } from '../io.ts';

const io = processIo();
let code = 0;
const program = new Command('tracemark').exitOverride();
registerScanWorker(program, io, (exit) => {
  code = exit;
});
try {
  await program.parseAsync(['scan-worker', ...process.argv.slice(2)], { from: 'user' });
} catch (error) {
  if (error instanceof CliError) {
    io.stderr.write(`error: ${error.message}\n`);
    code = error.exitCode;
  } else if (error instanceof CommanderError) code = error.exitCode === 0 ? 0 : 2;
  else throw error;
}
process.exit(code);
