/**
 * The gateway's HTTP API as typed calls over the global `fetch` (Node 20, browsers, workers): no Node
 * module is imported here. The API key is held in a closure, sent only in the Authorization header, and
 * removed from any message an error reports.
 */
import { CLIENT_ERROR_CODES, TracemarkApiError } from './errors.ts';
import type {
  ApiKeyInfo,
  ConsistencyProof,
  ConsistencyProofRequest,
  CreateApiKeyRequest,
  CreatedApiKey,
  DetectRequest,
  DetectResponse,
  Health,
  Identity,
  InclusionProof,
  InclusionProofRequest,
  IssuanceList,
  IssuanceListRequest,
  IssuanceLogRecord,
  LogCheckpoint,
  ScanRequest,
  ScanResponse,
  ServiceKeys,
  VerifyRequest,
  VerifyResponse,
} from './types.ts';

/** Default time a call may take, answer body included. */
export const DEFAULT_TIMEOUT_MS = 60_000;

/** How to reach a gateway. */
export interface ClientOptions {
  /**
   * The gateway's base URL, e.g. `https://tracemark.example.com` or `http://127.0.0.1:8787`; a path is
   * kept (`https://example.com/tracemark/` calls `https://example.com/tracemark/v1/verify`). In a page
   * served by the gateway, `location.origin`.
   */
  readonly baseUrl: string | URL;
  /**
   * The API key (`tm_live_…`): scope `verify` for verify, detect, scan and inclusion proofs, `admin` for
   * the admin calls. Public calls (service keys, checkpoint, consistency, health) need none.
   */
  readonly apiKey?: string;
  /** Milliseconds a call may take, answer included (default 60,000); a call's own option overrides it. */
  readonly timeoutMs?: number;
  /** The fetch to use (default: the global one), e.g. one bound to a proxy agent. */
  readonly fetch?: typeof fetch;
  /** Extra request headers (a User-Agent, a tracing header). An Authorization header is refused. */
  readonly headers?: Readonly<Record<string, string>>;
}

/** Per-call options. */
export interface RequestOptions {
  /** Aborts the call; it then rejects with code `TM_ERR_ABORTED`. */
  readonly signal?: AbortSignal;
  /** Milliseconds this call may take (default: the client's). */
  readonly timeoutMs?: number;
}

/** The admin API (scope `admin`). */
export interface TracemarkAdminApi {
  /**
   * Creates an API key. The key is in this answer only: the gateway keeps only its HMAC.
   * @returns the key, its id and its public view
   */
  createKey(request: CreateApiKeyRequest, options?: RequestOptions): Promise<CreatedApiKey>;
  /** Lists every API key's public view (never the keys themselves). */
  listKeys(options?: RequestOptions): Promise<readonly ApiKeyInfo[]>;
  /**
   * Revokes an API key at once.
   * @param id - the key's public id, `ak_…`
   * @returns the key's public view, now revoked
   */
  revokeKey(id: string, options?: RequestOptions): Promise<ApiKeyInfo>;
  /** Reads the issuance log in order, a page at a time. */
  listIssuance(request?: IssuanceListRequest, options?: RequestOptions): Promise<IssuanceList>;
  /**
   * One issuance record.
   * @param id - the record id, `iss_…`
   */
  issuanceRecord(id: string, options?: RequestOptions): Promise<IssuanceLogRecord>;
}

/** A client for one gateway, made by {@link createClient}. Every call rejects with a `TracemarkApiError`. */
export interface TracemarkClient {
  /** The base URL calls are made against, ending in `/`. */
  readonly baseUrl: string;
  /**
   * Verifies a text (POST /v1/verify, scope `verify`): whether this service issued it (exactly or as an
   * edited copy), whether it carries the watermark under any of the gateway's keys, and a signed evidence
   * report. Save the report with `evidenceReportFile` of `@tracemark/client/evidence`, check it with
   * `verifyEvidenceReport`, render it with `renderEvidenceHtml`.
   * @param input - the exact text, or `{ text }` / `{ tokens }` with an optional prompt and α
   */
  verify(input: string | VerifyRequest, options?: RequestOptions): Promise<VerifyResponse>;
  /**
   * Detects the watermark under the gateway's serving key (POST /v1/detect, scope `verify`), with the
   * numbers `tracemark detect --json` prints; nothing is signed or recorded.
   * @param input - the text, or `{ text }` / `{ tokens }` with an optional prompt, α and windowed search
   */
  detect(input: string | DetectRequest, options?: RequestOptions): Promise<DetectResponse>;
  /**
   * Scans a small corpus for the watermark's radioactivity (POST /v1/scan, scope `verify`): up to 2,000
   * documents and 2 MiB of text, calibrated with fake keys. Larger corpora belong to `tracemark scan`.
   */
  scan(request: ScanRequest, options?: RequestOptions): Promise<ScanResponse>;
  /** The API key's public view (GET /v1/whoami): id, name, account, scopes, expiry. */
  whoami(options?: RequestOptions): Promise<Identity>;
  /**
   * The service's published signing keys (GET /.well-known/tracemark/keys.json, public). Pin reports to
   * them: `verifyEvidenceReport(report, { trustedKeys: trustedKeysOf(keys) })`.
   */
  serviceKeys(options?: RequestOptions): Promise<ServiceKeys>;
  /** The issuance log's latest signed checkpoint (GET /v1/log/checkpoint, public). */
  checkpoint(options?: RequestOptions): Promise<LogCheckpoint>;
  /** An inclusion proof of one issuance record in a signed tree (GET /v1/log/inclusion, scope `verify`). */
  inclusionProof(request: InclusionProofRequest, options?: RequestOptions): Promise<InclusionProof>;
  /** A consistency proof between two sizes of the issuance log (GET /v1/log/consistency, public). */
  consistencyProof(request: ConsistencyProofRequest, options?: RequestOptions): Promise<ConsistencyProof>;
  /** Liveness and readiness (GET /healthz): resolves for 200 and 503 alike; read `status`. */
  health(options?: RequestOptions): Promise<Health>;
  /** The admin API (scope `admin`). */
  readonly admin: TracemarkAdminApi;
}

interface Call {
  readonly method: 'GET' | 'POST' | 'DELETE';
  readonly path: string;
  readonly query?: Readonly<Record<string, string | number | undefined>>;
  readonly body?: unknown;
  /** Statuses whose body is the answer (default: 2xx). */
  readonly accept?: readonly number[];
}

function positiveMilliseconds(value: number, name: string): number {
  if (typeof value !== 'number' || !(value > 0) || Number.isNaN(value)) {
    throw new RangeError(`${name} must be a positive number of milliseconds, got ${String(value)}`);
  }
  return value;
}

/** Seconds from a Retry-After header: a number of seconds or an HTTP date. */
function retryAfterSeconds(header: string | null): number | null {
  if (header === null || header.trim() === '') return null;
  const seconds = Number(header);
  if (Number.isFinite(seconds)) return seconds >= 0 ? seconds : null;
  const date = Date.parse(header);
  return Number.isNaN(date) ? null : Math.max(0, (date - Date.now()) / 1000);
}

/** A key that can go in a header as it is: not empty, no white space, no control character. */
function sendableKey(key: string): boolean {
  if (key === '' || /\s/u.test(key)) return false;
  for (let i = 0; i < key.length; i++) {
    const code = key.charCodeAt(i);
    if (code < 0x20 || code === 0x7f) return false;
  }
  return true;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * A client for one gateway.
 *
 * @example
 * ```ts
 * const client = createClient({ baseUrl: 'https://tracemark.example.com', apiKey: process.env.TRACEMARK_API_KEY });
 * const result = await client.verify('The text to check.');
 * console.log(result.verdict, result.issuance?.match ?? 'not issued');
 * ```
 * @throws TypeError when `baseUrl` is not an http(s) URL, or the API key or a header is malformed
 */
export function createClient(options: ClientOptions): TracemarkClient {
  let base: URL;
  try {
    base = new URL(String(options.baseUrl));
  } catch {
    throw new TypeError(`baseUrl: not a URL: ${String(options.baseUrl)}`);
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') {
    throw new TypeError(`baseUrl must be an http: or https: URL, got ${base.protocol}`);
  }
  if (base.username !== '' || base.password !== '') {
    throw new TypeError('baseUrl must not carry credentials; give the API key as apiKey');
  }
  base.search = '';
  base.hash = '';
  if (!base.pathname.endsWith('/')) base.pathname = `${base.pathname}/`;
  const baseUrl = base.href;

  const apiKey = options.apiKey?.trim();
  if (apiKey !== undefined && !sendableKey(apiKey)) {
    // Never echo the key, not even a malformed one.
    throw new TypeError('apiKey: expected a non-empty key without spaces or control characters');
  }
  const defaultTimeout = positiveMilliseconds(options.timeoutMs ?? DEFAULT_TIMEOUT_MS, 'timeoutMs');
  const fetchFunction = options.fetch ?? globalThis.fetch;
  if (typeof fetchFunction !== 'function') {
    throw new TypeError('no fetch: this runtime has no global fetch; pass options.fetch');
  }
  const extraHeaders: Record<string, string> = {};
  for (const [name, value] of Object.entries(options.headers ?? {})) {
    if (name.toLowerCase() === 'authorization') {
      throw new TypeError('headers: give the API key as apiKey, not as an Authorization header');
    }
    extraHeaders[name] = value;
  }

  /** Any text the client reports, with the key cut out. */
  const redact = (text: string): string =>
    apiKey === undefined ? text : text.split(apiKey).join('[API key]');

  const causeOf = (error: unknown): unknown => {
    if (!(error instanceof Error)) return error;
    const inner = error.cause instanceof Error ? error.cause : undefined;
    const leaks = apiKey !== undefined && (error.message.includes(apiKey) || inner?.message.includes(apiKey));
    return leaks ? new Error(redact(error.message)) : error;
  };

  async function call<T>(spec: Call, callOptions: RequestOptions = {}): Promise<T> {
    const endpoint = `${spec.method} /${spec.path}`;
    const url = new URL(spec.path, baseUrl);
    for (const [name, value] of Object.entries(spec.query ?? {})) {
      if (value !== undefined) url.searchParams.set(name, String(value));
    }
    const headers: Record<string, string> = { ...extraHeaders, accept: 'application/json' };
    if (apiKey !== undefined) headers.authorization = `Bearer ${apiKey}`;
    if (spec.body !== undefined) headers['content-type'] = 'application/json';
    const timeoutMs = positiveMilliseconds(callOptions.timeoutMs ?? defaultTimeout, 'timeoutMs');
    const signal = callOptions.signal;
    const failure = (code: string, message: string, status = 0, cause?: unknown) =>
      new TracemarkApiError(redact(message), {
        status,
        code,
        endpoint,
        ...(cause === undefined ? {} : { cause: causeOf(cause) }),
      });
    if (signal?.aborted) throw failure(CLIENT_ERROR_CODES.aborted, `${endpoint}: aborted before it was sent`);

    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, timeoutMs);
    const forwardAbort = () => controller.abort();
    signal?.addEventListener('abort', forwardAbort, { once: true });
    let status = 0;
    let response: Response;
    let text: string;
    try {
      response = await fetchFunction(url, {
        method: spec.method,
        headers,
        body: spec.body === undefined ? null : JSON.stringify(spec.body),
        signal: controller.signal,
        // An API answer is never cached, never carries cookies, and a redirect is a misconfiguration
        // (following one could send the key elsewhere).
        cache: 'no-store',
        credentials: 'omit',
        redirect: 'error',
      });
      status = response.status;
      text = await response.text();
    } catch (error) {
      if (timedOut) {
        throw failure(
          CLIENT_ERROR_CODES.timeout,
          `${endpoint}: no complete answer from ${url.origin} within ${timeoutMs / 1000} s`,
          status,
          error,
        );
      }
      if (signal?.aborted) throw failure(CLIENT_ERROR_CODES.aborted, `${endpoint}: aborted`, status, error);
      const cause = (error as { cause?: { code?: unknown; message?: unknown } }).cause;
      const why =
        typeof cause?.code === 'string'
          ? cause.code
          : typeof cause?.message === 'string'
            ? cause.message
            : error instanceof Error
              ? error.message
              : String(error);
      throw failure(CLIENT_ERROR_CODES.network, `cannot reach ${url.origin} (${why})`, status, error);
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', forwardAbort);
    }

    let json: unknown;
    let parsed = true;
    try {
      json = JSON.parse(text);
    } catch {
      parsed = false;
    }
    const accepted = spec.accept?.includes(status) ?? response.ok;
    if (!accepted) {
      const error = parsed && isRecord(json) && isRecord(json.error) ? json.error : undefined;
      const code = typeof error?.code === 'string' ? error.code : CLIENT_ERROR_CODES.http;
      const message =
        typeof error?.message === 'string'
          ? error.message
          : `${url.origin} answered ${status}${response.statusText === '' ? '' : ` ${response.statusText}`}`;
      throw new TracemarkApiError(redact(message), {
        status,
        code,
        endpoint,
        param: typeof error?.param === 'string' ? error.param : null,
        retryAfterSeconds: retryAfterSeconds(response.headers.get('retry-after')),
      });
    }
    if (!parsed || !isRecord(json)) {
      throw failure(
        CLIENT_ERROR_CODES.badResponse,
        `${url.origin} answered ${status} with something other than a JSON object`,
        status,
      );
    }
    return json as T;
  }

  const textInput = <T extends object>(input: string | T): T | { text: string } =>
    typeof input === 'string' ? { text: input } : input;

  const admin: TracemarkAdminApi = Object.freeze({
    createKey: (request: CreateApiKeyRequest, callOptions?: RequestOptions) =>
      call<CreatedApiKey>({ method: 'POST', path: 'v1/admin/keys', body: request }, callOptions),
    listKeys: async (callOptions?: RequestOptions) =>
      (await call<{ data: readonly ApiKeyInfo[] }>({ method: 'GET', path: 'v1/admin/keys' }, callOptions))
        .data,
    revokeKey: (id: string, callOptions?: RequestOptions) =>
      call<ApiKeyInfo>({ method: 'DELETE', path: `v1/admin/keys/${encodeURIComponent(id)}` }, callOptions),
    listIssuance: (request: IssuanceListRequest = {}, callOptions?: RequestOptions) =>
      call<IssuanceList>(
        {
          method: 'GET',
          path: 'v1/admin/issuance',
          query: { after: request.after, limit: request.limit, apiKeyId: request.apiKeyId },
        },
        callOptions,
      ),
    issuanceRecord: (id: string, callOptions?: RequestOptions) =>
      call<IssuanceLogRecord>(
        { method: 'GET', path: `v1/admin/issuance/${encodeURIComponent(id)}` },
        callOptions,
      ),
  });

  return Object.freeze({
    baseUrl,
    verify: (input: string | VerifyRequest, callOptions?: RequestOptions) =>
      call<VerifyResponse>({ method: 'POST', path: 'v1/verify', body: textInput(input) }, callOptions),
    detect: (input: string | DetectRequest, callOptions?: RequestOptions) =>
      call<DetectResponse>({ method: 'POST', path: 'v1/detect', body: textInput(input) }, callOptions),
    scan: (request: ScanRequest, callOptions?: RequestOptions) =>
      call<ScanResponse>({ method: 'POST', path: 'v1/scan', body: request }, callOptions),
    whoami: (callOptions?: RequestOptions) =>
      call<Identity>({ method: 'GET', path: 'v1/whoami' }, callOptions),
    serviceKeys: (callOptions?: RequestOptions) =>
      call<ServiceKeys>({ method: 'GET', path: '.well-known/tracemark/keys.json' }, callOptions),
    checkpoint: (callOptions?: RequestOptions) =>
      call<LogCheckpoint>({ method: 'GET', path: 'v1/log/checkpoint' }, callOptions),
    inclusionProof: (request: InclusionProofRequest, callOptions?: RequestOptions) =>
      call<InclusionProof>(
        {
          method: 'GET',
          path: 'v1/log/inclusion',
          query: { leafIndex: request.leafIndex, recordId: request.recordId, treeSize: request.treeSize },
        },
        callOptions,
      ),
    consistencyProof: (request: ConsistencyProofRequest, callOptions?: RequestOptions) =>
      call<ConsistencyProof>(
        { method: 'GET', path: 'v1/log/consistency', query: { from: request.from, to: request.to } },
        callOptions,
      ),
    health: (callOptions?: RequestOptions) =>
      call<Health>({ method: 'GET', path: 'healthz', accept: [200, 503] }, callOptions),
    admin,
  });
}
