/**
 * Transparency log checkpoints (C2SP tlog-checkpoint,
 * https://github.com/C2SP/C2SP/blob/main/tlog-checkpoint.md): a signed note whose text is
 * `<origin>\n<tree size>\n<base64 root hash>\n` followed by optional extension lines.
 */
import { fromBase64, toBase64 } from './bytes.js';
import { ProvenanceError } from './errors.js';
import { HASH_SIZE, isHash, isTreeIndex } from './merkle.js';
import {
  type NoteSignature,
  type NoteSigner,
  parseNote,
  signNote,
  type VerifierKeyInput,
  verifyNote,
} from './note.js';

/** The tree head a checkpoint commits to. */
export interface Checkpoint {
  /** The log's identity, e.g. `example.com/issuance-log`; non-empty, one line. */
  readonly origin: string;
  /** Number of leaves. */
  readonly size: number;
  /** RFC 6962 root hash of the tree at `size`. */
  readonly rootHash: Uint8Array;
  /** Opaque extra lines (NOT RECOMMENDED by the spec); each non-empty. */
  readonly extensions?: readonly string[];
}

/** A checkpoint read from its signed-note text; its signatures are not verified by parsing. */
export interface ParsedCheckpoint extends Checkpoint {
  readonly extensions: readonly string[];
  /** The note text that the signatures cover. */
  readonly body: string;
  readonly signatures: readonly NoteSignature[];
}

/** A checkpoint with at least one verified signature by a trusted key. */
export interface VerifiedCheckpoint extends ParsedCheckpoint {
  /** Key ids (`<name>+<hex>`) of the trusted keys whose signatures verified. */
  readonly verifiedBy: readonly string[];
}

export interface VerifyCheckpointOptions {
  /** When given, the checkpoint's origin must be exactly this (TM_ERR_ORIGIN_MISMATCH otherwise). */
  readonly origin?: string;
}

function malformed(message: string): never {
  throw new ProvenanceError('TM_ERR_MALFORMED_CHECKPOINT', `malformed checkpoint: ${message}`);
}

/** The note text of a checkpoint. */
export function formatCheckpointBody(checkpoint: Checkpoint): string {
  if (checkpoint === null || typeof checkpoint !== 'object')
    throw new TypeError('checkpoint: expected an object');
  const { origin, size, rootHash, extensions = [] } = checkpoint;
  if (typeof origin !== 'string' || origin.length === 0 || origin.includes('\n')) {
    throw new TypeError('checkpoint.origin: expected a non-empty single-line string');
  }
  if (!isTreeIndex(size))
    throw new RangeError(`checkpoint.size: expected a non-negative safe integer, got ${size}`);
  if (!isHash(rootHash)) throw new TypeError(`checkpoint.rootHash: expected ${HASH_SIZE} bytes`);
  if (!Array.isArray(extensions)) throw new TypeError('checkpoint.extensions: expected an array of strings');
  extensions.forEach((line, i) => {
    if (typeof line !== 'string' || line.length === 0 || line.includes('\n')) {
      throw new TypeError(`checkpoint.extensions[${i}]: expected a non-empty single-line string`);
    }
  });
  return [origin, String(size), toBase64(rootHash), ...extensions].map((line) => `${line}\n`).join('');
}

/** Signs a checkpoint; the log's key name should be its origin. Returns the signed note text. */
export function signCheckpoint(checkpoint: Checkpoint, signer: NoteSigner | readonly NoteSigner[]): string {
  return signNote(formatCheckpointBody(checkpoint), signer);
}

const DECIMAL = /^(?:0|[1-9][0-9]*)$/;

/** Parses a signed checkpoint without verifying it (see {@link verifyCheckpoint}). */
export function parseCheckpoint(text: string): ParsedCheckpoint {
  const note = parseNote(text);
  const lines = note.text.slice(0, -1).split('\n');
  if (lines.length < 3) malformed('expected origin, tree size and root hash lines');
  const [origin, sizeLine, rootLine, ...extensions] = lines as [string, string, string, ...string[]];
  if (origin.length === 0) malformed('empty origin line');
  if (!DECIMAL.test(sizeLine)) malformed('the tree size must be a decimal number without leading zeros');
  const size = Number(sizeLine);
  if (!Number.isSafeInteger(size)) malformed('the tree size is too large');
  let rootHash: Uint8Array;
  try {
    rootHash = fromBase64(rootLine, 'root hash');
  } catch {
    return malformed('the root hash is not valid base64');
  }
  if (rootHash.length !== HASH_SIZE) malformed(`the root hash must be ${HASH_SIZE} bytes`);
  if (extensions.some((line) => line.length === 0)) malformed('empty extension line');
  return { origin, size, rootHash, extensions, body: note.text, signatures: note.signatures };
}

/**
 * Parses a checkpoint and verifies it against trusted verifier key(s) per the signed-note rules;
 * returns it or throws a `ProvenanceError` naming what failed.
 */
export function verifyCheckpoint(
  text: string,
  verifierKey: VerifierKeyInput | readonly VerifierKeyInput[],
  options: VerifyCheckpointOptions = {},
): VerifiedCheckpoint {
  const checkpoint = parseCheckpoint(text);
  const { verifiedBy } = verifyNote(text, verifierKey);
  if (options.origin !== undefined && checkpoint.origin !== options.origin) {
    throw new ProvenanceError(
      'TM_ERR_ORIGIN_MISMATCH',
      `checkpoint origin is ${JSON.stringify(checkpoint.origin)}, expected ${JSON.stringify(options.origin)}`,
    );
  }
  return { ...checkpoint, verifiedBy };
}
