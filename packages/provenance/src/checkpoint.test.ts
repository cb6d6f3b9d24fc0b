import { describe, expect, it } from 'vitest';
import { toBase64, toHex } from './bytes.js';
import { formatCheckpointBody, parseCheckpoint, signCheckpoint, verifyCheckpoint } from './checkpoint.js';
import { ProvenanceError, type ProvenanceErrorCode } from './errors.js';
import { emptyRootHash, leafHash, rootFromLeafHashes } from './merkle.js';
import { generateSigningKey } from './note.js';

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

const key = generateSigningKey('example.com/issuance-log', new Uint8Array(32).fill(7));
const rootHash = rootFromLeafHashes([leafHash(new Uint8Array([1])), leafHash(new Uint8Array([2]))]);
const checkpoint = { origin: 'example.com/issuance-log', size: 2, rootHash };

describe('checkpoints', () => {
  it('formats the body as origin, size and base64 root, one per line', () => {
    expect(formatCheckpointBody(checkpoint)).toBe(`example.com/issuance-log\n2\n${toBase64(rootHash)}\n`);
    expect(
      formatCheckpointBody({ origin: 'o', size: 0, rootHash: emptyRootHash(), extensions: ['x y'] }),
    ).toBe('o\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\nx y\n');
  });

  it('signs and verifies', () => {
    const text = signCheckpoint(checkpoint, key);
    expect(text).toMatch(
      /^example\.com\/issuance-log\n2\n[A-Za-z0-9+/]{43}=\n\n— example\.com\/issuance-log [A-Za-z0-9+/]{91}=\n$/,
    );
    const verified = verifyCheckpoint(text, key.verifierKey, { origin: 'example.com/issuance-log' });
    expect(verified.size).toBe(2);
    expect(verified.origin).toBe('example.com/issuance-log');
    expect(toHex(verified.rootHash)).toBe(toHex(rootHash));
    expect(verified.verifiedBy).toEqual([key.keyId]);
    expect(verified.extensions).toEqual([]);
    // The signature line's first four bytes are the key hash.
    const line = text.split('\n').at(-2)!;
    expect(toHex(Uint8Array.from(atob(line.split(' ')[2]!), (c) => c.charCodeAt(0)).slice(0, 4))).toBe(
      key.keyHash.toString(16).padStart(8, '0'),
    );
  });

  it('accepts cosignatures and ignores the unknown ones', () => {
    const witness = generateSigningKey('witness.example/w1');
    const text = signCheckpoint(checkpoint, [key, witness]);
    expect(verifyCheckpoint(text, key.verifierKey).verifiedBy).toEqual([key.keyId]);
    expect(verifyCheckpoint(text, [key.verifierKey, witness.verifierKey]).verifiedBy).toEqual([
      key.keyId,
      witness.keyId,
    ]);
  });

  it('fails on any changed character', () => {
    const text = signCheckpoint(checkpoint, key);
    for (let i = 0; i < text.length; i++) {
      const changed = text.slice(0, i) + String.fromCharCode(text.charCodeAt(i) ^ 1) + text.slice(i + 1);
      expect(() => verifyCheckpoint(changed, key.verifierKey), `character ${i}`).toThrow();
    }
  });

  it('names the failure', () => {
    const text = signCheckpoint(checkpoint, key);
    const other = generateSigningKey('example.com/issuance-log');
    expectCode(() => verifyCheckpoint(text, other.verifierKey), 'TM_ERR_UNKNOWN_KEY');
    expectCode(
      () => verifyCheckpoint(text.replace('\n2\n', '\n3\n'), key.verifierKey),
      'TM_ERR_BAD_SIGNATURE',
    );
    expectCode(
      () => verifyCheckpoint(text, key.verifierKey, { origin: 'example.com/other' }),
      'TM_ERR_ORIGIN_MISMATCH',
    );
    expectCode(
      () => verifyCheckpoint(text.replace('\n2\n', '\n02\n'), key.verifierKey),
      'TM_ERR_MALFORMED_CHECKPOINT',
    );
  });

  it('rejects malformed bodies', () => {
    const sign = (body: string): string => `${body}\n— x ${toBase64(new Uint8Array(68))}\n`;
    const root = toBase64(rootHash);
    const bodies = [
      `origin\n2\n`,
      `\n2\n${root}\n`,
      `origin\n-1\n${root}\n`,
      `origin\n01\n${root}\n`,
      `origin\n1e3\n${root}\n`,
      `origin\n9007199254740993\n${root}\n`,
      `origin\n2\n${root.slice(0, -4)}\n`,
      `origin\n2\n${toBase64(new Uint8Array(31))}\n`,
    ];
    for (const body of bodies) expectCode(() => parseCheckpoint(sign(body)), 'TM_ERR_MALFORMED_CHECKPOINT');
    expect(parseCheckpoint(sign(`origin\n2\n${root}\next\n`)).extensions).toEqual(['ext']);
  });

  it('validates what it signs', () => {
    expect(() => signCheckpoint({ ...checkpoint, origin: '' }, key)).toThrow(TypeError);
    expect(() => signCheckpoint({ ...checkpoint, origin: 'a\nb' }, key)).toThrow(TypeError);
    expect(() => signCheckpoint({ ...checkpoint, size: -1 }, key)).toThrow(RangeError);
    expect(() => signCheckpoint({ ...checkpoint, size: 1.5 }, key)).toThrow(RangeError);
    expect(() => signCheckpoint({ ...checkpoint, rootHash: new Uint8Array(3) }, key)).toThrow(TypeError);
    expect(() => signCheckpoint({ ...checkpoint, extensions: [''] }, key)).toThrow(TypeError);
  });
});
