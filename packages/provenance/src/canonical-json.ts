/**
 * Canonical JSON per RFC 8785 (JSON Canonicalization Scheme, https://www.rfc-editor.org/rfc/rfc8785):
 * object keys sorted by UTF-16 code units, no whitespace, numbers and strings serialized as
 * ECMAScript's `JSON.stringify` does. Signed reports are serialized this way so that the same report
 * always has the same bytes and the same digest.
 */
import { utf8 } from './bytes.js';

/** A JSON value as this package reads and writes it. */
export type JsonValue =
  | null
  | boolean
  | number
  | string
  | readonly JsonValue[]
  | { readonly [key: string]: JsonValue };

/**
 * Serializes `value` canonically. Throws a `TypeError` on values JSON cannot represent (non-finite
 * numbers, `bigint`, functions, symbols, `undefined` array items, typed arrays, cycles). Object
 * properties whose value is `undefined` are left out, as `JSON.stringify` does.
 */
export function canonicalJson(value: unknown): string {
  return serialize(value, '$', new Set());
}

/** UTF-8 bytes of {@link canonicalJson}. */
export function canonicalJsonBytes(value: unknown): Uint8Array {
  return utf8(canonicalJson(value));
}

function serialize(value: unknown, path: string, open: Set<object>): string {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return JSON.stringify(value);
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError(`${path}: ${value} is not representable in JSON`);
      return JSON.stringify(value);
    case 'object': {
      if (value === null) return 'null';
      if (open.has(value)) throw new TypeError(`${path}: circular reference`);
      if (ArrayBuffer.isView(value))
        throw new TypeError(`${path}: binary data must be encoded (hex or base64) first`);
      open.add(value);
      let out: string;
      if (Array.isArray(value)) {
        out = `[${value.map((item, i) => serialize(item, `${path}[${i}]`, open)).join(',')}]`;
      } else {
        const prototype = Object.getPrototypeOf(value);
        if (prototype !== Object.prototype && prototype !== null) {
          throw new TypeError(`${path}: only plain objects can be serialized`);
        }
        const record = value as Record<string, unknown>;
        const members: string[] = [];
        for (const key of Object.keys(record).sort()) {
          if (record[key] === undefined) continue;
          members.push(`${JSON.stringify(key)}:${serialize(record[key], `${path}.${key}`, open)}`);
        }
        out = `{${members.join(',')}}`;
      }
      open.delete(value);
      return out;
    }
    default:
      throw new TypeError(`${path}: a ${typeof value} is not representable in JSON`);
  }
}
