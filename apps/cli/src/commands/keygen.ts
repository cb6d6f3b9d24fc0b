import { readFile } from 'node:fs/promises';
import {
  type CreateKeyOptions,
  createWatermarkKey,
  DEFAULT_SCHEME_PARAMS,
  type VllmPrf,
  type VllmSbwScheme,
  type VllmScheme,
} from '@tracemark/core';
import {
  type AnyWatermarkKey,
  createVllmWatermarkKey,
  InputError,
  VLLM_SCHEME_NAMES,
  VllmKeyError,
  type VllmKeyOptions,
  type VllmKeyParameter,
  type VllmLefthashSeeds,
  type VllmWatermarkKey,
  vllmKeyParameters,
  writeKeyFile,
} from '@tracemark/detection';
import { DEFAULT_TOKENIZER_ID, isTokenizerId, TOKENIZER_IDS } from '@tracemark/tokenizers';
import { type Command, InvalidArgumentError } from 'commander';
import { CliError, type CliIo, EXIT } from '../io.ts';
import { parseNumber, parseOpenUnit } from '../options.ts';

interface KeygenOptions {
  out: string;
  gamma?: number;
  delta?: number;
  scheme: string;
  contextWidth?: number;
  tokenizer?: string;
  prf?: string;
  engineKey?: string;
  engineKeyFile?: string;
  engineKeyEnv?: string;
  alpha?: number;
  sbwScheme?: string;
  sbwLefthashSeeds?: string;
  vocabSize?: number;
  force?: boolean;
  json?: boolean;
}

/** The flag that sets each vLLM key parameter, for errors. */
const VLLM_FLAGS: Readonly<Record<VllmKeyParameter, string>> = Object.freeze({
  scheme: '--scheme',
  engineKey: '--engine-key', // or the file or variable it came from
  prf: '--prf',
  contextWidth: '--context-width',
  alpha: '--alpha',
  gamma: '--gamma',
  delta: '--delta',
  sbwScheme: '--sbw-scheme',
  sbwLefthashSeeds: '--sbw-lefthash-seeds',
  tokenizer: '--tokenizer',
  vocabSize: '--vocab-size',
});

const TRACEMARK_MAX_CONTEXT_WIDTH = 16;
const TRACEMARK_MAX_DELTA = 32;

const usage = (message: string): CliError => new CliError('TM_ERR_USAGE', message, EXIT.usage);

/** vLLM accepts any δ ≥ 0; tracemark's own keys are held to 0–32 in the action. */
function parseNonNegative(name: string): (value: string) => number {
  return (value) => {
    const parsed = Number(value);
    if (value.trim() === '' || !Number.isFinite(parsed) || parsed < 0) {
      throw new InvalidArgumentError(`${name} must be a number ≥ 0`);
    }
    return parsed;
  };
}

export function registerKeygen(program: Command, io: CliIo, setExit: (code: number) => void): void {
  program
    .command('keygen')
    .description('create a watermark key file (mode 0600); prints the key id, never the secret')
    .requiredOption('--out <file>', 'where to write the key file')
    .option(
      '--scheme <name>',
      `lefthash or selfhash (tracemark's own; default ${DEFAULT_SCHEME_PARAMS.name}), or a vLLM engine's: ${VLLM_SCHEME_NAMES.join(', ')}`,
      DEFAULT_SCHEME_PARAMS.name,
    )
    .option(
      '--gamma <g>',
      `green fraction γ (default ${DEFAULT_SCHEME_PARAMS.gamma}; vllm:red_green 0.25, vllm:sbw 0.5)`,
      parseOpenUnit('--gamma'),
    )
    .option(
      '--delta <d>',
      `logit bias δ (default ${DEFAULT_SCHEME_PARAMS.delta}; vllm:red_green and vllm:sbw: the engine's, default 2)`,
      parseNonNegative('--delta'),
    )
    .option(
      '--context-width <h>',
      `tokens that seed the green list (default ${DEFAULT_SCHEME_PARAMS.contextWidth}; vLLM keys 4, vllm:sbw lefthash 1)`,
      parseNumber('--context-width', 1, 4096, true),
    )
    .option(
      '--tokenizer <id>',
      `tokenizer the key is bound to (${TOKENIZER_IDS.join(', ')}; default ${DEFAULT_TOKENIZER_ID}); a vLLM key may name the served model's (then only token ids are read)`,
    )
    .option('--prf <name>', 'vLLM keys: philox (default) or hmac-sha256-v1 (vllm:gumbel only)')
    .option('--engine-key <int>', "vLLM keys: the engine's watermark key (decimal or 0x hex)")
    .option('--engine-key-file <path>', 'vLLM keys: read the engine key from this file')
    .option('--engine-key-env <var>', 'vLLM keys: read the engine key from this environment variable')
    .option(
      '--alpha <a>',
      'vllm:dual_key_gumbel: the weight of key B (default 0.1)',
      parseNumber('--alpha', 0, 1),
    )
    .option('--sbw-scheme <name>', 'vllm:sbw: selfhash (default) or lefthash')
    .option(
      '--sbw-lefthash-seeds <which>',
      "vllm:sbw lefthash: detector (vLLM's detector, default) or generator (what vLLM's generator embeds)",
    )
    .option(
      '--vocab-size <n>',
      "vLLM keys bound to a tokenizer tracemark does not ship: the model's vocabulary size, to refuse ids outside it",
      parseNumber('--vocab-size', 1, 2 ** 31, true),
    )
    .option('--force', 'replace an existing file')
    .option('--json', 'print JSON')
    .action(async (options: KeygenOptions) => {
      const vllmScheme = (VLLM_SCHEME_NAMES as readonly string[]).includes(options.scheme)
        ? (options.scheme.slice('vllm:'.length) as VllmScheme)
        : null;
      const key = vllmScheme === null ? tracemarkKey(options) : await vllmKey(vllmScheme, options, io.env);
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
      if (key.kind === 'vllm') printVllmSummary(key, options, io);
      else {
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
      }
      setExit(EXIT.ok);
    });
}

function tracemarkKey(options: KeygenOptions): AnyWatermarkKey {
  if (options.scheme !== 'lefthash' && options.scheme !== 'selfhash') {
    throw usage(`--scheme must be lefthash, selfhash or one of ${VLLM_SCHEME_NAMES.join(', ')}`);
  }
  const vllmOnly: [keyof KeygenOptions, string][] = [
    ['prf', '--prf'],
    ['engineKey', '--engine-key'],
    ['engineKeyFile', '--engine-key-file'],
    ['engineKeyEnv', '--engine-key-env'],
    ['alpha', '--alpha'],
    ['sbwScheme', '--sbw-scheme'],
    ['sbwLefthashSeeds', '--sbw-lefthash-seeds'],
    ['vocabSize', '--vocab-size'],
  ];
  for (const [name, flag] of vllmOnly) {
    if (options[name] !== undefined) throw usage(`${flag} applies only to vLLM keys (--scheme vllm:…)`);
  }
  const tokenizer = options.tokenizer ?? DEFAULT_TOKENIZER_ID;
  if (!isTokenizerId(tokenizer)) throw usage(`--tokenizer must be one of ${TOKENIZER_IDS.join(', ')}`);
  if (options.contextWidth !== undefined && options.contextWidth > TRACEMARK_MAX_CONTEXT_WIDTH) {
    throw usage(`--context-width must be an integer from 1 to ${TRACEMARK_MAX_CONTEXT_WIDTH}`);
  }
  if (options.delta !== undefined && options.delta > TRACEMARK_MAX_DELTA) {
    throw usage(`--delta must be a number from 0 to ${TRACEMARK_MAX_DELTA}`);
  }
  const scheme: CreateKeyOptions['scheme'] = {
    name: options.scheme,
    gamma: options.gamma ?? DEFAULT_SCHEME_PARAMS.gamma,
    delta: options.delta ?? DEFAULT_SCHEME_PARAMS.delta,
    contextWidth: options.contextWidth ?? DEFAULT_SCHEME_PARAMS.contextWidth,
  };
  return createWatermarkKey({ scheme, tokenizer });
}

/**
 * The engine key from exactly one of --engine-key, --engine-key-file, --engine-key-env. Errors name
 * the flag (and the file or variable), never the value.
 */
async function readEngineKey(
  options: KeygenOptions,
  env: NodeJS.ProcessEnv,
): Promise<{ engineKey: bigint; where: string }> {
  const given = [
    options.engineKey === undefined ? null : '--engine-key',
    options.engineKeyFile === undefined ? null : '--engine-key-file',
    options.engineKeyEnv === undefined ? null : '--engine-key-env',
  ].filter((flag) => flag !== null);
  if (given.length !== 1) {
    throw usage(
      given.length === 0
        ? 'a vLLM key needs the engine key: give one of --engine-key, --engine-key-file, --engine-key-env'
        : `give the engine key once, not with ${given.join(' and ')}`,
    );
  }
  let text: string;
  let where: string;
  if (options.engineKey !== undefined) {
    text = options.engineKey;
    where = '--engine-key';
  } else if (options.engineKeyFile !== undefined) {
    const path = options.engineKeyFile;
    where = `--engine-key-file ${path}`;
    text = await readFile(path, 'utf8').catch((error: NodeJS.ErrnoException) => {
      throw new CliError('TM_ERR_IO', `${where}: cannot read (${error.code ?? 'error'})`, EXIT.io);
    });
  } else {
    const name = options.engineKeyEnv!;
    where = `--engine-key-env ${name}`;
    const value = env[name];
    if (value === undefined || value === '') throw usage(`${where}: the variable is not set`);
    text = value;
  }
  const trimmed = text.trim();
  if (/^[0-9]{1,100}$/.test(trimmed) || /^0x[0-9a-fA-F]{1,80}$/.test(trimmed)) {
    return { engineKey: BigInt(trimmed), where };
  }
  throw usage(`${where}: the engine key must be a non-negative integer, in decimal or 0x hex`);
}

async function vllmKey(
  scheme: VllmScheme,
  options: KeygenOptions,
  env: NodeJS.ProcessEnv,
): Promise<VllmWatermarkKey> {
  const { engineKey, where } = await readEngineKey(options, env);
  const params: VllmKeyOptions = {
    scheme,
    engineKey,
    ...(options.prf === undefined ? {} : { prf: options.prf as VllmPrf }),
    ...(options.contextWidth === undefined ? {} : { contextWidth: options.contextWidth }),
    ...(options.alpha === undefined ? {} : { alpha: options.alpha }),
    ...(options.gamma === undefined ? {} : { gamma: options.gamma }),
    ...(options.delta === undefined ? {} : { delta: options.delta }),
    ...(options.sbwScheme === undefined ? {} : { sbwScheme: options.sbwScheme as VllmSbwScheme }),
    ...(options.sbwLefthashSeeds === undefined
      ? {}
      : { sbwLefthashSeeds: options.sbwLefthashSeeds as VllmLefthashSeeds }),
    ...(options.tokenizer === undefined ? {} : { tokenizer: options.tokenizer }),
    ...(options.vocabSize === undefined ? {} : { vocabSize: options.vocabSize }),
  };
  try {
    return createVllmWatermarkKey(params);
  } catch (error) {
    if (error instanceof VllmKeyError) {
      const flag = error.parameter === 'engineKey' ? where : VLLM_FLAGS[error.parameter];
      throw usage(`${flag}: ${error.detail}${flag === '--scheme' ? '' : ` (--scheme vllm:${scheme})`}`);
    }
    throw error;
  }
}

function printVllmSummary(key: VllmWatermarkKey, options: KeygenOptions, io: CliIo): void {
  const summary = {
    keyId: key.keyId,
    file: options.out,
    scheme: `vllm:${key.scheme}`,
    prf: key.prf,
    ...vllmKeyParameters(key),
    readsText: isTokenizerId(key.tokenizer),
  };
  if (options.json) {
    io.stdout.write(`${JSON.stringify(summary)}\n`);
    return;
  }
  io.stdout.write(`${key.keyId}\n`);
  const parameters = [
    `vllm:${key.scheme}`,
    key.prf,
    `h=${key.contextWidth}`,
    ...(key.alpha === null ? [] : [`α=${key.alpha}`]),
    ...(key.gamma === null ? [] : [`γ=${key.gamma}`]),
    ...(key.delta === null ? [] : [`δ=${key.delta}`]),
    ...(key.sbwScheme === null ? [] : [key.sbwScheme]),
    ...(key.sbwLefthashSeeds === null ? [] : [`${key.sbwLefthashSeeds} seeds`]),
    key.tokenizer,
  ];
  const notes: string[] = [];
  if (!isTokenizerId(key.tokenizer)) {
    notes.push(
      `tracemark does not ship tokenizer ${JSON.stringify(key.tokenizer)}: detect reads token ids with this key (a JSONL field of ids), not text`,
    );
  } else if (options.tokenizer === undefined) {
    notes.push(
      `bound to ${key.tokenizer}, the default: pass --tokenizer with the served model's tokenizer if it differs`,
    );
  }
  if (key.scheme === 'sbw' && key.engineKey === 0n) {
    notes.push(
      "with engine key 0 every sbw seed is 0: vLLM's green list then ignores the context, and detect scores each token once",
    );
  }
  if (key.sbwScheme === 'lefthash' && key.sbwLefthashSeeds === 'detector') {
    notes.push(
      "vLLM's sbw lefthash generator and detector seed differently (docs/spec/foreign-vllm.md §6.4); --sbw-lefthash-seeds generator reads what the engine embeds",
    );
  }
  io.stderr.write(
    `wrote ${options.out} (${parameters.join(', ')}); it holds the engine key: keep it secret\n${notes.map((note) => `note: ${note}\n`).join('')}`,
  );
}
