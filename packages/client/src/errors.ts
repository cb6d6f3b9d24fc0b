/**
 * Every failed call rejects with a {@link TracemarkApiError}: the HTTP status, the gateway's stable code
 * (`TM_ERR_…`) and its message. Failures before an answer arrives have status 0 and a code of their own.
 * No message ever contains the API key: the client removes it from whatever text it reports.
 */

/** Codes of failures on the client's side (the gateway's own codes are `TM_ERR_…` too, listed in its docs). */
export const CLIENT_ERROR_CODES: {
  /** The gateway could not be reached (refused, DNS, TLS, reset). */
  readonly network: 'TM_ERR_NETWORK';
  /** No complete answer within the timeout. */
  readonly timeout: 'TM_ERR_CLIENT_TIMEOUT';
  /** The caller's AbortSignal aborted the call. */
  readonly aborted: 'TM_ERR_ABORTED';
  /** An answer that is not the JSON the API defines (a proxy's error page, a truncated body). */
  readonly badResponse: 'TM_ERR_BAD_RESPONSE';
  /** An error status without the gateway's error body. */
  readonly http: 'TM_ERR_HTTP';
} = Object.freeze({
  network: 'TM_ERR_NETWORK',
  timeout: 'TM_ERR_CLIENT_TIMEOUT',
  aborted: 'TM_ERR_ABORTED',
  badResponse: 'TM_ERR_BAD_RESPONSE',
  http: 'TM_ERR_HTTP',
} as const);

/** What a {@link TracemarkApiError} carries besides its message. */
export interface TracemarkApiErrorDetails {
  /** HTTP status; 0 when no answer arrived. */
  readonly status: number;
  /** The gateway's stable code (`TM_ERR_INVALID_API_KEY`, …) or one of {@link CLIENT_ERROR_CODES}. */
  readonly code: string;
  /** The request parameter the gateway blames, when it names one. */
  readonly param?: string | null;
  /** Seconds the gateway asks to wait before retrying (Retry-After of a 429 or 503). */
  readonly retryAfterSeconds?: number | null;
  /** The method and path called, e.g. `POST /v1/verify`. */
  readonly endpoint: string;
  /** The underlying error (a network failure), with the API key removed from its message. */
  readonly cause?: unknown;
}

/** A failed call to the gateway. */
export class TracemarkApiError extends Error {
  override readonly name = 'TracemarkApiError';
  /** HTTP status; 0 when no answer arrived (network failure, timeout, abort). */
  readonly status: number;
  /** The gateway's stable code, or one of {@link CLIENT_ERROR_CODES}. */
  readonly code: string;
  /** The request parameter the gateway blames, or null. */
  readonly param: string | null;
  /** Seconds to wait before retrying, when the gateway said (429, 503); else null. */
  readonly retryAfterSeconds: number | null;
  /** The method and path called, e.g. `POST /v1/verify`. */
  readonly endpoint: string;

  /** @param message - what went wrong, already free of the API key */
  constructor(message: string, details: TracemarkApiErrorDetails) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.status = details.status;
    this.code = details.code;
    this.param = details.param ?? null;
    this.retryAfterSeconds = details.retryAfterSeconds ?? null;
    this.endpoint = details.endpoint;
  }

  /** True when no answer arrived from the gateway (network failure, timeout or abort). */
  get unanswered(): boolean {
    return this.status === 0;
  }
}

/** True for any {@link TracemarkApiError}, also one made by another copy of this package. */
export function isTracemarkApiError(error: unknown): error is TracemarkApiError {
  return (
    error instanceof TracemarkApiError ||
    (error instanceof Error &&
      error.name === 'TracemarkApiError' &&
      typeof (error as { status?: unknown }).status === 'number' &&
      typeof (error as { code?: unknown }).code === 'string')
  );
}
