import { createWatermarker, generateTokens } from '@tracemark/core';
import { InputError, readKeyFile } from '@tracemark/detection';
import { loadDefaultModel, logitsSource } from '@tracemark/lm';
import {
  DEFAULT_TOKENIZER_ID,
  getTokenizer,
  isTokenizerId,
  TOKENIZER_IDS,
  type TokenizerId,
} from '@tracemark/tokenizers';
import type { Command } from 'commander';
import { CliError, type CliIo, EXIT } from '../io.ts';
import { parseNumber } from '../options.ts';

interface GenerateCommandOptions {
  key?: string;
  tokenizer?: string;
  prompt: string;
  maxTokens: number;
  temperature: number;
  topP: number;
  seed?: number;
  watermark: boolean;
  json?: boolean;
}

export function registerGenerate(program: Command, io: CliIo, setExit: (code: number) => void): void {
  program
    .command('generate')
    .description('generate a completion with the embedded language model, watermarked with a key')
    .option('--key <file>', 'key file from `tracemark keygen` (required unless --no-watermark)')
    .requiredOption('--prompt <text>', 'the prompt')
    .option(
      '--tokenizer <id>',
      `with --no-watermark and no --key: the tokenizer of the model (${TOKENIZER_IDS.join(', ')}; default ${DEFAULT_TOKENIZER_ID})`,
    )
    .option('--max-tokens <n>', 'tokens to generate', parseNumber('--max-tokens', 1, 100_000, true), 200)
    .option(
      '--temperature <t>',
      'sampling temperature (0 is greedy)',
      parseNumber('--temperature', 0, 10),
      0.8,
    )
    .option('--top-p <p>', 'nucleus sampling mass', parseNumber('--top-p', 0.000001, 1), 0.95)
    .option(
      '--seed <s>',
      'seed of the sampler (not of the watermark)',
      parseNumber('--seed', 0, Number.MAX_SAFE_INTEGER, true),
    )
    .option('--no-watermark', 'control mode: sample without the watermark')
    .option('--json', 'print JSON: text, numTokens, keyId (null without --key), tokenizer, watermarked')
    .action(async (options: GenerateCommandOptions) => {
      if (options.key === undefined && options.watermark) {
        throw new CliError(
          'TM_ERR_USAGE',
          'generate needs --key <file> (or --no-watermark, to sample without the watermark)',
          EXIT.usage,
        );
      }
      if (options.tokenizer !== undefined && !isTokenizerId(options.tokenizer)) {
        throw new CliError(
          'TM_ERR_USAGE',
          `--tokenizer must be one of ${TOKENIZER_IDS.join(', ')} (got ${options.tokenizer})`,
          EXIT.usage,
        );
      }
      const key =
        options.key === undefined
          ? null
          : await readKeyFile(options.key).catch((error: unknown) => {
              // An engine's key read fine: it is the wrong kind of key for this command, a usage error.
              if (error instanceof InputError) {
                throw new CliError(
                  error.code,
                  error.message,
                  error.code === 'TM_ERR_UNSUPPORTED_KEY' ? EXIT.usage : EXIT.io,
                );
              }
              throw error;
            });
      if (key !== null && !isTokenizerId(key.tokenizer)) {
        throw new CliError('TM_ERR_KEY_FILE', `${options.key}: unknown tokenizer ${key.tokenizer}`, EXIT.io);
      }
      if (key !== null && options.tokenizer !== undefined && options.tokenizer !== key.tokenizer) {
        throw new CliError(
          'TM_ERR_TOKENIZER_MISMATCH',
          `--tokenizer ${options.tokenizer}, but the key is bound to ${key.tokenizer}; give one of them`,
          EXIT.usage,
        );
      }
      const tokenizerId = (key?.tokenizer ?? options.tokenizer ?? DEFAULT_TOKENIZER_ID) as TokenizerId;
      const tokenizer = getTokenizer(tokenizerId);
      if (io.stderrIsTTY) io.stderr.write('loading the embedded model (trained on first use)…\r');
      const model = await loadDefaultModel({ tokenizerId });
      const watermarker =
        options.watermark && key !== null
          ? createWatermarker(key, { specialTokenIds: tokenizer.specialTokenIds })
          : null;
      const prompt = tokenizer.encode(options.prompt);
      const tokens: number[] = [];
      for await (const { token } of generateTokens({
        source: logitsSource(model),
        prompt,
        maxTokens: options.maxTokens,
        watermarker,
        temperature: options.temperature,
        topP: options.topP,
        ...(options.seed === undefined ? {} : { seed: options.seed }),
      })) {
        tokens.push(token);
      }
      const text = tokenizer.decode(tokens);
      if (options.json) {
        io.stdout.write(
          `${JSON.stringify({ text, numTokens: tokens.length, keyId: key?.keyId ?? null, tokenizer: tokenizerId, watermarked: watermarker !== null })}\n`,
        );
      } else {
        io.stdout.write(`${text}\n`);
      }
      setExit(EXIT.ok);
    });
}
