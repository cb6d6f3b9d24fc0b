/** Unsigned LEB128 varints for values below 2^32, the payload encoding of serialized models. */

export class ByteWriter {
  private buffer: Uint8Array;
  private view: DataView;
  length = 0;

  constructor(initialCapacity: number = 1 << 16) {
    this.buffer = new Uint8Array(initialCapacity);
    this.view = new DataView(this.buffer.buffer);
  }

  private reserve(bytes: number): void {
    if (this.length + bytes <= this.buffer.length) return;
    let capacity = this.buffer.length * 2;
    while (capacity < this.length + bytes) capacity *= 2;
    const grown = new Uint8Array(capacity);
    grown.set(this.buffer.subarray(0, this.length));
    this.buffer = grown;
    this.view = new DataView(grown.buffer);
  }

  bytes(data: Uint8Array): void {
    this.reserve(data.length);
    this.buffer.set(data, this.length);
    this.length += data.length;
  }

  uint32(value: number): void {
    this.reserve(4);
    this.view.setUint32(this.length, value, true);
    this.length += 4;
  }

  float64(value: number): void {
    this.reserve(8);
    this.view.setFloat64(this.length, value, true);
    this.length += 8;
  }

  varint(value: number): void {
    this.reserve(5);
    const buffer = this.buffer;
    let position = this.length;
    let rest = value >>> 0;
    while (rest >= 0x80) {
      buffer[position++] = (rest & 0x7f) | 0x80;
      rest >>>= 7;
    }
    buffer[position++] = rest;
    this.length = position;
  }

  finish(): Uint8Array {
    return this.buffer.slice(0, this.length);
  }
}

export class ByteReader {
  private readonly view: DataView;
  position = 0;

  constructor(
    private readonly data: Uint8Array,
    private readonly describe: string,
  ) {
    this.view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  }

  get remaining(): number {
    return this.data.length - this.position;
  }

  fail(reason: string): never {
    throw new RangeError(`${this.describe}: ${reason}`);
  }

  private need(bytes: number): void {
    if (this.position + bytes > this.data.length) this.fail('unexpected end of data');
  }

  bytes(length: number): Uint8Array {
    this.need(length);
    const out = this.data.subarray(this.position, this.position + length);
    this.position += length;
    return out;
  }

  uint32(): number {
    this.need(4);
    const value = this.view.getUint32(this.position, true);
    this.position += 4;
    return value;
  }

  float64(): number {
    this.need(8);
    const value = this.view.getFloat64(this.position, true);
    this.position += 8;
    return value;
  }

  /** Fills `out` with varints. */
  varints(out: Uint32Array): void {
    const position = decodeVarints(this.data, this.position, out);
    if (position < 0) this.fail('truncated or out-of-range varint');
    this.position = position;
  }
}

/**
 * Decodes `out.length` varints starting at `position` into `out`; returns the position after them, or −1 if
 * the data ends early or a value does not fit in 32 bits.
 */
export function decodeVarints(data: Uint8Array, position: number, out: Uint32Array): number {
  const end = data.length;
  const count = out.length;
  for (let i = 0; i < count; i++) {
    if (position >= end) return -1;
    let byte = data[position++]!;
    if (byte < 0x80) {
      out[i] = byte;
      continue;
    }
    let value = byte & 0x7f;
    let multiplier = 0x80;
    for (;;) {
      if (position >= end || multiplier > 0x10000000) return -1;
      byte = data[position++]!;
      if (multiplier === 0x10000000 && byte > 0x0f) return -1;
      value += (byte & 0x7f) * multiplier;
      if (byte < 0x80) break;
      multiplier *= 0x80;
    }
    out[i] = value;
  }
  return position;
}
