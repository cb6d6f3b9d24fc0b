import { createWatermarkKey, DEFAULT_SCHEME_PARAMS, type SchemeName } from '@tracemark/core';
import { InputError, writeKeyFile } from '@tracemark/detection';
import { DEFAULT_TOKENIZER_ID, isTokenizerId, TOKENIZER_IDS } from '@tracemark/tokenizers';
import type { Command } from 'commander';
import { CliError, type CliIo, EXIT } from '../io.ts';
import { parseNumber, parseOpenUnit } from '../options.ts';

interface KeygenOptions {
  out: string;
  gamma: number;
  delta: number;
  scheme: SchemeName;
  contextWidth: number;
  tokenizer: string;
  force?: boolean;
  json?: boolean;
}

export function registerKeygen(program: Command, io: CliIo, setExit: (code: number) => void): void {
  program
    .command('keygen')
    .description('create a watermark key file (mode 0600); prints the key id, never the secret')
    .requiredOption('--out <file>', 'where to write the key file')
    .option('--gamma <g>', 'green fraction γ', parseOpenUnit('--gamma'), DEFAULT_SCHEME_PARAMS.gamma)
    .option('--delta <d>', 'logit bias δ', parseNumber('--delta', 0, 32), DEFAULT_SCHEME_PARAMS.delta)
    .option('--scheme <name>', 'seeding scheme: lefthash or selfhash', DEFAULT_SCHEME_PARAMS.name)
    .option(
      '--context-width <h>',
      'tokens that seed the green list',
      parseNumber('--context-width', 1, 16, true),
      DEFAULT_SCHEME_PARAMS.contextWidth,
    )
    .option(
      '--tokenizer <id>',
      `tokenizer the key is bound to (${TOKENIZER_IDS.join(', ')})`,
      DEFAULT_TOKENIZER_ID,
    )
    .option('--force', 'replace an existing file')
    .option('--json', 'print JSON')
    .action(async (options: KeygenOptions) => {
      if (options.scheme !== 'lefthash' && options.scheme !== 'selfhash') {
        throw new CliError('TM_ERR_USAGE', '--scheme must be lefthash or selfhash', EXIT.usage);
      }
      if (!isTokenizerId(options.tokenizer)) {
        throw new CliError(
          'TM_ERR_USAGE',
          `--tokenizer must be one of ${TOKENIZER_IDS.join(', ')}`,
          EXIT.usage,
        );
      }
      const key = createWatermarkKey({
        scheme: {
          name: options.scheme,
          gamma: options.gamma,
          delta: options.delta,
          contextWidth: options.contextWidth,
        },
        tokenizer: options.tokenizer,
      });
      try {
        await writeKeyFile(options.out, key, options.force === true);
      } catch (error) {
        if (error instanceof InputError) {
          throw new CliError(
            error.code,
            error.message,
            error.code === 'TM_ERR_KEY_EXISTS' ? EXIT.usage : EXIT.io,
          );
        }
        throw error;
      }
      const summary = {
        keyId: key.keyId,
        file: options.out,
        scheme: {
          name: key.scheme.name,
          contextWidth: key.scheme.contextWidth,
          gamma: key.scheme.gamma,
          delta: key.scheme.delta,
        },
        tokenizer: key.tokenizer,
      };
      if (options.json) io.stdout.write(`${JSON.stringify(summary)}\n`);
      else io.stdout.write(`${key.keyId}\n`);
      io.stderr.write(
        options.json
          ? ''
          : `wrote ${options.out} (${key.scheme.name}, h=${key.scheme.contextWidth}, γ=${key.scheme.gamma}, δ=${key.scheme.delta}, ${key.tokenizer}); keep it secret\n`,
      );
      setExit(EXIT.ok);
    });
}
