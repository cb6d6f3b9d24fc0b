import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { buildByteTable } from './byte-table.js';
import { ENCODING_FACTS, TOKENIZER_IDS } from './encodings.js';
import { loadRankFile } from './reference-encoders.test-helper.js';
import { MAX_ORDINARY_TOKENS, NO_TOKEN, TokenTable } from './token-table.js';

describe.each(TOKENIZER_IDS)('%s', (id) => {
  const { ordinaryTokenCount, specialTokens } = ENCODING_FACTS[id];
  const vocabSize = Math.max(ordinaryTokenCount, ...Object.values(specialTokens).map((x) => x + 1));
  const byteTable = buildByteTable(loadRankFile(id), vocabSize, specialTokens);
  const table = new TokenTable(byteTable, ordinaryTokenCount);
  const { bytes, offsets } = byteTable;
  const tokenBytes = (token: number): Uint8Array => bytes.subarray(offsets[token]!, offsets[token + 1]!);
  const idsByKey = new Map<string, number>();
  for (let token = 0; token < ordinaryTokenCount; token++) idsByKey.set(tokenBytes(token).join(','), token);

  it('finds every ordinary token by its bytes, and no special token', () => {
    const wrong: number[] = [];
    for (let token = 0; token < ordinaryTokenCount; token++) {
      const piece = tokenBytes(token);
      if (piece.length > 0 && table.idOf(piece, 0, piece.length) !== token) wrong.push(token);
    }
    expect(wrong).toEqual([]);
    for (const text of Object.keys(specialTokens)) {
      const piece = new TextEncoder().encode(text);
      expect(table.idOf(piece, 0, piece.length)).toBe(NO_TOKEN);
    }
  });

  it('finds a byte range inside a larger buffer', () => {
    const piece = new TextEncoder().encode('xx hello world');
    expect(table.idOf(piece, 2, 8)).toBe(idsByKey.get([...piece.subarray(2, 8)].join(',')) ?? NO_TOKEN);
    expect(table.idOf(piece, 2, 8)).not.toBe(NO_TOKEN);
  });

  it('agrees with a Map of the rank file on random byte strings (property)', () => {
    const tokenPrefix = fc
      .integer({ min: 0, max: ordinaryTokenCount - 1 })
      .map((token) => [...tokenBytes(token)]);
    fc.assert(
      fc.property(
        fc.oneof(fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 12 }), tokenPrefix),
        fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 2 }),
        (head, tail) => {
          const piece = Uint8Array.from([...head, ...tail]);
          expect(table.idOf(piece, 0, piece.length)).toBe(idsByKey.get(piece.join(',')) ?? NO_TOKEN);
        },
      ),
      { numRuns: 3000 },
    );
  });

  it('finds ASCII text as idOf finds its bytes, and copies the bytes (property)', () => {
    const asciiTokens: string[] = [];
    for (let token = 0; token < ordinaryTokenCount; token++) {
      const piece = tokenBytes(token);
      if (piece.every((byte) => byte < 0x80)) asciiTokens.push(String.fromCharCode(...piece));
    }
    const ascii = fc.string({ unit: fc.integer({ min: 0, max: 0x7f }).map((c) => String.fromCharCode(c)) });
    const scratch = new Uint8Array(256);
    fc.assert(
      fc.property(
        fc.oneof(fc.constant(''), ascii),
        fc.oneof(
          ascii,
          fc.integer({ min: 0, max: asciiTokens.length - 1 }).map((i) => asciiTokens[i]!),
        ),
        ascii,
        (before, piece, after) => {
          const text = `${before}${piece}${after}`;
          const end = before.length + piece.length;
          const found = table.idOfAscii(text, before.length, end, scratch);
          const bytes = Uint8Array.from(piece, (c) => c.charCodeAt(0));
          expect(found).toBe(idsByKey.get(bytes.join(',')) ?? NO_TOKEN);
          expect(found).toBe(bytes.length === 0 ? found : table.idOf(bytes, 0, bytes.length));
          expect([...scratch.subarray(0, bytes.length)]).toEqual([...bytes]);
        },
      ),
      { numRuns: 3000 },
    );
    // longer than any token: no id, and still every byte copied
    const long = 'a'.repeat(table.longestToken + 1);
    expect(table.idOfAscii(long, 0, long.length, scratch)).toBe(NO_TOKEN);
    expect(scratch.subarray(0, long.length).every((byte) => byte === 0x61)).toBe(true);
  });
  it('has single-byte and two-byte tables that agree with the hash table', () => {
    const wrong: string[] = [];
    for (let byte = 0; byte < 256; byte++) {
      if (table.byteIds[byte] !== idsByKey.get(String(byte))) wrong.push(String(byte));
    }
    for (let pair = 0; pair < 1 << 16; pair++) {
      const key = `${pair >> 8},${pair & 255}`;
      if (table.pairIds[pair] !== (idsByKey.get(key) ?? NO_TOKEN)) wrong.push(key);
    }
    expect(wrong).toEqual([]);
  });

  it('probes a bounded number of slots whatever the input, and knows the longest token', () => {
    expect(table.longestProbe).toBeLessThan(64);
    let longest = 0;
    for (let token = 0; token < ordinaryTokenCount; token++)
      longest = Math.max(longest, tokenBytes(token).length);
    expect(table.longestToken).toBe(longest);
    const tooLong = new Uint8Array(longest + 1).fill(0x20);
    expect(table.idOf(tooLong, 0, tooLong.length)).toBe(NO_TOKEN);
  });
});

describe('TokenTable', () => {
  it('rejects a token count its heap keys cannot hold', () => {
    const byteTable = { bytes: new Uint8Array(0), offsets: new Uint32Array(1) };
    expect(() => new TokenTable(byteTable, MAX_ORDINARY_TOKENS + 1)).toThrow(RangeError);
    expect(() => new TokenTable(byteTable, 0)).toThrow(/ordinaryTokenCount/);
  });

  it('rejects a rank file that lacks a single byte', () => {
    const byteTable = { bytes: Uint8Array.from([0x61]), offsets: Uint32Array.from([0, 1]) };
    expect(() => new TokenTable(byteTable, 1)).toThrow(/byte 0/);
  });

  it('rejects built slots (a table file) in which a single byte has no token', () => {
    const bytes = Uint8Array.from({ length: 256 }, (_, byte) => byte);
    const byteTable = { bytes, offsets: Uint32Array.from({ length: 257 }, (_, i) => i) };
    const built = new TokenTable(byteTable, 256).built();
    expect(new TokenTable(byteTable, 256, built).idOf(bytes, 65, 66)).toBe(65);
    const byteIds = built.byteIds.slice();
    byteIds[65] = NO_TOKEN;
    expect(() => new TokenTable(byteTable, 256, { ...built, byteIds })).toThrow(/single byte/);
  });
});
