/**
 * `tracemark keys create|list|revoke`: API keys of the gateway, managed directly in its storage (the SQLite
 * file under the data directory, or DATABASE_URL). A new key is printed once; only its HMAC is stored.
 * The data directory must be a gateway's: the keys commands create nothing there.
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { InputError } from '@tracemark/detection';
import type { ApiKeyInfo, GatewayStorage } from '@tracemark/gateway';
import { type Command, InvalidArgumentError } from 'commander';
import { CliError, type CliIo, EXIT, shellWord, withoutPassword } from '../io.ts';
import { parseNumber } from '../options.ts';
import { loadGateway } from './serve.ts';

/** The gateway's API key scopes (its SCOPES; cli.test.ts checks they agree), for the help. */
export const API_KEY_SCOPES: readonly string[] = ['generate', 'verify', 'logprobs', 'admin'];

type Gateway = typeof import('@tracemark/gateway');

interface CommonOptions {
  dataDir?: string;
  json?: boolean;
}

interface CreateOptions extends CommonOptions {
  scopes: string;
  name?: string;
  account?: string;
  expiresInDays?: number;
  expiresAt?: string;
  rateLimit?: number;
  dailyQuota?: number;
}

async function withStorage<T>(
  gateway: Gateway,
  options: CommonOptions,
  io: CliIo,
  work: (storage: GatewayStorage, serverSecret: Uint8Array) => Promise<T>,
): Promise<T> {
  const { loadOrCreateServerSecret, openStorage } = gateway;
  const dataDir = options.dataDir ?? gateway.defaultDataDir(io.env);
  const databaseUrl = io.env.DATABASE_URL || null;
  checkDatabaseUrl(gateway, dataDir, databaseUrl);
  await checkGatewayDataDir(gateway, dataDir, databaseUrl);
  let storage: GatewayStorage;
  let serverSecret: Uint8Array;
  try {
    serverSecret = (await loadOrCreateServerSecret(dataDir)).secret;
    storage = await openStorage({ databaseUrl, dataDir });
  } catch (error) {
    if (error instanceof InputError) throw new CliError(error.code, error.message, EXIT.io);
    throw new CliError(
      'TM_ERR_IO',
      `cannot open the gateway's storage: ${withoutPassword((error as Error).message, databaseUrl)}`,
      EXIT.io,
    );
  }
  try {
    return await work(storage, serverSecret);
  } finally {
    await storage.close();
  }
}

/**
 * DATABASE_URL checked as `tracemark serve` checks it (the gateway's resolveConfig, given that variable
 * alone): the PostgreSQL client reads text that is not a URL as a host name, and the error it gave
 * ("getaddrinfo ENOTFOUND base") named neither the variable nor the problem. The message never quotes
 * the URL, which may hold a password.
 */
function checkDatabaseUrl(gateway: Gateway, dataDir: string, databaseUrl: string | null): void {
  if (databaseUrl === null) return;
  try {
    gateway.resolveConfig({ dataDir }, { DATABASE_URL: databaseUrl });
  } catch (error) {
    if (error instanceof gateway.ConfigError) throw new CliError('TM_ERR_CONFIG', error.message, EXIT.usage);
    throw error;
  }
}

/**
 * Refuses a data directory where no gateway has started: its server secret (and, without DATABASE_URL,
 * its SQLite file) would be created there, and a key made under a new secret is one no gateway accepts.
 */
async function checkGatewayDataDir(
  gateway: Gateway,
  dataDir: string,
  databaseUrl: string | null,
): Promise<void> {
  const expected = [gateway.SERVER_SECRET_FILE, ...(databaseUrl === null ? [gateway.SQLITE_FILE_NAME] : [])];
  const missing: string[] = [];
  for (const name of expected) {
    const present = await stat(join(dataDir, name)).then(
      (info) => info.isFile(),
      (error: NodeJS.ErrnoException) => {
        if (error.code === 'ENOENT' || error.code === 'ENOTDIR') return false;
        throw new CliError(
          'TM_ERR_IO',
          `${join(dataDir, name)}: cannot read the gateway's data (${error.code ?? 'error'})`,
          EXIT.io,
        );
      },
    );
    if (!present) missing.push(name);
  }
  if (missing.length === 0) return;
  throw new CliError(
    'TM_ERR_NO_GATEWAY',
    `${dataDir}: no gateway has run in this data directory (no ${missing.join(' or ')}); start \`tracemark serve --data-dir ${shellWord(dataDir)}\` first, or pass the gateway's own --data-dir`,
    EXIT.usage,
  );
}

/** The flag of `keys create` that sets each field of the gateway's createApiKey. */
const FLAG_OF_FIELD: Readonly<Record<string, string>> = {
  scopes: '--scopes',
  name: '--name',
  account: '--account',
  expiresAt: '--expires-at',
  rateLimitPerMinute: '--rate-limit',
  dailyTokenQuota: '--daily-quota',
};

/** The gateway's "field: problem" with the field named as the user typed it, as a flag. */
function namingTheFlag(message: string): string {
  const field = /^(\w+): /.exec(message)?.[1];
  const flag = field === undefined ? undefined : FLAG_OF_FIELD[field];
  return flag === undefined ? message : `${flag}${message.slice(field!.length)}`;
}

/** --expires-at, checked as it is parsed, so a bad date is refused before the storage is opened. */
function parseDateTime(value: string): string {
  if (!Number.isFinite(Date.parse(value))) {
    throw new InvalidArgumentError('expected an ISO 8601 date and time, such as 2030-01-31T00:00:00Z');
  }
  return value;
}

/** A key's columns: id, state, scopes, account, expiry, name. */
function keyColumns({ keyState }: Gateway, info: ApiKeyInfo): string[] {
  return [
    info.id,
    keyState({ ...info, hash: '' }),
    info.scopes.join(','),
    info.account,
    info.expiresAt === null ? 'never' : info.expiresAt,
    info.name,
  ];
}

const KEY_HEADINGS = ['ID', 'STATE', 'SCOPES', 'ACCOUNT', 'EXPIRES', 'NAME'];

/** Rows aligned in columns two spaces apart, without trailing spaces. */
function table(rows: readonly string[][]): string {
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  return rows
    .map((row) =>
      row
        .map((cell, column) => cell.padEnd(widths[column]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

function describeKey({ keyState }: Gateway, info: ApiKeyInfo): string {
  const state = keyState({ ...info, hash: '' });
  const expiry = info.expiresAt === null ? 'never expires' : `expires ${info.expiresAt}`;
  return `${info.id}  ${state.padEnd(7)}  ${info.scopes.join(',').padEnd(24)}  ${info.account}  ${expiry}${info.name === '' ? '' : `  ${info.name}`}`;
}

export function registerKeys(program: Command, io: CliIo, setExit: (code: number) => void): void {
  const keys = program.command('keys').description("manage the gateway's API keys");
  const dataDirOption = [
    '--data-dir <dir>',
    'the data directory of a gateway that has run (`tracemark serve --data-dir DIR`; TRACEMARK_DATA_DIR); DATABASE_URL selects PostgreSQL',
  ] as const;

  keys
    .command('create')
    .description('create an API key and print it once (only its HMAC is stored)')
    .requiredOption('--scopes <list>', `comma-separated: ${API_KEY_SCOPES.join(', ')}`)
    .option('--name <text>', 'a label for the key')
    .option('--account <name>', 'owner recorded with every completion (default "default")')
    .option(
      '--expires-in-days <n>',
      'expire after N days',
      parseNumber('--expires-in-days', 0.000001, 36_500),
    )
    .option('--expires-at <iso>', 'expire at this ISO 8601 time', parseDateTime)
    .option(
      '--rate-limit <n>',
      'requests per minute for this key',
      parseNumber('--rate-limit', 1, 10_000_000, true),
    )
    .option(
      '--daily-quota <n>',
      'completion tokens per UTC day for this key',
      parseNumber('--daily-quota', 1, Number.MAX_SAFE_INTEGER, true),
    )
    .option(...dataDirOption)
    .option('--json', 'print {"id","key"}')
    .action(async (options: CreateOptions) => {
      const gateway = await loadGateway('tracemark keys create');
      let scopes: ReturnType<Gateway['parseScopes']>;
      try {
        scopes = gateway.parseScopes(options.scopes);
      } catch (error) {
        throw new CliError('TM_ERR_USAGE', namingTheFlag((error as Error).message), EXIT.usage);
      }
      if (options.expiresInDays !== undefined && options.expiresAt !== undefined) {
        throw new CliError('TM_ERR_USAGE', 'use --expires-in-days or --expires-at, not both', EXIT.usage);
      }
      const expiresAt =
        options.expiresInDays !== undefined
          ? new Date(Date.now() + options.expiresInDays * 86_400_000).toISOString()
          : (options.expiresAt ?? null);
      const created = await withStorage(gateway, options, io, async (storage, serverSecret) => {
        try {
          return await gateway.createApiKey(storage, serverSecret, {
            scopes,
            expiresAt,
            ...(options.name === undefined ? {} : { name: options.name }),
            ...(options.account === undefined ? {} : { account: options.account }),
            ...(options.rateLimit === undefined ? {} : { rateLimitPerMinute: options.rateLimit }),
            ...(options.dailyQuota === undefined ? {} : { dailyTokenQuota: options.dailyQuota }),
          });
        } catch (error) {
          if (error instanceof RangeError)
            throw new CliError('TM_ERR_USAGE', namingTheFlag(error.message), EXIT.usage);
          throw error;
        }
      });
      if (options.json) {
        io.stdout.write(`${JSON.stringify({ id: created.info.id, key: created.key })}\n`);
      } else {
        io.stdout.write(`${created.key}\n`);
        io.stderr.write(
          `created ${describeKey(gateway, created.info)}\nthe key is shown only now; store it safely\n`,
        );
      }
      setExit(EXIT.ok);
    });

  keys
    .command('list')
    .description('list API keys, one a row under a header (ids, scopes, state; never the keys)')
    .option(...dataDirOption)
    .option('--json', 'print JSON')
    .action(async (options: CommonOptions) => {
      const gateway = await loadGateway('tracemark keys list');
      const { keyState } = gateway;
      const list = await withStorage(gateway, options, io, (storage) => gateway.listApiKeys(storage));
      if (options.json) {
        io.stdout.write(
          `${JSON.stringify({ keys: list.map((info) => ({ ...info, state: keyState({ ...info, hash: '' }) })) })}\n`,
        );
      } else if (list.length === 0) {
        io.stderr.write('no API keys yet\n');
      } else {
        io.stdout.write(`${table([KEY_HEADINGS, ...list.map((info) => keyColumns(gateway, info))])}\n`);
      }
      setExit(EXIT.ok);
    });

  keys
    .command('revoke <id>')
    .description('revoke an API key, effective at once (a key revoked before stays revoked; exit 0)')
    .option(...dataDirOption)
    .option('--json', 'print JSON')
    .action(async (id: string, options: CommonOptions) => {
      const gateway = await loadGateway('tracemark keys revoke');
      // The storage keeps the first revocation's time, so a key revoked before comes back with another
      // time than this one: say so, and exit 0, since the key is revoked either way (a script that
      // revokes twice has done what it asked).
      const now = new Date();
      const info = await withStorage(gateway, options, io, (storage) =>
        gateway.revokeApiKey(storage, id, now),
      );
      if (info === null) throw new CliError('TM_ERR_NOT_FOUND', `no API key ${id}`, EXIT.usage);
      const alreadyRevoked = info.revokedAt !== null && Date.parse(info.revokedAt) !== now.getTime();
      if (options.json) {
        io.stdout.write(`${JSON.stringify({ id: info.id, revokedAt: info.revokedAt, alreadyRevoked })}\n`);
      } else if (alreadyRevoked) {
        io.stdout.write(`${info.id} was already revoked, at ${info.revokedAt}\n`);
      } else io.stdout.write(`revoked ${info.id}\n`);
      setExit(EXIT.ok);
    });
}
