/**
 * Signed notes (C2SP signed-note, https://github.com/C2SP/C2SP/blob/main/signed-note.md) with
 * Ed25519 keys, and the key string formats of the Go reference implementation
 * (golang.org/x/mod/sumdb/note): verifier keys `<name>+<hex key hash>+<base64(0x01 || public key)>`
 * and signer keys `PRIVATE+KEY+<name>+<hex key hash>+<base64(0x01 || private key)>`.
 */
import { ed25519 } from '@noble/curves/ed25519.js';
import { concatBytes, fromBase64, sha256, toBase64, utf8 } from './bytes.js';
import { ProvenanceError } from './errors.js';

/** Signature type byte for Ed25519 in signed notes. */
export const ED25519_SIGNATURE_TYPE = 0x01;

/** Notes with more signatures than this are rejected (the spec requires accepting at least 16). */
export const MAX_NOTE_SIGNATURES = 100;

const EM_DASH = '\u2014';

/** What signs: a key name and a 32-byte Ed25519 private key (the RFC 8032 seed). */
export interface NoteSigner {
  readonly name: string;
  readonly privateKey: Uint8Array;
}

/** What verifies: a key name, its key hash and its 32-byte Ed25519 public key. */
export interface NoteVerifier {
  readonly name: string;
  /** The uint32 key ID of the spec: SHA-256(name || 0x0A || 0x01 || public key)[:4], big-endian. */
  readonly keyHash: number;
  /** `<name>+<8 hex digits of keyHash>`: the key id used in DSSE signatures. */
  readonly keyId: string;
  readonly publicKey: Uint8Array;
}

/** A full key pair with its identifiers, as {@link generateSigningKey} returns it. */
export interface SigningKey extends NoteSigner, NoteVerifier {
  /** The verifier key string to publish: `<name>+<hex key hash>+<base64(0x01 || public key)>`. */
  readonly verifierKey: string;
}

/** One signature line of a note. */
export interface NoteSignature {
  readonly keyName: string;
  readonly keyHash: number;
  /** The signature bytes after the 4-byte key hash. */
  readonly signature: Uint8Array;
}

/** A note split into its text (with the final newline) and signatures; nothing verified yet. */
export interface ParsedNote {
  readonly text: string;
  readonly signatures: readonly NoteSignature[];
}

/** A note whose signature by at least one trusted key verified. */
export interface VerifiedNote extends ParsedNote {
  /** Key ids (`<name>+<hex>`) of the trusted keys whose signatures verified. */
  readonly verifiedBy: readonly string[];
}

/** Verifier keys as accepted by verification functions: parsed, or as the verifier key string. */
export type VerifierKeyInput = NoteVerifier | string;

function malformedKey(message: string): never {
  throw new ProvenanceError('TM_ERR_MALFORMED_KEY', message);
}

function malformedNote(message: string): never {
  throw new ProvenanceError('TM_ERR_MALFORMED_NOTE', `malformed note: ${message}`);
}

const KEY_NAME_FORBIDDEN = /[\s+\p{Cc}]/u;

/** A key name is non-empty and contains no Unicode space, no `+` and no control character. */
export function isValidKeyName(name: unknown): name is string {
  return (
    typeof name === 'string' && name.length > 0 && !KEY_NAME_FORBIDDEN.test(name) && !hasLoneSurrogate(name)
  );
}

function checkKeyName(name: unknown, what: string): asserts name is string {
  if (!isValidKeyName(name)) {
    throw new TypeError(`${what}: a key name must be non-empty, without spaces, '+' or control characters`);
  }
}

function hasLoneSurrogate(text: string): boolean {
  return /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(text);
}

/** The Ed25519 key hash of the signed-note spec: SHA-256(name || 0x0A || 0x01 || publicKey)[:4]. */
export function noteKeyHash(name: string, publicKey: Uint8Array): number {
  checkKeyName(name, 'name');
  checkKeyBytes(publicKey, 'publicKey');
  const digest = sha256(utf8(name), new Uint8Array([0x0a, ED25519_SIGNATURE_TYPE]), publicKey);
  return new DataView(digest.buffer, digest.byteOffset, 4).getUint32(0, false);
}

function hex8(value: number): string {
  return value.toString(16).padStart(8, '0');
}

function checkKeyBytes(key: unknown, what: string): asserts key is Uint8Array {
  if (!(key instanceof Uint8Array) || key.length !== 32) throw new TypeError(`${what}: expected 32 bytes`);
}

/** Builds the verifier for a name and public key. */
export function noteVerifier(name: string, publicKey: Uint8Array): NoteVerifier {
  const keyHash = noteKeyHash(name, publicKey);
  return Object.freeze({ name, keyHash, keyId: `${name}+${hex8(keyHash)}`, publicKey: publicKey.slice() });
}

/** `<name>+<hex key hash>+<base64(0x01 || public key)>`. */
export function formatVerifierKey(name: string, publicKey: Uint8Array): string {
  const keyHash = noteKeyHash(name, publicKey);
  return `${name}+${hex8(keyHash)}+${toBase64(concatBytes(new Uint8Array([ED25519_SIGNATURE_TYPE]), publicKey))}`;
}

const KEY_HASH_HEX = /^[0-9a-f]{8}$/;

/** Splits at the first `count - 1` plus signs; undefined when there are fewer. */
function splitPlus(text: string, count: number): string[] | undefined {
  const parts: string[] = [];
  let rest = text;
  for (let i = 1; i < count; i++) {
    const at = rest.indexOf('+');
    if (at < 0) return undefined;
    parts.push(rest.slice(0, at));
    rest = rest.slice(at + 1);
  }
  parts.push(rest);
  return parts;
}

/** Parses and checks a verifier key string; throws a `ProvenanceError` (TM_ERR_MALFORMED_KEY). */
export function parseVerifierKey(text: string): NoteVerifier {
  if (typeof text !== 'string') throw new TypeError('verifierKey: expected a string');
  // The base64 key may itself contain '+', so split at the first two only.
  const parts = splitPlus(text, 3);
  if (parts === undefined) malformedKey('verifier key: expected <name>+<hex key hash>+<base64 key>');
  const [name, hash, encoded] = parts;
  return checkedKey(name, hash, encoded, 'verifier key', (key) => {
    if (!ed25519.utils.isValidPublicKey(key, false))
      malformedKey('verifier key: not a valid Ed25519 public key');
    return key;
  });
}

function checkedKey(
  name: string,
  hash: string,
  encoded: string,
  what: string,
  toPublicKey: (key: Uint8Array) => Uint8Array,
): NoteVerifier & { key: Uint8Array } {
  if (!isValidKeyName(name)) malformedKey(`${what}: invalid key name`);
  if (!KEY_HASH_HEX.test(hash)) malformedKey(`${what}: the key hash must be 8 lower-case hex digits`);
  let bytes: Uint8Array;
  try {
    bytes = fromBase64(encoded, `${what} key`);
  } catch {
    return malformedKey(`${what}: the key is not valid base64`);
  }
  if (bytes.length !== 33 || bytes[0] !== ED25519_SIGNATURE_TYPE) {
    malformedKey(`${what}: expected an Ed25519 key (type 0x01 followed by 32 bytes)`);
  }
  const key = bytes.slice(1);
  const verifier = noteVerifier(name, toPublicKey(key));
  if (hex8(verifier.keyHash) !== hash) malformedKey(`${what}: the key hash does not match the name and key`);
  return { ...verifier, key };
}

/** `PRIVATE+KEY+<name>+<hex key hash>+<base64(0x01 || private key)>`: keep it secret. */
export function formatSignerKey(signer: NoteSigner): string {
  const key = signingKeyOf(signer);
  return `PRIVATE+KEY+${key.name}+${hex8(key.keyHash)}+${toBase64(concatBytes(new Uint8Array([ED25519_SIGNATURE_TYPE]), key.privateKey))}`;
}

/** Parses a signer key string into a full {@link SigningKey}. */
export function parseSignerKey(text: string): SigningKey {
  if (typeof text !== 'string') throw new TypeError('signerKey: expected a string');
  const parts = splitPlus(text, 5);
  if (parts === undefined || parts[0] !== 'PRIVATE' || parts[1] !== 'KEY') {
    return malformedKey('signer key: expected PRIVATE+KEY+<name>+<hex key hash>+<base64 key>');
  }
  const [, , name, hash, encoded] = parts;
  const checked = checkedKey(name, hash, encoded, 'signer key', (key) => ed25519.getPublicKey(key));
  return generateSigningKey(name, checked.key);
}

/**
 * A new Ed25519 signing key named `name` (a schema-less URL such as `example.com/log` is
 * recommended), from `privateKey` when given (32 bytes) or from the platform's secure random source.
 */
export function generateSigningKey(name: string, privateKey?: Uint8Array): SigningKey {
  checkKeyName(name, 'name');
  if (privateKey !== undefined) checkKeyBytes(privateKey, 'privateKey');
  const secret = privateKey === undefined ? ed25519.utils.randomSecretKey() : privateKey.slice();
  const publicKey = ed25519.getPublicKey(secret);
  const verifier = noteVerifier(name, publicKey);
  return Object.freeze({
    ...verifier,
    privateKey: secret,
    verifierKey: formatVerifierKey(name, publicKey),
  });
}

function signingKeyOf(signer: NoteSigner): SigningKey {
  if (signer === null || typeof signer !== 'object')
    throw new TypeError('signer: expected { name, privateKey }');
  return generateSigningKey(signer.name, signer.privateKey);
}

/** Ed25519 signature by `signer` over `message`, with its key id. */
export function signBytes(
  message: Uint8Array,
  signer: NoteSigner,
): { keyId: string; keyHash: number; signature: Uint8Array } {
  const key = signingKeyOf(signer);
  return { keyId: key.keyId, keyHash: key.keyHash, signature: ed25519.sign(message, key.privateKey) };
}

/** Strict RFC 8032 verification (no ZIP-215 leniency); never throws. */
export function verifyBytes(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean {
  try {
    return signature.length === 64 && ed25519.verify(signature, message, publicKey, { zip215: false });
  } catch {
    return false;
  }
}

/** Resolves verifier key inputs (strings are parsed). */
export function toVerifiers(keys: VerifierKeyInput | readonly VerifierKeyInput[]): NoteVerifier[] {
  const list: readonly VerifierKeyInput[] = Array.isArray(keys) ? keys : [keys as VerifierKeyInput];
  return list.map((key) => {
    if (typeof key === 'string') return parseVerifierKey(key);
    if (key === null || typeof key !== 'object')
      throw new TypeError('verifier keys: expected strings or NoteVerifier objects');
    return noteVerifier(key.name, key.publicKey);
  });
}

function checkNoteCharacters(text: string, fail: (message: string) => never): void {
  if (hasLoneSurrogate(text)) fail('not valid Unicode');
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the spec forbids these characters.
  if (/[\u0000-\u0009\u000b-\u001f]/.test(text)) fail('contains a control character other than newline');
}

/** Checks note text before signing: non-empty, ends in a newline, no control characters but newline. */
function checkNoteText(text: string): void {
  if (typeof text !== 'string' || text.length === 0 || !text.endsWith('\n')) {
    throw new TypeError('text: a note text must be non-empty and end with a newline');
  }
  checkNoteCharacters(text, (message) => {
    throw new TypeError(`text: ${message}`);
  });
}

/** Signs note text (which must end in a newline) with each signer and returns the signed note. */
export function signNote(text: string, signers: NoteSigner | readonly NoteSigner[]): string {
  checkNoteText(text);
  const list: readonly NoteSigner[] = Array.isArray(signers) ? signers : [signers as NoteSigner];
  if (list.length === 0) throw new TypeError('signers: expected at least one signer');
  const message = utf8(text);
  let lines = '';
  for (const signer of list) {
    const { keyHash, signature } = signBytes(message, signer);
    const prefix = new Uint8Array(4);
    new DataView(prefix.buffer).setUint32(0, keyHash, false);
    lines += `${EM_DASH} ${signer.name} ${toBase64(concatBytes(prefix, signature))}\n`;
  }
  return `${text}\n${lines}`;
}

/** Splits a signed note into text and signature lines, checking the format but no signature. */
export function parseNote(note: string): ParsedNote {
  if (typeof note !== 'string') throw new TypeError('note: expected a string');
  checkNoteCharacters(note, malformedNote);
  const split = note.lastIndexOf('\n\n');
  if (split < 0) malformedNote('no blank line before the signatures');
  const text = note.slice(0, split + 1);
  const block = note.slice(split + 2);
  if (!block.endsWith('\n')) malformedNote('the signature block must end with a newline');
  const lines = block.slice(0, -1).split('\n');
  if (lines.length > MAX_NOTE_SIGNATURES) malformedNote(`more than ${MAX_NOTE_SIGNATURES} signatures`);
  const signatures = lines.map((line, i): NoteSignature => {
    const match = /^\u2014 ([^ ]+) ([^ ]+)$/.exec(line);
    if (match === null) malformedNote(`signature line ${i + 1} is not "— <key name> <base64>"`);
    const [, keyName, encoded] = match as unknown as [string, string, string];
    if (!isValidKeyName(keyName)) malformedNote(`signature line ${i + 1} has an invalid key name`);
    let bytes: Uint8Array;
    try {
      bytes = fromBase64(encoded, 'signature');
    } catch {
      return malformedNote(`signature line ${i + 1} is not valid base64`);
    }
    if (bytes.length < 5) malformedNote(`signature line ${i + 1} is too short`);
    const keyHash = new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0, false);
    return { keyName, keyHash, signature: bytes.slice(4) };
  });
  return { text, signatures };
}

/**
 * Opens a signed note per the spec: signatures from unknown keys (name and hash not both matching a
 * trusted key) are ignored; a signature from a trusted key that fails rejects the whole note
 * (TM_ERR_BAD_SIGNATURE); no verified signature from a trusted key rejects it too (TM_ERR_UNKNOWN_KEY).
 */
export function verifyNote(note: string, keys: VerifierKeyInput | readonly VerifierKeyInput[]): VerifiedNote {
  const verifiers = toVerifiers(keys);
  if (verifiers.length === 0) throw new TypeError('keys: expected at least one verifier key');
  const parsed = parseNote(note);
  const message = utf8(parsed.text);
  const verifiedBy: string[] = [];
  for (const signature of parsed.signatures) {
    const verifier = verifiers.find((v) => v.name === signature.keyName && v.keyHash === signature.keyHash);
    if (verifier === undefined) continue;
    if (!verifyBytes(signature.signature, message, verifier.publicKey)) {
      throw new ProvenanceError(
        'TM_ERR_BAD_SIGNATURE',
        `note signature by ${verifier.keyId} does not verify`,
      );
    }
    if (!verifiedBy.includes(verifier.keyId)) verifiedBy.push(verifier.keyId);
  }
  if (verifiedBy.length === 0) {
    const known = verifiers.map((v) => v.keyId).join(', ');
    throw new ProvenanceError('TM_ERR_UNKNOWN_KEY', `note has no signature by a trusted key (${known})`);
  }
  return { ...parsed, verifiedBy };
}
