/**
 * The `tracemark` command line. `run(argv)` returns the exit code; only bin.ts sets it on the process.
 * Exit codes: 0 ok; 1 a watermark found with --fail-on-detect; 2 usage; 3 I/O or input errors. A stdout
 * closed by its reader (`| head`) ends the process at once with 0 (bin.ts).
 */
import { Command, CommanderError, type Option } from 'commander';
import { registerDetect } from './commands/detect.ts';
import { registerEvidence } from './commands/evidence.ts';
import { registerGenerate } from './commands/generate.ts';
import { registerKeygen } from './commands/keygen.ts';
import { registerKeys } from './commands/keys.ts';
import { registerProbe } from './commands/probe.ts';
import { registerScan } from './commands/scan.ts';
import { registerServe } from './commands/serve.ts';
import { registerVerify } from './commands/verify.ts';
import { CliError, type CliIo, COLOUR_HELP, EXIT, processIo } from './io.ts';

export const VERSION = '0.1.0';

export async function run(argv: readonly string[], io: CliIo = processIo()): Promise<number> {
  let exitCode: number = EXIT.ok;
  const setExit = (code: number) => {
    exitCode = code;
  };
  const json = argv.includes('--json');
  const program = new Command('tracemark')
    .description('Watermark language-model output, detect it, and prove model extraction.')
    .version(VERSION)
    .exitOverride()
    .configureOutput({
      writeOut: (text) => io.stdout.write(text),
      writeErr: (text) => (json ? undefined : io.stderr.write(text)),
    })
    .showSuggestionAfterError()
    .addHelpText(
      'after',
      `\nExit codes: 0 ok (also when stdout is closed early, as by head); 1 a watermark found with\n--fail-on-detect; 2 usage; 3 I/O or input errors. ${COLOUR_HELP}`,
    );
  registerKeygen(program, io, setExit);
  registerGenerate(program, io, setExit);
  registerDetect(program, io, setExit);
  registerServe(program, io, setExit);
  registerKeys(program, io, setExit);
  registerScan(program, io, setExit);
  registerProbe(program, io, setExit);
  registerVerify(program, io, setExit);
  registerEvidence(program, io, setExit);
  checkRequiredOptionsAfterUnknownOnes(program);
  try {
    await program.parseAsync(argv as string[], { from: 'user' });
    return exitCode;
  } catch (error) {
    if (error instanceof CommanderError) {
      if (
        error.code === 'commander.helpDisplayed' ||
        error.code === 'commander.version' ||
        error.exitCode === 0
      )
        return EXIT.ok;
      if (json)
        io.stdout.write(
          `${JSON.stringify({ error: { code: 'TM_ERR_USAGE', message: error.message.replace(/^error: /, '') } })}\n`,
        );
      return EXIT.usage;
    }
    if (error instanceof CliError) {
      if (json)
        io.stdout.write(`${JSON.stringify({ error: { code: error.code, message: error.message } })}\n`);
      else io.stderr.write(`error: ${error.message}\n`);
      return error.exitCode;
    }
    const message = error instanceof Error ? error.message : String(error);
    if (json) io.stdout.write(`${JSON.stringify({ error: { code: 'TM_ERR_INTERNAL', message } })}\n`);
    else io.stderr.write(`error: ${message}\n`);
    return EXIT.io;
  }
}

/**
 * Commander reports a missing required option before an unknown one, so `detect --kye k.json` said that
 * --key was missing. Required options are checked just before the action instead, once commander has
 * refused unknown options (with its suggestion) and bad arguments.
 */
function checkRequiredOptionsAfterUnknownOnes(program: Command): void {
  const required = new Map<Command, Option[]>();
  const collectRequired = (command: Command): void => {
    const options = command.options.filter((option) => option.mandatory);
    for (const option of options) option.makeOptionMandatory(false);
    if (options.length > 0) required.set(command, options);
    command.commands.forEach(collectRequired);
  };
  collectRequired(program);
  program.hook('preAction', (_program, command) => {
    for (const option of required.get(command) ?? []) {
      if (command.getOptionValue(option.attributeName()) === undefined) {
        command.error(`error: required option '${option.flags}' not specified`, {
          code: 'commander.missingMandatoryOptionValue',
          exitCode: EXIT.usage,
        });
      }
    }
  });
}
