/**
 * `tracemark serve`: runs the gateway, an OpenAI-compatible API that watermarks every completion and records
 * it in the issuance log. Logs (JSON, secrets redacted) go to stdout; the banner, and on first start the
 * development API key (shown once) and a ready-to-paste curl command, go to stderr.
 */
import { createServer } from 'node:net';
import { InputError } from '@tracemark/detection';
import type { GatewayConfigInput, RunningGateway } from '@tracemark/gateway';
import type { Command } from 'commander';
import { CliError, type CliIo, EXIT, shellWord, withoutPassword } from '../io.ts';
import { parseNumber } from '../options.ts';

/** The gateway's default port (its DEFAULT_PORT; cli.test.ts checks they agree), for the help. */
export const GATEWAY_DEFAULT_PORT = 8787;

type Gateway = typeof import('@tracemark/gateway');
const GATEWAY_PACKAGE = '@tracemark/gateway';

/**
 * The gateway package, loaded by the commands that need it (serve, keys, scan --issued on a database):
 * the CLI does not depend on it, since it brings native modules (better-sqlite3) and database clients.
 * When it is not installed, the error names the package to install. `importGateway` is for tests.
 */
export async function loadGateway(
  command: string,
  importGateway: () => Promise<Gateway> = () => import('@tracemark/gateway'),
): Promise<Gateway> {
  try {
    return await importGateway();
  } catch (error) {
    const missing =
      (error as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND'
        ? /Cannot find package '([^']+)'/.exec((error as Error).message)?.[1]
        : undefined;
    if (missing === undefined) throw error;
    throw new CliError(
      'TM_ERR_GATEWAY_MISSING',
      missing === GATEWAY_PACKAGE
        ? `${command} needs the package ${GATEWAY_PACKAGE}, which is not installed: install it beside the CLI (npm install --global ${GATEWAY_PACKAGE}, or npm install ${GATEWAY_PACKAGE} in a project)`
        : `${command} needs the package ${GATEWAY_PACKAGE}, which is installed without its dependency ${missing}: reinstall it (npm install --global ${GATEWAY_PACKAGE})`,
      EXIT.io,
    );
  }
}

export interface ServeOptions {
  readonly port?: number;
  readonly host?: string;
  readonly dataDir?: string;
  readonly key?: string;
  readonly upstream?: string;
  readonly upstreamWatermark?: string;
  readonly logLevel?: string;
  readonly monitor?: boolean;
  readonly inputPolicy?: string;
  readonly outputPolicy?: string;
  readonly clusterLimits?: boolean;
  readonly throttledRateLimitPerMinute?: number;
  readonly accountKeys?: string;
  readonly monitorMmd?: string;
}

/** Starts the gateway and resolves once it has closed (on SIGINT / SIGTERM, or when `stop` aborts). */
export async function runServe(options: ServeOptions, io: CliIo, stop?: AbortSignal): Promise<void> {
  const running = await startGateway(options, io, stop === undefined);
  stop?.addEventListener('abort', () => void running.close(), { once: true });
  if (stop?.aborted) void running.close();
  await running.closed;
}

/** Starts the gateway and prints the banner; the caller owns closing it. */
export async function startGateway(
  options: ServeOptions,
  io: CliIo,
  handleSignals: boolean,
): Promise<RunningGateway> {
  const flags: GatewayConfigInput = {
    port: options.port,
    host: options.host,
    dataDir: options.dataDir,
    keyFile: options.key,
    upstreamUrl: options.upstream,
    upstreamWatermarkFile: options.upstreamWatermark,
    logLevel: options.logLevel,
    monitor: options.monitor,
    inputPolicy: options.inputPolicy as GatewayConfigInput['inputPolicy'],
    outputPolicy: options.outputPolicy as GatewayConfigInput['outputPolicy'],
    clusterLimits: options.clusterLimits,
    throttledRateLimitPerMinute: options.throttledRateLimitPerMinute,
    accountKeys: options.accountKeys,
    monitorMmdFile: options.monitorMmd,
  };
  const gateway = await loadGateway('tracemark serve');
  let running: RunningGateway;
  let config: ReturnType<Gateway['resolveConfig']>;
  try {
    config = gateway.resolveConfig(flags, io.env);
  } catch (error) {
    throw toCliError(gateway, error, null);
  }
  // The model takes seconds to load (minutes the first time): a port in use is reported before.
  await checkCanListen(config.host, config.port);
  try {
    io.stderr.write(
      config.upstreamUrl === null
        ? 'loading the embedded model (trained on first use)…\n'
        : config.upstreamWatermarkFile !== null
          ? "checking that the upstream engine's completions carry the mark of --upstream-watermark…\n"
          : 'probing the upstream model server…\n',
    );
    running = await gateway.startServer(config, {
      handleSignals,
      logger: gateway.loggerOptions(config.logLevel, {
        write: (line: string) => io.stdout.write(line),
      } as NodeJS.WritableStream),
    });
  } catch (error) {
    throw toCliError(gateway, error, config);
  }
  const { firstStart } = running;
  const context = running.app.gateway;
  const model = context.backend.models()[0]?.id ?? 'model';
  const lines = [
    `tracemark gateway listening on ${running.url}`,
    `  backend ${context.backend.kind} (model ${model}), storage ${context.storage.kind}, rate limits ${context.redis === null ? 'in memory' : 'in Redis'}`,
    `  watermark key ${context.watermarkKey.keyId}${context.keyEpoch === null ? '' : ` (epoch ${context.keyEpoch})`}${firstStart.watermarkKeyCreated ? `, created at ${firstStart.watermarkKeyFile}` : ''}`,
  ];
  const engine = context.engineNative;
  if (engine !== null) {
    const check = engine.startupCheck;
    lines.push(
      `  engine-native: the upstream marks its own output; start-up check found the mark in ${check.completions} completions (${check.numScored} tokens scored, log10 p = ${check.log10P.toFixed(1)}); ${config.upstreamMarkSampleRate * 100}% of completions are re-checked live`,
    );
  }
  if (firstStart.devApiKey !== null) {
    lines.push(
      '',
      'First start: a development API key was created. It is shown only now',
      `${firstStart.devApiKeyFile === null ? '' : `(and saved, mode 0600, in ${firstStart.devApiKeyFile})`}:`,
      '',
      `  ${firstStart.devApiKey}`,
      '',
      'Try it:',
      '',
      `  ${gateway.curlExample(running.url, firstStart.devApiKey, model)}`,
      '',
      `Create more keys with \`${keysCreateCommand(gateway, config.dataDir, io.env)}\`${config.databaseUrl === null ? '' : ', with DATABASE_URL set as it is here'}.`,
    );
  }
  io.stderr.write(`${lines.join('\n')}\n`);
  return running;
}

/**
 * The `keys create` command that reaches the keys of a gateway serving from `dataDir`: it names the
 * directory unless that is the built-in default (TRACEMARK_DATA_DIR may not be set where it is pasted).
 */
export function keysCreateCommand(
  gateway: Pick<Gateway, 'defaultDataDir'>,
  dataDir: string,
  env: NodeJS.ProcessEnv,
): string {
  const builtInDefault = gateway.defaultDataDir({ ...env, TRACEMARK_DATA_DIR: '' });
  return `tracemark keys create --scopes generate,verify${dataDir === builtInDefault ? '' : ` --data-dir ${shellWord(dataDir)}`}`;
}

/**
 * The gateway's start-up error as the CLI reports it; `config` is null while the settings are being read.
 * A database that cannot be opened (StorageOpenError, a kind of ConfigError) is the storage error, exit 3,
 * that the help and the README document: valid settings do not make a database reachable.
 */
function toCliError(
  gateway: Gateway,
  error: unknown,
  config: { host: string; port: number; databaseUrl: string | null; keyFile: string | null } | null,
): unknown {
  const databaseUrl = config?.databaseUrl ?? null;
  // before ConfigError, of which it is a kind
  if (error instanceof gateway.StorageOpenError) {
    return new CliError('TM_ERR_IO', withoutPassword(error.message, databaseUrl), EXIT.io);
  }
  if (error instanceof gateway.ConfigError) {
    return new CliError('TM_ERR_CONFIG', withoutPassword(error.message, databaseUrl), EXIT.usage);
  }
  if (error instanceof gateway.GatewayError) return new CliError(error.code, error.message, EXIT.io);
  if (error instanceof InputError) {
    // A key file of another kind is a wrong argument, not a failed read; an engine's key is served in
    // engine-native mode, where the engine marks its own output and the gateway checks the mark.
    if (error.code === 'TM_ERR_UNSUPPORTED_KEY') {
      const keyFile = config?.keyFile ?? 'KEYFILE';
      return new CliError(
        error.code,
        `${error.message}; to serve an engine that marks its output with this key, use engine-native mode: tracemark serve --upstream URL --upstream-watermark ${shellWord(keyFile)}`,
        EXIT.usage,
      );
    }
    return new CliError(error.code, error.message, EXIT.io);
  }
  return (config === null ? null : listenError(error, config.host, config.port)) ?? error;
}

/** Why the gateway cannot listen on host:port, in words, or null for an error of another kind. */
function listenError(error: unknown, host: string, port: number): CliError | null {
  const code = (error as NodeJS.ErrnoException).code;
  const message =
    code === 'EADDRINUSE'
      ? `port ${port} on ${host} is in use (another tracemark serve?); stop it or choose another with --port`
      : code === 'EACCES'
        ? `port ${port} on ${host} needs privileges this user lacks (ports below 1024 usually do); choose another with --port`
        : code === 'EADDRNOTAVAIL'
          ? `${host} is not an address of this machine; choose another with --host`
          : code === 'ENOTFOUND' || code === 'EAI_AGAIN'
            ? `cannot resolve the host ${host}; give an address with --host`
            : null;
  return message === null ? null : new CliError('TM_ERR_IO', message, EXIT.io);
}

/** Binds host:port for a moment and lets it go, so that a port in use is reported before anything else. */
async function checkCanListen(host: string, port: number): Promise<void> {
  if (port === 0) return;
  const probe = createServer();
  try {
    await new Promise<void>((resolve, reject) => {
      probe.once('error', reject);
      probe.listen({ host, port, exclusive: true }, resolve);
    });
  } catch (error) {
    throw listenError(error, host, port) ?? error;
  }
  await new Promise<void>((resolve) => probe.close(() => resolve()));
}

export function registerServe(program: Command, io: CliIo, setExit: (code: number) => void): void {
  program
    .command('serve')
    .description('run the gateway: an OpenAI-compatible API that watermarks and records every completion')
    .option(
      '--port <n>',
      `port (TRACEMARK_PORT; default ${GATEWAY_DEFAULT_PORT}, 0 picks one)`,
      parseNumber('--port', 0, 65535, true),
    )
    .option('--host <host>', 'address to listen on (TRACEMARK_HOST; default 127.0.0.1)')
    .option('--data-dir <dir>', 'keys, server secret and SQLite database (TRACEMARK_DATA_DIR)')
    .option(
      '--key <file>',
      'watermark key file from `tracemark keygen` (TRACEMARK_KEY_FILE; default: its own)',
    )
    .option(
      '--upstream <url>',
      'OpenAI-compatible server with logprobs, e.g. http://127.0.0.1:8000/v1 (TRACEMARK_UPSTREAM_URL)',
    )
    .option(
      '--upstream-watermark <file>',
      "engine-native mode: the upstream engine marks its own output with this key (a tracemark key its processor uses, or a vLLM, transformers, SynthID or SGLang key from `tracemark keygen`); the gateway streams the engine's completions through, records them, and refuses to start unless they carry the mark (TRACEMARK_UPSTREAM_WATERMARK)",
    )
    .option(
      '--account-keys <mode>',
      "off, account (each account's output under its own sub-key of the serving key) or cohort:N (TRACEMARK_ACCOUNT_KEYS; default off; see docs/decisions/2026-12-04-stealing.md)",
    )
    .option('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent (TRACEMARK_LOG_LEVEL)')
    .option(
      '--monitor',
      'extraction monitoring: per-account features, account clusters, GET /v1/admin/risk, input and output checks (TRACEMARK_MONITOR; default on)',
    )
    .option('--no-monitor', 'no monitoring, screening or audit, and no monitor events stored')
    .option(
      '--monitor-mmd <file>',
      "test each account's recent prompts against your own benign traffic: a calibration from `tracemark monitor --issued … --calibrate-mmd FILE` (TRACEMARK_MONITOR_MMD; default off)",
    )
    .option(
      '--input-policy <policy>',
      'prompts that look like injections: flag, redact or refuse (TRACEMARK_INPUT_POLICY; default flag)',
    )
    .option(
      '--output-policy <policy>',
      'secrets and personal data in outputs: flag, redact or refuse; streams are flagged only (TRACEMARK_OUTPUT_POLICY; default flag)',
    )
    .option(
      '--cluster-limits',
      'accounts the monitor links into one cluster share one rate limit and daily quota (TRACEMARK_CLUSTER_LIMITS; default on)',
    )
    .option('--no-cluster-limits', 'every key keeps its own limits, linked or not')
    .option(
      '--throttled-rate-limit-per-minute <n>',
      'requests per minute of an account an admin throttled (TRACEMARK_THROTTLED_RATE_LIMIT_PER_MINUTE; default 10)',
      parseNumber('--throttled-rate-limit-per-minute', 1, 10_000_000, true),
    )
    .addHelpText(
      'after',
      '\nNeeds the package @tracemark/gateway, installed beside the CLI (it brings native modules).\nAlso read from the environment: DATABASE_URL (PostgreSQL instead of SQLite), REDIS_URL (shared rate\nlimits and quotas) and the TRACEMARK_* settings listed in apps/gateway/README.md.\nExit codes: 0 closed; 2 usage or configuration (also: the upstream engine’s completions do not carry\nthe mark of --upstream-watermark; an engine’s key given as --key); 3 cannot listen (a port in use is\nreported before the model loads), storage (a database that cannot be opened or reached) or model errors.',
    )
    .action(async (options: ServeOptions) => {
      await runServe(options, io);
      setExit(EXIT.ok);
    });
}
