import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fromBase64, fromHex, toBase64, toHex } from './bytes.js';

describe('base64', () => {
  it('matches the RFC 4648 §10 vectors', () => {
    const vectors: [string, string][] = [
      ['', ''],
      ['f', 'Zg=='],
      ['fo', 'Zm8='],
      ['foo', 'Zm9v'],
      ['foob', 'Zm9vYg=='],
      ['fooba', 'Zm9vYmE='],
      ['foobar', 'Zm9vYmFy'],
    ];
    for (const [plain, encoded] of vectors) {
      const bytes = new TextEncoder().encode(plain);
      expect(toBase64(bytes)).toBe(encoded);
      expect(fromBase64(encoded)).toEqual(bytes);
    }
  });

  it('round-trips and agrees with Node', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 70 }), (bytes) => {
        const encoded = toBase64(bytes);
        expect(encoded).toBe(Buffer.from(bytes).toString('base64'));
        expect(fromBase64(encoded)).toEqual(bytes);
        const urlSafe = encoded.replaceAll('+', '-').replaceAll('/', '_');
        expect(fromBase64(urlSafe, 'x', { urlSafe: true })).toEqual(bytes);
      }),
    );
  });

  it('rejects every non-canonical or malformed encoding', () => {
    for (const bad of [
      'Zg',
      'Zh==',
      'Zm9=',
      'Zg=a',
      '=Zg=',
      'Z===',
      'Zm9v\n',
      'Zm 9',
      'Zm-v',
      'Zm+v_A==',
      'Zm9vYg===',
    ]) {
      expect(() => fromBase64(bad), bad).toThrow(TypeError);
    }
    expect(() => fromBase64('Zm-v')).toThrow(TypeError);
    expect(fromBase64('Zm-v', 'x', { urlSafe: true })).toEqual(fromBase64('Zm+v'));
  });
});

describe('hex', () => {
  it('round-trips lower-case hex and rejects anything else', () => {
    expect(toHex(new Uint8Array([0, 15, 16, 255]))).toBe('000f10ff');
    expect(fromHex('000f10ff')).toEqual(new Uint8Array([0, 15, 16, 255]));
    for (const bad of ['0', 'AB', 'zz', '0x00', ' 00']) expect(() => fromHex(bad), bad).toThrow(TypeError);
  });
});
