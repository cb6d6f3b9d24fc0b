import { describe, expect, it } from 'vitest';
import { fromBase64, toBase64, utf8 } from './bytes.js';
import { canonicalJson } from './canonical-json.js';
import {
  type DsseEnvelope,
  IN_TOTO_PAYLOAD_TYPE,
  IN_TOTO_STATEMENT_TYPE,
  type InTotoStatement,
  preAuthEncoding,
  signEnvelope,
  signPayload,
  verifyEnvelope,
  verifyPayload,
} from './dsse.js';
import { ProvenanceError, type ProvenanceErrorCode } from './errors.js';
import { generateSigningKey } from './note.js';

function expectCode(action: () => unknown, code: ProvenanceErrorCode): string {
  try {
    action();
  } catch (error) {
    expect(error).toBeInstanceOf(ProvenanceError);
    expect((error as ProvenanceError).code).toBe(code);
    return (error as ProvenanceError).message;
  }
  return expect.fail(`expected ${code}`);
}

const key = generateSigningKey('reports.example/signer', new Uint8Array(32).fill(1));
const statement: InTotoStatement = {
  _type: IN_TOTO_STATEMENT_TYPE,
  subject: [{ name: 'text', digest: { sha256: 'ab'.repeat(32) } }],
  predicateType: 'https://tracemark.dev/evidence/v1',
  predicate: { z: 4.5, b: [1, 2], a: 'é' },
};

describe('PAE', () => {
  it('matches the DSSE protocol example', () => {
    expect(
      new TextDecoder().decode(preAuthEncoding('http://example.com/HelloWorld', utf8('hello world'))),
    ).toBe('DSSEv1 29 http://example.com/HelloWorld 11 hello world');
  });

  it('counts bytes, not characters', () => {
    expect(preAuthEncoding('t', utf8('é'))).toEqual(utf8('DSSEv1 1 t 2 é'));
    expect(preAuthEncoding('', new Uint8Array(0))).toEqual(utf8('DSSEv1 0  0 '));
  });
});

describe('DSSE envelopes', () => {
  it('signs a statement as canonical JSON and verifies it', () => {
    const envelope = signEnvelope(statement, key);
    expect(envelope.payloadType).toBe(IN_TOTO_PAYLOAD_TYPE);
    expect(new TextDecoder().decode(fromBase64(envelope.payload))).toBe(canonicalJson(statement));
    expect(envelope.signatures).toEqual([{ keyid: key.keyId, sig: expect.any(String) }]);
    expect(fromBase64(envelope.signatures[0]!.sig)).toHaveLength(64);
    expect(verifyEnvelope(envelope, [key.verifierKey])).toEqual(statement);
    expect(verifyEnvelope(JSON.stringify(envelope), key)).toEqual(statement);
  });

  it('is reproducible: the same statement gives the same envelope', () => {
    const reordered = { ...statement, predicate: { a: 'é', b: [1, 2], z: 4.5 } };
    expect(JSON.stringify(signEnvelope(reordered, key))).toBe(JSON.stringify(signEnvelope(statement, key)));
  });

  it('accepts URL-safe base64, as DSSE allows', () => {
    const envelope = signEnvelope(statement, key);
    const urlSafe = {
      ...envelope,
      payload: envelope.payload.replaceAll('+', '-').replaceAll('/', '_'),
      signatures: envelope.signatures.map((s) => ({
        ...s,
        sig: s.sig.replaceAll('+', '-').replaceAll('/', '_'),
      })),
    };
    expect(verifyEnvelope(urlSafe, key)).toEqual(statement);
  });

  it('names each failure', () => {
    const envelope = signEnvelope(statement, key);
    const stranger = generateSigningKey('reports.example/other');
    expect(expectCode(() => verifyEnvelope(envelope, stranger), 'TM_ERR_UNKNOWN_KEY')).toContain(key.keyId);
    const otherPayload = toBase64(utf8(canonicalJson({ ...statement, predicate: { z: 9 } })));
    expectCode(() => verifyEnvelope({ ...envelope, payload: otherPayload }, key), 'TM_ERR_BAD_SIGNATURE');
    const otherSig = signEnvelope({ ...statement, predicate: {} }, key).signatures;
    expectCode(() => verifyEnvelope({ ...envelope, signatures: otherSig }, key), 'TM_ERR_BAD_SIGNATURE');
    expectCode(
      () => verifyEnvelope({ ...envelope, payloadType: 'application/json' }, key),
      'TM_ERR_WRONG_PAYLOAD_TYPE',
    );
    expectCode(
      () => verifyEnvelope({ ...envelope, payload: `${envelope.payload}A` }, key),
      'TM_ERR_MALFORMED_ENVELOPE',
    );
    expectCode(
      () => verifyEnvelope({ ...envelope, signatures: [{ keyid: key.keyId, sig: 'not base64!' }] }, key),
      'TM_ERR_MALFORMED_ENVELOPE',
    );
    expectCode(() => verifyEnvelope('{"payloadType":', key), 'TM_ERR_MALFORMED_ENVELOPE');
    expectCode(() => verifyEnvelope('[]', key), 'TM_ERR_MALFORMED_ENVELOPE');
    expectCode(() => verifyEnvelope({ ...envelope, signatures: [] }, key), 'TM_ERR_MALFORMED_ENVELOPE');
    expectCode(
      () => verifyEnvelope({ ...envelope, signatures: [{ keyid: 7 }] } as unknown as DsseEnvelope, key),
      'TM_ERR_MALFORMED_ENVELOPE',
    );
  });

  it('rejects a signed payload that is not JSON or not a Statement', () => {
    expectCode(
      () => verifyEnvelope(signPayload(IN_TOTO_PAYLOAD_TYPE, utf8('{"_type":'), key), key),
      'TM_ERR_MALFORMED_STATEMENT',
    );
    expectCode(
      () => verifyEnvelope(signPayload(IN_TOTO_PAYLOAD_TYPE, new Uint8Array([0xff, 0xfe]), key), key),
      'TM_ERR_MALFORMED_STATEMENT',
    );
    const notStatement = { ...statement, _type: 'https://in-toto.io/Statement/v0.1' };
    expectCode(
      () => verifyEnvelope(signPayload(IN_TOTO_PAYLOAD_TYPE, utf8(canonicalJson(notStatement)), key), key),
      'TM_ERR_MALFORMED_STATEMENT',
    );
    expect(() => signEnvelope({ ...statement, subject: [] }, key)).toThrow(TypeError);
  });

  it('a failing trusted signature rejects the envelope even beside a good one', () => {
    const envelope = signEnvelope(statement, key);
    const forged = { keyid: key.keyId, sig: toBase64(new Uint8Array(64)) };
    expectCode(
      () => verifyEnvelope({ ...envelope, signatures: [...envelope.signatures, forged] }, key),
      'TM_ERR_BAD_SIGNATURE',
    );
  });

  it('verifies multi-signed envelopes with any trusted key and signs arbitrary payloads', () => {
    const second = generateSigningKey('reports.example/second');
    const envelope = signPayload('text/plain', utf8('hi'), [key, second]);
    expect(verifyPayload(envelope, [second.verifierKey], 'text/plain').verifiedBy).toEqual([second.keyId]);
    expect(verifyPayload(envelope, [key, second], 'text/plain').verifiedBy).toEqual([
      key.keyId,
      second.keyId,
    ]);
  });

  it('fails on any changed byte of the serialized envelope', () => {
    const text = JSON.stringify(signEnvelope(statement, key));
    for (let i = 0; i < text.length; i++) {
      const changed = text.slice(0, i) + String.fromCharCode(text.charCodeAt(i) ^ 1) + text.slice(i + 1);
      expect(() => verifyEnvelope(changed, key), `byte ${i}`).toThrow(ProvenanceError);
    }
  });
});
