/**
 * Errors about untrusted input (a note, checkpoint, envelope or key that does not parse or verify)
 * carry a stable code so that callers can map them to exit codes or HTTP responses. Mistakes in how
 * the API is called throw plain `TypeError` / `RangeError`.
 */

export type ProvenanceErrorCode =
  | 'TM_ERR_MALFORMED_KEY'
  | 'TM_ERR_MALFORMED_NOTE'
  | 'TM_ERR_MALFORMED_CHECKPOINT'
  | 'TM_ERR_MALFORMED_ENVELOPE'
  | 'TM_ERR_MALFORMED_STATEMENT'
  | 'TM_ERR_WRONG_PAYLOAD_TYPE'
  | 'TM_ERR_UNKNOWN_KEY'
  | 'TM_ERR_BAD_SIGNATURE'
  | 'TM_ERR_ORIGIN_MISMATCH'
  | 'TM_ERR_LOG_CONFLICT';

export class ProvenanceError extends Error {
  readonly code: ProvenanceErrorCode;

  constructor(code: ProvenanceErrorCode, message: string) {
    super(message);
    this.name = 'ProvenanceError';
    this.code = code;
  }
}
