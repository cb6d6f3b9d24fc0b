import { readFile, stat } from 'node:fs/promises';
import {
  type CreateKeyOptions,
  createWatermarkKey,
  DEFAULT_DUAL_GUMBEL_ALPHA,
  DEFAULT_GUMBEL_CONTEXT_WIDTH,
  DEFAULT_SCHEME_PARAMS,
  isGumbelScheme,
  SCHEME_NAMES,
  type SchemeName,
} from '@tracemark/core';
import {
  type AnyWatermarkKey,
  FOREIGN_KEY_TYPES,
  ForeignKeyError,
  type ForeignWatermarkKey,
  foreignKeyType,
  foreignKeyTypeForScheme,
  foreignSchemeName,
  foreignSchemeNames,
  InputError,
  isForeignKey,
  isVllmKey,
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
  engineKey?: string;
  engineKeyFile?: string;
  engineKeyEnv?: string;
  vocabSize?: number;
  force?: boolean;
  json?: boolean;
  /** Engines' flags (their long names in camelCase), as the families declare them. */
  [flag: string]: unknown;
}

/** Flags every family may read besides its own: tracemark's scheme parameters and the tokenizer's. */
const SHARED_FLAGS: readonly string[] = Object.freeze([
  'gamma',
  'delta',
  'context-width',
  'tokenizer',
  'vocab-size',
]);

/** Who reads a flag: tracemark's own schemes by name, and the families of engines that do. */
interface FlagReaders {
  readonly own: readonly string[];
  /**
   * Each family by its label: the schemes of it that read the flag (empty: all of them), and for an
   * example, its first scheme and whether it has others.
   */
  readonly families: readonly FamilyReaders[];
}

interface FamilyReaders {
  readonly label: string;
  readonly schemes: string[];
  readonly example: string;
  readonly others: boolean;
}

type ForeignFlag = { flag: string; descriptions: string[]; labels: string[]; families: FamilyReaders[] };

/** Flags the families declare (long name without dashes) with the families and schemes that read them. */
function foreignFlags(): Map<string, ForeignFlag> {
  const flags = new Map<string, ForeignFlag>();
  for (const type of FOREIGN_KEY_TYPES) {
    for (const { flag, description } of type.keygenFlags) {
      const name = longName(flag);
      if (SHARED_FLAGS.includes(name)) continue;
      const entry = flags.get(name) ?? { flag, descriptions: [], labels: [], families: [] };
      if (!entry.descriptions.includes(description)) entry.descriptions.push(description);
      if (!entry.labels.includes(type.label)) entry.labels.push(type.label);
      let family = entry.families.find((readers) => readers.label === type.label);
      if (family === undefined) {
        family = { ...familyReaders(type), schemes: [] };
        entry.families.push(family);
      }
      // A description that opens with a scheme's name ("vllm:dual_key_gumbel: the weight of key B") is
      // that scheme's flag alone; the others ("vLLM keys: …") are read by all of the family's schemes.
      for (const scheme of type.schemeNames) {
        const named = description.startsWith(`${scheme}:`) || description.startsWith(`${scheme} `);
        if (named && !family.schemes.includes(scheme)) family.schemes.push(scheme);
      }
      flags.set(name, entry);
    }
  }
  return flags;
}

function familyReaders(type: (typeof FOREIGN_KEY_TYPES)[number]): FamilyReaders {
  return {
    label: type.label,
    schemes: [],
    example: type.schemeNames[0]!,
    others: type.schemeNames.length > 1,
  };
}

/**
 * The error for a flag no scheme of this key reads, naming every scheme that does: `--alpha applies only to
 * --scheme dual_gumbel and to vLLM keys of --scheme vllm:dual_key_gumbel`, `--prf applies only to vLLM
 * keys (--scheme vllm:gumbel, …)`.
 */
function appliesOnlyTo(flag: string, { own, families }: FlagReaders): CliError {
  const whole = families.filter((family) => family.schemes.length === 0);
  const readers = [
    ...(own.length === 0 ? [] : [`--scheme ${own.join(' or ')}`]),
    ...families
      .filter((family) => family.schemes.length > 0)
      .map((family) => `${family.label} keys of --scheme ${family.schemes.join(' or ')}`),
    ...(whole.length === 0
      ? []
      : [
          `${whole.map((family) => family.label).join(', ')} keys (--scheme ${whole[0]!.example}${whole.length > 1 || whole[0]!.others ? ', …' : ''})`,
        ]),
  ];
  return usage(`--${flag} applies only to ${readers.join(' and to ')}`);
}

/** `--ngram-len <n>` → `ngram-len`. */
function longName(flag: string): string {
  return flag.replace(/^--/, '').split(/[ =]/)[0]!;
}

/** `ngram-len` → `ngramLen`, commander's name for the option. */
function camel(name: string): string {
  return name.replace(/-([a-z])/g, (_match, letter: string) => letter.toUpperCase());
}

const TRACEMARK_MAX_CONTEXT_WIDTH = 16;
const TRACEMARK_MAX_DELTA = 32;

const usage = (message: string): CliError => new CliError('TM_ERR_USAGE', message, EXIT.usage);

/** Engines accept any δ ≥ 0; tracemark's own keys are held to 0–32 in the action. */
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
  const command = program
    .command('keygen')
    .description('create a watermark key file (mode 0600); prints the key id, never the secret')
    .requiredOption('--out <file>', 'where to write the key file')
    .option(
      '--scheme <name>',
      `${SCHEME_NAMES.join(' or ')} (tracemark's own; default ${DEFAULT_SCHEME_PARAMS.name}), or a serving engine's: ${foreignSchemeNames().join(', ')}`,
      DEFAULT_SCHEME_PARAMS.name,
    )
    .option(
      '--gamma <g>',
      `green fraction γ (default ${DEFAULT_SCHEME_PARAMS.gamma}; not for gumbel and dual_gumbel; engines' keys: the engine's default)`,
      parseOpenUnit('--gamma'),
    )
    .option(
      '--delta <d>',
      `logit bias δ (default ${DEFAULT_SCHEME_PARAMS.delta}; not for gumbel and dual_gumbel; engines' keys: the engine's, default 2)`,
      parseNonNegative('--delta'),
    )
    .option(
      '--context-width <h>',
      `tokens that seed a position (default ${DEFAULT_SCHEME_PARAMS.contextWidth}; gumbel and dual_gumbel ${DEFAULT_GUMBEL_CONTEXT_WIDTH}; engines' keys: the engine's default)`,
      parseNumber('--context-width', 1, 4096, true),
    )
    .option(
      '--tokenizer <id>',
      `tokenizer the key is bound to (${TOKENIZER_IDS.join(', ')}; default ${DEFAULT_TOKENIZER_ID}); an engine's key may name the served model's (then only token ids are read)`,
    )
    .option('--engine-key <secret>', "engines' keys: the engine's watermark key")
    .option('--engine-key-file <path>', "engines' keys: read the engine's key from this file")
    .option('--engine-key-env <var>', "engines' keys: read the engine's key from this environment variable")
    .option(
      '--vocab-size <n>',
      "engines' keys bound to a tokenizer tracemark does not ship: the model's vocabulary size, to refuse ids outside it",
      parseNumber('--vocab-size', 1, 2 ** 31, true),
    );
  for (const [name, { flag, descriptions }] of foreignFlags()) {
    // --alpha is also tracemark's dual_gumbel weight of key B.
    const own =
      name === 'alpha' ? [`dual_gumbel: the weight of key B (default ${DEFAULT_DUAL_GUMBEL_ALPHA})`] : [];
    command.option(flag, [...own, ...descriptions].join('; '));
  }
  command
    .option('--force', 'replace an existing file')
    .option('--json', 'print JSON')
    .action(async (options: KeygenOptions) => {
      await checkOut(options.out);
      const family = foreignKeyTypeForScheme(options.scheme);
      const key = family === null ? tracemarkKey(options) : await foreignKey(options, io.env);
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
      if (isForeignKey(key)) printForeignSummary(key, options, io);
      else {
        const gumbel = isGumbelScheme(key.scheme);
        const summary = {
          keyId: key.keyId,
          file: options.out,
          scheme: {
            name: key.scheme.name,
            contextWidth: key.scheme.contextWidth,
            ...(gumbel
              ? key.scheme.name === 'dual_gumbel'
                ? { alpha: key.scheme.alpha }
                : {}
              : { gamma: key.scheme.gamma, delta: key.scheme.delta }),
          },
          tokenizer: key.tokenizer,
        };
        if (options.json) io.stdout.write(`${JSON.stringify(summary)}\n`);
        else io.stdout.write(`${key.keyId}\n`);
        const parameters = gumbel
          ? `h=${key.scheme.contextWidth}${key.scheme.name === 'dual_gumbel' ? `, α=${key.scheme.alpha}` : ''}`
          : `h=${key.scheme.contextWidth}, γ=${key.scheme.gamma}, δ=${key.scheme.delta}`;
        io.stderr.write(
          options.json
            ? ''
            : `wrote ${options.out} (${key.scheme.name}, ${parameters}, ${key.tokenizer}); keep it secret\n`,
        );
      }
      setExit(EXIT.ok);
    });
}

/**
 * Refuses an --out that is a directory, with or without --force: "a file exists there" would be wrong, and
 * --force then failed at the rename (EISDIR). Checked first, before an engine's key is read.
 */
async function checkOut(out: string): Promise<void> {
  const info = await stat(out).catch(() => null);
  if (info?.isDirectory()) throw usage(`--out ${out} is a directory: name a file`);
}

function tracemarkKey(options: KeygenOptions): AnyWatermarkKey {
  if (!(SCHEME_NAMES as readonly string[]).includes(options.scheme)) {
    throw usage(`--scheme must be ${SCHEME_NAMES.join(', ')} or one of ${foreignSchemeNames().join(', ')}`);
  }
  const name = options.scheme as SchemeName;
  const gumbel = isGumbelScheme({ name });
  const allEngines: FlagReaders = { own: [], families: FOREIGN_KEY_TYPES.map(familyReaders) };
  const engineOnly: [string, FlagReaders][] = [
    ['engine-key', allEngines],
    ['engine-key-file', allEngines],
    ['engine-key-env', allEngines],
    ['vocab-size', allEngines],
    ...[...foreignFlags()]
      // --alpha is also dual_gumbel's weight of key B.
      .filter(([flag]) => !(flag === 'alpha' && name === 'dual_gumbel'))
      .map(([flag, { families }]): [string, FlagReaders] => [
        flag,
        { own: flag === 'alpha' ? ['dual_gumbel'] : [], families },
      ]),
  ];
  for (const [flag, readers] of engineOnly) {
    if (options[camel(flag)] !== undefined) throw appliesOnlyTo(flag, readers);
  }
  if (gumbel) {
    for (const flag of ['gamma', 'delta'] as const) {
      if (options[flag] !== undefined) {
        throw usage(`--${flag} does not apply to ${name} keys: the Gumbel schemes bias nothing`);
      }
    }
  }
  const tokenizer = options.tokenizer ?? DEFAULT_TOKENIZER_ID;
  if (!isTokenizerId(tokenizer)) throw usage(`--tokenizer must be one of ${TOKENIZER_IDS.join(', ')}`);
  if (options.contextWidth !== undefined && options.contextWidth > TRACEMARK_MAX_CONTEXT_WIDTH) {
    throw usage(`--context-width must be an integer from 1 to ${TRACEMARK_MAX_CONTEXT_WIDTH}`);
  }
  if (options.delta !== undefined && options.delta > TRACEMARK_MAX_DELTA) {
    throw usage(`--delta must be a number from 0 to ${TRACEMARK_MAX_DELTA}`);
  }
  let scheme: CreateKeyOptions['scheme'];
  if (gumbel) {
    let alpha: number | undefined;
    if (options.alpha !== undefined) {
      alpha = Number(options.alpha);
      if (!(alpha > 0 && alpha < 1)) throw usage('--alpha must be a number strictly between 0 and 1');
    }
    scheme = {
      name,
      contextWidth: options.contextWidth ?? DEFAULT_GUMBEL_CONTEXT_WIDTH,
      ...(name === 'dual_gumbel' ? { alpha: alpha ?? DEFAULT_DUAL_GUMBEL_ALPHA } : {}),
    };
  } else {
    scheme = {
      name,
      gamma: options.gamma ?? DEFAULT_SCHEME_PARAMS.gamma,
      delta: options.delta ?? DEFAULT_SCHEME_PARAMS.delta,
      contextWidth: options.contextWidth ?? DEFAULT_SCHEME_PARAMS.contextWidth,
    };
  }
  return createWatermarkKey({ scheme, tokenizer });
}

/**
 * The engine's key from at most one of --engine-key, --engine-key-file, --engine-key-env, as text (null
 * when none is given: the family says whether it needs one). Errors name the flag (and the file or
 * variable), never the value.
 */
async function readEngineKey(
  options: KeygenOptions,
  env: NodeJS.ProcessEnv,
): Promise<{ secret: string | null; where: string }> {
  const given = [
    options.engineKey === undefined ? null : '--engine-key',
    options.engineKeyFile === undefined ? null : '--engine-key-file',
    options.engineKeyEnv === undefined ? null : '--engine-key-env',
  ].filter((flag) => flag !== null);
  if (given.length > 1) throw usage(`give the engine key once, not with ${given.join(' and ')}`);
  if (options.engineKey !== undefined) return { secret: options.engineKey, where: '--engine-key' };
  if (options.engineKeyFile !== undefined) {
    const path = options.engineKeyFile;
    const where = `--engine-key-file ${path}`;
    const secret = await readFile(path, 'utf8').catch((error: NodeJS.ErrnoException) => {
      throw new CliError('TM_ERR_IO', `${where}: cannot read (${error.code ?? 'error'})`, EXIT.io);
    });
    return { secret, where };
  }
  if (options.engineKeyEnv !== undefined) {
    const name = options.engineKeyEnv;
    const where = `--engine-key-env ${name}`;
    const value = env[name];
    if (value === undefined || value === '') throw usage(`${where}: the variable is not set`);
    return { secret: value, where };
  }
  return { secret: null, where: '--engine-key' };
}

/** An engine's key from the flags its family reads; errors name the flag, never the secret. */
async function foreignKey(options: KeygenOptions, env: NodeJS.ProcessEnv): Promise<ForeignWatermarkKey> {
  const family = foreignKeyTypeForScheme(options.scheme)!;
  const { secret, where } = await readEngineKey(options, env);
  const flags: Record<string, string> = {};
  for (const name of [...SHARED_FLAGS, ...foreignFlags().keys()]) {
    const value = options[camel(name)];
    if (value !== undefined) flags[name] = String(value);
  }
  try {
    return family.fromKeygen(options.scheme, flags, secret);
  } catch (error) {
    if (error instanceof ForeignKeyError) {
      if (error.parameter === 'secret') {
        throw usage(
          secret === null
            ? `a ${family.label} key needs the engine's key (${family.secretDescription}): give one of --engine-key, --engine-key-file, --engine-key-env`
            : `${where}: ${error.detail}`,
        );
      }
      const flag = `--${error.parameter}`;
      throw usage(`${flag}: ${error.detail}${flag === '--scheme' ? '' : ` (--scheme ${options.scheme})`}`);
    }
    throw error;
  }
}

function printForeignSummary(key: ForeignWatermarkKey, options: KeygenOptions, io: CliIo): void {
  const family = foreignKeyType(key);
  const parameters = family.parameters(key);
  const schemeName = foreignSchemeName(key);
  const summary = {
    keyId: key.keyId,
    file: options.out,
    scheme: schemeName,
    ...parameters,
    readsText: isTokenizerId(key.tokenizer),
  };
  if (options.json) {
    io.stdout.write(`${JSON.stringify(summary)}\n`);
    return;
  }
  io.stdout.write(`${key.keyId}\n`);
  const shown = [
    schemeName,
    ...Object.entries(parameters)
      .filter(([name]) => name !== 'tokenizer')
      .map(([name, value]) => `${name}=${value}`),
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
  notes.push(...familyNotes(key));
  io.stderr.write(
    `wrote ${options.out} (${shown.join(', ')}); it holds the engine's key: keep it secret\n${notes.map((note) => `note: ${note}\n`).join('')}`,
  );
}

/** What a family's keys need said at creation. */
function familyNotes(key: ForeignWatermarkKey): string[] {
  if (!isVllmKey(key)) return [];
  const notes: string[] = [];
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
  return notes;
}
