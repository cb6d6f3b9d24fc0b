/**
 * Everything the gateway needs before it can serve: the data directory, the server secret, the watermark key,
 * the issuance log's signing key (which must be the one the database's log was signed with),
 * storage (migrated), Redis, the backend (an upstream is probed and refused if it cannot be watermarked), and
 * on a fresh store a development API key, saved 0600 under the data directory and shown once.
 */

import { join } from 'node:path';
import { deriveSubkey, type WatermarkKey } from '@tracemark/core';
import {
  type AnyWatermarkKey,
  createTextDetector,
  foreignSchemeName,
  InputError,
  isForeignKey,
  readKeyFile,
} from '@tracemark/detection';
import { getTokenizer, isTokenizerId } from '@tracemark/tokenizers';
import { Redis } from 'ioredis';
import { createAccountKeys, parseAccountKeyMode } from './account-keys.ts';
import { createEmbeddedBackend } from './backends/embedded.ts';
import { createThreadedEmbeddedBackend } from './backends/threaded-embedded.ts';
import type { Backend } from './backends/types.ts';
import { createUpstreamBackend } from './backends/upstream.ts';
import { ConfigError, type GatewayConfig, StorageOpenError } from './config.ts';
import type { EngineNativeServices, GatewayServices } from './context.ts';
import {
  DEV_API_KEY_FILE,
  ensureDataDir,
  loadOrCreateLogSigningKey,
  loadOrCreateServerSecret,
  loadOrCreateWatermarkKey,
  writeSecretFile,
} from './data-dir.ts';
import { createApiKey } from './key-management.ts';
import { readMmdCalibration } from './monitoring/mmd-file.ts';
import { openStorage } from './storage/index.ts';
import type { GatewayStorage } from './storage/types.ts';
import { createEngineUpstream } from './upstream-mark/engine-upstream.ts';
import { checkUpstreamMark, MARK_CHECK_FPR } from './upstream-mark/self-check.ts';

export interface FirstStart {
  /** Shown once to the operator: the development API key (also saved 0600 under the data directory). */
  readonly devApiKey: string | null;
  readonly devApiKeyFile: string | null;
  readonly watermarkKeyCreated: boolean;
  readonly watermarkKeyFile: string;
  readonly logSigningKeyCreated: boolean;
  readonly logSigningKeyFile: string;
}

export interface PreparedGateway {
  readonly services: GatewayServices;
  readonly firstStart: FirstStart;
  /** Closes storage, Redis and the backend. */
  close(): Promise<void>;
}

export async function connectRedis(url: string): Promise<Redis> {
  const redis = new Redis(url, {
    lazyConnect: true,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: false,
    connectTimeout: 5000,
  });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    await redis.ping();
  } catch (error) {
    redis.disconnect();
    throw new ConfigError(`cannot connect to Redis at REDIS_URL (${(error as Error).message})`);
  }
  return redis;
}

/** The key of `--upstream-watermark`, of any scheme tracemark reads; errors name the file, never the secret. */
async function readUpstreamWatermarkKey(path: string): Promise<AnyWatermarkKey> {
  try {
    return await readKeyFile(path, { accept: 'any' });
  } catch (error) {
    if (error instanceof InputError) throw new ConfigError(`--upstream-watermark: ${error.message}`);
    throw error;
  }
}

/** A key's scheme as reports name it (`tracemark:lefthash`, `vllm:gumbel`). */
export function schemeNameOf(key: AnyWatermarkKey): string {
  return isForeignKey(key) ? foreignSchemeName(key) : `tracemark:${(key as WatermarkKey).scheme.name}`;
}

/** Opens what the configuration names. Partially opened resources are closed on failure. */
export async function prepareGateway(config: GatewayConfig): Promise<PreparedGateway> {
  // Read first: a calibration that cannot be used stops the start before anything is opened.
  const mmd = config.monitorMmdFile === null ? null : await readMmdCalibration(config.monitorMmdFile);
  await ensureDataDir(config.dataDir);
  const { secret: serverSecret } = await loadOrCreateServerSecret(config.dataDir);
  const engineNative = config.upstreamWatermarkFile !== null;
  // Engine-native: the engine's key is the serving key (config.ts refuses --key and --key-epoch with it).
  const loaded: { key: AnyWatermarkKey; path: string; created: boolean } = engineNative
    ? {
        key: await readUpstreamWatermarkKey(config.upstreamWatermarkFile!),
        path: config.upstreamWatermarkFile!,
        created: false,
      }
    : await loadOrCreateWatermarkKey(config.dataDir, config.keyFile);
  const watermarkKey: AnyWatermarkKey =
    config.keyEpoch === null
      ? loaded.key
      : deriveSubkey(loaded.key as WatermarkKey, `epoch/${config.keyEpoch}`);
  const logKey = await loadOrCreateLogSigningKey(config.dataDir, config.logOrigin);
  if (config.logOrigin !== null && logKey.key.name !== config.logOrigin) {
    throw new ConfigError(
      `--log-origin (TRACEMARK_LOG_ORIGIN) is "${config.logOrigin}", but the issuance log's signing key at ${logKey.path} was created for "${logKey.key.name}"; the origin is fixed when the key is created`,
    );
  }
  if (!isTokenizerId(watermarkKey.tokenizer)) {
    throw new ConfigError(
      engineNative
        ? `--upstream-watermark: the key ${watermarkKey.keyId} is bound to tokenizer "${watermarkKey.tokenizer}", which tracemark does not ship; engine-native mode tokenizes the engine's text to record and detect it`
        : `the watermark key is bound to an unknown tokenizer "${watermarkKey.tokenizer}"`,
    );
  }
  const opened: { close(): Promise<void> | void }[] = [];
  try {
    let storage: GatewayStorage;
    try {
      storage = await openStorage({ databaseUrl: config.databaseUrl, dataDir: config.dataDir });
    } catch (error) {
      throw new StorageOpenError(
        `cannot open the ${config.databaseUrl === null ? 'SQLite database' : 'PostgreSQL database at DATABASE_URL'} (${(error as Error).message})`,
      );
    }
    opened.push(storage);
    const now = new Date().toISOString();
    const logKeys = await storage.logKeys();
    if (logKeys.length > 0 && !logKeys.includes(logKey.key.verifierKey)) {
      throw new ConfigError(
        `the issuance log in this database is signed by ${logKeys[0]!.split('+').slice(0, 2).join('+')}, not by ${logKey.key.keyId} (${logKey.path}); gateways sharing a database must share the data directory's log-signing-key file`,
      );
    }
    await storage.addLogKey(logKey.key.verifierKey, now);
    const redis = config.redisUrl === null ? null : await connectRedis(config.redisUrl);
    if (redis !== null) opened.push({ close: () => void redis.disconnect() });
    const tokenizer = getTokenizer(watermarkKey.tokenizer);
    let engine: EngineNativeServices | null = null;
    if (engineNative) {
      const mark = { keyId: watermarkKey.keyId, scheme: schemeNameOf(watermarkKey) };
      const upstream = await createEngineUpstream({
        url: config.upstreamUrl!,
        apiKey: config.upstreamApiKey,
        model: config.upstreamModel,
        api: config.upstreamApi,
        timeoutMs: config.upstreamTimeoutMs,
        tokenizer,
        mark,
      });
      opened.push(upstream);
      // Before listening: the engine's completions must carry this key's mark.
      const detector = createTextDetector({ keys: [watermarkKey], fpr: MARK_CHECK_FPR });
      const startupCheck = await checkUpstreamMark({
        upstream,
        detect: (ids) => detector.detectTokens(ids),
        maxTokens: config.upstreamMarkCheckTokens,
        mark,
      });
      engine = { upstream, engineKey: isForeignKey(watermarkKey), startupCheck };
    }
    const backend: Backend =
      engine !== null
        ? engine.upstream
        : config.upstreamUrl === null
          ? config.generationThreads > 0
            ? await createThreadedEmbeddedBackend({
                tokenizerId: watermarkKey.tokenizer,
                modelId: config.embeddedModelId,
                threads: config.generationThreads,
                // before the server's logger exists; rare (a thread crashed), and the message holds no secret
                onThreadError: (error) => process.emitWarning(error.message, 'GenerationThreadWarning'),
              })
            : await createEmbeddedBackend({
                tokenizerId: watermarkKey.tokenizer,
                modelId: config.embeddedModelId,
              })
          : await createUpstreamBackend({
              url: config.upstreamUrl,
              apiKey: config.upstreamApiKey,
              model: config.upstreamModel,
              api: config.upstreamApi,
              topLogprobs: config.upstreamTopLogprobs,
              draftTokens: config.upstreamDraftTokens,
              draftChoices: config.upstreamDraftChoices,
              streaming: config.upstreamStreaming,
              timeoutMs: config.upstreamTimeoutMs,
              tokenizer,
            });
    if (engine === null) opened.push(backend);
    // Registered once the backend is up (in engine-native mode: once the engine's mark was found).
    await storage.registerWatermarkEpoch(watermarkKey.keyId, config.keyEpoch, now);

    let devApiKey: string | null = null;
    let devApiKeyFile: string | null = null;
    if ((await storage.countApiKeys()) === 0) {
      const created = await createApiKey(storage, serverSecret, {
        scopes: ['generate', 'verify', 'admin'],
        name: 'development key (created on first start)',
        account: 'dev',
        environment: 'dev',
      });
      devApiKey = created.key;
      devApiKeyFile = join(config.dataDir, DEV_API_KEY_FILE);
      await writeSecretFile(devApiKeyFile, `${created.key}\n`).catch(() => {
        devApiKeyFile = null;
      });
    }
    if (config.issuanceTokenRetentionDays > 0) {
      const before = new Date(Date.now() - config.issuanceTokenRetentionDays * 86_400_000).toISOString();
      await storage.pruneIssuedTokens(before);
    }
    const accountKeys = createAccountKeys({
      mode: parseAccountKeyMode(config.accountKeys)!,
      servingKey: watermarkKey as WatermarkKey,
      keyEpoch: config.keyEpoch,
      specialTokenIds: backend.tokenizer.specialTokenIds,
      register: (keyId, keyEpoch) =>
        storage.registerWatermarkEpoch(keyId, keyEpoch, new Date().toISOString()),
    });
    const services: GatewayServices = {
      config,
      storage,
      backend,
      watermarkKey,
      keyEpoch: config.keyEpoch,
      accountKeys,
      rootWatermarkKey: loaded.key,
      logSigningKey: logKey.key,
      serverSecret,
      redis,
      engineNative: engine,
      ...(mmd === null ? {} : { monitorOptions: { mmd } }),
    };
    return {
      services,
      firstStart: {
        devApiKey,
        devApiKeyFile,
        watermarkKeyCreated: loaded.created,
        watermarkKeyFile: loaded.path,
        logSigningKeyCreated: logKey.created,
        logSigningKeyFile: logKey.path,
      },
      close: async () => {
        for (const resource of opened.reverse()) await resource.close();
      },
    };
  } catch (error) {
    for (const resource of opened.reverse()) await Promise.resolve(resource.close()).catch(() => undefined);
    throw error;
  }
}
