/** Errors with stable codes, shared by the CLI (exit codes, --json) and the gateway (HTTP errors). */

export type ErrorCode =
  | 'TM_ERR_USAGE'
  | 'TM_ERR_IO'
  | 'TM_ERR_KEY_FILE'
  | 'TM_ERR_KEY_EXISTS'
  | 'TM_ERR_TOKENIZER_MISMATCH'
  /** Text given to a key whose tokenizer tracemark does not ship (token ids still work). */
  | 'TM_ERR_TOKENIZER_UNAVAILABLE'
  /** A kind of key (a vLLM key) given to something that does not support it yet. */
  | 'TM_ERR_UNSUPPORTED_KEY'
  | 'TM_ERR_INVALID_JSON'
  | 'TM_ERR_MISSING_FIELD'
  | 'TM_ERR_BINARY_INPUT'
  | 'TM_ERR_INVALID_TOKENS'
  /** A text with one pre-tokenized piece too long to find (millions of characters in one run). */
  | 'TM_ERR_PIECE_TOO_LONG';

/** A problem with what the user gave us: its message names the input and never holds a secret. */
export class InputError extends Error {
  override readonly name = 'InputError';
  readonly code: ErrorCode;
  /** The input field at fault where the caller named several (`tokens` or `prompt`), else undefined. */
  readonly field: string | undefined;
  constructor(code: ErrorCode, message: string, field?: string) {
    super(message);
    this.code = code;
    this.field = field;
  }
}
