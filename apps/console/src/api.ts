/**
 * The gateway's API as the console uses it: `@tracemark/client` against this page's own origin, the API key
 * held by the client (in memory only, sent in the Authorization header only), errors turned into plain words.
 */
import {
  CLIENT_ERROR_CODES,
  createClient,
  type Identity,
  isTracemarkApiError,
  type ScanRequest,
  type ScanResponse,
  type ServiceKeys,
  TracemarkApiError,
  type VerifyResponse,
} from '@tracemark/client';

export type {
  DetectionVerdict,
  EngineKeyScan,
  Identity,
  ScanRequest,
  ScanResponse,
  ScanVerdict,
  ServiceKeys,
  TracemarkKeyScan,
  VerifyResponse,
} from '@tracemark/client';
export { isEngineKeyScan } from '@tracemark/client';

/** A failed call: status 0 when the gateway could not be reached at all. */
export { TracemarkApiError as ApiError };

/** Scans and verifications of large texts take a while on a busy gateway. */
const TIMEOUT_MS = 120_000;

/** The calls the console makes; the key never leaves the client except in the Authorization header. */
export interface Gateway {
  whoami(): Promise<Identity>;
  verify(text: string): Promise<VerifyResponse>;
  scan(request: ScanRequest): Promise<ScanResponse>;
}

/** A gateway whose every call is refused: for a key that cannot even be sent (spaces, control characters). */
function refusedGateway(): Gateway {
  const refuse = (endpoint: string) =>
    Promise.reject(
      new TracemarkApiError('the key contains spaces or control characters', {
        status: 0,
        code: 'TM_ERR_INVALID_API_KEY',
        endpoint,
      }),
    );
  return {
    whoami: () => refuse('GET /v1/whoami'),
    verify: () => refuse('POST /v1/verify'),
    scan: () => refuse('POST /v1/scan'),
  };
}

export function connect(key: string): Gateway {
  let client: ReturnType<typeof createClient>;
  try {
    client = createClient({ baseUrl: window.location.origin, apiKey: key, timeoutMs: TIMEOUT_MS });
  } catch {
    return refusedGateway();
  }
  return {
    whoami: () => client.whoami(),
    verify: (text) => client.verify(text),
    scan: (request) => client.scan(request),
  };
}

/** The service's published signing keys (public, no API key). */
export function fetchServiceKeys(): Promise<ServiceKeys> {
  return createClient({ baseUrl: window.location.origin, timeoutMs: TIMEOUT_MS }).serviceKeys();
}

export interface Explained {
  readonly title: string;
  readonly detail: string;
  /** The key itself is refused: the console signs out. */
  readonly signOut: boolean;
}

/** Any error, in plain words for the person at the page. */
export function explainError(error: unknown): Explained {
  if (!isTracemarkApiError(error)) {
    return {
      title: 'Something went wrong in this page',
      detail: error instanceof Error ? error.message : String(error),
      signOut: false,
    };
  }
  const retry =
    error.retryAfterSeconds === null ? '' : ` Try again in ${Math.ceil(error.retryAfterSeconds)} seconds.`;
  switch (error.code) {
    case CLIENT_ERROR_CODES.network:
      return {
        title: 'The gateway cannot be reached',
        detail:
          'It may be stopped, restarting, or this computer may be offline. Check that the gateway is running (tracemark serve) and try again.',
        signOut: false,
      };
    case CLIENT_ERROR_CODES.timeout:
      return {
        title: 'The gateway did not answer in time',
        detail: `No answer came within ${TIMEOUT_MS / 1000} seconds. It may be busy; try again, or verify large texts with tracemark verify.`,
        signOut: false,
      };
    case CLIENT_ERROR_CODES.badResponse:
      return {
        title: 'Something between this page and the gateway failed',
        detail: `The answer was not the gateway’s (${error.message}). A proxy in between may be misconfigured.`,
        signOut: false,
      };
    case 'TM_ERR_MISSING_API_KEY':
    case 'TM_ERR_INVALID_API_KEY':
      return {
        title: 'This API key is not valid',
        detail:
          'The gateway does not recognise it. Check that you pasted the whole key: it starts with tm_live_ or tm_dev_. A key is shown only once, when it is created; an administrator can create a new one.',
        signOut: true,
      };
    case 'TM_ERR_API_KEY_REVOKED':
      return {
        title: 'This API key has been revoked',
        detail: 'An administrator withdrew it. Ask for a new key with the verify scope.',
        signOut: true,
      };
    case 'TM_ERR_API_KEY_EXPIRED':
      return {
        title: 'This API key has expired',
        detail: 'Ask an administrator for a new key with the verify scope.',
        signOut: true,
      };
    case 'TM_ERR_SCOPE':
      return {
        title: 'This API key cannot verify text',
        detail:
          'It is valid, but lacks the "verify" scope. Ask an administrator for a key created with it (tracemark keys create --scopes verify).',
        signOut: true,
      };
    case 'TM_ERR_RATE_LIMITED':
    case 'TM_ERR_QUOTA_EXCEEDED':
      return {
        title: 'Too many requests',
        detail: `The gateway says: ${error.message}.${retry}`,
        signOut: false,
      };
    case 'TM_ERR_BODY_TOO_LARGE':
      return {
        title: 'Too large for the gateway',
        detail: `The gateway says: ${error.message}.`,
        signOut: false,
      };
  }
  if (error.status === 404) {
    return {
      title: 'This gateway does not offer this',
      detail: `It answered "${error.message}". It may be an older version.`,
      signOut: false,
    };
  }
  if (error.status >= 400 && error.status < 500) {
    return { title: 'The gateway refused the request', detail: `It says: ${error.message}.`, signOut: false };
  }
  return {
    title: 'The gateway had a problem',
    detail: `It answered ${error.status} (${error.code}): ${error.message}.${retry || ' Try again in a moment.'}`,
    signOut: false,
  };
}
