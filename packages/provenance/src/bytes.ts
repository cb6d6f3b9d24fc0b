/**
 * Byte helpers shared by the package: strict hex and base64 codecs, UTF-8, SHA-256.
 *
 * Decoders are strict on purpose: a byte that changes in signed or hashed text must never decode to
 * the same bytes, so non-canonical base64 (non-zero pad bits, missing padding) and upper-case or
 * odd-length hex are rejected rather than repaired.
 */
import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js';

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** UTF-8 bytes of a string. */
export function utf8(text: string): Uint8Array {
  return utf8Encoder.encode(text);
}

/** Decodes UTF-8, throwing a `TypeError` on invalid sequences. */
export function fromUtf8(bytes: Uint8Array, what = 'bytes'): string {
  try {
    return utf8Decoder.decode(bytes);
  } catch {
    throw new TypeError(`${what}: invalid UTF-8`);
  }
}

/** SHA-256 of the concatenation of the given byte strings. */
export function sha256(...parts: readonly Uint8Array[]): Uint8Array {
  if (parts.length === 1) return nobleSha256(parts[0]!);
  const hash = nobleSha256.create();
  for (const part of parts) hash.update(part);
  return hash.digest();
}

/** Lower-case hex SHA-256 of text (UTF-8 encoded) or bytes. */
export function sha256Hex(data: string | Uint8Array): string {
  return toHex(sha256(typeof data === 'string' ? utf8(data) : data));
}

/** Compares two byte strings without an early exit on the first difference. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

export function concatBytes(...parts: readonly Uint8Array[]): Uint8Array {
  let length = 0;
  for (const part of parts) length += part.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

const HEX_DIGITS = '0123456789abcdef';

/** Lower-case hex encoding. */
export function toHex(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    out += HEX_DIGITS[b >> 4]! + HEX_DIGITS[b & 15]!;
  }
  return out;
}

const LOWER_HEX = /^(?:[0-9a-f]{2})*$/;

/** Decodes lower-case hex; throws a `TypeError` naming `what` on anything else. */
export function fromHex(hex: string, what = 'hex'): Uint8Array {
  if (typeof hex !== 'string' || !LOWER_HEX.test(hex)) {
    throw new TypeError(`${what}: expected lower-case hex with an even number of digits`);
  }
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

const BASE64_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const BASE64_URL_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const BASE64_VALUES = new Int16Array(128).fill(-1);
const BASE64_URL_VALUES = new Int16Array(128).fill(-1);
for (let i = 0; i < 64; i++) {
  BASE64_VALUES[BASE64_ALPHABET.charCodeAt(i)] = i;
  BASE64_URL_VALUES[BASE64_URL_ALPHABET.charCodeAt(i)] = i;
}

/** Standard padded base64 (RFC 4648 §4). */
export function toBase64(bytes: Uint8Array): string {
  let out = '';
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!;
    out +=
      BASE64_ALPHABET[n >> 18]! +
      BASE64_ALPHABET[(n >> 12) & 63]! +
      BASE64_ALPHABET[(n >> 6) & 63]! +
      BASE64_ALPHABET[n & 63]!;
  }
  const rest = bytes.length - i;
  if (rest === 1) {
    const n = bytes[i]! << 16;
    out += `${BASE64_ALPHABET[n >> 18]!}${BASE64_ALPHABET[(n >> 12) & 63]!}==`;
  } else if (rest === 2) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8);
    out += `${BASE64_ALPHABET[n >> 18]!}${BASE64_ALPHABET[(n >> 12) & 63]!}${BASE64_ALPHABET[(n >> 6) & 63]!}=`;
  }
  return out;
}

export interface Base64Options {
  /** Also accept the URL-safe alphabet of RFC 4648 §5 (`-_`), as DSSE requires. Default false. */
  readonly urlSafe?: boolean;
}

/**
 * Strict base64 decoding: padding is required and the unused bits of the last symbol must be zero,
 * so every byte string has exactly one accepted encoding per alphabet.
 */
export function fromBase64(text: string, what = 'base64', options: Base64Options = {}): Uint8Array {
  const fail = (): never => {
    throw new TypeError(`${what}: malformed base64`);
  };
  if (typeof text !== 'string' || text.length % 4 !== 0) return fail();
  const standard = [...text].every(
    (c) => c === '=' || (c.charCodeAt(0) < 128 && BASE64_VALUES[c.charCodeAt(0)]! >= 0),
  );
  const table = standard ? BASE64_VALUES : options.urlSafe ? BASE64_URL_VALUES : undefined;
  if (table === undefined) return fail();
  let padding = 0;
  if (text.endsWith('==')) padding = 2;
  else if (text.endsWith('=')) padding = 1;
  const body = text.length - padding;
  const out = new Uint8Array((text.length / 4) * 3 - padding);
  const value = (index: number): number => {
    const code = text.charCodeAt(index);
    const v = code < 128 ? table[code]! : -1;
    return v < 0 ? fail() : v;
  };
  let o = 0;
  let i = 0;
  for (; i + 4 <= body; i += 4) {
    const n = (value(i) << 18) | (value(i + 1) << 12) | (value(i + 2) << 6) | value(i + 3);
    out[o++] = n >> 16;
    out[o++] = (n >> 8) & 255;
    out[o++] = n & 255;
  }
  if (padding === 2) {
    const n = (value(i) << 18) | (value(i + 1) << 12);
    if ((n & 0xffff) !== 0) fail();
    out[o++] = n >> 16;
  } else if (padding === 1) {
    const n = (value(i) << 18) | (value(i + 1) << 12) | (value(i + 2) << 6);
    if ((n & 0xff) !== 0) fail();
    out[o++] = n >> 16;
    out[o++] = (n >> 8) & 255;
  }
  return out;
}
