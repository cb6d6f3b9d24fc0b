/**
 * The `tracemark` command line. `run(argv)` returns the exit code; only bin.ts sets it on the process.
 * Exit codes: 0 ok; 1 a watermark found with --fail-on-detect; 2 usage; 3 I/O or input errors; 130 detect
 * or scan stopped by SIGINT or SIGTERM (io.ts). A stdout closed by its reader (`| head`) ends the process at
 * once with 0 (bin.ts).
 */
import { createRequire } from 'node:module';
import { Command, CommanderError, type Option } from 'commander';
import { CliError, type CliIo, COLOUR_HELP, EXIT, printable, processIo } from './io.ts';

/** How a command adds itself to the program. */
type Register = (program: Command, io: CliIo, setExit: (code: number) => void) => void;

/**
 * Each command's module, loaded only when that command runs (or for the list of commands in the help):
 * `tracemark --version` loads none, and `detect` never loads the gateway, an optional package with native
 * dependencies that only serve, keys and scan --issued need. In the order the help lists them.
 */
const COMMANDS: Readonly<Record<string, () => Promise<Register>>> = {
  keygen: async () => (await import('./commands/keygen.ts')).registerKeygen,
  generate: async () => (await import('./commands/generate.ts')).registerGenerate,
  detect: async () => (await import('./commands/detect.ts')).registerDetect,
  serve: async () => (await import('./commands/serve.ts')).registerServe,
  keys: async () => (await import('./commands/keys.ts')).registerKeys,
  scan: async () => (await import('./commands/scan.ts')).registerScan,
  'scan-worker': async () => (await import('./commands/scan-worker.ts')).registerScanWorker,
  probe: async () => (await import('./commands/probe.ts')).registerProbe,
  monitor: async () => (await import('./commands/monitor.ts')).registerMonitor,
  verify: async () => (await import('./commands/verify.ts')).registerVerify,
  evidence: async () => (await import('./commands/evidence.ts')).registerEvidence,
};

/**
 * The commands argv needs registered: the one it names (`help detect` names detect), none for a bare
 * --version, and all of them otherwise (the help lists them; a mistyped name gets a suggestion).
 */
export function commandsToLoad(argv: readonly string[]): string[] {
  const words = argv.filter((arg) => !arg.startsWith('-'));
  const named = words[0] === 'help' ? words[1] : words[0];
  if (named !== undefined && Object.hasOwn(COMMANDS, named)) return [named];
  if (named === undefined && argv.length > 0 && argv.every((arg) => arg === '--version' || arg === '-V'))
    return [];
  return Object.keys(COMMANDS);
}

/** The package's version, read from its package.json (src/ and dist/ sit beside it), so a release bumps one place. */
export const VERSION: string = (createRequire(import.meta.url)('../package.json') as { version: string })
  .version;

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
      `\nExit codes: 0 ok (also when stdout is closed early, as by head); 1 a watermark found with\n--fail-on-detect; 2 usage; 3 I/O or input errors; 130 detect or scan interrupted (SIGINT, SIGTERM).\n${COLOUR_HELP}`,
    );
  try {
    const registers = await Promise.all(commandsToLoad(argv).map((name) => COMMANDS[name]!()));
    for (const register of registers) register(program, io, setExit);
    checkRequiredOptionsAfterUnknownOnes(program);
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
      else io.stderr.write(`error: ${printable(error.message)}\n`);
      return error.exitCode;
    }
    const message = error instanceof Error ? error.message : String(error);
    if (json) io.stdout.write(`${JSON.stringify({ error: { code: 'TM_ERR_INTERNAL', message } })}\n`);
    else io.stderr.write(`error: ${printable(message)}\n`);
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
