/**
 * Errors in the OpenAI shape `{"error":{"message","type","param","code"}}` with stable `TM_ERR_…` codes.
 * A 4xx carries the real reason; a 5xx carries a generic message (the details go to the log, never a secret).
 */

export const ERROR_CODES = [
  'TM_ERR_INVALID_JSON',
  'TM_ERR_INVALID_REQUEST',
  'TM_ERR_BODY_TOO_LARGE',
  'TM_ERR_UNSUPPORTED_MEDIA_TYPE',
  'TM_ERR_MISSING_API_KEY',
  'TM_ERR_INVALID_API_KEY',
  'TM_ERR_API_KEY_REVOKED',
  'TM_ERR_API_KEY_EXPIRED',
  'TM_ERR_SCOPE',
  'TM_ERR_LOGPROBS_FORBIDDEN',
  'TM_ERR_WATERMARK_OPT_OUT',
  'TM_ERR_UNSUPPORTED_PARAMETER',
  'TM_ERR_UNKNOWN_MODEL',
  'TM_ERR_MAX_TOKENS',
  'TM_ERR_TOO_MANY_CHOICES',
  'TM_ERR_PROMPT_TOO_LONG',
  'TM_ERR_INVALID_TOKENS',
  'TM_ERR_UNPROCESSABLE_INPUT',
  'TM_ERR_WORK_BUDGET',
  'TM_ERR_NOT_FOUND',
  'TM_ERR_RATE_LIMITED',
  'TM_ERR_QUOTA_EXCEEDED',
  'TM_ERR_ISSUANCE_LOG',
  'TM_ERR_STORAGE_UNAVAILABLE',
  'TM_ERR_UPSTREAM_UNAVAILABLE',
  'TM_ERR_UPSTREAM_TIMEOUT',
  'TM_ERR_UPSTREAM_INVALID',
  'TM_ERR_UPSTREAM_NO_LOGPROBS',
  'TM_ERR_TIMEOUT',
  'TM_ERR_SHUTTING_DOWN',
  'TM_ERR_OVERLOADED',
  'TM_ERR_INTERNAL',
  'TM_ERR_INPUT_POLICY',
  'TM_ERR_OUTPUT_POLICY',
  'TM_ERR_ACCOUNT_SUSPENDED',
] as const;

export type GatewayErrorCode = (typeof ERROR_CODES)[number];

/** The `type` field OpenAI clients switch on. */
export type OpenAiErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'permission_error'
  | 'not_found_error'
  | 'rate_limit_error'
  | 'insufficient_quota'
  | 'server_error';

export interface OpenAiErrorBody {
  readonly error: {
    readonly message: string;
    readonly type: OpenAiErrorType;
    readonly param: string | null;
    readonly code: GatewayErrorCode;
  };
}

const TYPE_BY_STATUS: Readonly<Record<number, OpenAiErrorType>> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  403: 'permission_error',
  404: 'not_found_error',
  413: 'invalid_request_error',
  415: 'invalid_request_error',
  422: 'invalid_request_error',
  429: 'rate_limit_error',
};

/** An error the gateway answers with: status, stable code, and a message safe to show the client. */
export class GatewayError extends Error {
  override readonly name = 'GatewayError';
  readonly statusCode: number;
  readonly code: GatewayErrorCode;
  readonly param: string | null;
  /** Seconds until a retry can succeed (429, 503): sent as Retry-After. */
  readonly retryAfterSeconds: number | undefined;
  constructor(
    statusCode: number,
    code: GatewayErrorCode,
    message: string,
    options: { param?: string | null; retryAfterSeconds?: number; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.statusCode = statusCode;
    this.code = code;
    this.param = options.param ?? null;
    this.retryAfterSeconds = options.retryAfterSeconds;
  }

  get type(): OpenAiErrorType {
    if (this.code === 'TM_ERR_QUOTA_EXCEEDED') return 'insufficient_quota';
    return (
      TYPE_BY_STATUS[this.statusCode] ?? (this.statusCode >= 500 ? 'server_error' : 'invalid_request_error')
    );
  }

  toBody(): OpenAiErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

export function badRequest(
  code: GatewayErrorCode,
  message: string,
  param: string | null = null,
): GatewayError {
  return new GatewayError(400, code, message, { param });
}

/** Requests that carry a text either as `text` or as `tokens`: exactly one of the two. */
export function assertTextOrTokens(body: { readonly text?: unknown; readonly tokens?: unknown }): void {
  if ((body.text === undefined) === (body.tokens === undefined)) {
    throw badRequest(
      'TM_ERR_INVALID_REQUEST',
      'send exactly one of "text" or "tokens"',
      body.text === undefined ? 'text' : 'tokens',
    );
  }
}

/** Generic 5xx messages: the client learns the code and that it is not their fault, nothing more. */
export const SERVER_ERROR_MESSAGES: Readonly<Partial<Record<GatewayErrorCode, string>>> = {
  TM_ERR_INTERNAL: 'internal error',
  TM_ERR_ISSUANCE_LOG: 'the completion could not be recorded in the issuance log, so it was not returned',
  TM_ERR_STORAGE_UNAVAILABLE: 'storage is unavailable; try again later',
  TM_ERR_UPSTREAM_UNAVAILABLE: 'the upstream model server could not be reached',
  TM_ERR_UPSTREAM_TIMEOUT: 'the upstream model server did not answer in time',
  TM_ERR_UPSTREAM_INVALID: 'the upstream model server sent a response the gateway cannot use',
  TM_ERR_UPSTREAM_NO_LOGPROBS:
    'the upstream model server returned no logprobs, so its output cannot be watermarked',
  TM_ERR_TIMEOUT: 'the completion took longer than the gateway allows',
  TM_ERR_SHUTTING_DOWN: 'the gateway is shutting down; retry on another instance',
  TM_ERR_OVERLOADED: 'the gateway is busy with other requests; retry after the time in Retry-After',
};

const CLIENT_INPUT = Symbol('tracemark.clientInput');

/**
 * Runs `work` on data a client sent (tokenizing or decoding it): a RangeError or TypeError it throws is
 * marked as caused by the field `param`, so the error handler answers 400 TM_ERR_UNPROCESSABLE_INPUT instead of
 * a 500. Errors of other kinds pass unmarked.
 */
export function onClientInput<T>(param: string, work: () => T): T {
  try {
    return work();
  } catch (error) {
    if ((error instanceof RangeError || error instanceof TypeError) && !(CLIENT_INPUT in error)) {
      Object.defineProperty(error, CLIENT_INPUT, { value: param });
    }
    throw error;
  }
}

/** The field a marked error came from (see `onClientInput`), or null. */
export function clientInputParam(error: unknown): string | null {
  if (!(error instanceof RangeError || error instanceof TypeError)) return null;
  const param = (error as unknown as Record<symbol, unknown>)[CLIENT_INPUT];
  return typeof param === 'string' ? param : null;
}

/** The reason the tokenizer or decoder gave, in words a client can act on. */
export function unprocessableMessage(param: string, error: Error): string {
  const reason = /call stack/i.test(error.message)
    ? 'the tokenizer ran out of stack on it (a very long run of one character, such as NUL, does this)'
    : error.message;
  return `"${param}" could not be tokenized or decoded: ${reason}`;
}

/** The 400 for a client's field that the tokenizer or decoder could not process. */
export function unprocessableInput(param: string, error: Error): GatewayError {
  return new GatewayError(400, 'TM_ERR_UNPROCESSABLE_INPUT', unprocessableMessage(param, error), {
    param,
    cause: error,
  });
}
