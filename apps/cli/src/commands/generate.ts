import { createWatermarker, generateTokens } from '@tracemark/core';
import { InputError, readKeyFile } from '@tracemark/detection';
import { loadDefaultModel, logitsSource } from '@tracemark/lm';
import { getTokenizer, isTokenizerId } from '@tracemark/tokenizers';
import type { Command } from 'commander';
import { CliError, type CliIo, EXIT } from '../io.ts';
import { parseNumber } from '../options.ts';

interface GenerateCommandOptions {
  key: string;
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
    .requiredOption('--key <file>', 'key file from `tracemark keygen`')
    .requiredOption('--prompt <text>', 'the prompt')
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
    .option('--json', 'print JSON: text, numTokens, keyId, watermarked')
    .action(async (options: GenerateCommandOptions) => {
      const key = await readKeyFile(options.key).catch((error: unknown) => {
        if (error instanceof InputError) throw new CliError(error.code, error.message, EXIT.io);
        throw error;
      });
      if (!isTokenizerId(key.tokenizer)) {
        throw new CliError('TM_ERR_KEY_FILE', `${options.key}: unknown tokenizer ${key.tokenizer}`, EXIT.io);
      }
      const tokenizer = getTokenizer(key.tokenizer);
      if (io.stderrIsTTY) io.stderr.write('loading the embedded model (trained on first use)…\r');
      const model = await loadDefaultModel({ tokenizerId: key.tokenizer });
      const watermarker = options.watermark
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
          `${JSON.stringify({ text, numTokens: tokens.length, keyId: key.keyId, watermarked: watermarker !== null })}\n`,
        );
      } else {
        io.stdout.write(`${text}\n`);
      }
      setExit(EXIT.ok);
    });
}
