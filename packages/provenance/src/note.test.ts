import { describe, expect, it } from 'vitest';
import { fromBase64, toBase64, toHex } from './bytes.js';
import { ProvenanceError, type ProvenanceErrorCode } from './errors.js';
import {
  formatSignerKey,
  formatVerifierKey,
  generateSigningKey,
  noteKeyHash,
  parseNote,
  parseSignerKey,
  parseVerifierKey,
  signNote,
  verifyNote,
} from './note.js';

// The example key pair and note of golang.org/x/mod/sumdb/note (note_test.go), the reference
// implementation of the signed-note format. Ed25519 is deterministic, so signing must reproduce it.
const VERIFIER_KEY = 'PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW';
const SIGNER_KEY = 'PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz';
const TEXT =
  "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
const SIGNATURE_LINE =
  '— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n';
const NOTE = `${TEXT}\n${SIGNATURE_LINE}`;

function expectCode(action: () => unknown, code: ProvenanceErrorCode): void {
  try {
    action();
  } catch (error) {
    expect(error).toBeInstanceOf(ProvenanceError);
    expect((error as ProvenanceError).code).toBe(code);
    return;
  }
  expect.fail(`expected ${code}`);
}

describe('signed-note keys', () => {
  it('parses the reference verifier key and recomputes its key hash', () => {
    const verifier = parseVerifierKey(VERIFIER_KEY);
    expect(verifier.name).toBe('PeterNeumann');
    expect(verifier.keyHash).toBe(0xc74f20a3);
    expect(verifier.keyId).toBe('PeterNeumann+c74f20a3');
    expect(noteKeyHash('PeterNeumann', verifier.publicKey)).toBe(0xc74f20a3);
    expect(formatVerifierKey('PeterNeumann', verifier.publicKey)).toBe(VERIFIER_KEY);
  });

  it('parses the reference signer key into the matching key pair and formats it back', () => {
    const key = parseSignerKey(SIGNER_KEY);
    expect(key.verifierKey).toBe(VERIFIER_KEY);
    expect(formatSignerKey(key)).toBe(SIGNER_KEY);
  });

  it('rejects every truncation and every single-character change of a verifier key', () => {
    for (let i = 0; i <= VERIFIER_KEY.length; i++) {
      for (let j = i + 1; j <= VERIFIER_KEY.length; j++) {
        if (i === 0 && j === VERIFIER_KEY.length) continue;
        expectCode(() => parseVerifierKey(VERIFIER_KEY.slice(i, j)), 'TM_ERR_MALFORMED_KEY');
      }
    }
    for (let i = 0; i < VERIFIER_KEY.length; i++) {
      const changed =
        VERIFIER_KEY.slice(0, i) +
        String.fromCharCode(VERIFIER_KEY.charCodeAt(i) + 1) +
        VERIFIER_KEY.slice(i + 1);
      expectCode(() => parseVerifierKey(changed), 'TM_ERR_MALFORMED_KEY');
    }
  });

  it('rejects keys of other types and bad names', () => {
    const key = generateSigningKey('example.com/log');
    // Built from its parts: the base64 of a key may itself end in '+'.
    const ecdsa = `${key.keyId}+${toBase64(new Uint8Array([0x02, ...key.publicKey]))}`;
    expect(parseVerifierKey(`${key.keyId}+${toBase64(new Uint8Array([0x01, ...key.publicKey]))}`).keyId).toBe(
      key.keyId,
    );
    expectCode(() => parseVerifierKey(ecdsa), 'TM_ERR_MALFORMED_KEY');
    expect(() => generateSigningKey('')).toThrow(TypeError);
    expect(() => generateSigningKey('a b')).toThrow(TypeError);
    expect(() => generateSigningKey('a+b')).toThrow(TypeError);
    expect(() => generateSigningKey('a\u00a0b')).toThrow(TypeError);
    expect(() => generateSigningKey('ok', new Uint8Array(31))).toThrow(TypeError);
  });

  it('generates distinct keys, or the same key from the same private key', () => {
    const a = generateSigningKey('example.com/log');
    const b = generateSigningKey('example.com/log');
    expect(toHex(a.privateKey)).not.toBe(toHex(b.privateKey));
    const again = generateSigningKey('example.com/log', a.privateKey);
    expect(again.verifierKey).toBe(a.verifierKey);
    expect(parseVerifierKey(a.verifierKey).keyId).toBe(a.keyId);
    expect(Object.isFrozen(a)).toBe(true);
  });
});

describe('signed notes', () => {
  it('reproduces the reference signature byte for byte', () => {
    expect(signNote(TEXT, parseSignerKey(SIGNER_KEY))).toBe(NOTE);
  });

  it('verifies the reference note', () => {
    const note = verifyNote(NOTE, VERIFIER_KEY);
    expect(note.text).toBe(TEXT);
    expect(note.verifiedBy).toEqual(['PeterNeumann+c74f20a3']);
    expect(note.signatures[0]!.keyHash).toBe(0xc74f20a3);
  });

  it('rejects a changed text as a bad signature', () => {
    expectCode(
      () => verifyNote(NOTE.replace('cryptography', 'cryptographY'), VERIFIER_KEY),
      'TM_ERR_BAD_SIGNATURE',
    );
  });

  it('ignores signatures from unknown keys but requires one from a trusted key', () => {
    const other = generateSigningKey('PeterNeumann');
    const stranger = generateSigningKey('someone.example/else');
    const both = signNote(TEXT, [stranger, parseSignerKey(SIGNER_KEY)]);
    expect(verifyNote(both, VERIFIER_KEY).verifiedBy).toEqual(['PeterNeumann+c74f20a3']);
    // Same name, different key hash: an unknown key, so the note has no trusted signature.
    expectCode(() => verifyNote(signNote(TEXT, other), VERIFIER_KEY), 'TM_ERR_UNKNOWN_KEY');
  });

  it('rejects a note when a trusted key signature fails, even beside a good one', () => {
    const signer = parseSignerKey(SIGNER_KEY);
    const forged = `${TEXT}\n— PeterNeumann ${toBase64(new Uint8Array([0xc7, 0x4f, 0x20, 0xa3, ...new Uint8Array(64)]))}\n`;
    const combined = `${signNote(TEXT, signer)}${forged.slice(TEXT.length + 1)}`;
    expectCode(() => verifyNote(combined, VERIFIER_KEY), 'TM_ERR_BAD_SIGNATURE');
  });

  it('rejects malformed notes', () => {
    const malformed = [
      TEXT,
      `${TEXT}\n`,
      `${TEXT}\n${SIGNATURE_LINE.slice(0, -1)}`,
      `${TEXT}\n- PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n`,
      `${TEXT}\n— PeterNeumann  x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n`,
      `${TEXT}\n— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM\n`,
      `${TEXT}\n— PeterNeumann AAAA\n`,
      `${TEXT.replace('you', 'y\tou')}\n${SIGNATURE_LINE}`,
      `${TEXT.replace('you', 'y\rou')}\n${SIGNATURE_LINE}`,
      `${TEXT}\n${SIGNATURE_LINE.repeat(101)}`,
    ];
    for (const note of malformed) expectCode(() => parseNote(note), 'TM_ERR_MALFORMED_NOTE');
  });

  it('accepts at least 16 signatures', () => {
    const keys = Array.from({ length: 16 }, (_, i) => generateSigningKey(`witness-${i}.example`));
    const note = signNote(TEXT, keys);
    expect(parseNote(note).signatures).toHaveLength(16);
    expect(
      verifyNote(
        note,
        keys.map((k) => k.verifierKey),
      ).verifiedBy,
    ).toHaveLength(16);
  });

  it('rejects unsignable text', () => {
    const key = generateSigningKey('example.com/log');
    expect(() => signNote('no newline', key)).toThrow(TypeError);
    expect(() => signNote('', key)).toThrow(TypeError);
    expect(() => signNote('bell \u0007\n', key)).toThrow(TypeError);
    expect(() => signNote('lone \ud800\n', key)).toThrow(TypeError);
    expect(() => signNote(TEXT, [])).toThrow(TypeError);
  });

  it('rejects non-canonical base64 in a signature', () => {
    const encoded = SIGNATURE_LINE.slice('— PeterNeumann '.length, -1);
    const bytes = fromBase64(encoded);
    expect(bytes).toHaveLength(68);
    // 68 bytes leave two unused bits in the last symbol: setting them must not go unnoticed.
    const last = encoded.at(-2)!;
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
    const sloppy = `${encoded.slice(0, -2)}${alphabet[alphabet.indexOf(last) | 1]}=`;
    expectCode(() => parseNote(`${TEXT}\n— PeterNeumann ${sloppy}\n`), 'TM_ERR_MALFORMED_NOTE');
  });
});
