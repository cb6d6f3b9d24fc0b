export {
  type ApiKeyInfo,
  type ApiKeyRecord,
  apiKeyIdOf,
  hashApiKey,
  keyState,
  parseScopes,
  SCOPES,
  type Scope,
} from './api-keys.ts';
export {
  type BuildAppOptions,
  buildApp,
  GATEWAY_VERSION,
  type GatewayContext,
  type GatewayServices,
  gatewayPlugin,
  loggerOptions,
} from './app.ts';
export { createEmbeddedBackend } from './backends/embedded.ts';
export type { Backend, ModelInfo } from './backends/types.ts';
export { createUpstreamBackend, type UpstreamOptions } from './backends/upstream.ts';
export { connectRedis, type FirstStart, type PreparedGateway, prepareGateway } from './bootstrap.ts';
export {
  ConfigError,
  DEFAULT_PORT,
  defaultDataDir,
  EMBEDDED_MODEL_ID,
  ENVIRONMENT_VARIABLES,
  type GatewayConfig,
  type GatewayConfigInput,
  resolveConfig,
  StorageOpenError,
} from './config.ts';
export {
  DEV_API_KEY_FILE,
  ensureDataDir,
  loadOrCreateServerSecret,
  SERVER_SECRET_FILE,
  WATERMARK_KEY_FILE,
} from './data-dir.ts';
export { ERROR_CODES, GatewayError, type GatewayErrorCode } from './errors.ts';
export {
  type CreateApiKeyOptions,
  type CreatedApiKey,
  createApiKey,
  listApiKeys,
  revokeApiKey,
} from './key-management.ts';
export {
  mmdCalibrationFromStorage,
  riskReportFromStorage,
  type StoredMmdCalibration,
  type StoredMmdCalibrationOptions,
} from './monitoring/history.ts';
export { CHAT_SEPARATOR, formatChatPrompt } from './prompt.ts';
export { curlExample, type RunningGateway, type StartOptions, startServer } from './server.ts';
export {
  type GatewayStorage,
  type IssuanceInput,
  type IssuanceRecord,
  openPostgresStorage,
  openSqliteStorage,
  openStorage,
  SQLITE_FILE_NAME,
} from './storage/index.ts';
