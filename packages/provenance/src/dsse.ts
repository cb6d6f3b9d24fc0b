/**
 * DSSE envelopes (https://github.com/secure-systems-lab/dsse/blob/master/envelope.md, signing over
 * the pre-authentication encoding of protocol.md) carrying in-toto Statements v1
 * (https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md), signed with Ed25519.
 *
 * Key ids are `<name>+<hex key hash>`, the same identifiers as signed-note keys, so one published
 * verifier key string verifies both checkpoints and reports.
 */

import { concatBytes, fromBase64, fromUtf8, toBase64, utf8 } from './bytes.js';
import { canonicalJsonBytes, type JsonValue } from './canonical-json.js';
import { ProvenanceError } from './errors.js';
import { type NoteSigner, signBytes, toVerifiers, type VerifierKeyInput, verifyBytes } from './note.js';

export const IN_TOTO_PAYLOAD_TYPE = 'application/vnd.in-toto+json';
export const IN_TOTO_STATEMENT_TYPE = 'https://in-toto.io/Statement/v1';

/** An in-toto ResourceDescriptor reduced to what a subject needs: a name and its digests. */
export interface StatementSubject {
  readonly name: string;
  /** Algorithm name (`sha256`, …) to lower-case hex digest. */
  readonly digest: { readonly [algorithm: string]: string };
}

export interface InTotoStatement<Predicate = { readonly [key: string]: JsonValue }> {
  readonly _type: typeof IN_TOTO_STATEMENT_TYPE;
  readonly subject: readonly StatementSubject[];
  readonly predicateType: string;
  readonly predicate: Predicate;
}

export interface DsseSignature {
  readonly keyid: string;
  /** Base64 signature over the PAE of payloadType and payload. */
  readonly sig: string;
}

export interface DsseEnvelope {
  readonly payloadType: string;
  /** Base64 of the payload bytes. */
  readonly payload: string;
  readonly signatures: readonly DsseSignature[];
}

/** A DSSE payload whose signature by at least one trusted key verified. */
export interface VerifiedPayload {
  readonly payloadType: string;
  readonly payload: Uint8Array;
  /** Key ids of the trusted keys whose signatures verified. */
  readonly verifiedBy: readonly string[];
}

/**
 * PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body, where LEN is the byte length
 * in ASCII decimal and type is UTF-8 encoded.
 */
export function preAuthEncoding(payloadType: string, payload: Uint8Array): Uint8Array {
  if (typeof payloadType !== 'string') throw new TypeError('payloadType: expected a string');
  if (!(payload instanceof Uint8Array)) throw new TypeError('payload: expected a Uint8Array');
  const type = utf8(payloadType);
  return concatBytes(utf8(`DSSEv1 ${type.length} `), type, utf8(` ${payload.length} `), payload);
}

function signersOf(signers: NoteSigner | readonly NoteSigner[]): readonly NoteSigner[] {
  const list: readonly NoteSigner[] = Array.isArray(signers) ? signers : [signers as NoteSigner];
  if (list.length === 0) throw new TypeError('signer: expected at least one signer');
  return list;
}

/** Signs arbitrary payload bytes into a DSSE envelope. */
export function signPayload(
  payloadType: string,
  payload: Uint8Array,
  signers: NoteSigner | readonly NoteSigner[],
): DsseEnvelope {
  const message = preAuthEncoding(payloadType, payload);
  const signatures = signersOf(signers).map((signer): DsseSignature => {
    const { keyId, signature } = signBytes(message, signer);
    return { keyid: keyId, sig: toBase64(signature) };
  });
  return { payloadType, payload: toBase64(payload), signatures };
}

/** Serializes a statement as canonical JSON (RFC 8785) and signs it into a DSSE envelope. */
export function signEnvelope(
  statement: InTotoStatement<unknown>,
  signer: NoteSigner | readonly NoteSigner[],
): DsseEnvelope {
  const problem = statementProblem(statement);
  if (problem !== undefined) throw new TypeError(`statement: ${problem}`);
  return signPayload(IN_TOTO_PAYLOAD_TYPE, canonicalJsonBytes(statement), signer);
}

function fail(code: 'TM_ERR_MALFORMED_ENVELOPE' | 'TM_ERR_MALFORMED_STATEMENT', message: string): never {
  throw new ProvenanceError(code, message);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function parseEnvelope(envelope: DsseEnvelope | string): DsseEnvelope {
  let value: unknown = envelope;
  if (typeof envelope === 'string') {
    try {
      value = JSON.parse(envelope);
    } catch {
      return fail('TM_ERR_MALFORMED_ENVELOPE', 'envelope is not valid JSON');
    }
  }
  if (!isRecord(value)) return fail('TM_ERR_MALFORMED_ENVELOPE', 'envelope must be a JSON object');
  const { payloadType, payload, signatures } = value;
  if (typeof payloadType !== 'string')
    fail('TM_ERR_MALFORMED_ENVELOPE', 'envelope.payloadType must be a string');
  if (typeof payload !== 'string') fail('TM_ERR_MALFORMED_ENVELOPE', 'envelope.payload must be a string');
  if (!Array.isArray(signatures) || signatures.length === 0) {
    fail('TM_ERR_MALFORMED_ENVELOPE', 'envelope.signatures must be a non-empty array');
  }
  signatures.forEach((signature: unknown, i: number) => {
    if (
      !isRecord(signature) ||
      typeof signature.sig !== 'string' ||
      typeof (signature.keyid ?? '') !== 'string'
    ) {
      fail('TM_ERR_MALFORMED_ENVELOPE', `envelope.signatures[${i}] must be {keyid, sig} strings`);
    }
  });
  return value as unknown as DsseEnvelope;
}

/**
 * Verifies a DSSE envelope (object or JSON text) of the given payload type. Signatures whose key id
 * is not trusted are ignored; a failing signature by a trusted key rejects the envelope
 * (TM_ERR_BAD_SIGNATURE); so does the lack of any trusted signature (TM_ERR_UNKNOWN_KEY).
 */
export function verifyPayload(
  envelope: DsseEnvelope | string,
  publicKeys: VerifierKeyInput | readonly VerifierKeyInput[],
  expectedPayloadType: string,
): VerifiedPayload {
  const verifiers = toVerifiers(publicKeys);
  if (verifiers.length === 0) throw new TypeError('publicKeys: expected at least one verifier key');
  const parsed = parseEnvelope(envelope);
  if (parsed.payloadType !== expectedPayloadType) {
    throw new ProvenanceError(
      'TM_ERR_WRONG_PAYLOAD_TYPE',
      `envelope payloadType is ${JSON.stringify(parsed.payloadType)}, expected ${JSON.stringify(expectedPayloadType)}`,
    );
  }
  let payload: Uint8Array;
  try {
    payload = fromBase64(parsed.payload, 'payload', { urlSafe: true });
  } catch {
    return fail('TM_ERR_MALFORMED_ENVELOPE', 'envelope.payload is not valid base64');
  }
  const message = preAuthEncoding(parsed.payloadType, payload);
  const verifiedBy: string[] = [];
  for (const [i, signature] of parsed.signatures.entries()) {
    const verifier = verifiers.find((v) => v.keyId === signature.keyid);
    if (verifier === undefined) continue;
    let sig: Uint8Array;
    try {
      sig = fromBase64(signature.sig, 'sig', { urlSafe: true });
    } catch {
      return fail('TM_ERR_MALFORMED_ENVELOPE', `envelope.signatures[${i}].sig is not valid base64`);
    }
    if (!verifyBytes(sig, message, verifier.publicKey)) {
      throw new ProvenanceError(
        'TM_ERR_BAD_SIGNATURE',
        `envelope signature by ${verifier.keyId} does not verify`,
      );
    }
    if (!verifiedBy.includes(verifier.keyId)) verifiedBy.push(verifier.keyId);
  }
  if (verifiedBy.length === 0) {
    const seen = parsed.signatures.map((s) => JSON.stringify(s.keyid ?? '')).join(', ');
    throw new ProvenanceError(
      'TM_ERR_UNKNOWN_KEY',
      `envelope has no signature by a trusted key (key ids: ${seen})`,
    );
  }
  return { payloadType: parsed.payloadType, payload, verifiedBy };
}

/** Why a value is not a well-formed in-toto Statement v1, or undefined if it is one. */
export function statementProblem(value: unknown): string | undefined {
  if (!isRecord(value)) return 'must be a JSON object';
  if (value._type !== IN_TOTO_STATEMENT_TYPE)
    return `_type must be ${JSON.stringify(IN_TOTO_STATEMENT_TYPE)}`;
  if (!Array.isArray(value.subject) || value.subject.length === 0) return 'subject must be a non-empty array';
  for (const [i, subject] of value.subject.entries()) {
    if (!isRecord(subject) || typeof subject.name !== 'string') return `subject[${i}].name must be a string`;
    const digest = subject.digest;
    if (!isRecord(digest) || Object.keys(digest).length === 0)
      return `subject[${i}].digest must be a non-empty object`;
    for (const [algorithm, hex] of Object.entries(digest)) {
      if (typeof hex !== 'string' || !/^[0-9a-f]+$/.test(hex)) {
        return `subject[${i}].digest.${algorithm} must be lower-case hex`;
      }
    }
  }
  if (typeof value.predicateType !== 'string' || value.predicateType.length === 0) {
    return 'predicateType must be a non-empty string';
  }
  if (!isRecord(value.predicate)) return 'predicate must be a JSON object';
  return undefined;
}

/**
 * Verifies a DSSE envelope carrying an in-toto Statement v1 and returns the statement. Throws a
 * `ProvenanceError`: TM_ERR_MALFORMED_ENVELOPE (bad JSON or base64), TM_ERR_WRONG_PAYLOAD_TYPE,
 * TM_ERR_UNKNOWN_KEY, TM_ERR_BAD_SIGNATURE, or TM_ERR_MALFORMED_STATEMENT (signed payload is not a
 * Statement).
 */
export function verifyEnvelope(
  envelope: DsseEnvelope | string,
  publicKeys: VerifierKeyInput | readonly VerifierKeyInput[],
): InTotoStatement {
  const { payload } = verifyPayload(envelope, publicKeys, IN_TOTO_PAYLOAD_TYPE);
  let statement: unknown;
  try {
    statement = JSON.parse(fromUtf8(payload, 'payload'));
  } catch {
    return fail('TM_ERR_MALFORMED_STATEMENT', 'the signed payload is not valid UTF-8 JSON');
  }
  const problem = statementProblem(statement);
  if (problem !== undefined)
    fail('TM_ERR_MALFORMED_STATEMENT', `the signed payload is not an in-toto Statement: ${problem}`);
  return statement as InTotoStatement;
}
