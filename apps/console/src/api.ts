/**
 * The gateway's API as the console uses it: same origin, the API key in an Authorization header (held by the
 * caller, in memory only), errors turned into plain words.
 */
import type { DsseEnvelope } from '@tracemark/provenance';

export interface Identity {
  readonly id: string;
  readonly name: string;
  readonly account: string;
  readonly scopes: readonly string[];
  readonly expiresAt: string | null;
  readonly watermarkKeyId: string;
}

export interface ServiceKeys {
  readonly logOrigin: string;
  readonly keys: readonly { readonly keyId: string; readonly verifierKey: string }[];
}

export type DetectionVerdict = 'watermarked' | 'not_watermarked' | 'insufficient';

export interface VerifyResponse {
  readonly verdict: DetectionVerdict;
  readonly summary: string;
  readonly detection: {
    readonly keyId: string;
    readonly numTokens: number;
    readonly numScored: number;
    /** null for a key without green lists (Gumbel schemes, engines' keys such as vllm:gumbel). */
    readonly numGreen: number | null;
    readonly z: number;
    readonly log10P: number;
    readonly log10PAdjusted: number;
    readonly keysTested: number;
    readonly fpr: number;
    /** Keys without green lists: the scheme and its score S. */
    readonly scheme?: string;
    readonly score?: number;
  };
  readonly issuance: {
    readonly match: 'exact' | 'near-duplicate';
    readonly recordId: string;
    readonly similarity: number;
    readonly leafIndex: number;
    readonly treeSize: number;
    readonly disclosed: boolean;
  } | null;
  readonly report: DsseEnvelope;
  readonly keyId: string;
  readonly verifierKey: string;
}

export type ScanVerdict = 'radioactive' | 'not_radioactive' | 'insufficient';

export interface ScanPassage {
  readonly start: { readonly document: number; readonly source: string; readonly token: number };
  readonly end: { readonly document: number; readonly source: string; readonly token: number };
  readonly numScored: number;
  readonly numGreen: number;
  readonly log10P: number;
  readonly log10PCorrected: number;
}

export interface ScanKey {
  readonly keyId: string;
  readonly gamma: number;
  readonly numScored: number;
  /** null for a key without green lists (its `score` is given instead). */
  readonly numGreen: number | null;
  readonly greenFraction: number | null;
  /** Keys without green lists: the scheme and the corpus-wide score. */
  readonly scheme?: string;
  readonly score?: number;
  readonly effect: number;
  readonly z: number;
  readonly log10P: number;
  readonly log10PAdjusted: number;
  /** null when the null distribution is exact (engines' keys): no fake keys are run. */
  readonly calibration: {
    readonly fakeKeys: number;
    readonly seed: string;
    readonly rank: number;
    readonly empiricalPValue: number;
    readonly ksStatistic: number;
    readonly ksPValue: number;
    readonly uniform: boolean | null;
  } | null;
  readonly doseUpperBound: number;
  readonly verdict: ScanVerdict;
  readonly reason: string;
  readonly topDocuments: readonly {
    readonly document: number;
    readonly source: string;
    readonly numScored: number;
    readonly numGreen: number | null;
    readonly log10P: number;
    readonly log10PCorrected: number;
  }[];
  readonly passages: readonly ScanPassage[];
  readonly fakeKeyLog10P: readonly number[];
  readonly fakeKeyRandomizedP: readonly number[];
}

export interface ScanResponse {
  readonly verdict: ScanVerdict;
  readonly reason: string;
  readonly alpha: number;
  readonly numDocuments: number;
  readonly numTokens: number;
  readonly numPromptTokens: number;
  readonly fakeKeys: { readonly count: number; readonly seed: string };
  readonly keys: readonly ScanKey[];
}

export interface ScanRequest {
  readonly documents: readonly { readonly text: string; readonly prompt?: string; readonly source: string }[];
}

/** A failed call: status 0 when the gateway could not be reached at all. */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  readonly status: number;
  readonly code: string;
  readonly retryAfterSeconds: number | null;
  constructor(status: number, code: string, message: string, retryAfterSeconds: number | null = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

async function call<T>(method: string, path: string, key: string | null, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (key !== null) headers.authorization = `Bearer ${key}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  let response: Response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? null : JSON.stringify(body),
      cache: 'no-store',
      credentials: 'omit',
    });
  } catch {
    throw new ApiError(0, 'NETWORK', 'the gateway could not be reached');
  }
  let json: unknown = null;
  try {
    json = JSON.parse(await response.text());
  } catch {
    json = null;
  }
  if (!response.ok) {
    const error = (json as { error?: { code?: unknown; message?: unknown } } | null)?.error;
    const retryAfter = Number(response.headers.get('retry-after'));
    throw new ApiError(
      response.status,
      typeof error?.code === 'string' ? error.code : `HTTP_${response.status}`,
      typeof error?.message === 'string' ? error.message : response.statusText || 'request failed',
      Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : null,
    );
  }
  if (json === null)
    throw new ApiError(
      response.status,
      'BAD_RESPONSE',
      'the gateway answered with something other than JSON',
    );
  return json as T;
}

/** The calls the console makes; `key` never leaves this object except in the Authorization header. */
export interface Gateway {
  whoami(): Promise<Identity>;
  verify(text: string): Promise<VerifyResponse>;
  scan(request: ScanRequest): Promise<ScanResponse>;
}

export function connect(key: string): Gateway {
  return {
    whoami: () => call<Identity>('GET', '/v1/whoami', key),
    verify: (text) => call<VerifyResponse>('POST', '/v1/verify', key, { text }),
    scan: (request) => call<ScanResponse>('POST', '/v1/scan', key, request),
  };
}

/** The service's published signing keys (public, no API key). */
export function fetchServiceKeys(): Promise<ServiceKeys> {
  return call<ServiceKeys>('GET', '/.well-known/tracemark/keys.json', null);
}

export interface Explained {
  readonly title: string;
  readonly detail: string;
  /** The key itself is refused: the console signs out. */
  readonly signOut: boolean;
}

/** Any error, in plain words for the person at the page. */
export function explainError(error: unknown): Explained {
  if (!(error instanceof ApiError)) {
    return {
      title: 'Something went wrong in this page',
      detail: error instanceof Error ? error.message : String(error),
      signOut: false,
    };
  }
  const retry =
    error.retryAfterSeconds === null ? '' : ` Try again in ${Math.ceil(error.retryAfterSeconds)} seconds.`;
  switch (error.code) {
    case 'NETWORK':
      return {
        title: 'The gateway cannot be reached',
        detail:
          'It may be stopped, restarting, or this computer may be offline. Check that the gateway is running (tracemark serve) and try again.',
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
