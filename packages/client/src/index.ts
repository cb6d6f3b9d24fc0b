/**
 * `@tracemark/client`: a typed client for the tracemark gateway's HTTP API, over the global fetch (Node 20,
 * browsers). Evidence reports (save, check offline, render as HTML) are in `@tracemark/client/evidence`.
 */
export {
  type ClientOptions,
  createClient,
  DEFAULT_TIMEOUT_MS,
  type RequestOptions,
  type TracemarkAdminApi,
  type TracemarkClient,
} from './client.ts';
export {
  CLIENT_ERROR_CODES,
  isTracemarkApiError,
  TracemarkApiError,
  type TracemarkApiErrorDetails,
} from './errors.ts';
export { isEngineKeyScan } from './scan-keys.ts';
export type {
  ApiKeyInfo,
  ApiKeyScope,
  ConsistencyProof,
  ConsistencyProofRequest,
  CreateApiKeyRequest,
  CreatedApiKey,
  DetectionVerdict,
  DetectKeyResult,
  DetectRequest,
  DetectResponse,
  DetectWindow,
  EngineKeyScan,
  Health,
  Identity,
  InclusionProof,
  InclusionProofRequest,
  IssuanceList,
  IssuanceListRequest,
  IssuanceLogRecord,
  IssuanceMatchSummary,
  LogCheckpoint,
  ScanLocation,
  ScanRequest,
  ScanResponse,
  ScanVerdict,
  ServiceKeys,
  SpoofingResult,
  TextOrTokens,
  TracemarkKeyScan,
  VerifyRequest,
  VerifyResponse,
} from './types.ts';
