/** The gateway's configuration: command-line flags over environment variables over defaults. */

import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseAccountKeyMode } from './account-keys.ts';

export type UpstreamApi = 'auto' | 'chat' | 'completions';

/** What a finding of the input screening or the output audit does: record it, redact its span, or refuse. */
export type ContentPolicy = 'flag' | 'redact' | 'refuse';

export interface GatewayConfig {
  readonly port: number;
  readonly host: string;
  /** Holds the server secret, the watermark key, the development API key and the SQLite file. */
  readonly dataDir: string;
  /** A key file from `tracemark keygen`; null: the gateway's own key under the data directory. */
  readonly keyFile: string | null;
  /** Epoch label: generation uses the sub-key `epoch/<label>` of the key (spec §2.2); null: the key itself. */
  readonly keyEpoch: string | null;
  /**
   * `off` (every account under the serving key), `account` (each account under its own sub-key) or
   * `cohort:N` (accounts in N keyed cohorts): see account-keys.ts and docs/decisions/2026-12-04-stealing.md.
   */
  readonly accountKeys: string;
  /**
   * Origin (C2SP checkpoint identity) of the issuance log, used when its signing key is created on first
   * start; null: `tracemark-gateway/<random hex>`.
   */
  readonly logOrigin: string | null;
  /** OpenAI-compatible upstream base URL (…/v1); null: the embedded n-gram model. */
  readonly upstreamUrl: string | null;
  /** Bearer token for the upstream; never logged. */
  readonly upstreamApiKey: string | null;
  /** Upstream model to drive; null: the first one the upstream lists. */
  readonly upstreamModel: string | null;
  readonly upstreamApi: UpstreamApi;
  /** The most top logprobs asked of the upstream per token; start-up probes down from it (20, 10, 5, 3, 2) to what the upstream accepts. */
  readonly upstreamTopLogprobs: number;
  /** Draft tokens requested per upstream round trip; 0 samples every token locally (one round trip each). */
  readonly upstreamDraftTokens: number;
  /** Independent samples asked per upstream call for drafting (`n`), when the upstream honours it. */
  readonly upstreamDraftChoices: number;
  /**
   * Token driving streams each round trip's samples where the upstream streams (probed at start-up): the walk
   * reads each depth as it is decoded and cancels the request once done with it. false: whole answers.
   */
  readonly upstreamStreaming: boolean;
  /** One upstream round trip longer than this is a 504 (engine-native: the wait for each chunk). */
  readonly upstreamTimeoutMs: number;
  /**
   * Engine-native mode: the key file of the mark the upstream engine embeds itself (a tracemark key its
   * processor uses, or a vLLM, transformers, SynthID or SGLang key). The gateway then streams the engine's
   * completions through, records them, and detects, verifies and scans under this key. null: the gateway
   * samples and marks every token itself.
   */
  readonly upstreamWatermarkFile: string | null;
  /** Engine-native: the most completion tokens the start-up check samples to confirm the mark. */
  readonly upstreamMarkCheckTokens: number;
  /** Engine-native: the fraction of live completions detected in the background (0 turns it off). */
  readonly upstreamMarkSampleRate: number;
  /** Engine-native: completion tokens pooled by the live check (a sliding window of recent completions). */
  readonly upstreamMarkWindowTokens: number;
  readonly databaseUrl: string | null;
  readonly redisUrl: string | null;
  readonly bodyLimitBytes: number;
  /** Deadline of a whole completion (all choices); longer is a 504. */
  readonly completionTimeoutMs: number;
  readonly maxTokensLimit: number;
  readonly defaultMaxTokens: number;
  readonly maxChoices: number;
  /**
   * Log-probabilities a response without `stream` may carry (max tokens × choices × (top + 1)): the response is
   * built and serialized on the event loop's thread, and 6 MB of them paused it for 0.5 s, 50 MB for 6 s.
   */
  readonly maxLogprobEntries: number;
  readonly maxPromptTokens: number;
  /** Requests per minute per API key (a key may carry its own). */
  readonly rateLimitPerMinute: number;
  /** Failed authentications per minute per client address. */
  readonly authFailuresPerMinute: number;
  /** Completion tokens per UTC day per API key (a key may carry its own). */
  readonly dailyTokenQuota: number;
  /** Days to keep the output tokens of issued completions; hashes and counts are kept forever. 0: never store tokens. */
  readonly issuanceTokenRetentionDays: number;
  readonly logLevel: string;
  /**
   * Worker threads that tokenize and score client text (detect, verify, scan, long prompts), so that no
   * request holds the event loop; 0: one fewer than the cores, at least 2.
   */
  readonly workerThreads: number;
  /**
   * Threads on which the embedded model generates (each loads the model); 0: the event loop's own thread,
   * between the gateway's other work. An upstream backend does not use them.
   */
  readonly generationThreads: number;
  /** Milliseconds of work one request may use in a worker; longer is a 422 TM_ERR_WORK_BUDGET. */
  readonly workBudgetMs: number;
  /** Requests waiting for a worker; more, or one that waits longer than the work budget, is a 503. */
  readonly workQueueLimit: number;
  /** Requests per minute per client address to the public routes (log, keys, OpenAPI, console). */
  readonly publicRateLimitPerMinute: number;
  /** The id clients pass as `model` for the embedded backend. */
  readonly embeddedModelId: string;
  readonly trustProxy: boolean;
  /**
   * Extraction monitoring (@tracemark/monitoring): per-account features of every completion, account clusters,
   * GET /v1/admin/risk and the policy actions. Off: no screening, no audit, no monitor events.
   */
  readonly monitor: boolean;
  /** Prompt-injection screening of inputs: flag (record), redact (replace the span) or refuse (400). */
  readonly inputPolicy: ContentPolicy;
  /** Audit of outputs for secrets and personal data (non-streamed; streams are flagged only). */
  readonly outputPolicy: ContentPolicy;
  /** Accounts the monitor links into one cluster share one rate limit and one daily quota. */
  readonly clusterLimits: boolean;
  /**
   * The monitor's MMD test of each account's recent prompts against the provider's own benign traffic: a
   * calibration file from `tracemark monitor --issued … --calibrate-mmd FILE`. null: the test is off.
   */
  readonly monitorMmdFile: string | null;
  /** Requests per minute of an account under the `throttle` action (lower than its own limit). */
  readonly throttledRateLimitPerMinute: number;
}

export type GatewayConfigInput = { -readonly [K in keyof GatewayConfig]?: GatewayConfig[K] | undefined };

/** A configuration value that cannot be used; the message names the flag or variable. */
export class ConfigError extends Error {
  override readonly name: string = 'ConfigError';
}

/**
 * The gateway's database could not be opened (SQLite, or PostgreSQL at DATABASE_URL): valid settings that
 * do not make a database reachable, a storage error rather than a usage error. A ConfigError still, for
 * callers that catch those.
 */
export class StorageOpenError extends ConfigError {
  override readonly name: string = 'StorageOpenError';
}

export const DEFAULT_PORT = 8787;
export const EMBEDDED_MODEL_ID = 'tracemark-ngram';

/** `$TRACEMARK_DATA_DIR`, else `$XDG_DATA_HOME/tracemark`, else `~/.local/share/tracemark`. */
export function defaultDataDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.TRACEMARK_DATA_DIR) return resolve(env.TRACEMARK_DATA_DIR);
  return join(env.XDG_DATA_HOME || join(homedir(), '.local', 'share'), 'tracemark');
}

/** Environment variables the gateway reads, for the README and `tracemark serve --help`. */
export const ENVIRONMENT_VARIABLES: Readonly<Record<string, string>> = {
  TRACEMARK_PORT: 'port',
  TRACEMARK_HOST: 'host',
  TRACEMARK_DATA_DIR: 'dataDir',
  TRACEMARK_KEY_FILE: 'keyFile',
  TRACEMARK_KEY_EPOCH: 'keyEpoch',
  TRACEMARK_ACCOUNT_KEYS: 'accountKeys',
  TRACEMARK_LOG_ORIGIN: 'logOrigin',
  TRACEMARK_UPSTREAM_URL: 'upstreamUrl',
  TRACEMARK_UPSTREAM_API_KEY: 'upstreamApiKey',
  TRACEMARK_UPSTREAM_MODEL: 'upstreamModel',
  TRACEMARK_UPSTREAM_API: 'upstreamApi',
  TRACEMARK_UPSTREAM_TOP_LOGPROBS: 'upstreamTopLogprobs',
  TRACEMARK_UPSTREAM_DRAFT_TOKENS: 'upstreamDraftTokens',
  TRACEMARK_UPSTREAM_DRAFT_CHOICES: 'upstreamDraftChoices',
  TRACEMARK_UPSTREAM_STREAMING: 'upstreamStreaming',
  TRACEMARK_UPSTREAM_TIMEOUT_MS: 'upstreamTimeoutMs',
  TRACEMARK_UPSTREAM_WATERMARK: 'upstreamWatermarkFile',
  TRACEMARK_UPSTREAM_MARK_CHECK_TOKENS: 'upstreamMarkCheckTokens',
  TRACEMARK_UPSTREAM_MARK_SAMPLE_RATE: 'upstreamMarkSampleRate',
  TRACEMARK_UPSTREAM_MARK_WINDOW_TOKENS: 'upstreamMarkWindowTokens',
  DATABASE_URL: 'databaseUrl',
  REDIS_URL: 'redisUrl',
  TRACEMARK_BODY_LIMIT_BYTES: 'bodyLimitBytes',
  TRACEMARK_COMPLETION_TIMEOUT_MS: 'completionTimeoutMs',
  TRACEMARK_MAX_TOKENS_LIMIT: 'maxTokensLimit',
  TRACEMARK_DEFAULT_MAX_TOKENS: 'defaultMaxTokens',
  TRACEMARK_MAX_CHOICES: 'maxChoices',
  TRACEMARK_MAX_LOGPROB_ENTRIES: 'maxLogprobEntries',
  TRACEMARK_MAX_PROMPT_TOKENS: 'maxPromptTokens',
  TRACEMARK_RATE_LIMIT_PER_MINUTE: 'rateLimitPerMinute',
  TRACEMARK_AUTH_FAILURES_PER_MINUTE: 'authFailuresPerMinute',
  TRACEMARK_DAILY_TOKEN_QUOTA: 'dailyTokenQuota',
  TRACEMARK_ISSUANCE_TOKEN_RETENTION_DAYS: 'issuanceTokenRetentionDays',
  TRACEMARK_LOG_LEVEL: 'logLevel',
  TRACEMARK_WORKER_THREADS: 'workerThreads',
  TRACEMARK_GENERATION_THREADS: 'generationThreads',
  TRACEMARK_WORK_BUDGET_MS: 'workBudgetMs',
  TRACEMARK_WORK_QUEUE_LIMIT: 'workQueueLimit',
  TRACEMARK_PUBLIC_RATE_LIMIT_PER_MINUTE: 'publicRateLimitPerMinute',
  TRACEMARK_TRUST_PROXY: 'trustProxy',
  TRACEMARK_MONITOR: 'monitor',
  TRACEMARK_INPUT_POLICY: 'inputPolicy',
  TRACEMARK_OUTPUT_POLICY: 'outputPolicy',
  TRACEMARK_CLUSTER_LIMITS: 'clusterLimits',
  TRACEMARK_MONITOR_MMD: 'monitorMmdFile',
  TRACEMARK_THROTTLED_RATE_LIMIT_PER_MINUTE: 'throttledRateLimitPerMinute',
};

const INTEGER_RANGES: Readonly<Partial<Record<keyof GatewayConfig, readonly [number, number]>>> = {
  port: [0, 65535],
  upstreamTopLogprobs: [1, 20],
  upstreamDraftTokens: [0, 64],
  upstreamDraftChoices: [1, 256],
  upstreamTimeoutMs: [1, 3_600_000],
  upstreamMarkCheckTokens: [64, 1_000_000],
  upstreamMarkWindowTokens: [64, 10_000_000],
  bodyLimitBytes: [1024, 64 * 1024 * 1024],
  completionTimeoutMs: [1, 3_600_000],
  maxTokensLimit: [1, 1_000_000],
  defaultMaxTokens: [1, 1_000_000],
  maxChoices: [1, 128],
  maxLogprobEntries: [1, 100_000_000],
  maxPromptTokens: [1, 10_000_000],
  rateLimitPerMinute: [1, 10_000_000],
  authFailuresPerMinute: [1, 10_000_000],
  dailyTokenQuota: [1, Number.MAX_SAFE_INTEGER],
  issuanceTokenRetentionDays: [0, 100_000],
  workerThreads: [0, 64],
  generationThreads: [0, 64],
  workBudgetMs: [10, 600_000],
  workQueueLimit: [0, 100_000],
  publicRateLimitPerMinute: [1, 10_000_000],
  throttledRateLimitPerMinute: [1, 10_000_000],
};

const DEFAULTS: Omit<GatewayConfig, 'dataDir'> = {
  port: DEFAULT_PORT,
  host: '127.0.0.1',
  keyFile: null,
  keyEpoch: null,
  accountKeys: 'off',
  logOrigin: null,
  upstreamUrl: null,
  upstreamApiKey: null,
  upstreamModel: null,
  upstreamApi: 'auto',
  upstreamTopLogprobs: 20,
  upstreamDraftTokens: 8,
  upstreamDraftChoices: 16,
  upstreamStreaming: true,
  upstreamTimeoutMs: 30_000,
  upstreamWatermarkFile: null,
  upstreamMarkCheckTokens: 4096,
  upstreamMarkSampleRate: 0.1,
  upstreamMarkWindowTokens: 8192,
  databaseUrl: null,
  redisUrl: null,
  bodyLimitBytes: 1024 * 1024,
  completionTimeoutMs: 120_000,
  maxTokensLimit: 4096,
  defaultMaxTokens: 256,
  maxChoices: 8,
  maxLogprobEntries: 65_536,
  maxPromptTokens: 32_768,
  rateLimitPerMinute: 600,
  authFailuresPerMinute: 30,
  dailyTokenQuota: 1_000_000,
  issuanceTokenRetentionDays: 365,
  logLevel: 'info',
  workerThreads: 0,
  generationThreads: 1,
  workBudgetMs: 10_000,
  workQueueLimit: 64,
  publicRateLimitPerMinute: 300,
  embeddedModelId: EMBEDDED_MODEL_ID,
  trustProxy: false,
  monitor: true,
  inputPolicy: 'flag',
  outputPolicy: 'flag',
  clusterLimits: true,
  monitorMmdFile: null,
  throttledRateLimitPerMinute: 10,
};

const CONTENT_POLICIES: readonly ContentPolicy[] = ['flag', 'redact', 'refuse'];
const BOOLEAN_FIELDS: ReadonlySet<keyof GatewayConfig> = new Set([
  'trustProxy',
  'monitor',
  'clusterLimits',
  'upstreamStreaming',
]);

const LOG_LEVELS = new Set(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

/** Flags win over environment variables, which win over defaults. Throws ConfigError naming the setting. */
export function resolveConfig(
  flags: GatewayConfigInput = {},
  env: NodeJS.ProcessEnv = process.env,
): GatewayConfig {
  const merged: Record<string, unknown> = { ...DEFAULTS, dataDir: defaultDataDir(env) };
  for (const [variable, field] of Object.entries(ENVIRONMENT_VARIABLES)) {
    const value = env[variable];
    if (value !== undefined && value !== '')
      merged[field] = parseValue(field as keyof GatewayConfig, value, variable);
  }
  for (const [field, value] of Object.entries(flags)) {
    if (value !== undefined) merged[field] = value;
  }
  for (const [field, [min, max]] of Object.entries(INTEGER_RANGES) as [
    keyof GatewayConfig,
    [number, number],
  ][]) {
    const value = merged[field];
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
      throw new ConfigError(
        `${describeConfigField(field)} must be an integer from ${min} to ${max}, got ${String(value)}`,
      );
    }
  }
  if (merged.defaultMaxTokens! > merged.maxTokensLimit!) merged.defaultMaxTokens = merged.maxTokensLimit;
  if (!['auto', 'chat', 'completions'].includes(merged.upstreamApi as string)) {
    throw new ConfigError(`${describeConfigField('upstreamApi')} must be auto, chat or completions`);
  }
  const rate = merged.upstreamMarkSampleRate;
  if (typeof rate !== 'number' || !(rate >= 0 && rate <= 1)) {
    throw new ConfigError(
      `${describeConfigField('upstreamMarkSampleRate')} must be a number from 0 to 1, got ${String(rate)}`,
    );
  }
  if (merged.upstreamWatermarkFile !== null) {
    // The engine marks with the key file's key as it is: no epochs, and no second key to sample with.
    if (merged.upstreamUrl === null) {
      throw new ConfigError(
        `${describeConfigField('upstreamWatermarkFile')} needs ${describeConfigField('upstreamUrl')}: the engine that embeds the mark`,
      );
    }
    if (merged.keyFile !== null) {
      throw new ConfigError(
        `${describeConfigField('keyFile')} and ${describeConfigField('upstreamWatermarkFile')} cannot be combined: with an engine that marks its own output, the engine's key is the serving key`,
      );
    }
    if (merged.keyEpoch !== null) {
      throw new ConfigError(
        `${describeConfigField('keyEpoch')} does not apply with ${describeConfigField('upstreamWatermarkFile')}: the engine marks with the key file's key, not an epoch sub-key`,
      );
    }
    if (merged.accountKeys !== 'off') {
      throw new ConfigError(
        `${describeConfigField('accountKeys')} does not apply with ${describeConfigField('upstreamWatermarkFile')}: the engine marks every output with its own key`,
      );
    }
  }
  if (parseAccountKeyMode(String(merged.accountKeys)) === null) {
    throw new ConfigError(
      `${describeConfigField('accountKeys')} must be off, account or cohort:N (N from 1 to 4294967295), got ${String(merged.accountKeys)}`,
    );
  }
  for (const field of ['inputPolicy', 'outputPolicy'] as const) {
    if (!CONTENT_POLICIES.includes(merged[field] as ContentPolicy)) {
      throw new ConfigError(
        `${describeConfigField(field)} must be flag, redact or refuse, got ${String(merged[field])}`,
      );
    }
  }
  if (!LOG_LEVELS.has(merged.logLevel as string)) {
    throw new ConfigError(`${describeConfigField('logLevel')} must be one of ${[...LOG_LEVELS].join(', ')}`);
  }
  if (merged.upstreamUrl !== null)
    merged.upstreamUrl = checkUrl('upstreamUrl', merged.upstreamUrl as string, ['http:', 'https:']);
  if (merged.redisUrl !== null) checkUrl('redisUrl', merged.redisUrl as string, ['redis:', 'rediss:']);
  if (merged.databaseUrl !== null)
    checkUrl('databaseUrl', merged.databaseUrl as string, ['postgres:', 'postgresql:']);
  if (merged.keyEpoch !== null && !/^[\w.:-]{1,64}$/.test(merged.keyEpoch as string)) {
    throw new ConfigError(`${describeConfigField('keyEpoch')} must be 1–64 letters, digits or . _ : -`);
  }
  if (merged.logOrigin !== null && !/^[\x21-\x2a\x2c-\x7e]{1,200}$/.test(merged.logOrigin as string)) {
    throw new ConfigError(
      `${describeConfigField('logOrigin')} must be 1–200 printable ASCII characters, without spaces or '+'`,
    );
  }
  merged.dataDir = resolve(merged.dataDir as string);
  if (merged.monitorMmdFile !== null) merged.monitorMmdFile = resolve(merged.monitorMmdFile as string);
  if (merged.keyFile !== null) merged.keyFile = resolve(merged.keyFile as string);
  if (merged.upstreamWatermarkFile !== null)
    merged.upstreamWatermarkFile = resolve(merged.upstreamWatermarkFile as string);
  return Object.freeze(merged) as unknown as GatewayConfig;
}

/**
 * The settings `tracemark serve` takes as flags (apps/cli/src/commands/serve.ts), by flag; the others are
 * set through their environment variable alone, and a message must not name a flag that does not exist.
 */
const SERVE_FLAGS: Readonly<Partial<Record<keyof GatewayConfig, string>>> = {
  port: '--port',
  host: '--host',
  dataDir: '--data-dir',
  keyFile: '--key',
  accountKeys: '--account-keys',
  logLevel: '--log-level',
  monitor: '--no-monitor',
  monitorMmdFile: '--monitor-mmd',
  clusterLimits: '--no-cluster-limits',
  throttledRateLimitPerMinute: '--throttled-rate-limit-per-minute',
  inputPolicy: '--input-policy',
  outputPolicy: '--output-policy',
  upstreamUrl: '--upstream',
  upstreamWatermarkFile: '--upstream-watermark',
};

export function describeConfigField(field: keyof GatewayConfig): string {
  const variable = Object.entries(ENVIRONMENT_VARIABLES).find(([, name]) => name === field)?.[0];
  const flag = SERVE_FLAGS[field];
  if (flag === undefined) return variable ?? field;
  return variable === undefined ? flag : `${flag} (${variable})`;
}

function parseValue(field: keyof GatewayConfig, value: string, variable: string): unknown {
  if (BOOLEAN_FIELDS.has(field)) {
    if (!['true', 'false', '1', '0'].includes(value))
      throw new ConfigError(`${variable} must be true or false`);
    return value === 'true' || value === '1';
  }
  if (field in INTEGER_RANGES || field === 'upstreamMarkSampleRate') {
    const parsed = Number(value);
    if (value.trim() === '' || !Number.isFinite(parsed))
      throw new ConfigError(`${variable} must be a number, got "${value}"`);
    return parsed;
  }
  return value;
}

function checkUrl(field: keyof GatewayConfig, value: string, protocols: readonly string[]): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError(`${describeConfigField(field)} is not a valid URL`);
  }
  if (!protocols.includes(url.protocol)) {
    throw new ConfigError(`${describeConfigField(field)} must use ${protocols.join(' or ')}`);
  }
  return field === 'upstreamUrl' ? value.replace(/\/+$/, '') : value;
}
